//! The client's side of the script: 5.0 packets built from a few bytes, handled as the
//! connection task does, and the session's actions, each checked against the model and taken.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use iothub::internals::{Action, Exit};
use iothub_protocol::{
    Auth, AuthProperties, DecodeError, Disconnect, DisconnectProperties, EncodeError, Packet, PayloadFormat,
    ProtocolVersion, Publish, PublishProperties, PublishResponse, PublishResponseProperties, QoS, ReasonCode,
    RetainHandling, Subscribe, SubscribeProperties, SubscriptionOptions, Unsubscribe,
};

use super::model::{Ending, Expected};
use super::{decode_all, filter, id, qos, through_the_wire, topic, without_diagnostics, Harness, Script};

/// Subscription Identifiers of built SUBSCRIBEs and of deliveries: each end of each length of
/// the variable byte integer.
pub(crate) const SUBSCRIPTION_IDS: [u32; 8] = [1, 2, 127, 128, 16_383, 16_384, 2_097_152, 268_435_455];

/// Reason codes a client may put in PUBACK and PUBREC (3.4.2.1, 3.5.2.1), then in PUBREL and
/// PUBCOMP (3.6.2.1, 3.7.2.1), and one allowed in none of them.
const ACK_REASONS: [ReasonCode; 12] = [
    ReasonCode::Success,
    ReasonCode::NoMatchingSubscribers,
    ReasonCode::UnspecifiedError,
    ReasonCode::ImplementationSpecificError,
    ReasonCode::NotAuthorized,
    ReasonCode::TopicNameInvalid,
    ReasonCode::PacketIdentifierInUse,
    ReasonCode::QuotaExceeded,
    ReasonCode::PayloadFormatInvalid,
    ReasonCode::Success,
    ReasonCode::PacketIdentifierNotFound,
    ReasonCode::ProtocolError,
];

/// Reason codes of DISCONNECT from a client.
const DISCONNECT_REASONS: [ReasonCode; 4] = [
    ReasonCode::Success,
    ReasonCode::DisconnectWithWill,
    ReasonCode::UnspecifiedError,
    ReasonCode::MessageRateTooHigh,
];

/// Session Expiry Intervals of a DISCONNECT; `None` for the property left out.
const DISCONNECT_EXPIRY: [Option<u32>; 4] = [None, Some(0), Some(10), Some(u32::MAX)];

/// Payloads of built PUBLISHes: UTF-8, not UTF-8 (a lone continuation byte, an overlong `/`, a
/// surrogate), empty, and long.
fn payload(kind: u8, n: u8) -> Bytes {
    match kind & 7 {
        0 => Bytes::from(format!("hello {n}")),
        1 => Bytes::from_static(b"\x80abc"),
        2 => Bytes::from_static(b"\xc0\xaf"),
        3 => Bytes::from_static(b"\xed\xa0\x80"),
        4 => Bytes::new(),
        5 => Bytes::from("é".repeat(150)),
        6 => Bytes::from(vec![b'x'; 2000]),
        _ => Bytes::copy_from_slice(&[n, 0xff]),
    }
}

impl Harness {
    /// A PUBLISH built from three bytes.
    ///
    /// - `flags`: QoS (bits 0-1, any value mod 3), RETAIN (2), DUP (3), topic (4-7);
    /// - `props`: Topic Alias (bits 0-2: none, 1 to 3, the server's maximum, one above it,
    ///   65,535), Payload Format Indicator (3-4: none, unspecified, UTF-8), payload (5-7);
    /// - `extra`: packet identifier 1 to 8 (bits 0-2), Message Expiry Interval (3-4), User
    ///   Properties, Content Type, Response Topic and Correlation Data (5), a Subscription
    ///   Identifier (6), which a client may not send, and a Topic Alias with the empty topic
    ///   instead of the topic (7).
    pub(crate) fn publish(&mut self, script: &mut Script) {
        let (flags, props, extra) = (script.arg(), script.arg(), script.arg());
        let qos = qos(flags);
        let max = self.link.server_alias_max;
        let topic_alias = match props & 7 {
            0 => None,
            n @ 1..=3 => NonZeroU16::new(u16::from(n)),
            4 => NonZeroU16::new(max),
            5 => NonZeroU16::new(max.saturating_add(1)),
            6 => NonZeroU16::new(u16::MAX),
            _ => NonZeroU16::new(1),
        };
        let alias_only = extra & 0x80 != 0 && topic_alias.is_some();
        let topic = if alias_only { String::new() } else { topic(flags >> 4, u32::from(extra)) };
        let rich = extra & 0x20 != 0;
        let properties = PublishProperties {
            payload_format_indicator: match (props >> 3) & 3 {
                1 => Some(PayloadFormat::Unspecified),
                2 | 3 => Some(PayloadFormat::Utf8),
                _ => None,
            },
            message_expiry_interval: [None, Some(0), Some(5), Some(u32::MAX)][usize::from((extra >> 3) & 3)],
            topic_alias,
            response_topic: rich.then(|| "reply/to".into()),
            correlation_data: rich.then(|| Bytes::from_static(b"\x00\x01corr")),
            user_properties: if rich {
                vec![("k".into(), "v".into()), ("k".into(), "v2".into())]
            } else {
                Vec::new()
            },
            subscription_identifiers: if extra & 0x40 != 0 { vec![NonZeroU32::MIN] } else { Vec::new() },
            content_type: rich.then(|| "text/plain".into()),
        };
        let publish = Publish {
            dup: flags & 8 != 0 && qos != QoS::AtMostOnce,
            qos,
            retain: flags & 4 != 0,
            topic: topic.into(),
            packet_id: (qos != QoS::AtMostOnce).then(|| id(u16::from(extra & 7) + 1)),
            payload: payload(props >> 5, extra),
            properties: (!properties.is_empty()).then(|| Box::new(properties)),
        };
        self.built(&Packet::Publish(publish));
    }

    /// PUBACK, PUBREC, PUBREL or PUBCOMP (bits 0-1 of `kind`) with a reason code (`reason`
    /// mod 12) and now and then a Reason String and User Property (bit 3), for an identifier the
    /// session sent (or, with bit 2, one from a small range).
    pub(crate) fn acknowledge(&mut self, script: &mut Script) {
        let (kind, index, reason) = (script.arg(), script.arg(), script.arg());
        let in_flight = self.model.in_flight();
        let packet_id = match in_flight.as_slice() {
            ids if kind & 4 == 0 && !ids.is_empty() => ids[usize::from(index) % ids.len()],
            _ => u16::from(index % 8) + 1,
        };
        let properties = (kind & 8 != 0).then(|| {
            Box::new(PublishResponseProperties {
                reason_string: Some("because".into()),
                user_properties: vec![("k".into(), "v".into())],
            })
        });
        let response = PublishResponse {
            packet_id: id(packet_id),
            reason_code: ACK_REASONS[usize::from(reason) % ACK_REASONS.len()],
            properties,
        };
        let packet = match kind & 3 {
            0 => Packet::PubAck(response),
            1 => Packet::PubRec(response),
            2 => Packet::PubRel(response),
            _ => Packet::PubComp(response),
        };
        self.built(&packet);
    }

    /// A SUBSCRIBE of 1 to 4 filters: a packet identifier, a count with the Subscription
    /// Identifier (bits 2-5: none, or one of `SUBSCRIPTION_IDS`), then per filter a byte of
    /// filter (bits 0-3), QoS (4-5), No Local (6) and Retain As Published (7), and a byte of
    /// Retain Handling (0 to 2).
    pub(crate) fn subscribe(&mut self, script: &mut Script) {
        let (packet_id, count) = (script.arg(), script.arg());
        let filters = (0..count % 4 + 1)
            .map(|_| {
                let (spec, handling) = (script.arg(), script.arg());
                let options = SubscriptionOptions {
                    qos: qos(spec >> 4),
                    no_local: spec & 0x40 != 0,
                    retain_as_published: spec & 0x80 != 0,
                    retain_handling: RetainHandling::from_bits(handling % 3).unwrap_or_default(),
                };
                (filter(spec).into(), options)
            })
            .collect();
        let subscription_identifier = match (count >> 2) & 15 {
            n @ 1..=8 => NonZeroU32::new(SUBSCRIPTION_IDS[usize::from(n - 1)]),
            _ => None,
        };
        let properties = SubscribeProperties {
            subscription_identifier,
            user_properties: if count & 0x40 != 0 { vec![("k".into(), "v".into())] } else { Vec::new() },
        };
        let subscribe = Subscribe {
            packet_id: id(u16::from(packet_id) + 1),
            filters,
            properties: (!properties.is_empty()).then(|| Box::new(properties)),
        };
        self.built(&Packet::Subscribe(subscribe));
    }

    /// An UNSUBSCRIBE of 1 to 4 filters.
    pub(crate) fn unsubscribe(&mut self, script: &mut Script) {
        let (packet_id, count) = (script.arg(), script.arg() % 4 + 1);
        let filters = (0..count).map(|_| filter(script.arg()).into()).collect();
        let packet_id = id(u16::from(packet_id) + 1);
        self.built(&Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties: None }));
    }

    /// A DISCONNECT: reason code (bits 0-1), Session Expiry Interval (2-3), Reason String (4).
    pub(crate) fn disconnect(&mut self, script: &mut Script) {
        let spec = script.arg();
        let properties = DisconnectProperties {
            session_expiry_interval: DISCONNECT_EXPIRY[usize::from((spec >> 2) & 3)],
            reason_string: (spec & 0x10 != 0).then(|| "bye".into()),
            ..DisconnectProperties::default()
        };
        let disconnect = Disconnect {
            reason_code: DISCONNECT_REASONS[usize::from(spec & 3)],
            properties: (!properties.is_empty()).then(|| Box::new(properties)),
        };
        self.built(&Packet::Disconnect(disconnect));
    }

    /// An AUTH, which no connection here agreed a method for.
    pub(crate) fn auth(&mut self, script: &mut Script) {
        let spec = script.arg();
        let reason_code =
            [ReasonCode::Success, ReasonCode::ContinueAuthentication, ReasonCode::ReAuthenticate]
                [usize::from(spec % 3)];
        let properties = (spec & 4 != 0).then(|| {
            Box::new(AuthProperties {
                authentication_method: Some("SCRAM-SHA-1".into()),
                authentication_data: Some(Bytes::from_static(b"data")),
                ..AuthProperties::default()
            })
        });
        self.built(&Packet::Auth(Auth { reason_code, properties }));
    }

    /// A packet built by the script, sent through the 5.0 wire format first.
    pub(crate) fn built(&mut self, packet: &Packet) {
        if let Some(packet) = through_the_wire(packet) {
            self.inbound(packet);
        }
    }

    /// One packet from the client, handled as the connection task does: the model predicts,
    /// the session handles it, and its actions are all taken.
    pub(crate) fn inbound(&mut self, packet: Packet) {
        self.ensure_connected();
        let name = packet.name();
        let now = self.now;
        let limits = self.limits;
        let expected = self.model.predict(&packet, now, &limits);
        let result = self.session().handle_packet(packet, now);
        match (expected, result) {
            (Ok(actions), Ok(())) => self.take_actions(actions),
            (Err(Ending::Disconnect), Err(exit @ Exit::Disconnect))
            | (Err(Ending::DisconnectWithWill), Err(exit @ Exit::DisconnectWithWill(_))) => {
                assert!(!self.session().has_actions(), "{name} ended the connection and left actions");
                self.end(&exit);
            }
            (Err(Ending::Violation(rules)), Err(exit @ Exit::Violation(DecodeError::Violation(rule))))
                if rules.contains(&rule) =>
            {
                assert!(!self.session().has_actions(), "{name} ended the connection and left actions");
                self.end(&exit);
            }
            (expected, result) => panic!("{name}: expected {expected:?}, the session returned {result:?}"),
        }
        let keeps = self.session().expiry().keeps();
        assert!(!self.connected || keeps == (self.model.expiry_interval != 0), "session expiry");
    }

    /// Takes the session's actions, each checked against the one expected and taken as the
    /// connection would; a packet that cannot be written within the client's Maximum Packet
    /// Size ends the connection once the turn is over, as `Exit::Encode`.
    pub(crate) fn take_actions(&mut self, expected: Vec<Expected>) {
        let mut expected = expected.into_iter();
        let mut failed = None;
        loop {
            match (self.session().poll_action(), expected.next()) {
                (None, None) => break,
                (Some(action), Some(want)) => {
                    if let Err(error) = self.apply(action, want) {
                        failed = failed.or(Some(error));
                    }
                }
                (Some(action), None) => panic!("unexpected {action:?}"),
                (None, Some(want)) => panic!("missing {want:?}"),
            }
        }
        if let Some(error) = failed {
            self.end(&Exit::Encode(error));
        }
    }

    /// Checks one action against the one expected and takes it.
    fn apply(&mut self, action: Action, expected: Expected) -> Result<(), EncodeError> {
        match (action, expected) {
            (
                Action::Publish { message, ack },
                Expected::Publish { topic, payload, qos, retain, properties, expires_at, ack: want },
            ) => {
                assert_eq!((&*message.topic, &message.payload), (&*topic, &payload), "routed message");
                assert_eq!((message.qos, message.retain), (qos, retain), "routed message flags");
                assert_eq!(
                    message.properties.as_deref(),
                    properties.as_ref(),
                    "[MQTT-3.3.2-17] routed properties"
                );
                assert_eq!(message.expires_at, expires_at, "routed message expiry");
                assert_eq!(
                    ack.as_ref().map(without_diagnostics),
                    want.as_ref().map(without_diagnostics),
                    "acknowledgement of a routed message"
                );
                match &ack {
                    Some(ack) => self.write(ack),
                    None => Ok(()),
                }
            }
            (
                Action::Subscribe { filter, options, subscription_id, send_retained, walk_budget },
                Expected::Subscribe {
                    filter: want,
                    options: o,
                    subscription_id: id,
                    send_retained: s,
                    first,
                },
            ) => {
                assert_eq!((&*filter, options), (&*want, o), "subscription");
                assert_eq!(subscription_id, id, "subscription identifier (3.8.2.1.2)");
                assert_eq!(send_retained, s, "retained messages on subscribe");
                assert_eq!(walk_budget.is_some(), first, "walk budget on the first filter only");
                if let Some(id) = subscription_id {
                    self.subscription_ids.push_back(id);
                    if self.subscription_ids.len() > 8 {
                        self.subscription_ids.pop_front();
                    }
                }
                Ok(())
            }
            (Action::Unsubscribe { filter }, Expected::Unsubscribe { filter: want }) => {
                assert_eq!(&*filter, want, "unsubscription");
                Ok(())
            }
            (Action::SubscriptionCount(count), Expected::Count(want)) => {
                assert_eq!(count, want, "subscription count");
                self.session().mailbox().set_subscription_count(count);
                Ok(())
            }
            (Action::Send(packet), Expected::Send(want)) => {
                assert_eq!(without_diagnostics(&packet), without_diagnostics(&want), "packet sent");
                self.write(&packet)
            }
            (action, expected) => panic!("expected {expected:?}, the session asked for {action:?}"),
        }
    }

    /// Writes `packet` as the connection does (`Link::write`) and checks that the bytes are one
    /// 5.0 packet within the client's Maximum Packet Size, the same packet, with reason codes
    /// valid for it: whole if it fits and the client asked for problem information, else
    /// without its Reason String, and then its User Properties, as far as it must
    /// [MQTT-3.1.2-25]; never with either for a client that asked for none [MQTT-3.1.2-29].
    fn write(&mut self, packet: &Packet) -> Result<(), EncodeError> {
        let mut out = BytesMut::new();
        match self.link.write(&mut out, packet) {
            Ok(()) => {}
            Err(EncodeError::ExceedsMaximumPacketSize { size, max }) => {
                assert!(size > max && max == self.link.max_packet_size && out.is_empty(), "{packet:?}");
                return Err(EncodeError::ExceedsMaximumPacketSize { size, max });
            }
            Err(error) => panic!("{packet:?} does not encode: {error}"),
        }
        assert!(out.len() <= self.link.max_packet_size, "{packet:?} over the Maximum Packet Size");
        let decoded = decode_all(out);
        let [(again, _)] = decoded.as_slice() else { panic!("{packet:?} wrote {decoded:?}") };
        let bare = without_diagnostics(packet);
        assert_eq!(without_diagnostics(again), bare, "{packet:?} changed on the wire");
        if !self.link.problem_information {
            assert_eq!(again, &bare, "[MQTT-3.1.2-29] diagnostics for a client that asked for none");
        } else if packet.size(ProtocolVersion::V5) <= self.link.max_packet_size {
            assert_eq!(again, packet, "{packet:?} fits and lost its diagnostics");
        }
        match again {
            Packet::PubAck(r) | Packet::PubRec(r) => {
                assert!(r.reason_code.is_valid_for_puback(), "{packet:?}: reason code not for PUBACK/PUBREC")
            }
            Packet::PubRel(r) | Packet::PubComp(r) => {
                assert!(r.reason_code.is_valid_for_pubrel(), "{packet:?}: reason code not for PUBREL/PUBCOMP")
            }
            Packet::SubAck(s) => {
                assert!(s.reason_codes.iter().all(|c| c.is_valid_for_suback()), "{packet:?}")
            }
            Packet::UnsubAck(u) => {
                assert!(u.reason_codes.iter().all(|c| c.is_valid_for_unsuback()), "{packet:?}")
            }
            Packet::PingResp => {}
            other => panic!("the session sent {other:?}"),
        }
        Ok(())
    }
}
