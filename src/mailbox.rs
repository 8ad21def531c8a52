//! The mailbox: a session's bounded queue of messages waiting to be sent.
//!
//! Publishers push into it without waiting; the connection that owns the session pulls from it
//! when its inflight window has room. It outlives connections, so a persistent session keeps
//! collecting QoS 1 and 2 messages while its client is offline.
//!
//! Bounds: `max_queued_messages` live deliveries and `max_queued_bytes` of encoded PUBLISH
//! packets (topic, header and payload, so a long topic costs what it costs on the wire), plus a
//! separate allowance for retained messages sent on subscribe.
//!
//! Overflow policy:
//! - QoS 0 is fire-and-forget: it is dropped when the queue is full, and an arriving QoS 1/2
//!   message takes the place of the oldest queued QoS 0 one.
//! - A QoS 1/2 message for a connected session whose queue is full is queued anyway, one past the
//!   bound, and the push reports `OverLimit`: the publisher then holds its acknowledgement (and
//!   stops reading) until the queue is back under its bound, so a publisher can overfill a queue
//!   by at most the one message it waits on. If that takes longer than
//!   `slow_subscriber_timeout_ms`, the publisher calls `overflow` and the slow session pays by the
//!   configured `QueueOverflow` policy.
//! - An offline session, or one already disconnected as slow, is not waited on: the message is
//!   dropped by the policy (the newest, or with `drop_oldest` the oldest).
//!
//! Every drop is counted and logged at powers of two. A push never waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use iothub_protocol::QoS;
use tokio::sync::Notify;

use crate::message::Delivery;
use crate::metrics::Metrics;
use crate::storage::{Op, SessionLog};

/// What happened to a pushed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// It is queued.
    Queued,
    /// It is queued past the queue's bound: the publisher must wait for room (or for
    /// `slow_subscriber_timeout_ms`) before it acknowledges the message.
    OverLimit,
    /// The queue was full; it (or, by policy, an older message) was dropped.
    Dropped,
    /// The session is offline and the delivery is QoS 0, which offline sessions do not queue.
    Offline,
    /// The session has ended (`take_all` emptied its mailbox for good): nothing is queued.
    Closed,
}

/// What a slow session pays once a publisher has waited `slow_subscriber_timeout_ms` for room in
/// its queue (`server.queue_overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOverflow {
    /// The slow subscriber is disconnected; a persistent session keeps queuing within its bounds.
    Disconnect,
    /// The oldest queued messages are dropped until the queue is within its bounds.
    DropOldest,
    /// The newest queued messages are dropped until the queue is within its bounds.
    DropNewest,
}

/// Bounds of a mailbox.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most live deliveries queued at once.
    pub max_messages: usize,
    /// Most encoded bytes of live deliveries queued at once; 0 means no byte limit.
    pub max_bytes: usize,
    /// Most retained deliveries (sent on subscribe) queued at once, besides the live ones.
    pub max_retained: usize,
    /// What a full queue costs its session.
    pub overflow: QueueOverflow,
}

impl QueueLimits {
    /// Bounds of `max_messages` live deliveries and nothing else: no byte limit, no retained
    /// allowance, and the default overflow policy.
    pub fn messages(max_messages: usize) -> QueueLimits {
        QueueLimits { max_messages, max_bytes: 0, max_retained: 0, overflow: QueueOverflow::Disconnect }
    }
}

/// A session's queue of outbound messages.
#[derive(Debug)]
pub struct Mailbox {
    /// Identity of the session this mailbox belongs to; unique for the life of the process.
    session_id: u64,
    /// The queue itself; held only for O(1) pushes and batched pulls, never across an `.await`.
    inner: Mutex<Inner>,
    /// Wakes the owning connection when something arrives.
    notify: Notify,
    /// Wakes publishers waiting for the queue to get back under its bound.
    room: Notify,
    /// Bounds of the queue.
    limits: QueueLimits,
    /// Deliveries dropped because the queue was full.
    dropped: AtomicU64,
    /// Deliveries not sent because they exceed the client's Maximum Packet Size.
    too_large: AtomicU64,
    /// Subscriptions held by the owning session.
    subscriptions: AtomicUsize,
    /// QoS 1/2 messages sent to the session's client and not yet acknowledged, as its
    /// connection last saw (for the admin API and metrics).
    inflight: AtomicUsize,
    /// Set when a publisher gave up waiting and the session must be disconnected as slow.
    slow: AtomicBool,
    /// A copy of `Inner::online`, read without the lock (to pick a shared subscription member).
    online: AtomicBool,
    /// Server-wide counters that every drop is also counted in.
    metrics: Option<Arc<Metrics>>,
    /// The durable log of a persistent session, when the server has durable storage: QoS 1/2
    /// deliveries are logged as they are queued, under the lock, so that the op is issued
    /// before anyone can pull the delivery.
    log: Option<SessionLog>,
}

#[derive(Debug)]
struct Inner {
    /// Waiting deliveries, oldest first.
    queue: VecDeque<Delivery>,
    /// Encoded bytes of the live deliveries in `queue`.
    bytes: usize,
    /// QoS 0 deliveries in `queue`.
    qos0: usize,
    /// Retained deliveries in `queue`.
    retained: usize,
    /// Oldest QoS 0 deliveries already given up for newer QoS 1/2 ones; they are skipped (and
    /// removed) by the next pulls, which keeps eviction O(1).
    qos0_doomed: usize,
    /// Whether a connection currently owns the session.
    online: bool,
    /// Set by `take_all`: the session has ended and takes nothing more.
    closed: bool,
}

impl Inner {
    /// Live deliveries that will still be sent.
    fn live(&self) -> usize {
        self.queue.len() - self.retained - self.qos0_doomed
    }

    fn remove_accounting(&mut self, delivery: &Delivery) {
        if delivery.on_subscribe {
            self.retained -= 1;
        } else {
            self.bytes -= delivery.size();
            if delivery.qos == QoS::AtMostOnce {
                self.qos0 -= 1;
            }
        }
    }
}

impl Mailbox {
    /// An empty mailbox for session `session_id`.
    pub fn new(session_id: u64, limits: QueueLimits) -> Mailbox {
        let inner = Inner {
            queue: VecDeque::new(),
            bytes: 0,
            qos0: 0,
            retained: 0,
            qos0_doomed: 0,
            online: true,
            closed: false,
        };
        Mailbox {
            session_id,
            inner: Mutex::new(inner),
            notify: Notify::new(),
            room: Notify::new(),
            limits,
            dropped: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            subscriptions: AtomicUsize::new(0),
            inflight: AtomicUsize::new(0),
            slow: AtomicBool::new(false),
            online: AtomicBool::new(true),
            metrics: None,
            log: None,
        }
    }

    /// The same mailbox, logging its session's durable changes to `log`.
    pub(crate) fn logging_to(mut self, log: SessionLog) -> Mailbox {
        self.log = Some(log);
        self
    }

    /// The session's durable log, if the session is persistent and storage durable.
    pub(crate) fn log(&self) -> Option<&SessionLog> {
        self.log.as_ref()
    }

    /// The number of the last durable op issued for this session (0 without a log).
    pub(crate) fn last_logged(&self) -> u64 {
        self.log.as_ref().map_or(0, SessionLog::last)
    }

    /// Puts back a delivery read from durable storage, at the end of the queue, without
    /// logging it again or applying the bounds: it was accepted before the restart.
    pub(crate) fn restore(&self, delivery: Delivery) {
        let mut inner = self.lock();
        if delivery.on_subscribe {
            inner.retained += 1;
        } else {
            inner.bytes += delivery.size();
            if delivery.qos == QoS::AtMostOnce {
                inner.qos0 += 1;
            }
        }
        inner.queue.push_back(delivery);
    }

    /// The same mailbox, counting its drops in the server-wide `metrics` too.
    pub fn counting_in(mut self, metrics: Arc<Metrics>) -> Mailbox {
        self.metrics = Some(metrics);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Identity of the owning session.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Number of deliveries dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Number of deliveries waiting.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.queue.len() - inner.qos0_doomed
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks the session as connected or not. Offline sessions drop QoS 0 deliveries, as
    /// Mosquitto does by default. Coming online clears a pending slow-subscriber disconnect.
    pub fn set_online(&self, online: bool) {
        self.lock().online = online;
        self.online.store(online, Ordering::Release);
        if online {
            self.slow.store(false, Ordering::Release);
        }
    }

    /// Counts a delivery not sent because its expiry interval had passed.
    pub fn count_expired(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.dropped_expired.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a delivery not sent because the subscriber may no longer read its topic.
    pub fn count_acl_denied(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.dropped_acl.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a delivery not sent because it exceeds the client's Maximum Packet Size,
    /// logging at powers of two.
    pub fn count_too_large(&self) {
        let dropped = self.too_large.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(metrics) = &self.metrics {
            metrics.dropped_too_large.fetch_add(1, Ordering::Relaxed);
        }
        if dropped.is_power_of_two() {
            tracing::info!(
                session = self.session_id,
                dropped,
                "messages not sent: larger than the client's Maximum Packet Size"
            );
        }
    }

    /// Deliveries not sent because they exceed the client's Maximum Packet Size.
    pub fn too_large(&self) -> u64 {
        self.too_large.load(Ordering::Relaxed)
    }

    /// Whether a connection owns the session; may lag a concurrent `set_online`.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Removes and returns every queued delivery, oldest first, for a session that ends with
    /// messages another session must take (shared subscriptions), and closes the mailbox: a
    /// publisher that found the session in the router just before it left is told `Closed`
    /// and can give the message to another member instead of losing it.
    pub fn take_all(&self) -> Vec<Delivery> {
        let mut inner = self.lock();
        inner.closed = true;
        let doomed = inner.qos0_doomed;
        let taken: Vec<Delivery> = inner.queue.drain(..).collect();
        inner.bytes = 0;
        inner.qos0 = 0;
        inner.retained = 0;
        inner.qos0_doomed = 0;
        drop(inner);
        self.room.notify_waiters();
        // The doomed QoS 0 deliveries were already counted as dropped.
        let mut skip = doomed;
        taken
            .into_iter()
            .filter(|d| {
                let doomed = skip > 0 && d.qos == QoS::AtMostOnce && !d.on_subscribe;
                if doomed {
                    skip -= 1;
                }
                !doomed
            })
            .collect()
    }

    /// Queues a delivery without waiting, applying the overflow policy of this module, and wakes
    /// the owning connection.
    pub fn push(&self, delivery: Delivery) -> PushOutcome {
        let (outcome, _) = self.enqueue(delivery);
        if matches!(outcome, PushOutcome::Queued | PushOutcome::OverLimit) {
            self.wake();
        }
        outcome
    }

    /// Wakes the owning connection so that it pulls what is queued.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Queues a delivery like `push` but leaves the wake-up to the caller, so that a publisher can
    /// route a whole batch first and wake each subscriber once. The flag is true when the queue
    /// was empty: only then must the caller wake the mailbox, because a connection that left
    /// messages queued is already bound to pull again.
    pub fn enqueue(&self, delivery: Delivery) -> (PushOutcome, bool) {
        self.enqueue_grouped(delivery, None)
    }

    /// `enqueue`, with the durable op of a persistent session's QoS 1/2 delivery put in `group`
    /// (the ops of one publication, issued together) instead of issued now.
    pub(crate) fn enqueue_grouped(
        &self,
        mut delivery: Delivery,
        group: Option<&mut Vec<Op>>,
    ) -> (PushOutcome, bool) {
        let mut inner = self.lock();
        if inner.closed {
            return (PushOutcome::Closed, false);
        }
        let outcome = if delivery.on_subscribe {
            self.admit_retained(&inner)
        } else {
            self.admit_live(&mut inner, &delivery)
        };
        match outcome {
            PushOutcome::Queued | PushOutcome::OverLimit => {
                let was_empty = inner.queue.len() == inner.qos0_doomed;
                if let (Some(log), false) = (&self.log, delivery.qos == QoS::AtMostOnce) {
                    log.enqueue(&mut delivery, group);
                }
                if delivery.on_subscribe {
                    inner.retained += 1;
                } else {
                    inner.bytes += delivery.size();
                    if delivery.qos == QoS::AtMostOnce {
                        inner.qos0 += 1;
                    }
                }
                inner.queue.push_back(delivery);
                (outcome, was_empty)
            }
            PushOutcome::Dropped => {
                drop(inner);
                self.count_drop(delivery.qos);
                (outcome, false)
            }
            PushOutcome::Offline | PushOutcome::Closed => (outcome, false),
        }
    }

    fn admit_retained(&self, inner: &Inner) -> PushOutcome {
        if inner.retained >= self.limits.max_retained {
            PushOutcome::Dropped
        } else {
            PushOutcome::Queued
        }
    }

    fn admit_live(&self, inner: &mut Inner, delivery: &Delivery) -> PushOutcome {
        if !inner.online && delivery.qos == QoS::AtMostOnce {
            return PushOutcome::Offline;
        }
        let size = delivery.size();
        let full_by_count = inner.live() >= self.limits.max_messages;
        let full_by_bytes =
            self.limits.max_bytes != 0 && inner.bytes + size > self.limits.max_bytes && inner.live() > 0;
        if !full_by_count && !full_by_bytes {
            return PushOutcome::Queued;
        }
        if delivery.qos == QoS::AtMostOnce {
            return PushOutcome::Dropped;
        }
        if !full_by_bytes && inner.qos0 > inner.qos0_doomed {
            // The oldest queued QoS 0 delivery gives way; the next pull removes it.
            inner.qos0_doomed += 1;
            self.count_drop(QoS::AtMostOnce);
            return PushOutcome::Queued;
        }
        if inner.online && !self.slow.load(Ordering::Acquire) {
            return PushOutcome::OverLimit;
        }
        if self.limits.overflow == QueueOverflow::DropOldest {
            self.drop_oldest_live(inner);
            return PushOutcome::Queued;
        }
        PushOutcome::Dropped
    }

    /// Drops the oldest live delivery, counting it.
    fn drop_oldest_live(&self, inner: &mut Inner) {
        let position = inner.queue.iter().position(|d| !d.on_subscribe);
        if let Some(evicted) = position.and_then(|index| inner.queue.remove(index)) {
            inner.remove_accounting(&evicted);
            self.count_drop(evicted.qos);
            if let Some(log) = &self.log {
                log.done(&evicted);
            }
        }
    }

    /// True while the live deliveries exceed the queue's bounds.
    pub fn over_limit(&self) -> bool {
        let inner = self.lock();
        self.is_over(&inner)
    }

    fn is_over(&self, inner: &Inner) -> bool {
        inner.live() > self.limits.max_messages
            || (self.limits.max_bytes != 0 && inner.bytes > self.limits.max_bytes && inner.live() > 1)
    }

    /// Waits until the queue is back within its bounds. Returns at once if it already is, if the
    /// session went offline, or if it is being disconnected as slow.
    pub async fn room_available(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.lock();
                if !self.is_over(&inner) || !inner.online || self.slow.load(Ordering::Acquire) {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Makes a session whose queue stayed over its bound for `slow_subscriber_timeout_ms` pay by
    /// the configured policy: disconnect it, or drop messages until the queue is within bounds.
    pub fn overflow(&self) {
        let mut inner = self.lock();
        if !self.is_over(&inner) {
            return;
        }
        match self.limits.overflow {
            QueueOverflow::Disconnect => {
                drop(inner);
                if !self.slow.swap(true, Ordering::AcqRel) {
                    tracing::warn!(session = self.session_id, "slow subscriber: disconnecting it");
                }
                self.room.notify_waiters();
                self.wake();
            }
            QueueOverflow::DropOldest => {
                while self.is_over(&inner) {
                    self.drop_oldest_live(&mut inner);
                }
            }
            QueueOverflow::DropNewest => {
                while self.is_over(&inner) {
                    let position = inner.queue.iter().rposition(|d| !d.on_subscribe);
                    let Some(evicted) = position.and_then(|index| inner.queue.remove(index)) else {
                        break;
                    };
                    inner.remove_accounting(&evicted);
                    self.count_drop(evicted.qos);
                    if let Some(log) = &self.log {
                        log.done(&evicted);
                    }
                }
            }
        }
    }

    /// True once a publisher has given up on this session under `queue_overflow = "disconnect"`;
    /// the owning connection must then close.
    pub fn is_slow(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }

    /// Records how many subscriptions the owning session holds, so that the router knows when a
    /// message may match the session twice.
    pub fn set_subscription_count(&self, count: usize) {
        self.subscriptions.store(count, Ordering::Relaxed);
    }

    /// Records the session's messages in flight.
    pub(crate) fn set_inflight(&self, count: usize) {
        self.inflight.store(count, Ordering::Relaxed);
    }

    /// The session's messages in flight, as its connection last recorded.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Number of subscriptions the owning session holds.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Counts one dropped delivery, for the session and (if attached) the server, and logs at
    /// powers of two.
    fn count_drop(&self, qos: QoS) {
        if let Some(metrics) = &self.metrics {
            metrics.count_dropped(qos);
        }
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(session = self.session_id, dropped, "session queue full; dropping messages");
        }
    }

    /// Moves deliveries, oldest first, into `out`: any number of QoS 0 deliveries, at most
    /// `qos_room` QoS 1/2 ones, stopping once `byte_budget` encoded bytes have been taken (at
    /// least one delivery is taken if any fits the QoS rule). Order is kept: a QoS 1/2 delivery
    /// that does not fit the window stops the pull. Publishers waiting for room are woken when
    /// the queue gets back within its bounds.
    pub fn pull(&self, out: &mut Vec<Delivery>, mut qos_room: usize, byte_budget: usize) {
        let mut inner = self.lock();
        let was_over = self.is_over(&inner);
        let mut taken_bytes = 0;
        while let Some(front) = inner.queue.front() {
            if front.qos == QoS::AtMostOnce && !front.on_subscribe && inner.qos0_doomed > 0 {
                if let Some(doomed) = inner.queue.pop_front() {
                    inner.qos0_doomed -= 1;
                    inner.remove_accounting(&doomed);
                }
                continue;
            }
            let size = front.size();
            if front.qos != QoS::AtMostOnce && qos_room == 0 {
                break;
            }
            if taken_bytes > 0 && taken_bytes + size > byte_budget {
                break;
            }
            let Some(delivery) = inner.queue.pop_front() else {
                break;
            };
            if delivery.qos != QoS::AtMostOnce {
                qos_room -= 1;
            }
            inner.remove_accounting(&delivery);
            taken_bytes += size;
            out.push(delivery);
        }
        if was_over && !self.is_over(&inner) {
            drop(inner);
            self.room.notify_waiters();
        }
    }

    /// Waits until something is pushed. A push that happens before this is awaited is not
    /// missed.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;

    fn limits(max_messages: usize, max_bytes: usize) -> QueueLimits {
        QueueLimits { max_messages, max_bytes, max_retained: 4, overflow: QueueOverflow::Disconnect }
    }

    fn delivery(qos: QoS, payload: &'static str) -> Delivery {
        let message = Arc::new(Message::new("t".into(), Bytes::from_static(payload.as_bytes()), qos, false));
        Delivery::live(message, qos)
    }

    fn payloads(mailbox: &Mailbox) -> Vec<Bytes> {
        let mut out = Vec::new();
        mailbox.pull(&mut out, usize::MAX, usize::MAX);
        out.into_iter().map(|d| d.message.payload.clone()).collect()
    }

    #[test]
    fn full_queue_drops_qos0_first_then_waits_for_qos1() {
        let mailbox = Mailbox::new(1, limits(2, 0));
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "a")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "b")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "c")), PushOutcome::Dropped);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "d")), PushOutcome::Queued, "a gives way");
        assert_eq!(mailbox.push(delivery(QoS::ExactlyOnce, "e")), PushOutcome::OverLimit);
        assert!(mailbox.over_limit());
        assert_eq!(mailbox.dropped(), 2);
        assert_eq!(payloads(&mailbox), vec!["b", "d", "e"]);
        assert!(!mailbox.over_limit());
    }

    #[test]
    fn drops_are_counted_for_the_server_too() {
        let metrics = Arc::new(Metrics::default());
        let mailbox = Mailbox::new(1, limits(1, 0)).counting_in(Arc::clone(&metrics));
        mailbox.push(delivery(QoS::AtMostOnce, "a"));
        mailbox.push(delivery(QoS::AtMostOnce, "b"));
        mailbox.push(delivery(QoS::AtLeastOnce, "c"));
        assert_eq!(metrics.dropped_qos0.load(Ordering::Relaxed), 2, "b dropped, a given way to c");
        mailbox.set_online(false);
        mailbox.push(delivery(QoS::AtLeastOnce, "d"));
        assert_eq!(metrics.dropped_qos12.load(Ordering::Relaxed), 1);
        assert_eq!(mailbox.dropped(), 3);
    }

    /// The pull's byte budget counts topics too: deliveries of long topics and empty payloads
    /// are not pulled a whole queue at a time (before, 1,000 of them with 60 kB topics went into
    /// one write buffer, 57 MB per non-reading subscriber).
    #[test]
    fn pull_budget_counts_topic_bytes() {
        let mailbox = Mailbox::new(1, limits(1000, 0));
        let topic: String = "t".repeat(60_000);
        for _ in 0..100 {
            let message = Arc::new(Message::new(topic.as_str().into(), Bytes::new(), QoS::AtMostOnce, false));
            mailbox.push(Delivery::live(message, QoS::AtMostOnce));
        }
        let mut out = Vec::new();
        mailbox.pull(&mut out, usize::MAX, 64 * 1024);
        assert_eq!(out.len(), 1, "one 60 kB delivery fills a 64 KiB budget");
    }

    #[test]
    fn byte_limit_counts_the_encoded_packet() {
        // A QoS 1 PUBLISH to "t" with a 3-byte payload is 2 + 3 + 2 + 2 + 1 = 10 bytes.
        let mailbox = Mailbox::new(1, limits(100, 20));
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "abc")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "def")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "ghi")), PushOutcome::OverLimit);
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "j")), PushOutcome::Dropped);
    }

    #[test]
    fn offline_sessions_drop_qos0_and_drop_newest_when_full() {
        let mailbox = Mailbox::new(1, limits(1, 0));
        mailbox.set_online(false);
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "a")), PushOutcome::Offline);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "b")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "c")), PushOutcome::Dropped);
        assert_eq!(payloads(&mailbox), vec!["b"]);
    }

    #[test]
    fn overflow_policies_bring_the_queue_back_within_bounds() {
        for (overflow, expected) in [(QueueOverflow::DropOldest, "b"), (QueueOverflow::DropNewest, "a")] {
            let mailbox =
                Mailbox::new(1, QueueLimits { max_messages: 1, max_bytes: 0, max_retained: 0, overflow });
            mailbox.push(delivery(QoS::AtLeastOnce, "a"));
            assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "b")), PushOutcome::OverLimit);
            mailbox.overflow();
            assert_eq!(payloads(&mailbox), vec![expected]);
            assert_eq!(mailbox.dropped(), 1);
        }
        let mailbox = Mailbox::new(1, limits(1, 0));
        mailbox.push(delivery(QoS::AtLeastOnce, "a"));
        mailbox.push(delivery(QoS::AtLeastOnce, "b"));
        mailbox.overflow();
        assert!(mailbox.is_slow());
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "c")), PushOutcome::Dropped, "no second wait");
    }

    #[test]
    fn retained_deliveries_have_their_own_allowance() {
        let mailbox = Mailbox::new(1, limits(1, 0));
        for _ in 0..4 {
            let mut retained = delivery(QoS::AtLeastOnce, "r");
            retained.retain = true;
            retained.on_subscribe = true;
            assert_eq!(mailbox.push(retained), PushOutcome::Queued);
        }
        let mut fifth = delivery(QoS::AtLeastOnce, "r");
        fifth.retain = true;
        fifth.on_subscribe = true;
        assert_eq!(mailbox.push(fifth), PushOutcome::Dropped);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "live")), PushOutcome::Queued);
        assert_eq!(payloads(&mailbox).len(), 5);
    }

    #[test]
    fn pull_respects_the_inflight_window_and_order() {
        let mailbox = Mailbox::new(1, limits(10, 0));
        for (qos, p) in [(QoS::AtLeastOnce, "1"), (QoS::AtMostOnce, "2"), (QoS::AtLeastOnce, "3")] {
            mailbox.push(delivery(qos, p));
        }
        let mut out = Vec::new();
        mailbox.pull(&mut out, 1, usize::MAX);
        assert_eq!(out.len(), 2, "QoS 1 then QoS 0, then the window is full");
        assert_eq!(mailbox.len(), 1);
    }

    /// A mailbox emptied by `take_all` belongs to an ended session: it takes nothing more, and
    /// says so, so that a shared subscription message can go to another member.
    #[test]
    fn take_all_returns_the_queue_and_closes_the_mailbox() {
        let mailbox = Mailbox::new(1, limits(10, 0));
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "a")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "b")), PushOutcome::Queued);
        let all = mailbox.take_all();
        let payloads: Vec<&[u8]> = all.iter().map(|d| &d.message.payload[..]).collect();
        assert_eq!(payloads, [&b"a"[..], &b"b"[..]]);
        assert!(mailbox.is_empty());
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "c")), PushOutcome::Closed);
        assert!(mailbox.is_empty());
    }
}
