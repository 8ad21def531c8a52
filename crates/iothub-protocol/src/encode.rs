//! The encoder: `size` first, so a caller can honour a peer's maximum packet size, then
//! `encode` into a caller-owned buffer, so many packets coalesce into one write.
//!
//! This module writes MQTT 3.1, 3.1.1 and 5.0. In 3.x the properties are not written and 5.0
//! reason codes are mapped onto the 3.1.1 return codes; AUTH, which 3.x does not have, is
//! refused. In 5.0 every packet is written with its properties, in the short form the
//! specification allows when a PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT or AUTH has the
//! reason code Success and no properties. [`Packet::encode_within`] leaves out what a sender may
//! to respect the receiver's Maximum Packet Size, and [`OutgoingPublish`] writes a PUBLISH from
//! a stored message and the fields of one delivery.

use core::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, BytesMut};

use crate::decode::MAX_REMAINING_LENGTH;
use crate::error::EncodeError;
use crate::packet::{Connect, Packet, Publish, PublishHeader};
use crate::properties::PublishProperties;
use crate::types::{PacketId, ProtocolVersion, QoS};

mod v5;

use v5::Trim;

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
    write_publish(buf, header, topic, payload, false).inspect_err(|_| buf.truncate(start))
}

/// Writes a 5.0 PUBLISH that carries no property at all (the common case: no forwarded
/// properties, no expiry, no alias, no Subscription Identifier): `encode_publish`'s bytes plus a
/// Property Length of 0. On error `buf` is left as it was.
pub fn encode_publish_v5_plain(
    buf: &mut BytesMut,
    header: &PublishHeader,
    topic: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    let start = buf.len();
    write_publish(buf, header, topic, payload, true).inspect_err(|_| buf.truncate(start))
}

/// Writes a PUBLISH without properties: the 3.x form, or with `v5` the 5.0 form, which only adds
/// a Property Length of 0 after the packet identifier.
fn write_publish(
    buf: &mut BytesMut,
    header: &PublishHeader,
    topic: &str,
    payload: &[u8],
    v5: bool,
) -> Result<(), EncodeError> {
    let PublishHeader { dup, qos, retain, packet_id } = *header;
    let first_byte = 0x30 | (u8::from(dup) << 3) | (qos.bits() << 1) | u8::from(retain);
    put_header(buf, first_byte, publish_body_len(topic, qos, payload.len()) + usize::from(v5))?;
    put_field(buf, topic.as_bytes())?;
    if qos != QoS::AtMostOnce {
        buf.put_u16(packet_id.map_or(0, PacketId::get));
    }
    if v5 {
        buf.put_u8(0);
    }
    buf.put_slice(payload);
    Ok(())
}

impl Publish {
    fn encode_into(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        encode_publish(buf, &self.header(), &self.topic, &self.payload)
    }
}

/// The parts of a PUBLISH a broker sends: shared message fields plus per-delivery ones.
///
/// In 5.0 the forwarded properties are written from `properties`, and the Message Expiry
/// Interval, Topic Alias and Subscription Identifiers from the fields of their own, since they
/// differ per delivery (section 3.3.2.3: the expiry counts down, an alias is per connection and
/// the identifiers are the subscriber's). In 3.1 and 3.1.1 no property is written. Sizes are
/// computed from the fields, nothing is allocated, and `encode` reserves room once.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingPublish<'a> {
    /// Flags and packet identifier of this delivery.
    pub header: PublishHeader,
    /// Topic name; may be "" when `topic_alias` is `Some` and the alias is already established.
    pub topic: &'a str,
    /// Application payload.
    pub payload: &'a [u8],
    /// The message's forwarded properties: payload format, content type, response topic,
    /// correlation data, user properties. Their `message_expiry_interval`, `topic_alias` and
    /// `subscription_identifiers` fields are IGNORED; the three fields below are used instead.
    pub properties: Option<&'a PublishProperties>,
    /// Message Expiry Interval to send: what is left of the message's lifetime.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias for this connection.
    pub topic_alias: Option<NonZeroU16>,
    /// The Subscription Identifiers of the subscriptions this delivery matched.
    pub subscription_identifiers: &'a [NonZeroU32],
}

impl OutgoingPublish<'_> {
    fn has_properties(&self) -> bool {
        self.properties.is_some()
            || self.message_expiry_interval.is_some()
            || self.topic_alias.is_some()
            || !self.subscription_identifiers.is_empty()
    }

    fn parts(&self) -> v5::PublishParts<'_> {
        v5::PublishParts {
            properties: self.properties,
            message_expiry_interval: self.message_expiry_interval,
            topic_alias: self.topic_alias,
            subscription_identifiers: self.subscription_identifiers,
        }
    }

    /// Size of the encoded PUBLISH in `version`, fixed header included; in 3.x the properties are
    /// not counted, as they are not written.
    pub fn size(&self, version: ProtocolVersion) -> usize {
        match version {
            ProtocolVersion::V5 => {
                v5::publish_size(self.topic, self.header.qos, &self.parts(), self.payload.len())
            }
            ProtocolVersion::V31 | ProtocolVersion::V311 => {
                publish_size(self.topic, self.header.qos, self.payload.len())
            }
        }
    }

    /// Appends the PUBLISH to `buf` in the wire format of `version`. On error `buf` is left as it
    /// was.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match version {
            ProtocolVersion::V5 => {
                let start = buf.len();
                if self.has_properties() {
                    v5::write_publish(buf, &self.header, self.topic, &self.parts(), self.payload)
                } else {
                    // Most messages carry no property at all: the 3.1.1 path plus one byte.
                    write_publish(buf, &self.header, self.topic, self.payload, true)
                }
                .inspect_err(|_| buf.truncate(start))
            }
            ProtocolVersion::V31 | ProtocolVersion::V311 => {
                encode_publish(buf, &self.header, self.topic, self.payload)
            }
        }
    }
}

fn connect_flags(c: &Connect) -> u8 {
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
    flags
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
    buf.put_u8(connect_flags(c));
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
        // No 3.x encoding; `encoded_size` gives the 5.0 size instead.
        Packet::Auth(_) => v5::body_len(packet, Trim::Nothing),
    }
}

/// Whether `packet` is written in its 5.0 form when the connection speaks `version`. A CONNECT
/// is written in the form its own protocol level names, whatever the connection's version: it is
/// the packet that fixes that version.
fn in_v5(packet: &Packet, version: ProtocolVersion) -> bool {
    match packet {
        Packet::Connect(c) => c.protocol == ProtocolVersion::V5,
        _ => version == ProtocolVersion::V5,
    }
}

impl Packet {
    /// Size of the encoded packet in 3.1 or 3.1.1, fixed header included: `size(V311)`. A 5.0
    /// CONNECT, and AUTH, which 3.x does not have, are counted in their 5.0 form.
    pub fn encoded_size(&self) -> usize {
        self.size(ProtocolVersion::V311)
    }

    /// Exact size of the packet encoded in `version`, fixed header included. A CONNECT is counted
    /// in the form of its own `protocol`, as [`encode`](Packet::encode) writes it.
    pub fn size(&self, version: ProtocolVersion) -> usize {
        if in_v5(self, version) {
            return v5::size(self, Trim::Nothing);
        }
        let body = body_len(self);
        1 + varint_len(body) + body
    }

    /// Appends the packet's bytes to `buf` in the wire format of `version`. On error `buf` is left
    /// as it was, so the packets already in it can still be sent.
    ///
    /// A CONNECT is written in the form of its own `protocol`, whatever `version` is. In 5.0 a
    /// property struct that is `None` and one that is empty are written alike, as Property Length
    /// 0 or the short form. AUTH has no 3.x form: `EncodeError::Unsupported("AUTH")`.
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let start = buf.len();
        let written =
            if in_v5(self, version) { v5::write(self, buf, Trim::Nothing) } else { self.write_v3(buf) };
        written.inspect_err(|_| buf.truncate(start))
    }

    /// Appends the packet to `buf` as [`encode`](Packet::encode) does, in at most `max_size`
    /// bytes: the receiver's Maximum Packet Size.
    ///
    /// In 5.0, a CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT or AUTH
    /// that is too large is written without its Reason String, and if still too large without
    /// its User Properties too, as the specification asks of a sender ([MQTT-3.2.2-19],
    /// [MQTT-3.2.2-20], [MQTT-3.4.2-2], [MQTT-3.4.2-3], [MQTT-3.14.2-3], [MQTT-3.14.2-4] and their
    /// counterparts for the other packets). Nothing else is left out: a PUBLISH is never trimmed,
    /// nor are CONNECT, SUBSCRIBE and UNSUBSCRIBE, which no such statement covers. If the packet
    /// still does not fit, it returns [`EncodeError::ExceedsMaximumPacketSize`] with the size of
    /// the smallest form, and `buf` is left as it was.
    pub fn encode_within(
        &self,
        version: ProtocolVersion,
        max_size: usize,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if in_v5(self, version) && v5::may_trim(self) {
            let mut size = 0;
            for trim in [Trim::Nothing, Trim::ReasonString, Trim::ReasonStringAndUserProperties] {
                size = v5::size(self, trim);
                if size <= max_size {
                    let start = buf.len();
                    return v5::write(self, buf, trim).inspect_err(|_| buf.truncate(start));
                }
            }
            return Err(EncodeError::ExceedsMaximumPacketSize { size, max: max_size });
        }
        let size = self.size(version);
        if size > max_size {
            return Err(EncodeError::ExceedsMaximumPacketSize { size, max: max_size });
        }
        self.encode(version, buf)
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
            Packet::Auth(_) => return Err(EncodeError::Unsupported(self.name())),
        }
        Ok(())
    }
}

fn put_packet_id_only(buf: &mut BytesMut, first_byte: u8, packet_id: PacketId) -> Result<(), EncodeError> {
    put_header(buf, first_byte, 2)?;
    buf.put_u16(packet_id.get());
    Ok(())
}
