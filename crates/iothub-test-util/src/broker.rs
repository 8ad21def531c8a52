//! The real broker on an ephemeral loopback port in a thread of its own, and a blocking
//! raw-bytes client for exact exchanges and malformed input. For the broker on the test's own
//! runtime with a paused clock, see [`crate::paused`].

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::Arc;

use iothub::auth::AuthenticationMethod;
use iothub::internals::Context;
use iothub::storage::Backend;
use iothub::{Config, ConfigBuilder, Server};
use tokio_util::sync::CancellationToken;

use crate::{OrFail, WAIT};

/// What test brokers change from the built-in defaults, before the test's own TOML: no `$SYS`
/// topics, so that a test counting what a `$SYS/#` subscriber receives sees only what it did
/// (a test of `$SYS` sets `[sys] interval_secs`).
const TEST_DEFAULTS: &str = "[sys]\ninterval_secs = 0\n";

/// A configuration from extra TOML (the `[server]` table and others), listening on
/// `127.0.0.1:0` whatever the TOML says.
pub fn loopback_config(toml: &str) -> Config {
    ConfigBuilder::new()
        .toml("test defaults", TEST_DEFAULTS)
        .or_fail("the test defaults")
        .toml("test", toml)
        .or_fail("the test's TOML configuration")
        .set_flag("--listen", "server.listen_addresses=tcp://127.0.0.1:0")
        .or_fail("the loopback listener")
        .build()
        .or_fail("the test's configuration")
}

/// A configuration from extra TOML with these listeners (loopback URLs with port 0, such as
/// `tls://127.0.0.1:0`) whatever the TOML says.
pub fn config_with_listeners(listeners: &[&str], toml: &str) -> Config {
    ConfigBuilder::new()
        .toml("test defaults", TEST_DEFAULTS)
        .or_fail("the test defaults")
        .toml("test", toml)
        .or_fail("the test's TOML configuration")
        .set_flag("--listen", &format!("server.listen_addresses={}", listeners.join(",")))
        .or_fail("the listeners")
        .build()
        .or_fail("the test's configuration")
}

/// A broker running in a background thread on a multi-thread runtime of its own; stopped when
/// dropped.
pub struct TestBroker {
    /// Where its first listener listens.
    pub addr: SocketAddr,
    /// Where each listener listens, in configuration order.
    pub addrs: Vec<SocketAddr>,
    /// Reloads the TLS, password and ACL files, as SIGHUP does.
    pub reloader: iothub::Reloader,
    /// Where the admin listener listens, when `[admin] listen_address` is set.
    pub admin: Option<SocketAddr>,
    /// The server's shared state: its counters, its registry of clients.
    pub context: Arc<Context>,
    /// Stops the server.
    shutdown: CancellationToken,
    /// The thread that runs the server.
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// Starts a broker with the default configuration on an ephemeral loopback port.
    pub fn start() -> TestBroker {
        TestBroker::with_config("")
    }

    /// Starts a broker with extra TOML configuration (the listener is always `127.0.0.1:0`).
    pub fn with_config(toml: &str) -> TestBroker {
        TestBroker::with_typed_config(loopback_config(toml))
    }

    /// Starts a broker with these listeners (loopback URLs with port 0) and extra TOML.
    pub fn with_listeners(listeners: &[&str], toml: &str) -> TestBroker {
        TestBroker::with_typed_config(config_with_listeners(listeners, toml))
    }

    /// Starts a broker with a complete configuration.
    pub fn with_typed_config(config: Config) -> TestBroker {
        TestBroker::with_auth_methods(config, Vec::new())
    }

    /// Starts a broker with durable storage on `backend` (its contents restored first).
    pub fn with_backend(config: Config, backend: Box<dyn Backend>) -> TestBroker {
        TestBroker::spawn(config, Some(backend), Vec::new())
    }

    /// Starts a broker with a complete configuration and these MQTT 5.0 enhanced
    /// authentication methods.
    pub fn with_auth_methods(config: Config, methods: Vec<Arc<dyn AuthenticationMethod>>) -> TestBroker {
        TestBroker::spawn(config, None, methods)
    }

    fn spawn(
        config: Config,
        backend: Option<Box<dyn Backend>>,
        methods: Vec<Arc<dyn AuthenticationMethod>>,
    ) -> TestBroker {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .or_fail("the broker's runtime");
            runtime.block_on(async move {
                let server = match backend {
                    Some(backend) => Server::bind_with_backend(&config, backend).await,
                    None => Server::bind_with_auth_methods(&config, methods).await,
                }
                .or_fail("binding the broker");
                // The test waits for the address; if it gave up, the server stops with it.
                let context = Arc::clone(server.context());
                if tx.send((server.local_addrs(), server.reloader(), server.admin_addr(), context)).is_ok() {
                    server.run(token).await;
                }
            });
        });
        let (addrs, reloader, admin, context) = rx.recv_timeout(WAIT).or_fail("the broker did not start");
        TestBroker { addr: addrs[0], addrs, reloader, admin, context, shutdown, thread: Some(thread) }
    }

    /// The port, as a string for command-line clients.
    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`), with a bearer token if
/// given; returns the status code and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).or_fail("connecting to the admin listener");
    stream.set_read_timeout(Some(WAIT)).or_fail("a read timeout");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).or_fail("sending the request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).or_fail("reading the response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").or_fail("an HTTP response");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).or_fail("a status code");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    (status, body)
}

/// The body of a chunked HTTP response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A blocking client that speaks raw bytes, for exact exchanges and malformed input. Every read
/// fails the test after [`WAIT`].
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
}

impl RawClient {
    /// Connects to the broker without sending anything.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).or_fail("connecting to the broker");
        stream.set_read_timeout(Some(WAIT)).or_fail("setting the read timeout");
        stream.set_nodelay(true).or_fail("setting TCP_NODELAY");
        RawClient { stream }
    }

    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).or_fail("sending to the broker");
    }

    /// Reads exactly `n` bytes, failing the test after `WAIT`.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).unwrap_or_else(|e| panic!("expected {n} bytes: {e}"));
        buf
    }

    /// Asserts that the next bytes from the broker are exactly `expected`.
    #[track_caller]
    pub fn expect(&mut self, expected: &[u8]) {
        assert_eq!(self.read_exact(expected.len()), expected);
    }

    /// Reads one whole MQTT packet (fixed header included).
    pub fn read_packet(&mut self) -> Vec<u8> {
        let mut packet = self.read_exact(2);
        let mut len = usize::from(packet[1] & 0x7F);
        let mut shift = 7;
        let mut last = packet[1];
        while last & 0x80 != 0 {
            last = self.read_exact(1)[0];
            packet.push(last);
            len |= usize::from(last & 0x7F) << shift;
            shift += 7;
        }
        packet.extend(self.read_exact(len));
        packet
    }

    /// Asserts that the broker closes the connection (EOF or reset) without sending more bytes.
    #[track_caller]
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => panic!("expected the connection to close, got {:02x?}", &buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("expected the connection to close: {e}"),
            }
        }
    }

    /// Asserts that nothing arrives within `quiet`.
    #[track_caller]
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.stream.set_read_timeout(Some(quiet)).or_fail("setting the read timeout");
        let mut buf = [0u8; 1];
        let deadline = std::time::Instant::now() + quiet;
        loop {
            match self.stream.read(&mut buf) {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                // A signal cut the wait short: wait out the rest of it.
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.stream.set_read_timeout(Some(left)).or_fail("setting the read timeout");
                }
                other => panic!("expected silence, got {other:?}"),
            }
        }
        self.stream.set_read_timeout(Some(WAIT)).or_fail("setting the read timeout");
    }
}
