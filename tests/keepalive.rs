//! Keep-alive: PINGREQ is answered with PINGRESP, a silent client is closed after one and a
//! half times its keep-alive, any packet (PINGREQ or PUBLISH) counts as activity, and
//! keep-alive 0 turns the check off.

use std::time::{Duration, Instant};

use iothub_test_util::{connect_packet, qos0_publish, RawClient, TestBroker, WAIT};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

/// Connects a raw client with a clean session and the given keep-alive.
fn connected(broker: &TestBroker, client_id: &str, keep_alive: u16) -> RawClient {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet(client_id, true, keep_alive));
    client.expect(&[0x20, 0x02, 0x00, 0x00]);
    client
}

/// Checks that the connection is still served: a PINGREQ is answered.
fn assert_alive(client: &mut RawClient) {
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
}

// [MQTT-3.12.4-1]: the server answers PINGREQ with PINGRESP, the two bytes d0 00.
#[test]
fn mqtt_3_12_4_1_pingreq_is_answered_with_pingresp() {
    let broker = TestBroker::start();
    let mut client = connected(&broker, "pinger", 60);
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
    // Each PINGREQ gets its own answer, and the connection stays open.
    client.send(&[0xC0, 0x00, 0xC0, 0x00]);
    client.expect(&[0xD0, 0x00, 0xD0, 0x00]);
}

// [MQTT-3.1.2-24]: with keep-alive 1, a client that sends nothing is closed after one and a half
// seconds; the bounds are generous because the machine may be busy.
#[test]
fn mqtt_3_1_2_24_silent_client_is_closed_after_one_and_a_half_keep_alives() {
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    let start = Instant::now();
    client.send(&connect_packet("silent", true, 1));
    client.expect(&[0x20, 0x02, 0x00, 0x00]);
    client.expect_closed();
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "closed too early: {elapsed:?}");
    assert!(elapsed <= Duration::from_secs(3), "closed too late: {elapsed:?}");
}

// [MQTT-3.1.2-24]: a client that sends PINGREQ every half second with keep-alive 1 is never
// silent for long enough to be closed, here over three seconds.
#[test]
fn mqtt_3_1_2_24_client_sending_pingreq_every_half_second_stays_connected() {
    let broker = TestBroker::start();
    let mut client = connected(&broker, "regular-pinger", 1);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        // Nothing may arrive between pings, in particular not the close.
        client.expect_silence(Duration::from_millis(500));
        assert_alive(&mut client);
    }
}

// [MQTT-3.1.2-24]: keep-alive 0 turns the mechanism off, so a silent connection stays open.
// Three seconds of silence is a bounded check that nothing closes it.
#[test]
fn mqtt_3_1_2_24_keep_alive_zero_never_closes_a_silent_connection() {
    let broker = TestBroker::start();
    let mut client = connected(&broker, "never-idle", 0);
    client.expect_silence(Duration::from_secs(3));
    assert_alive(&mut client);
}

// [MQTT-3.1.2-24]: any control packet counts as activity, so a client that only publishes, every
// half second with keep-alive 1, is not closed.
#[test]
fn mqtt_3_1_2_24_publish_counts_as_keep_alive_activity() {
    let broker = TestBroker::start();
    let mut client = connected(&broker, "publisher", 1);
    let start = Instant::now();
    let publish = qos0_publish("keep/alive", b"tick");
    while start.elapsed() < Duration::from_secs(3) {
        // QoS 0 gets no answer: the only thing that could arrive is the close.
        client.expect_silence(Duration::from_millis(500));
        client.send(&publish);
    }
    assert_alive(&mut client);
}

// [MQTT-3.1.2-24]: rumqttc with keep-alive 2 pings on its own and stays
// connected for five seconds, more than twice the time a silent client would get.
#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::disallowed_methods)] // A client-side deadline, not the broker's clock.
async fn mqtt_3_1_2_24_rumqttc_pings_keep_its_connection_open() {
    let broker = TestBroker::start();
    let mut options = MqttOptions::new("rumqttc-pinger", "127.0.0.1", broker.addr.port());
    options.set_keep_alive(Duration::from_secs(2));
    let (_client, mut eventloop) = AsyncClient::new(options, 10);
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut connacks = 0;
    let mut pingresps = 0;
    loop {
        let event = tokio::select! {
            () = tokio::time::sleep_until(end) => break,
            event = tokio::time::timeout(WAIT, eventloop.poll()) => {
                event.expect("the event loop stalled").expect("the connection failed")
            }
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => connacks += 1,
            Event::Incoming(Packet::PingResp) => pingresps += 1,
            _ => {}
        }
    }
    assert_eq!(connacks, 1, "one connection, never re-established");
    assert!(pingresps >= 2, "rumqttc pinged and the broker answered: {pingresps} PINGRESP");
}

/// Only whole control packets count as activity [MQTT-3.1.2-24]: a client with keep-alive 1 that
/// trickles the bytes of a packet it never completes is still closed after about 1.5 s.
#[test]
fn mqtt_3_1_2_24_a_packet_that_never_completes_does_not_keep_the_connection_alive() {
    use std::io::{ErrorKind, Read, Write};
    let broker = TestBroker::start();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("trickle", true, 1));
    client.expect(&[0x20, 0x02, 0x00, 0x00]);
    client.stream.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    // A PUBLISH announcing 100 bytes, then one byte per 400 ms: never a whole packet.
    client.send(&[0x30, 100]);
    let started = Instant::now();
    let closed_after = loop {
        assert!(started.elapsed() < Duration::from_secs(4), "still open after 4 s of partial bytes");
        if client.stream.write_all(&[0x00]).is_err() {
            break started.elapsed();
        }
        let mut byte = [0u8; 1];
        match client.stream.read(&mut byte) {
            Ok(0) => break started.elapsed(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break started.elapsed(),
            Ok(_) => panic!("unexpected bytes from the broker"),
        }
    };
    assert!(
        closed_after >= Duration::from_millis(1000),
        "closed after {closed_after:?}, before 1.5 keep-alives"
    );
}
