//! Byte-exact vectors of valid packets for the MQTT 3.1 and 3.1.1 codec, checked through the
//! crate's public API.
//!
//! Decodes and encodes one or more vectors for each of the 14 control packets, built from the
//! non-normative examples of the OASIS MQTT 3.1.1 specification where it gives one, then checks
//! the valid topic filters of section 4.7, remaining-length boundaries and resumable decoding.
//! Packets the codec must refuse are in `violations.rs`.

// The helpers unwrap: a failure there is a test failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use common::{
    connect_with, decode_one, field, packet, publish_with_topic, subscribe_with_filter, text,
    unsubscribe_with_filter, NO_LIMIT,
};
use iothub_protocol::{
    check, decode, encode_publish, publish_size, ConnAck, Connect, Disconnect, FixedHeader, Packet, PacketId,
    ProtocolVersion, Publish, PublishHeader, PublishResponse, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will, MAX_REMAINING_LENGTH,
};

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn encode_one(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).unwrap();
    buf.to_vec()
}

/// Checks a vector both ways: the bytes decode to the packet, and the packet encodes to exactly
/// the bytes, whose length `encoded_size` predicts.
fn assert_vector_in(version: ProtocolVersion, bytes: &[u8], packet: &Packet) {
    assert_eq!(decode_one(bytes, version).unwrap(), *packet, "decoding {bytes:02X?}");
    assert_eq!(encode_one(packet, version), bytes, "encoding {packet:?}");
    assert_eq!(packet.encoded_size(), bytes.len(), "encoded_size of {packet:?}");
}

fn assert_vector(bytes: &[u8], packet: &Packet) {
    assert_vector_in(ProtocolVersion::V311, bytes, packet);
}

// Vectors, one function per packet shape, shared by the per-type tests and the resumability tests.

/// CONNECT with the variable header of the specification's example (section 3.1.2.10: flags 0xCE,
/// keep-alive 10) and a payload carrying every optional field.
fn connect_full() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0x10, 0x24, // CONNECT, remaining length 36.
        0x00, 0x04, b'M', b'Q', b'T', b'T', // Protocol name "MQTT".
        0x04, // Protocol level 4.
        0xCE, // User name, password, will QoS 1, will flag and clean session.
        0x00, 0x0A, // Keep-alive of 10 seconds.
        0x00, 0x02, b'c', b'1', // Client identifier.
        0x00, 0x03, b'a', b'/', b'b', // Will topic.
        0x00, 0x03, b'b', b'y', b'e', // Will message.
        0x00, 0x04, b'u', b's', b'e', b'r', // User name.
        0x00, 0x04, b'p', b'a', b's', b's', // Password.
    ];
    let connect = Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 10,
        client_id: text("c1"),
        will: Some(Will {
            topic: text("a/b"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
        }),
        username: Some(text("user")),
        password: Some(Bytes::from_static(b"pass")),
        properties: None,
    };
    (bytes, Packet::Connect(Box::new(connect)))
}

/// CONNECT with an empty client identifier and a retained QoS 2 will with an empty message.
fn connect_retained_will() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0x10, 0x11, // CONNECT, remaining length 17.
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4.
        0x36, // Will retain, will QoS 2, will flag and clean session.
        0x00, 0x00, // Keep-alive off.
        0x00, 0x00, // Empty client identifier.
        0x00, 0x01, b't', // Will topic "t".
        0x00, 0x00, // Empty will message.
    ];
    let connect = Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 0,
        client_id: text(""),
        will: Some(Will {
            topic: text("t"),
            payload: Bytes::new(),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: None,
        }),
        username: None,
        password: None,
        properties: None,
    };
    (bytes, Packet::Connect(Box::new(connect)))
}

/// CONNECT with a user name and no password, and clean session off.
fn connect_username_only() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0x10, 0x10, // CONNECT, remaining length 16.
        0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, // "MQTT", level 4.
        0x80, // User name only.
        0x00, 0x3C, // Keep-alive of 60 seconds.
        0x00, 0x01, b'x', // Client identifier.
        0x00, 0x01, b'u', // User name.
    ];
    let connect = Connect {
        protocol: ProtocolVersion::V311,
        clean_start: false,
        keep_alive: 60,
        client_id: text("x"),
        will: None,
        username: Some(text("u")),
        password: None,
        properties: None,
    };
    (bytes, Packet::Connect(Box::new(connect)))
}

/// CONNECT for MQTT 3.1: protocol name "MQIsdp", level 3.
fn connect_mqisdp() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0x10, 0x10, // CONNECT, remaining length 16.
        0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', // Protocol name "MQIsdp".
        0x03, // Protocol level 3.
        0x02, // Clean session.
        0x00, 0x3C, // Keep-alive of 60 seconds.
        0x00, 0x02, b'c', b'1', // Client identifier.
    ];
    let connect = Connect {
        protocol: ProtocolVersion::V31,
        clean_start: true,
        keep_alive: 60,
        client_id: text("c1"),
        will: None,
        username: None,
        password: None,
        properties: None,
    };
    (bytes, Packet::Connect(Box::new(connect)))
}

fn connack(session_present: bool, return_code: u8, reason_code: ReasonCode) -> (Vec<u8>, Packet) {
    let bytes = vec![0x20, 0x02, u8::from(session_present), return_code];
    (bytes, Packet::ConnAck(ConnAck { session_present, reason_code, properties: None }))
}

/// PUBLISH to "a/b" with payload "hello"; the variable header is the specification's example of
/// section 3.3.2 (topic "a/b", packet identifier 10) whenever QoS is above 0.
fn publish(first_byte: u8, dup: bool, qos: QoS, retain: bool) -> (Vec<u8>, Packet) {
    let mut bytes = vec![first_byte, 0x00, 0x00, 0x03, b'a', b'/', b'b'];
    if qos != QoS::AtMostOnce {
        bytes.extend_from_slice(&[0x00, 0x0A]);
    }
    bytes.extend_from_slice(b"hello");
    bytes[1] = u8::try_from(bytes.len() - 2).unwrap();
    let publish = Publish {
        dup,
        qos,
        retain,
        topic: text("a/b"),
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(10)),
        payload: Bytes::from_static(b"hello"),
        properties: None,
    };
    (bytes, Packet::Publish(publish))
}

/// A retained QoS 0 PUBLISH with an empty payload, which clears a retained message.
fn publish_empty_retained() -> (Vec<u8>, Packet) {
    let bytes = vec![0x31, 0x05, 0x00, 0x03, b'a', b'/', b'b'];
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: text("a/b"),
        packet_id: None,
        payload: Bytes::new(),
        properties: None,
    };
    (bytes, Packet::Publish(publish))
}

/// PUBLISH whose topic is the string of the specification's UTF-8 example (section 1.5.3):
/// "A" followed by U+2A6D4.
fn publish_utf8_example_topic() -> (Vec<u8>, Packet) {
    let bytes = vec![0x30, 0x07, 0x00, 0x05, 0x41, 0xF0, 0xAA, 0x9B, 0x94];
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: text("A\u{2A6D4}"),
        packet_id: None,
        payload: Bytes::new(),
        properties: None,
    };
    (bytes, Packet::Publish(publish))
}

fn puback() -> (Vec<u8>, Packet) {
    (vec![0x40, 0x02, 0x00, 0x0A], Packet::PubAck(PublishResponse::new(pid(10))))
}

fn pubrec() -> (Vec<u8>, Packet) {
    (vec![0x50, 0x02, 0x00, 0x0A], Packet::PubRec(PublishResponse::new(pid(10))))
}

fn pubrel() -> (Vec<u8>, Packet) {
    (vec![0x62, 0x02, 0x00, 0x0A], Packet::PubRel(PublishResponse::new(pid(10))))
}

fn pubcomp() -> (Vec<u8>, Packet) {
    (vec![0x70, 0x02, 0x00, 0x0A], Packet::PubComp(PublishResponse::new(pid(10))))
}

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions { qos, ..SubscriptionOptions::default() }
}

/// SUBSCRIBE with the specification's payload example of section 3.8.3 ("a/b" at QoS 1, "c/d" at
/// QoS 2) and packet identifier 10.
fn subscribe_spec_example() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0x82, 0x0E, // SUBSCRIBE, remaining length 14.
        0x00, 0x0A, // Packet identifier 10.
        0x00, 0x03, b'a', b'/', b'b', 0x01, // "a/b", requested QoS 1.
        0x00, 0x03, b'c', b'/', b'd', 0x02, // "c/d", requested QoS 2.
    ];
    let subscribe = Subscribe {
        packet_id: pid(10),
        filters: vec![(text("a/b"), options(QoS::AtLeastOnce)), (text("c/d"), options(QoS::ExactlyOnce))],
        properties: None,
    };
    (bytes, Packet::Subscribe(subscribe))
}

/// SUBSCRIBE with three filters, one of them using both wildcards.
fn subscribe_wildcards() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0x82, 0x1B, // SUBSCRIBE, remaining length 27.
        0x01, 0x02, // Packet identifier 258.
        0x00, 0x03, b'a', b'/', b'b', 0x01, // "a/b", requested QoS 1.
        0x00, 0x03, b'c', b'/', b'd', 0x02, // "c/d", requested QoS 2.
        0x00, 0x0A, b'+', b'/', b't', b'e', b'n', b'n', b'i', b's', b'/', b'#', 0x00, // QoS 0.
    ];
    let subscribe = Subscribe {
        packet_id: pid(258),
        filters: vec![
            (text("a/b"), options(QoS::AtLeastOnce)),
            (text("c/d"), options(QoS::ExactlyOnce)),
            (text("+/tennis/#"), options(QoS::AtMostOnce)),
        ],
        properties: None,
    };
    (bytes, Packet::Subscribe(subscribe))
}

/// SUBACK with the specification's payload example of section 3.9.3: QoS 0 granted, QoS 2
/// granted, failure (0x80).
fn suback_spec_example() -> (Vec<u8>, Packet) {
    let bytes = vec![0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80];
    let suback = SubAck {
        packet_id: pid(10),
        reason_codes: vec![ReasonCode::Success, ReasonCode::GrantedQoS2, ReasonCode::UnspecifiedError],
        properties: None,
    };
    (bytes, Packet::SubAck(suback))
}

/// UNSUBSCRIBE with the specification's payload example of section 3.10.3 ("a/b", "c/d").
fn unsubscribe_spec_example() -> (Vec<u8>, Packet) {
    let bytes = vec![
        0xA2, 0x0C, // UNSUBSCRIBE, remaining length 12.
        0x00, 0x0A, // Packet identifier 10.
        0x00, 0x03, b'a', b'/', b'b', // "a/b".
        0x00, 0x03, b'c', b'/', b'd', // "c/d".
    ];
    let unsubscribe =
        Unsubscribe { packet_id: pid(10), filters: vec![text("a/b"), text("c/d")], properties: None };
    (bytes, Packet::Unsubscribe(unsubscribe))
}

fn unsuback() -> (Vec<u8>, Packet) {
    let unsuback = UnsubAck { packet_id: pid(10), reason_codes: Vec::new(), properties: None };
    (vec![0xB0, 0x02, 0x00, 0x0A], Packet::UnsubAck(unsuback))
}

fn pingreq() -> (Vec<u8>, Packet) {
    (vec![0xC0, 0x00], Packet::PingReq)
}

fn pingresp() -> (Vec<u8>, Packet) {
    (vec![0xD0, 0x00], Packet::PingResp)
}

fn disconnect() -> (Vec<u8>, Packet) {
    (vec![0xE0, 0x00], Packet::Disconnect(Disconnect::default()))
}

/// Every 3.1.1 vector of this file, covering all 14 packet types.
fn all_v311_vectors() -> Vec<(Vec<u8>, Packet)> {
    vec![
        connect_full(),
        connect_retained_will(),
        connect_username_only(),
        connack(false, 0x00, ReasonCode::Success),
        connack(true, 0x00, ReasonCode::Success),
        publish(0x30, false, QoS::AtMostOnce, false),
        publish(0x32, false, QoS::AtLeastOnce, false),
        publish(0x3D, true, QoS::ExactlyOnce, true),
        publish_empty_retained(),
        publish_utf8_example_topic(),
        puback(),
        pubrec(),
        pubrel(),
        pubcomp(),
        subscribe_spec_example(),
        subscribe_wildcards(),
        suback_spec_example(),
        unsubscribe_spec_example(),
        unsuback(),
        pingreq(),
        pingresp(),
        disconnect(),
    ]
}

#[test]
fn connect_with_will_username_and_password() {
    let (bytes, packet) = connect_full();
    assert_vector(&bytes, &packet);
}

#[test]
fn connect_with_retained_qos2_will_and_empty_client_id() {
    let (bytes, packet) = connect_retained_will();
    assert_vector(&bytes, &packet);
}

#[test]
fn connect_with_username_and_no_password() {
    let (bytes, packet) = connect_username_only();
    assert_vector(&bytes, &packet);
}

#[test]
fn connect_mqisdp_level_3_is_mqtt_3_1() {
    let (bytes, packet) = connect_mqisdp();
    assert_vector_in(ProtocolVersion::V31, &bytes, &packet);
    // A CONNECT carries its own version, so the connection's version does not change its bytes.
    assert_vector_in(ProtocolVersion::V311, &bytes, &packet);
}

#[test]
fn connect_password_is_binary_data() {
    // The password is Binary Data (section 3.1.3.5), so U+0000 and invalid UTF-8 are allowed in it.
    let mut payload = field(b"c");
    payload.extend(field(b"u"));
    payload.extend(field(&[0x00, 0xFF, 0xED, 0xA0, 0x80]));
    let bytes = connect_with(0xC0, &payload);
    let Packet::Connect(connect) = decode_one(&bytes, ProtocolVersion::V311).unwrap() else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.password.as_deref(), Some(&[0x00, 0xFF, 0xED, 0xA0, 0x80][..]));
    assert_eq!(encode_one(&Packet::Connect(connect), ProtocolVersion::V311), bytes);
}

#[test]
fn connack_return_codes_0_to_5() {
    let codes = [
        (0x00, ReasonCode::Success),
        (0x01, ReasonCode::UnsupportedProtocolVersion),
        (0x02, ReasonCode::ClientIdentifierNotValid),
        (0x03, ReasonCode::ServerUnavailable),
        (0x04, ReasonCode::BadUserNameOrPassword),
        (0x05, ReasonCode::NotAuthorized),
    ];
    for (code, reason_code) in codes {
        let (bytes, packet) = connack(false, code, reason_code);
        assert_vector(&bytes, &packet);
    }
    let (bytes, packet) = connack(true, 0x00, ReasonCode::Success);
    assert_vector(&bytes, &packet);
}

#[test]
fn connack_encodes_5_0_reason_codes_as_the_closest_3_1_1_return_code() {
    let cases = [
        (ReasonCode::Banned, 0x05),
        (ReasonCode::BadAuthenticationMethod, 0x04),
        (ReasonCode::ServerBusy, 0x03),
        (ReasonCode::UnspecifiedError, 0x03),
    ];
    for (reason_code, return_code) in cases {
        let packet = Packet::ConnAck(ConnAck { session_present: false, reason_code, properties: None });
        assert_eq!(encode_one(&packet, ProtocolVersion::V311), [0x20, 0x02, 0x00, return_code]);
    }
}

#[test]
fn publish_qos0() {
    let (bytes, packet) = publish(0x30, false, QoS::AtMostOnce, false);
    assert_eq!(bytes, [0x30, 0x0A, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o']);
    assert_vector(&bytes, &packet);
}

#[test]
fn publish_qos0_retained_with_empty_payload() {
    let (bytes, packet) = publish_empty_retained();
    assert_vector(&bytes, &packet);
}

#[test]
fn publish_qos1_with_the_specification_variable_header() {
    let (bytes, packet) = publish(0x32, false, QoS::AtLeastOnce, false);
    assert_eq!(bytes[..9], [0x32, 0x0C, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A]);
    assert_vector(&bytes, &packet);
}

#[test]
fn publish_qos1_dup() {
    let (bytes, packet) = publish(0x3A, true, QoS::AtLeastOnce, false);
    assert_vector(&bytes, &packet);
}

#[test]
fn publish_qos2_retained() {
    let (bytes, packet) = publish(0x35, false, QoS::ExactlyOnce, true);
    assert_vector(&bytes, &packet);
}

#[test]
fn publish_qos2_dup_retained() {
    let (bytes, packet) = publish(0x3D, true, QoS::ExactlyOnce, true);
    assert_vector(&bytes, &packet);
}

#[test]
fn publish_topic_from_the_utf8_example_of_section_1_5_3() {
    let (bytes, packet) = publish_utf8_example_topic();
    assert_vector(&bytes, &packet);
}

#[test]
fn mqtt_1_5_3_3_byte_order_mark_is_kept_in_a_topic() {
    // [MQTT-1.5.3-3]: 0xEF 0xBB 0xBF is U+FEFF and must not be skipped or stripped.
    let bytes = publish_with_topic(&[0xEF, 0xBB, 0xBF, b'a']);
    let Packet::Publish(publish) = decode_one(&bytes, ProtocolVersion::V311).unwrap() else {
        panic!("not a PUBLISH");
    };
    assert_eq!(&publish.topic[..], "\u{FEFF}a");
}

#[test]
fn publish_payload_is_opaque_bytes() {
    let mut body = field(b"t");
    body.extend_from_slice(&[0x00, 0xFF, 0xED, 0xA0, 0x80]);
    let bytes = packet(0x30, &body);
    let Packet::Publish(publish) = decode_one(&bytes, ProtocolVersion::V311).unwrap() else {
        panic!("not a PUBLISH");
    };
    assert_eq!(&publish.payload[..], [0x00, 0xFF, 0xED, 0xA0, 0x80]);
}

#[test]
fn encode_publish_writes_the_same_bytes_as_packet_encode() {
    for (first_byte, dup, qos, retain) in [
        (0x30, false, QoS::AtMostOnce, false),
        (0x32, false, QoS::AtLeastOnce, false),
        (0x3D, true, QoS::ExactlyOnce, true),
    ] {
        let (bytes, _) = publish(first_byte, dup, qos, retain);
        let packet_id = (qos != QoS::AtMostOnce).then(|| pid(10));
        let mut buf = BytesMut::new();
        encode_publish(&mut buf, &PublishHeader { dup, qos, retain, packet_id }, "a/b", b"hello").unwrap();
        assert_eq!(buf[..], bytes[..]);
        assert_eq!(publish_size("a/b", qos, 5), bytes.len());
    }
}

#[test]
fn puback_pubrec_pubrel_pubcomp() {
    for (bytes, packet) in [puback(), pubrec(), pubrel(), pubcomp()] {
        assert_vector(&bytes, &packet);
    }
}

#[test]
fn publish_responses_carry_the_largest_packet_identifier() {
    let packet = Packet::PubAck(PublishResponse::new(pid(u16::MAX)));
    assert_vector(&[0x40, 0x02, 0xFF, 0xFF], &packet);
}

#[test]
fn subscribe_with_the_specification_payload_example() {
    let (bytes, packet) = subscribe_spec_example();
    assert_vector(&bytes, &packet);
}

#[test]
fn subscribe_with_several_filters_and_wildcards() {
    let (bytes, packet) = subscribe_wildcards();
    assert_vector(&bytes, &packet);
}

#[test]
fn subscribe_encodes_only_the_qos_of_the_options_in_3_1_1() {
    // No Local, Retain As Published and Retain Handling do not exist in 3.1.1.
    let (bytes, _) = subscribe_spec_example();
    let options = |qos| SubscriptionOptions {
        qos,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    let packet = Packet::Subscribe(Subscribe {
        packet_id: pid(10),
        filters: vec![(text("a/b"), options(QoS::AtLeastOnce)), (text("c/d"), options(QoS::ExactlyOnce))],
        properties: None,
    });
    assert_eq!(encode_one(&packet, ProtocolVersion::V311), bytes);
    assert_eq!(packet.encoded_size(), bytes.len());
}

#[test]
fn suback_with_0x80_failure() {
    let (bytes, packet) = suback_spec_example();
    assert_vector(&bytes, &packet);
}

#[test]
fn suback_encodes_every_5_0_failure_as_0x80() {
    // [MQTT-3.9.3-2] allows only 0x00, 0x01, 0x02 and 0x80 in 3.1.1.
    let packet = Packet::SubAck(SubAck {
        packet_id: pid(10),
        reason_codes: vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::TopicFilterInvalid,
        ],
        properties: None,
    });
    assert_eq!(encode_one(&packet, ProtocolVersion::V311), [0x90, 0x05, 0x00, 0x0A, 0x01, 0x80, 0x80]);
}

#[test]
fn unsubscribe_with_the_specification_payload_example() {
    let (bytes, packet) = unsubscribe_spec_example();
    assert_vector(&bytes, &packet);
}

#[test]
fn unsuback_for_3_1_1() {
    let (bytes, packet) = unsuback();
    assert_vector(&bytes, &packet);
}

#[test]
fn unsuback_drops_5_0_reason_codes_in_3_1_1() {
    let packet = Packet::UnsubAck(UnsubAck {
        packet_id: pid(10),
        reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
        properties: None,
    });
    assert_eq!(encode_one(&packet, ProtocolVersion::V311), [0xB0, 0x02, 0x00, 0x0A]);
    assert_eq!(packet.encoded_size(), 4);
}

#[test]
fn pingreq_pingresp_disconnect() {
    for (bytes, packet) in [pingreq(), pingresp(), disconnect()] {
        assert_vector(&bytes, &packet);
    }
}

#[test]
fn every_vector_encodes_the_same_in_3_1_and_3_1_1() {
    for (bytes, packet) in all_v311_vectors() {
        assert_vector_in(ProtocolVersion::V31, &bytes, &packet);
    }
}

#[test]
fn vectors_cover_all_14_packet_types() {
    let mut types: Vec<u8> = all_v311_vectors().iter().map(|(bytes, _)| bytes[0] >> 4).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types, (1..=14).collect::<Vec<u8>>());
}

// Topic filters (section 4.7).

#[test]
fn valid_filters_of_section_4_7_decode_in_subscribe_and_unsubscribe() {
    for filter in
        ["#", "+", "sport/#", "sport/+/player1", "+/+", "/+", "+/tennis/#", "a//b", "$SYS/#", "sport/"]
    {
        let bytes = subscribe_with_filter(filter.as_bytes(), 2);
        let Packet::Subscribe(subscribe) = decode_one(&bytes, ProtocolVersion::V311).unwrap() else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!(subscribe.filters, [(ByteString::from(filter), options(QoS::ExactlyOnce))]);
        let bytes = unsubscribe_with_filter(filter.as_bytes());
        let Packet::Unsubscribe(unsubscribe) = decode_one(&bytes, ProtocolVersion::V311).unwrap() else {
            panic!("not an UNSUBSCRIBE");
        };
        assert_eq!(unsubscribe.filters, [ByteString::from(filter)]);
    }
}

// Remaining length (section 2.2.3, table 2.4).

/// Each boundary of table 2.4: the remaining length, its encoding and the fixed header length.
const REMAINING_LENGTH_BOUNDARIES: [(usize, &[u8], usize); 8] = [
    (0, &[0x00], 2),
    (127, &[0x7F], 2),
    (128, &[0x80, 0x01], 3),
    (16_383, &[0xFF, 0x7F], 3),
    (16_384, &[0x80, 0x80, 0x01], 4),
    (2_097_151, &[0xFF, 0xFF, 0x7F], 4),
    (2_097_152, &[0x80, 0x80, 0x80, 0x01], 5),
    (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F], 5),
];

#[test]
fn check_reads_every_remaining_length_boundary_of_table_2_4() {
    assert_eq!(MAX_REMAINING_LENGTH, 268_435_455);
    for (remaining_len, encoding, header_len) in REMAINING_LENGTH_BOUNDARIES {
        let mut header = vec![0x30];
        header.extend_from_slice(encoding);
        let expected = FixedHeader { first_byte: 0x30, header_len, remaining_len };
        assert_eq!(check(&header, usize::MAX), Ok(Some(expected)), "{encoding:02X?}");
        assert_eq!(expected.packet_len(), header_len + remaining_len);
        // Every proper prefix of the fixed header asks for more bytes.
        for end in 0..header.len() {
            assert_eq!(check(&header[..end], usize::MAX), Ok(None), "{:02X?}", &header[..end]);
        }
    }
}

#[test]
fn publish_encodes_and_decodes_at_every_remaining_length_boundary() {
    // A QoS 0 PUBLISH to "t" has 3 bytes of variable header; the payload fills the rest. The last
    // boundary (256 MiB) is left to `check` above.
    for (remaining_len, encoding, header_len) in &REMAINING_LENGTH_BOUNDARIES[2..7] {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: text("t"),
            packet_id: None,
            payload: Bytes::from(vec![0xA5; remaining_len - 3]),
            properties: None,
        };
        let packet = Packet::Publish(publish);
        let bytes = encode_one(&packet, ProtocolVersion::V311);
        assert_eq!(bytes.len(), header_len + remaining_len);
        assert_eq!(packet.encoded_size(), bytes.len());
        assert_eq!(publish_size("t", QoS::AtMostOnce, remaining_len - 3), bytes.len());
        assert_eq!(bytes[0], 0x30);
        assert_eq!(&bytes[1..*header_len], *encoding);
        let header = check(&bytes, usize::MAX).unwrap().unwrap();
        assert_eq!(header.header_len, *header_len);
        assert_eq!(header.remaining_len, *remaining_len);
        assert_eq!(decode_one(&bytes, ProtocolVersion::V311).unwrap(), packet);
    }
    // The smallest packets have a remaining length of 0 and of 127.
    assert_eq!(encode_one(&Packet::PingReq, ProtocolVersion::V311), [0xC0, 0x00]);
    let topic = ByteString::from("t".repeat(125));
    let packet = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic,
        packet_id: None,
        payload: Bytes::new(),
        properties: None,
    });
    let bytes = encode_one(&packet, ProtocolVersion::V311);
    assert_eq!(bytes[..2], [0x30, 0x7F]);
    assert_eq!(packet.encoded_size(), bytes.len());
    assert_eq!(check(&bytes, usize::MAX).unwrap().unwrap().header_len, 2);
    assert_eq!(decode_one(&bytes, ProtocolVersion::V311).unwrap(), packet);
}

// Resumable decoding.

#[test]
fn decode_returns_none_until_the_last_byte_arrives() {
    let mut vectors = all_v311_vectors();
    vectors.push(connect_mqisdp());
    for (bytes, expected) in vectors {
        let mut buf = BytesMut::new();
        for (i, &byte) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let outcome = decode(&mut buf, ProtocolVersion::V311, NO_LIMIT).unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(outcome, None, "{bytes:02X?} after {} bytes", i + 1);
                assert_eq!(buf.len(), i + 1, "the decoder consumed part of an incomplete packet");
            } else {
                assert_eq!(outcome, Some(expected.clone()));
                assert!(buf.is_empty());
            }
        }
    }
}

#[test]
fn decode_returns_none_on_an_empty_buffer() {
    let mut buf = BytesMut::new();
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(None));
    assert_eq!(check(&[], NO_LIMIT), Ok(None));
}

#[test]
fn two_packets_in_one_buffer_decode_in_order() {
    let (publish_bytes, publish_packet) = publish(0x32, false, QoS::AtLeastOnce, false);
    let (ping_bytes, ping_packet) = pingreq();
    let mut buf = BytesMut::from(&publish_bytes[..]);
    buf.extend_from_slice(&ping_bytes);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(Some(publish_packet)));
    assert_eq!(buf[..], ping_bytes[..]);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(Some(ping_packet)));
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn every_vector_in_one_buffer_decodes_in_order() {
    let vectors = all_v311_vectors();
    let mut buf = BytesMut::new();
    for (bytes, _) in &vectors {
        buf.extend_from_slice(bytes);
    }
    for (_, expected) in vectors {
        assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(Some(expected)));
    }
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(None));
}

#[test]
fn a_whole_packet_then_part_of_the_next_decodes_once_then_waits() {
    let (connect_bytes, connect_packet) = connect_full();
    let (subscribe_bytes, subscribe_packet) = subscribe_spec_example();
    let (head, tail) = subscribe_bytes.split_at(7);
    let mut buf = BytesMut::from(&connect_bytes[..]);
    buf.extend_from_slice(head);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(Some(connect_packet)));
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(None));
    assert_eq!(buf[..], *head);
    buf.extend_from_slice(tail);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(Some(subscribe_packet)));
    assert!(buf.is_empty());
}

#[test]
fn decode_reserves_room_for_the_rest_of_an_announced_packet() {
    let (bytes, _) = subscribe_wildcards();
    let mut buf = BytesMut::from(&bytes[..3]);
    assert_eq!(decode(&mut buf, ProtocolVersion::V311, NO_LIMIT), Ok(None));
    assert!(buf.capacity() >= bytes.len(), "capacity {} for a {}-byte packet", buf.capacity(), bytes.len());
}
