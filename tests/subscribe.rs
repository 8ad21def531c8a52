//! SUBSCRIBE and UNSUBSCRIBE: the SUBACK codes, topic filter matching shown with real
//! deliveries (wildcards, the "$" rule, case sensitivity, empty levels), re-subscription,
//! overlapping subscriptions, and UNSUBACK.
//!
//! Negative deliveries are proven with a marker: the publisher sends the marker after the
//! messages under test, and the subscriber, which also subscribes to the marker, must see the
//! marker with nothing unexpected before it.

use iothub_test_util::{
    expect_no_publish_before_pingresp, next_publish, publish, publish_packet, publishes_until, raw_connected,
    raw_subscriber, subscribe, subscribe_packet, unsubscribe_packet, TestBroker,
};

/// The topic that ends every check; subscribed to alongside the filter under test.
const MARKER: &str = "zz-marker";

/// Subscribes to `filter`, publishes every topic in `topics` (with the topic as payload), then
/// checks that exactly the topics marked `true` were delivered, once each, in order.
fn assert_routing(filter: &str, topics: &[(&str, bool)]) {
    let broker = TestBroker::start();
    let mut subscriber = raw_subscriber(broker.addr, "sub", &[(filter, 0), (MARKER, 0)]);
    let mut publisher = raw_connected(broker.addr, "pub");
    for (topic, _) in topics {
        publish(&mut publisher, topic, topic.as_bytes(), 0, false, 0);
    }
    publish(&mut publisher, MARKER, b"", 0, false, 0);
    let received: Vec<String> =
        publishes_until(&mut subscriber, MARKER).into_iter().map(|m| m.topic).collect();
    let expected: Vec<&str> =
        topics.iter().filter(|(_, matches)| *matches).map(|(topic, _)| *topic).collect();
    assert_eq!(received, expected, "deliveries for filter {filter:?}");
}

#[test]
fn mqtt_3_8_4_5_and_3_9_3_1_suback_has_one_code_per_filter_in_order() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "suback");
    let filters = [("a", 2), ("b/+", 0), ("c/#", 1), ("+/d/#", 2), ("e", 0)];
    client.send(&subscribe_packet(0x1234, &filters));
    // [MQTT-3.8.4-1], [MQTT-3.8.4-2]: a SUBACK with the SUBSCRIBE's packet identifier;
    // [MQTT-3.8.4-5]: one code per filter, the granted QoS; [MQTT-3.9.3-1]: in filter order.
    client.expect(&[0x90, 0x07, 0x12, 0x34, 0x02, 0x00, 0x01, 0x02, 0x00]);
}

#[test]
fn section_4_7_1_3_single_level_wildcard_matches_exactly_one_level() {
    assert_routing(
        "sport/tennis/+",
        &[
            ("sport/tennis/player1", true),
            ("sport/tennis/player2", true),
            ("sport/tennis/player1/ranking", false),
            ("sport/tennis", false),
            ("sport/tennis/", true),
            ("sport/squash/player1", false),
        ],
    );
}

#[test]
fn section_4_7_1_2_multi_level_wildcard_matches_the_parent_and_every_descendant() {
    // The non-normative example of 4.7.1.2 [MQTT-4.7.1-2]: "sport/#" also matches "sport".
    assert_routing(
        "sport/#",
        &[
            ("sport", true),
            ("sport/tennis/player1", true),
            ("sport/tennis/player1/ranking", true),
            ("sport/", true),
            ("sports", false),
            ("/sport", false),
        ],
    );
}

#[test]
fn section_4_7_1_3_plus_plus_matches_two_levels_including_empty_ones() {
    assert_routing(
        "+/+",
        &[("/finance", true), ("a/b", true), ("a/", true), ("/", true), ("a", false), ("a/b/c", false)],
    );
}

#[test]
fn section_4_7_1_3_slash_plus_matches_a_leading_empty_level() {
    assert_routing(
        "/+",
        &[("/finance", true), ("finance", false), ("a/b", false), ("/a/b", false), ("/", true)],
    );
}

#[test]
fn section_4_7_1_3_lone_plus_matches_one_level_only() {
    assert_routing("+", &[("finance", true), ("/finance", false), ("a/b", false)]);
}

#[test]
fn section_4_7_1_2_lone_hash_matches_every_topic_not_starting_with_dollar() {
    assert_routing(
        "#",
        &[
            ("a", true),
            ("a/b/c", true),
            ("/", true),
            ("/a", true),
            ("$foo", false),
            ("$foo/a", false),
            ("a/$b", true),
        ],
    );
}

#[test]
fn mqtt_4_7_2_1_wildcards_in_the_first_level_do_not_match_dollar_topics() {
    // "$SYS" topics cannot come from clients (the broker drops such publications), so the rule
    // is shown with other "$" topics; the filters name the "$" level explicitly to match them.
    let topics = ["$foo", "$foo/x", "$SYS/x", "a/x"];
    let cases: [(&str, &[&str]); 8] = [
        ("#", &["a/x"]),
        ("+/x", &["a/x"]),
        ("+/#", &["a/x"]),
        ("+", &[]),
        ("$foo/#", &["$foo", "$foo/x"]),
        ("$foo/+", &["$foo/x"]),
        ("$foo", &["$foo"]),
        ("$SYS/#", &[]),
    ];
    for (filter, expected) in cases {
        let routing: Vec<(&str, bool)> = topics.iter().map(|t| (*t, expected.contains(t))).collect();
        assert_routing(filter, &routing);
    }
}

#[test]
fn section_4_7_3_topics_are_case_sensitive() {
    assert_routing(
        "Case/Topic",
        &[("case/topic", false), ("CASE/TOPIC", false), ("Case/Topic", true), ("Case/topic", false)],
    );
}

#[test]
fn section_4_7_3_empty_levels_are_levels() {
    assert_routing("a//b", &[("a//b", true), ("a/b", false), ("a///b", false)]);
    assert_routing("a/+/b", &[("a//b", true), ("a/b", false), ("a/x/b", true)]);
}

#[test]
fn mqtt_3_8_4_3_identical_filter_resubscribe_replaces_the_subscription() {
    let broker = TestBroker::start();
    let mut subscriber = raw_subscriber(broker.addr, "resub", &[("r/t", 1), (MARKER, 0)]);
    subscribe(&mut subscriber, 2, &[("r/t", 0)]);
    let mut publisher = raw_connected(broker.addr, "resub-pub");
    publish(&mut publisher, "r/t", b"one", 1, false, 1);
    publish(&mut publisher, MARKER, b"", 0, false, 0);

    let received = publishes_until(&mut subscriber, MARKER);
    assert_eq!(received.len(), 1, "one subscription, one copy: {received:?}");
    assert_eq!(received[0].qos, 0, "the new subscription's QoS replaced the old one");
}

#[test]
fn mqtt_3_3_5_1_overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let broker = TestBroker::start();
    let mut subscriber = raw_subscriber(broker.addr, "overlap", &[("a/+", 0), ("a/#", 2), (MARKER, 0)]);
    let mut publisher = raw_connected(broker.addr, "overlap-pub");
    publish(&mut publisher, "a/b", b"x", 2, false, 1);
    publish(&mut publisher, MARKER, b"", 0, false, 0);

    let received = publishes_until(&mut subscriber, MARKER);
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].qos, 2, "[MQTT-3.3.5-1] the maximum QoS of the matching subscriptions");
}

#[test]
fn mqtt_3_10_4_4_and_5_unsuback_is_sent_even_when_nothing_was_subscribed() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "unsub");
    // [MQTT-3.10.4-5]: an UNSUBACK even though no subscription is deleted.
    client.send(&unsubscribe_packet(0x0101, &["never/subscribed"]));
    client.expect(&[0xB0, 0x02, 0x01, 0x01]);
    // [MQTT-3.10.4-4]: and for a mix of known and unknown filters, with the same identifier.
    subscribe(&mut client, 2, &[("known", 1)]);
    client.send(&unsubscribe_packet(0xBEEF, &["unknown", "known", "known"]));
    client.expect(&[0xB0, 0x02, 0xBE, 0xEF]);
}

#[test]
fn mqtt_3_10_4_2_no_messages_after_unsubscribe() {
    let broker = TestBroker::start();
    let mut subscriber = raw_subscriber(broker.addr, "unsub-sub", &[("u/#", 1), ("u/x", 0), (MARKER, 0)]);
    let mut publisher = raw_connected(broker.addr, "unsub-pub");
    publish(&mut publisher, "u/x", b"before", 1, false, 1);
    assert_eq!(next_publish(&mut subscriber).text(), "before");

    // [MQTT-3.10.4-1]: filters are compared character by character, so "u/+" removes nothing
    // and "u/#" removes only itself.
    subscriber.send(&unsubscribe_packet(9, &["u/+", "u/#"]));
    subscriber.expect(&[0xB0, 0x02, 0x00, 0x09]);
    publish(&mut publisher, "u/x", b"still", 1, false, 2);
    publish(&mut publisher, "u/y", b"gone", 1, false, 3);
    publish(&mut publisher, MARKER, b"", 0, false, 0);
    let received = publishes_until(&mut subscriber, MARKER);
    let texts: Vec<(&str, u8)> = received.iter().map(|m| (m.text(), m.qos)).collect();
    assert_eq!(texts, vec![("still", 0)], "only the remaining \"u/x\" subscription delivers");

    // [MQTT-3.10.4-2]: after the last one is removed nothing more is delivered.
    subscriber.send(&unsubscribe_packet(10, &["u/x"]));
    subscriber.expect(&[0xB0, 0x02, 0x00, 0x0A]);
    publish(&mut publisher, "u/x", b"after", 1, false, 4);
    publish(&mut publisher, MARKER, b"", 0, false, 0);
    let received = publishes_until(&mut subscriber, MARKER);
    assert!(received.is_empty(), "{received:?}");
    expect_no_publish_before_pingresp(&mut subscriber);
}

/// Filters and topics deeper than the router's hierarchy limit (200 levels, as Mosquitto) are
/// refused, so a hostile client cannot build trees deep enough to exhaust the stack: a deep filter
/// gets 0x80 in SUBACK while a shallow one in the same packet is granted, and a deep topic name
/// closes the connection before anything is acknowledged, so no acknowledged message is dropped.
#[test]
fn filters_and_topics_deeper_than_200_levels_are_refused() {
    let broker = TestBroker::start();
    let mut client = raw_connected(broker.addr, "deep");
    let deep_filter = vec!["+"; 5000].join("/");
    client.send(&subscribe_packet(1, &[(&deep_filter, 0), ("#", 0)]));
    client.expect(&[0x90, 0x04, 0x00, 0x01, 0x80, 0x00]);
    let deep_topic = vec!["x"; 5000].join("/");
    client.send(&publish_packet(&deep_topic, b"p", 1, false, false, 7));
    client.expect_closed();
}
