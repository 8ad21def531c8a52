//! The command line: one subcommand per scenario, the options they share, and the checks that
//! keep every run bounded in time and in count.
//!
//! Parsing only; turning arguments into a run plan belongs to each scenario's module.

use std::path::PathBuf;
use std::time::Duration;

use clap::{value_parser, Args, Parser, Subcommand};
use iothub_protocol::ProtocolVersion;

/// Longest run, hold or warm-up accepted, in seconds: one day.
const MAX_SECONDS: f64 = 86_400.0;

/// Most clients of one kind (connections, publishers, subscribers, pairs) in one run.
const MAX_CLIENTS: i64 = 1_000_000;

/// Largest payload accepted, in bytes.
const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Load generator for MQTT 3.1.1 and 5.0 brokers.
#[derive(Debug, Clone, Parser)]
#[command(name = "iothub-bench", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads of the runtime; 0 means one per CPU.
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
    /// Print no progress lines on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The scenario to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Open many connections at a set rate, hold them idle, report connect rate and handshake latency.
    Conn(ConnArgs),
    /// Many publishers, one subscriber on a wildcard filter.
    Fanin(FaninArgs),
    /// One publisher, many subscribers on its topic.
    Fanout(FanoutArgs),
    /// Publisher/subscriber pairs, each pair on a topic of its own.
    Pairs(PairsArgs),
    /// End-to-end latency at a fixed aggregate rate over publisher/subscriber pairs.
    Latency(LatencyArgs),
}

impl Command {
    /// The scenario's name, as reported.
    pub fn scenario(&self) -> &'static str {
        match self {
            Command::Conn(_) => "conn",
            Command::Fanin(_) => "fanin",
            Command::Fanout(_) => "fanout",
            Command::Pairs(_) => "pairs",
            Command::Latency(_) => "latency",
        }
    }

    /// Where to connect and what to watch, common to every scenario.
    pub fn target(&self) -> &Target {
        match self {
            Command::Conn(a) => &a.target,
            Command::Fanin(a) => &a.target,
            Command::Fanout(a) => &a.target,
            Command::Pairs(a) => &a.target,
            Command::Latency(a) => &a.target,
        }
    }
}

/// Options every scenario has.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Broker host name or address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Length of the run in seconds (fractions allowed); for `conn`, the longest connect phase.
    #[arg(long, default_value = "10", value_parser = parse_positive_seconds)]
    pub duration: Duration,
    /// Broker process to sample for CPU time and resident memory (Linux /proc).
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Spread connections over this many loopback source addresses, 127.0.0.1 upwards.
    #[arg(long, default_value_t = 1, value_parser = value_parser!(u32).range(1..=65_535))]
    pub source_ips: u32,
    /// MQTT version every client speaks: 3 (3.1.1) or 5 (5.0).
    #[arg(long = "mqtt", value_name = "3|5", default_value = "3", value_parser = parse_mqtt)]
    pub version: ProtocolVersion,
    /// Every client asks for a persistent session (3.1.1 clean session 0; 5.0 Clean Start 0 and
    /// a Session Expiry Interval of an hour), so that a durable broker stores its messages.
    #[arg(long)]
    pub persistent: bool,
    /// Wrap every connection in TLS (rustls, ring provider), trusting the CA certificates of
    /// this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// With --tls-ca: the name the broker's certificate must hold (a DNS name or an IP address).
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    pub tls_server_name: String,
}

/// Options of the message scenarios.
#[derive(Debug, Clone, Args)]
pub struct Traffic {
    /// QoS of publications and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (at least 16: timestamp and sequence number).
    #[arg(long, default_value_t = 64, value_parser = parse_payload)]
    pub payload: usize,
    /// Cap on published messages per second over all publishers; 0 means as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Unacknowledged QoS 1/2 publications a publisher allows before it waits. The default, 20,
    /// is Mosquitto's `max_inflight_messages`: beyond it Mosquitto drops QoS 2 publications while
    /// still acknowledging them.
    #[arg(long, default_value_t = 20, value_parser = value_parser!(u16).range(1..=32_768))]
    pub inflight: u16,
    /// Pause publishers while more than this many messages per subscriber are undelivered.
    #[arg(long, value_parser = value_parser!(u64).range(1..))]
    pub closed_loop: Option<u64>,
    /// Seconds at the start of the run left out of rates and latencies.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
}

/// `conn` options.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Common options.
    #[command(flatten)]
    pub target: Target,
    /// Number of connections to open.
    #[arg(short = 'c', long = "connections", default_value_t = 1000, value_parser = count_parser())]
    pub connections: u32,
    /// New connections per second; 0 means as fast as possible.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Most handshakes in progress at once.
    #[arg(long, default_value_t = 1024, value_parser = value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Seconds to hold the connections open once the connect phase is over.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub hold: Duration,
}

/// `fanin` options.
#[derive(Debug, Clone, Args)]
pub struct FaninArgs {
    /// Common options.
    #[command(flatten)]
    pub target: Target,
    /// Message options.
    #[command(flatten)]
    pub traffic: Traffic,
    /// Number of publishers.
    #[arg(long, default_value_t = 10, value_parser = count_parser())]
    pub publishers: u32,
}

/// `fanout` options.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Common options.
    #[command(flatten)]
    pub target: Target,
    /// Message options.
    #[command(flatten)]
    pub traffic: Traffic,
    /// Number of subscribers.
    #[arg(long, default_value_t = 10, value_parser = count_parser())]
    pub subscribers: u32,
}

/// `pairs` options.
#[derive(Debug, Clone, Args)]
pub struct PairsArgs {
    /// Common options.
    #[command(flatten)]
    pub target: Target,
    /// Message options.
    #[command(flatten)]
    pub traffic: Traffic,
    /// Number of publisher/subscriber pairs.
    #[arg(long, default_value_t = 10, value_parser = count_parser())]
    pub pairs: u32,
}

/// `latency` options.
#[derive(Debug, Clone, Args)]
pub struct LatencyArgs {
    /// Common options.
    #[command(flatten)]
    pub target: Target,
    /// Published messages per second over all pairs.
    #[arg(long, default_value_t = 10_000, value_parser = value_parser!(u64).range(1..))]
    pub rate: u64,
    /// Number of publisher/subscriber pairs.
    #[arg(long, default_value_t = 50, value_parser = count_parser())]
    pub pairs: u32,
    /// QoS of publications and subscriptions.
    #[arg(long, default_value_t = 0, value_parser = value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// Payload size in bytes (at least 16).
    #[arg(long, default_value_t = 64, value_parser = parse_payload)]
    pub payload: usize,
    /// Unacknowledged QoS 1 publications a publisher allows before it waits.
    #[arg(long, default_value_t = 20, value_parser = value_parser!(u16).range(1..=32_768))]
    pub inflight: u16,
    /// Seconds at the start of the run left out of the latencies.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
}

/// A parser for client counts: 1 to `MAX_CLIENTS`.
fn count_parser() -> clap::builder::RangedI64ValueParser<u32> {
    value_parser!(u32).range(1..=MAX_CLIENTS)
}

/// Seconds, fractions allowed, from 0 to one day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=MAX_SECONDS).contains(&secs) {
        return Err(format!("{text} is outside 0 to {MAX_SECONDS} seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Seconds as `parse_seconds`, but more than zero.
fn parse_positive_seconds(text: &str) -> Result<Duration, String> {
    let duration = parse_seconds(text)?;
    if duration.is_zero() {
        return Err("must be more than 0 seconds".to_owned());
    }
    Ok(duration)
}

/// `3` (or `3.1.1`) for MQTT 3.1.1, `5` (or `5.0`) for MQTT 5.0.
fn parse_mqtt(text: &str) -> Result<ProtocolVersion, String> {
    match text {
        "3" | "3.1.1" => Ok(ProtocolVersion::V311),
        "5" | "5.0" => Ok(ProtocolVersion::V5),
        _ => Err(format!("`{text}` is not 3 (MQTT 3.1.1) or 5 (MQTT 5.0)")),
    }
}

/// A payload size from 16 bytes to `MAX_PAYLOAD`.
fn parse_payload(text: &str) -> Result<usize, String> {
    let bytes: usize = text.parse().map_err(|_| format!("`{text}` is not a number of bytes"))?;
    if !(crate::wire::MIN_PAYLOAD..=MAX_PAYLOAD).contains(&bytes) {
        return Err(format!("must be between {} and {MAX_PAYLOAD} bytes", crate::wire::MIN_PAYLOAD));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("iothub-bench").chain(args.split_whitespace()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documentation() {
        let cli = parse("pairs").unwrap();
        let Command::Pairs(args) = &cli.command else { panic!("expected pairs") };
        assert_eq!(args.target.host, "127.0.0.1");
        assert_eq!(args.target.port, 1883);
        assert_eq!(args.target.duration, Duration::from_secs(10));
        assert_eq!(args.target.broker_pid, None);
        assert_eq!(args.target.version, ProtocolVersion::V311);
        assert_eq!(args.traffic.qos, 0);
        assert_eq!(args.traffic.payload, 64);
        assert_eq!(args.traffic.rate, 0);
        assert_eq!(args.traffic.closed_loop, None);
        assert_eq!(args.traffic.inflight, 20);
        assert_eq!(args.traffic.warmup, Duration::from_secs(1));
        assert_eq!(args.target.tls_ca, None);
        assert_eq!(args.target.tls_server_name, "localhost");
        assert_eq!(args.pairs, 10);
        assert!(!cli.quiet);
        let Command::Latency(latency) = parse("latency").unwrap().command else { panic!("expected latency") };
        assert_eq!((latency.rate, latency.pairs, latency.qos), (10_000, 50, 0));
    }

    #[test]
    fn every_option_is_read() {
        let cli = parse(
            "--threads 3 -q pairs --port 18990 --pairs 50 --qos 1 --duration 2.5 --closed-loop 500 \
             --payload 128 --rate 1000 --inflight 10 --warmup 0.5 --broker-pid 42 --host localhost \
             --mqtt 5",
        )
        .unwrap();
        assert_eq!(cli.threads, 3);
        assert!(cli.quiet);
        let Command::Pairs(args) = cli.command else { panic!("expected pairs") };
        assert_eq!(args.target.port, 18990);
        assert_eq!(args.target.host, "localhost");
        assert_eq!(args.target.duration, Duration::from_millis(2500));
        assert_eq!(args.target.broker_pid, Some(42));
        assert_eq!(args.target.version, ProtocolVersion::V5);
        assert_eq!((args.traffic.qos, args.traffic.payload, args.traffic.rate), (1, 128, 1000));
        assert_eq!((args.traffic.inflight, args.traffic.closed_loop), (10, Some(500)));
        assert_eq!(args.traffic.warmup, Duration::from_millis(500));
        assert_eq!(args.pairs, 50);
        let Command::Conn(conn) = parse("conn -c 20000 --rate 0 --source-ips 4 --hold 30").unwrap().command
        else {
            panic!("expected conn")
        };
        assert_eq!((conn.connections, conn.rate, conn.target.source_ips), (20_000, 0, 4));
        assert_eq!(conn.hold, Duration::from_secs(30));
        assert_eq!(conn.concurrency, 1024);
        let Command::Conn(conn) = parse("conn --concurrency 64").unwrap().command else { panic!() };
        assert_eq!(conn.concurrency, 64);
        let Command::Fanin(tls) =
            parse("fanin --tls-ca /tmp/ca.pem --tls-server-name 127.0.0.1").unwrap().command
        else {
            panic!("expected fanin")
        };
        assert_eq!(tls.target.tls_ca.as_deref(), Some(std::path::Path::new("/tmp/ca.pem")));
        assert_eq!(tls.target.tls_server_name, "127.0.0.1");
        let Command::Fanout(fanout) = parse("fanout --subscribers 7").unwrap().command else { panic!() };
        assert_eq!(fanout.subscribers, 7);
        let Command::Fanin(fanin) = parse("fanin --publishers 9").unwrap().command else { panic!() };
        assert_eq!(fanin.publishers, 9);
        for (text, version) in
            [("3", ProtocolVersion::V311), ("3.1.1", ProtocolVersion::V311), ("5", ProtocolVersion::V5)]
        {
            let Command::Conn(conn) = parse(&format!("conn --mqtt {text}")).unwrap().command else {
                panic!()
            };
            assert_eq!(conn.target.version, version);
            let Command::Latency(latency) = parse(&format!("latency --mqtt {text}")).unwrap().command else {
                panic!()
            };
            assert_eq!(latency.target.version, version);
        }
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            "pairs --qos 3",
            "pairs --payload 15",
            "pairs --duration 0",
            "pairs --duration -1",
            "pairs --duration forever",
            "pairs --duration 100000",
            "pairs --pairs 0",
            "pairs --inflight 0",
            "pairs --inflight 40000",
            "pairs --closed-loop 0",
            "latency --qos 2",
            "latency --rate 0",
            "conn -c 0",
            "conn --concurrency 0",
            "conn --source-ips 0",
            "pairs --mqtt 4",
            "pairs --mqtt 3.1",
            "pairs --mqtt 5.1",
            "fanin --publishers 2000000",
            "bogus",
        ] {
            assert!(parse(bad).is_err(), "accepted `{bad}`");
        }
    }
}
