//! Error vectors for the MQTT 3.1 and 3.1.1 codec, checked through the crate's public API.
//!
//! Feeds the decoder packets over the maximum packet size, then packets that break a normative
//! statement or a grammar rule the specification states without a number; each test names the
//! statement it covers and asserts the exact `DecodeError`, with the `Rule` the packet breaks.
//! Ends with the packets the encoder refuses. Valid packets are in `vectors.rs`.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use common::{
    connect_with, decode_one, field, packet, publish_with_topic, subscribe_with_filter, text,
    unsubscribe_with_filter, NO_LIMIT,
};
use iothub_protocol::{
    check, decode, encode_publish, validate_topic_filter, validate_topic_name, Auth, Connect, DecodeError,
    EncodeError, FixedHeader, Packet, ProtocolVersion, Publish, PublishHeader, QoS, ReasonCode, Rule,
};

fn decode_err_in(version: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, NO_LIMIT) {
        Err(err) => err,
        Ok(outcome) => panic!("{bytes:02X?} decoded to {outcome:?} instead of failing"),
    }
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    decode_err_in(ProtocolVersion::V311, bytes)
}

/// Asserts that `bytes` fail to decode because they break `rule`.
fn assert_violation(bytes: &[u8], rule: Rule) {
    assert_eq!(decode_err(bytes), DecodeError::Violation(rule), "{bytes:02X?}");
}

// Maximum packet size.

#[test]
fn packet_over_max_packet_size_is_refused_from_the_fixed_header_alone() {
    // A PUBLISH announcing a remaining length of 16384 bytes; none of its body has arrived.
    let header = [0x30, 0x80, 0x80, 0x01];
    let too_large = DecodeError::PacketTooLarge { size: 16_388, max: 1024 };
    assert_eq!(check(&header, 1024), Err(too_large));
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, 1024), Err(too_large));
    assert_eq!(too_large.reason_code(), ReasonCode::PacketTooLarge);
    assert_eq!(too_large.to_string(), "packet of 16388 bytes exceeds the maximum packet size of 1024 bytes");
    // The largest remaining length is refused as well, without waiting for 256 MiB.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        decode(&mut buf, ProtocolVersion::V311, 1024),
        Err(DecodeError::PacketTooLarge { size: 268_435_460, max: 1024 })
    );
}

#[test]
fn packet_of_exactly_max_packet_size_is_accepted() {
    let bytes = publish_with_topic(b"a/b");
    let packet = decode_one(&bytes, ProtocolVersion::V311).unwrap();
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, bytes.len()), Ok(Some(packet)));
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        decode(&mut buf, ProtocolVersion::V311, bytes.len() - 1),
        Err(DecodeError::PacketTooLarge { size: bytes.len(), max: bytes.len() - 1 })
    );
    assert_eq!(
        check(&[0xC0, 0x00], 2),
        Ok(Some(FixedHeader { first_byte: 0xC0, header_len: 2, remaining_len: 0 }))
    );
    assert_eq!(check(&[0xC0, 0x00], 1), Err(DecodeError::PacketTooLarge { size: 2, max: 1 }));
}

// Fixed header errors.

/// For every packet type but PUBLISH: the only valid flags and a valid body.
fn fixed_flag_cases() -> Vec<(u8, u8, Vec<u8>)> {
    let connect = connect_with(0x02, &field(b"c"));
    vec![
        (1, 0b0000, connect[2..].to_vec()),
        (2, 0b0000, vec![0x00, 0x00]),
        (4, 0b0000, vec![0x00, 0x0A]),
        (5, 0b0000, vec![0x00, 0x0A]),
        (6, 0b0010, vec![0x00, 0x0A]),
        (7, 0b0000, vec![0x00, 0x0A]),
        (8, 0b0010, subscribe_with_filter(b"a/b", 1)[2..].to_vec()),
        (9, 0b0000, vec![0x00, 0x0A, 0x01]),
        (10, 0b0010, unsubscribe_with_filter(b"a/b")[2..].to_vec()),
        (11, 0b0000, vec![0x00, 0x0A]),
        (12, 0b0000, Vec::new()),
        (13, 0b0000, Vec::new()),
        (14, 0b0000, Vec::new()),
    ]
}

#[test]
fn mqtt_2_2_2_1_and_2_2_2_2_reserved_flag_bits_are_malformed_for_every_type() {
    // [MQTT-2.2.2-1]: reserved flag bits must hold the value of table 2.2; [MQTT-2.2.2-2]: a
    // receiver of other flags closes the connection. The first byte alone decides it.
    for (packet_type, valid_flags, body) in fixed_flag_cases() {
        for flags in 0..16u8 {
            let first_byte = (packet_type << 4) | flags;
            let bytes = packet(first_byte, &body);
            if flags == valid_flags {
                assert!(decode_one(&bytes, ProtocolVersion::V311).is_ok(), "{bytes:02X?}");
                continue;
            }
            let flags_broken = Err(DecodeError::Violation(Rule::Mqtt2_2_2_2));
            assert_eq!(check(&[first_byte], NO_LIMIT), flags_broken, "{first_byte:#04X}");
            assert_violation(&bytes, Rule::Mqtt2_2_2_2);
        }
    }
}

#[test]
fn mqtt_3_6_1_1_pubrel_with_flags_0000_is_malformed() {
    // [MQTT-3.6.1-1]: bits 3-0 of PUBREL are 0010; the common mistake of 0000 is refused.
    assert_violation(&[0x60, 0x02, 0x00, 0x0A], Rule::Mqtt2_2_2_2);
}

#[test]
fn mqtt_3_8_1_1_and_3_10_1_1_subscribe_and_unsubscribe_with_flags_0000_are_malformed() {
    // [MQTT-3.8.1-1] and [MQTT-3.10.1-1]: bits 3-0 are 0010.
    let mut subscribe = subscribe_with_filter(b"a/b", 1);
    subscribe[0] = 0x80;
    assert_violation(&subscribe, Rule::Mqtt2_2_2_2);
    let mut unsubscribe = unsubscribe_with_filter(b"a/b");
    unsubscribe[0] = 0xA0;
    assert_violation(&unsubscribe, Rule::Mqtt2_2_2_2);
}

#[test]
fn reserved_packet_types_0_and_15_are_malformed() {
    // Section 2.2.1: types 0 and 15 are reserved in 3.1.1.
    let reserved = Err(DecodeError::Violation(Rule::ReservedPacketType));
    for first_byte in [0x00, 0x0F, 0xFF] {
        assert_eq!(check(&[first_byte], NO_LIMIT), reserved, "{first_byte:#04X}");
        assert_violation(&[first_byte, 0x00], Rule::ReservedPacketType);
    }
    // Type 15 with flags 0 is AUTH in 5.0. `check` does not know the connection's version, so it
    // lets the header through and the 3.1.1 decoder refuses the packet.
    assert_eq!(
        check(&[0xF0, 0x00], NO_LIMIT),
        Ok(Some(FixedHeader { first_byte: 0xF0, header_len: 2, remaining_len: 0 }))
    );
    assert_violation(&[0xF0, 0x00], Rule::ReservedPacketType);
    assert_eq!(
        decode_err_in(ProtocolVersion::V31, &[0xF0, 0x00]),
        DecodeError::Violation(Rule::ReservedPacketType)
    );
}

#[test]
fn remaining_length_of_five_bytes_is_malformed() {
    // Section 2.2.3: the remaining length takes at most four bytes, so a fourth byte with its
    // continuation bit set is refused at once, before a fifth byte arrives.
    let header = [0x30, 0xFF, 0xFF, 0xFF, 0xFF];
    assert_eq!(check(&header, usize::MAX), Err(DecodeError::Violation(Rule::RemainingLengthTooLong)));
    assert_violation(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01], Rule::RemainingLengthTooLong);
    assert_violation(&[0xC0, 0x80, 0x80, 0x80, 0x80, 0x00], Rule::RemainingLengthTooLong);
}

// UTF-8 string errors (section 1.5.3).

/// Ill-formed UTF-8: overlong forms, stray continuation bytes, bytes that never occur, truncated
/// sequences and code points above U+10FFFF.
const INVALID_UTF8: [&[u8]; 9] = [
    &[0xC0, 0xAF],             // Overlong '/'.
    &[0xE0, 0x80, 0xAF],       // Overlong '/' in three bytes.
    &[0xF0, 0x80, 0x80, 0xAF], // Overlong '/' in four bytes.
    &[b'a', 0x80],             // Continuation byte without a lead byte.
    &[0xFF],                   // Never valid in UTF-8.
    &[0xFE, 0xFE],             // Never valid in UTF-8.
    &[0xE2, 0x82],             // Truncated three-byte sequence.
    &[0xF4, 0x90, 0x80, 0x80], // U+110000, above the Unicode range.
    &[0xC0, 0x80],             // Overlong U+0000, the "modified UTF-8" null.
];

/// Surrogate code points encoded as if they were characters.
const SURROGATES: [&[u8]; 3] = [
    &[0xED, 0xA0, 0x80],                   // U+D800.
    &[0xED, 0xBF, 0xBF],                   // U+DFFF.
    &[0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80], // A CESU-8 surrogate pair.
];

/// Every UTF-8 string field of 3.1.1, each holding `bad` in turn.
fn packets_with_string(bad: &[u8]) -> Vec<Vec<u8>> {
    let mut topic = b"a/".to_vec();
    topic.extend_from_slice(bad);
    let client_id_payload = field(bad);
    let mut will_payload = field(b"c");
    will_payload.extend(field(&topic));
    will_payload.extend(field(b"bye"));
    let mut username_payload = field(b"c");
    username_payload.extend(field(bad));
    vec![
        publish_with_topic(&topic),
        connect_with(0x02, &client_id_payload),
        connect_with(0x06, &will_payload),
        connect_with(0x82, &username_payload),
        subscribe_with_filter(&topic, 0),
        unsubscribe_with_filter(&topic),
    ]
}

#[test]
fn mqtt_1_5_3_1_ill_formed_utf8_is_malformed() {
    for bad in INVALID_UTF8 {
        for bytes in packets_with_string(bad) {
            assert_violation(&bytes, Rule::Mqtt1_5_3_1);
        }
    }
}

#[test]
fn mqtt_1_5_3_1_surrogate_code_points_are_malformed() {
    for bad in SURROGATES {
        for bytes in packets_with_string(bad) {
            assert_violation(&bytes, Rule::Mqtt1_5_3_1);
        }
    }
}

#[test]
fn mqtt_1_5_3_2_and_4_7_3_2_null_character_is_malformed() {
    // [MQTT-1.5.3-2] for every string; [MQTT-4.7.3-2] restates it for topic names and filters.
    for bad in [&[0x00][..], &[b'x', 0x00, b'y'], &[b'x', 0x00]] {
        for bytes in packets_with_string(bad) {
            assert_violation(&bytes, Rule::Mqtt1_5_3_2);
        }
    }
}

// Topic name and filter errors (section 4.7).

#[test]
fn mqtt_3_3_2_2_topic_name_with_wildcard_is_malformed() {
    // [MQTT-3.3.2-2], and [MQTT-4.7.1-1] for the wildcard characters in general.
    for topic in [&b"a/+"[..], b"a/#", b"+", b"#", b"a+b", b"sport/tennis#"] {
        assert_violation(&publish_with_topic(topic), Rule::Mqtt3_3_2_2);
        let mut body = field(topic);
        body.extend_from_slice(&[0x00, 0x0A]);
        assert_violation(&packet(0x32, &body), Rule::Mqtt3_3_2_2);
        let broken = Err(DecodeError::Violation(Rule::Mqtt3_3_2_2));
        assert_eq!(validate_topic_name(std::str::from_utf8(topic).unwrap()), broken);
    }
}

#[test]
fn mqtt_3_3_2_2_will_topic_with_wildcard_is_malformed() {
    let mut payload = field(b"c");
    payload.extend(field(b"a/#"));
    payload.extend(field(b"bye"));
    assert_violation(&connect_with(0x06, &payload), Rule::Mqtt3_3_2_2);
}

#[test]
fn mqtt_4_7_3_1_empty_topic_name_is_malformed() {
    assert_violation(&publish_with_topic(b""), Rule::EmptyTopicName);
    assert_violation(&packet(0x32, &[0x00, 0x00, 0x00, 0x0A]), Rule::EmptyTopicName);
    let mut payload = field(b"c");
    payload.extend(field(b""));
    payload.extend(field(b"bye"));
    assert_violation(&connect_with(0x06, &payload), Rule::EmptyTopicName);
}

#[test]
fn mqtt_4_7_3_1_empty_topic_filter_is_malformed() {
    assert_violation(&subscribe_with_filter(b"", 0), Rule::EmptyTopicFilter);
    assert_violation(&unsubscribe_with_filter(b""), Rule::EmptyTopicFilter);
}

#[test]
fn mqtt_4_7_1_2_multi_level_wildcard_not_last_or_not_alone_is_malformed() {
    for filter in [&b"sport/tennis#"[..], b"sport/#/ranking", b"#/a", b"a/b#", b"##", b"#a"] {
        assert_violation(&subscribe_with_filter(filter, 0), Rule::Mqtt4_7_1_2);
        assert_violation(&unsubscribe_with_filter(filter), Rule::Mqtt4_7_1_2);
        let broken = Err(DecodeError::Violation(Rule::Mqtt4_7_1_2));
        assert_eq!(validate_topic_filter(std::str::from_utf8(filter).unwrap()), broken);
    }
}

#[test]
fn mqtt_4_7_1_3_single_level_wildcard_not_alone_in_its_level_is_malformed() {
    for filter in [&b"sport+"[..], b"sp+rt/x", b"a/+b", b"++", b"+a/#"] {
        assert_violation(&subscribe_with_filter(filter, 0), Rule::Mqtt4_7_1_3);
        assert_violation(&unsubscribe_with_filter(filter), Rule::Mqtt4_7_1_3);
        let broken = Err(DecodeError::Violation(Rule::Mqtt4_7_1_3));
        assert_eq!(validate_topic_filter(std::str::from_utf8(filter).unwrap()), broken);
    }
}

// Packet identifier errors.

#[test]
fn mqtt_2_3_1_1_packet_identifier_zero_is_malformed() {
    // [MQTT-2.3.1-1]: SUBSCRIBE, UNSUBSCRIBE and PUBLISH at QoS 1 or 2 carry a non-zero packet
    // identifier, and so do the acknowledgements that echo it.
    let mut publish_qos1 = field(b"a/b");
    publish_qos1.extend_from_slice(&[0x00, 0x00, b'x']);
    let mut subscribe = vec![0x00, 0x00];
    subscribe.extend(field(b"a/b"));
    subscribe.push(0x01);
    let mut unsubscribe = vec![0x00, 0x00];
    unsubscribe.extend(field(b"a/b"));
    let cases = [
        packet(0x32, &publish_qos1),
        packet(0x34, &publish_qos1),
        packet(0x82, &subscribe),
        packet(0xA2, &unsubscribe),
        vec![0x40, 0x02, 0x00, 0x00],
        vec![0x50, 0x02, 0x00, 0x00],
        vec![0x62, 0x02, 0x00, 0x00],
        vec![0x70, 0x02, 0x00, 0x00],
        vec![0x90, 0x03, 0x00, 0x00, 0x00],
        vec![0xB0, 0x02, 0x00, 0x00],
    ];
    for bytes in cases {
        assert_violation(&bytes, Rule::Mqtt2_3_1_1);
    }
}

// PUBLISH errors.

#[test]
fn mqtt_3_3_1_4_publish_with_qos_3_is_malformed() {
    // [MQTT-3.3.1-4]: both QoS bits set. The fixed header passes `check`; the body is refused.
    for first_byte in [0x36, 0x37, 0x3E, 0x3F] {
        let mut body = field(b"a/b");
        body.extend_from_slice(&[0x00, 0x0A, b'x']);
        let bytes = packet(first_byte, &body);
        assert!(check(&bytes, NO_LIMIT).is_ok());
        assert_violation(&bytes, Rule::Mqtt3_3_1_4);
    }
}

#[test]
fn mqtt_3_3_1_2_dup_on_qos_0_publish_is_malformed() {
    // [MQTT-3.3.1-2]: the DUP flag is 0 on every QoS 0 message.
    for first_byte in [0x38, 0x39] {
        let mut bytes = publish_with_topic(b"a/b");
        bytes[0] = first_byte;
        assert_violation(&bytes, Rule::Mqtt3_3_1_2);
    }
}

#[test]
fn publish_shorter_than_its_fields_is_malformed() {
    // The topic length runs past the end of the packet.
    assert_violation(&[0x30, 0x03, 0x00, 0x05, b'a'], Rule::PacketTooShort);
    // A QoS 1 PUBLISH without room for its packet identifier.
    assert_violation(&[0x32, 0x04, 0x00, 0x01, b'a', 0x00], Rule::PacketTooShort);
    // No room for the topic length.
    assert_violation(&[0x30, 0x01, 0x00], Rule::PacketTooShort);
}

// SUBSCRIBE, SUBACK and UNSUBSCRIBE errors.

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters_is_a_protocol_error() {
    assert_violation(&[0x82, 0x02, 0x00, 0x0A], Rule::Mqtt3_8_3_3);
}

#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters_is_a_protocol_error() {
    assert_violation(&[0xA2, 0x02, 0x00, 0x0A], Rule::Mqtt3_10_3_2);
}

#[test]
fn mqtt_3_8_3_4_subscribe_options_reserved_bits_or_qos_3_are_malformed() {
    // [MQTT-3.8.3-4]: the upper six bits of the requested QoS byte are reserved, and QoS 3 is
    // not a QoS. The 5.0 option bits (No Local 0x04, Retain As Published 0x08, Retain Handling
    // 0x30) are reserved in 3.1.1.
    for options in [0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFC, 0xFF] {
        assert_violation(&subscribe_with_filter(b"a/b", options), Rule::Mqtt3_8_3_4);
    }
    assert_violation(&subscribe_with_filter(b"a/b", 0x03), Rule::RequestedQoS3);
    // The rule holds for a filter after a valid one as well.
    let mut body = vec![0x00, 0x0A];
    body.extend(field(b"a/b"));
    body.push(0x01);
    body.extend(field(b"c/d"));
    body.push(0x81);
    assert_violation(&packet(0x82, &body), Rule::Mqtt3_8_3_4);
}

#[test]
fn subscribe_filter_without_its_options_byte_is_malformed() {
    let mut body = vec![0x00, 0x0A];
    body.extend(field(b"a/b"));
    assert_violation(&packet(0x82, &body), Rule::PacketTooShort);
}

#[test]
fn mqtt_3_9_3_2_suback_reserved_return_code_is_malformed() {
    // [MQTT-3.9.3-2]: return codes other than 0x00, 0x01, 0x02 and 0x80 are reserved.
    for code in [0x03, 0x04, 0x7F, 0x81, 0x87, 0xFF] {
        assert_violation(&[0x90, 0x03, 0x00, 0x0A, code], Rule::Mqtt3_9_3_2);
    }
}

#[test]
fn suback_without_return_codes_is_a_protocol_error() {
    // Section 3.9.3: a SUBACK carries one return code per filter of a SUBSCRIBE, which has at
    // least one.
    assert_violation(&[0x90, 0x02, 0x00, 0x0A], Rule::SubAckWithoutReturnCodes);
}

// Fixed-size packets with the wrong remaining length.

#[test]
fn pingreq_pingresp_disconnect_with_non_zero_remaining_length_are_malformed() {
    for first_byte in [0xC0, 0xD0, 0xE0] {
        assert_violation(&[first_byte, 0x01, 0x00], Rule::RemainingLengthNotZero);
        assert_violation(&[first_byte, 0x02, 0x00, 0x00], Rule::RemainingLengthNotZero);
    }
}

#[test]
fn acknowledgements_with_a_remaining_length_other_than_2_are_malformed() {
    for first_byte in [0x20, 0x40, 0x50, 0x62, 0x70, 0xB0] {
        let rule =
            if first_byte == 0x20 { Rule::ConnAckRemainingLengthNotTwo } else { Rule::RemainingLengthNotTwo };
        assert_violation(&[first_byte, 0x00], rule);
        assert_violation(&[first_byte, 0x01, 0x00], rule);
        assert_violation(&[first_byte, 0x03, 0x00, 0x0A, 0x00], rule);
    }
}

#[test]
fn connack_reserved_flags_or_return_code_are_malformed() {
    // Section 3.2.2.1: bits 7-1 of the acknowledge flags are reserved and 0.
    for flags in [0x02, 0x80, 0xFE] {
        assert_violation(&[0x20, 0x02, flags, 0x00], Rule::Mqtt3_2_2_1);
    }
    // Section 3.2.2.3: return codes 6 to 255 are reserved.
    for code in [0x06, 0x80, 0xFF] {
        assert_violation(&[0x20, 0x02, 0x00, code], Rule::ReservedConnAckReturnCode);
    }
}

// CONNECT errors.

#[test]
fn mqtt_3_1_2_3_connect_reserved_flag_is_malformed() {
    assert_violation(&connect_with(0x03, &field(b"c")), Rule::Mqtt3_1_2_3);
    assert_violation(&connect_with(0x01, &field(b"c")), Rule::Mqtt3_1_2_3);
}

#[test]
fn mqtt_3_1_2_13_will_qos_without_will_flag_is_malformed() {
    for flags in [0x08, 0x10, 0x18, 0x0A] {
        assert_violation(&connect_with(flags, &field(b"c")), Rule::Mqtt3_1_2_13);
    }
}

#[test]
fn mqtt_3_1_2_14_will_qos_3_is_malformed() {
    let mut payload = field(b"c");
    payload.extend(field(b"a/b"));
    payload.extend(field(b"bye"));
    assert_violation(&connect_with(0x1E, &payload), Rule::Mqtt3_1_2_14);
}

#[test]
fn mqtt_3_1_2_15_will_retain_without_will_flag_is_malformed() {
    assert_violation(&connect_with(0x22, &field(b"c")), Rule::Mqtt3_1_2_15);
}

#[test]
fn mqtt_3_1_2_22_password_without_username_is_malformed() {
    let mut payload = field(b"c");
    payload.extend(field(b"pass"));
    assert_violation(&connect_with(0x42, &payload), Rule::Mqtt3_1_2_22);
}

#[test]
fn mqtt_3_1_2_2_unsupported_protocol_level() {
    // [MQTT-3.1.2-2]: the server answers an unsupported level with return code 0x01.
    // Level 5 is MQTT 5.0, which the decoder reads (see vectors_v5.rs).
    let cases: [(&[u8], u8); 6] =
        [(b"MQTT", 3), (b"MQTT", 6), (b"MQTT", 0), (b"MQTT", 0xFF), (b"MQIsdp", 4), (b"MQIsdp", 5)];
    for (name, level) in cases {
        let mut body = field(name);
        body.extend_from_slice(&[level, 0x02, 0x00, 0x3C]);
        body.extend(field(b"c"));
        let err = decode_err(&packet(0x10, &body));
        assert_eq!(err, DecodeError::UnsupportedProtocolVersion(level));
        assert_eq!(err.reason_code(), ReasonCode::UnsupportedProtocolVersion);
        assert_eq!(err.reason_code().v3_connack_code(), 0x01);
    }
}

#[test]
fn mqtt_3_1_2_1_wrong_protocol_name() {
    for name in [&b"MQTX"[..], b"mqtt", b"MQTT\0", b"MQIsdP", b"", b"MQ"] {
        let mut body = field(name);
        body.extend_from_slice(&[0x04, 0x02, 0x00, 0x3C]);
        body.extend(field(b"c"));
        let err = decode_err(&packet(0x10, &body));
        assert_eq!(err, DecodeError::InvalidProtocolName, "{name:02X?}");
    }
}

#[test]
fn connect_with_trailing_bytes_after_its_fields_is_malformed() {
    let mut payload = field(b"c");
    payload.push(0x00);
    assert_violation(&connect_with(0x02, &payload), Rule::TrailingBytes);
    // A password present without its flag is a trailing field too.
    let mut payload = field(b"c");
    payload.extend(field(b"u"));
    payload.extend(field(b"p"));
    assert_violation(&connect_with(0x82, &payload), Rule::TrailingBytes);
}

#[test]
fn connect_missing_a_flagged_field_is_malformed() {
    // The user name flag is set but the packet ends after the client identifier.
    assert_violation(&connect_with(0x82, &field(b"c")), Rule::PacketTooShort);
    // The will flag is set but the will message is missing.
    let mut payload = field(b"c");
    payload.extend(field(b"a/b"));
    assert_violation(&connect_with(0x06, &payload), Rule::PacketTooShort);
    // The packet ends inside the variable header.
    assert_violation(&packet(0x10, &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04]), Rule::PacketTooShort);
}

// AUTH exists only in MQTT 5.0.

#[test]
fn auth_has_no_3_1_1_encoding() {
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    for version in [ProtocolVersion::V31, ProtocolVersion::V311] {
        assert_eq!(
            Packet::Auth(Auth::default()).encode(version, &mut buf),
            Err(EncodeError::Unsupported("AUTH"))
        );
        assert_eq!(buf[..], [0xC0, 0x00]);
    }
}

// Encoder errors.

#[test]
fn encode_refuses_a_field_longer_than_65535_bytes_and_leaves_the_buffer_unchanged() {
    let publish = |topic_len: usize| {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: ByteString::from("t".repeat(topic_len)),
            packet_id: None,
            payload: Bytes::from_static(b"x"),
            properties: None,
        })
    };
    let ping = [0xC0, 0x00]; // PINGREQ.
    let mut buf = BytesMut::from(&ping[..]);
    publish(65_535).encode(ProtocolVersion::V311, &mut buf).unwrap();
    assert_eq!(buf.len(), ping.len() + publish(65_535).encoded_size());

    // Packets coalesce in one buffer, so a refused packet must not leave a partial one behind.
    let mut buf = BytesMut::from(&ping[..]);
    assert_eq!(
        publish(65_536).encode(ProtocolVersion::V311, &mut buf),
        Err(EncodeError::FieldTooLong(65_536))
    );
    assert_eq!(buf[..], ping[..]);
    let topic = "t".repeat(65_536);
    assert_eq!(
        encode_publish(&mut buf, &PublishHeader::default(), &topic, b"x"),
        Err(EncodeError::FieldTooLong(65_536))
    );
    assert_eq!(buf[..], ping[..]);
    let connect = Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 0,
        client_id: text("c"),
        will: None,
        username: Some(ByteString::from(topic.as_str())),
        password: None,
        properties: None,
    }));
    assert_eq!(connect.encode(ProtocolVersion::V311, &mut buf), Err(EncodeError::FieldTooLong(65_536)));
    assert_eq!(buf[..], ping[..]);
}
