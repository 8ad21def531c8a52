//! MQTT over TLS (`tls://`, alias `mqtts://`) with `[tls]`'s PEM files: Mosquitto's clients
//! and a rustls client over TLS 1.2 and 1.3, client certificates verified against `ca_file`
//! (`require_client_cert`), the certificate's Common Name as username
//! (`use_identity_as_username`) with the ACL and the password file, and what a TLS port does
//! with clients that do not speak TLS.

use std::time::{Duration, Instant};

use iothub_test_util::{
    config_with_listeners, connect_packet, mosquitto_pub, subscribe_packet, ClientCert, MosquittoSub, OrFail,
    RawClient, TestBroker, TestPki, TlsClient,
};

/// `mosquitto_pub`/`mosquitto_sub` arguments that reach the TLS listener at `port` and trust
/// the test CA (`localhost` is a name the server certificate carries).
fn tls_args<'a>(pki: &'a TestPki, port: &'a str) -> Vec<&'a str> {
    vec!["-h", "localhost", "-p", port, "--cafile", pki.ca_file.to_str().or_fail("a UTF-8 path")]
}

fn with_client<'a>(mut args: Vec<&'a str>, client: &'a ClientCert) -> Vec<&'a str> {
    args.extend([
        "--cert",
        client.cert_file.to_str().or_fail("a UTF-8 path"),
        "--key",
        client.key_file.to_str().or_fail("a UTF-8 path"),
    ]);
    args
}

/// A broker with a plain listener first and a TLS one second.
fn broker(pki: &TestPki, extra_tls: &str, toml: &str) -> (TestBroker, String) {
    let config = format!("{}{toml}", pki.tls_toml(extra_tls));
    let broker = TestBroker::with_listeners(&["tcp://127.0.0.1:0", "mqtts://127.0.0.1:0"], &config);
    let port = broker.addrs[1].port().to_string();
    (broker, port)
}

/// Runs mosquitto_pub with exactly these arguments and returns whether it succeeded.
fn try_pub(args: &[&str]) -> (bool, String) {
    iothub_test_util::try_mosquitto_pub(args)
}

#[test]
fn mosquitto_clients_publish_and_subscribe_over_tls_1_2_and_1_3() {
    let pki = TestPki::new("pubsub");
    let (broker, port) = broker(&pki, "", "");
    let mut sub_args = tls_args(&pki, &port);
    sub_args.extend(["-t", "tls/#", "-q", "1"]);
    let mut sub = MosquittoSub::start(&port, &sub_args);
    for version in ["tlsv1.2", "tlsv1.3"] {
        let mut args = tls_args(&pki, &port);
        let payload = format!("over {version}");
        args.extend(["--tls-version", version, "-t", "tls/x", "-q", "1", "-m", &payload]);
        let (ok, output) = try_pub(&args);
        assert!(ok, "mosquitto_pub over {version}: {output}");
        let message = sub.expect_message();
        assert_eq!((message.topic.as_str(), message.payload.as_str()), ("tls/x", payload.as_str()));
    }
    // The plain listener of the same broker reaches the same subscribers.
    mosquitto_pub(&broker.port(), &["-t", "tls/plain", "-m", "clear"]);
    assert_eq!(sub.expect_message().payload, "clear");
}

#[test]
fn a_client_that_does_not_trust_the_server_certificate_is_not_connected() {
    let pki = TestPki::new("untrusted");
    let other = TestPki::new("untrusted-other");
    let (_broker, port) = broker(&pki, "", "");
    let mut args = tls_args(&other, &port);
    args.extend(["-t", "t", "-m", "x"]);
    let (ok, output) = try_pub(&args);
    assert!(!ok, "a client with another CA connected: {output}");
}

#[test]
fn require_client_cert_refuses_a_handshake_without_one_and_accepts_a_verified_one() {
    let pki = TestPki::new("mtls");
    let (broker, port) = broker(&pki, "require_client_cert = true\n", "");
    let mut args = tls_args(&pki, &port);
    args.extend(["-t", "t", "-m", "x"]);
    let (ok, output) = try_pub(&args);
    assert!(!ok, "a client without a certificate connected: {output}");

    let client = pki.client_cert("device-1");
    let mut args = with_client(tls_args(&pki, &port), &client);
    args.extend(["-t", "t", "-m", "x", "-q", "1"]);
    let (ok, output) = try_pub(&args);
    assert!(ok, "a client with a verified certificate was refused: {output}");

    // A certificate from another CA fails the handshake.
    let stranger = TestPki::new("mtls-stranger").client_cert("device-1");
    let config = pki.client_config(Some(&stranger));
    let refused = TlsClient::connect(broker.addrs[1], config).and_then(|mut c| {
        c.send(&connect_packet("stranger", true, 0));
        c.read_packet()
    });
    assert!(refused.is_err(), "a certificate of another CA was accepted: {refused:?}");
}

/// A password file with alice's password, written by `iothub passwd`'s library.
fn password_file(pki: &TestPki) -> String {
    let path = pki.dir.join("passwd");
    let hash = iothub::auth::hash_password(b"wonderland").or_fail("hashing");
    std::fs::write(&path, format!("alice:{hash}\n")).or_fail("the password file");
    path.display().to_string()
}

#[test]
fn use_identity_as_username_makes_the_common_name_the_user_for_the_acl_and_the_password() {
    let pki = TestPki::new("identity");
    let acl = pki.dir.join("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").or_fail("the ACL file");
    let toml = format!(
        "[auth]\nenabled = true\npassword_file = {:?}\nacl_file = {:?}\n",
        password_file(&pki),
        acl.display().to_string()
    );
    let (_broker, port) = broker(&pki, "use_identity_as_username = true\n", &toml);
    let alice = pki.client_cert("alice");

    // The certificate alone authenticates alice; her ACL applies, whatever username CONNECT
    // claims.
    let mut sub_args = with_client(tls_args(&pki, &port), &alice);
    sub_args.extend(["-t", "alice/#", "-q", "1", "-u", "mallory"]);
    let mut sub = MosquittoSub::start(&port, &sub_args);
    let mut args = with_client(tls_args(&pki, &port), &alice);
    args.extend(["-t", "alice/x", "-q", "1", "-m", "by certificate", "-u", "mallory"]);
    let (ok, output) = try_pub(&args);
    assert!(ok, "{output}");
    assert_eq!(sub.expect_message().payload, "by certificate");

    // A password given with the certificate must be the certificate user's.
    let mut args = with_client(tls_args(&pki, &port), &alice);
    args.extend(["-t", "alice/x", "-m", "wrong", "-u", "alice", "-P", "not-hers"]);
    let (ok, output) = try_pub(&args);
    assert!(!ok, "a wrong password with a certificate was accepted: {output}");
    let mut args = with_client(tls_args(&pki, &port), &alice);
    args.extend(["-t", "alice/x", "-q", "1", "-m", "both", "-u", "alice", "-P", "wonderland"]);
    let (ok, output) = try_pub(&args);
    assert!(ok, "{output}");
    assert_eq!(sub.expect_message().payload, "both");

    // Without a certificate the CONNECT username counts, and is checked as usual.
    let mut args = tls_args(&pki, &port);
    args.extend(["-t", "alice/x", "-m", "x", "-u", "alice"]);
    let (ok, output) = try_pub(&args);
    assert!(!ok, "alice without a certificate or a password was accepted: {output}");
}

/// Reads until the broker closes: what it sent before closing may only be TLS alert records
/// (content type 21), never an MQTT packet.
fn expect_alert_then_close(client: &mut RawClient) {
    use std::io::Read;
    let mut received = Vec::new();
    client.stream.read_to_end(&mut received).or_fail("reading until the broker closes");
    let mut rest = received.as_slice();
    while !rest.is_empty() {
        assert!(rest.len() >= 5 && rest[0] == 21, "not a TLS alert: {received:02x?}");
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        rest = rest.get(5 + len..).or_fail("a whole alert record");
    }
}

#[test]
fn plain_mqtt_silence_and_garbage_on_the_tls_port_are_closed_without_disturbing_others() {
    let pki = TestPki::new("hostile");
    let (broker, _port) = broker(&pki, "", "[server]\nconnect_timeout_secs = 1\n");
    let tls = broker.addrs[1];

    // An MQTT CONNECT where a ClientHello belongs: a TLS alert at most, then closed at once.
    let mut plain = RawClient::connect(tls);
    plain.send(&connect_packet("plain", true, 0));
    expect_alert_then_close(&mut plain);

    // Random bytes, and a ClientHello cut short.
    let mut garbage = RawClient::connect(tls);
    garbage.send(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3]);
    let mut silent = RawClient::connect(tls);

    // Meanwhile a TLS client works.
    let mut client = TlsClient::connect(tls, pki.client_config(None)).or_fail("a TLS handshake");
    client.send(&connect_packet("good", true, 0));
    assert_eq!(client.read_packet().or_fail("CONNACK"), [0x20, 0x02, 0x00, 0x00]);
    client.send(&subscribe_packet(1, &[("a", 0)]));
    assert_eq!(client.read_packet().or_fail("SUBACK"), [0x90, 0x03, 0x00, 0x01, 0x00]);

    // The silent and the unfinished handshakes are closed by the connect timeout.
    let started = Instant::now();
    expect_alert_then_close(&mut garbage);
    silent.expect_closed();
    assert!(started.elapsed() < Duration::from_secs(10), "handshakes were not bounded in time");
}

#[test]
fn bad_tls_files_stop_start_up_with_the_key_named() {
    let pki = TestPki::new("badfiles");
    let empty = pki.dir.join("empty.pem");
    std::fs::write(&empty, "").or_fail("an empty file");
    let empty = empty.display().to_string();
    let cases = [
        (
            format!("[tls]\ncert_file = {:?}\nkey_file = {:?}\n", empty, pki.key_file.display().to_string()),
            "tls.cert_file",
        ),
        (
            format!("[tls]\ncert_file = {:?}\nkey_file = {:?}\n", pki.cert_file.display().to_string(), empty),
            "tls.key_file",
        ),
        (pki.tls_toml("").replace(&pki.ca_file.display().to_string(), &empty), "tls.ca_file"),
        (format!("[tls]\ncert_file = \"/nonexistent/server.crt\"\nkey_file = {empty:?}\n"), "tls.cert_file"),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().or_fail("a runtime");
    for (toml, key) in cases {
        let config = config_with_listeners(&["tls://127.0.0.1:0"], &toml);
        let error = runtime.block_on(iothub::Server::bind(&config)).err().or_fail("start-up should fail");
        assert!(error.to_string().contains(key), "{key}: {error}");
    }
    // A key that is not the certificate's.
    let other = TestPki::new("badfiles-other");
    let toml = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        pki.cert_file.display().to_string(),
        other.key_file.display().to_string()
    );
    let config = config_with_listeners(&["tls://127.0.0.1:0"], &toml);
    let error = runtime.block_on(iothub::Server::bind(&config)).err().or_fail("a mismatched key should fail");
    assert!(error.to_string().contains("tls.key_file"), "{error}");
}
