//! The Router: who receives a published message, and which retained messages a new subscription
//! gets.
//!
//! It owns the subscription tree and the retained store. It never touches a socket and never
//! waits: delivery is a non-blocking push into each subscriber's bounded mailbox.
//!
//! **Architecture Invariant:** no lock of the router is held across an `.await`, and the tree is
//! never locked while a mailbox is pushed to. Lock order is retained store, then tree; only
//! `subscribe` holds both.

mod retain;
mod tree;

use std::sync::{Arc, PoisonError, RwLock};

use iothub_protocol::QoS;

pub use retain::{RetainOutcome, RetainStore};
pub use tree::SubscriptionTree;

use crate::mailbox::{Mailbox, PushOutcome};
use crate::message::{Delivery, Message};
use crate::metrics::Metrics;

/// Most levels a routed topic or a subscribed filter may have, as Mosquitto's topic hierarchy
/// limit. It bounds the depth of both trees, and so the recursion that walks them.
pub const MAX_TOPIC_LEVELS: usize = 200;

/// Capacity of a retained-message scratch buffer kept between subscriptions.
const RETAINED_SCRATCH_KEEP: usize = 1024;

/// A topic or filter has more than `MAX_TOPIC_LEVELS` levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

/// True when `topic` has more than `MAX_TOPIC_LEVELS` levels.
pub fn too_deep(topic: &str) -> bool {
    topic.bytes().filter(|&b| b == b'/').count() >= MAX_TOPIC_LEVELS
}

/// One subscription of one session, as stored in the tree.
#[derive(Clone)]
pub struct Subscriber {
    /// Where matching messages go.
    pub mailbox: Arc<Mailbox>,
    /// The QoS granted to this subscription.
    pub qos: QoS,
}

/// Buffers a publishing connection reuses: the subscriptions a message matched, and the
/// mailboxes to wake once the connection has routed everything it read. Waking once per batch
/// rather than once per message lets each subscriber write the whole batch in one system call.
/// Dropping the scratch wakes whatever is pending, so no wake-up is ever lost.
#[derive(Default)]
pub struct RouteScratch {
    /// Matches of the message being routed.
    matches: Vec<Subscriber>,
    /// Mailboxes that went from empty to non-empty and wait to be woken.
    wake: Vec<Arc<Mailbox>>,
}

impl RouteScratch {
    /// Wakes every mailbox that received its first message since the last call.
    pub fn wake_all(&mut self) {
        for mailbox in self.wake.drain(..) {
            mailbox.wake();
        }
    }
}

impl Drop for RouteScratch {
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// The routing table and retained store of one server.
pub struct Router {
    /// Subscriptions by topic filter.
    tree: RwLock<SubscriptionTree>,
    /// Retained messages by topic.
    retained: RwLock<RetainStore>,
    /// Counters shared with the rest of the server.
    metrics: Arc<Metrics>,
}

impl Router {
    /// A router with no subscriptions, holding at most `retained_limit` retained messages
    /// (0 means no limit).
    pub fn new(retained_limit: usize, metrics: Arc<Metrics>) -> Router {
        Router {
            tree: RwLock::new(SubscriptionTree::default()),
            retained: RwLock::new(RetainStore::new(retained_limit)),
            metrics,
        }
    }

    /// Adds or replaces (same session, same filter) a subscription. Returns `Err` for a filter
    /// deeper than `MAX_TOPIC_LEVELS`, `Ok(true)` if it replaced a subscription.
    ///
    /// With `retained` (a scratch buffer) it also queues the retained messages matching the
    /// filter, with RETAIN=1 [MQTT-3.3.1-8] and at the lower of their QoS and `qos`, at most as
    /// many as the mailbox has room for, so one SUBSCRIBE cannot make the broker copy the store
    /// once per filter. The retained store stays read-locked from before the subscription is
    /// visible until they are queued: a publication stored meanwhile waits, and is then queued
    /// after them, so an older retained copy never overtakes a newer live message
    /// [MQTT-4.6.0-6].
    pub fn subscribe(
        &self,
        filter: &str,
        mailbox: &Arc<Mailbox>,
        qos: QoS,
        retained: Option<&mut Vec<Arc<Message>>>,
    ) -> Result<bool, TooDeep> {
        if too_deep(filter) {
            return Err(TooDeep);
        }
        let store = self.retained.read().unwrap_or_else(PoisonError::into_inner);
        let subscriber = Subscriber { mailbox: Arc::clone(mailbox), qos };
        let replaced = self.tree.write().unwrap_or_else(PoisonError::into_inner).insert(filter, subscriber);
        if let Some(scratch) = retained {
            scratch.clear();
            store.matching_at_most(filter, scratch, mailbox.room());
            for message in scratch.drain(..) {
                let qos = message.qos.min(qos);
                if mailbox.push(Delivery { message, qos, retain: true }) == PushOutcome::Dropped {
                    self.metrics.count_dropped(qos);
                }
            }
            if scratch.capacity() > RETAINED_SCRATCH_KEEP {
                *scratch = Vec::new();
            }
        }
        Ok(replaced)
    }

    /// Removes the subscription of session `session_id` to `filter`. Returns true if it existed.
    pub fn unsubscribe(&self, filter: &str, session_id: u64) -> bool {
        self.tree.write().unwrap_or_else(PoisonError::into_inner).remove(filter, session_id)
    }

    /// Routes a message: updates the retained store if the message asks for it, then queues one
    /// copy for every session with a matching subscription, at the highest QoS among that
    /// session's matching subscriptions (3.3.5) capped by the message's QoS. Mailboxes that need
    /// waking are collected in `scratch`, which the caller wakes once its batch is routed.
    /// Returns the number of sessions it reached.
    pub fn publish(&self, message: &Arc<Message>, scratch: &mut RouteScratch) -> usize {
        if too_deep(&message.topic) {
            tracing::debug!("message not routed: topic has more than {MAX_TOPIC_LEVELS} levels");
            return 0;
        }
        if message.retain {
            self.retain(message);
        }
        let matches = &mut scratch.matches;
        matches.clear();
        self.tree.read().unwrap_or_else(PoisonError::into_inner).matches(&message.topic, matches);
        if matches.len() > 1 && matches.iter().any(|s| s.mailbox.subscription_count() > 1) {
            matches.sort_unstable_by(|a, b| {
                a.mailbox.session_id().cmp(&b.mailbox.session_id()).then(b.qos.cmp(&a.qos))
            });
            matches.dedup_by_key(|s| s.mailbox.session_id());
        }
        let mut reached = 0;
        for subscriber in matches.drain(..) {
            let qos = subscriber.qos.min(message.qos);
            let delivery = Delivery { message: Arc::clone(message), qos, retain: false };
            match subscriber.mailbox.enqueue(delivery) {
                (PushOutcome::Queued, wake) => {
                    reached += 1;
                    if wake {
                        scratch.wake.push(subscriber.mailbox);
                    }
                }
                (PushOutcome::Dropped, _) => self.metrics.count_dropped(qos),
                (PushOutcome::Offline, _) => {}
            }
        }
        reached
    }

    /// Stores, replaces or (empty payload) deletes the retained message of the message's topic.
    fn retain(&self, message: &Arc<Message>) {
        let outcome = self.retained.write().unwrap_or_else(PoisonError::into_inner).set(message);
        if outcome == RetainOutcome::Refused {
            self.metrics.count_retained_refused();
            tracing::warn!(topic = %message.topic, "retained message limit reached; message forwarded but not retained");
        }
    }
}
