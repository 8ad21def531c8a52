//! The client's side of the script: packets from the client, handled as the connection task
//! does, and the session's actions, each checked against the model and taken.

use bytes::Bytes;
use iothub::internals::Action;
use iothub::internals::Exit;
use iothub_protocol::{Packet, Publish, QoS, Subscribe, SubscriptionOptions, Unsubscribe};

use super::model::{Ending, Expected};
use super::{id, level, qos, response, round_trip, through_the_wire, Harness, Script, FILTERS, TOPICS};

impl Harness {
    /// A PUBLISH built from two bytes: flags and topic, and a packet identifier from a small
    /// range, so that identifiers repeat.
    pub(crate) fn publish(&mut self, script: &mut Script) {
        let (flags, packet_id) = (script.arg(), script.arg());
        let qos = qos(flags);
        let publish = Publish {
            dup: flags & 4 != 0 && qos != QoS::AtMostOnce,
            qos,
            retain: flags & 8 != 0,
            topic: level(&TOPICS, flags >> 4, 13).into(),
            packet_id: (qos != QoS::AtMostOnce).then(|| id(u16::from(packet_id % 8) + 1)),
            payload: Bytes::copy_from_slice(&[packet_id]),
            properties: None,
        };
        self.built(&Packet::Publish(publish));
    }

    /// A PUBACK, PUBREC, PUBREL or PUBCOMP for an identifier the session sent (or, now and then,
    /// one from a small range).
    pub(crate) fn acknowledge(&mut self, script: &mut Script) {
        let (kind, index) = (script.arg(), script.arg());
        let packet_id = match self.model.order.as_slice() {
            order if kind & 4 == 0 && !order.is_empty() => order[usize::from(index) % order.len()].1,
            _ => u16::from(index % 8) + 1,
        };
        self.built(&response(kind, id(packet_id)));
    }

    /// A packet built by the script, sent through the wire format first.
    pub(crate) fn built(&mut self, packet: &Packet) {
        if let Some(packet) = through_the_wire(packet) {
            self.inbound(packet);
        }
    }

    /// A SUBSCRIBE of 1 to 4 filters, each byte a filter and its QoS.
    pub(crate) fn subscribe(&mut self, script: &mut Script) {
        let (packet_id, count) = (script.arg(), script.arg() % 4 + 1);
        let filters = (0..count)
            .map(|_| {
                let spec = script.arg();
                let options = SubscriptionOptions { qos: qos(spec >> 4), ..SubscriptionOptions::default() };
                (level(&FILTERS, spec, 10).into(), options)
            })
            .collect();
        let packet_id = id(u16::from(packet_id) + 1);
        self.built(&Packet::Subscribe(Subscribe { packet_id, filters, properties: None }));
    }

    /// An UNSUBSCRIBE of 1 to 4 filters.
    pub(crate) fn unsubscribe(&mut self, script: &mut Script) {
        let (packet_id, count) = (script.arg(), script.arg() % 4 + 1);
        let filters = (0..count).map(|_| level(&FILTERS, script.arg(), 10).into()).collect();
        let packet_id = id(u16::from(packet_id) + 1);
        self.built(&Packet::Unsubscribe(Unsubscribe { packet_id, filters, properties: None }));
    }

    /// One packet from the client, handled as the connection task does: the actions of the
    /// previous packet are all taken first, then the packet's, up to a yield.
    pub(crate) fn inbound(&mut self, packet: Packet) {
        self.ensure_connected();
        self.take_actions(usize::MAX);
        let name = packet.name();
        let expected = self.model.predict(&packet, self.limits.max_subscriptions);
        let now = self.now;
        self.model.record_activity(now);
        let result = self.session().handle_packet(packet, now);
        match (expected, result) {
            (Ok(actions), Ok(())) => {
                self.pending = actions.into();
                let limit = self.yield_after.take().unwrap_or(usize::MAX);
                self.take_actions(limit);
            }
            (Err(Ending::Disconnect), Err(exit @ Exit::Disconnect))
            | (Err(Ending::Violation), Err(exit @ Exit::Violation(_))) => {
                assert!(!self.session().has_actions(), "{name} ended the connection and left actions");
                self.end(&exit);
            }
            (expected, result) => panic!("{name}: expected {expected:?}, the session returned {result:?}"),
        }
    }

    /// Takes up to `limit` of the session's actions, each checked against the model and applied
    /// to the model's router; a full turn ends when both run out together.
    pub(crate) fn take_actions(&mut self, limit: usize) {
        if !self.connected {
            return;
        }
        for _ in 0..limit {
            let action = self.session().poll_action();
            match (action, self.pending.pop_front()) {
                (None, None) => break,
                (Some(action), Some(expected)) => self.apply(action, expected),
                (Some(action), None) => panic!("unexpected {action:?}"),
                (None, Some(expected)) => panic!("missing {expected:?}"),
            }
        }
        if self.pending.is_empty() {
            assert_eq!(self.model.router, self.model.subscriptions, "the router has other subscriptions");
        }
    }

    /// Checks one action against the one expected and takes it as the connection would: the
    /// router's subscriptions change, the mailbox learns its count, packets are written.
    pub(crate) fn apply(&mut self, action: Action, expected: Expected) {
        match (action, expected) {
            (
                Action::Publish { message, ack },
                Expected::Publish { topic, payload, qos, retain, ack: want },
            ) => {
                assert_eq!((&*message.topic, &message.payload), (&*topic, &payload), "routed message");
                assert_eq!((message.qos, message.retain), (qos, retain), "routed message flags");
                // [MQTT-4.3.2-2], [MQTT-4.3.3-2]: exactly one PUBACK or PUBREC, with the identifier.
                assert_eq!(ack, want, "acknowledgement of a routed message");
                if let Some(ack) = &ack {
                    round_trip(ack);
                }
            }
            (
                Action::Subscribe { filter, options, walk_budget, .. },
                Expected::Subscribe { filter: want, qos: q, first },
            ) => {
                let qos = options.qos;
                assert_eq!((&*filter, qos), (&*want, q), "subscription");
                assert_eq!(walk_budget.is_some(), first, "walk budget on the first filter only");
                self.model.router.insert(filter.to_string(), qos);
                // The session hands a SUBSCRIBE out in chunks; the mailbox's count must already
                // cover every subscription the router is asked to hold, so that a publish never
                // misses that it must fold overlapping matches.
                let count = self.session().mailbox().subscription_count();
                assert!(count >= self.model.router.len(), "mailbox count {count} below the router's entries");
            }
            (Action::Unsubscribe { filter }, Expected::Unsubscribe { filter: want }) => {
                assert_eq!(&*filter, want, "unsubscription");
                assert!(
                    self.model.router.remove(&*filter).is_some(),
                    "unsubscribed {filter}, never subscribed"
                );
            }
            (Action::SubscriptionCount(count), Expected::Count(want)) => {
                assert_eq!(count, want, "subscription count");
                self.session().mailbox().set_subscription_count(count);
            }
            (Action::Send(packet), Expected::Send(want)) => {
                assert_eq!(packet, want, "packet sent");
                round_trip(&packet);
            }
            (action, expected) => panic!("expected {expected:?}, the session asked for {action:?}"),
        }
    }
}
