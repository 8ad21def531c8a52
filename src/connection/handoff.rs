//! The hand-back of a session at the end of its connection, as a guard: whatever way the
//! connection task ends (an exit, a cancelled future, a panic), the registry slot it claimed is
//! released, the session goes back to the registry or is discarded, and a successor waiting to
//! take the client identifier over is told.

use std::sync::Arc;

use bytestring::ByteString;
use tokio::time::Instant;

use crate::context::Context;
use crate::exit::Exit;
use crate::message::Message;
use crate::router::RouteScratch;
use crate::session::{Session, Takeover};
use crate::storage::Clock;

/// A connection's claim on a client identifier, and the session it serves.
pub(super) struct SessionGuard {
    /// Shared server state.
    context: Arc<Context>,
    /// The claimed client identifier.
    client_id: ByteString,
    /// Which connection holds the claim.
    connection_id: u64,
    /// How a successor closes this connection and learns that it has.
    takeover: Arc<Takeover>,
    /// The session, once there is one; `None` after the hand-back.
    session: Option<Box<Session>>,
}

impl SessionGuard {
    /// A guard for a claim that has no session yet.
    pub(super) fn new(
        context: Arc<Context>,
        client_id: ByteString,
        connection_id: u64,
        takeover: Arc<Takeover>,
    ) -> Self {
        SessionGuard { context, client_id, connection_id, takeover, session: None }
    }

    /// Puts the session under the guard and returns it for use.
    pub(super) fn hold(&mut self, session: Box<Session>) -> &mut Session {
        self.session.insert(session)
    }

    /// Ends the connection with `exit`: publishes the will if the exit calls for it, then hands
    /// the session back.
    pub(super) fn finish(&mut self, exit: &Exit, routing: &mut RouteScratch) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        #[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
        let now = Instant::now();
        if let Some(will) = session.take_will(exit, now) {
            publish_will(&self.context, &will, routing);
        }
        self.hand_back(session);
    }

    #[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
    fn hand_back(&self, mut session: Box<Session>) {
        let expiry = session.expiry();
        let keep = expiry.keeps();
        if keep {
            session.persist(&Clock::now(), true);
        }
        let expires_at = expiry.deadline(Instant::now());
        let context = &self.context;
        if let Some(mut discarded) = context.registry.release(session, self.connection_id, keep, expires_at) {
            discard(context, &mut discarded);
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(mut session) = self.session.take() {
            // The task ended without `finish`: it panicked, or its future was dropped. The
            // network connection is gone without DISCONNECT, so the will is due.
            tracing::warn!("connection task ended abnormally; handing its session back");
            #[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
            let now = Instant::now();
            if let Some(will) = session.take_will(&Exit::PeerClosed, now) {
                publish_will(&self.context, &will, &mut RouteScratch::default());
            }
            self.hand_back(session);
        } else {
            self.context.registry.abandon(&self.client_id, self.connection_id);
        }
        self.takeover.mark_closed();
    }
}

/// Routes a will message. Nobody waits for its acknowledgement, so a queue it overfills stays
/// one message over its bound.
pub(crate) fn publish_will(context: &Context, will: &Arc<Message>, routing: &mut RouteScratch) {
    tracing::debug!(topic = %will.topic, "publishing will message");
    context.router.publish(will, routing);
    drop(routing.take_full());
    routing.wake_all();
}

/// Ends a discarded session: publishes the will still waiting for its delay (the session ends
/// first, 3.1.3.2.2), removes its subscriptions from the router, then hands what it held for
/// shared subscriptions to other members of their groups (section 4.8.2).
#[allow(clippy::disallowed_methods)] // The edge of the sans-IO session reads the clock.
pub(crate) fn discard(context: &Context, session: &mut Session) {
    let mut routing = RouteScratch::default();
    if let Some(will) = session.take_pending_will(Instant::now()) {
        publish_will(context, &will, &mut routing);
    }
    let id = session.mailbox().session_id();
    for filter in session.take_subscriptions() {
        context.router.unsubscribe(&filter, id);
    }
    let shared = session.take_shared_deliveries();
    if !shared.is_empty() {
        let handed = context.router.hand_on_shared(shared, &mut routing);
        context.metrics.shared_handed_on.fetch_add(handed as u64, std::sync::atomic::Ordering::Relaxed);
    }
    // Its mailbox is closed now (`take_shared_deliveries` took everything and closed it), so
    // no op for this session can follow this one.
    if let Some(log) = session.mailbox().log() {
        log.gone();
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::identity::{ClientIdentity, ConnectionInfo};
    use crate::mailbox::{Mailbox, QueueLimits};
    use crate::metrics::Metrics;
    use crate::router::Router;
    use crate::session::{Previous, Registry};
    use std::time::Duration;

    fn identity(client_id: &ByteString) -> Arc<ClientIdentity> {
        let info = ConnectionInfo {
            peer: ([127, 0, 0, 1], 1883).into(),
            listener: Arc::from("tcp://test"),
            certificate_name: None,
        };
        Arc::new(ClientIdentity::new(&info, client_id.clone(), None))
    }

    fn context() -> Arc<Context> {
        let metrics = Arc::new(Metrics::default());
        Arc::new(Context {
            config: Config::defaults().server,
            router: Router::new(0, Arc::clone(&metrics)),
            registry: Registry::default(),
            metrics,
            connection_slots: None,
            protection: crate::protection::Protection::new(&Config::defaults().server),
            auth_methods: Vec::new(),
            store: None,
            authenticator: None,
            acl: tokio::sync::watch::Sender::new(None),
            tls: None,
            auth_files: Default::default(),
            acl_hook: None,
            started: std::time::Instant::now(),
            ready: Default::default(),
        })
    }

    /// A connection task that panics after claiming its client identifier must not wedge it:
    /// the guard hands the persistent session back on unwind, and the next claim gets it at once.
    #[tokio::test]
    async fn a_panicking_connection_hands_its_session_back() {
        let context = context();
        let client_id = ByteString::from("wedged");
        let takeover = Arc::new(Takeover::default());
        let claimed =
            context.registry.claim(&identity(&client_id), 1, &takeover, false, Instant::now()).await;
        assert!(claimed.is_none());
        let mailbox = Arc::new(Mailbox::new(7, QueueLimits::messages(10)));
        let session = Box::new(Session::new(client_id.clone(), false, mailbox, context.session_limits()));
        let mut guard = SessionGuard::new(Arc::clone(&context), client_id.clone(), 1, takeover);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            guard.hold(session);
            panic!("a bug in a connection task");
        }));
        assert!(panicked.is_err());
        let next = Arc::new(Takeover::default());
        let second = identity(&client_id);
        let claim = context.registry.claim(&second, 2, &next, false, Instant::now());
        let resumed = tokio::time::timeout(Duration::from_secs(5), claim).await;
        let session = match resumed {
            Ok(Some(Previous::Stored(s))) => Some(s.mailbox().session_id()),
            _ => None,
        };
        assert_eq!(session, Some(7), "the stored session is handed to the next connection");
    }

    /// A task that claimed an identifier but ended before it had a session frees the claim.
    #[tokio::test]
    async fn a_claim_without_a_session_is_abandoned_on_drop() {
        let context = context();
        let client_id = ByteString::from("early");
        let takeover = Arc::new(Takeover::default());
        let _ = context.registry.claim(&identity(&client_id), 1, &takeover, true, Instant::now()).await;
        drop(SessionGuard::new(Arc::clone(&context), client_id.clone(), 1, takeover));
        let next = Arc::new(Takeover::default());
        let second = identity(&client_id);
        let claim = context.registry.claim(&second, 2, &next, true, Instant::now());
        assert!(tokio::time::timeout(Duration::from_secs(5), claim).await.is_ok());
    }

    /// The identity survives the handshake: the registry tells who holds a client identifier,
    /// with the username and the transport's peer address and listener.
    #[tokio::test]
    async fn the_registry_knows_who_is_connected() {
        let context = context();
        let info = ConnectionInfo {
            peer: ([127, 0, 0, 1], 40000).into(),
            listener: Arc::from("tcp://0.0.0.0:1883"),
            certificate_name: None,
        };
        let who = Arc::new(ClientIdentity::new(&info, "sensor-1".into(), Some("alice".into())));
        let _ = context.registry.claim(&who, 1, &Arc::new(Takeover::default()), true, Instant::now()).await;
        let found = context.registry.identity("sensor-1");
        let found = found.as_deref().map(|i| (i.username.as_deref(), i.peer.port(), &*i.listener));
        assert_eq!(found, Some((Some("alice"), 40000, "tcp://0.0.0.0:1883")));
        assert!(context.registry.identity("nobody").is_none());
    }
}
