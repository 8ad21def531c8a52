//! Protection limits with real clients: a listener's own `max_connections` and connection rate,
//! the connection rate per source address, a client's publish rate and bandwidth (5.0: DISCONNECT
//! 0x96; 3.1.1: slowed down, nothing dropped), flapping detection (CONNACK 0x8A, 3.1.1: 0x05),
//! and the PROXY protocol, versions 1 and 2, before MQTT and before TLS.
//!
//! Where timing matters the broker runs on a paused clock (`iothub_test_util::paused`): rates
//! refill, pauses end and bans expire in virtual time, so the tests are exact and take no real
//! time. Counters are read from the server's `Context`.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use iothub_protocol::{decode, Packet, ProtocolVersion, ReasonCode};
use iothub_test_util::paused::now;
use iothub_test_util::v5_client::{connect_v5, encode_v5, message};
use iothub_test_util::{
    ack, connect_packet, field, parse_publish, publish_packet, raw_connected, with_header, OrFail,
    PausedBroker, PausedClient, RawClient, TestBroker, TestPki, TlsClient, CONNACK_ACCEPTED, DISCONNECT,
    PINGREQ, PINGRESP, PUBACK, WAIT,
};

/// A 3.1.1 CONNACK refusing with return code 5, Not authorized (3.2.2.3): what a 3.1.1 client
/// is told when 5.0 would say 0x8A Banned.
const CONNACK_NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Decodes one whole 5.0 packet.
fn decode_v5(bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, ProtocolVersion::V5, usize::MAX) {
        Ok(Some(packet)) if buf.is_empty() => packet,
        other => panic!("expected one 5.0 packet, got {other:?} from {bytes:02x?}"),
    }
}

/// A 5.0 client on the paused clock, connected with Clean Start as `client_id`.
async fn v5_connected(addr: SocketAddr, client_id: &str) -> PausedClient {
    let mut client = PausedClient::connect(addr).await;
    client.send(&encode_v5(&Packet::Connect(Box::new(connect_v5(client_id, true, 0))))).await;
    match decode_v5(&client.read_packet().await) {
        Packet::ConnAck(connack) if connack.reason_code == ReasonCode::Success => client,
        other => panic!("expected an accepting CONNACK, got {other:?}"),
    }
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

// MQTT 5.0 table 2-6: 0x96 Message rate too high is a DISCONNECT reason code (3.14.2.1); PUBACK
// and PUBREC may not carry it (3.4.2.1, 3.5.2.1), so the PUBLISH beyond the rate is not
// acknowledged, nor routed, and the client is disconnected with 0x96. Its QoS 1 message stays
// unacknowledged in its session, to be sent again [MQTT-4.4.0-1].
#[tokio::test(start_paused = true)]
async fn a_v5_publisher_beyond_max_publish_rate_is_disconnected_with_0x96() {
    let broker = PausedBroker::with_config("[server]\nmax_publish_rate = 5\n").await;
    let mut subscriber = broker.connected(&connect_packet("watcher", true, 60), &CONNACK_ACCEPTED).await;
    subscriber.subscribe(1, &[("rate/#", 0)]).await;
    let mut publisher = v5_connected(broker.addr, "hasty").await;
    let mut burst = Vec::new();
    for id in 1..=6 {
        burst.extend(encode_v5(&Packet::Publish(message(
            "rate/t",
            format!("{id}").as_bytes(),
            1,
            false,
            id,
        ))));
    }
    publisher.send(&burst).await;
    for id in 1..=5 {
        match decode_v5(&publisher.read_packet().await) {
            Packet::PubAck(ack) if ack.packet_id.get() == id => {
                assert_eq!(ack.reason_code, ReasonCode::Success)
            }
            other => panic!("expected PUBACK {id}, got {other:?}"),
        }
    }
    match decode_v5(&publisher.read_packet().await) {
        Packet::Disconnect(disconnect) => assert_eq!(disconnect.reason_code, ReasonCode::MessageRateTooHigh),
        other => panic!("expected DISCONNECT 0x96, got {other:?}"),
    }
    publisher.expect_closed().await;
    for id in 1..=5 {
        assert_eq!(parse_publish(&subscriber.read_packet().await).text(), id.to_string());
    }
    subscriber.expect_silence(Duration::from_secs(1)).await;
    assert_eq!(count(&broker.context.metrics.publish_rate_limited), 1);
}

// The bandwidth limit counts whole PUBLISH packets, QoS 0 included: past it a 5.0 client is
// disconnected with 0x96 too.
#[tokio::test(start_paused = true)]
async fn a_v5_publisher_beyond_max_publish_bytes_rate_is_disconnected_with_0x96() {
    let broker = PausedBroker::with_config("[server]\nmax_publish_bytes_rate = 1000\n").await;
    let mut publisher = v5_connected(broker.addr, "wide").await;
    let big = encode_v5(&Packet::Publish(message("bytes", &[7; 600], 0, false, 0)));
    publisher.send(&big).await;
    publisher.expect_alive().await;
    // 600 ms later 600 bytes have refilled: one more passes, the next in that instant does not.
    tokio::time::sleep(Duration::from_millis(600)).await;
    publisher.send(&big).await;
    publisher.expect_alive().await;
    publisher.send(&big).await;
    match decode_v5(&publisher.read_packet().await) {
        Packet::Disconnect(disconnect) => assert_eq!(disconnect.reason_code, ReasonCode::MessageRateTooHigh),
        other => panic!("expected DISCONNECT 0x96, got {other:?}"),
    }
    publisher.expect_closed().await;
}

// 3.1.1 has no way to tell a client it publishes too fast: the broker stops reading it until
// its bucket refills, so TCP pushes back; every QoS 1 message is acknowledged and delivered,
// only later [MQTT-4.3.2-2].
#[tokio::test(start_paused = true)]
async fn a_v311_publisher_beyond_max_publish_rate_is_slowed_and_loses_nothing() {
    const MESSAGES: u16 = 40;
    let broker = PausedBroker::with_config("[server]\nmax_publish_rate = 10\n").await;
    let mut subscriber = broker.connected(&connect_packet("reader", true, 60), &CONNACK_ACCEPTED).await;
    subscriber.subscribe(1, &[("slow/#", 1)]).await;
    let mut publisher = broker.connected(&connect_packet("eager", true, 60), &CONNACK_ACCEPTED).await;
    let start = now();
    let mut burst = Vec::new();
    for id in 1..=MESSAGES {
        burst.extend(publish_packet("slow/t", id.to_string().as_bytes(), 1, false, false, id));
    }
    publisher.send(&burst).await;
    let mut acked_at = Vec::new();
    for id in 1..=MESSAGES {
        publisher.expect(&ack(PUBACK, id)).await;
        acked_at.push(now() - start);
    }
    // One second's worth (10) passes at once, and the 11th that empties the bucket; then one
    // every 100 ms: the 40th is acknowledged 2.9 s in.
    assert_eq!(acked_at[10], Duration::ZERO, "{acked_at:?}");
    assert_eq!(acked_at[11], Duration::from_millis(100), "{acked_at:?}");
    assert_eq!(acked_at[39], Duration::from_millis(2900), "{acked_at:?}");
    for id in 1..=MESSAGES {
        let delivery = parse_publish(&subscriber.read_packet().await);
        assert_eq!(delivery.text(), id.to_string());
        subscriber.send(&ack(PUBACK, delivery.packet_id.or_fail("a QoS 1 packet identifier"))).await;
    }
    publisher.expect_alive().await;
    assert_eq!(count(&broker.context.metrics.publish_rate_limited), 30, "each packet that paused");
    assert_eq!(count(&broker.context.metrics.dropped_qos12), 0);
}

const FLAPPING: &str =
    "[server]\nflapping_max_connects = 3\nflapping_window_secs = 10\nflapping_ban_secs = 30\n";

// MQTT 5.0 3.2.2.2: CONNACK 0x8A Banned; a 3.1.1 client gets return code 5, Not authorized.
#[tokio::test(start_paused = true)]
async fn a_v311_client_id_connecting_too_often_is_banned_with_0x05_until_the_ban_ends() {
    let broker = PausedBroker::with_config(FLAPPING).await;
    for _ in 0..2 {
        connects_with(broker.addr, "flappy", &CONNACK_ACCEPTED).await.disconnect().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The third CONNECT within 10 s begins a ban of 30 s; CONNECTs during it are refused too.
    connects_with(broker.addr, "flappy", &CONNACK_NOT_AUTHORIZED).await.expect_closed().await;
    let banned_at = now();
    connects_with(broker.addr, "flappy", &CONNACK_NOT_AUTHORIZED).await.expect_closed().await;
    let _steady = connects_with(broker.addr, "steady", &CONNACK_ACCEPTED).await;
    assert_eq!(count(&broker.context.metrics.flapping_bans), 1);
    tokio::time::sleep_until(banned_at + Duration::from_secs(29)).await;
    connects_with(broker.addr, "flappy", &CONNACK_NOT_AUTHORIZED).await.expect_closed().await;
    tokio::time::sleep_until(banned_at + Duration::from_secs(30)).await;
    connects_with(broker.addr, "flappy", &CONNACK_ACCEPTED).await.expect_alive().await;
}

#[tokio::test(start_paused = true)]
async fn a_v5_client_id_connecting_too_often_gets_connack_0x8a_and_assigned_ids_are_not_counted() {
    let broker = PausedBroker::with_config(FLAPPING).await;
    for _ in 0..2 {
        let mut client = v5_connected(broker.addr, "flappy5").await;
        client.send(&encode_v5(&Packet::Disconnect(Default::default()))).await;
        client.expect_closed().await;
    }
    let mut banned = PausedClient::connect(broker.addr).await;
    banned.send(&encode_v5(&Packet::Connect(Box::new(connect_v5("flappy5", true, 0))))).await;
    match decode_v5(&banned.read_packet().await) {
        Packet::ConnAck(connack) => assert_eq!(connack.reason_code, ReasonCode::Banned),
        other => panic!("expected CONNACK 0x8A, got {other:?}"),
    }
    banned.expect_closed().await;
    // Clients that let the server assign their identifier get a new one each time.
    for _ in 0..5 {
        v5_connected(broker.addr, "").await;
    }
}

/// A 3.1.1 CONNECT with a username and password.
fn connect_with_password(client_id: &str, username: &str, password: &[u8]) -> Vec<u8> {
    let mut body = field(b"MQTT");
    body.extend([4, 0xC2, 0, 60]);
    for part in [client_id.as_bytes(), username.as_bytes(), password] {
        body.extend(field(part));
    }
    with_header(0x10, &body)
}

// Only CONNECTs that pass authentication count: failed logins with someone's identifier cannot
// get it banned (and are the login throttle's business).
#[test]
fn failed_logins_do_not_count_towards_a_flapping_ban() {
    let dir = std::env::temp_dir().join(format!("iothub-flapping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a directory for the password file");
    let file = dir.join("passwd");
    let entry = iothub::auth::hash_password(b"right").or_fail("a password hash");
    std::fs::write(&file, format!("owner:{entry}\n")).or_fail("writing the password file");
    let toml = format!(
        "[server]\nflapping_max_connects = 2\nflapping_window_secs = 3600\nflapping_ban_secs = 3600\n\
         [auth]\nenabled = true\npassword_file = {:?}\n",
        file.display().to_string()
    );
    let broker = TestBroker::with_config(&toml);
    let attempt = |password: &[u8]| {
        let mut client = RawClient::connect(broker.addr);
        client.send(&connect_with_password("device-7", "owner", password));
        client.read_exact(4)
    };
    for _ in 0..3 {
        assert_eq!(attempt(b"wrong"), [0x20, 0x02, 0x00, 0x04], "bad credentials, not banned");
    }
    assert_eq!(attempt(b"right"), CONNACK_ACCEPTED);
    assert_eq!(attempt(b"right"), CONNACK_NOT_AUTHORIZED, "the second authenticated CONNECT bans");
    assert_eq!(count(&broker.context.metrics.flapping_bans), 1);
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
