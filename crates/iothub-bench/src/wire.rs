//! The packets a load generator sends, built with `iothub-protocol` in the wire format of the
//! connection's protocol version (3.1.1 or 5.0), and the bench payload that carries a send
//! timestamp and a sequence number.
//!
//! At 5.0 nothing is sent beyond what the broker needs: CONNECT, SUBSCRIBE and PUBLISH carry an
//! empty property block (one length byte of 0), acknowledgements and DISCONNECT take their short
//! forms, which are the same bytes as in 3.1.1.
//!
//! Payload layout: bytes 0..8 are the send time in nanoseconds since the run's shared start
//! `Instant`, bytes 8..16 the publisher's sequence number, both big-endian; the rest is zero.
//! This module builds bytes; it never touches a socket.

use std::num::NonZeroU16;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{
    Connect, Disconnect, OutgoingPublish, Packet, PacketId, ProtocolVersion, PublishHeader, PublishResponse,
    QoS, ReasonCode, Subscribe, SubscriptionOptions,
};

use crate::error::BenchError;

/// The protocol version a run speaks unless `--mqtt` says otherwise: MQTT 3.1.1.
pub const DEFAULT_VERSION: ProtocolVersion = ProtocolVersion::V311;

/// The version as reported: "3.1.1" or "5.0".
pub fn version_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V31 => "3.1",
        ProtocolVersion::V311 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    }
}

/// Smallest payload that holds the timestamp and the sequence number.
pub const MIN_PAYLOAD: usize = 16;

/// Largest packet accepted from a broker: the most MQTT can encode.
pub const MAX_PACKET: usize = iothub_protocol::MAX_REMAINING_LENGTH + 5;

/// Appends `packet` to `buf` in the wire format of `version`.
pub fn put(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), BenchError> {
    packet
        .encode(version, buf)
        .map_err(|e| BenchError::Config(format!("cannot encode {}: {e}", packet.name())))
}

/// A CONNECT without credentials or will, in `version`: a clean session, or a persistent one
/// with `--persistent` (see `set_persistent`).
///
/// At 5.0 no Receive Maximum is sent: a bench subscriber acknowledges every delivery as it reads
/// it and sets no limit of its own in 3.1.1 either, so the broker's own inflight limit is what
/// bounds its sends in both versions. No Session Expiry Interval (0: the session ends with the
/// connection, as a clean 3.1.1 session does), no Topic Alias Maximum (the broker sends whole
/// topics), no Maximum Packet Size.
pub fn connect(client_id: &str, keep_alive: u16, version: ProtocolVersion) -> Packet {
    let persistent = PERSISTENT.load(std::sync::atomic::Ordering::Relaxed);
    let properties = (persistent && version == ProtocolVersion::V5).then(|| {
        Box::new(iothub_protocol::ConnectProperties {
            session_expiry_interval: Some(3600),
            ..iothub_protocol::ConnectProperties::default()
        })
    });
    Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: !persistent,
        keep_alive,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties,
    }))
}

/// Whether every CONNECT of this run asks for a persistent session (`--persistent`): 3.1.1
/// clean session 0, 5.0 Clean Start 0 with a Session Expiry Interval of an hour. Set once by
/// `main` before any client connects.
static PERSISTENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every later CONNECT ask for a persistent session.
pub fn set_persistent(persistent: bool) {
    PERSISTENT.store(persistent, std::sync::atomic::Ordering::Relaxed);
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

/// Appends one of the two-byte acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP) to `buf`. At 5.0
/// a successful acknowledgement without properties has the same two-byte form as in 3.1.1.
pub fn put_ack(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    kind: Ack,
    packet_id: PacketId,
) -> Result<(), BenchError> {
    let response = PublishResponse::new(packet_id);
    let packet = match kind {
        Ack::PubAck => Packet::PubAck(response),
        Ack::PubRec => Packet::PubRec(response),
        Ack::PubRel => Packet::PubRel(response),
        Ack::PubComp => Packet::PubComp(response),
    };
    put(&packet, version, buf)
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
    /// Wire format: 3.1.1, or 5.0 with an empty property block.
    version: ProtocolVersion,
    /// Payload scratch space; the first 16 bytes are rewritten per message.
    payload: Vec<u8>,
    /// Size of one encoded PUBLISH, the same for every message.
    size: usize,
}

impl PublishEncoder {
    /// An encoder for `payload_len`-byte messages (at least `MIN_PAYLOAD`) to `topic`, in
    /// `version`.
    pub fn new(topic: &str, qos: QoS, payload_len: usize, version: ProtocolVersion) -> PublishEncoder {
        let mut encoder = PublishEncoder {
            topic: topic.to_owned(),
            qos,
            version,
            payload: vec![0; payload_len.max(MIN_PAYLOAD)],
            size: 0,
        };
        let packet_id = (qos != QoS::AtMostOnce).then_some(PacketId::MIN);
        encoder.size = encoder.outgoing(packet_id).size(version);
        encoder
    }

    /// Size of one encoded PUBLISH.
    pub fn packet_size(&self) -> usize {
        self.size
    }

    /// The PUBLISH with the current payload: no properties, no Message Expiry Interval, no Topic
    /// Alias, no Subscription Identifier (the last three are 5.0 only and never written in 3.1.1).
    fn outgoing(&self, packet_id: Option<PacketId>) -> OutgoingPublish<'_> {
        OutgoingPublish {
            header: PublishHeader { dup: false, qos: self.qos, retain: false, packet_id },
            topic: &self.topic,
            payload: &self.payload,
            properties: None,
            message_expiry_interval: None,
            topic_alias: None,
            subscription_identifiers: &[],
        }
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
        self.outgoing(packet_id)
            .encode(self.version, buf)
            .map_err(|e| BenchError::Config(format!("cannot encode PUBLISH to {}: {e}", self.topic)))
    }
}

/// Whether a 5.0 PUBACK or PUBREC reason code means the broker took the message over. Every code
/// below 0x80 does: 0x00 Success and 0x10 No matching subscribers (accepted, and delivered to
/// nobody because nobody subscribes). In 3.1.1 the decoder always reports Success.
pub fn accepted(reason_code: ReasonCode) -> bool {
    reason_code.is_success()
}

#[cfg(test)]
mod tests {
    use iothub_protocol::{decode, encode_publish};

    use super::*;

    /// The 3.1.1 wire format, which every test below the 5.0 ones checks.
    const VERSION: ProtocolVersion = DEFAULT_VERSION;
    const V5: ProtocolVersion = ProtocolVersion::V5;

    fn round_trip_in(packet: &Packet, version: ProtocolVersion) -> Packet {
        let mut buf = BytesMut::new();
        put(packet, version, &mut buf).unwrap();
        let decoded = decode(&mut buf, version, MAX_PACKET).unwrap().unwrap();
        assert!(buf.is_empty());
        decoded
    }

    fn round_trip(packet: &Packet) -> Packet {
        round_trip_in(packet, VERSION)
    }

    #[test]
    fn connect_is_byte_exact() {
        let mut buf = BytesMut::new();
        put(&connect("b", 60, VERSION), VERSION, &mut buf).unwrap();
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
            put_ack(&mut buf, VERSION, kind, id).unwrap();
        }
        assert_eq!(&buf[..], &[0x40, 2, 1, 2, 0x50, 2, 1, 2, 0x62, 2, 1, 2, 0x70, 2, 1, 2]);
        let mut disconnect_bytes = BytesMut::new();
        put(&disconnect(), VERSION, &mut disconnect_bytes).unwrap();
        assert_eq!(&disconnect_bytes[..], &[0xE0, 0]);
    }

    #[test]
    fn publish_carries_timestamp_and_sequence() {
        let mut encoder = PublishEncoder::new("t/1", QoS::AtLeastOnce, 64, VERSION);
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

    /// The 3.1.1 PUBLISH is exactly what `encode_publish` writes, as before 5.0 was added.
    #[test]
    fn publish_in_3_1_1_is_the_plain_encoding() {
        for (qos, id) in [(QoS::AtMostOnce, None), (QoS::AtLeastOnce, NonZeroU16::new(300))] {
            let mut encoder = PublishEncoder::new("a/b", qos, 20, VERSION);
            let mut ours = BytesMut::new();
            encoder.put(&mut ours, id, 7, 8).unwrap();
            let mut payload = vec![0u8; 20];
            payload[7] = 7;
            payload[15] = 8;
            let header = PublishHeader { dup: false, qos, retain: false, packet_id: id };
            let mut plain = BytesMut::new();
            encode_publish(&mut plain, &header, "a/b", &payload).unwrap();
            assert_eq!(ours, plain);
            assert_eq!(encoder.packet_size(), iothub_protocol::publish_size("a/b", qos, 20));
        }
    }

    #[test]
    fn short_payloads_are_padded_and_foreign_ones_rejected() {
        assert_eq!(PublishEncoder::new("t", QoS::AtMostOnce, 3, VERSION).payload.len(), MIN_PAYLOAD);
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

    #[test]
    fn connect_in_5_0_has_level_5_and_an_empty_property_block() {
        let mut buf = BytesMut::new();
        put(&connect("b", 60, V5), V5, &mut buf).unwrap();
        let expected = [0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'b'];
        assert_eq!(&buf[..], &expected);
        let Packet::Connect(decoded) = round_trip_in(&connect("b", 60, V5), V5) else { panic!("CONNECT") };
        assert_eq!(decoded.protocol, V5);
        assert!(decoded.properties.as_deref().is_none_or(iothub_protocol::ConnectProperties::is_empty));
    }

    #[test]
    fn subscribe_in_5_0_is_byte_exact_and_round_trips() {
        let id = NonZeroU16::new(7).unwrap();
        let mut buf = BytesMut::new();
        put(&subscribe(id, "bench/+", QoS::AtLeastOnce), V5, &mut buf).unwrap();
        let mut expected = vec![0x82, 13, 0, 7, 0, 0, 7];
        expected.extend_from_slice(b"bench/+");
        expected.push(0x01);
        assert_eq!(&buf[..], &expected[..]);
        let Packet::Subscribe(decoded) = round_trip_in(&subscribe(id, "bench/+", QoS::ExactlyOnce), V5)
        else {
            panic!("SUBSCRIBE")
        };
        assert_eq!(decoded.packet_id, id);
        assert_eq!(&decoded.filters[0].0[..], "bench/+");
        assert_eq!(decoded.filters[0].1, SubscriptionOptions { qos: QoS::ExactlyOnce, ..Default::default() });
    }

    #[test]
    fn acks_and_disconnect_in_5_0_take_the_short_forms() {
        let id = NonZeroU16::new(0x0102).unwrap();
        let mut buf = BytesMut::new();
        for kind in [Ack::PubAck, Ack::PubRec, Ack::PubRel, Ack::PubComp] {
            put_ack(&mut buf, V5, kind, id).unwrap();
        }
        assert_eq!(&buf[..], &[0x40, 2, 1, 2, 0x50, 2, 1, 2, 0x62, 2, 1, 2, 0x70, 2, 1, 2]);
        let mut disconnect_bytes = BytesMut::new();
        put(&disconnect(), V5, &mut disconnect_bytes).unwrap();
        assert_eq!(&disconnect_bytes[..], &[0xE0, 0]);
        assert_eq!(round_trip_in(&Packet::PingReq, V5), Packet::PingReq);
    }

    #[test]
    fn publish_in_5_0_adds_one_property_length_byte() {
        let id = NonZeroU16::new(9).unwrap();
        let mut encoder = PublishEncoder::new("t/1", QoS::AtLeastOnce, 16, V5);
        let mut buf = BytesMut::new();
        encoder.put(&mut buf, Some(id), 0x0102, 3).unwrap();
        let mut expected = vec![0x32, 24, 0, 3, b't', b'/', b'1', 0, 9, 0];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(&buf[..], &expected[..]);
        assert_eq!(encoder.packet_size(), buf.len());
        for (qos, packet_id) in
            [(QoS::AtMostOnce, None), (QoS::AtLeastOnce, Some(id)), (QoS::ExactlyOnce, Some(id))]
        {
            let v3 = PublishEncoder::new("x/y/z", qos, 64, VERSION);
            let mut v5 = PublishEncoder::new("x/y/z", qos, 64, V5);
            assert_eq!(v5.packet_size(), v3.packet_size() + 1);
            let mut buf = BytesMut::new();
            v5.put(&mut buf, packet_id, 11, 12).unwrap();
            v5.put(&mut buf, packet_id, 13, 14).unwrap();
            assert_eq!(buf.len(), 2 * v5.packet_size());
            for (timestamp, sequence) in [(11, 12), (13, 14)] {
                let Packet::Publish(publish) = decode(&mut buf, V5, MAX_PACKET).unwrap().unwrap() else {
                    panic!("expected a PUBLISH");
                };
                assert_eq!((&publish.topic[..], publish.qos, publish.packet_id), ("x/y/z", qos, packet_id));
                assert_eq!(read_payload(&publish.payload), Some((timestamp, sequence)));
            }
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn no_matching_subscribers_counts_as_accepted() {
        let mut buf = BytesMut::from(&[0x40, 3, 0, 9, 0x10, 0x40, 2, 0, 10, 0x40, 3, 0, 11, 0x97][..]);
        let mut codes = Vec::new();
        while let Some(packet) = decode(&mut buf, V5, MAX_PACKET).unwrap() {
            let Packet::PubAck(ack) = packet else { panic!("expected PUBACK") };
            codes.push((ack.packet_id.get(), ack.reason_code, accepted(ack.reason_code)));
        }
        assert_eq!(
            codes,
            [
                (9, ReasonCode::NoMatchingSubscribers, true),
                (10, ReasonCode::Success, true),
                (11, ReasonCode::QuotaExceeded, false),
            ]
        );
    }
}
