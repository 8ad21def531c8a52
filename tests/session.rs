//! Sessions: clean sessions discarded at disconnect, persistent sessions resumed with their
//! subscriptions and the QoS 1 and 2 messages queued while offline (with raw bytes,
//! `mosquitto_sub -c` and rumqttc), re-sending of unacknowledged PUBLISH and PUBREL after a
//! reconnect, the bound of the offline queue, session expiry and takeover of a persistent
//! session.

use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use iothub_test_util::paused::now;
use iothub_test_util::{
    ack, connect_packet, incoming_connack, incoming_publish, incoming_suback, mosquitto_pub, next_event,
    parse_publish, publish, publish_packet, raw_connected, require_tool, subscribe, Incoming, OrFail,
    PausedBroker, RawClient, TestBroker, Tool, CONNACK_ACCEPTED, CONNACK_SESSION_PRESENT, DISCONNECT, PUBACK,
    PUBCOMP, PUBREC, PUBREL,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// Connects a raw client with the given clean session flag and checks the CONNACK bytes.
fn connect_raw(addr: SocketAddr, client_id: &str, clean: bool, connack: [u8; 4]) -> RawClient {
    let mut client = RawClient::connect(addr);
    client.send(&connect_packet(client_id, clean, 60));
    client.expect(&connack);
    client
}

/// Reads the next packet, which must be a PUBLISH, without acknowledging it.
fn receive(client: &mut RawClient) -> Incoming {
    parse_publish(&client.read_packet())
}

/// Completes the receiver's side of a QoS 1 or 2 delivery.
fn acknowledge(client: &mut RawClient, received: &Incoming) {
    let Some(packet_id) = received.packet_id else {
        return;
    };
    if received.qos == 1 {
        client.send(&ack(PUBACK, packet_id));
    } else {
        client.send(&ack(PUBREC, packet_id));
        client.expect(&ack(PUBREL, packet_id));
        client.send(&ack(PUBCOMP, packet_id));
    }
}

/// Sends DISCONNECT and waits for the broker to close the socket, which it does only after the
/// session has been stored or discarded.
fn disconnect(mut client: RawClient) {
    client.send(&DISCONNECT);
    client.expect_closed();
}

/// Closes the client's side without DISCONNECT and waits for the broker to close its side,
/// which it does only after the session has been stored.
fn drop_connection(mut client: RawClient) {
    client.stream.shutdown(Shutdown::Write).or_fail("closing the client's side");
    client.expect_closed();
}

/// `mosquitto_sub` with a persistent session, debug output and verbose message lines.
fn persistent_mosquitto_sub(broker: &TestBroker, client_id: &str, topic: &str) -> Tool {
    Tool::mosquitto_sub(&broker.port(), &["-c", "-i", client_id, "-q", "1", "-t", topic, "-d", "-v"])
}

fn mosquitto_pub_qos1(broker: &TestBroker, topic: &str, message: &str) {
    mosquitto_pub(&broker.port(), &["-q", "1", "-t", topic, "-m", message]);
}

// [MQTT-3.1.2-6]: the state of a clean session is not reused by any later session, so a
// persistent reconnect finds no session and none of the old subscriptions.
#[test]
fn mqtt_3_1_2_6_clean_session_state_is_discarded_at_disconnect() {
    let broker = TestBroker::start();
    let mut subscriber = connect_raw(broker.addr, "clean-sub", true, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("clean/topic", 1)]);
    disconnect(subscriber);

    let mut resumed = connect_raw(broker.addr, "clean-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut resumed, 1, &[("clean/marker", 1)]);
    let mut publisher = raw_connected(broker.addr, "clean-pub");
    publish(&mut publisher, "clean/topic", b"old subscription", 1, false, 1);
    publish(&mut publisher, "clean/marker", b"marker", 1, false, 2);
    // Messages reach a session in publication order, so the marker coming first shows that the
    // old subscription is gone.
    let first = receive(&mut resumed);
    assert_eq!((first.topic.as_str(), first.payload.as_slice()), ("clean/marker", &b"marker"[..]));
}

// [MQTT-3.1.2-4], [MQTT-3.1.2-5], [MQTT-3.2.2-2]: a persistent session is resumed with its
// subscriptions, reported with session present 1, and delivers the QoS 1 and 2 messages
// published while the client was offline, in order.
#[test]
fn mqtt_3_1_2_5_persistent_session_delivers_offline_qos1_and_qos2_messages_in_order() {
    let broker = TestBroker::start();
    let mut subscriber = connect_raw(broker.addr, "persist-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("persist/topic", 2)]);
    disconnect(subscriber);

    let mut publisher = raw_connected(broker.addr, "persist-pub");
    publish(&mut publisher, "persist/topic", b"one", 1, false, 1);
    publish(&mut publisher, "persist/topic", b"two", 2, false, 2);
    publish(&mut publisher, "persist/topic", b"three", 1, false, 3);

    let mut subscriber = connect_raw(broker.addr, "persist-sub", false, CONNACK_SESSION_PRESENT);
    // The broker sends the whole queue at once (it fits the inflight window), so the client
    // reads all three before acknowledging.
    let mut deliveries = Vec::new();
    for (payload, first_byte) in [(&b"one"[..], 0x32), (b"two", 0x34), (b"three", 0x32)] {
        let received = receive(&mut subscriber);
        assert_eq!(received.topic, "persist/topic");
        assert_eq!(received.payload, payload);
        assert_eq!(received.first_byte(), first_byte, "QoS kept, DUP and RETAIN clear");
        deliveries.push(received);
    }
    for received in &deliveries {
        acknowledge(&mut subscriber, received);
    }
    // The subscription itself survived: a message published now is delivered too.
    publish(&mut publisher, "persist/topic", b"live", 1, false, 4);
    assert_eq!(receive(&mut subscriber).payload, b"live");
}

// As Mosquitto does by default, QoS 0 messages are not queued for an offline session.
#[test]
fn qos0_message_published_while_offline_is_not_delivered() {
    let broker = TestBroker::start();
    let mut subscriber = connect_raw(broker.addr, "qos0-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("offline/qos0", 1)]);
    disconnect(subscriber);

    let mut publisher = raw_connected(broker.addr, "qos0-pub");
    publish(&mut publisher, "offline/qos0", b"qos 0", 0, false, 0);
    publish(&mut publisher, "offline/qos0", b"qos 1", 1, false, 1);

    let mut subscriber = connect_raw(broker.addr, "qos0-sub", false, CONNACK_SESSION_PRESENT);
    // The queue keeps publication order, so a queued QoS 0 message would come first.
    let first = receive(&mut subscriber);
    assert_eq!(first.payload, b"qos 1");
    assert_eq!(first.qos, 1);
}

// [MQTT-3.1.2-4], [MQTT-3.1.2-5]: the same with mosquitto_sub -c, killed while offline
// messages are published with mosquitto_pub.
#[test]
fn mqtt_3_1_2_5_persistent_session_with_mosquitto_sub() {
    require_tool("mosquitto_sub");
    require_tool("mosquitto_pub");
    require_tool("stdbuf");
    let broker = TestBroker::start();
    let subscriber = persistent_mosquitto_sub(&broker, "mosq-persist", "mosq/persist");
    subscriber.expect_line("received SUBACK", |line| line.contains("received SUBACK"));
    drop(subscriber);

    mosquitto_pub_qos1(&broker, "mosq/persist", "first");
    mosquitto_pub_qos1(&broker, "mosq/persist", "second");

    let subscriber = persistent_mosquitto_sub(&broker, "mosq-persist", "mosq/persist");
    subscriber.expect_line("the first message", |line| line == "mosq/persist first");
    subscriber.expect_line("the second message", |line| line == "mosq/persist second");
}

fn persistent_options(broker: &TestBroker, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.addr.port());
    options.set_clean_session(false);
    options
}

fn session_present(event: &Event) -> Option<bool> {
    incoming_connack(event).map(|connack| connack.session_present)
}

// [MQTT-3.1.2-4], [MQTT-3.1.2-5], [MQTT-3.2.2-2]: the same with rumqttc and clean_session false.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_3_2_2_2_persistent_session_with_rumqttc() {
    let broker = TestBroker::start();
    let (client, mut eventloop) = AsyncClient::new(persistent_options(&broker, "rumqttc-persist"), 10);
    assert!(!next_event(&mut eventloop, session_present).await);
    client.subscribe("rumqttc/persist", QoS::ExactlyOnce).await.unwrap();
    next_event(&mut eventloop, incoming_suback).await;
    client.disconnect().await.unwrap();
    next_event(&mut eventloop, |e| matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)).then_some(()))
        .await;
    drop(eventloop);

    let (publisher, mut publisher_loop) =
        AsyncClient::new(MqttOptions::new("rumqttc-pub", "127.0.0.1", broker.addr.port()), 10);
    next_event(&mut publisher_loop, session_present).await;
    // Each publication completes before the next starts: the order of messages of different
    // QoS is defined only by when the broker accepts them, which for QoS 2 is at PUBREL.
    for (payload, qos) in [("a", QoS::AtLeastOnce), ("b", QoS::ExactlyOnce), ("c", QoS::AtLeastOnce)] {
        publisher.publish("rumqttc/persist", qos, false, payload).await.unwrap();
        next_event(&mut publisher_loop, |e| {
            matches!(e, Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))).then_some(())
        })
        .await;
    }

    let (_client, mut eventloop) = AsyncClient::new(persistent_options(&broker, "rumqttc-persist"), 10);
    assert!(next_event(&mut eventloop, session_present).await, "session present must be 1");
    for (expected, qos) in [("a", QoS::AtLeastOnce), ("b", QoS::ExactlyOnce), ("c", QoS::AtLeastOnce)] {
        let publish = next_event(&mut eventloop, incoming_publish).await;
        assert_eq!(publish.topic, "rumqttc/persist");
        assert_eq!(publish.payload, expected.as_bytes());
        assert_eq!(publish.qos, qos);
    }
}

// [MQTT-4.4.0-1], [MQTT-3.3.1-1]: a PUBLISH the client did not acknowledge is sent again after
// the reconnect, with DUP set and the original packet identifier, for QoS 1 and QoS 2.
#[test]
fn mqtt_4_4_0_1_unacknowledged_publish_is_resent_with_dup_and_the_same_packet_id() {
    let broker = TestBroker::start();
    let mut subscriber = connect_raw(broker.addr, "dup-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("dup/topic", 2)]);
    let mut publisher = raw_connected(broker.addr, "dup-pub");
    publish(&mut publisher, "dup/topic", b"at least once", 1, false, 1);
    publish(&mut publisher, "dup/topic", b"exactly once", 2, false, 2);
    let first = receive(&mut subscriber);
    let second = receive(&mut subscriber);
    assert_eq!((first.first_byte(), first.payload.as_slice()), (0x32, &b"at least once"[..]));
    assert_eq!((second.first_byte(), second.payload.as_slice()), (0x34, &b"exactly once"[..]));
    drop_connection(subscriber);

    let mut subscriber = connect_raw(broker.addr, "dup-sub", false, CONNACK_SESSION_PRESENT);
    let first_again = receive(&mut subscriber);
    assert_eq!(first_again.first_byte(), 0x3A, "QoS 1 with DUP set");
    assert_eq!(first_again.packet_id, first.packet_id);
    assert_eq!(
        (first_again.topic.as_str(), first_again.payload.as_slice()),
        ("dup/topic", &b"at least once"[..])
    );
    let second_again = receive(&mut subscriber);
    assert_eq!(second_again.first_byte(), 0x3C, "QoS 2 with DUP set");
    assert_eq!(second_again.packet_id, second.packet_id);
    assert_eq!(second_again.payload, b"exactly once");
    acknowledge(&mut subscriber, &first_again);
    acknowledge(&mut subscriber, &second_again);
    // Acknowledged now: the next delivery is a new message, not a third copy.
    publish(&mut publisher, "dup/topic", b"next", 1, false, 3);
    let next = receive(&mut subscriber);
    assert_eq!((next.first_byte(), next.payload.as_slice()), (0x32, &b"next"[..]));
}

// [MQTT-4.4.0-1]: a PUBREL the client did not answer with PUBCOMP is sent again after the
// reconnect, and the PUBLISH it releases is not.
#[test]
fn mqtt_4_4_0_1_pubrel_is_resent_after_reconnect_when_pubcomp_is_missing() {
    let broker = TestBroker::start();
    let mut subscriber = connect_raw(broker.addr, "pubrel-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("pubrel/topic", 2)]);
    let mut publisher = raw_connected(broker.addr, "pubrel-pub");
    publish(&mut publisher, "pubrel/topic", b"exactly once", 2, false, 1);
    let received = receive(&mut subscriber);
    assert_eq!(received.qos, 2);
    let [high, low] = received.packet_id.unwrap().to_be_bytes();
    subscriber.send(&[0x50, 0x02, high, low]);
    subscriber.expect(&[0x62, 0x02, high, low]);
    drop_connection(subscriber);

    let mut subscriber = connect_raw(broker.addr, "pubrel-sub", false, CONNACK_SESSION_PRESENT);
    subscriber.expect(&[0x62, 0x02, high, low]);
    subscriber.send(&[0x70, 0x02, high, low]);
    publish(&mut publisher, "pubrel/topic", b"marker", 1, false, 2);
    let next = receive(&mut subscriber);
    assert_eq!((next.first_byte(), next.payload.as_slice()), (0x32, &b"marker"[..]));
}

// [MQTT-3.1.2-6], [MQTT-3.2.2-1]: a clean session connection discards the stored persistent
// session of its client identifier; a later persistent connection finds none.
#[test]
fn mqtt_3_1_2_6_clean_connection_discards_a_stored_persistent_session() {
    let broker = TestBroker::start();
    let mut subscriber = connect_raw(broker.addr, "replace-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("replace/topic", 1)]);
    disconnect(subscriber);

    let mut publisher = raw_connected(broker.addr, "replace-pub");
    publish(&mut publisher, "replace/topic", b"queued", 1, false, 1);
    let mut clean = connect_raw(broker.addr, "replace-sub", true, CONNACK_ACCEPTED);
    subscribe(&mut clean, 1, &[("replace/marker", 1)]);
    publish(&mut publisher, "replace/topic", b"old subscription", 1, false, 2);
    publish(&mut publisher, "replace/marker", b"marker", 1, false, 3);
    // Neither the queued message nor one matching the old subscription comes before the marker.
    let first = receive(&mut clean);
    assert_eq!((first.topic.as_str(), first.payload.as_slice()), ("replace/marker", &b"marker"[..]));
    acknowledge(&mut clean, &first);
    disconnect(clean);

    let mut persistent = connect_raw(broker.addr, "replace-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut persistent, 1, &[("replace/marker", 1)]);
    publish(&mut publisher, "replace/topic", b"old subscription", 1, false, 4);
    publish(&mut publisher, "replace/marker", b"marker", 1, false, 5);
    let first = receive(&mut persistent);
    assert_eq!((first.topic.as_str(), first.payload.as_slice()), ("replace/marker", &b"marker"[..]));
}

// The offline queue holds at most server.max_queued_messages; once it is full, new messages
// are dropped, so the oldest ones are delivered.
#[test]
fn offline_queue_is_bounded_by_max_queued_messages() {
    let broker = TestBroker::with_config("[server]\nmax_queued_messages = 10\n");
    let mut subscriber = connect_raw(broker.addr, "bounded-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut subscriber, 1, &[("bounded/topic", 1)]);
    disconnect(subscriber);

    let mut publisher = raw_connected(broker.addr, "bounded-pub");
    for n in 0..50u16 {
        publish(&mut publisher, "bounded/topic", n.to_string().as_bytes(), 1, false, n + 1);
    }

    let mut subscriber = connect_raw(broker.addr, "bounded-sub", false, CONNACK_SESSION_PRESENT);
    for n in 0..10 {
        let received = receive(&mut subscriber);
        assert_eq!(String::from_utf8(received.payload.clone()).unwrap(), n.to_string());
        acknowledge(&mut subscriber, &received);
    }
    // The marker published now is the next delivery: nothing beyond the first ten was kept.
    publish(&mut publisher, "bounded/topic", b"marker", 1, false, 100);
    assert_eq!(receive(&mut subscriber).payload, b"marker");
}

// An offline session is discarded once server.session_timeout_secs has passed. On the paused
// clock (`iothub_test_util::paused`), so the wait is virtual.
#[tokio::test(start_paused = true)]
async fn offline_session_expires_after_session_timeout() {
    let broker = PausedBroker::with_config("[server]\nsession_timeout_secs = 1\n").await;
    let persistent = connect_packet("expiry-sub", false, 60);
    let mut subscriber = broker.connected(&persistent, &CONNACK_ACCEPTED).await;
    subscriber.subscribe(1, &[("expiry/topic", 1)]).await;
    subscriber.disconnect().await;
    // Right away, the session is still there.
    broker.connected(&persistent, &CONNACK_SESSION_PRESENT).await.disconnect().await;
    let stored_at = now();

    // Any reconnect before the expiry would resume the session and restart its timeout, so the
    // test waits for a deadline: the timeout, the expiry task's period (a quarter of it) and a
    // margin. This is the event under test, not a stand-in for one.
    tokio::time::sleep_until(stored_at + Duration::from_millis(2500)).await;

    let mut subscriber = broker.connected(&persistent, &CONNACK_ACCEPTED).await;
    subscriber.subscribe(1, &[("expiry/marker", 1)]).await;
    let mut publisher = broker.connected(&connect_packet("expiry-pub", true, 60), &CONNACK_ACCEPTED).await;
    publisher.send(&publish_packet("expiry/topic", b"old subscription", 1, false, false, 1)).await;
    publisher.expect(&ack(PUBACK, 1)).await;
    publisher.send(&publish_packet("expiry/marker", b"marker", 1, false, false, 2)).await;
    publisher.expect(&ack(PUBACK, 2)).await;
    let first = parse_publish(&subscriber.read_packet().await);
    assert_eq!(first.payload, b"marker", "the expired subscription is gone");
}

// [MQTT-3.2.2-2], [MQTT-3.2.2-3]: with session_timeout_secs = 300, a persistent session is still
// there after 299 s offline (CONNACK session present 1) and gone after 301 s (session present
// 0), in virtual time. The server looks for expired sessions every 10 s from its start (a quarter
// of the timeout, at most 10 s); both sessions are stored at its start, so the look at 300 s
// finds the second one due.
#[tokio::test(start_paused = true)]
async fn persistent_session_is_present_after_299_s_offline_and_gone_after_301_s() {
    let broker = PausedBroker::with_config("[server]\nsession_timeout_secs = 300\n").await;
    let start = now();
    for client_id in ["back-after-299-s", "back-after-301-s"] {
        let mut client = broker.connected(&connect_packet(client_id, false, 60), &CONNACK_ACCEPTED).await;
        client.subscribe(1, &[("expiry/topic", 1)]).await;
        client.disconnect().await;
    }
    assert_eq!(now(), start, "the sessions are stored when the server starts");

    tokio::time::sleep_until(start + Duration::from_secs(299)).await;
    let back = connect_packet("back-after-299-s", false, 60);
    broker.connected(&back, &CONNACK_SESSION_PRESENT).await.disconnect().await;

    tokio::time::sleep_until(start + Duration::from_secs(301)).await;
    let back = connect_packet("back-after-301-s", false, 60);
    broker.connected(&back, &CONNACK_ACCEPTED).await.disconnect().await;
}

// A session whose expiry time has passed is not resumed even if the periodic sweep has not come
// round to it yet: stored 5 s after the server started with `session_timeout_secs = 300`, it is
// due at 305 s; the sweeps run every 10 s (at 300 s and 310 s), and a reconnect at 306 s gets
// session present 0.
#[tokio::test(start_paused = true)]
async fn an_expired_session_is_not_resumed_between_two_expiry_sweeps() {
    let broker = PausedBroker::with_config("[server]\nsession_timeout_secs = 300\n").await;
    let start = now();
    tokio::time::sleep_until(start + Duration::from_secs(5)).await;
    let mut client = broker.connected(&connect_packet("late-sleeper", false, 60), &CONNACK_ACCEPTED).await;
    client.subscribe(1, &[("expiry/late", 1)]).await;
    client.disconnect().await;
    tokio::time::sleep_until(start + Duration::from_secs(306)).await;
    let back = connect_packet("late-sleeper", false, 60);
    broker.connected(&back, &CONNACK_ACCEPTED).await.disconnect().await;
}

// [MQTT-3.1.4-2]: a persistent connection that takes over a connected client identifier closes
// the old connection and keeps the session: session present 1 and the same subscriptions.
#[test]
fn mqtt_3_1_4_2_takeover_with_persistent_session_keeps_the_session() {
    let broker = TestBroker::start();
    let mut first = connect_raw(broker.addr, "takeover-sub", false, CONNACK_ACCEPTED);
    subscribe(&mut first, 1, &[("takeover/topic", 1)]);
    let mut second = connect_raw(broker.addr, "takeover-sub", false, CONNACK_SESSION_PRESENT);
    first.expect_closed();

    let mut publisher = raw_connected(broker.addr, "takeover-pub");
    publish(&mut publisher, "takeover/topic", b"after takeover", 1, false, 1);
    let received = receive(&mut second);
    assert_eq!(
        (received.topic.as_str(), received.payload.as_slice()),
        ("takeover/topic", &b"after takeover"[..])
    );
}
