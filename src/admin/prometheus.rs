//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4) of the server's
//! counters and of gauges read at scrape time. Counters end in `_total`; every family has its
//! `# HELP` and `# TYPE`; names and meanings are in `docs/metrics.md`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::Context;

/// Upper bounds of the queue-depth and inflight histograms over sessions.
const DEPTH_BUCKETS: [u64; 8] = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

/// Writes families into one text.
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                let _ = write!(self.text, "{key}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    fn counter_f64(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help);
        self.sample(name, &[], format!("{value:.6}"));
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, values: &[u64]) {
        self.family(name, "histogram", help);
        for bound in DEPTH_BUCKETS {
            let below = values.iter().filter(|v| **v <= bound).count();
            self.sample(&format!("{name}_bucket"), &[("le", &bound.to_string())], below);
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], values.len());
        self.sample(&format!("{name}_sum"), &[], values.iter().sum::<u64>());
        self.sample(&format!("{name}_count"), &[], values.len());
    }
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// What /proc says about this process: CPU seconds, resident bytes, open file descriptors.
fn process() -> Option<(f64, u64, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
    // USER_HZ is 100 on every Linux this runs on.
    #[allow(clippy::cast_precision_loss)]
    Some((ticks as f64 / 100.0, rss_kib * 1024, fds))
}

/// The whole exposition.
pub(crate) fn render(context: &Context) -> String {
    let m = &context.metrics;
    let mut out = Exposition { text: String::with_capacity(8 * 1024) };
    out.gauge("iothub_uptime_seconds", "Seconds since the server started.", context.uptime().as_secs());
    out.gauge(
        "iothub_connections",
        "Connections online (CONNACK sent, not yet closed).",
        get(&m.connections_current),
    );
    out.gauge("iothub_connections_maximum", "Most connections online at once.", get(&m.connections_maximum));
    out.counter(
        "iothub_connections_accepted_total",
        "Connections accepted by a listener.",
        get(&m.connections_accepted),
    );
    out.counter(
        "iothub_connections_refused_total",
        "Connections closed at accept because server.max_connections was reached.",
        get(&m.connections_refused),
    );
    out.family("iothub_connects_total", "counter", "CONNECTs accepted, by protocol version.");
    for (version, counter) in ["3.1", "3.1.1", "5.0"].iter().zip(&m.connects_by_version) {
        out.sample("iothub_connects_total", &[("protocol", version)], get(counter));
    }
    let listeners = m.listeners.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    out.family(
        "iothub_listener_connections",
        "gauge",
        "Connections open on each listener (accepted, not yet closed).",
    );
    for listener in &listeners {
        out.sample("iothub_listener_connections", &[("listener", &listener.name)], get(&listener.open));
    }
    out.family(
        "iothub_listener_connections_accepted_total",
        "counter",
        "Connections each listener accepted.",
    );
    for listener in &listeners {
        out.sample(
            "iothub_listener_connections_accepted_total",
            &[("listener", &listener.name)],
            get(&listener.accepted),
        );
    }
    out.counter(
        "iothub_connections_rate_limited_total",
        "Connections closed at accept for a listener's or a source address's connection rate.",
        get(&m.connections_rate_limited),
    );
    out.counter(
        "iothub_publish_rate_limited_total",
        "PUBLISH packets beyond a client's max_publish_rate or max_publish_bytes_rate.",
        get(&m.publish_rate_limited),
    );
    out.counter(
        "iothub_flapping_bans_total",
        "Client identifiers banned for flapping.",
        get(&m.flapping_bans),
    );
    out.counter(
        "iothub_proxy_header_errors_total",
        "Connections closed for a missing or malformed PROXY protocol header.",
        get(&m.proxy_header_errors),
    );
    out.counter(
        "iothub_protocol_errors_total",
        "Connections closed for a protocol violation or a malformed packet.",
        get(&m.protocol_errors),
    );
    let (online, offline) = context.registry.counts();
    out.family("iothub_sessions", "gauge", "Sessions held, by state.");
    out.sample("iothub_sessions", &[("state", "online")], online);
    out.sample("iothub_sessions", &[("state", "offline")], offline);
    out.counter(
        "iothub_sessions_expired_total",
        "Offline sessions discarded at their expiry.",
        get(&m.sessions_expired),
    );
    out.gauge(
        "iothub_subscriptions",
        "Subscriptions held, shared memberships included.",
        context.router.subscription_count(),
    );
    let (retained, retained_bytes) = context.router.retained_counts();
    out.gauge("iothub_retained_messages", "Retained messages stored.", retained);
    out.gauge("iothub_retained_bytes", "Payload bytes of the retained messages stored.", retained_bytes);
    out.family("iothub_messages_received_total", "counter", "PUBLISH packets received from clients, by QoS.");
    for (qos, counter) in m.messages_received.iter().enumerate() {
        out.sample("iothub_messages_received_total", &[("qos", &qos.to_string())], get(counter));
    }
    out.family("iothub_messages_sent_total", "counter", "PUBLISH packets sent to clients, by QoS.");
    for (qos, counter) in m.messages_sent.iter().enumerate() {
        out.sample("iothub_messages_sent_total", &[("qos", &qos.to_string())], get(counter));
    }
    out.counter(
        "iothub_payload_bytes_received_total",
        "Payload bytes of the PUBLISH packets received.",
        get(&m.payload_bytes_received),
    );
    out.counter(
        "iothub_payload_bytes_sent_total",
        "Payload bytes of the PUBLISH packets sent.",
        get(&m.payload_bytes_sent),
    );
    out.counter("iothub_bytes_received_total", "Bytes read from client connections.", get(&m.bytes_received));
    out.counter("iothub_bytes_sent_total", "Bytes written to client connections.", get(&m.bytes_sent));
    out.family("iothub_messages_dropped_total", "counter", "Deliveries and publications dropped, by reason.");
    for (reason, value) in [
        ("queue_full", get(&m.dropped_qos0) + get(&m.dropped_qos12)),
        ("expired", get(&m.dropped_expired)),
        ("too_large", get(&m.dropped_too_large)),
        ("acl_denied", get(&m.dropped_acl)),
        ("no_subscribers", get(&m.dropped_no_subscribers)),
    ] {
        out.sample("iothub_messages_dropped_total", &[("reason", reason)], value);
    }
    out.family("iothub_auth_total", "counter", "Password, token and hook logins, by outcome.");
    for (outcome, counter) in [
        ("accepted", &m.auth_accepted),
        ("bad_credentials", &m.auth_bad_credentials),
        ("not_authorized", &m.auth_not_authorized),
    ] {
        out.sample("iothub_auth_total", &[("outcome", outcome)], get(counter));
    }
    let clients = context.registry.clients();
    let depths: Vec<u64> =
        clients.iter().filter_map(|c| c.mailbox.as_ref()).map(|m| m.len() as u64).collect();
    let inflight: Vec<u64> =
        clients.iter().filter_map(|c| c.mailbox.as_ref()).map(|m| m.inflight() as u64).collect();
    out.histogram("iothub_session_queue_depth", "Messages queued per session.", &depths);
    out.histogram("iothub_session_inflight", "QoS 1/2 messages in flight per session.", &inflight);
    if let Some(store) = &context.store {
        let (commits, batch_ops, micros) = store.commit_stats();
        out.counter("iothub_storage_commits_total", "Durable store commits.", commits);
        out.counter("iothub_storage_committed_ops_total", "Ops committed to the durable store.", batch_ops);
        #[allow(clippy::cast_precision_loss)]
        let seconds = micros as f64 / 1e6;
        out.counter_f64(
            "iothub_storage_commit_seconds_total",
            "Seconds spent committing to the durable store.",
            seconds,
        );
    }
    if let Some(expiry) = context.tls.as_ref().and_then(|tls| tls.not_after()) {
        out.gauge(
            "iothub_tls_certificate_expiry_timestamp_seconds",
            "When the server certificate in force expires, in Unix seconds.",
            expiry,
        );
    }
    if let Some((cpu, rss, fds)) = process() {
        out.counter_f64("process_cpu_seconds_total", "User and system CPU time of the process.", cpu);
        out.gauge("process_resident_memory_bytes", "Resident memory of the process.", rss);
        out.gauge("process_open_fds", "Open file descriptors of the process.", fds);
    }
    out.text
}
