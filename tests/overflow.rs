//! Bounded work and no lost acknowledged messages: full subscriber queues slow the publisher
//! instead of dropping what it was acknowledged for; a slow but live reader is neither silenced
//! nor disconnected for keep-alive; one huge SUBSCRIBE does not stall other clients;
//! `max_subscriptions`; the hierarchy limit of 200 separators, for wills too.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use iothub_test_util::{
    ack, connect_with_will, parse_publish, publish_packet, raw_connected, subscribe, subscribe_packet,
    unsubscribe_packet, RawClient, TestBroker, Will, PUBACK,
};

/// Two publishers send 2,000 QoS 1 messages each, flat out, to one subscriber whose queue holds
/// 10 and which reads and acknowledges everything. Every message the publishers were
/// acknowledged for arrives, exactly once: the full queue slowed the publishers instead of
/// dropping their messages (before, 3,950 of 4,000 were dropped after PUBACK).
#[test]
fn full_queue_slows_publishers_and_loses_no_acknowledged_message() {
    const PER_PUBLISHER: u16 = 2000;
    let broker = TestBroker::with_config("[server]\nmax_queued_messages = 10\nmax_inflight_messages = 5\n");
    let mut subscriber = raw_connected(broker.addr, "fan-in-sub");
    subscribe(&mut subscriber, 1, &[("fan/#", 1)]);
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let addr = broker.addr;
            std::thread::spawn(move || {
                let mut publisher = raw_connected(addr, &format!("fan-in-pub-{p}"));
                let mut burst = Vec::new();
                for n in 1..=PER_PUBLISHER {
                    burst.extend(publish_packet(
                        &format!("fan/{p}"),
                        format!("{p}-{n}").as_bytes(),
                        1,
                        false,
                        false,
                        n,
                    ));
                }
                publisher.send(&burst);
                for n in 1..=PER_PUBLISHER {
                    publisher.expect(&ack(PUBACK, n));
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut next = [1u16; 2];
    while seen.len() < 2 * usize::from(PER_PUBLISHER) {
        let packet = subscriber.read_packet();
        let incoming = parse_publish(&packet);
        let id = incoming.packet_id.expect("QoS 1 delivery");
        subscriber.send(&ack(PUBACK, id));
        let text = incoming.text().to_owned();
        let (p, n) = text.split_once('-').expect("payload p-n");
        let p: usize = p.parse().unwrap();
        assert_eq!(n.parse::<u16>().unwrap(), next[p], "order per publisher [MQTT-4.6.0-2]");
        next[p] += 1;
        assert!(seen.insert(text), "delivered twice");
    }
    for publisher in publishers {
        publisher.join().unwrap();
    }
}

/// [MQTT-3.1.2-24], [MQTT-3.1.2-8]: a subscriber that reads, but more slowly than it is sent
/// to, and pings every 200 ms with a 1 s keep-alive, is still connected after 2.5 keep-alive
/// limits and its will has not been published: the broker keeps reading it (and answering its
/// PINGREQs) while its output drains. Before, the broker stopped reading it once its backlog
/// passed 64 KiB and then closed it for keep-alive, publishing its will.
#[test]
fn mqtt_3_1_2_24_a_slow_reader_that_pings_is_not_closed_for_keep_alive() {
    let broker = TestBroker::start();
    let mut watcher = raw_connected(broker.addr, "watcher");
    subscribe(&mut watcher, 1, &[("will/slow", 0)]);
    let mut slow = RawClient::connect(broker.addr);
    slow.send(&connect_with_will("slow-reader", true, 1, &Will::qos0("will/slow", b"gone")));
    slow.expect(&[0x20, 0x02, 0x00, 0x00]);
    subscribe(&mut slow, 1, &[("flood", 0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = {
        let stop = Arc::clone(&stop);
        let addr = broker.addr;
        std::thread::spawn(move || {
            let mut publisher = raw_connected(addr, "flooder");
            let burst: Vec<u8> =
                (0..64).flat_map(|_| publish_packet("flood", &[b'x'; 1024], 0, false, false, 0)).collect();
            while !stop.load(Ordering::Relaxed) {
                publisher.send(&burst);
            }
        })
    };
    let mut stream = slow.stream;
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let start = Instant::now();
    let mut chunk = [0u8; 4096];
    let mut last_ping = start - Duration::from_secs(1);
    // 4 s is more than 2.5 keep-alive limits; the reader takes about 400 kB/s.
    while start.elapsed() < Duration::from_secs(4) {
        if last_ping.elapsed() >= Duration::from_millis(200) {
            stream.write_all(&[0xC0, 0x00]).unwrap();
            last_ping = Instant::now();
        }
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the broker closed a live client after {:?}", start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the broker reset a live client after {:?}: {e}", start.elapsed()),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    // A marker on the will topic arrives first: no will was published before it.
    let mut marker = raw_connected(broker.addr, "marker");
    marker.send(&publish_packet("will/slow", b"marker", 1, false, false, 1));
    marker.expect(&ack(PUBACK, 1));
    assert_eq!(
        parse_publish(&watcher.read_packet()).text(),
        "marker",
        "the slow reader's will was published"
    );
}

/// One SUBSCRIBE of 130,000 filters (780 kB, under the default `max_packet_size`) is
/// handled in bounded turns: while it is being handled, another client keeps getting its PINGREQs
/// answered, many times over, before the SUBSCRIBE is answered (before, the whole broker
/// stalled for tens of seconds and the other client was answered only after the SUBACK).
#[test]
fn a_huge_subscribe_does_not_stall_other_clients() {
    const FILTERS: usize = 130_000;
    let broker = TestBroker::with_config("[server]\nmax_subscriptions = 0\n");
    let mut prober = raw_connected(broker.addr, "prober");
    let mut hostile = raw_connected(broker.addr, "hostile");
    const ALPHABET: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
    let filters: Vec<String> = (0..FILTERS)
        .map(|i| [i / 4096, (i / 64) % 64, i % 64].iter().map(|&d| char::from(ALPHABET[d])).collect())
        .collect();
    let filters: Vec<(&str, u8)> = filters.iter().map(|filter| (filter.as_str(), 0)).collect();
    hostile.send(&subscribe_packet(1, &filters));
    let hostile = hostile.stream;
    hostile.set_nonblocking(true).unwrap();
    let mut round_trips = 0;
    let mut first = [0u8; 1];
    loop {
        match hostile.peek(&mut first) {
            Ok(0) => panic!("the broker closed the subscribing client"),
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("hostile client lost: {e}"),
        }
        prober.send(&[0xC0, 0x00]);
        prober.expect(&[0xD0, 0x00]);
        round_trips += 1;
    }
    assert_eq!(first[0], 0x90, "the SUBACK");
    assert!(round_trips >= 20, "the other client was answered only {round_trips} times during the SUBSCRIBE");
}

/// `server.max_subscriptions`: filters beyond the limit are refused with 0x80 (5.0: 0x97) while
/// the others are granted; replacing an existing subscription is always allowed.
#[test]
fn max_subscriptions_refuses_new_filters_beyond_the_limit() {
    let broker = TestBroker::with_config("[server]\nmax_subscriptions = 3\n");
    let mut client = raw_connected(broker.addr, "collector");
    client.send(&subscribe_packet(1, &[("a", 0), ("b", 1), ("c", 0), ("d", 0), ("e", 1)]));
    client.expect(&[0x90, 0x07, 0x00, 0x01, 0x00, 0x01, 0x00, 0x80, 0x80]);
    client.send(&subscribe_packet(2, &[("a", 1), ("f", 0)]));
    client.expect(&[0x90, 0x04, 0x00, 0x02, 0x01, 0x80]);
    client.send(&unsubscribe_packet(3, &["b"]));
    client.expect(&[0xB0, 0x02, 0x00, 0x03]);
    client.send(&subscribe_packet(4, &[("f", 0)]));
    client.expect(&[0x90, 0x03, 0x00, 0x04, 0x00]);
}

/// A will topic deeper than the hierarchy limit could never be published [MQTT-3.1.2-8], so the
/// CONNECT is refused by closing without CONNACK [MQTT-3.1.4-1]; a will of exactly 200
/// separators (201 levels, as Mosquitto allows) is accepted and published.
#[test]
fn will_topics_are_held_to_the_hierarchy_limit_at_connect() {
    let broker = TestBroker::start();
    let mut watcher = raw_connected(broker.addr, "watcher");
    subscribe(&mut watcher, 1, &[("#", 0)]);
    for (separators, accepted) in [(201, false), (200, true)] {
        let topic = vec!["w"; separators + 1].join("/");
        let mut client = RawClient::connect(broker.addr);
        client.send(&connect_with_will("deep-will", true, 60, &Will::qos0(&topic, b"gone")));
        if accepted {
            client.expect(&[0x20, 0x02, 0x00, 0x00]);
            drop(client);
            let will = parse_publish(&watcher.read_packet());
            assert_eq!(will.topic, topic);
        } else {
            client.expect_closed();
        }
    }
}

/// The hierarchy limit is 200 separators, as Mosquitto's: a QoS 1 PUBLISH to a topic of 201
/// levels is acknowledged and delivered, one of 202 levels closes the connection unacknowledged.
#[test]
fn topics_of_200_separators_are_routed_and_201_refused() {
    let broker = TestBroker::start();
    let mut watcher = raw_connected(broker.addr, "watcher");
    subscribe(&mut watcher, 1, &[("#", 0)]);
    let mut publisher = raw_connected(broker.addr, "deep-pub");
    let topic = vec!["t"; 201].join("/");
    publisher.send(&publish_packet(&topic, b"p", 1, false, false, 1));
    publisher.expect(&ack(PUBACK, 1));
    assert_eq!(parse_publish(&watcher.read_packet()).topic, topic);
    let deeper = vec!["t"; 202].join("/");
    publisher.send(&publish_packet(&deeper, b"p", 1, false, false, 2));
    publisher.expect_closed();
}

/// [MQTT-4.6.0-6]: a new subscription never receives a live message before the older retained
/// message of the same topic from the same publisher. One publisher stores retained `old-<i>` on
/// 200 topics and then publishes `new-<i>-<k>` to them in a loop, while 30 subscribers subscribe
/// to `ord/#` one after another; no subscriber may see `old-<i>` after any `new-<i>-…` (before,
/// the subscription became visible before its retained copies were queued: 504 inversions in 6 of
/// 30 subscriptions).
#[test]
fn mqtt_4_6_0_6_retained_copies_are_never_overtaken_by_newer_live_messages() {
    const TOPICS: usize = 200;
    const SUBSCRIBERS: usize = 30;
    let broker = TestBroker::start();
    let mut publisher = raw_connected(broker.addr, "order-pub");
    let retained: Vec<u8> = (0..TOPICS)
        .flat_map(|i| publish_packet(&format!("ord/{i}"), format!("old-{i}").as_bytes(), 0, true, false, 0))
        .collect();
    publisher.send(&retained);
    let stop = Arc::new(AtomicBool::new(false));
    let live = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let burst: Vec<u8> = (0..TOPICS)
                    .flat_map(|i| {
                        publish_packet(
                            &format!("ord/{i}"),
                            format!("new-{i}-{k}").as_bytes(),
                            0,
                            false,
                            false,
                            0,
                        )
                    })
                    .collect();
                publisher.send(&burst);
                k += 1;
            }
            // QoS 1, so that a full queue slows it rather than drops it.
            publisher.send(&publish_packet("order-done", b"done", 1, false, false, 1));
        })
    };
    let mut readers = Vec::new();
    for s in 0..SUBSCRIBERS {
        let (subscribed, ready) = std::sync::mpsc::channel();
        let addr = broker.addr;
        readers.push(std::thread::spawn(move || {
            let mut client = raw_connected(addr, &format!("order-sub-{s}"));
            subscribe(&mut client, 1, &[("ord/#", 0), ("order-done", 1)]);
            let _ = subscribed.send(());
            let mut seen_new = [false; TOPICS];
            let mut inversions = 0;
            loop {
                let incoming = parse_publish(&client.read_packet());
                if incoming.topic == "order-done" {
                    return inversions;
                }
                let text = incoming.text();
                let topic: usize = incoming.topic["ord/".len()..].parse().unwrap();
                if text.starts_with("new-") {
                    seen_new[topic] = true;
                } else if seen_new[topic] {
                    inversions += 1;
                }
            }
        }));
        assert!(ready.recv_timeout(iothub_test_util::WAIT).is_ok(), "subscriber {s} did not subscribe");
    }
    stop.store(true, Ordering::Relaxed);
    live.join().unwrap();
    let inversions: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert_eq!(inversions, 0, "retained copies arrived after newer live messages of their topic");
}
