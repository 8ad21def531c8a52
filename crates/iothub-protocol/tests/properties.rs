//! Property tests for the MQTT 3.1 and 3.1.1 codec, through the crate's public API.
//!
//! They check that decoding inverts encoding for arbitrary valid packets of every type, that
//! `encoded_size` predicts exactly what `encode` writes, and that arbitrary or corrupted input,
//! delivered whole or in chunks, never panics the decoder, which always either consumes a packet,
//! waits for more bytes, or fails.

#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{
    check, decode, encode_publish, publish_size, ConnAck, Connect, DecodeError, Disconnect, Packet, PacketId,
    ProtocolVersion, Publish, PublishResponse, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe, Will,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;

/// The maximum packet size for round trips: larger than any generated packet.
const MAX_PACKET_SIZE: usize = 1 << 20;

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

/// A packet identifier, never 0 [MQTT-2.3.1-1].
fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|value| PacketId::new(value).unwrap())
}

/// A UTF-8 string without U+0000 [MQTT-1.5.3-2]. A Rust string never holds a surrogate, so
/// [MQTT-1.5.3-1] holds by construction.
fn utf8() -> impl Strategy<Value = ByteString> {
    prop_oneof!["[a-zA-Z0-9 _-]{0,16}", "[^\\x00]{0,16}"].prop_map(ByteString::from)
}

/// One topic level: no separator, no wildcard and no U+0000.
fn level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9$]{0,8}", "[^\\x00/+#]{0,8}"]
}

/// A topic name: at least one character [MQTT-4.7.3-1] and no wildcards [MQTT-3.3.2-2].
fn topic_name() -> impl Strategy<Value = ByteString> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is never empty", |topic| !topic.is_empty())
        .prop_map(ByteString::from)
}

/// A topic filter: `+` only as a whole level [MQTT-4.7.1-3] and `#` only as the whole last level
/// [MQTT-4.7.1-2], at least one character long [MQTT-4.7.3-1].
fn topic_filter() -> impl Strategy<Value = ByteString> {
    (vec(prop_oneof![3 => level(), 1 => Just("+".to_owned())], 0..5), any::<bool>())
        .prop_map(|(mut levels, multi_level)| {
            if multi_level {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
        .prop_filter("a topic filter is never empty", |filter| !filter.is_empty())
        .prop_map(ByteString::from)
}

/// Payloads of up to 64 arbitrary bytes.
fn small_payload() -> BoxedStrategy<Bytes> {
    vec(any::<u8>(), 0..64).prop_map(Bytes::from).boxed()
}

/// Payloads that also reach past the one- and two-byte remaining length boundaries.
fn sized_payload() -> BoxedStrategy<Bytes> {
    let len = prop_oneof![100usize..200, 16_300usize..16_400, 200usize..20_000];
    prop_oneof![small_payload(), len.prop_map(|len| Bytes::from(vec![0x5A; len]))].boxed()
}

/// A PUBLISH whose remaining length lies within a few bytes of a boundary of table 2.4, where
/// the fixed header grows by a byte.
fn publish_near_length_boundary() -> impl Strategy<Value = Packet> {
    let boundary = prop_oneof![Just(127usize), Just(16_383), Just(2_097_151)];
    (boundary, -4isize..=4, qos(), topic_name(), packet_id()).prop_map(
        |(boundary, offset, qos, topic, packet_id)| {
            let has_id = qos != QoS::AtMostOnce;
            let header = 2 + topic.len() + if has_id { 2 } else { 0 };
            let payload_len = boundary.saturating_add_signed(offset).saturating_sub(header);
            Packet::Publish(Publish {
                dup: false,
                qos,
                retain: false,
                topic,
                packet_id: has_id.then_some(packet_id),
                payload: Bytes::from(vec![0xC3; payload_len]),
                properties: None,
            })
        },
    )
}

fn connect(payload: BoxedStrategy<Bytes>) -> impl Strategy<Value = Packet> {
    let will = (topic_name(), payload.clone(), qos(), any::<bool>())
        .prop_map(|(topic, payload, qos, retain)| Will { topic, payload, qos, retain, properties: None });
    (
        prop_oneof![Just(ProtocolVersion::V31), Just(ProtocolVersion::V311)],
        any::<bool>(),
        any::<u16>(),
        utf8(),
        option::of(will),
        option::of(utf8()),
        option::of(payload),
    )
        .prop_map(|(protocol, clean_start, keep_alive, client_id, will, username, password)| {
            // A password comes only with a user name [MQTT-3.1.2-22].
            let password = if username.is_some() { password } else { None };
            let connect = Connect {
                protocol,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties: None,
            };
            Packet::Connect(Box::new(connect))
        })
}

fn connack() -> impl Strategy<Value = Packet> {
    let reason_code = prop_oneof![
        Just(ReasonCode::Success),
        Just(ReasonCode::UnsupportedProtocolVersion),
        Just(ReasonCode::ClientIdentifierNotValid),
        Just(ReasonCode::ServerUnavailable),
        Just(ReasonCode::BadUserNameOrPassword),
        Just(ReasonCode::NotAuthorized),
    ];
    (any::<bool>(), reason_code).prop_map(|(session_present, reason_code)| {
        // A refused connection never has a session present [MQTT-3.2.2-4].
        let session_present = session_present && reason_code == ReasonCode::Success;
        Packet::ConnAck(ConnAck { session_present, reason_code, properties: None })
    })
}

fn publish(payload: BoxedStrategy<Bytes>) -> impl Strategy<Value = Packet> {
    (qos(), any::<bool>(), any::<bool>(), topic_name(), packet_id(), payload).prop_map(
        |(qos, dup, retain, topic, packet_id, payload)| {
            let has_id = qos != QoS::AtMostOnce;
            Packet::Publish(Publish {
                // The DUP flag is 0 on every QoS 0 message [MQTT-3.3.1-2].
                dup: dup && has_id,
                qos,
                retain,
                topic,
                packet_id: has_id.then_some(packet_id),
                payload,
                properties: None,
            })
        },
    )
}

fn publish_response() -> impl Strategy<Value = Packet> {
    (packet_id(), 0..4u8).prop_map(|(packet_id, kind)| {
        let response = PublishResponse::new(packet_id);
        match kind {
            0 => Packet::PubAck(response),
            1 => Packet::PubRec(response),
            2 => Packet::PubRel(response),
            _ => Packet::PubComp(response),
        }
    })
}

fn subscribe() -> impl Strategy<Value = Packet> {
    (packet_id(), vec((topic_filter(), qos()), 1..5)).prop_map(|(packet_id, filters)| {
        let filters = filters
            .into_iter()
            .map(|(filter, qos)| (filter, SubscriptionOptions { qos, ..SubscriptionOptions::default() }))
            .collect();
        Packet::Subscribe(Subscribe { packet_id, filters, properties: None })
    })
}

fn suback() -> impl Strategy<Value = Packet> {
    let code = prop_oneof![
        Just(ReasonCode::Success),
        Just(ReasonCode::GrantedQoS1),
        Just(ReasonCode::GrantedQoS2),
        Just(ReasonCode::UnspecifiedError),
    ];
    (packet_id(), vec(code, 1..8)).prop_map(|(packet_id, reason_codes)| {
        Packet::SubAck(SubAck { packet_id, reason_codes, properties: None })
    })
}

fn unsubscribe() -> impl Strategy<Value = Packet> {
    (packet_id(), vec(topic_filter(), 1..5)).prop_map(|(packet_id, filters)| {
        Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties: None })
    })
}

fn unsuback() -> impl Strategy<Value = Packet> {
    packet_id().prop_map(|packet_id| {
        // 3.1.1 has no UNSUBACK payload, so its reason codes stay empty.
        Packet::UnsubAck(UnsubAck { packet_id, reason_codes: Vec::new(), properties: None })
    })
}

/// Any valid 3.1 or 3.1.1 packet, of all 14 types.
fn any_packet(payload: BoxedStrategy<Bytes>) -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect(payload.clone()),
        connack(),
        publish(payload),
        publish_response(),
        subscribe(),
        suback(),
        unsubscribe(),
        unsuback(),
        prop_oneof![
            Just(Packet::PingReq),
            Just(Packet::PingResp),
            Just(Packet::Disconnect(Disconnect::default()))
        ],
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V31), Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

fn max_packet_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(2usize), Just(16), Just(128), Just(4096), Just(MAX_PACKET_SIZE)]
}

/// Valid packets encoded back to back, then corrupted: a few bytes overwritten and perhaps the
/// end cut off. Unlike uniformly random bytes, these reach deep into the packet parsers.
fn corrupted_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(any_packet(small_payload()), 1..6),
        vec((any::<Index>(), any::<u8>()), 0..4),
        option::of(any::<Index>()),
    )
        .prop_map(|(packets, edits, cut)| {
            let mut buf = BytesMut::new();
            for packet in &packets {
                packet.encode(ProtocolVersion::V311, &mut buf).unwrap();
            }
            let mut bytes = buf.to_vec();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            bytes
        })
}

/// Feeds `data` to the decoder in chunks of the given sizes, taken in turn, and decodes after
/// each chunk until the decoder waits for more bytes. Returns the decoded packets in order,
/// followed by the error that stopped decoding, if any.
fn decode_stream(
    data: &[u8],
    chunk_sizes: &[usize],
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Vec<Result<Packet, DecodeError>> {
    let mut buf = BytesMut::new();
    let mut outcomes = Vec::new();
    let mut sizes = chunk_sizes.iter().cycle();
    let mut offset = 0;
    while offset < data.len() {
        let len = (*sizes.next().unwrap()).clamp(1, data.len() - offset);
        buf.extend_from_slice(&data[offset..offset + len]);
        offset += len;
        loop {
            let before = buf.len();
            match decode(&mut buf, version, max_packet_size) {
                Ok(Some(packet)) => {
                    assert!(buf.len() < before, "decoded {packet:?} without consuming a byte");
                    assert_reencodes(&packet, version);
                    outcomes.push(Ok(packet));
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "the decoder consumed part of an incomplete packet");
                    break;
                }
                Err(err) => {
                    outcomes.push(Err(err));
                    return outcomes;
                }
            }
        }
    }
    outcomes
}

/// Whatever the decoder accepts, the encoder writes back as a packet that decodes the same: in
/// 3.1.1 for what a 3.x connection decoded, in 5.0 for what a 5.0 one did.
fn assert_reencodes(packet: &Packet, decoded_in: ProtocolVersion) {
    let version = if decoded_in == ProtocolVersion::V5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
    let mut buf = BytesMut::new();
    packet.encode(version, &mut buf).unwrap();
    assert_eq!(buf.len(), packet.size(version));
    if version == ProtocolVersion::V311 {
        assert_eq!(buf.len(), packet.encoded_size());
    }
    assert_eq!(decode(&mut buf, version, usize::MAX), Ok(Some(packet.clone())));
}

proptest! {
    /// Property (a): decoding inverts encoding for every valid 3.1.1 packet.
    #[test]
    fn decode_inverts_encode(packet in any_packet(small_payload())) {
        let mut buf = BytesMut::new();
        packet.encode(ProtocolVersion::V311, &mut buf).unwrap();
        let decoded = decode(&mut buf, ProtocolVersion::V311, MAX_PACKET_SIZE).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    /// Property (a) for a stream: packets encoded into one buffer decode in order, whatever the
    /// chunks they arrive in.
    #[test]
    fn packets_encoded_back_to_back_decode_in_order(
        packets in vec(any_packet(small_payload()), 1..8),
        chunk_sizes in vec(1usize..48, 1..8),
    ) {
        let mut buf = BytesMut::new();
        for packet in &packets {
            packet.encode(ProtocolVersion::V311, &mut buf).unwrap();
        }
        let expected: Vec<_> = packets.into_iter().map(Ok).collect();
        prop_assert_eq!(decode_stream(&buf, &chunk_sizes, ProtocolVersion::V311, MAX_PACKET_SIZE), expected);
    }

    /// Property (b): arbitrary bytes never panic the decoder, and chunking never changes what it
    /// decodes. `decode_stream` also checks that every step consumes a packet, waits without
    /// consuming, or fails.
    #[test]
    fn arbitrary_bytes_never_panic_whole_or_chunked(
        data in vec(any::<u8>(), 0..2048),
        chunk_sizes in vec(1usize..64, 1..16),
        version in version(),
        max_packet_size in max_packet_size(),
    ) {
        let whole = decode_stream(&data, &[data.len()], version, max_packet_size);
        let chunked = decode_stream(&data, &chunk_sizes, version, max_packet_size);
        prop_assert_eq!(whole, chunked);
    }

    /// Property (b) for input that starts out valid, so that the corruption reaches the body
    /// parsers rather than the fixed header.
    #[test]
    fn corrupted_packets_never_panic_whole_or_chunked(
        data in corrupted_stream(),
        chunk_sizes in vec(1usize..16, 1..16),
        version in version(),
        max_packet_size in max_packet_size(),
    ) {
        let whole = decode_stream(&data, &[data.len()], version, max_packet_size);
        let chunked = decode_stream(&data, &chunk_sizes, version, max_packet_size);
        prop_assert_eq!(whole, chunked);
    }

    /// Property (b) for the fixed header alone: `check` never panics and agrees with the bytes.
    #[test]
    fn check_never_panics(data in vec(any::<u8>(), 0..8), max_packet_size in max_packet_size()) {
        if let Ok(Some(header)) = check(&data, max_packet_size) {
            prop_assert_eq!(header.first_byte, data[0]);
            prop_assert!((2..=5).contains(&header.header_len));
            prop_assert!(header.header_len <= data.len());
            prop_assert!(header.packet_len() <= max_packet_size);
        }
    }

    /// Property (c): `encoded_size` is exactly the number of bytes `encode` appends, and the
    /// fixed header the encoder writes announces that size.
    #[test]
    fn encoded_size_is_what_encode_writes(
        packet in any_packet(sized_payload()),
        prefix in vec(any::<u8>(), 0..8),
    ) {
        for version in [ProtocolVersion::V31, ProtocolVersion::V311] {
            let mut buf = BytesMut::from(&prefix[..]);
            packet.encode(version, &mut buf).unwrap();
            prop_assert_eq!(buf.len() - prefix.len(), packet.encoded_size());
            prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
            let header = check(&buf[prefix.len()..], usize::MAX).unwrap().unwrap();
            prop_assert_eq!(header.packet_len(), packet.encoded_size());
        }
    }

    /// Property (c) where it is easiest to get wrong: around the remaining length boundaries.
    #[test]
    fn encoded_size_is_exact_around_remaining_length_boundaries(packet in publish_near_length_boundary()) {
        let mut buf = BytesMut::new();
        packet.encode(ProtocolVersion::V311, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), packet.encoded_size());
        let Packet::Publish(p) = &packet else { unreachable!("the strategy yields PUBLISH packets") };
        prop_assert_eq!(publish_size(&p.topic, p.qos, p.payload.len()), buf.len());
        let header = check(&buf, usize::MAX).unwrap().unwrap();
        prop_assert_eq!(header.packet_len(), buf.len());
        prop_assert_eq!(decode(&mut buf, ProtocolVersion::V311, usize::MAX), Ok(Some(packet)));
    }

    /// Property (c) for the PUBLISH fast path: `publish_size` and `encode_publish` agree with
    /// `encoded_size` and `encode`.
    #[test]
    fn publish_fast_path_matches_packet_encode(packet in publish(sized_payload())) {
        let Packet::Publish(p) = &packet else { unreachable!("the strategy yields PUBLISH packets") };
        let mut expected = BytesMut::new();
        packet.encode(ProtocolVersion::V311, &mut expected).unwrap();
        let mut buf = BytesMut::new();
        encode_publish(&mut buf, &p.header(), &p.topic, &p.payload).unwrap();
        prop_assert_eq!(&buf[..], &expected[..]);
        prop_assert_eq!(publish_size(&p.topic, p.qos, p.payload.len()), packet.encoded_size());
    }
}
