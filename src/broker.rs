//! A Broker: the accept loop of one listener. It enforces the server-wide connection limit and
//! hands each accepted stream to its own connection task; it never reads a byte of MQTT.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::connection;
use crate::context::Context;
use crate::identity::ConnectionInfo;
use crate::transport::Listener;

/// One listener and the connections it accepted.
#[derive(Debug)]
pub(crate) struct Broker {
    /// The bound socket.
    listener: Listener,
    /// The listener's URL as configured, for logs and client identities.
    name: Arc<str>,
    /// State shared by the whole server.
    context: Arc<Context>,
}

impl Broker {
    /// A broker for a bound listener, known by its configured URL `name`.
    pub(crate) fn new(listener: Listener, name: &str, context: Arc<Context>) -> Broker {
        Broker { listener, name: Arc::from(name), context }
    }

    /// The bound listener.
    pub(crate) fn listener(&self) -> &Listener {
        &self.listener
    }

    /// Accepts connections until `shutdown` is cancelled, spawning each on `tracker` with a
    /// child token of `shutdown`.
    pub(crate) async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a similar resource error: back off briefly
                    // rather than spin on a listener that cannot accept.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match &self.context.connection_slots {
                None => None,
                Some(slots) => match Arc::clone(slots).try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => {
                        self.context.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%peer, "connection refused: server.max_connections reached");
                        continue;
                    }
                },
            };
            self.context.metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            let context = Arc::clone(&self.context);
            let span = tracing::info_span!(
                "connection",
                %peer,
                listener = &*self.name,
                client_id = tracing::field::Empty,
                protocol = tracing::field::Empty,
                username = tracing::field::Empty
            );
            let info = ConnectionInfo { peer, listener: Arc::clone(&self.name), certificate_name: None };
            let upgrader = self.listener.upgrader();
            // A clone, not a child token: nothing cancels one connection through it, and a child
            // would cost every connection a tree node and a lock on the parent.
            let token = shutdown.clone();
            tracker.spawn(
                async move {
                    connection::run(stream, upgrader, info, context, token).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
    }
}
