//! MQTT 5.0 SUBSCRIBE and UNSUBSCRIBE over raw packets built with the codec's packet model:
//! the subscription options (No Local, Retain As Published, Retain Handling), Subscription
//! Identifiers on live, retained and overlapping deliveries, the per-filter reason codes of
//! SUBACK and UNSUBACK, and the Protocol Error of a Subscription Identifier 0.
//!
//! Negative deliveries are proven with a marker: a message published after the ones under test,
//! on a topic the subscriber also subscribes to, must arrive with nothing unexpected before it.
//! Each test names the 5.0 normative statement (or section) it checks.

use iothub_protocol::{Packet, PublishProperties, QoS, ReasonCode, RetainHandling};
use iothub_test_util::v5_client::{
    message, no_local, options, retain_as_published, retain_handling, subscription_ids, text,
};
use iothub_test_util::{mosquitto_pub, require_tool, with_header, TestBroker, Tool, V5Client};

/// The topic that ends every check; subscribed to alongside the filter under test.
const MARKER: &str = "zz-marker";

/// The payloads of `publishes`, as text.
fn payloads(publishes: &[iothub_protocol::Publish]) -> Vec<&str> {
    publishes.iter().map(text).collect()
}

/// [MQTT-3.8.3-3]: with No Local, the subscriber's own publications are not forwarded to it;
/// everyone else's still are, and so are its own on a subscription without No Local.
#[test]
fn mqtt_3_8_3_3_no_local_drops_own_publications_and_keeps_others() {
    let broker = TestBroker::start();
    let mut me = V5Client::connect(broker.addr, "no-local-me");
    me.subscribe_granted(1, &[("nl/t", no_local(1)), (MARKER, options(1))], None);
    let mut watcher = V5Client::connect(broker.addr, "no-local-watcher");
    watcher.subscribe_granted(1, &[("nl/t", options(1)), (MARKER, options(1))], None);

    // Its own message, then its own marker, which comes back on the marker's subscription.
    me.send(&Packet::Publish(message("nl/t", b"own", 0, false, 0)));
    me.send(&Packet::Publish(message(MARKER, b"own marker", 0, false, 0)));
    assert_eq!(payloads(&me.publishes_until(MARKER)), Vec::<&str>::new(), "own publication forwarded");
    // A subscription without No Local gets the same message.
    assert_eq!(payloads(&watcher.publishes_until(MARKER)), ["own"]);

    let mut other = V5Client::connect(broker.addr, "no-local-other");
    other.publish(message("nl/t", b"other", 1, false, 1));
    other.publish(message(MARKER, b"", 1, false, 2));
    assert_eq!(payloads(&me.publishes_until(MARKER)), ["other"]);
}

/// [MQTT-3.8.3-3] with overlapping subscriptions: an own publication that matches a No Local
/// subscription and one without No Local comes back once, by the second only, with only its
/// Subscription Identifier.
#[test]
fn mqtt_3_8_3_3_no_local_leaves_an_overlapping_subscription_its_copy() {
    let broker = TestBroker::start();
    let mut me = V5Client::connect(broker.addr, "no-local-overlap");
    me.subscribe_granted(1, &[("nlo/+", no_local(1))], Some(1));
    me.subscribe_granted(2, &[("nlo/#", options(1))], Some(2));
    me.subscribe_granted(3, &[(MARKER, options(0))], None);
    me.send(&Packet::Publish(message("nlo/t", b"own", 0, false, 0)));
    me.send(&Packet::Publish(message(MARKER, b"", 0, false, 0)));
    let received = me.publishes_until(MARKER);
    assert_eq!(payloads(&received), ["own"]);
    assert_eq!(subscription_ids(&received[0]), [2], "only the subscription without No Local");
}

/// [MQTT-3.8.4-3]: a SUBSCRIBE to a filter the session holds replaces the subscription: its
/// options and its Subscription Identifier (here: No Local set, then cleared, and the
/// identifier changed, then removed).
#[test]
fn mqtt_3_8_4_3_resubscribing_replaces_the_options_and_the_identifier() {
    let broker = TestBroker::start();
    let mut me = V5Client::connect(broker.addr, "replace");
    me.subscribe_granted(1, &[("rep/t", no_local(1)), (MARKER, options(0))], Some(1));
    me.send(&Packet::Publish(message("rep/t", b"own, no local", 0, false, 0)));
    me.send(&Packet::Publish(message(MARKER, b"", 0, false, 0)));
    assert_eq!(payloads(&me.publishes_until(MARKER)), Vec::<&str>::new());

    me.subscribe_granted(2, &[("rep/t", options(1))], Some(9));
    me.send(&Packet::Publish(message("rep/t", b"own, replaced", 0, false, 0)));
    me.send(&Packet::Publish(message(MARKER, b"", 0, false, 0)));
    let received = me.publishes_until(MARKER);
    assert_eq!(payloads(&received), ["own, replaced"]);
    assert_eq!(subscription_ids(&received[0]), [9]);

    me.subscribe_granted(3, &[("rep/t", options(1))], None);
    me.send(&Packet::Publish(message("rep/t", b"no id", 0, false, 0)));
    me.send(&Packet::Publish(message(MARKER, b"", 0, false, 0)));
    let received = me.publishes_until(MARKER);
    assert_eq!(payloads(&received), ["no id"]);
    assert_eq!(subscription_ids(&received[0]), Vec::<u32>::new(), "the identifier is replaced too");
}

/// [MQTT-3.3.1-13]: with Retain As Published 1 a live retained publication is forwarded with
/// RETAIN=1, and a non-retained one with RETAIN=0.
#[test]
fn mqtt_3_3_1_13_retain_as_published_1_keeps_the_retain_flag() {
    let broker = TestBroker::start();
    let mut subscriber = V5Client::connect(broker.addr, "rap-1");
    subscriber.subscribe_granted(1, &[("rap/t", retain_as_published(1, true))], None);
    let mut publisher = V5Client::connect(broker.addr, "rap-pub");
    publisher.publish(message("rap/t", b"retained", 1, true, 1));
    publisher.publish(message("rap/t", b"plain", 1, false, 2));
    let first = subscriber.next_publish();
    assert_eq!((text(&first), first.retain), ("retained", true), "[MQTT-3.3.1-13]");
    let second = subscriber.next_publish();
    assert_eq!((text(&second), second.retain), ("plain", false), "[MQTT-3.3.1-13]");
}

/// [MQTT-3.3.1-12]: with Retain As Published 0 a live retained publication is forwarded with
/// RETAIN=0; the copy sent from the store on a new subscription still has RETAIN=1.
#[test]
fn mqtt_3_3_1_12_retain_as_published_0_clears_the_retain_flag() {
    let broker = TestBroker::start();
    let mut subscriber = V5Client::connect(broker.addr, "rap-0");
    subscriber.subscribe_granted(1, &[("rap/t", retain_as_published(1, false))], None);
    let mut publisher = V5Client::connect(broker.addr, "rap-pub");
    publisher.publish(message("rap/t", b"retained", 1, true, 1));
    let live = subscriber.next_publish();
    assert_eq!((text(&live), live.retain), ("retained", false), "[MQTT-3.3.1-12]");

    let mut late = V5Client::connect(broker.addr, "rap-0-late");
    late.subscribe_granted(1, &[("rap/t", retain_as_published(1, false))], None);
    let stored = late.next_publish();
    assert_eq!((text(&stored), stored.retain), ("retained", true), "a retained copy keeps RETAIN=1");
}

/// Publishes a retained QoS 1 message on `topic` from a client of its own.
fn retain(broker: &TestBroker, topic: &str, payload: &[u8]) {
    let mut publisher = V5Client::connect(broker.addr, "retainer");
    publisher.publish(message(topic, payload, 1, true, 1));
    publisher.disconnect();
}

/// [MQTT-3.3.1-9]: Retain Handling 0 sends the retained messages on every SUBSCRIBE, a repeated
/// one for an existing subscription included.
#[test]
fn mqtt_3_3_1_9_retain_handling_0_sends_retained_on_every_subscribe() {
    let broker = TestBroker::start();
    retain(&broker, "rh/t", b"kept");
    let mut client = V5Client::connect(broker.addr, "rh0");
    let rh0 = retain_handling(1, RetainHandling::SendAtSubscribe);
    for id in 1..=2 {
        client.subscribe_granted(id, &[("rh/t", rh0)], None);
        let stored = client.next_publish();
        assert_eq!((text(&stored), stored.retain), ("kept", true), "SUBSCRIBE {id}");
    }
    client.expect_no_publish();
}

/// [MQTT-3.3.1-10]: Retain Handling 1 sends the retained messages for a new subscription only:
/// re-subscribing to an existing filter sends none.
#[test]
fn mqtt_3_3_1_10_retain_handling_1_sends_retained_only_for_a_new_subscription() {
    let broker = TestBroker::start();
    retain(&broker, "rh/t", b"kept");
    let mut client = V5Client::connect(broker.addr, "rh1");
    let rh1 = retain_handling(1, RetainHandling::SendAtNewSubscribe);
    client.subscribe_granted(1, &[("rh/t", rh1)], None);
    let stored = client.next_publish();
    assert_eq!((text(&stored), stored.retain), ("kept", true));
    client.subscribe_granted(2, &[("rh/t", rh1)], None);
    client.expect_no_publish();
    // Once unsubscribed, the filter is new again.
    assert_eq!(client.unsubscribe(3, &["rh/t"]), [ReasonCode::Success]);
    client.subscribe_granted(4, &[("rh/t", rh1)], None);
    assert_eq!(text(&client.next_publish()), "kept");
}

/// [MQTT-3.3.1-11]: Retain Handling 2 never sends the retained messages; live messages still
/// arrive.
#[test]
fn mqtt_3_3_1_11_retain_handling_2_sends_no_retained_messages() {
    let broker = TestBroker::start();
    retain(&broker, "rh/t", b"kept");
    let mut client = V5Client::connect(broker.addr, "rh2");
    client.subscribe_granted(1, &[("rh/+", retain_handling(1, RetainHandling::DoNotSend))], None);
    client.expect_no_publish();
    let mut publisher = V5Client::connect(broker.addr, "rh-pub");
    publisher.publish(message("rh/t", b"live", 1, false, 1));
    let live = client.next_publish();
    assert_eq!((text(&live), live.retain), ("live", false));
}

/// [MQTT-3.3.4-3]: the Subscription Identifier of the SUBSCRIBE comes with every message the
/// subscription brings, live and retained; a subscription without one brings none.
#[test]
fn mqtt_3_3_4_3_subscription_identifier_on_live_and_retained_deliveries() {
    let broker = TestBroker::start();
    retain(&broker, "sid/a", b"stored");
    let mut client = V5Client::connect(broker.addr, "sid");
    client.subscribe_granted(1, &[("sid/a", options(1))], Some(7));
    let stored = client.next_publish();
    assert_eq!((text(&stored), stored.retain, subscription_ids(&stored)), ("stored", true, vec![7]));
    client.subscribe_granted(2, &[("sid/b", options(1))], None);

    let mut publisher = V5Client::connect(broker.addr, "sid-pub");
    publisher.publish(message("sid/a", b"live", 1, false, 1));
    publisher.publish(message("sid/b", b"no id", 1, false, 2));
    let live = client.next_publish();
    assert_eq!((text(&live), subscription_ids(&live)), ("live", vec![7]));
    let plain = client.next_publish();
    assert_eq!((text(&plain), subscription_ids(&plain)), ("no id", vec![]));
}

/// [MQTT-3.3.4-4]: overlapping subscriptions of one client with two identifiers: the broker
/// sends one copy (its choice, 3.3.4), so it carries both identifiers, at the highest granted
/// QoS [MQTT-3.3.4-2]. A third overlapping subscription without an identifier adds none.
#[test]
fn mqtt_3_3_4_4_overlapping_subscriptions_one_copy_with_both_identifiers() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "overlap");
    client.subscribe_granted(1, &[("ov/+", options(0))], Some(1));
    client.subscribe_granted(2, &[("ov/#", options(1))], Some(268_435_455));
    client.subscribe_granted(3, &[("+/a", options(0)), (MARKER, options(0))], None);
    let mut publisher = V5Client::connect(broker.addr, "overlap-pub");
    publisher.publish(message("ov/a", b"once", 2, false, 1));
    publisher.publish(message(MARKER, b"", 0, false, 0));
    let received = client.publishes_until(MARKER);
    assert_eq!(payloads(&received), ["once"], "one copy for overlapping subscriptions");
    assert_eq!(subscription_ids(&received[0]), [1, 268_435_455], "[MQTT-3.3.4-4]");
    assert_eq!(received[0].qos, QoS::AtLeastOnce, "the highest granted QoS");
}

/// Section 3.8.2.1.2: a Subscription Identifier of 0 is a Protocol Error, answered with
/// DISCONNECT 0x82 (4.13.1).
#[test]
fn section_3_8_2_1_2_subscription_identifier_0_is_a_protocol_error() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "sid-zero");
    // Packet identifier 1, properties (length 2): Subscription Identifier 0; filter "t", QoS 0.
    let body = [0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, b't', 0x00];
    client.raw.send(&with_header(0x82, &body));
    assert_eq!(client.expect_disconnect(), ReasonCode::ProtocolError);
}

/// [MQTT-3.8.4-6], [MQTT-3.8.4-7], [MQTT-3.9.3-1]: one reason code per filter, in order: the
/// granted QoS, or the failure.
#[test]
fn mqtt_3_8_4_6_suback_has_a_granted_qos_per_filter_in_order() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "suback");
    let codes = client.subscribe(9, &[("a", options(2)), ("b/+", options(0)), ("c/#", options(1))], None);
    assert_eq!(codes, [ReasonCode::GrantedQoS2, ReasonCode::Success, ReasonCode::GrantedQoS1]);
}

/// Section 3.9.3: a new subscription beyond `max_subscriptions` is refused with 0x97 Quota
/// exceeded, while the others of the same SUBSCRIBE, and a re-subscription to a filter held
/// already, are granted.
#[test]
fn section_3_9_3_suback_0x97_beyond_max_subscriptions() {
    let broker = TestBroker::with_config("[server]\nmax_subscriptions = 2\n");
    let mut client = V5Client::connect(broker.addr, "quota");
    let codes = client.subscribe(1, &[("q/1", options(1)), ("q/2", options(1)), ("q/3", options(1))], None);
    assert_eq!(codes, [ReasonCode::GrantedQoS1, ReasonCode::GrantedQoS1, ReasonCode::QuotaExceeded]);
    let codes = client.subscribe(2, &[("q/1", options(0)), ("q/4", options(0))], None);
    assert_eq!(codes, [ReasonCode::Success, ReasonCode::QuotaExceeded]);
}

/// [MQTT-4.8.2-1], [MQTT-4.8.2-2]: a shared subscription's filter has a ShareName of at least
/// one character, without "+" or "#", followed by "/" and a topic filter; a SUBSCRIBE to one
/// that has not is refused for that filter with 0x8F Topic Filter invalid, and the connection
/// and the other filters are kept.
#[test]
fn mqtt_4_8_2_1_and_4_8_2_2_malformed_shared_filters_get_0x8f() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "bad-share");
    for (id, filter) in (1..).zip(["$share//x", "$share/g", "$share/g/", "$share/g+/x", "$share/#/x"]) {
        let codes = client.subscribe(id, &[(filter, options(1)), ("ok/t", options(1))], None);
        assert_eq!(codes, [ReasonCode::TopicFilterInvalid, ReasonCode::GrantedQoS1], "{filter:?}");
    }
    // The good shared filter is granted.
    assert_eq!(client.subscribe(10, &[("$share/g/x", options(1))], None), [ReasonCode::GrantedQoS1]);
}

/// Section 3.11.3: UNSUBACK has one reason code per filter, in order [MQTT-3.11.3-1]: 0x00
/// for a subscription that existed and is removed, 0x11 No subscription existed otherwise.
#[test]
fn section_3_11_3_unsuback_0x00_for_an_existing_and_0x11_for_a_missing_filter() {
    let broker = TestBroker::start();
    let mut client = V5Client::connect(broker.addr, "unsuback");
    client.subscribe_granted(1, &[("u/a", options(1)), ("$share/g/u/b", options(1))], None);
    let codes = client.unsubscribe(2, &["u/a", "u/missing", "$share/g/u/b", "$share/other/u/b"]);
    assert_eq!(
        codes,
        [
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted,
            ReasonCode::Success,
            ReasonCode::NoSubscriptionExisted
        ]
    );
    assert_eq!(client.unsubscribe(3, &["u/a"]), [ReasonCode::NoSubscriptionExisted], "already removed");
}

/// A PUBLISH that another client sends as soon as the SUBACK arrived reaches the new
/// subscription: the subscription is in place before its SUBACK is sent (3.8.4).
#[test]
fn section_3_8_4_a_publish_sent_right_after_suback_reaches_the_new_subscription() {
    let broker = TestBroker::start();
    let mut publisher = V5Client::connect(broker.addr, "after-suback-pub");
    for round in 0..20u16 {
        let mut subscriber = V5Client::connect(broker.addr, "after-suback");
        let filter = format!("after/{round}");
        subscriber.subscribe_granted(1, &[(&filter, options(1))], Some(u32::from(round) + 1));
        publisher.publish(message(&filter, b"right after", 1, false, round + 1));
        let received = subscriber.next_publish();
        assert_eq!(
            (text(&received), subscription_ids(&received)),
            ("right after", vec![u32::from(round) + 1])
        );
        subscriber.disconnect();
    }
}

/// Properties of a publication are forwarded unchanged to a 5.0 subscriber (3.3.2.3): the
/// Response Topic, Correlation Data, User Properties in order, Content Type and Payload
/// Format Indicator, with the Subscription Identifier added.
#[test]
fn section_3_3_2_3_publish_properties_are_forwarded_with_the_subscription_identifier() {
    let broker = TestBroker::start();
    let mut subscriber = V5Client::connect(broker.addr, "props-sub");
    subscriber.subscribe_granted(1, &[("props/#", options(1))], Some(42));
    let mut publisher = V5Client::connect(broker.addr, "props-pub");
    let properties = PublishProperties {
        payload_format_indicator: Some(iothub_protocol::PayloadFormat::Utf8),
        response_topic: Some("props/reply".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into()), ("a".into(), "b".into())],
        content_type: Some("text/plain".into()),
        ..PublishProperties::default()
    };
    let sent =
        iothub_test_util::v5_client::with_properties(message("props/req", b"ping", 1, false, 1), properties);
    publisher.publish(sent.clone());
    let received = subscriber.next_publish();
    let mut expected = sent.properties.as_deref().cloned().unwrap_or_default();
    expected.subscription_identifiers = vec![std::num::NonZeroU32::new(42).unwrap()];
    assert_eq!(received.properties.as_deref(), Some(&expected));
    assert_eq!(received.payload, sent.payload);
}

/// Command-line arguments from one line; none of them contains a space.
fn args(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Request/response between Mosquitto's clients at 5.0 (4.10): the requester's Response
/// Topic, Correlation Data, User Properties (in order, with a repeated name) and Message
/// Expiry Interval reach the responder with its Subscription Identifier, and the response
/// sent to the Response Topic with the Correlation Data reaches the requester.
#[test]
fn section_4_10_mosquitto_request_response_at_5_0_keeps_every_property() {
    require_tool("mosquitto_pub");
    let broker = TestBroker::start();
    let port = broker.port();
    let responder = Tool::mosquitto_sub(
        &port,
        &args(
            "-V mqttv5 -d -q 1 -t rr/req -D subscribe subscription-identifier 5 \
             -F REQ|%t|%R|%D|%P|%E|%S|%q|%p",
        ),
    );
    responder.expect_line_containing("received SUBACK");
    let requester = Tool::mosquitto_sub(&port, &args("-V mqttv5 -d -q 1 -t rr/resp/+ -F RESP|%t|%D|%P|%p"));
    requester.expect_line_containing("received SUBACK");
    mosquitto_pub(
        &port,
        &args(
            "-V mqttv5 -q 1 -t rr/req -m ping -D publish response-topic rr/resp/7 \
             -D publish correlation-data req-7 -D publish user-property trace abc \
             -D publish user-property trace def -D publish user-property origin pub \
             -D publish message-expiry-interval 60",
        ),
    );
    let request = responder.expect_line("the request", |line| line.starts_with("REQ|"));
    let fields: Vec<&str> = request.split('|').collect();
    let expected = "REQ|rr/req|rr/resp/7|req-7|trace:abc trace:def origin:pub|60|5|1|ping";
    assert_eq!(fields, expected.split('|').collect::<Vec<_>>());
    // The responder answers on the Response Topic with the Correlation Data.
    let (response_topic, correlation) = (fields[2], fields[3]);
    let mut respond = args("-V mqttv5 -q 1 -m pong -D publish user-property status ok");
    respond.extend(["-t", response_topic, "-D", "publish", "correlation-data", correlation]);
    mosquitto_pub(&port, &respond);
    let response = requester.expect_line("the response", |line| line.starts_with("RESP|"));
    assert_eq!(response, "RESP|rr/resp/7|req-7|status:ok|pong");
}
