//! Virtual time: the real broker ([`iothub::Server`]) on the test's own current-thread runtime,
//! with tokio's clock paused, and [`PausedClient`]s on tokio sockets beside it. The broker reads
//! only tokio's clock (`tokio::time::Instant`), so keep-alive, connect and session timeouts run
//! in virtual time: a test that waits 1.5 s or 301 s waits for no real time at all.
//!
//! Tests use `#[tokio::test(start_paused = true)]`. When every task is waiting, tokio advances a
//! paused clock to the next timer (auto-advance), so time passes only where the test waits
//! for it: [`tokio::time::sleep`], or a [`PausedClient`] read with a virtual time limit, or the
//! broker's own deadlines while the test waits for what they cause.
//!
//! **Harness invariant:** the clock does not move while an answer is on its way over loopback.
//! Tokio auto-advances only when the runtime finds nothing to run after polling for I/O (a task
//! woken by that poll cancels the advance), and on Linux a loopback write is normally readable
//! at the other end by the time the write returns, so the poll finds it and wakes the reader. A
//! client that sends a packet and waits for the answer therefore sees it at the same virtual
//! instant. `tests/smoke.rs` checks this with a thousand round trips against the broker's
//! keep-alive deadline.
//!
//! Not here: a client in another thread or process. The runtime cannot see it coming, so it
//! would take its silence for idleness and move the clock.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use iothub::internals::Context;
use iothub::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::packets::{suback_granting, subscribe_packet, DISCONNECT, PINGREQ, PINGRESP};
use crate::{config_with_listeners, loopback_config, OrFail, WAIT};

/// The current time on the test's clock: virtual while it is paused.
#[allow(clippy::disallowed_methods)] // The test's clock, not the broker's.
pub fn now() -> Instant {
    Instant::now()
}

/// Fails the test unless tokio's clock is paused, so that a test meant for virtual time does not
/// silently wait in real time.
fn assert_clock_paused() {
    let before = now();
    std::thread::sleep(Duration::from_millis(2));
    assert_eq!(now(), before, "the clock is not paused: use #[tokio::test(start_paused = true)]");
}

/// The broker served by a task on the test's runtime, whose clock must be paused. It stops when
/// dropped.
pub struct PausedBroker {
    /// Where its first listener listens.
    pub addr: SocketAddr,
    /// Where each listener listens, in configuration order.
    pub addrs: Vec<SocketAddr>,
    /// The server's shared state: its counters, its registry of clients.
    pub context: Arc<Context>,
    /// Stops the server.
    shutdown: CancellationToken,
}

impl PausedBroker {
    /// Starts a broker with the default configuration on an ephemeral loopback port.
    pub async fn start() -> PausedBroker {
        PausedBroker::with_config("").await
    }

    /// Starts a broker with extra TOML configuration (the listener is always `127.0.0.1:0`).
    pub async fn with_config(toml: &str) -> PausedBroker {
        PausedBroker::with_typed_config(loopback_config(toml)).await
    }

    /// Starts a broker with these listeners (loopback URLs with port 0) and extra TOML.
    pub async fn with_listeners(listeners: &[&str], toml: &str) -> PausedBroker {
        PausedBroker::with_typed_config(config_with_listeners(listeners, toml)).await
    }

    /// Starts a broker with a complete configuration.
    #[allow(clippy::disallowed_methods)] // The server's task is the test's, not the server's.
    pub async fn with_typed_config(config: Config) -> PausedBroker {
        assert_clock_paused();
        let server = Server::bind(&config).await.or_fail("binding the broker");
        let addrs = server.local_addrs();
        let context = Arc::clone(server.context());
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        PausedBroker { addr: addrs[0], addrs, context, shutdown }
    }

    /// Opens a connection to the broker without sending anything.
    pub async fn client(&self) -> PausedClient {
        PausedClient::connect(self.addr).await
    }

    /// Opens a connection, sends `connect` (a CONNECT packet) and checks that the answer is
    /// `connack`.
    pub async fn connected(&self, connect: &[u8], connack: &[u8]) -> PausedClient {
        let mut client = self.client().await;
        client.send(connect).await;
        client.expect(connack).await;
        client
    }
}

impl Drop for PausedBroker {
    fn drop(&mut self) {
        // The server's task ends with the test's runtime at the latest.
        self.shutdown.cancel();
    }
}

/// What a read that waited at most a given time saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Bytes, as many as had arrived (up to 64).
    Bytes(Vec<u8>),
    /// The broker closed the connection (EOF or reset).
    Closed,
    /// Nothing within the time.
    Silent,
}

/// A raw-bytes client on a tokio socket, for a [`PausedBroker`]. Time limits are on the test's
/// clock, so virtual: an answer to a packet comes at the same virtual instant, and a limit is
/// only reached when nothing else is left to happen before it.
pub struct PausedClient {
    /// The socket.
    stream: TcpStream,
}

impl PausedClient {
    /// Connects to the broker without sending anything.
    pub async fn connect(addr: SocketAddr) -> PausedClient {
        let stream = TcpStream::connect(addr).await.or_fail("connecting to the broker");
        stream.set_nodelay(true).or_fail("setting TCP_NODELAY");
        PausedClient { stream }
    }

    /// Connects to the broker from `source`, an address of the loopback range (any of
    /// 127.0.0.0/8 on Linux), without sending anything.
    pub async fn connect_from(addr: SocketAddr, source: IpAddr) -> PausedClient {
        let socket = if source.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
            .or_fail("a client socket");
        socket.bind(SocketAddr::new(source, 0)).or_fail("binding the client's source address");
        let stream = socket.connect(addr).await.or_fail("connecting to the broker");
        stream.set_nodelay(true).or_fail("setting TCP_NODELAY");
        PausedClient { stream }
    }

    /// Sends bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.or_fail("sending to the broker");
    }

    /// Sends bytes, returning the error if the broker has already closed the connection.
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads exactly `n` bytes, failing the test after `WAIT` of virtual time.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        match tokio::time::timeout(WAIT, self.stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => buf,
            Ok(Err(e)) => panic!("expected {n} bytes: {e}"),
            Err(_) => panic!("expected {n} bytes within {WAIT:?}"),
        }
    }

    /// Asserts that the next bytes from the broker are exactly `expected`.
    pub async fn expect(&mut self, expected: &[u8]) {
        assert_eq!(self.read_exact(expected.len()).await, expected);
    }

    /// Reads one whole MQTT packet (fixed header included).
    pub async fn read_packet(&mut self) -> Vec<u8> {
        let mut packet = self.read_exact(2).await;
        let mut len = usize::from(packet[1] & 0x7F);
        let mut shift = 7;
        let mut last = packet[1];
        while last & 0x80 != 0 {
            last = self.read_exact(1).await[0];
            packet.push(last);
            len |= usize::from(last & 0x7F) << shift;
            shift += 7;
        }
        packet.extend(self.read_exact(len).await);
        packet
    }

    /// Waits at most `wait` for bytes or the close.
    pub async fn read_within(&mut self, wait: Duration) -> Seen {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(wait, self.stream.read(&mut buf)).await {
            Err(_) => Seen::Silent,
            Ok(Ok(0)) => Seen::Closed,
            Ok(Ok(n)) => Seen::Bytes(buf[..n].to_vec()),
            Ok(Err(e)) if e.kind() == ErrorKind::ConnectionReset => Seen::Closed,
            Ok(Err(e)) => panic!("reading from the broker: {e}"),
        }
    }

    /// Asserts that nothing arrives, and the connection stays open, for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        let seen = self.read_within(quiet).await;
        assert_eq!(seen, Seen::Silent, "expected {quiet:?} of silence");
    }

    /// Asserts that the broker closes the connection, within `WAIT`, without sending more bytes.
    pub async fn expect_closed(&mut self) {
        let seen = self.read_within(WAIT).await;
        assert_eq!(seen, Seen::Closed, "expected the connection to close within {WAIT:?}");
    }

    /// Sends SUBSCRIBE and checks the SUBACK grants each requested QoS, in order.
    pub async fn subscribe(&mut self, packet_id: u16, filters: &[(&str, u8)]) {
        self.send(&subscribe_packet(packet_id, filters)).await;
        self.expect(&suback_granting(packet_id, filters)).await;
    }

    /// Sends DISCONNECT and waits for the broker to close the socket, which it does once the
    /// session is stored or discarded.
    pub async fn disconnect(mut self) {
        self.send(&DISCONNECT).await;
        self.expect_closed().await;
    }

    /// Checks that the connection is still served: a PINGREQ is answered.
    pub async fn expect_alive(&mut self) {
        self.send(&PINGREQ).await;
        self.expect(&PINGRESP).await;
    }
}
