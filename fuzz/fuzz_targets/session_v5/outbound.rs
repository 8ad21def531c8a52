//! The publishers' side of the script: deliveries pushed into the mailbox, `poll_transmit` and
//! `resend_inflight` checked against the model, and the final drain.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iothub::internals::{Delivery, Exit, Message, PushOutcome};
use iothub_protocol::{
    EncodeError, OutgoingPublish, Packet, PacketId, PayloadFormat, ProtocolVersion, PublishHeader,
    PublishProperties, PublishResponse, QoS, ReasonCode,
};
use tokio::time::Instant;

use super::inbound::SUBSCRIPTION_IDS;
use super::model::{Queued, Stage};
use super::{decode_all, id, open_link, qos, topic, Harness, Script, MAX_DELIVERIES, MESSAGE_EXPIRY};

/// Payload sizes of deliveries, the serial included.
const PAYLOAD_SIZES: [usize; 8] = [4, 8, 16, 40, 100, 300, 1_000, 5_000];

/// The Message Expiry Interval to send at `now` for a message expiring at `expires_at`: what is
/// left, in whole seconds rounded up [MQTT-3.3.2-6].
fn remaining(expires_at: Option<Instant>, now: Instant) -> Option<u32> {
    let left = expires_at?.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    Some(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// Size of the 5.0 PUBLISH of `queued` at `now` with its whole topic and every property.
fn full_size(queued: &Queued, now: Instant) -> usize {
    let message = &queued.message;
    OutgoingPublish {
        header: PublishHeader {
            dup: false,
            qos: queued.qos,
            retain: queued.retain,
            packet_id: (queued.qos != QoS::AtMostOnce).then_some(PacketId::MIN),
        },
        topic: &message.topic,
        payload: &message.payload,
        properties: message.properties.as_deref(),
        message_expiry_interval: remaining(queued.expires_at, now),
        topic_alias: None,
        subscription_identifiers: &queued.subscription_ids,
    }
    .size(ProtocolVersion::V5)
}

impl Harness {
    /// A delivery from three bytes, live or retained (`on_subscribe`).
    ///
    /// - `flags`: QoS (bits 0-1), topic (2-5; the empty entry is a topic of the cycle), the
    ///   message's RETAIN flag (6), Subscription Identifiers (7);
    /// - `props`: Message Expiry Interval (bits 0-2), Payload Format Indicator (3), Content Type
    ///   (4), Response Topic and Correlation Data (5), ten User Properties (6), and a Topic Alias
    ///   and Subscription Identifier in the publisher's properties (7), which the message must
    ///   not keep;
    /// - `size`: payload size (bits 0-2), one to four Subscription Identifiers (3-4), which
    ///   (5-7).
    pub(crate) fn push_from(&mut self, script: &mut Script, on_subscribe: bool) {
        let (flags, props, size) = (script.arg(), script.arg(), script.arg());
        let serial = self.next_serial;
        let index = match (flags >> 2) & 15 {
            15 => 14,
            i => i,
        };
        let rich = props & 0x20 != 0;
        let properties = PublishProperties {
            payload_format_indicator: (props & 8 != 0).then_some(PayloadFormat::Utf8),
            message_expiry_interval: MESSAGE_EXPIRY[usize::from(props & 7)],
            topic_alias: (props & 0x80 != 0).then_some(std::num::NonZeroU16::MIN),
            response_topic: rich.then(|| "reply/to".into()),
            correlation_data: rich.then(|| Bytes::from_static(b"corr")),
            user_properties: if props & 0x40 != 0 {
                (0..10).map(|n| (format!("key{n}").into(), "value-of-twenty-byte".into())).collect()
            } else {
                Vec::new()
            },
            subscription_identifiers: if props & 0x80 != 0 { vec![NonZeroU32::MIN] } else { Vec::new() },
            content_type: (props & 0x10 != 0).then(|| "application/json".into()),
        };
        let mut ids = Vec::new();
        if flags & 0x80 != 0 {
            for k in 0..usize::from((size >> 3) & 3) + 1 {
                let pick = usize::from(size >> 5) + 3 * k;
                let id = match self.subscription_ids.len() {
                    n if n > 0 && pick % 2 == 0 => self.subscription_ids[pick % n],
                    _ => NonZeroU32::new(SUBSCRIPTION_IDS[pick % 8]).unwrap_or(NonZeroU32::MIN),
                };
                ids.push(id);
            }
        }
        let properties = (!properties.is_empty()).then(|| Box::new(properties));
        let topic = topic(index, serial);
        let payload_len = PAYLOAD_SIZES[usize::from(size & 7)];
        self.push(qos(flags), on_subscribe, flags & 0x40 != 0, topic, payload_len, properties, &ids);
    }

    /// A small QoS 1 delivery on the next topic of the cycle.
    pub(crate) fn push_simple(&mut self) {
        let topic = topic(14, self.next_serial);
        self.push(QoS::AtLeastOnce, false, false, topic, 4, None, &[]);
    }

    /// A publisher pushes a delivery; its payload is its serial, then zeros.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        qos: QoS,
        on_subscribe: bool,
        retain: bool,
        topic: String,
        payload_len: usize,
        properties: Option<Box<PublishProperties>>,
        ids: &[NonZeroU32],
    ) {
        if self.next_serial == MAX_DELIVERIES {
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut payload = serial.to_be_bytes().to_vec();
        payload.resize(payload_len, 0);
        let now = self.now;
        let expiry = properties.as_ref().and_then(|p| p.message_expiry_interval);
        let expires_at = expiry.and_then(|secs| now.checked_add(Duration::from_secs(u64::from(secs))));
        let message =
            Message::new(topic.as_str().into(), payload.into(), qos, retain).with_properties(properties, now);
        assert_eq!(message.expires_at, expires_at, "expiry counts from arrival");
        if let Some(p) = &message.properties {
            assert!(
                p.topic_alias.is_none()
                    && p.subscription_identifiers.is_empty()
                    && p.message_expiry_interval.is_none(),
                "a message keeps the publisher's alias, identifiers or interval: {p:?}"
            );
        }
        let message = Arc::new(message);
        let mut delivery = if on_subscribe {
            Delivery::retained(message.clone(), qos)
        } else {
            Delivery::live(message.clone(), qos)
        };
        let mut subscription_ids = Vec::new();
        for &id in ids {
            delivery.add_subscription_id(id);
            if !subscription_ids.contains(&id) {
                subscription_ids.push(id);
            }
        }
        assert_eq!(delivery.subscription_ids(), subscription_ids, "subscription identifiers");
        let retain = delivery.retain;
        match self.session().mailbox().push(delivery) {
            PushOutcome::Queued | PushOutcome::OverLimit => {
                let smallest_max = if self.connected { self.link.max_packet_size } else { usize::MAX };
                let queued = Queued { message, qos, retain, subscription_ids, expires_at, smallest_max };
                self.model.queued.insert(serial, queued);
            }
            PushOutcome::Offline | PushOutcome::Dropped => {}
            // Only an ended session's mailbox is closed (`take_all`), and the harness never
            // calls it.
            PushOutcome::Closed => panic!("a live session's mailbox is closed"),
        }
    }

    /// A queued delivery that was not sent, though a later one was (or the queue is empty): it
    /// expired [MQTT-3.3.2-5], it was too large for a connection it waited through
    /// [MQTT-3.1.2-25], or the mailbox dropped it and counted that.
    fn skipped(&mut self, queued: &Queued) {
        let now = self.now;
        let expired = queued.expires_at.is_some_and(|at| at <= now);
        if !expired && full_size(queued, now) <= queued.smallest_max {
            self.model.unexplained += 1;
        }
    }

    /// `poll_transmit` with the link's window, checked: first what the connection is still owed
    /// of the messages in flight, PUBRELs at once and PUBLISHes as far as the window has room
    /// (`check_resent`), then new messages from the mailbox. A PUBREL owed that does not fit the client's Maximum Packet
    /// Size ends the connection, as `Exit::Encode`.
    pub(crate) fn transmit(&mut self, budget: usize) {
        self.ensure_connected();
        let link = self.link;
        let owed = self.model.take_owed(link.max_inflight);
        let before = self.model.holding();
        let mut out = BytesMut::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let now = self.now;
        let result = self.session().poll_transmit(&mut out, link.max_inflight, budget, &mut scratch, now);
        self.scratch = scratch;
        let mut packets = decode_all(out).into_iter();
        for &packet_id in &owed {
            match packets.next() {
                Some((packet, size)) => self.check_resent(&packet, size, packet_id),
                None => {
                    // Only a PUBREL that does not fit stops the re-sends (a PUBLISH too large
                    // was discarded when the connection began).
                    let stage = self.model.outbound.get(&packet_id).map(|o| o.stage);
                    assert!(
                        matches!(result, Err(EncodeError::ExceedsMaximumPacketSize { .. }))
                            && stage == Some(Stage::Comp),
                        "{packet_id} owed and not re-sent: {result:?}"
                    );
                    break;
                }
            }
        }
        if let Err(error) = result {
            assert!(packets.next().is_none(), "poll_transmit failed re-sending and went on: {error}");
            assert!(matches!(error, EncodeError::ExceedsMaximumPacketSize { .. }), "poll_transmit: {error}");
            self.end(&Exit::Encode(error));
            return;
        }
        let mut entered = 0;
        for (packet, size) in packets {
            let Packet::Publish(publish) = packet else { panic!("poll_transmit wrote {packet:?}") };
            assert!(!publish.dup, "[MQTT-3.3.1-1] a first delivery has DUP=0");
            let mut sent = publish.properties.as_deref().cloned().unwrap_or_default();
            let topic = match sent.topic_alias.take() {
                Some(alias) => {
                    assert!(
                        alias.get() <= link.client_alias_max,
                        "[MQTT-3.3.2-11] Topic Alias {alias} over the client's maximum {}",
                        link.client_alias_max
                    );
                    if publish.topic.is_empty() {
                        match self.model.outbound_aliases.get(&alias.get()) {
                            Some(topic) => topic.clone(),
                            None => panic!("alias {alias} used before it was set (3.3.2.3.4)"),
                        }
                    } else {
                        self.model.outbound_aliases.insert(alias.get(), publish.topic.to_string());
                        publish.topic.to_string()
                    }
                }
                None => publish.topic.to_string(),
            };
            let serial = u32::from_be_bytes(publish.payload[..4].try_into().unwrap_or_default());
            let earlier: Vec<u32> = self.model.queued.range(..serial).map(|(&s, _)| s).collect();
            for skipped in earlier {
                if let Some(queued) = self.model.queued.remove(&skipped) {
                    self.skipped(&queued);
                }
            }
            let Some(queued) = self.model.queued.remove(&serial) else {
                panic!("sent {serial}, never queued")
            };
            assert!(self.model.last_sent < Some(serial), "{serial} sent after {:?}", self.model.last_sent);
            self.model.last_sent = Some(serial);
            assert_eq!(topic, &*queued.message.topic, "the topic, or the topic its alias stands for");
            // With or without a Topic Alias, and whatever the topic an alias stands for.
            assert!(
                size <= link.max_packet_size,
                "[MQTT-3.1.2-24] a PUBLISH of {size} bytes, the client's maximum is {}",
                link.max_packet_size
            );
            assert_eq!((publish.qos, publish.retain), (queued.qos, queued.retain), "flags of {serial}");
            assert_eq!(publish.payload, queued.message.payload, "payload of {serial}");
            assert!(
                queued.expires_at.is_none_or(|at| at > now),
                "[MQTT-3.3.2-5] {serial} sent after it expired"
            );
            // What reaches the subscriber: the publisher's properties unaltered [MQTT-3.3.2-17],
            // [MQTT-3.3.2-18], what is left of the expiry interval, and the delivery's own
            // Subscription Identifiers [MQTT-3.3.4-3].
            let mut want = queued.message.properties.as_deref().cloned().unwrap_or_default();
            want.message_expiry_interval = remaining(queued.expires_at, now);
            want.subscription_identifiers = queued.subscription_ids.clone();
            assert_eq!(sent, want, "properties of {serial}");
            assert!(sent.message_expiry_interval != Some(0), "[MQTT-3.3.2-6] {serial} sent as expired");
            match publish.packet_id {
                None => assert_eq!(publish.qos, QoS::AtMostOnce),
                Some(packet_id) => {
                    let packet_id = packet_id.get();
                    assert!(
                        !self.model.outbound.contains_key(&packet_id),
                        "[MQTT-2.3.1-2] {packet_id} in use"
                    );
                    self.model.sent(packet_id, queued);
                    entered += 1;
                }
            }
        }
        assert!(
            entered <= link.max_inflight.saturating_sub(before),
            "{entered} entered a window of {} holding {before}",
            link.max_inflight
        );
        // [MQTT-3.3.4-9]: the PUBLISHes this connection has been sent, re-sent or new, and not
        // finished acknowledging stay within its window; owed messages wait outside it.
        let published = self.model.published_here();
        assert!(
            published <= link.max_inflight,
            "[MQTT-3.3.4-9] {published} PUBLISHes unacknowledged, the window is {}",
            link.max_inflight
        );
        assert_eq!(self.session().inflight_len(), self.model.outbound.len(), "messages in flight");
        let holding = self.model.holding();
        assert!(holding <= link.max_inflight.max(before), "inflight window overfilled: {holding}");
        let dropped = self.session().mailbox().dropped();
        assert!(
            self.model.unexplained <= dropped,
            "{} deliveries never sent, neither expired nor too large, {dropped} drops counted",
            self.model.unexplained
        );
    }

    /// Checks one message in flight re-sent to the connection: a PUBLISH with DUP=1, its
    /// original packet identifier, its whole topic and no alias [MQTT-3.3.2-7], its properties,
    /// or a PUBREL once PUBREC came [MQTT-4.4.0-1]; nothing over the client's Maximum Packet Size
    /// [MQTT-3.1.2-24].
    fn check_resent(&self, packet: &Packet, size: usize, packet_id: u16) {
        let link = self.link;
        let outgoing = &self.model.outbound[&packet_id];
        assert!(
            size <= link.max_packet_size,
            "[MQTT-3.1.2-24] re-sent {} of {size} bytes, the client's maximum is {}",
            packet.name(),
            link.max_packet_size
        );
        match (packet, outgoing.stage) {
            (Packet::Publish(p), Stage::Ack | Stage::Rec) => {
                assert!(p.dup, "[MQTT-3.3.1-1] a re-sent PUBLISH has DUP=1");
                assert_eq!(p.packet_id.map(PacketId::get), Some(packet_id), "re-sent identifier");
                let queued = &outgoing.queued;
                assert_eq!((p.qos, p.retain), (queued.qos, queued.retain), "re-sent flags");
                assert_eq!(&*p.topic, &*queued.message.topic, "[MQTT-3.3.2-7] re-sent topic");
                assert!(p.properties.as_ref().is_none_or(|p| p.topic_alias.is_none()), "re-sent alias");
                assert_eq!(p.payload, queued.message.payload, "re-sent message");
                // As when first sent, with what is left of the expiry interval now: 0 once it
                // has passed, for the client may have the message already [MQTT-3.3.2-6].
                let mut want = queued.message.properties.as_deref().cloned().unwrap_or_default();
                want.message_expiry_interval = remaining(queued.expires_at, self.now);
                want.subscription_identifiers = queued.subscription_ids.clone();
                assert_eq!(p.properties.as_deref().cloned().unwrap_or_default(), want, "re-sent properties");
            }
            (Packet::PubRel(rel), Stage::Comp) => {
                assert_eq!(rel.packet_id.get(), packet_id, "re-sent PUBREL");
                assert_eq!(rel.reason_code, ReasonCode::Success, "re-sent PUBREL");
            }
            (other, stage) => panic!("re-sent {other:?} for {packet_id} awaiting {stage:?}"),
        }
    }

    /// Checks `resend_inflight` after a new connection. A PUBLISH in flight larger than the
    /// client's Maximum Packet Size (the client may have lowered it) is discarded, as if it had
    /// been delivered [MQTT-3.1.2-25], and counted as too large; the rest, PUBLISH and PUBREL,
    /// are owed to the connection [MQTT-4.4.0-1]: every PUBREL and as many PUBLISHes as its
    /// window holds are re-sent at once, in send order (`check_resent`); the other PUBLISHes
    /// follow as acknowledgements free the window [MQTT-3.3.4-9], [MQTT-3.3.4-10]. A PUBREL
    /// that does not fit ends the connection.
    pub(crate) fn check_resend(&mut self) {
        let now = self.now;
        let link = self.link;
        let mut too_large = 0;
        for packet_id in self.model.in_flight() {
            let outgoing = &self.model.outbound[&packet_id];
            if outgoing.stage != Stage::Comp && full_size(&outgoing.queued, now) > link.max_packet_size {
                let stage = outgoing.stage;
                self.model.complete(packet_id, stage);
                too_large += 1;
            }
        }
        self.model.owe_all();
        let owed = self.model.take_owed(link.max_inflight);
        let counted = self.session().mailbox().too_large();
        let mut out = BytesMut::new();
        let result = self.session().resend_inflight(&mut out, now);
        let counted = self.session().mailbox().too_large() - counted;
        assert_eq!(counted, too_large, "messages in flight discarded as too large [MQTT-3.1.2-25]");
        let resent = decode_all(out);
        match &result {
            Ok(()) => assert_eq!(resent.len(), owed.len(), "re-sent {resent:?}, owed {owed:?}"),
            Err(error) => {
                let failed = owed.get(resent.len()).and_then(|id| self.model.outbound.get(id));
                assert!(
                    matches!(error, EncodeError::ExceedsMaximumPacketSize { .. })
                        && failed.is_some_and(|o| o.stage == Stage::Comp),
                    "resend_inflight: {error} after {resent:?}, owed {owed:?}"
                );
            }
        }
        for ((packet, size), &packet_id) in resent.iter().zip(&owed) {
            self.check_resent(packet, *size, packet_id);
        }
        assert_eq!(self.session().inflight_len(), self.model.outbound.len(), "inflight after the re-sends");
        let published = self.model.published_here();
        assert!(
            published <= link.max_inflight,
            "[MQTT-3.3.4-9] {published} PUBLISHes re-sent, the window is {}",
            link.max_inflight
        );
        if let Err(error) = result {
            self.end(&Exit::Encode(error));
        }
    }

    /// Sends and acknowledges everything still queued or in flight, then checks that every
    /// delivery that never left is explained.
    pub(crate) fn finish(&mut self) {
        if self.session().expiry().keeps() && (!self.connected || self.link.max_packet_size < usize::MAX) {
            self.connect(open_link());
        }
        for _ in 0..1_000 {
            if !self.connected {
                // A clean session ended; its successor holds nothing.
                return;
            }
            if self.model.outbound.is_empty() && self.session().mailbox().is_empty() {
                break;
            }
            self.transmit(usize::MAX);
            for packet_id in self.model.in_flight() {
                let stage = self.model.outbound.get(&packet_id).map(|o| o.stage);
                if stage == Some(Stage::Rec) {
                    self.inbound(Packet::PubRec(PublishResponse::new(id(packet_id))));
                }
                if !self.connected {
                    return;
                }
                let ack = PublishResponse::new(id(packet_id));
                self.inbound(if stage == Some(Stage::Ack) {
                    Packet::PubAck(ack)
                } else {
                    Packet::PubComp(ack)
                });
                if !self.connected {
                    return;
                }
            }
        }
        assert!(
            self.session().mailbox().is_empty() && self.model.outbound.is_empty(),
            "not everything was sent"
        );
        let left = std::mem::take(&mut self.model.queued);
        for queued in left.values() {
            self.skipped(queued);
        }
        let dropped = self.session().mailbox().dropped();
        assert!(
            self.model.unexplained <= dropped,
            "{} deliveries never sent, neither expired nor too large, {dropped} drops counted",
            self.model.unexplained
        );
    }
}
