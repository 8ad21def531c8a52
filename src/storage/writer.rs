//! The writer thread: takes every op issued since its last commit, turns them into keyed writes
//! and commits them in one durable transaction (group commit), then publishes the number of the
//! last op it committed. Connections never wait on the disk themselves: they wait on that
//! number, and only for output that depends on it.
//!
//! It keeps what the keyed writes need and the ops do not say: which message each queue entry
//! refers to, and how many entries and retained topics refer to each message, so that a message
//! is stored once and deleted with its last reference.
//!
//! A commit that fails (a full disk) is retried, once a second, with the same writes; nothing
//! issued after it is committed first, so the acknowledgements waiting on it wait, and resume
//! when the disk has room again.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;

use super::record::{encode_message, encode_subscription, Clock, Entry, EntryState};
use super::{Backend, Op, Store, StoredState, Write};
use crate::message::{Delivery, Message};

/// Pause between attempts of a commit the backend refused.
const RETRY: Duration = Duration::from_secs(1);

/// What the writer knows of the stored state.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Queue entries by client: entry number to message id.
    entries: HashMap<Arc<str>, BTreeMap<u64, u64>>,
    /// References to each stored message.
    refs: HashMap<u64, u32>,
    /// Retained topics and their message ids.
    retained: HashMap<ByteString, u64>,
    /// The mailbox id of each persistent session: an enqueue for another one (a session that
    /// has ended, whose publisher issued its ops late) is ignored.
    current: HashMap<Arc<str>, u64>,
    /// What happened to entries whose enqueue has not arrived yet: the router issues a
    /// publication's ops after routing it, and the session may have sent the message, or be
    /// done with it, by then.
    early: HashMap<(Arc<str>, u64), Early>,
    /// Entries and messages first written in the batch being translated: if the batch also
    /// deletes them, none of their writes need to reach the backend.
    fresh: HashSet<Key>,
}

/// The key of a write that later writes of the same key supersede.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Entry(Arc<str>, u64),
    Message(u64),
}

fn key_of(write: &Write) -> Option<Key> {
    match write {
        Write::PutEntry { client, seq, .. } | Write::DeleteEntry { client, seq } => {
            Some(Key::Entry(Arc::clone(client), *seq))
        }
        Write::PutMessage { id, .. } | Write::DeleteMessage { id } => Some(Key::Message(*id)),
        _ => None,
    }
}

/// The net effect of a batch: of the writes to one entry or message only the last is kept, and
/// not even that when it deletes what the batch itself created (a message queued, sent and
/// acknowledged between two commits costs the disk nothing). Other writes keep their order.
fn compact(writes: Vec<Write>, fresh: &HashSet<Key>) -> Vec<Write> {
    let mut last: HashMap<Key, usize> = HashMap::default();
    for (at, write) in writes.iter().enumerate() {
        if let Some(key) = key_of(write) {
            last.insert(key, at);
        }
    }
    writes
        .into_iter()
        .enumerate()
        .filter(|(at, write)| match key_of(write) {
            None => true,
            Some(key) => {
                let deletes = matches!(write, Write::DeleteEntry { .. } | Write::DeleteMessage { .. });
                last.get(&key) == Some(at) && !(deletes && fresh.contains(&key))
            }
        })
        .map(|(_, write)| write)
        .collect()
}

/// The state of an entry reached before its enqueue arrived.
#[derive(Debug)]
enum Early {
    Sent(u16),
    Released(u16),
    Done,
}

impl Index {
    /// The index of a loaded store; messages nothing refers to are listed for deletion.
    pub(super) fn of(state: &StoredState, sessions: Vec<(Arc<str>, u64)>) -> (Index, Vec<Write>) {
        let mut index = Index { current: sessions.into_iter().collect(), ..Index::default() };
        for (client, seq, record) in &state.entries {
            if let Ok(entry) = Entry::decode(record) {
                index.entries.entry(Arc::clone(client)).or_default().insert(*seq, entry.message);
                *index.refs.entry(entry.message).or_default() += 1;
            }
        }
        for (topic, id) in &state.retained {
            index.retained.insert(topic.clone(), *id);
            *index.refs.entry(*id).or_default() += 1;
        }
        let orphans = state
            .messages
            .iter()
            .filter(|(id, _)| !index.refs.contains_key(id))
            .map(|&(id, _)| Write::DeleteMessage { id })
            .collect();
        (index, orphans)
    }

    fn acquire(&mut self, message: &Message, clock: &Clock, writes: &mut Vec<Write>) {
        let refs = self.refs.entry(message.id).or_default();
        if *refs == 0 {
            self.fresh.insert(Key::Message(message.id));
            let mut record = Vec::with_capacity(32 + message.topic.len() + message.payload.len());
            encode_message(message, clock, &mut record);
            writes.push(Write::PutMessage { id: message.id, record });
        }
        *refs += 1;
    }

    fn release(&mut self, id: u64, writes: &mut Vec<Write>) {
        if let Some(refs) = self.refs.get_mut(&id) {
            *refs -= 1;
            if *refs == 0 {
                self.refs.remove(&id);
                writes.push(Write::DeleteMessage { id });
            }
        }
    }

    fn put_entry(
        &mut self,
        client: &Arc<str>,
        seq: u64,
        delivery: &Delivery,
        state: EntryState,
        writes: &mut Vec<Write>,
    ) {
        let Some(&message) = self.entries.get(client).and_then(|e| e.get(&seq)) else {
            // Its enqueue has not arrived yet.
            if self.current.contains_key(client) {
                let early = match state {
                    EntryState::Sent(id) => Early::Sent(id),
                    EntryState::Released(id) => Early::Released(id),
                    EntryState::Queued => return,
                };
                self.early.insert((Arc::clone(client), seq), early);
            }
            return;
        };
        let entry = Entry { state, ..Entry::of(delivery, message) };
        writes.push(Write::PutEntry { client: Arc::clone(client), seq, record: entry.encode() });
    }

    /// Turns one op into writes.
    pub(super) fn translate(&mut self, op: Op, clock: &Clock, writes: &mut Vec<Write>) {
        match op {
            Op::Session { client, session, record } => {
                self.current.insert(Arc::clone(&client), session);
                writes.push(Write::PutSession { client, record: record.encode() });
            }
            Op::SessionGone { client } => {
                self.current.remove(&client);
                self.early.retain(|(c, _), _| *c != client);
                if let Some(entries) = self.entries.remove(&client) {
                    for message in entries.into_values() {
                        self.release(message, writes);
                    }
                }
                writes.push(Write::DeleteSession { client });
            }
            Op::Subscribe { client, filter, options, id } => {
                writes.push(Write::PutSubscription {
                    client,
                    filter,
                    record: encode_subscription(&options, id),
                });
            }
            Op::Unsubscribe { client, filter } => writes.push(Write::DeleteSubscription { client, filter }),
            Op::Enqueue { client, session, seq, delivery } => {
                let early = self.early.remove(&(Arc::clone(&client), seq));
                if self.current.get(&client) != Some(&session) {
                    return;
                }
                let state = match early {
                    Some(Early::Done) => return,
                    Some(Early::Sent(id)) => EntryState::Sent(id),
                    Some(Early::Released(id)) => EntryState::Released(id),
                    None => EntryState::Queued,
                };
                self.acquire(&delivery.message, clock, writes);
                let id = delivery.message.id;
                self.entries.entry(Arc::clone(&client)).or_default().insert(seq, id);
                self.fresh.insert(Key::Entry(Arc::clone(&client), seq));
                let entry = Entry { state, ..Entry::of(&delivery, id) };
                writes.push(Write::PutEntry { client, seq, record: entry.encode() });
            }
            Op::Sent { client, seq, packet_id, delivery } => {
                self.put_entry(&client, seq, &delivery, EntryState::Sent(packet_id), writes);
            }
            Op::Released { client, seq, packet_id, delivery } => {
                self.put_entry(&client, seq, &delivery, EntryState::Released(packet_id), writes);
            }
            Op::Done { client, seq } => {
                let removed = self.entries.get_mut(&client).and_then(|e| e.remove(&seq));
                if removed.is_none() && self.current.contains_key(&client) {
                    self.early.insert((Arc::clone(&client), seq), Early::Done);
                }
                if let Some(message) = removed {
                    if self.entries.get(&client).is_some_and(BTreeMap::is_empty) {
                        self.entries.remove(&client);
                    }
                    self.release(message, writes);
                    writes.push(Write::DeleteEntry { client, seq });
                }
            }
            Op::Incoming { client, packet_id } => writes.push(Write::PutIncoming { client, packet_id }),
            Op::IncomingDone { client, packet_id } => {
                writes.push(Write::DeleteIncoming { client, packet_id })
            }
            Op::Retain { message } => {
                self.acquire(&message, clock, writes);
                if let Some(old) = self.retained.insert(message.topic.clone(), message.id) {
                    self.release(old, writes);
                }
                writes.push(Write::PutRetained { topic: message.topic.clone(), message: message.id });
            }
            Op::Unretain { topic } => {
                if let Some(old) = self.retained.remove(&topic) {
                    self.release(old, writes);
                    writes.push(Write::DeleteRetained { topic });
                }
            }
        }
    }
}

/// Starts the writer thread.
pub(super) fn spawn(
    store: Arc<Store>,
    backend: Box<dyn Backend>,
    state: &StoredState,
    sessions: Vec<(Arc<str>, u64)>,
) {
    let (index, orphans) = Index::of(state, sessions);
    let spawned = std::thread::Builder::new().name("iothub-storage".to_owned()).spawn(move || {
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&store, backend, index, orphans)));
        if ran.is_err() {
            // Without its writer the broker would hold every durable acknowledgement
            // forever. A restart recovers from what was committed, so end the process.
            tracing::error!("the storage writer panicked; stopping the broker so that a restart recovers");
            std::process::abort();
        }
    });
    if let Err(error) = spawned {
        // Without a writer nothing durable is ever acknowledged; say so loudly.
        tracing::error!(%error, "cannot start the storage writer thread");
    }
}

fn run(store: &Store, mut backend: Box<dyn Backend>, mut index: Index, orphans: Vec<Write>) {
    let mut writes = orphans;
    if !writes.is_empty() {
        commit(store, backend.as_mut(), &writes);
        writes.clear();
    }
    while let Some((ops, last)) = store.take() {
        let clock = Clock::now();
        for op in ops {
            index.translate(op, &clock, &mut writes);
        }
        let net = compact(std::mem::take(&mut writes), &index.fresh);
        index.fresh.clear();
        if !net.is_empty() {
            commit(store, backend.as_mut(), &net);
        }
        store.committed.send_replace(last);
    }
}

/// Commits `writes`, retrying until the backend takes them.
#[allow(clippy::disallowed_methods)] // The writer thread times its commits, for metrics.
fn commit(store: &Store, backend: &mut dyn Backend, writes: &[Write]) {
    let mut failures = 0u64;
    loop {
        let started = std::time::Instant::now();
        match backend.commit(writes) {
            Ok(()) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                store.count_commit(writes.len(), micros);
                store.set_failing(false);
                if failures > 0 {
                    tracing::warn!(failures, "storage commit succeeded again; acknowledgements resume");
                }
                return;
            }
            Err(error) => {
                store.set_failing(true);
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::error!(%error, failures, "storage commit failed; acknowledgements wait until it succeeds");
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{Entry, EntryState};
    use bytes::Bytes;
    use iothub_protocol::QoS;

    fn delivery(qos: QoS) -> Delivery {
        let message = Message::new(ByteString::from("t"), Bytes::from_static(b"x"), qos, false);
        Delivery::live(Arc::new(message), qos)
    }

    fn client() -> Arc<str> {
        Arc::from("c")
    }

    /// An index with one live session `c` (mailbox 7).
    fn index() -> Index {
        Index::of(&StoredState::default(), vec![(client(), 7)]).0
    }

    fn run(index: &mut Index, ops: Vec<Op>) -> Vec<Write> {
        let clock = Clock::now();
        let mut writes = Vec::new();
        for op in ops {
            index.translate(op, &clock, &mut writes);
        }
        let net = compact(writes, &index.fresh);
        index.fresh.clear();
        net
    }

    fn enqueue(seq: u64, delivery: &Delivery) -> Op {
        Op::Enqueue { client: client(), session: 7, seq, delivery: delivery.clone() }
    }

    #[test]
    fn a_message_queued_sent_and_done_in_one_batch_writes_nothing() {
        let mut index = index();
        let d = delivery(QoS::AtLeastOnce);
        let ops = vec![
            enqueue(1, &d),
            Op::Sent { client: client(), seq: 1, packet_id: 5, delivery: d.clone() },
            Op::Done { client: client(), seq: 1 },
        ];
        assert_eq!(run(&mut index, ops), vec![]);
        assert!(index.refs.is_empty());
    }

    #[test]
    fn a_message_done_in_a_later_batch_is_deleted_with_its_entry() {
        let mut index = index();
        let d = delivery(QoS::AtLeastOnce);
        let first = run(&mut index, vec![enqueue(1, &d)]);
        assert_eq!(first.len(), 2, "the message and its entry: {first:?}");
        let second = run(&mut index, vec![Op::Done { client: client(), seq: 1 }]);
        assert_eq!(
            second,
            vec![Write::DeleteMessage { id: d.message.id }, Write::DeleteEntry { client: client(), seq: 1 }]
        );
    }

    /// The router issues a publication's ops after routing it: the session may have sent the
    /// message first. The entry is stored in the state it reached; one already done with is not
    /// stored at all.
    #[test]
    fn states_reached_before_the_enqueue_are_applied_when_it_arrives() {
        let mut index = index();
        let d = delivery(QoS::ExactlyOnce);
        run(&mut index, vec![Op::Sent { client: client(), seq: 1, packet_id: 9, delivery: d.clone() }]);
        let writes = run(&mut index, vec![enqueue(1, &d)]);
        let stored = writes.iter().find_map(|w| match w {
            Write::PutEntry { record, .. } => Entry::decode(record).ok(),
            _ => None,
        });
        assert_eq!(stored.map(|e| e.state), Some(EntryState::Sent(9)));
        let e = delivery(QoS::AtLeastOnce);
        run(&mut index, vec![Op::Done { client: client(), seq: 2 }]);
        assert_eq!(run(&mut index, vec![enqueue(2, &e)]), vec![]);
    }

    /// A publisher that routed to a session just before it ended issues its enqueue after the
    /// session's end: it is ignored, and so is one for a newer session of the same client.
    #[test]
    fn an_enqueue_for_an_ended_session_is_ignored() {
        let mut index = index();
        let d = delivery(QoS::AtLeastOnce);
        run(&mut index, vec![Op::SessionGone { client: client() }]);
        assert_eq!(run(&mut index, vec![enqueue(1, &d)]), vec![]);
        let record = crate::storage::SessionRecord {
            protocol_level: 4,
            expiry_interval: 0,
            offline_since: 0,
            will: None,
        };
        run(&mut index, vec![Op::Session { client: client(), session: 8, record }]);
        let stale = Op::Enqueue { client: client(), session: 7, seq: 2, delivery: d.clone() };
        assert_eq!(run(&mut index, vec![stale]), vec![]);
        let fresh = Op::Enqueue { client: client(), session: 8, seq: 3, delivery: d };
        assert_eq!(run(&mut index, vec![fresh]).len(), 2);
    }

    #[test]
    fn a_message_shared_by_sessions_and_the_retained_store_is_stored_once() {
        let mut index = index();
        let d = delivery(QoS::AtLeastOnce);
        let record = crate::storage::SessionRecord {
            protocol_level: 4,
            expiry_interval: 0,
            offline_since: 0,
            will: None,
        };
        let other: Arc<str> = Arc::from("d");
        let ops = vec![
            Op::Session { client: Arc::clone(&other), session: 9, record },
            enqueue(1, &d),
            Op::Enqueue { client: Arc::clone(&other), session: 9, seq: 2, delivery: d.clone() },
            Op::Retain { message: Arc::clone(&d.message) },
        ];
        let writes = run(&mut index, ops);
        let messages = writes.iter().filter(|w| matches!(w, Write::PutMessage { .. })).count();
        assert_eq!(messages, 1);
        assert_eq!(index.refs.get(&d.message.id), Some(&3));
        run(&mut index, vec![Op::Done { client: client(), seq: 1 }, Op::SessionGone { client: other }]);
        let last = run(&mut index, vec![Op::Unretain { topic: ByteString::from("t") }]);
        assert!(last.contains(&Write::DeleteMessage { id: d.message.id }), "{last:?}");
    }
}
