//! Malformed input and protocol violations, in raw bytes: each one closes the offending
//! connection only, without an answer, while the broker keeps serving its other clients. Covers
//! fixed header flags and types, the remaining length, PUBLISH, SUBSCRIBE and UNSUBSCRIBE rules,
//! UTF-8 strings, packet identifiers, the packet size limit, packets only a server may send,
//! truncated packets, random garbage, and the will of a client closed for a violation.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use iothub_test_util::{
    connect_with_will, field, qos0_publish, raw_connected, raw_subscriber, subscribe, subscribe_packet_raw,
    unsubscribe_packet_raw, with_header, OrFail, RawClient, TestBroker, Will, DISCONNECT, PINGREQ, PINGRESP,
    WAIT,
};

/// The topic every bystander subscribes to.
const WATCHED: &str = "watched/topic";

/// Asserts that the broker closes `client` without sending it anything; `what` names the case.
fn assert_closed(client: &mut RawClient, what: &str) {
    let mut buf = [0u8; 64];
    match client.stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: expected the connection to close, got {:02x?}", &buf[..n]),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: expected the connection to close: {e}"),
    }
}

/// A client connected and subscribed to `WATCHED`, watching that the broker keeps serving.
fn bystander(addr: SocketAddr) -> RawClient {
    raw_subscriber(addr, "bystander", &[(WATCHED, 0)])
}

/// Checks that the broker still serves: the bystander gets a PINGRESP, a fresh client can connect
/// and ping, and its message reaches the bystander.
fn assert_still_serving(addr: SocketAddr, bystander: &mut RawClient, what: &str) {
    bystander.send(&PINGREQ);
    bystander.expect(&PINGRESP);
    let mut fresh = raw_connected(addr, "fresh");
    fresh.send(&PINGREQ);
    fresh.expect(&PINGRESP);
    let message = qos0_publish(WATCHED.as_bytes(), format!("after {what}").as_bytes());
    fresh.send(&message);
    bystander.expect(&message);
    fresh.send(&DISCONNECT);
    assert_closed(&mut fresh, "DISCONNECT");
}

/// Sends each case on a connection of its own, after a valid CONNECT, and checks that only that
/// connection closes, without an answer, and that the broker keeps serving.
fn assert_each_closes_only_its_connection(cases: &[(&str, Vec<u8>)]) {
    let broker = TestBroker::start();
    let mut watcher = bystander(broker.addr);
    for (what, bytes) in cases {
        let mut offender = raw_connected(broker.addr, "offender");
        offender.send(bytes);
        assert_closed(&mut offender, what);
        assert_still_serving(broker.addr, &mut watcher, what);
    }
}

#[test]
fn mqtt_2_2_2_2_reserved_flag_bits_close_the_connection() {
    // [MQTT-2.2.2-2]: flags other than those of table 2.2 are a malformed packet.
    let topic: &[u8] = b"a/b";
    assert_each_closes_only_its_connection(&[
        ("PUBACK with flags 0x1", vec![0x41, 0x02, 0x00, 0x01]),
        ("PUBREC with flags 0x2", vec![0x52, 0x02, 0x00, 0x01]),
        ("PUBREL with flags 0x0", vec![0x60, 0x02, 0x00, 0x01]),
        ("PUBCOMP with flags 0x8", vec![0x78, 0x02, 0x00, 0x01]),
        ("SUBSCRIBE with flags 0x0", subscribe_packet_raw(0x80, 1, &[(topic, 0)])),
        ("SUBSCRIBE with flags 0x3", subscribe_packet_raw(0x83, 1, &[(topic, 0)])),
        ("UNSUBSCRIBE with flags 0x0", unsubscribe_packet_raw(0xA0, 1, &[topic])),
        ("PINGREQ with flags 0x1", vec![0xC1, 0x00]),
        ("PINGREQ with flags 0x8", vec![0xC8, 0x00]),
        ("DISCONNECT with flags 0x2", vec![0xE2, 0x00]),
    ]);
}

#[test]
fn reserved_packet_types_close_the_connection() {
    // Types 0 and 15 are reserved (2.2.1) and forbidden in either direction.
    assert_each_closes_only_its_connection(&[
        ("type 0", vec![0x00, 0x00]),
        ("type 0 with a body", vec![0x00, 0x02, 0x00, 0x01]),
        ("type 15", vec![0xF0, 0x00]),
        ("type 15 with flags", vec![0xFF, 0x00]),
    ]);
}

#[test]
fn remaining_length_of_five_bytes_closes_the_connection() {
    // The remaining length takes at most four bytes (2.2.3). A PINGREQ whose zero length is
    // padded to five bytes is refused by the encoding rule, not by a size limit.
    assert_each_closes_only_its_connection(&[
        ("PINGREQ with a 5-byte remaining length", vec![0xC0, 0x80, 0x80, 0x80, 0x80, 0x00]),
        ("PUBLISH with a 5-byte remaining length", vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    ]);
}

#[test]
fn mqtt_3_3_1_4_publish_with_qos_3_closes_the_connection() {
    // [MQTT-3.3.1-4]: both QoS bits set.
    let mut body = field(b"a/b");
    body.extend([0x00, 0x01]);
    body.extend(b"payload");
    assert_each_closes_only_its_connection(&[
        ("PUBLISH QoS 3", with_header(0x36, &body)),
        ("PUBLISH QoS 3 retained", with_header(0x37, &body)),
    ]);
}

#[test]
fn mqtt_3_3_2_2_publish_topic_with_wildcard_closes_the_connection() {
    // [MQTT-3.3.2-2]: a topic name must not contain wildcard characters.
    assert_each_closes_only_its_connection(&[
        ("topic a/+", qos0_publish(b"a/+", b"x")),
        ("topic a/#", qos0_publish(b"a/#", b"x")),
        ("topic #", qos0_publish(b"#", b"x")),
        ("topic a+b", qos0_publish(b"a+b", b"x")),
    ]);
}

#[test]
fn mqtt_4_7_3_1_empty_publish_topic_closes_the_connection() {
    // [MQTT-4.7.3-1]: a topic name is at least one character long.
    assert_each_closes_only_its_connection(&[("empty topic", qos0_publish(b"", b"x"))]);
}

#[test]
fn mqtt_1_5_3_2_null_character_in_topic_closes_the_connection() {
    // [MQTT-1.5.3-2]: U+0000 in a UTF-8 string, in a topic name and in a topic filter.
    assert_each_closes_only_its_connection(&[
        ("U+0000 in a topic name", qos0_publish(b"a\0b", b"x")),
        ("U+0000 in a topic filter", subscribe_packet_raw(0x82, 1, &[(b"a/\0", 0)])),
    ]);
}

#[test]
fn mqtt_1_5_3_1_surrogate_in_topic_closes_the_connection() {
    // [MQTT-1.5.3-1]: UTF-16 surrogates (ED A0 80 is U+D800) and other ill-formed UTF-8.
    assert_each_closes_only_its_connection(&[
        ("U+D800 in a topic name", qos0_publish(b"a/\xED\xA0\x80", b"x")),
        ("U+D800 in a topic filter", subscribe_packet_raw(0x82, 1, &[(b"\xED\xA0\x80/#", 0)])),
        ("U+D800 in an unsubscribe filter", unsubscribe_packet_raw(0xA2, 1, &[b"\xED\xA0\x80"])),
        ("a lone continuation byte", qos0_publish(b"a/\x80", b"x")),
        ("an overlong encoding", qos0_publish(b"a/\xC0\xAF", b"x")),
    ]);
}

#[test]
fn mqtt_2_3_1_1_packet_identifier_zero_closes_the_connection() {
    // [MQTT-2.3.1-1]: SUBSCRIBE, UNSUBSCRIBE and QoS 1 or 2 PUBLISH need a non-zero identifier.
    let mut qos1 = field(b"a/b");
    qos1.extend([0x00, 0x00]);
    qos1.extend(b"payload");
    let topic: &[u8] = b"a/b";
    assert_each_closes_only_its_connection(&[
        ("PUBLISH QoS 1 with id 0", with_header(0x32, &qos1)),
        ("PUBLISH QoS 2 with id 0", with_header(0x34, &qos1)),
        ("SUBSCRIBE with id 0", subscribe_packet_raw(0x82, 0, &[(topic, 0)])),
        ("UNSUBSCRIBE with id 0", unsubscribe_packet_raw(0xA2, 0, &[topic])),
    ]);
}

#[test]
fn mqtt_3_8_3_3_subscribe_without_filters_closes_the_connection() {
    // [MQTT-3.8.3-3]: a SUBSCRIBE carries at least one filter.
    assert_each_closes_only_its_connection(&[("SUBSCRIBE without filters", vec![0x82, 0x02, 0x00, 0x01])]);
}

#[test]
fn mqtt_3_10_3_2_unsubscribe_without_filters_closes_the_connection() {
    // [MQTT-3.10.3-2]: an UNSUBSCRIBE carries at least one filter.
    assert_each_closes_only_its_connection(&[("UNSUBSCRIBE without filters", vec![0xA2, 0x02, 0x00, 0x01])]);
}

#[test]
fn mqtt_3_8_3_4_subscribe_options_with_reserved_bits_close_the_connection() {
    // [MQTT-3.8.3-4]: the upper six bits of the requested QoS byte are reserved, and QoS 3 does
    // not exist; also when an earlier filter of the same packet is valid.
    let topic: &[u8] = b"a/b";
    assert_each_closes_only_its_connection(&[
        ("requested QoS byte 0x04", subscribe_packet_raw(0x82, 1, &[(topic, 0x04)])),
        ("requested QoS byte 0x80", subscribe_packet_raw(0x82, 1, &[(topic, 0x80)])),
        ("requested QoS 3", subscribe_packet_raw(0x82, 1, &[(topic, 0x03)])),
        ("second filter with byte 0xFD", subscribe_packet_raw(0x82, 1, &[(topic, 0x01), (b"c/d", 0xFD)])),
    ]);
}

#[test]
fn mqtt_4_7_1_invalid_topic_filters_close_the_connection() {
    // [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.3-1]: as Mosquitto does, an invalid filter in a
    // SUBSCRIBE or UNSUBSCRIBE closes the connection; no SUBACK is sent.
    let valid: &[u8] = b"ok/+";
    assert_each_closes_only_its_connection(&[
        ("filter a/#/b", subscribe_packet_raw(0x82, 1, &[(b"a/#/b", 0)])),
        ("filter a/b#", subscribe_packet_raw(0x82, 1, &[(b"a/b#", 0)])),
        ("filter a+/b", subscribe_packet_raw(0x82, 1, &[(b"a+/b", 0)])),
        ("empty filter", subscribe_packet_raw(0x82, 1, &[(b"", 0)])),
        ("valid then a/#/b", subscribe_packet_raw(0x82, 1, &[(valid, 0), (b"a/#/b", 0)])),
        ("unsubscribe a/#/b", unsubscribe_packet_raw(0xA2, 1, &[b"a/#/b"])),
    ]);
}

#[test]
fn packets_only_a_server_sends_close_the_connection() {
    // A client sending CONNACK, SUBACK, UNSUBACK or PINGRESP breaks the protocol (4.8).
    assert_each_closes_only_its_connection(&[
        ("CONNACK", vec![0x20, 0x02, 0x00, 0x00]),
        ("SUBACK", vec![0x90, 0x03, 0x00, 0x01, 0x00]),
        ("UNSUBACK", vec![0xB0, 0x02, 0x00, 0x01]),
        ("PINGRESP", PINGRESP.to_vec()),
    ]);
}

#[test]
fn fields_longer_than_the_packet_close_the_connection() {
    // A string length or field that runs past the remaining length is malformed, as is a fixed
    // size packet of the wrong size or trailing bytes after the last field.
    assert_each_closes_only_its_connection(&[
        ("topic longer than the packet", vec![0x30, 0x03, 0x00, 0x05, b'a']),
        ("filter longer than the packet", vec![0x82, 0x07, 0x00, 0x01, 0x00, 0x0A, b'a', b'b', b'c']),
        ("SUBSCRIBE without its options byte", vec![0x82, 0x05, 0x00, 0x01, 0x00, 0x01, b'a']),
        ("PUBACK of 3 bytes", vec![0x40, 0x03, 0x00, 0x01, 0x00]),
        ("PUBACK of 1 byte", vec![0x40, 0x01, 0x00]),
        ("PINGREQ with a body", vec![0xC0, 0x01, 0x00]),
        ("DISCONNECT with a body", vec![0xE0, 0x01, 0x00]),
    ]);
}

#[test]
fn packet_above_max_packet_size_closes_at_once() {
    // With server.max_packet_size = 1024, a PUBLISH that announces a 1 MB remaining length is
    // refused from its fixed header, without waiting for a body that never comes.
    let broker = TestBroker::with_config("[server]\nmax_packet_size = 1024\n");
    let mut watcher = bystander(broker.addr);
    let mut offender = raw_connected(broker.addr, "offender");
    // 0x80 0x80 0x40 encodes 1_048_576.
    offender.send(&[0x30, 0x80, 0x80, 0x40, 0x00, 0x01, b'a']);
    offender.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let started = Instant::now();
    assert_closed(&mut offender, "1 MB PUBLISH announced");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_still_serving(broker.addr, &mut watcher, "1 MB PUBLISH announced");

    // The same holds for a CONNECT, which is then not answered.
    let mut first = RawClient::connect(broker.addr);
    first.send(&[0x10, 0x80, 0x80, 0x40]);
    assert_closed(&mut first, "1 MB CONNECT announced");
    assert_still_serving(broker.addr, &mut watcher, "1 MB CONNECT announced");
}

#[test]
fn max_packet_size_counts_the_whole_packet() {
    // The limit includes the fixed header: a 1024-byte PUBLISH passes, a 1025-byte one closes
    // the connection.
    let broker = TestBroker::with_config("[server]\nmax_packet_size = 1024\n");
    let mut watcher = bystander(broker.addr);
    let mut publisher = raw_connected(broker.addr, "publisher");
    // Topic field 2 + 13 bytes, payload 1006 bytes: remaining length 1021, header 3 bytes.
    let largest = qos0_publish(WATCHED.as_bytes(), &[b'x'; 1006]);
    assert_eq!(largest.len(), 1024);
    publisher.send(&largest);
    watcher.expect(&largest);
    let too_large = qos0_publish(WATCHED.as_bytes(), &[b'x'; 1007]);
    assert_eq!(too_large.len(), 1025);
    publisher.send(&too_large);
    assert_closed(&mut publisher, "1025-byte PUBLISH");
    assert_still_serving(broker.addr, &mut watcher, "1025-byte PUBLISH");
}

#[test]
fn truncated_packet_then_close_is_a_network_loss() {
    // A client that stops in the middle of a packet and closes its socket is treated as a lost
    // connection: its will is published and the broker keeps serving.
    let broker = TestBroker::start();
    let mut watcher = bystander(broker.addr);
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_with_will("truncator", true, 60, &Will::qos0(WATCHED, b"truncated")));
    client.expect(&[0x20, 0x02, 0x00, 0x00]);
    let whole = qos0_publish(b"some/topic", b"never completed");
    client.send(&whole[..whole.len() / 2]);
    client.stream.shutdown(Shutdown::Write).unwrap();
    assert_closed(&mut client, "truncated PUBLISH");
    watcher.expect(&qos0_publish(WATCHED.as_bytes(), b"truncated"));
    assert_still_serving(broker.addr, &mut watcher, "truncated PUBLISH");
}

#[test]
fn mqtt_3_1_2_8_will_is_published_after_a_protocol_violation() {
    // [MQTT-3.1.2-8]: a connection closed by the server for a protocol error publishes its will.
    let broker = TestBroker::start();
    let mut subscriber = raw_connected(broker.addr, "will-subscriber");
    subscribe(&mut subscriber, 1, &[("will/#", 0)]);
    let violations: [(&str, Vec<u8>); 3] = [
        ("PINGREQ with flags", vec![0xC1, 0x00]),
        ("second CONNECT", connect_with_will("again", true, 60, &Will::qos0("will/x", b"x"))),
        ("invalid filter", subscribe_packet_raw(0x82, 1, &[(b"a/#/b", 0)])),
    ];
    for (i, (what, bytes)) in violations.iter().enumerate() {
        let topic = format!("will/offender-{i}");
        let payload = format!("closed for {what}");
        let mut offender = RawClient::connect(broker.addr);
        offender.send(&connect_with_will(
            &format!("offender-{i}"),
            true,
            60,
            &Will::qos0(&topic, payload.as_bytes()),
        ));
        offender.expect(&[0x20, 0x02, 0x00, 0x00]);
        offender.send(bytes);
        assert_closed(&mut offender, what);
        subscriber.expect(&qos0_publish(topic.as_bytes(), payload.as_bytes()));
    }
    subscriber.send(&PINGREQ);
    subscriber.expect(&PINGRESP);
}

/// A deterministic xorshift64 generator: the garbage is the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn byte(&mut self) -> u8 {
        self.next().to_be_bytes()[0]
    }

    /// A number in `0..bound`.
    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(bound).or_fail("bound fits u64")).or_fail("below bound")
    }

    /// A short string of letters, separators and wildcards, now and then with U+0000 or a
    /// surrogate.
    fn topic_bytes(&mut self) -> Vec<u8> {
        const PIECES: [&[u8]; 12] = [
            b"a",
            b"b",
            b"c",
            b"/",
            b"/",
            b"+",
            b"#",
            b"$",
            "\u{e9}".as_bytes(),
            b"sys",
            b"\0",
            b"\xED\xA0\x80",
        ];
        let len = self.below(8);
        (0..len).flat_map(|_| PIECES[self.below(PIECES.len())]).copied().collect()
    }

    /// A garbage byte string: fully random; a random body behind a well-formed fixed header, so
    /// that the packet parsers see it; or a PUBLISH, SUBSCRIBE or UNSUBSCRIBE with random topics,
    /// identifiers and options, so that the broker's handlers see some of it too.
    fn garbage(&mut self) -> Vec<u8> {
        match self.below(3) {
            0 => {
                let len = 1 + self.below(64);
                (0..len).map(|_| self.byte()).collect()
            }
            1 => {
                let packet_type = 1 + u8::try_from(self.below(14)).or_fail("below 14");
                let flags = match packet_type {
                    3 => self.byte() & 0x0F,
                    6 | 8 | 10 => 0x02,
                    _ => 0x00,
                };
                let len = self.below(48);
                let body: Vec<u8> = (0..len).map(|_| self.byte()).collect();
                with_header((packet_type << 4) | flags, &body)
            }
            _ => {
                let first_byte = [0x30, 0x31, 0x32, 0x34, 0x3A, 0x82, 0xA2][self.below(7)];
                // Identifiers are 0 to 3, so that the forbidden 0 comes up often.
                let packet_id = [0, self.byte() & 0x03];
                let mut body = Vec::new();
                match first_byte {
                    0x82 => {
                        body.extend(packet_id);
                        for _ in 0..=self.below(2) {
                            body.extend(field(&self.topic_bytes()));
                            // Mostly a valid QoS, sometimes reserved bits or QoS 3.
                            let options = self.byte();
                            body.push(if self.below(4) == 0 { options } else { options % 3 });
                        }
                    }
                    0xA2 => {
                        body.extend(packet_id);
                        body.extend(field(&self.topic_bytes()));
                    }
                    _ => {
                        body.extend(field(&self.topic_bytes()));
                        if first_byte & 0x06 != 0 {
                            body.extend(packet_id);
                        }
                        body.extend((0..self.below(8)).map(|_| self.byte()));
                    }
                }
                with_header(first_byte, &body)
            }
        }
    }
}

/// Sends `bytes` on a connection, ends it from the client side, and reads until the broker
/// closes it too; nothing about the answer is assumed, except that the broker does close.
fn send_garbage(client: &mut RawClient, bytes: &[u8]) {
    // The broker may already have closed the socket; a failed write is then expected.
    let _ = client.stream.write_all(bytes);
    let _ = client.stream.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut sink = Vec::new();
    match client.stream.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("garbage {bytes:02x?}: the broker did not close the connection: {e}"),
    }
    assert!(started.elapsed() < WAIT);
}

#[test]
fn random_garbage_after_connect_never_stops_the_broker() {
    // 200 random byte strings, each after a valid CONNECT on its own connection, in batches of
    // 20; after each batch a fresh client connects, pings and still reaches the bystander.
    let broker = TestBroker::start();
    let mut watcher = bystander(broker.addr);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for batch in 0..10 {
        for i in 0..20 {
            let bytes = rng.garbage();
            let mut client = raw_connected(broker.addr, &format!("garbage-{batch}-{i}"));
            send_garbage(&mut client, &bytes);
        }
        assert_still_serving(broker.addr, &mut watcher, &format!("garbage batch {batch}"));
    }
}

#[test]
fn random_garbage_instead_of_connect_never_stops_the_broker() {
    // 100 random byte strings sent as the first bytes of a connection.
    let broker = TestBroker::start();
    let mut watcher = bystander(broker.addr);
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for batch in 0..5 {
        for _ in 0..20 {
            let bytes = rng.garbage();
            let mut client = RawClient::connect(broker.addr);
            send_garbage(&mut client, &bytes);
        }
        assert_still_serving(broker.addr, &mut watcher, &format!("pre-CONNECT garbage batch {batch}"));
    }
}
