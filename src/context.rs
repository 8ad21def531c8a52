//! What every connection task shares: the settings, the Router, the session registry, the
//! counters and the connection limit. It is built by the Server and only read afterwards.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::ServerConfig;
use crate::mailbox::QueueLimits;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::session::Registry;

/// What every connection task shares.
pub struct Context {
    /// The `[server]` settings.
    pub config: ServerConfig,
    /// Subscriptions and retained messages.
    pub router: Router,
    /// Sessions by client identifier.
    pub registry: Registry,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// One permit per allowed connection; `None` when `max_connections` is 0.
    pub connection_slots: Option<Arc<Semaphore>>,
}

impl Context {
    /// Bounds of each session's queue.
    pub fn queue_limits(&self) -> QueueLimits {
        QueueLimits { max_messages: self.config.max_queued_messages, max_bytes: self.config.max_queued_bytes }
    }
}
