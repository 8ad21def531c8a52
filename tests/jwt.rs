//! JSON Web Tokens as CONNECT passwords (`auth.jwt_secret` for HS256,
//! `auth.jwt_public_key_file` for RS256): the token's username claim is the client's username,
//! its `acl` claim its permissions; expired, unsigned, wrongly signed and mismatched tokens are
//! refused with 0x04 (3.1.1) and 0x86 (5.0). Clients: mosquitto_pub and raw 5.0 packets.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use iothub_protocol::{Packet, ReasonCode};
use iothub_test_util::v5_client::{connect_v5, message, options};
use iothub_test_util::{require_tool, run_tool, OrFail, TestBroker, V5Client};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "a shared secret for tests";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).or_fail("the clock").as_secs()
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes()))
        .or_fail("a token")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("iothub-jwt-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a scratch directory");
    dir
}

/// A broker taking HS256 tokens, with an ACL file for clients whose token has no `acl` claim.
fn broker(extra: &str) -> TestBroker {
    let acl = scratch("acl").join(format!("acl-{:?}", std::thread::current().id()));
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").or_fail("the ACL");
    TestBroker::with_config(&format!(
        "[auth]\nenabled = true\njwt_secret = {SECRET:?}\nacl_file = {:?}\n{extra}",
        acl.display().to_string()
    ))
}

/// Runs mosquitto_pub; returns whether it succeeded and what it printed.
fn try_pub(port: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["-h", "127.0.0.1", "-p", port];
    all.extend_from_slice(args);
    iothub_test_util::try_mosquitto_pub(&all)
}

/// The CONNACK reason code a 5.0 client gets for this username and password.
fn connack_v5(broker: &TestBroker, username: Option<&str>, password: &str) -> ReasonCode {
    let mut connect = connect_v5("jwt-v5", true, 0);
    connect.username = username.map(Into::into);
    connect.password = Some(bytes::Bytes::from(password.to_owned()));
    let mut raw = iothub_test_util::RawClient::connect(broker.addr);
    raw.send(&iothub_test_util::v5_client::encode_v5(&Packet::Connect(Box::new(connect))));
    match iothub_test_util::v5_client::read_v5(&mut raw) {
        Packet::ConnAck(connack) => connack.reason_code,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn mosquitto_pub_logs_in_with_a_token_whose_username_is_the_clients() {
    let broker = broker("");
    let port = broker.port();
    let token = hs256(&json!({"username": "alice", "exp": now() + 600}), SECRET);
    // Named or not, the client is alice, and alice's ACL file rules apply.
    let (ok, output) = try_pub(&port, &["-u", "alice", "-P", &token, "-t", "alice/x", "-m", "hi", "-q", "1"]);
    assert!(ok, "{output}");
    let (ok, output) = try_pub(&port, &["-u", "", "-P", &token, "-t", "alice/x", "-m", "hi"]);
    assert!(ok, "{output}");
    // A token is not a way to claim another username.
    let (ok, output) = try_pub(&port, &["-u", "bob", "-P", &token, "-t", "alice/x", "-m", "hi"]);
    assert!(!ok && output.contains("bad user name or password"), "{output}");
}

#[test]
fn expired_unsigned_and_wrongly_signed_tokens_are_refused() {
    let broker = broker("");
    let alice = |claims: Value| hs256(&claims, SECRET);
    let good = alice(json!({"username": "alice", "exp": now() + 600}));
    assert_eq!(connack_v5(&broker, None, &good), ReasonCode::Success);
    let cases = [
        ("expired", alice(json!({"username": "alice", "exp": now() - 600}))),
        ("not yet valid", alice(json!({"username": "alice", "exp": now() + 600, "nbf": now() + 300}))),
        ("without exp", alice(json!({"username": "alice"}))),
        ("another secret", hs256(&json!({"username": "alice", "exp": now() + 600}), "not the secret")),
        ("tampered", {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[1] = parts[1].chars().rev().collect();
            parts.join(".")
        }),
        ("alg none", {
            let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
            let body = good.split('.').nth(1).or_fail("a body").to_owned();
            format!("{header}.{body}.x")
        }),
    ];
    for (what, token) in cases {
        assert_eq!(connack_v5(&broker, None, &token), ReasonCode::BadUserNameOrPassword, "{what}");
    }
    let relaxed = TestBroker::with_config(&format!(
        "[auth]\nenabled = true\njwt_secret = {SECRET:?}\njwt_require_exp = false\n"
    ));
    assert_eq!(connack_v5(&relaxed, None, &alice(json!({"username": "alice"}))), ReasonCode::Success);
}

#[test]
fn the_acl_claim_is_the_clients_acl() {
    let broker = broker("");
    let acl = json!([
        {"permission": "allow", "action": "publish", "topic": "dev/${clientid}/up"},
        {"permission": "allow", "action": "subscribe", "topic": "dev/${clientid}/down"},
        {"permission": "deny", "action": "all", "topic": "dev/+/up/secret"},
    ]);
    let token = hs256(&json!({"username": "device", "exp": now() + 600, "acl": acl}), SECRET);
    let mut connect = connect_v5("c1", true, 0);
    connect.password = Some(bytes::Bytes::from(token));
    let (mut device, connack) = V5Client::connect_with(broker.addr, connect);
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let codes = device.subscribe(1, &[("dev/c1/down", options(1)), ("dev/c2/down", options(1))], None);
    assert_eq!(codes, [ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]);
    for (topic, expected) in [
        ("dev/c1/up", ReasonCode::NoMatchingSubscribers),
        ("dev/c2/up", ReasonCode::NotAuthorized),
        ("alice/x", ReasonCode::NotAuthorized),
    ] {
        device.send(&Packet::Publish(message(topic, b"x", 1, false, 5)));
        match device.recv() {
            Packet::PubAck(ack) => assert_eq!(ack.reason_code, expected, "{topic}"),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    // A malformed ACL claim refuses the login rather than granting something.
    let bad = hs256(&json!({"username": "device", "exp": now() + 600, "acl": "everything"}), SECRET);
    assert_eq!(connack_v5(&broker, None, &bad), ReasonCode::BadUserNameOrPassword);
}

#[test]
fn rs256_tokens_are_checked_with_the_configured_public_key() {
    require_tool("openssl");
    let dir = scratch("rs256");
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let key = private.to_str().or_fail("a UTF-8 path");
    assert!(run_tool(Command::new("openssl").args(["genrsa", "-out", key, "2048"])).status.success());
    let out = public.to_str().or_fail("a UTF-8 path");
    assert!(run_tool(Command::new("openssl").args(["rsa", "-in", key, "-pubout", "-out", out]))
        .status
        .success());
    let broker = TestBroker::with_config(&format!(
        "[auth]\nenabled = true\njwt_public_key_file = {:?}\n",
        public.display().to_string()
    ));
    let pem = std::fs::read(&private).or_fail("the private key");
    let signing = EncodingKey::from_rsa_pem(&pem).or_fail("an RSA key");
    let claims = json!({"username": "sensor", "exp": now() + 600});
    let token = encode(&Header::new(Algorithm::RS256), &claims, &signing).or_fail("an RS256 token");
    assert_eq!(connack_v5(&broker, Some("sensor"), &token), ReasonCode::Success);
    // An HS256 token signed with the public key as secret (the classic confusion) is refused.
    let public_pem = std::fs::read_to_string(&public).or_fail("the public key");
    assert_eq!(connack_v5(&broker, None, &hs256(&claims, &public_pem)), ReasonCode::BadUserNameOrPassword);
}

#[test]
fn jwt_settings_that_cannot_work_stop_start_up() {
    let bad = [
        ("[auth]\njwt_secret = \"s\"\n", "auth.jwt_secret"),
        ("[auth]\nenabled = true\njwt_secret = \"\"\n", "auth.jwt_secret"),
        ("[auth]\nenabled = true\njwt_secret = \"s\"\njwt_public_key_file = \"k\"\n", "auth.jwt_secret"),
        (
            "[auth]\nenabled = true\njwt_secret = \"s\"\njwt_username_claim = \"\"\n",
            "auth.jwt_username_claim",
        ),
    ];
    for (toml, key) in bad {
        let error = iothub::ConfigBuilder::new().toml("test", toml).and_then(|b| b.build()).err();
        assert_eq!(error.map(|e| e.key), Some(key.to_owned()), "{toml}");
    }
    let config = iothub_test_util::loopback_config(
        "[auth]\nenabled = true\njwt_public_key_file = \"/nonexistent/key.pem\"\n",
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().or_fail("a runtime");
    let error = runtime.block_on(iothub::Server::bind(&config)).err().or_fail("start-up should fail");
    assert!(error.to_string().contains("auth.jwt_public_key_file"), "{error}");
}
