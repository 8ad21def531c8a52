//! The admin listener (`[admin] listen_address`, `token`): `/health`, `/ready`, `/metrics`
//! parsed by prometheus_client's strict parser with values that move with real traffic, every
//! `/api/v1/*` endpoint with and without the token, and `$SYS` topics checked against what the
//! test did.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use iothub_protocol::ReasonCode;
use iothub_test_util::v5_client::{connect_v5, message, options};
use iothub_test_util::{
    http, next_publish, publish_packet, raw_connected, require_tool, subscribe, OrFail, TestBroker, V5Client,
    PINGREQ, PINGRESP,
};
use serde_json::Value;

const TOKEN: &str = "s3cret-admin-token";

fn broker(extra: &str) -> TestBroker {
    let broker = TestBroker::with_config(&format!(
        "[admin]\nlisten_address = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n[sys]\ninterval_secs = 1\n{extra}"
    ));
    assert!(broker.admin.is_some(), "no admin listener");
    broker
}

fn api(broker: &TestBroker, method: &str, path: &str) -> (u16, Value) {
    let (status, body) = http(broker.admin.or_fail("the admin address"), method, path, Some(TOKEN));
    let value =
        if body.trim().is_empty() { Value::Null } else { serde_json::from_str(&body).or_fail("JSON") };
    (status, value)
}

/// Scrapes `/metrics`, parses it strictly, and returns each sample's value by name and labels
/// (`name{k=v,...}`, labels sorted).
fn scrape(broker: &TestBroker) -> HashMap<String, f64> {
    require_tool("python3");
    let (status, text) = http(broker.admin.or_fail("the admin address"), "GET", "/metrics", None);
    assert_eq!(status, 200);
    let mut parser = Command::new("python3")
        .arg("tests/admin/parse_metrics.py")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .or_fail("the exposition parser");
    parser.stdin.take().or_fail("its input").write_all(text.as_bytes()).or_fail("the exposition");
    let output = parser.wait_with_output().or_fail("the parser's result");
    assert!(output.status.success(), "{}\n{text}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let sample: Value = serde_json::from_str(line).or_fail("a sample");
            let mut labels: Vec<String> = sample["labels"]
                .as_object()
                .or_fail("labels")
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            labels.sort();
            let name = sample["name"].as_str().or_fail("a name");
            let key =
                if labels.is_empty() { name.to_owned() } else { format!("{name}{{{}}}", labels.join(",")) };
            (key, sample["value"].as_f64().or_fail("a value"))
        })
        .collect()
}

#[test]
fn health_ready_and_metrics_that_move_with_real_traffic() {
    let broker = broker("");
    let admin = broker.admin.or_fail("the admin address");
    assert_eq!(http(admin, "GET", "/health", None).0, 200);
    assert_eq!(http(admin, "GET", "/ready", None).0, 200);
    let before = scrape(&broker);
    let connected = |m: &HashMap<String, f64>| m.get("iothub_connections").copied().unwrap_or(-1.0);
    let mut clients: Vec<_> = (0..5).map(|i| raw_connected(broker.addr, &format!("metrics-{i}"))).collect();
    subscribe(&mut clients[0], 1, &[("m/#", 1)]);
    for id in 1..=3 {
        clients[1].send(&publish_packet("m/x", b"hello", 1, false, false, id));
        clients[1].expect(&[0x40, 2, 0, u8::try_from(id).or_fail("an id")]);
    }
    clients[1].send(&publish_packet("nobody/listens", b"q0", 0, false, false, 0));
    for _ in 0..3 {
        next_publish(&mut clients[0]);
    }
    clients[1].send(&PINGREQ);
    clients[1].expect(&PINGRESP);
    let after = scrape(&broker);
    assert_eq!(connected(&after) - connected(&before), 5.0, "iothub_connections rose by the 5 clients");
    let delta = |key: &str| after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0);
    assert_eq!(delta("iothub_messages_received_total{qos=1}"), 3.0);
    assert_eq!(delta("iothub_messages_received_total{qos=0}"), 1.0);
    assert_eq!(delta("iothub_messages_sent_total{qos=1}"), 3.0);
    assert_eq!(delta("iothub_messages_dropped_total{reason=no_subscribers}"), 1.0);
    assert!(delta("iothub_bytes_received_total") > 0.0);
    assert_eq!(after.get("iothub_subscriptions").copied(), Some(1.0));
    assert!(delta("iothub_listener_connections_accepted_total{listener=tcp://127.0.0.1:0}") >= 5.0);
    assert!(delta("iothub_listener_connections{listener=tcp://127.0.0.1:0}") >= 5.0);
    assert!(after.get("process_resident_memory_bytes").copied().unwrap_or(0.0) > 0.0);
    assert!(after.get("process_open_fds").copied().unwrap_or(0.0) >= 5.0);
    drop(clients);
}

#[test]
fn the_api_needs_the_token() {
    let broker = broker("");
    let admin = broker.admin.or_fail("the admin address");
    assert_eq!(http(admin, "GET", "/api/v1/clients", None).0, 401);
    assert_eq!(http(admin, "GET", "/api/v1/clients", Some("wrong")).0, 401);
    assert_eq!(http(admin, "GET", "/api/v1/clients", Some(TOKEN)).0, 200);
    assert_eq!(http(admin, "GET", "/api/v1/stats", None).0, 401);
    // The open endpoints need none.
    assert_eq!(http(admin, "GET", "/metrics", None).0, 200);
    let untokened = TestBroker::with_config("[admin]\nlisten_address = \"127.0.0.1:0\"\n");
    let admin = untokened.admin.or_fail("the admin address");
    assert_eq!(http(admin, "GET", "/api/v1/clients", Some(TOKEN)).0, 403, "no token configured: no API");
    assert_eq!(http(admin, "GET", "/health", None).0, 200);
}

#[test]
fn clients_subscriptions_and_a_kick_with_0x98() {
    let broker = broker("");
    let mut connect = connect_v5("admin-v5", false, 600);
    connect.username = None;
    let (mut client, _) = V5Client::connect_with(broker.addr, connect);
    client.subscribe(1, &[("a/+", options(1)), ("$share/g/b/#", options(0))], Some(7));
    let (status, clients) = api(&broker, "GET", "/api/v1/clients");
    assert_eq!(status, 200);
    let entry = clients
        .as_array()
        .or_fail("a list")
        .iter()
        .find(|c| c["client_id"] == "admin-v5")
        .or_fail("the client");
    assert_eq!(entry["connected"], true);
    assert_eq!(entry["protocol_version"], 5);
    assert_eq!(entry["subscriptions"], 2);
    assert!(entry["remote_address"].as_str().or_fail("an address").starts_with("127.0.0.1:"));
    let (status, one) = api(&broker, "GET", "/api/v1/clients/admin-v5");
    assert_eq!((status, &one["client_id"]), (200, &Value::from("admin-v5")));
    assert_eq!(api(&broker, "GET", "/api/v1/clients/nobody").0, 404);
    let (_, subscriptions) = api(&broker, "GET", "/api/v1/subscriptions?client=admin-v5");
    let mut filters: Vec<&str> =
        subscriptions.as_array().or_fail("a list").iter().filter_map(|s| s["filter"].as_str()).collect();
    filters.sort_unstable();
    assert_eq!(filters, ["$share/g/b/#", "a/+"]);
    let a = subscriptions.as_array().or_fail("a list").iter().find(|s| s["filter"] == "a/+").or_fail("a/+");
    assert_eq!((a["qos"].as_u64(), a["subscription_identifier"].as_u64()), (Some(1), Some(7)));

    // DELETE: the 5.0 client is told why, and its persistent session stays...
    let (status, _) = api(&broker, "DELETE", "/api/v1/clients/admin-v5");
    assert_eq!(status, 200);
    assert_eq!(client.expect_disconnect(), ReasonCode::AdministrativeAction);
    let (status, offline) = api(&broker, "GET", "/api/v1/clients/admin-v5");
    assert_eq!((status, &offline["connected"]), (200, &Value::Bool(false)));
    // ...unless ?session=true.
    let (status, _) = api(&broker, "DELETE", "/api/v1/clients/admin-v5?session=true");
    assert_eq!(status, 200);
    assert_eq!(api(&broker, "GET", "/api/v1/clients/admin-v5").0, 404);
    let (_, connack) = V5Client::connect_with(broker.addr, connect_v5("admin-v5", false, 600));
    assert!(!connack.session_present, "the session was discarded");
}

#[test]
fn retained_messages_are_listed_and_deleted() {
    let broker = broker("");
    let mut publisher = V5Client::connect(broker.addr, "retainer");
    publisher.publish(message("r/one", b"first", 1, true, 1));
    publisher.publish(message("r/two", b"second", 1, true, 2));
    let (status, retained) = api(&broker, "GET", "/api/v1/retained?topic=r/%23");
    assert_eq!(status, 200);
    assert_eq!(retained.as_array().map(Vec::len), Some(2));
    assert_eq!(api(&broker, "DELETE", "/api/v1/retained?topic=r/one").0, 204);
    assert_eq!(api(&broker, "DELETE", "/api/v1/retained?topic=r/one").0, 404);
    let (_, retained) = api(&broker, "GET", "/api/v1/retained?topic=r/%23");
    assert_eq!(retained[0]["topic"], "r/two");
    assert_eq!(retained[0]["payload"], "second");
    let (status, stats) = api(&broker, "GET", "/api/v1/stats");
    assert_eq!(status, 200);
    let count = |stats: &Value| stats["retained"]["count"].as_u64().or_fail("a count");
    let before = count(&stats);
    assert_eq!(api(&broker, "DELETE", "/api/v1/retained?topic=r/two").0, 204);
    assert_eq!(count(&api(&broker, "GET", "/api/v1/stats").1), before - 1);
}

/// The next `$SYS` value of `topic` published after the subscription (not the retained one
/// it found) that satisfies `wanted`.
fn sys_value(client: &mut iothub_test_util::RawClient, topic: &str, wanted: impl Fn(u64) -> bool) -> u64 {
    loop {
        let incoming = next_publish(client);
        if incoming.topic == topic && !incoming.retain {
            let value: u64 = incoming.text().parse().or_fail("a number");
            if wanted(value) {
                return value;
            }
        }
    }
}

// [MQTT-4.7.2-1]: `#` never matches `$SYS`; `$SYS` counts what the clients did.
#[test]
fn sys_topics_count_what_clients_did_and_wildcards_do_not_reach_them() {
    let broker = broker("");
    let mut everything = raw_connected(broker.addr, "everything");
    subscribe(&mut everything, 1, &[("#", 0)]);
    let mut sys = raw_connected(broker.addr, "sys-watcher");
    subscribe(&mut sys, 1, &[("$SYS/broker/clients/connected", 0)]);
    let base = sys_value(&mut sys, "$SYS/broker/clients/connected", |_| true);
    let _more: Vec<_> = (0..4).map(|i| raw_connected(broker.addr, &format!("sys-{i}"))).collect();
    let seen = sys_value(&mut sys, "$SYS/broker/clients/connected", |v| v >= base + 4);
    assert_eq!(seen, base + 4, "clients/connected rose by the 4 clients");
    // A client cannot publish into $SYS, and `#` received none of it.
    let mut sneaky = raw_connected(broker.addr, "sneaky");
    sneaky.send(&publish_packet("$SYS/broker/version", b"fake", 0, true, false, 0));
    everything.send(&PINGREQ);
    everything.expect(&PINGRESP);
    let mut version = raw_connected(broker.addr, "version-reader");
    subscribe(&mut version, 1, &[("$SYS/broker/version", 0)]);
    let got = next_publish(&mut version);
    assert!(got.text().starts_with("iothub "), "{}", got.text());
}

/// The family of a sample: its name without the histogram suffixes.
fn family(sample: &str) -> &str {
    let name = sample.split('{').next().unwrap_or(sample);
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name)
}

#[test]
fn every_metric_is_documented_and_the_dashboard_uses_only_documented_ones() {
    let broker = broker("[storage]\nbackend = \"memory\"\n");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/metrics.md")).or_fail("docs/metrics.md");
    let documented = |name: &str| doc.contains(&format!("`{name}`"));
    for sample in scrape(&broker).keys() {
        assert!(documented(family(sample)), "{} is not in docs/metrics.md", family(sample));
    }
    let dashboard = std::fs::read_to_string(root.join("deploy/grafana/iothub.json")).or_fail("the dashboard");
    let _: Value = serde_json::from_str(&dashboard).or_fail("the dashboard is JSON");
    let mut used = 0;
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("iothub_") || word.starts_with("process_") {
            assert!(documented(family(word)), "the dashboard uses {word}, which docs/metrics.md lacks");
            used += 1;
        }
    }
    assert!(used >= 10, "the dashboard uses {used} metrics");
}

#[test]
fn the_admin_listener_speaks_https_with_the_tls_files_when_asked() {
    use std::io::Read;
    let pki = iothub_test_util::TestPki::new("admin-tls");
    let broker = TestBroker::with_config(&format!(
        "[admin]\nlisten_address = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\ntls = true\n{}",
        pki.tls_toml("")
    ));
    let admin = broker.admin.or_fail("the admin address");
    let mut client =
        iothub_test_util::TlsClient::connect(admin, pki.client_config(None)).or_fail("a TLS handshake");
    client.send(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-admin-token\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = client.stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("uptime_secs"), "{response}");
    // Plain HTTP on it gets nothing.
    let (plain, _) =
        std::panic::catch_unwind(|| http(admin, "GET", "/health", None)).unwrap_or((0, String::new()));
    assert_ne!(plain, 200);
}
