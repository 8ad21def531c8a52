//! Byte-exact vectors of valid MQTT 5.0 packets, checked through the crate's public API.
//!
//! Each vector is written by hand from the packet layouts of chapter 3 of the OASIS MQTT 5.0
//! specification, field by field, with the properties of table 2-4 (section 2.2.2.2); between
//! them the vectors carry every property identifier at least once, and the short forms of
//! PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT and AUTH. Only the fixed header's remaining
//! length is computed, by `common::packet`. Packets the decoder must refuse are in
//! `violations_v5.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Each test file uses its own part of the shared helpers.
#[allow(dead_code)]
mod common;

use core::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use common::{decode_one, packet, text};
use iothub_protocol::{
    decode, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, OutgoingPublish, Packet, PacketId, PayloadFormat, ProtocolVersion, Publish,
    PublishHeader, PublishProperties, PublishResponse, PublishResponseProperties, QoS, ReasonCode,
    RetainHandling, SubAck, SubAckProperties, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    UnsubAckProperties, Unsubscribe, UnsubscribeProperties, Will, WillProperties,
};

const V5: ProtocolVersion = ProtocolVersion::V5;

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn encode_v5(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(V5, &mut buf).unwrap();
    buf.to_vec()
}

/// Checks a vector both ways in 5.0: the bytes decode to the packet, the packet encodes to
/// exactly the bytes, and `size(V5)` predicts their length.
fn assert_vector(bytes: &[u8], packet: &Packet) {
    assert_eq!(decode_one(bytes, V5).unwrap(), *packet, "decoding {bytes:02X?}");
    assert_eq!(encode_v5(packet), bytes, "encoding {packet:?}");
    assert_eq!(packet.size(V5), bytes.len(), "size of {packet:?}");
}

fn user(name: &'static str, value: &'static str) -> (bytestring::ByteString, bytestring::ByteString) {
    (text(name), text(value))
}

// CONNECT.

#[test]
fn connect_as_mosquitto_pub_sends_it_with_property_length_0() {
    // `mosquitto_pub -V mqttv5 -t t -m x`: clean start, keep-alive 60, no properties, a
    // generated client identifier, no will and no credentials.
    let body = [
        0x00, 0x04, b'M', b'Q', b'T', b'T', // Protocol name.
        0x05, // Protocol level 5.
        0x02, // Clean Start.
        0x00, 0x3C, // Keep-alive 60 s.
        0x00, // Property length 0.
        0x00, 0x15, b'm', b'o', b's', b'q', b'-', b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i', b'j',
        b'k', b'l', b'm', b'n', b'o', b'p', // Client identifier, 21 bytes.
    ];
    let bytes = packet(0x10, &body);
    assert_eq!(bytes[..2], [0x10, 0x22]);
    let connect = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 60,
        client_id: text("mosq-abcdefghijklmnop"),
        will: None,
        username: None,
        password: None,
        properties: None,
    };
    let expected = Packet::Connect(Box::new(connect));
    assert_vector(&bytes, &expected);
    // CONNECT is read the same whatever the connection's version: it fixes that version.
    for version in [ProtocolVersion::V31, ProtocolVersion::V311] {
        assert_eq!(decode_one(&bytes, version).unwrap(), expected);
    }
    // And it is written in the form of its own protocol level.
    let mut buf = BytesMut::new();
    expected.encode(ProtocolVersion::V311, &mut buf).unwrap();
    assert_eq!(buf[..], bytes[..]);
    assert_eq!(expected.encoded_size(), bytes.len());
}

#[test]
fn connect_with_every_connect_and_will_property() {
    let body = [
        &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05][..],
        &[0xCE],                         // User name, password, will QoS 1, will flag, clean start.
        &[0x00, 0x0A],                   // Keep-alive 10 s.
        &[40],                           // Property length.
        &[0x11, 0x00, 0x00, 0x00, 0x78], // Session Expiry Interval 120 s.
        &[0x21, 0x00, 0x14],             // Receive Maximum 20.
        &[0x27, 0x00, 0x00, 0x04, 0x00], // Maximum Packet Size 1024.
        &[0x22, 0x00, 0x0A],             // Topic Alias Maximum 10.
        &[0x19, 0x01],                   // Request Response Information.
        &[0x17, 0x00],                   // Request Problem Information off.
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'], // User Property a=b.
        &[0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M'], // Authentication Method.
        &[0x16, 0x00, 0x02, 0x01, 0x02], // Authentication Data.
        &[0x00, 0x02, b'c', b'1'],       // Client identifier.
        &[37],                           // Will property length.
        &[0x18, 0x00, 0x00, 0x00, 0x05], // Will Delay Interval 5 s.
        &[0x01, 0x01],                   // Payload Format Indicator: UTF-8.
        &[0x02, 0x00, 0x00, 0x00, 0x3C], // Message Expiry Interval 60 s.
        &[0x03, 0x00, 0x04, b'j', b's', b'o', b'n'], // Content Type.
        &[0x08, 0x00, 0x03, b'r', b'/', b'1'], // Response Topic.
        &[0x09, 0x00, 0x02, b'i', b'd'], // Correlation Data.
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'], // User Property k=v.
        &[0x00, 0x03, b'a', b'/', b'b'], // Will topic.
        &[0x00, 0x03, b'b', b'y', b'e'], // Will payload.
        &[0x00, 0x04, b'u', b's', b'e', b'r'], // User name.
        &[0x00, 0x04, b'p', b'a', b's', b's'], // Password.
    ]
    .concat();
    let properties = ConnectProperties {
        session_expiry_interval: Some(120),
        receive_maximum: NonZeroU16::new(20),
        maximum_packet_size: NonZeroU32::new(1024),
        topic_alias_maximum: Some(10),
        request_response_information: Some(true),
        request_problem_information: Some(false),
        user_properties: vec![user("a", "b")],
        authentication_method: Some(text("SCRAM")),
        authentication_data: Some(Bytes::from_static(&[1, 2])),
    };
    let will_properties = WillProperties {
        will_delay_interval: Some(5),
        payload_format_indicator: Some(PayloadFormat::Utf8),
        message_expiry_interval: Some(60),
        content_type: Some(text("json")),
        response_topic: Some(text("r/1")),
        correlation_data: Some(Bytes::from_static(b"id")),
        user_properties: vec![user("k", "v")],
    };
    let connect = Connect {
        protocol: V5,
        clean_start: true,
        keep_alive: 10,
        client_id: text("c1"),
        will: Some(Will {
            topic: text("a/b"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Some(Box::new(will_properties)),
        }),
        username: Some(text("user")),
        password: Some(Bytes::from_static(b"pass")),
        properties: Some(Box::new(properties)),
    };
    assert_vector(&packet(0x10, &body), &Packet::Connect(Box::new(connect)));
}

#[test]
fn connect_5_0_may_carry_a_password_without_a_user_name() {
    // Section 3.1.2.9: 5.0 allows a password without a user name; 3.1.1 did not.
    let body = [
        &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x40, 0x00, 0x00, 0x00][..],
        &[0x00, 0x01, b'c'],
        &[0x00, 0x02, b'p', b'w'],
    ]
    .concat();
    let connect = Connect {
        protocol: V5,
        clean_start: false,
        keep_alive: 0,
        client_id: text("c"),
        will: None,
        username: None,
        password: Some(Bytes::from_static(b"pw")),
        properties: None,
    };
    assert_vector(&packet(0x10, &body), &Packet::Connect(Box::new(connect)));
}

#[test]
fn will_with_property_length_0_has_no_properties() {
    let body = [
        &[0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x36, 0x00, 0x00, 0x00][..], // Retained QoS 2 will.
        &[0x00, 0x00],                                                           // Empty client identifier.
        &[0x00],                                                                 // Will property length 0.
        &[0x00, 0x01, b't', 0x00, 0x00], // Will topic "t", empty will payload.
    ]
    .concat();
    let Packet::Connect(connect) = decode_one(&packet(0x10, &body), V5).unwrap() else { panic!() };
    let will = connect.will.as_ref().unwrap();
    assert_eq!((will.properties.as_ref(), will.qos, will.retain), (None, QoS::ExactlyOnce, true));
    assert_eq!(connect.properties, None);
    assert_eq!(encode_v5(&Packet::Connect(connect)), packet(0x10, &body));
}

// CONNACK.

#[test]
fn connack_with_every_connack_property() {
    let body = [
        &[0x01, 0x00][..],                                 // Session present, Success.
        &[75],                                             // Property length.
        &[0x11, 0x00, 0x00, 0x00, 0x3C],                   // Session Expiry Interval 60 s.
        &[0x21, 0x00, 0x0A],                               // Receive Maximum 10.
        &[0x24, 0x01],                                     // Maximum QoS 1.
        &[0x25, 0x00],                                     // Retain not available.
        &[0x27, 0x00, 0x00, 0x10, 0x00],                   // Maximum Packet Size 4096.
        &[0x12, 0x00, 0x04, b'a', b'u', b't', b'o'],       // Assigned Client Identifier.
        &[0x22, 0x00, 0x05],                               // Topic Alias Maximum 5.
        &[0x1F, 0x00, 0x02, b'o', b'k'],                   // Reason String.
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],       // User Property.
        &[0x28, 0x01],                                     // Wildcard Subscription Available.
        &[0x29, 0x00],                                     // Subscription Identifiers not available.
        &[0x2A, 0x01],                                     // Shared Subscription Available.
        &[0x13, 0x00, 0x1E],                               // Server Keep Alive 30 s.
        &[0x1A, 0x00, 0x04, b'r', b'e', b's', b'p'],       // Response Information.
        &[0x1C, 0x00, 0x05, b'o', b't', b'h', b'e', b'r'], // Server Reference.
        &[0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M'], // Authentication Method.
        &[0x16, 0x00, 0x01, b'x'],                         // Authentication Data.
    ]
    .concat();
    let properties = ConnAckProperties {
        session_expiry_interval: Some(60),
        receive_maximum: NonZeroU16::new(10),
        maximum_qos: Some(QoS::AtLeastOnce),
        retain_available: Some(false),
        maximum_packet_size: NonZeroU32::new(4096),
        assigned_client_identifier: Some(text("auto")),
        topic_alias_maximum: Some(5),
        reason_string: Some(text("ok")),
        user_properties: vec![user("a", "b")],
        wildcard_subscription_available: Some(true),
        subscription_identifiers_available: Some(false),
        shared_subscription_available: Some(true),
        server_keep_alive: Some(30),
        response_information: Some(text("resp")),
        server_reference: Some(text("other")),
        authentication_method: Some(text("SCRAM")),
        authentication_data: Some(Bytes::from_static(b"x")),
    };
    let connack = ConnAck {
        session_present: true,
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(properties)),
    };
    assert_vector(&packet(0x20, &body), &Packet::ConnAck(connack));
}

#[test]
fn connack_refusal_without_properties() {
    let connack =
        ConnAck { session_present: false, reason_code: ReasonCode::NotAuthorized, properties: None };
    assert_vector(&[0x20, 0x03, 0x00, 0x87, 0x00], &Packet::ConnAck(connack));
    // Every CONNACK reason code of section 3.2.2.2 decodes.
    for code in [
        0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
        0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
    ] {
        let Packet::ConnAck(connack) = decode_one(&[0x20, 0x03, 0x00, code, 0x00], V5).unwrap() else {
            panic!()
        };
        assert_eq!(connack.reason_code.value(), code);
    }
}

#[test]
fn properties_decode_in_any_order() {
    // The encoder writes properties in the order of the specification's sections; a reader must
    // take them in any order, and User Properties keep theirs.
    let body = [
        &[0x00, 0x00, 17][..],
        &[0x26, 0x00, 0x01, b'z', 0x00, 0x00], // User Property z="".
        &[0x24, 0x00],                         // Maximum QoS 0.
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x00], // User Property a="".
        &[0x13, 0x00, 0x00],                   // Server Keep Alive 0.
    ]
    .concat();
    let properties = ConnAckProperties {
        maximum_qos: Some(QoS::AtMostOnce),
        server_keep_alive: Some(0),
        user_properties: vec![user("z", ""), user("a", "")],
        ..ConnAckProperties::default()
    };
    let connack = ConnAck {
        session_present: false,
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(properties)),
    };
    assert_eq!(decode_one(&packet(0x20, &body), V5).unwrap(), Packet::ConnAck(connack));
}

// PUBLISH.

fn publish_every_property() -> (Vec<u8>, Publish) {
    let body = [
        &[0x00, 0x03, b'a', b'/', b'b'][..],               // Topic name.
        &[0x00, 0x0A],                                     // Packet identifier 10.
        &[49],                                             // Property length.
        &[0x01, 0x01],                                     // Payload Format Indicator: UTF-8.
        &[0x02, 0x00, 0x00, 0x0E, 0x10],                   // Message Expiry Interval 3600 s.
        &[0x23, 0x00, 0x05],                               // Topic Alias 5.
        &[0x08, 0x00, 0x05, b'r', b'e', b'p', b'l', b'y'], // Response Topic.
        &[0x09, 0x00, 0x03, b'c', b'i', b'd'],             // Correlation Data.
        &[0x26, 0x00, 0x01, b'x', 0x00, 0x01, b'y'],       // User Property.
        &[0x0B, 0x01],                                     // Subscription Identifier 1.
        &[0x0B, 0xC8, 0x01],                               // Subscription Identifier 200, in two bytes.
        &[0x03, 0x00, 0x0A, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n'], // Content Type.
        b"hi",                                             // Payload.
    ]
    .concat();
    let properties = PublishProperties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        message_expiry_interval: Some(3600),
        topic_alias: NonZeroU16::new(5),
        response_topic: Some(text("reply")),
        correlation_data: Some(Bytes::from_static(b"cid")),
        user_properties: vec![user("x", "y")],
        subscription_identifiers: vec![NonZeroU32::new(1).unwrap(), NonZeroU32::new(200).unwrap()],
        content_type: Some(text("text/plain")),
    };
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: text("a/b"),
        packet_id: Some(pid(10)),
        payload: Bytes::from_static(b"hi"),
        properties: Some(Box::new(properties)),
    };
    (packet(0x33, &body), publish)
}

#[test]
fn publish_with_every_publish_property() {
    let (bytes, publish) = publish_every_property();
    assert_vector(&bytes, &Packet::Publish(publish));
}

#[test]
fn publish_without_properties_has_property_length_0() {
    let bytes = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, b'x'];
    let publish = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: text("a/b"),
        packet_id: None,
        payload: Bytes::from_static(b"x"),
        properties: None,
    };
    assert_vector(&bytes, &Packet::Publish(publish));
}

#[test]
fn publish_with_an_empty_topic_and_a_topic_alias() {
    // Section 3.3.2.3.4: the topic is the one the alias was set to; the broker resolves it.
    let bytes = [0x3C, 0x0A, 0x00, 0x00, 0x00, 0x07, 0x03, 0x23, 0x00, 0x07, b'x', b'y'];
    let publish = Publish {
        dup: true,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: text(""),
        packet_id: Some(pid(7)),
        payload: Bytes::from_static(b"xy"),
        properties: Some(Box::new(PublishProperties {
            topic_alias: NonZeroU16::new(7),
            ..PublishProperties::default()
        })),
    };
    assert_vector(&bytes, &Packet::Publish(publish));
}

#[test]
fn outgoing_publish_writes_the_per_delivery_properties_in_place_of_the_stored_ones() {
    let (bytes, stored) = publish_every_property();
    // The stored message's own expiry, alias and identifiers are ignored...
    let mut forwarded = (**stored.properties.as_ref().unwrap()).clone();
    forwarded.message_expiry_interval = Some(1);
    forwarded.topic_alias = NonZeroU16::new(99);
    forwarded.subscription_identifiers.clear();
    // ...and the delivery's used: the same values as the vector, so the same bytes.
    let ids = [NonZeroU32::new(1).unwrap(), NonZeroU32::new(200).unwrap()];
    let outgoing = OutgoingPublish {
        header: stored.header(),
        topic: &stored.topic,
        payload: &stored.payload,
        properties: Some(&forwarded),
        message_expiry_interval: Some(3600),
        topic_alias: NonZeroU16::new(5),
        subscription_identifiers: &ids,
    };
    let mut buf = BytesMut::from(&b"prefix"[..]);
    outgoing.encode(V5, &mut buf).unwrap();
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(buf[6..], bytes[..]);
    assert_eq!(outgoing.size(V5), bytes.len());

    // In 3.1.1 no property is written.
    let mut buf = BytesMut::new();
    outgoing.encode(ProtocolVersion::V311, &mut buf).unwrap();
    assert_eq!(buf[..], [0x33, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, b'h', b'i']);
    assert_eq!(outgoing.size(ProtocolVersion::V311), buf.len());

    // An established alias: empty topic, no forwarded properties.
    let outgoing = OutgoingPublish {
        header: PublishHeader::default(),
        topic: "",
        payload: b"z",
        properties: None,
        message_expiry_interval: None,
        topic_alias: NonZeroU16::new(3),
        subscription_identifiers: &[],
    };
    let mut buf = BytesMut::new();
    outgoing.encode(V5, &mut buf).unwrap();
    assert_eq!(buf[..], [0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x03, b'z']);
    assert_eq!(outgoing.size(V5), buf.len());
}

// PUBACK, PUBREC, PUBREL, PUBCOMP.

#[test]
fn publish_responses_in_their_short_forms() {
    // Section 3.4.2.1: remaining length 2 is Success without properties, 3 a reason code
    // without properties.
    let response = |code| PublishResponse { packet_id: pid(1), reason_code: code, properties: None };
    assert_vector(&[0x40, 0x02, 0x00, 0x01], &Packet::PubAck(response(ReasonCode::Success)));
    assert_vector(
        &[0x40, 0x03, 0x00, 0x01, 0x10],
        &Packet::PubAck(response(ReasonCode::NoMatchingSubscribers)),
    );
    assert_vector(&[0x50, 0x03, 0x00, 0x01, 0x80], &Packet::PubRec(response(ReasonCode::UnspecifiedError)));
    assert_vector(&[0x62, 0x02, 0x00, 0x01], &Packet::PubRel(response(ReasonCode::Success)));
    assert_vector(
        &[0x62, 0x03, 0x00, 0x01, 0x92],
        &Packet::PubRel(response(ReasonCode::PacketIdentifierNotFound)),
    );
    assert_vector(&[0x70, 0x02, 0x00, 0x01], &Packet::PubComp(response(ReasonCode::Success)));
    // A Success with an explicit Property Length of 0 decodes the same, and is written short.
    assert_eq!(
        decode_one(&[0x40, 0x04, 0x00, 0x01, 0x00, 0x00], V5),
        Ok(Packet::PubAck(response(ReasonCode::Success)))
    );
    assert_eq!(
        decode_one(&[0x40, 0x03, 0x00, 0x01, 0x00], V5),
        Ok(Packet::PubAck(response(ReasonCode::Success)))
    );
}

#[test]
fn publish_responses_with_properties() {
    let properties = PublishResponseProperties {
        reason_string: Some(text("quota")),
        user_properties: vec![user("k", "v")],
    };
    let body = [
        &[0x00, 0x01, 0x97, 15][..], // Packet identifier 1, Quota exceeded, property length.
        &[0x1F, 0x00, 0x05, b'q', b'u', b'o', b't', b'a'], // Reason String.
        &[0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v'], // User Property.
    ]
    .concat();
    let response = PublishResponse {
        packet_id: pid(1),
        reason_code: ReasonCode::QuotaExceeded,
        properties: Some(Box::new(properties)),
    };
    assert_vector(&packet(0x40, &body), &Packet::PubAck(response.clone()));
    assert_vector(&packet(0x50, &body), &Packet::PubRec(response));
    let comp = PublishResponse {
        packet_id: pid(4),
        reason_code: ReasonCode::PacketIdentifierNotFound,
        properties: Some(Box::new(PublishResponseProperties {
            reason_string: Some(text("no")),
            ..Default::default()
        })),
    };
    assert_vector(
        &[0x70, 0x09, 0x00, 0x04, 0x92, 0x05, 0x1F, 0x00, 0x02, b'n', b'o'],
        &Packet::PubComp(comp.clone()),
    );
    assert_vector(&[0x62, 0x09, 0x00, 0x04, 0x92, 0x05, 0x1F, 0x00, 0x02, b'n', b'o'], &Packet::PubRel(comp));
    // Success with properties is written in full.
    let success = PublishResponse {
        packet_id: pid(2),
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(PublishResponseProperties {
            user_properties: vec![user("a", "b")],
            ..Default::default()
        })),
    };
    assert_vector(
        &[0x40, 0x0B, 0x00, 0x02, 0x00, 0x07, 0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],
        &Packet::PubAck(success),
    );
}

// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.

#[test]
fn subscribe_with_options_and_properties() {
    let body = [
        &[0x00, 0x0B][..],                           // Packet identifier 11.
        &[10],                                       // Property length.
        &[0x0B, 0x80, 0x01],                         // Subscription Identifier 128.
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'], // User Property.
        &[0x00, 0x03, b'a', b'/', b'+', 0x01],       // QoS 1.
        &[0x00, 0x01, b'#', 0x2E], // QoS 2, No Local, Retain As Published, Retain Handling 2.
        &[0x00, 0x0A, b'$', b's', b'h', b'a', b'r', b'e', b'/', b'g', b'/', b't', 0x18], // RAP, RH 1.
    ]
    .concat();
    let subscribe = Subscribe {
        packet_id: pid(11),
        filters: vec![
            (text("a/+"), SubscriptionOptions { qos: QoS::AtLeastOnce, ..SubscriptionOptions::default() }),
            (
                text("#"),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            ),
            (
                text("$share/g/t"),
                SubscriptionOptions {
                    qos: QoS::AtMostOnce,
                    no_local: false,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendAtNewSubscribe,
                },
            ),
        ],
        properties: Some(Box::new(SubscribeProperties {
            subscription_identifier: NonZeroU32::new(128),
            user_properties: vec![user("a", "b")],
        })),
    };
    assert_vector(&packet(0x82, &body), &Packet::Subscribe(subscribe));
}

#[test]
fn suback_with_every_suback_reason_code() {
    let codes = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
    let body = [&[0x00, 0x0B, 6, 0x1F, 0x00, 0x03, b'w', b'h', b'y'][..], &codes].concat();
    let suback = SubAck {
        packet_id: pid(11),
        reason_codes: codes.iter().map(|&code| ReasonCode::from_u8(code).unwrap()).collect(),
        properties: Some(Box::new(SubAckProperties {
            reason_string: Some(text("why")),
            ..Default::default()
        })),
    };
    assert_vector(&packet(0x90, &body), &Packet::SubAck(suback));
    let plain = SubAck { packet_id: pid(1), reason_codes: vec![ReasonCode::GrantedQoS1], properties: None };
    assert_vector(&[0x90, 0x04, 0x00, 0x01, 0x00, 0x01], &Packet::SubAck(plain));
}

#[test]
fn unsubscribe_and_unsuback() {
    let body = [
        &[0x00, 0x0C, 7, 0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'][..],
        &[0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'#'],
    ]
    .concat();
    let unsubscribe = Unsubscribe {
        packet_id: pid(12),
        filters: vec![text("a/b"), text("#")],
        properties: Some(Box::new(UnsubscribeProperties { user_properties: vec![user("a", "b")] })),
    };
    assert_vector(&packet(0xA2, &body), &Packet::Unsubscribe(unsubscribe));

    let codes = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
    let body = [&[0x00, 0x0C, 5, 0x1F, 0x00, 0x02, b'h', b'm'][..], &codes].concat();
    let unsuback = UnsubAck {
        packet_id: pid(12),
        reason_codes: codes.iter().map(|&code| ReasonCode::from_u8(code).unwrap()).collect(),
        properties: Some(Box::new(UnsubAckProperties {
            reason_string: Some(text("hm")),
            ..Default::default()
        })),
    };
    assert_vector(&packet(0xB0, &body), &Packet::UnsubAck(unsuback));
    let plain = UnsubAck {
        packet_id: pid(3),
        reason_codes: vec![ReasonCode::NoSubscriptionExisted],
        properties: None,
    };
    assert_vector(&[0xB0, 0x04, 0x00, 0x03, 0x00, 0x11], &Packet::UnsubAck(plain));
}

// PINGREQ, PINGRESP, DISCONNECT, AUTH.

#[test]
fn pings_are_the_same_in_5_0() {
    assert_vector(&[0xC0, 0x00], &Packet::PingReq);
    assert_vector(&[0xD0, 0x00], &Packet::PingResp);
}

#[test]
fn disconnect_short_forms_and_properties() {
    // Section 3.14.2.1: remaining length 0 is Normal disconnection, 1 a reason code alone.
    assert_vector(&[0xE0, 0x00], &Packet::Disconnect(Disconnect::default()));
    let with_will = Disconnect { reason_code: ReasonCode::DisconnectWithWill, properties: None };
    assert_vector(&[0xE0, 0x01, 0x04], &Packet::Disconnect(with_will));
    assert_eq!(decode_one(&[0xE0, 0x02, 0x00, 0x00], V5), Ok(Packet::Disconnect(Disconnect::default())));

    let body = [
        &[0x9C, 24][..],                             // Use another server, property length.
        &[0x11, 0x00, 0x00, 0x00, 0x00],             // Session Expiry Interval 0.
        &[0x1F, 0x00, 0x03, b'b', b'y', b'e'],       // Reason String.
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'], // User Property.
        &[0x1C, 0x00, 0x03, b's', b'r', b'v'],       // Server Reference.
    ]
    .concat();
    let disconnect = Disconnect {
        reason_code: ReasonCode::UseAnotherServer,
        properties: Some(Box::new(DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(text("bye")),
            user_properties: vec![user("a", "b")],
            server_reference: Some(text("srv")),
        })),
    };
    assert_vector(&packet(0xE0, &body), &Packet::Disconnect(disconnect));
}

#[test]
fn auth_short_form_and_properties() {
    // Section 3.15.2.1: remaining length 0 is Success without properties.
    assert_vector(&[0xF0, 0x00], &Packet::Auth(Auth::default()));
    let body = [
        &[0x18, 28][..],                                   // Continue authentication, property length.
        &[0x15, 0x00, 0x05, b'S', b'C', b'R', b'A', b'M'], // Authentication Method.
        &[0x16, 0x00, 0x03, 0x01, 0x02, 0x03],             // Authentication Data.
        &[0x1F, 0x00, 0x04, b'n', b'e', b'x', b't'],       // Reason String.
        &[0x26, 0x00, 0x01, b'a', 0x00, 0x01, b'b'],       // User Property.
    ]
    .concat();
    let auth = Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: Some(Box::new(AuthProperties {
            authentication_method: Some(text("SCRAM")),
            authentication_data: Some(Bytes::from_static(&[1, 2, 3])),
            reason_string: Some(text("next")),
            user_properties: vec![user("a", "b")],
        })),
    };
    assert_vector(&packet(0xF0, &body), &Packet::Auth(auth));
    // Re-authenticate without properties is written with Property Length 0.
    let again = Auth { reason_code: ReasonCode::ReAuthenticate, properties: None };
    assert_vector(&[0xF0, 0x02, 0x19, 0x00], &Packet::Auth(again.clone()));
    assert_eq!(decode_one(&[0xF0, 0x01, 0x19], V5), Ok(Packet::Auth(again)));
}

#[test]
fn an_empty_property_struct_is_written_as_none_and_read_back_as_none() {
    let empty = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::Success,
        properties: Some(Box::new(DisconnectProperties::default())),
    });
    assert_eq!(encode_v5(&empty), [0xE0, 0x00]);
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: text("t"),
        packet_id: None,
        payload: Bytes::new(),
        properties: Some(Box::default()),
    });
    let bytes = encode_v5(&publish);
    assert_eq!(bytes, [0x30, 0x04, 0x00, 0x01, b't', 0x00]);
    let Packet::Publish(decoded) = decode_one(&bytes, V5).unwrap() else { panic!() };
    assert_eq!(decoded.properties, None);
}

#[test]
fn packets_decode_when_they_arrive_a_byte_at_a_time() {
    let (bytes, publish) = publish_every_property();
    let mut buf = BytesMut::new();
    for (i, &byte) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        let decoded = decode(&mut buf, V5, 1 << 20).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(decoded, None, "after {} bytes", i + 1);
        } else {
            assert_eq!(decoded, Some(Packet::Publish(publish.clone())));
        }
    }
    assert!(buf.is_empty());
}
