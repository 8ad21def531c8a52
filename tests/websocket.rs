//! MQTT over WebSocket (`ws://`, `wss://`; MQTT 5.0 and 3.1.1 section 6) with raw frames for
//! the rules a client can break, and paho-mqtt over every transport: binary frames only
//! [MQTT-6.0.0-1], packets not aligned on frames [MQTT-6.0.0-2], the `mqtt` subprotocol
//! [MQTT-6.0.0-4], masked client frames (RFC 6455 section 5.1), the listener's path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use iothub_test_util::{
    connect_packet, publish_packet, require_tool, subscribe_packet, OrFail, TestBroker, TestPki, WAIT,
};

/// An upgraded WebSocket connection over a raw socket, with the response headers.
struct RawWs {
    stream: TcpStream,
    response: String,
}

/// Sends the upgrade request for `path`, offering `protocols`, and reads the whole response.
fn upgrade(addr: SocketAddr, path: &str, protocols: Option<&str>) -> RawWs {
    let mut stream = TcpStream::connect(addr).or_fail("connecting");
    stream.set_read_timeout(Some(WAIT)).or_fail("a read timeout");
    let offer = protocols.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    );
    stream.write_all(request.as_bytes()).or_fail("sending the upgrade request");
    let mut response = Vec::new();
    let mut byte = [0];
    while !response.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => response.push(byte[0]),
            _ => break,
        }
    }
    RawWs { stream, response: String::from_utf8_lossy(&response).into_owned() }
}

/// A client frame: FIN, `opcode`, masked with a fixed key unless `masked` is false.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | u8::try_from(len).or_fail("a short length")),
        len => {
            frame.push(mask_bit | 126);
            frame.extend(u16::try_from(len).or_fail("a frame under 64 KiB").to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        frame.extend(key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend(payload);
    }
    frame
}

impl RawWs {
    fn send_binary(&mut self, payload: &[u8]) {
        self.stream.write_all(&frame(0x2, payload, true)).or_fail("sending a frame");
    }

    /// Reads one server frame: its opcode and payload. Server frames are never masked.
    fn read_frame(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let mut head = [0; 2];
        self.stream.read_exact(&mut head)?;
        assert_eq!(head[1] & 0x80, 0, "a server frame was masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut len = [0; 2];
                self.stream.read_exact(&mut len)?;
                usize::from(u16::from_be_bytes(len))
            }
            127 => {
                let mut len = [0; 8];
                self.stream.read_exact(&mut len)?;
                usize::try_from(u64::from_be_bytes(len)).or_fail("a frame length")
            }
            len => usize::from(len),
        };
        let mut payload = vec![0; len];
        self.stream.read_exact(&mut payload)?;
        Ok((head[0] & 0x0f, payload))
    }

    /// Reads binary frames until `n` bytes of MQTT have arrived.
    fn read_mqtt(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        while bytes.len() < n {
            let (opcode, payload) = self.read_frame().or_fail("a frame");
            assert_eq!(opcode, 0x2, "MQTT came in a frame of opcode {opcode}");
            bytes.extend(payload);
        }
        bytes
    }

    /// Asserts that the broker ends the connection: a Close frame at most, then EOF or reset.
    fn expect_closed(&mut self) {
        loop {
            match self.read_frame() {
                Ok((0x8, _)) => {}
                Ok((opcode, payload)) => {
                    panic!("expected the connection to close, got opcode {opcode}: {payload:02x?}")
                }
                Err(e) => {
                    assert!(
                        matches!(
                            e.kind(),
                            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                        ),
                        "expected the connection to close: {e}"
                    );
                    return;
                }
            }
        }
    }
}

fn ws_broker() -> TestBroker {
    TestBroker::with_listeners(&["tcp://127.0.0.1:0", "ws://127.0.0.1:0"], "")
}

// [MQTT-6.0.0-4]: the subprotocol selected is "mqtt".
#[test]
fn mqtt_6_0_0_4_the_upgrade_selects_the_mqtt_subprotocol() {
    let broker = ws_broker();
    let ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    assert!(ws.response.starts_with("HTTP/1.1 101"), "{}", ws.response);
    assert!(ws.response.to_ascii_lowercase().contains("sec-websocket-protocol: mqtt\r\n"), "{}", ws.response);
    // A client of the MQTT 3.1 era offers only "mqttv3.1", and gets it.
    let old = upgrade(broker.addrs[1], "/mqtt", Some("mqttv3.1"));
    assert!(
        old.response.to_ascii_lowercase().contains("sec-websocket-protocol: mqttv3.1\r\n"),
        "{}",
        old.response
    );
    // Another path is not an MQTT endpoint.
    let elsewhere = upgrade(broker.addrs[1], "/other", Some("mqtt"));
    assert!(elsewhere.response.starts_with("HTTP/1.1 404"), "{}", elsewhere.response);
}

// [MQTT-6.0.0-2]: a packet may span frames, and a frame may carry several packets.
#[test]
fn mqtt_6_0_0_2_packets_are_reassembled_across_and_within_frames() {
    let broker = ws_broker();
    let mut ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    let connect = connect_packet("ws-raw", true, 0);
    let (head, tail) = connect.split_at(5);
    ws.send_binary(head);
    ws.send_binary(tail);
    assert_eq!(ws.read_mqtt(4), [0x20, 2, 0, 0]);
    // SUBSCRIBE and a QoS 1 PUBLISH to itself in one frame, the PUBLISH's end in a third.
    let mut batch = subscribe_packet(1, &[("ws/#", 1)]);
    let publish = publish_packet("ws/t", b"across frames", 1, false, false, 7);
    let (first, rest) = publish.split_at(6);
    batch.extend(first);
    ws.send_binary(&batch);
    ws.send_binary(rest);
    let replies = ws.read_mqtt(5 + 4 + publish.len());
    assert_eq!(&replies[..5], [0x90, 3, 0, 1, 1], "SUBACK");
    let rest = &replies[5..];
    // The PUBACK and the delivery, in either order.
    let puback = [0x40, 2, 0, 7];
    let delivered = if rest.starts_with(&puback) { &rest[4..] } else { &rest[..rest.len() - 4] };
    assert_eq!(delivered[0] & 0xf6, 0x32, "a QoS 1 PUBLISH: {delivered:02x?}");
    assert!(delivered.ends_with(b"across frames"), "{delivered:02x?}");
}

// [MQTT-6.0.0-1]: MQTT in a text frame closes the connection.
#[test]
fn mqtt_6_0_0_1_a_text_frame_closes_the_connection() {
    let broker = ws_broker();
    let mut ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    ws.send_binary(&connect_packet("ws-text", true, 0));
    assert_eq!(ws.read_mqtt(4), [0x20, 2, 0, 0]);
    ws.stream.write_all(&frame(0x1, &[0xC0, 0x00], true)).or_fail("a text frame");
    ws.expect_closed();
}

// RFC 6455 section 5.1: a server closes on a client frame that is not masked.
#[test]
fn an_unmasked_client_frame_closes_the_connection_and_others_carry_on() {
    let broker = ws_broker();
    let mut other = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    other.send_binary(&connect_packet("ws-other", true, 0));
    assert_eq!(other.read_mqtt(4), [0x20, 2, 0, 0]);
    let mut ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    ws.stream
        .write_all(&frame(0x2, &connect_packet("ws-unmasked", true, 0), false))
        .or_fail("an unmasked frame");
    ws.expect_closed();
    other.send_binary(&[0xC0, 0x00]);
    assert_eq!(other.read_mqtt(2), [0xD0, 0x00], "PINGRESP");
}

#[test]
fn a_frame_beyond_the_packet_size_bound_is_refused_before_it_is_buffered() {
    let broker = TestBroker::with_listeners(
        &["tcp://127.0.0.1:0", "ws://127.0.0.1:0"],
        "[server]\nmax_packet_size = 1024\n",
    );
    let mut ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    // A frame header announcing 1 GiB.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend((1u64 << 30).to_be_bytes());
    header.extend([1, 2, 3, 4]);
    ws.stream.write_all(&header).or_fail("a huge frame header");
    ws.expect_closed();
}

#[test]
fn paho_clients_exchange_messages_over_tcp_tls_ws_and_wss() {
    require_tool("python3");
    require_tool("timeout");
    let pki = TestPki::new("paho-transports");
    let broker = TestBroker::with_listeners(
        &["tcp://127.0.0.1:0", "tls://127.0.0.1:0", "ws://127.0.0.1:0/mqtt", "wss://127.0.0.1:0"],
        &pki.tls_toml(""),
    );
    let ports: Vec<String> = broker.addrs.iter().map(|a| a.port().to_string()).collect();
    let output = Command::new("timeout")
        .args(["-k", "5", "90", "python3", "tests/paho/transports.py"])
        .args(&ports)
        .arg(&pki.ca_file)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .or_fail("running the paho script");
    assert!(
        output.status.success(),
        "transports.py failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The test process's resident memory, in bytes (the broker runs inside it).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").or_fail("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).or_fail("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).or_fail("a number");
    kib * 1024
}

// RFC 6455 section 5.5.2: a Ping is answered with a Pong carrying its payload; a Close frame
// is answered and the connection ends.
#[test]
fn pings_are_answered_and_a_close_frame_ends_the_connection() {
    let broker = ws_broker();
    let mut ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    ws.send_binary(&connect_packet("ws-ping", true, 0));
    assert_eq!(ws.read_mqtt(4), [0x20, 2, 0, 0]);
    ws.stream.write_all(&frame(0x9, b"are you there", true)).or_fail("a ping");
    assert_eq!(ws.read_frame().or_fail("a pong"), (0xA, b"are you there".to_vec()));
    ws.stream.write_all(&frame(0x8, &1000u16.to_be_bytes(), true)).or_fail("a close frame");
    ws.expect_closed();
}

#[test]
fn a_ping_flood_from_a_client_that_never_reads_does_not_grow_the_broker() {
    let broker = ws_broker();
    let mut ws = upgrade(broker.addrs[1], "/mqtt", Some("mqtt"));
    let ping = frame(0x9, &[7; 125], true);
    let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 1000).collect();
    let before = resident_bytes();
    // 52 MB of pings; every pong the broker owes is one the client never reads.
    for _ in 0..400 {
        if ws.stream.write_all(&batch).is_err() {
            break;
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 24 * 1024 * 1024, "the broker grew by {grown} bytes under a ping flood");
}
