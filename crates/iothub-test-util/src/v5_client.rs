//! A blocking MQTT 5.0 client over a [`RawClient`]: it sends packets built from the codec's
//! packet model (`iothub_protocol::Packet`, encoded for 5.0) and decodes what the broker
//! answers, so that a test can check every property and reason code of an exchange.
//!
//! Every read fails the test after [`WAIT`](crate::WAIT), as [`RawClient`]'s do.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use iothub_protocol::{
    decode, ConnAck, Connect, ConnectProperties, Packet, ProtocolVersion, Publish, PublishProperties,
    PublishResponse, QoS, ReasonCode, RetainHandling, Subscribe, SubscribeProperties, SubscriptionOptions,
    Unsubscribe,
};

use crate::packets::{PINGREQ, PINGRESP};
use crate::{OrFail, RawClient};

/// The bytes of `packet` encoded for 5.0.
#[track_caller]
pub fn encode_v5(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(ProtocolVersion::V5, &mut buf).or_fail("encoding a 5.0 packet");
    buf.to_vec()
}

/// Reads the next packet from `raw` and decodes it as 5.0; it must be exactly one packet.
#[track_caller]
pub fn read_v5(raw: &mut RawClient) -> Packet {
    let bytes = raw.read_packet();
    let mut buf = BytesMut::from(&bytes[..]);
    match decode(&mut buf, ProtocolVersion::V5, usize::MAX) {
        Ok(Some(packet)) if buf.is_empty() => packet,
        other => panic!("expected one 5.0 packet, got {other:?} from {bytes:02x?}"),
    }
}

/// A packet identifier, which is never 0.
#[track_caller]
pub fn packet_id(id: u16) -> NonZeroU16 {
    NonZeroU16::new(id).or_fail("packet identifier 0")
}

/// A QoS from its wire value.
#[track_caller]
pub fn qos(bits: u8) -> QoS {
    QoS::from_bits(bits).or_fail("a QoS above 2")
}

/// A 5.0 CONNECT: Clean Start as given, the Session Expiry Interval when it is not 0, and
/// keep-alive 60 s.
pub fn connect_v5(client_id: &str, clean_start: bool, session_expiry: u32) -> Connect {
    let properties = (session_expiry != 0).then(|| {
        Box::new(ConnectProperties { session_expiry_interval: Some(session_expiry), ..Default::default() })
    });
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties,
    }
}

/// Subscription options at `qos` (0, 1 or 2) with No Local and Retain As Published off and
/// Retain Handling 0.
#[track_caller]
pub fn options(qos_bits: u8) -> SubscriptionOptions {
    SubscriptionOptions { qos: qos(qos_bits), ..SubscriptionOptions::default() }
}

/// Options at `qos` with No Local set.
#[track_caller]
pub fn no_local(qos_bits: u8) -> SubscriptionOptions {
    SubscriptionOptions { no_local: true, ..options(qos_bits) }
}

/// Options at `qos` with Retain As Published as given.
#[track_caller]
pub fn retain_as_published(qos_bits: u8, keep: bool) -> SubscriptionOptions {
    SubscriptionOptions { retain_as_published: keep, ..options(qos_bits) }
}

/// Options at `qos` with this Retain Handling.
#[track_caller]
pub fn retain_handling(qos_bits: u8, handling: RetainHandling) -> SubscriptionOptions {
    SubscriptionOptions { retain_handling: handling, ..options(qos_bits) }
}

/// A PUBLISH without properties; `id` is used for QoS 1 and 2 only.
#[track_caller]
pub fn message(topic: &str, payload: &[u8], qos_bits: u8, retain: bool, id: u16) -> Publish {
    Publish {
        dup: false,
        qos: qos(qos_bits),
        retain,
        topic: topic.into(),
        packet_id: (qos_bits > 0).then(|| packet_id(id)),
        payload: Bytes::copy_from_slice(payload),
        properties: None,
    }
}

/// The same PUBLISH with these properties.
pub fn with_properties(mut publish: Publish, properties: PublishProperties) -> Publish {
    publish.properties = Some(Box::new(properties));
    publish
}

/// The Subscription Identifiers of a received PUBLISH, sorted (their order is not significant,
/// [MQTT-3.3.4-4]).
pub fn subscription_ids(publish: &Publish) -> Vec<u32> {
    let mut ids: Vec<u32> = publish
        .properties
        .as_ref()
        .map(|p| p.subscription_identifiers.iter().map(|id| id.get()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// The payload of a received PUBLISH as text.
#[track_caller]
pub fn text(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.payload).or_fail("a payload that is not UTF-8")
}

/// A connected MQTT 5.0 client speaking raw packets.
pub struct V5Client {
    /// The socket, for raw bytes the codec cannot build (such as malformed packets).
    pub raw: RawClient,
}

impl V5Client {
    /// Connects with Clean Start and Session Expiry Interval 0 and checks the CONNACK.
    #[track_caller]
    pub fn connect(addr: SocketAddr, client_id: &str) -> V5Client {
        V5Client::connect_with(addr, connect_v5(client_id, true, 0)).0
    }

    /// Sends this CONNECT and returns the client and the CONNACK, which must accept it.
    #[track_caller]
    pub fn connect_with(addr: SocketAddr, connect: Connect) -> (V5Client, ConnAck) {
        let mut client = V5Client { raw: RawClient::connect(addr) };
        client.send(&Packet::Connect(Box::new(connect)));
        match client.recv() {
            Packet::ConnAck(connack) if connack.reason_code == ReasonCode::Success => (client, connack),
            other => panic!("expected an accepting CONNACK, got {other:?}"),
        }
    }

    /// Sends a packet encoded for 5.0.
    #[track_caller]
    pub fn send(&mut self, packet: &Packet) {
        self.raw.send(&encode_v5(packet));
    }

    /// Reads and decodes the next packet.
    #[track_caller]
    pub fn recv(&mut self) -> Packet {
        read_v5(&mut self.raw)
    }

    /// Subscribes to `filters` with one SUBSCRIBE (carrying `subscription_id` if given) and
    /// returns the SUBACK's reason codes, checking its packet identifier.
    #[track_caller]
    pub fn subscribe(
        &mut self,
        id: u16,
        filters: &[(&str, SubscriptionOptions)],
        subscription_id: Option<u32>,
    ) -> Vec<ReasonCode> {
        let properties = subscription_id.map(|sid| {
            Box::new(SubscribeProperties {
                subscription_identifier: Some(NonZeroU32::new(sid).or_fail("Subscription Identifier 0")),
                ..Default::default()
            })
        });
        let subscribe = Subscribe {
            packet_id: packet_id(id),
            filters: filters.iter().map(|(filter, options)| ((*filter).into(), *options)).collect(),
            properties,
        };
        self.send(&Packet::Subscribe(subscribe));
        match self.recv() {
            Packet::SubAck(suback) if suback.packet_id.get() == id => suback.reason_codes,
            other => panic!("expected SUBACK {id}, got {other:?}"),
        }
    }

    /// Subscribes and checks that every filter was granted the QoS it asked for.
    #[track_caller]
    pub fn subscribe_granted(
        &mut self,
        id: u16,
        filters: &[(&str, SubscriptionOptions)],
        subscription_id: Option<u32>,
    ) {
        let codes = self.subscribe(id, filters, subscription_id);
        let granted: Vec<ReasonCode> = filters.iter().map(|(_, o)| ReasonCode::granted(o.qos)).collect();
        assert_eq!(codes, granted, "SUBACK for {filters:?}");
    }

    /// Unsubscribes from `filters` and returns the UNSUBACK's reason codes.
    #[track_caller]
    pub fn unsubscribe(&mut self, id: u16, filters: &[&str]) -> Vec<ReasonCode> {
        let unsubscribe = Unsubscribe {
            packet_id: packet_id(id),
            filters: filters.iter().map(|filter| (*filter).into()).collect(),
            properties: None,
        };
        self.send(&Packet::Unsubscribe(unsubscribe));
        match self.recv() {
            Packet::UnsubAck(unsuback) if unsuback.packet_id.get() == id => unsuback.reason_codes,
            other => panic!("expected UNSUBACK {id}, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS handshake: PUBACK for QoS 1; PUBREC, PUBREL and
    /// PUBCOMP for QoS 2; for a retained QoS 0 message a PINGREQ round trip, after which the
    /// broker has stored it (a connection's packets are handled in order). The client must not
    /// receive anything else meanwhile.
    #[track_caller]
    pub fn publish(&mut self, publish: Publish) {
        let (qos, retain, id) = (publish.qos, publish.retain, publish.packet_id);
        self.send(&Packet::Publish(publish));
        match (qos, id) {
            (QoS::AtMostOnce, _) if retain => self.ping(),
            (QoS::AtMostOnce, _) => {}
            (QoS::AtLeastOnce, Some(id)) => match self.recv() {
                Packet::PubAck(ack) if ack.packet_id == id && ack.reason_code.value() < 0x80 => {}
                other => panic!("expected PUBACK {id}, got {other:?}"),
            },
            (_, Some(id)) => {
                match self.recv() {
                    Packet::PubRec(rec) if rec.packet_id == id && rec.reason_code.value() < 0x80 => {}
                    other => panic!("expected PUBREC {id}, got {other:?}"),
                }
                self.send(&Packet::PubRel(PublishResponse::new(id)));
                match self.recv() {
                    Packet::PubComp(comp) if comp.packet_id == id => {}
                    other => panic!("expected PUBCOMP {id}, got {other:?}"),
                }
            }
            (_, None) => panic!("a QoS {qos:?} PUBLISH without a packet identifier"),
        }
    }

    /// The next PUBLISH, acknowledged as its QoS requires (PUBACK, or PUBREC); PUBREL packets
    /// read on the way are answered with PUBCOMP.
    #[track_caller]
    pub fn next_publish(&mut self) -> Publish {
        let publish = self.next_publish_unacked();
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(PublishResponse::new(id))),
            (QoS::ExactlyOnce, Some(id)) => self.send(&Packet::PubRec(PublishResponse::new(id))),
            _ => {}
        }
        publish
    }

    /// The next PUBLISH, not acknowledged; PUBREL packets on the way are answered.
    #[track_caller]
    pub fn next_publish_unacked(&mut self) -> Publish {
        loop {
            match self.recv() {
                Packet::Publish(publish) => return publish,
                Packet::PubRel(rel) => self.send(&Packet::PubComp(PublishResponse::new(rel.packet_id))),
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    /// Reads and acknowledges messages until one arrives on `marker`, and returns the ones
    /// before it.
    #[track_caller]
    pub fn publishes_until(&mut self, marker: &str) -> Vec<Publish> {
        let mut received = Vec::new();
        loop {
            let publish = self.next_publish();
            if publish.topic == marker {
                return received;
            }
            received.push(publish);
        }
    }

    /// Sends PINGREQ and expects PINGRESP next, so that nothing was queued for the client before
    /// the broker read the PINGREQ.
    #[track_caller]
    pub fn expect_no_publish(&mut self) {
        self.raw.send(&PINGREQ);
        match self.recv() {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP and nothing before it, got {other:?}"),
        }
    }

    /// A PINGREQ round trip.
    #[track_caller]
    fn ping(&mut self) {
        self.raw.send(&PINGREQ);
        self.raw.expect(&PINGRESP);
    }

    /// Expects a DISCONNECT from the server and the connection's close; returns its reason code.
    #[track_caller]
    pub fn expect_disconnect(&mut self) -> ReasonCode {
        match self.recv() {
            Packet::Disconnect(disconnect) => {
                self.raw.expect_closed();
                disconnect.reason_code
            }
            other => panic!("expected DISCONNECT, got {other:?}"),
        }
    }

    /// Sends a normal DISCONNECT.
    #[track_caller]
    pub fn disconnect(mut self) {
        self.send(&Packet::Disconnect(iothub_protocol::Disconnect::default()));
        self.raw.expect_closed();
    }
}
