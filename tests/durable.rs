//! Durable storage against the real binary: `kill -9` at random moments while publishers count
//! what the broker acknowledged and persistent subscribers (3.1.1 and 5.0, QoS 1 and 2, some
//! online, some offline) receive. After every round the broker restarts on the same store; at the
//! end every subscriber drains its session. The promise checked:
//! - every acknowledged message (PUBACK for QoS 1, PUBREC for QoS 2) reaches every persistent
//!   subscriber whose subscription it matched;
//! - a subscriber at QoS 2 receives no message twice (the client side keeps its own QoS 2
//!   packet identifiers, as a real client does);
//! - per publisher and topic, messages arrive in order (re-sends aside);
//! - subscriptions survive without a re-subscribe, and a resumed session is present;
//! - the retained message is the last acknowledged one, or a later one the broker took.
//!
//! The rounds are bounded (count, time per round, messages per publisher) and every wait has a
//! deadline. The seed of the kill timings is printed, and can be set with
//! `CRASH_TEST_SEED`; `CRASH_TEST_ROUNDS` sets the number of rounds.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroU16;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use iothub_protocol::{
    decode, Connect, ConnectProperties, Packet, ProtocolVersion, Publish, PublishResponse, QoS, Subscribe,
    SubscriptionOptions,
};
use iothub_test_util::OrFail;

const BINARY: &str = env!("CARGO_BIN_EXE_iothub");

/// Most messages each publisher sends over the whole test.
const MESSAGES: u64 = 20_000;
/// Messages a publisher keeps unacknowledged at once.
const WINDOW: u16 = 16;
/// How long a round may last before its kill, at most.
const MAX_ROUND_MS: u64 = 700;
/// Deadline of every wait for the broker or a client.
const WAIT: Duration = Duration::from_secs(20);
/// Deadline of a subscriber's drain of its whole session at the end.
const DRAIN: Duration = Duration::from_secs(60);

/// The broker process, killed with SIGKILL (by its pid) when dropped.
struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Broker {
    fn start(dir: &Path, extra: &[&str]) -> Broker {
        let path = format!("storage.path={}", dir.display());
        let mut command = Command::new(BINARY);
        for (name, _) in std::env::vars() {
            if name.starts_with("IOTHUB_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(["--listen", "tcp://127.0.0.1:0", "--set", "storage.backend=redb", "--set", &path])
            .args(["--log-level", "info"])
            // Offline sessions keep every message of the test: the limit is not what is tested.
            .args(["--set", "server.max_queued_messages=1000000", "--set", "server.max_queued_bytes=0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .or_fail("starting iothub");
        let stderr = child.stderr.take().or_fail("its standard error");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = wait_for_port(&lines);
        // Keep draining the log so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Broker { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the broker with SIGINT, which drains connections and commits what was issued, and
    /// waits for it to exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().or_fail("running kill");
        assert!(sent.success(), "kill -INT {pid}");
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the broker did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20)); // Polling for the exit, bounded.
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(lines: &Receiver<String>) -> u16 {
    let marker = "listening on tcp://127.0.0.1:";
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            panic!("the broker did not say it was listening; it wrote {seen:#?}");
        };
        seen.push(line.clone());
        if let Some(at) = line.find(marker) {
            let digits: String = line[at + marker.len()..].chars().take_while(char::is_ascii_digit).collect();
            return digits.parse().or_fail("a port");
        }
    }
}

/// A blocking MQTT client on the broker's own codec.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl Client {
    fn connect(
        addr: SocketAddr,
        id: &str,
        version: ProtocolVersion,
        clean: bool,
    ) -> std::io::Result<(Client, bool)> {
        let stream = TcpStream::connect_timeout(&addr, WAIT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut client = Client { stream, buf: BytesMut::new(), version };
        let properties = (version == ProtocolVersion::V5).then(|| {
            Box::new(ConnectProperties {
                session_expiry_interval: Some(3600),
                ..ConnectProperties::default()
            })
        });
        let connect = Connect {
            protocol: version,
            clean_start: clean,
            keep_alive: 60,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties,
        };
        client.send(&Packet::Connect(Box::new(connect)))?;
        let deadline = Instant::now() + WAIT;
        loop {
            match client.recv()? {
                Some(Packet::ConnAck(ack)) if ack.reason_code.is_success() => {
                    return Ok((client, ack.session_present))
                }
                Some(other) => return Err(std::io::Error::other(format!("expected CONNACK, got {other:?}"))),
                None if Instant::now() > deadline => return Err(std::io::Error::other("no CONNACK")),
                None => {}
            }
        }
    }

    fn send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        packet.encode(self.version, &mut out).map_err(std::io::Error::other)?;
        self.stream.write_all(&out)
    }

    /// The next packet, or `None` after the read timeout; an error once the connection is gone.
    fn recv(&mut self) -> std::io::Result<Option<Packet>> {
        loop {
            match decode(&mut self.buf, self.version, usize::MAX) {
                Ok(Some(packet)) => return Ok(Some(packet)),
                Ok(None) => {}
                Err(error) => return Err(std::io::Error::other(format!("{error:?}"))),
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn id(value: u16) -> NonZeroU16 {
    NonZeroU16::new(value).or_fail("a packet identifier")
}

fn qos(bits: u8) -> QoS {
    QoS::from_bits(bits).or_fail("a QoS")
}

/// What a publisher has had acknowledged, and what it sent.
#[derive(Debug, Default)]
struct Published {
    /// Sequence numbers acknowledged (PUBACK, or PUBREC).
    acked: BTreeSet<u64>,
    /// The next sequence number to send.
    next: u64,
    /// QoS 2: packet identifier to (sequence number, PUBREC received).
    inflight: HashMap<u16, (u64, bool)>,
    /// Whether a resumed session was missing.
    lost_session: bool,
    /// Connections made.
    connects: u64,
}

/// A publisher of numbered messages on `topic`.
struct Publisher {
    id: &'static str,
    topic: &'static str,
    qos: u8,
    retain: bool,
    version: ProtocolVersion,
    /// A persistent session (QoS 2: the exchanges in flight continue after a reconnect).
    persistent: bool,
    state: Mutex<Published>,
}

impl Publisher {
    fn publish(&self, client: &mut Client, seq: u64, packet_id: u16, dup: bool) -> std::io::Result<()> {
        let publish = Publish {
            dup,
            qos: qos(self.qos),
            retain: self.retain,
            topic: self.topic.into(),
            packet_id: Some(id(packet_id)),
            payload: Bytes::from(seq.to_string()),
            properties: None,
        };
        client.send(&Packet::Publish(publish))
    }

    /// Publishes until the connection dies or `stop` is set.
    fn run(&self, addr: SocketAddr, stop: &AtomicBool) {
        let Ok((mut client, present)) = Client::connect(addr, self.id, self.version, !self.persistent) else {
            return;
        };
        let mut state = self.state.lock().or_fail("publisher state");
        state.connects += 1;
        if self.persistent && state.connects > 1 && !present {
            state.lost_session = true;
        }
        if !self.persistent {
            state.inflight.clear();
        }
        // A resumed QoS 2 session re-sends what is in flight [MQTT-4.4.0-1].
        let mut resend: Vec<(u16, u64, bool)> =
            state.inflight.iter().map(|(&p, &(s, r))| (p, s, r)).collect();
        resend.sort_by_key(|&(_, seq, _)| seq);
        drop(state);
        for (packet_id, seq, released) in resend {
            let sent = if released {
                client.send(&Packet::PubRel(PublishResponse::new(id(packet_id))))
            } else {
                self.publish(&mut client, seq, packet_id, true)
            };
            if sent.is_err() {
                return;
            }
        }
        let mut free: Vec<u16> = (1..=WINDOW).rev().collect();
        free.retain(|p| !self.state.lock().or_fail("state").inflight.contains_key(p));
        let mut waiting: HashMap<u16, u64> = HashMap::new();
        while !stop.load(Ordering::Acquire) {
            while let Some(&packet_id) = free.last() {
                let mut state = self.state.lock().or_fail("state");
                if state.next >= MESSAGES {
                    break;
                }
                let seq = state.next;
                state.next += 1;
                if self.qos == 2 {
                    state.inflight.insert(packet_id, (seq, false));
                }
                drop(state);
                free.pop();
                waiting.insert(packet_id, seq);
                if self.publish(&mut client, seq, packet_id, false).is_err() {
                    return;
                }
            }
            let packet = match client.recv() {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(_) => return,
            };
            let mut state = self.state.lock().or_fail("state");
            match packet {
                Packet::PubAck(ack) => {
                    if let Some(seq) = waiting.remove(&ack.packet_id.get()) {
                        state.acked.insert(seq);
                        free.push(ack.packet_id.get());
                    }
                }
                Packet::PubRec(rec) => {
                    let packet_id = rec.packet_id.get();
                    let seq = state.inflight.get_mut(&packet_id).map(|(seq, released)| {
                        *released = true;
                        *seq
                    });
                    if let Some(seq) = seq {
                        state.acked.insert(seq);
                    }
                    drop(state);
                    if client.send(&Packet::PubRel(PublishResponse::new(rec.packet_id))).is_err() {
                        return;
                    }
                }
                Packet::PubComp(comp) => {
                    let packet_id = comp.packet_id.get();
                    if state.inflight.remove(&packet_id).is_some() {
                        waiting.remove(&packet_id);
                        free.push(packet_id);
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a subscriber received.
#[derive(Debug, Default)]
struct Received {
    /// Sequence numbers by topic, in order of arrival; re-sends of QoS 2 packet identifiers the
    /// client still holds are not deliveries and are not listed.
    by_topic: HashMap<String, Vec<u64>>,
    /// QoS 2 packet identifiers received and not yet released (the client's own state).
    awaiting_pubrel: HashSet<u16>,
    /// Whether it has subscribed.
    subscribed: bool,
    /// Whether a resumed session was missing.
    lost_session: bool,
}

/// A persistent subscriber to `crash/q/#`.
struct Subscriber {
    id: &'static str,
    version: ProtocolVersion,
    qos: u8,
    /// Whether it is connected during the rounds (else only at the end).
    online: bool,
    state: Mutex<Received>,
}

impl Subscriber {
    /// Receives until the connection dies, `stop` is set, or (with `until`) `until` says it has
    /// everything.
    fn run(&self, addr: SocketAddr, stop: &AtomicBool, until: Option<&dyn Fn(&Received) -> bool>) {
        let Ok((mut client, present)) = Client::connect(addr, self.id, self.version, false) else {
            return;
        };
        let subscribed = self.state.lock().or_fail("state").subscribed;
        if subscribed && !present {
            self.state.lock().or_fail("state").lost_session = true;
        }
        if !subscribed {
            let subscribe = Subscribe {
                packet_id: id(1),
                filters: vec![(
                    "crash/q/#".into(),
                    SubscriptionOptions { qos: qos(self.qos), ..Default::default() },
                )],
                properties: None,
            };
            if client.send(&Packet::Subscribe(subscribe)).is_err() {
                return;
            }
        }
        let deadline = Instant::now() + DRAIN;
        while !stop.load(Ordering::Acquire) {
            if let Some(done) = until {
                if done(&self.state.lock().or_fail("state")) || Instant::now() > deadline {
                    return;
                }
            }
            let packet = match client.recv() {
                Ok(Some(packet)) => packet,
                Ok(None) => continue,
                Err(_) => return,
            };
            let mut state = self.state.lock().or_fail("state");
            let answer = match packet {
                Packet::SubAck(_) => {
                    state.subscribed = true;
                    None
                }
                Packet::Publish(publish) => {
                    let seq: u64 = std::str::from_utf8(&publish.payload)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u64::MAX);
                    let topic = publish.topic.to_string();
                    match (publish.qos, publish.packet_id) {
                        (QoS::ExactlyOnce, Some(packet_id)) => {
                            if state.awaiting_pubrel.insert(packet_id.get()) {
                                state.by_topic.entry(topic).or_default().push(seq);
                            }
                            Some(Packet::PubRec(PublishResponse::new(packet_id)))
                        }
                        (QoS::AtLeastOnce, Some(packet_id)) => {
                            state.by_topic.entry(topic).or_default().push(seq);
                            Some(Packet::PubAck(PublishResponse::new(packet_id)))
                        }
                        _ => {
                            state.by_topic.entry(topic).or_default().push(seq);
                            None
                        }
                    }
                }
                Packet::PubRel(rel) => {
                    state.awaiting_pubrel.remove(&rel.packet_id.get());
                    Some(Packet::PubComp(PublishResponse::new(rel.packet_id)))
                }
                _ => None,
            };
            drop(state);
            if let Some(answer) = answer {
                if client.send(&answer).is_err() {
                    return;
                }
            }
        }
    }
}

/// A small deterministic generator for the kill timings.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// First arrivals only, in order: re-sends of QoS 1 messages after a crash repeat earlier ones.
fn first_arrivals(seqs: &[u64]) -> Vec<u64> {
    let mut seen = HashSet::new();
    seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
}

#[test]
fn acknowledged_messages_survive_kill_9_in_every_persistent_session() {
    let seed = env_number("CRASH_TEST_SEED", u64::from(std::process::id()) * 2_654_435_761 + 1);
    let rounds = env_number("CRASH_TEST_ROUNDS", 6);
    println!("crash test: seed {seed}, {rounds} rounds");
    let mut rng = XorShift(seed | 1);
    let dir = tempdir();
    let publishers: Vec<Arc<Publisher>> = vec![
        Arc::new(Publisher {
            id: "crash-p1",
            topic: "crash/q/1",
            qos: 1,
            retain: false,
            version: ProtocolVersion::V311,
            persistent: false,
            state: Mutex::default(),
        }),
        Arc::new(Publisher {
            id: "crash-p2",
            topic: "crash/q/2",
            qos: 2,
            retain: false,
            version: ProtocolVersion::V5,
            persistent: true,
            state: Mutex::default(),
        }),
        Arc::new(Publisher {
            id: "crash-pr",
            topic: "crash/retained",
            qos: 1,
            retain: true,
            version: ProtocolVersion::V311,
            persistent: false,
            state: Mutex::default(),
        }),
    ];
    let subscribers: Vec<Arc<Subscriber>> = vec![
        Arc::new(Subscriber {
            id: "crash-s1",
            version: ProtocolVersion::V311,
            qos: 1,
            online: true,
            state: Mutex::default(),
        }),
        Arc::new(Subscriber {
            id: "crash-s2",
            version: ProtocolVersion::V311,
            qos: 2,
            online: false,
            state: Mutex::default(),
        }),
        Arc::new(Subscriber {
            id: "crash-s3",
            version: ProtocolVersion::V5,
            qos: 2,
            online: true,
            state: Mutex::default(),
        }),
        Arc::new(Subscriber {
            id: "crash-s4",
            version: ProtocolVersion::V5,
            qos: 1,
            online: false,
            state: Mutex::default(),
        }),
    ];

    // Round 0: every subscriber subscribes, then the offline ones leave.
    {
        let broker = Broker::start(&dir, &[]);
        let stop = AtomicBool::new(false);
        for subscriber in &subscribers {
            let done = |r: &Received| r.subscribed;
            subscriber.run(broker.addr, &stop, Some(&done));
            assert!(subscriber.state.lock().or_fail("state").subscribed, "{} subscribed", subscriber.id);
        }
        broker.kill();
    }

    for round in 0..rounds {
        let broker = Broker::start(&dir, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        for publisher in &publishers {
            let (publisher, stop, addr) = (Arc::clone(publisher), Arc::clone(&stop), broker.addr);
            threads.push(std::thread::spawn(move || publisher.run(addr, &stop)));
        }
        for subscriber in subscribers.iter().filter(|s| s.online) {
            let (subscriber, stop, addr) = (Arc::clone(subscriber), Arc::clone(&stop), broker.addr);
            threads.push(std::thread::spawn(move || subscriber.run(addr, &stop, None)));
        }
        let delay = Duration::from_millis(50 + rng.below(MAX_ROUND_MS - 50));
        std::thread::sleep(delay); // The moment of the crash, not a synchronisation.
        broker.kill();
        stop.store(true, Ordering::Release);
        for thread in threads {
            thread.join().or_fail("a client thread");
        }
        let acked: Vec<usize> =
            publishers.iter().map(|p| p.state.lock().or_fail("state").acked.len()).collect();
        println!("round {round}: killed after {delay:?}; acknowledged so far {acked:?}");
    }

    // The end: every subscriber drains its session.
    let broker = Broker::start(&dir, &[]);
    let stop = AtomicBool::new(false);
    let expected: HashMap<&str, BTreeSet<u64>> = publishers
        .iter()
        .filter(|p| p.topic.starts_with("crash/q/"))
        .map(|p| (p.topic, p.state.lock().or_fail("state").acked.clone()))
        .collect();
    // A QoS 2 publisher's exchanges still in flight are finished first.
    publishers[1].run(broker.addr, &AtomicBool::new(true));
    for subscriber in &subscribers {
        let has_all = |r: &Received| {
            expected.iter().all(|(topic, acked)| {
                let got: HashSet<u64> =
                    r.by_topic.get(*topic).map(|v| v.iter().copied().collect()).unwrap_or_default();
                acked.iter().all(|seq| got.contains(seq))
            })
        };
        let started = Instant::now();
        subscriber.run(broker.addr, &stop, Some(&has_all));
        println!("{} drained in {:?}", subscriber.id, started.elapsed());
    }
    let (mut retained, _) =
        Client::connect(broker.addr, "crash-retained-reader", ProtocolVersion::V311, true)
            .or_fail("a reader");
    let subscribe = Subscribe {
        packet_id: id(1),
        filters: vec![("crash/retained".into(), SubscriptionOptions { qos: qos(1), ..Default::default() })],
        properties: None,
    };
    retained.send(&Packet::Subscribe(subscribe)).or_fail("SUBSCRIBE");
    let deadline = Instant::now() + WAIT;
    let retained_seq = loop {
        match retained.recv().or_fail("the reader's connection") {
            Some(Packet::Publish(p)) => {
                break std::str::from_utf8(&p.payload).ok().and_then(|s| s.parse::<u64>().ok())
            }
            _ if Instant::now() > deadline => break None,
            _ => {}
        }
    };
    drop(broker);

    for publisher in &publishers {
        let state = publisher.state.lock().or_fail("state");
        assert!(!state.lost_session, "{}: its persistent session was lost", publisher.id);
        assert!(!state.acked.is_empty(), "{}: nothing was acknowledged in {rounds} rounds", publisher.id);
    }
    let last_retained = publishers[2].state.lock().or_fail("state").acked.iter().next_back().copied();
    let sent_retained = publishers[2].state.lock().or_fail("state").next;
    match (retained_seq, last_retained) {
        (Some(got), Some(acked)) => assert!(
            got >= acked && got < sent_retained,
            "the retained message is {got}; the last acknowledged was {acked}, {sent_retained} were sent"
        ),
        (got, acked) => panic!("retained message {got:?}, last acknowledged {acked:?}"),
    }
    for subscriber in &subscribers {
        let state = subscriber.state.lock().or_fail("state");
        assert!(!state.lost_session, "{}: its persistent session was lost", subscriber.id);
        for (topic, acked) in &expected {
            let got = state.by_topic.get(*topic).cloned().unwrap_or_default();
            let set: HashSet<u64> = got.iter().copied().collect();
            let missing: Vec<u64> = acked.iter().filter(|s| !set.contains(s)).copied().collect();
            assert!(
                missing.is_empty(),
                "{} lost {} of {} acknowledged messages of {topic}, first {:?}",
                subscriber.id,
                missing.len(),
                acked.len(),
                &missing[..missing.len().min(10)]
            );
            // Delivered at QoS 2 when both the message and the subscription are QoS 2.
            if subscriber.qos == 2 && topic.ends_with("/2") {
                assert_eq!(
                    set.len(),
                    got.len(),
                    "{} received a QoS 2 message of {topic} twice",
                    subscriber.id
                );
            }
            let first = first_arrivals(&got);
            let disorder = first.windows(2).find(|w| w[0] > w[1]);
            assert!(disorder.is_none(), "{}: {topic} out of order at {disorder:?}", subscriber.id);
        }
        println!(
            "{}: {:?}",
            subscriber.id,
            state.by_topic.iter().map(|(t, v)| (t.clone(), v.len())).collect::<Vec<_>>()
        );
    }
}

/// A fresh directory under the system's temporary directory, removed at the end of the process
/// only by the operating system's own cleaning: a failed run leaves its store for inspection.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("iothub-crash-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).or_fail("a temporary directory");
    dir
}

fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Runs a broker on `dir` long enough to retain `count` messages, then stops it with SIGTERM.
fn store_with_retained(dir: &Path, count: u16) {
    let broker = Broker::start(dir, &[]);
    let (mut client, _) =
        Client::connect(broker.addr, "filler", ProtocolVersion::V311, true).or_fail("a client");
    for n in 1..=count {
        let publish = Publish {
            dup: false,
            qos: qos(1),
            retain: true,
            topic: format!("kept/{n}").into(),
            packet_id: Some(id(n)),
            payload: Bytes::from_static(b"retained"),
            properties: None,
        };
        client.send(&Packet::Publish(publish)).or_fail("PUBLISH");
    }
    let mut acked = 0;
    let deadline = Instant::now() + WAIT;
    while acked < count && Instant::now() < deadline {
        if let Ok(Some(Packet::PubAck(_))) = client.recv() {
            acked += 1;
        }
    }
    assert_eq!(acked, count, "every retained message acknowledged");
}

/// Runs the broker on `dir` for three seconds under `timeout`; returns whether it listened, and
/// its log.
fn start_and_read(dir: &Path, extra: &[&str]) -> (bool, String) {
    let path = format!("storage.path={}", dir.display());
    let output = Command::new("timeout")
        .args([
            "-k",
            "2",
            "3",
            BINARY,
            "--listen",
            "tcp://127.0.0.1:0",
            "--set",
            "storage.backend=redb",
            "--set",
            &path,
        ])
        .args(["--log-level", "info"])
        .args(extra)
        .output()
        .or_fail("running iothub under timeout");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (text.contains("listening on"), text)
}

fn set_aside_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .or_fail("the store directory")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("iothub.redb.corrupt-"))
        .count()
}

/// A damaged store (truncated, overwritten with random bytes, emptied) never stops the broker
/// silently and never loses the evidence: it is renamed with a timestamp, the broker logs an
/// error naming it and starts with an empty store, which then works.
#[test]
fn a_corrupt_store_is_set_aside_loudly_and_the_broker_starts_empty() {
    for damage in ["truncated", "random bytes", "empty"] {
        let dir = tempdir();
        store_with_retained(&dir, 20);
        let file = dir.join("iothub.redb");
        let len = std::fs::metadata(&file).or_fail("the store file").len();
        match damage {
            "truncated" => std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|f| f.set_len(len / 2))
                .or_fail("truncating"),
            "random bytes" => {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
                let bytes: Vec<u8> = (0..len).map(|_| rng.below(256).to_le_bytes()[0]).collect();
                std::fs::write(&file, bytes).or_fail("overwriting");
            }
            _ => std::fs::write(&file, b"").or_fail("emptying"),
        }
        let (listened, log) = start_and_read(&dir, &[]);
        assert!(log.contains("THE DURABLE STORE IS CORRUPT"), "{damage}: no loud log line in {log}");
        assert!(listened, "{damage}: the broker did not start: {log}");
        assert!(set_aside_files(&dir) >= 1, "{damage}: the damaged file was not kept");
        let broker = Broker::start(&dir, &[]);
        let (mut client, _) =
            Client::connect(broker.addr, "after", ProtocolVersion::V311, true).or_fail("a client");
        let subscribe = Subscribe {
            packet_id: id(1),
            filters: vec![("kept/#".into(), SubscriptionOptions::default())],
            properties: None,
        };
        client.send(&Packet::Subscribe(subscribe)).or_fail("SUBSCRIBE");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut retained = 0;
        while Instant::now() < deadline {
            if let Ok(Some(Packet::Publish(_))) = client.recv() {
                retained += 1;
            }
        }
        assert_eq!(retained, 0, "{damage}: the new store starts empty");
    }
}

/// With `storage.on_corruption = "refuse"` a damaged store stops start-up with a message that
/// names the key, and a non-zero exit; the file is left as it was.
#[test]
fn a_corrupt_store_with_refuse_stops_start_up_with_a_message() {
    let dir = tempdir();
    store_with_retained(&dir, 5);
    let file = dir.join("iothub.redb");
    std::fs::write(&file, vec![0xA5; 64 * 1024]).or_fail("overwriting");
    let path = format!("storage.path={}", dir.display());
    let output = Command::new(BINARY)
        .args(["--listen", "tcp://127.0.0.1:0", "--set", "storage.backend=redb", "--set", &path])
        .args(["--set", "storage.on_corruption=refuse"])
        .output()
        .or_fail("running iothub");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "start-up must fail");
    assert!(stderr.contains("storage.path") && stderr.contains("corrupt"), "{stderr}");
    assert_eq!(std::fs::read(&file).or_fail("the file").len(), 64 * 1024, "the evidence is untouched");
    assert_eq!(set_aside_files(&dir), 0);
}

/// A 5.0 session's delayed will survives `kill -9`: the session was online when the broker died,
/// so its network connection ended then, and after the restart the will is published once its
/// delay has passed, to a persistent subscriber whose subscription was restored; a second restart
/// does not publish it again.
#[test]
fn a_delayed_will_is_published_after_a_crash_and_only_once() {
    let dir = tempdir();
    let broker = Broker::start(&dir, &[]);
    let (mut watcher, _) =
        Client::connect(broker.addr, "will-watcher", ProtocolVersion::V311, false).or_fail("watcher");
    let subscribe = Subscribe {
        packet_id: id(1),
        filters: vec![("wills/#".into(), SubscriptionOptions { qos: qos(1), ..Default::default() })],
        properties: None,
    };
    watcher.send(&Packet::Subscribe(subscribe)).or_fail("SUBSCRIBE");
    let deadline = Instant::now() + WAIT;
    while !matches!(watcher.recv(), Ok(Some(Packet::SubAck(_)))) {
        assert!(Instant::now() < deadline, "no SUBACK");
    }
    drop(watcher);
    let stream = TcpStream::connect_timeout(&broker.addr, WAIT).or_fail("connecting the testator");
    stream.set_read_timeout(Some(Duration::from_millis(200))).or_fail("a timeout");
    let mut testator = Client { stream, buf: BytesMut::new(), version: ProtocolVersion::V5 };
    let will = iothub_protocol::Will {
        topic: "wills/device".into(),
        payload: Bytes::from_static(b"gone"),
        qos: qos(1),
        retain: false,
        properties: Some(Box::new(iothub_protocol::WillProperties {
            will_delay_interval: Some(1),
            ..Default::default()
        })),
    };
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "testator".into(),
        will: Some(will),
        username: None,
        password: None,
        properties: Some(Box::new(ConnectProperties {
            session_expiry_interval: Some(600),
            ..Default::default()
        })),
    };
    testator.send(&Packet::Connect(Box::new(connect))).or_fail("CONNECT");
    let deadline = Instant::now() + WAIT;
    while !matches!(testator.recv(), Ok(Some(Packet::ConnAck(_)))) {
        assert!(Instant::now() < deadline, "no CONNACK");
    }
    // CONNACK came after the session's record, will included, was committed.
    broker.kill();
    drop(testator);

    let broker = Broker::start(&dir, &[]);
    let (mut watcher, present) =
        Client::connect(broker.addr, "will-watcher", ProtocolVersion::V311, false).or_fail("watcher");
    assert!(present, "the watcher's session survived");
    let deadline = Instant::now() + WAIT;
    let got = loop {
        match watcher.recv() {
            Ok(Some(Packet::Publish(p))) => {
                if let Some(packet_id) = p.packet_id {
                    watcher.send(&Packet::PubAck(PublishResponse::new(packet_id))).or_fail("PUBACK");
                }
                break Some(p);
            }
            _ if Instant::now() > deadline => break None,
            _ => {}
        }
    };
    let got = got.or_fail("the will after the restart");
    assert_eq!((&*got.topic, &got.payload[..]), ("wills/device", &b"gone"[..]));
    // Published, and gone from the testator's record: a restart does not publish it again. The
    // broker is stopped cleanly this time, so that the end of the watcher's delivery is committed
    // too and any PUBLISH after the restart would be a second publication.
    watcher.send(&Packet::PingReq).or_fail("PINGREQ");
    let deadline = Instant::now() + WAIT;
    while !matches!(watcher.recv(), Ok(Some(Packet::PingResp))) {
        assert!(Instant::now() < deadline, "no PINGRESP");
    }
    drop(watcher);
    broker.stop();
    let broker = Broker::start(&dir, &[]);
    let (mut watcher, _) =
        Client::connect(broker.addr, "will-watcher", ProtocolVersion::V311, false).or_fail("watcher");
    let quiet_until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < quiet_until {
        if let Ok(Some(Packet::Publish(p))) = watcher.recv() {
            panic!("the will was published again: {p:?}");
        }
    }
}

/// A store written by another layout version is refused with a message naming both versions,
/// whatever `on_corruption` says: it is not damage, and setting it aside would hide data a
/// migration could read.
#[test]
fn a_store_of_another_layout_is_refused_with_a_clear_message() {
    let dir = tempdir();
    store_with_retained(&dir, 1);
    {
        let db = redb::Database::create(dir.join("iothub.redb")).or_fail("opening the store");
        let txn = db.begin_write().or_fail("a write transaction");
        {
            let mut meta =
                txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).or_fail("the meta table");
            meta.insert("layout", 99).or_fail("writing the layout");
        }
        txn.commit().or_fail("committing");
    }
    let path = format!("storage.path={}", dir.display());
    let output = Command::new(BINARY)
        .args(["--listen", "tcp://127.0.0.1:0", "--set", "storage.backend=redb", "--set", &path])
        .output()
        .or_fail("running iothub");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "start-up must fail: {stderr}");
    assert!(stderr.contains("layout version 99") && stderr.contains("layout 1"), "{stderr}");
    assert_eq!(set_aside_files(&dir), 0, "nothing set aside");
}

/// The same promise with Mosquitto's own clients, 3.1.1 and 5.0: a persistent `mosquitto_sub`
/// session subscribes and leaves, `mosquitto_pub` publishes 200 QoS 1 messages and a retained
/// one (each acknowledged before the next), the broker is killed with SIGKILL and restarted, and
/// the resumed `mosquitto_sub` session gets all 200 without subscribing again, and a new
/// subscriber gets the retained message.
#[test]
fn mosquitto_clients_find_every_acknowledged_message_after_kill_9() {
    iothub_test_util::require_tool("mosquitto_sub");
    iothub_test_util::require_tool("mosquitto_pub");
    for version in ["mqttv311", "mqttv5"] {
        let dir = tempdir();
        let broker = Broker::start(&dir, &[]);
        let port = broker.addr.port().to_string();
        let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-V", version];
        let id = format!("kept-{version}");
        // -x: a 5.0 Session Expiry Interval; 3.1.1 keeps the session with -c alone.
        let mut session: Vec<&str> = vec!["-c", "-i", &id, "-q", "1"];
        if version == "mqttv5" {
            session.extend(["-x", "600"]);
        }
        let subscribed = iothub_test_util::run_tool(
            Command::new("mosquitto_sub")
                .args(base)
                .args(&session)
                .args(["-t", "kept/#", "-W", "1", "-C", "1"]),
        );
        drop(subscribed); // It times out after its SUBACK: the session stays, offline.
        let lines: String = (1..=200).map(|n| format!("m{n}\n")).collect();
        let mut publisher = Command::new("mosquitto_pub")
            .args(base)
            .args(["-q", "1", "-t", "kept/queue", "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .or_fail("starting mosquitto_pub");
        publisher.stdin.take().or_fail("its stdin").write_all(lines.as_bytes()).or_fail("writing messages");
        assert!(publisher.wait().or_fail("mosquitto_pub").success(), "{version}: every message acknowledged");
        let retained = iothub_test_util::run_tool(Command::new("mosquitto_pub").args(base).args([
            "-q",
            "1",
            "-r",
            "-t",
            "kept/last",
            "-m",
            "retained",
        ]));
        assert!(retained.status.success());
        broker.kill();
        let broker = Broker::start(&dir, &[]);
        let port = broker.addr.port().to_string();
        let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-V", version];
        // Resumed without a topic: no re-subscribe; -C stops at the 200th message.
        let mut resume: Vec<&str> = session.clone();
        resume.extend(["-C", "200", "-W", "10", "-t", "never/subscribed"]);
        let output = iothub_test_util::run_tool(Command::new("mosquitto_sub").args(base).args(&resume));
        let got: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with('m'))
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = (1..=200).map(|n| format!("m{n}")).collect();
        assert_eq!(got, expected, "{version}: the queued messages, in order");
        let output = iothub_test_util::run_tool(Command::new("mosquitto_sub").args(base).args([
            "-t",
            "kept/last",
            "-C",
            "1",
            "-W",
            "5",
        ]));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "retained", "{version}");
    }
}
