//! Keep-alive: PINGREQ is answered with PINGRESP, a silent client is closed after one and a
//! half times its keep-alive, any packet (PINGREQ or PUBLISH) counts as activity, and
//! keep-alive 0 turns the check off.
//!
//! The timing tests run the broker on a paused clock (`iothub_test_util::paused`), so that the
//! seconds they wait are virtual: they check the deadline to the millisecond and take no real
//! time. One test keeps a real client, rumqttc, pinging on its own in real time.

use std::time::Duration;

use iothub_test_util::paused::now;
use iothub_test_util::{
    connect_packet, qos0_publish, raw_connected, PausedBroker, PausedClient, Seen, TestBroker,
    CONNACK_ACCEPTED, PINGREQ, PINGRESP, WAIT,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

/// The broker's deadline for a silent client with keep-alive 1 [MQTT-3.1.2-24].
const ONE_AND_A_HALF: Duration = Duration::from_millis(1500);

/// Connects a client with a clean session and the given keep-alive to a broker on the paused
/// clock.
async fn connected(broker: &PausedBroker, client_id: &str, keep_alive: u16) -> PausedClient {
    broker.connected(&connect_packet(client_id, true, keep_alive), &CONNACK_ACCEPTED).await
}

// [MQTT-3.12.4-1]: the server answers PINGREQ with PINGRESP, the two bytes d0 00.
#[test]
fn mqtt_3_12_4_1_pingreq_is_answered_with_pingresp() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "pinger");
    client.send(&PINGREQ);
    client.expect(&PINGRESP);
    // Each PINGREQ gets its own answer, and the connection stays open.
    client.send(&[0xC0, 0x00, 0xC0, 0x00]);
    client.expect(&[0xD0, 0x00, 0xD0, 0x00]);
}

// [MQTT-3.1.2-24]: with keep-alive 1, a client that sends nothing is closed after one and a half
// seconds, not before, and not much later.
#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_24_silent_client_is_closed_after_one_and_a_half_keep_alives() {
    let broker = PausedBroker::start().await;
    let start = now();
    let mut client = connected(&broker, "silent", 1).await;
    client.expect_closed().await;
    let elapsed = now() - start;
    assert!(elapsed >= ONE_AND_A_HALF, "closed too early: {elapsed:?}");
    assert!(elapsed <= ONE_AND_A_HALF + Duration::from_millis(10), "closed too late: {elapsed:?}");
}

// [MQTT-3.1.2-24]: a client that sends PINGREQ every half second with keep-alive 1 is never
// silent for long enough to be closed, here over three seconds.
#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_24_client_sending_pingreq_every_half_second_stays_connected() {
    let broker = PausedBroker::start().await;
    let mut client = connected(&broker, "regular-pinger", 1).await;
    let start = now();
    while now() - start < Duration::from_secs(3) {
        // Nothing may arrive between pings, in particular not the close.
        client.expect_silence(Duration::from_millis(500)).await;
        client.expect_alive().await;
    }
}

// [MQTT-3.1.2-24]: keep-alive 0 turns the mechanism off, so a silent connection stays open.
// An hour of virtual silence is a bounded check that nothing closes it.
#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_24_keep_alive_zero_never_closes_a_silent_connection() {
    let broker = PausedBroker::start().await;
    let mut client = connected(&broker, "never-idle", 0).await;
    client.expect_silence(Duration::from_secs(3600)).await;
    client.expect_alive().await;
}

// [MQTT-3.1.2-24]: any control packet counts as activity, so a client that only publishes, every
// half second with keep-alive 1, is not closed.
#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_24_publish_counts_as_keep_alive_activity() {
    let broker = PausedBroker::start().await;
    let mut client = connected(&broker, "publisher", 1).await;
    let start = now();
    let publish = qos0_publish("keep/alive", b"tick");
    while now() - start < Duration::from_secs(3) {
        // QoS 0 gets no answer: the only thing that could arrive is the close.
        client.expect_silence(Duration::from_millis(500)).await;
        client.send(&publish).await;
    }
    client.expect_alive().await;
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
/// trickles the bytes of a packet it never completes is still closed 1.5 s after its CONNECT.
#[tokio::test(start_paused = true)]
async fn mqtt_3_1_2_24_a_packet_that_never_completes_does_not_keep_the_connection_alive() {
    let broker = PausedBroker::start().await;
    let started = now();
    let mut client = connected(&broker, "trickle", 1).await;
    // A PUBLISH announcing 100 bytes, then one byte per 400 ms: never a whole packet.
    client.send(&[0x30, 100]).await;
    let closed_after = loop {
        assert!(now() - started < Duration::from_secs(4), "still open after 4 s of partial bytes");
        if client.try_send(&[0x00]).await.is_err() {
            break now() - started;
        }
        match client.read_within(Duration::from_millis(400)).await {
            Seen::Closed => break now() - started,
            Seen::Silent => {}
            Seen::Bytes(bytes) => panic!("unexpected bytes from the broker: {bytes:02x?}"),
        }
    };
    assert!(closed_after >= ONE_AND_A_HALF, "closed after {closed_after:?}, before 1.5 keep-alives");
    assert!(closed_after <= ONE_AND_A_HALF + Duration::from_millis(10), "closed late: {closed_after:?}");
}
