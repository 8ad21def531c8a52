//! iothub-bench: a load generator for any MQTT 3.1.1 or 5.0 broker (`--mqtt 3|5`), over TCP or
//! TLS (`--tls-ca`), built on IoTHub's own codec.
//!
//! Scenarios: `conn` (connection storms and idle connections), `fanin`, `fanout` and `pairs`
//! (message throughput, loss and end-to-end latency, open or closed loop) and `latency` (pairs at
//! a fixed rate). `run` executes one parsed command on the current Tokio runtime and returns a
//! `Report`; the binary prints it. The library prints nothing but the optional progress lines on
//! stderr, and never spawns processes.

pub mod cli;
pub mod client;
pub mod conn;
pub mod error;
pub mod probe;
pub mod pubsub;
pub mod report;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod wire;

pub use cli::{Cli, Command};
pub use error::BenchError;
pub use report::{Report, Value};

use pubsub::PubSubPlan;

/// Runs `command` to completion and reports. Progress lines go to stderr each second when
/// `progress` is set. Needs a Tokio runtime with time and I/O enabled; a multi-thread runtime
/// keeps the load generator from being the bottleneck.
pub async fn run(command: &Command, progress: bool) -> Result<Report, BenchError> {
    match command {
        Command::Conn(args) => conn::run(args, progress).await,
        Command::Fanin(args) => pubsub::run(&PubSubPlan::fanin(args), progress).await,
        Command::Fanout(args) => pubsub::run(&PubSubPlan::fanout(args), progress).await,
        Command::Pairs(args) => pubsub::run(&PubSubPlan::pairs(args), progress).await,
        Command::Latency(args) => pubsub::run(&PubSubPlan::latency(args), progress).await,
    }
}
