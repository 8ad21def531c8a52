//! MQTT 5.0 connections: what CONNACK tells a client (the server's capabilities, an Assigned
//! Client Identifier, a lowered Session Expiry Interval, a Server Keep Alive, Response
//! Information), extended authentication refused, Session Expiry and Session Present across
//! reconnects, the server's DISCONNECT reason codes (takeover, keep-alive, shutdown, protocol
//! errors), the client's DISCONNECT (0x04, Session Expiry Interval changes), AUTH, and the Will
//! Delay Interval.
//!
//! Each test names the 5.0 statement it checks, `mqtt5_` and its number (5.0 numbering, which
//! differs from 3.1.1's), or `mqtt5_section_` and the section where the rule has no number.
//! Every test runs the broker on the paused clock, so delays, expiry and keep-alive are in
//! virtual time: exact to the millisecond and free in real time.

mod v5_support;

use std::time::Duration;

use iothub_protocol::{
    Auth, AuthProperties, ConnAck, ConnAckProperties, ConnectProperties, Packet, QoS, ReasonCode,
    WillProperties,
};
use iothub_test_util::paused::now;
use iothub_test_util::PausedBroker;
use v5_support::{
    connect, connect_with, disconnect_packet, expiry, properties_of, publish, user_properties, will,
    will_delay, Client,
};

/// The CONNACK's properties, or the empty set.
fn properties(connack: &ConnAck) -> ConnAckProperties {
    connack.properties.as_deref().cloned().unwrap_or_default()
}

/// Lets `time` pass on the paused clock, running every timer of the broker that falls due in it.
/// Not a synchronisation: the virtual clock only moves once every task is idle.
async fn pass(time: Duration) {
    tokio::time::sleep(time).await;
}

/// Reconnects `client_id` with Clean Start 0 and no Session Expiry Interval, and returns whether
/// the broker had a session for it; the session ends with this connection, which is closed.
async fn had_session(broker: &PausedBroker, client_id: &str) -> bool {
    let (client, connack) = Client::open(broker, connect_with(client_id, false, expiry(0))).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    client.disconnect().await;
    connack.session_present
}

/// A 5.0 client subscribed to `filter` at QoS 0, to watch for wills and markers.
async fn watcher(broker: &PausedBroker, client_id: &str, filter: &str) -> Client {
    let mut watcher = Client::clean(broker, client_id).await;
    watcher.subscribe(1, filter, QoS::AtMostOnce, None).await;
    watcher
}

/// Publishes a QoS 0 marker to `topic` from a fresh client: a watcher whose next message is the
/// marker got nothing published before it.
async fn publish_marker(broker: &PausedBroker, topic: &str) {
    let mut publisher = Client::clean(broker, "marker-publisher").await;
    publisher.publish(publish(topic, b"marker", QoS::AtMostOnce, 0)).await;
    publisher.disconnect().await;
}

/// 3.2.2.3: a CONNACK that accepts a plain 5.0 CONNECT tells the server's capabilities:
/// retained messages, wildcard, Subscription Identifier and shared subscriptions available, Topic
/// Alias Maximum `server.max_topic_alias` (10 by default) and Maximum Packet Size
/// `server.max_packet_size`; nothing that was not asked for: no Receive Maximum (the default
/// 65,535), no Session Expiry Interval (the one asked for is granted), no Server Keep Alive, no
/// Assigned Client Identifier, and no Response Information without a request for it
/// [MQTT-3.1.2-28]. Session Present is 0 for Clean Start 1 [MQTT-3.2.2-2].
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_2_2_3_connack_tells_what_the_server_supports() {
    let broker = PausedBroker::with_config("[server]\nmax_packet_size = 4096\n").await;
    let (_client, connack) = Client::open(&broker, connect("capabilities")).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert!(!connack.session_present);
    let expected = ConnAckProperties {
        retain_available: Some(true),
        maximum_packet_size: std::num::NonZeroU32::new(4096),
        topic_alias_maximum: Some(10),
        wildcard_subscription_available: Some(true),
        subscription_identifiers_available: Some(true),
        shared_subscription_available: Some(true),
        ..ConnAckProperties::default()
    };
    assert_eq!(properties(&connack), expected);
}

/// 3.2.2.3.8: with `server.max_topic_alias = 0` the CONNACK has no Topic Alias Maximum, which
/// means 0 to the client, and a Topic Alias from the client is then invalid (0x94)
/// [MQTT-3.2.2-18].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_2_2_18_no_topic_alias_maximum_when_aliases_are_off() {
    let broker = PausedBroker::with_config("[server]\nmax_topic_alias = 0\n").await;
    let (mut client, connack) = Client::open(&broker, connect("no-aliases")).await;
    assert_eq!(properties(&connack).topic_alias_maximum, None);
    let aliased = v5_support::with(
        publish("aliases/off", b"x", QoS::AtMostOnce, 0),
        iothub_protocol::PublishProperties { topic_alias: Some(v5_support::alias(1)), ..Default::default() },
    );
    client.send_publish(&aliased).await;
    client.expect_disconnect(ReasonCode::TopicAliasInvalid).await;
}

/// [MQTT-3.1.3-6], [MQTT-3.1.3-7], [MQTT-3.2.2-16]: a zero-length Client Identifier gets a
/// unique Assigned Client Identifier in CONNACK, and the session is that identifier's: a later
/// connection that names it resumes the session.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_3_7_empty_client_id_gets_an_assigned_client_identifier() {
    let broker = PausedBroker::start().await;
    let (first, connack) = Client::open(&broker, connect_with("", true, expiry(60))).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    let assigned = properties(&connack).assigned_client_identifier.expect("an Assigned Client Identifier");
    assert!(!assigned.is_empty());
    let (_second, other) = Client::open(&broker, connect("")).await;
    let other = properties(&other).assigned_client_identifier.expect("an Assigned Client Identifier");
    assert_ne!(assigned, other, "two clients were assigned the same identifier");
    first.disconnect().await;
    let (_resumed, connack) = Client::open(&broker, connect_with(&assigned, false, expiry(60))).await;
    assert!(connack.session_present, "the session belongs to the assigned identifier");
    assert_eq!(properties(&connack).assigned_client_identifier, None, "only for an empty identifier");
}

/// 3.2.2.3.2: a Session Expiry Interval above `server.session_timeout_secs` is lowered to it, and
/// CONNACK says so; one within it is granted as asked and not repeated. The lowered interval
/// is the one that applies: the session is kept 60 s, not an hour.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_2_2_3_2_session_expiry_above_the_servers_maximum_is_lowered_and_told() {
    let broker = PausedBroker::with_config("[server]\nsession_timeout_secs = 60\n").await;
    let (client, connack) = Client::open(&broker, connect_with("long-expiry", true, expiry(3600))).await;
    assert_eq!(properties(&connack).session_expiry_interval, Some(60));
    client.disconnect().await;
    let (short, connack) = Client::open(&broker, connect_with("short-expiry", true, expiry(30))).await;
    assert_eq!(properties(&connack).session_expiry_interval, None, "granted as asked");
    short.disconnect().await;

    pass(Duration::from_secs(59)).await;
    let (client, connack) = Client::open(&broker, connect_with("long-expiry", false, expiry(3600))).await;
    assert!(connack.session_present, "kept for 60 s");
    client.disconnect().await;
    pass(Duration::from_secs(61)).await;
    assert!(!had_session(&broker, "long-expiry").await, "kept for 60 s, not 3600 s");
}

/// [MQTT-3.2.2-21]: a 5.0 client whose Keep Alive is above `server.keep_alive_timeout_secs` is
/// accepted (3.1.1 is refused, see connect.rs) and told the server's value in Server Keep Alive,
/// which the server then applies: silent, it is closed with DISCONNECT 0x8D after 1.5 times 2 s,
/// not 1.5 times 60 s. A Keep Alive within the maximum gets no Server Keep Alive and is used as
/// sent [MQTT-3.2.2-22].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_2_2_21_keep_alive_above_the_maximum_gets_server_keep_alive() {
    let broker = PausedBroker::with_config("[server]\nkeep_alive_timeout_secs = 2\n").await;
    let start = now();
    let long = iothub_protocol::Connect { keep_alive: 60, ..connect("long-keep-alive") };
    let (mut client, connack) = Client::open(&broker, long).await;
    assert_eq!(connack.reason_code, ReasonCode::Success);
    assert_eq!(properties(&connack).server_keep_alive, Some(2));
    client.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    let elapsed = now() - start;
    assert!(elapsed >= Duration::from_secs(3), "closed after {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(3010), "closed after {elapsed:?}");

    let within = iothub_protocol::Connect { keep_alive: 2, ..connect("keep-alive-within") };
    let (_client, connack) = Client::open(&broker, within).await;
    assert_eq!(properties(&connack).server_keep_alive, None);
}

/// [MQTT-3.1.2-22], 4.13: a client silent for 1.5 times its Keep Alive is told why before the
/// close: DISCONNECT 0x8D (Keep Alive timeout).
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_22_silent_client_gets_disconnect_0x8d() {
    let broker = PausedBroker::start().await;
    let start = now();
    let mut client =
        Client::connected(&broker, iothub_protocol::Connect { keep_alive: 1, ..connect("silent") }).await;
    client.expect_disconnect(ReasonCode::KeepAliveTimeout).await;
    let elapsed = now() - start;
    assert!(elapsed >= Duration::from_millis(1500), "closed after {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1510), "closed after {elapsed:?}");
}

/// 3.2.2.3.15: Request Response Information 1 gets Response Information in CONNACK; 0 gets none
/// [MQTT-3.1.2-28].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_28_response_information_only_when_requested() {
    let broker = PausedBroker::start().await;
    let asked = ConnectProperties { request_response_information: Some(true), ..Default::default() };
    let (_client, connack) = Client::open(&broker, connect_with("asks", true, asked)).await;
    let information = properties(&connack).response_information.expect("Response Information");
    assert!(!information.is_empty());
    let declined = ConnectProperties { request_response_information: Some(false), ..Default::default() };
    let (_client, connack) = Client::open(&broker, connect_with("declines", true, declined)).await;
    assert_eq!(properties(&connack).response_information, None);
}

/// [MQTT-4.12.0-1]: an Authentication Method the server does not support (it supports none) is
/// refused with CONNACK 0x8C (Bad authentication method), Session Present 0 [MQTT-3.2.2-6], and
/// the connection is closed [MQTT-3.2.2-7].
#[tokio::test(start_paused = true)]
async fn mqtt5_4_12_0_1_authentication_method_is_refused_with_0x8c() {
    let broker = PausedBroker::start().await;
    let method = ConnectProperties { authentication_method: Some("SCRAM-SHA-256".into()), ..expiry(60) };
    let (mut client, connack) = Client::open(&broker, connect_with("enhanced-auth", false, method)).await;
    assert_eq!(connack.reason_code, ReasonCode::BadAuthenticationMethod);
    assert!(!connack.session_present);
    client.expect_closed().await;
    assert!(!had_session(&broker, "enhanced-auth").await, "a refused CONNECT starts no session");
}

/// [MQTT-3.1.2-23], [MQTT-3.1.2-5], [MQTT-3.2.2-3]: with a Session Expiry Interval above 0 the
/// session outlives its connection: Clean Start 0 resumes it with Session Present 1 and its
/// subscription. With 0 (or none) it ends with the connection [MQTT-3.1.2-6]: Session Present 0,
/// and a publication to its old filter has no matching subscriber (PUBACK 0x10).
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_23_session_expiry_above_zero_keeps_the_session_and_zero_ends_it() {
    let broker = PausedBroker::start().await;
    let mut kept = Client::connected(&broker, connect_with("kept", true, expiry(60))).await;
    kept.subscribe(1, "kept/t", QoS::AtLeastOnce, None).await;
    kept.disconnect().await;
    let mut ended = Client::connected(&broker, connect_with("ended", true, expiry(0))).await;
    ended.subscribe(1, "ended/t", QoS::AtLeastOnce, None).await;
    ended.disconnect().await;

    let (mut kept, connack) = Client::open(&broker, connect_with("kept", false, expiry(60))).await;
    assert!(connack.session_present);
    let (_ended, connack) = Client::open(&broker, connect_with("ended", false, expiry(0))).await;
    assert!(!connack.session_present);

    let mut publisher = Client::clean(&broker, "publisher").await;
    let to_kept = publisher.publish(publish("kept/t", b"still subscribed", QoS::AtLeastOnce, 1)).await;
    assert_eq!(to_kept, ReasonCode::Success);
    assert_eq!(&kept.next_message().await.payload[..], b"still subscribed");
    let to_ended = publisher.publish(publish("ended/t", b"nobody", QoS::AtLeastOnce, 2)).await;
    assert_eq!(to_ended, ReasonCode::NoMatchingSubscribers);
}

/// [MQTT-3.1.2-4], [MQTT-3.2.2-2]: Clean Start 1 discards the stored session (Session Present
/// 0, its subscription gone) even with a Session Expiry Interval above 0, and that interval
/// keeps the new session: a later Clean Start 0 resumes it, with the subscription made since.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_4_clean_start_discards_the_old_session_and_keeps_the_new_one() {
    let broker = PausedBroker::start().await;
    let mut old = Client::connected(&broker, connect_with("restart", true, expiry(60))).await;
    old.subscribe(1, "restart/old", QoS::AtLeastOnce, None).await;
    old.disconnect().await;

    let (mut new, connack) = Client::open(&broker, connect_with("restart", true, expiry(60))).await;
    assert!(!connack.session_present, "Clean Start 1 never resumes a session");
    new.subscribe(1, "restart/new", QoS::AtLeastOnce, None).await;
    new.disconnect().await;

    let mut publisher = Client::clean(&broker, "publisher").await;
    let to_old = publisher.publish(publish("restart/old", b"old", QoS::AtLeastOnce, 1)).await;
    assert_eq!(to_old, ReasonCode::NoMatchingSubscribers, "the old session's subscription is gone");
    let to_new = publisher.publish(publish("restart/new", b"queued", QoS::AtLeastOnce, 2)).await;
    assert_eq!(to_new, ReasonCode::Success);

    let (mut resumed, connack) = Client::open(&broker, connect_with("restart", false, expiry(60))).await;
    assert!(connack.session_present, "the new session was kept");
    assert_eq!(&resumed.next_message().await.payload[..], b"queued");
}

/// [MQTT-3.1.4-3]: a CONNECT with the Client Identifier of a connected client closes the old
/// connection with DISCONNECT 0x8E (Session taken over); the new one is accepted.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_4_3_takeover_sends_disconnect_0x8e_to_the_old_connection() {
    let broker = PausedBroker::start().await;
    let mut old = Client::clean(&broker, "twice").await;
    let mut new = Client::clean(&broker, "twice").await;
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    new.ping().await;
}

/// 4.13, 3.14.2.1: a server that shuts down tells its 5.0 clients with DISCONNECT 0x8B (Server
/// shutting down) before the close.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_4_13_shutdown_sends_disconnect_0x8b() {
    let broker = PausedBroker::start().await;
    let mut client = Client::clean(&broker, "still-here").await;
    client.ping().await;
    drop(broker);
    client.expect_disconnect(ReasonCode::ServerShuttingDown).await;
}

/// 3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message) closes the connection and publishes
/// the will; DISCONNECT 0x00 discards it [MQTT-3.14.4-3].
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_14_2_1_disconnect_0x04_publishes_the_will() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;

    let with_will = iothub_protocol::Connect {
        will: Some(will("will/asked", b"asked for", WillProperties::default())),
        ..connect("asks-for-will")
    };
    let mut client = Client::connected(&broker, with_will.clone()).await;
    client.send(&disconnect_packet(ReasonCode::DisconnectWithWill, None)).await;
    client.expect_closed().await;
    let published = watcher.expect_publish().await;
    assert_eq!((&*published.topic, &published.payload[..]), ("will/asked", &b"asked for"[..]));

    let normal = iothub_protocol::Connect { client_id: "normal".into(), ..with_will };
    Client::connected(&broker, normal).await.disconnect().await;
    publish_marker(&broker, "will/marker").await;
    assert_eq!(&*watcher.expect_publish().await.topic, "will/marker", "DISCONNECT 0x00 published the will");
}

/// [MQTT-3.1.2-8], [MQTT-3.14.4-3]: only a DISCONNECT with Reason Code 0x00 deletes the will. A
/// client that ends with an error code (0x80 Unspecified error, 0x83 Implementation specific
/// error, 0x93 Receive Maximum exceeded) did not disconnect normally, and its will is published.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_8_disconnect_with_an_error_code_publishes_the_will() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    for (n, code) in [
        ReasonCode::UnspecifiedError,
        ReasonCode::ImplementationSpecificError,
        ReasonCode::ReceiveMaximumExceeded,
    ]
    .into_iter()
    .enumerate()
    {
        let topic = format!("will/error-{n}");
        let with_will = iothub_protocol::Connect {
            will: Some(will(&topic, b"failed", WillProperties::default())),
            ..connect(&format!("fails-{n}"))
        };
        let mut client = Client::connected(&broker, with_will).await;
        client.send(&disconnect_packet(code, None)).await;
        client.expect_closed().await;
        let published = watcher.expect_publish().await;
        assert_eq!((&*published.topic, &published.payload[..]), (&*topic, &b"failed"[..]), "after {code:?}");
    }
}

/// 3.14.2.2.2: after a CONNECT with Session Expiry Interval 0, a DISCONNECT that sets it above 0
/// is a Protocol Error: the server answers DISCONNECT 0x82, does not treat the packet as a
/// DISCONNECT (so the will is published), and keeps no session.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_14_2_2_2_disconnect_cannot_raise_session_expiry_from_zero() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    let with_will = iothub_protocol::Connect {
        will: Some(will("will/raised", b"not a valid DISCONNECT", WillProperties::default())),
        ..connect_with("raises", true, expiry(0))
    };
    let mut client = Client::connected(&broker, with_will).await;
    client.send(&disconnect_packet(ReasonCode::Success, Some(60))).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
    assert_eq!(&*watcher.expect_publish().await.topic, "will/raised");
    assert!(!had_session(&broker, "raises").await);
}

/// 3.14.2.2.2: a DISCONNECT may change a Session Expiry Interval that is not 0, down or up (up
/// to `server.session_timeout_secs`), and the new interval is the one that applies: 60 s lowered
/// to 2 s is gone at 3 s, 2 s raised to 20 s is still there at 5 s, and 2 s raised to an hour
/// is capped at the server's 30 s.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_14_2_2_2_disconnect_may_lower_or_raise_a_non_zero_session_expiry() {
    let broker = PausedBroker::with_config("[server]\nsession_timeout_secs = 30\n").await;
    for (client_id, at_connect, at_disconnect) in [("lowered", 60, 2), ("raised", 2, 20), ("capped", 2, 3600)]
    {
        let mut client = Client::connected(&broker, connect_with(client_id, true, expiry(at_connect))).await;
        client.send(&disconnect_packet(ReasonCode::Success, Some(at_disconnect))).await;
        client.expect_closed().await;
    }
    pass(Duration::from_secs(3)).await;
    assert!(!had_session(&broker, "lowered").await, "lowered to 2 s, gone at 3 s");
    pass(Duration::from_secs(2)).await;
    assert!(had_session(&broker, "raised").await, "raised to 20 s, kept at 5 s");
    pass(Duration::from_secs(26)).await;
    assert!(!had_session(&broker, "capped").await, "raised to an hour, capped at 30 s");
}

/// 3.15, 4.12: without an Authentication Method at CONNECT, an AUTH packet, with or without a
/// method, is a Protocol Error: DISCONNECT 0x82.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_4_12_auth_without_an_authentication_method_is_a_protocol_error() {
    let broker = PausedBroker::start().await;
    let mut client = Client::clean(&broker, "bare-auth").await;
    client.raw.send(&[0xF0, 0x00]).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;

    let mut client = Client::clean(&broker, "auth-with-method").await;
    let properties =
        AuthProperties { authentication_method: Some("SCRAM-SHA-256".into()), ..Default::default() };
    let auth = Auth { reason_code: ReasonCode::ReAuthenticate, properties: Some(Box::new(properties)) };
    client.send(&Packet::Auth(auth)).await;
    client.expect_disconnect(ReasonCode::ProtocolError).await;
}

/// A CONNECT of `client_id` with a QoS 0 will on `topic`, the given Will Delay Interval and
/// Session Expiry Interval.
fn connect_with_delayed_will(
    client_id: &str,
    topic: &str,
    delay: u32,
    session_expiry: u32,
) -> iothub_protocol::Connect {
    iothub_protocol::Connect {
        will: Some(will(topic, b"gone", will_delay(delay))),
        ..connect_with(client_id, true, expiry(session_expiry))
    }
}

/// 3.1.3.2.2: a will with a Will Delay Interval of 5 s, on a session that outlives its
/// connection, is published 5 s after the connection is lost, not before [MQTT-3.1.2-8].
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_8_will_is_published_after_its_delay() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    let client =
        Client::connected(&broker, connect_with_delayed_will("delayed", "will/delayed", 5, 60)).await;
    let lost = now();
    client.drop_connection();
    let published = watcher.expect_publish().await;
    let elapsed = now() - lost;
    assert_eq!(&*published.topic, "will/delayed");
    assert!(elapsed >= Duration::from_secs(5), "published after {elapsed:?}");
    assert!(elapsed <= Duration::from_millis(5010), "published after {elapsed:?}");
}

/// [MQTT-3.1.3-9]: a new connection to the session within the Will Delay Interval means the
/// will is never published.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_3_9_reconnect_within_the_will_delay_cancels_the_will() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    let client =
        Client::connected(&broker, connect_with_delayed_will("returns", "will/returns", 5, 60)).await;
    client.drop_connection();
    pass(Duration::from_secs(2)).await;
    let (_back, connack) = Client::open(&broker, connect_with("returns", false, expiry(60))).await;
    assert!(connack.session_present);
    watcher.expect_silence(Duration::from_secs(10)).await;
}

/// 3.1.3.2.2 (non-normative comment of 3.1.3.2.2 and [MQTT-3.1.4-3]): a new connection with
/// Clean Start 1 within the delay ends the old session, and with it the wait: the will is
/// published at once.
#[tokio::test(start_paused = true)]
async fn mqtt5_section_3_1_3_2_2_clean_start_within_the_will_delay_publishes_the_will() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    let client =
        Client::connected(&broker, connect_with_delayed_will("restarts", "will/restarts", 5, 60)).await;
    client.drop_connection();
    pass(Duration::from_secs(2)).await;
    let (_back, connack) = Client::open(&broker, connect_with("restarts", true, expiry(60))).await;
    assert!(!connack.session_present);
    let reconnected = now();
    assert_eq!(&*watcher.expect_publish().await.topic, "will/restarts");
    assert_eq!(now() - reconnected, Duration::ZERO, "published when the session ended");
}

/// [MQTT-3.1.3-9], [MQTT-3.1.4-3] and its non-normative comment: a takeover with Clean Start 0
/// is a new connection to the session within the Will Delay Interval, so the old connection's
/// delayed will is never published; a takeover with Clean Start 1 ends the old session, so its
/// will is published at once.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_3_9_takeover_within_the_will_delay() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    let mut old =
        Client::connected(&broker, connect_with_delayed_will("resumer", "will/resumer", 5, 60)).await;
    let (_new, connack) = Client::open(&broker, connect_with("resumer", false, expiry(60))).await;
    assert!(connack.session_present);
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    watcher.expect_silence(Duration::from_secs(10)).await;

    let mut old =
        Client::connected(&broker, connect_with_delayed_will("restarter", "will/restarter", 5, 60)).await;
    let taken_over = now();
    let (_new, connack) = Client::open(&broker, connect_with("restarter", true, expiry(60))).await;
    assert!(!connack.session_present);
    old.expect_disconnect(ReasonCode::SessionTakenOver).await;
    assert_eq!(&*watcher.expect_publish().await.topic, "will/restarter");
    assert_eq!(now() - taken_over, Duration::ZERO, "published when the old session ended");
}

/// 3.1.3.2.2, [MQTT-3.1.2-8]: the will is published when the delay passes or the session ends,
/// whichever is first: at once with Session Expiry Interval 0, at 2 s with 2 s and a 5 s delay.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_2_8_will_delay_ends_with_the_session() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    for (client_id, session_expiry, expected) in [("no-session", 0, 0), ("short-session", 2, 2)] {
        let topic = format!("will/{client_id}");
        let client =
            Client::connected(&broker, connect_with_delayed_will(client_id, &topic, 5, session_expiry)).await;
        let lost = now();
        client.drop_connection();
        let published = watcher.expect_publish().await;
        assert_eq!(published.topic, topic);
        assert_eq!(now() - lost, Duration::from_secs(expected), "{client_id}");
    }
    assert!(!had_session(&broker, "short-session").await);
}

/// 3.1.3.2, [MQTT-3.1.3-10]: the will's properties become the PUBLISH's: Payload Format
/// Indicator, Content Type, Response Topic, Correlation Data and User Properties, in order and
/// with repeated names, and the Message Expiry Interval, sent as what is left of it.
#[tokio::test(start_paused = true)]
async fn mqtt5_3_1_3_10_will_properties_are_published_in_order() {
    let broker = PausedBroker::start().await;
    let mut watcher = watcher(&broker, "watcher", "will/#").await;
    let properties = WillProperties {
        payload_format_indicator: Some(iothub_protocol::PayloadFormat::Utf8),
        message_expiry_interval: Some(30),
        content_type: Some("text/plain".into()),
        response_topic: Some("replies/will".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"\x00corr\xff")),
        user_properties: user_properties(&[("b", "1"), ("a", "2"), ("b", "3")]),
        ..WillProperties::default()
    };
    let connect = iothub_protocol::Connect {
        will: Some(will("will/properties", b"gone", properties.clone())),
        ..connect("with-properties")
    };
    Client::connected(&broker, connect).await.drop_connection();
    let published = watcher.expect_publish().await;
    let received = properties_of(&published);
    assert_eq!(received.payload_format_indicator, properties.payload_format_indicator);
    assert_eq!(received.content_type, properties.content_type);
    assert_eq!(received.response_topic, properties.response_topic);
    assert_eq!(received.correlation_data, properties.correlation_data);
    assert_eq!(received.user_properties, properties.user_properties);
    assert_eq!(received.message_expiry_interval, Some(30), "no time passed");
    assert_eq!(received.topic_alias, None);
}
