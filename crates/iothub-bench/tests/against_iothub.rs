//! Runs every scenario at tiny scale (about a second each) against a real IoTHub broker started
//! in this process on `127.0.0.1:0`, and checks that the results are sane: deliveries happen,
//! nothing is lost at QoS 1 and 2 under the closed loop, and the JSON line is one flat object
//! with the documented keys. The scenarios run over MQTT 3.1.1; the last tests run them over 5.0
//! (`--mqtt 5`), and over TLS (`--tls-ca`).
//!
//! The engine is called as a library; no process is spawned. Each test has a broker of its own.

// The helpers expect: a failure there is a test failure with a message.
#![allow(clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Parser;
use iothub::{ConfigBuilder, Server};
use iothub_bench::client::Connection;
use iothub_bench::wire::{self, PacketIds, PublishEncoder};
use iothub_bench::{Cli, Report, Value};
use iothub_protocol::{Packet, ProtocolVersion, QoS, ReasonCode};
use iothub_test_util::pki::TestPki;
use tokio_util::sync::CancellationToken;

/// Keys of every message scenario's JSON line, in order.
const PUBSUB_KEYS: &[&str] = &[
    "scenario",
    "host",
    "port",
    "mqtt_version",
    "tls",
    "qos",
    "payload_bytes",
    "publishers",
    "subscribers",
    "deliveries_per_message",
    "rate_limit",
    "inflight",
    "closed_loop",
    "duration_s",
    "warmup_s",
    "window_s",
    "published",
    "published_in_window",
    "publish_rate",
    "delivered_in_window",
    "delivered_rate",
    "expected_deliveries",
    "received",
    "lost",
    "loss_pct",
    "acknowledged",
    "refused",
    "acknowledged_deliveries",
    "acknowledged_lost",
    "acknowledged_loss_pct",
    "closed_loop_stalls",
    "latency_samples",
    "latency_p50_us",
    "latency_p99_us",
    "latency_p999_us",
    "latency_max_us",
    "latency_mean_us",
    "broker_cpu_s",
    "broker_cpu_s_per_million",
    "broker_rss_start_kib",
    "broker_rss_end_kib",
    "errors",
    "first_error",
];

/// Keys of the `conn` JSON line, in order.
const CONN_KEYS: &[&str] = &[
    "scenario",
    "host",
    "port",
    "mqtt_version",
    "tls",
    "connections",
    "rate_limit",
    "concurrency",
    "source_ips",
    "hold_s",
    "attempted",
    "connected",
    "failed",
    "failed_tcp",
    "failed_timeout",
    "failed_refused",
    "failed_other",
    "dropped_during_hold",
    "connect_phase_s",
    "connect_rate",
    "handshake_p50_ms",
    "handshake_p99_ms",
    "handshake_max_ms",
    "handshake_mean_ms",
    "broker_cpu_s",
    "broker_rss_before_kib",
    "broker_rss_after_kib",
    "broker_rss_per_conn_bytes",
    "first_error",
];

/// A broker running in a thread of its own; stopped when dropped.
struct Broker {
    addr: SocketAddr,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Broker {
    fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker with `settings` (`key=value`, as `--set` takes them) on top of the defaults.
    fn start_with(settings: &[&str]) -> Broker {
        Broker::listening("tcp://127.0.0.1:0", settings)
    }

    /// A broker with a `tls://` listener on the certificate and key of `pki`.
    fn start_tls(pki: &TestPki) -> Broker {
        let cert = format!("tls.cert_file={}", pki.cert_file.display());
        let key = format!("tls.key_file={}", pki.key_file.display());
        Broker::listening("tls://127.0.0.1:0", &[&cert, &key])
    }

    /// A broker on the one listener `url`, with `settings` on top of the defaults.
    fn listening(url: &str, settings: &[&str]) -> Broker {
        let mut builder =
            ConfigBuilder::new().set_flag("--listen", &format!("server.listen_addresses={url}"));
        for setting in settings {
            builder = builder.and_then(|b| b.set_flag("--set", setting));
        }
        let config = builder.and_then(ConfigBuilder::build).expect("a valid test configuration");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("broker runtime");
            runtime.block_on(async move {
                let server = Server::bind(&config).await.expect("binding 127.0.0.1:0");
                tx.send(server.local_addrs()[0]).expect("the test waits for the address");
                server.run(token).await;
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).expect("the broker did not start");
        Broker { addr, shutdown, thread: Some(thread) }
    }

    /// Runs `iothub-bench <args> --port <this broker>` and returns the report.
    fn bench(&self, args: &str) -> Report {
        let port = self.addr.port().to_string();
        let argv = std::iter::once("iothub-bench").chain(args.split_whitespace()).chain(["--port", &port]);
        let cli = Cli::try_parse_from(argv).expect("valid arguments");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("bench runtime");
        runtime.block_on(iothub_bench::run(&cli.command, false)).expect("the run completes")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Checks that the JSON line parses as a flat object with exactly `keys`, in order.
fn assert_flat_json(report: &Report, keys: &[&str]) {
    let line = report.json_line();
    assert!(line.starts_with(&format!("{{\"scenario\":\"{}\"", report.scenario)), "{line}");
    assert!(!line.contains('\n'));
    let value: serde_json::Value = serde_json::from_str(&line).expect("the JSON line parses");
    let object = value.as_object().expect("the JSON line is an object");
    let found: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = keys.to_vec();
    expected.sort_unstable();
    let mut sorted = found.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "keys of {line}");
    for (key, value) in object {
        assert!(!value.is_object() && !value.is_array(), "{key} is nested in {line}");
    }
}

fn number(report: &Report, key: &str) -> f64 {
    report.number(key).unwrap_or_else(|| panic!("{key} missing or null in {}", report.json_line()))
}

/// Common checks of a closed-loop QoS 1/2 run: traffic flowed, nothing was lost or failed.
fn assert_lossless(report: &Report) {
    let line = report.json_line();
    assert!(number(report, "delivered_in_window") > 0.0, "{line}");
    assert!(number(report, "published") > 0.0, "{line}");
    assert_eq!(number(report, "lost"), 0.0, "{line}");
    assert_eq!(number(report, "errors"), 0.0, "{line}");
    assert_eq!(number(report, "closed_loop_stalls"), 0.0, "{line}");
    assert_eq!(
        number(report, "received"),
        number(report, "published") * number(report, "deliveries_per_message"),
        "{line}"
    );
    assert_eq!(number(report, "acknowledged"), number(report, "published"), "{line}");
    assert_eq!(number(report, "refused"), 0.0, "{line}");
    assert_eq!(number(report, "acknowledged_lost"), 0.0, "{line}");
    assert_eq!(number(report, "acknowledged_loss_pct"), 0.0, "{line}");
    assert_eq!(
        number(report, "acknowledged_deliveries"),
        number(report, "expected_deliveries"),
        "every publication was acknowledged, so every delivery is owed: {line}"
    );
    assert!(number(report, "latency_samples") > 0.0, "{line}");
    let percentiles =
        ["latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us"].map(|k| number(report, k));
    assert!(percentiles.windows(2).all(|w| w[0] <= w[1]), "{line}");
    assert_flat_json(report, PUBSUB_KEYS);
}

#[test]
fn pairs_at_qos_1_under_the_closed_loop_lose_nothing() {
    let broker = Broker::start();
    let pid = std::process::id();
    let report = broker.bench(&format!(
        "pairs --pairs 2 --qos 1 --closed-loop 100 --duration 1 --warmup 0.2 --broker-pid {pid}"
    ));
    assert_lossless(&report);
    assert!(number(&report, "broker_cpu_s") >= 0.0);
    assert!(number(&report, "broker_rss_end_kib") > 0.0);
}

#[test]
fn fanout_at_qos_1_delivers_every_message_to_every_subscriber() {
    let broker = Broker::start();
    let report = broker.bench("fanout --subscribers 3 --qos 1 --closed-loop 100 --duration 1 --warmup 0.2");
    assert_eq!(number(&report, "deliveries_per_message"), 3.0);
    assert_lossless(&report);
}

#[test]
fn fanin_at_qos_2_completes_every_exchange() {
    let broker = Broker::start();
    let report = broker.bench("fanin --publishers 2 --qos 2 --closed-loop 100 --duration 1 --warmup 0.2");
    assert_eq!(number(&report, "publishers"), 2.0);
    assert_lossless(&report);
}

#[test]
fn qos_0_reports_no_acknowledged_loss() {
    let broker = Broker::start();
    let report = broker.bench("pairs --pairs 2 --qos 0 --closed-loop 100 --duration 1 --warmup 0.2");
    let line = report.json_line();
    assert!(number(&report, "delivered_in_window") > 0.0, "{line}");
    for key in ["acknowledged_deliveries", "acknowledged_lost", "acknowledged_loss_pct"] {
        assert_eq!(report.get(key), Some(&Value::Null), "{key} in {line}");
    }
    assert_flat_json(&report, PUBSUB_KEYS);
}

/// Open loop at QoS 1 against a subscriber queue of 10: the broker slows the publishers'
/// PUBACKs instead of dropping, so whatever it acknowledged arrives.
#[test]
fn open_loop_fan_in_at_qos_1_loses_no_acknowledged_message() {
    let broker = Broker::start_with(&["server.max_queued_messages=10"]);
    let report = broker.bench("fanin --publishers 4 --qos 1 --duration 1 --warmup 0.2");
    let line = report.json_line();
    assert!(number(&report, "acknowledged") > 0.0, "{line}");
    assert_eq!(number(&report, "acknowledged_lost"), 0.0, "{line}");
    assert_eq!(number(&report, "errors"), 0.0, "{line}");
    assert_flat_json(&report, PUBSUB_KEYS);
}

#[test]
fn latency_holds_the_requested_rate() {
    let broker = Broker::start();
    let report = broker.bench("latency --rate 200 --pairs 2 --qos 1 --duration 1.5 --warmup 0.5");
    let line = report.json_line();
    let rate = number(&report, "delivered_rate");
    assert!((100.0..=300.0).contains(&rate), "{line}");
    assert_eq!(number(&report, "lost"), 0.0, "{line}");
    assert_eq!(number(&report, "acknowledged_lost"), 0.0, "{line}");
    assert!(number(&report, "latency_p50_us") <= number(&report, "latency_p99_us"), "{line}");
    assert_flat_json(&report, PUBSUB_KEYS);
}

#[test]
fn conn_opens_holds_and_closes_every_connection() {
    let broker = Broker::start();
    let report = broker.bench("conn -c 20 --rate 0 --hold 0.3 --duration 2 --source-ips 2");
    let line = report.json_line();
    assert_eq!(number(&report, "connected"), 20.0, "{line}");
    assert_eq!(number(&report, "failed"), 0.0, "{line}");
    assert_eq!(number(&report, "dropped_during_hold"), 0.0, "{line}");
    assert!(number(&report, "handshake_p50_ms") <= number(&report, "handshake_max_ms"), "{line}");
    assert_flat_json(&report, CONN_KEYS);
}

#[test]
fn runs_over_plain_tcp_report_no_tls() {
    let broker = Broker::start();
    let report = broker.bench("conn -c 2 --rate 0 --hold 0 --duration 2");
    assert_eq!(report.get("tls"), Some(&Value::Null), "{}", report.json_line());
}

#[test]
fn conn_over_tls_opens_every_connection() {
    let pki = TestPki::new("bench-conn");
    let broker = Broker::start_tls(&pki);
    let ca = pki.ca_file.display();
    let report = broker.bench(&format!("conn -c 20 --rate 0 --hold 0.3 --duration 5 --tls-ca {ca}"));
    let line = report.json_line();
    assert_eq!(number(&report, "connected"), 20.0, "{line}");
    assert_eq!(number(&report, "failed"), 0.0, "{line}");
    assert_eq!(number(&report, "dropped_during_hold"), 0.0, "{line}");
    assert!(matches!(report.get("tls"), Some(Value::Text(t)) if t.starts_with("TLSv1_3 ")), "{line}");
    assert_flat_json(&report, CONN_KEYS);
}

/// The message scenarios over TLS, QoS 1 and 2 under the closed loop: nothing lost, no stall,
/// with an IP address as the server name.
#[test]
fn message_scenarios_over_tls_lose_nothing() {
    let pki = TestPki::new("bench-pubsub");
    let broker = Broker::start_tls(&pki);
    let ca = pki.ca_file.display();
    for (shape, qos) in [("fanin --publishers 3", 1), ("pairs --pairs 2", 2), ("fanout --subscribers 3", 1)] {
        let report = broker.bench(&format!(
            "{shape} --qos {qos} --closed-loop 100 --duration 1 --warmup 0.2 --tls-ca {ca} --tls-server-name 127.0.0.1"
        ));
        assert_lossless(&report);
    }
}

#[test]
fn a_server_name_the_certificate_lacks_is_refused() {
    let pki = TestPki::new("bench-name");
    let broker = Broker::start_tls(&pki);
    let ca = pki.ca_file.display();
    let argv =
        format!("conn -c 1 --rate 0 --hold 0 --duration 2 --tls-ca {ca} --tls-server-name other.example");
    let report = broker.bench(&argv);
    let line = report.json_line();
    assert_eq!(number(&report, "connected"), 0.0, "{line}");
    assert_eq!(number(&report, "failed_other"), 1.0, "{line}");
    assert!(line.contains("TLS handshake"), "{line}");
}

fn version_of(report: &Report) -> Option<&Value> {
    report.get("mqtt_version")
}

#[test]
fn runs_speak_3_1_1_unless_told_otherwise() {
    let broker = Broker::start();
    let report = broker.bench("pairs --pairs 1 --qos 0 --closed-loop 100 --duration 0.5 --warmup 0.1");
    assert_eq!(version_of(&report), Some(&Value::Text("3.1.1".to_owned())), "{}", report.json_line());
}

/// The same closed-loop QoS 1 run as over 3.1.1, over 5.0: every acknowledgement is a success
/// and nothing is lost.
#[test]
fn pairs_at_qos_1_over_mqtt_5_lose_nothing() {
    let broker = Broker::start();
    let pid = std::process::id();
    let report = broker.bench(&format!(
        "pairs --mqtt 5 --pairs 2 --qos 1 --closed-loop 100 --duration 1 --warmup 0.2 --broker-pid {pid}"
    ));
    assert_eq!(version_of(&report), Some(&Value::Text("5.0".to_owned())), "{}", report.json_line());
    assert_lossless(&report);
}

/// A 5.0 broker's Receive Maximum caps the publishers' window: with a Receive Maximum of 5 and
/// `--inflight 20` at QoS 2, a publisher that ignored it would have more than 5 messages awaiting
/// PUBREL and be disconnected (Receive Maximum exceeded).
#[test]
fn fanin_at_qos_2_over_mqtt_5_keeps_within_the_brokers_receive_maximum() {
    let broker = Broker::start_with(&["server.receive_maximum=5"]);
    let report = broker.bench(
        "fanin --mqtt 5 --publishers 2 --qos 2 --inflight 20 --closed-loop 100 --duration 1 --warmup 0.2",
    );
    assert_lossless(&report);
}

#[test]
fn conn_over_mqtt_5_opens_every_connection() {
    let broker = Broker::start();
    let report = broker.bench("conn --mqtt 5 -c 10 --rate 0 --hold 0.2 --duration 2");
    let line = report.json_line();
    assert_eq!(version_of(&report), Some(&Value::Text("5.0".to_owned())), "{line}");
    assert_eq!(number(&report, "connected"), 10.0, "{line}");
    assert_eq!(number(&report, "failed"), 0.0, "{line}");
    assert_flat_json(&report, CONN_KEYS);
}

/// IoTHub answers a 5.0 QoS 1 PUBLISH that matches no subscription with PUBACK reason 0x10, which
/// the bench counts as a success; over 3.1.1 the same PUBACK says Success.
#[test]
fn a_puback_for_no_matching_subscribers_is_a_success() {
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for (version, expected) in [
            (ProtocolVersion::V5, ReasonCode::NoMatchingSubscribers),
            (ProtocolVersion::V311, ReasonCode::Success),
        ] {
            let mut connection =
                Connection::establish(broker.addr, None, None, "nobodylistens", 1024, version)
                    .await
                    .expect("connected");
            let mut encoder = PublishEncoder::new("iothub-bench/nobody", QoS::AtLeastOnce, 16, version);
            let mut buf = bytes::BytesMut::new();
            let id = PacketIds::new().next_id();
            encoder.put(&mut buf, Some(id), 0, 0).expect("encoded");
            tokio::io::AsyncWriteExt::write_all(&mut connection.writer, &buf).await.expect("sent");
            let Packet::PubAck(ack) = connection.receive().await.expect("an answer") else {
                panic!("expected PUBACK");
            };
            assert_eq!((ack.packet_id, ack.reason_code), (id, expected));
            assert!(wire::accepted(ack.reason_code));
            connection.close().await;
        }
    });
}
