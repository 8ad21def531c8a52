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

use std::num::NonZeroU32;
use std::sync::{Arc, PoisonError, RwLock};

use iothub_protocol::{QoS, SubscriptionOptions};

pub use retain::{RetainOutcome, RetainStore};
pub(crate) use tree::Pick;
pub use tree::SubscriptionTree;

use crate::config::SharedStrategy;
use crate::mailbox::{Mailbox, PushOutcome};
use crate::message::{too_deep, Delivery, Message};
use crate::metrics::Metrics;
use crate::storage::{Op, Store};

/// Most members a message tries when the ones picked for it turn out to have ended (each ended
/// session leaves the tree, so more tries are only needed when many end at once).
const MAX_SHARED_RETRIES: usize = 8;

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
    /// No Local: the session's own publications are not delivered to it [MQTT-3.8.3-3].
    pub no_local: bool,
    /// Retain As Published: forwarded messages keep their RETAIN flag [MQTT-3.3.1-13].
    pub retain_as_published: bool,
    /// The Subscription Identifier the subscription was made with, if any.
    pub subscription_id: Option<NonZeroU32>,
    /// The shared subscription (`$share/{group}/{filter}`) this is a member of, if any.
    pub shared: Option<Arc<str>>,
}

impl Subscriber {
    /// The subscription of `mailbox`'s session at `qos`, with no 5.0 options.
    pub fn new(mailbox: Arc<Mailbox>, qos: QoS) -> Subscriber {
        Subscriber {
            session_id: mailbox.session_id(),
            mailbox,
            qos,
            no_local: false,
            retain_as_published: false,
            subscription_id: None,
            shared: None,
        }
    }

    /// The subscription of `mailbox`'s session with these options and identifier.
    pub fn with_options(
        mailbox: Arc<Mailbox>,
        options: &SubscriptionOptions,
        subscription_id: Option<NonZeroU32>,
    ) -> Subscriber {
        Subscriber {
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            subscription_id,
            ..Subscriber::new(mailbox, options.qos)
        }
    }
}

/// A shared subscription filter taken apart (5.0 section 4.8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SharedFilter<'a> {
    /// The ShareName.
    pub(crate) group: &'a str,
    /// The topic filter after it.
    pub(crate) filter: &'a str,
}

/// Parses `$share/{ShareName}/{filter}`. `None` for a filter that is not a shared one;
/// `Some(Err(()))` for a malformed one: a ShareName that is empty or holds `+` or `#`
/// [MQTT-4.8.2-1], or no `/` and filter after it [MQTT-4.8.2-2].
#[allow(clippy::result_unit_err)]
pub(crate) fn parse_shared(filter: &str) -> Option<Result<SharedFilter<'_>, ()>> {
    let rest = filter.strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(()));
    };
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Some(Err(()));
    }
    Some(Ok(SharedFilter { group, filter: inner }))
}

/// Buffers a publishing connection reuses: the subscriptions a message matched, and the
/// mailboxes to wake once the connection has routed everything it read. Waking once per batch
/// rather than once per message lets each subscriber write the whole batch in one system call.
/// Dropping the scratch wakes whatever is pending, so no wake-up is ever lost.
#[derive(Debug, Default)]
pub struct RouteScratch {
    /// Matches of the message being routed.
    matches: Vec<Subscriber>,
    /// Shared subscription members picked for the message being routed.
    shared: Vec<Subscriber>,
    /// Mailboxes that went from empty to non-empty and wait to be woken.
    wake: Vec<Arc<Mailbox>>,
    /// Mailboxes the last message was queued in past their bound: the publisher waits for them
    /// before it acknowledges the message.
    full: Vec<Arc<Mailbox>>,
    /// The number of the last durable op the routed messages caused (queued for a persistent
    /// session, retained): the publisher's acknowledgement waits until it is committed.
    logged: u64,
    /// Durable ops of the publication being routed, issued together at its end.
    ops: Vec<Op>,
}

impl RouteScratch {
    /// The number of the last durable op routing caused since the last call.
    pub fn take_logged(&mut self) -> u64 {
        std::mem::take(&mut self.logged)
    }

    /// Adds a durable op to the publication about to be routed, to be issued with its own.
    pub(crate) fn add_op(&mut self, op: Op) {
        self.ops.push(op);
    }

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
        if self.shared.capacity() > MATCHES_SCRATCH_KEEP {
            self.shared = Vec::new();
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

/// The delivery of `message` to one matching subscription.
fn delivery_for(message: &Arc<Message>, subscriber: &Subscriber) -> Delivery {
    let mut delivery = Delivery::live(Arc::clone(message), subscriber.qos.min(message.qos));
    delivery.retain = message.retain && subscriber.retain_as_published;
    if let Some(id) = subscriber.subscription_id {
        delivery.add_subscription_id(id);
    }
    if let Some(key) = &subscriber.shared {
        delivery.set_shared(Arc::clone(key));
    }
    delivery
}

/// Queues a delivery, noting in `scratch` the mailbox to wake and whether it overfilled.
fn deliver(mailbox: &Arc<Mailbox>, delivery: Delivery, scratch: &mut RouteScratch) -> PushOutcome {
    let (outcome, wake) = mailbox.enqueue_grouped(delivery, Some(&mut scratch.ops));
    match (outcome, wake) {
        (outcome @ (PushOutcome::Queued | PushOutcome::OverLimit), wake) => {
            if outcome == PushOutcome::OverLimit {
                scratch.full.push(Arc::clone(mailbox));
            }
            if wake {
                scratch.wake.push(Arc::clone(mailbox));
            }
        }
        // A drop is counted by the mailbox, for the session and the server; a closed mailbox
        // belongs to a session that has ended.
        (PushOutcome::Dropped | PushOutcome::Offline | PushOutcome::Closed, _) => {}
    }
    outcome
}

/// The routing table and retained store of one server.
pub struct Router {
    /// Subscriptions by topic filter.
    tree: RwLock<SubscriptionTree>,
    /// Retained messages by topic.
    retained: RwLock<RetainStore>,
    /// Counters shared with the rest of the server.
    metrics: Arc<Metrics>,
    /// How shared subscriptions pick a member.
    strategy: SharedStrategy,
    /// Woken when a retained message that expires is stored, for the sweeper to look again.
    retained_expiry: tokio::sync::Notify,
    /// Durable storage, which every change of the retained store is logged to.
    store: Option<Arc<Store>>,
}

impl Router {
    /// A router with no subscriptions, holding at most `retained_limit` retained messages
    /// (0 means no limit).
    pub fn new(retained_limit: usize, metrics: Arc<Metrics>) -> Router {
        Router {
            tree: RwLock::new(SubscriptionTree::default()),
            retained: RwLock::new(RetainStore::new(retained_limit)),
            metrics,
            strategy: SharedStrategy::default(),
            retained_expiry: tokio::sync::Notify::new(),
            store: None,
        }
    }

    /// Stores `message` (retained, empty: a deletion) in the retained store only, routing it to
    /// no one; for the admin API's DELETE.
    pub(crate) fn delete_retained(&self, message: &Arc<Message>) {
        let _ = self.retain(message);
    }

    /// Every subscription with its filter; for the admin API.
    pub(crate) fn subscriptions(&self) -> Vec<(String, Subscriber)> {
        let mut all = Vec::new();
        self.tree.read().unwrap_or_else(PoisonError::into_inner).visit(&mut |filter, subscriber| {
            all.push((filter.to_owned(), subscriber.clone()));
        });
        all
    }

    /// Number of subscriptions, shared memberships included.
    pub(crate) fn subscription_count(&self) -> usize {
        self.tree.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Retained messages and their payload bytes.
    pub(crate) fn retained_counts(&self) -> (usize, usize) {
        let retained = self.retained.read().unwrap_or_else(PoisonError::into_inner);
        (retained.len(), retained.payload_bytes())
    }

    /// The retained messages whose topics `filter` matches.
    pub(crate) fn retained_matching(&self, filter: &str) -> Vec<Arc<Message>> {
        let mut found = Vec::new();
        self.retained.read().unwrap_or_else(PoisonError::into_inner).matching(filter, &mut found);
        found
    }

    /// The same router, logging retained-store changes to durable `store`.
    pub(crate) fn with_store(mut self, store: Option<Arc<Store>>) -> Router {
        self.store = store;
        self
    }

    /// Puts back a retained message read from durable storage, without logging it again.
    pub(crate) fn restore_retained(&self, message: &Arc<Message>) {
        let expires = message.expires_at.is_some();
        self.retained.write().unwrap_or_else(PoisonError::into_inner).set(message);
        if expires {
            self.retained_expiry.notify_one();
        }
    }

    /// The same router, picking shared subscription members by `strategy`.
    pub fn with_strategy(mut self, strategy: SharedStrategy) -> Router {
        self.strategy = strategy;
        self
    }

    /// Adds or replaces (same session, same filter) a subscription with `options` and
    /// `subscription_id`. Returns `Err` for a filter deeper than the hierarchy limit, `Ok(true)`
    /// if it replaced a subscription. A shared filter `$share/{group}/{filter}` (which the
    /// caller has checked with `parse_shared`) makes the session a member of that group.
    ///
    /// With `retained` (a scratch buffer and a walk budget) it first queues the retained
    /// messages matching the filter, with RETAIN=1 [MQTT-3.3.1-8], the subscription identifier,
    /// and at the lower of their QoS and the granted one [MQTT-3.8.4-3], within the mailbox's
    /// retained allowance and the walk budget (see `RetainStore::matching_at_most`), and only
    /// then makes the subscription visible to publishers. The retained store stays read-locked
    /// throughout, so a retained publication waits and is queued after them, and a live
    /// publication either misses the subscription (it was not yet made) or is queued after
    /// them: an older retained copy never overtakes a newer message of its topic
    /// [MQTT-4.6.0-6]. A shared subscription gets no retained messages (section 4.8.2).
    pub fn subscribe(
        &self,
        filter: &str,
        mailbox: &Arc<Mailbox>,
        options: &SubscriptionOptions,
        subscription_id: Option<NonZeroU32>,
        retained: Option<(&mut Vec<Arc<Message>>, &mut usize)>,
    ) -> Result<bool, TooDeep> {
        if too_deep(filter) {
            return Err(TooDeep);
        }
        let subscriber = Subscriber::with_options(Arc::clone(mailbox), options, subscription_id);
        if let Some(Ok(shared)) = parse_shared(filter) {
            let key: Arc<str> = Arc::from(filter);
            let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
            return Ok(tree.insert_shared(&key, shared.filter, subscriber));
        }
        let store = self.retained.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((scratch, budget)) = retained {
            scratch.clear();
            if !store.matching_at_most(filter, scratch, usize::MAX, budget) {
                self.metrics.count_retained_walk_cut();
            }
            for message in scratch.drain(..) {
                let mut delivery = Delivery::retained(message, options.qos);
                delivery.qos = delivery.message.qos.min(options.qos);
                if let Some(id) = subscription_id {
                    delivery.add_subscription_id(id);
                }
                // A drop is counted by the mailbox.
                mailbox.push(delivery);
            }
            if scratch.capacity() > RETAINED_SCRATCH_KEEP {
                *scratch = Vec::new();
            }
        }
        let replaced = self.tree.write().unwrap_or_else(PoisonError::into_inner).insert(filter, subscriber);
        drop(store);
        Ok(replaced)
    }

    /// Removes the subscription of session `session_id` to `filter` (shared or not). Returns
    /// true if it existed.
    pub fn unsubscribe(&self, filter: &str, session_id: u64) -> bool {
        let mut tree = self.tree.write().unwrap_or_else(PoisonError::into_inner);
        match parse_shared(filter) {
            Some(Ok(shared)) => tree.remove_shared(filter, shared.filter, session_id),
            _ => tree.remove(filter, session_id),
        }
    }

    /// Routes a message: updates the retained store if the message asks for it, then queues one
    /// copy for every session with a matching subscription, at the highest QoS among that
    /// session's matching subscriptions capped by the message's QoS, with the identifiers of all
    /// of them [MQTT-3.3.4-3] (3.3.5), and one copy for one member of each matching shared
    /// subscription group. A subscription with No Local does not get its own session's messages
    /// [MQTT-3.8.3-3]; one with Retain As Published gets the RETAIN flag as published
    /// [MQTT-3.3.1-13], the others RETAIN=0 [MQTT-3.3.1-12]. Mailboxes that need waking are
    /// collected in `scratch`, which the caller wakes once its batch is routed; mailboxes the
    /// message overfilled are left in `scratch` for `take_full`. Returns the number of
    /// subscriptions that matched, whether or not their queue took the message.
    pub fn publish(&self, message: &Arc<Message>, scratch: &mut RouteScratch) -> usize {
        if too_deep(&message.topic) {
            tracing::debug!("message not routed: topic deeper than the hierarchy limit");
            self.issue_ops(scratch);
            return 0;
        }
        if message.retain {
            if let Some(logged) = self.retain(message) {
                scratch.logged = scratch.logged.max(logged);
            }
        }
        let mut matches = std::mem::take(&mut scratch.matches);
        let mut shared = std::mem::take(&mut scratch.shared);
        matches.clear();
        shared.clear();
        let pick = Pick { strategy: self.strategy, origin_hash: message.origin_hash };
        self.tree.read().unwrap_or_else(PoisonError::into_inner).matches_with_shared(
            &message.topic,
            &mut matches,
            &mut shared,
            pick,
        );
        if message.origin != 0 {
            matches.retain(|s| !(s.no_local && s.session_id == message.origin));
        }
        let matched = matches.len() + shared.len();
        if matches.len() > 1 && matches.iter().any(|s| s.mailbox.subscription_count() > 1) {
            // Overlapping subscriptions of one session make one delivery.
            matches.sort_unstable_by_key(|s| s.session_id);
            let mut rest = &matches[..];
            while let Some(first) = rest.first() {
                let run = rest.iter().take_while(|s| s.session_id == first.session_id).count();
                let (group, tail) = rest.split_at(run);
                rest = tail;
                let qos = group.iter().map(|s| s.qos).max().unwrap_or_default().min(message.qos);
                let mut delivery = Delivery::live(Arc::clone(message), qos);
                delivery.retain = message.retain && group.iter().any(|s| s.retain_as_published);
                for id in group.iter().filter_map(|s| s.subscription_id) {
                    delivery.add_subscription_id(id);
                }
                deliver(&first.mailbox, delivery, scratch);
            }
        } else {
            for subscriber in &matches {
                deliver(&subscriber.mailbox, delivery_for(message, subscriber), scratch);
            }
        }
        for member in &shared {
            if deliver(&member.mailbox, delivery_for(message, member), scratch) == PushOutcome::Closed {
                // The member's session ended after the match: another member takes it.
                self.redeliver_shared(message, member, scratch);
            }
        }
        matches.clear();
        shared.clear();
        scratch.matches = matches;
        scratch.shared = shared;
        self.issue_ops(scratch);
        matched
    }

    /// Issues the durable ops of the publication just routed, together.
    fn issue_ops(&self, scratch: &mut RouteScratch) {
        match &self.store {
            Some(store) => {
                let logged = store.issue_all(&mut scratch.ops);
                scratch.logged = scratch.logged.max(logged);
            }
            None => scratch.ops.clear(),
        }
    }

    /// Gives `message` to another member of the shared group that `left` was picked from,
    /// because `left`'s session ended between the match and the delivery. Tries each member at
    /// most once.
    fn redeliver_shared(&self, message: &Arc<Message>, left: &Subscriber, scratch: &mut RouteScratch) {
        let Some(key) = left.shared.as_deref() else { return };
        let Some(Ok(shared)) = parse_shared(key) else { return };
        let pick = Pick { strategy: self.strategy, origin_hash: message.origin_hash };
        for _ in 0..MAX_SHARED_RETRIES {
            let member = self.tree.read().unwrap_or_else(PoisonError::into_inner).shared_member(
                key,
                shared.filter,
                pick,
            );
            let Some(member) = member else { return };
            if deliver(&member.mailbox, delivery_for(message, &member), scratch) != PushOutcome::Closed {
                return;
            }
        }
    }

    /// Hands deliveries that a shared subscription member's ended session still held (queued, or
    /// sent at QoS 1 and unacknowledged; see `Session::take_shared_deliveries`) to another member
    /// of the same group, so that they are not lost when a member leaves (section 4.8.2). The leaving session must already be out of the tree.
    /// Deliveries of no shared subscription, and those whose group has no member left, are
    /// dropped. Returns the number handed on.
    pub fn hand_on_shared(&self, deliveries: Vec<Delivery>, scratch: &mut RouteScratch) -> usize {
        let mut handed = 0;
        for delivery in deliveries {
            let Some(key) = delivery.shared().cloned() else {
                continue;
            };
            let Some(Ok(shared)) = parse_shared(&key) else {
                continue;
            };
            let pick = Pick { strategy: self.strategy, origin_hash: delivery.message.origin_hash };
            let member = self.tree.read().unwrap_or_else(PoisonError::into_inner).shared_member(
                &key,
                shared.filter,
                pick,
            );
            let Some(member) = member else {
                continue;
            };
            let mut onward = delivery_for(&delivery.message, &member);
            onward.qos = delivery.message.qos.min(member.qos);
            deliver(&member.mailbox, onward, scratch);
            handed += 1;
        }
        self.issue_ops(scratch);
        scratch.wake_all();
        drop(scratch.take_full());
        handed
    }

    /// Deletes the retained messages whose expiry time has passed at `now`.
    pub fn expire_retained(&self, now: tokio::time::Instant) -> usize {
        let mut topics = Vec::new();
        let expired =
            self.retained.write().unwrap_or_else(PoisonError::into_inner).expire_into(now, &mut topics);
        if let Some(store) = &self.store {
            for topic in topics {
                store.issue(Op::Unretain { topic });
            }
        }
        expired
    }

    /// When the next retained message expires, if one does.
    pub fn next_retained_expiry(&self) -> Option<tokio::time::Instant> {
        self.retained.read().unwrap_or_else(PoisonError::into_inner).next_expiry()
    }

    /// Completes when a retained message that expires has been stored since the last call.
    pub async fn retained_expiry_changed(&self) {
        self.retained_expiry.notified().await;
    }

    /// Stores, replaces or (empty payload) deletes the retained message of the message's topic.
    /// Returns the number of the durable op that logged the change, if there is a store. The op
    /// is issued under the store's write lock, so the log has the changes of a topic in order.
    fn retain(&self, message: &Arc<Message>) -> Option<u64> {
        let mut retained = self.retained.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = retained.set(message);
        // `$SYS` topics are the broker's own and republished after a restart: never stored.
        let durable = self.store.as_ref().filter(|_| !message.topic.starts_with("$SYS"));
        let logged = durable.and_then(|store| match outcome {
            RetainOutcome::Stored => Some(store.issue(Op::Retain { message: Arc::clone(message) })),
            RetainOutcome::Deleted => Some(store.issue(Op::Unretain { topic: message.topic.clone() })),
            RetainOutcome::Refused => None,
        });
        drop(retained);
        if outcome == RetainOutcome::Stored && message.expires_at.is_some() {
            self.retained_expiry.notify_one();
        }
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
        logged
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
            assert_eq!(
                router.subscribe("fan", mailbox, &SubscriptionOptions::default(), None, None),
                Ok(false)
            );
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
            router.subscribe(
                "t",
                &mailbox,
                &SubscriptionOptions::default(),
                None,
                Some((&mut found, &mut budget))
            ),
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
