//! IoTHub: an MQTT broker on Tokio.
//!
//! The Server binds one Broker per listener; each accepted connection gets a task of its own
//! that owns the client's Session; the Router matches published messages to subscriptions and
//! pushes them into the subscribers' bounded mailboxes. `docs/ARCHITECTURE.md` has the map.

pub mod broker;
pub mod config;
pub mod connection;
pub mod context;
pub mod exit;
pub mod identity;
pub mod mailbox;
pub mod message;
pub mod metrics;
pub mod router;
pub mod server;
pub mod session;
pub mod transport;

pub use config::{Config, ConfigBuilder, ConfigError};
pub use server::Server;
