//! Reloading the ACL file, the password file and the TLS files while clients stay connected
//! (what SIGHUP does, through `Server::reloader`): a revoked permission stops deliveries to live
//! and offline subscriptions at once, queued messages included; new logins use the new password
//! file; new handshakes use the new certificate; a file that cannot be used is refused and the
//! one in force stays.

use std::path::{Path, PathBuf};

use iothub_protocol::{Packet, ReasonCode};
use iothub_test_util::v5_client::{connect_v5, message};
use iothub_test_util::V5Client;
use iothub_test_util::{
    expect_no_publish_before_pingresp, field, next_publish, publish_packet, subscribe_packet, with_header,
    OrFail, RawClient, TestBroker, TestPki, TlsClient, PINGREQ, PINGRESP,
};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// A scratch directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iothub-reload-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a scratch directory");
    dir
}

/// A password file giving each of `users` the password "pw".
fn write_passwords(path: &Path, users: &[&str]) {
    let hash = iothub::auth::hash_password(b"pw").or_fail("hashing");
    let text: String = users.iter().map(|user| format!("{user}:{hash}\n")).collect();
    std::fs::write(path, text).or_fail("the password file");
}

/// A 3.1.1 CONNECT with username and password "pw".
fn connect(client_id: &str, username: &str, clean: bool) -> Vec<u8> {
    let flags = 0x80 | 0x40 | if clean { 0x02 } else { 0 };
    let mut body = field(b"MQTT");
    body.extend([4, flags, 0, 60]);
    body.extend(field(client_id.as_bytes()));
    body.extend(field(username.as_bytes()));
    body.extend(field(b"pw"));
    with_header(0x10, &body)
}

fn client(broker: &TestBroker, client_id: &str, username: &str, clean: bool) -> (RawClient, bool) {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(client_id, username, clean));
    let connack = client.read_exact(4);
    assert_eq!((connack[0], connack[3]), (0x20, 0), "CONNACK of {client_id}: {connack:02x?}");
    (client, connack[2] == 1)
}

const ACL_BEFORE: &str =
    "user writer\ntopic write #\nuser watcher\ntopic read #\nuser alice\ntopic readwrite alice/#\n";
const ACL_AFTER: &str =
    "user writer\ntopic write #\nuser watcher\ntopic read #\nuser alice\ntopic readwrite alice/public/#\n";

fn acl_broker(dir: &Path) -> (TestBroker, PathBuf) {
    let passwd = dir.join("passwd");
    write_passwords(&passwd, &["writer", "watcher", "alice"]);
    let acl = dir.join("acl");
    std::fs::write(&acl, ACL_BEFORE).or_fail("the ACL");
    let broker = TestBroker::with_config(&format!(
        "[auth]\nenabled = true\npassword_file = {:?}\nacl_file = {:?}\n",
        passwd.display().to_string(),
        acl.display().to_string()
    ));
    (broker, acl)
}

#[test]
fn a_reloaded_acl_revokes_live_and_offline_subscriptions_and_queued_messages_at_once() {
    let (broker, acl) = acl_broker(&scratch("revoke"));
    let (mut writer, _) = client(&broker, "writer", "writer", true);
    let (mut live, _) = client(&broker, "live", "alice", true);
    live.send(&subscribe_packet(1, &[("alice/#", 1)]));
    live.expect(&[0x90, 3, 0, 1, 1]);
    let (mut offline, _) = client(&broker, "offline", "alice", false);
    offline.send(&subscribe_packet(1, &[("alice/#", 1)]));
    offline.expect(&[0x90, 3, 0, 1, 1]);
    drop(offline);
    // Queued for the offline session while alice/# was still allowed.
    writer.send(&publish_packet("alice/queued", b"before", 1, false, false, 1));
    writer.expect(&[0x40, 2, 0, 1]);
    assert_eq!(next_publish(&mut live).text(), "before");

    std::fs::write(&acl, ACL_AFTER).or_fail("the new ACL");
    assert!(broker.reloader.reload().is_empty());

    // The live subscription is gone before the next packet of its client is handled.
    live.send(&PINGREQ);
    live.expect(&PINGRESP);
    writer.send(&publish_packet("alice/x", b"after", 1, false, false, 2));
    writer.expect(&[0x40, 2, 0, 2]);
    expect_no_publish_before_pingresp(&mut live);
    // Gone from the router, not only filtered at delivery: a 5.0 publisher hears that nobody
    // subscribes (PUBACK 0x10).
    let mut connect = connect_v5("writer-5", true, 0);
    connect.username = Some("writer".into());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    let (mut writer5, _) = V5Client::connect_with(broker.addr, connect);
    writer5.send(&Packet::Publish(message("alice/x", b"after", 1, false, 1)));
    match writer5.recv() {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NoMatchingSubscribers),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    // New subscriptions follow the new rules.
    live.send(&subscribe_packet(2, &[("alice/#", 1), ("alice/public/#", 1)]));
    live.expect(&[0x90, 4, 0, 2, 0x80, 1]);
    writer.send(&publish_packet("alice/public/news", b"allowed", 1, false, false, 3));
    writer.expect(&[0x40, 2, 0, 3]);
    assert_eq!(next_publish(&mut live).text(), "allowed");

    // The offline session lost its subscription and the message queued under it.
    let (mut offline, present) = client(&broker, "offline", "alice", false);
    assert!(present, "the persistent session was kept");
    expect_no_publish_before_pingresp(&mut offline);
}

#[test]
fn a_malformed_acl_on_reload_is_refused_and_the_rules_in_force_stay() {
    let (broker, acl) = acl_broker(&scratch("bad-acl"));
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#/x\n").or_fail("a malformed ACL");
    let problems = broker.reloader.reload();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("auth.acl_file"), "{problems:?}");
    std::fs::write(&acl, "").or_fail("an empty ACL");
    assert_eq!(broker.reloader.reload().len(), 1, "an empty ACL must be refused too");
    let (mut alice, _) = client(&broker, "a", "alice", true);
    alice.send(&subscribe_packet(1, &[("alice/#", 0)]));
    alice.expect(&[0x90, 3, 0, 1, 0]);
}

#[test]
fn a_reloaded_password_file_serves_new_logins_and_keeps_clients_connected() {
    let dir = scratch("passwords");
    let passwd = dir.join("passwd");
    write_passwords(&passwd, &["alice"]);
    let broker = TestBroker::with_config(&format!(
        "[auth]\nenabled = true\npassword_file = {:?}\n",
        passwd.display().to_string()
    ));
    let (mut alice, _) = client(&broker, "alice-1", "alice", true);
    write_passwords(&passwd, &["carol"]);
    assert!(broker.reloader.reload().is_empty());
    let (_carol, _) = client(&broker, "carol", "carol", true);
    let mut refused = RawClient::connect(broker.addr);
    refused.send(&connect("alice-2", "alice", true));
    refused.expect(&[0x20, 2, 0, 0x04]);
    alice.send(&PINGREQ);
    alice.expect(&PINGRESP);

    std::fs::write(&passwd, "carol\n").or_fail("a malformed password file");
    let problems = broker.reloader.reload();
    assert!(problems.len() == 1 && problems[0].contains("auth.password_file"), "{problems:?}");
    let (_carol, _) = client(&broker, "carol-2", "carol", true);
}

/// The first certificate of a PEM file.
fn first_certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(path).or_fail("the certificate file").next().or_fail("one").or_fail("a PEM")
}

fn served_certificate(client: &TlsClient) -> CertificateDer<'static> {
    client.stream.conn.peer_certificates().or_fail("the server's chain")[0].clone().into_owned()
}

#[test]
fn reloaded_tls_files_serve_new_handshakes_while_connections_stay_up() {
    let pki = TestPki::new("reload");
    let broker = TestBroker::with_listeners(&["tls://127.0.0.1:0"], &pki.tls_toml(""));
    let config = pki.client_config(None);
    let mut first = TlsClient::connect(broker.addr, config.clone()).or_fail("a TLS handshake");
    first.send(&iothub_test_util::connect_packet("first", true, 0));
    assert_eq!(first.read_packet().or_fail("CONNACK"), [0x20, 2, 0, 0]);
    let before = served_certificate(&first);

    pki.server_cert("server-2");
    assert!(broker.reloader.reload().is_empty());
    let second = TlsClient::connect(broker.addr, config.clone()).or_fail("a handshake after the reload");
    let renewed = served_certificate(&second);
    assert_eq!(renewed, first_certificate(&pki.cert_file));
    assert_ne!(renewed, before);
    first.send(&PINGREQ);
    assert_eq!(first.read_packet().or_fail("PINGRESP"), PINGRESP);

    std::fs::write(&pki.cert_file, "not a certificate\n").or_fail("a broken certificate file");
    let problems = broker.reloader.reload();
    assert!(problems.len() == 1 && problems[0].contains("tls.cert_file"), "{problems:?}");
    let third = TlsClient::connect(broker.addr, config).or_fail("a handshake after a refused reload");
    assert_eq!(served_certificate(&third), renewed);
}

#[test]
fn a_will_whose_topic_a_reload_revoked_is_not_published() {
    let (broker, acl) = acl_broker(&scratch("will"));
    let (mut watcher, _) = client(&broker, "watcher", "watcher", true);
    watcher.send(&subscribe_packet(1, &[("alice/#", 0)]));
    watcher.expect(&[0x90, 3, 0, 1, 0]);
    // alice's CONNECT carries a will to alice/will, which the ACL allows at CONNECT.
    let mut body = field(b"MQTT");
    body.extend([4, 0x80 | 0x40 | 0x04 | 0x02, 0, 60]);
    for part in [&b"willer"[..], b"alice/will", b"gone", b"alice", b"pw"] {
        body.extend(field(part));
    }
    let mut alice = RawClient::connect(broker.addr);
    alice.send(&with_header(0x10, &body));
    alice.expect(&[0x20, 2, 0, 0]);
    std::fs::write(&acl, ACL_AFTER).or_fail("the new ACL");
    assert!(broker.reloader.reload().is_empty());
    // The connection ends without DISCONNECT; a new one with its client identifier waits for
    // the old one to hand its session back, will included.
    drop(alice);
    let (_again, _) = client(&broker, "willer", "alice", true);
    let (mut writer, _) = client(&broker, "writer", "writer", true);
    writer.send(&publish_packet("alice/public/marker", b"m", 0, false, false, 0));
    let before_marker = iothub_test_util::publishes_until(&mut watcher, "alice/public/marker");
    assert!(before_marker.is_empty(), "the revoked will was published: {before_marker:?}");
}
