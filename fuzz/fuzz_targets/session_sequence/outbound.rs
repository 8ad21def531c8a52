//! The publishers' side of the script: deliveries pushed into the mailbox, `poll_transmit` and
//! `resend_inflight` checked against the model, and the final drain that proves no accepted
//! QoS 1/2 message was lost.

use std::sync::Arc;

use bytes::BytesMut;
use iothub::internals::Exit;
use iothub::internals::PushOutcome;
use iothub::internals::{Delivery, Message};
use iothub_protocol::{publish_size, Packet, PacketId, PublishResponse, QoS};

use super::model::{Outgoing, Queued, Stage};
use super::{decode_all, id, response, Harness, MAX_DELIVERIES};

impl Harness {
    /// A publisher pushes a delivery; its payload is its serial and `pad` bytes more.
    pub(crate) fn push(&mut self, qos: QoS, retain: bool, topic: String, pad: u8) {
        let Some(session) = &self.session else { return };
        if self.next_serial == MAX_DELIVERIES {
            return;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut payload = serial.to_be_bytes().to_vec();
        payload.resize(4 + usize::from(pad) * 40, 0);
        let message = Arc::new(Message::new(topic.as_str().into(), payload.into(), qos, retain));
        let delivery = if retain { Delivery::retained(message, qos) } else { Delivery::live(message, qos) };
        let outcome = session.mailbox().push(delivery);
        match outcome {
            PushOutcome::Queued | PushOutcome::OverLimit => {
                assert!(
                    outcome == PushOutcome::Queued || self.connected,
                    "an offline session is not waited on"
                );
                self.model.queued.insert(serial, Queued { qos, retain, topic });
                if qos != QoS::AtMostOnce {
                    self.model.unsent.insert(serial);
                }
            }
            PushOutcome::Offline => {
                assert!(!self.connected && qos == QoS::AtMostOnce && !retain, "{outcome:?}")
            }
            PushOutcome::Dropped => {}
            // Only a discarded session's mailbox is closed, and the harness never discards one
            // it still pushes to.
            PushOutcome::Closed => panic!("a live session's mailbox is closed"),
        }
    }

    /// `poll_transmit`, checked: fresh packet identifiers, DUP=0, the window and the budget kept,
    /// messages in the order they were queued.
    pub(crate) fn transmit(&mut self, max_inflight: usize, budget: usize) {
        self.ensure_connected();
        if self.session().mailbox().is_slow() {
            self.end(&Exit::SlowSubscriber);
            return;
        }
        let before = self.session().inflight_len();
        let mut out = BytesMut::new();
        let mut scratch = std::mem::take(&mut self.scratch);
        let now = self.now;
        let result = self.session().poll_transmit(&mut out, max_inflight, budget, &mut scratch, now);
        self.scratch = scratch;
        assert!(result.is_ok(), "poll_transmit: {result:?}");
        let written = out.len();
        let packets = decode_all(out);
        assert!(
            written <= budget || packets.len() == 1,
            "{} packets, {written} bytes over a budget of {budget}",
            packets.len()
        );
        let mut entered = 0;
        for (packet, size) in packets {
            let Packet::Publish(publish) = packet else { panic!("poll_transmit wrote {packet:?}") };
            assert!(!publish.dup, "[MQTT-3.3.1-1] a first delivery has DUP=0");
            let serial = u32::from_be_bytes(publish.payload[..4].try_into().unwrap_or_default());
            let Some(queued) = self.model.queued.remove(&serial) else {
                panic!("sent {serial}, never queued")
            };
            assert!(self.model.last_sent < Some(serial), "{serial} sent after {:?}", self.model.last_sent);
            self.model.last_sent = Some(serial);
            assert_eq!(
                (&*publish.topic, publish.qos, publish.retain),
                (&*queued.topic, queued.qos, queued.retain)
            );
            assert_eq!(
                size,
                publish_size(&publish.topic, publish.qos, publish.payload.len()),
                "size of {serial}"
            );
            match publish.packet_id {
                None => assert_eq!(publish.qos, QoS::AtMostOnce),
                Some(packet_id) => {
                    let packet_id = packet_id.get();
                    assert!(
                        !self.model.outbound.contains_key(&packet_id),
                        "[MQTT-2.3.1-2] {packet_id} in use"
                    );
                    let stage = if publish.qos == QoS::AtLeastOnce { Stage::Ack } else { Stage::Rec };
                    let sequence = self.model.next_sequence;
                    self.model.next_sequence += 1;
                    let outgoing =
                        Outgoing { stage, sequence, serial, qos: publish.qos, retain: publish.retain };
                    self.model.outbound.insert(packet_id, outgoing);
                    self.model.order.push((sequence, packet_id));
                    self.model.unsent.remove(&serial);
                    entered += 1;
                }
            }
        }
        assert!(
            entered <= max_inflight.saturating_sub(before),
            "{entered} entered a window of {max_inflight}"
        );
        assert!(self.session().inflight_len() <= max_inflight.max(before), "inflight window overfilled");
    }

    /// Checks `resend_inflight` against the model: every message in flight, in send order, with
    /// its packet identifier; a PUBLISH with DUP=1, a PUBREL once PUBREC came [MQTT-4.4.0-1].
    pub(crate) fn check_resend(&mut self) {
        let mut out = BytesMut::new();
        let now = self.now;
        if let Err(error) = self.session().resend_inflight(&mut out, now) {
            panic!("resend_inflight: {error}");
        }
        let resent = decode_all(out);
        let in_flight = self.model.in_flight();
        assert_eq!(resent.len(), in_flight.len(), "re-sent {resent:?}");
        for ((packet, _), packet_id) in resent.iter().zip(&in_flight) {
            let outgoing = &self.model.outbound[packet_id];
            match (packet, outgoing.stage) {
                (Packet::Publish(p), Stage::Ack | Stage::Rec) => {
                    assert!(p.dup, "[MQTT-3.3.1-1] a re-sent PUBLISH has DUP=1");
                    assert_eq!(p.packet_id.map(PacketId::get), Some(*packet_id), "re-sent identifier");
                    assert_eq!((p.qos, p.retain), (outgoing.qos, outgoing.retain), "re-sent flags");
                    assert_eq!(p.payload[..4], outgoing.serial.to_be_bytes(), "re-sent message");
                }
                (Packet::PubRel(rel), Stage::Comp) => assert_eq!(rel.packet_id.get(), *packet_id),
                (other, stage) => panic!("re-sent {other:?} for {packet_id} awaiting {stage:?}"),
            }
        }
    }

    /// Sends and acknowledges everything still queued or in flight, then checks that no accepted
    /// QoS 1/2 delivery went missing but by a counted drop.
    pub(crate) fn finish(&mut self) {
        for _ in 0..8 {
            if self.session.is_none() {
                return;
            }
            self.ensure_connected();
            self.take_actions(usize::MAX);
            if self.model.outbound.is_empty() && self.session().mailbox().is_empty() {
                break;
            }
            self.transmit(65_535, usize::MAX);
            for packet_id in self.model.in_flight() {
                let stage = self.model.outbound.get(&packet_id).map(|o| o.stage);
                if stage == Some(Stage::Rec) {
                    self.inbound(Packet::PubRec(PublishResponse::new(id(packet_id))));
                }
                let kind = if stage == Some(Stage::Ack) { 0 } else { 3 };
                self.inbound(response(kind, id(packet_id)));
            }
        }
        let Some(session) = &self.session else { return };
        assert!(session.mailbox().is_empty() && self.model.outbound.is_empty(), "not everything was sent");
        let dropped = session.mailbox().dropped();
        let lost = self.model.unsent.len() as u64;
        assert!(lost <= dropped, "{lost} accepted QoS 1/2 deliveries never sent, {dropped} drops counted");
    }
}
