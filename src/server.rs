//! The Server: binds one Broker per listener, owns the Router, the session registry and the
//! counters, expires offline sessions, and runs the shutdown sequence.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::AuthenticationMethod;
use crate::broker::Broker;
use crate::config::{parse_listen_address, Config};
use crate::context::Context;
use crate::metrics::Metrics;
use crate::router::Router;
use crate::session::Registry;
use crate::transport::Listener;

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    /// One broker per listener.
    brokers: Vec<Broker>,
    /// Shared state.
    context: Arc<Context>,
}

impl Server {
    /// Binds every listener of `config`. Fails if any address cannot be bound.
    pub async fn bind(config: &Config) -> io::Result<Server> {
        Server::bind_with_auth_methods(config, Vec::new()).await
    }

    /// Binds every listener of `config`, with these MQTT 5.0 enhanced authentication methods
    /// (section 4.12) for clients to name in CONNECT.
    pub async fn bind_with_auth_methods(
        config: &Config,
        auth_methods: Vec<Arc<dyn AuthenticationMethod>>,
    ) -> io::Result<Server> {
        let metrics = Arc::new(Metrics::default());
        let server = config.server.clone();
        // The validated configuration always names a strategy; without this the router kept its
        // default and `shared_subscription_strategy` had no effect.
        let strategy = server.shared_strategy().unwrap_or_default();
        let context = Arc::new(Context {
            router: Router::new(server.retained_message_limit, Arc::clone(&metrics)).with_strategy(strategy),
            registry: Registry::default(),
            connection_slots: (server.max_connections > 0)
                .then(|| Arc::new(Semaphore::new(server.max_connections))),
            metrics,
            config: server,
            auth_methods,
        });
        let mut brokers = Vec::new();
        for url in &context.config.listen_addresses {
            let address =
                parse_listen_address(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let listener = Listener::bind(&address)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {url}: {e}")))?;
            brokers.push(Broker::new(listener, url, Arc::clone(&context)));
        }
        Ok(Server { brokers, context })
    }

    /// The addresses actually bound, in configuration order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.brokers.iter().filter_map(|b| b.listener().local_addr().ok()).collect()
    }

    /// The server's shared state, for inspection.
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, closes every connection and
    /// waits for the connection tasks, at most `shutdown_timeout_secs`. Returns true if every
    /// task finished in time.
    pub async fn run(self, shutdown: CancellationToken) -> bool {
        let tracker = TaskTracker::new();
        for broker in self.brokers {
            let scheme = broker.listener().scheme();
            if let Ok(address) = broker.listener().local_addr() {
                tracing::info!("listening on {scheme}://{address}");
            }
            tracker.spawn(broker.run(shutdown.child_token(), tracker.clone()));
        }
        let expiry = tracker.spawn(expire_sessions(Arc::clone(&self.context), shutdown.child_token()));
        shutdown.cancelled().await;
        tracing::info!("shutting down: closing connections");
        tracker.close();
        let deadline = Duration::from_secs(self.context.config.shutdown_timeout_secs);
        let finished = tokio::time::timeout(deadline, tracker.wait()).await.is_ok();
        expiry.abort();
        if !finished {
            tracing::warn!(remaining = tracker.len(), "shutdown deadline passed with connections still open");
        }
        tracing::info!("stopped; {}", self.context.metrics);
        finished
    }
}

/// Discards offline sessions whose expiry time has passed, publishes wills whose delay has
/// passed and deletes expired retained messages, sleeping until the next of these deadlines. It reads the clock: it is the edge of
/// the registry's sans-IO expiry index.
#[allow(clippy::disallowed_methods)]
async fn expire_sessions(context: Arc<Context>, shutdown: CancellationToken) {
    /// Longest sleep between looks, in case a deadline moved earlier unnoticed.
    const LOOK_AGAIN: Duration = Duration::from_secs(10);
    let mut routing = crate::router::RouteScratch::default();
    loop {
        let now = Instant::now();
        let next = [context.registry.next_deadline(), context.router.next_retained_expiry()]
            .into_iter()
            .flatten()
            .fold(now + LOOK_AGAIN, Instant::min);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = context.registry.changed() => continue,
            () = context.router.retained_expiry_changed() => continue,
            () = tokio::time::sleep_until(next) => {}
        }
        let now = Instant::now();
        let expired = context.router.expire_retained(now);
        if expired > 0 {
            tracing::debug!(expired, "retained messages expired");
        }
        let due = context.registry.expire(now);
        for will in &due.wills {
            crate::connection::publish_will(&context, will, &mut routing);
        }
        for mut session in due.sessions {
            tracing::info!(client_id = %session.client_id, "session expired");
            crate::connection::discard(&context, &mut session);
        }
    }
}
