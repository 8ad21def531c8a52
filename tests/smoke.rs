//! The harness itself: a broker starts on an ephemeral port and answers a raw CONNECT, and the
//! paused-clock harness keeps its clock still while an answer is on its way.

use std::time::Duration;

use iothub_test_util::paused::now;
use iothub_test_util::{
    connect_packet, raw_connected, PausedBroker, TestBroker, CONNACK_ACCEPTED, PINGREQ, PINGRESP,
};

#[test]
fn broker_answers_a_raw_connect_with_connack_accepted() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "smoke");
    client.send(&PINGREQ);
    client.expect(&PINGRESP);
}

/// The premise of the paused-clock harness (`iothub_test_util::paused`): with the broker and
/// the client on one paused runtime, the clock stands still while an answer is on its way over
/// loopback. With keep-alive 1 the broker's only pending timer is its keep-alive deadline, 1.5 s
/// after the last packet; had the clock moved during any of these round trips, it would have
/// jumped to that deadline and the broker would have closed the connection.
#[tokio::test(start_paused = true)]
async fn paused_clock_stands_still_during_loopback_round_trips() {
    let broker = PausedBroker::start().await;
    let start = now();
    let mut client = broker.connected(&connect_packet("premise", true, 1), &CONNACK_ACCEPTED).await;
    for _ in 0..1000 {
        client.send(&PINGREQ).await;
        client.expect(&PINGRESP).await;
    }
    assert_eq!(now() - start, Duration::ZERO, "the clock moved during a round trip");
    // The clock does move when nothing is on its way: the broker's deadline comes.
    client.expect_closed().await;
    assert_eq!(now() - start, Duration::from_millis(1500), "closed at the keep-alive deadline");
}
