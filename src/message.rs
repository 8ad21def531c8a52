//! The application message as the broker holds it, and one delivery of it to one session.
//!
//! This is the bottom layer that both the router and the session use; it knows nothing about
//! either of them, about connections or about sockets.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use iothub_protocol::QoS;

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
