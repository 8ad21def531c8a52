//! MQTT 5.0 features a server may turn off, and the Reason String of the server's DISCONNECT,
//! over raw packets.
//!
//! - `server.retain_available = false`: CONNACK says Retain Available 0 (3.2.2.3.5); a retained
//!   PUBLISH gets DISCONNECT 0x9A, a retained will CONNACK 0x9A.
//! - `server.shared_subscription_available = false`: CONNACK says Shared Subscription Available
//!   0 (3.2.2.3.13); a `$share/` SUBSCRIBE gets DISCONNECT 0x9E (3.1.1: SUBACK 0x80).

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use iothub_protocol::{
    decode, ConnAck, Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, Will,
};
use iothub_test_util::{connect_packet, subscribe_packet, RawClient, TestBroker, CONNACK_ACCEPTED};

use iothub_test_util::v5_client::{encode_v5 as encode, read_v5 as read};

fn connect(client_id: &str, will: Option<Will>) -> Vec<u8> {
    encode(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will,
        username: None,
        password: None,
        properties: None,
    })))
}

fn connected(broker: &TestBroker, client_id: &str) -> (RawClient, ConnAck) {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(client_id, None));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::Success);
    (client, connack)
}

fn disconnect_of(client: &mut RawClient) -> (ReasonCode, String) {
    let Packet::Disconnect(disconnect) = read(client) else { panic!("expected DISCONNECT") };
    let text = disconnect.properties.and_then(|p| p.reason_string).map(|s| s.to_string());
    (disconnect.reason_code, text.unwrap_or_default())
}

fn retained_publish(topic: &str) -> Vec<u8> {
    encode(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: topic.into(),
        packet_id: None,
        payload: Bytes::from_static(b"kept"),
        properties: None,
    }))
}

fn subscribe(filter: &str) -> Vec<u8> {
    encode(&Packet::Subscribe(Subscribe {
        packet_id: PacketId::MIN,
        filters: vec![(filter.into(), SubscriptionOptions::default())],
        properties: None,
    }))
}

/// 3.2.2.3.5: with retain off, CONNACK says Retain Available 0 and a retained PUBLISH is
/// answered with DISCONNECT 0x9A, whose Reason String says why.
#[test]
fn retain_not_available_gets_disconnect_0x9a() {
    let broker = TestBroker::with_config("[server]\nretain_available = false\n");
    let (mut client, connack) = connected(&broker, "retainer");
    assert_eq!(connack.properties.unwrap().retain_available, Some(false));
    client.send(&retained_publish("t"));
    let (code, text) = disconnect_of(&mut client);
    assert_eq!(code, ReasonCode::RetainNotSupported);
    assert!(text.contains("Retain Available"), "{text}");
    client.expect_closed();
}

/// 3.2.2.3.5: with retain on (the default), CONNACK says Retain Available 1.
#[test]
fn retain_available_is_advertised_by_default() {
    let broker = TestBroker::start();
    let (_client, connack) = connected(&broker, "default");
    let properties = connack.properties.unwrap();
    assert_eq!(properties.retain_available, Some(true));
    assert_eq!(properties.shared_subscription_available, Some(true));
    assert_eq!(properties.wildcard_subscription_available, Some(true));
    assert_eq!(properties.subscription_identifiers_available, Some(true));
}

/// 3.2.2.3.5: a retained will, with retain off, is refused with CONNACK 0x9A.
#[test]
fn a_retained_will_without_retain_available_gets_connack_0x9a() {
    let broker = TestBroker::with_config("[server]\nretain_available = false\n");
    let mut client = RawClient::connect(broker.addr);
    let will = Will {
        topic: "status".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: None,
    };
    client.send(&connect("will-retainer", Some(will)));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::RetainNotSupported);
    client.expect_closed();
}

/// 3.2.2.3.13: with shared subscriptions off, CONNACK says so and a `$share/` SUBSCRIBE gets
/// DISCONNECT 0x9E.
#[test]
fn shared_subscriptions_not_available_get_disconnect_0x9e() {
    let broker = TestBroker::with_config("[server]\nshared_subscription_available = false\n");
    let (mut client, connack) = connected(&broker, "sharer");
    assert_eq!(connack.properties.unwrap().shared_subscription_available, Some(false));
    client.send(&subscribe("$share/g/t"));
    let (code, _) = disconnect_of(&mut client);
    assert_eq!(code, ReasonCode::SharedSubscriptionsNotSupported);
    client.expect_closed();
    // Plain subscriptions still work.
    let (mut client, _) = connected(&broker, "plain");
    client.send(&subscribe("t/#"));
    let Packet::SubAck(suback) = read(&mut client) else { panic!("expected SUBACK") };
    assert_eq!(suback.reason_codes, [ReasonCode::Success]);
}

/// A 3.1.1 client's `$share/` filter, with shared subscriptions off, is refused in SUBACK
/// (0x80), since 3.1.1 has no reason code for it.
#[test]
fn shared_subscriptions_not_available_refuse_a_3_1_1_filter_with_0x80() {
    let broker = TestBroker::with_config("[server]\nshared_subscription_available = false\n");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("v3-sharer", true, 60));
    client.expect(&CONNACK_ACCEPTED);
    client.send(&subscribe_packet(1, &[("$share/g/t", 1), ("t", 1)]));
    client.expect(&[0x90, 4, 0, 1, 0x80, 1]);
}

/// 4.13: the server's DISCONNECT for a protocol error carries a Reason String that names the
/// broken rule.
#[test]
fn a_protocol_error_disconnect_names_the_rule_in_its_reason_string() {
    let broker = TestBroker::start();
    let (mut client, _) = connected(&broker, "wrong");
    // A second CONNECT [MQTT-3.1.0-2].
    client.send(&connect("wrong", None));
    let (code, text) = disconnect_of(&mut client);
    assert_eq!(code, ReasonCode::ProtocolError);
    assert!(text.contains("[MQTT-3.1.0-2]"), "{text}");
    client.expect_closed();
}

/// 3.1.2.11.7: a client that sets Request Problem Information to 0 gets no Reason String on a
/// SUBACK; one that leaves it at 1 does (here, for a filter refused by `max_subscriptions`).
#[test]
fn request_problem_information_0_leaves_the_suback_reason_string_out() {
    let broker = TestBroker::with_config("[server]\nmax_subscriptions = 1\n");
    for (problem_information, expected) in [(None, true), (Some(false), false)] {
        let mut client = RawClient::connect(broker.addr);
        let properties = iothub_protocol::ConnectProperties {
            request_problem_information: problem_information,
            ..Default::default()
        };
        client.send(&encode(&Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 60,
            client_id: format!("problem-{expected}").as_str().into(),
            will: None,
            username: None,
            password: None,
            properties: Some(Box::new(properties)),
        }))));
        let Packet::ConnAck(_) = read(&mut client) else { panic!("expected CONNACK") };
        client.send(&encode(&Packet::Subscribe(Subscribe {
            packet_id: PacketId::MIN,
            filters: vec![
                ("a".into(), SubscriptionOptions::default()),
                ("b".into(), SubscriptionOptions::default()),
            ],
            properties: None,
        })));
        let Packet::SubAck(suback) = read(&mut client) else { panic!("expected SUBACK") };
        assert_eq!(suback.reason_codes, [ReasonCode::Success, ReasonCode::QuotaExceeded]);
        let reason = suback.properties.and_then(|p| p.reason_string);
        assert_eq!(reason.is_some(), expected, "{reason:?}");
    }
}

/// [MQTT-3.1.2-24]: the CONNACK fits the client's Maximum Packet Size: the properties whose
/// absence means the same ("Available" = 1) are left out to make it fit, and a client whose
/// maximum not even the shortest CONNACK fits is closed without one.
#[test]
fn mqtt_5_3_1_2_24_connack_fits_the_clients_maximum_packet_size() {
    let broker = TestBroker::start();
    for (maximum, fits) in [(16u32, true), (10, false)] {
        let mut client = RawClient::connect(broker.addr);
        let properties = iothub_protocol::ConnectProperties {
            maximum_packet_size: std::num::NonZeroU32::new(maximum),
            ..Default::default()
        };
        client.send(&encode(&Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 60,
            client_id: format!("small-{maximum}").as_str().into(),
            will: None,
            username: None,
            password: None,
            properties: Some(Box::new(properties)),
        }))));
        if !fits {
            client.expect_closed();
            continue;
        }
        let bytes = client.read_packet();
        assert!(bytes.len() <= maximum as usize, "{} bytes", bytes.len());
        let mut buf = BytesMut::from(&bytes[..]);
        let Some(Packet::ConnAck(connack)) = decode(&mut buf, ProtocolVersion::V5, usize::MAX).unwrap()
        else {
            panic!("expected CONNACK")
        };
        assert_eq!(connack.reason_code, ReasonCode::Success);
        let properties = connack.properties.unwrap();
        assert_eq!(properties.retain_available, None, "absent means available");
        assert_eq!(properties.topic_alias_maximum, Some(10));
    }
}

/// 3.2.2.2, [MQTT-3.1.4-1]: a 5.0 CONNECT the server cannot accept as sent is answered with a
/// CONNACK carrying the reason (0x82 for a property given twice, 0x95 for a packet above the
/// server's maximum) before the close; a 3.1.1 one is closed without CONNACK, as before.
#[test]
fn a_bad_5_0_connect_gets_a_connack_with_its_reason_code() {
    let broker = TestBroker::with_config("[server]\nmax_packet_size = 64\n");
    // CONNECT "MQTT" 5, clean start, keep-alive 60, properties: Session Expiry Interval twice.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 10];
    body.extend([0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2]);
    body.extend([0, 1, b'x']);
    let mut twice = vec![0x10, u8::try_from(body.len()).unwrap()];
    twice.extend(&body);
    let mut client = RawClient::connect(broker.addr);
    client.send(&twice);
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::ProtocolError);
    client.expect_closed();

    let long = "l".repeat(100);
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(&long, None));
    let Packet::ConnAck(connack) = read(&mut client) else { panic!("expected CONNACK") };
    assert_eq!(connack.reason_code, ReasonCode::PacketTooLarge);
    client.expect_closed();
}
