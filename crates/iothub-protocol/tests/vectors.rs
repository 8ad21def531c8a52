//! Byte-exact vectors for the MQTT 3.1 and 3.1.1 codec, checked through the crate's public API.
//!
//! The first half decodes and encodes one or more vectors for each of the 14 control packets,
//! built from the non-normative examples of the OASIS MQTT 3.1.1 specification where it gives
//! one, then checks remaining-length boundaries and resumable decoding. The second half feeds the
//! decoder packets that break a normative statement; each test names the statement it covers and
//! asserts the exact `DecodeError`, with the `Rule` that the packet breaks.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{
    check, decode, encode_publish, publish_size, validate_topic_filter, validate_topic_name, ConnAck,
    Connect, DecodeError, Disconnect, EncodeError, FixedHeader, Packet, PacketId, ProtocolVersion, Publish,
    PublishHeader, PublishResponse, QoS, ReasonCode, Rule, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will, MAX_REMAINING_LENGTH,
};

/// A maximum packet size that no vector in this file reaches.
const NO_LIMIT: usize = 1 << 30;

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn text(value: &'static str) -> ByteString {
    ByteString::from_static(value)
}

/// Decodes exactly one packet from `bytes` and checks that the decoder consumed all of them.
fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, version, NO_LIMIT)?.expect("the buffer holds a whole packet");
    assert!(buf.is_empty(), "the decoder left {} bytes behind", buf.len());
    Ok(packet)
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

/// Builds a packet from its first byte and body, writing the remaining length in between.
fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first_byte];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        bytes.push(byte);
        if len == 0 {
            break;
        }
    }
    bytes.extend_from_slice(body);
    bytes
}

/// A length-prefixed field holding `bytes`, which need not be valid UTF-8.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A CONNECT for "MQTT" level 4 with the given flags, keep-alive 60 and the given payload.
fn connect_with(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[0x04, flags, 0x00, 0x3C]);
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

/// A QoS 0 PUBLISH whose topic field holds `topic` and whose payload is "x".
fn publish_with_topic(topic: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    body.push(b'x');
    packet(0x30, &body)
}

/// A SUBSCRIBE with packet identifier 10 and one filter requesting `options`.
fn subscribe_with_filter(filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x0A];
    body.extend(field(filter));
    body.push(options);
    packet(0x82, &body)
}

/// An UNSUBSCRIBE with packet identifier 10 and one filter.
fn unsubscribe_with_filter(filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x0A];
    body.extend(field(filter));
    packet(0xA2, &body)
}

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
    let options =
        |qos| SubscriptionOptions { qos, no_local: true, retain_as_published: true, retain_handling: 2 };
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
    let (bytes, packet) = publish(0x32, false, QoS::AtLeastOnce, false);
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
    for first_byte in [0x00, 0x0F, 0xF0, 0xFF] {
        let reserved = Err(DecodeError::Violation(Rule::ReservedPacketType));
        assert_eq!(check(&[first_byte], NO_LIMIT), reserved, "{first_byte:#04X}");
        assert_violation(&[first_byte, 0x00], Rule::ReservedPacketType);
    }
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

#[test]
fn valid_filters_of_section_4_7_decode() {
    for filter in
        ["#", "+", "sport/#", "sport/+/player1", "+/+", "/+", "+/tennis/#", "a//b", "$SYS/#", "sport/"]
    {
        let bytes = subscribe_with_filter(filter.as_bytes(), 2);
        let Packet::Subscribe(subscribe) = decode_one(&bytes, ProtocolVersion::V311).unwrap() else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!(subscribe.filters, [(ByteString::from(filter), options(QoS::ExactlyOnce))]);
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
    let cases: [(&[u8], u8); 6] =
        [(b"MQTT", 3), (b"MQTT", 5), (b"MQTT", 0), (b"MQTT", 0xFF), (b"MQIsdp", 4), (b"MQIsdp", 5)];
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

// MQTT 5.0 is not spoken yet.

#[test]
fn mqtt_5_0_packet_bodies_are_refused_and_never_encoded() {
    assert_eq!(decode_err_in(ProtocolVersion::V5, &[0xC0, 0x00]), DecodeError::Unsupported);
    let mut buf = BytesMut::new();
    assert_eq!(
        Packet::PingReq.encode(ProtocolVersion::V5, &mut buf),
        Err(EncodeError::Unsupported("PINGREQ"))
    );
    assert!(buf.is_empty());
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
    let (ping, _) = pingreq();
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
