//! A Broker: the accept loop of one listener. It enforces the listener's connection rate and
//! limit, the source address's connection rate and the server-wide connection limit, closing
//! what is over a limit before any handshake, and hands each accepted stream to its own
//! connection task; it never reads a byte of MQTT (nor of a PROXY header).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::connection;
use crate::context::Context;
use crate::identity::ConnectionInfo;
use crate::protection::{Refusal, TokenBucket};
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
    /// One permit per connection the listener may hold; `None` without a limit of its own.
    slots: Option<Arc<Semaphore>>,
    /// New connections per second the listener accepts; `None`: no limit.
    rate: Option<u64>,
    /// Its counts, for `/metrics`.
    counters: Arc<crate::metrics::ListenerCounters>,
}

impl Broker {
    /// A broker for a bound listener, known by its configured URL `name`.
    pub(crate) fn new(listener: Listener, name: &str, context: Arc<Context>) -> Broker {
        let settings = listener.settings();
        let slots =
            (settings.max_connections > 0).then(|| Arc::new(Semaphore::new(settings.max_connections)));
        let rate = settings.max_connection_rate.unwrap_or(context.config.max_connection_rate);
        let name: Arc<str> = Arc::from(name);
        let counters = context.metrics.listener(&name);
        Broker { listener, name, context, slots, rate: (rate > 0).then_some(rate), counters }
    }

    /// The bound listener.
    pub(crate) fn listener(&self) -> &Listener {
        &self.listener
    }

    /// Accepts connections until `shutdown` is cancelled, spawning each on `tracker` with a
    /// child token of `shutdown`.
    #[allow(clippy::disallowed_methods)] // The accept loop is an I/O edge: rate limits read the clock.
    pub(crate) async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let mut rate = self.rate.map(|rate| TokenBucket::new(rate, Instant::now()));
        let proxied = self.listener.settings().proxy_protocol;
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
            let permits = match self.admit(&mut rate, peer, proxied) {
                Ok(permits) => permits,
                Err(refusal) => {
                    // Dropping the socket closes it: nothing was read or written.
                    self.refuse(refusal, peer);
                    continue;
                }
            };
            self.context.metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
            self.counters.open.fetch_add(1, Ordering::Relaxed);
            let counters = Arc::clone(&self.counters);
            let context = Arc::clone(&self.context);
            let listener = &*self.name;
            // Behind a proxy the client's address is known only once the header is read.
            let unknown = tracing::field::Empty;
            let span = if proxied {
                tracing::info_span!(
                    "connection",
                    peer = unknown,
                    proxy = %peer,
                    listener,
                    client_id = unknown,
                    protocol = unknown,
                    username = unknown
                )
            } else {
                tracing::info_span!(
                    "connection",
                    %peer,
                    listener,
                    client_id = unknown,
                    protocol = unknown,
                    username = unknown
                )
            };
            let info = ConnectionInfo { peer, listener: Arc::clone(&self.name), certificate_name: None };
            let upgrader = self.listener.upgrader();
            // A clone, not a child token: nothing cancels one connection through it, and a child
            // would cost every connection a tree node and a lock on the parent.
            let token = shutdown.clone();
            tracker.spawn(
                async move {
                    connection::run(stream, upgrader, proxied, info, context, token).await;
                    counters.open.fetch_sub(1, Ordering::Relaxed);
                    drop(permits);
                }
                .instrument(span),
            );
        }
    }

    /// Decides whether a connection from `peer` is taken: the listener's rate, the address's
    /// rate (here unless the address comes in a PROXY header), the listener's limit, the
    /// server's limit, in that order. Returns the permits the connection holds.
    #[allow(clippy::disallowed_methods)] // The accept loop is an I/O edge: rates read the clock.
    fn admit(
        &self,
        rate: &mut Option<TokenBucket>,
        peer: SocketAddr,
        proxied: bool,
    ) -> Result<[Option<OwnedSemaphorePermit>; 2], Refusal> {
        let protection = &self.context.protection;
        if rate.is_some() || (protection.address_rates.is_some() && !proxied) {
            let now = Instant::now();
            if let Some(rate) = rate {
                if !rate.try_take(1, now) {
                    return Err(Refusal::ListenerRate);
                }
            }
            if let (Some(addresses), false) = (&protection.address_rates, proxied) {
                if !addresses.admit(peer.ip(), now) {
                    return Err(Refusal::AddressRate);
                }
            }
        }
        let permit = |slots: &Option<Arc<Semaphore>>, refusal| match slots {
            None => Ok(None),
            Some(slots) => Arc::clone(slots).try_acquire_owned().map(Some).map_err(|_| refusal),
        };
        let listener = permit(&self.slots, Refusal::ListenerLimit)?;
        let server = permit(&self.context.connection_slots, Refusal::ServerLimit)?;
        Ok([listener, server])
    }

    /// Counts a connection closed at accept and logs it, at most once a second per reason.
    #[allow(clippy::disallowed_methods)] // The accept loop is an I/O edge.
    fn refuse(&self, refusal: Refusal, peer: SocketAddr) {
        self.context.refused(refusal, peer, &self.name, Instant::now());
    }
}
