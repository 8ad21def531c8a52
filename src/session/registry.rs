//! The session registry: which client identifiers are connected, and the sessions of those that
//! are not.
//!
//! A new connection claims its client identifier here. If another connection holds it, that one
//! is told to close [MQTT-3.1.4-2] and the claim waits until it has handed its session back, so a
//! session is owned by one task at a time and never shared.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytestring::ByteString;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Session;
use crate::identity::ClientIdentity;

/// Lets a newer connection with the same client identifier close the current one, and wait
/// until it has handed its session back. Notify-based rather than a channel: it is one of the
/// few things every connection holds, so it is kept small.
#[derive(Debug, Default)]
pub struct Takeover {
    /// Woken when the connection must close; a kick before the connection waits is kept.
    kick: Notify,
    /// 0 until taken over; then 1 if the successor asked for a persistent session, 2 for a clean
    /// one.
    successor: AtomicU8,
    /// Woken when the connection has handed its session back.
    closed: Notify,
    /// Set once the session has been handed back.
    is_closed: AtomicBool,
    /// Set when an administrator asked for the connection to close.
    by_admin: AtomicBool,
}

impl Takeover {
    /// Completes when this connection is taken over.
    pub async fn kicked(&self) {
        self.kick.notified().await;
    }

    /// Tells the connection to close because a successor with the given clean session flag
    /// arrived.
    fn kick(&self, successor_clean: bool) {
        // The first successor decides; a later claimer waits behind it and must not rewrite it.
        let value = if successor_clean { 2 } else { 1 };
        let _ = self.successor.compare_exchange(0, value, Ordering::AcqRel, Ordering::Acquire);
        self.kick.notify_one();
    }

    /// Tells the connection to close because an administrator asked for it.
    fn kick_by_admin(&self) {
        self.by_admin.store(true, Ordering::Release);
        self.kick.notify_one();
    }

    /// Whether the connection was told to close by an administrator.
    pub fn kicked_by_admin(&self) -> bool {
        self.by_admin.load(Ordering::Acquire)
    }

    /// Waits until the connection has handed its session back.
    pub(crate) async fn wait_closed(&self) {
        self.closed().await;
    }

    /// `Some(clean flag of the successor)` if this connection was taken over.
    pub fn successor_clean(&self) -> Option<bool> {
        match self.successor.load(Ordering::Acquire) {
            0 => None,
            value => Some(value == 2),
        }
    }

    /// Reports that the connection has handed its session back (or never got one).
    pub fn mark_closed(&self) {
        self.is_closed.store(true, Ordering::Release);
        self.closed.notify_waiters();
    }

    /// Waits until `mark_closed` has been called.
    async fn closed(&self) {
        let notified = self.closed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_closed.load(Ordering::Acquire) {
            notified.await;
        }
    }
}

enum Slot {
    /// A connection owns the session.
    Online {
        /// Which connection.
        connection_id: u64,
        /// How to close it and learn that it has closed.
        takeover: Arc<Takeover>,
        /// Who is connected.
        identity: Arc<ClientIdentity>,
        /// The session's queue, once the connection holds the session (for the admin API).
        mailbox: Option<Arc<crate::mailbox::Mailbox>>,
    },
    /// No connection owns the session; it is kept until its expiry key's time.
    Offline {
        /// The stored session.
        session: Box<Session>,
        /// Its entry in the expiry index; `None` for never.
        expires: Option<ExpiryKey>,
        /// Its entry in the will index, while a will waits for its delay.
        will: Option<ExpiryKey>,
    },
}

/// When an offline session expires, made unique by a sequence number.
type ExpiryKey = (Instant, u64);

/// The slots and the expiry index, under one lock.
#[derive(Default)]
struct Slots {
    /// Sessions by client identifier.
    by_client: HashMap<ByteString, Slot>,
    /// Offline sessions in expiry order, so that expiring costs O(log n) per expired session,
    /// never a scan of every slot.
    by_expiry: BTreeMap<ExpiryKey, ByteString>,
    /// Offline sessions whose will waits for its Will Delay Interval, in due order.
    by_will: BTreeMap<ExpiryKey, ByteString>,
}

impl Slots {
    /// Removes a slot, and its index entries if it was offline.
    fn take(&mut self, client_id: &ByteString) -> Option<Slot> {
        let slot = self.by_client.remove(client_id)?;
        if let Slot::Offline { expires, will, .. } = &slot {
            if let Some(key) = expires {
                self.by_expiry.remove(key);
            }
            if let Some(key) = will {
                self.by_will.remove(key);
            }
        }
        Some(slot)
    }
}

/// One client identifier as the admin API sees it.
#[derive(Debug, Clone)]
pub(crate) struct ClientView {
    /// The client identifier.
    pub(crate) client_id: ByteString,
    /// Who is connected; `None` for an offline session.
    pub(crate) identity: Option<Arc<ClientIdentity>>,
    /// The session's queue; `None` while a connection has not yet taken its session.
    pub(crate) mailbox: Option<Arc<crate::mailbox::Mailbox>>,
}

/// What `Registry::expire` found due.
#[derive(Debug, Default)]
pub struct Due {
    /// Sessions whose expiry time passed, removed from the registry, for the caller to discard
    /// (publishing any will they still hold).
    #[allow(clippy::vec_box)] // Sessions move between the registry and connections as boxes.
    pub sessions: Vec<Box<Session>>,
    /// Wills whose delay passed, taken from sessions that stay, for the caller to publish.
    pub wills: Vec<Arc<crate::message::Message>>,
}

/// All sessions of a server, by client identifier.
#[derive(Default)]
pub struct Registry {
    /// The slots; the lock is held for O(log n) map operations only, never across an `.await`.
    slots: Mutex<Slots>,
    /// Source of unique connection and session identifiers.
    next_id: AtomicU64,
    /// Woken when a session goes offline with a deadline, so the sweeper can look again.
    changed: Notify,
}

/// The session a claim found for its client identifier.
#[derive(Debug)]
pub enum Previous {
    /// A stored session, to resume or (for a clean start) discard.
    Stored(Box<Session>),
    /// A stored session whose expiry time had passed: to be discarded.
    Expired(Box<Session>),
}

/// How long a claim waits for a previous connection to hand its session back before asking
/// again.
const HANDBACK_WAIT: Duration = Duration::from_secs(1);

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls `visit` with every offline session.
    pub(crate) fn for_each_offline(&self, mut visit: impl FnMut(&mut Session)) {
        let mut slots = self.lock();
        for slot in slots.by_client.values_mut() {
            if let Slot::Offline { session, .. } = slot {
                visit(session);
            }
        }
    }

    /// A process-unique identifier for a connection or a session.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Claims `client_id` for connection `connection_id`, closing any connection that holds it
    /// and waiting for its session. Returns the stored session, if there is one.
    pub async fn claim(
        &self,
        identity: &Arc<ClientIdentity>,
        connection_id: u64,
        takeover: &Arc<Takeover>,
        clean: bool,
        now: Instant,
    ) -> Option<Previous> {
        let client_id = &identity.client_id;
        loop {
            let previous = {
                let mut slots = self.lock();
                if let Some(Slot::Online { takeover: previous, .. }) = slots.by_client.get(client_id) {
                    previous.kick(clean);
                    Arc::clone(previous)
                } else {
                    let previous = slots.take(client_id);
                    let slot = Slot::Online {
                        connection_id,
                        takeover: Arc::clone(takeover),
                        identity: Arc::clone(identity),
                        mailbox: None,
                    };
                    slots.by_client.insert(client_id.clone(), slot);
                    return match previous {
                        // A session whose expiry time has passed is not resumed, even if the
                        // sweeper has not discarded it yet.
                        Some(Slot::Offline { session, expires: Some((at, _)), .. }) if at <= now => {
                            Some(Previous::Expired(session))
                        }
                        Some(Slot::Offline { session, .. }) => Some(Previous::Stored(session)),
                        _ => None,
                    };
                }
            };
            // The previous owner marks itself closed once it has handed the session back. The
            // wait is bounded and its outcome does not matter: the loop looks again.
            let _ = tokio::time::timeout(HANDBACK_WAIT, previous.closed()).await;
        }
    }

    /// Hands a session back at the end of connection `connection_id`: kept until `expires_at`
    /// if `keep`, discarded otherwise. Returns the session when the caller must discard it (its
    /// subscriptions are still in the router).
    pub fn release(
        &self,
        session: Box<Session>,
        connection_id: u64,
        keep: bool,
        expires_at: Option<Instant>,
    ) -> Option<Box<Session>> {
        let mut slots = self.lock();
        let owned = matches!(slots.by_client.get(&session.client_id),
            Some(Slot::Online { connection_id: owner, .. }) if *owner == connection_id);
        if !owned {
            return Some(session);
        }
        if keep {
            session.mailbox().set_online(false);
            let client_id = session.client_id.clone();
            let expires = expires_at.map(|at| (at, self.next_id()));
            if let Some(key) = expires {
                slots.by_expiry.insert(key, client_id.clone());
            }
            let will = session.pending_will_due().map(|at| (at, self.next_id()));
            if let Some(key) = will {
                slots.by_will.insert(key, client_id.clone());
            }
            slots.by_client.insert(client_id, Slot::Offline { session, expires, will });
            drop(slots);
            if expires.is_some() || will.is_some() {
                self.changed.notify_one();
            }
            None
        } else {
            slots.by_client.remove(&session.client_id);
            Some(session)
        }
    }

    /// Adds an offline session read from durable storage at start-up, kept until `expires_at`
    /// (`None`: never), with its delayed will indexed.
    pub fn restore(&self, session: Box<Session>, expires_at: Option<Instant>) {
        let mut slots = self.lock();
        let client_id = session.client_id.clone();
        let expires = expires_at.map(|at| (at, self.next_id()));
        if let Some(key) = expires {
            slots.by_expiry.insert(key, client_id.clone());
        }
        let will = session.pending_will_due().map(|at| (at, self.next_id()));
        if let Some(key) = will {
            slots.by_will.insert(key, client_id.clone());
        }
        slots.by_client.insert(client_id, Slot::Offline { session, expires, will });
        drop(slots);
        self.changed.notify_one();
    }

    /// Gives up the claim of connection `connection_id` on `client_id` without a session to hand
    /// back (the task ended between its claim and its session, or lost the session in a panic).
    pub fn abandon(&self, client_id: &ByteString, connection_id: u64) {
        let mut slots = self.lock();
        if matches!(slots.by_client.get(client_id),
            Some(Slot::Online { connection_id: owner, .. }) if *owner == connection_id)
        {
            slots.by_client.remove(client_id);
        }
    }

    /// Removes and returns every offline session whose expiry time has passed, in expiry order,
    /// and takes the wills whose delay has passed; the cost is that of what is due only.
    pub fn expire(&self, now: Instant) -> Due {
        let mut slots = self.lock();
        let mut due = Due::default();
        while let Some(entry) = slots.by_will.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let client_id = entry.remove();
            if let Some(Slot::Offline { session, will, .. }) = slots.by_client.get_mut(&client_id) {
                *will = None;
                due.wills.extend(session.take_pending_will(now));
                // The stored record must not publish it again after a restart.
                session.persist(&crate::storage::Clock::now(), true);
            }
        }
        while let Some(entry) = slots.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let client_id = entry.remove();
            if let Some(Slot::Offline { session, will, .. }) = slots.by_client.remove(&client_id) {
                if let Some(key) = will {
                    slots.by_will.remove(&key);
                }
                due.sessions.push(session);
            }
        }
        due
    }

    /// The earliest time `expire` has something to do, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let slots = self.lock();
        let expiry = slots.by_expiry.first_key_value().map(|(key, _)| key.0);
        let will = slots.by_will.first_key_value().map(|(key, _)| key.0);
        expiry.into_iter().chain(will).min()
    }

    /// Completes when a session has gone offline with a deadline since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Records the queue of the session connection `connection_id` now holds.
    pub(crate) fn attach_mailbox(
        &self,
        client_id: &str,
        connection_id: u64,
        queue: &Arc<crate::mailbox::Mailbox>,
    ) {
        if let Some(Slot::Online { connection_id: owner, mailbox, .. }) =
            self.lock().by_client.get_mut(client_id)
        {
            if *owner == connection_id {
                *mailbox = Some(Arc::clone(queue));
            }
        }
    }

    /// A snapshot of every client identifier held: who is connected, and each session's queue.
    pub(crate) fn clients(&self) -> Vec<ClientView> {
        let slots = self.lock();
        slots
            .by_client
            .iter()
            .map(|(client_id, slot)| match slot {
                Slot::Online { identity, mailbox, .. } => ClientView {
                    client_id: client_id.clone(),
                    identity: Some(Arc::clone(identity)),
                    mailbox: mailbox.clone(),
                },
                Slot::Offline { session, .. } => ClientView {
                    client_id: client_id.clone(),
                    identity: None,
                    mailbox: Some(Arc::clone(session.mailbox())),
                },
            })
            .collect()
    }

    /// Connected and offline sessions.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let slots = self.lock();
        let online = slots.by_client.values().filter(|slot| matches!(slot, Slot::Online { .. })).count();
        (online, slots.by_client.len() - online)
    }

    /// Tells the connection of `client_id`, if one is connected, to close by an administrator's
    /// decision (5.0: DISCONNECT 0x98); returns its takeover handle, to wait for the close.
    pub(crate) fn kick(&self, client_id: &str) -> Option<Arc<Takeover>> {
        match self.lock().by_client.get(client_id) {
            Some(Slot::Online { takeover, .. }) => {
                takeover.kick_by_admin();
                Some(Arc::clone(takeover))
            }
            _ => None,
        }
    }

    /// Removes and returns the offline session of `client_id`, if there is one.
    pub(crate) fn remove_offline(&self, client_id: &str) -> Option<Box<Session>> {
        let mut slots = self.lock();
        if !matches!(slots.by_client.get(client_id), Some(Slot::Offline { .. })) {
            return None;
        }
        match slots.take(&ByteString::from(client_id)) {
            Some(Slot::Offline { session, .. }) => Some(session),
            _ => None,
        }
    }

    /// The identity of the client connected with `client_id`, if one is.
    pub fn identity(&self, client_id: &str) -> Option<Arc<ClientIdentity>> {
        match self.lock().by_client.get(client_id) {
            Some(Slot::Online { identity, .. }) => Some(Arc::clone(identity)),
            _ => None,
        }
    }

    /// Number of client identifiers held, online and offline.
    pub fn len(&self) -> usize {
        self.lock().by_client.len()
    }

    /// True when no client identifier is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
/// A summary: the whole tree or table would be too large to print.
impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}
