//! The session: everything the broker remembers about one client identifier, as a sans-IO state
//! machine in the manner of quinn-proto.
//!
//! Inputs are `handle_*` calls (`handle_packet`, `handle_timeout`) with `now` as an argument;
//! outputs are `Action`s taken with `poll_action` (messages to route, subscriptions to change,
//! packets to write, acknowledgements that wait until their message is safe), the PUBLISH packets
//! `poll_transmit` writes from the mailbox, and the deadline `poll_timeout` returns.
//!
//! A session is owned by exactly one connection task while its client is connected and by the
//! registry while it is not; it is never shared. What the rest of the broker may touch is its
//! mailbox, which publishers push into.
//!
//! **Architecture Invariant:** the session knows nothing about the router, sockets or the clock.
//! It never routes a message, never reads the time and never waits.

mod alias;
mod expiry;
mod incoming;
mod inflight;
mod keepalive;
mod registry;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests;
mod will;

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{
    encode_publish, encode_publish_v5_plain, DecodeError, Disconnect, EncodeError, OutgoingPublish, Packet,
    PacketId, PayloadFormat, ProtocolVersion, Publish, PublishResponse, QoS, ReasonCode, RetainHandling,
    Rule, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use tokio::time::Instant;

pub(crate) use expiry::SessionExpiry;
pub(crate) use keepalive::KeepAlive;
pub(crate) use registry::{ClientView, Previous, Registry, Takeover};
pub use will::Will;

use crate::auth::{Acl, HookAction, HookVerdict, Permissions};
use crate::exit::Exit;
use crate::mailbox::Mailbox;
use crate::message::{too_deep, Delivery, Message};
use crate::router::parse_shared;
use crate::storage::{Clock, SessionRecord, StoredWill};
use alias::{InboundAliases, OutboundAliases};
use incoming::AwaitingPubrel;
use inflight::{Awaiting, Inflight};

/// Retained-store nodes any SUBSCRIBE may visit to find the retained messages of its filters.
const WALK_BASE: usize = 100_000;
/// Further nodes per byte of SUBSCRIBE, so that the walk stays linear in the packet's size.
const WALK_PER_BYTE: usize = 16;

/// Filters of one SUBSCRIBE handled per step.
const SUBSCRIBE_CHUNK: usize = 64;

/// Something the session asks its connection to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Route a message to its subscribers; then write `ack` (PUBACK or PUBREC), but only once the
    /// message is in the queue of every session entitled to it.
    Publish {
        /// The message, decoded once and shared.
        message: Arc<Message>,
        /// The acknowledgement owed to the publisher, if its QoS needs one.
        ack: Option<Packet>,
    },
    /// Add (or replace) this session's subscription in the router and, if `send_retained`,
    /// queue the retained messages that match it [MQTT-3.8.4-3].
    Subscribe {
        /// The topic filter.
        filter: ByteString,
        /// The options granted (QoS, No Local, Retain As Published).
        options: SubscriptionOptions,
        /// The SUBSCRIBE's Subscription Identifier, if it had one.
        subscription_id: Option<NonZeroU32>,
        /// Whether the matching retained messages are sent now (Retain Handling, and never for
        /// a shared subscription).
        send_retained: bool,
        /// Set on the first filter of a SUBSCRIBE: the retained-store nodes the walks of the
        /// whole packet may visit, besides what the messages they find earn.
        walk_budget: Option<usize>,
    },
    /// Remove this session's subscription to `filter` from the router.
    Unsubscribe {
        /// The topic filter.
        filter: ByteString,
    },
    /// Tell the mailbox how many subscriptions the session now holds; sent after the router
    /// changes of an UNSUBSCRIBE, so that the count is never lower than the router's entries.
    SubscriptionCount(usize),
    /// Write this packet, after everything before it.
    Send(Packet),
    /// Take this AUTH (re-authentication, or its next step) to the connection's enhanced
    /// authentication method.
    Authenticate(iothub_protocol::Auth),
}

/// Limits a session enforces.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Most subscriptions at once; 0 means no limit.
    pub max_subscriptions: usize,
    /// How long an offline persistent session is kept; `None` while the server runs.
    pub session_timeout: Option<Duration>,
    /// Whether retained messages may be published (`retain_available`).
    pub retain_available: bool,
    /// Whether shared subscriptions may be made (`shared_subscription_available`).
    pub shared_available: bool,
}

/// What the CONNECT and CONNACK of the current network connection settled: the protocol
/// version and the limits each side told the other. Copied by the connection, which writes
/// packets with it too.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// The protocol version of the connection.
    pub version: ProtocolVersion,
    /// Most outbound QoS 1/2 messages unacknowledged at once: `max_inflight_messages`, and for
    /// 5.0 no more than the client's Receive Maximum [MQTT-3.3.4-9].
    pub max_inflight: usize,
    /// Largest packet the client accepts (its Maximum Packet Size) [MQTT-3.1.2-24].
    pub max_packet_size: usize,
    /// Highest Topic Alias the client accepts from the server; 0 for none [MQTT-3.1.2-26].
    pub client_alias_max: u16,
    /// Highest Topic Alias the server accepts from the client (told in CONNACK).
    pub server_alias_max: u16,
    /// The server's Receive Maximum: inbound QoS 1/2 PUBLISHes unacknowledged at once.
    pub receive_maximum: usize,
    /// Request Problem Information: whether Reason Strings and User Properties may be sent on
    /// packets other than PUBLISH, CONNACK and DISCONNECT (3.1.2.11.7).
    pub problem_information: bool,
}

impl Link {
    /// The link of a 3.1 or 3.1.1 connection: no limits beyond the server's own.
    pub fn v3(version: ProtocolVersion, max_inflight: usize) -> Link {
        Link {
            version,
            max_inflight,
            max_packet_size: usize::MAX,
            client_alias_max: 0,
            server_alias_max: 0,
            receive_maximum: usize::from(u16::MAX),
            problem_information: true,
        }
    }

    /// True for a 5.0 connection.
    pub fn is_v5(&self) -> bool {
        self.version == ProtocolVersion::V5
    }

    /// Writes a packet in the connection's wire format. For 5.0 it leaves out what the client
    /// did not ask for (Request Problem Information 0) and, to fit the client's Maximum Packet
    /// Size, the Reason String and then the User Properties [MQTT-3.1.2-25]; a packet that still
    /// does not fit is an error.
    pub fn write(&self, out: &mut BytesMut, packet: &Packet) -> Result<(), EncodeError> {
        if !self.is_v5() {
            return packet.encode(ProtocolVersion::V311, out);
        }
        if !self.problem_information {
            if let Some(trimmed) = without_problem_information(packet) {
                return trimmed.encode_within(ProtocolVersion::V5, self.max_packet_size, out);
            }
        }
        packet.encode_within(ProtocolVersion::V5, self.max_packet_size, out)
    }
}

/// A copy of `packet` without Reason String and User Properties, for a client that set Request
/// Problem Information to 0 (3.1.2.11.7); `None` when there is nothing to leave out, and for
/// PUBLISH, CONNACK and DISCONNECT, which keep them.
fn without_problem_information(packet: &Packet) -> Option<Packet> {
    let mut packet = packet.clone();
    let changed = match &mut packet {
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            r.properties.take().is_some()
        }
        Packet::SubAck(s) => s.properties.take().is_some(),
        Packet::UnsubAck(u) => u.properties.take().is_some(),
        Packet::Auth(a) => a.properties.as_mut().is_some_and(|p| {
            let had = p.reason_string.is_some() || !p.user_properties.is_empty();
            p.reason_string = None;
            p.user_properties.clear();
            had
        }),
        _ => false,
    };
    changed.then_some(packet)
}

/// A will whose Will Delay Interval runs after its connection ended.
#[derive(Debug)]
struct PendingWill {
    /// The will.
    will: Will,
    /// When it is published unless a connection resumes the session first.
    due: Instant,
}

/// Most questions the HTTP ACL hook is asked for one packet, or for the subscriptions a
/// connection inherits; filters beyond are refused.
pub(crate) const MAX_HOOK_QUESTIONS: usize = 1024;

/// The state of one client identifier.
#[derive(Debug)]
pub struct Session {
    /// The client identifier.
    pub client_id: ByteString,
    /// True when the session ends with its connection (3.1.1 clean session, or 5.0 Session
    /// Expiry Interval 0).
    pub clean: bool,
    /// How long the session outlives its connection.
    expiry: SessionExpiry,
    /// The 5.0 Session Expiry Interval in force, in seconds, for a DISCONNECT to change.
    expiry_interval: u32,
    /// Hash of the client identifier, for `hash_client_id` shared subscriptions.
    origin_hash: u64,
    /// Queue of messages waiting to be sent.
    mailbox: Arc<Mailbox>,
    /// The topic filters subscribed to; mirrors the router's entries, which hold the options.
    subscriptions: HashSet<ByteString>,
    /// Outbound QoS 1/2 messages awaiting acknowledgement.
    inflight: Inflight,
    /// Inbound QoS 2 packet identifiers received and not yet released by PUBREL.
    awaiting_pubrel: AwaitingPubrel,
    /// Limits in force.
    limits: SessionLimits,
    /// The will of the current network connection.
    will: Option<Will>,
    /// A will waiting for its delay while no connection has the session.
    pending_will: Option<PendingWill>,
    /// PUBLISH packets written since `take_sent`, by QoS.
    sent: [u64; 3],
    /// Their payload bytes.
    sent_payload: u64,
    /// Keep-alive of the current network connection; `None` before the first `attach`.
    keep_alive: Option<KeepAlive>,
    /// The current network connection's version and limits.
    link: Link,
    /// Topic aliases the client set on this connection.
    inbound_aliases: InboundAliases,
    /// Topic aliases the server set on this connection.
    outbound_aliases: OutboundAliases,
    /// Whether the connection authenticated with an enhanced authentication method, so that
    /// AUTH packets are its re-authentication (4.12.1).
    enhanced_auth: bool,
    /// Actions not yet taken by the connection.
    actions: VecDeque<Action>,
    /// The SUBSCRIBE being turned into actions, a chunk at a time.
    pending_subscribe: Option<PendingSubscribe>,
    /// When the session went offline (wall-clock ms), once it has been persisted so; 0 while a
    /// connection has it.
    offline_since: u64,
    /// What the current connection's client may publish and subscribe to; `None` without an
    /// ACL.
    permissions: Option<Permissions>,
}

/// A SUBSCRIBE whose filters are not all handled yet.
#[derive(Debug)]
struct PendingSubscribe {
    /// Its packet identifier, for the SUBACK.
    packet_id: PacketId,
    /// Filters not handled yet.
    filters: std::vec::IntoIter<(ByteString, SubscriptionOptions)>,
    /// One code per filter handled so far, in order.
    reason_codes: Vec<ReasonCode>,
    /// The walk budget, until the first granted filter takes it.
    walk_budget: Option<usize>,
    /// The SUBSCRIBE's Subscription Identifier, for every filter in it.
    subscription_id: Option<NonZeroU32>,
    /// Filters refused for the hierarchy limit.
    refused_deep: usize,
    /// Filters refused for `max_subscriptions`.
    refused_quota: usize,
    /// Filters the ACL does not allow.
    refused_acl: usize,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ByteString, clean: bool, mailbox: Arc<Mailbox>, limits: SessionLimits) -> Session {
        let origin_hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(client_id.as_bytes());
        Session {
            client_id,
            clean,
            expiry: SessionExpiry::for_v3(clean, limits.session_timeout),
            expiry_interval: 0,
            origin_hash,
            mailbox,
            subscriptions: HashSet::new(),
            inflight: Inflight::default(),
            awaiting_pubrel: AwaitingPubrel::default(),
            limits,
            will: None,
            pending_will: None,
            sent: [0; 3],
            sent_payload: 0,
            keep_alive: None,
            link: Link::v3(ProtocolVersion::V311, 20),
            inbound_aliases: InboundAliases::default(),
            outbound_aliases: OutboundAliases::default(),
            enhanced_auth: false,
            actions: VecDeque::new(),
            pending_subscribe: None,
            offline_since: 0,
            permissions: None,
        }
    }

    /// Starts a network connection on this session: its keep-alive (in seconds) counts from
    /// `now`, its will replaces any previous one, a will still waiting for its delay is not
    /// published [MQTT-3.1.3-9], and topic aliases start empty [MQTT-3.3.2-7].
    pub fn attach(&mut self, keep_alive_secs: u16, will: Option<Will>, link: Link, now: Instant) {
        self.keep_alive = Some(KeepAlive::new(keep_alive_secs, now));
        self.will = will.map(|will| will.from_session(self.mailbox.session_id(), self.origin_hash));
        self.pending_will = None;
        self.link = link;
        self.awaiting_pubrel.inherit_all();
        self.inbound_aliases = InboundAliases::new(link.server_alias_max);
        self.outbound_aliases = OutboundAliases::new(link.client_alias_max);
        self.enhanced_auth = false;
        self.actions.clear();
        self.pending_subscribe = None;
        self.offline_since = 0;
    }

    /// Sets the 5.0 Session Expiry Interval (seconds) the CONNECT asked for, capped by the
    /// server's `session_timeout_secs`; returns the interval granted, which CONNACK tells the
    /// client when it differs (3.2.2.3.2).
    pub fn set_expiry_interval(&mut self, requested: u32) -> u32 {
        let (expiry, granted) = SessionExpiry::for_v5(requested, self.limits.session_timeout);
        self.expiry = expiry;
        self.expiry_interval = granted;
        self.clean = !expiry.keeps();
        granted
    }

    /// Sets what the current connection's client may publish and subscribe to (the ACL's rules
    /// for its client identifier and username).
    pub(crate) fn set_permissions(&mut self, permissions: Option<Permissions>) {
        self.permissions = permissions;
    }

    /// PUBLISH packets written since the last call, by QoS, and their payload bytes; for the
    /// connection to add to the server's counters.
    pub(crate) fn take_sent(&mut self) -> ([u64; 3], u64) {
        (std::mem::take(&mut self.sent), std::mem::take(&mut self.sent_payload))
    }

    /// The questions an HTTP ACL hook must answer before `packet` can be handled (at most
    /// `MAX_HOOK_QUESTIONS`): the topic of a
    /// PUBLISH, the filters of a SUBSCRIBE, those it has not answered for this connection yet.
    pub(crate) fn hook_questions(&self, packet: &Packet) -> Vec<(HookAction, String)> {
        let Some(permissions) = &self.permissions else { return Vec::new() };
        let mut questions = Vec::new();
        match packet {
            Packet::Publish(publish) => {
                let alias = publish.properties.as_ref().and_then(|p| p.topic_alias);
                let topic = if self.link.is_v5() {
                    self.inbound_aliases.peek(&publish.topic, alias)
                } else {
                    Some(publish.topic.clone())
                };
                if let Some(topic) = topic.filter(|t| permissions.needs_decision(HookAction::Publish, t)) {
                    questions.push((HookAction::Publish, topic.to_string()));
                }
            }
            Packet::Subscribe(subscribe) => {
                // Filters past the cap are not asked about, and so refused.
                for (filter, _) in subscribe.filters.iter().take(MAX_HOOK_QUESTIONS) {
                    let filter = filter.to_string();
                    let asked = questions.iter().any(|(_, f)| *f == filter);
                    if !asked && permissions.needs_decision(HookAction::Subscribe, &filter) {
                        questions.push((HookAction::Subscribe, filter));
                    }
                }
            }
            _ => {}
        }
        questions
    }

    /// Records the HTTP hook's answers to one packet's questions; returns the questions whose
    /// answer was a failure, to forget once the packet is handled.
    pub(crate) fn record_hook_answers(
        &mut self,
        answers: Vec<((HookAction, String), HookVerdict)>,
    ) -> Vec<(HookAction, String)> {
        let failed: Vec<(HookAction, String)> =
            answers.iter().filter(|(_, v)| *v == HookVerdict::Unavailable).map(|(k, _)| k.clone()).collect();
        if let Some(permissions) = &mut self.permissions {
            permissions.record_decisions(
                answers.into_iter().map(|(key, verdict)| (key, verdict.allowed())).collect(),
            );
        }
        failed
    }

    /// Forgets answers that stood for the hook's failure (see `record_hook_answers`).
    pub(crate) fn forget_hook_answers(&mut self, failed: &[(HookAction, String)]) {
        if let Some(permissions) = &mut self.permissions {
            permissions.forget_decisions(failed);
        }
    }

    /// Removes and returns the subscriptions the session's permissions do not allow: run when
    /// a connection takes the session, whose subscriptions may come from another user's
    /// connection or from rules a reload has since changed.
    pub(crate) fn prune_subscriptions(&mut self) -> Vec<ByteString> {
        let Some(permissions) = &self.permissions else { return Vec::new() };
        let pruned: Vec<ByteString> =
            self.subscriptions.iter().filter(|filter| !permissions.can_subscribe(filter)).cloned().collect();
        for filter in &pruned {
            self.subscriptions.remove(filter);
        }
        if !pruned.is_empty() {
            self.mailbox.set_subscription_count(self.subscriptions.len());
        }
        pruned
    }

    /// The filters of the session's subscriptions that the HTTP ACL hook has not answered for
    /// this connection, at most `limit` of them.
    pub(crate) fn unasked_subscriptions(&self, limit: usize) -> Vec<(HookAction, String)> {
        let Some(permissions) = &self.permissions else { return Vec::new() };
        self.subscriptions
            .iter()
            .filter(|filter| permissions.needs_decision(HookAction::Subscribe, filter))
            .take(limit)
            .map(|filter| (HookAction::Subscribe, filter.to_string()))
            .collect()
    }

    /// Applies a reloaded ACL: the session's permissions are computed again, and every
    /// subscription they no longer allow is removed and returned, for the caller to remove from
    /// the router and the store, so that a revoked permission stops deliveries at once.
    pub(crate) fn revoke(&mut self, acl: &Acl) -> Vec<ByteString> {
        let Some(previous) = &self.permissions else { return Vec::new() };
        let permissions = acl.permissions_again(previous);
        let revoked: Vec<ByteString> =
            self.subscriptions.iter().filter(|filter| !permissions.can_subscribe(filter)).cloned().collect();
        self.permissions = Some(permissions);
        for filter in &revoked {
            self.subscriptions.remove(filter);
        }
        if !revoked.is_empty() {
            self.mailbox.set_subscription_count(self.subscriptions.len());
        }
        revoked
    }

    /// Records that the current connection authenticated with an enhanced authentication
    /// method: its AUTH packets go to the connection (`Action::Authenticate`).
    pub fn set_enhanced_auth(&mut self) {
        self.enhanced_auth = true;
    }

    /// The current connection's version and limits.
    pub fn link(&self) -> Link {
        self.link
    }

    /// The session's mailbox.
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// How long the session outlives its connection.
    pub fn expiry(&self) -> SessionExpiry {
        self.expiry
    }

    /// Number of outbound messages awaiting acknowledgement.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Number of subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// Logs the session's record (version, expiry, will) to durable storage, if it is
    /// persistent there; `offline` when no connection has it any more.
    pub(crate) fn persist(&mut self, clock: &Clock, offline: bool) {
        if self.mailbox.log().is_none() {
            return;
        }
        let offline_since = if offline { self.offline_since(clock) } else { 0 };
        let will = match &self.pending_will {
            Some(pending) => {
                Some(StoredWill { will: pending.will.encode(), due: clock.unix_ms_of(pending.due) })
            }
            None => self.will.as_ref().map(|will| StoredWill { will: will.encode(), due: 0 }),
        };
        let record = SessionRecord {
            protocol_level: self.link.version.level(),
            expiry_interval: self.expiry_interval,
            offline_since,
            will,
        };
        if let Some(log) = self.mailbox.log() {
            log.session(record);
        }
    }

    /// When the session went offline, the first time this is asked after its connection ended.
    fn offline_since(&mut self, clock: &Clock) -> u64 {
        if self.offline_since == 0 {
            self.offline_since = clock.unix_ms().max(1);
        }
        self.offline_since
    }

    /// Puts back a subscription read from durable storage (the router has it already).
    pub(crate) fn restore_subscription(&mut self, filter: ByteString) {
        self.subscriptions.insert(filter);
        self.mailbox.set_subscription_count(self.subscriptions.len());
    }

    /// Puts back a delivery that was in flight when the broker stopped: sent with `packet_id`,
    /// and `released` if PUBREL was sent. It is re-sent when a connection resumes the session.
    pub(crate) fn restore_inflight(&mut self, packet_id: PacketId, delivery: Delivery, released: bool) {
        let state = match (released, delivery.qos) {
            (true, _) => Awaiting::Comp,
            (false, QoS::ExactlyOnce) => Awaiting::Rec,
            (false, _) => Awaiting::Ack,
        };
        self.inflight.restore(packet_id, state, delivery);
    }

    /// Forgets an inbound QoS 2 packet identifier whose PUBLISH was refused (PUBREC 0x80 or
    /// more ends the exchange, 4.3.3), so that a PUBLISH reusing it is a new message.
    pub(crate) fn forget_incoming(&mut self, packet_id: PacketId) {
        self.awaiting_pubrel.remove(packet_id.get());
    }

    /// Puts back an inbound QoS 2 packet identifier that awaited PUBREL.
    pub(crate) fn restore_incoming(&mut self, packet_id: u16) {
        self.awaiting_pubrel.insert(packet_id);
    }

    /// Sets when the restored session went offline (wall-clock ms).
    pub(crate) fn restore_offline_since(&mut self, unix_ms: u64) {
        self.offline_since = unix_ms.max(1);
    }

    /// Puts back a will waiting for its delay, due at `due`.
    pub(crate) fn restore_pending_will(&mut self, will: Will, due: Instant) {
        self.pending_will = Some(PendingWill { will, due });
    }

    /// Removes and returns every subscription's filter, for the caller to remove from the router
    /// when the session is discarded.
    pub fn take_subscriptions(&mut self) -> Vec<ByteString> {
        self.mailbox.set_subscription_count(0);
        self.subscriptions.drain().collect()
    }

    /// Removes and returns what the session still holds for shared subscriptions, queued, or
    /// sent at QoS 1 and not yet acknowledged, for the caller to hand to other members when the
    /// session ends (section 4.8.2). A QoS 2 message already sent stays out: the client may
    /// have it, and no other member may get it [MQTT-4.8.2-5].
    pub fn take_shared_deliveries(&mut self) -> Vec<Delivery> {
        let mut taken: Vec<Delivery> = self
            .inflight
            .take_unreceived()
            .into_iter()
            .filter(|d| d.shared().is_some() && d.qos == QoS::AtLeastOnce)
            .collect();
        let queued = self.mailbox.take_all();
        taken.extend(queued.into_iter().filter(|d| d.shared().is_some()));
        taken
    }

    /// The will, if the connection's end (at `now`) publishes it at once; it is consumed either
    /// way. A will with a delay, on a session that outlives its connection, is kept instead
    /// until the delay passes or the session ends, whichever is first (3.1.3.2.2).
    pub fn take_will(&mut self, exit: &Exit, now: Instant) -> Option<Arc<Message>> {
        let will = self.will.take().filter(|will| will.is_due(exit))?;
        let delay = match self.expiry {
            SessionExpiry::OnClose => Duration::ZERO,
            SessionExpiry::After(expiry) => will.delay().min(expiry),
            SessionExpiry::Never => will.delay(),
        };
        if delay.is_zero() || matches!(exit, Exit::Shutdown) {
            return self.will_allowed(will.message(now));
        }
        match now.checked_add(delay) {
            Some(due) => {
                self.pending_will = Some(PendingWill { will, due });
                None
            }
            None => self.will_allowed(will.message(now)),
        }
    }

    /// When the will waiting for its delay is due, if there is one.
    pub fn pending_will_due(&self) -> Option<Instant> {
        self.pending_will.as_ref().map(|p| p.due)
    }

    /// The will waiting for its delay, as published at `now`: because its delay passed, or
    /// because the session ends first.
    pub fn take_pending_will(&mut self, now: Instant) -> Option<Arc<Message>> {
        let message = self.pending_will.take().map(|p| p.will.message(now))?;
        self.will_allowed(message)
    }

    /// A will about to be published, unless the permissions in force (a reload may have
    /// changed them since CONNECT) no longer let its client write its topic.
    fn will_allowed(&mut self, will: Arc<Message>) -> Option<Arc<Message>> {
        if self.permissions.as_mut().is_some_and(|p| !p.check_publish(&will.topic)) {
            tracing::info!(topic = %will.topic, "will not published: the ACL no longer allows its topic");
            return None;
        }
        Some(will)
    }

    /// The next action for the connection, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            self.continue_subscribe();
        }
        self.actions.pop_front()
    }

    /// True while actions wait to be taken.
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty() || self.pending_subscribe.is_some()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.keep_alive.as_ref().and_then(KeepAlive::deadline)
    }

    /// Checks the deadlines at `now`: a keep-alive that ran out ends the connection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Exit> {
        if self.keep_alive.is_some_and(|k| k.expired(now)) {
            return Err(Exit::KeepAliveTimeout);
        }
        Ok(())
    }

    /// Records that the client was alive at `now` without a packet being read: the broker itself
    /// had stopped reading it, and the client kept taking what was written to it.
    pub fn record_activity(&mut self, now: Instant) {
        if let Some(keep_alive) = &mut self.keep_alive {
            keep_alive.record_activity(now);
        }
    }

    /// Handles one decoded packet from the client at `now`.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) -> Result<(), Exit> {
        // Only a whole control packet counts as keep-alive activity [MQTT-3.1.2-24].
        if let Some(keep_alive) = &mut self.keep_alive {
            keep_alive.record_activity(now);
        }
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish, now)?,
            Packet::PubAck(ack) => self.handle_puback(ack.packet_id),
            Packet::PubRec(rec) => self.handle_pubrec(rec.packet_id, rec.reason_code),
            Packet::PubRel(rel) => self.handle_pubrel(rel.packet_id),
            Packet::PubComp(comp) => self.handle_pubcomp(comp.packet_id),
            Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe)?,
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(unsubscribe),
            Packet::PingReq => self.actions.push_back(Action::Send(Packet::PingResp)),
            Packet::Disconnect(disconnect) => return Err(self.handle_disconnect(&disconnect)),
            Packet::Auth(auth) if self.enhanced_auth => self.actions.push_back(Action::Authenticate(auth)),
            Packet::Auth(_) => {
                // No authentication method was agreed at CONNECT, so an AUTH is a Protocol
                // Error (4.12).
                return Err(violation(Rule::AuthWithoutMethod));
            }
            Packet::Connect(_) => {
                return Err(Exit::Violation(DecodeError::Violation(Rule::Mqtt3_1_0_2)));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(Exit::Violation(DecodeError::Violation(Rule::ServerOnlyPacket)));
            }
        }
        Ok(())
    }

    /// Re-sends, in their original order and with their original packet identifiers, every
    /// unacknowledged PUBLISH (with DUP=1) and PUBREL [MQTT-4.4.0-1], expired or not: the
    /// client may already have them. In 5.0 with their whole topic: aliases do not survive the
    /// connection [MQTT-3.3.2-7]. A PUBLISH larger than this connection's Maximum Packet Size
    /// (the client may have lowered it) is discarded instead, as if it had been delivered
    /// [MQTT-3.1.2-25].
    pub fn resend_inflight(&mut self, out: &mut BytesMut, now: Instant) -> Result<(), EncodeError> {
        if self.link.is_v5() && self.link.max_packet_size != usize::MAX {
            let too_large: Vec<(PacketId, Awaiting)> = self
                .inflight
                .in_order()
                .filter(|(_, o)| o.state != Awaiting::Comp)
                .filter(|(_, o)| self.publish_size(&o.delivery, now) > self.link.max_packet_size)
                .map(|(packet_id, o)| (packet_id, o.state))
                .collect();
            for (packet_id, state) in too_large {
                self.log_done(packet_id, state);
                self.inflight.complete(packet_id, state);
                self.mailbox.count_too_large();
            }
        }
        self.inflight.owe_all();
        self.resend_owed(out, self.link.max_inflight, now)
    }

    /// Re-sends what the current connection is still owed, oldest first: PUBLISHes as far as
    /// the window allows, so that a client that came back with a smaller Receive Maximum than
    /// the messages in flight gets the rest as it acknowledges [MQTT-3.3.4-9], before any new
    /// message; PUBRELs at once, since the window holds back PUBLISH packets only
    /// [MQTT-3.3.4-10] and a PUBREL re-sent takes no place in it (4.9).
    fn resend_owed(
        &mut self,
        out: &mut BytesMut,
        max_inflight: usize,
        now: Instant,
    ) -> Result<(), EncodeError> {
        let sent = self.inflight.holding() - self.inflight.owed();
        for packet_id in self.inflight.take_owed(max_inflight.saturating_sub(sent)) {
            let Some(outgoing) = self.inflight.get(packet_id) else { continue };
            match outgoing.state {
                Awaiting::Ack | Awaiting::Rec => {
                    let publish =
                        Outgoing { delivery: &outgoing.delivery, dup: true, packet_id: Some(packet_id) };
                    publish.write(out, &self.link, None, now)?;
                }
                Awaiting::Comp => self.link.write(out, &Packet::PubRel(PublishResponse::new(packet_id)))?,
            }
        }
        Ok(())
    }

    /// Moves queued messages into `out` while the inflight window (`max_inflight`, which the
    /// connection takes from its link) has room, taking about
    /// `byte_budget` encoded bytes at most. `scratch` is reused between calls. A message whose
    /// expiry interval passed at `now` is dropped [MQTT-3.3.2-5], and so, for a 5.0 client, is
    /// one larger than its Maximum Packet Size [MQTT-3.1.2-25]; either way the messages behind
    /// it are still sent.
    pub fn poll_transmit(
        &mut self,
        out: &mut BytesMut,
        max_inflight: usize,
        byte_budget: usize,
        scratch: &mut Vec<Delivery>,
        now: Instant,
    ) -> Result<(), EncodeError> {
        self.resend_owed(out, max_inflight, now)?;
        let start = out.len();
        loop {
            let room = max_inflight.saturating_sub(self.inflight.holding());
            let budget = byte_budget.saturating_sub(out.len() - start);
            scratch.clear();
            self.mailbox.pull(scratch, room, budget.max(1));
            if scratch.is_empty() {
                return Ok(());
            }
            let discarded = self.transmit(out, scratch, now)?;
            if discarded == 0 || out.len() - start >= byte_budget {
                return Ok(());
            }
        }
    }

    /// Writes pulled deliveries; returns how many were discarded unsent.
    fn transmit(
        &mut self,
        out: &mut BytesMut,
        pulled: &mut Vec<Delivery>,
        now: Instant,
    ) -> Result<usize, EncodeError> {
        // A QoS 1/2 delivery enters the inflight window whether or not it could be written, so
        // a failure here (which ends the connection) never loses one: it is re-sent on resume.
        let mut result = Ok(());
        let mut discarded = 0;
        for delivery in pulled.drain(..) {
            if delivery.message.is_expired(now) {
                self.mailbox.count_expired();
                if let Some(log) = self.mailbox.log() {
                    log.done(&delivery);
                }
                discarded += 1;
                continue;
            }
            // Every delivery is checked against the ACL: a message queued before a reload revoked
            // its topic is not sent.
            if self.permissions.as_ref().is_some_and(|p| !p.can_read(&delivery.message.topic)) {
                self.mailbox.count_acl_denied();
                if let Some(log) = self.mailbox.log() {
                    log.done(&delivery);
                }
                discarded += 1;
                continue;
            }
            // A client without a Maximum Packet Size (and every 3.1.1 one) costs no size check.
            if self.link.max_packet_size != usize::MAX
                && self.publish_size(&delivery, now) > self.link.max_packet_size
            {
                self.mailbox.count_too_large();
                if let Some(log) = self.mailbox.log() {
                    log.done(&delivery);
                }
                discarded += 1;
                continue;
            }
            self.sent[usize::from(delivery.qos as u8)] += 1;
            self.sent_payload += delivery.message.payload.len() as u64;
            if delivery.qos == QoS::AtMostOnce {
                if result.is_ok() {
                    let publish = Outgoing { delivery: &delivery, dup: false, packet_id: None };
                    result = publish.write(out, &self.link, Some(&mut self.outbound_aliases), now);
                }
                continue;
            }
            let state = if delivery.qos == QoS::AtLeastOnce { Awaiting::Ack } else { Awaiting::Rec };
            // The window is at most 65,535 (validated), so an identifier is always free.
            let Some(packet_id) = self.inflight.insert(state, delivery) else { continue };
            if let (Some(log), Some(outgoing)) = (self.mailbox.log(), self.inflight.get(packet_id)) {
                log.sent(&outgoing.delivery, packet_id);
            }
            if let (true, Some(outgoing)) = (result.is_ok(), self.inflight.get(packet_id)) {
                let publish =
                    Outgoing { delivery: &outgoing.delivery, dup: false, packet_id: Some(packet_id) };
                result = publish.write(out, &self.link, Some(&mut self.outbound_aliases), now);
            }
        }
        result.map(|()| discarded)
    }

    /// Size of a delivery's 5.0 PUBLISH with its whole topic and every property sent,
    /// Subscription Identifiers included.
    fn publish_size(&self, delivery: &Delivery, now: Instant) -> usize {
        let packet_id = (delivery.qos != QoS::AtMostOnce).then_some(PacketId::MIN);
        let publish = Outgoing { delivery, dup: false, packet_id };
        publish.parts(&delivery.message.topic, None, now).size(ProtocolVersion::V5)
    }

    /// PUBACK from the client ends a QoS 1 delivery.
    pub fn handle_puback(&mut self, packet_id: PacketId) {
        self.log_done(packet_id, Awaiting::Ack);
        self.inflight.complete(packet_id, Awaiting::Ack);
    }

    /// Logs the end of the exchange using `packet_id`, if it is in `state`, to durable storage.
    fn log_done(&self, packet_id: PacketId, state: Awaiting) {
        let Some(log) = self.mailbox.log() else { return };
        if let Some(outgoing) = self.inflight.get(packet_id).filter(|o| o.state == state) {
            log.done(&outgoing.delivery);
        }
    }

    /// PUBREC from the client: answer PUBREL and wait for PUBCOMP [MQTT-4.3.3-1]. A 5.0 PUBREC
    /// with a Reason Code of 0x80 or more ends the delivery instead: no PUBREL follows
    /// [MQTT-4.3.3-4], the message counts as acknowledged and is never re-sent [MQTT-4.4.0-2],
    /// and its packet identifier and place in the send quota are free again (4.9). In 5.0 a
    /// PUBREC for an identifier not in flight gets PUBREL 0x92 (3.6.2.1).
    pub fn handle_pubrec(&mut self, packet_id: PacketId, reason_code: ReasonCode) {
        if !reason_code.is_success() {
            self.log_done(packet_id, Awaiting::Rec);
            self.inflight.complete(packet_id, Awaiting::Rec);
            return;
        }
        let reason_code = match self.inflight.advance(packet_id, Awaiting::Rec, Awaiting::Comp) {
            Some(Awaiting::Rec) => {
                if let (Some(log), Some(outgoing)) = (self.mailbox.log(), self.inflight.get(packet_id)) {
                    log.released(&outgoing.delivery, packet_id);
                }
                ReasonCode::Success
            }
            Some(Awaiting::Comp) => ReasonCode::Success,
            None if self.link.is_v5() => ReasonCode::PacketIdentifierNotFound,
            _ => return,
        };
        let pubrel = PublishResponse { packet_id, reason_code, properties: None };
        self.actions.push_back(Action::Send(Packet::PubRel(pubrel)));
    }

    /// PUBCOMP from the client ends a QoS 2 delivery.
    pub fn handle_pubcomp(&mut self, packet_id: PacketId) {
        self.log_done(packet_id, Awaiting::Comp);
        self.inflight.complete(packet_id, Awaiting::Comp);
    }

    /// An inbound PUBLISH: asks for it to be routed, with its acknowledgement to follow once it
    /// is safe. A QoS 2 PUBLISH whose packet identifier is still awaiting PUBREL is a re-send and
    /// is not routed again [MQTT-4.3.3-2]. A topic deeper than the hierarchy limit closes the
    /// connection before it is acknowledged: an acknowledged message must be routable.
    ///
    /// 5.0 adds: the Topic Alias is resolved (3.3.2.3.4); a Subscription Identifier from a
    /// client [MQTT-3.3.4-6] and a QoS 1/2 PUBLISH beyond the server's Receive Maximum
    /// [MQTT-3.3.4-7] are errors; a payload that its Payload Format Indicator says is UTF-8
    /// and is not is refused with 0x99 (3.3.2.3.2).
    pub fn handle_publish(&mut self, publish: Publish, now: Instant) -> Result<(), Exit> {
        let Publish { qos, packet_id, retain, payload, properties, topic, .. } = publish;
        let topic = if self.link.is_v5() {
            let alias = properties.as_ref().and_then(|p| p.topic_alias);
            self.inbound_aliases.resolve(topic, alias).map_err(violation)?
        } else {
            topic
        };
        if too_deep(&topic) {
            return Err(violation(Rule::TopicTooDeep));
        }
        if retain && !self.limits.retain_available {
            return Err(violation(Rule::RetainNotAvailable));
        }
        let mut refused = None;
        if let Some(properties) = &properties {
            if !properties.subscription_identifiers.is_empty() {
                return Err(violation(Rule::V5_3_3_4_6));
            }
            if properties.payload_format_indicator == Some(PayloadFormat::Utf8)
                && std::str::from_utf8(&payload).is_err()
            {
                if qos == QoS::AtMostOnce {
                    return Err(violation(Rule::PayloadNotUtf8));
                }
                refused = Some(ReasonCode::PayloadFormatInvalid);
            }
        }
        if refused.is_none() && self.permissions.as_mut().is_some_and(|p| !p.check_publish(&topic)) {
            // Not allowed by the ACL: not routed. A 5.0 client is told 0x87 (and a QoS 2
            // exchange ends there); a 3.1.1 client, which cannot be told, is acknowledged as
            // Mosquitto does, and the message is dropped.
            tracing::debug!("publication refused: not allowed by the ACL");
            if self.link.is_v5() {
                refused = Some(ReasonCode::NotAuthorized);
            } else {
                let ack = match (qos, packet_id) {
                    (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(PublishResponse::new(id))),
                    (QoS::ExactlyOnce, Some(id)) => {
                        self.awaiting_pubrel.insert(id.get());
                        Some(Packet::PubRec(PublishResponse::new(id)))
                    }
                    _ => None,
                };
                if let Some(ack) = ack {
                    self.actions.push_back(Action::Send(ack));
                }
                return Ok(());
            }
        }
        let forward = match (qos, packet_id) {
            (QoS::ExactlyOnce, Some(id)) if refused.is_none() => {
                let new = !self.awaiting_pubrel.contains(id.get());
                if new && self.awaiting_pubrel.on_this_connection() >= self.link.receive_maximum {
                    return Err(violation(Rule::V5_3_3_4_7));
                }
                self.awaiting_pubrel.insert(id.get())
            }
            _ => refused.is_none(),
        };
        let reason_code = refused.unwrap_or(ReasonCode::Success);
        let why = refused.filter(|_| self.link.is_v5()).map(|code| {
            let text = if code == ReasonCode::NotAuthorized {
                "not allowed by the server's ACL"
            } else {
                "payload is not UTF-8, though its Payload Format Indicator says it is"
            };
            Box::new(iothub_protocol::PublishResponseProperties {
                reason_string: Some(ByteString::from_static(text)),
                ..iothub_protocol::PublishResponseProperties::default()
            })
        });
        let response = |id| PublishResponse { packet_id: id, reason_code, properties: why.clone() };
        let ack = match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(response(id))),
            (QoS::ExactlyOnce, Some(id)) => Some(Packet::PubRec(response(id))),
            _ => None,
        };
        if forward && !is_reserved_for_broker(&topic) {
            let message = Message::new(topic, payload, qos, retain)
                .from_session(self.mailbox.session_id(), self.origin_hash)
                .with_properties(properties, now);
            self.actions.push_back(Action::Publish { message: Arc::new(message), ack });
        } else if let Some(ack) = ack {
            self.actions.push_back(Action::Send(ack));
        }
        Ok(())
    }

    /// DISCONNECT from the client: a DISCONNECT with reason 0x00 (every 3.1.1 one) discards the
    /// will [MQTT-3.14.4-3]; any other 5.0 reason code leaves it to be published
    /// [MQTT-3.1.2-8], 0x04 because the client asks for it (3.14.2.1) and an error code because
    /// the connection did not end normally. A 5.0 DISCONNECT may change the Session Expiry
    /// Interval, but not from 0 (3.14.2.2.2).
    fn handle_disconnect(&mut self, disconnect: &Disconnect) -> Exit {
        let requested = disconnect.properties.as_ref().and_then(|p| p.session_expiry_interval);
        if let Some(requested) = requested.filter(|_| self.link.is_v5()) {
            if self.expiry_interval == 0 && requested != 0 {
                return violation(Rule::SessionExpiryRaisedFromZero);
            }
            self.set_expiry_interval(requested);
        }
        if self.link.is_v5() && disconnect.reason_code != ReasonCode::Success {
            return Exit::DisconnectWithWill(disconnect.reason_code);
        }
        self.will = None;
        Exit::Disconnect
    }

    /// PUBREL from the client releases an inbound QoS 2 packet identifier; PUBCOMP is sent
    /// whether or not the identifier was known [MQTT-4.3.3-2].
    /// In 5.0, with reason code 0x92 for an identifier that was not awaiting PUBREL (3.7.2.1); the
    /// identifiers awaiting PUBREL are part of the session, so one owed across a reconnect is
    /// known and answered 0x00.
    pub fn handle_pubrel(&mut self, packet_id: PacketId) {
        let known = self.awaiting_pubrel.remove(packet_id.get());
        if let (true, Some(log)) = (known, self.mailbox.log()) {
            log.incoming_done(packet_id.get());
        }
        let reason_code = if known || !self.link.is_v5() {
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        let pubcomp = PublishResponse { packet_id, reason_code, properties: None };
        self.actions.push_back(Action::Send(Packet::PubComp(pubcomp)));
    }

    /// SUBSCRIBE: grants each filter at the requested QoS, in order; a filter named again (in this
    /// packet or later) replaces the subscription [MQTT-3.8.4-3] and, by its Retain Handling,
    /// gets its retained messages again (0), only if it is new (1) or not at all (2)
    /// [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11]. A filter deeper than the hierarchy
    /// limit, a malformed shared subscription (0x8F in 5.0) [MQTT-4.8.2-1], [MQTT-4.8.2-2], or a
    /// new one beyond `max_subscriptions` (0x97 in 5.0) is refused; No Local on a shared
    /// subscription is a Protocol Error [MQTT-3.8.3-4]. One SUBACK code per filter, in order
    /// [MQTT-3.8.4-5], [MQTT-3.8.4-6], follows the router changes. Linear in the packet: each
    /// filter costs one map lookup here.
    pub fn handle_subscribe(&mut self, subscribe: Subscribe) -> Result<(), Exit> {
        let shared_no_local = subscribe
            .filters
            .iter()
            .any(|(filter, options)| options.no_local && matches!(parse_shared(filter), Some(Ok(_))));
        if shared_no_local && self.link.is_v5() {
            return Err(violation(Rule::V5_3_8_3_4));
        }
        let shared = || subscribe.filters.iter().any(|(filter, _)| parse_shared(filter).is_some());
        if !self.limits.shared_available && self.link.is_v5() && shared() {
            return Err(violation(Rule::SharedSubscriptionNotAvailable));
        }
        let packet_size: usize = subscribe.filters.iter().map(|(filter, _)| filter.len() + 3).sum();
        self.pending_subscribe = Some(PendingSubscribe {
            packet_id: subscribe.packet_id,
            reason_codes: Vec::with_capacity(subscribe.filters.len()),
            filters: subscribe.filters.into_iter(),
            walk_budget: Some(WALK_BASE + WALK_PER_BYTE * packet_size),
            subscription_id: subscribe.properties.as_ref().and_then(|p| p.subscription_identifier),
            refused_deep: 0,
            refused_quota: 0,
            refused_acl: 0,
        });
        Ok(())
    }

    /// Turns the next `SUBSCRIBE_CHUNK` filters of the SUBSCRIBE being handled into actions, and
    /// the SUBACK once the last one is done: one huge packet is handled in bounded steps, taken
    /// as the connection asks for actions.
    fn continue_subscribe(&mut self) {
        let Some(pending) = &mut self.pending_subscribe else {
            return;
        };
        let limit = self.limits.max_subscriptions;
        for (filter, mut options) in pending.filters.by_ref().take(SUBSCRIBE_CHUNK) {
            let shared = parse_shared(&filter);
            if let Some(Err(())) = shared {
                pending.reason_codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            }
            if shared.is_some() && !self.limits.shared_available {
                pending.reason_codes.push(ReasonCode::SharedSubscriptionsNotSupported);
                continue;
            }
            if too_deep(&filter) {
                pending.refused_deep += 1;
                pending.reason_codes.push(ReasonCode::UnspecifiedError);
                continue;
            }
            if self.permissions.as_ref().is_some_and(|p| !p.can_subscribe(&filter)) {
                // The ACL does not let the client read every topic the filter matches: refused
                // (3.1.1: 0x80), never granted and filtered later.
                pending.refused_acl += 1;
                pending.reason_codes.push(ReasonCode::NotAuthorized);
                continue;
            }
            let is_new = !self.subscriptions.contains(&filter);
            if is_new && limit != 0 && self.subscriptions.len() >= limit {
                pending.refused_quota += 1;
                pending.reason_codes.push(ReasonCode::QuotaExceeded);
                continue;
            }
            if shared.is_some() {
                // A 3.1.1 client cannot ask for No Local; 5.0 refused it above.
                options.no_local = false;
            }
            let send_retained = shared.is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtNewSubscribe => is_new,
                    RetainHandling::DoNotSend => false,
                };
            let subscription_id = pending.subscription_id;
            self.subscriptions.insert(filter.clone());
            // The count goes up before the router sees a second subscription, so a concurrent
            // publish never misses that it must fold overlapping matches into one delivery.
            self.mailbox.set_subscription_count(self.subscriptions.len());
            self.actions.push_back(Action::Subscribe {
                filter,
                options,
                subscription_id,
                send_retained,
                walk_budget: pending.walk_budget.take(),
            });
            pending.reason_codes.push(ReasonCode::granted(options.qos));
        }
        if pending.filters.len() > 0 {
            return;
        }
        let Some(done) = self.pending_subscribe.take() else {
            return;
        };
        // One line per packet, whatever the number of refused filters.
        if done.refused_deep > 0 {
            tracing::info!(
                filters = done.refused_deep,
                "subscriptions refused: deeper than the hierarchy limit"
            );
        }
        if done.refused_quota > 0 {
            tracing::info!(
                filters = done.refused_quota,
                "subscriptions refused: server.max_subscriptions reached"
            );
        }
        if done.refused_acl > 0 {
            tracing::info!(filters = done.refused_acl, "subscriptions refused: not allowed by the ACL");
        }
        // 5.0 clients are told why in a Reason String (left out if they asked for no problem
        // information, or it does not fit their Maximum Packet Size).
        let why = match (done.refused_quota, done.refused_deep) {
            (0, 0) => None,
            (0, _) => Some("filters deeper than the server's 200-level hierarchy limit refused"),
            (_, 0) => Some("server.max_subscriptions reached"),
            _ => Some("server.max_subscriptions reached; filters deeper than 200 levels refused"),
        };
        let properties = why.filter(|_| self.link.is_v5()).map(|why| {
            Box::new(iothub_protocol::SubAckProperties {
                reason_string: Some(ByteString::from_static(why)),
                ..iothub_protocol::SubAckProperties::default()
            })
        });
        let suback = SubAck { packet_id: done.packet_id, reason_codes: done.reason_codes, properties };
        self.actions.push_back(Action::Send(Packet::SubAck(suback)));
    }

    /// UNSUBSCRIBE: removes each filter's subscription and always answers UNSUBACK
    /// [MQTT-3.10.4-4], [MQTT-3.10.4-5]; in 5.0 with a code per filter, 0x11 for a filter that
    /// had no subscription (3.11.3).
    pub fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut reason_codes = Vec::new();
        for filter in unsubscribe.filters {
            let existed = self.subscriptions.remove(&filter);
            if self.link.is_v5() {
                reason_codes.push(if existed {
                    ReasonCode::Success
                } else {
                    ReasonCode::NoSubscriptionExisted
                });
            }
            if existed {
                self.actions.push_back(Action::Unsubscribe { filter });
            }
        }
        self.actions.push_back(Action::SubscriptionCount(self.subscriptions.len()));
        let unsuback = UnsubAck { packet_id: unsubscribe.packet_id, reason_codes, properties: None };
        self.actions.push_back(Action::Send(Packet::UnsubAck(unsuback)));
    }
}

/// A violation of `rule`, as the exit it causes.
fn violation(rule: Rule) -> Exit {
    Exit::Violation(DecodeError::Violation(rule))
}
/// Topics under "$SYS/" belong to the broker: clients' publications to them, wills included, are
/// acknowledged and discarded, as Mosquitto does.
pub fn is_reserved_for_broker(topic: &str) -> bool {
    topic.starts_with("$SYS/") || topic == "$SYS"
}

/// Writes a packet in the 3.1.1 wire format (3.1 is identical after CONNECT).
pub fn write(out: &mut BytesMut, packet: &Packet) -> Result<(), EncodeError> {
    packet.encode(ProtocolVersion::V311, out)
}

/// One PUBLISH of a delivery, about to be written.
struct Outgoing<'a> {
    /// The delivery.
    delivery: &'a Delivery,
    /// Re-delivery flag.
    dup: bool,
    /// Its packet identifier, for QoS 1 and 2.
    packet_id: Option<PacketId>,
}

impl Outgoing<'_> {
    /// The codec's view of this PUBLISH with `topic` (empty when an alias stands for it).
    fn parts<'b>(
        &'b self,
        topic: &'b str,
        topic_alias: Option<std::num::NonZeroU16>,
        now: Instant,
    ) -> OutgoingPublish<'b> {
        let delivery = self.delivery;
        let message = &delivery.message;
        OutgoingPublish {
            header: iothub_protocol::PublishHeader {
                dup: self.dup,
                qos: delivery.qos,
                retain: delivery.retain,
                packet_id: self.packet_id,
            },
            topic,
            payload: &message.payload,
            properties: message.properties.as_deref(),
            message_expiry_interval: message.remaining_expiry(now),
            topic_alias,
            subscription_identifiers: delivery.subscription_ids(),
        }
    }

    /// Writes the PUBLISH in the link's wire format; for 5.0 with an alias from `aliases` if
    /// given and the client takes them.
    fn write(
        &self,
        out: &mut BytesMut,
        link: &Link,
        aliases: Option<&mut OutboundAliases>,
        now: Instant,
    ) -> Result<(), EncodeError> {
        let message = &self.delivery.message;
        let header = iothub_protocol::PublishHeader {
            dup: self.dup,
            qos: self.delivery.qos,
            retain: self.delivery.retain,
            packet_id: self.packet_id,
        };
        if !link.is_v5() {
            return encode_publish(out, &header, &message.topic, &message.payload);
        }
        // Nothing per delivery and nothing forwarded: the 3.1.1 bytes plus a zero Property
        // Length. (Without aliases and properties the size was already checked by the caller.)
        if link.client_alias_max == 0
            && message.properties.is_none()
            && message.expires_at.is_none()
            && self.delivery.subscription_ids().is_empty()
        {
            return encode_publish_v5_plain(out, &header, &message.topic, &message.payload);
        }
        // The size checked before sending counts the whole topic and no alias. A new alias adds
        // its property to the whole topic: where that would no longer fit the client's Maximum
        // Packet Size, this PUBLISH goes without an alias, and no mapping changes
        // [MQTT-3.1.2-24].
        let aliases = aliases.filter(|_| link.client_alias_max != 0).filter(|_| {
            link.max_packet_size == usize::MAX
                || self.parts(&message.topic, Some(NonZeroU16::MAX), now).size(ProtocolVersion::V5)
                    <= link.max_packet_size
        });
        let (topic, alias) = match aliases.and_then(|a| a.assign(&message.topic)) {
            Some((alias, true)) => (&*message.topic, Some(alias)),
            Some((alias, false)) => ("", Some(alias)),
            None => (&*message.topic, None),
        };
        self.parts(topic, alias, now).encode(ProtocolVersion::V5, out)
    }
}
