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

mod expiry;
mod inflight;
mod keepalive;
mod registry;
#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests;
mod will;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{
    encode_publish, DecodeError, EncodeError, Packet, PacketId, ProtocolVersion, Publish, PublishResponse,
    QoS, ReasonCode, Rule, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use tokio::time::Instant;

pub(crate) use expiry::SessionExpiry;
pub(crate) use keepalive::KeepAlive;
pub(crate) use registry::{Previous, Registry, Takeover};
pub use will::Will;

use crate::exit::Exit;
use crate::mailbox::Mailbox;
use crate::message::{too_deep, Delivery, Message};
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
    /// Add (or replace) this session's subscription in the router and queue the retained
    /// messages that match it [MQTT-3.8.4-3].
    Subscribe {
        /// The topic filter.
        filter: ByteString,
        /// The QoS granted.
        qos: QoS,
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
}

/// Limits a session enforces.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Most subscriptions at once; 0 means no limit.
    pub max_subscriptions: usize,
    /// How long an offline persistent session is kept; `None` while the server runs.
    pub session_timeout: Option<Duration>,
}

/// The state of one client identifier.
#[derive(Debug)]
pub struct Session {
    /// The client identifier.
    pub client_id: ByteString,
    /// Clean session flag of the connection that created or last resumed it.
    pub clean: bool,
    /// How long the session outlives its connection.
    expiry: SessionExpiry,
    /// Queue of messages waiting to be sent.
    mailbox: Arc<Mailbox>,
    /// Subscriptions by topic filter, with their granted QoS; mirrors the router's entries.
    subscriptions: HashMap<ByteString, QoS>,
    /// Outbound QoS 1/2 messages awaiting acknowledgement.
    inflight: Inflight,
    /// Inbound QoS 2 packet identifiers received and not yet released by PUBREL.
    awaiting_pubrel: HashSet<u16>,
    /// Limits in force.
    limits: SessionLimits,
    /// The will of the current network connection.
    will: Option<Will>,
    /// Keep-alive of the current network connection; `None` before the first `attach`.
    keep_alive: Option<KeepAlive>,
    /// Actions not yet taken by the connection.
    actions: VecDeque<Action>,
    /// The SUBSCRIBE being turned into actions, a chunk at a time.
    pending_subscribe: Option<PendingSubscribe>,
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
    /// Filters refused for the hierarchy limit.
    refused_deep: usize,
    /// Filters refused for `max_subscriptions`.
    refused_quota: usize,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ByteString, clean: bool, mailbox: Arc<Mailbox>, limits: SessionLimits) -> Session {
        Session {
            client_id,
            clean,
            expiry: SessionExpiry::for_v3(clean, limits.session_timeout),
            mailbox,
            subscriptions: HashMap::new(),
            inflight: Inflight::default(),
            awaiting_pubrel: HashSet::new(),
            limits,
            will: None,
            keep_alive: None,
            actions: VecDeque::new(),
            pending_subscribe: None,
        }
    }

    /// Starts a network connection on this session: its keep-alive (in seconds) counts from
    /// `now`, and its will replaces any previous one.
    pub fn attach(&mut self, keep_alive_secs: u16, will: Option<Will>, now: Instant) {
        self.keep_alive = Some(KeepAlive::new(keep_alive_secs, now));
        self.will = will;
        self.actions.clear();
        self.pending_subscribe = None;
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

    /// Removes and returns every subscription's filter, for the caller to remove from the router
    /// when the session is discarded.
    pub fn take_subscriptions(&mut self) -> Vec<ByteString> {
        self.mailbox.set_subscription_count(0);
        self.subscriptions.drain().map(|(filter, _)| filter).collect()
    }

    /// The will, if the connection's end publishes it; it is consumed either way.
    pub fn take_will(&mut self, exit: &Exit) -> Option<Arc<Message>> {
        self.will.take().and_then(|will| will.due(exit))
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
            Packet::Publish(publish) => self.handle_publish(publish)?,
            Packet::PubAck(ack) => self.handle_puback(ack.packet_id),
            Packet::PubRec(rec) => self.handle_pubrec(rec.packet_id),
            Packet::PubRel(rel) => self.handle_pubrel(rel.packet_id),
            Packet::PubComp(comp) => self.handle_pubcomp(comp.packet_id),
            Packet::Subscribe(subscribe) => self.handle_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => self.handle_unsubscribe(unsubscribe),
            Packet::PingReq => self.actions.push_back(Action::Send(Packet::PingResp)),
            Packet::Disconnect(_) => {
                // [MQTT-3.14.4-3]: the will is discarded without being published.
                self.will = None;
                return Err(Exit::Disconnect);
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
    /// unacknowledged PUBLISH (with DUP=1) and PUBREL [MQTT-4.4.0-1].
    pub fn resend_inflight(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        for (packet_id, outgoing) in self.inflight.in_order() {
            match outgoing.state {
                Awaiting::Ack | Awaiting::Rec => {
                    write_delivery(out, &outgoing.delivery, true, Some(packet_id))?
                }
                Awaiting::Comp => write(out, &Packet::PubRel(PublishResponse::new(packet_id)))?,
            }
        }
        Ok(())
    }

    /// Moves queued messages into `out` while the inflight window (`max_inflight`) has room,
    /// taking about `byte_budget` encoded bytes at most. `scratch` is reused between calls.
    pub fn poll_transmit(
        &mut self,
        out: &mut BytesMut,
        max_inflight: usize,
        byte_budget: usize,
        scratch: &mut Vec<Delivery>,
    ) -> Result<(), EncodeError> {
        let room = max_inflight.saturating_sub(self.inflight.len());
        scratch.clear();
        self.mailbox.pull(scratch, room, byte_budget);
        // A QoS 1/2 delivery enters the inflight window whether or not it could be written, so
        // a failure here (which ends the connection) never loses one: it is re-sent on resume.
        let mut result = Ok(());
        for delivery in scratch.drain(..) {
            if delivery.qos == QoS::AtMostOnce {
                if result.is_ok() {
                    result = write_delivery(out, &delivery, false, None);
                }
                continue;
            }
            let state = if delivery.qos == QoS::AtLeastOnce { Awaiting::Ack } else { Awaiting::Rec };
            // The window is at most 65,535 (validated), so an identifier is always free.
            let Some(packet_id) = self.inflight.insert(state, delivery) else { continue };
            if let (true, Some(outgoing)) = (result.is_ok(), self.inflight.get(packet_id)) {
                result = write_delivery(out, &outgoing.delivery, false, Some(packet_id));
            }
        }
        result
    }

    /// PUBACK from the client ends a QoS 1 delivery.
    pub fn handle_puback(&mut self, packet_id: PacketId) {
        self.inflight.complete(packet_id, Awaiting::Ack);
    }

    /// PUBREC from the client: answer PUBREL and wait for PUBCOMP [MQTT-4.3.3-1].
    pub fn handle_pubrec(&mut self, packet_id: PacketId) {
        match self.inflight.advance(packet_id, Awaiting::Rec, Awaiting::Comp) {
            Some(Awaiting::Rec | Awaiting::Comp) => {}
            _ => return,
        }
        self.actions.push_back(Action::Send(Packet::PubRel(PublishResponse::new(packet_id))));
    }

    /// PUBCOMP from the client ends a QoS 2 delivery.
    pub fn handle_pubcomp(&mut self, packet_id: PacketId) {
        self.inflight.complete(packet_id, Awaiting::Comp);
    }

    /// An inbound PUBLISH: asks for it to be routed, with its acknowledgement to follow once it
    /// is safe. A QoS 2 PUBLISH whose packet identifier is still awaiting PUBREL is a re-send and
    /// is not routed again [MQTT-4.3.3-2]. A topic deeper than the hierarchy limit closes the
    /// connection before it is acknowledged: an acknowledged message must be routable.
    pub fn handle_publish(&mut self, publish: Publish) -> Result<(), Exit> {
        if too_deep(&publish.topic) {
            return Err(Exit::Violation(DecodeError::Violation(Rule::TopicTooDeep)));
        }
        let forward = match (publish.qos, publish.packet_id) {
            (QoS::ExactlyOnce, Some(id)) => self.awaiting_pubrel.insert(id.get()),
            _ => true,
        };
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(PublishResponse::new(id))),
            (QoS::ExactlyOnce, Some(id)) => Some(Packet::PubRec(PublishResponse::new(id))),
            _ => None,
        };
        if forward && !is_reserved_for_broker(&publish.topic) {
            let message = Arc::new(Message::new(publish.topic, publish.payload, publish.qos, publish.retain));
            self.actions.push_back(Action::Publish { message, ack });
        } else if let Some(ack) = ack {
            self.actions.push_back(Action::Send(ack));
        }
        Ok(())
    }

    /// PUBREL from the client releases an inbound QoS 2 packet identifier; PUBCOMP is sent
    /// whether or not the identifier was known [MQTT-4.3.3-2].
    pub fn handle_pubrel(&mut self, packet_id: PacketId) {
        self.awaiting_pubrel.remove(&packet_id.get());
        self.actions.push_back(Action::Send(Packet::PubComp(PublishResponse::new(packet_id))));
    }

    /// SUBSCRIBE: grants each filter at the requested QoS, in order; a filter named again (in this
    /// packet or later) replaces the subscription and gets its retained messages again
    /// [MQTT-3.8.4-3]. A filter deeper than the hierarchy limit, or a new one beyond
    /// `max_subscriptions`, is refused (0x80; in 5.0 0x97 for the quota). One SUBACK code per
    /// filter, in order [MQTT-3.8.4-5], [MQTT-3.8.4-6], follows the router changes. Linear in the
    /// packet: each filter costs one map lookup here.
    pub fn handle_subscribe(&mut self, subscribe: Subscribe) {
        let packet_size: usize = subscribe.filters.iter().map(|(filter, _)| filter.len() + 3).sum();
        self.pending_subscribe = Some(PendingSubscribe {
            packet_id: subscribe.packet_id,
            reason_codes: Vec::with_capacity(subscribe.filters.len()),
            filters: subscribe.filters.into_iter(),
            walk_budget: Some(WALK_BASE + WALK_PER_BYTE * packet_size),
            refused_deep: 0,
            refused_quota: 0,
        });
    }

    /// Turns the next `SUBSCRIBE_CHUNK` filters of the SUBSCRIBE being handled into actions, and
    /// the SUBACK once the last one is done: one huge packet is handled in bounded steps, taken
    /// as the connection asks for actions.
    fn continue_subscribe(&mut self) {
        let Some(pending) = &mut self.pending_subscribe else {
            return;
        };
        let limit = self.limits.max_subscriptions;
        for (filter, options) in pending.filters.by_ref().take(SUBSCRIBE_CHUNK) {
            if too_deep(&filter) {
                pending.refused_deep += 1;
                pending.reason_codes.push(ReasonCode::UnspecifiedError);
                continue;
            }
            let is_new = !self.subscriptions.contains_key(&filter);
            if is_new && limit != 0 && self.subscriptions.len() >= limit {
                pending.refused_quota += 1;
                pending.reason_codes.push(ReasonCode::QuotaExceeded);
                continue;
            }
            let qos = options.qos;
            self.subscriptions.insert(filter.clone(), qos);
            // The count goes up before the router sees a second subscription, so a concurrent
            // publish never misses that it must fold overlapping matches into one delivery.
            self.mailbox.set_subscription_count(self.subscriptions.len());
            self.actions.push_back(Action::Subscribe {
                filter,
                qos,
                walk_budget: pending.walk_budget.take(),
            });
            pending.reason_codes.push(ReasonCode::granted(qos));
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
        let suback = SubAck { packet_id: done.packet_id, reason_codes: done.reason_codes, properties: None };
        self.actions.push_back(Action::Send(Packet::SubAck(suback)));
    }

    /// UNSUBSCRIBE: removes each filter's subscription and always answers UNSUBACK
    /// [MQTT-3.10.4-4], [MQTT-3.10.4-5].
    pub fn handle_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        for filter in unsubscribe.filters {
            if self.subscriptions.remove(&filter).is_some() {
                self.actions.push_back(Action::Unsubscribe { filter });
            }
        }
        self.actions.push_back(Action::SubscriptionCount(self.subscriptions.len()));
        let unsuback =
            UnsubAck { packet_id: unsubscribe.packet_id, reason_codes: Vec::new(), properties: None };
        self.actions.push_back(Action::Send(Packet::UnsubAck(unsuback)));
    }
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

fn write_delivery(
    out: &mut BytesMut,
    delivery: &Delivery,
    dup: bool,
    packet_id: Option<PacketId>,
) -> Result<(), EncodeError> {
    let message = &delivery.message;
    let header =
        iothub_protocol::PublishHeader { dup, qos: delivery.qos, retain: delivery.retain, packet_id };
    encode_publish(out, &header, &message.topic, &message.payload)
}
