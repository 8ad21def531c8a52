//! Shared subscriptions (MQTT 5.0 section 4.8.2), for 5.0 and 3.1.1 clients: one member of a
//! group gets each message, every group gets a copy; the strategies of
//! `server.shared_subscription_strategy` (round_robin, random, sticky, hash_client_id); no
//! retained messages on subscribing; a member whose session ends hands its unacknowledged
//! QoS 1 messages to another member and drops its QoS 2 ones; offline members; unsubscribing;
//! the `$` rule; and real clients (rumqttc, mosquitto_sub) as members.
//!
//! Each member also subscribes (not shared) to a marker topic, which the publisher sends after
//! the messages under test: a member that has read up to the marker has everything the group
//! gave it, since one publisher's messages reach a session in the order they were published.

use std::collections::BTreeSet;
use std::net::Shutdown;

use iothub_protocol::{Packet, Publish, QoS, ReasonCode};
use iothub_test_util::v5_client::{connect_v5, message, no_local, options, subscription_ids, text};
use iothub_test_util::{
    expect_no_publish_before_pingresp, parse_publish, publish, publishes_until, raw_connected,
    raw_subscriber, require_tool, subscribe, MosquittoSub, Mqtt, OrFail, RawClient, TestBroker, V5Client,
};

/// The topic that ends every check.
const MARKER: &str = "zz-marker";

/// A 5.0 member of `$share/{group}/{filter}` at `qos`, also subscribed to the marker.
fn member(broker: &TestBroker, client_id: &str, group: &str, filter: &str, qos: u8) -> V5Client {
    let mut client = V5Client::connect(broker.addr, client_id);
    let shared = format!("$share/{group}/{filter}");
    client.subscribe_granted(1, &[(&shared, options(qos)), (MARKER, options(0))], None);
    client
}

/// Publishes `count` QoS 1 messages on `topic`, with payloads `{prefix}{n}`, then the marker.
fn publish_numbered(publisher: &mut V5Client, topic: &str, prefix: &str, count: u16) -> BTreeSet<String> {
    let mut sent = BTreeSet::new();
    for n in 0..count {
        let payload = format!("{prefix}{n}");
        publisher.publish(message(topic, payload.as_bytes(), 1, false, n + 1));
        sent.insert(payload);
    }
    publisher.publish(message(MARKER, b"", 0, false, 0));
    sent
}

/// The payloads a 5.0 member received before the marker.
fn received(client: &mut V5Client) -> Vec<String> {
    client.publishes_until(MARKER).iter().map(|p| text(p).to_owned()).collect()
}

/// The payloads a 3.1.1 raw member received before the marker.
fn received_v3(client: &mut RawClient) -> Vec<String> {
    publishes_until(client, MARKER).iter().map(|m| m.text().to_owned()).collect()
}

/// Asserts that the members' deliveries together are `sent`, each message exactly once.
#[track_caller]
fn assert_each_once(sent: &BTreeSet<String>, members: &[&[String]]) {
    let all: Vec<&String> = members.iter().flat_map(|m| m.iter()).collect();
    let distinct: BTreeSet<String> = all.iter().map(|s| (*s).clone()).collect();
    assert_eq!(all.len(), distinct.len(), "a message reached more than one member: {members:?}");
    assert_eq!(&distinct, sent, "every message reaches one member: {members:?}");
}

/// Section 4.8.2: each message goes to exactly one member of a shared subscription, and each
/// shared subscription that matches (ShareName and filter) gets a copy; members may speak 5.0
/// or 3.1.1.
#[test]
fn section_4_8_2_each_message_reaches_one_member_of_each_group() {
    let broker = TestBroker::start();
    let mut a = member(&broker, "one-a", "g1", "one/+", 1);
    let mut b = raw_subscriber(broker.addr, "one-b", &[("$share/g1/one/+", 1), (MARKER, 0)]);
    let mut c = member(&broker, "one-c", "g2", "one/+", 1);
    // The same ShareName with another filter is another shared subscription, with a copy of its
    // own.
    let mut d = member(&broker, "one-d", "g1", "one/#", 1);
    let mut publisher = V5Client::connect(broker.addr, "one-pub");
    let sent = publish_numbered(&mut publisher, "one/t", "m", 10);
    let (got_a, got_b, got_c, got_d) =
        (received(&mut a), received_v3(&mut b), received(&mut c), received(&mut d));
    assert_each_once(&sent, &[&got_a, &got_b]);
    assert_each_once(&sent, &[&got_c]);
    assert_each_once(&sent, &[&got_d]);
}

/// `round_robin` (the default): N messages over two members, N/2 each; here with a 5.0 and a
/// 3.1.1 member.
#[test]
fn round_robin_spreads_messages_evenly_over_the_members() {
    let broker = TestBroker::start();
    let mut a = member(&broker, "rr-a", "g", "rr/t", 1);
    let mut b = raw_subscriber(broker.addr, "rr-b", &[("$share/g/rr/t", 1), (MARKER, 0)]);
    let mut publisher = V5Client::connect(broker.addr, "rr-pub");
    let sent = publish_numbered(&mut publisher, "rr/t", "m", 10);
    let (got_a, got_b) = (received(&mut a), received_v3(&mut b));
    assert_each_once(&sent, &[&got_a, &got_b]);
    assert_eq!((got_a.len(), got_b.len()), (5, 5), "{got_a:?} {got_b:?}");
}

/// `hash_client_id`: all of one publisher's messages go to one member.
#[test]
fn hash_client_id_sends_one_publishers_messages_to_one_member() {
    let broker = TestBroker::with_config("[server]\nshared_subscription_strategy = \"hash_client_id\"\n");
    let mut a = member(&broker, "hash-a", "g", "hash/t", 1);
    let mut b = member(&broker, "hash-b", "g", "hash/t", 1);
    let mut sent = BTreeSet::new();
    for p in 0..4 {
        let mut publisher = V5Client::connect(broker.addr, &format!("hash-pub-{p}"));
        for n in 0..6u16 {
            let payload = format!("p{p}-{n}");
            publisher.publish(message("hash/t", payload.as_bytes(), 1, false, n + 1));
            sent.insert(payload);
        }
        publisher.disconnect();
    }
    let mut publisher = V5Client::connect(broker.addr, "hash-marker");
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let (got_a, got_b) = (received(&mut a), received(&mut b));
    assert_each_once(&sent, &[&got_a, &got_b]);
    for p in 0..4 {
        let prefix = format!("p{p}-");
        let to_a = got_a.iter().filter(|m| m.starts_with(&prefix)).count();
        let to_b = got_b.iter().filter(|m| m.starts_with(&prefix)).count();
        assert!(to_a == 0 || to_b == 0, "publisher {p} was split: {to_a} to a, {to_b} to b");
    }
}

/// `sticky`: every message goes to the same member until it leaves, then to another one.
#[test]
fn sticky_keeps_to_one_member_until_it_leaves() {
    let broker = TestBroker::with_config("[server]\nshared_subscription_strategy = \"sticky\"\n");
    let mut a = member(&broker, "sticky-a", "g", "sticky/t", 1);
    let mut b = member(&broker, "sticky-b", "g", "sticky/t", 1);
    let mut publisher = V5Client::connect(broker.addr, "sticky-pub");
    let sent = publish_numbered(&mut publisher, "sticky/t", "first", 6);
    let (got_a, got_b) = (received(&mut a), received(&mut b));
    assert_each_once(&sent, &[&got_a, &got_b]);
    assert!(got_a.is_empty() || got_b.is_empty(), "sticky split the messages: {got_a:?} {got_b:?}");
    // The chosen member leaves; the other one gets everything from then on.
    let (mut stayer, leaver) = if got_a.is_empty() { (a, b) } else { (b, a) };
    leaver.disconnect();
    let sent = publish_numbered(&mut publisher, "sticky/t", "second", 6);
    let got: BTreeSet<String> = received(&mut stayer).into_iter().collect();
    assert_eq!(got, sent);
}

/// `random`: each message still reaches exactly one member.
#[test]
fn random_delivers_each_message_to_exactly_one_member() {
    let broker = TestBroker::with_config("[server]\nshared_subscription_strategy = \"random\"\n");
    let mut a = member(&broker, "random-a", "g", "random/t", 1);
    let mut b = member(&broker, "random-b", "g", "random/t", 1);
    let mut publisher = V5Client::connect(broker.addr, "random-pub");
    let sent = publish_numbered(&mut publisher, "random/t", "m", 20);
    let (got_a, got_b) = (received(&mut a), received(&mut b));
    assert_each_once(&sent, &[&got_a, &got_b]);
}

/// Section 4.8.2: no retained messages are sent on subscribing to a shared subscription, with
/// any Retain Handling, for 5.0 and 3.1.1 members; a non-shared subscription to the same
/// filter gets them.
#[test]
fn section_4_8_2_no_retained_messages_on_a_shared_subscription() {
    let broker = TestBroker::start();
    let mut retainer = V5Client::connect(broker.addr, "retainer");
    retainer.publish(message("ret/t", b"stored", 1, true, 1));
    let mut v5 = V5Client::connect(broker.addr, "ret-v5");
    v5.subscribe_granted(1, &[("$share/g/ret/t", options(1)), ("$share/h/ret/#", options(0))], None);
    v5.expect_no_publish();
    let mut v3 = raw_connected(broker.addr, "ret-v3");
    subscribe(&mut v3, 1, &[("$share/g/ret/t", 1), ("$share/k/+/t", 0)]);
    expect_no_publish_before_pingresp(&mut v3);
    // Control: the message is retained, and a non-shared subscription gets it.
    v5.subscribe_granted(2, &[("ret/t", options(1))], None);
    let stored = v5.next_publish();
    assert_eq!((text(&stored), stored.retain), ("stored", true));
}

/// Section 4.8.2: a client with a non-shared and a shared subscription that both match gets a
/// copy for each, each with its own Subscription Identifier (3.3.4).
#[test]
fn section_4_8_2_a_shared_and_a_non_shared_subscription_of_one_client_both_deliver() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "both");
    client.subscribe_granted(1, &[("both/t", options(1))], Some(1));
    client.subscribe_granted(2, &[("$share/g/both/#", options(1))], Some(2));
    client.subscribe_granted(3, &[(MARKER, options(0))], None);
    let mut publisher = V5Client::connect(broker.addr, "both-pub");
    publisher.publish(message("both/t", b"twice", 1, false, 1));
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let copies = client.publishes_until(MARKER);
    let mut ids: Vec<Vec<u32>> = copies.iter().map(subscription_ids).collect();
    ids.sort();
    assert_eq!(ids, [vec![1], vec![2]], "one copy per subscription");
    assert!(copies.iter().all(|p| text(p) == "twice"));
}

/// [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82.
#[test]
fn mqtt_3_8_3_4_no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "shared-no-local");
    let subscribe = iothub_protocol::Subscribe {
        packet_id: iothub_test_util::v5_client::packet_id(1),
        filters: vec![("ok/t".into(), options(0)), ("$share/g/t".into(), no_local(1))],
        properties: None,
    };
    client.send(&Packet::Subscribe(subscribe));
    assert_eq!(client.expect_disconnect(), ReasonCode::ProtocolError);
}

/// Closes a member's connection without DISCONNECT, as a crashed client would: it stops
/// sending (so the broker reads the end of the stream) and waits until the broker has closed
/// its side, which it does after it has ended the session.
fn drop_connection(client: V5Client) {
    let mut raw = client.raw;
    raw.stream.shutdown(Shutdown::Write).or_fail("closing the write side");
    raw.expect_closed();
}

/// Reads `count` PUBLISHes and does not acknowledge them.
fn read_unacked(client: &mut V5Client, count: usize) -> Vec<Publish> {
    (0..count).map(|_| client.next_publish_unacked()).collect()
}

/// Section 4.8.2: a member whose session ends (Session Expiry 0, connection dropped) with QoS 1
/// messages it read but never acknowledged has them sent to another member: none is lost.
#[test]
fn section_4_8_2_unacknowledged_qos_1_messages_of_an_ended_member_go_to_another_member() {
    let broker = TestBroker::start();
    let mut a = member(&broker, "lost-a", "g", "lost/t", 1);
    let mut b = member(&broker, "lost-b", "g", "lost/t", 1);
    let mut publisher = V5Client::connect(broker.addr, "lost-pub");
    let mut sent = BTreeSet::new();
    for n in 0..6u16 {
        let payload = format!("m{n}");
        publisher.publish(message("lost/t", payload.as_bytes(), 1, false, n + 1));
        sent.insert(payload);
    }
    // Round robin: three each. The first member reads its three and never acknowledges them.
    let unacked = read_unacked(&mut a, 3);
    assert!(unacked.iter().all(|p| p.qos == QoS::AtLeastOnce));
    drop_connection(a);
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let got: Vec<String> = received(&mut b);
    assert_each_once(&sent, &[&got]);
}

/// Section 4.8.2, with a 3.1.1 member: its clean session ends with QoS 1 messages it read and
/// never acknowledged, and they go to the other member.
#[test]
fn section_4_8_2_unacknowledged_qos_1_messages_of_an_ended_3_1_1_member_go_to_another_member() {
    let broker = TestBroker::start();
    let mut a = raw_subscriber(broker.addr, "lost3-a", &[("$share/g/lost3/t", 1)]);
    let mut b = member(&broker, "lost3-b", "g", "lost3/t", 1);
    let mut publisher = V5Client::connect(broker.addr, "lost3-pub");
    let mut sent = BTreeSet::new();
    for n in 0..4u16 {
        let payload = format!("m{n}");
        publisher.publish(message("lost3/t", payload.as_bytes(), 1, false, n + 1));
        sent.insert(payload);
    }
    for _ in 0..2 {
        assert_eq!(parse_publish(&a.read_packet()).qos, 1);
    }
    a.stream.shutdown(Shutdown::Write).or_fail("closing the write side");
    a.expect_closed();
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let got = received(&mut b);
    assert_each_once(&sent, &[&got]);
}

/// [MQTT-4.8.2-5]: a QoS 2 message sent to a member whose session then ends before the
/// exchange completed is not sent to any other member (the member may have it already); its
/// QoS 1 messages are (section 4.8.2, previous test).
#[test]
fn mqtt_4_8_2_5_an_ended_members_unfinished_qos_2_message_goes_to_no_other_member() {
    let broker = TestBroker::start();
    let mut a = member(&broker, "q2-a", "g", "q2/t", 2);
    let mut b = member(&broker, "q2-b", "g", "q2/t", 2);
    let mut publisher = V5Client::connect(broker.addr, "q2-pub");
    publisher.publish(message("q2/t", b"first", 2, false, 1));
    publisher.publish(message("q2/t", b"second", 2, false, 2));
    // Round robin: one each. The first member never answers PUBREC.
    let to_a = read_unacked(&mut a, 1);
    assert_eq!(to_a[0].qos, QoS::ExactlyOnce);
    drop_connection(a);
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let got = received(&mut b);
    let a_had = text(&to_a[0]).to_owned();
    assert_eq!(got.len(), 1, "the other member got {got:?}; {a_had:?} was the ended member's");
    assert_ne!(got[0], a_had);
}

/// Section 4.8.2: messages go to an online member rather than to one whose persistent session
/// is offline; the offline member finds nothing queued when it comes back.
#[test]
fn section_4_8_2_messages_prefer_the_online_member() {
    let broker = TestBroker::start();
    let (mut offline, connack) = V5Client::connect_with(broker.addr, connect_v5("away", true, 300));
    assert!(!connack.session_present);
    offline.subscribe_granted(1, &[("$share/g/away/t", options(1))], None);
    offline.disconnect();
    let mut online = member(&broker, "here", "g", "away/t", 1);
    let mut publisher = V5Client::connect(broker.addr, "away-pub");
    let sent = publish_numbered(&mut publisher, "away/t", "m", 6);
    let got = received(&mut online);
    assert_each_once(&sent, &[&got]);
    let (mut back, connack) = V5Client::connect_with(broker.addr, connect_v5("away", false, 300));
    assert!(connack.session_present);
    back.expect_no_publish();
}

/// Section 4.8.2: a member that unsubscribes (UNSUBACK 0x00) gets no more of the group's
/// messages; the remaining member gets them all.
#[test]
fn section_4_8_2_unsubscribing_from_a_shared_subscription_stops_delivery() {
    let broker = TestBroker::start();
    let mut a = member(&broker, "unsub-a", "g", "unsub/t", 1);
    let mut b = member(&broker, "unsub-b", "g", "unsub/t", 1);
    assert_eq!(a.unsubscribe(2, &["$share/g/unsub/t"]), [ReasonCode::Success]);
    let mut publisher = V5Client::connect(broker.addr, "unsub-pub");
    let sent = publish_numbered(&mut publisher, "unsub/t", "m", 6);
    let (got_a, got_b) = (received(&mut a), received(&mut b));
    assert!(got_a.is_empty(), "delivered after UNSUBSCRIBE: {got_a:?}");
    assert_each_once(&sent, &[&got_b]);
}

/// [MQTT-4.7.2-1] for shared subscriptions: `$share/g/#` and `$share/g/+/x` do not match
/// topics starting with "$", while a filter that names the "$" level does. `$SYS` topics
/// cannot come from clients (the broker drops such publications), so the rule is shown with
/// another "$" topic as well.
#[test]
fn mqtt_4_7_2_1_shared_wildcards_do_not_match_dollar_topics() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "dollar");
    client.subscribe_granted(1, &[("$share/g/#", options(0))], Some(1));
    client.subscribe_granted(2, &[("$share/h/+/x", options(0))], Some(2));
    client.subscribe_granted(3, &[("$share/k/$foo/#", options(0))], Some(3));
    client.subscribe_granted(4, &[(MARKER, options(0))], Some(4));
    let mut publisher = V5Client::connect(broker.addr, "dollar-pub");
    for topic in ["$SYS/x", "$SYS/broker/x", "$foo/x", "a/x"] {
        publisher.publish(message(topic, topic.as_bytes(), 1, false, 1));
    }
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let mut got: Vec<(String, Vec<u32>)> =
        client.publishes_until(MARKER).iter().map(|p| (p.topic.to_string(), subscription_ids(p))).collect();
    got.sort();
    let expected = [("$foo/x".to_owned(), vec![3]), ("a/x".to_owned(), vec![1]), ("a/x".to_owned(), vec![2])];
    assert_eq!(got, expected);
}

/// Round robin over two rumqttc 3.1.1 members, published by a raw 3.1.1 client.
#[tokio::test(flavor = "multi_thread")]
async fn round_robin_over_rumqttc_3_1_1_members() {
    let broker = TestBroker::start();
    let mut a = Mqtt::connect(broker.addr, "rumqttc-a").await;
    a.subscribe("$share/g/rq/t", rumqttc::QoS::AtLeastOnce).await;
    a.subscribe(MARKER, rumqttc::QoS::AtLeastOnce).await;
    let mut b = Mqtt::connect(broker.addr, "rumqttc-b").await;
    b.subscribe("$share/g/rq/t", rumqttc::QoS::AtLeastOnce).await;
    b.subscribe(MARKER, rumqttc::QoS::AtLeastOnce).await;
    let addr = broker.addr;
    let sent = tokio::task::spawn_blocking(move || {
        let mut publisher = raw_connected(addr, "rumqttc-pub");
        let mut sent = BTreeSet::new();
        for n in 0..10u16 {
            let payload = format!("m{n}");
            publish(&mut publisher, "rq/t", payload.as_bytes(), 1, false, n + 1);
            sent.insert(payload);
        }
        publish(&mut publisher, MARKER, b"", 1, false, 11);
        sent
    })
    .await
    .unwrap();
    let mut got = Vec::new();
    for member in [&mut a, &mut b] {
        let mut mine = Vec::new();
        loop {
            let publish = member.next_publish().await;
            if publish.topic == MARKER {
                break;
            }
            mine.push(String::from_utf8(publish.payload.to_vec()).unwrap());
        }
        got.push(mine);
    }
    assert_each_once(&sent, &[&got[0], &got[1]]);
    assert_eq!((got[0].len(), got[1].len()), (5, 5), "{got:?}");
}

/// Two `mosquitto_sub` members of one group, at 3.1.1 and at 5.0: each gets half of the
/// messages, and together all of them.
#[test]
fn mosquitto_sub_members_share_the_messages_at_3_1_1_and_5_0() {
    require_tool("mosquitto_sub");
    let broker = TestBroker::start();
    let port = broker.port();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("mosq/{version}");
        let filter = format!("$share/g/{topic}");
        let args = ["-V", version, "-q", "1", "-C", "3", "-t", &filter];
        let mut subs = [MosquittoSub::start(&port, &args), MosquittoSub::start(&port, &args)];
        let mut publisher = V5Client::connect(broker.addr, "mosq-pub");
        let mut sent = BTreeSet::new();
        for n in 0..6u16 {
            let payload = format!("{version}-{n}");
            publisher.publish(message(&topic, payload.as_bytes(), 1, false, n + 1));
            sent.insert(payload);
        }
        publisher.disconnect();
        let got: Vec<Vec<String>> =
            subs.iter_mut().map(|sub| (0..3).map(|_| sub.expect_message().payload).collect()).collect();
        assert_each_once(&sent, &[&got[0], &got[1]]);
        for sub in &mut subs {
            assert_eq!(sub.next_message(), None, "{version}: more than three messages to one member");
        }
    }
}
