//! The Router: who receives a published message, and which retained messages a new subscription
//! gets.
//!
//! It owns the subscription tree and the retained store. It never touches a socket and never
//! waits: delivery is a non-blocking push into each subscriber's bounded mailbox.
//!
//! **Architecture Invariant:** the router knows nothing about sessions or connections: it sees
//! mailboxes only. No lock of the router is held across an `.await`, and the tree is never
//! locked while a mailbox is pushed to. Lock order is retained store, then tree; only
//! `subscribe` holds both. No lock is held for more than O(levels + matches) per operation.

mod children;
mod retain;
mod tree;

use std::sync::{Arc, PoisonError, RwLock};

use iothub_protocol::QoS;

pub use retain::{RetainOutcome, RetainStore};
pub use tree::SubscriptionTree;

use crate::mailbox::{Mailbox, PushOutcome};
use crate::message::{too_deep, Delivery, Message};
use crate::metrics::Metrics;

/// Capacity of a retained-message scratch buffer kept between subscriptions.
const RETAINED_SCRATCH_KEEP: usize = 1024;

/// Capacity of a routing scratch buffer kept between batches; a publisher whose last batch
/// reached more subscribers gives the memory back afterwards.
const MATCHES_SCRATCH_KEEP: usize = 256;

/// A topic or filter is deeper than the hierarchy limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

/// One subscription of one session, as stored in the tree.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The session's identity (a copy of its mailbox's), read without touching the mailbox.
    pub session_id: u64,
    /// Where matching messages go.
    pub mailbox: Arc<Mailbox>,
    /// The QoS granted to this subscription.
    pub qos: QoS,
}

impl Subscriber {
    /// The subscription of `mailbox`'s session at `qos`.
    pub fn new(mailbox: Arc<Mailbox>, qos: QoS) -> Subscriber {
        Subscriber { session_id: mailbox.session_id(), mailbox, qos }
    }
}

/// Buffers a publishing connection reuses: the subscriptions a message matched, and the
/// mailboxes to wake once the connection has routed everything it read. Waking once per batch
/// rather than once per message lets each subscriber write the whole batch in one system call.
/// Dropping the scratch wakes whatever is pending, so no wake-up is ever lost.
#[derive(Debug, Default)]
pub struct RouteScratch {
    /// Matches of the message being routed.
    matches: Vec<Subscriber>,
    /// Mailboxes that went from empty to non-empty and wait to be woken.
    wake: Vec<Arc<Mailbox>>,
    /// Mailboxes the last message was queued in past their bound: the publisher waits for them
    /// before it acknowledges the message.
    full: Vec<Arc<Mailbox>>,
}

impl RouteScratch {
    /// Wakes every mailbox that received its first message since the last call, and gives back
    /// buffers a large fan-out made large.
    pub fn wake_all(&mut self) {
        for mailbox in self.wake.drain(..) {
            mailbox.wake();
        }
        if self.wake.capacity() > MATCHES_SCRATCH_KEEP {
            self.wake = Vec::new();
        }
        if self.matches.capacity() > MATCHES_SCRATCH_KEEP {
            self.matches = Vec::new();
        }
    }

    /// Takes the mailboxes the last routed message overfilled.
    pub fn take_full(&mut self) -> Vec<Arc<Mailbox>> {
        std::mem::take(&mut self.full)
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
    /// deeper than the hierarchy limit, `Ok(true)` if it replaced a subscription.
    ///
    /// With `retained` (a scratch buffer and a walk budget) it first queues the retained
    /// messages matching the filter, with RETAIN=1 [MQTT-3.3.1-8] and at the lower of their QoS
    /// and `qos` [MQTT-3.8.4-3], within the mailbox's retained allowance and the walk budget (see
    /// `RetainStore::matching_at_most`), and only then makes the subscription visible to
    /// publishers. The retained store stays read-locked throughout, so a retained publication
    /// waits and is queued after them, and a live publication either misses the subscription
    /// (it was not yet made) or is queued after them: an older retained copy never overtakes a
    /// newer message of its topic [MQTT-4.6.0-6].
    pub fn subscribe(
        &self,
        filter: &str,
        mailbox: &Arc<Mailbox>,
        qos: QoS,
        retained: Option<(&mut Vec<Arc<Message>>, &mut usize)>,
    ) -> Result<bool, TooDeep> {
        if too_deep(filter) {
            return Err(TooDeep);
        }
        let store = self.retained.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((scratch, budget)) = retained {
            scratch.clear();
            if !store.matching_at_most(filter, scratch, usize::MAX, budget) {
                self.metrics.count_retained_walk_cut();
            }
            for message in scratch.drain(..) {
                let qos = message.qos.min(qos);
                // A drop is counted by the mailbox.
                mailbox.push(Delivery { message, qos, retain: true });
            }
            if scratch.capacity() > RETAINED_SCRATCH_KEEP {
                *scratch = Vec::new();
            }
        }
        let subscriber = Subscriber::new(Arc::clone(mailbox), qos);
        let replaced = self.tree.write().unwrap_or_else(PoisonError::into_inner).insert(filter, subscriber);
        drop(store);
        Ok(replaced)
    }

    /// Removes the subscription of session `session_id` to `filter`. Returns true if it existed.
    pub fn unsubscribe(&self, filter: &str, session_id: u64) -> bool {
        self.tree.write().unwrap_or_else(PoisonError::into_inner).remove(filter, session_id)
    }

    /// Routes a message: updates the retained store if the message asks for it, then queues one
    /// copy for every session with a matching subscription, at the highest QoS among that
    /// session's matching subscriptions (3.3.5) capped by the message's QoS. Mailboxes that need
    /// waking are collected in `scratch`, which the caller wakes once its batch is routed;
    /// mailboxes the message overfilled are left in `scratch` for `take_full`. Returns the number
    /// of sessions it reached.
    pub fn publish(&self, message: &Arc<Message>, scratch: &mut RouteScratch) -> usize {
        if too_deep(&message.topic) {
            tracing::debug!("message not routed: topic deeper than the hierarchy limit");
            return 0;
        }
        if message.retain {
            self.retain(message);
        }
        let matches = &mut scratch.matches;
        matches.clear();
        self.tree.read().unwrap_or_else(PoisonError::into_inner).matches(&message.topic, matches);
        if matches.len() > 1 && matches.iter().any(|s| s.mailbox.subscription_count() > 1) {
            matches.sort_unstable_by(|a, b| a.session_id.cmp(&b.session_id).then(b.qos.cmp(&a.qos)));
            matches.dedup_by_key(|s| s.session_id);
        }
        let mut reached = 0;
        for subscriber in matches.drain(..) {
            let qos = subscriber.qos.min(message.qos);
            let delivery = Delivery { message: Arc::clone(message), qos, retain: false };
            match subscriber.mailbox.enqueue(delivery) {
                (outcome @ (PushOutcome::Queued | PushOutcome::OverLimit), wake) => {
                    reached += 1;
                    if outcome == PushOutcome::OverLimit {
                        scratch.full.push(Arc::clone(&subscriber.mailbox));
                    }
                    if wake {
                        scratch.wake.push(subscriber.mailbox);
                    }
                }
                // A drop is counted by the mailbox, for the session and the server.
                (PushOutcome::Dropped | PushOutcome::Offline, _) => {}
            }
        }
        reached
    }

    /// Stores, replaces or (empty payload) deletes the retained message of the message's topic.
    fn retain(&self, message: &Arc<Message>) {
        let outcome = self.retained.write().unwrap_or_else(PoisonError::into_inner).set(message);
        if outcome == RetainOutcome::Refused {
            let refused = self.metrics.count_retained_refused();
            if refused.is_power_of_two() {
                // Logged at powers of two and without the topic, so clients cannot flood the log.
                tracing::warn!(
                    refused,
                    "retained message limit reached; messages forwarded but not retained"
                );
            }
        }
    }
}

/// A summary: the whole tree or table would be too large to print.
impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::QueueLimits;
    use bytes::Bytes;

    /// A publisher whose message once reached many subscribers does not keep routing buffers of
    /// that size for the rest of its connection (before: 105-169 KB per idle connection).
    #[test]
    fn routing_scratch_is_given_back_after_a_large_fan_out() {
        let router = Router::new(0, Arc::new(Metrics::default()));
        let mailboxes: Vec<Arc<Mailbox>> =
            (1..=2000).map(|id| Arc::new(Mailbox::new(id, QueueLimits::messages(10)))).collect();
        for mailbox in &mailboxes {
            assert_eq!(router.subscribe("fan", mailbox, QoS::AtMostOnce, None), Ok(false));
        }
        let message = Arc::new(Message::new("fan".into(), Bytes::from_static(b"x"), QoS::AtMostOnce, false));
        let mut scratch = RouteScratch::default();
        assert_eq!(router.publish(&message, &mut scratch), 2000);
        scratch.wake_all();
        assert!(scratch.matches.capacity() <= MATCHES_SCRATCH_KEEP);
        assert!(scratch.wake.capacity() <= MATCHES_SCRATCH_KEEP);
    }

    /// [MQTT-4.6.0-6]: retained copies are queued before the subscription is visible, so the
    /// first thing a new subscriber's queue holds is the retained message.
    #[test]
    fn retained_copies_are_queued_before_the_subscription_is_visible() {
        let router = Router::new(0, Arc::new(Metrics::default()));
        let retained = Arc::new(Message::new("t".into(), Bytes::from_static(b"old"), QoS::AtMostOnce, true));
        router.publish(&retained, &mut RouteScratch::default());
        let limits = QueueLimits { max_retained: 10, ..QueueLimits::messages(10) };
        let mailbox = Arc::new(Mailbox::new(1, limits));
        let mut found = Vec::new();
        let mut budget = 1000;
        assert_eq!(
            router.subscribe("t", &mailbox, QoS::AtMostOnce, Some((&mut found, &mut budget))),
            Ok(false)
        );
        let live = Arc::new(Message::new("t".into(), Bytes::from_static(b"new"), QoS::AtMostOnce, false));
        router.publish(&live, &mut RouteScratch::default());
        let mut out = Vec::new();
        mailbox.pull(&mut out, 10, usize::MAX);
        let payloads: Vec<&[u8]> = out.iter().map(|d| &d.message.payload[..]).collect();
        assert_eq!(payloads, [&b"old"[..], &b"new"[..]]);
        assert!(out[0].retain && !out[1].retain, "[MQTT-3.3.1-8] RETAIN only on the retained copy");
    }
}
