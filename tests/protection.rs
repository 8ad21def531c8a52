//! Protection limits with real clients: a listener's own `max_connections` and connection rate,
//! and the connection rate per source address.
//!
//! Where timing matters the broker runs on a paused clock (`iothub_test_util::paused`): rates
//! refill in virtual time, so the tests are exact and take no real
//! time. Counters are read from the server's `Context`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iothub_test_util::{
    connect_packet, raw_connected, OrFail, PausedBroker, PausedClient, RawClient, TestBroker,
    CONNACK_ACCEPTED, DISCONNECT, WAIT,
};

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Connects `client_id` over 3.1.1 on the paused clock and checks the CONNACK is `connack`.
async fn connects_with(addr: SocketAddr, client_id: &str, connack: &[u8]) -> PausedClient {
    let mut client = PausedClient::connect(addr).await;
    client.send(&connect_packet(client_id, true, 60)).await;
    client.expect(connack).await;
    client
}

#[test]
fn a_listeners_max_connections_refuses_at_accept_while_the_other_listener_accepts() {
    let broker =
        TestBroker::with_listeners(&["tcp://127.0.0.1:0?max_connections=1", "tcp://127.0.0.1:0"], "");
    let (limited, open) = (broker.addrs[0], broker.addrs[1]);
    let mut first = raw_connected(limited, "first");
    // Closed before any handshake: the client has sent nothing and is told nothing.
    RawClient::connect(limited).expect_closed();
    assert_eq!(count(&broker.context.metrics.connections_refused), 1);
    let others: Vec<RawClient> = (0..3).map(|i| raw_connected(open, &format!("other-{i}"))).collect();
    first.send(&DISCONNECT);
    first.expect_closed();
    // The slot is given back as the first connection's task ends, just after its socket closes.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut next = RawClient::connect(limited);
        let sent = std::io::Write::write_all(&mut next.stream, &connect_packet("next", true, 60));
        let mut connack = [0; 4];
        if sent.is_ok() && std::io::Read::read_exact(&mut next.stream, &mut connack).is_ok() {
            assert_eq!(connack, CONNACK_ACCEPTED);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the listener never took a connection again");
    }
    drop(others);
}

#[tokio::test(start_paused = true)]
async fn a_listeners_connection_rate_closes_the_excess_at_accept_and_refills_in_time() {
    let listeners = ["tcp://127.0.0.1:0", "tcp://127.0.0.1:0?max_connection_rate=0"];
    let broker = PausedBroker::with_listeners(&listeners, "[server]\nmax_connection_rate = 2\n").await;
    let (limited, unlimited) = (broker.addrs[0], broker.addrs[1]);
    let _kept = [
        connects_with(limited, "a", &CONNACK_ACCEPTED).await,
        connects_with(limited, "b", &CONNACK_ACCEPTED).await,
    ];
    // A bucket of 2 per second holds two: the third in the same instant is closed unanswered.
    PausedClient::connect(limited).await.expect_closed().await;
    assert_eq!(count(&broker.context.metrics.connections_rate_limited), 1);
    // The other listener has a bucket of its own, here none at all (its URL turns it off).
    for i in 0..5 {
        connects_with(unlimited, &format!("u{i}"), &CONNACK_ACCEPTED).await.disconnect().await;
    }
    // Half a second refills one connection, not two.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _refilled = connects_with(limited, "c", &CONNACK_ACCEPTED).await;
    PausedClient::connect(limited).await.expect_closed().await;
    assert_eq!(count(&broker.context.metrics.connections_rate_limited), 2);
}

#[tokio::test(start_paused = true)]
async fn an_addresss_connection_rate_is_its_own_and_holds_over_every_listener() {
    let listeners = ["tcp://127.0.0.1:0", "tcp://127.0.0.1:0"];
    let broker =
        PausedBroker::with_listeners(&listeners, "[server]\nmax_connection_rate_per_address = 1\n").await;
    let one: IpAddr = "127.0.0.1".parse().or_fail("an address");
    let two: IpAddr = "127.0.0.2".parse().or_fail("an address");
    let mut first = PausedClient::connect_from(broker.addrs[0], one).await;
    first.send(&connect_packet("from-one", true, 60)).await;
    first.expect(&CONNACK_ACCEPTED).await;
    // The same address on the other listener shares the bucket.
    PausedClient::connect_from(broker.addrs[1], one).await.expect_closed().await;
    // Another address has a bucket of its own.
    let mut other = PausedClient::connect_from(broker.addrs[1], two).await;
    other.send(&connect_packet("from-two", true, 60)).await;
    other.expect(&CONNACK_ACCEPTED).await;
    assert_eq!(count(&broker.context.metrics.connections_rate_limited), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut again = PausedClient::connect_from(broker.addrs[1], one).await;
    again.send(&connect_packet("from-one-again", true, 60)).await;
    again.expect(&CONNACK_ACCEPTED).await;
}
