//! The `iothub` command itself: `--help`, `--check-config` on valid and invalid files, refused
//! environment variables and `--set` overrides, integer ranges that every layer reads alike and
//! that the server can honour, the example and production configurations, and the running
//! binary: it logs the port it bound, carries a mosquitto_pub/mosquitto_sub round trip, serves at
//! the largest limits accepted, drains on SIGINT, exits at once on a second SIGINT or on SIGTERM,
//! and writes JSON logs when asked.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use iothub_test_util::{
    connect_packet, mosquitto_pub, qos0_publish, raw_connected, require_tool, subscribe, OrFail, RawClient,
    PINGREQ, PINGRESP, WAIT,
};

const BINARY: &str = env!("CARGO_BIN_EXE_iothub");

/// The example configuration the project started from, with a plain and a WebSocket listener.
const SEED_EXAMPLE: &str = include_str!("data/seed-example.toml");

/// The seed example without its WebSocket listener.
fn seed_example_tcp_only() -> String {
    let text = SEED_EXAMPLE.replace(", \"ws://0.0.0.0:9001\"", "");
    assert_ne!(text, SEED_EXAMPLE, "the WebSocket listener was not removed");
    text
}

/// Removes every inherited `IOTHUB_*` variable, so that only those a test sets reach the binary.
fn without_iothub_env(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars() {
        if name.starts_with("IOTHUB_") {
            command.env_remove(name);
        }
    }
    command
}

/// Runs the binary to completion under `timeout`, so that a run that should have been refused
/// but started serving still ends.
fn run_bounded(args: &[&str], env: &[(&str, &str)]) -> Output {
    require_tool("timeout");
    let output = without_iothub_env(Command::new("timeout").args(["-k", "5", "20", BINARY]).args(args))
        .envs(env.iter().copied())
        .output()
        .or_fail("running iothub under timeout");
    assert_ne!(output.status.code(), Some(124), "iothub {args:?} did not exit within 20 seconds");
    output
}

/// Writes `text` to a file of its own in Cargo's scratch directory for integration tests.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}.toml"));
    std::fs::write(&path, text).or_fail("writing the configuration file");
    path
}

/// Runs `--check-config` on `text` with extra arguments and environment variables.
fn check_config(name: &str, text: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let path = config_file(name, text);
    let mut args = vec!["--check-config", path.to_str().or_fail("a UTF-8 path")];
    args.extend_from_slice(extra);
    run_bounded(&args, env)
}

/// Asserts that the configuration was refused with exit status 2 and exactly one line on stderr
/// containing every one of `needles`; returns that line.
fn assert_refused(output: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "expected a refusal with status 2; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line on stderr, got:\n{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "the message does not name {needle}: {}", lines[0]);
    }
    lines[0].to_owned()
}

fn assert_accepted(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "expected the configuration to be valid; stderr:\n{stderr}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("configuration is valid"),
        "--check-config printed no verdict"
    );
}

#[test]
fn help_lists_the_configuration_flags() {
    let output = run_bounded(&["--help"], &[]);
    assert!(output.status.success(), "--help failed: {}", output.status);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in ["--config", "--check-config", "--listen", "--set"] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
}

#[test]
fn check_config_accepts_a_valid_file() {
    let output = check_config("valid", &seed_example_tcp_only(), &[], &[]);
    assert_accepted(&output);
}

#[test]
fn check_config_names_an_unknown_key() {
    let output = check_config("unknown-key", "[server]\nmax_conections = 5\n", &[], &[]);
    assert_refused(&output, &["server.max_conections", "unknown key"]);
}

#[test]
fn check_config_names_the_key_of_a_value_of_the_wrong_type() {
    let output = check_config("bad-type", "[server]\nmax_connections = \"lots\"\n", &[], &[]);
    assert_refused(&output, &["server.max_connections", "non-negative integer"]);
}

#[test]
fn check_config_accepts_every_transport_and_refuses_a_path_on_tcp() {
    let text = "[server]\nlisten_addresses = [\"ws://127.0.0.1:9001\", \"wss://127.0.0.1:9002/ws\", \"mqtts://127.0.0.1:8883\"]\n[tls]\ncert_file = \"s.crt\"\nkey_file = \"s.key\"\n";
    assert_accepted(&check_config("listeners", text, &[], &[]));
    let text = "[server]\nlisten_addresses = [\"tcp://127.0.0.1:1883/mqtt\"]\n";
    assert_refused(&check_config("tcp-path", text, &[], &[]), &["server.listen_addresses", "no path"]);
    let text = "[server]\nlisten_addresses = [\"tls://127.0.0.1:8883\"]\n";
    assert_refused(&check_config("tls-no-cert", text, &[], &[]), &["tls.cert_file", "tls://127.0.0.1:8883"]);
}

#[test]
fn seed_example_parses_with_its_websocket_listener() {
    assert_accepted(&check_config("seed", SEED_EXAMPLE, &[], &[]));
}

#[test]
fn environment_variable_with_a_bad_value_is_refused_by_name() {
    let env = [("IOTHUB_SERVER_MAX_CONNECTIONS", "abc")];
    let output = check_config("env-bad-value", &seed_example_tcp_only(), &[], &env);
    assert_refused(&output, &["IOTHUB_SERVER_MAX_CONNECTIONS", "server.max_connections", "\"abc\""]);
}

/// One more than the largest count `tokio::sync::Semaphore` holds; used to pass the check and
/// then panic at start.
const BEYOND_SEMAPHORE: &str = "2305843009213693952";

#[test]
fn max_connections_beyond_the_semaphore_is_refused_by_every_layer() {
    let needles = ["server.max_connections", "at most 100000000", BEYOND_SEMAPHORE];
    let text = format!("[server]\nmax_connections = {BEYOND_SEMAPHORE}\n");
    assert_refused(&check_config("connections-file", &text, &[], &[]), &needles);
    let env = [("IOTHUB_SERVER_MAX_CONNECTIONS", BEYOND_SEMAPHORE)];
    assert_refused(&check_config("connections-env", "", &[], &env), &needles);
    let set = format!("server.max_connections={BEYOND_SEMAPHORE}");
    assert_refused(&check_config("connections-set", "", &["--set", &set], &[]), &needles);
}

#[test]
fn start_refuses_max_connections_beyond_the_semaphore_instead_of_panicking() {
    let path = config_file("connections-start", &format!("[server]\nmax_connections = {BEYOND_SEMAPHORE}\n"));
    let output = run_bounded(&["-c", path.to_str().unwrap(), "--listen", "tcp://127.0.0.1:0"], &[]);
    assert_refused(&output, &["server.max_connections", "at most 100000000"]);
}

#[test]
fn file_environment_and_flag_accept_the_same_integers() {
    // 2^33: more than 32 bits, which the environment and flags used to refuse.
    let large = "8589934592";
    let text = format!("[server]\nmax_queued_bytes = {large}\n");
    assert_accepted(&check_config("bytes-file", &text, &[], &[]));
    let env = [("IOTHUB_SERVER_MAX_QUEUED_BYTES", large)];
    assert_accepted(&check_config("bytes-env", "", &[], &env));
    let set = format!("server.max_queued_bytes={large}");
    assert_accepted(&check_config("bytes-set", "", &["--set", &set], &[]));
    // Beyond TOML's 64-bit integers, every layer names the key.
    let huge = "9223372036854775808";
    let text = format!("[server]\nmax_queued_bytes = {huge}\n");
    assert_refused(&check_config("huge-file", &text, &[], &[]), &["server.max_queued_bytes", "line 2"]);
    let env = [("IOTHUB_SERVER_MAX_QUEUED_BYTES", huge)];
    assert_refused(&check_config("huge-env", "", &[], &env), &["server.max_queued_bytes", "out of range"]);
    let set = format!("server.max_queued_bytes={huge}");
    let output = check_config("huge-set", "", &["--set", &set], &[]);
    assert_refused(&output, &["server.max_queued_bytes", "out of range"]);
}

#[test]
fn running_binary_serves_with_the_largest_limits_accepted() {
    let ten_years = (10 * 365 * 24 * 3600).to_string();
    let limits = [
        "server.max_connections=100000000".to_owned(),
        format!("server.max_queued_bytes={}", i64::MAX),
        format!("server.max_queued_messages={}", i64::MAX),
        format!("server.retained_message_limit={}", i64::MAX),
        "server.max_packet_size=268435460".to_owned(),
        "server.max_inflight_messages=65535".to_owned(),
        "server.keep_alive_timeout_secs=65535".to_owned(),
        "server.connect_timeout_secs=3600".to_owned(),
        format!("server.session_timeout_secs={ten_years}"),
        format!("server.shutdown_timeout_secs={ten_years}"),
    ];
    let args: Vec<&str> = limits.iter().flat_map(|limit| ["--set", limit.as_str()]).collect();
    let mut broker = RunningBroker::start(&args);
    // A persistent session is kept for session_timeout_secs after the client leaves.
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("cli-largest", false, 65_535));
    client.expect(&[0x20, 0x02, 0x00, 0x00]);
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
    client.send(&[0xE0, 0x00]);
    client.expect_closed();
    broker.process.signal("INT");
    let (status, lines) = broker.process.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "log:\n{}", lines.join("\n"));
}

#[test]
fn unknown_environment_variable_is_refused() {
    let output = check_config("env-unknown", &seed_example_tcp_only(), &[], &[("IOTHUB_FOO", "1")]);
    assert_refused(&output, &["IOTHUB_FOO"]);
    // Refused before the server starts, not only by --check-config.
    let output = run_bounded(&["--listen", "tcp://127.0.0.1:0"], &[("IOTHUB_FOO", "1")]);
    assert_refused(&output, &["IOTHUB_FOO"]);
}

#[test]
fn unknown_key_in_set_flag_is_refused() {
    let output = check_config("set-unknown", &seed_example_tcp_only(), &["--set", "server.nope=1"], &[]);
    assert_refused(&output, &["--set", "server.nope"]);
    let output = run_bounded(&["--listen", "tcp://127.0.0.1:0", "--set", "server.nope=1"], &[]);
    assert_refused(&output, &["--set", "server.nope"]);
}

#[test]
fn example_config_file_passes_check_config() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/iothub.example.toml");
    let output = run_bounded(&["--check-config", path.to_str().unwrap()], &[]);
    assert_accepted(&output);
}

/// The production configuration is valid as it stands, although the password and ACL files it
/// names exist only on a production host: `--check-config` validates, it opens no file.
#[test]
fn production_config_file_passes_check_config() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/iothub.toml");
    let output = run_bounded(&["--check-config", path.to_str().or_fail("a UTF-8 path")], &[]);
    assert_accepted(&output);
    let config = iothub::ConfigBuilder::new().file(&path).and_then(iothub::ConfigBuilder::build);
    let config = config.or_fail("building config/iothub.toml");
    assert_eq!((config.storage.backend.as_str(), config.storage.dir()), ("redb", "/var/lib/iothub".into()));
    assert!(config.auth.enabled && !config.auth.allow_anonymous, "authentication is not required");
    assert_eq!(config.auth.password_file.as_deref(), Some("/etc/iothub/passwd"));
    assert_eq!(config.auth.acl_file.as_deref(), Some("/etc/iothub/acl"));
    assert_eq!(config.logging.format, "json");
}

#[test]
fn example_config_file_mentions_every_key() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("config/iothub.example.toml")).unwrap();
    let source = std::fs::read_to_string(root.join("src/config.rs")).unwrap();
    // SCHEMA entries look like `("server", "max_connections", Kind::Uint),`.
    let keys: Vec<(&str, &str)> = source
        .lines()
        .filter_map(|line| {
            let entry = line.trim().strip_prefix("(\"")?;
            let (section, rest) = entry.split_once("\", \"")?;
            let (key, rest) = rest.split_once("\", ")?;
            rest.starts_with("Kind::").then_some((section, key))
        })
        .collect();
    assert!(keys.len() >= 19, "could not read SCHEMA from src/config.rs: {keys:?}");
    for (section, key) in keys {
        let header = example.find(&format!("[{section}]"));
        assert!(header.is_some(), "the example has no [{section}] section");
        let in_section = &example[header.unwrap()..];
        let in_section = in_section[1..].find("\n[").map_or(in_section, |end| &in_section[..=end]);
        assert!(
            in_section
                .lines()
                .any(|line| line.trim_start_matches(['#', ' ']).starts_with(&format!("{key} ="))),
            "the example does not document {section}.{key}"
        );
    }
}

/// A child process whose output lines arrive on a channel, read by a thread so that every wait
/// can have a timeout. It is killed (SIGKILL, by its pid) if still running when dropped.
struct Spawned {
    child: Child,
    lines: Receiver<String>,
    /// Every line received so far.
    seen: Vec<String>,
}

impl Spawned {
    /// Starts `command`, reading its stdout, or its stderr if `stderr` is true.
    fn start(command: &mut Command, stderr: bool) -> Spawned {
        let mut child = if stderr {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .or_fail("starting the process")
        } else {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .or_fail("starting the process")
        };
        let stream: Box<dyn Read + Send> = if stderr {
            Box::new(child.stderr.take().or_fail("the standard error pipe"))
        } else {
            Box::new(child.stdout.take().or_fail("the standard output pipe"))
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Spawned { child, lines, seen: Vec::new() }
    }

    /// Waits for a line containing `needle` and returns it.
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line containing {needle:?} within {WAIT:?}; got:\n{}", self.seen.join("\n"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the process ended without printing {needle:?}; got:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// Waits, at most `within`, for the process to end; returns its status and all its lines.
    fn wait_exit(&mut self, within: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the process did not exit within {within:?}; output:\n{}", self.seen.join("\n"))
                }
            }
        }
        // The output closed, so the process has ended or is ending.
        let status = self.child.wait().or_fail("waiting for the process");
        (status, self.seen.clone())
    }

    /// Sends a signal by name (INT, TERM) to the process.
    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.or_fail("running kill").success(), "kill -{name} failed");
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `iothub` on an ephemeral loopback port.
struct RunningBroker {
    process: Spawned,
    addr: SocketAddr,
}

impl RunningBroker {
    /// Starts the binary with `--listen tcp://127.0.0.1:0` and `extra` arguments, and learns the
    /// port from its "listening on" log line.
    fn start(extra: &[&str]) -> RunningBroker {
        let mut command = Command::new(BINARY);
        without_iothub_env(&mut command).args(["--listen", "tcp://127.0.0.1:0"]).args(extra);
        let mut process = Spawned::start(&mut command, true);
        let marker = "listening on tcp://127.0.0.1:";
        let line = process.wait_for_line(marker);
        let after = &line[line.find(marker).or_fail("the marker in its own line") + marker.len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let port: u16 = digits.parse().unwrap_or_else(|_| panic!("no port in {line:?}"));
        assert_ne!(port, 0, "the log names port 0 instead of the bound port: {line}");
        RunningBroker { process, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }
}

#[test]
fn running_binary_logs_its_port_and_carries_a_mosquitto_round_trip() {
    require_tool("mosquitto_sub");
    require_tool("mosquitto_pub");
    require_tool("stdbuf");
    let broker = RunningBroker::start(&[]);
    let port = broker.port();
    let common_args = ["-h", "127.0.0.1", "-p", port.as_str(), "-t", "cli/round-trip", "-q", "1"];
    // Line-buffered, so that the debug line announcing the SUBACK arrives while it runs.
    let mut sub_command = Command::new("stdbuf");
    sub_command
        .args(["-oL", "mosquitto_sub"])
        .args(common_args)
        .args(["-d", "-C", "1", "-W", "10", "-i", "cli-sub"]);
    let mut sub = Spawned::start(&mut sub_command, false);
    sub.wait_for_line("received SUBACK");
    let published = Command::new("timeout")
        .args(["10", "mosquitto_pub"])
        .args(common_args)
        .args(["-i", "cli-pub", "-m", "hello from mosquitto_pub"])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "mosquitto_pub failed: {}",
        String::from_utf8_lossy(&published.stderr)
    );
    sub.wait_for_line("hello from mosquitto_pub");
    let (status, _) = sub.wait_exit(WAIT);
    assert!(status.success(), "mosquitto_sub exited with {status}");
}

#[test]
fn sigint_drains_closes_clients_and_exits_zero_within_the_deadline() {
    let mut broker = RunningBroker::start(&["--set", "server.shutdown_timeout_secs=5"]);
    let mut client = raw_connected(broker.addr, "cli-drained");
    // The connection is established: a PINGREQ is answered.
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
    let signalled = Instant::now();
    broker.process.signal("INT");
    client.expect_closed();
    let (status, lines) = broker.process.wait_exit(WAIT);
    let elapsed = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "graceful shutdown should exit 0; log:\n{}", lines.join("\n"));
    assert!(elapsed < Duration::from_secs(5), "shutdown took {elapsed:?}, beyond the 5 s deadline");
    assert!(lines.iter().any(|l| l.contains("SIGINT: draining")), "no drain logged:\n{}", lines.join("\n"));
    assert!(lines.iter().any(|l| l.contains("stopped;")), "no final statistics:\n{}", lines.join("\n"));
}

/// Makes a drain that cannot finish at once: a subscriber that never reads, with megabytes of
/// messages waiting for it, so that its connection is still flushing when shutdown begins.
/// Returns the stuck subscriber, which must stay open.
fn stuck_subscriber(addr: SocketAddr) -> RawClient {
    let mut subscriber = raw_connected(addr, "cli-stuck");
    subscribe(&mut subscriber, 1, &[("cli/flood", 0)]);

    let mut publisher = raw_connected(addr, "cli-flooder");
    let packet = qos0_publish("cli/flood", &vec![b'x'; 1_000_000]);
    // Far more than the socket buffers of both ends hold (a few megabytes on Linux), so the
    // connection's final flush blocks until its one-second limit.
    for _ in 0..32 {
        publisher.send(&packet);
    }
    // Once the PINGRESP arrives, every message has been routed to the subscriber.
    publisher.send(&PINGREQ);
    publisher.expect(&PINGRESP);
    subscriber
}

#[test]
fn second_sigint_during_a_drain_exits_at_once() {
    let mut broker = RunningBroker::start(&["--set", "server.shutdown_timeout_secs=30"]);
    let _stuck = stuck_subscriber(broker.addr);
    broker.process.signal("INT");
    broker.process.wait_for_line("SIGINT: draining");
    broker.process.signal("INT");
    let (status, lines) = broker.process.wait_exit(WAIT);
    let log = lines.join("\n");
    assert!(lines.iter().any(|l| l.contains("second SIGINT")), "second SIGINT not logged:\n{log}");
    assert!(!lines.iter().any(|l| l.contains("stopped;")), "the drain finished instead:\n{log}");
    assert_eq!(status.code(), Some(1), "an interrupted drain exits 1; log:\n{log}");
}

#[test]
fn sigterm_exits_at_once_without_draining() {
    let mut broker = RunningBroker::start(&[]);
    let _stuck = stuck_subscriber(broker.addr);
    let mut client = raw_connected(broker.addr, "cli-terminated");
    broker.process.signal("TERM");
    client.expect_closed();
    let (status, lines) = broker.process.wait_exit(WAIT);
    let log = lines.join("\n");
    assert!(lines.iter().any(|l| l.contains("SIGTERM: exiting")), "SIGTERM not logged:\n{log}");
    assert!(!lines.iter().any(|l| l.contains("shutting down")), "SIGTERM started a drain:\n{log}");
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0; log:\n{log}");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let mut broker = RunningBroker::start(&["--log-format", "json"]);
    // A client connection adds lines logged inside its span.
    let mut client = raw_connected(broker.addr, "cli-json");
    client.send(&[0xE0, 0x00]);
    client.expect_closed();
    broker.process.signal("INT");
    let (status, lines) = broker.process.wait_exit(WAIT);
    assert!(status.success(), "exit status {status}");
    assert!(lines.len() >= 3, "expected several log lines, got:\n{}", lines.join("\n"));
    for line in &lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "not a JSON object: {line}");
        assert!(line.contains("\"level\""), "no level field: {line}");
    }
}

#[test]
fn sighup_reloads_the_acl_and_keeps_serving_and_a_bad_file_is_refused_with_a_log_line() {
    let acl = config_file("sighup.acl", "topic readwrite #\n");
    let config = config_file(
        "sighup.toml",
        &format!(
            "[auth]\nenabled = true\nallow_anonymous = true\nacl_file = {:?}\n",
            acl.display().to_string()
        ),
    );
    let mut broker = RunningBroker::start(&["-c", config.to_str().or_fail("a UTF-8 path")]);
    let mut client = raw_connected(broker.addr, "cli-hup");
    broker.process.signal("HUP");
    broker.process.wait_for_line("ACL file reloaded");
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
    std::fs::write(&acl, "topic frobnicate\nnonsense\n").or_fail("a malformed ACL");
    broker.process.signal("HUP");
    let line = broker.process.wait_for_line("reload refused");
    assert!(line.contains("auth.acl_file"), "{line}");
    client.send(&[0xC0, 0x00]);
    client.expect(&[0xD0, 0x00]);
    mosquitto_pub(&broker.port(), &["-t", "after/hup", "-m", "still serving"]);
}

#[test]
fn json_logs_carry_who_connected_and_why_they_left_and_a_storm_of_bad_packets_is_rate_limited() {
    let mut broker = RunningBroker::start(&["--log-format", "json"]);
    let mut client = raw_connected(broker.addr, "cli-who");
    client.send(&[0xE0, 0x00]);
    client.expect_closed();
    // Fifty clients that each send a malformed packet after CONNECT.
    for i in 0..50 {
        let mut bad = raw_connected(broker.addr, &format!("cli-bad-{i}"));
        bad.send(&[0xF0, 0x00]);
        bad.expect_closed();
    }
    broker.process.signal("INT");
    let (status, lines) = broker.process.wait_exit(WAIT);
    assert!(status.success(), "exit status {status}");
    let parsed: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let message = |v: &serde_json::Value| v["fields"]["message"].as_str().unwrap_or("").to_owned();
    let span_of = |v: &serde_json::Value| v["span"].clone();
    let connected = parsed
        .iter()
        .find(|v| message(v) == "client connected" && span_of(v)["client_id"] == "cli-who")
        .or_fail("a connect line for cli-who");
    let span = span_of(connected);
    assert!(span["peer"].as_str().or_fail("the peer").starts_with("127.0.0.1:"), "{connected}");
    assert_eq!(span["protocol"], 4, "{connected}");
    let left = parsed
        .iter()
        .find(|v| message(v) == "client disconnected" && span_of(v)["client_id"] == "cli-who")
        .or_fail("a disconnect line for cli-who");
    assert!(span_of(left)["peer"].is_string(), "{left}");
    let violations: Vec<&serde_json::Value> =
        parsed.iter().filter(|v| message(v).contains("protocol violation")).collect();
    assert!(!violations.is_empty() && violations.len() <= 20, "{} violation lines", violations.len());
}
