//! The application message as the broker holds it, one delivery of it to one session, and the
//! broker's topic hierarchy limit.
//!
//! This is the bottom layer that both the router and the session use; it knows nothing about
//! either of them, about connections or about sockets.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use iothub_protocol::{publish_size, QoS};

/// Most `/` separators a routed topic, a will topic or a subscribed filter may have: 200, as
/// Mosquitto's topic hierarchy limit, so at most 201 levels. It bounds the depth of both trees,
/// and so the recursion that walks them.
pub(crate) const MAX_TOPIC_SEPARATORS: usize = 200;

/// True when `topic` (a name or a filter) is deeper than the hierarchy limit.
pub fn too_deep(topic: &str) -> bool {
    topic.bytes().filter(|&b| b == b'/').count() > MAX_TOPIC_SEPARATORS
}

/// An application message as the broker holds it: decoded once, shared by every subscriber.
#[derive(Debug)]
pub struct Message {
    /// Topic name.
    pub topic: ByteString,
    /// Application payload.
    pub payload: Bytes,
    /// QoS the publisher sent it with.
    pub qos: QoS,
    /// Whether the publisher asked for it to be retained.
    pub retain: bool,
}

impl Message {
    /// A message from its parts.
    pub fn new(topic: ByteString, payload: Bytes, qos: QoS, retain: bool) -> Message {
        Message { topic, payload, qos, retain }
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// QoS of this delivery: the lower of the message's and the subscription's.
    pub qos: QoS,
    /// RETAIN flag to send: set only for retained messages sent on subscribe [MQTT-3.3.1-8].
    pub retain: bool,
}

impl Delivery {
    /// Size of this delivery's PUBLISH packet on the wire, topic and fixed header included: what
    /// it costs in a queue and in a write buffer.
    pub fn size(&self) -> usize {
        publish_size(&self.message.topic, self.qos, self.message.payload.len())
    }
}
