//! Durable storage in process, on the `Backend` trait: the memory backend (the reference any
//! backend is held to) keeps what a restarted broker restores, and acknowledgements wait for
//! commits, including commits that fail for a while (a full disk) and then succeed.
//!
//! The crash tests against the real binary and redb are in `tests/durable.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use iothub::storage::{Backend, MemoryBackend, StorageError, StoredState, Write};
use iothub_protocol::{Packet, ReasonCode};
use iothub_test_util::v5_client::message;
use iothub_test_util::{
    ack, connect_packet, loopback_config, next_publish, publish, publish_packet, raw_connected, subscribe,
    RawClient, TestBroker, V5Client, CONNACK_SESSION_PRESENT, PUBACK,
};

/// A backend whose commits fail while `full` is set, as on a full disk.
#[derive(Debug, Clone)]
struct Flaky {
    inner: MemoryBackend,
    full: Arc<AtomicBool>,
}

impl Backend for Flaky {
    fn load(&mut self) -> Result<StoredState, StorageError> {
        self.inner.load()
    }

    fn commit(&mut self, writes: &[Write]) -> Result<(), StorageError> {
        if self.full.load(Ordering::Acquire) {
            return Err(StorageError::Io("No space left on device".to_owned()));
        }
        self.inner.commit(writes)
    }
}

fn broker_on(backend: &MemoryBackend) -> TestBroker {
    TestBroker::with_backend(loopback_config(""), Box::new(backend.clone()))
}

/// A persistent 3.1.1 subscriber to `filter` at QoS 1 that leaves without DISCONNECT.
fn subscribe_and_leave(broker: &TestBroker, client_id: &str, filter: &str) {
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet(client_id, false, 60));
    let _ = client.read_packet();
    subscribe(&mut client, 1, &[(filter, 1)]);
}

#[test]
fn a_restarted_broker_restores_sessions_their_queues_and_retained_messages() {
    let backend = MemoryBackend::default();
    {
        let broker = broker_on(&backend);
        subscribe_and_leave(&broker, "keeper", "stored/#");
        subscribe_and_leave(&broker, "second-keeper", "stored/queue");
        let mut publisher = raw_connected(broker.addr, "writer");
        // Each PUBACK is read: it is sent once the message is committed.
        for n in 1..=5u16 {
            publish(&mut publisher, "stored/queue", format!("m{n}").as_bytes(), 1, false, n);
        }
        publish(&mut publisher, "stored/kept", b"retained", 1, true, 6);
    }
    let (messages, entries, sessions) = backend.counts();
    assert_eq!((entries, sessions), (11, 2), "6 + 5 queued entries of two sessions are stored");
    assert_eq!(messages, 6, "each message stored once, however many sessions queue it");
    let broker = broker_on(&backend);
    let mut client = RawClient::connect(broker.addr);
    client.send(&connect_packet("keeper", false, 60));
    client.expect(&CONNACK_SESSION_PRESENT);
    // No re-subscribe: the queue and the subscription came back.
    let mut texts = Vec::new();
    for _ in 0..6 {
        texts.push(next_publish(&mut client).text().to_owned());
    }
    assert_eq!(texts, ["m1", "m2", "m3", "m4", "m5", "retained"]);
    let mut late = raw_connected(broker.addr, "late");
    subscribe(&mut late, 1, &[("stored/kept", 0)]);
    assert_eq!(next_publish(&mut late).text(), "retained");
    // Live traffic still reaches the restored subscription.
    let mut publisher = raw_connected(broker.addr, "writer-2");
    publish(&mut publisher, "stored/live", b"live", 1, false, 1);
    assert_eq!(next_publish(&mut client).text(), "live");
    client.send(&iothub_test_util::PINGREQ);
    client.expect(&iothub_test_util::PINGRESP);
    let mut second = RawClient::connect(broker.addr);
    second.send(&connect_packet("second-keeper", false, 60));
    second.expect(&CONNACK_SESSION_PRESENT);
    for n in 1..=5 {
        assert_eq!(next_publish(&mut second).text(), format!("m{n}"));
    }
    second.send(&iothub_test_util::PINGREQ);
    second.expect(&iothub_test_util::PINGRESP);
    drop(broker);
    let (messages, entries, _) = backend.counts();
    assert_eq!((entries, messages), (0, 1), "delivered messages are deleted; the retained one stays");
}

#[test]
fn while_the_disk_refuses_writes_acknowledgements_wait_new_publications_are_refused_and_all_resumes() {
    let memory = MemoryBackend::default();
    let full = Arc::new(AtomicBool::new(false));
    let backend = Flaky { inner: memory.clone(), full: Arc::clone(&full) };
    let broker = TestBroker::with_backend(loopback_config(""), Box::new(backend));
    // An online persistent subscriber: nothing of its own is written while the disk is full.
    let mut subscriber = RawClient::connect(broker.addr);
    subscriber.send(&connect_packet("patient", false, 60));
    let _ = subscriber.read_packet();
    subscribe(&mut subscriber, 1, &[("disk/#", 1)]);
    full.store(true, Ordering::Release);
    let mut publisher = raw_connected(broker.addr, "hopeful");
    publisher.send(&publish_packet("disk/full", b"kept", 1, false, false, 9));
    // Nothing is acknowledged while the commit fails.
    publisher.expect_silence(Duration::from_millis(1500));
    // Meanwhile new QoS 1/2 publications are refused, not routed: a 5.0 publisher is told
    // 0x97 (Quota exceeded) in its PUBACK and PUBREC and stays connected [MQTT-4.3.3], a 3.1.1
    // one, which cannot be told, is disconnected.
    let mut v5 = V5Client::connect(broker.addr, "told");
    v5.send(&Packet::Publish(message("disk/refused", b"refused", 1, false, 3)));
    match v5.recv() {
        Packet::PubAck(ack) => assert_eq!(ack.reason_code, ReasonCode::QuotaExceeded),
        other => panic!("expected PUBACK 0x97, got {other:?}"),
    }
    v5.send(&Packet::Publish(message("disk/refused", b"refused", 2, false, 4)));
    match v5.recv() {
        Packet::PubRec(rec) => assert_eq!(rec.reason_code, ReasonCode::QuotaExceeded),
        other => panic!("expected PUBREC 0x97, got {other:?}"),
    }
    let mut v3 = raw_connected(broker.addr, "untold");
    v3.send(&publish_packet("disk/refused", b"refused", 1, false, false, 5));
    v3.expect_closed();
    full.store(false, Ordering::Release);
    publisher.expect(&ack(PUBACK, 9));
    // Once the disk takes writes again, publications are accepted again; the refused packet
    // identifier 4 is a new exchange.
    v5.publish(message("disk/again", b"again", 2, false, 4));
    assert_eq!(next_publish(&mut subscriber).text(), "kept");
    assert_eq!(next_publish(&mut subscriber).text(), "again", "refused messages were not routed");
    drop(broker);
    assert!(memory.commits() > 0);
}

/// 5.0 state survives a restart: the Session Expiry Interval, a subscription's options and
/// identifier, and a queued message's properties and expiry, which keeps counting down (what is
/// forwarded is what is left) [MQTT-3.3.2-6].
#[test]
fn a_restart_keeps_5_0_options_identifiers_properties_and_expiry() {
    use iothub_protocol::PublishProperties;
    use iothub_test_util::v5_client::{connect_v5, options, subscription_ids, with_properties};
    let backend = MemoryBackend::default();
    {
        let broker = broker_on(&backend);
        let (mut subscriber, _) = V5Client::connect_with(broker.addr, connect_v5("five", true, 600));
        subscriber.subscribe_granted(1, &[("five/#", options(1))], Some(77));
        drop(subscriber);
        let mut publisher = V5Client::connect(broker.addr, "five-writer");
        let properties = PublishProperties {
            message_expiry_interval: Some(100),
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..PublishProperties::default()
        };
        publisher.publish(with_properties(message("five/a", b"kept", 1, false, 1), properties));
    }
    let broker = broker_on(&backend);
    let (mut subscriber, connack) = V5Client::connect_with(broker.addr, connect_v5("five", false, 600));
    assert!(connack.session_present, "the 5.0 session came back");
    let got = subscriber.next_publish();
    assert_eq!(&got.payload[..], b"kept");
    assert_eq!(subscription_ids(&got), [77], "the subscription's identifier came back");
    let properties = got.properties.as_deref().cloned().unwrap_or_default();
    assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(properties.user_properties, vec![("k".into(), "v".into())]);
    let left = properties.message_expiry_interval.unwrap_or(0);
    assert!(left > 0 && left <= 100, "what is left of the expiry is forwarded: {left}");
}

/// A shared subscription's queued messages keep their group across a restart: when a member's
/// session then ends, they go to another member of the group [MQTT-4.8.2-3] instead of being
/// lost with it.
#[test]
fn after_a_restart_a_leaving_shared_member_still_hands_its_messages_on() {
    let backend = MemoryBackend::default();
    {
        let broker = broker_on(&backend);
        subscribe_and_leave(&broker, "member-a", "$share/g/jobs/#");
        subscribe_and_leave(&broker, "member-b", "$share/g/jobs/#");
        let mut publisher = raw_connected(broker.addr, "dispatcher");
        for n in 1..=4u16 {
            publish(&mut publisher, "jobs/x", format!("job{n}").as_bytes(), 1, false, n);
        }
    }
    let (_, entries, _) = backend.counts();
    assert_eq!(entries, 4, "each job queued for one member");
    let broker = broker_on(&backend);
    let mut b = RawClient::connect(broker.addr);
    b.send(&connect_packet("member-b", false, 60));
    b.expect(&CONNACK_SESSION_PRESENT);
    // member-a comes back with a clean session: its stored one ends, and its jobs move to b.
    let _a = raw_connected(broker.addr, "member-a");
    let mut jobs: Vec<String> = (0..4).map(|_| next_publish(&mut b).text().to_owned()).collect();
    jobs.sort();
    assert_eq!(jobs, ["job1", "job2", "job3", "job4"]);
}
