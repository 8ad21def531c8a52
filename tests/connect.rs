//! The CONNECT and CONNACK exchange (sections 3.1 and 3.2): exact CONNACK bytes, the refusals
//! (protocol level, protocol name, reserved flag, client identifier, keep-alive), MQTT 3.1,
//! server-assigned identifiers, session present, takeover of a client identifier, the connect
//! timeout and the connection limit. Raw bytes check the exact answers; rumqttc and the
//! Mosquitto command-line clients show the behaviour a user sees.

use std::io::Read;
use std::net::Shutdown;
use std::process::Command;
use std::time::Duration;

use iothub_test_util::paused::now;
use iothub_test_util::{
    connect_packet, connect_packet_raw, incoming_connack, incoming_publish, incoming_suback, next_event,
    publish_packet, qos0_publish, raw_connected, require_tool, run_tool, subscribe, subscribe_packet,
    tool_stdout, PausedBroker, RawClient, TestBroker, CONNACK_ACCEPTED, CONNACK_SESSION_PRESENT, DISCONNECT,
    PINGREQ, PINGRESP, WAIT,
};
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, EventLoop, MqttOptions, QoS};

/// CONNACK: unacceptable protocol version.
const CONNACK_BAD_PROTOCOL: [u8; 4] = [0x20, 0x02, 0x00, 0x01];
/// CONNACK: identifier rejected.
const CONNACK_BAD_IDENTIFIER: [u8; 4] = [0x20, 0x02, 0x00, 0x02];

/// Checks that a connected raw client still works: PINGREQ is answered, and a QoS 0 message
/// published by another client on `topic` (which `client` subscribed to) arrives.
fn assert_still_served(broker: &TestBroker, client: &mut RawClient, topic: &str) {
    client.send(&PINGREQ);
    client.expect(&PINGRESP);
    let mut publisher = raw_connected(broker.addr, "still-served-publisher");
    let message = qos0_publish(topic, b"still served");
    publisher.send(&message);
    client.expect(&message);
    publisher.send(&DISCONNECT);
    publisher.expect_closed();
}

/// rumqttc options for the test broker with a short keep-alive.
fn rumqttc_options(broker: &TestBroker, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", broker.addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// Polls an event loop until the CONNACK arrives and checks that it accepts the connection.
async fn rumqttc_connected(eventloop: &mut EventLoop) {
    let ack = next_event(eventloop, incoming_connack).await;
    assert_eq!(ack.code, ConnectReturnCode::Success);
    assert!(!ack.session_present);
}

#[test]
fn mqtt_3_2_0_1_connack_accepts_a_valid_connect() {
    // [MQTT-3.2.0-1]: the first packet from the server is CONNACK, here exactly "accepted, no
    // session present".
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("connack-bytes", true, 60));
    client.expect(&CONNACK_ACCEPTED);
    client.send(&PINGREQ);
    client.expect(&PINGRESP);
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_3_2_0_1_rumqttc_connects() {
    // [MQTT-3.2.0-1]: a real client sees an accepting CONNACK and can use the connection.
    let broker = TestBroker::start();
    let (client, mut eventloop) = AsyncClient::new(rumqttc_options(&broker, "rumqttc-connect"), 10);
    rumqttc_connected(&mut eventloop).await;
    client.subscribe("rumqttc/connect", QoS::AtMostOnce).await.unwrap();
    next_event(&mut eventloop, incoming_suback).await;
    client.publish("rumqttc/connect", QoS::AtMostOnce, false, "hello").await.unwrap();
    let publish = next_event(&mut eventloop, incoming_publish).await;
    assert_eq!(publish.topic, "rumqttc/connect");
    assert_eq!(&publish.payload[..], b"hello");
}

#[test]
fn mqtt_3_1_0_1_first_packet_must_be_connect() {
    // [MQTT-3.1.0-1]: any other first packet closes the connection without an answer.
    let broker = TestBroker::start();
    let firsts: [(&str, Vec<u8>); 4] = [
        ("PINGREQ", PINGREQ.to_vec()),
        ("PUBLISH", qos0_publish("a/b", b"early")),
        ("SUBSCRIBE", subscribe_packet(1, &[("a/b", 0)])),
        ("DISCONNECT", DISCONNECT.to_vec()),
    ];
    for (name, packet) in firsts {
        let mut client = RawClient::connect(broker.addr);
        client.send(&packet);
        eprintln!("first packet {name}");
        client.expect_closed();
    }
    raw_connected(broker.addr, "after-bad-firsts");
}

#[test]
fn mqtt_3_1_0_2_second_connect_closes_the_connection() {
    // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation; the connection closes without a
    // second CONNACK.
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "twice");
    client.send(&connect_packet("twice", true, 60));
    client.expect_closed();
}

#[test]
fn mqtt_3_1_2_2_unsupported_protocol_level_is_refused_with_0x01() {
    // [MQTT-3.1.2-2]: CONNACK 0x01 then close, for "MQTT" with level 3, level 6 and the bridge
    // bit set on level 4 (0x84).
    let broker = TestBroker::start();
    let level_3 = connect_packet_raw(b"MQTT", 3, 0x02, 60, b"level-3");
    let level_0x84 = connect_packet_raw(b"MQTT", 0x84, 0x02, 60, b"level-0x84");
    let level_6 = connect_packet_raw(b"MQTT", 6, 0x02, 60, b"level-6");
    for (name, connect) in [("level 3", level_3), ("level 6", level_6), ("level 0x84", level_0x84)] {
        let mut client = RawClient::connect(broker.addr);
        client.send(&connect);
        eprintln!("protocol {name}");
        client.expect(&CONNACK_BAD_PROTOCOL);
        client.expect_closed();
    }
    raw_connected(broker.addr, "after-bad-levels");
}

#[test]
fn mqtt_3_1_2_1_wrong_protocol_name_closes_without_connack() {
    // [MQTT-3.1.2-1]: a protocol name other than "MQTT" (or 3.1's "MQIsdp") may not be answered
    // with a CONNACK; the connection simply closes.
    let broker = TestBroker::start();
    for name in [&b"MQTX"[..], b"mqtt", b"MQTT3", b""] {
        let mut client = RawClient::connect(broker.addr);
        client.send(&connect_packet_raw(name, 4, 0x02, 60, b"bad-name"));
        eprintln!("protocol name {:?}", String::from_utf8_lossy(name));
        client.expect_closed();
    }
    raw_connected(broker.addr, "after-bad-names");
}

#[test]
fn mqtt_3_1_mqisdp_level_3_is_accepted() {
    // MQTT 3.1 ("MQIsdp", level 3) is served, with 3.1.1 packets after the CONNECT.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet_raw(b"MQIsdp", 3, 0x02, 60, b"legacy-3-1"));
    client.expect(&CONNACK_ACCEPTED);
    subscribe(&mut client, 1, &[("legacy/topic", 0)]);
    assert_still_served(&broker, &mut client, "legacy/topic");
}

#[test]
fn mqtt_3_1_empty_client_id_is_refused_with_0x02() {
    // MQTT 3.1 requires a client identifier of 1 to 23 characters; as Mosquitto does, an empty
    // one is answered with CONNACK 0x02 even with a clean session.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet_raw(b"MQIsdp", 3, 0x02, 60, b""));
    client.expect(&CONNACK_BAD_IDENTIFIER);
    client.expect_closed();
}

#[test]
fn mqtt_3_1_mosquitto_clients_work_end_to_end() {
    // `mosquitto_pub -V mqttv31` and `mosquitto_sub -V mqttv31` speak MQTT 3.1 to the broker.
    require_tool("mosquitto_pub");
    require_tool("mosquitto_sub");
    let broker = TestBroker::start();
    let mut watcher = raw_connected(broker.addr, "v31-watcher");
    subscribe(&mut watcher, 1, &[("v31/live", 0)]);
    let output = run_tool(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port(),
        "-V",
        "mqttv31",
        "-q",
        "1",
        "-t",
        "v31/live",
        "-m",
        "from 3.1",
    ]));
    tool_stdout(&output);
    watcher.expect(&qos0_publish("v31/live", b"from 3.1"));

    // A retained message lets the 3.1 subscriber receive without racing its SUBSCRIBE.
    let mut publisher = raw_connected(broker.addr, "v31-retainer");
    publisher.send(&publish_packet("v31/retained", b"kept for 3.1", 0, true, false, 0));
    publisher.send(&PINGREQ);
    publisher.expect(&PINGRESP);
    let output = run_tool(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port(),
        "-V",
        "mqttv31",
        "-t",
        "v31/retained",
        "-C",
        "1",
        "-W",
        "10",
    ]));
    assert_eq!(tool_stdout(&output), "kept for 3.1\n");
}

#[test]
fn mqtt_3_1_2_3_reserved_connect_flag_closes_without_connack() {
    // [MQTT-3.1.2-3]: the reserved flag must be 0, else the connection closes.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet_raw(b"MQTT", 4, 0x03, 60, b"reserved-flag"));
    client.expect_closed();
    raw_connected(broker.addr, "after-reserved-flag");
}

#[test]
fn mqtt_3_1_3_6_empty_client_id_with_clean_session_is_accepted() {
    // [MQTT-3.1.3-6]: the server assigns an identifier and the connection is fully usable.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("", true, 60));
    client.expect(&CONNACK_ACCEPTED);
    subscribe(&mut client, 1, &[("anonymous/topic", 0)]);
    assert_still_served(&broker, &mut client, "anonymous/topic");

    // Two anonymous clients get distinct identifiers: the first is not taken over.
    let mut second = RawClient::connect(broker.addr);
    second.send(&connect_packet("", true, 60));
    second.expect(&CONNACK_ACCEPTED);
    second.send(&PINGREQ);
    second.expect(&PINGRESP);
    client.send(&PINGREQ);
    client.expect(&PINGRESP);
}

#[test]
fn mqtt_3_1_3_6_mosquitto_sub_without_client_id_works() {
    // [MQTT-3.1.3-6]: mosquitto_sub without -i sends a zero-length identifier with a clean
    // session; it receives a retained message and exits.
    require_tool("mosquitto_sub");
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "anonymous-retainer");
    publisher.send(&publish_packet("anonymous/retained", b"for anyone", 0, true, false, 0));
    publisher.send(&PINGREQ);
    publisher.expect(&PINGRESP);
    let output = run_tool(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port(),
        "-t",
        "anonymous/retained",
        "-C",
        "1",
        "-W",
        "10",
    ]));
    assert_eq!(tool_stdout(&output), "for anyone\n");
}

#[test]
fn mqtt_3_1_3_8_empty_client_id_without_clean_session_is_refused_with_0x02() {
    // [MQTT-3.1.3-8]: CONNACK 0x02 (identifier rejected), then the connection closes.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("", false, 60));
    client.expect(&CONNACK_BAD_IDENTIFIER);
    client.expect_closed();
}

#[test]
fn mqtt_3_2_2_1_clean_session_connack_has_session_present_0() {
    // [MQTT-3.2.2-1]: even when a stored session exists, a clean session CONNACK says 0.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("session-present", false, 60));
    // [MQTT-3.2.2-3]: no stored session yet.
    client.expect(&CONNACK_ACCEPTED);
    subscribe(&mut client, 1, &[("stored/topic", 0)]);
    client.send(&DISCONNECT);
    client.expect_closed();

    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("session-present", false, 60));
    // [MQTT-3.2.2-2]: the stored session is resumed, which the CONNACK reports.
    client.expect(&CONNACK_SESSION_PRESENT);
    client.send(&DISCONNECT);
    client.expect_closed();

    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("session-present", true, 60));
    client.expect(&CONNACK_ACCEPTED);
}

#[test]
fn mqtt_3_1_4_2_takeover_closes_old_connection() {
    // [MQTT-3.1.4-2]: a second connection with the same client identifier closes the first.
    let broker = TestBroker::start();
    let mut first = raw_connected(broker.addr, "same-id");
    let mut second = raw_connected(broker.addr, "same-id");
    first.expect_closed();
    subscribe(&mut second, 1, &[("takeover/topic", 0)]);
    assert_still_served(&broker, &mut second, "takeover/topic");
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_3_1_4_2_takeover_closes_old_rumqttc_connection() {
    // [MQTT-3.1.4-2]: the first rumqttc client sees its connection end when a second one
    // connects with the same identifier; the second one works.
    let broker = TestBroker::start();
    let (_first, mut first_loop) = AsyncClient::new(rumqttc_options(&broker, "rumqttc-twin"), 10);
    rumqttc_connected(&mut first_loop).await;
    let (second, mut second_loop) = AsyncClient::new(rumqttc_options(&broker, "rumqttc-twin"), 10);
    rumqttc_connected(&mut second_loop).await;
    let lost = tokio::time::timeout(WAIT, async {
        loop {
            if let Err(error) = first_loop.poll().await {
                return error;
            }
        }
    });
    let error = lost.await.expect("the first connection was not closed");
    eprintln!("first client saw: {error:?}");
    drop(first_loop);

    second.subscribe("rumqttc/twin", QoS::AtLeastOnce).await.unwrap();
    second.publish("rumqttc/twin", QoS::AtLeastOnce, false, "survivor").await.unwrap();
    let publish = next_event(&mut second_loop, incoming_publish).await;
    assert_eq!(&publish.payload[..], b"survivor");
}

// A connection that sends no CONNECT within connect_timeout_secs is closed; so is one that sends
// only part of a CONNECT. In virtual time: both close at exactly 1 s.
#[tokio::test(start_paused = true)]
async fn connect_timeout_closes_a_silent_connection() {
    let broker = PausedBroker::with_config("[server]\nconnect_timeout_secs = 1\n").await;
    let started = now();
    let mut silent = broker.client().await;
    let mut partial = broker.client().await;
    partial.send(&connect_packet("partial", true, 60)[..6]).await;
    silent.expect_closed().await;
    partial.expect_closed().await;
    let elapsed = now() - started;
    assert!(elapsed >= Duration::from_secs(1), "closed too early: {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1010), "closed too late: {elapsed:?}");
}

// The timeout covers the wait for CONNECT only: a connected client that stays quiet for longer
// than it (but within its keep-alive) is not closed. In virtual time.
#[tokio::test(start_paused = true)]
async fn connect_timeout_does_not_apply_after_connect() {
    let broker = PausedBroker::with_config("[server]\nconnect_timeout_secs = 1\n").await;
    let mut client =
        broker.connected(&connect_packet("quiet-after-connect", true, 60), &CONNACK_ACCEPTED).await;
    client.expect_silence(Duration::from_millis(1500)).await;
    client.expect_alive().await;
}

#[test]
fn keep_alive_above_server_maximum_is_refused_with_0x02() {
    // Like Mosquitto's max_keepalive: a keep-alive above keep_alive_timeout_secs is refused with
    // CONNACK 0x02; the maximum itself and 0 (off) are accepted.
    let broker = TestBroker::with_config("[server]\nkeep_alive_timeout_secs = 30\n");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("keep-alive-31", true, 31));
    client.expect(&CONNACK_BAD_IDENTIFIER);
    client.expect_closed();

    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("keep-alive-max", true, 30));
    client.expect(&CONNACK_ACCEPTED);

    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("keep-alive-off", true, 0));
    client.expect(&CONNACK_ACCEPTED);
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_above_server_maximum_is_refused_for_rumqttc() {
    // A rumqttc client asking for more than keep_alive_timeout_secs gets "bad client id", the
    // CONNACK 0x02 of 3.1.1.
    let broker = TestBroker::with_config("[server]\nkeep_alive_timeout_secs = 30\n");
    let mut options = rumqttc_options(&broker, "rumqttc-long-keep-alive");
    options.set_keep_alive(Duration::from_secs(31));
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let result = tokio::time::timeout(WAIT, eventloop.poll()).await.expect("no answer to CONNECT");
    assert!(
        matches!(result, Err(ConnectionError::ConnectionRefused(ConnectReturnCode::BadClientId))),
        "unexpected result: {result:?}"
    );
}

#[test]
fn max_connections_closes_the_extra_connection_without_connack() {
    // server.max_connections = 2: a third connection is closed at accept, before any CONNACK,
    // and the first two keep working.
    let broker = TestBroker::with_config("[server]\nmax_connections = 2\n");
    let mut first = raw_connected(broker.addr, "slot-1");
    let mut second = raw_connected(broker.addr, "slot-2");
    let mut third = RawClient::connect(broker.addr);
    third.expect_closed();

    subscribe(&mut second, 1, &[("slots/topic", 0)]);
    let message = qos0_publish("slots/topic", b"two is enough");
    first.send(&message);
    second.expect(&message);
    first.send(&PINGREQ);
    first.expect(&PINGRESP);
    second.send(&PINGREQ);
    second.expect(&PINGRESP);
}

#[test]
fn protocol_violation_does_not_disturb_other_clients() {
    // One client breaking the protocol is closed; another connected client still gets its
    // PINGRESP and its messages.
    let broker = TestBroker::start();
    let mut bystander = raw_connected(broker.addr, "bystander");
    subscribe(&mut bystander, 1, &[("bystander/topic", 0)]);
    let mut offender = raw_connected(broker.addr, "offender");
    offender.send(&connect_packet("offender", true, 60));
    offender.expect_closed();
    let mut garbage = raw_connected(broker.addr, "garbage");
    garbage.send(&[0xF0, 0x00]);
    garbage.expect_closed();
    assert_still_served(&broker, &mut bystander, "bystander/topic");
}

#[test]
fn long_and_utf8_client_ids_are_accepted() {
    // [MQTT-3.1.3-5]: servers may accept identifiers longer than 23 bytes and beyond [0-9a-zA-Z]
    // (3.1.3.1); this one does, up to the 65535-byte maximum of a UTF-8 string.
    let broker = TestBroker::start();
    let ids = [
        "a".repeat(23),
        "b".repeat(24),
        "c".repeat(1000),
        "d".repeat(65_535),
        "capteur-température-№5".to_owned(),
        "日本語のクライアント識別子".to_owned(),
        "rocket-🚀-client".to_owned(),
        "with space/and+hash#".to_owned(),
    ];
    for id in &ids {
        let mut client = raw_connected(broker.addr, id);
        client.send(&PINGREQ);
        client.expect(&PINGRESP);
        client.send(&DISCONNECT);
        client.expect_closed();
    }
}

#[test]
fn mosquitto_pub_with_long_client_id_works() {
    // A real client with a 40-character identifier publishes successfully.
    require_tool("mosquitto_pub");
    let broker = TestBroker::start();
    let mut watcher = raw_connected(broker.addr, "long-id-watcher");
    subscribe(&mut watcher, 1, &[("long/id", 0)]);
    let id = "a-client-identifier-of-forty-characters!";
    assert_eq!(id.len(), 40);
    let output = run_tool(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port(),
        "-i",
        id,
        "-t",
        "long/id",
        "-m",
        "long id",
    ]));
    tool_stdout(&output);
    watcher.expect(&qos0_publish("long/id", b"long id"));
}

#[test]
fn refused_connect_sends_nothing_after_the_connack() {
    // After a refusing CONNACK the server closes the connection and ignores anything the client
    // sent behind its CONNECT.
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    let mut bytes = connect_packet("", false, 60);
    bytes.extend(subscribe_packet(1, &[("ignored", 0)]));
    bytes.extend(PINGREQ);
    client.send(&bytes);
    client.expect(&CONNACK_BAD_IDENTIFIER);
    client.stream.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    // A reset instead of an orderly close is fine; bytes are not.
    let _ = client.stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "bytes after a refusing CONNACK: {rest:02x?}");
}
