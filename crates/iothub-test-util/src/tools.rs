//! Mosquitto's command-line clients, and other programs, run with timeouts: a program run to
//! completion ([`run_tool`], [`mosquitto_pub`]), a running one read line by line ([`Tool`]),
//! and a running `mosquitto_sub -d -v` read message by message ([`MosquittoSub`]).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use crate::{OrFail, WAIT};

/// Fails the test with a clear message if a command-line tool is missing; `scripts/test`
/// installs them.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .or_fail("running sh")
        .status
        .success();
    assert!(found, "{tool} is not installed; run scripts/test, which installs the test dependencies");
}

/// Runs a command-line tool to completion, failing the test if it takes longer than `WAIT`.
pub fn run_tool(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.or_fail("waiting for the tool"),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{command:?} did not finish within {WAIT:?}");
        }
    }
}

/// Asserts that a tool succeeded and returns its standard output.
#[track_caller]
pub fn tool_stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "tool failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).or_fail("tool output is not UTF-8")
}

/// Runs `mosquitto_pub` with exactly `args` (bounded by `timeout`), for a run that may be refused:
/// whether it succeeded, and what it printed on both outputs.
pub fn try_mosquitto_pub(args: &[&str]) -> (bool, String) {
    require_tool("mosquitto_pub");
    let output = Command::new("timeout")
        .args(["-k", "5", "30", "mosquitto_pub"])
        .args(args)
        .output()
        .or_fail("running mosquitto_pub");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Runs `mosquitto_pub -d` against the broker with extra arguments and returns its debug output,
/// failing the test if it does not succeed.
pub fn mosquitto_pub(port: &str, args: &[&str]) -> String {
    let output =
        run_tool(Command::new("mosquitto_pub").args(["-d", "-h", "127.0.0.1", "-p", port]).args(args));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?} failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stdout = child.stdout.take().or_fail("the tool's standard output");
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

    /// Starts `mosquitto_sub -h 127.0.0.1 -p <port>` with extra arguments. mosquitto_sub
    /// buffers its output when it is not a terminal, so it runs under `stdbuf -oL`, which makes
    /// it write each line as it is printed.
    pub fn mosquitto_sub(port: &str, args: &[&str]) -> Tool {
        require_tool("mosquitto_sub");
        require_tool("stdbuf");
        Tool::spawn(
            Command::new("stdbuf").args(["-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", port]).args(args),
        )
    }

    /// The next line of output, or `None` once the tool has exited; fails the test if nothing
    /// comes for `WAIT`.
    pub fn next_line(&self) -> Option<String> {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("the tool printed nothing for {WAIT:?}"),
        }
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

/// A message as `mosquitto_sub -d -v` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    /// Topic name.
    pub topic: String,
    /// Payload text; "(null)" for an empty payload, as mosquitto_sub prints it.
    pub payload: String,
    /// QoS of the PUBLISH received.
    pub qos: u8,
    /// RETAIN flag of the PUBLISH received.
    pub retain: bool,
}

/// A running `mosquitto_sub -d -v`, killed when dropped.
pub struct MosquittoSub {
    /// The process and its output.
    tool: Tool,
}

impl MosquittoSub {
    /// Starts `mosquitto_sub -d -v` with extra arguments and waits until its SUBACK arrives.
    pub fn start(port: &str, args: &[&str]) -> MosquittoSub {
        let mut verbose = vec!["-d", "-v"];
        verbose.extend_from_slice(args);
        let tool = Tool::mosquitto_sub(port, &verbose);
        tool.expect_line_containing("received SUBACK");
        MosquittoSub { tool }
    }

    fn line(&self) -> String {
        self.tool.next_line().or_fail("mosquitto_sub exited")
    }

    /// The next message received, or `None` if the tool exits first (after `-C` messages or
    /// `-W` seconds).
    pub fn next_message(&mut self) -> Option<SubMessage> {
        let header = loop {
            let line = self.tool.next_line()?;
            if let Some((_, rest)) = line.split_once("received PUBLISH (") {
                break rest.to_owned();
            }
        };
        // The header reads "d0, q1, r0, m1, 'topic', ... (5 bytes))".
        let fields: Vec<&str> = header.splitn(5, ", ").collect();
        let malformed = || format!("a PUBLISH line mosquitto_sub does not print: {header}");
        let qos = fields.get(1).and_then(|q| q.trim_start_matches('q').parse().ok()).or_fail(&malformed());
        let retain = fields.get(2).or_fail(&malformed()) == &"r1";
        let topic = fields
            .get(4)
            .and_then(|rest| rest.split("', ... (").next())
            .or_fail(&malformed())
            .trim_start_matches('\'')
            .to_owned();
        let payload = loop {
            let line = self.line();
            if !line.starts_with("Client ") {
                break line;
            }
        };
        let payload =
            payload.strip_prefix(&format!("{topic} ")).unwrap_or_else(|| panic!("{payload}")).to_owned();
        Some(SubMessage { topic, payload, qos, retain })
    }

    /// The next message; fails the test if the tool exits first.
    pub fn expect_message(&mut self) -> SubMessage {
        self.next_message().or_fail("mosquitto_sub exited before the expected message")
    }
}
