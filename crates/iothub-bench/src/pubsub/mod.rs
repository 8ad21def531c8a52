//! Message runs (`fanin`, `fanout`, `pairs`, `latency`): set up every client, publish for the
//! duration, watch the measurement window, drain, and report.
//!
//! Timeline: all subscribers connect and subscribe, then all publishers connect; publishing
//! starts at `Schedule::start`; the first `warmup` is left out; the window closes at the end of
//! the duration, when publishers stop; then up to `DRAIN` passes for acknowledgements and
//! deliveries before loss is counted. Delivered and published rates count only what happened in
//! the window; loss counts the whole run. At QoS 1 and 2, loss is also counted for acknowledged
//! messages alone (see `ledger`).

pub mod ledger;
pub mod plan;
pub mod publisher;
pub mod shared;
pub mod subscriber;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::client::{self, source_address, Connection};
use crate::error::BenchError;
use crate::probe::{Probe, Sample};
use crate::report::Report;
use crate::stats::Histogram;
use crate::tls::TlsClient;
use crate::wire::PublishEncoder;
use ledger::{AckTally, Ledger};
use plan::{Endpoint, Topology};
pub use plan::{PubSubPlan, Shape};
use publisher::{Publisher, PublisherConfig};
use shared::{Flow, LatencySink, Schedule, Totals};
use subscriber::{Subscriber, Tracking};

/// Most connections being set up at once, so a large run does not overflow the broker's accept
/// backlog.
const SETUP_CONCURRENCY: usize = 256;

/// Buffer memory shared out over the clients of one kind.
const BUFFER_BUDGET: usize = 32 * 1024 * 1024;

/// Counter readings at the edges of the measurement window.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// Publications encoded so far.
    published: u64,
    /// Deliveries so far.
    received: u64,
    /// The broker's counters, if it is watched.
    broker: Option<Sample>,
}

/// Runs `plan` against its broker and reports. Progress lines go to stderr when `progress` is set.
pub async fn run(plan: &PubSubPlan, progress: bool) -> Result<Report, BenchError> {
    let broker = client::resolve(&plan.target).await?;
    let tls = TlsClient::from_target(&plan.target)?;
    let probe = plan.target.broker_pid.map(Probe::new).transpose()?;
    let topology = Topology::new(plan.shape, &plan::run_tag());
    let flows: Vec<Arc<Flow>> = topology.flow_sizes.iter().map(|&n| Arc::new(Flow::new(n))).collect();
    let totals = Arc::new(Totals::default());
    let histogram = Arc::new(Mutex::new(Histogram::new()));
    let ledger = Arc::new(Ledger::new(&topology));
    let track = plan.qos != iothub_protocol::QoS::AtMostOnce;
    let source_ips = plan.target.source_ips;
    let sub_chunk = buffer_share(topology.subscribers.len());
    let version = plan.target.version;
    let subscriber_connections = connect_all(
        (broker, tls.as_ref()),
        (source_ips, 0),
        version,
        &topology.subscribers,
        Some(plan.qos),
        sub_chunk,
    )
    .await?;
    let publisher_connections = connect_all(
        (broker, tls.as_ref()),
        (source_ips, topology.subscribers.len()),
        version,
        &topology.publishers,
        None,
        4096,
    )
    .await?;

    let schedule = Schedule::starting_now(plan.warmup, plan.target.duration);
    let (stop, stopped) = watch::channel(false);
    let mut subscribers = Vec::with_capacity(subscriber_connections.len());
    for (index, (connection, endpoint)) in
        subscriber_connections.into_iter().zip(&topology.subscribers).enumerate()
    {
        let mut subscriber = Subscriber::new(
            connection,
            Arc::clone(&flows[endpoint.flow]),
            endpoint.slot,
            Arc::clone(&totals),
            schedule,
            LatencySink::new(Arc::clone(&histogram)),
            plan.closed_loop.is_some(),
        );
        if track {
            subscriber = subscriber.with_tracking(Tracking {
                index,
                ledger: Arc::clone(&ledger),
                sources: ledger.sources(endpoint.flow),
            });
        }
        subscribers.push(tokio::spawn(subscriber.run(stopped.clone())));
    }
    let publishers =
        spawn_publishers(plan, &topology, publisher_connections, (&flows, &totals, &ledger), schedule);

    let (opened, closed) = observe(&schedule, &totals, probe.as_ref(), progress).await;
    drain(publishers, &schedule, &totals, topology.fan).await;
    let _ = stop.send(true);
    for handle in subscribers {
        let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
    }
    let latencies = histogram.lock().map(|h| h.clone()).unwrap_or_default();
    let acks = track.then(|| ledger.tally(&topology));
    let tls = tls.as_deref().and_then(TlsClient::negotiated);
    Ok(report(plan, &topology, &schedule, (opened, closed), (&totals, acks), &latencies, tls))
}

/// Per-client buffer size: an even share of `BUFFER_BUDGET`, between 4 and 64 KiB.
fn buffer_share(clients: usize) -> usize {
    (BUFFER_BUDGET / clients.max(1)).clamp(4096, 64 * 1024)
}

/// Connects (over TLS with `tls`, and, with `subscribe`, subscribes) every endpoint in
/// `version`, `SETUP_CONCURRENCY`
/// at a time, taking source addresses from `source_ips` loopback addresses from index
/// `source_offset` on. The first failure ends the set-up and is returned; connections made so
/// far are dropped.
async fn connect_all(
    (broker, tls): (std::net::SocketAddr, Option<&Arc<TlsClient>>),
    (source_ips, source_offset): (u32, usize),
    version: iothub_protocol::ProtocolVersion,
    endpoints: &[Endpoint],
    subscribe: Option<iothub_protocol::QoS>,
    read_chunk: usize,
) -> Result<Vec<Connection>, BenchError> {
    let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for (index, endpoint) in endpoints.iter().enumerate() {
        let permits = Arc::clone(&permits);
        let client_id = endpoint.client_id.clone();
        let filter = endpoint.topic.clone();
        let source = source_address(source_offset + index, source_ips);
        let tls = tls.cloned();
        tasks.spawn(async move {
            let _permit =
                permits.acquire_owned().await.map_err(|_| BenchError::Broker("set-up cancelled".into()))?;
            let mut connection =
                Connection::establish(broker, source, tls.as_deref(), &client_id, read_chunk, version)
                    .await?;
            if let Some(qos) = subscribe {
                connection.subscribe(&filter, qos).await?;
            }
            Ok::<_, BenchError>((index, connection))
        });
    }
    let mut slots: Vec<Option<Connection>> = (0..endpoints.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, connection) =
            joined.map_err(|e| BenchError::Broker(format!("set-up task failed: {e}")))??;
        slots[index] = Some(connection);
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Starts every publisher, the rate cap shared evenly and their first messages staggered.
fn spawn_publishers(
    plan: &PubSubPlan,
    topology: &Topology,
    connections: Vec<Connection>,
    (flows, totals, ledger): (&[Arc<Flow>], &Arc<Totals>, &Arc<Ledger>),
    schedule: Schedule,
) -> Vec<JoinHandle<()>> {
    #[allow(clippy::cast_precision_loss)] // Rates and client counts far below 2^53.
    let (aggregate, count) = (plan.rate as f64, topology.publishers.len().max(1) as f64);
    let mut handles = Vec::with_capacity(connections.len());
    for (index, (connection, endpoint)) in connections.into_iter().zip(&topology.publishers).enumerate() {
        let encoder = PublishEncoder::new(&endpoint.topic, plan.qos, plan.payload, connection.version);
        let batch_bytes = buffer_share(topology.publishers.len()).max(2 * encoder.packet_size());
        #[allow(clippy::cast_precision_loss)] // An index far below 2^53.
        let phase =
            if plan.rate > 0 { Duration::from_secs_f64(index as f64 / aggregate) } else { Duration::ZERO };
        // A 5.0 broker's Receive Maximum caps the window [MQTT-3.3.4-7].
        let inflight = plan.inflight.min(connection.send_quota.unwrap_or(u16::MAX));
        let config = PublisherConfig {
            encoder,
            qos: plan.qos,
            rate: aggregate / count,
            phase,
            inflight: usize::from(inflight),
            closed_loop: plan.closed_loop,
            batch_bytes,
        };
        let publisher = Publisher::new(
            connection,
            config,
            Arc::clone(&flows[endpoint.flow]),
            Arc::clone(totals),
            schedule,
            (index, Arc::clone(ledger)),
        );
        handles.push(tokio::spawn(publisher.run()));
    }
    handles
}

/// Waits out the run, printing progress each second, and reads the counters when the window
/// opens and when it closes.
async fn observe(
    schedule: &Schedule,
    totals: &Totals,
    probe: Option<&Probe>,
    progress: bool,
) -> (Reading, Reading) {
    let read = || Reading {
        published: totals.published.load(Ordering::Relaxed),
        received: totals.received.load(Ordering::Relaxed),
        broker: probe.and_then(|p| p.sample().ok()),
    };
    let mut opened = None;
    let mut next_tick = schedule.start + Duration::from_secs(1);
    let mut last = (schedule.start, 0u64, 0u64);
    loop {
        let edge = if opened.is_none() { schedule.warmup_end } else { schedule.run_end };
        tokio::time::sleep_until(next_tick.min(edge).into()).await;
        let now = Instant::now();
        if opened.is_none() && now >= schedule.warmup_end {
            opened = Some(read());
        }
        if now >= schedule.run_end {
            return (opened.unwrap_or_default(), read());
        }
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            let published = totals.published.load(Ordering::Relaxed);
            let received = totals.received.load(Ordering::Relaxed);
            if progress {
                let seconds = now.duration_since(last.0).as_secs_f64();
                eprintln!(
                    "[{:>5.1}s] delivered {:>10.0} msg/s  published {:>10.0} msg/s  errors {}",
                    now.duration_since(schedule.start).as_secs_f64(),
                    per_second(received - last.2, seconds),
                    per_second(published - last.1, seconds),
                    totals.errors.load(Ordering::Relaxed),
                );
            }
            last = (now, published, received);
        }
    }
}

/// Waits for the publishers to finish and for the deliveries they should cause, at most until
/// the end of the drain period.
async fn drain(publishers: Vec<JoinHandle<()>>, schedule: &Schedule, totals: &Totals, fan: u64) {
    let give_up = schedule.drain_end + Duration::from_secs(1);
    for handle in publishers {
        let _ = tokio::time::timeout_at(give_up.into(), handle).await;
    }
    let expected = totals.published.load(Ordering::Relaxed).saturating_mul(fan);
    while totals.received.load(Ordering::Relaxed) < expected && Instant::now() < schedule.drain_end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `count` per `seconds`, 0 for an empty interval.
#[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Nanoseconds as microseconds.
#[allow(clippy::cast_precision_loss)] // Latencies far below 2^53 ns.
fn micros(nanos: Option<u64>) -> Option<f64> {
    nanos.map(|n| n as f64 / 1000.0)
}

fn report(
    plan: &PubSubPlan,
    topology: &Topology,
    schedule: &Schedule,
    (opened, closed): (Reading, Reading),
    (totals, acks): (&Totals, Option<AckTally>),
    latencies: &Histogram,
    tls: Option<&str>,
) -> Report {
    let window = schedule.window().as_secs_f64();
    let published = totals.published.load(Ordering::Relaxed);
    let received = totals.received.load(Ordering::Relaxed);
    let expected = published.saturating_mul(topology.fan);
    let lost = expected.saturating_sub(received);
    let delivered_in_window = closed.received - opened.received;
    let delivered_rate = per_second(delivered_in_window, window);
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    let loss_pct = if expected > 0 { 100.0 * lost as f64 / expected as f64 } else { 0.0 };
    let p = |q: f64| micros(latencies.percentile(q));
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    let ack_loss_pct = acks.map(|a| if a.owed > 0 { 100.0 * a.lost as f64 / a.owed as f64 } else { 0.0 });

    let mut r = Report::new(plan.scenario);
    r.headline = format!(
        "{delivered_rate:.0} msg/s delivered (QoS {}, {} B payload); latency p50 {} p99 {} max {}; \
         lost {lost} of {expected} ({loss_pct:.3} %)",
        plan.qos.bits(),
        plan.payload,
        show_micros(p(50.0)),
        show_micros(p(99.0)),
        show_micros(micros(latencies.max())),
    );
    if let (Some(a), Some(pct)) = (acks, ack_loss_pct) {
        let _ = write!(r.headline, "; acknowledged and lost {} of {} ({pct:.3} %)", a.lost, a.owed);
    }
    let refused = totals.refused.load(Ordering::Relaxed);
    if refused > 0 {
        let _ = write!(r.headline, "; refused by the broker {refused}");
    }
    r.push("host", plan.target.host.as_str());
    r.push("port", u64::from(plan.target.port));
    r.push("mqtt_version", crate::wire::version_name(plan.target.version));
    r.push("tls", tls);
    r.push("qos", u64::from(plan.qos.bits()));
    r.push("payload_bytes", plan.payload as u64);
    r.push("publishers", topology.publishers.len() as u64);
    r.push("subscribers", topology.subscribers.len() as u64);
    r.push("deliveries_per_message", topology.fan);
    r.push("rate_limit", plan.rate);
    r.push("inflight", u64::from(plan.inflight));
    r.push("closed_loop", plan.closed_loop);
    r.push("duration_s", plan.target.duration.as_secs_f64());
    r.push("warmup_s", plan.warmup.as_secs_f64());
    r.push("window_s", window);
    r.push("published", published);
    r.push("published_in_window", closed.published - opened.published);
    r.push("publish_rate", per_second(closed.published - opened.published, window));
    r.push("delivered_in_window", delivered_in_window);
    r.push("delivered_rate", delivered_rate);
    r.push("expected_deliveries", expected);
    r.push("received", received);
    r.push("lost", lost);
    r.push("loss_pct", loss_pct);
    r.push("acknowledged", totals.acknowledged.load(Ordering::Relaxed));
    r.push("refused", totals.refused.load(Ordering::Relaxed));
    r.push("acknowledged_deliveries", acks.map(|a| a.owed));
    r.push("acknowledged_lost", acks.map(|a| a.lost));
    r.push("acknowledged_loss_pct", ack_loss_pct);
    r.push("closed_loop_stalls", totals.stalls.load(Ordering::Relaxed));
    push_latency(&mut r, latencies);
    push_broker(&mut r, opened.broker, closed.broker, delivered_in_window);
    r.push("errors", totals.errors.load(Ordering::Relaxed));
    r.push("first_error", totals.first_error().as_deref());
    r
}

/// End-to-end latency percentiles in microseconds, `null` when nothing was timed.
fn push_latency(r: &mut Report, latencies: &Histogram) {
    let p = |q: f64| micros(latencies.percentile(q));
    r.push("latency_samples", latencies.len());
    r.push("latency_p50_us", p(50.0));
    r.push("latency_p99_us", p(99.0));
    r.push("latency_p999_us", p(99.9));
    r.push("latency_max_us", micros(latencies.max()));
    r.push("latency_mean_us", latencies.mean().map(|m| m / 1000.0));
}

/// The broker's CPU time and memory over the window, `null` when not watched.
fn push_broker(r: &mut Report, start: Option<Sample>, end: Option<Sample>, deliveries: u64) {
    let both = start.zip(end);
    let cpu = both.map(|(s, e)| e.cpu_seconds - s.cpu_seconds);
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    let per_million = cpu.filter(|_| deliveries > 0).map(|c| c * 1e6 / deliveries as f64);
    r.push("broker_cpu_s", cpu);
    r.push("broker_cpu_s_per_million", per_million);
    r.push("broker_rss_start_kib", start.map(|s| s.rss_kib));
    r.push("broker_rss_end_kib", end.map(|s| s.rss_kib));
}

/// A latency for the headline: microseconds below 1 ms, milliseconds above; "-" when nothing
/// was measured.
fn show_micros(micros: Option<f64>) -> String {
    match micros {
        None => "-".to_owned(),
        Some(us) if us < 1000.0 => format!("{us:.0} us"),
        Some(us) => format!("{:.2} ms", us / 1000.0),
    }
}
