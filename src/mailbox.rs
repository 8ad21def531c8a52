//! The mailbox: a session's bounded queue of messages waiting to be sent.
//!
//! Publishers push into it without waiting; the connection that owns the session pulls from it
//! when its inflight window has room. It outlives connections, so a persistent session keeps
//! collecting QoS 1 and 2 messages while its client is offline.
//!
//! Overflow policy: when `max_queued_messages` or `max_queued_bytes` is reached, an arriving
//! QoS 0 message is dropped; an arriving QoS 1 or 2 message evicts the oldest queued QoS 0
//! message if there is one, and is dropped otherwise. Every drop is counted. A publisher is never
//! made to wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use iothub_protocol::QoS;
use tokio::sync::Notify;

use crate::message::Delivery;

/// What happened to a pushed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// It is queued.
    Queued,
    /// The queue was full; it was dropped.
    Dropped,
    /// The session is offline and the delivery is QoS 0, which offline sessions do not queue.
    Offline,
}

/// Bounds of a mailbox.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most messages queued at once.
    pub max_messages: usize,
    /// Most payload bytes queued at once; 0 means no byte limit.
    pub max_bytes: usize,
}

/// A session's queue of outbound messages.
pub struct Mailbox {
    /// Identity of the session this mailbox belongs to; unique for the life of the process.
    session_id: u64,
    /// The queue itself; held only for pushes and batched pulls, never across an `.await`.
    inner: Mutex<Inner>,
    /// Wakes the owning connection when something arrives.
    notify: Notify,
    /// Bounds of the queue.
    limits: QueueLimits,
    /// Deliveries dropped because the queue was full.
    dropped: AtomicU64,
    /// Subscriptions held by the owning session.
    subscriptions: AtomicUsize,
}

struct Inner {
    /// Waiting deliveries, oldest first.
    queue: VecDeque<Delivery>,
    /// Payload bytes in `queue`.
    bytes: usize,
    /// QoS 0 deliveries in `queue`.
    qos0: usize,
    /// Whether a connection currently owns the session.
    online: bool,
}

impl Mailbox {
    /// An empty mailbox for session `session_id`.
    pub fn new(session_id: u64, limits: QueueLimits) -> Mailbox {
        Mailbox {
            session_id,
            inner: Mutex::new(Inner { queue: VecDeque::new(), bytes: 0, qos0: 0, online: true }),
            notify: Notify::new(),
            limits,
            dropped: AtomicU64::new(0),
            subscriptions: AtomicUsize::new(0),
        }
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
        self.lock().queue.len()
    }

    /// How many more deliveries the queue takes before it is full by count.
    pub fn room(&self) -> usize {
        self.limits.max_messages.saturating_sub(self.lock().queue.len())
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// Marks the session as connected or not. Offline sessions drop QoS 0 deliveries, as
    /// Mosquitto does by default.
    pub fn set_online(&self, online: bool) {
        self.lock().online = online;
    }

    /// Queues a delivery without waiting, applying the overflow policy of this module, and wakes
    /// the owning connection.
    pub fn push(&self, delivery: Delivery) -> PushOutcome {
        let (outcome, _) = self.enqueue(delivery);
        if outcome == PushOutcome::Queued {
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
        let size = delivery.message.payload.len();
        let mut inner = self.lock();
        if !inner.online && delivery.qos == QoS::AtMostOnce {
            return (PushOutcome::Offline, false);
        }
        while self.is_full(&inner, size) {
            if delivery.qos == QoS::AtMostOnce || inner.qos0 == 0 {
                drop(inner);
                self.count_drop();
                return (PushOutcome::Dropped, false);
            }
            inner.evict_oldest_qos0();
            self.count_drop();
        }
        inner.bytes += size;
        if delivery.qos == QoS::AtMostOnce {
            inner.qos0 += 1;
        }
        let was_empty = inner.queue.is_empty();
        inner.queue.push_back(delivery);
        (PushOutcome::Queued, was_empty)
    }

    /// Records how many subscriptions the owning session holds, so that the router knows when a
    /// message may match the session twice.
    pub fn set_subscription_count(&self, count: usize) {
        self.subscriptions.store(count, Ordering::Relaxed);
    }

    /// Number of subscriptions the owning session holds.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    fn is_full(&self, inner: &Inner, size: usize) -> bool {
        inner.queue.len() >= self.limits.max_messages
            || (self.limits.max_bytes != 0
                && inner.bytes + size > self.limits.max_bytes
                && !inner.queue.is_empty())
    }

    fn count_drop(&self) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::warn!(session = self.session_id, dropped, "session queue full; dropping messages");
        }
    }

    /// Moves deliveries, oldest first, into `out`: any number of QoS 0 deliveries, at most
    /// `qos_room` QoS 1/2 ones, stopping once `byte_budget` payload bytes have been taken (at
    /// least one delivery is taken if any fits the QoS rule). Order is kept: a QoS 1/2 delivery
    /// that does not fit the window stops the pull.
    pub fn pull(&self, out: &mut Vec<Delivery>, mut qos_room: usize, byte_budget: usize) {
        let mut inner = self.lock();
        let mut taken_bytes = 0;
        while let Some(front) = inner.queue.front() {
            let size = front.message.payload.len();
            if front.qos != QoS::AtMostOnce && qos_room == 0 {
                break;
            }
            if taken_bytes > 0 && taken_bytes + size > byte_budget {
                break;
            }
            let Some(delivery) = inner.queue.pop_front() else {
                break;
            };
            if delivery.qos == QoS::AtMostOnce {
                inner.qos0 -= 1;
            } else {
                qos_room -= 1;
            }
            inner.bytes -= size;
            taken_bytes += size;
            out.push(delivery);
        }
    }

    /// Waits until something is pushed. A push that happens before this is awaited is not
    /// missed.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}

impl Inner {
    fn evict_oldest_qos0(&mut self) {
        if let Some(index) = self.queue.iter().position(|d| d.qos == QoS::AtMostOnce) {
            if let Some(evicted) = self.queue.remove(index) {
                self.qos0 -= 1;
                self.bytes -= evicted.message.payload.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use std::sync::Arc;

    fn delivery(qos: QoS, payload: &'static str) -> Delivery {
        let message = Arc::new(Message {
            topic: "t".into(),
            payload: Bytes::from_static(payload.as_bytes()),
            qos,
            retain: false,
        });
        Delivery { message, qos, retain: false }
    }

    fn payloads(mailbox: &Mailbox) -> Vec<Bytes> {
        let mut out = Vec::new();
        mailbox.pull(&mut out, usize::MAX, usize::MAX);
        out.into_iter().map(|d| d.message.payload.clone()).collect()
    }

    #[test]
    fn full_queue_drops_qos0_first_then_new_messages() {
        let mailbox = Mailbox::new(1, QueueLimits { max_messages: 2, max_bytes: 0 });
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "a")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "b")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "c")), PushOutcome::Dropped);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "d")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::ExactlyOnce, "e")), PushOutcome::Dropped);
        assert_eq!(mailbox.dropped(), 3);
        assert_eq!(payloads(&mailbox), vec!["b", "d"]);
    }

    #[test]
    fn byte_limit_bounds_the_queue() {
        let mailbox = Mailbox::new(1, QueueLimits { max_messages: 100, max_bytes: 5 });
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "abc")), PushOutcome::Queued);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "def")), PushOutcome::Dropped);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "gh")), PushOutcome::Queued);
        assert_eq!(payloads(&mailbox), vec!["abc", "gh"]);
    }

    #[test]
    fn offline_sessions_drop_qos0_and_keep_qos1() {
        let mailbox = Mailbox::new(1, QueueLimits { max_messages: 10, max_bytes: 0 });
        mailbox.set_online(false);
        assert_eq!(mailbox.push(delivery(QoS::AtMostOnce, "a")), PushOutcome::Offline);
        assert_eq!(mailbox.push(delivery(QoS::AtLeastOnce, "b")), PushOutcome::Queued);
        assert_eq!(payloads(&mailbox), vec!["b"]);
    }

    #[test]
    fn pull_respects_the_inflight_window_and_order() {
        let mailbox = Mailbox::new(1, QueueLimits { max_messages: 10, max_bytes: 0 });
        for (qos, p) in [(QoS::AtLeastOnce, "1"), (QoS::AtMostOnce, "2"), (QoS::AtLeastOnce, "3")] {
            mailbox.push(delivery(qos, p));
        }
        let mut out = Vec::new();
        mailbox.pull(&mut out, 1, usize::MAX);
        assert_eq!(out.len(), 2, "QoS 1 then QoS 0, then the window is full");
        assert_eq!(mailbox.len(), 1);
    }
}
