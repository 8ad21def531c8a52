//! Durable storage: what a persistent session, its messages and the retained store need to
//! survive a crash (`kill -9`), written behind a trait that any backend can implement.
//!
//! The in-memory structures (registry, mailboxes, sessions, retained store) stay the state the
//! broker works on. A durable backend keeps a copy on disk, fed by a log of ops (`Op`): every change
//! a persistent session's state goes through (a message queued for it, sent with a packet
//! identifier, released, acknowledged; a subscription; its will and expiry) and every change of
//! the retained store. Ops are issued without waiting (a push under a short lock) and numbered;
//! a writer thread of its own takes everything issued since its last commit, turns it into
//! [`Write`]s and commits them in one durable transaction (group commit), then publishes the
//! number of the last op committed.
//!
//! The promise: a connection never writes to its socket a packet that reflects state not yet
//! durable. It remembers the number of the last op its work issued (the router reports the ops
//! of the mailboxes a publication reached) and holds the bytes appended after that point until
//! the writer's commit passes it, so PUBACK, PUBREC, PUBCOMP, SUBACK and CONNACK, and every
//! PUBLISH and PUBREL of a persistent session, follow their write to disk. Connections that
//! touched nothing durable wait for nothing.
//!
//! With `storage.backend = "memory"` there is no store at all: no op is issued and nothing
//! waits. [`MemoryBackend`] implements the same trait (it keeps the writes in maps), so the
//! writer, the record formats and the recovery path are tested without a disk.
//!
//! Bounds: ops are issued by connections whose packets are answered only after the commit, so
//! what waits for the writer is at most one window of work per connection (its inflight
//! messages and the answers of one read); held output stays in the connection's write buffer,
//! and a connection stops reading once that holds `READ_LIMIT` bytes, held or not.

mod memory;
mod record;
mod redb_store;
mod writer;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytestring::ByteString;
use iothub_protocol::{PacketId, SubscriptionOptions};
use tokio::sync::watch;

pub use memory::MemoryBackend;
pub(crate) use record::{
    decode_message, decode_subscription, Clock, Entry, EntryState, SessionRecord, StoredWill,
};
pub use redb_store::RedbBackend;

use crate::message::{Delivery, Message};

/// Renames the store file in `dir` out of the way, with the time in its name, so that a
/// corrupt store is kept as evidence; returns the new path.
pub(crate) fn set_aside(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let path = dir.join(redb_store::FILE_NAME);
    let stamp = record::Clock::now().unix_ms();
    let aside = dir.join(format!("{}.corrupt-{stamp}", redb_store::FILE_NAME));
    std::fs::rename(&path, &aside)?;
    Ok(aside)
}

/// A change of durable state, issued by the broker and turned into [`Write`]s by the writer.
#[derive(Debug)]
pub(crate) enum Op {
    /// A persistent session's record (version, expiry, will) is created or replaced; `session`
    /// is the mailbox's process-unique id, which later ops of the session carry.
    Session { client: Arc<str>, session: u64, record: SessionRecord },
    /// A session ends: its record, subscriptions, queue and inbound QoS 2 identifiers go.
    SessionGone { client: Arc<str> },
    /// A subscription is added or replaced.
    Subscribe { client: Arc<str>, filter: ByteString, options: SubscriptionOptions, id: u32 },
    /// A subscription is removed.
    Unsubscribe { client: Arc<str>, filter: ByteString },
    /// A QoS 1/2 delivery is queued for a persistent session, as its entry `seq`. Issued with
    /// the other ops of its publication, at once, after routing: the session may have sent it
    /// (or even finished with it) by then, and an enqueue for a session that has since ended
    /// (another `session` id) is ignored.
    Enqueue { client: Arc<str>, session: u64, seq: u64, delivery: Delivery },
    /// The entry was sent with this packet identifier (PUBLISH sent, PUBACK/PUBREC awaited).
    Sent { client: Arc<str>, seq: u64, packet_id: u16, delivery: Delivery },
    /// PUBREC came and PUBREL is sent: the entry awaits PUBCOMP.
    Released { client: Arc<str>, seq: u64, packet_id: u16, delivery: Delivery },
    /// The entry is done with: acknowledged, expired, too large, or dropped by policy.
    Done { client: Arc<str>, seq: u64 },
    /// An inbound QoS 2 packet identifier now awaits PUBREL.
    Incoming { client: Arc<str>, packet_id: u16 },
    /// PUBREL released it.
    IncomingDone { client: Arc<str>, packet_id: u16 },
    /// A message is retained under its topic, replacing any other.
    Retain { message: Arc<Message> },
    /// The retained message of `topic` is gone (deleted, replaced by an empty one, or expired).
    Unretain { topic: ByteString },
}

/// One keyed change in the backend's tables; a commit applies a slice of them atomically and
/// durably. Records are opaque bytes (`record.rs` defines them), so a backend only stores keys
/// and values. Fields: `client` is a client identifier, `seq` a queue entry number (increasing
/// in queue order), `record` an opaque value, `id`/`message` a message id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // The fields are named above.
pub enum Write {
    /// Session record of a client identifier.
    PutSession { client: Arc<str>, record: Vec<u8> },
    /// Removes the session record.
    DeleteSession { client: Arc<str> },
    /// Subscription of a client.
    PutSubscription { client: Arc<str>, filter: ByteString, record: Vec<u8> },
    /// Removes a subscription.
    DeleteSubscription { client: Arc<str>, filter: ByteString },
    /// Queue entry `seq` of a client.
    PutEntry { client: Arc<str>, seq: u64, record: Vec<u8> },
    /// Removes a queue entry.
    DeleteEntry { client: Arc<str>, seq: u64 },
    /// An inbound QoS 2 packet identifier awaiting PUBREL.
    PutIncoming { client: Arc<str>, packet_id: u16 },
    /// Removes one.
    DeleteIncoming { client: Arc<str>, packet_id: u16 },
    /// A message, stored once however many entries and retained topics refer to it.
    PutMessage { id: u64, record: Vec<u8> },
    /// Removes a message no entry or topic refers to any more.
    DeleteMessage { id: u64 },
    /// The retained message of a topic, by message id.
    PutRetained { topic: ByteString, message: u64 },
    /// Removes the retained message of a topic.
    DeleteRetained { topic: ByteString },
}

/// Everything a backend holds, as raw records, read at start-up.
#[derive(Debug, Default, Clone)]
pub struct StoredState {
    /// Session records by client identifier.
    pub sessions: Vec<(Arc<str>, Vec<u8>)>,
    /// Subscriptions: client, filter, record.
    pub subscriptions: Vec<(Arc<str>, ByteString, Vec<u8>)>,
    /// Queue entries: client, seq, record; in (client, seq) order.
    pub entries: Vec<(Arc<str>, u64, Vec<u8>)>,
    /// Inbound QoS 2 identifiers awaiting PUBREL.
    pub incoming: Vec<(Arc<str>, u16)>,
    /// Messages by id.
    pub messages: Vec<(u64, Vec<u8>)>,
    /// Retained topics and their message ids.
    pub retained: Vec<(ByteString, u64)>,
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store's contents are damaged or not a store at all.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// The store was written by another layout version.
    #[error("the store has layout version {found}; this build reads layout {expected}")]
    Layout {
        /// Version found in the store.
        found: u64,
        /// Version this build writes.
        expected: u64,
    },
    /// The disk refused: full, read-only, gone.
    #[error("{0}")]
    Io(String),
    /// The broker around the store could not be set up (a setting outside storage).
    #[error("{0}")]
    Config(String),
}

/// A storage backend: reads everything at start-up and commits batches of writes, each batch
/// atomically and durably (after `commit` returns, a crash loses none of it). It runs on the
/// writer thread only, so it may block.
pub trait Backend: Send + std::fmt::Debug + 'static {
    /// Everything stored.
    fn load(&mut self) -> Result<StoredState, StorageError>;
    /// Applies `writes` in order, in one durable transaction.
    fn commit(&mut self, writes: &[Write]) -> Result<(), StorageError>;
}

/// What the broker shares with the writer: the ops issued and not yet taken, and the number of
/// the last op committed.
#[derive(Debug)]
pub(crate) struct Store {
    /// Ops issued since the writer last took them, and the number of the last one issued.
    pending: Mutex<Pending>,
    /// Wakes the writer.
    wake: std::sync::Condvar,
    /// The number of the last op that is durable.
    committed: watch::Sender<u64>,
    /// Set while the backend refuses commits (a full disk), cleared by the next success.
    failing: std::sync::atomic::AtomicBool,
    /// Next queue entry number, over every session: entries of one session are numbered in
    /// queue order and never reused, even by a later session of the same client.
    next_seq: AtomicU64,
    /// Commits made, writes committed and microseconds spent committing, for metrics.
    commits: AtomicU64,
    committed_writes: AtomicU64,
    commit_micros: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<Op>,
    issued: u64,
    closed: bool,
}

impl Store {
    /// A store whose writer is not started yet.
    pub(crate) fn new() -> Store {
        Store {
            pending: Mutex::new(Pending::default()),
            wake: std::sync::Condvar::new(),
            committed: watch::channel(0).0,
            failing: std::sync::atomic::AtomicBool::new(false),
            next_seq: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            committed_writes: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
        }
    }

    /// Starts the writer thread on `backend`, whose contents are `state` (already restored into
    /// the broker), with entry numbers continuing after `next_seq`.
    /// `sessions` are the restored sessions' client identifiers and mailbox ids.
    pub(crate) fn start(
        self: &Arc<Self>,
        backend: Box<dyn Backend>,
        state: &StoredState,
        next_seq: u64,
        sessions: Vec<(Arc<str>, u64)>,
    ) {
        self.next_seq.store(next_seq, Ordering::Relaxed);
        writer::spawn(Arc::clone(self), backend, state, sessions);
    }

    /// Issues one op; returns its number.
    pub(crate) fn issue(&self, op: Op) -> u64 {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.issued += 1;
        let number = pending.issued;
        let first = pending.ops.is_empty();
        pending.ops.push(op);
        drop(pending);
        if first {
            self.wake.notify_one();
        }
        number
    }

    /// Issues `ops` at once, so that one commit has all of them or none; returns the number of
    /// the last (0 if there were none).
    pub(crate) fn issue_all(&self, ops: &mut Vec<Op>) -> u64 {
        if ops.is_empty() {
            return 0;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.issued += ops.len() as u64;
        let number = pending.issued;
        let first = pending.ops.is_empty();
        pending.ops.append(ops);
        drop(pending);
        if first {
            self.wake.notify_one();
        }
        number
    }

    /// A fresh queue entry number.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// True while the backend refuses commits.
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Records whether the last commit attempt failed.
    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Release);
    }

    /// The number of the last durable op.
    /// Commits made, writes committed and microseconds spent committing, so far.
    pub(crate) fn commit_stats(&self) -> (u64, u64, u64) {
        let get = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        (get(&self.commits), get(&self.committed_writes), get(&self.commit_micros))
    }

    /// Counts one commit of `writes` writes that took `micros`.
    pub(crate) fn count_commit(&self, writes: usize, micros: u64) {
        let add = |c: &AtomicU64, v: u64| c.fetch_add(v, std::sync::atomic::Ordering::Relaxed);
        add(&self.commits, 1);
        add(&self.committed_writes, writes as u64);
        add(&self.commit_micros, micros);
    }

    pub(crate) fn committed(&self) -> u64 {
        *self.committed.borrow()
    }

    /// A receiver to wait on for commits.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Waits until op `number` is durable.
    pub(crate) async fn durable(&self, number: u64) {
        let mut commits = self.subscribe();
        let _ = commits.wait_for(|&committed| committed >= number).await;
    }

    /// Takes what was issued, blocking the writer thread until there is something or the store
    /// is closed; `None` once closed and drained.
    fn take(&self) -> Option<(Vec<Op>, u64)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if !pending.ops.is_empty() {
                return Some((std::mem::take(&mut pending.ops), pending.issued));
            }
            if pending.closed {
                return None;
            }
            pending = self.wake.wait(pending).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Stops the writer once it has committed what was issued; returns after the last commit
    /// or `timeout`.
    pub(crate) async fn close(&self, timeout: std::time::Duration) {
        let issued = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.closed = true;
            pending.issued
        };
        self.wake.notify_one();
        let _ = tokio::time::timeout(timeout, self.durable(issued)).await;
    }
}

/// A persistent session's handle on the store, kept by its mailbox: the session and the router
/// tell it what changed, and it issues the ops under the session's client identifier,
/// remembering the number of the last one.
#[derive(Debug)]
pub(crate) struct SessionLog {
    store: Arc<Store>,
    client: Arc<str>,
    /// The id of the mailbox this log belongs to.
    session: u64,
    last: AtomicU64,
}

impl SessionLog {
    /// A log for the session of `client` whose mailbox has id `session`, in `store`.
    pub(crate) fn new(store: Arc<Store>, client: &str, session: u64) -> SessionLog {
        SessionLog { store, client: Arc::from(client), session, last: AtomicU64::new(0) }
    }

    /// Issues an op that the session's next output depends on: that output waits for it.
    fn issue(&self, op: Op) {
        let number = self.store.issue(op);
        self.last.fetch_max(number, Ordering::AcqRel);
    }

    /// Issues an op that no output has to wait for: the end of an entry (a crash before it is
    /// committed only re-sends an acknowledged QoS 1 message, or finds a QoS 2 one released),
    /// and the packet identifier of a QoS 1 send (without it a crash re-sends the message as a
    /// new one, which QoS 1 allows).
    fn issue_quiet(&self, op: Op) {
        self.store.issue(op);
    }

    /// The number of the last op issued for this session.
    pub(crate) fn last(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    fn client(&self) -> Arc<str> {
        Arc::clone(&self.client)
    }

    /// The session's record changed.
    pub(crate) fn session(&self, record: SessionRecord) {
        self.issue(Op::Session { client: self.client(), session: self.session, record });
    }

    /// The session ended.
    pub(crate) fn gone(&self) {
        self.issue(Op::SessionGone { client: self.client() });
    }

    /// A subscription was added or replaced.
    pub(crate) fn subscribe(&self, filter: &ByteString, options: &SubscriptionOptions, id: Option<u32>) {
        let op = Op::Subscribe {
            client: self.client(),
            filter: filter.clone(),
            options: *options,
            id: id.unwrap_or(0),
        };
        self.issue(op);
    }

    /// A subscription was removed.
    pub(crate) fn unsubscribe(&self, filter: &ByteString) {
        self.issue(Op::Unsubscribe { client: self.client(), filter: filter.clone() });
    }

    /// A QoS 1/2 delivery enters the queue: it gets its entry number (under the mailbox's
    /// lock, so entries are numbered in queue order). The op goes into `group`, which the
    /// router issues once the publication is routed, or is issued now without one.
    pub(crate) fn enqueue(&self, delivery: &mut Delivery, group: Option<&mut Vec<Op>>) {
        let seq = self.store.next_seq();
        delivery.set_stored_seq(seq);
        let op =
            Op::Enqueue { client: self.client(), session: self.session, seq, delivery: delivery.clone() };
        match group {
            Some(group) => group.push(op),
            None => self.issue(op),
        }
    }

    /// The delivery was sent with `packet_id`.
    pub(crate) fn sent(&self, delivery: &Delivery, packet_id: PacketId) {
        if let Some(seq) = delivery.stored_seq() {
            let qos = delivery.qos;
            let op = Op::Sent {
                client: self.client(),
                seq,
                packet_id: packet_id.get(),
                delivery: delivery.clone(),
            };
            if qos == iothub_protocol::QoS::ExactlyOnce {
                // A QoS 2 PUBLISH must be re-sent with this identifier after a crash, or the
                // client would take it for a new message: it goes out once this is durable.
                self.issue(op);
            } else {
                self.issue_quiet(op);
            }
        }
    }

    /// PUBREL is being sent for the delivery.
    pub(crate) fn released(&self, delivery: &Delivery, packet_id: PacketId) {
        if let Some(seq) = delivery.stored_seq() {
            let op = Op::Released {
                client: self.client(),
                seq,
                packet_id: packet_id.get(),
                delivery: delivery.clone(),
            };
            self.issue(op);
        }
    }

    /// The delivery is done with.
    pub(crate) fn done(&self, delivery: &Delivery) {
        if let Some(seq) = delivery.stored_seq() {
            self.issue_quiet(Op::Done { client: self.client(), seq });
        }
    }

    /// The op for an inbound QoS 2 identifier that awaits PUBREL, to be issued with the ops
    /// of its publication.
    pub(crate) fn incoming_op(&self, packet_id: u16) -> Op {
        Op::Incoming { client: self.client(), packet_id }
    }

    /// PUBREL released an inbound identifier.
    pub(crate) fn incoming_done(&self, packet_id: u16) {
        self.issue(Op::IncomingDone { client: self.client(), packet_id });
    }
}

/// A connection's hold on its output: bytes appended after a point where its work had issued
/// durable ops are written only once the writer has committed those ops.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Bytes taken out of the write buffer so far.
    written: usize,
    /// End of the write buffer (in bytes ever appended) at the last check.
    checked: usize,
    /// Points in the output and the op each must wait for, oldest first.
    marks: VecDeque<(usize, u64)>,
    /// The number of the last op this connection's work issued.
    needed: u64,
}

impl Gate {
    /// Records what was appended since the last check: if ops this connection's work issued
    /// are not yet durable, the new bytes wait for them.
    pub(crate) fn check(&mut self, buffered: usize, issued: u64, committed: u64) {
        let end = self.written + buffered;
        self.needed = self.needed.max(issued);
        if end > self.checked && self.needed > committed {
            match self.marks.back_mut() {
                Some((_, number)) if *number >= self.needed => {}
                _ => self.marks.push_back((self.checked, self.needed)),
            }
        }
        self.checked = end;
    }

    /// How many of the `buffered` bytes may be written now.
    pub(crate) fn writable(&mut self, buffered: usize, committed: u64) -> usize {
        while self.marks.front().is_some_and(|&(_, number)| number <= committed) {
            self.marks.pop_front();
        }
        match self.marks.front() {
            Some(&(at, _)) => at.saturating_sub(self.written).min(buffered),
            None => buffered,
        }
    }

    /// The op the oldest held bytes wait for, if any.
    pub(crate) fn waiting_for(&self) -> Option<u64> {
        self.marks.front().map(|&(_, number)| number)
    }

    /// Records that `n` bytes left the write buffer.
    pub(crate) fn wrote(&mut self, n: usize) {
        self.written += n;
    }

    /// The number of the last op this connection's work issued.
    pub(crate) fn needed(&self) -> u64 {
        self.needed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_holds_bytes_appended_after_uncommitted_ops() {
        let mut gate = Gate::default();
        // 10 bytes with nothing durable behind them.
        gate.check(10, 0, 0);
        assert_eq!(gate.writable(10, 0), 10);
        // 5 more after op 3 was issued.
        gate.check(15, 3, 0);
        assert_eq!(gate.writable(15, 2), 10);
        gate.wrote(10);
        assert_eq!(gate.writable(5, 2), 0);
        assert_eq!(gate.waiting_for(), Some(3));
        assert_eq!(gate.writable(5, 3), 5);
        gate.wrote(5);
        assert_eq!(gate.waiting_for(), None);
        // Later bytes depend on nothing new: issued stays 3, which is committed.
        gate.check(4, 3, 3);
        assert_eq!(gate.writable(4, 3), 4);
    }
}
