//! Retained messages: stored and sent on subscribe with RETAIN=1 (also to wildcard
//! subscriptions), forwarded live with RETAIN=0, replaced, deleted by an empty payload, sent at
//! the lower of the stored and the granted QoS, re-sent on re-subscription, bounded by
//! `retained_message_limit`, hidden from wildcards in the first level for "$" topics; and a
//! walk-through with `mosquitto_pub -r` and `mosquitto_sub`.
//!
//! "Nothing more was sent" is proven with PINGREQ: retained messages are queued while the
//! SUBSCRIBE is handled, so any of them would arrive before the PINGRESP.

use std::collections::BTreeMap;

use iothub_test_util::{
    ack, expect_no_publish_before_pingresp, mosquitto_pub, next_publish, parse_publish, publish,
    publish_packet, publishes_until, raw_connected, raw_subscriber, require_tool, subscribe,
    subscribe_packet, Incoming, MosquittoSub, RawClient, TestBroker, DISCONNECT, PINGREQ, PINGRESP, PUBACK,
    PUBCOMP, PUBREC, PUBREL,
};

/// Subscribes a new client to `filter` at `qos` and returns the retained messages it gets, by
/// topic, after checking that nothing else follows.
fn retained_for(addr: std::net::SocketAddr, filter: &str, qos: u8) -> BTreeMap<String, Incoming> {
    let mut client = raw_connected(addr, "retained-reader");
    subscribe(&mut client, 1, &[(filter, qos)]);
    let messages = read_retained(&mut client);
    client.send(&DISCONNECT);
    client.expect_closed();
    messages
}

/// Reads the retained messages a subscription has just queued, by topic.
fn read_retained(client: &mut RawClient) -> BTreeMap<String, Incoming> {
    let mut messages = BTreeMap::new();
    client.send(&PINGREQ);
    loop {
        let packet = client.read_packet();
        if packet == PINGRESP {
            break;
        }
        if packet[0] == PUBREL {
            client.send(&ack(PUBCOMP, u16::from_be_bytes([packet[2], packet[3]])));
            continue;
        }
        let message = parse_publish(&packet);
        match (message.qos, message.packet_id) {
            (1, Some(id)) => client.send(&ack(PUBACK, id)),
            (2, Some(id)) => client.send(&ack(PUBREC, id)),
            _ => {}
        }
        assert!(
            messages.insert(message.topic.clone(), message).is_none(),
            "a retained message was sent twice"
        );
    }
    // PUBREL packets may still be on their way for QoS 2 messages.
    expect_no_publish_before_pingresp(client);
    messages
}

/// The payload texts of retained messages, by topic.
fn texts(messages: &BTreeMap<String, Incoming>) -> Vec<(&str, &str)> {
    messages.iter().map(|(topic, m)| (topic.as_str(), m.text())).collect()
}

#[test]
fn mqtt_3_3_1_8_retained_message_is_sent_on_subscribe_with_retain_set() {
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "r/a", b"kept", 1, true, 1);

    // [MQTT-3.3.1-5], [MQTT-3.3.1-6]: stored, and sent to every new matching subscription,
    // wildcard or not, with RETAIN=1 [MQTT-3.3.1-8].
    for filter in ["r/a", "r/+", "r/#", "+/a", "#"] {
        let retained = retained_for(broker.addr, filter, 1);
        assert_eq!(texts(&retained), vec![("r/a", "kept")], "filter {filter}");
        assert!(retained["r/a"].retain, "[MQTT-3.3.1-8] filter {filter}");
    }
    let retained = retained_for(broker.addr, "r/b", 1);
    assert!(retained.is_empty(), "{:?}", texts(&retained));
}

#[test]
fn mqtt_3_3_1_9_live_forward_of_a_retained_publish_has_retain_clear() {
    let broker = TestBroker::start();
    let mut subscriber = raw_subscriber(broker.addr, "sub", &[("live", 1)]);
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "live", b"now", 1, true, 1);
    let received = next_publish(&mut subscriber);
    assert_eq!(received.text(), "now");
    assert!(!received.retain, "[MQTT-3.3.1-9] a match of an established subscription has RETAIN=0");
    // It was retained all the same.
    assert!(retained_for(broker.addr, "live", 1)["live"].retain);
}

#[test]
fn mqtt_3_3_1_5_and_7_a_new_retained_message_replaces_the_old_one() {
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "rep", b"v1", 1, true, 1);
    publish(&mut publisher, "rep", b"v2", 2, true, 2);
    let retained = retained_for(broker.addr, "rep", 2);
    assert_eq!(texts(&retained), vec![("rep", "v2")], "[MQTT-3.3.1-5] only the last one is kept");
    assert_eq!(retained["rep"].qos, 2, "its QoS is stored with it");

    // [MQTT-3.3.1-7]: a QoS 0 retained message replaces it too.
    publish(&mut publisher, "rep", b"v3", 0, true, 0);
    let retained = retained_for(broker.addr, "rep", 2);
    assert_eq!(texts(&retained), vec![("rep", "v3")]);
    assert_eq!(retained["rep"].qos, 0);

    // A non-retained publication leaves the retained message alone.
    publish(&mut publisher, "rep", b"transient", 1, false, 3);
    assert_eq!(texts(&retained_for(broker.addr, "rep", 2)), vec![("rep", "v3")]);
}

#[test]
fn mqtt_3_3_1_10_and_11_empty_retained_payload_deletes_and_is_forwarded() {
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "del", b"kept", 1, true, 1);
    let mut subscriber = raw_subscriber(broker.addr, "sub", &[("del", 1)]);
    let retained = next_publish(&mut subscriber);
    assert_eq!((retained.text(), retained.retain), ("kept", true));

    // [MQTT-3.3.1-10]: processed as normal, so the existing subscriber gets it, empty...
    publish(&mut publisher, "del", b"", 1, true, 2);
    let forwarded = next_publish(&mut subscriber);
    assert_eq!((forwarded.topic.as_str(), forwarded.payload.len(), forwarded.retain), ("del", 0, false));
    // ...and the retained message is gone; the empty one is not stored [MQTT-3.3.1-11].
    let retained = retained_for(broker.addr, "del", 1);
    assert!(retained.is_empty(), "{:?}", texts(&retained));
    let retained = retained_for(broker.addr, "#", 1);
    assert!(retained.is_empty(), "{:?}", texts(&retained));

    // Deleting what is not there is harmless and still forwarded.
    publish(&mut publisher, "del", b"", 0, true, 0);
    let forwarded = next_publish(&mut subscriber);
    assert_eq!((forwarded.payload.len(), forwarded.retain), (0, false));
}

#[test]
fn mqtt_3_8_4_6_retained_qos_is_the_minimum_of_stored_and_granted() {
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "pub");
    for stored in 0..=2u8 {
        publish(&mut publisher, &format!("q/{stored}"), b"x", stored, true, 1);
    }
    for granted in 0..=2u8 {
        let retained = retained_for(broker.addr, "q/+", granted);
        let qos: Vec<(&str, u8)> = retained.iter().map(|(topic, m)| (topic.as_str(), m.qos)).collect();
        let expected: Vec<(String, u8)> = (0..=2u8).map(|s| (format!("q/{s}"), s.min(granted))).collect();
        let expected: Vec<(&str, u8)> = expected.iter().map(|(t, q)| (t.as_str(), *q)).collect();
        assert_eq!(qos, expected, "granted {granted}");
    }
}

#[test]
fn mqtt_3_8_4_3_resubscribing_resends_retained_messages() {
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "again/1", b"a", 1, true, 1);
    publish(&mut publisher, "again/2", b"b", 0, true, 0);
    let mut subscriber = raw_subscriber(broker.addr, "sub", &[("again/#", 1)]);
    let first = read_retained(&mut subscriber);
    assert_eq!(texts(&first), vec![("again/1", "a"), ("again/2", "b")]);

    // [MQTT-3.8.4-3]: the identical filter replaces the subscription and the retained
    // messages are sent again, still with RETAIN=1.
    subscribe(&mut subscriber, 2, &[("again/#", 0)]);
    let second = read_retained(&mut subscriber);
    assert_eq!(texts(&second), vec![("again/1", "a"), ("again/2", "b")]);
    assert!(second.values().all(|m| m.retain && m.qos == 0), "{second:?}");
}

#[test]
fn retained_message_limit_forwards_but_does_not_store_new_topics_beyond_it() {
    let broker = TestBroker::with_config("[server]\nretained_message_limit = 2\n");
    let mut subscriber = raw_subscriber(broker.addr, "sub", &[("lim/#", 0)]);
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "lim/1", b"one", 1, true, 1);
    publish(&mut publisher, "lim/2", b"two", 1, true, 2);
    publish(&mut publisher, "lim/3", b"three", 1, true, 3);

    // The third topic is over the limit: still forwarded live...
    let live: Vec<String> = (0..3).map(|_| next_publish(&mut subscriber).text().to_owned()).collect();
    assert_eq!(live, ["one", "two", "three"]);
    // ...but not stored.
    assert_eq!(texts(&retained_for(broker.addr, "lim/#", 0)), vec![("lim/1", "one"), ("lim/2", "two")]);

    // Replacing a stored message is allowed at the limit.
    publish(&mut publisher, "lim/1", b"uno", 1, true, 4);
    assert_eq!(texts(&retained_for(broker.addr, "lim/#", 0)), vec![("lim/1", "uno"), ("lim/2", "two")]);

    // Deleting one makes room for a new topic.
    publish(&mut publisher, "lim/2", b"", 1, true, 5);
    publish(&mut publisher, "lim/3", b"tres", 1, true, 6);
    assert_eq!(texts(&retained_for(broker.addr, "lim/#", 0)), vec![("lim/1", "uno"), ("lim/3", "tres")]);
}

#[test]
fn mqtt_4_7_2_1_retained_dollar_topics_are_not_sent_to_first_level_wildcards() {
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "pub");
    publish(&mut publisher, "$foo/x", b"dollar", 1, true, 1);
    publish(&mut publisher, "$foo", b"bare", 1, true, 2);
    publish(&mut publisher, "plain/x", b"plain", 1, true, 3);
    // A client's retained publication to "$SYS" is dropped, not stored.
    publish(&mut publisher, "$SYS/x", b"sys", 1, true, 4);

    assert_eq!(texts(&retained_for(broker.addr, "#", 1)), vec![("plain/x", "plain")]);
    assert_eq!(texts(&retained_for(broker.addr, "+/x", 1)), vec![("plain/x", "plain")]);
    assert_eq!(texts(&retained_for(broker.addr, "+", 1)), vec![]);
    assert_eq!(texts(&retained_for(broker.addr, "$foo/#", 1)), vec![("$foo", "bare"), ("$foo/x", "dollar")]);
    assert_eq!(texts(&retained_for(broker.addr, "$foo/+", 1)), vec![("$foo/x", "dollar")]);
    assert_eq!(texts(&retained_for(broker.addr, "$SYS/#", 1)), vec![]);
}

#[test]
fn mosquitto_pub_retain_and_mosquitto_sub_walk_through() {
    require_tool("mosquitto_pub");
    require_tool("mosquitto_sub");
    let broker = TestBroker::start();
    let port = broker.port();

    // A live subscriber sees each publication with RETAIN=0.
    let mut live = MosquittoSub::start(&port, &["-t", "walk/#", "-q", "1"]);
    mosquitto_pub(&port, &["-r", "-q", "1", "-t", "walk/temp", "-m", "21"]);
    let message = live.expect_message();
    assert_eq!(
        (message.topic.as_str(), message.payload.as_str(), message.retain),
        ("walk/temp", "21", false)
    );

    // A late subscriber gets it with RETAIN=1, and exits after one message (-C 1).
    let mut late = MosquittoSub::start(&port, &["-t", "walk/temp", "-q", "1", "-C", "1"]);
    let message = late.expect_message();
    assert_eq!((message.payload.as_str(), message.qos, message.retain), ("21", 1, true));
    assert_eq!(late.next_message(), None);

    // Replaced: a late subscriber gets only the new value.
    mosquitto_pub(&port, &["-r", "-q", "0", "-t", "walk/temp", "-m", "22"]);
    assert_eq!(live.expect_message().payload, "22");
    let mut late = MosquittoSub::start(&port, &["-t", "walk/#", "-C", "1"]);
    let message = late.expect_message();
    assert_eq!((message.payload.as_str(), message.qos, message.retain), ("22", 0, true));

    // Deleted with an empty retained message (-n), which the live subscriber also gets.
    mosquitto_pub(&port, &["-r", "-t", "walk/temp", "-n"]);
    let message = live.expect_message();
    assert_eq!((message.payload.as_str(), message.retain), ("(null)", false));
    // A late subscriber to the topic and a marker gets the marker first: nothing is retained.
    let mut late = MosquittoSub::start(&port, &["-t", "walk/temp", "-t", "walk/marker", "-C", "1"]);
    mosquitto_pub(&port, &["-t", "walk/marker", "-m", "end"]);
    let message = late.expect_message();
    assert_eq!((message.topic.as_str(), message.retain), ("walk/marker", false));
    assert_eq!(live.expect_message().topic, "walk/marker");

    // A raw check of the same: subscribing to everything finds no retained message.
    let mut client = raw_connected(broker.addr, "walk-check");
    subscribe(&mut client, 1, &[("#", 0)]);
    let mut publisher = raw_connected(broker.addr, "walk-marker");
    publish(&mut publisher, "walk/marker", b"again", 0, false, 0);
    assert!(publishes_until(&mut client, "walk/marker").is_empty());
}

/// Stores `count` retained QoS 1 messages on `r/00000`.. through a raw client.
fn store_retained(broker: &TestBroker, count: usize) {
    let mut publisher = raw_connected(broker.addr, "retainer");
    let mut burst = Vec::new();
    for i in 0..count {
        burst.extend(publish_packet(&format!("r/{i:05}"), b"v", 0, true, false, 0));
    }
    publisher.send(&burst);
    publisher.send(&PINGREQ);
    publisher.expect(&PINGRESP);
}

/// Counts the retained PUBLISH packets a client receives before the answer to a PINGREQ.
fn count_retained(client: &mut RawClient) -> usize {
    let mut retained = 0;
    client.send(&PINGREQ);
    loop {
        let packet = client.read_packet();
        match packet[0] {
            0x31 => retained += 1,
            0xD0 => return retained,
            other => panic!("unexpected packet type {other:#04x}"),
        }
    }
}

/// [MQTT-3.8.4-3]: a filter named again replaces the subscription and its retained messages are
/// sent again; one SUBSCRIBE naming "#" three times is three subscriptions in turn
/// [MQTT-3.8.4-5], so each of the 20 retained messages arrives three times, under a queue bound
/// of 5: retained messages on subscribe have an allowance of their own.
#[test]
fn mqtt_3_8_4_3_repeated_filters_get_their_retained_messages_each_time() {
    let broker = TestBroker::with_config("[server]\nmax_queued_messages = 5\n");
    store_retained(&broker, 20);
    let mut subscriber = raw_connected(broker.addr, "greedy");
    subscriber.send(&subscribe_packet(1, &[("#", 0), ("#", 0), ("#", 0)]));
    assert_eq!(subscriber.read_packet(), vec![0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]);
    assert_eq!(count_retained(&mut subscriber), 60);
}

/// [MQTT-3.8.4-3]: every matching retained message is sent to a new subscription, not only as
/// many as `max_queued_messages` (1,000 by default): a client that reads gets all 5,000.
#[test]
fn mqtt_3_8_4_3_all_retained_messages_reach_a_reading_subscriber_beyond_the_queue_bound() {
    let broker = TestBroker::start();
    store_retained(&broker, 5000);
    let mut subscriber = raw_connected(broker.addr, "reader");
    subscriber.send(&subscribe_packet(1, &[("r/#", 0)]));
    assert_eq!(subscriber.read_packet(), vec![0x90, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(count_retained(&mut subscriber), 5000);
}
