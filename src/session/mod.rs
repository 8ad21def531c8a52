//! The session: everything the broker remembers about one client identifier, and the packet
//! handlers that change it.
//!
//! A session is owned by exactly one connection task while its client is connected and by the
//! registry while it is not; it is never shared. What the rest of the broker may touch is its
//! mailbox, which publishers push into.
//!
//! Handlers take packets in and write response packets into the connection's write buffer; they
//! never read a socket or a clock.

mod mailbox;
mod registry;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{
    encode_publish, EncodeError, Packet, PacketId, ProtocolVersion, Publish, PublishResponse, QoS,
    ReasonCode, SubAck, Subscribe, UnsubAck, Unsubscribe,
};

pub use mailbox::{Delivery, Mailbox, PushOutcome, QueueLimits};
pub use registry::{Registry, Takeover};

use crate::router::{Message, RouteScratch, Router};

/// An outbound QoS 1 or 2 message that the client has not finished acknowledging.
#[derive(Debug)]
struct Outgoing {
    /// Packet identifier it was sent with.
    packet_id: PacketId,
    /// Where the exchange stands.
    state: Awaiting,
    /// The message, kept for re-sending with DUP=1 after a reconnect.
    delivery: Delivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// QoS 1 PUBLISH sent, PUBACK expected.
    Ack,
    /// QoS 2 PUBLISH sent, PUBREC expected.
    Rec,
    /// PUBREL sent, PUBCOMP expected.
    Comp,
}

/// The state of one client identifier.
pub struct Session {
    /// The client identifier.
    pub client_id: ByteString,
    /// Clean session flag of the connection that created or last resumed it; a clean session
    /// ends with its connection.
    pub clean: bool,
    /// Queue of messages waiting to be sent.
    mailbox: Arc<Mailbox>,
    /// Subscriptions by topic filter, with their granted QoS; mirrors the router's entries.
    subscriptions: HashMap<ByteString, QoS>,
    /// Outbound QoS 1/2 messages awaiting acknowledgement, in send order.
    inflight: VecDeque<Outgoing>,
    /// Last packet identifier used for an outbound message.
    last_packet_id: u16,
    /// Inbound QoS 2 packet identifiers received and not yet released by PUBREL.
    awaiting_pubrel: HashSet<u16>,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ByteString, clean: bool, mailbox: Arc<Mailbox>) -> Session {
        Session {
            client_id,
            clean,
            mailbox,
            subscriptions: HashMap::new(),
            inflight: VecDeque::new(),
            last_packet_id: 0,
            awaiting_pubrel: HashSet::new(),
        }
    }

    /// The session's mailbox.
    pub fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// Number of outbound messages awaiting acknowledgement.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Removes every subscription of this session from the router.
    pub fn unsubscribe_all(&mut self, router: &Router) {
        let id = self.mailbox.session_id();
        for (filter, _) in self.subscriptions.drain() {
            router.unsubscribe(&filter, id);
        }
        self.mailbox.set_subscription_count(0);
    }

    /// Re-sends, in their original order and with their original packet identifiers, every
    /// unacknowledged PUBLISH (with DUP=1) and PUBREL [MQTT-4.4.0-1].
    pub fn resend_inflight(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        for outgoing in &self.inflight {
            match outgoing.state {
                Awaiting::Ack | Awaiting::Rec => {
                    write_delivery(out, &outgoing.delivery, true, Some(outgoing.packet_id))?;
                }
                Awaiting::Comp => write(out, &Packet::PubRel(PublishResponse::new(outgoing.packet_id)))?,
            }
        }
        Ok(())
    }

    /// Moves queued messages into `out` while the inflight window (`max_inflight`) has room,
    /// taking about `byte_budget` payload bytes at most. `scratch` is reused between calls.
    pub fn pump(
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
            let packet_id = self.next_packet_id();
            if result.is_ok() {
                result = write_delivery(out, &delivery, false, Some(packet_id));
            }
            let state = if delivery.qos == QoS::AtLeastOnce { Awaiting::Ack } else { Awaiting::Rec };
            self.inflight.push_back(Outgoing { packet_id, state, delivery });
        }
        result
    }

    fn next_packet_id(&mut self) -> PacketId {
        loop {
            self.last_packet_id = self.last_packet_id.wrapping_add(1);
            let Some(id) = PacketId::new(self.last_packet_id) else {
                continue;
            };
            if !self.inflight.iter().any(|o| o.packet_id == id) {
                return id;
            }
        }
    }

    fn position(&self, packet_id: PacketId, state: Awaiting) -> Option<usize> {
        self.inflight.iter().position(|o| o.packet_id == packet_id && o.state == state)
    }

    /// PUBACK from the client ends a QoS 1 delivery.
    pub fn handle_puback(&mut self, packet_id: PacketId) {
        if let Some(index) = self.position(packet_id, Awaiting::Ack) {
            self.inflight.remove(index);
        }
    }

    /// PUBREC from the client: answer PUBREL and wait for PUBCOMP [MQTT-4.3.3-1].
    pub fn handle_pubrec(&mut self, packet_id: PacketId, out: &mut BytesMut) -> Result<(), EncodeError> {
        if let Some(index) = self.position(packet_id, Awaiting::Rec) {
            self.inflight[index].state = Awaiting::Comp;
            write(out, &Packet::PubRel(PublishResponse::new(packet_id)))?;
        } else if self.position(packet_id, Awaiting::Comp).is_some() {
            write(out, &Packet::PubRel(PublishResponse::new(packet_id)))?;
        }
        Ok(())
    }

    /// PUBCOMP from the client ends a QoS 2 delivery.
    pub fn handle_pubcomp(&mut self, packet_id: PacketId) {
        if let Some(index) = self.position(packet_id, Awaiting::Comp) {
            self.inflight.remove(index);
        }
    }

    /// An inbound PUBLISH: routes it and acknowledges it. A QoS 2 PUBLISH whose packet
    /// identifier is still awaiting PUBREL is a re-send and is not routed again [MQTT-4.3.3-2].
    pub fn handle_publish(
        &mut self,
        publish: Publish,
        router: &Router,
        scratch: &mut RouteScratch,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let forward = match (publish.qos, publish.packet_id) {
            (QoS::ExactlyOnce, Some(id)) => self.awaiting_pubrel.insert(id.get()),
            _ => true,
        };
        let packet_id = publish.packet_id;
        let qos = publish.qos;
        if forward && !is_reserved_for_broker(&publish.topic) {
            let message = Arc::new(Message {
                topic: publish.topic,
                payload: publish.payload,
                qos: publish.qos,
                retain: publish.retain,
            });
            router.publish(&message, scratch);
        }
        match (qos, packet_id) {
            (QoS::AtLeastOnce, Some(id)) => write(out, &Packet::PubAck(PublishResponse::new(id))),
            (QoS::ExactlyOnce, Some(id)) => write(out, &Packet::PubRec(PublishResponse::new(id))),
            _ => Ok(()),
        }
    }

    /// PUBREL from the client releases an inbound QoS 2 packet identifier; PUBCOMP is sent
    /// whether or not the identifier was known [MQTT-4.3.3-2].
    pub fn handle_pubrel(&mut self, packet_id: PacketId, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.awaiting_pubrel.remove(&packet_id.get());
        write(out, &Packet::PubComp(PublishResponse::new(packet_id)))
    }

    /// SUBSCRIBE: grants each filter at the requested QoS (refusing, with 0x80, a filter of more
    /// than `MAX_TOPIC_LEVELS` levels), replaces an existing subscription to
    /// an identical filter [MQTT-3.8.4-3], answers with one SUBACK code per filter in order
    /// [MQTT-3.8.4-5], [MQTT-3.8.4-6], then queues the retained messages that match.
    pub fn handle_subscribe(
        &mut self,
        subscribe: &Subscribe,
        router: &Router,
        out: &mut BytesMut,
        retained: &mut Vec<Arc<Message>>,
    ) -> Result<(), EncodeError> {
        let mut reason_codes = Vec::with_capacity(subscribe.filters.len());
        for (index, (filter, options)) in subscribe.filters.iter().enumerate() {
            let granted = options.qos;
            // The count goes up before the router sees a second subscription, so a concurrent
            // publish never misses that it must fold overlapping matches into one delivery.
            let is_new = !self.subscriptions.contains_key(filter);
            self.mailbox.set_subscription_count(self.subscriptions.len() + usize::from(is_new));
            // A filter repeated later in the same packet gets its retained messages then.
            let last = subscribe.filters[index + 1..].iter().all(|(later, _)| later != filter);
            let scratch = if last { Some(&mut *retained) } else { None };
            if router.subscribe(filter, &self.mailbox, granted, scratch).is_err() {
                tracing::info!(%filter, "subscription refused: too many topic levels");
                self.mailbox.set_subscription_count(self.subscriptions.len());
                reason_codes.push(ReasonCode::UnspecifiedError);
                continue;
            }
            self.subscriptions.insert(filter.clone(), granted);
            reason_codes.push(ReasonCode::granted(granted));
        }
        // The retained messages are only queued; they are written after this SUBACK, when the
        // connection next pulls from the mailbox.
        write(out, &Packet::SubAck(SubAck { packet_id: subscribe.packet_id, reason_codes, properties: None }))
    }

    /// UNSUBSCRIBE: removes each filter's subscription and always answers UNSUBACK
    /// [MQTT-3.10.4-4], [MQTT-3.10.4-5].
    pub fn handle_unsubscribe(
        &mut self,
        unsubscribe: &Unsubscribe,
        router: &Router,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        for filter in &unsubscribe.filters {
            if self.subscriptions.remove(filter).is_some() {
                router.unsubscribe(filter, self.mailbox.session_id());
            }
        }
        self.mailbox.set_subscription_count(self.subscriptions.len());
        let unsuback =
            UnsubAck { packet_id: unsubscribe.packet_id, reason_codes: Vec::new(), properties: None };
        write(out, &Packet::UnsubAck(unsuback))
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
