//! Topic permissions from an ACL file in Mosquitto's `acl_file` syntax, with clients that
//! authenticated against a `mosquitto_passwd` file: a publication the ACL does not allow is not
//! routed (5.0: PUBACK 0x87), a subscription it does not wholly allow is refused in SUBACK
//! (3.1.1: 0x80, 5.0: 0x87) instead of being granted and filtered (Mosquitto 2.0.11 grants it), a
//! will topic it does not allow refuses CONNECT, and `%c`/`%u` patterns apply per client.

use std::path::PathBuf;
use std::process::Command;

use iothub_protocol::{Packet, ReasonCode};
use iothub_test_util::v5_client::{connect_v5, message, options};
use iothub_test_util::{
    field, next_publish, publish_packet, require_tool, run_tool, subscribe_packet, with_header, OrFail,
    RawClient, TestBroker, V5Client, PINGREQ, PINGRESP,
};

const ACL: &str = "\
user alice
topic readwrite alice/#
topic deny alice/secret
topic read shared/#
user watcher
topic read #
pattern write devices/%c/status
";

fn broker() -> TestBroker {
    require_tool("mosquitto_passwd");
    let dir = std::env::temp_dir().join(format!(
        "iothub-acl-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).or_fail("a directory");
    let passwd = dir.join("passwd");
    let file = passwd.to_str().or_fail("a UTF-8 path");
    for (create, user) in [(true, "alice"), (false, "watcher")] {
        let mut args = vec!["-b", file, user, "pw"];
        if create {
            args.insert(0, "-c");
        }
        assert!(run_tool(Command::new("mosquitto_passwd").args(&args)).status.success());
    }
    let acl: PathBuf = dir.join("acl");
    std::fs::write(&acl, ACL).or_fail("writing the ACL");
    TestBroker::with_config(&format!(
        "[auth]\nenabled = true\npassword_file = {:?}\nacl_file = {:?}\n",
        passwd.display().to_string(),
        acl.display().to_string()
    ))
}

/// A 3.1.1 CONNECT with username and password "pw", and optionally a will topic.
fn connect(client_id: &str, username: &str, will: Option<&str>) -> Vec<u8> {
    let mut flags = 0x02 | 0x80 | 0x40;
    let mut payload = field(client_id.as_bytes());
    if let Some(topic) = will {
        flags |= 0x04;
        payload.extend(field(topic.as_bytes()));
        payload.extend(field(b"bye"));
    }
    payload.extend(field(username.as_bytes()));
    payload.extend(field(b"pw"));
    let mut body = field(b"MQTT");
    body.extend([4, flags, 0, 60]);
    body.extend(payload);
    with_header(0x10, &body)
}

fn client(broker: &TestBroker, client_id: &str, username: &str) -> RawClient {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect(client_id, username, None));
    client.expect(&[0x20, 2, 0, 0]);
    client
}

#[test]
fn only_allowed_publications_are_routed_and_a_3_1_1_publisher_is_still_acknowledged() {
    let broker = broker();
    let mut watcher = client(&broker, "w", "watcher");
    watcher.send(&subscribe_packet(1, &[("#", 1)]));
    watcher.expect(&[0x90, 3, 0, 1, 1]);
    let mut alice = client(&broker, "dev7", "alice");
    for (topic, id) in [
        ("alice/x", 1),
        ("alice/secret", 2),
        ("bob/x", 3),
        ("devices/dev7/status", 4),
        ("devices/dev8/status", 5),
    ] {
        alice.send(&publish_packet(topic, topic.as_bytes(), 1, false, false, id));
        // Acknowledged either way: 3.1.1 has no code to refuse a publication with.
        alice.expect(&[0x40, 2, 0, u8::try_from(id).or_fail("a small id")]);
    }
    alice.send(&publish_packet("alice/last", b"alice/last", 1, false, false, 6));
    alice.expect(&[0x40, 2, 0, 6]);
    let got: Vec<String> = (0..3).map(|_| next_publish(&mut watcher).text().to_owned()).collect();
    assert_eq!(got, ["alice/x", "devices/dev7/status", "alice/last"]);
    watcher.send(&PINGREQ);
    watcher.expect(&PINGRESP);
}

#[test]
fn a_subscription_the_acl_does_not_wholly_allow_is_refused_in_suback() {
    let broker = broker();
    let mut alice = client(&broker, "a1", "alice");
    // alice/# would match alice/secret; # and bob/# are not granted; shared/# and alice/x/+ are.
    alice.send(&subscribe_packet(
        1,
        &[("alice/#", 1), ("alice/x/+", 1), ("shared/#", 0), ("#", 0), ("bob/#", 1)],
    ));
    alice.expect(&[0x90, 7, 0, 1, 0x80, 1, 0, 0x80, 0x80]);
}

#[test]
fn a_5_0_client_is_told_0x87_for_a_refused_publication_and_subscription() {
    let broker = broker();
    let mut connect = connect_v5("a5", true, 0);
    connect.username = Some("alice".into());
    connect.password = Some(bytes::Bytes::from_static(b"pw"));
    let (mut alice, _) = V5Client::connect_with(broker.addr, connect);
    let codes = alice.subscribe(1, &[("alice/#", options(1)), ("alice/x/+", options(1))], None);
    assert_eq!(codes, [ReasonCode::NotAuthorized, ReasonCode::GrantedQoS1]);
    alice.send(&Packet::Publish(message("bob/x", b"no", 1, false, 2)));
    match alice.recv() {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected PUBACK 0x87, got {other:?}"),
    }
    // A refused QoS 2 exchange ends at PUBREC 0x87: the identifier is free again.
    alice.send(&Packet::Publish(message("bob/x", b"no", 2, false, 3)));
    match alice.recv() {
        Packet::PubRec(rec) => assert_eq!(rec.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected PUBREC 0x87, got {other:?}"),
    }
    alice.publish(message("alice/x", b"yes", 2, false, 3));
}

#[test]
fn a_will_on_a_topic_the_acl_does_not_allow_refuses_connect() {
    let broker = broker();
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect("a2", "alice", Some("bob/will")));
    client.expect(&[0x20, 2, 0, 5]);
    let mut allowed = RawClient::connect(broker.addr);
    allowed.send(&connect("a3", "alice", Some("alice/will")));
    allowed.expect(&[0x20, 2, 0, 0]);
}

#[test]
fn mosquitto_sub_is_refused_a_topic_outside_its_acl() {
    require_tool("mosquitto_sub");
    let broker = broker();
    let port = broker.port();
    let output = run_tool(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-u",
        "alice",
        "-P",
        "pw",
        "-t",
        "bob/#",
        "-C",
        "1",
        "-W",
        "2",
        "-V",
        "mqttv311",
    ]));
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // mosquitto_sub reads SUBACK 0x80 and says so: "All subscription requests were denied."
    assert!(text.to_lowercase().contains("denied"), "{text}");
}

#[test]
fn an_empty_or_malformed_acl_file_stops_start_up() {
    let dir = std::env::temp_dir().join(format!("iothub-acl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).or_fail("a directory");
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "alice:$6$c2FsdA==$HGwHY1nmJ6Uo5Uq+SSBMNJxxL6yWkwIY1w2ObrnYd3P3ocDaCbcL32o9mjRMrFqKPfq7EcNVU6hfTQE+MIIIgQ==\n").or_fail("writing");
    for (name, text) in [("empty", "# nothing\n"), ("bad", "topic read a/#/b\n")] {
        let acl = dir.join(name);
        std::fs::write(&acl, text).or_fail("writing");
        let config = iothub_test_util::loopback_config(&format!(
            "[auth]\nenabled = true\npassword_file = {:?}\nacl_file = {:?}\n",
            passwd.display().to_string(),
            acl.display().to_string()
        ));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().or_fail("a runtime");
        let message =
            runtime.block_on(iothub::Server::bind(&config)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("auth.acl_file"), "{name}: {message}");
    }
}
