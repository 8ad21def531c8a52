//! Property tests for the MQTT 5.0 codec, through the crate's public API.
//!
//! They check, for arbitrary valid packets of all 15 types with arbitrary properties, that
//! decoding inverts encoding, that `size(V5)` and `OutgoingPublish::size` are exactly what is
//! written, that `encode_within` never writes more than it is allowed, and that arbitrary or
//! corrupted input, whole or in chunks, never panics the 5.0 decoder. The decoder reads a packet
//! without properties as `properties: None`, so the strategies make either `None` or a
//! non-empty struct.

#![allow(clippy::unwrap_used)]

use core::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use iothub_protocol::{
    check, decode, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties, DecodeError,
    Disconnect, DisconnectProperties, OutgoingPublish, Packet, PacketId, PayloadFormat, ProtocolVersion,
    Publish, PublishProperties, PublishResponse, PublishResponseProperties, QoS, ReasonCode, RetainHandling,
    SubAck, SubAckProperties, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    UnsubAckProperties, Unsubscribe, UnsubscribeProperties, Will, WillProperties,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};

const V5: ProtocolVersion = ProtocolVersion::V5;

/// Larger than any generated packet.
const MAX_PACKET_SIZE: usize = 1 << 20;

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|value| PacketId::new(value).unwrap())
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|value| NonZeroU16::new(value).unwrap())
}

fn nz32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|value| NonZeroU32::new(value).unwrap())
}

/// A Subscription Identifier: 1 to 268,435,455, across the one- to four-byte encodings.
fn subscription_id() -> impl Strategy<Value = NonZeroU32> {
    prop_oneof![1u32..128, 128u32..16_384, 16_384u32..2_097_152, 2_097_152u32..=268_435_455]
        .prop_map(|value| NonZeroU32::new(value).unwrap())
}

/// A UTF-8 string without U+0000 [MQTT-1.5.4-2].
fn utf8() -> impl Strategy<Value = ByteString> {
    prop_oneof!["[a-zA-Z0-9 _-]{0,12}", "[^\\x00]{0,12}"].prop_map(ByteString::from)
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9$]{0,8}", "[^\\x00/+#]{0,8}"]
}

fn topic_name() -> impl Strategy<Value = ByteString> {
    vec(level(), 1..4)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is never empty", |topic| !topic.is_empty())
        .prop_map(ByteString::from)
}

fn topic_filter() -> impl Strategy<Value = ByteString> {
    (vec(prop_oneof![3 => level(), 1 => Just("+".to_owned())], 0..4), any::<bool>())
        .prop_map(|(mut levels, multi_level)| {
            if multi_level {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
        .prop_filter("a topic filter is never empty", |filter| !filter.is_empty())
        .prop_map(ByteString::from)
}

fn user_properties() -> impl Strategy<Value = Vec<(ByteString, ByteString)>> {
    vec((utf8(), utf8()), 0..3)
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
}

/// `None` for an empty struct, as the decoder returns it.
fn boxed<T: Default + PartialEq>(properties: T) -> Option<Box<T>> {
    (properties != T::default()).then(|| Box::new(properties))
}

fn code(codes: &[u8]) -> impl Strategy<Value = ReasonCode> {
    select(codes.to_vec()).prop_map(|code| ReasonCode::from_u8(code).unwrap())
}

const CONNACK_CODES: [u8; 22] = [
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99,
    0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_CODES: [u8; 9] = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_CODES: [u8; 2] = [0x00, 0x92];
const SUBACK_CODES: [u8; 12] = [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2];
const UNSUBACK_CODES: [u8; 7] = [0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_CODES: [u8; 29] = [
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96,
    0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_CODES: [u8; 3] = [0x00, 0x18, 0x19];

fn connect_properties() -> impl Strategy<Value = Option<Box<ConnectProperties>>> {
    (
        option::of(any::<u32>()),
        option::of(nz16()),
        option::of(nz32()),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        user_properties(),
        option::of((utf8(), option::of(binary()))),
    )
        .prop_map(|(session, receive, packet_size, alias, response, problem, users, auth)| {
            boxed(ConnectProperties {
                session_expiry_interval: session,
                receive_maximum: receive,
                maximum_packet_size: packet_size,
                topic_alias_maximum: alias,
                request_response_information: response,
                request_problem_information: problem,
                user_properties: users,
                // Authentication Data comes only with a method (section 3.1.2.11.10).
                authentication_method: auth.as_ref().map(|(method, _)| method.clone()),
                authentication_data: auth.and_then(|(_, data)| data),
            })
        })
}

fn will_properties() -> impl Strategy<Value = Option<Box<WillProperties>>> {
    (
        option::of(any::<u32>()),
        option::of(payload_format()),
        option::of(any::<u32>()),
        option::of(utf8()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
    )
        .prop_map(|(delay, format, expiry, content_type, response_topic, correlation, users)| {
            boxed(WillProperties {
                will_delay_interval: delay,
                payload_format_indicator: format,
                message_expiry_interval: expiry,
                content_type,
                response_topic,
                correlation_data: correlation,
                user_properties: users,
            })
        })
}

fn connect(payload: BoxedStrategy<Bytes>) -> impl Strategy<Value = Packet> {
    let will = (topic_name(), payload.clone(), qos(), any::<bool>(), will_properties()).prop_map(
        |(topic, payload, qos, retain, properties)| Will { topic, payload, qos, retain, properties },
    );
    (
        any::<bool>(),
        any::<u16>(),
        utf8(),
        option::of(will),
        option::of(utf8()),
        option::of(payload),
        connect_properties(),
    )
        .prop_map(|(clean_start, keep_alive, client_id, will, username, password, properties)| {
            // 5.0 allows a password without a user name.
            Packet::Connect(Box::new(Connect {
                protocol: V5,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            }))
        })
}

fn connack_properties() -> impl Strategy<Value = Option<Box<ConnAckProperties>>> {
    let limits = (
        option::of(any::<u32>()),
        option::of(nz16()),
        option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        option::of(any::<bool>()),
        option::of(nz32()),
        option::of(any::<u16>()),
        option::of(any::<u16>()),
    );
    let texts =
        (option::of(utf8()), option::of(utf8()), option::of(utf8()), option::of(utf8()), user_properties());
    let flags = (option::of(any::<bool>()), option::of(any::<bool>()), option::of(any::<bool>()));
    let auth = (option::of(utf8()), option::of(binary()));
    (limits, texts, flags, auth).prop_map(
        |(
            (session, receive, maximum_qos, retain, packet_size, alias, keep_alive),
            (assigned, reason, response, reference, users),
            (wildcard, identifiers, shared),
            (method, data),
        )| {
            boxed(ConnAckProperties {
                session_expiry_interval: session,
                receive_maximum: receive,
                maximum_qos,
                retain_available: retain,
                maximum_packet_size: packet_size,
                assigned_client_identifier: assigned,
                topic_alias_maximum: alias,
                reason_string: reason,
                user_properties: users,
                wildcard_subscription_available: wildcard,
                subscription_identifiers_available: identifiers,
                shared_subscription_available: shared,
                server_keep_alive: keep_alive,
                response_information: response,
                server_reference: reference,
                authentication_method: method,
                authentication_data: data,
            })
        },
    )
}

fn connack() -> impl Strategy<Value = Packet> {
    (any::<bool>(), code(&CONNACK_CODES), connack_properties()).prop_map(
        |(session_present, reason_code, properties)| {
            Packet::ConnAck(ConnAck { session_present, reason_code, properties })
        },
    )
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        option::of(payload_format()),
        option::of(any::<u32>()),
        option::of(nz16()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
        vec(subscription_id(), 0..3),
        option::of(utf8()),
    )
        .prop_map(
            |(format, expiry, alias, response_topic, correlation, users, identifiers, content_type)| {
                PublishProperties {
                    payload_format_indicator: format,
                    message_expiry_interval: expiry,
                    topic_alias: alias,
                    response_topic,
                    correlation_data: correlation,
                    user_properties: users,
                    subscription_identifiers: identifiers,
                    content_type,
                }
            },
        )
}

fn publish(payload: BoxedStrategy<Bytes>) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        payload,
        publish_properties(),
    )
        .prop_map(|(qos, dup, retain, topic, empty_topic, packet_id, payload, properties)| {
            let has_id = qos != QoS::AtMostOnce;
            // An empty topic only with a Topic Alias (section 3.3.2.3.4).
            let topic =
                if empty_topic && properties.topic_alias.is_some() { ByteString::new() } else { topic };
            Packet::Publish(Publish {
                dup: dup && has_id,
                qos,
                retain,
                topic,
                packet_id: has_id.then_some(packet_id),
                payload,
                properties: boxed(properties),
            })
        })
}

fn diagnostics() -> impl Strategy<Value = (Option<ByteString>, Vec<(ByteString, ByteString)>)> {
    (option::of(utf8()), user_properties())
}

fn publish_response() -> impl Strategy<Value = Packet> {
    (packet_id(), 0..4u8, code(&PUBACK_CODES), code(&PUBREL_CODES), diagnostics()).prop_map(
        |(packet_id, kind, ack_code, rel_code, (reason_string, user_properties))| {
            let properties = boxed(PublishResponseProperties { reason_string, user_properties });
            let response = |reason_code| PublishResponse { packet_id, reason_code, properties };
            match kind {
                0 => Packet::PubAck(response(ack_code)),
                1 => Packet::PubRec(response(ack_code)),
                2 => Packet::PubRel(response(rel_code)),
                _ => Packet::PubComp(response(rel_code)),
            }
        },
    )
}

fn subscription_options() -> impl Strategy<Value = SubscriptionOptions> {
    let handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendAtNewSubscribe),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), handling).prop_map(
        |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
            qos,
            no_local,
            retain_as_published,
            retain_handling,
        },
    )
}

fn subscribe() -> impl Strategy<Value = Packet> {
    let filter = prop_oneof![
        4 => topic_filter(),
        1 => (level(), topic_filter()).prop_map(|(group, filter)| {
            ByteString::from(format!("$share/{}/{filter}", group.replace('$', "s")))
        }),
    ];
    (
        packet_id(),
        vec((filter, subscription_options()), 1..4),
        option::of(subscription_id()),
        user_properties(),
    )
        .prop_map(|(packet_id, filters, subscription_identifier, user_properties)| {
            let filters = filters
                .into_iter()
                .map(|(filter, mut options)| {
                    // No Local is a Protocol Error on a shared subscription [MQTT-3.8.3-4].
                    options.no_local &= !filter.starts_with("$share/");
                    (filter, options)
                })
                .collect();
            let properties = boxed(SubscribeProperties { subscription_identifier, user_properties });
            Packet::Subscribe(Subscribe { packet_id, filters, properties })
        })
}

fn suback() -> impl Strategy<Value = Packet> {
    (packet_id(), vec(code(&SUBACK_CODES), 1..6), diagnostics()).prop_map(
        |(packet_id, reason_codes, (reason_string, user_properties))| {
            let properties = boxed(SubAckProperties { reason_string, user_properties });
            Packet::SubAck(SubAck { packet_id, reason_codes, properties })
        },
    )
}

fn unsubscribe() -> impl Strategy<Value = Packet> {
    (packet_id(), vec(topic_filter(), 1..4), user_properties()).prop_map(
        |(packet_id, filters, user_properties)| {
            let properties = boxed(UnsubscribeProperties { user_properties });
            Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties })
        },
    )
}

fn unsuback() -> impl Strategy<Value = Packet> {
    (packet_id(), vec(code(&UNSUBACK_CODES), 1..6), diagnostics()).prop_map(
        |(packet_id, reason_codes, (reason_string, user_properties))| {
            let properties = boxed(UnsubAckProperties { reason_string, user_properties });
            Packet::UnsubAck(UnsubAck { packet_id, reason_codes, properties })
        },
    )
}

fn disconnect() -> impl Strategy<Value = Packet> {
    (code(&DISCONNECT_CODES), option::of(any::<u32>()), diagnostics(), option::of(utf8())).prop_map(
        |(reason_code, session_expiry_interval, (reason_string, user_properties), server_reference)| {
            let properties = boxed(DisconnectProperties {
                session_expiry_interval,
                reason_string,
                user_properties,
                server_reference,
            });
            Packet::Disconnect(Disconnect { reason_code, properties })
        },
    )
}

fn auth() -> impl Strategy<Value = Packet> {
    (code(&AUTH_CODES), option::of(utf8()), option::of(binary()), diagnostics()).prop_map(
        |(reason_code, authentication_method, authentication_data, (reason_string, user_properties))| {
            let properties = boxed(AuthProperties {
                authentication_method,
                authentication_data,
                reason_string,
                user_properties,
            });
            Packet::Auth(Auth { reason_code, properties })
        },
    )
}

fn small_payload() -> BoxedStrategy<Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from).boxed()
}

fn sized_payload() -> BoxedStrategy<Bytes> {
    let len = prop_oneof![100usize..200, 16_300usize..16_400, 200usize..20_000];
    prop_oneof![small_payload(), len.prop_map(|len| Bytes::from(vec![0x5A; len]))].boxed()
}

/// Any valid 5.0 packet, of all 15 types.
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
        prop_oneof![Just(Packet::PingReq), Just(Packet::PingResp)],
        disconnect(),
        auth(),
    ]
}

fn encode(packet: &Packet) -> BytesMut {
    let mut buf = BytesMut::new();
    packet.encode(V5, &mut buf).unwrap();
    buf
}

/// Valid 5.0 packets back to back, then corrupted: bytes overwritten, perhaps the end cut off.
fn corrupted_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(any_packet(small_payload()), 1..5),
        vec((any::<Index>(), any::<u8>()), 0..4),
        option::of(any::<Index>()),
    )
        .prop_map(|(packets, edits, cut)| {
            let mut bytes = Vec::new();
            for packet in &packets {
                bytes.extend_from_slice(&encode(packet));
            }
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

/// Feeds `data` to the 5.0 decoder in chunks of the given sizes, decoding after each chunk until
/// it waits for more. Every decoded packet must re-encode to `size(V5)` bytes that decode the
/// same. Returns the packets in order, then the error that stopped decoding, if any.
fn decode_stream(
    data: &[u8],
    chunk_sizes: &[usize],
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
            match decode(&mut buf, V5, max_packet_size) {
                Ok(Some(packet)) => {
                    assert!(buf.len() < before);
                    // A CONNECT of another level re-encodes in its own form.
                    let mut again = encode(&packet);
                    assert_eq!(again.len(), packet.size(V5), "size of {packet:?}");
                    assert_eq!(decode(&mut again, V5, usize::MAX), Ok(Some(packet.clone())));
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

fn max_packet_size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(2usize), Just(16), Just(128), Just(4096), Just(MAX_PACKET_SIZE)]
}

proptest! {
    /// Decoding inverts encoding for every valid 5.0 packet.
    #[test]
    fn decode_inverts_encode(packet in any_packet(small_payload())) {
        let mut buf = encode(&packet);
        let decoded = decode(&mut buf, V5, MAX_PACKET_SIZE).unwrap();
        prop_assert_eq!(decoded, Some(packet));
        prop_assert!(buf.is_empty());
    }

    /// `size(V5)` is exactly what `encode` appends, and the fixed header announces it.
    #[test]
    fn size_is_what_encode_writes(packet in any_packet(sized_payload()), prefix in vec(any::<u8>(), 0..8)) {
        let mut buf = BytesMut::from(&prefix[..]);
        packet.encode(V5, &mut buf).unwrap();
        prop_assert_eq!(buf.len() - prefix.len(), packet.size(V5));
        prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
        let header = check(&buf[prefix.len()..], usize::MAX).unwrap().unwrap();
        prop_assert_eq!(header.packet_len(), packet.size(V5));
    }

    /// Packets encoded into one buffer decode in order, whatever the chunks they arrive in.
    #[test]
    fn packets_encoded_back_to_back_decode_in_order(
        packets in vec(any_packet(small_payload()), 1..6),
        chunk_sizes in vec(1usize..48, 1..8),
    ) {
        let mut buf = BytesMut::new();
        for packet in &packets {
            packet.encode(V5, &mut buf).unwrap();
        }
        let expected: Vec<_> = packets.into_iter().map(Ok).collect();
        prop_assert_eq!(decode_stream(&buf, &chunk_sizes, MAX_PACKET_SIZE), expected);
    }

    /// An `OutgoingPublish` writes exactly `size` bytes, the same bytes as the `Publish` that
    /// carries the per-delivery fields in its properties, in 5.0 and in 3.1.1.
    #[test]
    fn outgoing_publish_size_is_what_it_writes(
        packet in publish(sized_payload()),
        stored in publish_properties(),
        prefix in vec(any::<u8>(), 0..4),
    ) {
        let Packet::Publish(p) = &packet else { unreachable!("the strategy yields PUBLISH packets") };
        let delivery = p.properties.as_deref().cloned().unwrap_or_default();
        // The stored message's own expiry, alias and identifiers are ignored.
        let forwarded = PublishProperties {
            message_expiry_interval: stored.message_expiry_interval,
            topic_alias: stored.topic_alias,
            subscription_identifiers: stored.subscription_identifiers,
            ..delivery.clone()
        };
        let outgoing = OutgoingPublish {
            header: p.header(),
            topic: &p.topic,
            payload: &p.payload,
            properties: Some(&forwarded),
            message_expiry_interval: delivery.message_expiry_interval,
            topic_alias: delivery.topic_alias,
            subscription_identifiers: &delivery.subscription_identifiers,
        };
        for version in [V5, ProtocolVersion::V311] {
            let mut buf = BytesMut::from(&prefix[..]);
            outgoing.encode(version, &mut buf).unwrap();
            prop_assert_eq!(buf.len() - prefix.len(), outgoing.size(version));
            let mut expected = BytesMut::new();
            packet.encode(version, &mut expected).unwrap();
            prop_assert_eq!(&buf[prefix.len()..], &expected[..]);
        }
    }

    /// `encode_within` writes at most `max_size` bytes, or nothing and the error, and what it
    /// writes decodes.
    #[test]
    fn encode_within_respects_the_limit(packet in any_packet(small_payload()), max in 0usize..256) {
        let mut buf = BytesMut::new();
        match packet.encode_within(V5, max, &mut buf) {
            Ok(()) => {
                prop_assert!(buf.len() <= max);
                prop_assert!(decode(&mut buf, V5, usize::MAX).unwrap().is_some());
                prop_assert!(buf.is_empty());
            }
            Err(err) => {
                prop_assert!(buf.is_empty());
                let is_exceeds = matches!(err, iothub_protocol::EncodeError::ExceedsMaximumPacketSize { size, .. } if size > max);
                prop_assert!(is_exceeds);
            }
        }
        if packet.size(V5) <= max {
            let mut whole = BytesMut::new();
            packet.encode_within(V5, max, &mut whole).unwrap();
            prop_assert_eq!(whole, encode(&packet));
        }
    }

    /// Arbitrary bytes never panic the 5.0 decoder, and chunking never changes what it decodes.
    #[test]
    fn arbitrary_bytes_never_panic_whole_or_chunked(
        data in vec(any::<u8>(), 0..2048),
        chunk_sizes in vec(1usize..64, 1..16),
        max_packet_size in max_packet_size(),
    ) {
        let whole = decode_stream(&data, &[data.len()], max_packet_size);
        let chunked = decode_stream(&data, &chunk_sizes, max_packet_size);
        prop_assert_eq!(whole, chunked);
    }

    /// The same for input that starts out as valid 5.0 packets, so that the corruption reaches
    /// the property readers.
    #[test]
    fn corrupted_packets_never_panic_whole_or_chunked(
        data in corrupted_stream(),
        chunk_sizes in vec(1usize..16, 1..16),
        max_packet_size in max_packet_size(),
    ) {
        let whole = decode_stream(&data, &[data.len()], max_packet_size);
        let chunked = decode_stream(&data, &chunk_sizes, max_packet_size);
        prop_assert_eq!(whole, chunked);
    }
}
