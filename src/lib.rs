//! IoTHub: an MQTT broker on Tokio.
//!
//! The Server binds one Broker per listener; each accepted connection gets a task of its own
//! that owns the client's Session; the Router matches published messages to subscriptions and
//! pushes them into the subscribers' bounded mailboxes. `docs/ARCHITECTURE.md` has the map.
//!
//! The public API is the configuration, the `Server`, and the authentication seam (`auth`). Every module is private to the crate,
//! so that the compiler holds the module graph's rules (`unreachable_pub` flags anything marked
//! public that nothing outside can reach); `internals` exposes the few building blocks that the
//! tests, benches and fuzz targets drive directly.
#![warn(unreachable_pub, missing_debug_implementations)]

mod admin;
pub mod auth;
mod broker;
pub mod config;
mod connection;
mod context;
mod exit;
mod identity;
mod mailbox;
mod message;
mod metrics;
mod protection;
mod restore;
mod router;
mod server;
mod session;
pub mod storage;
mod sys;
mod transport;

pub use config::{Config, ConfigBuilder, ConfigError};
pub use server::{Reloader, Server};

/// Building blocks the tests, benches and fuzz targets drive directly. Not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::context::Context;
    pub use crate::exit::Exit;
    pub use crate::mailbox::{Mailbox, PushOutcome, QueueLimits, QueueOverflow};
    pub use crate::message::{too_deep, Delivery, Message};
    pub use crate::router::{RetainOutcome, RetainStore, Subscriber, SubscriptionTree};
    pub use crate::session::{is_reserved_for_broker, write, Action, Link, Session, SessionLimits, Will};
    pub use crate::transport::proxy::{parse as parse_proxy_header, ProxyError, ProxyHeader};
}
