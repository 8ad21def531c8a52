//! What every connection task shares: the settings, the Router, the session registry, the
//! counters, the connection limit and the protection state. It is built by the Server and only
//! read afterwards (the protection tables have locks of their own).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytestring::ByteString;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::auth::{Acl, AuthenticationMethod, Authenticator, HttpHook};
use crate::config::{AuthConfig, ServerConfig};
use crate::mailbox::{Mailbox, QueueLimits, QueueOverflow};
use crate::metrics::Metrics;
use crate::protection::{Protection, Refusal};
use crate::router::Router;
use crate::session::{Registry, SessionLimits};
use crate::storage::{SessionLog, Store};
use crate::transport::TlsFiles;

/// What every connection task shares.
#[derive(Debug)]
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
    /// Connection rates per address, flapping detection and publish limits.
    pub(crate) protection: Protection,
    /// The enhanced authentication methods clients may name (5.0 section 4.12).
    pub auth_methods: Vec<Arc<dyn AuthenticationMethod>>,
    /// Durable storage; `None` with the memory backend.
    pub(crate) store: Option<Arc<Store>>,
    /// Username and password checks; `None` when `auth.enabled` is false.
    pub(crate) authenticator: Option<Authenticator>,
    /// Topic permissions (`auth.acl_file`); `None`: every client may use every topic. A
    /// reload sends the new rules here, and every connection applies them to its session.
    pub(crate) acl: watch::Sender<Option<Arc<Acl>>>,
    /// The `[tls]` files, when a certificate is configured.
    pub(crate) tls: Option<Arc<TlsFiles>>,
    /// The `[auth]` settings, for the files a reload reads again.
    pub(crate) auth_files: AuthConfig,
    /// The HTTP hook, when it decides topic access.
    pub(crate) acl_hook: Option<Arc<HttpHook>>,
    /// When the server was built, for its uptime.
    pub(crate) started: std::time::Instant,
    /// Set while the listeners accept (after storage is loaded), cleared at shutdown.
    pub(crate) ready: std::sync::atomic::AtomicBool,
}

impl Context {
    /// The enhanced authentication method called `name`, if the server has it.
    pub fn auth_method(&self, name: &str) -> Option<&Arc<dyn AuthenticationMethod>> {
        self.auth_methods.iter().find(|m| m.name() == name)
    }

    /// How long the server has run.
    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Whether the listeners accept and storage is loaded.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Puts reloaded ACL rules in force: new connections get them, every online session is
    /// told through the watch channel, and offline sessions lose the subscriptions the new
    /// rules no longer allow here and now.
    pub(crate) fn replace_acl(&self, acl: Acl) {
        let acl = Arc::new(acl);
        self.acl.send_replace(Some(Arc::clone(&acl)));
        let mut revoked = Vec::new();
        self.registry.for_each_offline(|session| {
            let filters = session.revoke(&acl);
            if !filters.is_empty() {
                revoked.push((Arc::clone(session.mailbox()), filters));
            }
        });
        // Outside the registry's lock: the router takes its own.
        for (mailbox, filters) in revoked {
            self.unsubscribe_revoked(&mailbox, &filters);
        }
    }

    /// Removes the subscriptions of `mailbox`'s session that the ACL in force does not allow
    /// (a reload revoked them, or they came from another user's connection), from the router
    /// and the durable store.
    pub(crate) fn unsubscribe_revoked(&self, mailbox: &Mailbox, filters: &[ByteString]) {
        for filter in filters {
            self.router.unsubscribe(filter, mailbox.session_id());
            if let Some(log) = mailbox.log() {
                log.unsubscribe(filter);
            }
        }
        tracing::info!(revoked = ?filters, "subscriptions removed: the ACL in force does not allow them");
    }

    /// A durable log for the persistent session of `client_id` whose mailbox has id
    /// `session_id`, if storage is durable.
    pub(crate) fn session_log(&self, client_id: &str, session_id: u64) -> Option<SessionLog> {
        self.store.as_ref().map(|store| SessionLog::new(Arc::clone(store), client_id, session_id))
    }

    /// Counts a connection closed before any handshake for `refusal`, and logs it unless this
    /// reason was logged less than a second ago (the line says how many went unlogged since).
    pub(crate) fn refused(&self, refusal: Refusal, peer: SocketAddr, listener: &str, now: Instant) {
        let counter = match refusal {
            Refusal::ServerLimit | Refusal::ListenerLimit => &self.metrics.connections_refused,
            Refusal::ListenerRate | Refusal::AddressRate => &self.metrics.connections_rate_limited,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(not_logged) = self.protection.log_refusal(refusal, now) {
            let why = refusal.describe();
            tracing::warn!(%peer, listener, not_logged, "connection closed at accept: {why}");
        }
    }

    /// Bounds of each session's queue.
    pub fn queue_limits(&self) -> QueueLimits {
        let config = &self.config;
        QueueLimits {
            max_messages: config.max_queued_messages,
            max_bytes: config.max_queued_bytes,
            max_retained: retained_allowance(config.retained_message_limit),
            overflow: config.overflow_policy().unwrap_or(QueueOverflow::Disconnect),
        }
    }

    /// Limits each session enforces.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            max_subscriptions: self.config.max_subscriptions,
            session_timeout: self.config.session_timeout(),
            retain_available: self.config.retain_available,
            shared_available: self.config.shared_subscription_available,
        }
    }
}

/// Retained deliveries a session may have queued at once, besides its live ones: a whole store
/// (`retained_message_limit`), or 100,000 when the store has no limit. Each costs a pointer to
/// the stored message, never a copy.
fn retained_allowance(retained_message_limit: usize) -> usize {
    if retained_message_limit == 0 {
        100_000
    } else {
        retained_message_limit
    }
}
