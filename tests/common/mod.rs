//! Test harness shared by the integration tests: a real broker on `127.0.0.1:0` in a thread of
//! its own, and a raw-bytes client for exact exchanges and malformed input.
//!
//! Every wait here is bounded by a timeout; nothing sleeps to synchronise.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use iothub::{Config, ConfigBuilder, Server};
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A broker running in a background thread; stopped when dropped.
pub struct TestBroker {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// Starts a broker with the default configuration on an ephemeral loopback port.
    pub fn start() -> TestBroker {
        TestBroker::with_config("")
    }

    /// Starts a broker with extra TOML configuration (the listener is always `127.0.0.1:0`).
    pub fn with_config(toml: &str) -> TestBroker {
        let config = ConfigBuilder::new()
            .toml("test", toml)
            .unwrap()
            .set_flag("--listen", "server.listen_addresses=tcp://127.0.0.1:0")
            .unwrap()
            .build()
            .unwrap();
        TestBroker::with_typed_config(config)
    }

    /// Starts a broker with a complete configuration.
    pub fn with_typed_config(config: Config) -> TestBroker {
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async move {
                let server = Server::bind(&config).await.unwrap();
                tx.send(server.local_addrs()[0]).unwrap();
                server.run(token).await;
            });
        });
        let addr = rx.recv_timeout(WAIT).expect("broker did not start");
        TestBroker { addr, shutdown, thread: Some(thread) }
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

/// A client that speaks raw bytes, for exact exchanges and malformed input.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
}

impl RawClient {
    /// Connects to the broker without sending anything.
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient { stream }
    }

    /// Sends bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads exactly `n` bytes, failing the test after `WAIT`.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).unwrap_or_else(|e| panic!("expected {n} bytes: {e}"));
        buf
    }

    /// Asserts that the next bytes from the broker are exactly `expected`.
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
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 1];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(_) => panic!("expected the connection to close, got byte {:#04x}", buf[0]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection to close: {e}"),
        }
    }

    /// Asserts that nothing arrives within `quiet`.
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut buf = [0u8; 1];
        match self.stream.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.stream.set_read_timeout(Some(WAIT)).unwrap();
    }
}

/// A 3.1.1 CONNECT packet with the given client id, clean session flag and keep-alive.
pub fn connect_packet(client_id: &str, clean: bool, keep_alive: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, if clean { 0x02 } else { 0 }];
    body.extend(keep_alive.to_be_bytes());
    body.extend(u16::try_from(client_id.len()).unwrap().to_be_bytes());
    body.extend(client_id.as_bytes());
    with_header(0x10, &body)
}

/// Prefixes a body with a fixed header.
pub fn with_header(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first_byte];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

/// Connects a raw client with a clean session and checks the CONNACK.
pub fn raw_connected(addr: SocketAddr, client_id: &str) -> RawClient {
    let mut client = RawClient::connect(addr);
    client.send(&connect_packet(client_id, true, 60));
    client.expect(&[0x20, 0x02, 0x00, 0x00]);
    client
}

/// Fails the test with a clear message if a command-line tool is missing; `scripts/test`
/// installs them.
pub fn require_tool(tool: &str) {
    let found =
        Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap().status.success();
    assert!(found, "{tool} is not installed; run scripts/test, which installs the test dependencies");
}

/// A command-line client whose standard output is read line by line; killed when dropped.
pub struct Tool {
    /// The running process.
    child: Child,
    /// Lines of its standard output.
    lines: mpsc::Receiver<String>,
}

impl Tool {
    /// Starts the command with its standard output piped to a reader thread.
    pub fn spawn(command: &mut Command) -> Tool {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tool { child, lines }
    }

    /// Waits for a line satisfying `wanted`, failing the test after `WAIT`; returns it.
    pub fn expect_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(error) => panic!("no line with {what} from the tool: {error}"),
            }
        }
    }

    /// Waits for a line containing `wanted`, failing the test after `WAIT`.
    pub fn expect_line_containing(&self, wanted: &str) {
        self.expect_line(&format!("{wanted:?}"), |line| line.contains(wanted));
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls an event loop until `wanted` returns a value, failing after `WAIT`.
#[allow(clippy::disallowed_methods)] // A client-side deadline, not the broker's clock.
pub async fn next_event<T>(
    eventloop: &mut rumqttc::EventLoop,
    wanted: impl Fn(&rumqttc::Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll())
            .await
            .expect("no expected event in time")
            .expect("connection error");
        if let Some(value) = wanted(&event) {
            return value;
        }
    }
}
