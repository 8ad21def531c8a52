//! Helpers shared by the publish, subscribe and retain tests: raw packet builders and parsers,
//! raw exchanges that complete the QoS handshakes, a rumqttc client whose events arrive on a
//! channel, and Mosquitto's command-line clients run with timeouts.
//!
//! Every wait here is bounded by `common::WAIT`; nothing sleeps to synchronise.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

use crate::common::{raw_connected, with_header, RawClient, WAIT};

/// First byte of PUBACK.
pub const PUBACK: u8 = 0x40;
/// First byte of PUBREC.
pub const PUBREC: u8 = 0x50;
/// First byte of PUBREL, with the flag bits 0010 it requires.
pub const PUBREL: u8 = 0x62;
/// First byte of PUBCOMP.
pub const PUBCOMP: u8 = 0x70;

/// A PUBLISH packet as received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// QoS bits of the fixed header.
    pub qos: u8,
    /// RETAIN flag.
    pub retain: bool,
    /// DUP flag.
    pub dup: bool,
    /// Packet identifier, present for QoS 1 and 2.
    pub packet_id: Option<u16>,
}

impl Incoming {
    /// The payload as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.payload).unwrap()
    }
}

/// A length-prefixed UTF-8 string as MQTT encodes it.
fn string(text: &str) -> Vec<u8> {
    let mut out = u16::try_from(text.len()).unwrap().to_be_bytes().to_vec();
    out.extend(text.as_bytes());
    out
}

/// A PUBLISH packet; `packet_id` is written only for QoS 1 and 2.
pub fn publish_packet(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
) -> Vec<u8> {
    let first = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let mut body = string(topic);
    if qos > 0 {
        body.extend(packet_id.to_be_bytes());
    }
    body.extend(payload);
    with_header(first, &body)
}

/// A SUBSCRIBE packet with the given filters and requested QoS.
pub fn subscribe_packet(packet_id: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for (filter, qos) in filters {
        body.extend(string(filter));
        body.push(*qos);
    }
    with_header(0x82, &body)
}

/// An UNSUBSCRIBE packet with the given filters.
pub fn unsubscribe_packet(packet_id: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    for filter in filters {
        body.extend(string(filter));
    }
    with_header(0xA2, &body)
}

/// A four-byte acknowledgement packet: PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK.
pub fn ack(first_byte: u8, packet_id: u16) -> Vec<u8> {
    let id = packet_id.to_be_bytes();
    vec![first_byte, 0x02, id[0], id[1]]
}

/// Parses a PUBLISH packet, failing the test if `packet` is anything else.
pub fn parse_publish(packet: &[u8]) -> Incoming {
    let mut buf = bytes::BytesMut::from(packet);
    match iothub_protocol::decode(&mut buf, iothub_protocol::ProtocolVersion::V311, usize::MAX) {
        Ok(Some(iothub_protocol::Packet::Publish(publish))) if buf.is_empty() => Incoming {
            topic: publish.topic.to_string(),
            payload: publish.payload.to_vec(),
            qos: publish.qos.bits(),
            retain: publish.retain,
            dup: publish.dup,
            packet_id: publish.packet_id.map(std::num::NonZeroU16::get),
        },
        other => panic!("expected one PUBLISH packet, got {other:?} from {packet:02x?}"),
    }
}

/// Connects a raw clean-session client and subscribes it to `filters`, checking that the SUBACK
/// grants each requested QoS.
pub fn raw_subscriber(addr: SocketAddr, client_id: &str, filters: &[(&str, u8)]) -> RawClient {
    let mut client = raw_connected(addr, client_id);
    subscribe(&mut client, 1, filters);
    client
}

/// Sends SUBSCRIBE and checks the SUBACK grants each requested QoS, in order.
pub fn subscribe(client: &mut RawClient, packet_id: u16, filters: &[(&str, u8)]) {
    client.send(&subscribe_packet(packet_id, filters));
    let mut suback = vec![0x90, u8::try_from(2 + filters.len()).unwrap()];
    suback.extend(packet_id.to_be_bytes());
    suback.extend(filters.iter().map(|(_, qos)| *qos));
    client.expect(&suback);
}

/// Publishes a message and completes its QoS handshake: PUBACK for QoS 1; PUBREC, PUBREL,
/// PUBCOMP for QoS 2. The client must not be subscribed to anything the broker could send
/// in between.
pub fn publish(client: &mut RawClient, topic: &str, payload: &[u8], qos: u8, retain: bool, packet_id: u16) {
    client.send(&publish_packet(topic, payload, qos, retain, false, packet_id));
    match qos {
        // QoS 0 has no acknowledgement; a PINGREQ round trip after a retained one guarantees the
        // broker has handled (and stored) it before the test goes on, since a connection's
        // packets are handled in order.
        0 if retain => {
            client.send(&[0xC0, 0x00]);
            client.expect(&[0xD0, 0x00]);
        }
        0 => {}
        1 => client.expect(&ack(PUBACK, packet_id)),
        _ => {
            client.expect(&ack(PUBREC, packet_id));
            client.send(&ack(PUBREL, packet_id));
            client.expect(&ack(PUBCOMP, packet_id));
        }
    }
}

/// Reads the next PUBLISH and acknowledges it as its QoS requires (PUBACK, or PUBREC). PUBREL
/// packets read on the way are answered with PUBCOMP.
pub fn next_publish(client: &mut RawClient) -> Incoming {
    loop {
        let packet = client.read_packet();
        if packet[0] == PUBREL {
            client.send(&ack(PUBCOMP, u16::from_be_bytes([packet[2], packet[3]])));
            continue;
        }
        let incoming = parse_publish(&packet);
        match (incoming.qos, incoming.packet_id) {
            (1, Some(id)) => client.send(&ack(PUBACK, id)),
            (2, Some(id)) => client.send(&ack(PUBREC, id)),
            _ => {}
        }
        return incoming;
    }
}

/// Reads and acknowledges messages until one arrives on `marker`, and returns the ones before
/// it. A marker published after the messages under test proves that nothing else was routed.
pub fn publishes_until(client: &mut RawClient, marker: &str) -> Vec<Incoming> {
    let mut received = Vec::new();
    loop {
        let incoming = next_publish(client);
        if incoming.topic == marker {
            return received;
        }
        received.push(incoming);
    }
}

/// Reads and acknowledges messages until none arrives for `quiet`, and returns them.
pub fn publishes_until_silence(client: &mut RawClient, quiet: Duration) -> Vec<Incoming> {
    let mut received = Vec::new();
    loop {
        client.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut probe = [0u8; 1];
        let more = matches!(client.stream.peek(&mut probe), Ok(n) if n > 0);
        client.stream.set_read_timeout(Some(WAIT)).unwrap();
        if !more {
            return received;
        }
        received.push(next_publish(client));
    }
}

/// Sends PINGREQ and waits for PINGRESP, answering PUBREL packets on the way and failing on
/// any PUBLISH. Messages the broker queued before the PINGREQ was read are sent before the
/// PINGRESP, so this proves that none was queued.
pub fn expect_no_publish_before_pingresp(client: &mut RawClient) {
    client.send(&[0xC0, 0x00]);
    loop {
        let packet = client.read_packet();
        match packet[0] {
            0xD0 => return,
            PUBREL => client.send(&ack(PUBCOMP, u16::from_be_bytes([packet[2], packet[3]]))),
            _ => panic!("expected PINGRESP, got {:?}", parse_publish(&packet)),
        }
    }
}

/// A rumqttc client whose incoming packets arrive on a channel, driven by a task of its own.
pub struct Mqtt {
    /// The client handle.
    pub client: AsyncClient,
    /// Packets received from the broker.
    incoming: tokio::sync::mpsc::UnboundedReceiver<Packet>,
}

impl Mqtt {
    /// Connects with a clean session and waits for the CONNACK.
    #[allow(clippy::disallowed_methods)] // The client's event loop runs until the test ends.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Mqtt {
        let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(event) = eventloop.poll().await {
                if let Event::Incoming(packet) = event {
                    if tx.send(packet).is_err() {
                        return;
                    }
                }
            }
        });
        let mut mqtt = Mqtt { client, incoming: rx };
        let connack = mqtt.next().await;
        assert!(matches!(connack, Packet::ConnAck(_)), "expected CONNACK, got {connack:?}");
        mqtt
    }

    /// The next packet from the broker.
    pub async fn next(&mut self) -> Packet {
        tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("timed out waiting for a packet")
            .expect("the rumqttc event loop stopped")
    }

    /// The next PUBLISH, skipping acknowledgements and ping responses.
    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        loop {
            match self.next().await {
                Packet::Publish(publish) => return publish,
                Packet::PubAck(_)
                | Packet::PubRec(_)
                | Packet::PubRel(_)
                | Packet::PubComp(_)
                | Packet::PingResp => {}
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            match self.next().await {
                Packet::SubAck(_) => return,
                Packet::PingResp => {}
                other => panic!("expected SUBACK, got {other:?}"),
            }
        }
    }
}

/// Runs a command-line tool to completion, failing the test if it takes longer than `WAIT`.
pub fn run_tool(command: &mut Command) -> Output {
    let child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{command:?} did not finish within {WAIT:?}");
        }
    }
}

/// Runs `mosquitto_pub -d` against the broker with extra arguments and returns its debug output,
/// failing the test if it does not succeed.
pub fn mosquitto_pub(port: &str, args: &[&str]) -> String {
    let output =
        run_tool(Command::new("mosquitto_pub").args(["-d", "-h", "127.0.0.1", "-p", port]).args(args));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?} failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A message as `mosquitto_sub -d -v` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubMessage {
    /// Topic name.
    pub topic: String,
    /// Payload text; "(null)" for an empty payload, as mosquitto_sub prints it.
    pub payload: String,
    /// QoS of the PUBLISH received.
    pub qos: u8,
    /// RETAIN flag of the PUBLISH received.
    pub retain: bool,
}

/// A running `mosquitto_sub -d -v`, killed when dropped.
pub struct MosquittoSub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl MosquittoSub {
    /// Starts `mosquitto_sub -d -v` with extra arguments and waits until its SUBACK arrives.
    pub fn start(port: &str, args: &[&str]) -> MosquittoSub {
        // mosquitto_sub buffers its output when it is not a terminal; stdbuf makes it write each
        // line as it is printed.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-d", "-v", "-h", "127.0.0.1", "-p", port])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut sub = MosquittoSub { child, lines };
        while !sub.line().contains("received SUBACK") {}
        sub
    }

    /// The next line of output, or `None` once the tool has exited.
    fn try_line(&mut self) -> Option<String> {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("mosquitto_sub printed nothing for {WAIT:?}"),
        }
    }

    fn line(&mut self) -> String {
        self.try_line().expect("mosquitto_sub exited")
    }

    /// The next message received, or `None` if the tool exits first (after `-C` messages or
    /// `-W` seconds).
    pub fn next_message(&mut self) -> Option<SubMessage> {
        let header = loop {
            let line = self.try_line()?;
            if let Some(rest) = line.split_once("received PUBLISH (").map(|(_, rest)| rest.to_owned()) {
                break rest;
            }
        };
        // The header reads "d0, q1, r0, m1, 'topic', ... (5 bytes))".
        let fields: Vec<&str> = header.splitn(5, ", ").collect();
        let qos = fields[1].trim_start_matches('q').parse().unwrap();
        let retain = fields[2] == "r1";
        let topic = fields[4].split("', ... (").next().unwrap().trim_start_matches('\'').to_owned();
        let payload = loop {
            let line = self.line();
            if !line.starts_with("Client ") {
                break line;
            }
        };
        let payload =
            payload.strip_prefix(&format!("{topic} ")).unwrap_or_else(|| panic!("{payload}")).to_owned();
        Some(SubMessage { topic, payload, qos, retain })
    }

    /// The next message; fails the test if the tool exits first.
    pub fn expect_message(&mut self) -> SubMessage {
        self.next_message().expect("mosquitto_sub exited before the expected message")
    }
}

impl Drop for MosquittoSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
