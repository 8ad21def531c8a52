//! The resumable decoder: fixed header first, then the packet body.
//!
//! `check` inspects the fixed header and refuses an oversized or ill-typed packet before a byte
//! of its body is buffered; `decode` returns `Ok(None)` until a whole packet is present. Decoded
//! strings and payloads are copied out of the read buffer once, into one allocation per packet,
//! so the read buffer is never pinned by a message that lives on in a queue or the retained
//! store.
//!
//! This module reads MQTT 3.1, 3.1.1 and 5.0. CONNECT is read the same way whatever `version`
//! is: its protocol level says which version the connection speaks, and the caller decodes the
//! packets after it with that version. The 5.0 packet bodies and their properties are read in
//! the `v5` submodule, which also checks what 5.0 adds to the grammar: which properties each
//! packet may carry, at most once unless they may repeat, with values the specification allows,
//! and which reason codes each packet type may carry.
//!
//! Some 5.0 rules need to know who sent a packet, or the connection's state, and are left to
//! the broker: a client must not send a Subscription Identifier in PUBLISH [MQTT-3.3.4-6] (the
//! decoder reads it, as a client must), a server must not send a Session Expiry Interval in
//! DISCONNECT, Topic Aliases above the Topic Alias Maximum, and AUTH's method matching the
//! CONNECT's.

use alloc::boxed::Box;
use alloc::vec::Vec;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::packet::{
    ConnAck, Connect, Disconnect, Packet, Publish, PublishResponse, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe, Will,
};
use crate::rule::Rule;
use crate::topic::{validate_subscription_filter, validate_topic_name};
use crate::types::{PacketId, ProtocolVersion, QoS, ReasonCode};

mod v5;

/// The largest remaining length four bytes can encode.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Most bytes reserved ahead of a packet's body arriving.
const RESERVE_AHEAD: usize = 64 * 1024;

/// What the fixed header of a packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The first byte: packet type in the high nibble, flags in the low one.
    pub first_byte: u8,
    /// Length of the fixed header itself (2 to 5 bytes).
    pub header_len: usize,
    /// Length of the variable header plus payload.
    pub remaining_len: usize,
}

impl FixedHeader {
    /// Size of the whole packet.
    pub fn packet_len(&self) -> usize {
        self.header_len + self.remaining_len
    }
}

/// Reads the fixed header at the start of `buf`. Returns `Ok(None)` when more bytes are needed.
/// Refuses reserved packet types, wrong flags [MQTT-2.2.2-2], a remaining length of more than four
/// bytes, and packets larger than `max_packet_size`, all before the body arrives.
///
/// `check` does not know the connection's version, so it accepts type 15 (AUTH, 5.0 only) with
/// flags 0; [`parse`] refuses it as a reserved type in 3.1 and 3.1.1.
pub fn check(buf: &[u8], max_packet_size: usize) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&first_byte) = buf.first() else {
        return Ok(None);
    };
    check_type_and_flags(first_byte)?;
    let mut remaining_len = 0usize;
    for i in 1..=4 {
        let Some(&byte) = buf.get(i) else {
            return Ok(None);
        };
        remaining_len |= usize::from(byte & 0x7F) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            let header = FixedHeader { first_byte, header_len: i + 1, remaining_len };
            if header.packet_len() > max_packet_size {
                return Err(DecodeError::PacketTooLarge { size: header.packet_len(), max: max_packet_size });
            }
            return Ok(Some(header));
        }
    }
    Err(DecodeError::Violation(Rule::RemainingLengthTooLong))
}

fn check_type_and_flags(first_byte: u8) -> Result<(), DecodeError> {
    let flags = first_byte & 0x0F;
    let expected = match first_byte >> 4 {
        3 => return Ok(()),
        6 | 8 | 10 => 0b0010,
        1 | 2 | 4 | 5 | 7 | 9 | 11 | 12 | 13 | 14 => 0,
        // AUTH in 5.0, reserved in 3.x; the version is not known here, so flags other than 0
        // are refused as the reserved type, which makes the packet malformed in both.
        15 if flags == 0 => return Ok(()),
        _ => return Err(DecodeError::Violation(Rule::ReservedPacketType)),
    };
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::Violation(Rule::Mqtt2_2_2_2))
    }
}

/// Decodes one packet from the front of `buf`, consuming it. `version` is the connection's
/// protocol version (CONNECT carries its own). Returns `Ok(None)` when `buf` does not yet hold a
/// whole packet; it then reserves room for more of it, at most 64 KiB ahead of what arrived.
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = check(buf, max_packet_size)? else {
        return Ok(None);
    };
    let total = header.packet_len();
    if buf.len() < total {
        // Room for the rest, but not all at once on the say-so of a header: a large packet's
        // buffer grows as its bytes actually arrive.
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    let packet = parse(header, &buf[header.header_len..total], version);
    buf.advance(total);
    packet.map(Some)
}

/// Parses a packet body whose fixed header has already passed `check`, in the wire format of
/// `version`; a CONNECT is parsed in the format its own protocol level names.
pub fn parse(header: FixedHeader, body: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    if version == ProtocolVersion::V5 && header.first_byte >> 4 != 1 {
        return v5::parse(header.first_byte, body);
    }
    let flags = header.first_byte & 0x0F;
    let packet = match header.first_byte >> 4 {
        1 => Packet::Connect(Box::new(parse_connect(Reader::copy_of(body))?)),
        2 => Packet::ConnAck(parse_connack(body)?),
        3 => Packet::Publish(parse_publish(flags, Reader::copy_of(body))?),
        4 => Packet::PubAck(parse_publish_response(body)?),
        5 => Packet::PubRec(parse_publish_response(body)?),
        6 => Packet::PubRel(parse_publish_response(body)?),
        7 => Packet::PubComp(parse_publish_response(body)?),
        8 => Packet::Subscribe(parse_subscribe(Reader::copy_of(body))?),
        9 => Packet::SubAck(parse_suback(body)?),
        10 => Packet::Unsubscribe(parse_unsubscribe(Reader::copy_of(body))?),
        11 => Packet::UnsubAck(UnsubAck {
            packet_id: exact_packet_id(body)?,
            reason_codes: Vec::new(),
            properties: None,
        }),
        12 => empty_body(body, Packet::PingReq)?,
        13 => empty_body(body, Packet::PingResp)?,
        14 => empty_body(body, Packet::Disconnect(Disconnect::default()))?,
        _ => return Err(DecodeError::Violation(Rule::ReservedPacketType)),
    };
    Ok(packet)
}

fn empty_body(body: &[u8], packet: Packet) -> Result<Packet, DecodeError> {
    if body.is_empty() {
        Ok(packet)
    } else {
        Err(DecodeError::Violation(Rule::RemainingLengthNotZero))
    }
}

fn packet_id(value: u16) -> Result<PacketId, DecodeError> {
    PacketId::new(value).ok_or(DecodeError::Violation(Rule::Mqtt2_3_1_1))
}

fn exact_packet_id(body: &[u8]) -> Result<PacketId, DecodeError> {
    match body {
        [hi, lo] => packet_id(u16::from_be_bytes([*hi, *lo])),
        _ => Err(DecodeError::Violation(Rule::RemainingLengthNotTwo)),
    }
}

fn parse_publish_response(body: &[u8]) -> Result<PublishResponse, DecodeError> {
    Ok(PublishResponse::new(exact_packet_id(body)?))
}

fn parse_connack(body: &[u8]) -> Result<ConnAck, DecodeError> {
    let [flags, code] = body else {
        return Err(DecodeError::Violation(Rule::ConnAckRemainingLengthNotTwo));
    };
    if flags & 0xFE != 0 {
        return Err(DecodeError::Violation(Rule::Mqtt3_2_2_1));
    }
    let reason_code = ReasonCode::from_v3_connack_code(*code)
        .ok_or(DecodeError::Violation(Rule::ReservedConnAckReturnCode))?;
    Ok(ConnAck { session_present: flags & 1 == 1, reason_code, properties: None })
}

fn parse_suback(body: &[u8]) -> Result<SubAck, DecodeError> {
    if body.len() < 3 {
        return Err(DecodeError::Violation(Rule::SubAckWithoutReturnCodes));
    }
    let packet_id = packet_id(u16::from_be_bytes([body[0], body[1]]))?;
    let reason_codes = body[2..]
        .iter()
        .map(|&code| ReasonCode::from_v3_suback_code(code).ok_or(DecodeError::Violation(Rule::Mqtt3_9_3_2)))
        .collect::<Result<_, _>>()?;
    Ok(SubAck { packet_id, reason_codes, properties: None })
}

fn parse_connect(mut r: Reader) -> Result<Connect, DecodeError> {
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        (b"MQTT" | b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolVersion(level)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::Violation(Rule::Mqtt3_1_2_3));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos_bits = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password_flag = flags & 0x40 != 0;
    let username_flag = flags & 0x80 != 0;
    if !will_flag && will_qos_bits != 0 {
        return Err(DecodeError::Violation(Rule::Mqtt3_1_2_13));
    }
    if !will_flag && will_retain {
        return Err(DecodeError::Violation(Rule::Mqtt3_1_2_15));
    }
    let will_qos = QoS::from_bits(will_qos_bits).ok_or(DecodeError::Violation(Rule::Mqtt3_1_2_14))?;
    let v5 = protocol == ProtocolVersion::V5;
    // 5.0 allows a password without a user name (section 3.1.2.9); 3.1.1 does not.
    if password_flag && !username_flag && !v5 {
        return Err(DecodeError::Violation(Rule::Mqtt3_1_2_22));
    }
    r.v5 = v5;
    let keep_alive = r.u16()?;
    let properties = if v5 { v5::connect_properties(&mut r)? } else { None };
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 { v5::will_properties(&mut r)? } else { None };
        let topic = r.string()?;
        validate_topic_name(&topic)?;
        let payload = r.binary()?;
        Some(Will { topic, payload, qos: will_qos, retain: will_retain, properties })
    } else {
        None
    };
    let username = if username_flag { Some(r.string()?) } else { None };
    let password = if password_flag { Some(r.binary()?) } else { None };
    r.finish()?;
    Ok(Connect { protocol, clean_start, keep_alive, client_id, will, username, password, properties })
}

fn parse_publish(flags: u8, mut r: Reader) -> Result<Publish, DecodeError> {
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let qos = QoS::from_bits((flags >> 1) & 0x03).ok_or(DecodeError::Violation(Rule::Mqtt3_3_1_4))?;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Violation(Rule::Mqtt3_3_1_2));
    }
    let topic = r.string()?;
    validate_topic_name(&topic)?;
    let packet_id = if qos == QoS::AtMostOnce { None } else { Some(packet_id(r.u16()?)?) };
    let payload = r.rest();
    Ok(Publish { dup, qos, retain, topic, packet_id, payload, properties: None })
}

fn parse_subscribe(mut r: Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r.u16()?)?;
    let mut filters = Vec::new();
    while r.has_remaining() {
        let filter = r.string()?;
        // A malformed ShareName is refused in SUBACK, not here (4.8.2).
        validate_subscription_filter(&filter)?;
        let options = r.u8()?;
        if options & 0xFC != 0 {
            return Err(DecodeError::Violation(Rule::Mqtt3_8_3_4));
        }
        let qos = QoS::from_bits(options).ok_or(DecodeError::Violation(Rule::RequestedQoS3))?;
        filters.push((filter, SubscriptionOptions { qos, ..SubscriptionOptions::default() }));
    }
    if filters.is_empty() {
        return Err(DecodeError::Violation(Rule::Mqtt3_8_3_3));
    }
    Ok(Subscribe { packet_id, filters, properties: None })
}

fn parse_unsubscribe(mut r: Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r.u16()?)?;
    let mut filters = Vec::new();
    while r.has_remaining() {
        let filter = r.string()?;
        // A malformed ShareName is refused in SUBACK, not here (4.8.2).
        validate_subscription_filter(&filter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::Violation(Rule::Mqtt3_10_3_2));
    }
    Ok(Unsubscribe { packet_id, filters, properties: None })
}

/// A cursor over one packet body, copied once out of the read buffer; strings and binary
/// fields are slices of that copy.
struct Reader {
    buf: Bytes,
    /// Whether strings are checked against the 5.0 statements rather than the 3.1.1 ones.
    v5: bool,
}

const TRUNCATED: DecodeError = DecodeError::Violation(Rule::PacketTooShort);

impl Reader {
    fn copy_of(body: &[u8]) -> Reader {
        Reader { buf: Bytes::copy_from_slice(body), v5: false }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn has_remaining(&self) -> bool {
        !self.buf.is_empty()
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(TRUNCATED);
        }
        Ok(self.buf.get_u16())
    }

    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        if self.buf.len() < len {
            return Err(TRUNCATED);
        }
        Ok(self.buf.split_to(len))
    }

    /// A length-prefixed UTF-8 string: well formed, no surrogates [MQTT-1.5.3-1], no U+0000
    /// [MQTT-1.5.3-2]; in 5.0 the same rules are [MQTT-1.5.4-1] and [MQTT-1.5.4-2].
    fn string(&mut self) -> Result<ByteString, DecodeError> {
        let raw = self.binary()?;
        let (ill_formed, null) = if self.v5 {
            (Rule::V5_1_5_4_1, Rule::V5_1_5_4_2)
        } else {
            (Rule::Mqtt1_5_3_1, Rule::Mqtt1_5_3_2)
        };
        if raw.contains(&0) {
            return Err(DecodeError::Violation(null));
        }
        ByteString::try_from(raw).map_err(|_| DecodeError::Violation(ill_formed))
    }

    fn rest(&mut self) -> Bytes {
        core::mem::take(&mut self.buf)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Violation(Rule::TrailingBytes))
        }
    }
}
