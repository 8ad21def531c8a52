//! MQTT 5.0 statements that no other file names: a shared subscription's message refused with
//! PUBACK or PUBREC 0x80 goes to no other member, Request Problem Information 0, no DISCONNECT
//! before CONNACK, one CONNACK per connection, one UNSUBACK for an UNSUBSCRIBE of several
//! filters, the QoS of a delivery (the lower of the publication's and the subscription's), DUP 0
//! on every QoS 0 PUBLISH, an UNSUBSCRIBE that does not stop deliveries already started, a
//! shared QoS 2 delivery completed when its member reconnects, a session discarded once its
//! expiry interval has passed, no AUTH for a client that named no method, Reason Strings left
//! out to fit the client's Maximum Packet Size, and QoS 2 exchanges that outlive the message's
//! expiry.
//!
//! Each test names the 5.0 statement it checks, `mqtt5_` and its number (5.0 numbering, which
//! differs from 3.1.1's). Every test runs the broker on the paused clock: silence is checked in
//! virtual time, which passes only once the broker has nothing left to do.

mod v5_support;

use std::num::NonZeroU32;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{
    Auth, AuthProperties, Connect, ConnectProperties, Packet, PayloadFormat, ProtocolVersion,
    PublishProperties, QoS, ReasonCode, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use iothub_test_util::{OrFail, PausedBroker, PausedClient, Seen, WAIT};
use v5_support::{
    connect, connect_with, decode, encode, expiry, pid, properties_of, publish, response, user_properties,
    with, Client,
};

/// Long enough, in virtual time, for the broker to send anything it was going to send.
const QUIET: Duration = Duration::from_secs(1);

/// Everything the broker sends on `raw` until it closes the connection, decoded as 5.0
/// packets; fails the test if the connection is still open after `WAIT` of virtual time.
async fn packets_until_closed(raw: &mut PausedClient) -> Vec<Packet> {
    let mut bytes = BytesMut::new();
    loop {
        match raw.read_within(WAIT).await {
            Seen::Bytes(chunk) => bytes.extend_from_slice(&chunk),
            Seen::Closed => break,
            Seen::Silent => panic!("still open after {WAIT:?}, having sent {bytes:02x?}"),
        }
    }
    let mut packets = Vec::new();
    while !bytes.is_empty() {
        let packet = iothub_protocol::decode(&mut bytes, ProtocolVersion::V5, usize::MAX)
            .or_fail("decoding what the broker sent before the close")
            .or_fail("a partial packet before the close");
        packets.push(packet);
    }
    packets
}

/// An UNSUBSCRIBE of `filters`.
fn unsubscribe_packet(packet_id: u16, filters: &[&str]) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(packet_id),
        filters: filters.iter().map(|f| (*f).into()).collect(),
        properties: None,
    })
}

/// A SUBSCRIBE of each filter at its QoS, in one packet.
fn subscribe_all(packet_id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(packet_id),
        filters: filters
            .iter()
            .map(|(filter, qos)| ((*filter).into(), SubscriptionOptions { qos: *qos, ..Default::default() }))
            .collect(),
        properties: None,
    })
}

/// CONNECT properties with Request Problem Information 0.
fn no_problem_information() -> ConnectProperties {
    ConnectProperties { request_problem_information: Some(false), ..ConnectProperties::default() }
}

// --- Shared subscriptions (4.8.2) ---

/// [MQTT-4.8.2-6]: a member of a shared subscription that answers a PUBLISH with PUBACK 0x80
/// (Unspecified error) has the message discarded: it is not sent to another member, not even
/// when the refusing member's session ends. A message the member left unacknowledged is, by
/// contrast, handed to the other member when its session ends (section 4.8.2), so the end of the
/// session is seen to be the path that would have re-sent the refused one. Later messages still
/// reach the remaining member.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_8_2_6_puback_0x80_from_a_shared_member_is_not_sent_to_another_member() {
    let broker =
        PausedBroker::with_config("[server]\nshared_subscription_strategy = \"round_robin\"\n").await;
    let mut refuser = Client::clean(&broker, "refuser").await;
    refuser.subscribe(1, "$share/g/refused/t", QoS::AtLeastOnce, None).await;
    let mut other = Client::clean(&broker, "other").await;
    other.subscribe(1, "$share/g/refused/t", QoS::AtLeastOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, payload) in (1..).zip([b"m1", b"m2", b"m3", b"m4"]) {
        let code = publisher.publish(publish("refused/t", payload, QoS::AtLeastOnce, n)).await;
        assert_eq!(code, ReasonCode::Success);
    }
    // Round robin: two each.
    let refused = refuser.expect_publish().await;
    let unacknowledged = refuser.expect_publish().await;
    for _ in 0..2 {
        other.next_message().await;
    }
    let id = refused.packet_id.expect("a QoS 1 packet identifier");
    refuser.send(&response(Packet::PubAck, id, ReasonCode::UnspecifiedError)).await;
    refuser.ping().await;
    refuser.drop_connection();

    let handed_over = other.next_message().await;
    assert_eq!(handed_over.payload, unacknowledged.payload, "the unacknowledged message is handed over");
    other.expect_silence(QUIET).await;
    assert_eq!(
        publisher.publish(publish("refused/t", b"m5", QoS::AtLeastOnce, 5)).await,
        ReasonCode::Success
    );
    assert_eq!(&other.next_message().await.payload[..], b"m5");
    other.expect_silence(QUIET).await;
}

/// [MQTT-4.8.2-6]: a member of a shared subscription that answers a QoS 2 PUBLISH with PUBREC
/// 0x80 has the message discarded: it is not re-sent to the member when it resumes its session,
/// and not sent to the other member, then or when the refusing member's session ends. Later
/// messages reach the remaining member.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_8_2_6_pubrec_0x80_from_a_shared_member_is_not_sent_to_another_member() {
    let broker =
        PausedBroker::with_config("[server]\nshared_subscription_strategy = \"round_robin\"\n").await;
    let mut refuser = Client::connected(&broker, connect_with("refuser", true, expiry(60))).await;
    refuser.subscribe(1, "$share/g/refused2/t", QoS::ExactlyOnce, None).await;
    let mut other = Client::clean(&broker, "other").await;
    other.subscribe(1, "$share/g/refused2/t", QoS::ExactlyOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, payload) in (1..).zip([b"m1", b"m2"]) {
        let code = publisher.publish(publish("refused2/t", payload, QoS::ExactlyOnce, n)).await;
        assert_eq!(code, ReasonCode::Success);
    }
    // Round robin: one each.
    let refused = refuser.expect_publish().await;
    assert_eq!(refused.qos, QoS::ExactlyOnce);
    other.next_message().await;
    let id = refused.packet_id.expect("a QoS 2 packet identifier");
    refuser.send(&response(Packet::PubRec, id, ReasonCode::UnspecifiedError)).await;
    refuser.ping().await;
    refuser.drop_connection();
    other.expect_silence(QUIET).await;

    let (mut refuser, connack) = Client::open(&broker, connect_with("refuser", false, expiry(0))).await;
    assert!(connack.session_present);
    refuser.expect_silence(QUIET).await;
    refuser.disconnect().await;
    other.expect_silence(QUIET).await;
    assert_eq!(
        publisher.publish(publish("refused2/t", b"m3", QoS::ExactlyOnce, 3)).await,
        ReasonCode::Success
    );
    assert_eq!(&other.next_message().await.payload[..], b"m3");
    other.expect_silence(QUIET).await;
}

// --- Request Problem Information (3.1.2.11.7) ---

/// [MQTT-3.1.2-29]: with Request Problem Information 0 in CONNECT, the server sends no Reason
/// String or User Properties on a packet other than PUBLISH, CONNACK or DISCONNECT. A payload
/// that is not UTF-8 though its Payload Format Indicator says it is gets PUBACK or PUBREC 0x99,
/// and a SUBSCRIBE beyond `server.max_subscriptions` SUBACK 0x97: with a Reason String for a
/// client that did not set Request Problem Information (the default is 1), without one, nor
/// any User Property, for a client that set it to 0. The PUBLISH packets the latter receives
/// keep their User Properties.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_29_no_reason_string_on_acknowledgements_without_problem_information() {
    let broker = PausedBroker::with_config("[server]\nmax_subscriptions = 1\n").await;
    let utf8 =
        PublishProperties { payload_format_indicator: Some(PayloadFormat::Utf8), ..Default::default() };
    let bad = [0xC3, 0x28];
    for (client_id, properties, told) in
        [("told", ConnectProperties::default(), true), ("not-told", no_problem_information(), false)]
    {
        let mut client = Client::connected(&broker, connect_with(client_id, true, properties)).await;

        client.send_publish(&with(publish("rpi/bad", &bad, QoS::AtLeastOnce, 1), utf8.clone())).await;
        let Packet::PubAck(puback) = client.recv().await else { panic!("expected PUBACK") };
        client.send_publish(&with(publish("rpi/bad", &bad, QoS::ExactlyOnce, 2), utf8.clone())).await;
        let Packet::PubRec(pubrec) = client.recv().await else { panic!("expected PUBREC") };
        for ack in [&puback, &pubrec] {
            assert_eq!(ack.reason_code, ReasonCode::PayloadFormatInvalid, "{client_id}: {ack:?}");
            let reason_string = ack.properties.as_ref().and_then(|p| p.reason_string.clone());
            assert_eq!(reason_string.is_some(), told, "{client_id}: {ack:?}");
            if !told {
                assert_eq!(ack.properties, None, "{client_id}: no Reason String nor User Property");
            }
        }

        client.send(&subscribe_all(3, &[("rpi/a", QoS::AtMostOnce), ("rpi/b", QoS::AtMostOnce)])).await;
        let Packet::SubAck(suback) = client.recv().await else { panic!("expected SUBACK") };
        assert_eq!(suback.reason_codes, [ReasonCode::granted(QoS::AtMostOnce), ReasonCode::QuotaExceeded]);
        let reason_string = suback.properties.as_ref().and_then(|p| p.reason_string.clone());
        assert_eq!(reason_string.is_some(), told, "{client_id}: {suback:?}");
        if !told {
            assert_eq!(suback.properties, None, "{client_id}: no Reason String nor User Property");
        }

        let mut publisher = Client::clean(&broker, "publisher").await;
        let properties =
            PublishProperties { user_properties: user_properties(&[("k", "v")]), ..Default::default() };
        publisher.publish(with(publish("rpi/a", b"x", QoS::AtMostOnce, 0), properties.clone())).await;
        let delivered = client.expect_publish().await;
        assert_eq!(properties_of(&delivered).user_properties, properties.user_properties, "{client_id}");
        publisher.disconnect().await;
        client.disconnect().await;
    }
}

// --- CONNACK and DISCONNECT (3.2, 3.14) ---

/// A 5.0 CONNECT of client `x` whose properties are `properties`, as raw bytes.
fn raw_v5_connect(properties: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 0];
    body.push(u8::try_from(properties.len()).or_fail("short properties"));
    body.extend_from_slice(properties);
    body.extend_from_slice(&[0, 1, b'x']);
    let mut packet = vec![0x10, u8::try_from(body.len()).or_fail("a short CONNECT")];
    packet.extend(body);
    packet
}

/// [MQTT-3.14.0-1]: the server sends no DISCONNECT before a CONNACK that accepts the client. A
/// first packet the server cannot accept as a 5.0 CONNECT (a protocol name other than "MQTT", a
/// property CONNECT may not carry, a property given twice, a PINGREQ), a CONNECT refused
/// (an authentication method the server does not support), a CONNECT that does not come within
/// `server.connect_timeout_secs`, or a server that shuts down before the CONNECT is complete:
/// each ends with the connection closed, after at most a CONNACK with an error code, and never
/// a DISCONNECT.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_14_0_1_no_disconnect_before_connack() {
    let broker = PausedBroker::with_config("[server]\nconnect_timeout_secs = 2\n").await;
    let mut bad_name = raw_v5_connect(&[]);
    bad_name[7] = b'X';
    let refused = encode(&Packet::Connect(Box::new(connect_with(
        "refused",
        true,
        ConnectProperties { authentication_method: Some("SCRAM-SHA-256".into()), ..Default::default() },
    ))));
    let partial = raw_v5_connect(&[])[..8].to_vec();
    let cases: [(&str, Vec<u8>); 6] = [
        ("protocol name MQTX", bad_name),
        ("Topic Alias in CONNECT", raw_v5_connect(&[0x23, 0, 1])),
        ("Session Expiry Interval twice", raw_v5_connect(&[0x11, 0, 0, 0, 10, 0x11, 0, 0, 0, 10])),
        ("PINGREQ first", vec![0xC0, 0x00]),
        ("unsupported authentication method", refused),
        ("CONNECT not complete in time", partial.clone()),
    ];
    for (case, bytes) in cases {
        let mut raw = broker.client().await;
        raw.send(&bytes).await;
        let packets = packets_until_closed(&mut raw).await;
        assert!(packets.len() <= 1, "{case}: {packets:?}");
        for packet in packets {
            match packet {
                Packet::ConnAck(connack) => {
                    assert!(connack.reason_code.value() >= 0x80, "{case}: accepted: {connack:?}");
                }
                other => panic!("{case}: {other:?} before or instead of CONNACK"),
            }
        }
    }

    let mut raw = broker.client().await;
    raw.send(&partial).await;
    raw.expect_silence(QUIET).await;
    drop(broker);
    let packets = packets_until_closed(&mut raw).await;
    assert_eq!(packets, [], "shutting down before CONNACK");
}

/// [MQTT-3.2.0-2]: the server sends at most one CONNACK on a connection. A second CONNECT, of
/// the same or of another Client Identifier, is a Protocol Error [MQTT-3.1.0-2]: the answer is
/// DISCONNECT 0x82 and the close, never a second CONNACK.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_2_0_2_a_second_connect_gets_no_second_connack() {
    let broker = PausedBroker::start().await;
    for second in ["twice", "another"] {
        let mut client = Client::clean(&broker, "twice").await;
        client.ping().await;
        client.send(&Packet::Connect(Box::new(connect(second)))).await;
        client.expect_disconnect(ReasonCode::ProtocolError).await;
    }
}

// --- UNSUBSCRIBE (3.10, 3.11) ---

/// [MQTT-3.10.4-6]: an UNSUBSCRIBE of several filters is handled as a sequence of UNSUBSCRIBEs
/// of one filter each, answered by one UNSUBACK: one reason code per filter, in order (3.11.3):
/// 0x00 for a filter subscribed to, 0x11 (No subscription existed) for one that is not, and for
/// a filter repeated after its subscription was removed earlier in the same packet. Nothing else
/// follows, and every subscription named is gone.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_10_4_6_one_unsuback_with_a_code_per_filter() {
    let broker = PausedBroker::start().await;
    let mut client = Client::clean(&broker, "unsubscriber").await;
    client.subscribe(1, "unsub/a", QoS::AtLeastOnce, None).await;
    client.subscribe(2, "unsub/b", QoS::AtLeastOnce, None).await;
    client.subscribe(3, "unsub/kept", QoS::AtLeastOnce, None).await;
    client.send(&unsubscribe_packet(4, &["unsub/a", "unsub/missing", "unsub/b", "unsub/a"])).await;
    match client.recv().await {
        Packet::UnsubAck(UnsubAck { packet_id, reason_codes, .. }) => {
            assert_eq!(packet_id, pid(4));
            assert_eq!(
                reason_codes,
                [
                    ReasonCode::Success,
                    ReasonCode::NoSubscriptionExisted,
                    ReasonCode::Success,
                    ReasonCode::NoSubscriptionExisted
                ]
            );
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    client.ping().await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, topic) in (1..).zip(["unsub/a", "unsub/b"]) {
        let code = publisher.publish(publish(topic, b"x", QoS::AtLeastOnce, n)).await;
        assert_eq!(code, ReasonCode::NoMatchingSubscribers, "{topic}");
    }
    assert_eq!(
        publisher.publish(publish("unsub/kept", b"k", QoS::AtLeastOnce, 3)).await,
        ReasonCode::Success
    );
    assert_eq!(&client.next_message().await.topic[..], "unsub/kept");
    client.expect_silence(QUIET).await;
}

/// [MQTT-3.10.4-3]: a QoS 1 or QoS 2 message the server started to send before the client
/// unsubscribed is still delivered to the end. The QoS 2 one's PUBREC after the UNSUBACK gets
/// its PUBREL; the QoS 1 one, still unacknowledged when the connection is lost, is re-sent with
/// DUP 1 when the session resumes, and its PUBACK ends it: it is not re-sent again. New
/// publications find no subscription.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_10_4_3_unsubscribe_completes_deliveries_already_started() {
    let broker = PausedBroker::start().await;
    let mut sub = Client::connected(&broker, connect_with("leaves", true, expiry(60))).await;
    sub.subscribe(1, "leaving/t", QoS::ExactlyOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    assert_eq!(
        publisher.publish(publish("leaving/t", b"one", QoS::AtLeastOnce, 1)).await,
        ReasonCode::Success
    );
    assert_eq!(
        publisher.publish(publish("leaving/t", b"two", QoS::ExactlyOnce, 2)).await,
        ReasonCode::Success
    );
    let first = sub.expect_publish().await;
    let second = sub.expect_publish().await;
    assert_eq!((first.qos, second.qos), (QoS::AtLeastOnce, QoS::ExactlyOnce));

    sub.send(&unsubscribe_packet(2, &["leaving/t"])).await;
    match sub.recv().await {
        Packet::UnsubAck(unsuback) => assert_eq!(unsuback.reason_codes, [ReasonCode::Success]),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let code = publisher.publish(publish("leaving/t", b"three", QoS::AtLeastOnce, 3)).await;
    assert_eq!(code, ReasonCode::NoMatchingSubscribers);
    sub.ack(&second).await;
    sub.expect_silence(QUIET).await;
    sub.drop_connection();

    let (mut sub, connack) = Client::open(&broker, connect_with("leaves", false, expiry(60))).await;
    assert!(connack.session_present);
    let resent = sub.expect_publish().await;
    assert_eq!(
        (resent.dup, resent.qos, resent.packet_id, &resent.payload[..]),
        (true, QoS::AtLeastOnce, first.packet_id, &b"one"[..])
    );
    sub.ack(&resent).await;
    sub.expect_silence(QUIET).await;
    sub.drop_connection();
    let (mut sub, connack) = Client::open(&broker, connect_with("leaves", false, expiry(0))).await;
    assert!(connack.session_present);
    sub.expect_silence(QUIET).await;
}

// --- QoS and DUP of what the server sends (3.3.1, 3.8.4) ---

/// [MQTT-3.8.4-8]: the QoS of a message sent for a subscription is the lower of the QoS it was
/// published with and the QoS the subscription was granted: every combination of QoS 0, 1 and
/// 2 on both sides, e.g. a QoS 2 publication to a QoS 1 subscription arrives at QoS 1 and a
/// QoS 0 one to a QoS 2 subscription at QoS 0. A QoS 0 delivery has no packet identifier.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_8_4_8_delivered_qos_is_the_lower_of_the_two() {
    let broker = PausedBroker::start().await;
    let levels = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    let mut sub = Client::clean(&broker, "downgraded").await;
    for (n, granted) in (1..).zip(levels) {
        sub.subscribe(n, &format!("min/{}", granted as u8), granted, None).await;
    }
    let mut publisher = Client::clean(&broker, "publisher").await;
    let mut n = 0;
    for granted in levels {
        for published in levels {
            n += 1;
            let topic = format!("min/{}", granted as u8);
            let payload = format!("published {published:?}, granted {granted:?}");
            let code = publisher.publish(publish(&topic, payload.as_bytes(), published, n)).await;
            assert_eq!(code, ReasonCode::Success);
            let delivered = sub.next_message().await;
            assert_eq!(&delivered.payload[..], payload.as_bytes());
            assert_eq!(delivered.qos, published.min(granted), "{payload}");
            assert_eq!(delivered.packet_id.is_some(), delivered.qos != QoS::AtMostOnce, "{payload}");
        }
    }
    sub.expect_silence(QUIET).await;
}

/// [MQTT-3.3.1-2]: every QoS 0 PUBLISH the server sends has DUP 0: a QoS 1 publication the
/// publisher sent with DUP 1 (a re-send of one whose PUBACK it missed), delivered to a QoS 0
/// subscription, and the retained message it left, sent at QoS 0 to a new QoS 0 subscription.
/// The incoming DUP is not propagated at QoS 1 either [MQTT-3.3.1-3].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_1_2_qos_0_publishes_from_the_server_have_dup_0() {
    let broker = PausedBroker::start().await;
    let mut live = Client::clean(&broker, "live").await;
    live.subscribe(1, "dup/t", QoS::AtMostOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    let resent = iothub_protocol::Publish {
        dup: true,
        retain: true,
        ..publish("dup/t", b"re-sent", QoS::AtLeastOnce, 1)
    };
    assert_eq!(publisher.publish(resent).await, ReasonCode::Success);
    let delivered = live.expect_publish().await;
    assert_eq!(
        (delivered.qos, delivered.dup, &delivered.payload[..]),
        (QoS::AtMostOnce, false, &b"re-sent"[..])
    );

    let mut late = Client::clean(&broker, "late").await;
    late.subscribe(1, "dup/#", QoS::AtMostOnce, None).await;
    let retained = late.expect_publish().await;
    assert_eq!((retained.qos, retained.retain, retained.dup), (QoS::AtMostOnce, true, false));

    let mut at_qos_1 = Client::clean(&broker, "at-qos-1").await;
    at_qos_1.subscribe(1, "dup/#", QoS::AtLeastOnce, None).await;
    let retained = at_qos_1.next_message().await;
    assert_eq!((retained.qos, retained.retain, retained.dup), (QoS::AtLeastOnce, true, false));

    publisher.publish(publish("dup/t", b"plain", QoS::AtMostOnce, 0)).await;
    for client in [&mut live, &mut late] {
        let delivered = client.expect_publish().await;
        assert_eq!(
            (delivered.qos, delivered.dup, &delivered.payload[..]),
            (QoS::AtMostOnce, false, &b"plain"[..])
        );
    }
}

// --- Shared subscriptions: a QoS 2 delivery interrupted (4.8.2) ---

/// [MQTT-4.8.2-4]: a QoS 2 message of a shared subscription that the server is sending to a
/// member whose connection breaks before the exchange is complete is delivered to that member
/// when it reconnects to its session: a PUBLISH left without PUBREC is re-sent (DUP 1, same
/// packet identifier), and a PUBREL left without PUBCOMP is re-sent too, until PUBCOMP ends the
/// exchange. The other member never gets the message (its own message aside), not while the
/// first member is away, nor after.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_8_2_4_an_interrupted_shared_qos_2_delivery_completes_on_reconnect() {
    let broker =
        PausedBroker::with_config("[server]\nshared_subscription_strategy = \"round_robin\"\n").await;
    let mut away = Client::connected(&broker, connect_with("away", true, expiry(60))).await;
    away.subscribe(1, "$share/g/q2resume/t", QoS::ExactlyOnce, None).await;
    let mut other = Client::clean(&broker, "other").await;
    other.subscribe(1, "$share/g/q2resume/t", QoS::ExactlyOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, payload) in (1..).zip([b"m1", b"m2"]) {
        let code = publisher.publish(publish("q2resume/t", payload, QoS::ExactlyOnce, n)).await;
        assert_eq!(code, ReasonCode::Success);
    }
    // Round robin: one each. The first member breaks off before PUBREC.
    let sent = away.expect_publish().await;
    assert_eq!((sent.qos, sent.dup), (QoS::ExactlyOnce, false));
    let id = sent.packet_id.expect("a QoS 2 packet identifier");
    let others = other.next_message().await;
    assert_ne!(others.payload, sent.payload);
    away.drop_connection();
    other.expect_silence(QUIET).await;

    let (mut away, connack) = Client::open(&broker, connect_with("away", false, expiry(60))).await;
    assert!(connack.session_present);
    let resent = away.expect_publish().await;
    assert_eq!(
        (resent.dup, resent.qos, resent.packet_id, &resent.payload),
        (true, QoS::ExactlyOnce, Some(id), &sent.payload)
    );
    // Breaks off again, between PUBREL and PUBCOMP.
    away.send(&response(Packet::PubRec, id, ReasonCode::Success)).await;
    match away.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, id),
        other => panic!("expected PUBREL {id}, got {other:?}"),
    }
    away.drop_connection();
    other.expect_silence(QUIET).await;

    let (mut away, connack) = Client::open(&broker, connect_with("away", false, expiry(60))).await;
    assert!(connack.session_present);
    match away.recv().await {
        Packet::PubRel(rel) => assert_eq!(rel.packet_id, id, "the PUBREL is re-sent"),
        other => panic!("expected PUBREL {id}, got {other:?}"),
    }
    away.send(&response(Packet::PubComp, id, ReasonCode::Success)).await;
    away.expect_silence(QUIET).await;
    other.expect_silence(QUIET).await;
    away.disconnect().await;
    other.expect_silence(QUIET).await;
}

// --- Session expiry (4.1) ---

/// Lets `time` pass on the paused clock, running every timer of the broker that falls due in it.
/// Not a synchronisation: the virtual clock only moves once every task is idle.
async fn pass(time: Duration) {
    tokio::time::sleep(time).await;
}

/// [MQTT-4.1.0-2]: the server discards a session once its Session Expiry Interval has passed
/// after the connection closed. With an interval of 10 s, a client that comes back with Clean
/// Start 0 after 9 s gets Session Present 1 and the message queued for its subscription; after
/// a second absence of 11 s it gets Session Present 0, no queued message, and its subscription
/// is gone (a publication finds no matching subscriber).
#[tokio::test(start_paused = true)]
async fn mqtt5_4_1_0_2_session_is_discarded_when_its_expiry_interval_has_passed() {
    let broker = PausedBroker::start().await;
    let mut sub = Client::connected(&broker, connect_with("expiring", true, expiry(10))).await;
    sub.subscribe(1, "expiring/t", QoS::AtLeastOnce, None).await;
    sub.disconnect().await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    assert_eq!(
        publisher.publish(publish("expiring/t", b"kept", QoS::AtLeastOnce, 1)).await,
        ReasonCode::Success
    );

    pass(Duration::from_secs(9)).await;
    let (mut sub, connack) = Client::open(&broker, connect_with("expiring", false, expiry(10))).await;
    assert!(connack.session_present, "9 s of a 10 s interval: {connack:?}");
    assert_eq!(&sub.next_message().await.payload[..], b"kept");
    sub.disconnect().await;
    assert_eq!(
        publisher.publish(publish("expiring/t", b"lost", QoS::AtLeastOnce, 2)).await,
        ReasonCode::Success
    );

    pass(Duration::from_secs(11)).await;
    let (mut sub, connack) = Client::open(&broker, connect_with("expiring", false, expiry(10))).await;
    assert!(!connack.session_present, "11 s of a 10 s interval: {connack:?}");
    sub.expect_silence(QUIET).await;
    assert_eq!(
        publisher.publish(publish("expiring/t", b"after", QoS::AtLeastOnce, 3)).await,
        ReasonCode::NoMatchingSubscribers
    );
    sub.expect_silence(QUIET).await;
}

// --- Enhanced authentication not asked for (4.12) ---

/// A broker with `[auth]` over a password file with a SCRAM-SHA-256 entry, so that it offers
/// the SCRAM-SHA-256 method, and anonymous clients allowed.
async fn scram_broker(name: &str) -> PausedBroker {
    let dir = std::env::temp_dir().join(format!("iothub-v5-statements-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a scratch directory");
    let passwd = dir.join("passwd");
    let entry = iothub::auth::scram_entry(b"wonderland").or_fail("a SCRAM entry");
    std::fs::write(&passwd, format!("alice:{entry}\n")).or_fail("the password file");
    PausedBroker::with_config(&format!(
        "[auth]\nenabled = true\nallow_anonymous = true\npassword_file = {:?}\n",
        passwd.display().to_string()
    ))
    .await
}

/// An AUTH with `reason_code` naming `method`, with `data`.
fn auth_packet(reason_code: ReasonCode, method: &str, data: &[u8]) -> Packet {
    let properties = AuthProperties {
        authentication_method: Some(method.into()),
        authentication_data: Some(Bytes::copy_from_slice(data)),
        ..AuthProperties::default()
    };
    Packet::Auth(Auth { reason_code, properties: Some(Box::new(properties)) })
}

/// [MQTT-4.12.0-6]: a client that names no Authentication Method in CONNECT gets a CONNACK
/// without Authentication Method (nor Authentication Data), and the server never sends it an
/// AUTH, even on a server that offers SCRAM-SHA-256 (and does answer a CONNECT naming it with
/// AUTH 0x18): an AUTH the client sends anyway, 0x19 (Re-authenticate) or 0x18 (Continue
/// authentication), naming the method the server offers, is a Protocol Error answered with
/// DISCONNECT 0x82 and the close, not with an AUTH.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_12_0_6_no_auth_from_the_server_without_an_authentication_method() {
    let broker = scram_broker("no-method").await;
    let first = b"n,,n=alice,r=cl1entn0nce";
    let named = ConnectProperties {
        authentication_method: Some("SCRAM-SHA-256".into()),
        authentication_data: Some(Bytes::from_static(first)),
        ..ConnectProperties::default()
    };
    let mut scram = Client { raw: broker.client().await };
    scram.send(&Packet::Connect(Box::new(connect_with("scram", true, named)))).await;
    match scram.recv().await {
        Packet::Auth(auth) => assert_eq!(auth.reason_code, ReasonCode::ContinueAuthentication),
        other => panic!("expected AUTH 0x18 for a CONNECT naming SCRAM-SHA-256, got {other:?}"),
    }

    for (n, reason_code) in (1..).zip([ReasonCode::ReAuthenticate, ReasonCode::ContinueAuthentication]) {
        let client_id = format!("no-method-{n}");
        let (mut client, connack) = Client::open(&broker, connect(&client_id)).await;
        assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
        let properties = connack.properties.as_deref().cloned().unwrap_or_default();
        assert_eq!(properties.authentication_method, None, "{connack:?}");
        assert_eq!(properties.authentication_data, None, "{connack:?}");
        client.ping().await;
        client.send(&auth_packet(reason_code, "SCRAM-SHA-256", first)).await;
        client.expect_disconnect(ReasonCode::ProtocolError).await;
    }
}

// --- Reason Strings and the client's Maximum Packet Size (3.4.2, 3.5.2, 3.9.2, 3.14.2) ---

/// The first packet the broker sends after CONNACK to a connection of `client_id` with
/// keep-alive `keep_alive` and, if given, a Maximum Packet Size, to which the test sends
/// `trigger`: its raw bytes.
async fn answer_to(
    broker: &PausedBroker,
    client_id: &str,
    keep_alive: u16,
    maximum: Option<u32>,
    trigger: Option<&Packet>,
) -> Vec<u8> {
    let properties =
        ConnectProperties { maximum_packet_size: maximum.and_then(NonZeroU32::new), ..Default::default() };
    let connect = Connect { keep_alive, ..connect_with(client_id, true, properties) };
    let mut client = Client::connected(broker, connect).await;
    if let Some(trigger) = trigger {
        client.send(trigger).await;
    }
    client.raw.read_packet().await
}

/// The Reason String of a PUBACK, PUBREC, SUBACK or DISCONNECT.
fn reason_string_of(packet: &Packet) -> Option<ByteString> {
    match packet {
        Packet::PubAck(r) | Packet::PubRec(r) => r.properties.as_ref().and_then(|p| p.reason_string.clone()),
        Packet::SubAck(s) => s.properties.as_ref().and_then(|p| p.reason_string.clone()),
        Packet::Disconnect(d) => d.properties.as_ref().and_then(|p| p.reason_string.clone()),
        other => panic!("not a packet this test expects: {other:?}"),
    }
}

/// The packet without its Reason String, and without properties if none are left.
fn without_reason_string(packet: &Packet) -> Packet {
    let mut packet = packet.clone();
    match &mut packet {
        Packet::PubAck(r) | Packet::PubRec(r) => {
            if let Some(p) = r.properties.as_mut() {
                p.reason_string = None;
            }
            r.properties = r.properties.take().filter(|p| !p.is_empty());
        }
        Packet::SubAck(s) => {
            if let Some(p) = s.properties.as_mut() {
                p.reason_string = None;
            }
            s.properties = s.properties.take().filter(|p| !p.is_empty());
        }
        Packet::Disconnect(d) => {
            if let Some(p) = d.properties.as_mut() {
                p.reason_string = None;
            }
            d.properties = d.properties.take().filter(|p| !p.is_empty());
        }
        other => panic!("not a packet this test expects: {other:?}"),
    }
    packet
}

/// [MQTT-3.4.2-2] (PUBACK), [MQTT-3.5.2-2] (PUBREC), [MQTT-3.9.2-1] (SUBACK), [MQTT-3.14.2-3]
/// (DISCONNECT): the server does not send a Reason String that would make the packet larger
/// than the client's Maximum Packet Size; the packet is still sent, without it. Each packet the
/// broker sends with a Reason String: PUBACK and PUBREC 0x99 for a payload that is not UTF-8
/// though its Payload Format Indicator says it is, SUBACK 0x97 beyond `server.max_subscriptions`,
/// DISCONNECT 0x8D (Keep Alive timeout) and DISCONNECT 0x82 for a second CONNECT. Each is seen
/// first with no limit, with its Reason String, N bytes; with a Maximum Packet Size of N it is
/// the same packet; with N - 1 it is the same packet without the Reason String (the broker sends
/// no User Property on these), within the limit.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_4_2_2_reason_string_left_out_beyond_the_clients_maximum_packet_size() {
    let broker = PausedBroker::with_config("[server]\nmax_subscriptions = 1\n").await;
    let utf8 =
        PublishProperties { payload_format_indicator: Some(PayloadFormat::Utf8), ..Default::default() };
    let bad = [0xC3, 0x28];
    let puback_0x99 = Packet::Publish(with(publish("mps/bad", &bad, QoS::AtLeastOnce, 1), utf8.clone()));
    let pubrec_0x99 = Packet::Publish(with(publish("mps/bad", &bad, QoS::ExactlyOnce, 2), utf8));
    let suback_0x97 = subscribe_all(3, &[("mps/a", QoS::AtMostOnce), ("mps/b", QoS::AtMostOnce)]);
    let second_connect = Packet::Connect(Box::new(connect("second")));
    let cases: [(&str, u16, Option<&Packet>, ReasonCode); 5] = [
        ("PUBACK 0x99", 0, Some(&puback_0x99), ReasonCode::PayloadFormatInvalid),
        ("PUBREC 0x99", 0, Some(&pubrec_0x99), ReasonCode::PayloadFormatInvalid),
        ("SUBACK 0x97", 0, Some(&suback_0x97), ReasonCode::QuotaExceeded),
        ("DISCONNECT 0x8D", 1, None, ReasonCode::KeepAliveTimeout),
        ("DISCONNECT 0x82", 0, Some(&second_connect), ReasonCode::ProtocolError),
    ];
    for (n, (case, keep_alive, trigger, code)) in (1..).zip(cases) {
        let full_bytes = answer_to(&broker, &format!("mps-{n}-full"), keep_alive, None, trigger).await;
        let full = decode(&full_bytes);
        assert!(reason_string_of(&full).is_some(), "{case}: with no limit, a Reason String: {full:?}");
        let codes = match &full {
            Packet::PubAck(r) | Packet::PubRec(r) => vec![r.reason_code],
            Packet::SubAck(s) => s.reason_codes.clone(),
            Packet::Disconnect(d) => vec![d.reason_code],
            other => panic!("{case}: {other:?}"),
        };
        assert!(codes.contains(&code), "{case}: {full:?}");
        let size = u32::try_from(full_bytes.len()).or_fail("a short packet");

        let exact = answer_to(&broker, &format!("mps-{n}-exact"), keep_alive, Some(size), trigger).await;
        assert_eq!(decode(&exact), full, "{case}: a Maximum Packet Size of {size} has room for it");

        let below = answer_to(&broker, &format!("mps-{n}-below"), keep_alive, Some(size - 1), trigger).await;
        assert!(
            below.len() < full_bytes.len(),
            "{case}: {} bytes for a maximum of {}",
            below.len(),
            size - 1
        );
        let trimmed = decode(&below);
        assert_eq!(
            trimmed,
            without_reason_string(&full),
            "{case}: with a Maximum Packet Size of {}",
            size - 1
        );
    }
}

// --- QoS 2 and message expiry (4.3.3) ---

/// PUBLISH properties with only a Message Expiry Interval.
fn expiring(seconds: u32) -> PublishProperties {
    PublishProperties { message_expiry_interval: Some(seconds), ..PublishProperties::default() }
}

/// [MQTT-4.3.3-13]: the server, as the receiver of a QoS 2 PUBLISH, continues the QoS 2
/// acknowledgement sequence even when it has applied message expiry. A QoS 2 message with a
/// Message Expiry Interval of 1 s, for an offline session's subscription, gets PUBREC 0x00; its
/// PUBREL, sent 2 s later when the queued copy has expired (the subscriber never gets it), gets
/// PUBCOMP 0x00 with the same packet identifier, not 0x92 (Packet Identifier not found). The
/// identifier is then free: a new message with it is a new message, delivered.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_3_3_13_qos_2_sequence_continues_after_the_message_expired() {
    let broker = PausedBroker::start().await;
    let mut sub = Client::connected(&broker, connect_with("offline", true, expiry(300))).await;
    sub.subscribe(1, "exp2/t", QoS::ExactlyOnce, None).await;
    sub.disconnect().await;

    let mut publisher = Client::clean(&broker, "publisher").await;
    publisher.send_publish(&with(publish("exp2/t", b"short-lived", QoS::ExactlyOnce, 7), expiring(1))).await;
    match publisher.recv().await {
        Packet::PubRec(rec) => assert_eq!((rec.packet_id, rec.reason_code), (pid(7), ReasonCode::Success)),
        other => panic!("expected PUBREC 7, got {other:?}"),
    }
    pass(Duration::from_secs(2)).await;
    publisher.send(&response(Packet::PubRel, pid(7), ReasonCode::Success)).await;
    match publisher.recv().await {
        Packet::PubComp(comp) => {
            assert_eq!((comp.packet_id, comp.reason_code), (pid(7), ReasonCode::Success), "{comp:?}");
        }
        other => panic!("expected PUBCOMP 7, got {other:?}"),
    }
    publisher.ping().await;

    let (mut sub, connack) = Client::open(&broker, connect_with("offline", false, expiry(300))).await;
    assert!(connack.session_present);
    sub.expect_silence(QUIET).await;
    assert_eq!(
        publisher.publish(publish("exp2/t", b"fresh", QoS::ExactlyOnce, 7)).await,
        ReasonCode::Success
    );
    assert_eq!(&sub.next_message().await.payload[..], b"fresh");
    sub.expect_silence(QUIET).await;
}

/// [MQTT-4.3.3-7], [MQTT-4.3.3-4]: the server, as the sender of a QoS 2 PUBLISH, applies no
/// message expiry once the PUBLISH is sent: a PUBREC that comes after the message's Message
/// Expiry Interval has passed still gets its PUBREL (same packet identifier), and PUBCOMP ends
/// the exchange with nothing more sent. (v5_publish.rs checks the same rule for a QoS 1 message
/// re-sent on a resumed session.)
#[tokio::test(start_paused = true)]
async fn mqtt5_4_3_3_7_pubrec_after_expiry_still_gets_pubrel() {
    let broker = PausedBroker::start().await;
    let mut sub = Client::clean(&broker, "slow").await;
    sub.subscribe(1, "exp3/t", QoS::ExactlyOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    assert_eq!(
        publisher.publish(with(publish("exp3/t", b"brief", QoS::ExactlyOnce, 1), expiring(2))).await,
        ReasonCode::Success
    );
    let sent = sub.expect_publish().await;
    assert_eq!((sent.qos, properties_of(&sent).message_expiry_interval), (QoS::ExactlyOnce, Some(2)));
    let id = sent.packet_id.expect("a QoS 2 packet identifier");
    sub.expect_silence(Duration::from_secs(3)).await;
    sub.send(&response(Packet::PubRec, id, ReasonCode::Success)).await;
    match sub.recv().await {
        Packet::PubRel(rel) => assert_eq!((rel.packet_id, rel.reason_code), (id, ReasonCode::Success)),
        other => panic!("expected PUBREL {id} after the expiry, got {other:?}"),
    }
    sub.send(&response(Packet::PubComp, id, ReasonCode::Success)).await;
    sub.expect_silence(QUIET).await;
}
