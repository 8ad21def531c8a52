//! Error vectors for the MQTT 5.0 codec, checked through the crate's public API.
//!
//! Each test breaks one rule that 5.0 adds to the grammar, is named after the statement or the
//! section that states it, and asserts the exact `DecodeError` with its `Rule`, the rule's kind
//! and the reason code a server answers it with. Ends with the encoder's limits:
//! `encode_within` and the values no Variable Byte Integer holds. Valid packets are in
//! `vectors_v5.rs`.

#![allow(clippy::unwrap_used)]

// Each test file uses its own part of the shared helpers.
#[allow(dead_code)]
mod common;

use core::num::NonZeroU32;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use common::{field, packet, text, NO_LIMIT};
use iothub_protocol::{
    decode, Auth, AuthProperties, ConnAck, ConnAckProperties, DecodeError, Disconnect, DisconnectProperties,
    EncodeError, OutgoingPublish, Packet, PacketId, ProtocolVersion, Publish, PublishHeader,
    PublishProperties, PublishResponse, PublishResponseProperties, QoS, ReasonCode, Rule, SubAck,
    SubAckProperties, Subscribe, SubscribeProperties, SubscriptionOptions, ViolationKind,
};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn decode_err_in(version: ProtocolVersion, bytes: &[u8]) -> DecodeError {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, version, NO_LIMIT) {
        Err(err) => err,
        Ok(outcome) => panic!("{bytes:02X?} decoded to {outcome:?} instead of failing"),
    }
}

/// Asserts that `bytes` fail to decode in 5.0 because they break `rule`, of kind `kind`.
fn assert_violation(bytes: &[u8], rule: Rule, kind: ViolationKind) {
    assert_eq!(decode_err_in(V5, bytes), DecodeError::Violation(rule), "{bytes:02X?}");
    assert_eq!(rule.kind(), kind, "{rule:?}");
    let code = match kind {
        ViolationKind::Malformed => ReasonCode::MalformedPacket,
        ViolationKind::Protocol => ReasonCode::ProtocolError,
    };
    if rule != Rule::V5_3_3_2_8 {
        assert_eq!(DecodeError::Violation(rule).reason_code(), code, "{rule:?}");
    }
}

fn malformed(bytes: &[u8], rule: Rule) {
    assert_violation(bytes, rule, ViolationKind::Malformed);
}

fn protocol_error(bytes: &[u8], rule: Rule) {
    assert_violation(bytes, rule, ViolationKind::Protocol);
}

/// A Variable Byte Integer.
fn vbi(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = u8::try_from(value % 128).unwrap();
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return out;
        }
    }
}

/// A Property Length followed by the properties.
fn block(properties: &[u8]) -> Vec<u8> {
    [vbi(properties.len()), properties.to_vec()].concat()
}

/// A QoS 0 PUBLISH to "t" with the given properties and payload "x".
fn publish_with(properties: &[u8]) -> Vec<u8> {
    packet(0x30, &[field(b"t"), block(properties), b"x".to_vec()].concat())
}

/// A 5.0 CONNECT, client identifier "c", with the given CONNECT properties.
fn connect_with(properties: &[u8]) -> Vec<u8> {
    let header = [&field(b"MQTT")[..], &[0x05, 0x02, 0x00, 0x3C]].concat();
    packet(0x10, &[header, block(properties), field(b"c")].concat())
}

/// A 5.0 CONNECT with a QoS 0 will to "w" that has the given will properties.
fn will_with(properties: &[u8]) -> Vec<u8> {
    let header = [&field(b"MQTT")[..], &[0x05, 0x06, 0x00, 0x3C, 0x00]].concat();
    packet(0x10, &[header, field(b"c"), block(properties), field(b"w"), field(b"bye")].concat())
}

fn connack_with(properties: &[u8]) -> Vec<u8> {
    packet(0x20, &[&[0x00, 0x00][..], &block(properties)].concat())
}

/// A SUBSCRIBE, packet identifier 1, with one filter and its options byte.
fn subscribe_with(properties: &[u8], filter: &[u8], options: u8) -> Vec<u8> {
    packet(0x82, &[&[0x00, 0x01][..], &block(properties), &field(filter), &[options]].concat())
}

const USER_PROPERTY: [u8; 7] = [0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'];

// Chapter 1: data representation.

#[test]
fn mqtt_1_5_4_1_ill_formed_utf8_is_malformed_in_every_5_0_string() {
    // An overlong '/', a surrogate and a lone continuation byte.
    for bad in [&[0xC0, 0xAF][..], &[0xED, 0xA0, 0x80], &[0x80]] {
        malformed(&packet(0x30, &[field(bad), vec![0x00], b"x".to_vec()].concat()), Rule::V5_1_5_4_1);
        let content_type = [&[0x03][..], &field(bad)].concat();
        malformed(&publish_with(&content_type), Rule::V5_1_5_4_1);
        let user = [&[0x26][..], &field(b"k"), &field(bad)].concat();
        malformed(&connack_with(&user), Rule::V5_1_5_4_1);
        let header = [&field(b"MQTT")[..], &[0x05, 0x02, 0x00, 0x3C, 0x00]].concat();
        malformed(&packet(0x10, &[header, field(bad)].concat()), Rule::V5_1_5_4_1);
    }
    // The same string in 3.1.1 breaks the 3.1.1 statement.
    let bytes = packet(0x30, &[field(&[0xC0, 0xAF]), b"x".to_vec()].concat());
    assert_eq!(decode_err_in(ProtocolVersion::V311, &bytes), DecodeError::Violation(Rule::Mqtt1_5_3_1));
}

#[test]
fn mqtt_1_5_4_2_null_character_is_malformed() {
    let user = [&[0x26][..], &field(b"k\0"), &field(b"v")].concat();
    malformed(&publish_with(&user), Rule::V5_1_5_4_2);
    let reason = [&[0x1F][..], &field(b"\0")].concat();
    malformed(&packet(0x40, &[&[0x00, 0x01, 0x80][..], &block(&reason)].concat()), Rule::V5_1_5_4_2);
    malformed(&subscribe_with(&[], b"a\0", 0x00), Rule::V5_1_5_4_2);
}

#[test]
fn mqtt_1_5_5_1_variable_byte_integer_of_five_bytes_is_malformed() {
    // A Property Length whose fourth byte still has its continuation bit set.
    let bytes = packet(0x30, &[&field(b"t")[..], &[0xFF, 0xFF, 0xFF, 0xFF, 0x7F], b"x"].concat());
    malformed(&bytes, Rule::V5_1_5_5_1);
    // A Subscription Identifier of five bytes.
    malformed(&publish_with(&[0x0B, 0x81, 0x81, 0x81, 0x81, 0x01]), Rule::V5_1_5_5_1);
    // A property identifier of five bytes.
    malformed(&publish_with(&[0x80, 0x80, 0x80, 0x80, 0x01]), Rule::V5_1_5_5_1);
}

// Section 2.2.2: properties.

#[test]
fn section_2_2_2_1_property_length_past_the_packet_is_malformed() {
    // The Property Length claims 10 bytes; 1 follows.
    malformed(&packet(0x30, &[&field(b"t")[..], &[0x0A, 0x01]].concat()), Rule::PropertyLengthInvalid);
    malformed(&packet(0x20, &[0x00, 0x00, 0x05]), Rule::PropertyLengthInvalid);
    malformed(&packet(0xE0, &[0x80, 0x7F]), Rule::PropertyLengthInvalid);
    malformed(&packet(0xF0, &[0x18, 0x02, 0x15]), Rule::PropertyLengthInvalid);
    // A property whose value runs past the Property Length: Content Type of 4 bytes in 3.
    let bytes = packet(0x30, &[&field(b"t")[..], &[0x04, 0x03, 0x00, 0x04, b'a', b'b', b'c', b'd']].concat());
    malformed(&bytes, Rule::PropertyLengthInvalid);
    // A u32 cut short.
    malformed(&connack_with(&[0x11, 0x00, 0x00]), Rule::PropertyLengthInvalid);
}

#[test]
fn section_2_2_2_2_property_not_allowed_in_the_packet_is_malformed() {
    // Identifiers table 2-4 does not define, in one byte and in two.
    for unknown in [&[0x00][..], &[0x04], &[0x7F], &[0x80, 0x01]] {
        malformed(&publish_with(unknown), Rule::PropertyNotAllowed);
    }
    // Defined identifiers in packets that do not allow them.
    malformed(&publish_with(&[0x24, 0x01]), Rule::PropertyNotAllowed); // Maximum QoS.
    malformed(&publish_with(&[0x1F, 0x00, 0x00]), Rule::PropertyNotAllowed); // Reason String.
    malformed(&connect_with(&[0x23, 0x00, 0x01]), Rule::PropertyNotAllowed); // Topic Alias.
    malformed(&connect_with(&[0x18, 0x00, 0x00, 0x00, 0x01]), Rule::PropertyNotAllowed); // Will Delay.
    malformed(&will_with(&[0x11, 0x00, 0x00, 0x00, 0x01]), Rule::PropertyNotAllowed); // Session Expiry.
    malformed(&connack_with(&[0x17, 0x01]), Rule::PropertyNotAllowed); // Request Problem Information.
    malformed(&packet(0x40, &[0x00, 0x01, 0x00, 0x02, 0x13, 0x00]), Rule::PropertyNotAllowed);
    malformed(&subscribe_with(&[0x1F, 0x00, 0x00], b"a", 0x00), Rule::PropertyNotAllowed);
    let unsubscribe = packet(0xA2, &[&[0x00, 0x01, 0x02, 0x0B, 0x01][..], &field(b"a")].concat());
    malformed(&unsubscribe, Rule::PropertyNotAllowed);
    malformed(&packet(0x90, &[0x00, 0x01, 0x02, 0x0B, 0x01, 0x00]), Rule::PropertyNotAllowed);
    malformed(&packet(0xB0, &[0x00, 0x01, 0x02, 0x0B, 0x01, 0x00]), Rule::PropertyNotAllowed);
    malformed(&packet(0xE0, &[0x00, 0x02, 0x15, 0x00]), Rule::PropertyNotAllowed);
    malformed(&packet(0xF0, &[0x18, 0x05, 0x11, 0x00, 0x00, 0x00, 0x00]), Rule::PropertyNotAllowed);
}

#[test]
fn section_2_2_2_2_a_property_given_twice_is_a_protocol_error() {
    let content_type = [0x03, 0x00, 0x01, b'a'];
    protocol_error(&publish_with(&[content_type, content_type].concat()), Rule::DuplicateProperty);
    protocol_error(&publish_with(&[0x23, 0x00, 0x01, 0x23, 0x00, 0x02]), Rule::DuplicateProperty);
    protocol_error(&connect_with(&[0x21, 0x00, 0x01, 0x21, 0x00, 0x01]), Rule::DuplicateProperty);
    protocol_error(&will_with(&[0x01, 0x00, 0x01, 0x00]), Rule::DuplicateProperty);
    protocol_error(&connack_with(&[0x24, 0x00, 0x24, 0x01]), Rule::DuplicateProperty);
    protocol_error(&subscribe_with(&[0x0B, 0x01, 0x0B, 0x02], b"a", 0x00), Rule::DuplicateProperty);
    let reason = [0x1F, 0x00, 0x00];
    let twice = block(&[reason, reason].concat());
    protocol_error(&packet(0x40, &[&[0x00, 0x01, 0x00][..], &twice].concat()), Rule::DuplicateProperty);
    protocol_error(&packet(0xE0, &[&[0x00][..], &twice].concat()), Rule::DuplicateProperty);
    protocol_error(&packet(0xF0, &[&[0x18][..], &twice].concat()), Rule::DuplicateProperty);

    // User Properties repeat anywhere, and Subscription Identifiers in PUBLISH.
    let users = [USER_PROPERTY, USER_PROPERTY].concat();
    let Packet::Publish(publish) =
        common::decode_one(&publish_with(&[&users[..], &[0x0B, 0x01, 0x0B, 0x02]].concat()), V5).unwrap()
    else {
        panic!()
    };
    let properties = publish.properties.unwrap();
    assert_eq!(properties.user_properties.len(), 2);
    assert_eq!(properties.subscription_identifiers, [NonZeroU32::MIN, NonZeroU32::new(2).unwrap()]);
    assert!(common::decode_one(&connect_with(&users), V5).is_ok());
}

// Section 2.4 and the reason code table of each packet.

#[test]
fn section_2_4_reason_code_not_allowed_in_the_packet_type_is_malformed() {
    malformed(&[0x20, 0x03, 0x00, 0x01, 0x00], Rule::InvalidReasonCode); // CONNACK: Granted QoS 1.
    malformed(&[0x20, 0x03, 0x00, 0x8E, 0x00], Rule::InvalidReasonCode); // CONNACK: Session taken over.
    malformed(&[0x40, 0x03, 0x00, 0x01, 0x92], Rule::InvalidReasonCode); // PUBACK: Packet Identifier not found.
    malformed(&[0x50, 0x03, 0x00, 0x01, 0x04], Rule::InvalidReasonCode); // PUBREC: Disconnect with Will.
    malformed(&[0x62, 0x03, 0x00, 0x01, 0x10], Rule::InvalidReasonCode); // PUBREL: No matching subscribers.
    malformed(&[0x70, 0x03, 0x00, 0x01, 0x80], Rule::InvalidReasonCode); // PUBCOMP: Unspecified error.
    malformed(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x11], Rule::InvalidReasonCode); // SUBACK: No subscription existed.
    malformed(&[0xB0, 0x04, 0x00, 0x01, 0x00, 0x02], Rule::InvalidReasonCode); // UNSUBACK: Granted QoS 2.
    malformed(&[0xE0, 0x01, 0x84], Rule::InvalidReasonCode); // DISCONNECT: Unsupported Protocol Version.
    malformed(&[0xE0, 0x01, 0x18], Rule::InvalidReasonCode); // DISCONNECT: Continue authentication.
    malformed(&[0xF0, 0x01, 0x80], Rule::InvalidReasonCode); // AUTH: Unspecified error.
                                                             // Values that no table defines.
    for code in [0x03, 0x05, 0x7F, 0xA3, 0xFF] {
        malformed(&[0x40, 0x03, 0x00, 0x01, code], Rule::InvalidReasonCode);
        malformed(&[0xE0, 0x01, code], Rule::InvalidReasonCode);
    }
}

// Property values.

#[test]
fn section_3_1_2_11_3_receive_maximum_0_is_a_protocol_error() {
    protocol_error(&connect_with(&[0x21, 0x00, 0x00]), Rule::ReceiveMaximumZero);
    protocol_error(&connack_with(&[0x21, 0x00, 0x00]), Rule::ReceiveMaximumZero);
}

#[test]
fn section_3_1_2_11_4_maximum_packet_size_0_is_a_protocol_error() {
    protocol_error(&connect_with(&[0x27, 0x00, 0x00, 0x00, 0x00]), Rule::MaximumPacketSizeZero);
    protocol_error(&connack_with(&[0x27, 0x00, 0x00, 0x00, 0x00]), Rule::MaximumPacketSizeZero);
}

#[test]
fn section_3_3_2_3_2_payload_format_indicator_other_than_0_or_1_is_a_protocol_error() {
    for value in [0x02, 0xFF] {
        protocol_error(&publish_with(&[0x01, value]), Rule::PayloadFormatIndicatorInvalid);
        protocol_error(&will_with(&[0x01, value]), Rule::PayloadFormatIndicatorInvalid);
    }
}

#[test]
fn section_3_2_2_3_4_maximum_qos_other_than_0_or_1_is_a_protocol_error() {
    // QoS 2 is what an absent Maximum QoS means; it is not a wire value.
    for value in [0x02, 0x03, 0xFF] {
        protocol_error(&connack_with(&[0x24, value]), Rule::MaximumQoSInvalid);
    }
}

#[test]
fn section_3_1_2_11_7_yes_or_no_property_other_than_0_or_1_is_a_protocol_error() {
    protocol_error(&connect_with(&[0x17, 0x02]), Rule::YesNoPropertyInvalid);
    protocol_error(&connect_with(&[0x19, 0xFF]), Rule::YesNoPropertyInvalid);
    for id in [0x25, 0x28, 0x29, 0x2A] {
        protocol_error(&connack_with(&[id, 0x02]), Rule::YesNoPropertyInvalid);
    }
}

#[test]
fn section_3_1_2_11_10_authentication_data_without_a_method_is_a_protocol_error() {
    protocol_error(&connect_with(&[0x16, 0x00, 0x01, 0x2A]), Rule::AuthenticationDataWithoutMethod);
    let with_method = [&[0x16, 0x00, 0x01, 0x2A, 0x15][..], &field(b"m")].concat();
    assert!(common::decode_one(&connect_with(&with_method), V5).is_ok());
}

#[test]
fn mqtt_3_3_2_8_topic_alias_0_is_a_protocol_error() {
    assert_violation(&publish_with(&[0x23, 0x00, 0x00]), Rule::V5_3_3_2_8, ViolationKind::Protocol);
    assert_eq!(DecodeError::Violation(Rule::V5_3_3_2_8).reason_code(), ReasonCode::TopicAliasInvalid);
}

#[test]
fn mqtt_3_3_2_14_response_topic_with_wildcard_is_a_protocol_error() {
    for topic in [&b"a/+"[..], b"#", b"a/#"] {
        let response_topic = [&[0x08][..], &field(topic)].concat();
        protocol_error(&publish_with(&response_topic), Rule::V5_3_3_2_14);
        protocol_error(&will_with(&response_topic), Rule::V5_3_3_2_14);
    }
    // A Response Topic is a topic name, so it is not empty either.
    let empty = [0x08, 0x00, 0x00];
    assert_eq!(decode_err_in(V5, &publish_with(&empty)), DecodeError::Violation(Rule::EmptyTopicName));
    assert_eq!(DecodeError::Violation(Rule::EmptyTopicName).reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn section_3_3_2_3_4_empty_topic_without_topic_alias_is_a_protocol_error() {
    let bytes = packet(0x30, &[field(b""), vec![0x00], b"x".to_vec()].concat());
    assert_eq!(decode_err_in(V5, &bytes), DecodeError::Violation(Rule::EmptyTopicName));
    assert_eq!(DecodeError::Violation(Rule::EmptyTopicName).reason_code(), ReasonCode::ProtocolError);
    // Other properties do not stand in for a Topic Alias.
    let bytes = packet(0x30, &[field(b""), block(&USER_PROPERTY), b"x".to_vec()].concat());
    assert_eq!(decode_err_in(V5, &bytes), DecodeError::Violation(Rule::EmptyTopicName));
    // With a Topic Alias it is accepted, and a non-empty topic must still be a valid name.
    assert!(common::decode_one(&packet(0x30, &[field(b""), block(&[0x23, 0x00, 0x01])].concat()), V5).is_ok());
    let wildcard = packet(0x30, &[field(b"a/#"), block(&[0x23, 0x00, 0x01])].concat());
    assert_eq!(decode_err_in(V5, &wildcard), DecodeError::Violation(Rule::Mqtt3_3_2_2));
}

#[test]
fn section_3_8_2_1_2_subscription_identifier_0_is_a_protocol_error() {
    protocol_error(&subscribe_with(&[0x0B, 0x00], b"a", 0x00), Rule::SubscriptionIdentifierZero);
    protocol_error(&publish_with(&[0x0B, 0x00]), Rule::SubscriptionIdentifierZero);
    // A 0 written in more bytes than it needs is still 0.
    protocol_error(&publish_with(&[0x0B, 0x80, 0x00]), Rule::SubscriptionIdentifierZero);
}

#[test]
fn mqtt_3_3_4_6_a_subscription_identifier_from_a_client_is_left_to_the_broker() {
    // The decoder does not know who sent the PUBLISH, so it reads the identifier; the broker
    // refuses it from a client.
    let Packet::Publish(publish) = common::decode_one(&publish_with(&[0x0B, 0x05]), V5).unwrap() else {
        panic!()
    };
    assert_eq!(publish.properties.unwrap().subscription_identifiers, [NonZeroU32::new(5).unwrap()]);
}

// SUBSCRIBE options and acknowledgements.

#[test]
fn mqtt_3_8_3_5_reserved_subscription_option_bits_are_malformed() {
    for options in [0x40, 0x80, 0xC0, 0x41] {
        malformed(&subscribe_with(&[], b"a/b", options), Rule::V5_3_8_3_5);
    }
}

#[test]
fn section_3_8_3_1_retain_handling_3_is_a_protocol_error() {
    protocol_error(&subscribe_with(&[], b"a/b", 0x30), Rule::RetainHandling3);
    // And QoS 3 is one too, in 5.0 as 3.1.1's reason code mapping already says.
    assert_eq!(
        decode_err_in(V5, &subscribe_with(&[], b"a/b", 0x03)),
        DecodeError::Violation(Rule::RequestedQoS3)
    );
    assert_eq!(Rule::RequestedQoS3.reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn mqtt_3_8_3_4_no_local_on_a_shared_subscription_is_a_protocol_error() {
    protocol_error(&subscribe_with(&[], b"$share/g/a/b", 0x04), Rule::V5_3_8_3_4);
    // Without No Local, or on a filter that is not shared, it is fine.
    assert!(common::decode_one(&subscribe_with(&[], b"$share/g/a/b", 0x00), V5).is_ok());
    assert!(common::decode_one(&subscribe_with(&[], b"share/g/a", 0x04), V5).is_ok());
}

#[test]
fn section_3_11_3_unsuback_without_reason_codes_is_a_protocol_error() {
    protocol_error(&[0xB0, 0x03, 0x00, 0x01, 0x00], Rule::UnsubAckWithoutReasonCodes);
    protocol_error(&[0x90, 0x03, 0x00, 0x01, 0x00], Rule::SubAckWithoutReturnCodes);
}

#[test]
fn section_3_8_3_subscribe_and_unsubscribe_without_filters_are_protocol_errors() {
    protocol_error(&packet(0x82, &[0x00, 0x01, 0x00]), Rule::Mqtt3_8_3_3);
    protocol_error(&packet(0xA2, &[0x00, 0x01, 0x00]), Rule::Mqtt3_10_3_2);
}

// Lengths of the short forms.

#[test]
fn section_2_2_3_truncated_and_trailing_5_0_bodies_are_malformed() {
    malformed(&[0x40, 0x01, 0x00], Rule::PacketTooShort);
    malformed(&[0x20, 0x01, 0x00], Rule::PacketTooShort);
    malformed(&[0x20, 0x02, 0x00, 0x00], Rule::PacketTooShort);
    malformed(&[0x90, 0x02, 0x00, 0x01], Rule::PacketTooShort);
    malformed(&[0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00], Rule::TrailingBytes);
    malformed(&[0xE0, 0x03, 0x00, 0x00, 0x00], Rule::TrailingBytes);
    malformed(&[0xF0, 0x03, 0x00, 0x00, 0x00], Rule::TrailingBytes);
    malformed(&[0x20, 0x04, 0x00, 0x00, 0x00, 0x00], Rule::TrailingBytes);
    malformed(&[0xC0, 0x01, 0x00], Rule::RemainingLengthNotZero);
    // The packet identifier 0 is refused in 5.0 too.
    malformed(&[0x40, 0x02, 0x00, 0x00], Rule::Mqtt2_3_1_1);
    // And the CONNACK flags.
    malformed(&[0x20, 0x03, 0x02, 0x00, 0x00], Rule::Mqtt3_2_2_1);
}

#[test]
fn auth_is_a_reserved_type_in_3_1_1_and_its_flags_are_checked() {
    assert_eq!(
        decode_err_in(ProtocolVersion::V311, &[0xF0, 0x00]),
        DecodeError::Violation(Rule::ReservedPacketType)
    );
    assert_eq!(decode_err_in(V5, &[0xF1, 0x00]), DecodeError::Violation(Rule::ReservedPacketType));
    assert_eq!(decode_err_in(V5, &[0x00, 0x00]), DecodeError::Violation(Rule::ReservedPacketType));
}

// encode_within: the receiver's Maximum Packet Size.

fn puback(reason_string: Option<&'static str>, users: usize) -> Packet {
    Packet::PubAck(PublishResponse {
        packet_id: PacketId::new(1).unwrap(),
        reason_code: ReasonCode::QuotaExceeded,
        properties: Some(Box::new(PublishResponseProperties {
            reason_string: reason_string.map(text),
            user_properties: vec![(text("k"), text("v")); users],
        })),
    })
}

fn encode_within(packet: &Packet, max: usize) -> Result<Vec<u8>, EncodeError> {
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    let result = packet.encode_within(V5, max, &mut buf);
    match result {
        Ok(()) => {
            assert_eq!(buf[..2], [0xC0, 0x00]);
            Ok(buf[2..].to_vec())
        }
        Err(err) => {
            assert_eq!(buf[..], [0xC0, 0x00], "a refused packet leaves the buffer as it was");
            Err(err)
        }
    }
}

#[test]
fn encode_within_writes_the_whole_packet_when_it_fits() {
    let packet = puback(Some("slow down"), 2);
    let size = packet.size(V5);
    let mut whole = BytesMut::new();
    packet.encode(V5, &mut whole).unwrap();
    assert_eq!(encode_within(&packet, size).unwrap(), whole[..]);
    assert_eq!(encode_within(&packet, usize::MAX).unwrap(), whole[..]);
}

#[test]
fn mqtt_3_4_2_2_encode_within_leaves_out_the_reason_string_first() {
    let packet = puback(Some("slow down"), 2);
    let size = packet.size(V5);
    let written = encode_within(&packet, size - 1).unwrap();
    assert_eq!(written, encode_within(&puback(None, 2), usize::MAX).unwrap());
    assert_eq!(written.len(), size - 12); // Identifier, length prefix and 9 bytes of reason string.
}

#[test]
fn mqtt_3_4_2_3_encode_within_then_leaves_out_the_user_properties() {
    let packet = puback(Some("slow down"), 2);
    let without_reason = puback(None, 2).size(V5);
    // Short of room even without the Reason String: the User Properties go too, and a PUBACK
    // with neither is written as a reason code alone.
    let written = encode_within(&packet, without_reason - 1).unwrap();
    assert_eq!(written, [0x40, 0x03, 0x00, 0x01, 0x97]);
    assert_eq!(encode_within(&packet, 5).unwrap(), written);
}

#[test]
fn encode_within_refuses_what_does_not_fit_even_trimmed() {
    let packet = puback(Some("slow down"), 2);
    assert_eq!(encode_within(&packet, 4), Err(EncodeError::ExceedsMaximumPacketSize { size: 5, max: 4 }));
    // A packet with nothing to leave out.
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(ConnAckProperties {
            assigned_client_identifier: Some(text("generated-id")),
            reason_string: Some(text("welcome")),
            ..ConnAckProperties::default()
        })),
    });
    let trimmed = connack.size(V5) - 10;
    assert_eq!(encode_within(&connack, trimmed).unwrap().len(), trimmed);
    assert_eq!(
        encode_within(&connack, trimmed - 1),
        Err(EncodeError::ExceedsMaximumPacketSize { size: trimmed, max: trimmed - 1 })
    );
}

#[test]
fn mqtt_3_14_2_3_encode_within_trims_disconnect_suback_and_auth_too() {
    let disconnect = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(DisconnectProperties {
            reason_string: Some(text("bye")),
            user_properties: vec![(text("k"), text("v"))],
            ..DisconnectProperties::default()
        })),
    });
    // Trimmed of both, a normal disconnection is the two-byte short form.
    assert_eq!(encode_within(&disconnect, 2).unwrap(), [0xE0, 0x00]);
    let suback = Packet::SubAck(SubAck {
        packet_id: PacketId::new(1).unwrap(),
        reason_codes: vec![ReasonCode::GrantedQoS1],
        properties: Some(Box::new(SubAckProperties {
            reason_string: Some(text("why")),
            user_properties: vec![(text("k"), text("v"))],
        })),
    });
    assert_eq!(encode_within(&suback, 6).unwrap(), [0x90, 0x04, 0x00, 0x01, 0x00, 0x01]);
    let auth = Packet::Auth(Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Some(Box::new(AuthProperties {
            authentication_method: Some(text("m")),
            reason_string: Some(text("more")),
            ..AuthProperties::default()
        })),
    });
    assert_eq!(encode_within(&auth, 8).unwrap(), [0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, b'm']);
}

#[test]
fn encode_within_never_trims_a_publish_or_a_subscribe() {
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: text("t"),
        packet_id: None,
        payload: Bytes::from_static(b"payload"),
        properties: Some(Box::new(PublishProperties {
            user_properties: vec![(text("k"), text("v"))],
            ..PublishProperties::default()
        })),
    });
    let size = publish.size(V5);
    assert_eq!(
        encode_within(&publish, size - 1),
        Err(EncodeError::ExceedsMaximumPacketSize { size, max: size - 1 })
    );
    assert_eq!(encode_within(&publish, size).unwrap().len(), size);
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        filters: vec![(text("a"), SubscriptionOptions::default())],
        properties: Some(Box::new(SubscribeProperties {
            user_properties: vec![(text("k"), text("v"))],
            ..SubscribeProperties::default()
        })),
    });
    let size = subscribe.size(V5);
    assert_eq!(
        encode_within(&subscribe, size - 1),
        Err(EncodeError::ExceedsMaximumPacketSize { size, max: size - 1 })
    );
    // In 3.1.1 there is nothing to leave out.
    let mut buf = BytesMut::new();
    let size = publish.size(ProtocolVersion::V311);
    assert_eq!(
        publish.encode_within(ProtocolVersion::V311, size - 1, &mut buf),
        Err(EncodeError::ExceedsMaximumPacketSize { size, max: size - 1 })
    );
    assert!(buf.is_empty());
    publish.encode_within(ProtocolVersion::V311, size, &mut buf).unwrap();
    assert_eq!(buf.len(), size);
}

// Values the encoder cannot write.

#[test]
fn section_3_3_2_3_8_subscription_identifier_above_268435455_is_not_encoded() {
    let too_large = NonZeroU32::new(268_435_456).unwrap();
    let outgoing = OutgoingPublish {
        header: PublishHeader::default(),
        topic: "t",
        payload: b"x",
        properties: None,
        message_expiry_interval: None,
        topic_alias: None,
        subscription_identifiers: &[NonZeroU32::MIN, too_large],
    };
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    assert_eq!(outgoing.encode(V5, &mut buf), Err(EncodeError::SubscriptionIdentifierTooLarge(268_435_456)));
    assert_eq!(buf[..], [0xC0, 0x00]);
    let largest = [NonZeroU32::new(268_435_455).unwrap()];
    let outgoing = OutgoingPublish { subscription_identifiers: &largest, ..outgoing };
    outgoing.encode(V5, &mut buf).unwrap();
    assert_eq!(buf.len(), 2 + outgoing.size(V5));
    assert_eq!(buf[2 + 5..2 + 11], [0x05, 0x0B, 0xFF, 0xFF, 0xFF, 0x7F]);
}

#[test]
fn a_field_longer_than_65535_bytes_leaves_the_buffer_unchanged_in_5_0() {
    let long = ByteString::from("r".repeat(65_536));
    let disconnect = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(DisconnectProperties { reason_string: Some(long), ..Default::default() })),
    });
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    assert_eq!(disconnect.encode(V5, &mut buf), Err(EncodeError::FieldTooLong(65_536)));
    assert_eq!(buf[..], [0xC0, 0x00]);
    // encode_within leaves the Reason String out before it is ever written.
    disconnect.encode_within(V5, 1024, &mut buf).unwrap();
    assert_eq!(buf[..], [0xC0, 0x00, 0xE0, 0x00]);
}
