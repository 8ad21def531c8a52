//! MQTT 5.0 publications: Receive Maximum both ways, Maximum Packet Size both ways (properties
//! included), Topic Aliases both ways, message expiry (queued, in flight, retained), the
//! properties forwarded unaltered, the errors a PUBLISH can be (wildcard Response Topic, payload
//! not in its indicated format, a client's Subscription Identifier), PUBACK 0x10, and a real 5.0
//! client, rumqttc, with a Subscription Identifier and User Properties.
//!
//! Each test names the 5.0 statement it checks, `mqtt5_` and its number (5.0 numbering), or
//! `mqtt5_section_` and the section where the rule has no number. The raw-client tests run the
//! broker on the paused clock: silence is checked in virtual time, which passes only once the
//! broker has nothing left to do, and expiry is exact.

mod v5_support;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use bytes::Bytes;
use iothub_protocol::{
    ConnectProperties, Packet, PayloadFormat, ProtocolVersion, PublishProperties, PublishResponse, QoS,
    ReasonCode,
};
use iothub_test_util::{OrFail, PausedBroker, TestBroker, WAIT};
use v5_support::{
    alias, connect, connect_with, encode, expiry, pid, properties_of, publish, response, user_properties,
    with, Client,
};

/// Lets `time` pass on the paused clock, running every timer of the broker that falls due in it.
/// Not a synchronisation: the virtual clock only moves once every task is idle.
async fn pass(time: Duration) {
    tokio::time::sleep(time).await;
}

/// Long enough, in virtual time, for the broker to send anything it was going to send.
const QUIET: Duration = Duration::from_secs(1);

/// A subscriber connected with `properties` (Clean Start 1), subscribed to each filter at
/// `qos`; the filters get Subscription Identifiers where one is given.
async fn subscriber(
    broker: &PausedBroker,
    client_id: &str,
    properties: ConnectProperties,
    filters: &[(&str, QoS, Option<u32>)],
) -> Client {
    let mut client = Client::connected(broker, connect_with(client_id, true, properties)).await;
    for (n, (filter, qos, id)) in (1..).zip(filters) {
        client.subscribe(n, filter, *qos, *id).await;
    }
    client
}

/// CONNECT properties with a Receive Maximum.
fn receive_maximum(n: u16) -> ConnectProperties {
    ConnectProperties { receive_maximum: std::num::NonZeroU16::new(n), ..ConnectProperties::default() }
}

/// Publishes each payload at QoS 1 to `topic` and checks each PUBACK is `expected`.
async fn publish_all(publisher: &mut Client, topic: &str, payloads: &[&[u8]], expected: ReasonCode) {
    for (n, payload) in (1..).zip(payloads) {
        let code = publisher.publish(publish(topic, payload, QoS::AtLeastOnce, n)).await;
        assert_eq!(code, expected, "PUBACK for {payload:?}");
    }
}

// --- Receive Maximum (4.9) ---

/// [MQTT-3.3.4-9], [MQTT-4.9.0-2]: a client with Receive Maximum 1 never has more than one QoS 1
/// PUBLISH unacknowledged: of three queued messages, the second comes only after the PUBACK of
/// the first, and so on; other packets are not held back [MQTT-3.3.4-10].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_4_9_server_sends_no_more_than_the_clients_receive_maximum() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "one-at-a-time", receive_maximum(1), &[("rm/t", QoS::AtLeastOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    publish_all(&mut publisher, "rm/t", &[b"1", b"2", b"3"], ReasonCode::Success).await;
    for expected in [b"1", b"2", b"3"] {
        let message = sub.expect_publish().await;
        assert_eq!(&message.payload[..], expected);
        sub.expect_silence(QUIET).await;
        sub.ping().await;
        sub.ack(&message).await;
    }
    sub.expect_silence(QUIET).await;
}

/// [MQTT-4.9.0-2], 4.9: a QoS 2 PUBLISH holds its place in the send quota until its PUBCOMP,
/// not its PUBREC.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_9_0_2_qos_2_holds_the_send_quota_until_pubcomp() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "qos2-quota", receive_maximum(1), &[("rm2/t", QoS::ExactlyOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, payload) in (1..).zip([&b"1"[..], b"2"]) {
        let code = publisher.publish(publish("rm2/t", payload, QoS::ExactlyOnce, n)).await;
        assert_eq!(code, ReasonCode::Success);
    }
    let first = sub.expect_publish().await;
    let id = first.packet_id.expect("a QoS 2 packet identifier");
    sub.send(&Packet::PubRec(PublishResponse::new(id))).await;
    assert_eq!(sub.recv().await, Packet::PubRel(PublishResponse::new(id)));
    sub.expect_silence(QUIET).await;
    sub.send(&Packet::PubComp(PublishResponse::new(id))).await;
    assert_eq!(&sub.expect_publish().await.payload[..], b"2");
}

/// [MQTT-4.3.3-4], [MQTT-4.4.0-2], 4.9: a PUBREC with a Reason Code of 0x80 or more ends the QoS
/// 2 exchange: no PUBREL follows, the send quota is given back at once (the next message comes
/// to a client with Receive Maximum 1), and the message is never re-sent, not even after a
/// reconnect.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_3_3_4_pubrec_with_an_error_ends_the_exchange() {
    let broker = PausedBroker::start().await;
    let properties = ConnectProperties { receive_maximum: std::num::NonZeroU16::new(1), ..expiry(60) };
    let mut sub = subscriber(&broker, "refuses", properties, &[("rec/t", QoS::ExactlyOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, payload) in (1..).zip([&b"refused"[..], b"accepted"]) {
        let code = publisher.publish(publish("rec/t", payload, QoS::ExactlyOnce, n)).await;
        assert_eq!(code, ReasonCode::Success);
    }
    let refused = sub.expect_publish().await;
    assert_eq!(&refused.payload[..], b"refused");
    let id = refused.packet_id.expect("a QoS 2 packet identifier");
    sub.send(&response(Packet::PubRec, id, ReasonCode::UnspecifiedError)).await;
    let accepted = sub.expect_publish().await;
    assert_eq!(&accepted.payload[..], b"accepted");
    sub.ack(&accepted).await;
    sub.expect_silence(QUIET).await;
    sub.drop_connection();
    let (mut sub, connack) = Client::open(&broker, connect_with("refuses", false, expiry(60))).await;
    assert!(connack.session_present);
    sub.expect_silence(QUIET).await;
}

/// Fails unless `packet` is a PUBREC for packet identifier `id`.
fn expect_pubrec(packet: &Packet, id: u16) {
    assert!(matches!(packet, Packet::PubRec(r) if r.packet_id == pid(id)), "{packet:?}");
}

/// [MQTT-3.3.4-7], 3.3.4: CONNACK tells the client the server's Receive Maximum
/// (`server.receive_maximum = 2`), and a client with more QoS 2 PUBLISHes unreleased than that
/// gets DISCONNECT 0x93 (Receive Maximum exceeded). A PUBREL gives a place back, and a re-sent
/// PUBLISH whose identifier awaits its PUBREL is not a new one [MQTT-4.3.3-10].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_4_7_client_beyond_the_servers_receive_maximum_gets_disconnect_0x93() {
    let broker = PausedBroker::with_config("[server]\nreceive_maximum = 2\n").await;
    let (mut client, connack) = Client::open(&broker, connect("eager")).await;
    let properties = connack.properties.expect("CONNACK properties");
    assert_eq!(properties.receive_maximum, std::num::NonZeroU16::new(2));
    for id in [1, 2] {
        client.send_publish(&publish("rm/in", b"x", QoS::ExactlyOnce, id)).await;
        expect_pubrec(&client.recv().await, id);
    }
    client.send(&Packet::PubRel(PublishResponse::new(pid(1)))).await;
    assert_eq!(client.recv().await, Packet::PubComp(PublishResponse::new(pid(1))));
    client.send_publish(&publish("rm/in", b"x", QoS::ExactlyOnce, 3)).await;
    expect_pubrec(&client.recv().await, 3);
    let resent = iothub_protocol::Publish { dup: true, ..publish("rm/in", b"x", QoS::ExactlyOnce, 2) };
    client.send_publish(&resent).await;
    expect_pubrec(&client.recv().await, 2);
    client.send_publish(&publish("rm/in", b"x", QoS::ExactlyOnce, 4)).await;
    client.expect_disconnect(ReasonCode::ReceiveMaximumExceeded).await;
}

// --- Maximum Packet Size ---

/// The size of the QoS 1 PUBLISH the broker would send for a message on `topic` with a payload
/// of `payload_len` bytes and `properties`.
fn delivered_size(topic: &str, payload_len: usize, properties: PublishProperties) -> usize {
    let publish = with(publish(topic, &vec![b'x'; payload_len], QoS::AtLeastOnce, 1), properties);
    Packet::Publish(publish).size(ProtocolVersion::V5)
}

/// The payload length that makes the QoS 1 PUBLISH on `topic`, with `properties`, exactly
/// `size` bytes.
fn payload_for_size(topic: &str, size: usize, properties: PublishProperties) -> usize {
    let payload = size - delivered_size(topic, 0, properties.clone());
    assert_eq!(delivered_size(topic, payload, properties), size, "the remaining length grew a byte");
    payload
}

/// [MQTT-3.1.2-24], [MQTT-3.1.2-25]: a PUBLISH larger than the client's Maximum Packet Size is
/// not sent, and the server behaves as if it had been: the next one, of exactly the maximum,
/// is sent even with Receive Maximum 1, and the discarded one is not re-sent after a reconnect.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_25_publish_above_the_clients_maximum_packet_size_is_discarded() {
    let broker = PausedBroker::start().await;
    let properties = ConnectProperties {
        maximum_packet_size: NonZeroU32::new(64),
        receive_maximum: std::num::NonZeroU16::new(1),
        ..expiry(60)
    };
    let mut sub = subscriber(&broker, "small-buffer", properties, &[("mps/t", QoS::AtLeastOnce, None)]).await;
    let fits = payload_for_size("mps/t", 64, PublishProperties::default());
    let mut publisher = Client::clean(&broker, "publisher").await;
    let too_large = vec![b'L'; fits + 1];
    let largest = vec![b'S'; fits];
    publish_all(&mut publisher, "mps/t", &[&too_large, &largest], ReasonCode::Success).await;
    let delivered = sub.next_message().await;
    assert_eq!(delivered.payload, largest);
    assert_eq!(Packet::Publish(delivered).size(ProtocolVersion::V5), 64);
    sub.expect_silence(QUIET).await;
    sub.drop_connection();
    let (mut sub, connack) = Client::open(&broker, connect_with("small-buffer", false, expiry(60))).await;
    assert!(connack.session_present);
    sub.expect_silence(QUIET).await;
}

/// [MQTT-3.1.2-24]: the size that must fit is the whole packet the server would send, properties
/// included: User Properties, the Message Expiry Interval and the Subscription Identifier each
/// make a message that fits without them too large, and it is discarded; the same messages
/// without them are sent.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_24_maximum_packet_size_counts_the_properties() {
    const MAX: usize = 100;
    let broker = PausedBroker::start().await;
    let properties = ConnectProperties {
        maximum_packet_size: NonZeroU32::new(100),
        receive_maximum: std::num::NonZeroU16::new(1),
        ..ConnectProperties::default()
    };
    let filters = [("mps/plain", QoS::AtLeastOnce, None), ("mps/id", QoS::AtLeastOnce, Some(300))];
    let mut sub = subscriber(&broker, "counts", properties, &filters).await;
    let plain = payload_for_size("mps/plain", MAX, PublishProperties::default());
    let with_id =
        PublishProperties { subscription_identifiers: vec![v5_support::sub_id(300)], ..Default::default() };
    let id_fits = payload_for_size("mps/id", MAX, with_id);
    let user = PublishProperties { user_properties: user_properties(&[("k", "v")]), ..Default::default() };
    let expiring = PublishProperties { message_expiry_interval: Some(100), ..Default::default() };

    let mut publisher = Client::clean(&broker, "publisher").await;
    let discarded = [
        with(publish("mps/plain", &vec![b'u'; plain], QoS::AtLeastOnce, 1), user),
        with(publish("mps/plain", &vec![b'e'; plain], QoS::AtLeastOnce, 2), expiring),
        publish("mps/id", &vec![b'i'; id_fits + 3], QoS::AtLeastOnce, 3),
    ];
    for message in discarded {
        assert_eq!(publisher.publish(message).await, ReasonCode::Success);
    }
    let sent = [
        publish("mps/plain", &vec![b'p'; plain], QoS::AtLeastOnce, 4),
        publish("mps/id", &vec![b'd'; id_fits], QoS::AtLeastOnce, 5),
    ];
    for message in sent.clone() {
        assert_eq!(publisher.publish(message).await, ReasonCode::Success);
    }
    for expected in sent {
        let delivered = sub.next_message().await;
        assert_eq!((&delivered.topic, &delivered.payload), (&expected.topic, &expected.payload));
        assert_eq!(Packet::Publish(delivered).size(ProtocolVersion::V5), MAX);
    }
    sub.expect_silence(QUIET).await;
}

/// [MQTT-3.1.2-24], [MQTT-3.1.2-26]: a Topic Alias is a property too. A message that fits the
/// client's Maximum Packet Size with its whole topic and no alias must still fit when the
/// server gives the topic a new alias, which adds the alias to the whole topic: no PUBLISH is
/// larger than the maximum, and the aliases the client gets stay consistent.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_24_a_new_topic_alias_never_makes_a_publish_too_large() {
    const MAX: usize = 64;
    let broker = PausedBroker::start().await;
    let properties = ConnectProperties {
        topic_alias_maximum: Some(5),
        maximum_packet_size: NonZeroU32::new(64),
        ..ConnectProperties::default()
    };
    let mut sub = subscriber(&broker, "aliased", properties, &[("mpsa/t", QoS::AtMostOnce, None)]).await;
    let base = Packet::Publish(publish("mpsa/t", b"", QoS::AtMostOnce, 0)).size(ProtocolVersion::V5);
    let largest = vec![b'L'; MAX - base];
    let smaller = vec![b's'; MAX - base - 8];
    let mut publisher = Client::clean(&broker, "publisher").await;
    for payload in [&largest, &smaller, &largest, &smaller] {
        publisher.publish(publish("mpsa/t", payload, QoS::AtMostOnce, 0)).await;
    }
    let mut table = AliasTable { max: 5, topics: HashMap::new() };
    for expected in [&largest, &smaller, &largest, &smaller] {
        let bytes = sub.raw.read_packet().await;
        assert!(bytes.len() <= MAX, "a PUBLISH of {} bytes for a maximum of {MAX}", bytes.len());
        let Packet::Publish(received) = v5_support::decode(&bytes) else { panic!("expected PUBLISH") };
        assert_eq!(
            (table.resolve(&received), &received.payload),
            ("mpsa/t".to_owned(), &Bytes::from(expected.clone()))
        );
    }
}

/// [MQTT-3.1.2-24], [MQTT-3.1.2-25]: the Maximum Packet Size is the new connection's: a PUBLISH
/// left unacknowledged on a connection without a maximum, too large for the maximum of the
/// connection that resumes the session, is not re-sent but discarded as if delivered, so it
/// does not hold the client's only place (Receive Maximum 1) either.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_25_unacknowledged_publish_too_large_for_the_new_connection_is_discarded() {
    let broker = PausedBroker::start().await;
    let mut sub = subscriber(&broker, "shrinks", expiry(60), &[("shrink/t", QoS::AtLeastOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    publish_all(&mut publisher, "shrink/t", &[&[b'x'; 100]], ReasonCode::Success).await;
    assert_eq!(sub.expect_publish().await.payload.len(), 100);
    sub.drop_connection();
    let smaller = ConnectProperties {
        maximum_packet_size: NonZeroU32::new(64),
        receive_maximum: std::num::NonZeroU16::new(1),
        ..expiry(60)
    };
    let (mut sub, connack) = Client::open(&broker, connect_with("shrinks", false, smaller)).await;
    assert!(connack.session_present);
    sub.expect_silence(QUIET).await;
    publish_all(&mut publisher, "shrink/t", &[b"small"], ReasonCode::Success).await;
    let received = sub.next_message().await;
    assert_eq!((received.dup, &received.payload[..]), (false, &b"small"[..]));
}

/// [MQTT-3.2.2-15], 3.2.2.3.6: CONNACK tells the server's Maximum Packet Size
/// (`server.max_packet_size`); a packet of that size is accepted, and a larger one gets
/// DISCONNECT 0x95 (Packet too large).
#[tokio::test(start_paused = true)]
async fn mqtt5_3_2_2_15_packet_above_the_servers_maximum_gets_disconnect_0x95() {
    let broker = PausedBroker::with_config("[server]\nmax_packet_size = 32\n").await;
    let (mut client, connack) = Client::open(&broker, connect("big")).await;
    let properties = connack.properties.expect("CONNACK properties");
    assert_eq!(properties.maximum_packet_size, NonZeroU32::new(32));
    let largest = publish(
        "big",
        &vec![b'x'; payload_for_size("big", 32, PublishProperties::default())],
        QoS::AtLeastOnce,
        1,
    );
    assert_eq!(encode(&Packet::Publish(largest.clone())).len(), 32);
    assert_eq!(client.publish(largest).await, ReasonCode::NoMatchingSubscribers);
    let too_large = publish("big", &[b'x'; 30], QoS::AtLeastOnce, 2);
    client.send_publish(&too_large).await;
    client.expect_disconnect(ReasonCode::PacketTooLarge).await;
}

// --- Topic aliases ---

/// PUBLISH properties with only a Topic Alias.
fn topic_alias(n: u16) -> PublishProperties {
    PublishProperties { topic_alias: Some(alias(n)), ..PublishProperties::default() }
}

/// [MQTT-3.3.2-12], 3.3.2.3.4: a client sets a Topic Alias with a topic and uses it with an
/// empty one; subscribers get the full topic. Every alias up to the server's maximum (10) is
/// accepted, and a new topic with an alias replaces its mapping.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_12_inbound_topic_alias_reaches_subscribers_as_its_topic() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "sub", ConnectProperties::default(), &[("alias/#", QoS::AtMostOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "aliaser").await;
    let sent = [
        ("alias/a", 1, "alias/a"),
        ("", 1, "alias/a"),
        ("alias/ten", 10, "alias/ten"),
        ("", 10, "alias/ten"),
        ("alias/b", 1, "alias/b"),
        ("", 1, "alias/b"),
    ];
    for (n, (topic, number, _)) in sent.iter().enumerate() {
        let payload = n.to_string();
        publisher
            .publish(with(publish(topic, payload.as_bytes(), QoS::AtMostOnce, 0), topic_alias(*number)))
            .await;
    }
    for (n, (_, _, expected)) in sent.iter().enumerate() {
        let received = sub.expect_publish().await;
        assert_eq!((&*received.topic, &received.payload[..]), (*expected, n.to_string().as_bytes()));
        assert_eq!(properties_of(&received).topic_alias, None, "the subscriber takes no aliases");
    }
}

/// [MQTT-3.3.2-9], [MQTT-3.3.2-8], 3.3.4: a Topic Alias above the Topic Alias Maximum of the
/// CONNACK (10), or 0, gets DISCONNECT 0x94 (Topic Alias invalid).
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_9_topic_alias_above_the_maximum_gets_disconnect_0x94() {
    let broker = PausedBroker::start().await;
    let mut client = Client::clean(&broker, "alias-11").await;
    client.send_publish(&with(publish("alias/t", b"x", QoS::AtMostOnce, 0), topic_alias(11))).await;
    client.expect_disconnect(ReasonCode::TopicAliasInvalid).await;

    // Alias 0 cannot be built with the codec: the alias's two bytes are patched.
    let mut client = Client::clean(&broker, "alias-0").await;
    let mut bytes =
        encode(&Packet::Publish(with(publish("alias/t", b"x", QoS::AtMostOnce, 0), topic_alias(1))));
    let at = bytes.windows(3).position(|w| w == [0x23, 0x00, 0x01]).expect("the Topic Alias property");
    bytes[at + 2] = 0x00;
    client.raw.send(&bytes).await;
    client.expect_disconnect(ReasonCode::TopicAliasInvalid).await;
}

/// 3.3.4, 3.3.2.1: an empty topic with an alias that has no mapping, or with no alias at all,
/// is a Protocol Error: DISCONNECT 0x82.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_3_4_empty_topic_with_an_unknown_alias_gets_disconnect_0x82() {
    let broker = PausedBroker::start().await;
    let mut client = Client::clean(&broker, "unknown-alias").await;
    client.send_publish(&with(publish("alias/t", b"x", QoS::AtMostOnce, 0), topic_alias(1))).await;
    client.send_publish(&with(publish("", b"x", QoS::AtMostOnce, 0), topic_alias(2))).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;

    let mut client = Client::clean(&broker, "no-alias").await;
    client.send_publish(&publish("", b"x", QoS::AtMostOnce, 0)).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
}

/// [MQTT-3.3.2-7]: the server does not carry a client's Topic Alias mappings into its next
/// connection, even when the session is resumed: using an old alias is a Protocol Error.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_7_inbound_topic_aliases_do_not_outlive_the_connection() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "sub", ConnectProperties::default(), &[("alias/#", QoS::AtMostOnce, None)]).await;
    let mut client = Client::connected(&broker, connect_with("forgetful", true, expiry(60))).await;
    client.publish(with(publish("alias/old", b"set", QoS::AtMostOnce, 0), topic_alias(1))).await;
    assert_eq!(&*sub.expect_publish().await.topic, "alias/old");
    client.disconnect().await;
    let (mut client, connack) = Client::open(&broker, connect_with("forgetful", false, expiry(60))).await;
    assert!(connack.session_present);
    client.send_publish(&with(publish("", b"stale", QoS::AtMostOnce, 0), topic_alias(1))).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
    sub.expect_silence(QUIET).await;
}

/// A client's view of the Topic Aliases the server sends it: checks each alias against the
/// client's maximum and resolves the topic of each PUBLISH as the client would.
struct AliasTable {
    /// The client's Topic Alias Maximum.
    max: u16,
    /// Topic of each alias set so far.
    topics: HashMap<u16, String>,
}

impl AliasTable {
    /// The topic `publish` stands for.
    fn resolve(&mut self, publish: &iothub_protocol::Publish) -> String {
        let Some(alias) = properties_of(publish).topic_alias else {
            assert!(!publish.topic.is_empty(), "an empty topic without an alias");
            return publish.topic.to_string();
        };
        assert!(alias.get() <= self.max, "alias {alias} above the client's maximum {}", self.max);
        if publish.topic.is_empty() {
            return self
                .topics
                .get(&alias.get())
                .cloned()
                .unwrap_or_else(|| panic!("alias {alias} was never set"));
        }
        self.topics.insert(alias.get(), publish.topic.to_string());
        publish.topic.to_string()
    }
}

/// [MQTT-3.1.2-26], [MQTT-3.3.2-11]: a client with Topic Alias Maximum 5 gets the second message
/// on a topic with an empty topic and the alias the first set, and never an alias above 5,
/// whatever the number of topics; every PUBLISH resolves to the topic it was published to.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_26_outbound_aliases_stay_within_the_clients_maximum() {
    let broker = PausedBroker::start().await;
    let properties = ConnectProperties { topic_alias_maximum: Some(5), ..ConnectProperties::default() };
    let mut sub = subscriber(&broker, "aliased", properties, &[("out/#", QoS::AtMostOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    let mut topics = vec!["out/first".to_owned(), "out/first".to_owned()];
    for _round in 0..2 {
        topics.extend((0..8).map(|n| format!("out/{n}")));
    }
    topics.push("out/first".to_owned());
    for topic in &topics {
        publisher.publish(publish(topic, topic.as_bytes(), QoS::AtMostOnce, 0)).await;
    }
    let mut table = AliasTable { max: 5, topics: HashMap::new() };
    let first = sub.expect_publish().await;
    let first_alias = properties_of(&first).topic_alias.expect("an alias for a new topic");
    assert_eq!((&*first.topic, table.resolve(&first)), ("out/first", "out/first".to_owned()));
    let second = sub.expect_publish().await;
    assert_eq!((&*second.topic, properties_of(&second).topic_alias), ("", Some(first_alias)));
    assert_eq!(table.resolve(&second), "out/first");
    for expected in &topics[2..] {
        let received = sub.expect_publish().await;
        assert_eq!(&table.resolve(&received), expected);
        assert_eq!(&received.payload[..], expected.as_bytes());
    }
}

/// [MQTT-3.1.2-27]: a client that sets no Topic Alias Maximum, or 0, never gets a Topic Alias.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_27_no_outbound_alias_without_a_topic_alias_maximum() {
    let broker = PausedBroker::start().await;
    let zero = ConnectProperties { topic_alias_maximum: Some(0), ..ConnectProperties::default() };
    let filter = [("noalias/#", QoS::AtMostOnce, None)];
    let mut subs = [
        subscriber(&broker, "absent", ConnectProperties::default(), &filter).await,
        subscriber(&broker, "zero", zero, &filter).await,
    ];
    let mut publisher = Client::clean(&broker, "publisher").await;
    for _ in 0..3 {
        publisher.publish(publish("noalias/t", b"again", QoS::AtMostOnce, 0)).await;
    }
    for sub in &mut subs {
        for _ in 0..3 {
            let received = sub.expect_publish().await;
            assert_eq!(&*received.topic, "noalias/t");
            assert_eq!(properties_of(&received).topic_alias, None);
        }
    }
}

/// [MQTT-3.3.2-7]: the server's Topic Alias mappings end with the connection too: a PUBLISH
/// re-sent after a reconnect carries its whole topic, and the next one on that topic sets an
/// alias afresh before using it.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_7_outbound_aliases_start_afresh_on_a_new_connection() {
    let broker = PausedBroker::start().await;
    let properties = ConnectProperties { topic_alias_maximum: Some(5), ..expiry(60) };
    let mut sub =
        subscriber(&broker, "resumes", properties.clone(), &[("resume/t", QoS::AtLeastOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    publish_all(&mut publisher, "resume/t", &[b"1", b"2"], ReasonCode::Success).await;
    let mut table = AliasTable { max: 5, topics: HashMap::new() };
    let first = sub.next_message().await;
    assert_eq!(table.resolve(&first), "resume/t");
    let second = sub.expect_publish().await;
    assert_eq!(&*second.topic, "", "the alias is used on the connection that set it");
    sub.drop_connection();

    let (mut sub, connack) = Client::open(&broker, connect_with("resumes", false, properties)).await;
    assert!(connack.session_present);
    let mut table = AliasTable { max: 5, topics: HashMap::new() };
    let resent = sub.expect_publish().await;
    assert!(resent.dup);
    assert_eq!((&*resent.topic, &resent.payload[..]), ("resume/t", &b"2"[..]));
    assert_eq!(table.resolve(&resent), "resume/t");
    sub.ack(&resent).await;
    publish_all(&mut publisher, "resume/t", &[b"3", b"4"], ReasonCode::Success).await;
    for payload in [b"3", b"4"] {
        let received = sub.next_message().await;
        assert_eq!((table.resolve(&received), &received.payload[..]), ("resume/t".to_owned(), &payload[..]));
    }
}

// --- Message expiry ---

/// PUBLISH properties with only a Message Expiry Interval.
fn expiring(seconds: u32) -> PublishProperties {
    PublishProperties { message_expiry_interval: Some(seconds), ..PublishProperties::default() }
}

/// [MQTT-3.3.2-5], [MQTT-3.3.2-6]: a message that expires (2 s) while queued for an offline
/// session is deleted, and does not hold up the ones queued behind it; one that has not (10 s)
/// is sent with what is left of its interval (7 s after 3 s), and one without an interval is
/// sent without one.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_5_expired_message_is_not_sent_and_does_not_stall_the_queue() {
    let broker = PausedBroker::start().await;
    let sub = subscriber(&broker, "away", expiry(300), &[("exp/#", QoS::AtLeastOnce, None)]).await;
    sub.disconnect().await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    let queued = [
        with(publish("exp/short", b"short", QoS::AtLeastOnce, 1), expiring(2)),
        publish("exp/forever", b"forever", QoS::AtLeastOnce, 2),
        with(publish("exp/long", b"long", QoS::AtLeastOnce, 3), expiring(10)),
    ];
    for message in queued {
        assert_eq!(publisher.publish(message).await, ReasonCode::Success);
    }
    pass(Duration::from_secs(3)).await;
    let (mut sub, connack) = Client::open(&broker, connect_with("away", false, expiry(300))).await;
    assert!(connack.session_present);
    let forever = sub.next_message().await;
    assert_eq!((&*forever.topic, properties_of(&forever).message_expiry_interval), ("exp/forever", None));
    let long = sub.next_message().await;
    assert_eq!((&*long.topic, properties_of(&long).message_expiry_interval), ("exp/long", Some(7)));
    sub.expect_silence(QUIET).await;
}

/// [MQTT-3.3.2-6]: the interval a connected subscriber gets is the publisher's less the time the
/// message waited in the server: 10 s at once, 6 s after waiting 4 s behind an unacknowledged
/// message for a client with Receive Maximum 1.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_6_forwarded_expiry_is_what_is_left() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "slow", receive_maximum(1), &[("left/#", QoS::AtLeastOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    assert_eq!(
        publisher.publish(with(publish("left/a", b"a", QoS::AtLeastOnce, 1), expiring(10))).await,
        ReasonCode::Success
    );
    let first = sub.expect_publish().await;
    assert_eq!(properties_of(&first).message_expiry_interval, Some(10));
    assert_eq!(
        publisher.publish(with(publish("left/b", b"b", QoS::AtLeastOnce, 2), expiring(10))).await,
        ReasonCode::Success
    );
    sub.expect_silence(Duration::from_secs(4)).await;
    sub.ack(&first).await;
    let second = sub.expect_publish().await;
    assert_eq!((&*second.topic, properties_of(&second).message_expiry_interval), ("left/b", Some(6)));
}

/// [MQTT-4.4.0-1], [MQTT-4.3.3-7]: a PUBLISH sent and not acknowledged is re-sent, with DUP 1
/// and its packet identifier, when the session resumes, even if its Message Expiry Interval has
/// passed meanwhile: expiry only applies to messages not yet sent.
#[tokio::test(start_paused = true)]
async fn mqtt5_4_4_0_1_unacknowledged_message_is_resent_even_if_expired() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "unacked", expiry(300), &[("inflight/t", QoS::AtLeastOnce, None)]).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    assert_eq!(
        publisher.publish(with(publish("inflight/t", b"fragile", QoS::AtLeastOnce, 1), expiring(2))).await,
        ReasonCode::Success
    );
    let sent = sub.expect_publish().await;
    assert!(!sent.dup);
    sub.drop_connection();
    pass(Duration::from_secs(3)).await;
    let (mut sub, connack) = Client::open(&broker, connect_with("unacked", false, expiry(300))).await;
    assert!(connack.session_present);
    let resent = sub.expect_publish().await;
    assert!(resent.dup);
    assert_eq!((resent.packet_id, &resent.payload[..]), (sent.packet_id, &b"fragile"[..]));
    let interval = properties_of(&resent).message_expiry_interval.expect("the interval, what is left of it");
    assert!(interval <= 2, "{interval}");
    sub.ack(&resent).await;
    sub.expect_silence(QUIET).await;
}

/// 3.3.1.3, [MQTT-3.3.2-5]: a retained message with a Message Expiry Interval is sent to new
/// subscribers, with what is left of its interval, until it expires; then it is not, and the
/// retained messages without an interval still are.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_3_1_3_expired_retained_message_is_not_sent() {
    let broker = PausedBroker::start().await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    let retained = |message: iothub_protocol::Publish| iothub_protocol::Publish { retain: true, ..message };
    let short = retained(with(publish("ret/short", b"short", QoS::AtLeastOnce, 1), expiring(2)));
    let kept = retained(publish("ret/kept", b"kept", QoS::AtLeastOnce, 2));
    for message in [short, kept] {
        assert_eq!(publisher.publish(message).await, ReasonCode::NoMatchingSubscribers);
    }
    let mut early =
        subscriber(&broker, "early", ConnectProperties::default(), &[("ret/#", QoS::AtLeastOnce, None)])
            .await;
    let mut got = [early.next_message().await, early.next_message().await];
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    let seen: Vec<_> =
        got.iter().map(|p| (&*p.topic, p.retain, properties_of(p).message_expiry_interval)).collect();
    assert_eq!(seen, [("ret/kept", true, None), ("ret/short", true, Some(2))]);

    pass(Duration::from_secs(3)).await;
    let mut late =
        subscriber(&broker, "late", ConnectProperties::default(), &[("ret/#", QoS::AtLeastOnce, None)]).await;
    assert_eq!(&*late.next_message().await.topic, "ret/kept");
    late.expect_silence(QUIET).await;
}

// --- Properties and PUBLISH errors ---

/// [MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17], [MQTT-3.3.2-18],
/// [MQTT-3.3.2-20]: the Payload Format Indicator, Response Topic, Correlation Data, User
/// Properties (several, with repeated names and pairs, in their order) and Content Type reach
/// every subscriber unaltered, whatever its QoS.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_17_properties_are_forwarded_unaltered_and_in_order() {
    let broker = PausedBroker::start().await;
    let mut subs = [
        subscriber(&broker, "qos1", ConnectProperties::default(), &[("props/#", QoS::AtLeastOnce, None)])
            .await,
        subscriber(&broker, "qos0", ConnectProperties::default(), &[("props/t", QoS::AtMostOnce, None)])
            .await,
    ];
    let properties = PublishProperties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        content_type: Some("application/json; charset=utf-8".into()),
        response_topic: Some("replies/42".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr\xff")),
        user_properties: user_properties(&[("k", "v1"), ("a", "x"), ("k", "v2"), ("k", "v1"), ("é", "ü")]),
        ..PublishProperties::default()
    };
    let mut publisher = Client::clean(&broker, "publisher").await;
    let message = with(publish("props/t", "{\"n\": 1}".as_bytes(), QoS::AtLeastOnce, 1), properties.clone());
    assert_eq!(publisher.publish(message).await, ReasonCode::Success);
    for sub in &mut subs {
        let received = sub.next_message().await;
        assert_eq!(&received.payload[..], b"{\"n\": 1}");
        assert_eq!(properties_of(&received), properties);
    }
}

/// [MQTT-3.3.2-14]: a Response Topic with a wildcard is a Protocol Error: DISCONNECT 0x82.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_2_14_response_topic_with_a_wildcard_gets_disconnect_0x82() {
    let broker = PausedBroker::start().await;
    for response_topic in ["replies/+", "replies/#"] {
        let mut client = Client::clean(&broker, "requester").await;
        let properties =
            PublishProperties { response_topic: Some(response_topic.into()), ..Default::default() };
        client.send_publish(&with(publish("requests", b"?", QoS::AtLeastOnce, 1), properties)).await;
        client.expect_disconnect(ReasonCode::ProtocolError).await;
    }
}

/// 3.3.2.3.2, [MQTT-4.3.3-9]: a payload that is not UTF-8 although its Payload Format
/// Indicator says it is, is refused: PUBACK or PUBREC 0x99 (Payload format invalid) at QoS 1
/// and 2, with nothing delivered and the QoS 2 identifier free at once; DISCONNECT 0x99 at QoS 0,
/// which has no acknowledgement.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_3_2_3_2_payload_not_in_its_indicated_format_is_refused_with_0x99() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "sub", ConnectProperties::default(), &[("pf/#", QoS::AtLeastOnce, None)]).await;
    let utf8 =
        PublishProperties { payload_format_indicator: Some(PayloadFormat::Utf8), ..Default::default() };
    let mut publisher = Client::clean(&broker, "publisher").await;
    let bad = [0xC3, 0x28];
    let qos1 = publisher.publish(with(publish("pf/bad", &bad, QoS::AtLeastOnce, 1), utf8.clone())).await;
    assert_eq!(qos1, ReasonCode::PayloadFormatInvalid);
    let qos2 = publisher.publish(with(publish("pf/bad", &bad, QoS::ExactlyOnce, 2), utf8.clone())).await;
    assert_eq!(qos2, ReasonCode::PayloadFormatInvalid);
    let good = with(publish("pf/good", "héllo".as_bytes(), QoS::ExactlyOnce, 2), utf8.clone());
    assert_eq!(publisher.publish(good).await, ReasonCode::Success, "identifier 2 is free again");
    let received = sub.next_message().await;
    assert_eq!((&*received.topic, &received.payload[..]), ("pf/good", "héllo".as_bytes()));
    publisher.send_publish(&with(publish("pf/bad", &bad, QoS::AtMostOnce, 0), utf8)).await;
    publisher.expect_disconnect(ReasonCode::PayloadFormatInvalid).await;
    sub.expect_silence(QUIET).await;
}

/// [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a Subscription Identifier: DISCONNECT
/// 0x82, and the message is not delivered.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_4_6_client_publish_with_a_subscription_identifier_gets_disconnect_0x82() {
    let broker = PausedBroker::start().await;
    let mut sub =
        subscriber(&broker, "sub", ConnectProperties::default(), &[("subid/#", QoS::AtLeastOnce, None)])
            .await;
    let mut client = Client::clean(&broker, "publisher").await;
    let properties =
        PublishProperties { subscription_identifiers: vec![v5_support::sub_id(7)], ..Default::default() };
    client.send_publish(&with(publish("subid/t", b"x", QoS::AtLeastOnce, 1), properties)).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
    sub.expect_silence(QUIET).await;
}

/// 3.4.2.1, 3.5.2.1: a QoS 1 or 2 PUBLISH that no subscription matches is acknowledged with 0x10
/// (No matching subscribers); one that some subscription matches, with 0x00.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_4_2_1_puback_0x10_when_nobody_subscribes() {
    let broker = PausedBroker::start().await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (qos, id) in [(QoS::AtLeastOnce, 1), (QoS::ExactlyOnce, 2)] {
        let code = publisher.publish(publish("nobody/t", b"x", qos, id)).await;
        assert_eq!(code, ReasonCode::NoMatchingSubscribers, "{qos:?}");
    }
    let _sub =
        subscriber(&broker, "somebody", ConnectProperties::default(), &[("nobody/t", QoS::AtMostOnce, None)])
            .await;
    for (qos, id) in [(QoS::AtLeastOnce, 3), (QoS::ExactlyOnce, 4)] {
        let code = publisher.publish(publish("nobody/t", b"x", qos, id)).await;
        assert_eq!(code, ReasonCode::Success, "{qos:?}");
    }
}

// --- A real 5.0 client ---

/// The next packet rumqttc's 5.0 event loop receives, before `deadline`.
#[allow(clippy::disallowed_methods)] // A client-side deadline, not the broker's clock.
async fn next_incoming(
    eventloop: &mut rumqttc::v5::EventLoop,
    deadline: tokio::time::Instant,
) -> rumqttc::v5::mqttbytes::v5::Packet {
    loop {
        let event = tokio::time::timeout_at(deadline, eventloop.poll()).await;
        match event.or_fail("no event in time").or_fail("the connection failed") {
            rumqttc::v5::Event::Incoming(packet) => return packet,
            rumqttc::v5::Event::Outgoing(_) => {}
        }
    }
}

/// [MQTT-3.3.4-3], [MQTT-3.3.2-17], [MQTT-3.3.2-18]: rumqttc's 5.0 client subscribes with a
/// Subscription Identifier and publishes with User Properties; the delivery carries the
/// identifier and the properties, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods)] // A client-side deadline, not the broker's clock.
async fn mqtt5_3_3_4_3_rumqttc_v5_gets_its_subscription_identifier_and_user_properties() {
    use rumqttc::v5::mqttbytes::v5::{
        Packet as V5Packet, PublishProperties as Props, SubscribeProperties, SubscribeReasonCode,
    };
    use rumqttc::v5::mqttbytes::QoS as V5QoS;
    use rumqttc::v5::{AsyncClient, MqttOptions};

    let broker = TestBroker::start();
    let options = MqttOptions::new("rumqttc-v5", "127.0.0.1", broker.addr.port());
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let deadline = tokio::time::Instant::now() + WAIT;
    assert!(matches!(next_incoming(&mut eventloop, deadline).await, V5Packet::ConnAck(_)));
    let subscribe = SubscribeProperties { id: Some(42), user_properties: Vec::new() };
    client.subscribe_with_properties("rumqttc/v5/#", V5QoS::AtLeastOnce, subscribe).await.unwrap();
    loop {
        if let V5Packet::SubAck(suback) = next_incoming(&mut eventloop, deadline).await {
            assert_eq!(suback.return_codes, [SubscribeReasonCode::Success(V5QoS::AtLeastOnce)]);
            break;
        }
    }
    let pairs = vec![
        ("sensor".to_owned(), "t1".to_owned()),
        ("unit".to_owned(), "C".to_owned()),
        ("sensor".to_owned(), "t2".to_owned()),
    ];
    let properties = Props { user_properties: pairs.clone(), ..Props::default() };
    client
        .publish_with_properties("rumqttc/v5/reading", V5QoS::AtLeastOnce, false, "21.5", properties)
        .await
        .unwrap();
    let delivered = loop {
        if let V5Packet::Publish(publish) = next_incoming(&mut eventloop, deadline).await {
            break publish;
        }
    };
    assert_eq!((&delivered.topic[..], &delivered.payload[..]), (&b"rumqttc/v5/reading"[..], &b"21.5"[..]));
    let properties = delivered.properties.expect("the delivery's properties");
    assert_eq!(properties.subscription_identifiers, [42]);
    assert_eq!(properties.user_properties, pairs);
}

/// [MQTT-3.3.4-9], 4.9: the send quota is the new connection's: of three PUBLISHes left
/// unacknowledged by a client without a Receive Maximum, a client that resumes the session with
/// Receive Maximum 1 gets one re-sent at a time, each after the PUBACK of the one before.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_4_9_resent_publishes_respect_the_new_receive_maximum() {
    let broker = PausedBroker::start().await;
    let mut sub = Client::connected(&broker, connect_with("narrows", true, expiry(60))).await;
    sub.subscribe(1, "narrow/t", QoS::AtLeastOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    for (n, payload) in (1..).zip([b"1", b"2", b"3"]) {
        let code = publisher.publish(publish("narrow/t", payload, QoS::AtLeastOnce, n)).await;
        assert_eq!(code, ReasonCode::Success);
    }
    for _ in 0..3 {
        sub.expect_publish().await;
    }
    sub.drop_connection();
    let narrow = ConnectProperties { receive_maximum: std::num::NonZeroU16::new(1), ..expiry(60) };
    let (mut sub, connack) = Client::open(&broker, connect_with("narrows", false, narrow)).await;
    assert!(connack.session_present);
    for expected in [b"1", b"2", b"3"] {
        let resent = sub.expect_publish().await;
        assert_eq!((resent.dup, &resent.payload[..]), (true, &expected[..]));
        sub.expect_silence(QUIET).await;
        sub.ack(&resent).await;
    }
}

/// [MQTT-3.3.4-10], [MQTT-4.4.0-1], 4.9: Receive Maximum holds back PUBLISH packets only. A QoS 1
/// PUBLISH and a QoS 2 one past PUBREC are in flight when the subscriber's connection drops; it
/// resumes with Receive Maximum 1 and is re-sent the QoS 1 PUBLISH and the owed PUBREL at once,
/// in send order, before it acknowledges anything; the PUBREL takes no place in the window, so
/// the next message follows the PUBACK alone.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_4_10_an_owed_pubrel_is_not_held_back_by_receive_maximum() {
    let broker = PausedBroker::start().await;
    let mut sub = Client::connected(&broker, connect_with("owes-pubrel", true, expiry(60))).await;
    sub.subscribe(1, "owed/t", QoS::ExactlyOnce, None).await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    assert_eq!(publisher.publish(publish("owed/t", b"one", QoS::AtLeastOnce, 1)).await, ReasonCode::Success);
    assert_eq!(publisher.publish(publish("owed/t", b"two", QoS::ExactlyOnce, 2)).await, ReasonCode::Success);
    let first = sub.expect_publish().await;
    let second = sub.expect_publish().await;
    assert_eq!((first.qos, second.qos), (QoS::AtLeastOnce, QoS::ExactlyOnce));
    let second_id = second.packet_id.expect("a QoS 2 delivery has a packet identifier");
    sub.send(&Packet::PubRec(PublishResponse::new(second_id))).await;
    assert_eq!(sub.recv().await, Packet::PubRel(PublishResponse::new(second_id)));
    sub.drop_connection();

    let narrow = ConnectProperties { receive_maximum: std::num::NonZeroU16::new(1), ..expiry(60) };
    let (mut sub, connack) = Client::open(&broker, connect_with("owes-pubrel", false, narrow)).await;
    assert!(connack.session_present);
    let resent = sub.expect_publish().await;
    assert_eq!((resent.dup, &resent.payload[..], resent.packet_id), (true, &b"one"[..], first.packet_id));
    // Not waiting for the PUBACK of the PUBLISH in the window of 1.
    assert_eq!(sub.recv().await, Packet::PubRel(PublishResponse::new(second_id)));
    sub.send(&Packet::PubComp(PublishResponse::new(second_id))).await;
    sub.ack(&resent).await;
    assert_eq!(
        publisher.publish(publish("owed/t", b"three", QoS::AtLeastOnce, 3)).await,
        ReasonCode::Success
    );
    let third = sub.expect_publish().await;
    assert_eq!((third.dup, &third.payload[..]), (false, &b"three"[..]));
}

/// [MQTT-3.3.4-7], 4.9: the server's Receive Maximum bounds the QoS 2 PUBLISHes unreleased on the
/// current connection. The client's send quota starts again on every connection, so identifiers
/// still awaiting PUBREL from an earlier one do not count: with `server.receive_maximum = 2`, a
/// client that left two exchanges unreleased may send two new QoS 2 PUBLISHes on its next
/// connection before it re-sends the PUBRELs; a third gets DISCONNECT 0x93.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_3_4_7_unreleased_identifiers_of_an_earlier_connection_do_not_count() {
    let broker = PausedBroker::with_config("[server]\nreceive_maximum = 2\n").await;
    let mut client = Client::connected(&broker, connect_with("unreleased", true, expiry(60))).await;
    for id in [1, 2] {
        client.send_publish(&publish("rm/earlier", b"x", QoS::ExactlyOnce, id)).await;
        expect_pubrec(&client.recv().await, id);
    }
    client.drop_connection();
    let (mut client, connack) = Client::open(&broker, connect_with("unreleased", false, expiry(60))).await;
    assert!(connack.session_present);
    for id in [3, 4] {
        client.send_publish(&publish("rm/later", b"x", QoS::ExactlyOnce, id)).await;
        expect_pubrec(&client.recv().await, id);
    }
    // The earlier connection's identifiers are still the session's [MQTT-4.3.3-2].
    for id in [1, 2] {
        client.send(&Packet::PubRel(PublishResponse::new(pid(id)))).await;
        assert_eq!(client.recv().await, Packet::PubComp(PublishResponse::new(pid(id))));
    }
    client.send_publish(&publish("rm/later", b"x", QoS::ExactlyOnce, 5)).await;
    client.expect_disconnect(ReasonCode::ReceiveMaximumExceeded).await;
}

/// 3.3.2.3.3, 3.3.1.3: a retained message whose expiry passes is deleted, so it no longer takes
/// a place under `server.retained_message_limit`: with a limit of 1 and the one retained
/// message expired, a retained message on another topic is stored and sent to new subscribers.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_3_2_3_3_an_expired_retained_message_frees_its_place() {
    let broker = PausedBroker::with_config("[server]\nretained_message_limit = 1\n").await;
    let mut publisher = Client::clean(&broker, "publisher").await;
    let expiring = PublishProperties { message_expiry_interval: Some(1), ..Default::default() };
    let first = iothub_protocol::Publish {
        retain: true,
        ..with(publish("lim/a", b"a", QoS::AtLeastOnce, 1), expiring)
    };
    assert_eq!(publisher.publish(first).await, ReasonCode::NoMatchingSubscribers);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = iothub_protocol::Publish { retain: true, ..publish("lim/b", b"b", QoS::AtLeastOnce, 2) };
    assert_eq!(publisher.publish(second).await, ReasonCode::NoMatchingSubscribers);
    let mut sub = Client::clean(&broker, "late").await;
    sub.subscribe(1, "lim/#", QoS::AtLeastOnce, None).await;
    let retained = sub.expect_publish().await;
    assert_eq!((&*retained.topic, retained.retain), ("lim/b", true));
}
