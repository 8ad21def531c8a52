//! The will message: what is published for a client whose network connection ends without
//! DISCONNECT [MQTT-3.1.2-8], or with a 5.0 DISCONNECT 0x04.
//!
//! It belongs to the session for the life of one network connection. It decides whether an
//! exit publishes it; routing it is the caller's job. A 5.0 Will Delay Interval makes the
//! session keep it after the connection ends, until the delay passes or the session ends.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytes::{BufMut, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{
    OutgoingPublish, Packet, ProtocolVersion, PublishHeader, PublishProperties, QoS, WillProperties,
};
use tokio::time::Instant;

use crate::exit::Exit;
use crate::message::Message;

/// The will of the current network connection.
#[derive(Debug, Clone)]
pub struct Will {
    /// Topic name.
    topic: ByteString,
    /// Payload.
    payload: Bytes,
    /// QoS of the will publication.
    qos: QoS,
    /// Whether it is retained.
    retain: bool,
    /// The will properties that become the PUBLISH's (3.1.3.2); the Message Expiry Interval
    /// counts from publication.
    properties: Option<Box<PublishProperties>>,
    /// The Will Delay Interval.
    delay: Duration,
    /// The publishing session: its session id and client identifier hash.
    origin: (u64, u64),
}

impl Will {
    /// The will a CONNECT carries, copied out of the packet so that it does not pin the CONNECT
    /// buffer. A will on a `$SYS` topic is accepted and never published, as Mosquitto does.
    pub fn from_connect(will: &iothub_protocol::Will) -> Option<Will> {
        if super::is_reserved_for_broker(&will.topic) {
            return None;
        }
        let delay = will.properties.as_ref().and_then(|p| p.will_delay_interval).unwrap_or(0);
        Some(Will {
            topic: ByteString::from(&*will.topic),
            payload: Bytes::copy_from_slice(&will.payload),
            qos: will.qos,
            retain: will.retain,
            properties: will.properties.as_deref().and_then(publish_properties),
            delay: Duration::from_secs(u64::from(delay)),
            origin: (0, 0),
        })
    }

    /// The same will, published as session `session_id` (client identifier hash `hash`).
    pub fn from_session(mut self, session_id: u64, hash: u64) -> Will {
        self.origin = (session_id, hash);
        self
    }

    /// The will as durable storage keeps it: its Will Delay Interval, then the will as a 5.0
    /// PUBLISH (topic, QoS, RETAIN, payload, properties with its own Message Expiry Interval),
    /// written by the broker's codec.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let qos = self.qos;
        let outgoing = OutgoingPublish {
            header: PublishHeader {
                dup: false,
                qos,
                retain: self.retain,
                packet_id: (qos != QoS::AtMostOnce).then_some(iothub_protocol::PacketId::MIN),
            },
            topic: &self.topic,
            payload: &self.payload,
            properties: self.properties.as_deref(),
            message_expiry_interval: self.properties.as_ref().and_then(|p| p.message_expiry_interval),
            topic_alias: None,
            subscription_identifiers: &[],
        };
        let mut packet = BytesMut::with_capacity(4 + outgoing.size(ProtocolVersion::V5));
        packet.put_u32(u32::try_from(self.delay.as_secs()).unwrap_or(u32::MAX));
        // A will the broker accepted fits a PUBLISH: its fields came from a CONNECT.
        let _ = outgoing.encode(ProtocolVersion::V5, &mut packet);
        packet.to_vec()
    }

    /// A will read back from `encode`'s bytes; `None` if they are not one.
    pub(crate) fn decode(record: &[u8]) -> Option<Will> {
        let (delay, packet) = record.split_first_chunk::<4>()?;
        let delay = Duration::from_secs(u64::from(u32::from_be_bytes(*delay)));
        let mut packet = BytesMut::from(packet);
        match iothub_protocol::decode(&mut packet, ProtocolVersion::V5, usize::MAX) {
            Ok(Some(Packet::Publish(p))) if packet.is_empty() => Some(Will {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                properties: p.properties,
                delay,
                origin: (0, 0),
            }),
            _ => None,
        }
    }

    /// The Will Delay Interval.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// True when `exit` publishes the will: every end of the network connection other than
    /// DISCONNECT [MQTT-3.1.2-10] does [MQTT-3.1.2-8], a takeover by a new connection and a 5.0
    /// DISCONNECT 0x04 included, except a refused CONNECT (no session began) and server shutdown
    /// (a decision: the client did not go away, the server did, as in Mosquitto).
    pub fn is_due(&self, exit: &Exit) -> bool {
        !matches!(exit, Exit::Disconnect | Exit::Shutdown | Exit::Refused(_))
    }

    /// The will as the message published at `now`.
    pub fn message(self, now: Instant) -> Arc<Message> {
        let (origin, hash) = self.origin;
        let message = Message::new(self.topic, self.payload, self.qos, self.retain)
            .from_session(origin, hash)
            .with_properties(self.properties, now);
        Arc::new(message)
    }
}

/// The will properties that become the PUBLISH's, each copied out of the CONNECT buffer;
/// `None` when there are none.
fn publish_properties(will: &WillProperties) -> Option<Box<PublishProperties>> {
    let text = |s: &Option<ByteString>| s.as_deref().map(ByteString::from);
    let properties = PublishProperties {
        payload_format_indicator: will.payload_format_indicator,
        message_expiry_interval: will.message_expiry_interval,
        content_type: text(&will.content_type),
        response_topic: text(&will.response_topic),
        correlation_data: will.correlation_data.as_deref().map(Bytes::copy_from_slice),
        user_properties: will
            .user_properties
            .iter()
            .map(|(k, v)| (ByteString::from(&**k), ByteString::from(&**v)))
            .collect(),
        ..PublishProperties::default()
    };
    (!properties.is_empty()).then(|| Box::new(properties))
}
