//! Raw-packet builders shared by the codec's vector and violation tests. Each builds the bytes of
//! a packet field by field, so a test can put anything, valid or not, in any field.
//!
//! Only what both test files use lives here; a helper one file needs stays in that file.
#![allow(clippy::expect_used)] // Test helpers: a failed expectation is a test failure.

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{decode, DecodeError, Packet, ProtocolVersion};

/// A maximum packet size that no vector in these tests reaches.
pub const NO_LIMIT: usize = 1 << 30;

/// A `ByteString` holding a string literal.
pub fn text(value: &'static str) -> ByteString {
    ByteString::from_static(value)
}

/// Decodes exactly one packet from `bytes` and checks that the decoder consumed all of them.
pub fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, version, NO_LIMIT)?.expect("the buffer holds a whole packet");
    assert!(buf.is_empty(), "the decoder left {} bytes behind", buf.len());
    Ok(packet)
}

/// Builds a packet from its first byte and body, writing the remaining length in between.
pub fn packet(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first_byte];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        bytes.push(byte);
        if len == 0 {
            break;
        }
    }
    bytes.extend_from_slice(body);
    bytes
}

/// A length-prefixed field holding `bytes`, which need not be valid UTF-8.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A CONNECT for "MQTT" level 4 with the given flags, keep-alive 60 and the given payload.
pub fn connect_with(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[0x04, flags, 0x00, 0x3C]);
    body.extend_from_slice(payload);
    packet(0x10, &body)
}

/// A QoS 0 PUBLISH whose topic field holds `topic` and whose payload is "x".
pub fn publish_with_topic(topic: &[u8]) -> Vec<u8> {
    let mut body = field(topic);
    body.push(b'x');
    packet(0x30, &body)
}

/// A SUBSCRIBE with packet identifier 10 and one filter requesting `options`.
pub fn subscribe_with_filter(filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0x00, 0x0A];
    body.extend(field(filter));
    body.push(options);
    packet(0x82, &body)
}

/// An UNSUBSCRIBE with packet identifier 10 and one filter.
pub fn unsubscribe_with_filter(filter: &[u8]) -> Vec<u8> {
    let mut body = vec![0x00, 0x0A];
    body.extend(field(filter));
    packet(0xA2, &body)
}
