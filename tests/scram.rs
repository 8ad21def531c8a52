//! The built-in SCRAM-SHA-256 enhanced authentication method (MQTT 5.0 section 4.12, RFC 5802
//! and RFC 7677) over raw 5.0 packets, with the client side of SCRAM written here from the RFC:
//! logins, wrong passwords, unknown users, malformed messages, re-authentication, the ACL of the
//! authenticated username, password-file reloads, plain passwords on SCRAM entries, and the
//! login throttle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use iothub::auth::{AuthenticationMethod, Exchange, Step};
use iothub_protocol::{
    Auth, AuthProperties, ConnAck, Connect, ConnectProperties, Packet, ProtocolVersion, ReasonCode,
};
use iothub_test_util::v5_client::{encode_v5 as encode, message, options, read_v5 as read};
use iothub_test_util::{field, loopback_config, with_header, OrFail, RawClient, TestBroker, V5Client};
use sha2::{Digest, Sha256};

/// The method's name.
const METHOD: &str = "SCRAM-SHA-256";

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iothub-scram-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a scratch directory");
    dir
}

/// A password file with a SCRAM-SHA-256 entry for each user, and `extra` lines.
fn write_passwords(path: &Path, users: &[(&str, &str)], extra: &str) {
    let mut text = String::new();
    for (user, password) in users {
        let entry = iothub::auth::scram_entry(password.as_bytes()).or_fail("a SCRAM entry");
        text.push_str(&format!("{user}:{entry}\n"));
    }
    text.push_str(extra);
    std::fs::write(path, text).or_fail("the password file");
}

/// A broker with `[auth]` over the password file at `passwd` and `extra` `[auth]` keys.
fn broker_over(passwd: &Path, extra: &str) -> TestBroker {
    TestBroker::with_config(&format!(
        "[auth]\nenabled = true\npassword_file = {:?}\n{extra}",
        passwd.display().to_string()
    ))
}

/// A broker with SCRAM entries alice / wonderland and bob / builder, and carol with a `$7$`
/// entry (password "pw"), which cannot serve SCRAM.
fn broker(name: &str, extra: &str) -> TestBroker {
    let passwd = scratch(name).join("passwd");
    let carol = iothub::auth::hash_password(b"pw").or_fail("a $7$ hash");
    write_passwords(&passwd, &[("alice", "wonderland"), ("bob", "builder")], &format!("carol:{carol}\n"));
    broker_over(&passwd, extra)
}

/// HMAC-SHA-256.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).or_fail("an HMAC key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The client side of one SCRAM-SHA-256 exchange, after RFC 5802 section 3.
struct ScramClient {
    /// The password.
    password: Vec<u8>,
    /// The client-first-message-bare.
    bare: String,
    /// The client's nonce.
    nonce: String,
}

/// What a server-first-message says.
struct ServerFirst<'a> {
    /// The combined nonce.
    nonce: &'a str,
    /// The salt, decoded.
    salt: Vec<u8>,
    /// The iteration count.
    iterations: u32,
}

/// Parses a server-first-message; it must be `r=...,s=...,i=...`.
fn server_first(text: &str) -> ServerFirst<'_> {
    let mut parts = text.split(',');
    let mut next = |prefix: &str| parts.next().and_then(|p| p.strip_prefix(prefix)).or_fail(text);
    let nonce = next("r=");
    let salt = STANDARD.decode(next("s=")).or_fail("a Base64 salt");
    let iterations = next("i=").parse().or_fail("an iteration count");
    assert!(parts.next().is_none(), "no extension expected: {text}");
    ServerFirst { nonce, salt, iterations }
}

impl ScramClient {
    fn new(username: &str, password: &str, nonce: &str) -> ScramClient {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: password.into(),
            bare: format!("n={name},r={nonce}"),
            nonce: nonce.to_owned(),
        }
    }

    /// The client-first-message, with the GS2 header `n,,`.
    fn first(&self) -> String {
        format!("n,,{}", self.bare)
    }

    /// The client-final-message answering `server`, and the server-final-message a server that
    /// knows the password must send.
    fn last(&self, server: &str) -> (String, String) {
        let parsed = server_first(server);
        assert!(
            parsed.nonce.starts_with(&self.nonce) && parsed.nonce.len() > self.nonce.len(),
            "the server's nonce extends the client's: {server}"
        );
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &parsed.salt, parsed.iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(client_key);
        let without_proof = format!("c=biws,r={}", parsed.nonce);
        let auth_message = format!("{},{server},{without_proof}", self.bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
        (
            format!("{without_proof},p={}", STANDARD.encode(proof)),
            format!("v={}", STANDARD.encode(server_signature)),
        )
    }
}

/// A 5.0 CONNECT naming `method` with this Authentication Data and User Name.
fn connect_with(client_id: &str, method: &str, user_name: Option<&str>, data: Option<&[u8]>) -> Vec<u8> {
    let properties = ConnectProperties {
        authentication_method: Some(method.into()),
        authentication_data: data.map(Bytes::copy_from_slice),
        ..ConnectProperties::default()
    };
    encode(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: user_name.map(Into::into),
        password: None,
        properties: Some(Box::new(properties)),
    })))
}

/// A 5.0 CONNECT naming SCRAM-SHA-256.
fn connect(client_id: &str, user_name: Option<&str>, data: Option<&[u8]>) -> Vec<u8> {
    connect_with(client_id, METHOD, user_name, data)
}

/// An AUTH naming SCRAM-SHA-256, with this Authentication Data.
fn auth(reason_code: ReasonCode, data: Option<&[u8]>) -> Vec<u8> {
    let properties = AuthProperties {
        authentication_method: Some(METHOD.into()),
        authentication_data: data.map(Bytes::copy_from_slice),
        ..AuthProperties::default()
    };
    encode(&Packet::Auth(Auth { reason_code, properties: Some(Box::new(properties)) }))
}

/// The Authentication Data of a packet that must be an AUTH with `reason_code` naming the
/// method [MQTT-4.12.0-2], [MQTT-4.12.0-5].
#[track_caller]
fn auth_data(packet: &Packet, reason_code: ReasonCode) -> String {
    let Packet::Auth(auth) = packet else { panic!("expected AUTH {reason_code:?}, got {packet:?}") };
    assert_eq!(auth.reason_code, reason_code);
    let properties = auth.properties.as_deref().or_fail("AUTH properties");
    assert_eq!(properties.authentication_method.as_deref(), Some(METHOD));
    let data = properties.authentication_data.as_deref().unwrap_or_default();
    String::from_utf8(data.to_vec()).or_fail("a UTF-8 SCRAM message")
}

/// The next packet, which must be a CONNACK.
#[track_caller]
fn connack(client: &mut RawClient) -> ConnAck {
    match read(client) {
        Packet::ConnAck(connack) => connack,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Runs a SCRAM-SHA-256 CONNECT as `username` with `password` (and this CONNECT User Name) up
/// to its CONNACK. An accepting CONNACK must name the method and carry the server-final-message
/// that proves the server knows the password, which the client checks.
#[track_caller]
fn scram_connect(
    broker: &TestBroker,
    client_id: &str,
    (username, password): (&str, &str),
    user_name: Option<&str>,
) -> (RawClient, ConnAck) {
    let scram = ScramClient::new(username, password, &format!("nonce-of-{client_id}"));
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(client_id, user_name, Some(scram.first().as_bytes())));
    let server = match read(&mut client) {
        Packet::ConnAck(refused) => return (client, refused),
        packet => auth_data(&packet, ReasonCode::ContinueAuthentication),
    };
    let (last, server_final) = scram.last(&server);
    client.send(&auth(ReasonCode::ContinueAuthentication, Some(last.as_bytes())));
    let connack = connack(&mut client);
    if connack.reason_code == ReasonCode::Success {
        let properties = connack.properties.as_deref().or_fail("CONNACK properties");
        assert_eq!(properties.authentication_method.as_deref(), Some(METHOD), "[MQTT-4.12.0-5]");
        let data = properties.authentication_data.as_deref().or_fail("the server-final-message");
        assert_eq!(data, server_final.as_bytes(), "the ServerSignature");
    }
    (client, connack)
}

/// A client the broker accepted after SCRAM-SHA-256.
#[track_caller]
fn logged_in(broker: &TestBroker, client_id: &str, credentials: (&str, &str)) -> V5Client {
    let (raw, connack) = scram_connect(broker, client_id, credentials, None);
    assert_eq!(connack.reason_code, ReasonCode::Success, "CONNACK of {client_id}");
    V5Client { raw }
}

/// [MQTT-4.12.0-2], [MQTT-4.12.0-3], [MQTT-4.12.0-5]: the RFC 7677 flow, CONNECT with the
/// client-first-message, AUTH 0x18 with the server-first-message, AUTH 0x18 with the
/// client-final-message, CONNACK 0x00 with the server-final-message, whose ServerSignature the
/// client checks; the client is then connected.
#[test]
fn mqtt5_4_12_0_2_a_scram_sha_256_login_succeeds_and_proves_the_server() {
    let broker = broker("login", "");
    let mut client = logged_in(&broker, "scram-1", ("alice", "wonderland"));
    client.expect_no_publish();
}

/// [MQTT-4.12.0-4]: a wrong password gets CONNACK 0x87 (Not authorized), then the close.
#[test]
fn mqtt5_4_12_0_4_a_wrong_password_gets_connack_0x87_and_the_close() {
    let broker = broker("wrong", "");
    let (mut client, connack) = scram_connect(&broker, "scram-2", ("alice", "wonderland!"), None);
    assert_eq!(connack.reason_code, ReasonCode::NotAuthorized);
    assert!(!connack.session_present);
    client.expect_closed();
}

/// The server-first-message of a known user, split into the parts a client can see.
fn first_answer(broker: &TestBroker, client_id: &str, username: &str) -> (usize, usize, u32, Vec<u8>) {
    let scram = ScramClient::new(username, "whatever", "n0nce");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(client_id, None, Some(scram.first().as_bytes())));
    let server = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
    let parsed = server_first(&server);
    let (last, _) = scram.last(&server);
    client.send(&auth(ReasonCode::ContinueAuthentication, Some(last.as_bytes())));
    assert_eq!(
        connack(&mut client).reason_code,
        ReasonCode::NotAuthorized,
        "{username} with a wrong password"
    );
    client.expect_closed();
    (server.len() - parsed.nonce.len(), parsed.nonce.len(), parsed.iterations, parsed.salt)
}

/// [MQTT-4.12.0-4]: an unknown user, and a user whose entry is `$7$` (which keeps no SCRAM
/// keys), get a server-first-message of the same shape as a known user's (same nonce length,
/// salt length and iteration count, the same salt at every attempt), and CONNACK 0x87 at the end.
#[test]
fn mqtt5_4_12_0_4_an_unknown_user_looks_like_a_known_one_until_connack_0x87() {
    let broker = broker("unknown", "");
    let (known_rest, known_nonce, known_iterations, known_salt) = first_answer(&broker, "k", "alice");
    for user in ["mallory", "carol"] {
        let (rest, nonce, iterations, salt) = first_answer(&broker, user, user);
        assert_eq!(
            (rest, nonce, iterations, salt.len()),
            (known_rest, known_nonce, known_iterations, known_salt.len())
        );
        assert_eq!(first_answer(&broker, "again", user).3, salt, "{user}'s made-up salt is stable");
    }
    assert_eq!(first_answer(&broker, "k2", "alice").3, known_salt);
}

/// [MQTT-4.12.0-4]: malformed client-first-messages (channel binding asked for, an
/// authorisation identity, no nonce, `m=`, bad escapes, not UTF-8, empty, none at all) get
/// CONNACK 0x87 and the close, and the broker goes on serving.
#[test]
fn mqtt5_4_12_0_4_a_malformed_client_first_message_gets_connack_0x87() {
    let broker = broker("malformed-first", "");
    let malformed: [Option<&[u8]>; 9] = [
        Some(b"p=tls-server-end-point,,n=alice,r=abc"),
        Some(b"n,a=alice,n=alice,r=abc"),
        Some(b"n,,n=alice"),
        Some(b"n,,m=x,n=alice,r=abc"),
        Some(b"n,,n=al=ice,r=abc"),
        Some(b"n,,n=alice,r=a b"),
        Some(&[0xFF, 0xFE, b',', b',']),
        Some(b""),
        None,
    ];
    for (i, data) in malformed.iter().enumerate() {
        let mut client = RawClient::connect(broker.addr);
        client.send(&connect(&format!("bad-first-{i}"), None, *data));
        assert_eq!(connack(&mut client).reason_code, ReasonCode::NotAuthorized, "{data:?}");
        client.expect_closed();
    }
    logged_in(&broker, "after-bad-first", ("alice", "wonderland")).expect_no_publish();
}

/// [MQTT-4.12.0-4]: malformed client-final-messages (not SCRAM, another nonce, no proof, a
/// channel binding that is not `n,,`'s, no Authentication Data) get CONNACK 0x87 and the close.
#[test]
fn mqtt5_4_12_0_4_a_malformed_client_final_message_gets_connack_0x87() {
    let broker = broker("malformed-final", "");
    let finals: [fn(&str, &str) -> Option<String>; 6] = [
        |_, _| Some("garbage".to_owned()),
        |last, nonce| Some(last.replace(nonce, &format!("{nonce}x"))),
        |last, _| Some(last.split(",p=").next().or_fail("a proof").to_owned()),
        |last, _| Some(last.replace("c=biws", "c=eSws")),
        |last, _| Some(format!("{last},x=after-the-proof")),
        |_, _| None,
    ];
    for (i, make) in finals.iter().enumerate() {
        let scram = ScramClient::new("alice", "wonderland", "n0nce");
        let mut client = RawClient::connect(broker.addr);
        client.send(&connect(&format!("bad-final-{i}"), None, Some(scram.first().as_bytes())));
        let server = auth_data(&read(&mut client), ReasonCode::ContinueAuthentication);
        let (last, _) = scram.last(&server);
        let bad = make(&last, server_first(&server).nonce);
        client.send(&auth(ReasonCode::ContinueAuthentication, bad.as_deref().map(str::as_bytes)));
        assert_eq!(connack(&mut client).reason_code, ReasonCode::NotAuthorized, "case {i}: {bad:?}");
        client.expect_closed();
    }
    logged_in(&broker, "after-bad-final", ("alice", "wonderland")).expect_no_publish();
}

/// Re-authenticates `client` with SCRAM as `username` / `password` (4.12.1): AUTH 0x19 with the
/// client-first-message, AUTH 0x18 both ways; returns the final answer and the
/// server-final-message a server that knows the password sends.
fn reauthenticate(client: &mut V5Client, username: &str, password: &str) -> (Packet, String) {
    let scram = ScramClient::new(username, password, "re-auth-nonce");
    client.raw.send(&auth(ReasonCode::ReAuthenticate, Some(scram.first().as_bytes())));
    let server = auth_data(&client.recv(), ReasonCode::ContinueAuthentication);
    let (last, server_final) = scram.last(&server);
    client.raw.send(&auth(ReasonCode::ContinueAuthentication, Some(last.as_bytes())));
    (client.recv(), server_final)
}

/// [MQTT-4.12.1-1], [MQTT-4.12.1-2]: a re-authentication with SCRAM ends in AUTH 0x00 carrying
/// the ServerSignature, the connection staying up; one with a wrong password gets DISCONNECT
/// 0x87 and the close.
#[test]
fn mqtt5_4_12_1_2_re_authentication_with_scram_succeeds_and_a_wrong_password_disconnects() {
    let broker = broker("reauth", "");
    let mut client = logged_in(&broker, "reauth-1", ("alice", "wonderland"));
    let (answer, server_final) = reauthenticate(&mut client, "alice", "wonderland");
    assert_eq!(auth_data(&answer, ReasonCode::Success), server_final);
    client.expect_no_publish();
    let (answer, _) = reauthenticate(&mut client, "alice", "looking-glass");
    let Packet::Disconnect(disconnect) = answer else { panic!("expected DISCONNECT, got {answer:?}") };
    assert_eq!(disconnect.reason_code, ReasonCode::NotAuthorized);
    client.raw.expect_closed();
}

/// [MQTT-4.12.1-2]: a re-authentication may not change the username (4.12.1 lets a server
/// refuse that): bob's correct password on alice's connection gets DISCONNECT 0x87.
#[test]
fn mqtt5_4_12_1_2_re_authentication_as_another_user_disconnects_with_0x87() {
    let broker = broker("reauth-other", "");
    let mut client = logged_in(&broker, "reauth-2", ("alice", "wonderland"));
    let (answer, _) = reauthenticate(&mut client, "bob", "builder");
    let Packet::Disconnect(disconnect) = answer else { panic!("expected DISCONNECT, got {answer:?}") };
    assert_eq!(disconnect.reason_code, ReasonCode::NotAuthorized);
    client.raw.expect_closed();
}

/// The username SCRAM authenticated is the connection's for the ACL: alice, who sent no User
/// Name, may use alice/# and not bob/#.
#[test]
fn the_acl_applies_to_the_scram_username() {
    let dir = scratch("acl");
    let passwd = dir.join("passwd");
    write_passwords(&passwd, &[("alice", "wonderland"), ("bob", "builder")], "");
    let acl = dir.join("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\nuser bob\ntopic readwrite bob/#\n")
        .or_fail("the ACL");
    let broker = broker_over(&passwd, &format!("acl_file = {:?}\n", acl.display().to_string()));
    let mut alice = logged_in(&broker, "acl-alice", ("alice", "wonderland"));
    let codes = alice.subscribe(1, &[("alice/#", options(1)), ("bob/#", options(1))], None);
    assert_eq!(codes, vec![ReasonCode::GrantedQoS1, ReasonCode::NotAuthorized]);
    alice.publish(message("alice/news", b"mine", 1, false, 2));
    assert_eq!(alice.next_publish().payload, &b"mine"[..]);
}

/// A CONNECT User Name must be the username SCRAM authenticated: another one gets CONNACK 0x86
/// (Bad User Name or Password) after the exchange; the same one is accepted.
#[test]
fn a_user_name_other_than_the_scram_username_gets_connack_0x86() {
    let broker = broker("user-name", "");
    let (mut client, connack) = scram_connect(&broker, "named-1", ("alice", "wonderland"), Some("bob"));
    assert_eq!(connack.reason_code, ReasonCode::BadUserNameOrPassword);
    client.expect_closed();
    let (raw, connack) = scram_connect(&broker, "named-2", ("alice", "wonderland"), Some("alice"));
    assert_eq!(connack.reason_code, ReasonCode::Success);
    V5Client { raw }.expect_no_publish();
}

/// A reloaded password file (SIGHUP) changes the credentials SCRAM accepts: the old password
/// gets CONNACK 0x87, the new one and a new user are accepted, and a connected client stays.
#[test]
fn a_reloaded_password_file_changes_what_scram_accepts() {
    let passwd = scratch("reload").join("passwd");
    write_passwords(&passwd, &[("alice", "before")], "");
    let broker = broker_over(&passwd, "");
    let mut connected = logged_in(&broker, "reload-1", ("alice", "before"));
    write_passwords(&passwd, &[("alice", "after"), ("dave", "new")], "");
    assert!(broker.reloader.reload().is_empty());
    let (_, refused) = scram_connect(&broker, "reload-2", ("alice", "before"), None);
    assert_eq!(refused.reason_code, ReasonCode::NotAuthorized);
    logged_in(&broker, "reload-3", ("alice", "after")).expect_no_publish();
    logged_in(&broker, "reload-4", ("dave", "new")).expect_no_publish();
    connected.expect_no_publish();
}

/// A 3.1.1 CONNECT with a username and password.
fn connect_v3(client_id: &str, username: &str, password: &[u8]) -> Vec<u8> {
    let mut body = field(b"MQTT");
    body.extend([4, 0x02 | 0x80 | 0x40, 0, 60]);
    body.extend(field(client_id.as_bytes()));
    body.extend(field(username.as_bytes()));
    body.extend(field(password));
    with_header(0x10, &body)
}

/// A 5.0 CONNECT with a username and password and no Authentication Method.
fn connect_v5_password(client_id: &str, username: &str, password: &[u8]) -> Vec<u8> {
    encode(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: Some(username.into()),
        password: Some(Bytes::copy_from_slice(password)),
        properties: None,
    })))
}

/// A SCRAM-SHA-256 entry serves a plain username and password CONNECT too, in 3.1.1 and 5.0;
/// a wrong password gets 0x04 (3.1.1) and 0x86 (5.0).
#[test]
fn plain_username_and_password_log_in_with_a_scram_entry() {
    let broker = broker("plain", "");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_v3("plain-1", "alice", b"wonderland"));
    client.expect(&[0x20, 2, 0, 0]);
    let mut wrong = RawClient::connect(broker.addr);
    wrong.send(&connect_v3("plain-2", "alice", b"wonderlanD"));
    wrong.expect(&[0x20, 2, 0, 0x04]);
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_v5_password("plain-3", "bob", b"builder"));
    assert_eq!(connack(&mut client).reason_code, ReasonCode::Success);
    let mut wrong = RawClient::connect(broker.addr);
    wrong.send(&connect_v5_password("plain-4", "bob", b"builder "));
    assert_eq!(connack(&mut wrong).reason_code, ReasonCode::BadUserNameOrPassword);
}

/// Failed SCRAM exchanges count against the login throttle as failed passwords do: after two,
/// the address is refused at once, a SCRAM CONNECT with CONNACK 0x87 before any AUTH, a
/// password CONNECT with 0x86.
#[test]
fn failed_scram_exchanges_count_against_the_login_throttle() {
    let broker = broker("throttle", "throttle_failures = 2\nthrottle_secs = 600\n");
    for i in 0..2 {
        let (_, connack) = scram_connect(&broker, &format!("throttled-{i}"), ("alice", "nope"), None);
        assert_eq!(connack.reason_code, ReasonCode::NotAuthorized);
    }
    let scram = ScramClient::new("alice", "wonderland", "n0nce");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect("throttled-2", None, Some(scram.first().as_bytes())));
    assert_eq!(connack(&mut client).reason_code, ReasonCode::NotAuthorized, "refused without an exchange");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_v5_password("throttled-3", "alice", b"wonderland"));
    assert_eq!(connack(&mut client).reason_code, ReasonCode::BadUserNameOrPassword);
}

/// [MQTT-4.12.0-1]: without a password file the server has no SCRAM-SHA-256 to offer:
/// CONNACK 0x8C (Bad authentication method).
#[test]
fn mqtt5_4_12_0_1_without_a_password_file_scram_is_not_offered() {
    let broker = TestBroker::with_config("[auth]\nenabled = true\nallow_anonymous = true\n");
    let scram = ScramClient::new("alice", "wonderland", "n0nce");
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect("no-file", None, Some(scram.first().as_bytes())));
    assert_eq!(connack(&mut client).reason_code, ReasonCode::BadAuthenticationMethod);
    client.expect_closed();
}

/// A method that accepts the Authentication Data "open" at once and authenticates no username.
#[derive(Debug)]
struct Open;

/// `Open`'s exchange, which never gets a step.
#[derive(Debug)]
struct Opened;

impl AuthenticationMethod for Open {
    fn name(&self) -> &str {
        "TEST-OPEN"
    }

    fn begin(&self, _client_id: &str, data: Option<&[u8]>) -> (Box<dyn Exchange>, Step) {
        let step = if data == Some(b"open") { Step::Success(None) } else { Step::Failure };
        (Box::new(Opened), step)
    }
}

impl Exchange for Opened {
    fn step(&mut self, _data: Option<&[u8]>) -> Step {
        Step::Failure
    }
}

/// A method passed to `Server::bind_with_auth_methods` is offered beside the built-in
/// SCRAM-SHA-256; since it authenticates no username, it admits no CONNECT User Name while
/// `[auth]` is enabled (CONNACK 0x86), which nothing would have verified.
#[test]
fn a_plugged_method_is_offered_beside_scram_and_admits_no_unverified_user_name() {
    let passwd = scratch("beside").join("passwd");
    write_passwords(&passwd, &[("alice", "wonderland")], "");
    let config = loopback_config(&format!(
        "[auth]\nenabled = true\npassword_file = {:?}\n",
        passwd.display().to_string()
    ));
    let broker = TestBroker::with_auth_methods(config, vec![Arc::new(Open) as Arc<dyn AuthenticationMethod>]);
    logged_in(&broker, "beside-scram", ("alice", "wonderland")).expect_no_publish();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_with("beside-open", "TEST-OPEN", None, Some(b"open")));
    assert_eq!(connack(&mut client).reason_code, ReasonCode::Success);
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_with("beside-named", "TEST-OPEN", Some("alice"), Some(b"open")));
    assert_eq!(connack(&mut client).reason_code, ReasonCode::BadUserNameOrPassword);
    client.expect_closed();
}
