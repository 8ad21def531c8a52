//! Differential checks of MQTT 5.0 against Mosquitto 2.x: the same exchanges as raw bytes, run
//! against a private `mosquitto` process and against IoTHub, with what each client received
//! compared line by line. `tests/differential.rs` does the same for 3.1.1; both share
//! `tests/differential/harness.rs`, and `docs/differential.md` explains every exchange and every
//! difference.
//!
//! The packets a client sends are built with `iothub_protocol::Packet` and encoded for 5.0. What
//! a client receives is recorded as exact bytes in hex, except where the two brokers may
//! legitimately write different bytes for the same meaning:
//!
//! - a CONNACK is recorded as its session present flag and reason code only, since the
//!   properties say what each broker's limits are; the CONNACK exchange compares those
//!   properties one by one, each normalised to its value (an absent property written as the
//!   default the specification gives it);
//! - a DISCONNECT is recorded as its reason code only (`e0 01 <code>`), since its Reason String
//!   is for people and each broker words it in its own way;
//! - a PUBLISH whose Message Expiry Interval counts down while it waits is recorded with the
//!   interval checked against the time it waited, not as the number of seconds.
//!
//! Each exchange is named after the 5.0 statement it checks, in the 5.0 numbering.

#[path = "differential/harness.rs"]
mod harness;

use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use harness::{differs, differs_in, hex, same, sync, Exchange, Peer, Seen, Setup};
use iothub_protocol::{
    decode, ConnAck, ConnAckProperties, Connect, ConnectProperties, Disconnect, Packet, ProtocolVersion,
    Publish, PublishProperties, PublishResponse, QoS, ReasonCode, RetainHandling, Subscribe,
    SubscribeProperties, SubscriptionOptions, Unsubscribe, Will, WillProperties,
};
use iothub_test_util::{OrFail, WAIT};

/// A packet in the 5.0 wire format.
fn encode5(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(ProtocolVersion::V5, &mut buf).or_fail("encoding a 5.0 packet");
    buf.to_vec()
}

/// The packet these bytes hold, read in the 5.0 wire format.
fn decode5(bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    decode(&mut buf, ProtocolVersion::V5, usize::MAX)
        .or_fail("decoding a 5.0 packet from the broker")
        .or_fail("a whole packet")
}

fn packet_id(id: u16) -> NonZeroU16 {
    NonZeroU16::new(id).or_fail("a non-zero packet identifier")
}

/// A 5.0 CONNECT with keep-alive 60.
fn connect5(
    client_id: &str,
    clean_start: bool,
    properties: ConnectProperties,
    will: Option<Will>,
) -> Vec<u8> {
    encode5(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start,
        keep_alive: 60,
        client_id: client_id.into(),
        will,
        username: None,
        password: None,
        properties: Some(Box::new(properties)),
    })))
}

/// A QoS 0 will on `topic`, not retained, with these will properties.
fn will(topic: &str, payload: &'static [u8], properties: WillProperties) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Some(Box::new(properties)),
    }
}

/// Subscription options with this maximum QoS and the 5.0 options at their defaults.
fn qos(qos: u8) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: QoS::from_bits(qos).or_fail("a QoS of 0, 1 or 2"),
        ..SubscriptionOptions::default()
    }
}

/// A 5.0 SUBSCRIBE, with a Subscription Identifier if `subscription_id` is not 0.
fn subscribe5(id: u16, filters: &[(&str, SubscriptionOptions)], subscription_id: u32) -> Vec<u8> {
    encode5(&Packet::Subscribe(Subscribe {
        packet_id: packet_id(id),
        filters: filters.iter().map(|&(filter, options)| (filter.into(), options)).collect(),
        properties: Some(Box::new(SubscribeProperties {
            subscription_identifier: NonZeroU32::new(subscription_id),
            ..SubscribeProperties::default()
        })),
    }))
}

/// A 5.0 UNSUBSCRIBE.
fn unsubscribe5(id: u16, filters: &[&str]) -> Vec<u8> {
    encode5(&Packet::Unsubscribe(Unsubscribe {
        packet_id: packet_id(id),
        filters: filters.iter().map(|&filter| filter.into()).collect(),
        properties: None,
    }))
}

/// A 5.0 PUBLISH; `id` is used for QoS 1 and 2 only.
fn publish5(
    topic: &str,
    payload: &'static [u8],
    qos: u8,
    retain: bool,
    id: u16,
    properties: PublishProperties,
) -> Vec<u8> {
    let qos = QoS::from_bits(qos).or_fail("a QoS of 0, 1 or 2");
    encode5(&Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        packet_id: (qos != QoS::AtMostOnce).then(|| packet_id(id)),
        payload: Bytes::from_static(payload),
        properties: Some(Box::new(properties)),
    }))
}

/// A 5.0 PUBLISH without properties.
fn plain5(topic: &str, payload: &'static [u8], qos: u8, retain: bool, id: u16) -> Vec<u8> {
    publish5(topic, payload, qos, retain, id, PublishProperties::default())
}

/// A PUBACK (`Packet::PubAck`), PUBREL or other acknowledgement with reason code Success.
fn ack5(make: fn(PublishResponse) -> Packet, id: u16) -> Vec<u8> {
    encode5(&make(PublishResponse::new(packet_id(id))))
}

/// Renders a CONNACK without its properties, which say what each broker's limits are.
fn connack_line(connack: &ConnAck) -> String {
    format!(
        "CONNACK session present {}, {:#04x}",
        u8::from(connack.session_present),
        connack.reason_code.value()
    )
}

/// Steps of a 5.0 client.
trait Client5 {
    /// Reads the CONNACK and records it without its properties; `None` if something else came.
    fn connack(&mut self) -> Option<ConnAck>;
}

impl Client5 for Peer {
    fn connack(&mut self) -> Option<ConnAck> {
        match self.read(WAIT) {
            Seen::Packet(bytes) => match decode5(&bytes) {
                Packet::ConnAck(connack) => {
                    self.note(&connack_line(&connack));
                    Some(connack)
                }
                _ => {
                    self.note(&hex(&bytes));
                    None
                }
            },
            Seen::Closed => {
                self.note("closed");
                None
            }
            Seen::Silent => {
                self.note("silent");
                None
            }
        }
    }
}

/// Opens a connection, sends a 5.0 CONNECT with Clean Start and these properties, and records
/// the CONNACK without its properties.
fn connected5(
    x: &Exchange,
    name: &str,
    client_id: &str,
    properties: ConnectProperties,
) -> (Peer, Option<ConnAck>) {
    let mut peer = x.client(name);
    peer.send(&connect5(client_id, true, properties, None));
    let connack = peer.connack();
    (peer, connack)
}

/// `connected5` with no CONNECT properties: the session ends with the connection.
fn plain_client(x: &Exchange, name: &str, client_id: &str) -> Peer {
    connected5(x, name, client_id, ConnectProperties::default()).0
}

/// The CONNACK properties as transcript lines: first which were sent, by name, then each one
/// normalised to what it means, an absent property written as the value section 3.2.2.3 gives
/// it when absent.
fn connack_property_lines(p: &ConnAckProperties) -> Vec<String> {
    let flag = |value: Option<bool>| u8::from(value.unwrap_or(true));
    let present = [
        ("Session Expiry Interval", p.session_expiry_interval.is_some()),
        ("Receive Maximum", p.receive_maximum.is_some()),
        ("Maximum QoS", p.maximum_qos.is_some()),
        ("Retain Available", p.retain_available.is_some()),
        ("Maximum Packet Size", p.maximum_packet_size.is_some()),
        ("Assigned Client Identifier", p.assigned_client_identifier.is_some()),
        ("Topic Alias Maximum", p.topic_alias_maximum.is_some()),
        ("Reason String", p.reason_string.is_some()),
        ("User Property", !p.user_properties.is_empty()),
        ("Wildcard Subscription Available", p.wildcard_subscription_available.is_some()),
        ("Subscription Identifier Available", p.subscription_identifiers_available.is_some()),
        ("Shared Subscription Available", p.shared_subscription_available.is_some()),
        ("Server Keep Alive", p.server_keep_alive.is_some()),
        ("Response Information", p.response_information.is_some()),
        ("Server Reference", p.server_reference.is_some()),
        ("Authentication Method", p.authentication_method.is_some()),
        ("Authentication Data", p.authentication_data.is_some()),
    ];
    let sent: Vec<&str> = present.iter().filter(|(_, sent)| *sent).map(|(name, _)| *name).collect();
    vec![
        format!("sent: {}", sent.join(", ")),
        format!(
            "Session Expiry Interval {}",
            p.session_expiry_interval.map_or("as asked".to_owned(), |s| s.to_string())
        ),
        format!("Receive Maximum {}", p.receive_maximum.map_or(65_535, NonZeroU16::get)),
        format!("Maximum QoS {}", p.maximum_qos.map_or(2, QoS::bits)),
        format!("Retain Available {}", flag(p.retain_available)),
        format!(
            "Maximum Packet Size {}",
            p.maximum_packet_size.map_or("no limit".to_owned(), |m| m.get().to_string())
        ),
        format!(
            "Assigned Client Identifier {}",
            if p.assigned_client_identifier.is_some() { "sent" } else { "none" }
        ),
        format!("Topic Alias Maximum {}", p.topic_alias_maximum.unwrap_or(0)),
        format!("Wildcard Subscription Available {}", flag(p.wildcard_subscription_available)),
        format!("Subscription Identifier Available {}", flag(p.subscription_identifiers_available)),
        format!("Shared Subscription Available {}", flag(p.shared_subscription_available)),
        format!("Server Keep Alive {}", p.server_keep_alive.map_or("as asked".to_owned(), |k| k.to_string())),
        format!("Response Information {}", if p.response_information.is_some() { "sent" } else { "none" }),
        format!("Server Reference {}", if p.server_reference.is_some() { "sent" } else { "none" }),
        format!("Reason String {}", if p.reason_string.is_some() { "sent" } else { "none" }),
        format!("User Properties {}", p.user_properties.len()),
    ]
}

// 3.2.2.3: the CONNACK properties tell the client the server's limits and what it supports; the
// server chooses them. Each broker's defaults, normalised by `connack_property_lines`.
#[test]
fn v5_3_2_2_3_connack_properties_advertised() {
    let common = |sent: &str, receive_maximum: &str, maximum_packet_size: &str| {
        vec![
            "c: CONNACK session present 0, 0x00".to_owned(),
            format!("c: sent: {sent}"),
            "c: Session Expiry Interval as asked".to_owned(),
            format!("c: Receive Maximum {receive_maximum}"),
            "c: Maximum QoS 2".to_owned(),
            "c: Retain Available 1".to_owned(),
            format!("c: Maximum Packet Size {maximum_packet_size}"),
            "c: Assigned Client Identifier none".to_owned(),
            "c: Topic Alias Maximum 10".to_owned(),
            "c: Wildcard Subscription Available 1".to_owned(),
            "c: Subscription Identifier Available 1".to_owned(),
            "c: Shared Subscription Available 1".to_owned(),
            "c: Server Keep Alive as asked".to_owned(),
            "c: Response Information none".to_owned(),
            "c: Server Reference none".to_owned(),
            "c: Reason String none".to_owned(),
            "c: User Properties 0".to_owned(),
        ]
    };
    let iothub = common(
        "Retain Available, Maximum Packet Size, Topic Alias Maximum, Wildcard Subscription Available, \
         Subscription Identifier Available, Shared Subscription Available",
        "65535",
        "1048576",
    );
    let mosquitto = common("Receive Maximum, Topic Alias Maximum", "20", "no limit");
    let iothub: Vec<&str> = iothub.iter().map(String::as_str).collect();
    let mosquitto: Vec<&str> = mosquitto.iter().map(String::as_str).collect();
    let why = "3.2.2.3 leaves the limits to the server: IoTHub's Receive Maximum is 65,535 \
               (server.receive_maximum) and its Maximum Packet Size 1 MiB (server.max_packet_size); \
               Mosquitto's Receive Maximum is its max_inflight_messages (20) and it sets no packet size";
    differs("CONNACK properties of a 5.0 CONNECT", why, &iothub, &mosquitto, |x| {
        let (c, connack) = connected5(x, "c", "diff5-connack", ConnectProperties::default());
        if let Some(connack) = connack {
            for line in connack_property_lines(&connack.properties.unwrap_or_default()) {
                c.note(&line);
            }
        }
    });
}

// [MQTT-3.1.4-3]: when a client identifier already connected connects again, the server sends
// the existing connection DISCONNECT with reason code 0x8E (Session taken over) and closes it.
// Mosquitto 2.0 closes the old connection without a DISCONNECT.
#[test]
fn v5_mqtt_3_1_4_3_takeover_sends_disconnect_0x8e() {
    let head = ["old: CONNACK session present 0, 0x00", "new: CONNACK session present 0, 0x00"];
    let iothub: Vec<&str> =
        head.iter().copied().chain(["old: e0 01 8e", "old: closed", "new: d0 00"]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["old: closed", "new: d0 00"]).collect();
    let why = "[MQTT-3.1.4-3] has the server send DISCONNECT 0x8E (Session taken over) to the existing \
               connection; Mosquitto 2.0 closes it without one";
    differs("takeover: DISCONNECT 0x8E to the old connection", why, &iothub, &mosquitto, |x| {
        let mut old = plain_client(x, "old", "diff5-take");
        let mut new = plain_client(x, "new", "diff5-take");
        if old.recv().is_some() {
            old.recv();
        }
        sync(&mut new);
    });
}

/// Both brokers with a Receive Maximum of 2: Mosquitto advertises its `max_inflight_messages`.
const RECEIVE_MAXIMUM_2: Setup =
    Setup { iothub: "[server]\nreceive_maximum = 2\n", mosquitto: "max_inflight_messages 2" };

// [MQTT-3.3.4-7]: a client must not have more than the server's Receive Maximum QoS 1 and 2
// PUBLISH packets unacknowledged; 3.3.4 goes on: a server that receives more "uses a DISCONNECT
// packet with Reason Code 0x93 (Receive Maximum exceeded)". Three QoS 2 PUBLISHes without PUBREL
// against a Receive Maximum of 2 (a subscriber exists, so that PUBREC has no 0x10).
#[test]
fn v5_mqtt_3_3_4_7_client_exceeding_receive_maximum_gets_disconnect_0x93() {
    let head = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "c: CONNACK session present 0, 0x00",
        "c: Receive Maximum 2",
        "c: 50 02 00 01",
        "c: 50 02 00 02",
    ];
    let iothub: Vec<&str> = head.iter().copied().chain(["c: e0 01 93", "c: closed"]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["c: 50 03 00 03 97", "c: d0 00"]).collect();
    let why = "3.3.4 has the server answer more than Receive Maximum unacknowledged QoS 1/2 PUBLISHes \
               with DISCONNECT 0x93; Mosquitto 2.0 answers PUBREC 0x97 (Quota exceeded) and stays connected";
    differs_in(
        RECEIVE_MAXIMUM_2,
        "client exceeding the server's Receive Maximum",
        why,
        &iothub,
        &mosquitto,
        |x| {
            let mut sub = plain_client(x, "sub", "diff5-rmax-sub");
            sub.send(&subscribe5(1, &[("rm/t", qos(0))], 0));
            sub.recv();
            let (mut c, connack) = connected5(x, "c", "diff5-rmax", ConnectProperties::default());
            let advertised = connack.and_then(|c| c.properties).and_then(|p| p.receive_maximum);
            c.note(&format!("Receive Maximum {}", advertised.map_or(65_535, NonZeroU16::get)));
            for id in 1..=3 {
                c.send(&plain5("rm/t", b"x", 2, false, id));
            }
            c.recv();
            c.recv();
            if c.recv().is_some_and(|packet| packet[0] == 0xE0) {
                c.recv();
            } else {
                sync(&mut c);
            }
        },
    );
}

// [MQTT-3.3.4-9]: the server must not send more than the client's Receive Maximum QoS 1 and 2
// PUBLISH packets unacknowledged. The subscriber's Receive Maximum is 1 and two QoS 1 messages
// wait for it: the second may only come after the PUBACK of the first.
#[test]
fn v5_mqtt_3_3_4_9_server_respects_client_receive_maximum_1() {
    let expected = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 01",
        "pub: CONNACK session present 0, 0x00",
        "pub: 40 02 00 01",
        "pub: 40 02 00 02",
        "sub: 32 0a 00 04 72 6d 2f 31 00 01 00 61",
        "sub: silent",
        "sub: 32 0a 00 04 72 6d 2f 31 00 02 00 62",
        "sub: d0 00",
    ];
    same("server respects the client's Receive Maximum 1 (QoS 1)", &expected, |x| {
        let properties =
            ConnectProperties { receive_maximum: NonZeroU16::new(1), ..ConnectProperties::default() };
        let (mut sub, _) = connected5(x, "sub", "diff5-rm1-sub", properties);
        sub.send(&subscribe5(1, &[("rm/1", qos(1))], 0));
        sub.recv();
        let mut publisher = plain_client(x, "pub", "diff5-rm1-pub");
        publisher.send(&plain5("rm/1", b"a", 1, false, 1));
        publisher.recv();
        publisher.send(&plain5("rm/1", b"b", 1, false, 2));
        publisher.recv();
        sub.recv();
        sub.either();
        sub.send(&ack5(Packet::PubAck, 1));
        sub.either();
        sub.send(&ack5(Packet::PubAck, 2));
        sync(&mut sub);
    });
}

// [MQTT-3.3.4-9], [MQTT-4.9.0-2]: with QoS 2 the send quota comes back at PUBCOMP, not at PUBREC.
// Receive Maximum 1 and two QoS 2 messages: after PUBREC the server answers PUBREL and still
// waits; the second PUBLISH comes after PUBCOMP.
#[test]
fn v5_mqtt_4_9_0_2_client_receive_maximum_1_qos2_quota_returns_at_pubcomp() {
    let expected = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 02",
        "pub: CONNACK session present 0, 0x00",
        "pub: 50 02 00 01",
        "pub: 70 02 00 01",
        "pub: 50 02 00 02",
        "pub: 70 02 00 02",
        "sub: 34 0a 00 04 72 6d 2f 32 00 01 00 61",
        "sub: silent",
        "sub: 62 02 00 01",
        "sub: silent",
        "sub: 34 0a 00 04 72 6d 2f 32 00 02 00 62",
    ];
    same("server respects the client's Receive Maximum 1 (QoS 2)", &expected, |x| {
        let properties =
            ConnectProperties { receive_maximum: NonZeroU16::new(1), ..ConnectProperties::default() };
        let (mut sub, _) = connected5(x, "sub", "diff5-rm2-sub", properties);
        sub.send(&subscribe5(1, &[("rm/2", qos(2))], 0));
        sub.recv();
        let mut publisher = plain_client(x, "pub", "diff5-rm2-pub");
        for (id, payload) in [(1, b"a"), (2, b"b")] {
            publisher.send(&plain5("rm/2", payload, 2, false, id));
            publisher.recv();
            publisher.send(&ack5(Packet::PubRel, id));
            publisher.recv();
        }
        sub.recv();
        sub.either();
        sub.send(&ack5(Packet::PubRec, 1));
        sub.recv();
        sub.either();
        sub.send(&ack5(Packet::PubComp, 1));
        sub.either();
    });
}

// [MQTT-3.3.4-9]: the same limit for messages queued while the session was offline. The
// subscriber resumes with Receive Maximum 1 and three QoS 1 messages waiting: one comes, the
// next only after its PUBACK.
#[test]
fn v5_mqtt_3_3_4_9_queued_messages_on_resume_respect_receive_maximum_1() {
    let expected = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 01",
        "sub: closed",
        "pub: CONNACK session present 0, 0x00",
        "pub: 40 02 00 01",
        "pub: 40 02 00 02",
        "pub: 40 02 00 03",
        "sub2: CONNACK session present 1, 0x00",
        "sub2: 32 0a 00 04 72 6d 2f 71 00 01 00 61",
        "sub2: silent",
        "sub2: 32 0a 00 04 72 6d 2f 71 00 02 00 62",
    ];
    let session = ConnectProperties {
        receive_maximum: NonZeroU16::new(1),
        session_expiry_interval: Some(60),
        ..ConnectProperties::default()
    };
    same("queued messages on resume with Receive Maximum 1", &expected, |x| {
        let (mut sub, _) = connected5(x, "sub", "diff5-rmq-sub", session.clone());
        sub.send(&subscribe5(1, &[("rm/q", qos(1))], 0));
        sub.recv();
        sub.send(&encode5(&Packet::Disconnect(Default::default())));
        sub.recv();
        let mut publisher = plain_client(x, "pub", "diff5-rmq-pub");
        for (id, payload) in [(1, b"a"), (2, b"b"), (3, b"c")] {
            publisher.send(&plain5("rm/q", payload, 1, false, id));
            publisher.recv();
        }
        let mut again = x.client("sub2");
        again.send(&connect5("diff5-rmq-sub", false, session.clone(), None));
        again.connack();
        again.recv();
        again.either();
        again.send(&ack5(Packet::PubAck, 1));
        again.recv();
    });
}

// [MQTT-3.3.4-9], [MQTT-4.9.0-1], [MQTT-4.4.0-1]: the send quota starts at the Receive Maximum of
// the new connection. A subscriber with three QoS 1 messages unacknowledged resumes its session
// with Receive Maximum 1: the three must be re-sent (4.4.0-1), but one at a time. Both brokers
// re-send all three at once, so both break [MQTT-3.3.4-9] here; the exchange pins what they do.
#[test]
fn v5_mqtt_3_3_4_9_resend_on_resume_with_smaller_receive_maximum() {
    // IoTHub re-sends one at a time, each after the PUBACK of the one before.
    let iothub = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 01",
        "pub: CONNACK session present 0, 0x00",
        "pub: 40 02 00 01",
        "pub: 40 02 00 02",
        "pub: 40 02 00 03",
        "sub: 32 0a 00 04 72 6d 2f 33 00 01 00 61",
        "sub: 32 0a 00 04 72 6d 2f 33 00 02 00 62",
        "sub: 32 0a 00 04 72 6d 2f 33 00 03 00 63",
        "sub2: CONNACK session present 1, 0x00",
        "sub2: 3a 0a 00 04 72 6d 2f 33 00 01 00 61",
        "sub2: silent",
        "sub2: 3a 0a 00 04 72 6d 2f 33 00 02 00 62",
        "sub2: 3a 0a 00 04 72 6d 2f 33 00 03 00 63",
        "sub2: d0 00",
    ];
    let mosquitto = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 01",
        "pub: CONNACK session present 0, 0x00",
        "pub: 40 02 00 01",
        "pub: 40 02 00 02",
        "pub: 40 02 00 03",
        "sub: 32 0a 00 04 72 6d 2f 33 00 01 00 61",
        "sub: 32 0a 00 04 72 6d 2f 33 00 02 00 62",
        "sub: 32 0a 00 04 72 6d 2f 33 00 03 00 63",
        "sub2: CONNACK session present 1, 0x00",
        "sub2: 3a 0a 00 04 72 6d 2f 33 00 01 00 61",
        "sub2: 3a 0a 00 04 72 6d 2f 33 00 02 00 62",
        "sub2: 3a 0a 00 04 72 6d 2f 33 00 03 00 63",
        "sub2: silent",
        "sub2: d0 00",
    ];
    let session = |receive_maximum: u16| ConnectProperties {
        receive_maximum: NonZeroU16::new(receive_maximum),
        session_expiry_interval: Some(60),
        ..ConnectProperties::default()
    };
    let why = "Mosquitto re-sends every unacknowledged PUBLISH at once, beyond the new connection's \
               Receive Maximum [MQTT-3.3.4-9]; IoTHub re-sends them as the window allows";
    differs(
        "resume with a smaller Receive Maximum than the messages in flight",
        why,
        &iothub,
        &mosquitto,
        |x| {
            let (mut sub, _) = connected5(x, "sub", "diff5-rm3-sub", session(3));
            sub.send(&subscribe5(1, &[("rm/3", qos(1))], 0));
            sub.recv();
            let mut publisher = plain_client(x, "pub", "diff5-rm3-pub");
            for (id, payload) in [(1, b"a"), (2, b"b"), (3, b"c")] {
                publisher.send(&plain5("rm/3", payload, 1, false, id));
                publisher.recv();
            }
            for _ in 0..3 {
                sub.recv();
            }
            drop(sub);
            let mut again = x.client("sub2");
            again.send(&connect5("diff5-rm3-sub", false, session(1), None));
            again.connack();
            again.recv();
            // Each PUBACK frees the one place of the window: what comes next, if anything.
            for id in 1..=3 {
                again.either();
                again.send(&ack5(Packet::PubAck, id));
            }
            sync(&mut again);
        },
    );
}

/// Waits for the will on `sub` until each of `checkpoints` after `closed`, recording "silent" for
/// each checkpoint passed without it, and the will when it comes.
fn will_arrival(sub: &mut Peer, closed: Instant, checkpoints: &[Duration]) {
    for &checkpoint in checkpoints {
        let left = (closed + checkpoint).saturating_duration_since(Instant::now());
        if sub.wait(left.max(Duration::from_millis(1))).is_some() {
            return;
        }
    }
}

/// A will client with this Session Expiry Interval and a will with this Will Delay Interval, on
/// `wd/t`; the connection is closed without DISCONNECT as soon as the CONNACK is in. Returns
/// when it closed.
fn will_client_closes(x: &Exchange, client_id: &str, session_expiry: u32, will_delay: u32) -> Instant {
    let mut w = x.client("w");
    let properties =
        ConnectProperties { session_expiry_interval: Some(session_expiry), ..ConnectProperties::default() };
    let delay = WillProperties { will_delay_interval: Some(will_delay), ..WillProperties::default() };
    w.send(&connect5(client_id, true, properties, Some(will("wd/t", b"gone", delay))));
    w.connack();
    drop(w);
    Instant::now()
}

// [MQTT-3.1.2-8]: the will is published when the connection closes "unless the Will Message has
// been deleted by the Server on receipt of a DISCONNECT packet with Reason Code 0x00", and
// [MQTT-3.14.4-3] deletes it on 0x00 only. A client that sends DISCONNECT 0x80 (Unspecified
// error) did not end normally: IoTHub publishes its will; Mosquitto 2.0 deletes the will on every
// DISCONNECT but 0x04. The subscriber waits 1.5 s for it.
#[test]
fn v5_mqtt_3_1_2_8_disconnect_with_an_error_code_publishes_the_will() {
    let head = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "w: CONNACK session present 0, 0x00",
    ];
    let iothub: Vec<&str> =
        head.iter().copied().chain(["sub: 30 0b 00 04 77 64 2f 74 00 67 6f 6e 65"]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["sub: silent"]).collect();
    let why = "[MQTT-3.1.2-8] and [MQTT-3.14.4-3] delete the will on DISCONNECT 0x00 only; Mosquitto 2.0 \
               deletes it on every DISCONNECT but 0x04";
    differs("DISCONNECT 0x80 from a client with a will", why, &iothub, &mosquitto, |x| {
        let mut sub = plain_client(x, "sub", "diff5-werr-sub");
        sub.send(&subscribe5(1, &[("wd/#", qos(0))], 0));
        sub.recv();
        let mut w = x.client("w");
        w.send(&connect5(
            "diff5-werr",
            true,
            ConnectProperties::default(),
            Some(will("wd/t", b"gone", WillProperties::default())),
        ));
        w.connack();
        let error = Disconnect { reason_code: ReasonCode::UnspecifiedError, properties: None };
        w.send(&encode5(&Packet::Disconnect(error)));
        let closed = Instant::now();
        will_arrival(&mut sub, closed, &[Duration::from_millis(1500)]);
    });
}

// [MQTT-3.1.3-9]: the server delays the will "until the Will Delay Interval has passed or the
// Session ends, whichever happens first". With Session Expiry Interval 0 the session ends when
// the connection closes (3.1.2.11.2), so a will with a 3 s delay is published at once.
#[test]
fn v5_mqtt_3_1_3_9_will_delay_with_session_expiry_0_publishes_at_once() {
    let head = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "w: CONNACK session present 0, 0x00",
    ];
    let will = "sub: 30 0b 00 04 77 64 2f 74 00 67 6f 6e 65";
    let iothub: Vec<&str> = head.iter().copied().chain([will]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["sub: silent", will]).collect();
    let why = "[MQTT-3.1.3-9] publishes the will when the session ends if that comes before the Will \
               Delay Interval, and Session Expiry 0 ends it with the connection; Mosquitto 2.0 waits \
               the whole delay";
    differs("Will Delay 3 s with Session Expiry 0", why, &iothub, &mosquitto, |x| {
        let mut sub = plain_client(x, "sub", "diff5-wd0-sub");
        sub.send(&subscribe5(1, &[("wd/#", qos(0))], 0));
        sub.recv();
        let closed = will_client_closes(x, "diff5-wd0", 0, 3);
        will_arrival(&mut sub, closed, &[Duration::from_millis(1500), WAIT]);
    });
}

// [MQTT-3.1.3-9]: Session Expiry Interval 1 s and Will Delay Interval 3 s: the session ends first,
// so the will is published after 1 s, not 3 s. The subscriber checks at 0.5 s (nothing yet: the
// session lasts 1 s) and at 2.6 s. Mosquitto counts the session's expiry in whole seconds and
// publishes after 1 to 2 s; IoTHub after 1 s.
#[test]
fn v5_mqtt_3_1_3_9_will_delay_longer_than_session_expiry_publishes_at_session_end() {
    let expected = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "w: CONNACK session present 0, 0x00",
        "sub: silent",
        "sub: 30 0b 00 04 77 64 2f 74 00 67 6f 6e 65",
    ];
    same("Will Delay 3 s with Session Expiry 1 s", &expected, |x| {
        let mut sub = plain_client(x, "sub", "diff5-wd1-sub");
        sub.send(&subscribe5(1, &[("wd/#", qos(0))], 0));
        sub.recv();
        let closed = will_client_closes(x, "diff5-wd1", 1, 3);
        will_arrival(&mut sub, closed, &[Duration::from_millis(500), Duration::from_millis(2600), WAIT]);
    });
}

// [MQTT-3.8.3-4]: "It is a Protocol Error to set the No Local bit to 1 on a Shared Subscription."
// A Protocol Error closes the connection, after DISCONNECT 0x82 (4.13.1).
#[test]
fn v5_mqtt_3_8_3_4_no_local_on_shared_subscription_is_protocol_error() {
    let head = ["c: CONNACK session present 0, 0x00"];
    let iothub: Vec<&str> = head.iter().copied().chain(["c: e0 01 82", "c: closed"]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["c: 90 04 00 01 00 00", "c: d0 00"]).collect();
    let why = "[MQTT-3.8.3-4] makes No Local on a shared subscription a Protocol Error; Mosquitto 2.0 \
               grants it";
    differs("No Local on a shared subscription", why, &iothub, &mosquitto, |x| {
        let mut c = plain_client(x, "c", "diff5-share-nl");
        let no_local = SubscriptionOptions { no_local: true, ..qos(0) };
        c.send(&subscribe5(1, &[("$share/g/nl/t", no_local)], 0));
        c.recv();
        sync(&mut c);
    });
}

// [MQTT-4.8.2-1], [MQTT-4.8.2-2]: a shared subscription's filter starts with "$share/", then a
// ShareName of at least one character, then "/" and a topic filter. "$share//x" has an empty
// ShareName and "$share/g" no topic filter. IoTHub refuses each with SUBACK 0x8F (Topic Filter
// invalid: "correctly formed but is not allowed", 3.9.3) and stays connected; Mosquitto 2.0
// grants both.
#[test]
fn v5_mqtt_4_8_2_1_malformed_shared_subscription_filters_refused() {
    let transcript = |a_code: &'static str, b_code: &'static str| {
        vec![
            "a: CONNACK session present 0, 0x00",
            a_code,
            "a: d0 00",
            "b: CONNACK session present 0, 0x00",
            b_code,
            "b: d0 00",
        ]
    };
    let iothub = transcript("a: 90 04 00 01 00 8f", "b: 90 04 00 01 00 8f");
    let mosquitto = transcript("a: 90 04 00 01 00 00", "b: 90 04 00 01 00 00");
    let why = "[MQTT-4.8.2-1] and [MQTT-4.8.2-2] require a ShareName of at least one character followed by \
               \"/\" and a topic filter; Mosquitto 2.0 grants $share//x and $share/g";
    differs("malformed shared subscription filters $share//x and $share/g", why, &iothub, &mosquitto, |x| {
        for (name, filter) in [("a", "$share//x"), ("b", "$share/g")] {
            let mut c = plain_client(x, name, &format!("diff5-share-{name}"));
            c.send(&subscribe5(1, &[(filter, qos(0))], 0));
            c.recv();
            sync(&mut c);
        }
    });
}

// [MQTT-3.2.2-17], 3.3.2.3.4: a Topic Alias greater than the Topic Alias Maximum the server sent
// is a Protocol Error answered with DISCONNECT 0x94 (Topic Alias invalid). Alias 10 (the maximum
// both advertise) is set and used first; then alias 11.
#[test]
fn v5_mqtt_3_2_2_17_topic_alias_beyond_maximum_gets_disconnect_0x94() {
    let expected = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "c: CONNACK session present 0, 0x00",
        "c: Topic Alias Maximum 10",
        "c: 40 02 00 01",
        "sub: 30 0a 00 04 74 61 2f 74 00 73 65 74",
        "c: 40 02 00 02",
        "sub: 30 0b 00 04 74 61 2f 74 00 75 73 65 64",
        "c: e0 01 94",
        "c: closed",
    ];
    same("topic alias beyond the maximum", &expected, |x| {
        let mut sub = plain_client(x, "sub", "diff5-alias-sub");
        sub.send(&subscribe5(1, &[("ta/#", qos(0))], 0));
        sub.recv();
        let (mut c, connack) = connected5(x, "c", "diff5-alias", ConnectProperties::default());
        let maximum = connack.and_then(|c| c.properties).and_then(|p| p.topic_alias_maximum);
        c.note(&format!("Topic Alias Maximum {}", maximum.unwrap_or(0)));
        let alias = |alias: u16| PublishProperties {
            topic_alias: NonZeroU16::new(alias),
            ..PublishProperties::default()
        };
        c.send(&publish5("ta/t", b"set", 1, false, 1, alias(10)));
        c.recv();
        sub.recv();
        c.send(&publish5("", b"used", 1, false, 2, alias(10)));
        c.recv();
        sub.recv();
        c.send(&publish5("ta/t", b"too far", 1, false, 3, alias(11)));
        c.recv();
        c.recv();
    });
}

// [MQTT-3.3.4-3], 3.8.2.1.2: the Subscription Identifier of a subscription is sent with every
// message it delivers, the retained message sent on subscribe as well as a live one.
#[test]
fn v5_mqtt_3_3_4_3_subscription_identifier_on_retained_and_live_delivery() {
    let expected = [
        "pub: CONNACK session present 0, 0x00",
        "pub: d0 00",
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "sub: 31 0c 00 04 73 69 2f 72 02 0b 07 6f 6c 64",
        "sub: 30 0c 00 04 73 69 2f 6c 02 0b 07 6e 65 77",
    ];
    same("Subscription Identifier on retained and live delivery", &expected, |x| {
        let mut publisher = plain_client(x, "pub", "diff5-subid-pub");
        publisher.send(&plain5("si/r", b"old", 0, true, 0));
        sync(&mut publisher);
        let mut sub = plain_client(x, "sub", "diff5-subid-sub");
        sub.send(&subscribe5(1, &[("si/#", qos(0))], 7));
        sub.recv();
        sub.recv();
        publisher.send(&plain5("si/l", b"new", 0, false, 0));
        sub.recv();
    });
}

// [MQTT-3.3.4-3], [MQTT-3.3.4-4], [MQTT-3.3.4-5]: with overlapping subscriptions that have
// Subscription Identifiers, a single copy of the message must carry the identifiers of all of
// them; if the server sends one copy per subscription, each carries its subscription's. IoTHub
// sends one copy with 7 and 9; Mosquitto 2.0 sends two, "si/+" (9) first, although in 3.1.1,
// without identifiers, it sends one (see tests/differential.rs).
#[test]
fn v5_mqtt_3_3_4_4_overlapping_subscriptions_and_their_identifiers() {
    let head = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "sub: 90 04 00 02 00 00",
        "pub: CONNACK session present 0, 0x00",
        "pub: d0 00",
    ];
    let iothub: Vec<&str> = head
        .iter()
        .copied()
        .chain(["sub: 30 0e 00 04 73 69 2f 6f 04 0b 07 0b 09 6f 6e 65", "sub: silent"])
        .collect();
    let mosquitto: Vec<&str> = head
        .iter()
        .copied()
        .chain([
            "sub: 30 0c 00 04 73 69 2f 6f 02 0b 09 6f 6e 65",
            "sub: 30 0c 00 04 73 69 2f 6f 02 0b 07 6f 6e 65",
        ])
        .collect();
    let why = "3.3.4 allows one copy with every identifier [MQTT-3.3.4-4] or one copy per subscription with \
               its own [MQTT-3.3.4-5]; IoTHub sends one, Mosquitto 2.0 two";
    differs("Subscription Identifiers of overlapping subscriptions", why, &iothub, &mosquitto, |x| {
        let mut sub = plain_client(x, "sub", "diff5-subids-sub");
        sub.send(&subscribe5(1, &[("si/#", qos(0))], 7));
        sub.recv();
        sub.send(&subscribe5(2, &[("si/+", qos(0))], 9));
        sub.recv();
        let mut publisher = plain_client(x, "pub", "diff5-subids-pub");
        publisher.send(&plain5("si/o", b"one", 0, false, 0));
        sync(&mut publisher);
        sub.recv();
        sub.quiet();
    });
}

// [MQTT-3.8.3-3]: with No Local, the server must not forward a message to the connection that
// published it; another client's message is forwarded. The subscriber's own message is QoS 0 and
// followed by PINGREQ, so it has been routed when PINGRESP comes (and would have come before
// "theirs").
#[test]
fn v5_mqtt_3_8_3_3_no_local() {
    let expected = [
        "c: CONNACK session present 0, 0x00",
        "c: 90 04 00 01 00 00",
        "c: d0 00",
        "other: CONNACK session present 0, 0x00",
        "other: 40 02 00 01",
        "c: 30 0d 00 04 6e 6c 2f 74 00 74 68 65 69 72 73",
        "c: silent",
    ];
    same("No Local", &expected, |x| {
        let mut c = plain_client(x, "c", "diff5-nolocal");
        c.send(&subscribe5(1, &[("nl/t", SubscriptionOptions { no_local: true, ..qos(0) })], 0));
        c.recv();
        c.send(&plain5("nl/t", b"mine", 0, false, 0));
        sync(&mut c);
        let mut other = plain_client(x, "other", "diff5-nolocal-other");
        other.send(&plain5("nl/t", b"theirs", 1, false, 1));
        other.recv();
        c.recv();
        c.quiet();
    });
}

// [MQTT-3.3.1-12], [MQTT-3.3.1-13]: with Retain As Published 1 a forwarded message keeps the
// RETAIN flag it was published with; with 0 the flag is cleared.
#[test]
fn v5_mqtt_3_3_1_13_retain_as_published() {
    let expected = [
        "rap: CONNACK session present 0, 0x00",
        "rap: 90 04 00 01 00 00",
        "plain: CONNACK session present 0, 0x00",
        "plain: 90 04 00 01 00 00",
        "pub: CONNACK session present 0, 0x00",
        "rap: 31 09 00 05 72 61 70 2f 74 00 78",
        "plain: 30 09 00 05 72 61 70 2f 74 00 78",
    ];
    same("Retain As Published", &expected, |x| {
        let mut rap = plain_client(x, "rap", "diff5-rap");
        rap.send(&subscribe5(
            1,
            &[("rap/t", SubscriptionOptions { retain_as_published: true, ..qos(0) })],
            0,
        ));
        rap.recv();
        let mut plain = plain_client(x, "plain", "diff5-rap-plain");
        plain.send(&subscribe5(1, &[("rap/t", qos(0))], 0));
        plain.recv();
        let mut publisher = plain_client(x, "pub", "diff5-rap-pub");
        publisher.send(&plain5("rap/t", b"x", 0, true, 0));
        rap.recv();
        plain.recv();
    });
}

// [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11]: Retain Handling 2 sends no retained message
// at subscribe; 1 sends them only for a subscription that did not exist; 0 always.
#[test]
fn v5_mqtt_3_3_1_11_retain_handling() {
    let retained = "sub: 31 08 00 04 72 68 2f 74 00 78";
    let expected = [
        "pub: CONNACK session present 0, 0x00",
        "pub: d0 00",
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 00",
        "sub: silent",
        "sub: 90 04 00 02 00 00",
        retained,
        "sub: 90 04 00 03 00 00",
        "sub: silent",
        "sub: 90 04 00 04 00 00",
        retained,
    ];
    same("Retain Handling 2, 1 and 0", &expected, |x| {
        let mut publisher = plain_client(x, "pub", "diff5-rh-pub");
        publisher.send(&plain5("rh/t", b"x", 0, true, 0));
        sync(&mut publisher);
        let mut sub = plain_client(x, "sub", "diff5-rh-sub");
        let handling = |retain_handling| SubscriptionOptions { retain_handling, ..qos(0) };
        sub.send(&subscribe5(1, &[("rh/t", handling(RetainHandling::DoNotSend))], 0));
        sub.recv();
        sub.quiet();
        sub.send(&subscribe5(2, &[("rh/+", handling(RetainHandling::SendAtNewSubscribe))], 0));
        sub.recv();
        sub.recv();
        sub.send(&subscribe5(3, &[("rh/+", handling(RetainHandling::SendAtNewSubscribe))], 0));
        sub.recv();
        sub.quiet();
        sub.send(&subscribe5(4, &[("rh/+", handling(RetainHandling::SendAtSubscribe))], 0));
        sub.recv();
        sub.recv();
    });
}

// [MQTT-3.11.3-1], 3.11.3: one UNSUBACK reason code per filter, in order: 0x00 for a
// subscription that was deleted, 0x11 (No subscription existed) for a filter that had none.
#[test]
fn v5_mqtt_3_11_3_1_unsuback_0x11_no_subscription_existed() {
    let expected = ["c: CONNACK session present 0, 0x00", "c: 90 04 00 01 00 00", "c: b0 05 00 02 00 00 11"];
    same("UNSUBACK 0x00 and 0x11", &expected, |x| {
        let mut c = plain_client(x, "c", "diff5-unsub");
        c.send(&subscribe5(1, &[("u/t", qos(0))], 0));
        c.recv();
        c.send(&unsubscribe5(2, &["u/t", "never/subscribed"]));
        c.recv();
    });
}

// 3.4.2.1, 3.5.2.1: PUBACK and PUBREC may carry 0x10 (No matching subscribers): "The message is
// accepted but there are no subscribers. This is sent only by the Server. If the Server knows
// that there are no matching subscribers, it MAY use this Reason Code instead of 0x00". A QoS 1
// and a QoS 2 message on a topic nobody subscribed to, then a QoS 1 message whose only matching
// subscription is the publisher's own, with No Local.
#[test]
fn v5_3_4_2_1_puback_0x10_no_matching_subscribers() {
    let head = ["c: CONNACK session present 0, 0x00"];
    let iothub: Vec<&str> = head
        .iter()
        .copied()
        .chain([
            "c: 40 03 00 01 10",
            "c: 50 03 00 02 10",
            "c: 70 02 00 02",
            "c: 90 04 00 03 00 00",
            "c: 40 03 00 04 10",
        ])
        .collect();
    let mosquitto: Vec<&str> = head
        .iter()
        .copied()
        .chain([
            "c: 40 03 00 01 10",
            "c: 50 02 00 02",
            "c: 70 02 00 02",
            "c: 90 04 00 03 00 00",
            "c: 40 02 00 04",
        ])
        .collect();
    let why = "0x10 is the server's choice (MAY); both send it in PUBACK for a topic nobody subscribed \
               to, IoTHub also in PUBREC and when the only match is the publisher's own No Local \
               subscription";
    differs("PUBACK/PUBREC 0x10 no matching subscribers", why, &iothub, &mosquitto, |x| {
        let mut c = plain_client(x, "c", "diff5-nomatch");
        c.send(&plain5("nobody/t", b"x", 1, false, 1));
        c.recv();
        c.send(&plain5("nobody/t", b"x", 2, false, 2));
        c.recv();
        c.send(&ack5(Packet::PubRel, 2));
        c.recv();
        c.send(&subscribe5(3, &[("self/t", SubscriptionOptions { no_local: true, ..qos(0) })], 0));
        c.recv();
        c.send(&plain5("self/t", b"x", 1, false, 4));
        c.recv();
    });
}

/// Records a QoS 1 PUBLISH whose Message Expiry Interval, `sent` when published, should have
/// counted down by `waited`: the packet in hex with its packet identifier (the server's choice,
/// [MQTT-2.2.1-4]) written as `.. ..` and the four bytes of the interval as `.. .. .. ..`, and
/// whether the interval was counted down (by between the whole seconds waited and one more).
/// Returns the packet identifier, to acknowledge it.
fn note_counted_down(peer: &mut Peer, sent: u32, waited: Duration) -> Option<u16> {
    let Seen::Packet(bytes) = peer.read(WAIT) else {
        peer.note("no PUBLISH");
        return None;
    };
    let Packet::Publish(publish) = decode5(&bytes) else {
        peer.note(&hex(&bytes));
        return None;
    };
    let (Some(id), Some(left)) =
        (publish.packet_id, publish.properties.as_ref().and_then(|p| p.message_expiry_interval))
    else {
        peer.note(&format!("{} without a packet identifier or Message Expiry Interval", hex(&bytes)));
        return None;
    };
    // Fixed header (two bytes for these small packets), topic, then the packet identifier.
    let id_at = 2 + 2 + publish.topic.len();
    let pattern = [&[0x02][..], &left.to_be_bytes()].concat();
    let expiry_at =
        bytes.windows(5).position(|w| w == pattern.as_slice()).or_fail("the interval in the packet") + 1;
    let mut line = hex(&bytes[..id_at]);
    line.push_str(" .. .. ");
    line.push_str(&hex(&bytes[id_at + 2..expiry_at]));
    line.push_str(" .. .. .. .. ");
    line.push_str(&hex(&bytes[expiry_at + 4..]));
    let whole = u32::try_from(waited.as_secs()).or_fail("seconds waited");
    if (sent.saturating_sub(whole + 1)..=sent - whole).contains(&left) {
        line.push_str(", counted down by the time it waited");
    } else {
        line.push_str(&format!(", {left} s left of {sent} s after {} ms", waited.as_millis()));
    }
    peer.note(&line);
    Some(id.get())
}

// [MQTT-3.3.2-6]: a PUBLISH the server sends carries the Message Expiry Interval "set to the
// received value minus the time that the Application Message has been waiting in the Server";
// [MQTT-3.3.2-5]: a message whose interval passed before onward delivery started is deleted.
// Two QoS 1 messages wait 2 s in an offline session: one with 1 s to live, one with 30 s.
#[test]
fn v5_mqtt_3_3_2_6_message_expiry_counts_down_on_a_queued_message() {
    let expected = [
        "sub: CONNACK session present 0, 0x00",
        "sub: 90 04 00 01 00 01",
        "sub: closed",
        "pub: CONNACK session present 0, 0x00",
        "pub: 40 02 00 01",
        "pub: 40 02 00 02",
        "sub2: CONNACK session present 1, 0x00",
        "sub2: 32 12 00 04 6d 65 2f 74 .. .. 05 02 .. .. .. .. 6c 6f 6e 67, counted down by the time it waited",
        "sub2: silent",
    ];
    let session = ConnectProperties { session_expiry_interval: Some(60), ..ConnectProperties::default() };
    same("Message Expiry Interval of a queued message", &expected, |x| {
        let (mut sub, _) = connected5(x, "sub", "diff5-expiry-sub", session.clone());
        sub.send(&subscribe5(1, &[("me/t", qos(1))], 0));
        sub.recv();
        sub.send(&encode5(&Packet::Disconnect(Default::default())));
        sub.recv();
        let mut publisher = plain_client(x, "pub", "diff5-expiry-pub");
        let expiry = |seconds| PublishProperties {
            message_expiry_interval: Some(seconds),
            ..PublishProperties::default()
        };
        publisher.send(&publish5("me/t", b"short", 1, false, 1, expiry(1)));
        publisher.recv();
        publisher.send(&publish5("me/t", b"long", 1, false, 2, expiry(30)));
        publisher.recv();
        let published = Instant::now();
        // Not a synchronisation: the intervals count time the messages wait, so time has to
        // pass, past the short one's second and into the long one's third.
        std::thread::sleep(Duration::from_millis(2200));
        let mut again = x.client("sub2");
        again.send(&connect5("diff5-expiry-sub", false, session.clone(), None));
        again.connack();
        if let Some(id) = note_counted_down(&mut again, 30, published.elapsed()) {
            again.send(&ack5(Packet::PubAck, id));
        }
        again.quiet();
    });
}

// 3.7.2.1: PUBCOMP reason code 0x92 (Packet Identifier not found) answers a PUBREL whose
// identifier the receiver does not know: "This is not an error during recovery, but at other
// times indicates a mismatch between the Session State on the Client and Server."
#[test]
fn v5_3_7_2_1_pubrel_unknown_id_gets_pubcomp_0x92() {
    let head = ["c: CONNACK session present 0, 0x00"];
    let iothub: Vec<&str> = head.iter().copied().chain(["c: 70 03 00 2a 92"]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["c: 70 02 00 2a"]).collect();
    let why = "3.7.2.1 gives 0x92 for an unknown identifier; Mosquitto 2.0 answers 0x00 (Success)";
    differs("PUBREL for an unknown packet id", why, &iothub, &mosquitto, |x| {
        let mut c = plain_client(x, "c", "diff5-pubrel");
        c.send(&ack5(Packet::PubRel, 42));
        c.recv();
    });
}
