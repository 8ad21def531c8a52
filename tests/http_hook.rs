//! The HTTP hook (`auth.http_url`, `auth.http_acl_url`) against a real local HTTP service
//! (`tests/http_hook/hook_server.py`, started by each test): logins allowed, denied, ignored and
//! failed (a 5xx or a timeout refuses: the hook fails closed), ACL rules in a login's answer,
//! topic decisions per PUBLISH and SUBSCRIBE (5.0: 0x87), cached, and a slow hook that delays
//! only the client that waits on it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use iothub_protocol::{Packet, ReasonCode};
use iothub_test_util::v5_client::{connect_v5, encode_v5, message, options, read_v5};

use iothub_test_util::{field, require_tool, with_header, OrFail, RawClient, TestBroker, V5Client};

/// The hook service, killed (by its pid) when dropped.
struct Hook {
    child: Child,
    port: u16,
}

impl Hook {
    fn start() -> Hook {
        require_tool("python3");
        let mut child = Command::new("python3")
            .arg("tests/http_hook/hook_server.py")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .or_fail("starting the hook service");
        let mut line = String::new();
        BufReader::new(child.stdout.take().or_fail("its output")).read_line(&mut line).or_fail("its port");
        let port = line.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).or_fail("a PORT line");
        Hook { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How many times the service was asked about `topic`.
    fn count(&self, topic: &str) -> u64 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).or_fail("the hook service");
        let request = format!("GET /count?topic={topic} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).or_fail("asking for a count");
        let mut response = String::new();
        stream.read_to_string(&mut response).or_fail("the count");
        let body = response.split("\r\n\r\n").nth(1).or_fail("a body");
        let value: serde_json::Value = serde_json::from_str(body).or_fail("JSON");
        value["count"].as_u64().or_fail("a count")
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn broker(hook: &Hook, extra: &str) -> TestBroker {
    TestBroker::with_config(&format!(
        "[auth]\nenabled = true\nhttp_url = {:?}\nhttp_acl_url = {:?}\nhttp_timeout_ms = 500\n{extra}",
        hook.url("/login"),
        hook.url("/acl")
    ))
}

/// The CONNACK code a 3.1.1 client gets.
fn connack_v3(broker: &TestBroker, username: Option<&str>, password: Option<&str>) -> u8 {
    let mut flags = 0x02;
    let mut payload = field(b"hook-v3");
    if let Some(user) = username {
        flags |= 0x80;
        payload.extend(field(user.as_bytes()));
    }
    if let Some(password) = password {
        flags |= 0x40;
        payload.extend(field(password.as_bytes()));
    }
    let mut body = field(b"MQTT");
    body.extend([4, flags, 0, 60]);
    body.extend(payload);
    let mut client = RawClient::connect(broker.addr);
    client.send(&with_header(0x10, &body));
    client.read_exact(4)[3]
}

fn connect_as(
    broker: &TestBroker,
    client_id: &str,
    username: &str,
    password: &str,
) -> (V5Client, ReasonCode) {
    let mut connect = connect_v5(client_id, true, 0);
    connect.username = Some(username.into());
    connect.password = Some(bytes::Bytes::from(password.to_owned()));
    let (client, connack) = V5Client::connect_with(broker.addr, connect);
    (client, connack.reason_code)
}

#[test]
fn the_login_hook_allows_denies_and_fails_closed() {
    let hook = Hook::start();
    let broker = broker(&hook, "");
    assert_eq!(connack_v3(&broker, Some("good"), Some("pw")), 0x00);
    assert_eq!(connack_v3(&broker, Some("good"), Some("wrong")), 0x04);
    assert_eq!(connack_v3(&broker, Some("mallory"), Some("pw")), 0x04);
    // Ignored, and not anonymous: refused; a 5xx: refused.
    assert_eq!(connack_v3(&broker, Some("ignored"), Some("pw")), 0x04);
    assert_eq!(connack_v3(&broker, Some("broken"), Some("pw")), 0x04);
    // No answer within http_timeout_ms: refused, and soon.
    let started = Instant::now();
    assert_eq!(connack_v3(&broker, Some("slow"), Some("pw")), 0x04);
    assert!(started.elapsed() < Duration::from_secs(4), "the hook's timeout was not applied");
    // A client without a username is asked about too; the service denies it: 0x05.
    assert_eq!(connack_v3(&broker, None, None), 0x05);
    let mut connect = connect_v5("hook-v5", true, 0);
    connect.username = Some("mallory".into());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    let mut raw = RawClient::connect(broker.addr);
    raw.send(&encode_v5(&Packet::Connect(Box::new(connect))));
    match read_v5(&mut raw) {
        Packet::ConnAck(connack) => assert_eq!(connack.reason_code, ReasonCode::BadUserNameOrPassword),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn an_ignored_login_goes_on_to_the_anonymous_rule() {
    let hook = Hook::start();
    let broker = TestBroker::with_config(&format!(
        "[auth]\nenabled = true\nallow_anonymous = true\nhttp_url = {:?}\n",
        hook.url("/login")
    ));
    // The service denies clients without a username, so allow_anonymous does not let them in...
    assert_eq!(connack_v3(&broker, None, None), 0x05);
    // ...and a username it ignores is not anonymous.
    assert_eq!(connack_v3(&broker, Some("ignored"), Some("pw")), 0x04);
}

#[test]
fn topic_decisions_come_from_the_acl_hook_and_are_cached() {
    let hook = Hook::start();
    let broker = broker(&hook, "");
    let (mut client, code) = connect_as(&broker, "acl-1", "good", "pw");
    assert_eq!(code, ReasonCode::Success);
    let codes = client.subscribe(
        1,
        &[
            ("allowed/s/#", options(1)),
            ("denied/#", options(1)),
            ("ignored/#", options(1)),
            ("broken/#", options(1)),
        ],
        None,
    );
    assert_eq!(
        codes,
        [
            ReasonCode::GrantedQoS1,
            ReasonCode::NotAuthorized,
            ReasonCode::NotAuthorized,
            ReasonCode::NotAuthorized
        ]
    );
    for (id, (topic, expected)) in [
        ("allowed/a", ReasonCode::NoMatchingSubscribers),
        ("denied/a", ReasonCode::NotAuthorized),
        ("ignored/a", ReasonCode::NotAuthorized),
        ("allowed/a", ReasonCode::NoMatchingSubscribers),
    ]
    .into_iter()
    .enumerate()
    {
        let id = u16::try_from(id + 2).or_fail("a small id");
        client.send(&Packet::Publish(message(topic, b"x", 1, false, id)));
        match client.recv() {
            Packet::PubAck(ack) => assert_eq!(ack.reason_code, expected, "{topic}"),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    // A second connection of the same client reuses the cached answer.
    drop(client);
    let (mut again, _) = connect_as(&broker, "acl-1", "good", "pw");
    again.send(&Packet::Publish(message("allowed/a", b"x", 1, false, 9)));
    assert!(matches!(again.recv(), Packet::PubAck(_)));
    assert_eq!(hook.count("allowed/a"), 1, "the answer was not cached");
}

#[test]
fn acl_rules_in_a_login_answer_are_the_clients_acl() {
    let hook = Hook::start();
    let broker =
        TestBroker::with_config(&format!("[auth]\nenabled = true\nhttp_url = {:?}\n", hook.url("/login")));
    let (mut client, code) = connect_as(&broker, "dev9", "granted", "anything");
    assert_eq!(code, ReasonCode::Success);
    let codes = client.subscribe(1, &[("granted/dev9/#", options(0)), ("granted/dev8/#", options(0))], None);
    assert_eq!(codes, [ReasonCode::Success, ReasonCode::NotAuthorized]);
}

#[test]
fn a_slow_acl_hook_delays_only_the_client_waiting_on_it() {
    let hook = Hook::start();
    let broker = broker(&hook, "");
    let (mut waiting, _) = connect_as(&broker, "slow-1", "good", "pw");
    let (mut other, _) = connect_as(&broker, "other-1", "good", "pw");
    let started = Instant::now();
    waiting.send(&Packet::Publish(message("slow/a", b"x", 1, false, 1)));
    // The other client is served while the hook keeps the first one waiting.
    other.send(&Packet::PingReq);
    assert!(matches!(other.recv(), Packet::PingResp));
    match waiting.recv() {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "a timeout refuses"),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4), "the hook's timeout was not applied");
    // The connection goes on afterwards.
    waiting.send(&Packet::PingReq);
    assert!(matches!(waiting.recv(), Packet::PingResp));
}

#[test]
fn a_will_to_a_topic_the_hook_denies_refuses_connect() {
    let hook = Hook::start();
    let broker = broker(&hook, "");
    let mut connect = connect_v5("will-1", true, 0);
    connect.username = Some("good".into());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    connect.will = Some(iothub_protocol::Will {
        topic: "denied/will".into(),
        payload: bytes::Bytes::from_static(b"bye"),
        qos: iothub_protocol::QoS::AtMostOnce,
        retain: false,
        properties: None,
    });
    let mut raw = RawClient::connect(broker.addr);
    raw.send(&encode_v5(&Packet::Connect(Box::new(connect))));
    match read_v5(&mut raw) {
        Packet::ConnAck(connack) => assert_eq!(connack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn a_persistent_session_resumed_by_another_user_keeps_only_what_the_hook_allows_that_user() {
    let hook = Hook::start();
    let broker = broker(&hook, "");
    let mut connect = connect_v5("shared-id", true, 600);
    connect.username = Some("good".into());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    let (mut first, _) = V5Client::connect_with(broker.addr, connect);
    assert_eq!(first.subscribe(1, &[("allowed/s/#", options(1))], None), [ReasonCode::GrantedQoS1]);
    first.disconnect();
    // Another user takes the session over with its client identifier.
    let mut connect = connect_v5("shared-id", false, 600);
    connect.username = Some("other".into());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    let (mut second, connack) = V5Client::connect_with(broker.addr, connect);
    assert!(connack.session_present);
    let (mut publisher, _) = connect_as(&broker, "pub-1", "good", "pw");
    publisher.send(&Packet::Publish(message("allowed/s/x", b"not for other", 1, false, 1)));
    match publisher.recv() {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NoMatchingSubscribers),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    second.expect_no_publish();
}

#[test]
fn a_hook_failure_refuses_only_the_packet_it_was_asked_for() {
    let hook = Hook::start();
    let broker = broker(&hook, "");
    let (mut client, _) = connect_as(&broker, "flaky-1", "good", "pw");
    for (id, expected) in [(1, ReasonCode::NotAuthorized), (2, ReasonCode::NoMatchingSubscribers)] {
        client.send(&Packet::Publish(message("flaky/a", b"x", 1, false, id)));
        match client.recv() {
            Packet::PubAck(ack) => assert_eq!(ack.reason_code, expected, "publication {id}"),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert_eq!(hook.count("flaky/a"), 2, "a failure must not be cached");
}
