//! The packet model: one struct per MQTT control packet, shared by 3.1, 3.1.1 and 5.0.
//!
//! Strings are `ByteString` and binary data is `Bytes`, both sliced from the buffer the packet was
//! decoded from, so a PUBLISH is never copied between the socket and its subscribers. Payloads
//! and passwords print as `<REDACTED>` in `Debug` output.
//!
//! Each packet's 5.0 properties are a struct of their own (see [`properties`](crate::properties)),
//! held as `Option<Box<..>>` so that a packet without any, which is every 3.1.1 packet, pays one
//! pointer for them.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use crate::properties::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PublishProperties,
    PublishResponseProperties, SubAckProperties, SubscribeProperties, UnsubAckProperties,
    UnsubscribeProperties, WillProperties,
};
use crate::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (type 1), client to server.
    Connect(Box<Connect>),
    /// CONNACK (type 2), server to client.
    ConnAck(ConnAck),
    /// PUBLISH (type 3), both directions.
    Publish(Publish),
    /// PUBACK (type 4), both directions.
    PubAck(PublishResponse),
    /// PUBREC (type 5), both directions.
    PubRec(PublishResponse),
    /// PUBREL (type 6), both directions.
    PubRel(PublishResponse),
    /// PUBCOMP (type 7), both directions.
    PubComp(PublishResponse),
    /// SUBSCRIBE (type 8), client to server.
    Subscribe(Subscribe),
    /// SUBACK (type 9), server to client.
    SubAck(SubAck),
    /// UNSUBSCRIBE (type 10), client to server.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (type 11), server to client.
    UnsubAck(UnsubAck),
    /// PINGREQ (type 12), client to server.
    PingReq,
    /// PINGRESP (type 13), server to client.
    PingResp,
    /// DISCONNECT (type 14); client to server in 3.1.1, both directions in 5.0.
    Disconnect(Disconnect),
    /// AUTH (type 15), both directions; 5.0 only, a reserved type in 3.1 and 3.1.1.
    Auth(Auth),
}

impl Packet {
    /// The packet's name as the specification writes it, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

/// A will message, carried in CONNECT and published if the connection ends without DISCONNECT.
#[derive(Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic the will is published to.
    pub topic: ByteString,
    /// Application payload.
    pub payload: Bytes,
    /// QoS of the will publication.
    pub qos: QoS,
    /// Whether the will is published as a retained message.
    pub retain: bool,
    /// Will properties (5.0 only; section 3.1.3.2).
    pub properties: Option<Box<WillProperties>>,
}

impl fmt::Debug for Will {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Will")
            .field("topic", &self.topic)
            .field("payload", &Redacted(self.payload.len()))
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("properties", &self.properties)
            .finish()
    }
}

/// CONNECT: the first packet of every connection.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep-alive interval in seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// Client identifier; may be empty.
    pub client_id: ByteString,
    /// The will message, if the will flag is set.
    pub will: Option<Will>,
    /// User name, if the user name flag is set.
    pub username: Option<ByteString>,
    /// Password, if the password flag is set.
    pub password: Option<Bytes>,
    /// CONNECT properties (5.0 only; section 3.1.2.11).
    pub properties: Option<Box<ConnectProperties>>,
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connect")
            .field("protocol", &self.protocol)
            .field("clean_start", &self.clean_start)
            .field("keep_alive", &self.keep_alive)
            .field("client_id", &self.client_id)
            .field("will", &self.will)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|p| Redacted(p.len())))
            .field("properties", &self.properties)
            .finish()
    }
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session.
    pub session_present: bool,
    /// Outcome; written as the 3.1.1 return code for older protocol versions.
    pub reason_code: ReasonCode,
    /// CONNACK properties (5.0 only; section 3.2.2.3).
    pub properties: Option<Box<ConnAckProperties>>,
}

/// PUBLISH: an application message.
#[derive(Clone, PartialEq, Eq)]
pub struct Publish {
    /// Re-delivery flag.
    pub dup: bool,
    /// Delivery QoS of this packet.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name; never contains wildcards.
    pub topic: ByteString,
    /// Packet identifier; present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// Application payload.
    pub payload: Bytes,
    /// PUBLISH properties (5.0 only; section 3.3.2.3).
    pub properties: Option<Box<PublishProperties>>,
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("dup", &self.dup)
            .field("qos", &self.qos)
            .field("retain", &self.retain)
            .field("topic", &self.topic)
            .field("packet_id", &self.packet_id)
            .field("payload", &Redacted(self.payload.len()))
            .field("properties", &self.properties)
            .finish()
    }
}

impl Publish {
    /// The fields of this PUBLISH that [`encode_publish`](crate::encode_publish) takes apart from
    /// the topic and payload.
    pub fn header(&self) -> PublishHeader {
        PublishHeader { dup: self.dup, qos: self.qos, retain: self.retain, packet_id: self.packet_id }
    }
}

/// The fields of a PUBLISH other than its topic, payload and properties: the fixed-header flags
/// and the packet identifier. A broker sends one stored message to each subscriber with a header
/// of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublishHeader {
    /// Re-delivery flag; never set at QoS 0 [MQTT-3.3.1-2].
    pub dup: bool,
    /// Delivery QoS of this packet.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Packet identifier; present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishResponse {
    /// The packet identifier of the PUBLISH this responds to.
    pub packet_id: PacketId,
    /// Outcome (5.0); always `Success` in 3.1.1.
    pub reason_code: ReasonCode,
    /// Properties (5.0 only; sections 3.4.2.2 to 3.7.2.2).
    pub properties: Option<Box<PublishResponseProperties>>,
}

impl PublishResponse {
    /// A successful response without properties, the only kind 3.1.1 has.
    pub fn new(packet_id: PacketId) -> PublishResponse {
        PublishResponse { packet_id, reason_code: ReasonCode::Success, properties: None }
    }
}

/// Per-filter options of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// No Local (5.0): do not deliver the subscriber's own publications.
    pub no_local: bool,
    /// Retain As Published (5.0): keep the RETAIN flag on forwarded messages.
    pub retain_as_published: bool,
    /// Retain Handling (5.0): when retained messages are sent for this subscription.
    pub retain_handling: RetainHandling,
}

/// Retain Handling, bits 4 and 5 of the MQTT 5.0 subscription options (section 3.8.3.1): whether
/// the server sends the retained messages matching a filter when the subscription is made.
/// 3.1.1 has no such bits (they are reserved), so there it is always the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send retained messages at subscribe only if the subscription does not already exist.
    SendAtNewSubscribe = 1,
    /// 2: do not send retained messages at the time of the subscribe.
    DoNotSend = 2,
}

impl RetainHandling {
    /// The Retain Handling for a two-bit wire value; `None` for 3, which section 3.8.3.1 makes a
    /// Protocol Error.
    pub fn from_bits(bits: u8) -> Option<RetainHandling> {
        match bits {
            0 => Some(RetainHandling::SendAtSubscribe),
            1 => Some(RetainHandling::SendAtNewSubscribe),
            2 => Some(RetainHandling::DoNotSend),
            _ => None,
        }
    }

    /// The two-bit wire value.
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// SUBSCRIBE: one or more topic filters with their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier echoed in the SUBACK.
    pub packet_id: PacketId,
    /// The filters in packet order; never empty [MQTT-3.8.3-3].
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
    /// SUBSCRIBE properties (5.0 only; section 3.8.2.1).
    pub properties: Option<Box<SubscribeProperties>>,
}

/// SUBACK: one return code per filter of the SUBSCRIBE, in the same order [MQTT-3.8.4-6].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// Granted QoS or failure, per filter.
    pub reason_codes: Vec<ReasonCode>,
    /// SUBACK properties (5.0 only; section 3.9.2.1).
    pub properties: Option<Box<SubAckProperties>>,
}

/// UNSUBSCRIBE: one or more topic filters to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier echoed in the UNSUBACK.
    pub packet_id: PacketId,
    /// The filters in packet order; never empty [MQTT-3.10.3-2].
    pub filters: Vec<ByteString>,
    /// UNSUBSCRIBE properties (5.0 only; section 3.10.2.1).
    pub properties: Option<Box<UnsubscribeProperties>>,
}

/// UNSUBACK: confirms an UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// Per-filter outcome (5.0 only); empty for 3.1.1.
    pub reason_codes: Vec<ReasonCode>,
    /// UNSUBACK properties (5.0 only; section 3.11.2.1).
    pub properties: Option<Box<UnsubAckProperties>>,
}

/// DISCONNECT: orderly end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason (5.0); always `Success` ("normal disconnection") in 3.1.1.
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (5.0 only; section 3.14.2.2).
    pub properties: Option<Box<DisconnectProperties>>,
}

impl Default for Disconnect {
    fn default() -> Disconnect {
        Disconnect { reason_code: ReasonCode::Success, properties: None }
    }
}

/// AUTH (5.0 only, section 3.15): one step of extended authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// 0x00 Success, 0x18 Continue authentication or 0x19 Re-authenticate (section 3.15.2.1).
    pub reason_code: ReasonCode,
    /// AUTH properties (section 3.15.2.2).
    pub properties: Option<Box<AuthProperties>>,
}

impl Default for Auth {
    fn default() -> Auth {
        Auth { reason_code: ReasonCode::Success, properties: None }
    }
}

/// Stands in for secret or bulky bytes in `Debug` output: their length only.
pub(crate) struct Redacted(pub(crate) usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<REDACTED {} bytes>", self.0)
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use core::mem::size_of;

    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn properties_cost_a_packet_one_pointer() {
        // A 3.1.1 packet carries no properties; typed ones must not make every packet larger.
        assert_eq!(size_of::<Option<Box<ConnAckProperties>>>(), size_of::<usize>());
        assert_eq!(size_of::<Option<Box<PublishProperties>>>(), size_of::<usize>());
        assert!(size_of::<Packet>() <= 80, "{}", size_of::<Packet>());
        assert!(size_of::<Publish>() <= 80, "{}", size_of::<Publish>());
    }

    #[test]
    fn debug_of_a_publish_shows_neither_payload_nor_correlation_data() {
        let properties = PublishProperties {
            correlation_data: Some(Bytes::from_static(b"request-42")),
            content_type: Some("text/plain".into()),
            ..PublishProperties::default()
        };
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            payload: Bytes::from_static(b"secret reading"),
            properties: Some(Box::new(properties)),
        };
        let shown = format!("{publish:?}");
        assert!(!shown.contains("secret") && !shown.contains("request-42"), "{shown}");
        assert!(shown.contains("<REDACTED 14 bytes>") && shown.contains("<REDACTED 10 bytes>"), "{shown}");
        assert!(shown.contains("text/plain"), "{shown}");
    }

    #[test]
    fn retain_handling_round_trips_its_bits_and_refuses_3() {
        for handling in
            [RetainHandling::SendAtSubscribe, RetainHandling::SendAtNewSubscribe, RetainHandling::DoNotSend]
        {
            assert_eq!(RetainHandling::from_bits(handling.bits()), Some(handling));
        }
        assert_eq!(RetainHandling::from_bits(3), None);
        assert_eq!(RetainHandling::default(), RetainHandling::SendAtSubscribe);
    }
}
