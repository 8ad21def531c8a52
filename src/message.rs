//! The application message as the broker holds it, one delivery of it to one session, and the
//! broker's topic hierarchy limit.
//!
//! This is the bottom layer that both the router and the session use; it knows nothing about
//! either of them, about connections or about sockets.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use iothub_protocol::{publish_size, PublishProperties, QoS};
use tokio::time::Instant;

/// Most `/` separators a routed topic, a will topic or a subscribed filter may have: 200, as
/// Mosquitto's topic hierarchy limit, so at most 201 levels. It bounds the depth of both trees,
/// and so the recursion that walks them.
pub(crate) const MAX_TOPIC_SEPARATORS: usize = 200;

/// True when `topic` (a name or a filter) is deeper than the hierarchy limit.
pub fn too_deep(topic: &str) -> bool {
    topic.bytes().filter(|&b| b == b'/').count() > MAX_TOPIC_SEPARATORS
}

/// Source of message ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An application message as the broker holds it: decoded once, shared by every subscriber.
#[derive(Debug)]
pub struct Message {
    /// Process-wide identity, unique and increasing; durable storage keys the message by it,
    /// and a restart continues after the largest stored one.
    pub id: u64,
    /// Topic name.
    pub topic: ByteString,
    /// Application payload.
    pub payload: Bytes,
    /// QoS the publisher sent it with.
    pub qos: QoS,
    /// Whether the publisher asked for it to be retained.
    pub retain: bool,
    /// The publishing session's identity (its mailbox's session id), for No Local; 0 for a
    /// message no session published.
    pub origin: u64,
    /// A hash of the publisher's client identifier, for `hash_client_id` shared subscriptions.
    pub origin_hash: u64,
    /// The 5.0 properties forwarded to subscribers: payload format, content type, response
    /// topic, correlation data and user properties, unaltered and in order [MQTT-3.3.2-17],
    /// [MQTT-3.3.2-18]. Topic Alias and Subscription Identifiers are never kept (they belong to
    /// one connection and one subscriber); the Message Expiry Interval is kept as `expires_at`.
    pub properties: Option<Box<PublishProperties>>,
    /// When the message expires (from its Message Expiry Interval, counted from its arrival);
    /// `None` for never.
    pub expires_at: Option<Instant>,
    /// Bytes the 5.0 properties add to a PUBLISH of this message, Message Expiry Interval
    /// included; computed once.
    properties_size: usize,
}

impl Message {
    /// A message from its parts, with no properties, no expiry and no publishing session.
    pub fn new(topic: ByteString, payload: Bytes, qos: QoS, retain: bool) -> Message {
        Message {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            topic,
            payload,
            qos,
            retain,
            origin: 0,
            origin_hash: 0,
            properties: None,
            expires_at: None,
            properties_size: 0,
        }
    }

    /// The same message with the id it was stored under; ids issued later are larger.
    pub(crate) fn with_id(mut self, id: u64) -> Message {
        self.id = id;
        NEXT_ID.fetch_max(id.saturating_add(1), Ordering::Relaxed);
        self
    }

    /// Sets the publishing session (its session id and client identifier hash).
    pub fn from_session(mut self, origin: u64, origin_hash: u64) -> Message {
        self.origin = origin;
        self.origin_hash = origin_hash;
        self
    }

    /// Sets the 5.0 properties the publisher sent, received at `now`: the Message Expiry
    /// Interval becomes a deadline, Topic Alias and Subscription Identifiers are dropped.
    pub fn with_properties(mut self, properties: Option<Box<PublishProperties>>, now: Instant) -> Message {
        let Some(mut properties) = properties else {
            return self;
        };
        self.expires_at = properties
            .message_expiry_interval
            .take()
            .and_then(|secs| now.checked_add(Duration::from_secs(u64::from(secs))));
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        self.properties = (!properties.is_empty()).then_some(properties);
        self.properties_size = iothub_protocol::OutgoingPublish {
            header: iothub_protocol::PublishHeader::default(),
            topic: "",
            payload: &[],
            properties: self.properties.as_deref(),
            message_expiry_interval: self.expires_at.map(|_| 0),
            topic_alias: None,
            subscription_identifiers: &[],
        }
        .size(iothub_protocol::ProtocolVersion::V5)
        .saturating_sub(publish_size("", QoS::AtMostOnce, 0) + 1);
        self
    }

    /// True once the message's expiry interval has passed at `now`: it is no longer sent
    /// [MQTT-3.3.2-5].
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward at `now`: what is left of the publisher's, in whole
    /// seconds, rounded up so that a message still alive is never sent as already expired
    /// [MQTT-3.3.2-6].
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        let left = self.expires_at?.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(u32::try_from(secs).unwrap_or(u32::MAX))
    }
}

/// The Subscription Identifiers a delivery carries: one per matching subscription that has one
/// (3.3.2.3.8). Almost always none or one, which costs no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum SubscriptionIds {
    /// No matching subscription has an identifier.
    #[default]
    None,
    /// One does.
    One(NonZeroU32),
    /// Several do (overlapping subscriptions of one session).
    Many(Arc<[NonZeroU32]>),
}

impl SubscriptionIds {
    /// The identifiers, in subscription order.
    pub(crate) fn as_slice(&self) -> &[NonZeroU32] {
        match self {
            SubscriptionIds::None => &[],
            SubscriptionIds::One(id) => std::slice::from_ref(id),
            SubscriptionIds::Many(ids) => ids,
        }
    }

    /// Adds an identifier, once.
    pub(crate) fn add(&mut self, id: NonZeroU32) {
        match self {
            SubscriptionIds::None => *self = SubscriptionIds::One(id),
            SubscriptionIds::One(first) if *first == id => {}
            SubscriptionIds::One(first) => *self = SubscriptionIds::Many(Arc::from([*first, id])),
            SubscriptionIds::Many(ids) if ids.contains(&id) => {}
            SubscriptionIds::Many(ids) => {
                let mut all = ids.to_vec();
                all.push(id);
                *self = SubscriptionIds::Many(Arc::from(all));
            }
        }
    }

    /// Bytes these identifiers add to a 5.0 PUBLISH: each is a property identifier byte and a
    /// variable byte integer.
    pub(crate) fn wire_size(&self) -> usize {
        self.as_slice().iter().map(|id| 1 + varint_len(id.get())).sum()
    }
}

/// Bytes of the variable byte integer encoding of `value`.
fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// QoS of this delivery: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// RETAIN flag to send: set for retained messages sent on subscribe [MQTT-3.3.1-8], and on
    /// live ones only for a Retain As Published subscription [MQTT-3.3.1-13].
    pub retain: bool,
    /// Sent from the retained store because of a new subscription; such deliveries have a
    /// queue allowance of their own.
    pub on_subscribe: bool,
    /// What only some deliveries carry, boxed so that a plain delivery, the one every queue is
    /// full of, stays three words: queues and fan-out loops move less memory.
    extra: Option<Box<DeliveryExtra>>,
}

/// The rarer parts of a delivery.
#[derive(Debug, Clone, Default)]
struct DeliveryExtra {
    /// Subscription Identifiers of the matching subscriptions [MQTT-3.3.4-3].
    subscription_ids: SubscriptionIds,
    /// The shared subscription group it was chosen for, if any: a member whose session ends
    /// hands it to another member.
    shared: Option<Arc<str>>,
    /// Its entry number in durable storage, for a persistent session's QoS 1/2 delivery.
    stored: Option<u64>,
}

impl Delivery {
    /// A live delivery of `message` at `qos`, RETAIN flag cleared.
    pub fn live(message: Arc<Message>, qos: QoS) -> Delivery {
        Delivery { message, qos, retain: false, on_subscribe: false, extra: None }
    }

    /// Subscription Identifiers of the matching subscriptions [MQTT-3.3.4-3].
    pub fn subscription_ids(&self) -> &[NonZeroU32] {
        self.extra.as_ref().map_or(&[], |e| e.subscription_ids.as_slice())
    }

    /// Adds a Subscription Identifier, once.
    pub fn add_subscription_id(&mut self, id: NonZeroU32) {
        self.extra.get_or_insert_with(Box::default).subscription_ids.add(id);
    }

    /// The shared subscription (`$share/{group}/{filter}`) the delivery was chosen for.
    pub fn shared(&self) -> Option<&Arc<str>> {
        self.extra.as_ref().and_then(|e| e.shared.as_ref())
    }

    /// Marks the delivery as chosen for the shared subscription `key`.
    pub fn set_shared(&mut self, key: Arc<str>) {
        self.extra.get_or_insert_with(Box::default).shared = Some(key);
    }

    /// Its entry number in durable storage, if it has one.
    pub fn stored_seq(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.stored)
    }

    /// Sets its entry number in durable storage.
    pub fn set_stored_seq(&mut self, seq: u64) {
        self.extra.get_or_insert_with(Box::default).stored = Some(seq);
    }

    /// A retained message sent because of a new subscription, RETAIN flag set.
    pub fn retained(message: Arc<Message>, qos: QoS) -> Delivery {
        Delivery { retain: true, on_subscribe: true, ..Delivery::live(message, qos) }
    }

    /// Size of this delivery's PUBLISH packet on the wire, topic, fixed header and 5.0
    /// properties included: what it costs in a queue and in a write buffer.
    pub fn size(&self) -> usize {
        publish_size(&self.message.topic, self.qos, self.message.payload.len())
            + self.message.properties_size
            + self.extra.as_ref().map_or(0, |e| e.subscription_ids.wire_size())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    fn id(value: u32) -> NonZeroU32 {
        NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN)
    }

    /// A plain delivery, what every queue is full of, is three words: the rarer 5.0 parts are
    /// boxed (a 56-byte delivery made fan-out measurably slower, docs/benchmarks.md).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_plain_delivery_is_three_words() {
        assert_eq!(std::mem::size_of::<Delivery>(), 24);
    }

    #[test]
    fn subscription_ids_are_kept_once_each_in_order() {
        let mut ids = SubscriptionIds::default();
        assert!(ids.as_slice().is_empty());
        ids.add(id(7));
        ids.add(id(7));
        assert_eq!(ids, SubscriptionIds::One(id(7)));
        ids.add(id(300));
        ids.add(id(2));
        ids.add(id(300));
        assert_eq!(ids.as_slice(), [id(7), id(300), id(2)]);
        assert_eq!(ids.wire_size(), 2 + 3 + 2);
    }

    /// [MQTT-3.3.2-6]: the interval forwarded is what is left of it, never rounded down to 0
    /// while the message is alive.
    #[test]
    fn expiry_counts_down_from_arrival() {
        let now = Instant::now();
        let properties = PublishProperties {
            message_expiry_interval: Some(10),
            topic_alias: std::num::NonZeroU16::new(3),
            ..PublishProperties::default()
        };
        let message = Message::new("t".into(), Bytes::new(), QoS::AtLeastOnce, false)
            .with_properties(Some(Box::new(properties)), now);
        assert!(message.properties.is_none(), "the alias is the publisher's connection's, not forwarded");
        assert_eq!(message.remaining_expiry(now), Some(10));
        assert_eq!(message.remaining_expiry(now + Duration::from_millis(9_500)), Some(1));
        assert!(!message.is_expired(now + Duration::from_millis(9_999)));
        assert!(message.is_expired(now + Duration::from_secs(10)));
        assert_eq!(message.remaining_expiry(now + Duration::from_secs(11)), Some(0));
    }
}
