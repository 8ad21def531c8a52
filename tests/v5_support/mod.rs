//! MQTT 5.0 test support shared by `v5_connection.rs` and `v5_publish.rs`: packets built and read
//! with the codec (`iothub_protocol`), and a raw 5.0 client for the broker on the paused clock
//! ([`PausedBroker`]), so that every wait, expiry and delay is in virtual time.
//!
//! The packets are built with the encoder the broker answers with: these tests check what the
//! broker does, and the codec's byte-exact vectors (`crates/iothub-protocol/tests`) check the
//! wire format itself.

#![allow(dead_code)] // Each test file uses a part of it.

use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use iothub_protocol::{
    ConnAck, Connect, ConnectProperties, Disconnect, DisconnectProperties, Packet, PacketId, ProtocolVersion,
    Publish, PublishProperties, PublishResponse, QoS, ReasonCode, SubAck, Subscribe, SubscribeProperties,
    SubscriptionOptions, Will, WillProperties,
};
use iothub_test_util::{OrFail, PausedBroker, PausedClient};

/// The packet in the 5.0 wire format.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    packet.encode(ProtocolVersion::V5, &mut buf).or_fail("encoding a 5.0 packet");
    buf.to_vec()
}

/// The one 5.0 packet `bytes` hold; fails the test on anything else.
#[track_caller]
pub fn decode(bytes: &[u8]) -> Packet {
    let mut buf = BytesMut::from(bytes);
    match iothub_protocol::decode(&mut buf, ProtocolVersion::V5, usize::MAX) {
        Ok(Some(packet)) if buf.is_empty() => packet,
        other => panic!("expected one 5.0 packet, got {other:?} from {bytes:02x?}"),
    }
}

/// A packet identifier.
pub fn pid(n: u16) -> PacketId {
    PacketId::new(n).or_fail("a packet identifier of 0")
}

/// A Subscription Identifier.
pub fn sub_id(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).or_fail("a subscription identifier of 0")
}

/// A Topic Alias.
pub fn alias(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).or_fail("a topic alias of 0")
}

/// A list of User Properties.
pub fn user_properties(pairs: &[(&str, &str)]) -> Vec<(bytestring::ByteString, bytestring::ByteString)> {
    pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

/// A 5.0 CONNECT with Clean Start 1, keep-alive off, no will and no properties: Session Expiry
/// Interval 0, so the session ends with the connection.
pub fn connect(client_id: &str) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: None,
    }
}

/// A 5.0 CONNECT with the given Clean Start and properties.
pub fn connect_with(client_id: &str, clean_start: bool, properties: ConnectProperties) -> Connect {
    Connect { clean_start, properties: Some(Box::new(properties)), ..connect(client_id) }
}

/// CONNECT properties with only a Session Expiry Interval.
pub fn expiry(seconds: u32) -> ConnectProperties {
    ConnectProperties { session_expiry_interval: Some(seconds), ..ConnectProperties::default() }
}

/// A will to put in a CONNECT.
pub fn will(topic: &str, payload: &[u8], properties: WillProperties) -> Will {
    Will {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: (!properties.is_empty()).then(|| Box::new(properties)),
    }
}

/// Will properties with only a Will Delay Interval.
pub fn will_delay(seconds: u32) -> WillProperties {
    WillProperties { will_delay_interval: Some(seconds), ..WillProperties::default() }
}

/// A PUBLISH without properties; `packet_id` is used for QoS 1 and 2 only.
pub fn publish(topic: &str, payload: &[u8], qos: QoS, packet_id: u16) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: (qos != QoS::AtMostOnce).then(|| pid(packet_id)),
        payload: Bytes::copy_from_slice(payload),
        properties: None,
    }
}

/// The same PUBLISH with `properties`.
pub fn with(publish: Publish, properties: PublishProperties) -> Publish {
    Publish { properties: Some(Box::new(properties)), ..publish }
}

/// The PUBLISH's properties, or the empty set.
pub fn properties_of(publish: &Publish) -> PublishProperties {
    publish.properties.as_deref().cloned().unwrap_or_default()
}

/// A SUBSCRIBE of one filter at `qos`, with a Subscription Identifier if given.
pub fn subscribe_packet(packet_id: u16, filter: &str, qos: QoS, subscription_id: Option<u32>) -> Packet {
    let properties = subscription_id.map(|n| {
        Box::new(SubscribeProperties { subscription_identifier: Some(sub_id(n)), ..Default::default() })
    });
    let options = SubscriptionOptions { qos, ..SubscriptionOptions::default() };
    Packet::Subscribe(Subscribe {
        packet_id: pid(packet_id),
        filters: vec![(filter.into(), options)],
        properties,
    })
}

/// A DISCONNECT with `reason_code` and, if given, a Session Expiry Interval.
pub fn disconnect_packet(reason_code: ReasonCode, session_expiry: Option<u32>) -> Packet {
    let properties = session_expiry.map(|seconds| {
        Box::new(DisconnectProperties { session_expiry_interval: Some(seconds), ..Default::default() })
    });
    Packet::Disconnect(Disconnect { reason_code, properties })
}

/// A PUBACK, PUBREC, PUBREL or PUBCOMP (by `kind`) with a reason code.
pub fn response(kind: fn(PublishResponse) -> Packet, packet_id: PacketId, reason_code: ReasonCode) -> Packet {
    kind(PublishResponse { packet_id, reason_code, properties: None })
}

/// A raw MQTT 5.0 client of a [`PausedBroker`]: it sends codec-built packets and decodes what
/// it receives. Every read is bounded by `WAIT` of virtual time.
pub struct Client {
    /// The connection.
    pub raw: PausedClient,
}

impl Client {
    /// Opens a connection, sends `connect` and returns the CONNACK, whatever its reason code.
    pub async fn open(broker: &PausedBroker, connect: Connect) -> (Client, ConnAck) {
        let mut client = Client { raw: broker.client().await };
        client.send(&Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Packet::ConnAck(connack) => (client, connack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Opens a connection with `connect` and checks that CONNACK accepts it.
    pub async fn connected(broker: &PausedBroker, connect: Connect) -> Client {
        let (client, connack) = Client::open(broker, connect).await;
        assert_eq!(connack.reason_code, ReasonCode::Success, "{connack:?}");
        client
    }

    /// Connects with `connect(client_id)`: clean, no session kept, keep-alive off.
    pub async fn clean(broker: &PausedBroker, client_id: &str) -> Client {
        Client::connected(broker, connect(client_id)).await
    }

    /// Sends a packet.
    pub async fn send(&mut self, packet: &Packet) {
        self.raw.send(&encode(packet)).await;
    }

    /// Sends a PUBLISH.
    pub async fn send_publish(&mut self, publish: &Publish) {
        self.send(&Packet::Publish(publish.clone())).await;
    }

    /// The next packet from the broker.
    pub async fn recv(&mut self) -> Packet {
        let bytes = self.raw.read_packet().await;
        decode(&bytes)
    }

    /// The next packet, which must be a PUBLISH; it is not acknowledged.
    pub async fn expect_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Completes the broker's delivery of `publish`: PUBACK for QoS 1; PUBREC, the broker's
    /// PUBREL, PUBCOMP for QoS 2.
    pub async fn ack(&mut self, publish: &Publish) {
        let Some(packet_id) = publish.packet_id else { return };
        if publish.qos == QoS::AtLeastOnce {
            self.send(&Packet::PubAck(PublishResponse::new(packet_id))).await;
            return;
        }
        self.send(&Packet::PubRec(PublishResponse::new(packet_id))).await;
        match self.recv().await {
            Packet::PubRel(rel) if rel.packet_id == packet_id => {}
            other => panic!("expected PUBREL {packet_id}, got {other:?}"),
        }
        self.send(&Packet::PubComp(PublishResponse::new(packet_id))).await;
    }

    /// The next PUBLISH, acknowledged.
    pub async fn next_message(&mut self) -> Publish {
        let publish = self.expect_publish().await;
        self.ack(&publish).await;
        publish
    }

    /// Subscribes to one filter and checks that the SUBACK grants `qos`.
    pub async fn subscribe(&mut self, packet_id: u16, filter: &str, qos: QoS, subscription_id: Option<u32>) {
        self.send(&subscribe_packet(packet_id, filter, qos, subscription_id)).await;
        match self.recv().await {
            Packet::SubAck(SubAck { packet_id: id, reason_codes, .. }) => {
                assert_eq!(id, pid(packet_id));
                assert_eq!(reason_codes, [ReasonCode::granted(qos)], "SUBACK for {filter}");
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and completes the QoS handshake; returns the reason code of the PUBACK or
    /// PUBREC (`Success` for QoS 0). The client must not be subscribed to what it publishes.
    pub async fn publish(&mut self, publish: Publish) -> ReasonCode {
        let (qos, packet_id) = (publish.qos, publish.packet_id);
        self.send_publish(&publish).await;
        let Some(packet_id) = packet_id else {
            return ReasonCode::Success;
        };
        match (qos, self.recv().await) {
            (QoS::AtLeastOnce, Packet::PubAck(ack)) if ack.packet_id == packet_id => ack.reason_code,
            (QoS::ExactlyOnce, Packet::PubRec(rec)) if rec.packet_id == packet_id => {
                if rec.reason_code.value() < 0x80 {
                    self.send(&Packet::PubRel(PublishResponse::new(packet_id))).await;
                    match self.recv().await {
                        Packet::PubComp(comp) if comp.packet_id == packet_id => {}
                        other => panic!("expected PUBCOMP {packet_id}, got {other:?}"),
                    }
                }
                rec.reason_code
            }
            (_, other) => panic!("expected the acknowledgement of PUBLISH {packet_id}, got {other:?}"),
        }
    }

    /// Reads the broker's DISCONNECT, checks its reason code, and that the connection then
    /// closes [MQTT-3.14.4-2].
    pub async fn expect_disconnect(&mut self, reason_code: ReasonCode) {
        match self.recv().await {
            Packet::Disconnect(disconnect) => {
                assert_eq!(disconnect.reason_code, reason_code, "{disconnect:?}");
                // The server never sends a Session Expiry Interval [MQTT-3.14.2-2].
                let expiry = disconnect.properties.as_ref().and_then(|p| p.session_expiry_interval);
                assert_eq!(expiry, None, "{disconnect:?}");
            }
            other => panic!("expected DISCONNECT {reason_code:?}, got {other:?}"),
        }
        self.raw.expect_closed().await;
    }

    /// Asserts that nothing arrives, and the connection stays open, for `quiet` of virtual time.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        self.raw.expect_silence(quiet).await;
    }

    /// Asserts that the connection closes without another byte.
    pub async fn expect_closed(&mut self) {
        self.raw.expect_closed().await;
    }

    /// Checks that the connection is served, by a PINGREQ round trip: whatever the broker wrote
    /// before it read the PINGREQ comes first, so this fails on an unexpected packet.
    pub async fn ping(&mut self) {
        self.send(&Packet::PingReq).await;
        match self.recv().await {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Sends DISCONNECT 0x00 and waits for the broker to close the connection, which it does
    /// once the session is stored or discarded.
    pub async fn disconnect(mut self) {
        self.send(&disconnect_packet(ReasonCode::Success, None)).await;
        self.raw.expect_closed().await;
    }

    /// Closes the socket without DISCONNECT, as a client that lost its network does.
    pub fn drop_connection(self) {
        drop(self);
    }
}
