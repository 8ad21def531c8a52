//! Session unit tests: a session driven with a fake clock and no sockets, in the manner of
//! quinn-proto's simulated pair. Time is an `Instant` the test moves by hand.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iothub_protocol::{
    decode, Packet, PacketId, ProtocolVersion, Publish, PublishResponse, QoS, Subscribe, SubscriptionOptions,
};
use tokio::time::Instant;

use super::{Action, Link, Session, SessionExpiry, SessionLimits, Will};
use crate::exit::Exit;
use crate::mailbox::{Mailbox, QueueLimits};
use crate::message::{Delivery, Message};

fn session(clean: bool) -> Session {
    let mailbox = Arc::new(Mailbox::new(1, QueueLimits::messages(100)));
    let limits = SessionLimits {
        max_subscriptions: 2,
        session_timeout: Some(Duration::from_secs(30)),
        retain_available: true,
        shared_available: true,
    };
    Session::new("client".into(), clean, mailbox, limits)
}

fn v3() -> Link {
    Link::v3(ProtocolVersion::V311, 20)
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn publish(qos: QoS, packet_id: Option<u16>, topic: &str) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: packet_id.map(id),
        payload: Bytes::from_static(b"p"),
        properties: None,
    })
}

fn actions(session: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| session.poll_action()).collect()
}

fn sent(session: &mut Session) -> Vec<Packet> {
    actions(session)
        .into_iter()
        .map(|action| match action {
            Action::Send(packet) => packet,
            other => panic!("expected only packets to send, got {other:?}"),
        })
        .collect()
}

/// Queues a QoS `qos` message and has the session send it; returns the packets written.
fn deliver(session: &mut Session, qos: QoS) -> Vec<Packet> {
    let message = Arc::new(Message::new("t".into(), Bytes::from_static(b"m"), qos, false));
    session.mailbox().push(Delivery::live(message, qos));
    let mut out = BytesMut::new();
    session.poll_transmit(&mut out, 20, usize::MAX, &mut Vec::new(), Instant::now()).unwrap_or_default();
    decode_all(&mut out)
}

fn decode_all(out: &mut BytesMut) -> Vec<Packet> {
    std::iter::from_fn(|| decode(out, ProtocolVersion::V311, usize::MAX).ok().flatten()).collect()
}

fn packet_id_of(packet: &Packet) -> Option<u16> {
    match packet {
        Packet::Publish(publish) => publish.packet_id.map(PacketId::get),
        _ => None,
    }
}

#[test]
fn mqtt_4_3_2_inbound_qos1_is_routed_with_its_puback_deferred() {
    let mut session = session(true);
    session.handle_packet(publish(QoS::AtLeastOnce, Some(7), "a/b"), Instant::now()).unwrap_or(());
    match actions(&mut session).as_slice() {
        [Action::Publish { message, ack: Some(Packet::PubAck(ack)) }] => {
            assert_eq!(&*message.topic, "a/b");
            assert_eq!(ack.packet_id.get(), 7);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mqtt_4_3_3_2_inbound_qos2_is_routed_once_and_released_by_pubrel() {
    let mut session = session(true);
    let now = Instant::now();
    session.handle_packet(publish(QoS::ExactlyOnce, Some(3), "t"), now).unwrap_or(());
    assert!(matches!(
        actions(&mut session).as_slice(),
        [Action::Publish { ack: Some(Packet::PubRec(_)), .. }]
    ));
    // A re-send before PUBREL is answered but not routed again.
    session.handle_packet(publish(QoS::ExactlyOnce, Some(3), "t"), now).unwrap_or(());
    assert!(matches!(sent(&mut session).as_slice(), [Packet::PubRec(_)]));
    session.handle_packet(Packet::PubRel(PublishResponse::new(id(3))), now).unwrap_or(());
    assert!(matches!(sent(&mut session).as_slice(), [Packet::PubComp(_)]));
    // After PUBREL the identifier is free: the same id is a new message.
    session.handle_packet(publish(QoS::ExactlyOnce, Some(3), "t"), now).unwrap_or(());
    assert!(matches!(actions(&mut session).as_slice(), [Action::Publish { .. }]));
}

#[test]
fn mqtt_4_3_outbound_qos1_and_qos2_exchanges() {
    let mut session = session(false);
    let now = Instant::now();
    let first = deliver(&mut session, QoS::AtLeastOnce);
    let qos1 = packet_id_of(&first[0]).unwrap_or(0);
    let second = deliver(&mut session, QoS::ExactlyOnce);
    let qos2 = packet_id_of(&second[0]).unwrap_or(0);
    assert_ne!(qos1, qos2);
    assert_eq!(session.inflight_len(), 2);
    session.handle_packet(Packet::PubAck(PublishResponse::new(id(qos1))), now).unwrap_or(());
    assert_eq!(session.inflight_len(), 1);
    session.handle_packet(Packet::PubRec(PublishResponse::new(id(qos2))), now).unwrap_or(());
    assert!(matches!(sent(&mut session).as_slice(), [Packet::PubRel(rel)] if rel.packet_id.get() == qos2));
    session.handle_packet(Packet::PubComp(PublishResponse::new(id(qos2))), now).unwrap_or(());
    assert_eq!(session.inflight_len(), 0);
}

#[test]
fn mqtt_4_4_0_1_resend_after_takeover_keeps_ids_and_order_with_dup() {
    let mut session = session(false);
    let now = Instant::now();
    let ids: Vec<u16> =
        (0..3).filter_map(|_| packet_id_of(&deliver(&mut session, QoS::ExactlyOnce)[0])).collect();
    session.handle_packet(Packet::PubRec(PublishResponse::new(id(ids[0]))), now).unwrap_or(());
    let _ = actions(&mut session);
    // The connection ends; a new one attaches to the same session and re-sends.
    session.attach(60, None, v3(), now);
    let mut out = BytesMut::new();
    session.resend_inflight(&mut out, now).unwrap_or(());
    let resent = decode_all(&mut out);
    assert!(matches!(&resent[0], Packet::PubRel(rel) if rel.packet_id.get() == ids[0]));
    for (packet, expected) in resent[1..].iter().zip(&ids[1..]) {
        match packet {
            Packet::Publish(publish) => {
                assert!(publish.dup, "[MQTT-3.3.1-1] a re-send has DUP=1");
                assert_eq!(publish.packet_id.map(PacketId::get), Some(*expected));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn packet_ids_wrap_around_skipping_those_in_flight() {
    let mut session = session(false);
    let now = Instant::now();
    let stuck = packet_id_of(&deliver(&mut session, QoS::AtLeastOnce)[0]).unwrap_or(0);
    assert_eq!(stuck, 1);
    for _ in 0..65_534 {
        let sent = deliver(&mut session, QoS::AtLeastOnce);
        let n = packet_id_of(&sent[0]).unwrap_or(0);
        session.handle_packet(Packet::PubAck(PublishResponse::new(id(n))), now).unwrap_or(());
    }
    // The next identifier wraps past 65535 and skips 1, still in flight.
    assert_eq!(packet_id_of(&deliver(&mut session, QoS::AtLeastOnce)[0]), Some(2));
}

#[test]
fn mqtt_3_1_2_24_keep_alive_expires_on_a_fake_clock() {
    let mut session = session(true);
    let start = Instant::now();
    session.attach(10, None, v3(), start);
    assert_eq!(session.poll_timeout(), Some(start + Duration::from_secs(15)));
    assert!(session.handle_timeout(start + Duration::from_secs(14)).is_ok());
    session.handle_packet(Packet::PingReq, start + Duration::from_secs(14)).unwrap_or(());
    assert!(matches!(sent(&mut session).as_slice(), [Packet::PingResp]));
    assert!(session.handle_timeout(start + Duration::from_secs(28)).is_ok());
    assert!(matches!(session.handle_timeout(start + Duration::from_secs(29)), Err(Exit::KeepAliveTimeout)));
}

#[test]
fn mqtt_3_1_2_8_will_is_due_on_abnormal_close_and_not_after_disconnect() {
    let will_packet = iothub_protocol::Will {
        topic: "status/client".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: None,
    };
    let mut session = session(true);
    let now = Instant::now();
    session.attach(0, Will::from_connect(&will_packet), v3(), now);
    let will = session.take_will(&Exit::KeepAliveTimeout, now);
    assert_eq!(will.map(|m| m.topic.to_string()), Some("status/client".to_owned()));
    session.attach(0, Will::from_connect(&will_packet), v3(), now);
    assert!(matches!(
        session.handle_packet(Packet::Disconnect(Default::default()), now),
        Err(Exit::Disconnect)
    ));
    assert!(session.take_will(&Exit::Disconnect, now).is_none(), "[MQTT-3.1.2-10]");
    session.attach(0, Will::from_connect(&will_packet), v3(), now);
    assert!(
        session.take_will(&Exit::TakenOver, now).is_some(),
        "a takeover closes the old connection abnormally"
    );
}

#[test]
fn session_expiry_follows_the_clean_flag() {
    assert_eq!(session(true).expiry(), SessionExpiry::OnClose);
    let now = Instant::now();
    let persistent = session(false).expiry();
    assert_eq!(persistent.deadline(now), Some(now + Duration::from_secs(30)));
}

#[test]
fn mqtt_3_8_4_3_subscribe_is_linear_and_bounded_by_max_subscriptions() {
    let mut session = session(true);
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: Default::default(),
    };
    let filters = ["a", "b", "a", "c"].iter().map(|f| ((*f).into(), options)).collect();
    session
        .handle_packet(
            Packet::Subscribe(Subscribe { packet_id: id(1), filters, properties: None }),
            Instant::now(),
        )
        .unwrap_or(());
    let taken = actions(&mut session);
    let subscribed: Vec<&str> = taken
        .iter()
        .filter_map(|a| match a {
            Action::Subscribe { filter, .. } => Some(&**filter),
            _ => None,
        })
        .collect();
    // "a" twice: a subscription and its replacement; "c" is over the limit of 2.
    assert_eq!(subscribed, ["a", "b", "a"]);
    match taken.last() {
        Some(Action::Send(Packet::SubAck(suback))) => {
            let codes: Vec<u8> = suback.reason_codes.iter().map(|c| c.v3_suback_code()).collect();
            assert_eq!(codes, [1, 1, 1, 0x80]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_only_packets_and_a_second_connect_are_violations() {
    let mut session = session(true);
    let result = session.handle_packet(Packet::PingResp, Instant::now());
    assert!(matches!(result, Err(Exit::Violation(_))));
}

/// A 5.0 link with every limit generous unless a test narrows it.
fn v5() -> Link {
    Link {
        version: ProtocolVersion::V5,
        max_inflight: 20,
        max_packet_size: usize::MAX,
        client_alias_max: 0,
        server_alias_max: 10,
        receive_maximum: 65_535,
        problem_information: true,
    }
}

fn reason_of(packet: &Packet) -> Option<iothub_protocol::ReasonCode> {
    match packet {
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => Some(r.reason_code),
        _ => None,
    }
}

/// 3.7.2.1: PUBCOMP 0x92 for a PUBREL whose identifier is unknown; 0x00 for one owed across a
/// reconnect, since the identifiers awaiting PUBREL belong to the session.
#[test]
fn v5_pubrel_for_an_unknown_identifier_gets_pubcomp_0x92_and_an_owed_one_0x00() {
    use iothub_protocol::ReasonCode;
    let mut session = session(false);
    let now = Instant::now();
    session.attach(0, None, v5(), now);
    session.handle_packet(publish(QoS::ExactlyOnce, Some(9), "t"), now).unwrap_or(());
    let _ = actions(&mut session);
    session.attach(0, None, v5(), now);
    session.handle_packet(Packet::PubRel(PublishResponse::new(id(9))), now).unwrap_or(());
    assert_eq!(sent(&mut session).iter().map(reason_of).collect::<Vec<_>>(), [Some(ReasonCode::Success)]);
    session.handle_packet(Packet::PubRel(PublishResponse::new(id(9))), now).unwrap_or(());
    assert_eq!(
        sent(&mut session).iter().map(reason_of).collect::<Vec<_>>(),
        [Some(ReasonCode::PacketIdentifierNotFound)]
    );
}

/// 4.3.3: a PUBREC with a reason code of 0x80 or more ends the exchange; no PUBREL is sent.
#[test]
fn v5_pubrec_with_an_error_code_ends_the_exchange() {
    let mut session = session(false);
    let now = Instant::now();
    session.attach(0, None, v5(), now);
    let message = Arc::new(Message::new("t".into(), Bytes::from_static(b"m"), QoS::ExactlyOnce, false));
    session.mailbox().push(Delivery::live(message, QoS::ExactlyOnce));
    let mut out = BytesMut::new();
    session.poll_transmit(&mut out, 20, usize::MAX, &mut Vec::new(), now).unwrap_or(());
    assert_eq!(session.inflight_len(), 1);
    let refused = PublishResponse {
        packet_id: id(1),
        reason_code: iothub_protocol::ReasonCode::QuotaExceeded,
        properties: None,
    };
    session.handle_packet(Packet::PubRec(refused), now).unwrap_or(());
    assert!(sent(&mut session).is_empty());
    assert_eq!(session.inflight_len(), 0);
}

/// [MQTT-3.3.4-7]: a QoS 2 PUBLISH beyond the server's Receive Maximum ends the connection
/// with a rule whose reason code is 0x93.
#[test]
fn mqtt_5_3_3_4_7_more_inbound_qos2_than_the_receive_maximum_is_an_error() {
    let mut session = session(false);
    let now = Instant::now();
    session.attach(0, None, Link { receive_maximum: 2, ..v5() }, now);
    for n in 1..=2 {
        assert!(session.handle_packet(publish(QoS::ExactlyOnce, Some(n), "t"), now).is_ok());
    }
    // A re-send of one awaiting PUBREL is not a new one.
    assert!(session.handle_packet(publish(QoS::ExactlyOnce, Some(2), "t"), now).is_ok());
    match session.handle_packet(publish(QoS::ExactlyOnce, Some(3), "t"), now) {
        Err(exit) => {
            assert_eq!(exit.reason_code(), Some(iothub_protocol::ReasonCode::ReceiveMaximumExceeded))
        }
        Ok(()) => panic!("a third QoS 2 PUBLISH was accepted"),
    }
}
