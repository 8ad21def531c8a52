//! PUBLISH end to end: QoS 0, 1 and 2 with rumqttc and with Mosquitto's clients; the exact
//! acknowledgement flows in raw bytes; exactly-once delivery of a re-sent QoS 2 PUBLISH; the
//! delivered QoS as the minimum of the published and the granted QoS; outbound packet
//! identifiers and redelivery; the inflight window; per-topic ordering; the bounded session
//! queue that slows a publisher rather than drop what it acknowledged; and publications to "$SYS" topics.

use std::time::Duration;

use iothub_test_util::{
    ack, connect_packet, connect_with_will, expect_no_publish_before_pingresp, mosquitto_pub, next_publish,
    parse_publish, publish, publish_packet, publishes_until, raw_connected, raw_subscriber, require_tool,
    subscribe, MosquittoSub, Mqtt, RawClient, TestBroker, Will, PUBACK, PUBCOMP, PUBREC, PUBREL, WAIT,
};
use rumqttc::{Packet, QoS};

/// Long enough for a message that is going to arrive to arrive; used only to show that
/// something does not happen.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread")]
async fn qos_0_1_2_end_to_end_with_rumqttc() {
    let broker = TestBroker::start();
    let mut subscriber = Mqtt::connect(broker.addr, "rumqttc-sub").await;
    subscriber.subscribe("e2e/#", QoS::ExactlyOnce).await;
    let mut publisher = Mqtt::connect(broker.addr, "rumqttc-pub").await;

    for (qos, topic) in
        [(QoS::AtMostOnce, "e2e/q0"), (QoS::AtLeastOnce, "e2e/q1"), (QoS::ExactlyOnce, "e2e/q2")]
    {
        publisher.client.publish(topic, qos, false, format!("payload {qos:?}")).await.unwrap();
        // The publisher's side of the handshake completes: PUBACK for QoS 1, PUBREC then
        // PUBCOMP for QoS 2 [MQTT-4.3.2-2], [MQTT-4.3.3-2].
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => assert!(matches!(publisher.next().await, Packet::PubAck(_))),
            QoS::ExactlyOnce => {
                assert!(matches!(publisher.next().await, Packet::PubRec(_)));
                assert!(matches!(publisher.next().await, Packet::PubComp(_)));
            }
        }
        let received = subscriber.next_publish().await;
        assert_eq!(received.topic, topic);
        assert_eq!(received.qos, qos);
        assert!(!received.retain);
        assert_eq!(&received.payload[..], format!("payload {qos:?}").as_bytes());
    }
}

#[test]
fn qos_0_1_2_end_to_end_with_mosquitto_clients() {
    require_tool("mosquitto_pub");
    require_tool("mosquitto_sub");
    let broker = TestBroker::start();
    let port = broker.port();
    let mut sub = MosquittoSub::start(&port, &["-t", "mosq/#", "-q", "2", "-C", "3"]);

    let handshakes = [
        ("0", &[][..]),
        ("1", &["received PUBACK"][..]),
        ("2", &["received PUBREC", "sending PUBREL", "received PUBCOMP"][..]),
    ];
    for (qos, handshake) in handshakes {
        let topic = format!("mosq/q{qos}");
        let output = mosquitto_pub(&port, &["-t", &topic, "-q", qos, "-m", &format!("hello {qos}")]);
        for step in handshake {
            assert!(output.contains(step), "QoS {qos} publish lacks `{step}`:\n{output}");
        }
        let message = sub.expect_message();
        assert_eq!(message.topic, topic);
        assert_eq!(message.payload, format!("hello {qos}"));
        assert_eq!(message.qos.to_string(), qos);
        assert!(!message.retain);
    }
    assert_eq!(sub.next_message(), None, "mosquitto_sub exits after the three messages (-C 3)");
}

#[test]
fn mqtt_4_3_2_2_qos1_publish_is_answered_with_puback() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "q1");
    // [MQTT-4.3.2-2]: PUBACK carries the PUBLISH's packet identifier.
    client.send(&[0x32, 0x08, 0x00, 0x01, b't', 0x12, 0x34, b'a', b'b', b'c']);
    client.expect(&[0x40, 0x02, 0x12, 0x34]);
}

#[test]
fn mqtt_4_3_3_2_qos2_publish_is_answered_with_pubrec_then_pubrel_with_pubcomp() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "q2");
    // [MQTT-4.3.3-2]: PUBREC with the PUBLISH's packet identifier, and PUBCOMP for the PUBREL.
    client.send(&[0x34, 0x08, 0x00, 0x01, b't', 0x00, 0x2A, b'a', b'b', b'c']);
    client.expect(&[0x50, 0x02, 0x00, 0x2A]);
    client.send(&[0x62, 0x02, 0x00, 0x2A]);
    client.expect(&[0x70, 0x02, 0x00, 0x2A]);
}

#[test]
fn mqtt_4_3_3_2_qos2_publish_resent_before_pubrel_is_delivered_once() {
    let broker = TestBroker::start();
    let mut subscriber = raw_subscriber(broker.addr, "once-sub", &[("once", 0)]);
    let mut publisher = raw_connected(broker.addr, "once-pub");

    publisher.send(&publish_packet("once", b"first", 2, false, false, 7));
    publisher.expect(&ack(PUBREC, 7));
    // The publisher did not see the PUBREC in time and re-sends with DUP=1 [MQTT-3.3.1-1]; the
    // broker acknowledges again but must not deliver the message a second time [MQTT-4.3.3-2].
    publisher.send(&publish_packet("once", b"first", 2, false, true, 7));
    publisher.expect(&ack(PUBREC, 7));
    publisher.send(&ack(PUBREL, 7));
    publisher.expect(&ack(PUBCOMP, 7));
    // A QoS 0 marker from the same publisher is routed after the message, whether the broker
    // forwards a QoS 2 message on PUBLISH or on PUBREL (4.3.3 allows both), so it must be the
    // next thing the subscriber sees.
    publisher.send(&publish_packet("once", b"marker", 0, false, false, 0));
    assert_eq!(next_publish(&mut subscriber).text(), "first");
    assert_eq!(next_publish(&mut subscriber).text(), "marker", "the re-sent PUBLISH was delivered twice");

    // After PUBREL the identifier is free again: a new PUBLISH with id 7 is a new message.
    publish(&mut publisher, "once", b"second", 2, false, 7);
    assert_eq!(next_publish(&mut subscriber).text(), "second");
}

#[test]
fn mqtt_3_6_4_1_pubrel_for_an_unknown_packet_id_gets_pubcomp() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "pubrel");
    // [MQTT-3.6.4-1]: the receiver of a PUBREL responds with PUBCOMP, known identifier or not.
    client.send(&ack(PUBREL, 0x0BAD));
    client.expect(&ack(PUBCOMP, 0x0BAD));
}

#[test]
fn mqtt_3_8_4_6_delivered_qos_is_the_minimum_of_published_and_granted() {
    let broker = TestBroker::start();
    let mut subscriber =
        raw_subscriber(broker.addr, "min-sub", &[("min/g0", 0), ("min/g1", 1), ("min/g2", 2)]);
    let mut publisher = raw_connected(broker.addr, "min-pub");
    let mut packet_id = 0;
    for granted in 0..=2u8 {
        for published in 0..=2u8 {
            packet_id += 1;
            let topic = format!("min/g{granted}");
            let payload = format!("published {published} granted {granted}");
            publish(&mut publisher, &topic, payload.as_bytes(), published, false, packet_id);
            let received = next_publish(&mut subscriber);
            assert_eq!((received.topic.as_str(), received.text()), (topic.as_str(), payload.as_str()));
            assert_eq!(received.qos, published.min(granted), "[MQTT-3.8.4-6] {payload}");
        }
    }
}

#[test]
fn mqtt_2_3_1_1_outbound_qos1_has_a_nonzero_packet_id_and_stays_until_puback() {
    let broker = TestBroker::with_config("[server]\nmax_inflight_messages = 1\n");
    let mut subscriber = RawClient::connect(broker.addr);
    subscriber.send(&connect_packet("redeliver", false, 60));
    subscriber.expect(&[0x20, 0x02, 0x00, 0x00]);
    subscribe(&mut subscriber, 1, &[("out", 1)]);
    let mut publisher = raw_connected(broker.addr, "redeliver-pub");
    publish(&mut publisher, "out", b"m1", 1, false, 1);
    publish(&mut publisher, "out", b"m2", 1, false, 2);

    // [MQTT-2.3.1-1]: a QoS 1 PUBLISH carries a non-zero packet identifier.
    let first = parse_publish(&subscriber.read_packet());
    assert_eq!((first.text(), first.qos, first.dup), ("m1", 1, false));
    let first_id = first.packet_id.unwrap();
    assert_ne!(first_id, 0, "[MQTT-2.3.1-1]");
    // The message stays unacknowledged, so the window of one is full and m2 waits.
    subscriber.expect_silence(QUIET);

    // Without a PUBACK the message is re-sent with DUP=1 and the same identifier when the
    // session resumes [MQTT-4.4.0-1].
    drop(subscriber);
    let mut subscriber = RawClient::connect(broker.addr);
    subscriber.send(&connect_packet("redeliver", false, 60));
    subscriber.expect(&[0x20, 0x02, 0x01, 0x00]);
    let again = parse_publish(&subscriber.read_packet());
    assert_eq!((again.text(), again.dup, again.packet_id), ("m1", true, Some(first_id)));
    subscriber.expect_silence(QUIET);

    // The PUBACK releases the window: m2 follows, under a different non-zero identifier.
    subscriber.send(&ack(PUBACK, first_id));
    let second = parse_publish(&subscriber.read_packet());
    assert_eq!((second.text(), second.qos, second.dup), ("m2", 1, false));
    assert_ne!(second.packet_id, Some(0), "[MQTT-2.3.1-1]");
    assert_ne!(second.packet_id, Some(first_id));
    subscriber.send(&ack(PUBACK, second.packet_id.unwrap()));

    // Both are acknowledged: a resumed session has nothing to re-send.
    subscriber.send(&[0xE0, 0x00]);
    subscriber.expect_closed();
    let mut subscriber = RawClient::connect(broker.addr);
    subscriber.send(&connect_packet("redeliver", false, 60));
    subscriber.expect(&[0x20, 0x02, 0x01, 0x00]);
    subscriber.expect_silence(QUIET);
}

#[test]
fn inflight_window_bounds_unacknowledged_qos1_deliveries() {
    let broker = TestBroker::with_config("[server]\nmax_inflight_messages = 2\n");
    let mut subscriber = raw_subscriber(broker.addr, "window-sub", &[("window", 1)]);
    let mut publisher = raw_connected(broker.addr, "window-pub");
    for n in 1..=5u16 {
        publish(&mut publisher, "window", format!("m{n}").as_bytes(), 1, false, n);
    }

    let first = parse_publish(&subscriber.read_packet());
    let second = parse_publish(&subscriber.read_packet());
    assert_eq!((first.text(), second.text()), ("m1", "m2"));
    subscriber.expect_silence(QUIET);

    subscriber.send(&ack(PUBACK, first.packet_id.unwrap()));
    let third = parse_publish(&subscriber.read_packet());
    assert_eq!(third.text(), "m3");
    subscriber.expect_silence(QUIET);
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::disallowed_methods)] // The test's publisher runs beside its subscriber.
async fn mqtt_4_6_0_5_order_is_kept_for_1000_qos1_messages_from_one_publisher() {
    const COUNT: usize = 1000;
    let broker = TestBroker::start();
    let mut subscriber = Mqtt::connect(broker.addr, "order-sub").await;
    subscriber.subscribe("order/t", QoS::AtLeastOnce).await;
    let publisher = Mqtt::connect(broker.addr, "order-pub").await;

    let send = tokio::spawn(async move {
        for n in 0..COUNT {
            publisher.client.publish("order/t", QoS::AtLeastOnce, false, n.to_string()).await.unwrap();
        }
        publisher
    });
    for n in 0..COUNT {
        let received = subscriber.next_publish().await;
        assert_eq!(received.qos, QoS::AtLeastOnce);
        assert_eq!(
            &received.payload[..],
            n.to_string().as_bytes(),
            "[MQTT-4.6.0-5] message {n} out of order"
        );
    }
    drop(tokio::time::timeout(WAIT, send).await.unwrap().unwrap());
}

/// A subscriber that never acknowledges fills its inflight window and then its queue; the next
/// QoS 1 message is queued one past the bound and its PUBACK waits. After
/// `slow_subscriber_timeout_ms` the slow subscriber pays (here: it is disconnected) and the
/// publisher gets every PUBACK, in order. The publisher is slowed, never failed, and no
/// acknowledged message was dropped while the subscriber was connected.
#[test]
fn full_session_queue_slows_the_publisher_then_disconnects_the_slow_subscriber() {
    const INFLIGHT: usize = 2;
    const QUEUE: usize = 10;
    let broker = TestBroker::with_config(&format!(
        "[server]\nmax_inflight_messages = {INFLIGHT}\nmax_queued_messages = {QUEUE}\n\
         slow_subscriber_timeout_ms = 300\n"
    ));
    let subscriber = raw_subscriber(broker.addr, "slow-sub", &[("slow", 1)]);
    let mut publisher = raw_connected(broker.addr, "fast-pub");
    let mut burst = Vec::new();
    for n in 1..=100u16 {
        burst.extend(publish_packet("slow", format!("q1-{n}").as_bytes(), 1, false, false, n));
    }
    publisher.send(&burst);
    // Every message is acknowledged, in order: those that fit at once, then the one past the
    // bound once the subscriber was found slow, then the rest.
    for n in 1..=100 {
        publisher.expect(&ack(PUBACK, n));
    }
    publisher.send(&[0xC0, 0x00]);
    publisher.expect(&[0xD0, 0x00]);
    // The subscriber was sent its window and its queue, then closed.
    let mut stream = subscriber.stream;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut bytes).unwrap();
    assert!(bytes.len() > 2, "the subscriber received nothing");
    let first = parse_publish(&bytes[..2 + usize::from(bytes[1])]);
    assert_eq!(first.text(), "q1-1");
}

#[test]
fn publications_to_sys_topics_are_acknowledged_and_not_delivered() {
    let broker = TestBroker::start();
    let mut everything = raw_subscriber(broker.addr, "all", &[("#", 0)]);
    let mut sys = raw_subscriber(broker.addr, "sys", &[("$SYS/#", 0), ("marker", 0)]);
    let mut publisher = raw_connected(broker.addr, "sys-pub");

    publish(&mut publisher, "$SYS/x", b"q0", 0, false, 0);
    publish(&mut publisher, "$SYS/x", b"q1", 1, false, 1);
    publish(&mut publisher, "$SYS/x", b"q2", 2, false, 2);
    publish(&mut publisher, "$SYS/broker/uptime", b"retained", 1, true, 3);
    publish(&mut publisher, "marker", b"", 0, false, 0);

    let seen = publishes_until(&mut everything, "marker");
    assert!(seen.is_empty(), "'#' received {seen:?}");
    let seen = publishes_until(&mut sys, "marker");
    assert!(seen.is_empty(), "client publications to $SYS must be dropped, '$SYS/#' received {seen:?}");
    // Nor was the retained one stored.
    subscribe(&mut sys, 2, &[("$SYS/#", 0)]);
    expect_no_publish_before_pingresp(&mut sys);

    // A will is a client's publication too: one on "$SYS/x" is dropped when it is due.
    let mut will_client = RawClient::connect(broker.addr);
    will_client.send(&connect_with_will("sys-will", true, 60, &Will::qos0("$SYS/x", b"gone")));
    will_client.expect(&[0x20, 0x02, 0x00, 0x00]);
    // Closing without DISCONNECT makes the will due. Taking the client identifier over waits
    // until the old connection has finished, will included, so the marker is routed after it.
    drop(will_client);
    drop(raw_connected(broker.addr, "sys-will"));
    publish(&mut publisher, "marker", b"", 0, false, 0);
    let seen = publishes_until(&mut sys, "marker");
    assert!(seen.is_empty(), "a will on $SYS must be dropped, '$SYS/#' received {seen:?}");
}
