//! Fuzz target: scripts of MQTT 5.0 packets, deliveries, clock moves and reconnects through the
//! broker's sans-IO session.
//!
//! An input is a script. Its first four bytes pick the session's limits (Retain Available and
//! Shared Subscription Available among them) and the first connection's `Link` (window, Maximum
//! Packet Size, Topic Alias Maximum both ways, Receive Maximum, Request Problem Information),
//! its keep-alive, Session Expiry Interval and will; every byte after them is an operation, some
//! with argument bytes: a 5.0 packet decoded from the script's own bytes, or one built from a
//! few bytes (PUBLISH with Topic Aliases set, used and out of range, an empty topic, a Payload
//! Format Indicator over valid and invalid UTF-8, a Message Expiry Interval, User Properties and
//! a Subscription Identifier, which a client may not send; SUBSCRIBE with No Local, Retain As
//! Published, Retain Handling, a Subscription Identifier and `$share/` filters good and
//! malformed; UNSUBSCRIBE; PUBACK, PUBREC, PUBREL and PUBCOMP with reason codes; DISCONNECT with
//! a Session Expiry Interval and reasons 0x00, 0x04 and errors; AUTH; PINGREQ), a delivery pushed into the mailbox
//! as a publisher would (live or retained, with properties, some expiring, and Subscription
//! Identifiers), `poll_transmit`, a move of the virtual clock, a keep-alive check, the end of
//! the connection and a new one with another `Link`, which `resend_inflight` follows. Every
//! built packet goes through the 5.0 encoder and decoder first, so the session sees only what a
//! decoder hands it. At the end every queued message is sent and acknowledged.
//!
//! Beside the session runs a model of what MQTT 5.0 asks of it; each `Action` is checked against
//! it. What must hold:
//!
//! - nothing panics, and every error is an `Exit` (a violation names a rule the packet breaks:
//!   RETAIN where Retain Available is 0, a shared filter where Shared Subscription Available is
//!   0, among the others);
//! - every byte written (by `poll_transmit`, `resend_inflight`, and the packets of `Send`
//!   actions and acknowledgements, written as the connection does with `Link::write`) decodes
//!   with the 5.0 decoder into whole packets;
//! - no PUBLISH written is larger than the client's Maximum Packet Size [MQTT-3.1.2-24] and none
//!   carries a Topic Alias above the client's Topic Alias Maximum [MQTT-3.3.2-11]; a PUBLISH with
//!   an empty topic uses an alias this connection set before, which stands for the delivery's
//!   topic; a re-sent PUBLISH has its whole topic and no alias [MQTT-3.3.2-7];
//! - a new connection is owed every message in flight, in send order [MQTT-4.4.0-1], but a
//!   PUBLISH larger than its Maximum Packet Size, which is discarded and counted as too large
//!   [MQTT-3.1.2-25]; `resend_inflight` re-sends as many as its window holds, `poll_transmit`
//!   the rest as acknowledgements free the window, before any new message [MQTT-3.3.4-9];
//! - QoS 1/2 PUBLISHes unacknowledged on the connection never exceed the window
//!   (`Link::max_inflight`), and each new one has DUP=0 and a free packet identifier;
//! - no message whose expiry has passed (`expires_at <= now`) is written by `poll_transmit`
//!   [MQTT-3.3.2-5], and the Message Expiry Interval sent is what is left, rounded up
//!   [MQTT-3.3.2-6]; the other properties reach the subscriber unaltered [MQTT-3.3.2-17],
//!   [MQTT-3.3.2-18], with the delivery's own Subscription Identifiers [MQTT-3.3.4-3];
//! - messages leave in the order they were queued, and a message missing from that order was
//!   expired, too large for some connection it waited through, or counted as dropped;
//! - every PUBACK and PUBREC the session produces has a reason code valid for it (3.4.2.1,
//!   3.5.2.1); SUBACK and UNSUBACK have one valid code per filter; PUBREL and PUBCOMP carry 0x92
//!   for an identifier not in use (3.6.2.1, 3.7.2.1); a PUBREC of 0x80 or more ends the exchange
//!   with no PUBREL [MQTT-4.3.3-4]; acknowledgements are compared without their Reason String
//!   and User Properties, which are never sent to a client that asked for no problem
//!   information [MQTT-3.1.2-29], and left out only as far as the Maximum Packet Size needs
//!   [MQTT-3.1.2-25];
//! - the will is due after a DISCONNECT with any reason code but 0x00 (0x04 or an error) and any
//!   end but DISCONNECT, now or after its delay.
//!
//! The clock is a `tokio::time::Instant` moved by hand: nothing sleeps and no runtime runs.

#![no_main]

#[path = "session_v5/inbound.rs"]
mod inbound;
#[path = "session_v5/model.rs"]
mod model;
#[path = "session_v5/outbound.rs"]
mod outbound;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use iothub::internals::{
    Delivery, Exit, Link, Mailbox, QueueLimits, QueueOverflow, Session, SessionLimits, Will,
};
use iothub_protocol::{decode, Packet, PacketId, PayloadFormat, ProtocolVersion, QoS, WillProperties};
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

use model::Model;

/// Largest packet a script may hold, as `server.max_packet_size`.
const MAX_PACKET_SIZE: usize = 4096;
/// Windows (`max_inflight_messages`, or the client's Receive Maximum if lower).
const WINDOWS: [usize; 8] = [1, 1, 2, 3, 5, 20, 64, 65_535];
/// The client's Maximum Packet Size; `usize::MAX` when it sent none. The smallest cannot hold an
/// acknowledgement; the middle ones cut some deliveries off.
const PACKET_SIZES: [usize; 16] =
    [2, 4, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 4096, 65_536, u32::MAX as usize, usize::MAX];
/// The client's Topic Alias Maximum; the session keeps at most 64 aliases, whatever it says.
const CLIENT_ALIAS_MAX: [u16; 8] = [0, 0, 1, 2, 3, 8, 64, 65_535];
/// The server's Topic Alias Maximum (`max_topic_alias`).
const SERVER_ALIAS_MAX: [u16; 4] = [0, 1, 4, 10];
/// The server's Receive Maximum (`receive_maximum`).
const RECEIVE_MAXIMUM: [usize; 4] = [1, 2, 3, 65_535];
/// Session Expiry Intervals, in seconds.
const EXPIRY_INTERVALS: [u32; 4] = [0, 10, 3_600, u32::MAX];
/// Keep-alives, in seconds.
const KEEP_ALIVES: [u16; 4] = [0, 1, 10, 60];
/// Message Expiry Intervals of wills and deliveries, in seconds; `None` for none.
const MESSAGE_EXPIRY: [Option<u32>; 8] =
    [None, Some(0), Some(1), Some(2), Some(10), Some(60), Some(3_600), Some(u32::MAX)];
/// Will Delay Intervals, in seconds.
const WILL_DELAYS: [u32; 4] = [0, 1, 30, u32::MAX];
/// Byte budgets of `poll_transmit`.
const BUDGETS: [usize; 8] = [0, 1, 30, 64, 256, 4096, 65_536, usize::MAX];
/// Most deliveries one script pushes, so that scripts of bursts stay fast.
const MAX_DELIVERIES: u32 = 256;
/// Distinct topics the bursts and table entry 15 cycle through: more than the 64 aliases the
/// session keeps, so that aliases are taken back and reused.
const CYCLE: u32 = 80;

/// Topic names of built PUBLISH packets and of deliveries. 12 is one separator over the
/// hierarchy limit, 13 long enough to outgrow the smaller Maximum Packet Sizes, 14 a topic of
/// the cycle, 15 empty (an alias-only PUBLISH for a client; never a delivery).
const TOPICS: [&str; 16] =
    ["a", "a/b", "a/b/c", "b", "t/1", "t/2", "$SYS/x", "x/y/z", "/", "a/", "c", "d/e", "", "", "", ""];
/// Topic filters of built SUBSCRIBE and UNSUBSCRIBE packets, shared ones good and malformed
/// [MQTT-4.8.2-1], [MQTT-4.8.2-2]; 15 is one separator over the hierarchy limit.
const FILTERS: [&str; 16] = [
    "a",
    "a/b",
    "a/+",
    "#",
    "+/+",
    "t/#",
    "$share/g/a",
    "$share/g/#",
    "$share/h/t/+",
    "$share//a",
    "$share/g+/a",
    "$share/g",
    "$share/g/",
    "$SYS/#",
    "x",
    "",
];

fuzz_target!(|data: &[u8]| {
    let mut script = Script { data: BytesMut::from(data) };
    let header = [script.arg(), script.arg(), script.arg(), script.arg()];
    if script.data.is_empty() {
        return;
    }
    let mut harness = Harness::new(header);
    while let Some(op) = script.byte() {
        if !harness.step(op, &mut script) {
            break;
        }
        harness.check();
    }
    harness.finish();
});

/// The rest of the input: operation bytes, argument bytes and raw packets.
pub(crate) struct Script {
    /// Bytes not yet read.
    data: BytesMut,
}

impl Script {
    /// The next byte, if any.
    fn byte(&mut self) -> Option<u8> {
        self.data.has_remaining().then(|| self.data.get_u8())
    }

    /// An argument byte; 0 once the script has run out.
    pub(crate) fn arg(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    /// A 5.0 packet decoded from the front of the script.
    fn packet(&mut self) -> Option<Packet> {
        decode(&mut self.data, ProtocolVersion::V5, MAX_PACKET_SIZE).ok().flatten()
    }
}

/// A topic name from `TOPICS`, with the built ones: 201 separators, a long topic, a topic of the
/// cycle by `serial`.
pub(crate) fn topic(index: u8, serial: u32) -> String {
    match usize::from(index & 15) {
        12 => "a/".repeat(201) + "a",
        13 => format!("long/{}", "x".repeat(300)),
        14 => format!("t/{}", serial % CYCLE),
        i => TOPICS[i].to_owned(),
    }
}

/// A topic filter from `FILTERS`; 15 is one separator over the hierarchy limit.
pub(crate) fn filter(index: u8) -> String {
    match usize::from(index & 15) {
        15 => "a/".repeat(201) + "a",
        i => FILTERS[i].to_owned(),
    }
}

/// A QoS from any byte.
pub(crate) fn qos(bits: u8) -> QoS {
    QoS::from_bits(bits % 3).unwrap_or(QoS::AtMostOnce)
}

/// A packet identifier; 0, which is not one, becomes 1.
pub(crate) fn id(n: u16) -> PacketId {
    PacketId::new(n.max(1)).unwrap_or_else(|| unreachable!())
}

/// Encodes `packet` in 5.0 and decodes it again, as a client's packet reaches the session; `None`
/// if either side refuses it (a reason code not allowed for its packet, say).
pub(crate) fn through_the_wire(packet: &Packet) -> Option<Packet> {
    let mut buf = BytesMut::new();
    packet.encode(ProtocolVersion::V5, &mut buf).ok()?;
    let decoded = decode(&mut buf, ProtocolVersion::V5, MAX_PACKET_SIZE).ok().flatten();
    assert!(decoded.is_none() || buf.is_empty(), "{packet:?} encodes to more than one packet");
    decoded
}

/// `packet` without Reason String and User Properties, the diagnostics of acknowledgements
/// (3.4.2.2.2, 3.9.2.1.2, 3.11.2.1.2): the model does not predict them, and `Link::write` leaves
/// them out for a client that asked for no problem information or whose Maximum Packet Size they
/// do not fit.
pub(crate) fn without_diagnostics(packet: &Packet) -> Packet {
    let mut packet = packet.clone();
    match &mut packet {
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => r.properties = None,
        Packet::SubAck(s) => s.properties = None,
        Packet::UnsubAck(u) => u.properties = None,
        _ => {}
    }
    packet
}

/// Decodes everything the session wrote, with each packet's size; anything else is a bug.
pub(crate) fn decode_all(mut out: BytesMut) -> Vec<(Packet, usize)> {
    let mut packets = Vec::new();
    while !out.is_empty() {
        let before = out.len();
        match decode(&mut out, ProtocolVersion::V5, usize::MAX) {
            Ok(Some(packet)) => packets.push((packet, before - out.len())),
            other => panic!("the session wrote bytes that do not decode as 5.0: {other:?}"),
        }
    }
    packets
}

/// The `Link` of a connection, from two bytes.
fn link(a: u8, b: u8) -> Link {
    Link {
        version: ProtocolVersion::V5,
        max_inflight: WINDOWS[usize::from(a & 7)],
        max_packet_size: PACKET_SIZES[usize::from((a >> 3) & 15)],
        client_alias_max: CLIENT_ALIAS_MAX[usize::from(b & 7)],
        server_alias_max: SERVER_ALIAS_MAX[usize::from((b >> 3) & 3)],
        receive_maximum: RECEIVE_MAXIMUM[usize::from((b >> 5) & 3)],
        problem_information: a & 0x80 == 0,
    }
}

/// A link that takes everything, for the final drain.
fn open_link() -> Link {
    Link {
        version: ProtocolVersion::V5,
        max_inflight: 65_535,
        max_packet_size: usize::MAX,
        client_alias_max: 8,
        server_alias_max: 10,
        receive_maximum: 65_535,
        problem_information: true,
    }
}

/// The will of a CONNECT, from a byte; `None` when the byte asks for none.
fn will(flags: u8) -> Option<iothub_protocol::Will> {
    let topic = ["", "will/t", "$SYS/will", "w"][usize::from(flags & 3)];
    (!topic.is_empty()).then(|| iothub_protocol::Will {
        topic: topic.into(),
        payload: Bytes::from_static(b"gone"),
        qos: qos(flags >> 2),
        retain: flags & 0x10 != 0,
        properties: Some(Box::new(WillProperties {
            will_delay_interval: Some(WILL_DELAYS[usize::from((flags >> 5) & 3)]),
            message_expiry_interval: MESSAGE_EXPIRY[usize::from(flags >> 5)],
            payload_format_indicator: (flags & 0x80 != 0).then_some(PayloadFormat::Utf8),
            ..WillProperties::default()
        })),
    })
}

/// The session, its model, and the connection around them.
pub(crate) struct Harness {
    /// Limits of every session.
    pub(crate) limits: SessionLimits,
    /// Bounds of every mailbox.
    queue: QueueLimits,
    /// The clock.
    pub(crate) now: Instant,
    /// The session.
    session: Session,
    /// What the session must hold.
    pub(crate) model: Model,
    /// The link of the current (or last) connection.
    pub(crate) link: Link,
    /// True while a connection owns the session.
    connected: bool,
    /// The Session Expiry Interval the connections ask for.
    expiry_interval: u32,
    /// The will byte and keep-alive of the connections.
    will_flags: u8,
    /// Keep-alive of the connections, in seconds.
    keep_alive: u16,
    /// Serial of the next delivery, which its payload starts with.
    pub(crate) next_serial: u32,
    /// Scratch of `poll_transmit`.
    pub(crate) scratch: Vec<Delivery>,
    /// Subscription Identifiers of the subscriptions made, for deliveries to carry.
    pub(crate) subscription_ids: VecDeque<std::num::NonZeroU32>,
}

impl Harness {
    // The fake clock starts from a real instant; after that it only moves by hand.
    #[allow(clippy::disallowed_methods)]
    fn new(header: [u8; 4]) -> Harness {
        let [a, b, c, d] = header;
        let max_subscriptions = [0, 1, 3, 0][usize::from(c & 3)];
        let queue = QueueLimits {
            max_messages: [2, 8, 100, 1_000][usize::from((c >> 2) & 3)],
            max_bytes: [0, 256, 4_096, 0][usize::from((c >> 4) & 3)],
            max_retained: [0, 2, 8, 100][usize::from((d >> 4) & 3)],
            // `drop_oldest` has a known miscount (docs/fuzzing.md); no publisher here waits, so
            // the policy only decides what an offline session drops.
            overflow: if c & 0x40 != 0 { QueueOverflow::DropNewest } else { QueueOverflow::Disconnect },
        };
        let limits = SessionLimits {
            max_subscriptions,
            session_timeout: None,
            retain_available: d & 0x40 == 0,
            shared_available: d & 0x80 == 0,
        };
        let now = Instant::now();
        let mailbox = Arc::new(Mailbox::new(1, queue));
        let mut harness = Harness {
            limits,
            queue,
            now,
            session: Session::new("fuzz".into(), true, mailbox, limits),
            model: Model::default(),
            link: link(a, b),
            connected: false,
            expiry_interval: EXPIRY_INTERVALS[usize::from(d & 3)],
            will_flags: if c & 0x80 != 0 { b ^ d } else { 0 },
            keep_alive: KEEP_ALIVES[usize::from((d >> 2) & 3)],
            next_serial: 0,
            scratch: Vec::new(),
            subscription_ids: VecDeque::new(),
        };
        harness.connect(link(a, b));
        harness
    }

    /// The session.
    pub(crate) fn session(&mut self) -> &mut Session {
        &mut self.session
    }

    /// Runs operation `op % 16`, reading its argument bytes; false ends the script.
    ///
    /// | op | argument bytes | operation |
    /// |---|---|---|
    /// | 0 | a packet | a 5.0 packet from the client; one that does not decode ends the script |
    /// | 1 | flags, properties, id | PUBLISH with properties |
    /// | 2 | kind, index, reason | PUBACK, PUBREC, PUBREL or PUBCOMP with a reason code |
    /// | 3 | id, count, options, filters | SUBSCRIBE of 1 to 4 filters |
    /// | 4 | id, count, filters | UNSUBSCRIBE of 1 to 4 filters |
    /// | 5 | | PINGREQ |
    /// | 6 | two bytes | the clock moves on, 16 ms a unit |
    /// | 7 | flags, properties, size | a publisher pushes a live delivery |
    /// | 8 | budget | `poll_transmit` with the link's window and a byte budget |
    /// | 9 | cause | the connection ends: closed, reset, taken over, shut down |
    /// | 10 | two bytes | a new connection with another `Link`, then `resend_inflight` |
    /// | 11 | reason, expiry | DISCONNECT |
    /// | 12 | reason | AUTH |
    /// | 13 | | `handle_timeout` |
    /// | 14 | flags, properties, size | a retained delivery, as sent on subscribe |
    /// | 15 | count | a burst of QoS 1 deliveries on topics of the cycle |
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
                let millis = u64::from(u16::from_be_bytes([script.arg(), script.arg()])) * 16;
                self.now += Duration::from_millis(millis);
            }
            7 => self.push_from(script, false),
            8 => {
                let budget = BUDGETS[usize::from(script.arg() & 7)];
                self.transmit(budget);
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
                let next = link(script.arg(), script.arg());
                self.connect(next);
            }
            11 => self.disconnect(script),
            12 => self.auth(script),
            13 => {
                self.ensure_connected();
                let now = self.now;
                if let Err(exit) = self.session.handle_timeout(now) {
                    assert!(matches!(exit, Exit::KeepAliveTimeout), "handle_timeout: {exit:?}");
                    self.end(&exit);
                }
            }
            14 => self.push_from(script, true),
            _ => {
                let count = script.arg() % 32;
                for _ in 0..count {
                    self.push_simple();
                }
            }
        }
        true
    }

    /// Checks what must hold between any two operations.
    fn check(&self) {
        assert_eq!(self.session.inflight_len(), self.model.outbound.len(), "inflight window");
        if self.connected {
            assert!(!self.session.has_actions(), "actions left after a turn");
            assert_eq!(self.session.subscription_count(), self.model.subscriptions.len(), "subscriptions");
        }
    }

    /// Starts a connection with `link`: a previous one is taken over; the topic aliases of
    /// both directions start empty [MQTT-3.3.2-7]; a will waiting for its delay is not
    /// published [MQTT-3.1.3-9]; what is in flight is re-sent [MQTT-4.4.0-1].
    fn connect(&mut self, link: Link) {
        if self.connected {
            self.end(&Exit::TakenOver);
        }
        let now = self.now;
        // A server without retained messages refuses a CONNECT whose will is retained (0x9A,
        // 3.2.2.3.5); the client that connects again leaves RETAIN out.
        let mut will = will(self.will_flags);
        if let Some(will) = will.as_mut().filter(|_| !self.limits.retain_available) {
            will.retain = false;
        }
        self.session.mailbox().set_online(true);
        let granted = self.session.set_expiry_interval(self.expiry_interval);
        assert_eq!(granted, self.expiry_interval, "no server cap, so the interval asked for");
        self.session.attach(self.keep_alive, will.as_ref().and_then(Will::from_connect), link, now);
        assert!(
            self.session.pending_will_due().is_none(),
            "[MQTT-3.1.3-9] a resumed session's will waits no more"
        );
        assert!(!self.session.has_actions(), "attach leaves no actions of the last connection");
        self.link = link;
        self.connected = true;
        self.model.attach(link, self.expiry_interval, will);
        self.check_resend();
    }

    /// Connects with the last link if no connection owns the session; if that connection ends
    /// at once (a PUBREL to re-send is larger than its Maximum Packet Size), with a link that
    /// takes everything.
    pub(crate) fn ensure_connected(&mut self) {
        if !self.connected {
            self.connect(self.link);
        }
        if !self.connected {
            self.connect(open_link());
        }
        assert!(self.connected, "a connection with the open link ended at once");
    }

    /// Ends the connection with `exit`: the will is due, now or after its delay, unless the
    /// client sent DISCONNECT 0x00 [MQTT-3.1.2-8], [MQTT-3.1.2-10], [MQTT-3.14.4-3] (a 5.0
    /// DISCONNECT 0x04 asks for it, 3.14.2.1, and an error code keeps it) or the server shut down; a 5.0 server tells the client why
    /// with a DISCONNECT of its own (4.13). A session whose expiry is 0 ends with it
    /// [MQTT-3.1.2-6].
    pub(crate) fn end(&mut self, exit: &Exit) {
        assert!(self.connected, "end without a connection");
        self.connected = false;
        if let Some(reason_code) = exit.reason_code() {
            let mut out = BytesMut::new();
            let disconnect = iothub_protocol::Disconnect { reason_code, properties: None };
            if self.link.write(&mut out, &Packet::Disconnect(disconnect)).is_ok() {
                let packets = decode_all(out);
                assert!(
                    matches!(packets.as_slice(), [(Packet::Disconnect(d), _)] if d.reason_code == reason_code),
                    "server DISCONNECT for {exit:?}: {packets:?}"
                );
            }
        }
        let now = self.now;
        let will = self.session.take_will(exit, now);
        let due = !matches!(exit, Exit::Disconnect | Exit::Shutdown | Exit::Refused(_));
        let expected = self.model.will.take().filter(|_| due);
        match (&expected, will) {
            (None, None) => assert!(self.session.pending_will_due().is_none(), "a will after {exit:?}"),
            (Some(w), Some(message)) => {
                let delay = self.model.will_delay(w);
                assert_eq!(delay, Duration::ZERO, "a will with a delay was published at once");
                assert_eq!((&*message.topic, &*message.payload), (&*w.topic, &b"gone"[..]), "will");
                assert_eq!((message.qos, message.retain), (w.qos, w.retain), "will flags");
                let expiry = w.properties.as_ref().and_then(|p| p.message_expiry_interval);
                let expires_at = expiry.and_then(|s| now.checked_add(Duration::from_secs(u64::from(s))));
                assert_eq!(message.expires_at, expires_at, "the will's expiry counts from its publication");
            }
            (Some(w), None) => {
                let delay = self.model.will_delay(w);
                assert!(!delay.is_zero(), "the will after {exit:?} is missing");
                assert_eq!(self.session.pending_will_due(), now.checked_add(delay), "will delay");
                assert!(self.session.take_pending_will(now).is_some());
            }
            (None, Some(message)) => panic!("a will on {} after {exit:?}", message.topic),
        }
        if self.session.expiry().keeps() {
            self.session.mailbox().set_online(false);
        } else {
            // The session ends; the next connection starts a new one.
            let mailbox = Arc::new(Mailbox::new(1, self.queue));
            self.session = Session::new("fuzz".into(), true, mailbox, self.limits);
            self.model.discard();
        }
    }
}
