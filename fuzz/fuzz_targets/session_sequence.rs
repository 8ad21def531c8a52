//! Fuzz target: scripts of packets, deliveries, clock moves and reconnects through the broker's
//! sans-IO session.
//!
//! An input is a script. Its first two bytes pick the limits (subscriptions, queue bounds,
//! overflow policy) and the first connection; every byte after them is an operation, some with
//! argument bytes: a packet decoded from the script's own bytes, a packet built from a few bytes
//! (PUBLISH, an acknowledgement of a packet identifier the session sent, SUBSCRIBE, UNSUBSCRIBE,
//! PINGREQ), a delivery pushed into the mailbox as a publisher would, `poll_transmit` with a
//! window and a byte budget, the end of the connection, a new connection that takes the session
//! over, a move of the clock, a keep-alive check, and a turn that yields with actions still
//! queued, as the connection task does after `WORK_PER_TURN`. The script ends with its bytes or
//! at the first packet that does not decode; then every queued message is sent and acknowledged.
//!
//! Beside the session runs a model of what MQTT 3.1.1 asks of it, and every `Action` it emits is
//! checked against the model: one PUBACK per QoS 1 PUBLISH and one PUBREC per QoS 2 PUBLISH, with
//! its packet identifier [MQTT-4.3.2-2], [MQTT-4.3.3-2]; a QoS 2 identifier awaiting PUBREL is not
//! routed again; one SUBACK code per filter [MQTT-3.8.4-6]; subscriptions in the router are the
//! session's own. Every packet written decodes and re-encodes to the same bytes; a PUBLISH sent
//! for the first time has DUP=0 and a free packet identifier [MQTT-2.3.1-2], the inflight window
//! is never overfilled, messages leave in the order they were queued; a re-sent one has DUP=1 and
//! the identifier it is in flight under [MQTT-4.4.0-1]; no accepted QoS 1/2 message is lost but
//! by a counted drop; the keep-alive deadline is one and a half keep-alives after the last packet
//! [MQTT-3.1.2-24]; the will is due exactly when the connection ends without DISCONNECT.
//!
//! The clock is a `tokio::time::Instant` moved by hand: nothing sleeps and no runtime runs.

#![no_main]

#[path = "session_sequence/inbound.rs"]
mod inbound;
#[path = "session_sequence/model.rs"]
mod model;
#[path = "session_sequence/outbound.rs"]
mod outbound;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use iothub::internals::{
    is_reserved_for_broker, write, Delivery, Exit, Link, Mailbox, QueueLimits, QueueOverflow, Session,
    SessionLimits, Will,
};
use iothub_protocol::{decode, Packet, PacketId, ProtocolVersion, PublishResponse, QoS};
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

use model::{Expected, Model};

/// Largest packet the script may hold, as `server.max_packet_size`.
const MAX_PACKET_SIZE: usize = 2048;

/// Topic names of built PUBLISH packets and of deliveries; 13 and 14 are just over and at the
/// hierarchy limit.
const TOPICS: [&str; 16] =
    ["a", "a/b", "a/b/c", "b", "t/1", "t/2", "$SYS/x", "$SYS", "x/y/z", "/", "a/", "c", "d", "", "", "$SYS/"];
/// Topic filters of built SUBSCRIBE and UNSUBSCRIBE packets; 10 and 11 as in `TOPICS`.
const FILTERS: [&str; 16] =
    ["a", "a/b", "a/+", "#", "+", "a/#", "$SYS/#", "t/1", "+/+", "b", "", "", "a/b/c", "t/#", "x", "y"];
/// Keep-alives a connection may ask for, in seconds.
const KEEP_ALIVES: [u16; 4] = [0, 1, 10, 60];
/// Inflight windows of `poll_transmit`.
const WINDOWS: [usize; 8] = [0, 1, 2, 3, 5, 8, 20, 65_535];
/// Byte budgets of `poll_transmit`.
const BUDGETS: [usize; 8] = [0, 1, 12, 30, 64, 256, 4096, usize::MAX];
/// Most deliveries one script pushes, so that a script of bursts stays fast to run.
const MAX_DELIVERIES: u32 = 256;
/// Whether a connection that ends loses the actions a yielded turn left queued, as the
/// connection task does today: `Session::attach` clears them, though the session has already
/// changed its subscriptions for them, so a SUBSCRIBE or UNSUBSCRIBE cut off there leaves the
/// router and the session disagreeing (docs/fuzzing.md, "Findings"). False takes them first, as
/// a connection that finished its turn would, so that the fuzzer looks past that bug; true
/// reproduces it.
const LOSE_QUEUED_ACTIONS_AT_END: bool = false;
/// Whether `queue_overflow = "drop_oldest"` is among the mailbox policies. Its eviction can
/// remove a QoS 0 delivery that an arriving QoS 1/2 one had already doomed, and the mailbox's
/// count of doomed deliveries then exceeds its queue (docs/fuzzing.md, "Findings"); false leaves
/// the policy out so that the fuzzer looks past that bug, true reproduces it.
const DROP_OLDEST: bool = false;

fuzz_target!(|data: &[u8]| {
    let mut script = Script { data: BytesMut::from(data) };
    let (Some(limits), Some(first)) = (script.byte(), script.byte()) else { return };
    let mut harness = Harness::new(limits, first);
    while let Some(op) = script.byte() {
        if !harness.step(op, &mut script) {
            break;
        }
        harness.check();
    }
    harness.finish();
});

/// The rest of the input: operation bytes, argument bytes and raw packets.
struct Script {
    /// Bytes not yet read.
    data: BytesMut,
}

impl Script {
    /// The next byte, if any.
    fn byte(&mut self) -> Option<u8> {
        self.data.has_remaining().then(|| self.data.get_u8())
    }

    /// An argument byte; 0 once the script has run out.
    fn arg(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// A packet decoded from the front of the script.
    fn packet(&mut self) -> Option<Packet> {
        decode(&mut self.data, ProtocolVersion::V311, MAX_PACKET_SIZE).ok().flatten()
    }
}

/// A topic name or filter from a table, the two deep ones built: 201 and 200 separators.
fn level(table: &[&str; 16], index: u8, deep: u8) -> String {
    match usize::from(index & 15) {
        i if i == usize::from(deep) => "a/".repeat(201) + "a",
        i if i == usize::from(deep) + 1 => "a/".repeat(200) + "a",
        i => table[i].to_owned(),
    }
}

/// A QoS from any byte.
fn qos(bits: u8) -> QoS {
    QoS::from_bits(bits % 3).unwrap_or(QoS::AtMostOnce)
}

/// A packet identifier; 0, which is not one, becomes 1.
fn id(n: u16) -> PacketId {
    PacketId::new(n.max(1)).unwrap_or_else(|| unreachable!())
}

/// Encodes `packet` and decodes it again, as a client's packet reaches the session; `None` if the
/// decoder refuses it (a topic the table makes invalid, say).
fn through_the_wire(packet: &Packet) -> Option<Packet> {
    let mut buf = BytesMut::new();
    packet.encode(ProtocolVersion::V311, &mut buf).ok()?;
    decode(&mut buf, ProtocolVersion::V311, MAX_PACKET_SIZE).ok().flatten()
}

/// Decodes everything the session wrote, with each packet's size; anything else is a bug.
fn decode_all(mut out: BytesMut) -> Vec<(Packet, usize)> {
    let mut packets = Vec::new();
    while !out.is_empty() {
        let before = out.len();
        match decode(&mut out, ProtocolVersion::V311, usize::MAX) {
            Ok(Some(packet)) => packets.push((packet, before - out.len())),
            other => panic!("the session wrote bytes that do not decode: {other:?}"),
        }
    }
    packets
}

/// Writes `packet` as the connection does and checks that its bytes decode to a packet that
/// writes the same bytes.
fn round_trip(packet: &Packet) {
    let mut bytes = BytesMut::new();
    if let Err(error) = write(&mut bytes, packet) {
        panic!("{packet:?} from the session does not encode: {error}");
    }
    assert_eq!(bytes.len(), packet.encoded_size(), "encoded_size of {packet:?}");
    let decoded = decode_all(bytes.clone());
    let [(again, _)] = decoded.as_slice() else { panic!("{packet:?} wrote {decoded:?}") };
    let mut twice = BytesMut::new();
    assert!(write(&mut twice, again).is_ok() && twice == bytes, "{packet:?} changed on the wire");
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP, by the low two bits of `kind`.
fn response(kind: u8, packet_id: PacketId) -> Packet {
    let response = PublishResponse::new(packet_id);
    match kind & 3 {
        0 => Packet::PubAck(response),
        1 => Packet::PubRec(response),
        2 => Packet::PubRel(response),
        _ => Packet::PubComp(response),
    }
}

/// The session, its model, and the connection around them.
struct Harness {
    /// Limits of every session.
    limits: SessionLimits,
    /// Bounds of every mailbox.
    queue: QueueLimits,
    /// The clock.
    now: Instant,
    /// The session, while there is one.
    session: Option<Session>,
    /// What the session must hold.
    model: Model,
    /// True while a connection owns the session.
    connected: bool,
    /// Actions still to come from the last packet, in order.
    pending: VecDeque<Expected>,
    /// How many actions the next packet's turn takes before it yields.
    yield_after: Option<usize>,
    /// Serial of the next delivery, which is its payload.
    next_serial: u32,
    /// Scratch of `poll_transmit`.
    scratch: Vec<Delivery>,
}

impl Harness {
    // The fake clock starts from a real instant; after that it only moves by hand.
    #[allow(clippy::disallowed_methods)]
    fn new(limits: u8, first: u8) -> Harness {
        let max_subscriptions = [0, 1, 2, 4][usize::from(limits & 3)];
        let overflow = match limits >> 6 {
            1 if DROP_OLDEST => QueueOverflow::DropOldest,
            1 | 2 => QueueOverflow::DropNewest,
            _ => QueueOverflow::Disconnect,
        };
        let queue = QueueLimits {
            max_messages: [1, 2, 4, 100][usize::from((limits >> 2) & 3)],
            max_bytes: [0, 0, 48, 256][usize::from((limits >> 4) & 3)],
            max_retained: [0, 1, 2, 8][usize::from(first >> 6)],
            overflow,
        };
        let mut harness = Harness {
            limits: SessionLimits {
                max_subscriptions,
                session_timeout: None,
                retain_available: true,
                shared_available: true,
            },
            queue,
            now: Instant::now(),
            session: None,
            model: Model::default(),
            connected: false,
            pending: VecDeque::new(),
            yield_after: None,
            next_serial: 0,
            scratch: Vec::new(),
        };
        harness.connect(first);
        harness
    }

    /// The session, which the caller knows to be there.
    fn session(&mut self) -> &mut Session {
        self.session.as_mut().unwrap_or_else(|| unreachable!("no session"))
    }

    /// Runs operation `op % 16`, reading its argument bytes; false ends the script.
    ///
    /// | op | argument bytes | operation |
    /// |---|---|---|
    /// | 0 | a packet | the packet from the client; one that does not decode ends the script |
    /// | 1 | flags, id | PUBLISH: QoS, DUP, RETAIN and topic from flags, identifier 1 to 8 |
    /// | 2 | kind, index | PUBACK, PUBREC, PUBREL or PUBCOMP for an identifier in flight |
    /// | 3, 4 | id, count, filters | SUBSCRIBE or UNSUBSCRIBE of 1 to 4 filters |
    /// | 5 | | PINGREQ |
    /// | 6 | two bytes | the clock moves on, 8 ms a unit |
    /// | 7 | flags | a publisher pushes a delivery: QoS, RETAIN, topic, size |
    /// | 8 | sizes | `poll_transmit` with a window and a byte budget from the tables |
    /// | 9 | cause | the connection ends: closed, taken over, shut down, reset |
    /// | 10 | flags | a new connection: clean start, keep-alive, will |
    /// | 11 | how | `handle_timeout` now, just before the deadline, or at it |
    /// | 12 | | `record_activity` |
    /// | 13 | count | the next packet's turn yields after that many actions |
    /// | 14 | | `Mailbox::overflow`, as a publisher that waited too long |
    /// | 15 | flags | a burst of up to 15 pushes |
    fn step(&mut self, op: u8, script: &mut Script) -> bool {
        match op % 16 {
            0 => match script.packet() {
                Some(packet) => self.inbound(packet),
                None => return false,
            },
            1 => self.publish(script),
            2 => self.acknowledge(script),
            3 => self.subscribe(script),
            4 => self.unsubscribe(script),
            5 => self.built(&Packet::PingReq),
            6 => {
                let millis = u64::from(u16::from_be_bytes([script.arg(), script.arg()])) * 8;
                self.now += Duration::from_millis(millis);
            }
            7 => {
                let flags = script.arg();
                self.push(qos(flags), flags & 4 != 0, level(&TOPICS, flags >> 3, 13), flags >> 7);
            }
            8 => {
                let sizes = script.arg();
                self.transmit(WINDOWS[usize::from(sizes & 7)], BUDGETS[usize::from((sizes >> 3) & 7)]);
            }
            9 => {
                let exit = match script.arg() % 4 {
                    0 => Exit::PeerClosed,
                    1 => Exit::TakenOver,
                    2 => Exit::Shutdown,
                    _ => Exit::Io(std::io::ErrorKind::ConnectionReset.into()),
                };
                if self.connected {
                    self.end(&exit);
                }
            }
            10 => {
                let flags = script.arg();
                self.connect(flags);
            }
            11 => {
                let how = script.arg();
                self.timeout(how);
            }
            12 => {
                self.ensure_connected();
                let now = self.now;
                self.session().record_activity(now);
                self.model.record_activity(now);
            }
            13 => self.yield_after = Some(usize::from(script.arg() % 8)),
            14 => {
                if let Some(session) = &self.session {
                    session.mailbox().overflow();
                }
            }
            _ => {
                let flags = script.arg();
                for _ in 0..(flags & 15) {
                    self.push(qos(flags >> 4), false, "t/1".to_owned(), 0);
                }
            }
        }
        true
    }

    /// Checks what must hold between any two operations.
    fn check(&self) {
        let Some(session) = &self.session else { return };
        assert_eq!(session.inflight_len(), self.model.outbound.len(), "inflight window");
        if !session.has_actions() {
            // A SUBSCRIBE is handed out in chunks as its actions are taken; once they all are,
            // the session holds what the model says.
            assert_eq!(session.subscription_count(), self.model.subscriptions.len(), "subscriptions");
        }
        if self.connected {
            assert_eq!(session.poll_timeout(), self.model.deadline(), "[MQTT-3.1.2-24] keep-alive deadline");
            assert_eq!(session.has_actions(), !self.pending.is_empty(), "actions left: {:?}", self.pending);
        }
    }

    /// Starts a connection: the previous one, if any, is taken over; a clean start or a clean
    /// session discards the stored session [MQTT-3.1.2-4], [MQTT-3.1.2-6]; the connection
    /// re-sends what is in flight [MQTT-4.4.0-1].
    fn connect(&mut self, flags: u8) {
        if self.connected {
            self.end(&Exit::TakenOver);
        }
        let clean_start = flags & 1 != 0;
        if self.session.as_ref().is_some_and(|s| clean_start || s.clean) {
            self.discard();
        }
        match &self.session {
            Some(session) => session.mailbox().set_online(true),
            None => {
                let mailbox = Arc::new(Mailbox::new(1, self.queue));
                self.session = Some(Session::new("fuzz".into(), clean_start, mailbox, self.limits));
                self.model = Model { clean: clean_start, ..Model::default() };
            }
        }
        let will_topic = ["", "will/t", "$SYS/will", "w"][usize::from((flags >> 3) & 3)];
        let will = (!will_topic.is_empty()).then(|| iothub_protocol::Will {
            topic: will_topic.into(),
            payload: Bytes::from_static(b"gone"),
            qos: qos(flags >> 5),
            retain: flags & 0x80 != 0,
            properties: None,
        });
        let keep_alive = KEEP_ALIVES[usize::from((flags >> 1) & 3)];
        let now = self.now;
        let link = Link::v3(ProtocolVersion::V311, 65_535);
        self.session().attach(keep_alive, will.as_ref().and_then(Will::from_connect), link, now);
        self.connected = true;
        self.model.keep_alive = keep_alive;
        self.model.last_activity = Some(now);
        self.model.will = will
            .filter(|w| !is_reserved_for_broker(&w.topic))
            .map(|w| (w.topic.to_string(), w.payload.clone()));
        assert!(!self.session().has_actions(), "attach leaves no actions of the last connection");
        assert_eq!(
            self.model.router, self.model.subscriptions,
            "a resumed session holds other subscriptions than the router has for it"
        );
        self.check_resend();
    }

    /// Connects (persistent, no keep-alive, no will) if no connection owns the session.
    fn ensure_connected(&mut self) {
        if !self.connected {
            self.connect(0);
        }
    }

    /// Ends the connection: actions the session still holds are taken first or lost, as
    /// `LOSE_QUEUED_ACTIONS_AT_END` says; the will is due unless the client sent DISCONNECT
    /// [MQTT-3.1.2-8], [MQTT-3.1.2-10] or the server shut down; a clean session is discarded
    /// [MQTT-3.1.2-6], a persistent one kept with its mailbox offline.
    fn end(&mut self, exit: &Exit) {
        if !LOSE_QUEUED_ACTIONS_AT_END {
            self.take_actions(usize::MAX);
        }
        self.connected = false;
        self.pending.clear();
        self.yield_after = None;
        let now = self.now;
        let will = self.session().take_will(exit, now);
        let due = !matches!(exit, Exit::Disconnect | Exit::Shutdown | Exit::Refused(_));
        let expected = self.model.will.take().filter(|_| due);
        let got = will.map(|m| (m.topic.to_string(), m.payload.clone()));
        assert_eq!(got, expected, "will after {exit:?}");
        if self.session().expiry().keeps() {
            assert!(!self.model.clean, "a clean session is not kept [MQTT-3.1.2-6]");
            self.session().mailbox().set_online(false);
        } else {
            assert!(self.model.clean, "a persistent session is kept");
            self.discard();
        }
    }

    /// Discards the session: the filters it gives back, which the broker removes from the router,
    /// must include every one the router holds for it, or the router keeps entries for a session
    /// that is gone. (A filter the router never had costs nothing to remove.)
    fn discard(&mut self) {
        let filters: BTreeSet<String> =
            self.session().take_subscriptions().iter().map(|f| f.to_string()).collect();
        let left: Vec<&String> = self.model.router.keys().filter(|f| !filters.contains(*f)).collect();
        assert!(left.is_empty(), "the router keeps {left:?} for a discarded session");
        assert_eq!(self.session().mailbox().subscription_count(), 0);
        self.session = None;
        self.model = Model::default();
        self.pending.clear();
    }

    /// A keep-alive check at the deadline, just before it, or now.
    fn timeout(&mut self, how: u8) {
        self.ensure_connected();
        let deadline = self.model.deadline();
        if let Some(deadline) = deadline {
            match how % 3 {
                1 if deadline > self.now + Duration::from_millis(1) => {
                    self.now = deadline - Duration::from_millis(1)
                }
                2 if deadline > self.now => self.now = deadline,
                _ => {}
            }
        }
        let now = self.now;
        let expired = deadline.is_some_and(|deadline| now >= deadline);
        match self.session().handle_timeout(now) {
            Ok(()) if !expired => {}
            Err(Exit::KeepAliveTimeout) if expired => self.end(&Exit::KeepAliveTimeout),
            other => panic!(
                "handle_timeout {:?} after the last activity, keep-alive {} s: {other:?}",
                now - self.model.last_activity.unwrap_or(now),
                self.model.keep_alive
            ),
        }
    }
}
