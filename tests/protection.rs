//! Protection limits with real clients: a listener's own `max_connections` and connection rate,
//! the connection rate per source address, and the PROXY protocol, versions 1 and 2, before MQTT
//! and before TLS.
//!
//! Where timing matters the broker runs on a paused clock (`iothub_test_util::paused`): rates
//! refill in virtual time, so the tests are exact and take no real
//! time. Counters are read from the server's `Context`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use iothub_test_util::{
    connect_packet, raw_connected, OrFail, PausedBroker, PausedClient, RawClient, TestBroker, TestPki,
    TlsClient, CONNACK_ACCEPTED, DISCONNECT, PINGREQ, PINGRESP, WAIT,
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

/// A PROXY v2 header: PROXY command, TCP over IPv4 or IPv6, and a TLV.
fn proxy_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend(s.octets());
            body.extend(d.octets());
            0x11
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            body.extend(s.octets());
            body.extend(d.octets());
            0x21
        }
        _ => panic!("one family for both addresses"),
    };
    body.extend(source.port().to_be_bytes());
    body.extend(destination.port().to_be_bytes());
    // PP2_TYPE_AUTHORITY "broker": a TLV the broker skips.
    body.extend([0x02, 0x00, 0x06]);
    body.extend(b"broker");
    proxy_v2_raw(0x21, family, &body)
}

/// A PROXY v2 header with this version and command byte, family byte and body.
fn proxy_v2_raw(version_command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(version_command);
    header.push(family);
    header.extend(u16::try_from(body.len()).or_fail("a short body").to_be_bytes());
    header.extend(body);
    header
}

fn addr(text: &str) -> SocketAddr {
    text.parse().or_fail("a socket address")
}

/// Sends `header` and a CONNECT for `client_id` (in one write when `together`), expects the
/// CONNACK, and returns the client and the address the broker took for it.
fn proxied(broker: &TestBroker, header: &[u8], client_id: &str, together: bool) -> (RawClient, SocketAddr) {
    let mut client = RawClient::connect(broker.addr);
    let connect = connect_packet(client_id, true, 60);
    if together {
        client.send(&[header, &connect].concat());
    } else {
        let (start, end) = header.split_at(header.len() / 2);
        client.send(start);
        client.send(&[end, &connect].concat());
    }
    client.expect(&CONNACK_ACCEPTED);
    let identity = broker.context.registry.identity(client_id).or_fail("the client's identity");
    (client, identity.peer)
}

#[test]
fn proxy_headers_of_both_versions_give_the_client_its_real_address() {
    let broker = TestBroker::with_listeners(&["tcp://127.0.0.1:0?proxy_protocol=true"], "");
    let v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 1883\r\n";
    assert_eq!(proxied(&broker, v1, "v1", true).1, addr("203.0.113.7:40000"));
    assert_eq!(proxied(&broker, v1, "v1-split", false).1, addr("203.0.113.7:40000"));
    let v1_six = b"PROXY TCP6 2001:db8::7 2001:db8::1 40001 1883\r\n";
    assert_eq!(proxied(&broker, v1_six, "v1-six", true).1, addr("[2001:db8::7]:40001"));
    let v2 = proxy_v2(addr("198.51.100.9:50000"), addr("192.0.2.1:1883"));
    assert_eq!(proxied(&broker, &v2, "v2", true).1, addr("198.51.100.9:50000"));
    assert_eq!(proxied(&broker, &v2, "v2-split", false).1, addr("198.51.100.9:50000"));
    let v2_six = proxy_v2(addr("[2001:db8::9]:50001"), addr("[2001:db8::1]:1883"));
    assert_eq!(proxied(&broker, &v2_six, "v2-six", true).1, addr("[2001:db8::9]:50001"));
    // LOCAL (a health check of the proxy's own) and UNKNOWN keep the socket's address.
    let local = proxy_v2_raw(0x20, 0x00, &[]);
    assert_eq!(proxied(&broker, &local, "local", true).1.ip(), addr("127.0.0.1:0").ip());
    assert_eq!(proxied(&broker, b"PROXY UNKNOWN\r\n", "unknown", true).1.ip(), addr("127.0.0.1:0").ip());
    assert_eq!(count(&broker.context.metrics.proxy_header_errors), 0);
}

#[test]
fn a_missing_or_malformed_proxy_header_closes_the_connection() {
    let broker = TestBroker::with_listeners(&["tcp://127.0.0.1:0?proxy_protocol=true"], "");
    let bad: [&[u8]; 5] = [
        // No header: MQTT straight away.
        &connect_packet("bare", true, 60),
        b"PROXY TCP4 203.0.113 192.0.2.1 40000 1883\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 40000\r\n",
        &proxy_v2_raw(0x11, 0x11, &[0; 12]),
        &proxy_v2_raw(0x21, 0x11, &[0; 6]),
    ];
    for (i, bytes) in bad.iter().enumerate() {
        let mut client = RawClient::connect(broker.addr);
        client.send(&[bytes, &connect_packet(&format!("bad-{i}"), true, 60)[..]].concat());
        client.expect_closed();
    }
    // A v1 line that never ends within 107 bytes.
    let mut endless = RawClient::connect(broker.addr);
    endless.send(format!("PROXY TCP4 {}", "1".repeat(200)).as_bytes());
    endless.expect_closed();
    assert_eq!(count(&broker.context.metrics.proxy_header_errors), 6);
    // The listener still serves well-formed connections.
    let good = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 1883\r\n";
    proxied(&broker, good, "good", true);
}

// The per-address connection rate applies to the address the PROXY header names, after the
// header is read: every connection here comes from the proxy's 127.0.0.1.
#[tokio::test(start_paused = true)]
async fn behind_a_proxy_the_connection_rate_per_address_is_the_clients() {
    let broker = PausedBroker::with_listeners(
        &["tcp://127.0.0.1:0?proxy_protocol=true"],
        "[server]\nmax_connection_rate_per_address = 1\n",
    )
    .await;
    let header = |ip: &str| format!("PROXY TCP4 {ip} 192.0.2.1 40000 1883\r\n").into_bytes();
    let connect = |ip: &str, client_id: &str| [header(ip), connect_packet(client_id, true, 60)].concat();
    let mut first = broker.client().await;
    first.send(&connect("203.0.113.1", "one")).await;
    first.expect(&CONNACK_ACCEPTED).await;
    let mut again = broker.client().await;
    again.send(&connect("203.0.113.1", "one-again")).await;
    again.expect_closed().await;
    let mut other = broker.client().await;
    other.send(&connect("203.0.113.2", "two")).await;
    other.expect(&CONNACK_ACCEPTED).await;
    assert_eq!(count(&broker.context.metrics.connections_rate_limited), 1);
    let peer = broker.context.registry.identity("two").or_fail("the client's identity").peer;
    assert_eq!(peer, addr("203.0.113.2:40000"));
}

#[test]
fn tls_after_a_proxy_header_works_and_the_client_has_the_headers_address() {
    let pki = TestPki::new("proxy-tls");
    let broker = TestBroker::with_listeners(&["tls://127.0.0.1:0?proxy_protocol=true"], &pki.tls_toml(""));
    for (header, client_id, source) in [
        (proxy_v2(addr("198.51.100.20:41000"), addr("192.0.2.1:8883")), "tls-v2", "198.51.100.20:41000"),
        (b"PROXY TCP4 198.51.100.21 192.0.2.1 41001 8883\r\n".to_vec(), "tls-v1", "198.51.100.21:41001"),
    ] {
        let mut client = TlsClient::connect_after(broker.addr, pki.client_config(None), &header)
            .or_fail("a TLS handshake after the PROXY header");
        client.send(&connect_packet(client_id, true, 60));
        assert_eq!(client.read_packet().or_fail("the CONNACK"), CONNACK_ACCEPTED);
        client.send(&PINGREQ);
        assert_eq!(client.read_packet().or_fail("the PINGRESP"), PINGRESP);
        let identity = broker.context.registry.identity(client_id).or_fail("the client's identity");
        assert_eq!(identity.peer, addr(source));
    }
    // A TLS client that sends no header is closed: its ClientHello is no PROXY header.
    let refused = TlsClient::connect(broker.addr, pki.client_config(None));
    assert!(refused.is_err(), "a TLS handshake without a PROXY header succeeded");
    assert_eq!(count(&broker.context.metrics.proxy_header_errors), 1);
}
