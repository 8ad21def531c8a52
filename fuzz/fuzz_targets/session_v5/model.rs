//! The model of one 5.0 session: what MQTT 5.0 and the broker's design ask it to hold, and the
//! actions it must emit for each packet, in order. It is written from the rules, not from the
//! session's code, and the harness checks every action against it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use iothub::internals::{is_reserved_for_broker, too_deep, Link, Message, SessionLimits};
use iothub_protocol::{
    Disconnect, Packet, PayloadFormat, Publish, PublishProperties, PublishResponse, QoS, ReasonCode,
    RetainHandling, Rule, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use tokio::time::Instant;

/// An action the model expects, in the order it expects them.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // A few per packet, never stored for long.
pub(crate) enum Expected {
    /// `Action::Publish` of an inbound PUBLISH: the message as it must be routed, and the
    /// acknowledgement to follow.
    Publish {
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Option<PublishProperties>,
        expires_at: Option<Instant>,
        ack: Option<Packet>,
    },
    /// `Action::Subscribe`; `first` marks the first granted filter of its SUBSCRIBE.
    Subscribe {
        filter: String,
        options: SubscriptionOptions,
        subscription_id: Option<NonZeroU32>,
        send_retained: bool,
        first: bool,
    },
    /// `Action::Unsubscribe`.
    Unsubscribe { filter: String },
    /// `Action::SubscriptionCount`.
    Count(usize),
    /// `Action::Send`.
    Send(Packet),
}

/// How the model expects a packet to end the connection.
#[derive(Debug)]
pub(crate) enum Ending {
    /// DISCONNECT 0x00: the will is discarded.
    Disconnect,
    /// DISCONNECT with another reason code (0x04, or an error): the will is published.
    DisconnectWithWill,
    /// The packet breaks one or more of these rules; the session may name any of them.
    Violation(Vec<Rule>),
}

/// Where an outbound QoS 1/2 message stands, as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// QoS 1 PUBLISH sent, PUBACK expected.
    Ack,
    /// QoS 2 PUBLISH sent, PUBREC expected.
    Rec,
    /// PUBREL sent, PUBCOMP expected.
    Comp,
}

/// An outbound message in flight.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Where the exchange stands.
    pub(crate) stage: Stage,
    /// Position in send order.
    pub(crate) sequence: u64,
    /// The delivery as it was queued.
    pub(crate) queued: Queued,
    /// Still to be re-sent on the current connection, which has not seen it yet: it was sent on
    /// an earlier one, and the window had no room for it when this one began.
    pub(crate) owed: bool,
    /// Its PUBLISH was sent on the current connection, new or re-sent: it counts against the
    /// connection's Receive Maximum until the exchange ends [MQTT-3.3.4-9].
    pub(crate) published_here: bool,
}

/// A delivery the mailbox accepted and has not sent yet.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// The message.
    pub(crate) message: Arc<Message>,
    /// QoS of the delivery.
    pub(crate) qos: QoS,
    /// RETAIN flag of the delivery.
    pub(crate) retain: bool,
    /// Its Subscription Identifiers.
    pub(crate) subscription_ids: Vec<NonZeroU32>,
    /// When it expires, as the harness computed it from its Message Expiry Interval.
    pub(crate) expires_at: Option<Instant>,
    /// The smallest Maximum Packet Size of the connections it has waited through: one it
    /// does not fit may have been discarded [MQTT-3.1.2-25].
    pub(crate) smallest_max: usize,
}

/// What one session must hold, as the model sees it.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// The link of the current connection.
    link: Option<Link>,
    /// The Session Expiry Interval in force, in seconds.
    pub(crate) expiry_interval: u32,
    /// The will of the current connection, if it is to be published.
    pub(crate) will: Option<iothub_protocol::Will>,
    /// Topics of the aliases the client set on this connection, by alias.
    inbound_aliases: HashMap<u16, String>,
    /// Topics of the aliases the server set on this connection, by alias, from what it wrote.
    pub(crate) outbound_aliases: HashMap<u16, String>,
    /// The session's subscriptions.
    pub(crate) subscriptions: BTreeSet<String>,
    /// Inbound QoS 2 packet identifiers received and not yet released.
    awaiting_pubrel: BTreeSet<u16>,
    /// Those of them received on an earlier connection: the server's Receive Maximum counts
    /// only the current connection's (4.9).
    inherited_pubrel: BTreeSet<u16>,
    /// Outbound messages in flight by packet identifier.
    pub(crate) outbound: BTreeMap<u16, Outgoing>,
    /// Their identifiers in send order, with their positions; an entry whose position is not its
    /// message's is stale.
    order: Vec<(u64, u16)>,
    /// Position of the next message sent.
    next_sequence: u64,
    /// Deliveries queued in the mailbox, by serial.
    pub(crate) queued: BTreeMap<u32, Queued>,
    /// Serial of the last delivery sent for the first time.
    pub(crate) last_sent: Option<u32>,
    /// Deliveries that never left, neither expired nor too large: the mailbox must have counted
    /// as many drops.
    pub(crate) unexplained: u64,
}

/// `$share/{ShareName}/{filter}` (4.8.2): `None` if `filter` is not a shared subscription,
/// `Some(false)` if it is a malformed one: a ShareName that is empty or holds a wildcard
/// [MQTT-4.8.2-1], or no filter after it [MQTT-4.8.2-2].
pub(crate) fn shared(filter: &str) -> Option<bool> {
    let rest = filter.strip_prefix("$share/")?;
    let Some(slash) = rest.find('/') else { return Some(false) };
    let (name, inner) = (&rest[..slash], &rest[slash + 1..]);
    Some(!name.is_empty() && !name.contains('+') && !name.contains('#') && !inner.is_empty())
}

impl Model {
    /// A new connection: aliases start empty in both directions [MQTT-3.3.2-7], and the
    /// identifiers awaiting PUBREL are an earlier connection's.
    pub(crate) fn attach(&mut self, link: Link, expiry_interval: u32, will: Option<iothub_protocol::Will>) {
        self.link = Some(link);
        self.inherited_pubrel = self.awaiting_pubrel.clone();
        self.expiry_interval = expiry_interval;
        self.will = will.filter(|w| !is_reserved_for_broker(&w.topic));
        self.inbound_aliases.clear();
        self.outbound_aliases.clear();
        for queued in self.queued.values_mut() {
            queued.smallest_max = queued.smallest_max.min(link.max_packet_size);
        }
    }

    /// The session ended; the next connection starts a new one.
    pub(crate) fn discard(&mut self) {
        *self = Model::default();
    }

    fn link(&self) -> Link {
        self.link.unwrap_or_else(|| unreachable!("no connection"))
    }

    /// How long after the connection's end `will` is published: its Will Delay Interval, or the
    /// Session Expiry Interval if shorter (3.1.3.2.2); at once when the session ends with the
    /// connection.
    pub(crate) fn will_delay(&self, will: &iothub_protocol::Will) -> Duration {
        let delay = will.properties.as_ref().and_then(|p| p.will_delay_interval).unwrap_or(0);
        let delay = match self.expiry_interval {
            0 => 0,
            u32::MAX => delay,
            expiry => delay.min(expiry),
        };
        Duration::from_secs(u64::from(delay))
    }

    /// Ends the exchange of `packet_id` if it is at `stage`.
    pub(crate) fn complete(&mut self, packet_id: u16, stage: Stage) {
        if self.outbound.get(&packet_id).is_some_and(|o| o.stage == stage) {
            self.outbound.remove(&packet_id);
            if self.order.len() > 2 * self.outbound.len() + 16 {
                let outbound = &self.outbound;
                self.order.retain(|(sequence, id)| outbound.get(id).is_some_and(|o| o.sequence == *sequence));
            }
        }
    }

    /// A QoS 1/2 message the session sent under `packet_id`.
    pub(crate) fn sent(&mut self, packet_id: u16, queued: Queued) {
        let stage = if queued.qos == QoS::AtLeastOnce { Stage::Ack } else { Stage::Rec };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let outgoing = Outgoing { stage, sequence, queued, owed: false, published_here: true };
        self.outbound.insert(packet_id, outgoing);
        self.order.push((sequence, packet_id));
    }

    /// A new connection is owed every message in flight [MQTT-4.4.0-1], and has been sent
    /// none of them.
    pub(crate) fn owe_all(&mut self) {
        for outgoing in self.outbound.values_mut() {
            outgoing.owed = true;
            outgoing.published_here = false;
        }
    }

    /// QoS 1/2 PUBLISHes sent on the current connection whose exchange has not ended: never
    /// more than its Receive Maximum [MQTT-3.3.4-9].
    pub(crate) fn published_here(&self) -> usize {
        self.outbound.values().filter(|o| o.published_here).count()
    }

    /// Messages in flight that hold a place in the current connection's window (their PUBLISH
    /// was sent on it) or are owed to it: all but those past PUBREC with no PUBLISH sent here.
    pub(crate) fn holding(&self) -> usize {
        self.outbound.values().filter(|o| o.owed || o.published_here).count()
    }

    /// The owed messages to re-send now, oldest first, marked as sent: what the session must
    /// re-send next, in this order, before any new message. Every PUBREL owed goes at once: the
    /// window holds back PUBLISH packets only [MQTT-3.3.4-10], and counts the PUBLISHes sent
    /// on this connection whose exchange has not ended (4.9). Owed PUBLISHes go as far as that
    /// window has room, so a client that came back with a smaller Receive Maximum than the
    /// messages in flight gets the rest as it acknowledges [MQTT-3.3.4-9].
    pub(crate) fn take_owed(&mut self, max_inflight: usize) -> Vec<u16> {
        let mut room = max_inflight.saturating_sub(self.published_here());
        let mut owed = Vec::new();
        for id in self.in_flight() {
            let outgoing = &self.outbound[&id];
            if !outgoing.owed {
                continue;
            }
            if outgoing.stage == Stage::Comp {
                owed.push(id);
            } else if room > 0 {
                owed.push(id);
                room -= 1;
            }
        }
        for id in &owed {
            if let Some(outgoing) = self.outbound.get_mut(id) {
                outgoing.owed = false;
                outgoing.published_here = outgoing.stage != Stage::Comp;
            }
        }
        owed
    }

    /// Identifiers in flight, in send order.
    pub(crate) fn in_flight(&self) -> Vec<u16> {
        let live =
            |&&(sequence, id): &&(u64, u16)| self.outbound.get(&id).is_some_and(|o| o.sequence == sequence);
        self.order.iter().filter(live).map(|&(_, id)| id).collect()
    }

    /// What the session must do with `packet` at `now`, updating the model as the session must;
    /// an `Ending` if the packet ends the connection instead.
    pub(crate) fn predict(
        &mut self,
        packet: &Packet,
        now: Instant,
        limits: &SessionLimits,
    ) -> Result<Vec<Expected>, Ending> {
        Ok(match packet {
            Packet::Publish(publish) => return self.publish(publish, now, limits),
            Packet::PubAck(ack) => {
                // Any reason code ends a QoS 1 exchange (3.4.2.1).
                self.complete(ack.packet_id.get(), Stage::Ack);
                Vec::new()
            }
            Packet::PubRec(rec) if !rec.reason_code.is_success() => {
                // A PUBREC of 0x80 or more ends the exchange: no PUBREL follows [MQTT-4.3.3-4],
                // and the packet identifier and the place in the window are free again (2.2.1,
                // 4.9).
                self.complete(rec.packet_id.get(), Stage::Rec);
                Vec::new()
            }
            Packet::PubRec(rec) => {
                let pubrel = |reason_code| {
                    let response =
                        PublishResponse { packet_id: rec.packet_id, reason_code, properties: None };
                    vec![Expected::Send(Packet::PubRel(response))]
                };
                match self.outbound.get_mut(&rec.packet_id.get()) {
                    // [MQTT-4.3.3-1]: PUBREL answers PUBREC, again for a re-sent PUBREC. The
                    // client has the message, so a PUBLISH owed to it is not re-sent.
                    Some(outgoing) if outgoing.stage == Stage::Rec => {
                        outgoing.stage = Stage::Comp;
                        outgoing.owed = false;
                        pubrel(ReasonCode::Success)
                    }
                    Some(outgoing) if outgoing.stage == Stage::Comp => pubrel(ReasonCode::Success),
                    // A QoS 1 message's identifier: nothing to release.
                    Some(_) => Vec::new(),
                    // 0x92 Packet Identifier not found (3.6.2.1).
                    None => pubrel(ReasonCode::PacketIdentifierNotFound),
                }
            }
            Packet::PubRel(rel) => {
                // [MQTT-4.3.3-2]: PUBCOMP answers every PUBREL, with 0x92 Packet Identifier not
                // found for one not awaiting PUBREL (3.7.2.1).
                self.inherited_pubrel.remove(&rel.packet_id.get());
                let reason_code = if self.awaiting_pubrel.remove(&rel.packet_id.get()) {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                let response = PublishResponse { packet_id: rel.packet_id, reason_code, properties: None };
                vec![Expected::Send(Packet::PubComp(response))]
            }
            Packet::PubComp(comp) => {
                self.complete(comp.packet_id.get(), Stage::Comp);
                Vec::new()
            }
            Packet::Subscribe(subscribe) => return self.subscribe(subscribe, limits),
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe),
            Packet::PingReq => vec![Expected::Send(Packet::PingResp)],
            Packet::Disconnect(disconnect) => return Err(self.disconnect(disconnect)),
            // No authentication method was agreed at CONNECT, so AUTH is a Protocol Error (4.12).
            Packet::Auth(_) => return Err(Ending::Violation(vec![Rule::AuthWithoutMethod])),
            Packet::Connect(_) => return Err(Ending::Violation(vec![Rule::Mqtt3_1_0_2])),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(Ending::Violation(vec![Rule::ServerOnlyPacket]))
            }
        })
    }

    /// An inbound PUBLISH. Its Topic Alias is resolved (3.3.2.3.4): one above the server's
    /// maximum is an error [MQTT-3.3.2-9], an empty topic needs an alias set before on this
    /// connection, a topic with an alias sets it. A Subscription Identifier from a client
    /// [MQTT-3.3.4-6], a topic over the hierarchy limit, RETAIN on a server without retained
    /// messages (3.2.2.3.5), a QoS 2 PUBLISH beyond the server's Receive Maximum [MQTT-3.3.4-7]
    /// and a QoS 0 payload that is not the UTF-8 its Payload Format Indicator says end the
    /// connection; a QoS 1/2 one is refused with 0x99 (3.3.2.3.2). Otherwise it is routed with
    /// its PUBACK or PUBREC to follow, once per QoS 2 identifier until PUBREL, and not at all for
    /// `$SYS`; the message keeps its properties but the alias, and its expiry counts from now.
    fn publish(
        &mut self,
        publish: &Publish,
        now: Instant,
        limits: &SessionLimits,
    ) -> Result<Vec<Expected>, Ending> {
        let link = self.link();
        let properties = publish.properties.as_deref();
        let mut broken = Vec::new();
        let topic = match properties.and_then(|p| p.topic_alias) {
            None => Some(publish.topic.to_string()),
            Some(alias) if alias.get() > link.server_alias_max => {
                broken.push(Rule::V5_3_3_2_9);
                None
            }
            Some(alias) if publish.topic.is_empty() => {
                let topic = self.inbound_aliases.get(&alias.get()).cloned();
                if topic.is_none() {
                    broken.push(Rule::TopicAliasUnknown);
                }
                topic
            }
            Some(alias) => {
                self.inbound_aliases.insert(alias.get(), publish.topic.to_string());
                Some(publish.topic.to_string())
            }
        };
        if topic.as_deref().is_some_and(too_deep) {
            broken.push(Rule::TopicTooDeep);
        }
        if publish.retain && !limits.retain_available {
            broken.push(Rule::RetainNotAvailable);
        }
        if properties.is_some_and(|p| !p.subscription_identifiers.is_empty()) {
            broken.push(Rule::V5_3_3_4_6);
        }
        let not_utf8 = properties.is_some_and(|p| p.payload_format_indicator == Some(PayloadFormat::Utf8))
            && std::str::from_utf8(&publish.payload).is_err();
        if not_utf8 && publish.qos == QoS::AtMostOnce {
            broken.push(Rule::PayloadNotUtf8);
        }
        if let (QoS::ExactlyOnce, Some(id), false) = (publish.qos, publish.packet_id, not_utf8) {
            let new = !self.awaiting_pubrel.contains(&id.get());
            let here = self.awaiting_pubrel.len() - self.inherited_pubrel.len();
            if new && here >= link.receive_maximum {
                broken.push(Rule::V5_3_3_4_7);
            }
        }
        let Some(topic) = topic.filter(|_| broken.is_empty()) else {
            return Err(Ending::Violation(broken));
        };
        let reason_code = if not_utf8 { ReasonCode::PayloadFormatInvalid } else { ReasonCode::Success };
        let response = |packet_id| PublishResponse { packet_id, reason_code, properties: None };
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(response(id))),
            (QoS::ExactlyOnce, Some(id)) => Some(Packet::PubRec(response(id))),
            _ => None,
        };
        let fresh = match (publish.qos, publish.packet_id) {
            _ if not_utf8 => false,
            (QoS::ExactlyOnce, Some(id)) => self.awaiting_pubrel.insert(id.get()),
            _ => true,
        };
        if !fresh || is_reserved_for_broker(&topic) {
            return Ok(ack.into_iter().map(Expected::Send).collect());
        }
        // The Topic Alias belongs to this connection, Subscription Identifiers to subscribers
        // [MQTT-3.3.4-6]; the Message Expiry Interval becomes a deadline.
        let mut forwarded = properties.cloned().unwrap_or_default();
        let expiry = forwarded.message_expiry_interval.take();
        forwarded.topic_alias = None;
        forwarded.subscription_identifiers.clear();
        Ok(vec![Expected::Publish {
            topic,
            payload: publish.payload.clone(),
            qos: publish.qos,
            retain: publish.retain,
            properties: (!forwarded.is_empty()).then_some(forwarded),
            expires_at: expiry.and_then(|secs| now.checked_add(Duration::from_secs(u64::from(secs)))),
            ack,
        }])
    }

    /// SUBSCRIBE. No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4], and so is
    /// a shared filter, even a malformed one, on a server without shared subscriptions
    /// (3.2.2.3.13). Each
    /// filter, in order: a malformed shared one is refused with 0x8F [MQTT-4.8.2-1],
    /// [MQTT-4.8.2-2], one over the hierarchy limit with 0x80, a new one over
    /// `max_subscriptions` (0: none) with 0x97; the rest are granted at the QoS asked, with the
    /// packet's Subscription Identifier, and by Retain Handling get the retained messages
    /// always (0), only if new (1) or never (2) [MQTT-3.3.1-9], [MQTT-3.3.1-10],
    /// [MQTT-3.3.1-11], and never for a shared subscription. One SUBACK code per filter, in
    /// order [MQTT-3.8.4-6], after the router changes.
    fn subscribe(&mut self, subscribe: &Subscribe, limits: &SessionLimits) -> Result<Vec<Expected>, Ending> {
        if subscribe.filters.iter().any(|(f, o)| o.no_local && shared(f) == Some(true)) {
            return Err(Ending::Violation(vec![Rule::V5_3_8_3_4]));
        }
        if !limits.shared_available && subscribe.filters.iter().any(|(f, _)| shared(f).is_some()) {
            return Err(Ending::Violation(vec![Rule::SharedSubscriptionNotAvailable]));
        }
        let max_subscriptions = limits.max_subscriptions;
        let subscription_id = subscribe.properties.as_ref().and_then(|p| p.subscription_identifier);
        let mut actions = Vec::new();
        let mut reason_codes = Vec::new();
        for (filter, options) in &subscribe.filters {
            let is_shared = shared(filter);
            let is_new = !self.subscriptions.contains(&**filter);
            if is_shared == Some(false) {
                reason_codes.push(ReasonCode::TopicFilterInvalid);
            } else if too_deep(filter) {
                reason_codes.push(ReasonCode::UnspecifiedError);
            } else if is_new && max_subscriptions != 0 && self.subscriptions.len() >= max_subscriptions {
                reason_codes.push(ReasonCode::QuotaExceeded);
            } else {
                let mut options = *options;
                if is_shared.is_some() {
                    options.no_local = false;
                }
                let send_retained = is_shared.is_none()
                    && match options.retain_handling {
                        RetainHandling::SendAtSubscribe => true,
                        RetainHandling::SendAtNewSubscribe => is_new,
                        RetainHandling::DoNotSend => false,
                    };
                self.subscriptions.insert(filter.to_string());
                let first = actions.is_empty();
                actions.push(Expected::Subscribe {
                    filter: filter.to_string(),
                    options,
                    subscription_id,
                    send_retained,
                    first,
                });
                reason_codes.push(ReasonCode::granted(options.qos));
            }
        }
        let suback = SubAck { packet_id: subscribe.packet_id, reason_codes, properties: None };
        actions.push(Expected::Send(Packet::SubAck(suback)));
        Ok(actions)
    }

    /// UNSUBSCRIBE removes each filter held, tells the mailbox the new count after the router
    /// changes, and is always answered [MQTT-3.10.4-4], [MQTT-3.10.4-5], with 0x00 or 0x11 No
    /// subscription existed per filter, in order (3.11.3).
    fn unsubscribe(&mut self, unsubscribe: &Unsubscribe) -> Vec<Expected> {
        let mut actions = Vec::new();
        let mut reason_codes = Vec::new();
        for filter in &unsubscribe.filters {
            if self.subscriptions.remove(&**filter) {
                actions.push(Expected::Unsubscribe { filter: filter.to_string() });
                reason_codes.push(ReasonCode::Success);
            } else {
                reason_codes.push(ReasonCode::NoSubscriptionExisted);
            }
        }
        actions.push(Expected::Count(self.subscriptions.len()));
        let unsuback = UnsubAck { packet_id: unsubscribe.packet_id, reason_codes, properties: None };
        actions.push(Expected::Send(Packet::UnsubAck(unsuback)));
        actions
    }

    /// DISCONNECT may change the Session Expiry Interval, but not from 0 (3.14.2.2.2); reason
    /// 0x00 discards the will [MQTT-3.14.4-3], any other keeps it to be published
    /// [MQTT-3.1.2-8]: 0x04 asks for it (3.14.2.1), an error code is no normal disconnection.
    fn disconnect(&mut self, disconnect: &Disconnect) -> Ending {
        if let Some(requested) = disconnect.properties.as_ref().and_then(|p| p.session_expiry_interval) {
            if self.expiry_interval == 0 && requested != 0 {
                return Ending::Violation(vec![Rule::SessionExpiryRaisedFromZero]);
            }
            self.expiry_interval = requested;
        }
        if disconnect.reason_code != ReasonCode::Success {
            return Ending::DisconnectWithWill;
        }
        self.will = None;
        Ending::Disconnect
    }
}
