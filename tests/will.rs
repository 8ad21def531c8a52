//! Will messages: published when a connection ends without DISCONNECT (socket closed, process
//! killed, keep-alive expired, protocol violation), not after DISCONNECT, with the will's QoS and
//! RETAIN flag, and on takeover only when either connection used a clean session.

use std::net::SocketAddr;
use std::time::Duration;

use iothub_test_util::paused::now;
use iothub_test_util::{
    ack, connect_packet, connect_with_will, incoming_connack, incoming_publish, incoming_suback, next_event,
    publish, publish_packet, qos0_publish, raw_connected, raw_subscriber, require_tool, with_header,
    PausedBroker, RawClient, TestBroker, Tool, Will, CONNACK_ACCEPTED, DISCONNECT, PUBACK,
};
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};

/// Connects a raw client with a will and checks that the CONNACK accepts it without a stored
/// session.
fn connected_with_will(addr: SocketAddr, client_id: &str, clean: bool, will: &Will<'_>) -> RawClient {
    let mut client = RawClient::connect(addr);
    client.send(&connect_with_will(client_id, clean, 60, will));
    client.expect(&CONNACK_ACCEPTED);
    client
}

/// Publishes a QoS 1 marker from a fresh client. Messages reach a subscriber in publication
/// order, so a subscriber whose next message is the marker did not get anything published
/// before it.
fn publish_marker(addr: SocketAddr, topic: &str) {
    let mut publisher = raw_connected(addr, "marker-publisher");
    publish(&mut publisher, topic, b"marker", 1, false, 1);
    publisher.send(&DISCONNECT);
    publisher.expect_closed();
}

// [MQTT-3.1.2-8]: the will is published when the network connection closes without
// DISCONNECT.
#[test]
fn mqtt_3_1_2_8_will_is_published_when_the_socket_closes_without_disconnect() {
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/raw", 0)]);
    let will = Will { topic: "will/raw", payload: b"gone", qos: 0, retain: false };
    let client = connected_with_will(broker.addr, "raw-will", true, &will);
    drop(client);
    watcher.expect(&qos0_publish("will/raw", b"gone"));
}

// [MQTT-3.1.2-8]: the will of a mosquitto_sub process that is killed is published.
#[test]
fn mqtt_3_1_2_8_will_is_published_when_mosquitto_sub_is_killed() {
    require_tool("mosquitto_sub");
    require_tool("stdbuf");
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/mosquitto", 0)]);
    let process = Tool::mosquitto_sub(
        &broker.port(),
        &[
            "-i",
            "mosquitto-will",
            "-t",
            "some/topic",
            "--will-topic",
            "will/mosquitto",
            "--will-payload",
            "killed",
            "-d",
        ],
    );
    process.expect_line_containing("received SUBACK");
    drop(process);
    watcher.expect(&qos0_publish("will/mosquitto", b"killed"));
}

// [MQTT-3.1.2-8]: the LastWill of a rumqttc client whose connection drops is published.
#[tokio::test(flavor = "multi_thread")]
async fn mqtt_3_1_2_8_rumqttc_last_will_is_published_when_the_connection_drops() {
    let broker = TestBroker::start();
    let port = broker.addr.port();
    let (watcher, mut watcher_loop) = AsyncClient::new(MqttOptions::new("watcher", "127.0.0.1", port), 10);
    next_event(&mut watcher_loop, incoming_connack).await;
    watcher.subscribe("will/rumqttc", QoS::AtLeastOnce).await.unwrap();
    next_event(&mut watcher_loop, incoming_suback).await;

    let mut options = MqttOptions::new("rumqttc-will", "127.0.0.1", port);
    options.set_last_will(LastWill::new("will/rumqttc", "lost", QoS::AtLeastOnce, false));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    next_event(&mut eventloop, incoming_connack).await;
    // Dropping the event loop closes its socket without DISCONNECT.
    drop(eventloop);
    drop(client);

    let will = next_event(&mut watcher_loop, incoming_publish).await;
    assert_eq!(will.topic, "will/rumqttc");
    assert_eq!(will.payload, "lost".as_bytes());
    assert_eq!(will.qos, QoS::AtLeastOnce);
}

// [MQTT-3.1.2-10]: a will is discarded, not published, when the client sends DISCONNECT.
#[test]
fn mqtt_3_1_2_10_will_is_not_published_after_disconnect() {
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/disconnect", 0)]);
    let will = Will { topic: "will/disconnect", payload: b"must not appear", qos: 0, retain: false };
    let mut client = connected_with_will(broker.addr, "disconnecting", true, &will);
    client.send(&[0xE0, 0x00]);
    // The broker publishes a will before it closes the socket, so once the socket is closed a
    // will would already be on its way.
    client.expect_closed();
    publish_marker(broker.addr, "will/disconnect");
    watcher.expect(&qos0_publish("will/disconnect", b"marker"));
}

// [MQTT-3.8.4-6]: the will is published with its own QoS (3.1.2.6), so a subscriber granted
// QoS 2 receives a QoS 1 will at QoS 1.
#[test]
fn will_is_published_with_the_will_qos() {
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/qos", 2)]);
    let will = Will { topic: "will/qos", payload: b"qos one", qos: 1, retain: false };
    drop(connected_with_will(broker.addr, "qos-will", true, &will));
    let packet = watcher.read_packet();
    assert_eq!(packet[0], 0x32, "QoS 1, DUP and RETAIN clear: {packet:02x?}");
    let packet_id = u16::from_be_bytes([packet[12], packet[13]]);
    assert_eq!(packet, publish_packet("will/qos", b"qos one", 1, false, false, packet_id));
    watcher.send(&ack(PUBACK, packet_id));
}

// [MQTT-3.1.2-17]: a will with Will Retain 1 is published as a retained message, so a client
// subscribing later receives it with RETAIN set; the subscriber that was already there gets it
// with RETAIN clear [MQTT-3.3.1-9].
#[test]
fn mqtt_3_1_2_17_will_with_retain_is_kept_as_a_retained_message() {
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/retained", 0)]);
    let will = Will { topic: "will/retained", payload: b"last words", qos: 0, retain: true };
    drop(connected_with_will(broker.addr, "retaining", true, &will));
    watcher.expect(&qos0_publish("will/retained", b"last words"));

    let mut latecomer = raw_subscriber(broker.addr, "latecomer", &[("will/retained", 0)]);
    latecomer.expect(&publish_packet("will/retained", b"last words", 0, true, false, 0));
}

// [MQTT-3.1.2-16]: a will with Will Retain 0 is not kept as a retained message.
#[test]
fn mqtt_3_1_2_16_will_without_retain_is_not_kept() {
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/unretained", 0)]);
    let will = Will { topic: "will/unretained", payload: b"fleeting", qos: 0, retain: false };
    drop(connected_with_will(broker.addr, "not-retaining", true, &will));
    watcher.expect(&qos0_publish("will/unretained", b"fleeting"));

    let mut latecomer = raw_subscriber(broker.addr, "latecomer", &[("will/unretained", 0)]);
    publish_marker(broker.addr, "will/unretained");
    latecomer.expect(&qos0_publish("will/unretained", b"marker"));
}

// [MQTT-3.1.2-24], [MQTT-3.1.2-8]: a client that goes silent past one and a half times its
// keep-alive is disconnected, and its will is published. On the paused clock
// (`iothub_test_util::paused`), so the 1.5 s are virtual.
#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_24_will_is_published_when_keep_alive_expires() {
    let broker = PausedBroker::start().await;
    let mut watcher = broker.connected(&connect_packet("watcher", true, 60), &CONNACK_ACCEPTED).await;
    watcher.subscribe(1, &[("will/keepalive", 0)]).await;
    let will = Will::qos0("will/keepalive", b"timed out");
    let start = now();
    let mut client = broker.connected(&connect_with_will("silent", true, 1, &will), &CONNACK_ACCEPTED).await;
    watcher.expect(&qos0_publish("will/keepalive", b"timed out")).await;
    let elapsed = now() - start;
    // 1.5 s is the deadline.
    assert!(elapsed >= Duration::from_millis(1500), "will published too early: {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1510), "will published too late: {elapsed:?}");
    client.expect_closed().await;
}

// [MQTT-3.1.2-8]: a connection closed by the server for a protocol violation publishes its
// will: here a second CONNECT [MQTT-3.1.0-2] and a PUBLISH with QoS 3 [MQTT-3.3.1-4].
#[test]
fn mqtt_3_1_2_8_will_is_published_after_a_protocol_violation() {
    let broker = TestBroker::start();
    let violations: [(&str, Vec<u8>); 2] = [
        ("second-connect", connect_packet("second-connect", true, 60)),
        ("qos-three", with_header(0x36, &[0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, b'x'])),
    ];
    for (client_id, violation) in violations {
        let topic = format!("will/{client_id}");
        let mut watcher = raw_subscriber(broker.addr, &format!("watcher-{client_id}"), &[(&topic, 0)]);
        let will = Will { topic: &topic, payload: b"violated", qos: 0, retain: false };
        let mut client = connected_with_will(broker.addr, client_id, true, &will);
        client.send(&violation);
        client.expect_closed();
        watcher.expect(&qos0_publish(&topic, b"violated"));
    }
}

// [MQTT-3.1.4-2]: a connection taken over is closed; as Mosquitto does, its will is published
// when the old or the new connection asked for a clean session.
#[test]
fn mqtt_3_1_4_2_takeover_publishes_the_old_will_when_either_connection_is_clean() {
    let broker = TestBroker::start();
    for (old_clean, new_clean) in [(true, true), (true, false), (false, true)] {
        let client_id = format!("taken-{old_clean}-{new_clean}");
        let topic = format!("will/{client_id}");
        let mut watcher = raw_subscriber(broker.addr, &format!("watcher-{client_id}"), &[(&topic, 0)]);
        let will = Will { topic: &topic, payload: b"taken over", qos: 0, retain: false };
        let mut old = connected_with_will(broker.addr, &client_id, old_clean, &will);
        let mut new = RawClient::connect(broker.addr);
        new.send(&connect_packet(&client_id, new_clean, 60));
        let present = u8::from(!old_clean && !new_clean);
        new.expect(&[0x20, 0x02, present, 0x00]);
        old.expect_closed();
        watcher.expect(&qos0_publish(&topic, b"taken over"));
    }
}

// [MQTT-3.1.2-8]: a will is published whenever the network connection closes other than by
// DISCONNECT, so a takeover publishes the old connection's will even when both connections use a
// persistent session and the session continues [MQTT-3.1.4-2]. (Mosquitto discards it.)
#[test]
fn mqtt_3_1_2_8_takeover_between_persistent_connections_publishes_the_will() {
    let broker = TestBroker::start();
    let mut watcher = raw_subscriber(broker.addr, "watcher", &[("will/persistent", 0)]);
    let will = Will { topic: "will/persistent", payload: b"gone", qos: 0, retain: false };
    let mut old = connected_with_will(broker.addr, "persistent", false, &will);
    let mut new = RawClient::connect(broker.addr);
    new.send(&connect_packet("persistent", false, 60));
    new.expect(&[0x20, 0x02, 0x01, 0x00]);
    old.expect_closed();
    watcher.expect(&qos0_publish("will/persistent", b"gone"));
}
