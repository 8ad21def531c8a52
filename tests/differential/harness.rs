//! The harness of the differential checks, shared by `tests/differential.rs` (MQTT 3.1.1) and
//! `tests/differential_v5.rs` (MQTT 5.0): a private Mosquitto on an ephemeral loopback port, an
//! exchange of raw bytes run against it and against IoTHub, and the comparison of what every
//! client of the exchange saw.
//!
//! Each exchange records a transcript, one line per event a client saw: a packet in hex, a
//! normalised packet where the 5.0 file says so, "closed" or "silent". `same` asserts that both
//! brokers gave the expected transcript; `differs` asserts each broker's own, for a documented
//! reason. Each prints one `differential: VERSION: NAME: ...` line that `scripts/differential`
//! collects, VERSION being the protocol version of the test file, "3.1.1" or "5.0".

// Each test file is a crate of its own and uses only part of the harness.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use iothub_test_util::{connect_packet, OrFail, TestBroker, PINGREQ, WAIT};

/// Where Debian's package installs the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// How long a client waits before a missing packet counts as "silent". Used only where the point
/// of the step is that something may not happen; a broker that closes the connection or sends a
/// packet is seen at once.
pub const QUIET: Duration = Duration::from_millis(400);

/// How long a client waits where one broker sends a packet and the other, correctly too, does
/// not: long enough that a slow broker is not taken for a silent one.
pub const EITHER: Duration = Duration::from_secs(2);

/// How long Mosquitto may take to accept its first connection.
const STARTUP: Duration = Duration::from_secs(10);

/// Fails the test, never skips it, when Mosquitto is not installed.
pub fn require_mosquitto() {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is missing: the differential tests need Mosquitto 2.x; run scripts/test, \
         which installs the test dependencies"
    );
}

/// A private Mosquitto process on an ephemeral loopback port, killed when dropped.
pub struct Mosquitto {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Mosquitto {
    /// Starts Mosquitto with anonymous access, no persistence and the `extra` configuration
    /// lines. The port is chosen by binding a listener to port 0 and dropping it; should another
    /// process take it first, Mosquitto exits and the start is retried on a new port.
    pub fn start(extra: &str) -> Mosquitto {
        require_mosquitto();
        for _ in 0..5 {
            if let Some(mosquitto) = Mosquitto::try_start(extra) {
                return mosquitto;
            }
        }
        panic!("mosquitto did not start on any of five ephemeral ports");
    }

    fn try_start(extra: &str) -> Option<Mosquitto> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .or_fail("an ephemeral port")
            .port();
        let dir = std::env::temp_dir().join(format!("iothub-differential-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir).or_fail("mosquitto's directory");
        let config = dir.join("mosquitto.conf");
        fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 sys_interval 0\nlog_dest stderr\nlog_type all\n{extra}\n"
            ),
        )
        .or_fail("mosquitto's configuration");
        let log = File::create(dir.join("mosquitto.log")).or_fail("mosquitto's log");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {MOSQUITTO}: {e}; run scripts/test"));
        let mut mosquitto = Mosquitto { addr: SocketAddr::from(([127, 0, 0, 1], port)), child, dir };
        let deadline = Instant::now() + STARTUP;
        loop {
            // Mosquitto logs "running" once its listener is bound; the connect then proves the
            // port answers. Without the log line, a connect could reach another process that
            // took the port, while Mosquitto exits on "Address already in use".
            if mosquitto.log().contains(" running")
                && TcpStream::connect_timeout(&mosquitto.addr, Duration::from_secs(1)).is_ok()
            {
                return Some(mosquitto);
            }
            if mosquitto.child.try_wait().or_fail("waiting for mosquitto").is_some() {
                eprintln!("mosquitto exited at start:\n{}", mosquitto.log());
                return None;
            }
            assert!(Instant::now() < deadline, "mosquitto did not accept connections:\n{}", mosquitto.log());
            // Polling is the only readiness signal Mosquitto gives; each try is bounded and the
            // loop ends at the deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("mosquitto log:\n{}", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Configuration for both brokers of an exchange, where the defaults do not do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Extra TOML for IoTHub's `TestBroker`.
    pub iothub: &'static str,
    /// Extra lines for Mosquitto's configuration file.
    pub mosquitto: &'static str,
}

/// What one exchange saw, one line per event, shared by the clients of the exchange.
type Transcript = Rc<RefCell<Vec<String>>>;

/// One run of an exchange against one broker.
pub struct Exchange {
    /// Where the broker listens.
    pub addr: SocketAddr,
    transcript: Transcript,
}

impl Exchange {
    /// Opens a TCP connection without sending anything.
    pub fn client(&self, name: &str) -> Peer {
        let stream = TcpStream::connect(self.addr).or_fail("connecting to the broker");
        stream.set_nodelay(true).or_fail("setting TCP_NODELAY");
        Peer { name: name.to_owned(), stream, transcript: Rc::clone(&self.transcript) }
    }

    /// Opens a connection, sends a 3.1.1 CONNECT and records the answer.
    pub fn connected(&self, name: &str, client_id: &str, clean: bool) -> Peer {
        let mut peer = self.client(name);
        peer.send(&connect_packet(client_id, clean, 60));
        peer.recv();
        peer
    }
}

/// One client connection of an exchange.
pub struct Peer {
    name: String,
    stream: TcpStream,
    transcript: Transcript,
}

/// What a client saw when it waited for a packet.
pub enum Seen {
    /// A whole packet, fixed header included.
    Packet(Vec<u8>),
    /// The broker closed the connection.
    Closed,
    /// Nothing arrived in time.
    Silent,
}

impl Peer {
    /// Sends bytes; a broker that already closed the connection shows in the next `recv`.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Waits up to `WAIT` for a packet and records it (or the close, or the silence).
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        self.wait(WAIT)
    }

    /// Waits up to `QUIET` for a packet and records it (or the close, or the silence).
    pub fn quiet(&mut self) -> Option<Vec<u8>> {
        self.wait(QUIET)
    }

    /// Waits up to `EITHER` for a packet that one broker sends and the other does not.
    pub fn either(&mut self) -> Option<Vec<u8>> {
        self.wait(EITHER)
    }

    /// Waits up to `timeout` for a packet and records it in hex (or the close, or the silence).
    pub fn wait(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let seen = self.read(timeout);
        let line = match &seen {
            Seen::Packet(bytes) => hex(&without_disconnect_properties(bytes)),
            Seen::Closed => "closed".to_owned(),
            Seen::Silent => "silent".to_owned(),
        };
        self.note(&line);
        match seen {
            Seen::Packet(bytes) => Some(bytes),
            Seen::Closed | Seen::Silent => None,
        }
    }

    /// Adds a line of this client's to the transcript, for a step that records what it saw in
    /// a form of its own (a normalised packet, say).
    pub fn note(&self, line: &str) {
        self.transcript.borrow_mut().push(format!("{}: {line}", self.name));
    }

    /// Waits up to `timeout` for a packet without recording anything.
    pub fn read(&mut self, timeout: Duration) -> Seen {
        self.stream.set_read_timeout(Some(timeout)).or_fail("setting the read timeout");
        let mut first = [0u8; 1];
        match self.stream.read(&mut first) {
            Ok(0) => return Seen::Closed,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Seen::Silent,
            Err(_) => return Seen::Closed,
        }
        self.stream.set_read_timeout(Some(WAIT)).or_fail("setting the read timeout");
        let mut packet = vec![first[0]];
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let mut byte = [0u8; 1];
            if self.stream.read_exact(&mut byte).is_err() {
                return Seen::Closed;
            }
            packet.push(byte[0]);
            len |= usize::from(byte[0] & 0x7F) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 || shift > 21 {
                break;
            }
        }
        let mut body = vec![0; len];
        if self.stream.read_exact(&mut body).is_err() {
            return Seen::Closed;
        }
        packet.extend(body);
        Seen::Packet(packet)
    }
}

/// Bytes as lowercase hex pairs separated by spaces, as the transcripts write packets.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write!(out, "{byte:02x}").or_fail("writing to a String");
    }
    out
}

/// The transcripts of one exchange on IoTHub and on Mosquitto.
pub struct Outcome {
    /// What IoTHub's clients saw.
    pub iothub: Vec<String>,
    /// What Mosquitto's clients saw.
    pub mosquitto: Vec<String>,
}

/// Runs `exchange` against a fresh IoTHub and then a fresh Mosquitto, each configured by `setup`.
pub fn run_both(setup: Setup, exchange: impl Fn(&Exchange)) -> Outcome {
    require_mosquitto();
    let run = |addr: SocketAddr| {
        let run = Exchange { addr, transcript: Rc::default() };
        exchange(&run);
        let lines = run.transcript.borrow().clone();
        lines
    };
    let iothub = {
        let broker = TestBroker::with_config(setup.iothub);
        run(broker.addr)
    };
    let mosquitto = {
        let broker = Mosquitto::start(setup.mosquitto);
        run(broker.addr)
    };
    Outcome { iothub, mosquitto }
}

/// The protocol version the summary lines of this test file name.
fn version() -> &'static str {
    if env!("CARGO_CRATE_NAME") == "differential_v5" {
        "5.0"
    } else {
        "3.1.1"
    }
}

/// Asserts that both brokers, in their default configuration, gave the same transcript, and
/// that it is `expected`.
pub fn same(name: &str, expected: &[&str], exchange: impl Fn(&Exchange)) {
    same_in(Setup::default(), name, expected, exchange);
}

/// `same`, with both brokers configured by `setup`.
pub fn same_in(setup: Setup, name: &str, expected: &[&str], exchange: impl Fn(&Exchange)) {
    let outcome = run_both(setup, exchange);
    assert_eq!(
        outcome.iothub, outcome.mosquitto,
        "{name}: IoTHub (left) and Mosquitto (right) answered differently"
    );
    assert_eq!(outcome.mosquitto, expected, "{name}: both brokers answered, but not as expected");
    println!("differential: {}: {name}: same", version());
}

/// Asserts each broker's transcript separately where they differ for a documented reason.
pub fn differs(name: &str, why: &str, iothub: &[&str], mosquitto: &[&str], exchange: impl Fn(&Exchange)) {
    differs_in(Setup::default(), name, why, iothub, mosquitto, exchange);
}

/// `differs`, with both brokers configured by `setup`.
pub fn differs_in(
    setup: Setup,
    name: &str,
    why: &str,
    iothub: &[&str],
    mosquitto: &[&str],
    exchange: impl Fn(&Exchange),
) {
    let outcome = run_both(setup, exchange);
    assert_eq!(outcome.iothub, iothub, "{name}: IoTHub's transcript");
    assert_eq!(outcome.mosquitto, mosquitto, "{name}: Mosquitto's transcript");
    println!("differential: {}: {name}: differs: {why}", version());
}

/// Sends PINGREQ and records PINGRESP: once it arrives, everything the client sent before it
/// has been handled by the broker.
pub fn sync(peer: &mut Peer) {
    peer.send(&PINGREQ);
    peer.recv();
}

/// A 5.0 DISCONNECT as its reason code alone (`e0 01 <code>`): its properties are a Reason
/// String for people (3.14.2.2.3), which each broker words in its own way. Any other packet,
/// and a 3.1.1 DISCONNECT (no body), is returned as it is.
fn without_disconnect_properties(bytes: &[u8]) -> Vec<u8> {
    match bytes {
        [0xE0, len, code, ..] if *len > 1 && len & 0x80 == 0 => vec![0xE0, 1, *code],
        _ => bytes.to_vec(),
    }
}
