//! Start-up: turns what a backend holds back into the broker's state, before any listener
//! accepts. Retained messages go back into the retained store; each persistent session goes back
//! into the registry as an offline session, with its subscriptions in the router, its queue in
//! its mailbox, its messages in flight in its inflight window (re-sent with DUP=1 and their
//! packet identifiers when the client returns), its inbound QoS 2 identifiers, and its will.
//!
//! A session that was online when the broker stopped lost its network connection then: its
//! will (after its delay) is due, and its expiry counts from the restart. Nothing here issues
//! ops: the store already holds all of it.

use std::collections::HashMap;
use std::sync::Arc;

use bytestring::ByteString;
use iothub_protocol::{PacketId, ProtocolVersion};

use crate::context::Context;
use crate::mailbox::Mailbox;
use crate::message::{Delivery, Message};
use crate::session::{Session, SessionExpiry, Will};
use crate::storage::{
    decode_message, decode_subscription, Clock, Entry, EntryState, Op, SessionLog, SessionRecord,
    StorageError, Store, StoredState,
};

/// What a restore brought back.
#[derive(Debug, Default, Clone)]
pub(crate) struct Restored {
    /// Persistent sessions.
    pub(crate) sessions: usize,
    /// Queued and in-flight messages over all sessions.
    pub(crate) entries: usize,
    /// Retained messages.
    pub(crate) retained: usize,
    /// The sessions kept, with their mailbox ids.
    pub(crate) live: Live,
    /// The next queue entry number.
    pub(crate) next_seq: u64,
}

/// The restored sessions: client identifier and mailbox id, for the writer.
pub(crate) type Live = Vec<(Arc<str>, u64)>;

/// Restores `state` into `context`; stored sessions get logs on `store`. A record that cannot
/// be read makes the whole store corrupt: nothing is half-restored.
pub(crate) fn restore(
    state: &StoredState,
    context: &Context,
    store: &Arc<Store>,
) -> Result<Restored, StorageError> {
    let clock = Clock::now();
    let now = clock.instant();
    let mut messages: HashMap<u64, Arc<Message>> = HashMap::with_capacity(state.messages.len());
    for (id, record) in &state.messages {
        messages.insert(*id, Arc::new(decode_message(*id, record, &clock)?));
    }
    let mut restored = Restored::default();
    let mut sessions: HashMap<Arc<str>, Box<Session>> = HashMap::new();
    let mut records: HashMap<Arc<str>, SessionRecord> = HashMap::new();
    for (client, record) in &state.sessions {
        let record = SessionRecord::decode(record)?;
        let session_id = context.registry.next_id();
        let log = SessionLog::new(Arc::clone(store), client, session_id);
        let mailbox = Arc::new(
            Mailbox::new(session_id, context.queue_limits())
                .counting_in(Arc::clone(&context.metrics))
                .logging_to(log),
        );
        mailbox.set_online(false);
        let mut session =
            Box::new(Session::new(ByteString::from(&**client), false, mailbox, context.session_limits()));
        if record.protocol_level == ProtocolVersion::V5.level() {
            session.set_expiry_interval(record.expiry_interval);
        }
        sessions.insert(Arc::clone(client), session);
        records.insert(Arc::clone(client), record);
    }
    for (client, filter, record) in &state.subscriptions {
        let (options, id) = decode_subscription(record)?;
        let Some(session) = sessions.get_mut(client) else { continue };
        if context.router.subscribe(filter, session.mailbox(), &options, id, None).is_ok() {
            session.restore_subscription(filter.clone());
        }
    }
    for (client, seq, record) in &state.entries {
        let entry = Entry::decode(record)?;
        let Some(session) = sessions.get_mut(client) else { continue };
        let Some(message) = messages.get(&entry.message) else {
            return Err(StorageError::Corrupt(format!(
                "queue entry {seq} of {client} names a missing message"
            )));
        };
        let mut delivery = if entry.on_subscribe {
            Delivery::retained(Arc::clone(message), entry.qos)
        } else {
            Delivery::live(Arc::clone(message), entry.qos)
        };
        delivery.retain = entry.retain;
        for id in entry.subscription_ids {
            delivery.add_subscription_id(id);
        }
        if let Some(key) = entry.shared {
            delivery.set_shared(key);
        }
        delivery.set_stored_seq(*seq);
        restored.next_seq = restored.next_seq.max(seq + 1);
        restored.entries += 1;
        match entry.state {
            EntryState::Queued => session.mailbox().restore(delivery),
            EntryState::Sent(id) | EntryState::Released(id) => {
                let released = matches!(entry.state, EntryState::Released(_));
                if let Some(packet_id) = PacketId::new(id) {
                    session.restore_inflight(packet_id, delivery, released);
                }
            }
        }
    }
    for (client, packet_id) in &state.incoming {
        if let Some(session) = sessions.get_mut(client) {
            session.restore_incoming(*packet_id);
        }
    }
    // Rows of a client without a session record belong to no session (none can be left by a
    // commit, which is atomic, but a backend may hold them): they go.
    let orphans: std::collections::BTreeSet<&Arc<str>> = state
        .subscriptions
        .iter()
        .map(|(client, _, _)| client)
        .chain(state.entries.iter().map(|(client, _, _)| client))
        .chain(state.incoming.iter().map(|(client, _)| client))
        .filter(|client| !sessions.contains_key(*client))
        .collect();
    for client in orphans {
        store.issue(Op::SessionGone { client: Arc::clone(client) });
    }
    for (topic, id) in &state.retained {
        let Some(message) = messages.get(id) else {
            return Err(StorageError::Corrupt(format!("retained topic {topic} names a missing message")));
        };
        if message.is_expired(now) {
            // Expired while the broker was down: it goes from the store too.
            store.issue(Op::Unretain { topic: topic.clone() });
        } else {
            context.router.restore_retained(message);
            restored.retained += 1;
        }
    }
    for (client, mut session) in sessions {
        let Some(record) = records.remove(&client) else { continue };
        let expiry = session.expiry();
        if !expiry.keeps() {
            // A 5.0 session whose interval was 0 ended with its connection.
            session.mailbox().log().inspect(|log| log.gone());
            continue;
        }
        let offline_since =
            if record.offline_since == 0 { now } else { clock.instant_of(record.offline_since) };
        if let Some(stored) = record.will {
            let will = Will::decode(&stored.will)
                .ok_or_else(|| StorageError::Corrupt(format!("the will of {client} is unreadable")))?;
            let due =
                if stored.due == 0 { offline_since + will.delay() } else { clock.instant_of(stored.due) };
            session.restore_pending_will(will, due);
        }
        let expires_at = match expiry {
            SessionExpiry::After(after) => offline_since.checked_add(after),
            SessionExpiry::OnClose | SessionExpiry::Never => None,
        };
        restored.sessions += 1;
        restored.live.push((Arc::clone(&client), session.mailbox().session_id()));
        session.restore_offline_since(if record.offline_since == 0 {
            clock.unix_ms()
        } else {
            record.offline_since
        });
        context.registry.restore(session, expires_at);
    }
    Ok(restored)
}
