//! The packets a load generator sends, built with `iothub-protocol`, and the bench payload that
//! carries a send timestamp and a sequence number.
//!
//! Payload layout: bytes 0..8 are the send time in nanoseconds since the run's shared start
//! `Instant`, bytes 8..16 the publisher's sequence number, both big-endian; the rest is zero.
//! This module builds bytes; it never touches a socket.

use std::num::NonZeroU16;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{
    encode_publish, Connect, Disconnect, Packet, PacketId, ProtocolVersion, PublishHeader, PublishResponse,
    QoS, Subscribe, SubscriptionOptions,
};

use crate::error::BenchError;

/// Every connection speaks MQTT 3.1.1.
pub const VERSION: ProtocolVersion = ProtocolVersion::V311;

/// Smallest payload that holds the timestamp and the sequence number.
pub const MIN_PAYLOAD: usize = 16;

/// Largest packet accepted from a broker: the most MQTT can encode.
pub const MAX_PACKET: usize = iothub_protocol::MAX_REMAINING_LENGTH + 5;

/// Appends `packet` to `buf` in the 3.1.1 wire format.
pub fn put(packet: &Packet, buf: &mut BytesMut) -> Result<(), BenchError> {
    packet
        .encode(VERSION, buf)
        .map_err(|e| BenchError::Config(format!("cannot encode {}: {e}", packet.name())))
}

/// A clean-session CONNECT without credentials or will.
pub fn connect(client_id: &str, keep_alive: u16) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: VERSION,
        clean_start: true,
        keep_alive,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: None,
    }))
}

/// A SUBSCRIBE for one filter at `qos`.
pub fn subscribe(packet_id: PacketId, filter: &str, qos: QoS) -> Packet {
    let options = SubscriptionOptions { qos, ..SubscriptionOptions::default() };
    Packet::Subscribe(Subscribe {
        packet_id,
        filters: vec![(ByteString::from(filter), options)],
        properties: None,
    })
}

/// A DISCONNECT.
pub fn disconnect() -> Packet {
    Packet::Disconnect(Disconnect::default())
}

/// Appends one of the two-byte acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) to `buf`.
pub fn put_ack(buf: &mut BytesMut, kind: Ack, packet_id: PacketId) -> Result<(), BenchError> {
    let response = PublishResponse::new(packet_id);
    let packet = match kind {
        Ack::PubAck => Packet::PubAck(response),
        Ack::PubRec => Packet::PubRec(response),
        Ack::PubRel => Packet::PubRel(response),
        Ack::PubComp => Packet::PubComp(response),
    };
    put(&packet, buf)
}

/// Which acknowledgement to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// PUBACK: QoS 1 receipt.
    PubAck,
    /// PUBREC: QoS 2 receipt, part 1.
    PubRec,
    /// PUBREL: QoS 2 release, part 2.
    PubRel,
    /// PUBCOMP: QoS 2 completion, part 3.
    PubComp,
}

/// Reads the timestamp and sequence number from a bench payload; `None` if it is too short.
pub fn read_payload(payload: &[u8]) -> Option<(u64, u64)> {
    let timestamp = payload.get(0..8)?.try_into().ok()?;
    let sequence = payload.get(8..16)?.try_into().ok()?;
    Some((u64::from_be_bytes(timestamp), u64::from_be_bytes(sequence)))
}

/// Hands out packet identifiers 1, 2, ..., 65535, 1, ... The caller keeps fewer than 65535
/// unacknowledged, so an identifier is free again by the time it comes round.
#[derive(Debug, Clone)]
pub struct PacketIds {
    /// The identifier handed out last.
    last: u16,
}

impl Default for PacketIds {
    fn default() -> PacketIds {
        PacketIds::new()
    }
}

impl PacketIds {
    /// Starts at 1.
    pub fn new() -> PacketIds {
        PacketIds { last: 0 }
    }

    /// The next identifier.
    pub fn next_id(&mut self) -> PacketId {
        self.last = self.last.checked_add(1).unwrap_or(1);
        NonZeroU16::new(self.last).unwrap_or(NonZeroU16::MIN)
    }
}

/// Writes PUBLISH packets for one topic with bench payloads, reusing one payload buffer.
#[derive(Debug, Clone)]
pub struct PublishEncoder {
    /// Topic every message goes to.
    topic: String,
    /// QoS of every message.
    qos: QoS,
    /// Payload scratch space; the first 16 bytes are rewritten per message.
    payload: Vec<u8>,
}

impl PublishEncoder {
    /// An encoder for `payload_len`-byte messages (at least `MIN_PAYLOAD`) to `topic`.
    pub fn new(topic: &str, qos: QoS, payload_len: usize) -> PublishEncoder {
        PublishEncoder { topic: topic.to_owned(), qos, payload: vec![0; payload_len.max(MIN_PAYLOAD)] }
    }

    /// Size of one encoded PUBLISH.
    pub fn packet_size(&self) -> usize {
        iothub_protocol::publish_size(&self.topic, self.qos, self.payload.len())
    }

    /// Appends one PUBLISH stamped with `timestamp_ns` and `sequence` to `buf`. `packet_id` must
    /// be present exactly when the QoS is 1 or 2.
    pub fn put(
        &mut self,
        buf: &mut BytesMut,
        packet_id: Option<PacketId>,
        timestamp_ns: u64,
        sequence: u64,
    ) -> Result<(), BenchError> {
        self.payload[0..8].copy_from_slice(&timestamp_ns.to_be_bytes());
        self.payload[8..16].copy_from_slice(&sequence.to_be_bytes());
        let header = PublishHeader { dup: false, qos: self.qos, retain: false, packet_id };
        encode_publish(buf, &header, &self.topic, &self.payload)
            .map_err(|e| BenchError::Config(format!("cannot encode PUBLISH to {}: {e}", self.topic)))
    }
}

#[cfg(test)]
mod tests {
    use iothub_protocol::decode;

    use super::*;

    fn round_trip(packet: &Packet) -> Packet {
        let mut buf = BytesMut::new();
        put(packet, &mut buf).unwrap();
        let decoded = decode(&mut buf, VERSION, MAX_PACKET).unwrap().unwrap();
        assert!(buf.is_empty());
        decoded
    }

    #[test]
    fn connect_is_byte_exact() {
        let mut buf = BytesMut::new();
        put(&connect("b", 60), &mut buf).unwrap();
        let expected = [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'b'];
        assert_eq!(&buf[..], &expected);
    }

    #[test]
    fn subscribe_round_trips() {
        let id = NonZeroU16::new(7).unwrap();
        assert_eq!(
            round_trip(&subscribe(id, "bench/+", QoS::ExactlyOnce)),
            subscribe(id, "bench/+", QoS::ExactlyOnce)
        );
    }

    #[test]
    fn acks_are_byte_exact() {
        let id = NonZeroU16::new(0x0102).unwrap();
        let mut buf = BytesMut::new();
        for kind in [Ack::PubAck, Ack::PubRec, Ack::PubRel, Ack::PubComp] {
            put_ack(&mut buf, kind, id).unwrap();
        }
        assert_eq!(&buf[..], &[0x40, 2, 1, 2, 0x50, 2, 1, 2, 0x62, 2, 1, 2, 0x70, 2, 1, 2]);
        let mut disconnect_bytes = BytesMut::new();
        put(&disconnect(), &mut disconnect_bytes).unwrap();
        assert_eq!(&disconnect_bytes[..], &[0xE0, 0]);
    }

    #[test]
    fn publish_carries_timestamp_and_sequence() {
        let mut encoder = PublishEncoder::new("t/1", QoS::AtLeastOnce, 64);
        let mut buf = BytesMut::new();
        let id = NonZeroU16::new(9).unwrap();
        encoder.put(&mut buf, Some(id), 123_456_789, 42).unwrap();
        encoder.put(&mut buf, Some(id), 5, 43).unwrap();
        assert_eq!(buf.len(), 2 * encoder.packet_size());
        for (timestamp, sequence) in [(123_456_789, 42), (5, 43)] {
            let Packet::Publish(publish) = decode(&mut buf, VERSION, MAX_PACKET).unwrap().unwrap() else {
                panic!("expected a PUBLISH");
            };
            assert_eq!(&publish.topic[..], "t/1");
            assert_eq!(publish.qos, QoS::AtLeastOnce);
            assert_eq!(publish.packet_id, Some(id));
            assert_eq!(publish.payload.len(), 64);
            assert_eq!(read_payload(&publish.payload), Some((timestamp, sequence)));
        }
    }

    #[test]
    fn short_payloads_are_padded_and_foreign_ones_rejected() {
        assert_eq!(PublishEncoder::new("t", QoS::AtMostOnce, 3).payload.len(), MIN_PAYLOAD);
        assert_eq!(read_payload(&[0; 15]), None);
        assert_eq!(read_payload(&[0; 16]), Some((0, 0)));
    }

    #[test]
    fn packet_ids_skip_zero_on_wrap() {
        let mut ids = PacketIds::new();
        assert_eq!(ids.next_id().get(), 1);
        ids.last = u16::MAX - 1;
        assert_eq!(ids.next_id().get(), u16::MAX);
        assert_eq!(ids.next_id().get(), 1);
    }
}
