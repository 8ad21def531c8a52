//! Raw MQTT 3.1.1 packets as the tests send them, built byte by byte, and a parser for the
//! PUBLISH packets they receive. The `_raw` builders take any bytes and any first byte, for
//! malformed input; the others build valid packets.
//!
//! The builders write the encoding out rather than call `iothub_protocol::encode`, the encoder
//! the broker answers with; the parser uses the codec's decoder, which the codec's own vector
//! tests check.

use crate::OrFail;

/// First byte of PUBACK.
pub const PUBACK: u8 = 0x40;
/// First byte of PUBREC.
pub const PUBREC: u8 = 0x50;
/// First byte of PUBREL, with the flag bits 0010 it requires.
pub const PUBREL: u8 = 0x62;
/// First byte of PUBCOMP.
pub const PUBCOMP: u8 = 0x70;
/// PINGREQ.
pub const PINGREQ: [u8; 2] = [0xC0, 0x00];
/// PINGRESP.
pub const PINGRESP: [u8; 2] = [0xD0, 0x00];
/// DISCONNECT.
pub const DISCONNECT: [u8; 2] = [0xE0, 0x00];
/// CONNACK: connection accepted, no session present.
pub const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
/// CONNACK: connection accepted, session present.
pub const CONNACK_SESSION_PRESENT: [u8; 4] = [0x20, 0x02, 0x01, 0x00];

/// Prefixes a body with a fixed header: `first_byte`, then the remaining length.
pub fn with_header(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![first_byte];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).or_fail("a remainder below 128");
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

/// A length-prefixed field: a UTF-8 string or binary data as MQTT encodes it.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).or_fail("a field longer than 65,535 bytes");
    let mut out = len.to_be_bytes().to_vec();
    out.extend(bytes);
    out
}

/// A CONNECT with every header field chosen by the caller: any protocol name, level and flags,
/// and only a client identifier in the payload.
pub fn connect_packet_raw(
    protocol_name: &[u8],
    level: u8,
    flags: u8,
    keep_alive: u16,
    client_id: &[u8],
) -> Vec<u8> {
    let mut body = field(protocol_name);
    body.push(level);
    body.push(flags);
    body.extend(keep_alive.to_be_bytes());
    body.extend(field(client_id));
    with_header(0x10, &body)
}

/// A 3.1.1 CONNECT packet with the given client id, clean session flag and keep-alive.
pub fn connect_packet(client_id: &str, clean: bool, keep_alive: u16) -> Vec<u8> {
    let flags = if clean { 0x02 } else { 0x00 };
    connect_packet_raw(b"MQTT", 4, flags, keep_alive, client_id.as_bytes())
}

/// A will to put in a CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Will<'a> {
    /// Will Topic.
    pub topic: &'a str,
    /// Will Message.
    pub payload: &'a [u8],
    /// Will QoS.
    pub qos: u8,
    /// Will Retain.
    pub retain: bool,
}

impl<'a> Will<'a> {
    /// A QoS 0 will that is not retained.
    pub fn qos0(topic: &'a str, payload: &'a [u8]) -> Will<'a> {
        Will { topic, payload, qos: 0, retain: false }
    }
}

/// A 3.1.1 CONNECT packet carrying a will.
pub fn connect_with_will(client_id: &str, clean: bool, keep_alive: u16, will: &Will<'_>) -> Vec<u8> {
    let mut flags = 0x04 | (will.qos << 3);
    if clean {
        flags |= 0x02;
    }
    if will.retain {
        flags |= 0x20;
    }
    let mut body = field(b"MQTT");
    body.extend([4, flags]);
    body.extend(keep_alive.to_be_bytes());
    for part in [client_id.as_bytes(), will.topic.as_bytes(), will.payload] {
        body.extend(field(part));
    }
    with_header(0x10, &body)
}

/// A PUBLISH packet; `packet_id` is written only for QoS 1 and 2.
pub fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
) -> Vec<u8> {
    let first_byte = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let mut body = field(topic.as_bytes());
    if qos > 0 {
        body.extend(packet_id.to_be_bytes());
    }
    body.extend(payload);
    with_header(first_byte, &body)
}

/// A QoS 0 PUBLISH, not retained; the topic may be any bytes, for malformed input.
pub fn qos0_publish(topic: &(impl AsRef<[u8]> + ?Sized), payload: &[u8]) -> Vec<u8> {
    let mut body = field(topic.as_ref());
    body.extend(payload);
    with_header(0x30, &body)
}

/// A SUBSCRIBE whose first byte, filters and option bytes may be anything.
pub fn subscribe_packet_raw(first_byte: u8, packet_id: u16, filters: &[(&[u8], u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for (filter, options) in filters {
        body.extend(field(filter));
        body.push(*options);
    }
    with_header(first_byte, &body)
}

/// A SUBSCRIBE packet with the given filters and requested QoS.
pub fn subscribe_packet(packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let filters: Vec<(&[u8], u8)> = filters.iter().map(|(filter, qos)| (filter.as_bytes(), *qos)).collect();
    subscribe_packet_raw(0x82, packet_id, &filters)
}

/// The SUBACK that grants each filter of a SUBSCRIBE the QoS it asked for, in order.
pub fn suback_granting(packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(filters.iter().map(|(_, qos)| *qos));
    with_header(0x90, &body)
}

/// An UNSUBSCRIBE whose first byte and filters may be anything.
pub fn unsubscribe_packet_raw(first_byte: u8, packet_id: u16, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for filter in filters {
        body.extend(field(filter));
    }
    with_header(first_byte, &body)
}

/// An UNSUBSCRIBE packet with the given filters.
pub fn unsubscribe_packet(packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let filters: Vec<&[u8]> = filters.iter().map(|filter| filter.as_bytes()).collect();
    unsubscribe_packet_raw(0xA2, packet_id, &filters)
}

/// A four-byte acknowledgement packet: PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK, by first
/// byte.
pub fn ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    let [high, low] = packet_id.to_be_bytes();
    vec![first_byte, 0x02, high, low]
}

/// A PUBLISH packet as received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// QoS bits of the fixed header.
    pub qos: u8,
    /// RETAIN flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Packet identifier, present for QoS 1 and 2.
    pub packet_id: Option<u16>,
}

impl Incoming {
    /// The payload as text.
    #[track_caller]
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).or_fail("a payload that is not UTF-8")
    }

    /// The first byte of the packet: type, DUP, QoS and RETAIN.
    pub fn first_byte(&self) -> u8 {
        0x30 | (u8::from(self.dup) << 3) | (self.qos << 1) | u8::from(self.retain)
    }
}

/// Parses a PUBLISH packet, failing the test if `packet` is anything else.
#[track_caller]
pub fn parse_publish(packet: &[u8]) -> Incoming {
    let mut buf = bytes::BytesMut::from(packet);
    match iothub_protocol::decode(&mut buf, iothub_protocol::ProtocolVersion::V311, usize::MAX) {
        Ok(Some(iothub_protocol::Packet::Publish(publish))) if buf.is_empty() => Incoming {
            topic: publish.topic.to_string(),
            payload: publish.payload.to_vec(),
            qos: publish.qos.bits(),
            retain: publish.retain,
            dup: publish.dup,
            packet_id: publish.packet_id.map(std::num::NonZeroU16::get),
        },
        other => panic!("expected one PUBLISH packet, got {other:?} from {packet:02x?}"),
    }
}
