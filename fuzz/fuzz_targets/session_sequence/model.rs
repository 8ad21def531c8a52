//! The model of one session: what MQTT 3.1.1 and the broker's design ask it to hold, and the
//! actions it must emit for each packet, in order. It is written from the rules, not from the
//! session's code, and the harness checks every action against it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use iothub::internals::is_reserved_for_broker;
use iothub::internals::too_deep;
use iothub_protocol::{
    Packet, Publish, PublishResponse, QoS, ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use tokio::time::Instant;

/// An action the model expects, in the order it expects them.
#[derive(Debug)]
pub(crate) enum Expected {
    /// `Action::Publish` of an inbound PUBLISH.
    Publish { topic: String, payload: Bytes, qos: QoS, retain: bool, ack: Option<Packet> },
    /// `Action::Subscribe`; `first` marks the first granted filter of its SUBSCRIBE.
    Subscribe { filter: String, qos: QoS, first: bool },
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
    /// The client sent DISCONNECT.
    Disconnect,
    /// The packet breaks a rule.
    Violation,
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
    /// Serial of the delivery, which its payload starts with.
    pub(crate) serial: u32,
    /// QoS it was sent with.
    pub(crate) qos: QoS,
    /// RETAIN flag it was sent with.
    pub(crate) retain: bool,
}

/// A delivery the mailbox accepted and has not sent yet.
#[derive(Debug)]
pub(crate) struct Queued {
    /// QoS of the delivery.
    pub(crate) qos: QoS,
    /// RETAIN flag of the delivery.
    pub(crate) retain: bool,
    /// Topic of its message.
    pub(crate) topic: String,
}

/// What one session must hold, as the model sees it.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Clean session flag of the session.
    pub(crate) clean: bool,
    /// Keep-alive of the current connection, in seconds.
    pub(crate) keep_alive: u16,
    /// When the client last showed it was alive; `None` before the first connection.
    pub(crate) last_activity: Option<Instant>,
    /// The will the connection's end is due to publish: topic and payload.
    pub(crate) will: Option<(String, Bytes)>,
    /// The session's subscriptions.
    pub(crate) subscriptions: BTreeMap<String, QoS>,
    /// Subscriptions the router holds for the session: those whose actions were taken.
    pub(crate) router: BTreeMap<String, QoS>,
    /// Inbound QoS 2 packet identifiers received and not yet released.
    pub(crate) awaiting_pubrel: BTreeSet<u16>,
    /// Outbound messages in flight by packet identifier.
    pub(crate) outbound: BTreeMap<u16, Outgoing>,
    /// Their identifiers in send order, with their positions; an entry whose position is not
    /// its message's is stale, and stale entries are dropped in bulk, so that each
    /// acknowledgement costs O(1) however many messages are in flight.
    pub(crate) order: Vec<(u64, u16)>,
    /// Position of the next message sent.
    pub(crate) next_sequence: u64,
    /// Deliveries queued in the mailbox, by serial.
    pub(crate) queued: BTreeMap<u32, Queued>,
    /// Serials of the accepted QoS 1/2 deliveries not yet sent.
    pub(crate) unsent: BTreeSet<u32>,
    /// Serial of the last delivery sent for the first time.
    pub(crate) last_sent: Option<u32>,
}

impl Model {
    /// The keep-alive deadline: one and a half keep-alives after the last activity
    /// [MQTT-3.1.2-24]; none for a keep-alive of 0.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let limit = Duration::from_millis(u64::from(self.keep_alive) * 1500);
        self.last_activity.filter(|_| self.keep_alive > 0).map(|last| last + limit)
    }

    /// The client showed it was alive at `now`.
    pub(crate) fn record_activity(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(Some(now));
    }

    /// Ends the exchange of `packet_id` if it is at `stage`, as the session must.
    fn complete(&mut self, packet_id: u16, stage: Stage) {
        if self.outbound.get(&packet_id).is_some_and(|o| o.stage == stage) {
            self.outbound.remove(&packet_id);
            if self.order.len() > 2 * self.outbound.len() + 16 {
                let outbound = &self.outbound;
                self.order.retain(|(sequence, id)| outbound.get(id).is_some_and(|o| o.sequence == *sequence));
            }
        }
    }

    /// Identifiers in flight, in send order.
    pub(crate) fn in_flight(&self) -> Vec<u16> {
        let live =
            |&&(sequence, id): &&(u64, u16)| self.outbound.get(&id).is_some_and(|o| o.sequence == sequence);
        self.order.iter().filter(live).map(|&(_, id)| id).collect()
    }

    /// What the session must do with `packet`, updating the model as the session must; an
    /// `Ending` if the packet ends the connection instead.
    pub(crate) fn predict(
        &mut self,
        packet: &Packet,
        max_subscriptions: usize,
    ) -> Result<Vec<Expected>, Ending> {
        Ok(match packet {
            Packet::Publish(publish) => return self.publish(publish),
            Packet::PubAck(ack) => {
                self.complete(ack.packet_id.get(), Stage::Ack);
                Vec::new()
            }
            Packet::PubRec(rec) => match self.outbound.get_mut(&rec.packet_id.get()) {
                // [MQTT-4.3.3-1]: PUBREL answers PUBREC, again for a re-sent PUBREC.
                Some(outgoing) if outgoing.stage != Stage::Ack => {
                    outgoing.stage = Stage::Comp;
                    vec![Expected::Send(Packet::PubRel(PublishResponse::new(rec.packet_id)))]
                }
                _ => Vec::new(),
            },
            Packet::PubRel(rel) => {
                // [MQTT-4.3.3-2]: PUBCOMP answers every PUBREL, known identifier or not.
                self.awaiting_pubrel.remove(&rel.packet_id.get());
                vec![Expected::Send(Packet::PubComp(PublishResponse::new(rel.packet_id)))]
            }
            Packet::PubComp(comp) => {
                self.complete(comp.packet_id.get(), Stage::Comp);
                Vec::new()
            }
            Packet::Subscribe(subscribe) => self.subscribe(subscribe, max_subscriptions),
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe),
            Packet::PingReq => vec![Expected::Send(Packet::PingResp)],
            Packet::Disconnect(_) => {
                // [MQTT-3.14.4-3]: DISCONNECT discards the will.
                self.will = None;
                return Err(Ending::Disconnect);
            }
            // [MQTT-3.1.0-2]: a second CONNECT; the rest are packets only a server sends, and
            // AUTH, which no 3.1.1 connection has.
            Packet::Auth(_)
            | Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => return Err(Ending::Violation),
        })
    }

    /// An inbound PUBLISH is routed with its PUBACK or PUBREC to follow [MQTT-4.3.2-2],
    /// [MQTT-4.3.3-2]; a QoS 2 identifier still awaiting PUBREL is acknowledged and not routed
    /// again; a `$SYS` topic is acknowledged and dropped; a topic over the hierarchy limit ends
    /// the connection unacknowledged.
    fn publish(&mut self, publish: &Publish) -> Result<Vec<Expected>, Ending> {
        if too_deep(&publish.topic) {
            return Err(Ending::Violation);
        }
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(PublishResponse::new(id))),
            (QoS::ExactlyOnce, Some(id)) => Some(Packet::PubRec(PublishResponse::new(id))),
            _ => None,
        };
        let fresh = match (publish.qos, publish.packet_id) {
            (QoS::ExactlyOnce, Some(id)) => self.awaiting_pubrel.insert(id.get()),
            _ => true,
        };
        if !fresh || is_reserved_for_broker(&publish.topic) {
            return Ok(ack.into_iter().map(Expected::Send).collect());
        }
        Ok(vec![Expected::Publish {
            topic: publish.topic.to_string(),
            payload: publish.payload.clone(),
            qos: publish.qos,
            retain: publish.retain,
            ack,
        }])
    }

    /// SUBSCRIBE grants each filter in order, refuses one over the hierarchy limit or a new one
    /// over `max_subscriptions` (0: none), and answers one SUBACK code per filter, in order
    /// [MQTT-3.8.4-5], [MQTT-3.8.4-6], after the router changes.
    fn subscribe(&mut self, subscribe: &Subscribe, max_subscriptions: usize) -> Vec<Expected> {
        let mut actions = Vec::new();
        let mut reason_codes = Vec::new();
        for (filter, options) in &subscribe.filters {
            let is_new = !self.subscriptions.contains_key(&**filter);
            if too_deep(filter) {
                reason_codes.push(ReasonCode::UnspecifiedError);
            } else if is_new && max_subscriptions != 0 && self.subscriptions.len() >= max_subscriptions {
                reason_codes.push(ReasonCode::QuotaExceeded);
            } else {
                self.subscriptions.insert(filter.to_string(), options.qos);
                let first = actions.is_empty();
                actions.push(Expected::Subscribe { filter: filter.to_string(), qos: options.qos, first });
                reason_codes.push(ReasonCode::granted(options.qos));
            }
        }
        assert_eq!(reason_codes.len(), subscribe.filters.len());
        let suback = SubAck { packet_id: subscribe.packet_id, reason_codes, properties: None };
        actions.push(Expected::Send(Packet::SubAck(suback)));
        actions
    }

    /// UNSUBSCRIBE removes each filter held, tells the mailbox the new count after the router
    /// changes, and is always answered [MQTT-3.10.4-4], [MQTT-3.10.4-5].
    fn unsubscribe(&mut self, unsubscribe: &Unsubscribe) -> Vec<Expected> {
        let mut actions = Vec::new();
        for filter in &unsubscribe.filters {
            if self.subscriptions.remove(&**filter).is_some() {
                actions.push(Expected::Unsubscribe { filter: filter.to_string() });
            }
        }
        actions.push(Expected::Count(self.subscriptions.len()));
        let unsuback =
            UnsubAck { packet_id: unsubscribe.packet_id, reason_codes: Vec::new(), properties: None };
        actions.push(Expected::Send(Packet::UnsubAck(unsuback)));
        actions
    }
}
