//! The harness itself: a broker starts on an ephemeral port and answers a raw CONNECT.

use iothub_test_util::{raw_connected, TestBroker};

#[test]
fn broker_answers_a_raw_connect_with_connack_accepted() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "smoke");
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
}
