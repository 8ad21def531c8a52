//! Authentication with a password file in `mosquitto_passwd`'s format (`[auth] enabled`,
//! `password_file`, `allow_anonymous`): files written by `mosquitto_passwd` itself, both its hash
//! formats, clients refused with the codes of each version, passwords as binary data.

use std::path::PathBuf;
use std::process::Command;

use iothub_protocol::{Connect, Packet, ProtocolVersion, ReasonCode};
use iothub_test_util::v5_client::{encode_v5, read_v5};
use iothub_test_util::{
    field, loopback_config, mosquitto_pub, require_tool, run_tool, with_header, OrFail, RawClient, TestBroker,
};

/// A password file written by `mosquitto_passwd`: alice (PBKDF2-SHA512, its default), bob
/// (`-H sha512`, the Mosquitto 1.6 format) and nul, whose password is "ab".
fn password_file() -> PathBuf {
    require_tool("mosquitto_passwd");
    let dir = std::env::temp_dir().join(format!(
        "iothub-auth-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).or_fail("a directory");
    let path = dir.join("passwd");
    let file = path.to_str().or_fail("a UTF-8 path");
    let run = |args: &[&str]| {
        let output = run_tool(Command::new("mosquitto_passwd").args(args));
        assert!(output.status.success(), "mosquitto_passwd {args:?}: {output:?}");
    };
    run(&["-c", "-b", file, "alice", "secret"]);
    run(&["-H", "sha512", "-b", file, "bob", "hunter2"]);
    run(&["-b", file, "nul", "ab"]);
    path
}

fn broker(extra: &str) -> TestBroker {
    let path = password_file();
    let toml = format!("[auth]\nenabled = true\npassword_file = {:?}\n{extra}", path.display().to_string());
    TestBroker::with_config(&toml)
}

/// A 3.1.1 CONNECT with a username and, if given, a password (any bytes).
fn connect_v3(client_id: &str, username: Option<&str>, password: Option<&[u8]>) -> Vec<u8> {
    let mut flags = 0x02;
    let mut payload = field(client_id.as_bytes());
    if let Some(username) = username {
        flags |= 0x80;
        payload.extend(field(username.as_bytes()));
    }
    if let Some(password) = password {
        flags |= 0x40;
        payload.extend(field(password));
    }
    let mut body = field(b"MQTT");
    body.extend([4, flags, 0, 60]);
    body.extend(payload);
    with_header(0x10, &body)
}

fn connack_v3(broker: &TestBroker, username: Option<&str>, password: Option<&[u8]>) -> Vec<u8> {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_v3("auth-test", username, password));
    client.read_packet()
}

fn connack_v5(broker: &TestBroker, username: Option<&str>, password: Option<&[u8]>) -> ReasonCode {
    let mut client = RawClient::connect(broker.addr);
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "auth-test-5".into(),
        will: None,
        username: username.map(Into::into),
        password: password.map(bytes::Bytes::copy_from_slice),
        properties: None,
    };
    client.send(&encode_v5(&Packet::Connect(Box::new(connect))));
    match read_v5(&mut client) {
        Packet::ConnAck(ack) => ack.reason_code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// [MQTT-3.2.2-6]-style refusals of 3.1.1: 0x04 for bad credentials, 0x05 for an anonymous
/// client when anonymous clients are not allowed; both hash formats verify.
#[test]
fn mqtt_3_1_1_clients_get_0x04_for_bad_credentials_and_0x05_when_anonymous() {
    let broker = broker("");
    assert_eq!(connack_v3(&broker, Some("alice"), Some(b"secret")), [0x20, 2, 0, 0]);
    assert_eq!(connack_v3(&broker, Some("bob"), Some(b"hunter2")), [0x20, 2, 0, 0]);
    assert_eq!(connack_v3(&broker, Some("alice"), Some(b"wrong")), [0x20, 2, 0, 4]);
    assert_eq!(connack_v3(&broker, Some("mallory"), Some(b"secret")), [0x20, 2, 0, 4]);
    assert_eq!(connack_v3(&broker, Some("alice"), None), [0x20, 2, 0, 4]);
    assert_eq!(connack_v3(&broker, None, None), [0x20, 2, 0, 5]);
}

/// 5.0: 0x86 Bad User Name or Password, 0x87 Not authorized.
#[test]
fn mqtt_5_clients_get_0x86_for_bad_credentials_and_0x87_when_anonymous() {
    let broker = broker("");
    assert_eq!(connack_v5(&broker, Some("alice"), Some(b"secret")), ReasonCode::Success);
    assert_eq!(connack_v5(&broker, Some("alice"), Some(b"nope")), ReasonCode::BadUserNameOrPassword);
    assert_eq!(connack_v5(&broker, None, None), ReasonCode::NotAuthorized);
}

/// A password is binary data (3.1.3.5): "ab\0cd" is not "ab", though a C string comparison would
/// stop at the NUL (Mosquitto 2.0.11 accepts it), and "ab" itself is accepted. (Trailing NUL
/// bytes alone are the one blind spot of the stored format: PBKDF2's HMAC pads its key with
/// zeros, so "ab\0" and "ab" derive the same hash.)
#[test]
fn a_password_is_compared_whole_nul_bytes_included() {
    let broker = broker("");
    assert_eq!(connack_v3(&broker, Some("nul"), Some(b"ab\0cd")), [0x20, 2, 0, 4]);
    assert_eq!(connack_v3(&broker, Some("nul"), Some(b"\0ab")), [0x20, 2, 0, 4]);
    assert_eq!(connack_v3(&broker, Some("nul"), Some(b"ab")), [0x20, 2, 0, 0]);
}

#[test]
fn allow_anonymous_lets_clients_without_a_username_in_but_still_checks_passwords() {
    let broker = broker("allow_anonymous = true\n");
    assert_eq!(connack_v3(&broker, None, None), [0x20, 2, 0, 0]);
    assert_eq!(connack_v3(&broker, Some("alice"), Some(b"wrong")), [0x20, 2, 0, 4]);
}

/// Mosquitto's own client, with the credentials of a file Mosquitto's tool wrote.
#[test]
fn mosquitto_pub_connects_with_a_password_from_mosquitto_passwd() {
    require_tool("mosquitto_pub");
    let broker = broker("");
    let port = broker.port();
    mosquitto_pub(&port, &["-u", "alice", "-P", "secret", "-q", "1", "-t", "auth/ok", "-m", "hello"]);
    let refused = run_tool(Command::new("mosquitto_pub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-u",
        "alice",
        "-P",
        "bad",
        "-t",
        "auth/no",
        "-m",
        "x",
    ]));
    assert!(!refused.status.success(), "a wrong password is refused");
}

/// Settings that would silently weaken security, or lock everyone out, stop start-up with the
/// key named: auth on without a password file, a password file or an ACL file with auth off, an
/// empty or malformed password file.
#[test]
fn unsafe_or_useless_auth_settings_are_refused_at_start_up() {
    let error =
        |toml: &str| iothub::ConfigBuilder::new().toml("test", toml).or_fail("TOML").build().map(|_| ());
    assert_eq!(error("[auth]\nenabled = true\n").unwrap_err().key, "auth.password_file");
    assert_eq!(error("[auth]\npassword_file = \"p\"\n").unwrap_err().key, "auth.password_file");
    assert_eq!(error("[auth]\nacl_file = \"a\"\n").unwrap_err().key, "auth.acl_file");
    let dir = std::env::temp_dir().join(format!("iothub-auth-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a directory");
    for (name, text) in [("empty", ""), ("plain", "alice:secret\n")] {
        let path = dir.join(name);
        std::fs::write(&path, text).or_fail("writing");
        let config = loopback_config(&format!(
            "[auth]\nenabled = true\npassword_file = {:?}\n",
            path.display().to_string()
        ));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().or_fail("a runtime");
        let bound = runtime.block_on(iothub::Server::bind(&config));
        let message = bound.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("auth.password_file"), "{name}: {message}");
    }
}

/// `iothub passwd` writes what `mosquitto_passwd` writes: Mosquitto itself accepts the users of
/// a file it made (created with -c -b, updated with -b, a plaintext line hashed with -U, a user
/// deleted with -D), and so does IoTHub.
#[test]
fn iothub_passwd_writes_files_that_mosquitto_and_iothub_both_read() {
    require_tool("mosquitto");
    require_tool("mosquitto_pub");
    let binary = env!("CARGO_BIN_EXE_iothub");
    let dir = std::env::temp_dir().join(format!("iothub-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a directory");
    let file = dir.join("passwd");
    let path = file.to_str().or_fail("a UTF-8 path");
    let tool = |args: &[&str]| {
        let output = run_tool(Command::new(binary).arg("passwd").args(args));
        assert!(output.status.success(), "iothub passwd {args:?}: {output:?}");
    };
    tool(&["-c", "-b", path, "alice", "secret"]);
    tool(&["-b", path, "bob", "old"]);
    tool(&["-b", path, "bob", "new"]);
    std::fs::write(&file, format!("{}carol:plain\n", std::fs::read_to_string(&file).or_fail("reading")))
        .or_fail("writing");
    tool(&["-U", path]);
    tool(&["-b", path, "dave", "x"]);
    tool(&["-D", path, "dave"]);
    let text = std::fs::read_to_string(&file).or_fail("reading");
    assert!(!text.contains("plain") && !text.contains("dave"), "{text}");
    // Mosquitto reads it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .or_fail("a port")
        .local_addr()
        .or_fail("its address")
        .port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {path}\n"),
    )
    .or_fail("conf");
    let mut mosquitto = Command::new("mosquitto").arg("-c").arg(&conf).spawn().or_fail("starting mosquitto");
    let port = port.to_string();
    let deadline = std::time::Instant::now() + iothub_test_util::WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().or_fail("a port"))).is_err() {
        assert!(std::time::Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(std::time::Duration::from_millis(20)); // Polling for its listener, bounded.
    }
    let publish = |user: &str, password: &str| {
        run_tool(Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            user,
            "-P",
            password,
            "-t",
            "t",
            "-m",
            "x",
        ]))
        .status
        .success()
    };
    let results =
        [publish("alice", "secret"), publish("bob", "new"), publish("carol", "plain"), publish("bob", "old")];
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
    assert_eq!(results, [true, true, true, false], "Mosquitto reads the file iothub passwd wrote");
    // And IoTHub.
    let broker = TestBroker::with_config(&format!("[auth]\nenabled = true\npassword_file = {path:?}\n"));
    assert_eq!(connack_v3(&broker, Some("carol"), Some(b"plain")), [0x20, 2, 0, 0]);
    assert_eq!(connack_v3(&broker, Some("dave"), Some(b"x")), [0x20, 2, 0, 4]);
}

/// With `throttle_failures`, an address that keeps failing is refused without a check (the
/// right password included) until `throttle_secs` pass since its last failure.
#[test]
fn repeated_failures_are_throttled_when_asked_for() {
    let throttled = broker("throttle_failures = 3\nthrottle_secs = 60\n");
    for _ in 0..3 {
        assert_eq!(connack_v3(&throttled, Some("alice"), Some(b"guess")), [0x20, 2, 0, 4]);
    }
    assert_eq!(connack_v3(&throttled, Some("alice"), Some(b"secret")), [0x20, 2, 0, 4], "throttled");
    let open = broker("throttle_failures = 0\n");
    for _ in 0..5 {
        assert_eq!(connack_v3(&open, Some("alice"), Some(b"guess")), [0x20, 2, 0, 4]);
    }
    assert_eq!(connack_v3(&open, Some("alice"), Some(b"secret")), [0x20, 2, 0, 0], "off by default");
}
