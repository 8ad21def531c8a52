//! Differential checks against Mosquitto 2.x: the same raw MQTT 3.1.1 byte exchanges run against
//! a private `mosquitto` process and against IoTHub, and the exact bytes each client receives,
//! and whether its connection is closed, must be the same.
//!
//! Each test runs one exchange on a fresh IoTHub `TestBroker` and then on a fresh Mosquitto on an
//! ephemeral loopback port. The exchange records what every client saw as a transcript (a packet
//! in hex, "closed" or "silent"); the two transcripts are compared line by line. Where the
//! specification allows both behaviours and IoTHub deliberately differs, or where Mosquitto
//! breaks the specification, the test asserts each broker's behaviour separately and says why.
//! The harness is `tests/differential/harness.rs`, shared with the MQTT 5.0 exchanges in
//! `tests/differential_v5.rs`. `scripts/differential` runs both files and prints one summary
//! line per exchange; `docs/differential.md` lists the outcomes.

#[path = "differential/harness.rs"]
mod harness;

use harness::{differs, same, sync, Exchange};
use iothub_test_util::{
    ack, connect_packet, connect_packet_raw, connect_with_will, publish_packet, subscribe_packet,
    unsubscribe_packet, Will, PINGREQ,
};

// [MQTT-3.2.2-1], [MQTT-3.2.2-3]: an accepted clean-session CONNECT gets CONNACK with session
// present 0 and return code 0, and the connection stays open.
#[test]
fn mqtt_3_2_2_3_connack_for_accepted_3_1_1_connect() {
    same("CONNACK for an accepted 3.1.1 CONNECT", &["c: 20 02 00 00", "c: silent"], |x| {
        let mut c = x.connected("c", "diff-accept", true);
        c.quiet();
    });
}

// [MQTT-3.1.2-2]: an unsupported protocol level gets CONNACK 0x01 and the connection closes.
// Level 6 is used because Mosquitto supports level 5.
#[test]
fn mqtt_3_1_2_2_unsupported_level_6_refused_with_0x01() {
    same("unsupported protocol level 6", &["c: 20 02 00 01", "c: closed"], |x| {
        let mut c = x.client("c");
        c.send(&connect_packet_raw(b"MQTT", 6, 0x02, 60, b"diff-level6"));
        c.recv();
        c.recv();
    });
}

// [MQTT-3.1.2-2]: level 3 is only valid with the 3.1 name "MQIsdp"; with "MQTT" it is an
// unsupported level.
#[test]
fn mqtt_3_1_2_2_level_3_with_name_mqtt_refused_with_0x01() {
    same("protocol level 3 with name MQTT", &["c: 20 02 00 01", "c: closed"], |x| {
        let mut c = x.client("c");
        c.send(&connect_packet_raw(b"MQTT", 3, 0x02, 60, b"diff-level3"));
        c.recv();
        c.recv();
    });
}

// MQTT 3.1 (protocol name "MQIsdp", level 3) is accepted.
#[test]
fn mqisdp_level_3_accepted() {
    same("MQIsdp level 3 accepted", &["c: 20 02 00 00", "c: d0 00"], |x| {
        let mut c = x.client("c");
        c.send(&connect_packet_raw(b"MQIsdp", 3, 0x02, 60, b"diff-mqisdp"));
        c.recv();
        sync(&mut c);
    });
}

// [MQTT-3.1.3-8]: a zero-length client identifier with clean session 0 gets CONNACK 0x02 and the
// connection closes.
#[test]
fn mqtt_3_1_3_8_empty_client_id_without_clean_session_refused() {
    same("empty client id with clean session 0", &["c: 20 02 00 02", "c: closed"], |x| {
        let mut c = x.client("c");
        c.send(&connect_packet("", false, 60));
        c.recv();
        c.recv();
    });
}

// [MQTT-3.1.3-6]: a zero-length client identifier with clean session 1 is accepted and the
// server assigns one.
#[test]
fn mqtt_3_1_3_6_empty_client_id_with_clean_session_accepted() {
    same("empty client id with clean session 1", &["c: 20 02 00 00", "c: d0 00"], |x| {
        let mut c = x.client("c");
        c.send(&connect_packet("", true, 60));
        c.recv();
        sync(&mut c);
    });
}

// [MQTT-3.1.0-1]: a first packet other than CONNECT closes the connection.
#[test]
fn mqtt_3_1_0_1_first_packet_not_connect_closes() {
    same("first packet is not CONNECT", &["c: closed"], |x| {
        let mut c = x.client("c");
        c.send(&PINGREQ);
        c.recv();
    });
}

// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation and closes the connection.
#[test]
fn mqtt_3_1_0_2_second_connect_closes() {
    same("second CONNECT", &["c: 20 02 00 00", "c: closed"], |x| {
        let mut c = x.connected("c", "diff-second", true);
        c.send(&connect_packet("diff-second", true, 60));
        c.recv();
    });
}

// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0, or the connection closes without CONNACK.
#[test]
fn mqtt_3_1_2_3_reserved_connect_flag_closes() {
    same("reserved CONNECT flag set", &["c: closed"], |x| {
        let mut c = x.client("c");
        c.send(&connect_packet_raw(b"MQTT", 4, 0x03, 60, b"diff-reserved"));
        c.recv();
    });
}

// [MQTT-3.8.4-5], [MQTT-3.9.3-1]: one SUBACK return code per filter, in order, each the granted
// QoS.
#[test]
fn mqtt_3_9_3_1_suback_return_codes_per_filter() {
    let expected = [
        "c: 20 02 00 00",
        "c: 90 03 00 01 00",
        "c: 90 03 00 02 01",
        "c: 90 03 00 03 02",
        "c: 90 06 00 04 02 00 01 00",
    ];
    same("SUBACK for QoS 0, 1, 2 and mixed filters", &expected, |x| {
        let mut c = x.connected("c", "diff-suback", true);
        c.send(&subscribe_packet(1, &[("s/0", 0)]));
        c.recv();
        c.send(&subscribe_packet(2, &[("s/1", 1)]));
        c.recv();
        c.send(&subscribe_packet(3, &[("s/2", 2)]));
        c.recv();
        c.send(&subscribe_packet(4, &[("m/a", 2), ("m/+", 0), ("m/#", 1), ("#", 0)]));
        c.recv();
    });
}

// [MQTT-4.7.1-2]: "#" must be the last level of a filter. Both brokers treat the invalid filter
// as a protocol violation and close the connection without SUBACK.
#[test]
fn mqtt_4_7_1_2_subscribe_with_invalid_filter_closes() {
    same("SUBSCRIBE with invalid filter a/#/b", &["c: 20 02 00 00", "c: closed"], |x| {
        let mut c = x.connected("c", "diff-badfilter", true);
        c.send(&subscribe_packet(1, &[("a/#/b", 0)]));
        c.recv();
    });
}

// [MQTT-3.10.4-5]: UNSUBACK is sent even when no subscription matched.
#[test]
fn mqtt_3_10_4_5_unsubscribe_unknown_filter_gets_unsuback() {
    same("UNSUBSCRIBE of an unknown filter", &["c: 20 02 00 00", "c: b0 02 00 09"], |x| {
        let mut c = x.connected("c", "diff-unsub", true);
        c.send(&unsubscribe_packet(9, &["never/subscribed"]));
        c.recv();
    });
}

// [MQTT-4.3.2-2]: a QoS 1 PUBLISH is acknowledged with PUBACK carrying its packet identifier.
#[test]
fn mqtt_4_3_2_2_publish_qos1_gets_puback() {
    same("PUBLISH QoS 1 gets PUBACK", &["c: 20 02 00 00", "c: 40 02 12 34"], |x| {
        let mut c = x.connected("c", "diff-qos1", true);
        c.send(&publish_packet("q/1", b"hi", 1, false, false, 0x1234));
        c.recv();
    });
}

// [MQTT-4.3.3-1], [MQTT-4.3.3-2]: the QoS 2 flow in both directions: the publisher gets PUBREC and
// PUBCOMP, the QoS 2 subscriber gets PUBLISH and then PUBREL for its PUBREC.
#[test]
fn mqtt_4_3_3_2_qos2_flow_pubrec_pubrel_pubcomp() {
    let expected = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 02",
        "pub: 20 02 00 00",
        "pub: 50 02 00 05",
        "pub: 70 02 00 05",
        "sub: 34 08 00 03 71 2f 32 00 01 78",
        "sub: 62 02 00 01",
        "sub: d0 00",
    ];
    same("QoS 2 flow PUBREC/PUBREL/PUBCOMP", &expected, |x| {
        let mut sub = x.connected("sub", "diff-q2-sub", true);
        sub.send(&subscribe_packet(1, &[("q/2", 2)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-q2-pub", true);
        publisher.send(&publish_packet("q/2", b"x", 2, false, false, 5));
        publisher.recv();
        publisher.send(&ack(0x62, 5));
        publisher.recv();
        sub.recv();
        sub.send(&ack(0x50, 1));
        sub.recv();
        sub.send(&ack(0x70, 1));
        sync(&mut sub);
    });
}

// [MQTT-4.3.3-2]: PUBCOMP answers a PUBREL even for a packet identifier the server does not know
// (it may be a PUBREL re-sent after a reconnect).
#[test]
fn mqtt_4_3_3_2_pubrel_for_unknown_id_gets_pubcomp() {
    same("PUBREL for an unknown packet id", &["c: 20 02 00 00", "c: 70 02 00 2a"], |x| {
        let mut c = x.connected("c", "diff-pubrel", true);
        c.send(&ack(0x62, 42));
        c.recv();
    });
}

// [MQTT-4.3.3-2]: a QoS 2 PUBLISH re-sent with the same packet identifier before PUBREL is
// acknowledged again and not delivered twice.
#[test]
fn mqtt_4_3_3_2_qos2_duplicate_before_pubrel_delivered_once() {
    let expected = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 00",
        "pub: 20 02 00 00",
        "pub: 50 02 00 07",
        "pub: 50 02 00 07",
        "pub: 70 02 00 07",
        "sub: 30 08 00 03 64 2f 32 6f 6e 65",
        "sub: silent",
    ];
    same("QoS 2 duplicate before PUBREL", &expected, |x| {
        let mut sub = x.connected("sub", "diff-dup-sub", true);
        sub.send(&subscribe_packet(1, &[("d/2", 0)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-dup-pub", true);
        publisher.send(&publish_packet("d/2", b"one", 2, false, false, 7));
        publisher.recv();
        publisher.send(&publish_packet("d/2", b"one", 2, false, true, 7));
        publisher.recv();
        publisher.send(&ack(0x62, 7));
        publisher.recv();
        sub.recv();
        sub.quiet();
    });
}

// [MQTT-4.3.3-1]: when a QoS 2 message is passed on is the receiver's choice: Figure 4.3 shows
// onward delivery either after PUBLISH ("Method B") or after PUBREL ("Method A"). Mosquitto uses
// method A; IoTHub uses method B, a decision recorded in docs/ARCHITECTURE.md ("QoS 2 inbound:
// forward on PUBLISH"): it keeps one publisher's messages in order across QoS levels (see the
// next exchange), delivers a round trip sooner and holds no message bodies per publisher.
#[test]
fn mqtt_4_3_3_qos2_onward_delivery_timing() {
    let head = ["sub: 20 02 00 00", "sub: 90 03 00 01 00", "pub: 20 02 00 00", "pub: 50 02 00 03"];
    let delivery = "sub: 30 06 00 03 74 2f 32 78";
    let iothub: Vec<&str> =
        head.iter().copied().chain([delivery, "pub: 70 02 00 03", "sub: silent"]).collect();
    let mosquitto: Vec<&str> =
        head.iter().copied().chain(["sub: silent", "pub: 70 02 00 03", delivery]).collect();
    let why = "4.3.3 allows both; IoTHub passes a QoS 2 message on at PUBLISH (method B, \
               docs/ARCHITECTURE.md), Mosquitto at PUBREL (method A)";
    differs("QoS 2 onward delivery on PUBLISH or on PUBREL", why, &iothub, &mosquitto, |x| {
        let mut sub = x.connected("sub", "diff-when-sub", true);
        sub.send(&subscribe_packet(1, &[("t/2", 0)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-when-pub", true);
        publisher.send(&publish_packet("t/2", b"x", 2, false, false, 3));
        publisher.recv();
        sub.either();
        publisher.send(&ack(0x62, 3));
        publisher.recv();
        sub.either();
    });
}

// [MQTT-4.6.0-6]: a server must keep the order of one client's messages per topic and QoS only.
// A QoS 1, a QoS 2 and a QoS 1 message to one topic, with the QoS 2 PUBREL sent last: IoTHub
// (method B) delivers them in publication order; Mosquitto (method A) delivers the QoS 2 message
// last. Both are allowed, since the QoS 1 messages keep their order in both.
#[test]
fn mqtt_4_6_0_6_order_across_qos_levels_of_one_publisher() {
    let head = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 00",
        "pub: 20 02 00 00",
        "pub: 40 02 00 01",
        "pub: 50 02 00 02",
        "pub: 40 02 00 03",
        "pub: 70 02 00 02",
    ];
    let (a, b, c) =
        ("sub: 30 06 00 03 6f 2f 74 61", "sub: 30 06 00 03 6f 2f 74 62", "sub: 30 06 00 03 6f 2f 74 63");
    let iothub: Vec<&str> = head.iter().copied().chain([a, b, c]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain([a, c, b]).collect();
    let why = "4.6 orders per topic and QoS only; IoTHub keeps publication order, Mosquitto \
               delivers the QoS 2 message at its PUBREL";
    differs("order of QoS 1, 2, 1 messages from one publisher", why, &iothub, &mosquitto, |x| {
        let mut sub = x.connected("sub", "diff-order-sub", true);
        sub.send(&subscribe_packet(1, &[("o/t", 0)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-order-pub", true);
        publisher.send(&publish_packet("o/t", b"a", 1, false, false, 1));
        publisher.recv();
        publisher.send(&publish_packet("o/t", b"b", 2, false, false, 2));
        publisher.recv();
        publisher.send(&publish_packet("o/t", b"c", 1, false, false, 3));
        publisher.recv();
        publisher.send(&ack(0x62, 2));
        publisher.recv();
        sub.recv();
        sub.recv();
        sub.recv();
    });
}

// [MQTT-3.3.1-8], [MQTT-3.3.1-9]: a retained message sent because of a new subscription has
// RETAIN=1; a message matching an established subscription is sent with RETAIN=0.
#[test]
fn mqtt_3_3_1_8_retained_delivery_sets_retain_and_live_clears_it() {
    let expected = [
        "pub: 20 02 00 00",
        "pub: d0 00",
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 00",
        "sub: 31 08 00 03 72 2f 74 6f 6c 64",
        "sub: 30 08 00 03 72 2f 74 6e 65 77",
    ];
    same("retained delivery RETAIN=1, live RETAIN=0", &expected, |x| {
        let mut publisher = x.connected("pub", "diff-ret-pub", true);
        publisher.send(&publish_packet("r/t", b"old", 0, true, false, 0));
        sync(&mut publisher);
        let mut sub = x.connected("sub", "diff-ret-sub", true);
        sub.send(&subscribe_packet(1, &[("r/#", 0)]));
        sub.recv();
        sub.recv();
        publisher.send(&publish_packet("r/t", b"new", 0, true, false, 0));
        sub.recv();
    });
}

// [MQTT-3.3.5-1]: with overlapping subscriptions the server must deliver the message respecting
// the maximum QoS of all the matching subscriptions, and may send further copies, one per
// matching subscription. IoTHub deliberately sends one copy at the highest granted QoS.
//
// Mosquitto 2.0 also sends one copy (its built-in default is `allow_duplicate_messages false`,
// although its manual page says true), but at the QoS of the first subscription its topic tree
// walk meets (a literal level, then "+", then "#"), not the highest. Here it sends QoS 0 for "a/b"
// and "c/d" although an "a/#" or "c/#" QoS 1 subscription matches, QoS 1 for "e/f" where "e/+"
// has QoS 1 and "e/#" QoS 0, and QoS 0 for "g/h" where the literal "g/h" has QoS 0 and "g/+"
// QoS 1. That violates [MQTT-3.3.5-1], so IoTHub follows the specification and this test asserts
// each broker's behaviour separately. Each delivery is followed by a read of the reply to a
// packet the subscriber sends, which would show a second copy.
#[test]
fn mqtt_3_3_5_1_overlapping_subscriptions_deliver_one_copy_at_max_qos() {
    let transcript = |a_b: &'static str, c_d: &'static str, g_h: &'static str| {
        vec![
            "sub: 20 02 00 00",
            "sub: 90 04 00 01 00 01",
            "pub: 20 02 00 00",
            "pub: 40 02 00 01",
            a_b,
            "sub: 90 03 00 02 01",
            "sub: 90 03 00 03 00",
            "pub: 40 02 00 02",
            c_d,
            "sub: 90 04 00 04 01 00",
            "pub: 40 02 00 03",
            "sub: 32 08 00 03 65 2f 66 00 03 7a",
            "sub: 90 04 00 05 00 01",
            "pub: 40 02 00 04",
            g_h,
            "sub: d0 00",
        ]
    };
    let iothub = transcript(
        "sub: 32 08 00 03 61 2f 62 00 01 78",
        "sub: 32 08 00 03 63 2f 64 00 02 79",
        "sub: 32 08 00 03 67 2f 68 00 04 77",
    );
    let mosquitto = transcript(
        "sub: 30 06 00 03 61 2f 62 78",
        "sub: 30 06 00 03 63 2f 64 79",
        "sub: 30 06 00 03 67 2f 68 77",
    );
    let why = "both send one copy; IoTHub at the highest matching QoS as [MQTT-3.3.5-1] requires, \
               Mosquitto 2.0 at the QoS of the first subscription its tree walk meets";
    differs("overlapping subscriptions (a/+ and a/#, and others)", why, &iothub, &mosquitto, |x| {
        let mut sub = x.connected("sub", "diff-overlap-sub", true);
        sub.send(&subscribe_packet(1, &[("a/+", 0), ("a/#", 1)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-overlap-pub", true);
        publisher.send(&publish_packet("a/b", b"x", 1, false, false, 1));
        publisher.recv();
        sub.recv();
        sub.send(&subscribe_packet(2, &[("c/#", 1)]));
        sub.recv();
        sub.send(&subscribe_packet(3, &[("c/+", 0)]));
        sub.recv();
        publisher.send(&publish_packet("c/d", b"y", 1, false, false, 2));
        publisher.recv();
        sub.recv();
        sub.send(&subscribe_packet(4, &[("e/+", 1), ("e/#", 0)]));
        sub.recv();
        publisher.send(&publish_packet("e/f", b"z", 1, false, false, 3));
        publisher.recv();
        sub.recv();
        sub.send(&subscribe_packet(5, &[("g/h", 0), ("g/+", 1)]));
        sub.recv();
        publisher.send(&publish_packet("g/h", b"w", 1, false, false, 4));
        publisher.recv();
        sub.recv();
        sync(&mut sub);
    });
}

// [MQTT-3.1.2-8]: the will is published when the network connection closes without DISCONNECT.
#[test]
fn mqtt_3_1_2_8_will_published_on_abrupt_close() {
    let expected = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 00",
        "w: 20 02 00 00",
        "sub: 30 09 00 03 77 2f 74 67 6f 6e 65",
    ];
    same("will on abrupt close", &expected, |x| {
        let mut sub = x.connected("sub", "diff-will-sub", true);
        sub.send(&subscribe_packet(1, &[("w/#", 0)]));
        sub.recv();
        let mut will = x.client("w");
        will.send(&connect_with_will("diff-will", true, 60, &Will::qos0("w/t", b"gone")));
        will.recv();
        drop(will);
        sub.recv();
    });
}

/// The takeover exchange: a client with a will is taken over by a new connection with the same
/// client identifier; the old connection's close and the will (or its absence) are recorded. The
/// subscriber waits the full `WAIT` where a will is expected and `QUIET` where none is.
fn takeover_exchange(x: &Exchange, old_clean: bool, new_clean: bool, will_expected: bool) {
    let mut sub = x.connected("sub", "diff-take-sub", true);
    sub.send(&subscribe_packet(1, &[("w/#", 0)]));
    sub.recv();
    let mut old = x.client("old");
    old.send(&connect_with_will("diff-take", old_clean, 60, &Will::qos0("w/t", b"gone")));
    old.recv();
    let mut new = x.connected("new", "diff-take", new_clean);
    old.recv();
    if will_expected {
        sub.recv();
    } else {
        sub.quiet();
    }
    sync(&mut new);
}

// [MQTT-3.1.4-2]: a takeover closes the old connection. Its will is published because the old
// connection used a clean session (3.1.1 leaves this open; both follow the same rule).
#[test]
fn mqtt_3_1_4_2_takeover_publishes_will_when_old_session_clean() {
    let expected = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 00",
        "old: 20 02 00 00",
        "new: 20 02 00 00",
        "old: closed",
        "sub: 30 09 00 03 77 2f 74 67 6f 6e 65",
        "new: d0 00",
    ];
    same("will on takeover, old clean=1, new clean=1", &expected, |x| takeover_exchange(x, true, true, true));
}

// [MQTT-3.1.4-2]: the new connection asking for a clean session also publishes the old will.
#[test]
fn mqtt_3_1_4_2_takeover_publishes_will_when_new_session_clean() {
    let expected = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 00",
        "old: 20 02 00 00",
        "new: 20 02 00 00",
        "old: closed",
        "sub: 30 09 00 03 77 2f 74 67 6f 6e 65",
        "new: d0 00",
    ];
    same("will on takeover, old clean=0, new clean=1", &expected, |x| {
        takeover_exchange(x, false, true, true)
    });
}

// [MQTT-3.1.4-2], [MQTT-3.1.2-8]: when both connections keep the session, the session continues;
// the old network connection closed without DISCONNECT, so IoTHub publishes its will as 3.1.2-8
// says, where Mosquitto discards it.
#[test]
fn mqtt_3_1_2_8_takeover_publishes_will_even_when_both_persistent() {
    let head =
        ["sub: 20 02 00 00", "sub: 90 03 00 01 00", "old: 20 02 00 00", "new: 20 02 01 00", "old: closed"];
    let iothub: Vec<&str> =
        head.iter().copied().chain(["sub: 30 09 00 03 77 2f 74 67 6f 6e 65", "new: d0 00"]).collect();
    let mosquitto: Vec<&str> = head.iter().copied().chain(["sub: silent", "new: d0 00"]).collect();
    let why = "[MQTT-3.1.2-8] publishes the will whenever the network connection closes other than by \
               DISCONNECT; Mosquitto discards it when the session continues";
    differs("will on takeover, old clean=0, new clean=0", why, &iothub, &mosquitto, |x| {
        let mut sub = x.connected("sub", "diff-take-sub", true);
        sub.send(&subscribe_packet(1, &[("w/#", 0)]));
        sub.recv();
        let mut old = x.client("old");
        old.send(&connect_with_will("diff-take", false, 60, &Will::qos0("w/t", b"gone")));
        old.recv();
        let mut new = x.connected("new", "diff-take", false);
        old.recv();
        sub.either();
        sync(&mut new);
    });
}

// [MQTT-4.4.0-1]: on reconnect with clean session 0 the unacknowledged QoS 1 PUBLISH is re-sent
// with DUP=1 and its original packet identifier, after CONNACK with session present 1.
#[test]
fn mqtt_4_4_0_1_unacked_publish_resent_with_dup_on_reconnect() {
    let expected = [
        "sub: 20 02 00 00",
        "sub: 90 03 00 01 01",
        "pub: 20 02 00 00",
        "pub: 40 02 00 01",
        "sub: 32 08 00 03 64 2f 74 00 01 78",
        "sub2: 20 02 01 00",
        "sub2: 3a 08 00 03 64 2f 74 00 01 78",
        "sub2: d0 00",
    ];
    same("DUP re-send on reconnect with clean session 0", &expected, |x| {
        let mut sub = x.connected("sub", "diff-dup-resend", false);
        sub.send(&subscribe_packet(1, &[("d/t", 1)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-dup-resend-pub", true);
        publisher.send(&publish_packet("d/t", b"x", 1, false, false, 1));
        publisher.recv();
        sub.recv();
        drop(sub);
        let mut again = x.connected("sub2", "diff-dup-resend", false);
        again.recv();
        again.send(&ack(0x40, 1));
        sync(&mut again);
    });
}

// [MQTT-3.12.4-1]: PINGREQ is answered with PINGRESP.
#[test]
fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    same("PINGREQ", &["c: 20 02 00 00", "c: d0 00"], |x| {
        let mut c = x.connected("c", "diff-ping", true);
        sync(&mut c);
    });
}

// [MQTT-4.7.2-1]: a "#" subscription does not match topics starting with "$". The QoS 1 publish to
// "$SYS/x" by a client is acknowledged and not delivered.
#[test]
fn mqtt_4_7_2_1_sys_publish_not_delivered_to_hash_subscriber() {
    let expected =
        ["sub: 20 02 00 00", "sub: 90 03 00 01 00", "pub: 20 02 00 00", "pub: 40 02 00 01", "sub: silent"];
    same("$SYS/x publish and a # subscriber", &expected, |x| {
        let mut sub = x.connected("sub", "diff-sys-sub", true);
        sub.send(&subscribe_packet(1, &[("#", 0)]));
        sub.recv();
        let mut publisher = x.connected("pub", "diff-sys-pub", true);
        publisher.send(&publish_packet("$SYS/x", b"x", 1, false, false, 1));
        publisher.recv();
        sub.quiet();
    });
}
