//! The encoder: `encoded_size` first, so a caller can honour a peer's maximum packet size, then
//! `encode` into a caller-owned buffer, so many packets coalesce into one write.
//!
//! This module writes MQTT 3.1 and 3.1.1; 5.0 reason codes in the model are mapped onto the 3.1.1
//! return codes. Asking for a 5.0 encoding is refused until the 5.0 property codec lands.

use bytes::{BufMut, BytesMut};

use crate::decode::MAX_REMAINING_LENGTH;
use crate::error::EncodeError;
use crate::packet::{Connect, Packet, Publish, PublishHeader};
use crate::types::{PacketId, ProtocolVersion, QoS};

/// Number of bytes the variable-length encoding of `len` takes.
fn varint_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_remaining_length(buf: &mut BytesMut, mut len: usize) {
    loop {
        let mut byte = u8::try_from(len % 128).unwrap_or(0);
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}

fn put_field(buf: &mut BytesMut, bytes: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong(bytes.len()))?;
    buf.put_u16(len);
    buf.put_slice(bytes);
    Ok(())
}

fn put_header(buf: &mut BytesMut, first_byte: u8, body_len: usize) -> Result<(), EncodeError> {
    if body_len > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge(body_len));
    }
    buf.reserve(1 + varint_len(body_len) + body_len);
    buf.put_u8(first_byte);
    put_remaining_length(buf, body_len);
    Ok(())
}

/// Size of a PUBLISH with these fields, fixed header included.
pub fn publish_size(topic: &str, qos: QoS, payload_len: usize) -> usize {
    let body = publish_body_len(topic, qos, payload_len);
    1 + varint_len(body) + body
}

fn publish_body_len(topic: &str, qos: QoS, payload_len: usize) -> usize {
    2 + topic.len() + if qos == QoS::AtMostOnce { 0 } else { 2 } + payload_len
}

/// Writes a PUBLISH from its parts, so a broker can send one stored message to many subscribers
/// with a different packet identifier and QoS each, without building a `Publish` per copy.
/// On error `buf` is left as it was.
pub fn encode_publish(
    buf: &mut BytesMut,
    header: &PublishHeader,
    topic: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    let start = buf.len();
    write_publish(buf, header, topic, payload).inspect_err(|_| buf.truncate(start))
}

fn write_publish(
    buf: &mut BytesMut,
    header: &PublishHeader,
    topic: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    let PublishHeader { dup, qos, retain, packet_id } = *header;
    let first_byte = 0x30 | (u8::from(dup) << 3) | (qos.bits() << 1) | u8::from(retain);
    put_header(buf, first_byte, publish_body_len(topic, qos, payload.len()))?;
    put_field(buf, topic.as_bytes())?;
    if qos != QoS::AtMostOnce {
        buf.put_u16(packet_id.map_or(0, PacketId::get));
    }
    buf.put_slice(payload);
    Ok(())
}

impl Publish {
    fn encode_into(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        encode_publish(buf, &self.header(), &self.topic, &self.payload)
    }
}

fn connect_body_len(c: &Connect) -> usize {
    let mut len = 2 + c.protocol.name().len() + 1 + 1 + 2 + 2 + c.client_id.len();
    if let Some(will) = &c.will {
        len += 2 + will.topic.len() + 2 + will.payload.len();
    }
    len += c.username.as_ref().map_or(0, |u| 2 + u.len());
    len += c.password.as_ref().map_or(0, |p| 2 + p.len());
    len
}

fn encode_connect(c: &Connect, buf: &mut BytesMut) -> Result<(), EncodeError> {
    put_header(buf, 0x10, connect_body_len(c))?;
    put_field(buf, c.protocol.name().as_bytes())?;
    buf.put_u8(c.protocol.level());
    let mut flags = 0u8;
    if c.clean_start {
        flags |= 0x02;
    }
    if let Some(will) = &c.will {
        flags |= 0x04 | (will.qos.bits() << 3);
        if will.retain {
            flags |= 0x20;
        }
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    put_field(buf, c.client_id.as_bytes())?;
    if let Some(will) = &c.will {
        put_field(buf, will.topic.as_bytes())?;
        put_field(buf, &will.payload)?;
    }
    if let Some(username) = &c.username {
        put_field(buf, username.as_bytes())?;
    }
    if let Some(password) = &c.password {
        put_field(buf, password)?;
    }
    Ok(())
}

fn body_len(packet: &Packet) -> usize {
    match packet {
        Packet::Connect(c) => connect_body_len(c),
        Packet::Publish(p) => publish_body_len(&p.topic, p.qos, p.payload.len()),
        Packet::ConnAck(_)
        | Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubRel(_)
        | Packet::PubComp(_)
        | Packet::UnsubAck(_) => 2,
        Packet::Subscribe(s) => 2 + s.filters.iter().map(|(f, _)| 2 + f.len() + 1).sum::<usize>(),
        Packet::SubAck(s) => 2 + s.reason_codes.len(),
        Packet::Unsubscribe(u) => 2 + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>(),
        Packet::PingReq | Packet::PingResp | Packet::Disconnect(_) => 0,
    }
}

impl Packet {
    /// Size of the encoded packet, fixed header included.
    pub fn encoded_size(&self) -> usize {
        let body = body_len(self);
        1 + varint_len(body) + body
    }

    /// Appends the packet's bytes to `buf` in the wire format of `version`. On error `buf` is left
    /// as it was, so the packets already in it can still be sent.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if version == ProtocolVersion::V5 {
            return Err(EncodeError::Unsupported(self.name()));
        }
        let start = buf.len();
        self.write_v3(buf).inspect_err(|_| buf.truncate(start))
    }

    fn write_v3(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let body = body_len(self);
        match self {
            Packet::Connect(c) => encode_connect(c, buf)?,
            Packet::Publish(p) => p.encode_into(buf)?,
            Packet::ConnAck(c) => {
                put_header(buf, 0x20, body)?;
                buf.put_u8(u8::from(c.session_present));
                buf.put_u8(c.reason_code.v3_connack_code());
            }
            Packet::PubAck(r) => put_packet_id_only(buf, 0x40, r.packet_id)?,
            Packet::PubRec(r) => put_packet_id_only(buf, 0x50, r.packet_id)?,
            Packet::PubRel(r) => put_packet_id_only(buf, 0x62, r.packet_id)?,
            Packet::PubComp(r) => put_packet_id_only(buf, 0x70, r.packet_id)?,
            Packet::UnsubAck(u) => put_packet_id_only(buf, 0xB0, u.packet_id)?,
            Packet::Subscribe(s) => {
                put_header(buf, 0x82, body)?;
                buf.put_u16(s.packet_id.get());
                for (filter, options) in &s.filters {
                    put_field(buf, filter.as_bytes())?;
                    buf.put_u8(options.qos.bits());
                }
            }
            Packet::SubAck(s) => {
                put_header(buf, 0x90, body)?;
                buf.put_u16(s.packet_id.get());
                for code in &s.reason_codes {
                    buf.put_u8(code.v3_suback_code());
                }
            }
            Packet::Unsubscribe(u) => {
                put_header(buf, 0xA2, body)?;
                buf.put_u16(u.packet_id.get());
                for filter in &u.filters {
                    put_field(buf, filter.as_bytes())?;
                }
            }
            Packet::PingReq => put_header(buf, 0xC0, 0)?,
            Packet::PingResp => put_header(buf, 0xD0, 0)?,
            Packet::Disconnect(_) => put_header(buf, 0xE0, 0)?,
        }
        Ok(())
    }
}

fn put_packet_id_only(buf: &mut BytesMut, first_byte: u8, packet_id: PacketId) -> Result<(), EncodeError> {
    put_header(buf, first_byte, 2)?;
    buf.put_u16(packet_id.get());
    Ok(())
}
