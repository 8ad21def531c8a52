//! Test ideas from published security advisories against MQTT brokers: a takeover racing a
//! SUBSCRIBE must not leave a subscription the session does not know (a ghost that keeps
//! delivering), and QoS 2 exchanges that a client never finishes must not grow the broker's
//! state without bound or disturb anyone else.

use iothub_protocol::{Packet, ReasonCode, Subscribe};
use iothub_test_util::v5_client::{connect_v5, message, options, packet_id};
use iothub_test_util::{
    publish_packet, publishes_until, raw_connected, subscribe, TestBroker, V5Client, PINGREQ, PINGRESP,
};

/// Rounds of the race; each is a few round trips on loopback.
const ROUNDS: u16 = 40;

#[test]
fn a_takeover_racing_a_subscribe_leaves_the_router_and_the_session_in_agreement() {
    let broker = TestBroker::start();
    let mut publisher = V5Client::connect(broker.addr, "race-publisher");
    for round in 1..=ROUNDS {
        let filter = format!("race/{round}");
        // The first connection sends SUBSCRIBE and does not wait for its SUBACK...
        let (mut first, _) = V5Client::connect_with(broker.addr, connect_v5("racer", round == 1, 600));
        first.send(&Packet::Subscribe(Subscribe {
            packet_id: packet_id(1),
            filters: vec![(filter.as_str().into(), options(1))],
            properties: None,
        }));
        // ...while a second one takes the session over.
        let (mut second, connack) = V5Client::connect_with(broker.addr, connect_v5("racer", false, 600));
        assert!(connack.session_present, "round {round}: the session was lost");
        drop(first);
        // Whether or not the SUBSCRIBE got in first, the session now says what the router does:
        // unsubscribing answers 0x00 if and only if a message still reaches it.
        let codes = second.unsubscribe(2, &[&filter]);
        let had = codes == [ReasonCode::Success];
        assert!(had || codes == [ReasonCode::NoSubscriptionExisted], "round {round}: {codes:?}");
        publisher.publish(message(&filter, b"after unsubscribe", 1, false, round));
        second.expect_no_publish();
        second.disconnect();
    }
}

// [MQTT-4.3.3-2]: a PUBLISH whose identifier awaits PUBREL is a re-send, not a new message.
#[test]
fn qos_2_exchanges_never_finished_stay_bounded_and_disturb_nobody() {
    let broker = TestBroker::start();
    let mut watcher = raw_connected(broker.addr, "watcher");
    subscribe(&mut watcher, 1, &[("hoard/#", 0)]);
    let mut hoarder = raw_connected(broker.addr, "hoarder");
    // Every packet identifier twice over, none ever released: the broker keeps one entry per
    // identifier at most, and the second round is only re-sends.
    let mut burst = Vec::new();
    for round in 0..2u8 {
        for id in 1..=u16::MAX {
            burst.extend(publish_packet("hoard/x", &[round], 2, false, false, id));
        }
    }
    hoarder.send(&burst);
    for _ in 0..2 * u32::from(u16::MAX) {
        let pubrec = hoarder.read_exact(4);
        assert_eq!(pubrec[0], 0x50, "expected PUBREC, got {pubrec:02x?}");
    }
    hoarder.send(&publish_packet("hoard/end", b"", 0, false, false, 0));
    let routed = publishes_until(&mut watcher, "hoard/end");
    assert_eq!(routed.len(), usize::from(u16::MAX), "each identifier routed once");
    assert!(routed.iter().all(|m| m.payload == [0]), "a re-send was routed as a new message");
    // Others are served meanwhile and after.
    let mut late = raw_connected(broker.addr, "late");
    late.send(&PINGREQ);
    late.expect(&PINGRESP);
}
