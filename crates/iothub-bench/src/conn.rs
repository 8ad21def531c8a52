//! `conn`: opens connections at a set rate, each a CONNECT answered by CONNACK, holds them idle,
//! then closes them; reports the connect rate, handshake latency and failures, and what the
//! connections cost the broker.
//!
//! Handshake latency runs from creating the socket to reading CONNACK, so it includes the TCP
//! handshake, and with `--tls-ca` the TLS handshake. At most `--concurrency` handshakes (1024
//! unless told) are in progress at once, so "as fast as possible" (`--rate 0`) means as fast as
//! the broker completes them rather than a flood of SYNs into its accept backlog; a value below
//! the broker's listen backlog keeps SYN retransmissions out of the figures. Idle connections send PINGREQ when keep-alive requires it and answer
//! nothing else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_protocol::ProtocolVersion;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::cli::ConnArgs;
use crate::client::{
    next_packet, open_tcp, read_more, resolve, source_address, Connection, PING_AFTER, SETUP_TIMEOUT,
};
use crate::error::BenchError;
use crate::probe::{Probe, Sample};
use crate::pubsub::plan::run_tag;
use crate::report::Report;
use crate::stats::percentile_of_sorted;
use crate::tls::TlsClient;
use crate::wire::{self, version_name};

/// Read buffer of an idle connection: CONNACK and PINGRESP are a few bytes.
const IDLE_READ_CHUNK: usize = 64;

/// Why a connection attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// TCP connect failed (refused, no ports or descriptors left, ...).
    Tcp,
    /// No TCP connection or no CONNACK within `SETUP_TIMEOUT`.
    Timeout,
    /// CONNACK refused the connection.
    Refused,
    /// Anything else: the broker closed the socket, sent garbage, ...
    Other,
}

/// One attempt's outcome, sent to the coordinator.
struct Attempt {
    /// Handshake time, or why it failed.
    outcome: Result<Duration, (Failure, String)>,
    /// When the attempt ended.
    at: Instant,
}

/// What the coordinator learns from the attempts.
#[derive(Debug, Default)]
struct Tally {
    /// Handshake latencies of successful attempts, in nanoseconds.
    handshakes: Vec<u64>,
    /// Failures per kind: TCP, timeout, refused, other.
    failures: [u64; 4],
    /// The first failure's message.
    first_error: Option<String>,
    /// When the last attempt ended.
    last: Option<Instant>,
}

impl Tally {
    fn add(&mut self, attempt: Attempt) {
        self.last = Some(attempt.at);
        match attempt.outcome {
            Ok(latency) => self.handshakes.push(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)),
            Err((kind, message)) => {
                self.failures[kind as usize] += 1;
                self.first_error.get_or_insert(message);
            }
        }
    }

    fn failed(&self) -> u64 {
        self.failures.iter().sum()
    }

    fn reported(&self) -> u64 {
        self.handshakes.len() as u64 + self.failed()
    }
}

/// What every connection task shares.
#[derive(Clone)]
struct Shared {
    /// This run's tag, for client identifiers.
    tag: Arc<str>,
    /// The broker.
    broker: SocketAddr,
    /// TLS over every connection, if asked for.
    tls: Option<Arc<TlsClient>>,
    /// Loopback source addresses to rotate over.
    source_ips: u32,
    /// Protocol version of every connection.
    version: ProtocolVersion,
    /// Where attempts report.
    results: mpsc::UnboundedSender<Attempt>,
    /// Turns true when connections are to close.
    stop: watch::Receiver<bool>,
    /// Connections the broker closed while they were held.
    dropped: Arc<AtomicU64>,
    /// Attempts started.
    launched: Arc<AtomicU64>,
}

/// Runs `conn` and reports. Progress lines go to stderr when `progress` is set.
pub async fn run(args: &ConnArgs, progress: bool) -> Result<Report, BenchError> {
    let broker = resolve(&args.target).await?;
    let tls = TlsClient::from_target(&args.target)?;
    let probe = args.target.broker_pid.map(Probe::new).transpose()?;
    let before = probe.as_ref().map(Probe::sample).transpose()?;
    let (results, mut attempts) = mpsc::unbounded_channel();
    let (stop, stopped) = watch::channel(false);
    let shared = Shared {
        tag: Arc::from(run_tag()),
        broker,
        tls: tls.clone(),
        source_ips: args.target.source_ips,
        version: args.target.version,
        results,
        stop: stopped,
        dropped: Arc::new(AtomicU64::new(0)),
        launched: Arc::new(AtomicU64::new(0)),
    };
    let start = Instant::now();
    let mut launcher = tokio::spawn(launch(
        (args.connections, args.rate, args.concurrency),
        start + args.target.duration,
        shared.clone(),
    ));
    let (dropped, launched) = (Arc::clone(&shared.dropped), Arc::clone(&shared.launched));
    drop(shared);

    let mut tally = Tally::default();
    let mut tasks = None;
    let mut next_tick = start + Duration::from_secs(1);
    while tasks.is_none() || tally.reported() < launched.load(Ordering::Acquire) {
        tokio::select! {
            attempt = attempts.recv() => match attempt {
                Some(attempt) => tally.add(attempt),
                None => break,
            },
            joined = &mut launcher, if tasks.is_none() => tasks = Some(joined.unwrap_or_default()),
            () = tokio::time::sleep_until(next_tick.into()) => {
                if progress {
                    eprintln!(
                        "[{:>5.1}s] connected {:>8}  failed {}  in progress {}",
                        start.elapsed().as_secs_f64(),
                        tally.handshakes.len(),
                        tally.failed(),
                        launched.load(Ordering::Relaxed) - tally.reported(),
                    );
                }
                next_tick += Duration::from_secs(1);
            }
        }
    }
    let connect_phase = tally.last.map_or(Duration::ZERO, |last| last.saturating_duration_since(start));
    if progress && !args.hold.is_zero() {
        eprintln!("holding {} connections for {:.1}s", tally.handshakes.len(), args.hold.as_secs_f64());
    }
    tokio::time::sleep(args.hold).await;
    let after = probe.as_ref().and_then(|p| p.sample().ok());
    let dropped = dropped.load(Ordering::Relaxed);
    let _ = stop.send(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    for handle in tasks.unwrap_or_default() {
        let _ = tokio::time::timeout_at(deadline.into(), handle).await;
    }
    let tls = tls.as_deref().and_then(TlsClient::negotiated);
    let attempted = launched.load(Ordering::Relaxed);
    Ok(report(args, &mut tally, (attempted, connect_phase, dropped), (before, after), tls))
}

/// Starts up to `connections` attempts, `rate` per second (0: as permits allow), at most
/// `concurrency` handshakes at once, none after `launch_end`. Returns the tasks, which end once
/// told to stop.
async fn launch(
    (connections, rate, concurrency): (u32, u64, u16),
    launch_end: Instant,
    shared: Shared,
) -> Vec<JoinHandle<()>> {
    let permits = Arc::new(Semaphore::new(usize::from(concurrency)));
    let start = Instant::now();
    let mut handles = Vec::new();
    for index in 0..connections {
        if rate > 0 {
            #[allow(clippy::cast_precision_loss)] // Counts and rates far below 2^53.
            let due = start + Duration::from_secs_f64(f64::from(index) / rate as f64);
            if due >= launch_end {
                break;
            }
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let Ok(Ok(permit)) =
            tokio::time::timeout_at(launch_end.into(), Arc::clone(&permits).acquire_owned()).await
        else {
            break;
        };
        shared.launched.fetch_add(1, Ordering::Relaxed);
        handles.push(tokio::spawn(connection_task(index, permit, shared.clone())));
    }
    handles
}

/// One connection: handshake, report, hold until told to stop, close.
async fn connection_task(index: u32, permit: OwnedSemaphorePermit, shared: Shared) {
    let client_id = format!("b{}c{index}", shared.tag);
    let source = source_address(index as usize, shared.source_ips);
    let started = Instant::now();
    let outcome = attempt((shared.broker, shared.tls.as_deref()), source, &client_id, shared.version).await;
    drop(permit);
    let (report, connection) = match outcome {
        Ok(connection) => (Ok(started.elapsed()), Some(connection)),
        Err(failure) => (Err(failure), None),
    };
    let Shared { results, stop, dropped, .. } = shared;
    let _ = results.send(Attempt { outcome: report, at: Instant::now() });
    drop(results);
    if let Some(connection) = connection {
        hold(connection, stop, &dropped).await;
    }
}

/// Opens TCP and completes the handshake (TLS with `tls`, then MQTT), each step within
/// `SETUP_TIMEOUT`.
async fn attempt(
    (broker, tls): (SocketAddr, Option<&TlsClient>),
    source: Option<std::net::IpAddr>,
    client_id: &str,
    version: ProtocolVersion,
) -> Result<Connection, (Failure, String)> {
    let stream = tokio::time::timeout(SETUP_TIMEOUT, open_tcp(broker, source))
        .await
        .map_err(|_| (Failure::Timeout, format!("{client_id}: TCP connect to {broker} timed out")))?
        .map_err(|e| (Failure::Tcp, format!("{client_id}: connecting to {broker}: {e}")))?;
    let handshake = Connection::handshake(stream, tls, client_id, IDLE_READ_CHUNK, version);
    match tokio::time::timeout(SETUP_TIMEOUT, handshake).await {
        Err(_) => Err((Failure::Timeout, format!("{client_id}: no CONNACK within {SETUP_TIMEOUT:?}"))),
        Ok(Err(e @ BenchError::Refused { .. })) => Err((Failure::Refused, e.to_string())),
        Ok(Err(e)) => Err((Failure::Other, e.to_string())),
        Ok(Ok(connection)) => Ok(connection),
    }
}

/// Keeps `connection` open and quiet until `stop`, sending PINGREQ when keep-alive is due and
/// reading (and ignoring) whatever arrives. Counts the connection in `dropped` if the broker
/// closes it first.
async fn hold(mut connection: Connection, mut stop: watch::Receiver<bool>, dropped: &AtomicU64) {
    let mut last_ping = Instant::now();
    let alive = loop {
        if *stop.borrow() {
            break true;
        }
        tokio::select! {
            _ = stop.changed() => break true,
            read = read_more(&mut connection.reader, &mut connection.inbox, IDLE_READ_CHUNK) => {
                if read.is_err() {
                    break false;
                }
                while let Ok(Some(_)) =
                    next_packet(&mut connection.inbox, connection.version, &connection.client_id)
                {}
            }
            () = tokio::time::sleep_until((last_ping + PING_AFTER).into()) => {
                let mut ping = bytes::BytesMut::new();
                if wire::put(&iothub_protocol::Packet::PingReq, connection.version, &mut ping).is_err()
                    || connection.writer.write_all(&ping).await.is_err()
                {
                    break false;
                }
                last_ping = Instant::now();
            }
        }
    };
    if alive {
        connection.close().await;
    } else {
        dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Nanoseconds as milliseconds.
#[allow(clippy::cast_precision_loss)] // Latencies far below 2^53 ns.
fn millis(nanos: Option<u64>) -> Option<f64> {
    nanos.map(|n| n as f64 / 1e6)
}

fn report(
    args: &ConnArgs,
    tally: &mut Tally,
    (attempted, connect_phase, dropped): (u64, Duration, u64),
    (before, after): (Option<Sample>, Option<Sample>),
    tls: Option<&str>,
) -> Report {
    tally.handshakes.sort_unstable();
    let connected = tally.handshakes.len() as u64;
    let open = connected.saturating_sub(dropped);
    let phase = connect_phase.as_secs_f64();
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    let connect_rate = if phase > 0.0 { connected as f64 / phase } else { 0.0 };
    let p = |q: f64| millis(percentile_of_sorted(&tally.handshakes, q));
    #[allow(clippy::cast_precision_loss)] // Counts far below 2^53.
    let mean = (connected > 0)
        .then(|| tally.handshakes.iter().map(|&n| n as f64).sum::<f64>() / connected as f64 / 1e6);
    let both = before.zip(after);
    #[allow(clippy::cast_precision_loss)] // Memory sizes and counts far below 2^53.
    let rss_per_conn =
        both.filter(|_| open > 0).map(|(b, a)| (a.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / open as f64);

    let mut r = Report::new("conn");
    r.headline = format!(
        "{connected} of {} connections in {phase:.2}s ({connect_rate:.0}/s); handshake p50 {} p99 {}; {} failed, {dropped} dropped while held",
        args.connections,
        show_millis(p(50.0)),
        show_millis(p(99.0)),
        tally.failed(),
    );
    r.push("host", args.target.host.as_str());
    r.push("port", u64::from(args.target.port));
    r.push("mqtt_version", version_name(args.target.version));
    r.push("tls", tls);
    r.push("connections", u64::from(args.connections));
    r.push("rate_limit", args.rate);
    r.push("concurrency", u64::from(args.concurrency));
    r.push("source_ips", u64::from(args.target.source_ips));
    r.push("hold_s", args.hold.as_secs_f64());
    r.push("attempted", attempted);
    r.push("connected", connected);
    r.push("failed", tally.failed());
    r.push("failed_tcp", tally.failures[Failure::Tcp as usize]);
    r.push("failed_timeout", tally.failures[Failure::Timeout as usize]);
    r.push("failed_refused", tally.failures[Failure::Refused as usize]);
    r.push("failed_other", tally.failures[Failure::Other as usize]);
    r.push("dropped_during_hold", dropped);
    r.push("connect_phase_s", phase);
    r.push("connect_rate", connect_rate);
    r.push("handshake_p50_ms", p(50.0));
    r.push("handshake_p99_ms", p(99.0));
    r.push("handshake_max_ms", p(100.0));
    r.push("handshake_mean_ms", mean);
    r.push("broker_cpu_s", both.map(|(b, a)| a.cpu_seconds - b.cpu_seconds));
    r.push("broker_rss_before_kib", before.map(|s| s.rss_kib));
    r.push("broker_rss_after_kib", after.map(|s| s.rss_kib));
    r.push("broker_rss_per_conn_bytes", rss_per_conn);
    r.push("first_error", tally.first_error.as_deref());
    r
}

/// Milliseconds for the headline: "-" when nothing was measured.
fn show_millis(millis: Option<f64>) -> String {
    millis.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms"))
}
