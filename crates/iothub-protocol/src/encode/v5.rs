//! The MQTT 5.0 packet bodies and their properties.
//!
//! Every size is computed from the fields, without writing: a packet's properties are measured
//! once for its Property Length and once more only as they are written. [`Trim`] says which
//! diagnostics to leave out when a packet must fit a receiver's Maximum Packet Size.

use alloc::boxed::Box;
use core::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use super::{put_field, put_header, put_remaining_length as put_variable_byte_integer, varint_len};
use crate::decode::MAX_REMAINING_LENGTH;
use crate::error::EncodeError;
use crate::packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PublishHeader, PublishResponse, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use crate::properties::id;
use crate::properties::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PublishProperties,
    PublishResponseProperties, SubAckProperties, SubscribeProperties, UnsubAckProperties,
    UnsubscribeProperties, WillProperties,
};
use crate::types::{PacketId, QoS, ReasonCode};

/// What may be left out of a packet so that it fits the receiver's Maximum Packet Size: first
/// the Reason String, then the User Properties too (for example [MQTT-3.4.2-2] and
/// [MQTT-3.4.2-3] for PUBACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Trim {
    /// Everything is written.
    Nothing,
    /// The Reason String is left out.
    ReasonString,
    /// The Reason String and the User Properties are left out.
    ReasonStringAndUserProperties,
}

impl Trim {
    fn reason_string(self) -> bool {
        self == Trim::Nothing
    }

    fn user_properties(self) -> bool {
        self != Trim::ReasonStringAndUserProperties
    }
}

// Sizes of single properties: the one-byte identifier (every identifier of table 2-4 is below
// 0x80) and the value.

fn byte_len<T>(value: &Option<T>) -> usize {
    value.as_ref().map_or(0, |_| 2)
}

fn u16_len<T>(value: &Option<T>) -> usize {
    value.as_ref().map_or(0, |_| 3)
}

fn u32_len<T>(value: &Option<T>) -> usize {
    value.as_ref().map_or(0, |_| 5)
}

fn string_len(value: &Option<ByteString>) -> usize {
    value.as_ref().map_or(0, |s| 3 + s.len())
}

fn binary_len(value: &Option<Bytes>) -> usize {
    value.as_ref().map_or(0, |b| 3 + b.len())
}

fn user_properties_len(pairs: &[(ByteString, ByteString)]) -> usize {
    pairs.iter().map(|(name, value)| 5 + name.len() + value.len()).sum()
}

fn subscription_identifier_len(value: NonZeroU32) -> usize {
    1 + varint_len(value.get() as usize)
}

// Writers of single properties.

fn put_byte(buf: &mut BytesMut, id: u8, value: Option<u8>) {
    if let Some(value) = value {
        buf.put_u8(id);
        buf.put_u8(value);
    }
}

fn put_u16(buf: &mut BytesMut, id: u8, value: Option<u16>) {
    if let Some(value) = value {
        buf.put_u8(id);
        buf.put_u16(value);
    }
}

fn put_u32(buf: &mut BytesMut, id: u8, value: Option<u32>) {
    if let Some(value) = value {
        buf.put_u8(id);
        buf.put_u32(value);
    }
}

fn put_string(buf: &mut BytesMut, id: u8, value: &Option<ByteString>) -> Result<(), EncodeError> {
    if let Some(value) = value {
        buf.put_u8(id);
        put_field(buf, value.as_bytes())?;
    }
    Ok(())
}

fn put_binary(buf: &mut BytesMut, id: u8, value: &Option<Bytes>) -> Result<(), EncodeError> {
    if let Some(value) = value {
        buf.put_u8(id);
        put_field(buf, value)?;
    }
    Ok(())
}

fn put_user_properties(buf: &mut BytesMut, pairs: &[(ByteString, ByteString)]) -> Result<(), EncodeError> {
    for (name, value) in pairs {
        buf.put_u8(id::USER_PROPERTY);
        put_field(buf, name.as_bytes())?;
        put_field(buf, value.as_bytes())?;
    }
    Ok(())
}

fn put_subscription_identifier(buf: &mut BytesMut, value: NonZeroU32) -> Result<(), EncodeError> {
    let value = value.get();
    if value as usize > MAX_REMAINING_LENGTH {
        return Err(EncodeError::SubscriptionIdentifierTooLarge(value));
    }
    buf.put_u8(id::SUBSCRIPTION_IDENTIFIER);
    put_variable_byte_integer(buf, value as usize);
    Ok(())
}

fn flag(value: Option<bool>) -> Option<u8> {
    value.map(u8::from)
}

/// A property struct of one packet type: the length of its properties without the Property
/// Length, and the writing of them.
pub(crate) trait Properties {
    fn len(&self, trim: Trim) -> usize;
    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError>;
}

/// The length of a packet's properties, 0 when it has none.
fn len_of<P: Properties>(properties: &Option<Box<P>>, trim: Trim) -> usize {
    properties.as_deref().map_or(0, |p| p.len(trim))
}

/// The Property Length field and the properties it covers.
fn block_len(len: usize) -> usize {
    varint_len(len) + len
}

/// Writes the Property Length `len`, then the properties.
fn put_block<P: Properties>(
    buf: &mut BytesMut,
    properties: &Option<Box<P>>,
    len: usize,
    trim: Trim,
) -> Result<(), EncodeError> {
    put_variable_byte_integer(buf, len);
    match properties {
        Some(p) => p.write(buf, trim),
        None => Ok(()),
    }
}

impl Properties for ConnectProperties {
    fn len(&self, trim: Trim) -> usize {
        u32_len(&self.session_expiry_interval)
            + u16_len(&self.receive_maximum)
            + u32_len(&self.maximum_packet_size)
            + u16_len(&self.topic_alias_maximum)
            + byte_len(&self.request_response_information)
            + byte_len(&self.request_problem_information)
            + if trim.user_properties() { user_properties_len(&self.user_properties) } else { 0 }
            + string_len(&self.authentication_method)
            + binary_len(&self.authentication_data)
    }

    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
        put_u32(buf, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16(buf, id::RECEIVE_MAXIMUM, self.receive_maximum.map(NonZeroU16::get));
        put_u32(buf, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size.map(NonZeroU32::get));
        put_u16(buf, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        put_byte(buf, id::REQUEST_RESPONSE_INFORMATION, flag(self.request_response_information));
        put_byte(buf, id::REQUEST_PROBLEM_INFORMATION, flag(self.request_problem_information));
        if trim.user_properties() {
            put_user_properties(buf, &self.user_properties)?;
        }
        put_string(buf, id::AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary(buf, id::AUTHENTICATION_DATA, &self.authentication_data)
    }
}

impl Properties for WillProperties {
    fn len(&self, _trim: Trim) -> usize {
        u32_len(&self.will_delay_interval)
            + byte_len(&self.payload_format_indicator)
            + u32_len(&self.message_expiry_interval)
            + string_len(&self.content_type)
            + string_len(&self.response_topic)
            + binary_len(&self.correlation_data)
            + user_properties_len(&self.user_properties)
    }

    fn write(&self, buf: &mut BytesMut, _trim: Trim) -> Result<(), EncodeError> {
        put_u32(buf, id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        put_byte(buf, id::PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator.map(|f| f as u8));
        put_u32(buf, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_string(buf, id::CONTENT_TYPE, &self.content_type)?;
        put_string(buf, id::RESPONSE_TOPIC, &self.response_topic)?;
        put_binary(buf, id::CORRELATION_DATA, &self.correlation_data)?;
        put_user_properties(buf, &self.user_properties)
    }
}

/// Maximum QoS as written: 2 is not a wire value, and an absent Maximum QoS means 2.
fn maximum_qos(qos: Option<QoS>) -> Option<u8> {
    qos.filter(|&qos| qos != QoS::ExactlyOnce).map(QoS::bits)
}

impl Properties for ConnAckProperties {
    fn len(&self, trim: Trim) -> usize {
        u32_len(&self.session_expiry_interval)
            + u16_len(&self.receive_maximum)
            + byte_len(&maximum_qos(self.maximum_qos))
            + byte_len(&self.retain_available)
            + u32_len(&self.maximum_packet_size)
            + string_len(&self.assigned_client_identifier)
            + u16_len(&self.topic_alias_maximum)
            + if trim.reason_string() { string_len(&self.reason_string) } else { 0 }
            + if trim.user_properties() { user_properties_len(&self.user_properties) } else { 0 }
            + byte_len(&self.wildcard_subscription_available)
            + byte_len(&self.subscription_identifiers_available)
            + byte_len(&self.shared_subscription_available)
            + u16_len(&self.server_keep_alive)
            + string_len(&self.response_information)
            + string_len(&self.server_reference)
            + string_len(&self.authentication_method)
            + binary_len(&self.authentication_data)
    }

    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
        put_u32(buf, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        put_u16(buf, id::RECEIVE_MAXIMUM, self.receive_maximum.map(NonZeroU16::get));
        put_byte(buf, id::MAXIMUM_QOS, maximum_qos(self.maximum_qos));
        put_byte(buf, id::RETAIN_AVAILABLE, flag(self.retain_available));
        put_u32(buf, id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size.map(NonZeroU32::get));
        put_string(buf, id::ASSIGNED_CLIENT_IDENTIFIER, &self.assigned_client_identifier)?;
        put_u16(buf, id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        if trim.reason_string() {
            put_string(buf, id::REASON_STRING, &self.reason_string)?;
        }
        if trim.user_properties() {
            put_user_properties(buf, &self.user_properties)?;
        }
        put_byte(buf, id::WILDCARD_SUBSCRIPTION_AVAILABLE, flag(self.wildcard_subscription_available));
        put_byte(buf, id::SUBSCRIPTION_IDENTIFIERS_AVAILABLE, flag(self.subscription_identifiers_available));
        put_byte(buf, id::SHARED_SUBSCRIPTION_AVAILABLE, flag(self.shared_subscription_available));
        put_u16(buf, id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        put_string(buf, id::RESPONSE_INFORMATION, &self.response_information)?;
        put_string(buf, id::SERVER_REFERENCE, &self.server_reference)?;
        put_string(buf, id::AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary(buf, id::AUTHENTICATION_DATA, &self.authentication_data)
    }
}

/// The Reason String and User Properties that most acknowledgements carry, and nothing else.
macro_rules! diagnostics_only {
    ($($properties:ty),*) => {$(
        impl Properties for $properties {
            fn len(&self, trim: Trim) -> usize {
                (if trim.reason_string() { string_len(&self.reason_string) } else { 0 })
                    + if trim.user_properties() { user_properties_len(&self.user_properties) } else { 0 }
            }

            fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
                if trim.reason_string() {
                    put_string(buf, id::REASON_STRING, &self.reason_string)?;
                }
                if trim.user_properties() {
                    put_user_properties(buf, &self.user_properties)?;
                }
                Ok(())
            }
        }
    )*};
}

diagnostics_only!(PublishResponseProperties, SubAckProperties, UnsubAckProperties);

impl Properties for SubscribeProperties {
    fn len(&self, trim: Trim) -> usize {
        self.subscription_identifier.map_or(0, subscription_identifier_len)
            + if trim.user_properties() { user_properties_len(&self.user_properties) } else { 0 }
    }

    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
        if let Some(value) = self.subscription_identifier {
            put_subscription_identifier(buf, value)?;
        }
        if trim.user_properties() {
            put_user_properties(buf, &self.user_properties)?;
        }
        Ok(())
    }
}

impl Properties for UnsubscribeProperties {
    fn len(&self, trim: Trim) -> usize {
        if trim.user_properties() {
            user_properties_len(&self.user_properties)
        } else {
            0
        }
    }

    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
        if trim.user_properties() {
            put_user_properties(buf, &self.user_properties)?;
        }
        Ok(())
    }
}

impl Properties for DisconnectProperties {
    fn len(&self, trim: Trim) -> usize {
        u32_len(&self.session_expiry_interval)
            + if trim.reason_string() { string_len(&self.reason_string) } else { 0 }
            + if trim.user_properties() { user_properties_len(&self.user_properties) } else { 0 }
            + string_len(&self.server_reference)
    }

    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
        put_u32(buf, id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        if trim.reason_string() {
            put_string(buf, id::REASON_STRING, &self.reason_string)?;
        }
        if trim.user_properties() {
            put_user_properties(buf, &self.user_properties)?;
        }
        put_string(buf, id::SERVER_REFERENCE, &self.server_reference)
    }
}

impl Properties for AuthProperties {
    fn len(&self, trim: Trim) -> usize {
        string_len(&self.authentication_method)
            + binary_len(&self.authentication_data)
            + if trim.reason_string() { string_len(&self.reason_string) } else { 0 }
            + if trim.user_properties() { user_properties_len(&self.user_properties) } else { 0 }
    }

    fn write(&self, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
        put_string(buf, id::AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_binary(buf, id::AUTHENTICATION_DATA, &self.authentication_data)?;
        if trim.reason_string() {
            put_string(buf, id::REASON_STRING, &self.reason_string)?;
        }
        if trim.user_properties() {
            put_user_properties(buf, &self.user_properties)?;
        }
        Ok(())
    }
}

// PUBLISH, from the parts a broker sends.

/// The properties of an outgoing PUBLISH: the message's own forwarded ones, and the
/// per-delivery ones given apart from them.
#[derive(Clone, Copy)]
pub(crate) struct PublishParts<'a> {
    pub(crate) properties: Option<&'a PublishProperties>,
    pub(crate) message_expiry_interval: Option<u32>,
    pub(crate) topic_alias: Option<NonZeroU16>,
    pub(crate) subscription_identifiers: &'a [NonZeroU32],
}

impl PublishParts<'_> {
    fn len(&self) -> usize {
        let forwarded = self.properties.map_or(0, |p| {
            byte_len(&p.payload_format_indicator)
                + string_len(&p.response_topic)
                + binary_len(&p.correlation_data)
                + user_properties_len(&p.user_properties)
                + string_len(&p.content_type)
        });
        forwarded
            + u32_len(&self.message_expiry_interval)
            + u16_len(&self.topic_alias)
            + self.subscription_identifiers.iter().map(|&id| subscription_identifier_len(id)).sum::<usize>()
    }

    fn write(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        if let Some(p) = self.properties {
            put_byte(buf, id::PAYLOAD_FORMAT_INDICATOR, p.payload_format_indicator.map(|f| f as u8));
        }
        put_u32(buf, id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        put_u16(buf, id::TOPIC_ALIAS, self.topic_alias.map(NonZeroU16::get));
        if let Some(p) = self.properties {
            put_string(buf, id::RESPONSE_TOPIC, &p.response_topic)?;
            put_binary(buf, id::CORRELATION_DATA, &p.correlation_data)?;
            put_user_properties(buf, &p.user_properties)?;
        }
        for &value in self.subscription_identifiers {
            put_subscription_identifier(buf, value)?;
        }
        if let Some(p) = self.properties {
            put_string(buf, id::CONTENT_TYPE, &p.content_type)?;
        }
        Ok(())
    }
}

/// The remaining length of a 5.0 PUBLISH whose properties are `properties_len` bytes long.
fn publish_body_len(topic: &str, qos: QoS, properties_len: usize, payload_len: usize) -> usize {
    2 + topic.len() + if qos == QoS::AtMostOnce { 0 } else { 2 } + block_len(properties_len) + payload_len
}

/// Size of a 5.0 PUBLISH, fixed header included.
pub(crate) fn publish_size(topic: &str, qos: QoS, parts: &PublishParts<'_>, payload_len: usize) -> usize {
    let body = publish_body_len(topic, qos, parts.len(), payload_len);
    1 + varint_len(body) + body
}

/// Writes a 5.0 PUBLISH; the caller truncates `buf` on error.
pub(crate) fn write_publish(
    buf: &mut BytesMut,
    header: &PublishHeader,
    topic: &str,
    parts: &PublishParts<'_>,
    payload: &[u8],
) -> Result<(), EncodeError> {
    let PublishHeader { dup, qos, retain, packet_id } = *header;
    let first_byte = 0x30 | (u8::from(dup) << 3) | (qos.bits() << 1) | u8::from(retain);
    let properties_len = parts.len();
    put_header(buf, first_byte, publish_body_len(topic, qos, properties_len, payload.len()))?;
    put_field(buf, topic.as_bytes())?;
    if qos != QoS::AtMostOnce {
        buf.put_u16(packet_id.map_or(0, PacketId::get));
    }
    put_variable_byte_integer(buf, properties_len);
    parts.write(buf)?;
    buf.put_slice(payload);
    Ok(())
}

fn parts_of(properties: &Option<Box<PublishProperties>>) -> PublishParts<'_> {
    let properties = properties.as_deref();
    PublishParts {
        properties,
        message_expiry_interval: properties.and_then(|p| p.message_expiry_interval),
        topic_alias: properties.and_then(|p| p.topic_alias),
        subscription_identifiers: properties.map_or(&[], |p| &p.subscription_identifiers[..]),
    }
}

// The other packets.

fn connect_body_len(c: &Connect, trim: Trim) -> usize {
    let mut len = 2 + c.protocol.name().len() + 1 + 1 + 2;
    len += block_len(len_of(&c.properties, trim));
    len += 2 + c.client_id.len();
    if let Some(will) = &c.will {
        len += block_len(len_of(&will.properties, trim)) + 2 + will.topic.len() + 2 + will.payload.len();
    }
    len += c.username.as_ref().map_or(0, |u| 2 + u.len());
    len += c.password.as_ref().map_or(0, |p| 2 + p.len());
    len
}

fn write_connect(c: &Connect, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
    put_header(buf, 0x10, connect_body_len(c, trim))?;
    put_field(buf, c.protocol.name().as_bytes())?;
    buf.put_u8(c.protocol.level());
    buf.put_u8(super::connect_flags(c));
    buf.put_u16(c.keep_alive);
    put_block(buf, &c.properties, len_of(&c.properties, trim), trim)?;
    put_field(buf, c.client_id.as_bytes())?;
    if let Some(will) = &c.will {
        put_block(buf, &will.properties, len_of(&will.properties, trim), trim)?;
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

/// PUBACK, PUBREC, PUBREL, PUBCOMP: 2 bytes for Success without properties, 3 for another
/// reason code without properties (section 3.4.2.1).
fn publish_response_body_len(r: &PublishResponse, trim: Trim) -> usize {
    match (r.reason_code, len_of(&r.properties, trim)) {
        (ReasonCode::Success, 0) => 2,
        (_, 0) => 3,
        (_, len) => 3 + block_len(len),
    }
}

fn write_publish_response(
    buf: &mut BytesMut,
    first_byte: u8,
    r: &PublishResponse,
    trim: Trim,
) -> Result<(), EncodeError> {
    let len = len_of(&r.properties, trim);
    put_header(buf, first_byte, publish_response_body_len(r, trim))?;
    buf.put_u16(r.packet_id.get());
    match (r.reason_code, len) {
        (ReasonCode::Success, 0) => {}
        (code, 0) => buf.put_u8(code.value()),
        (code, len) => {
            buf.put_u8(code.value());
            put_block(buf, &r.properties, len, trim)?;
        }
    }
    Ok(())
}

/// DISCONNECT: no body for a normal disconnection without properties, one byte for another
/// reason code without properties (section 3.14.2.1).
fn disconnect_body_len(d: &Disconnect, trim: Trim) -> usize {
    match (d.reason_code, len_of(&d.properties, trim)) {
        (ReasonCode::Success, 0) => 0,
        (_, 0) => 1,
        (_, len) => 1 + block_len(len),
    }
}

/// AUTH: no body for Success without properties (section 3.15.2.1); otherwise the reason code
/// and the properties, as the specification writes AUTH.
fn auth_body_len(a: &Auth, trim: Trim) -> usize {
    match (a.reason_code, len_of(&a.properties, trim)) {
        (ReasonCode::Success, 0) => 0,
        (_, len) => 1 + block_len(len),
    }
}

fn subscribe_body_len(s: &Subscribe, trim: Trim) -> usize {
    2 + block_len(len_of(&s.properties, trim)) + s.filters.iter().map(|(f, _)| 2 + f.len() + 1).sum::<usize>()
}

fn unsubscribe_body_len(u: &Unsubscribe, trim: Trim) -> usize {
    2 + block_len(len_of(&u.properties, trim)) + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>()
}

fn suback_body_len(s: &SubAck, trim: Trim) -> usize {
    2 + block_len(len_of(&s.properties, trim)) + s.reason_codes.len()
}

fn unsuback_body_len(u: &UnsubAck, trim: Trim) -> usize {
    2 + block_len(len_of(&u.properties, trim)) + u.reason_codes.len()
}

fn connack_body_len(c: &ConnAck, trim: Trim) -> usize {
    2 + block_len(len_of(&c.properties, trim))
}

/// The remaining length of `packet` in 5.0, with `trim` left out.
pub(crate) fn body_len(packet: &Packet, trim: Trim) -> usize {
    match packet {
        Packet::Connect(c) => connect_body_len(c, trim),
        Packet::ConnAck(c) => connack_body_len(c, trim),
        Packet::Publish(p) => {
            publish_body_len(&p.topic, p.qos, parts_of(&p.properties).len(), p.payload.len())
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            publish_response_body_len(r, trim)
        }
        Packet::Subscribe(s) => subscribe_body_len(s, trim),
        Packet::SubAck(s) => suback_body_len(s, trim),
        Packet::Unsubscribe(u) => unsubscribe_body_len(u, trim),
        Packet::UnsubAck(u) => unsuback_body_len(u, trim),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => disconnect_body_len(d, trim),
        Packet::Auth(a) => auth_body_len(a, trim),
    }
}

/// Size of `packet` in 5.0, fixed header included, with `trim` left out.
pub(crate) fn size(packet: &Packet, trim: Trim) -> usize {
    let body = body_len(packet, trim);
    1 + varint_len(body) + body
}

/// Writes `packet` in 5.0 with `trim` left out; the caller truncates `buf` on error.
pub(crate) fn write(packet: &Packet, buf: &mut BytesMut, trim: Trim) -> Result<(), EncodeError> {
    match packet {
        Packet::Connect(c) => write_connect(c, buf, trim)?,
        Packet::ConnAck(c) => {
            put_header(buf, 0x20, connack_body_len(c, trim))?;
            buf.put_u8(u8::from(c.session_present));
            buf.put_u8(c.reason_code.value());
            put_block(buf, &c.properties, len_of(&c.properties, trim), trim)?;
        }
        Packet::Publish(p) => {
            write_publish(buf, &p.header(), &p.topic, &parts_of(&p.properties), &p.payload)?
        }
        Packet::PubAck(r) => write_publish_response(buf, 0x40, r, trim)?,
        Packet::PubRec(r) => write_publish_response(buf, 0x50, r, trim)?,
        Packet::PubRel(r) => write_publish_response(buf, 0x62, r, trim)?,
        Packet::PubComp(r) => write_publish_response(buf, 0x70, r, trim)?,
        Packet::Subscribe(s) => {
            put_header(buf, 0x82, subscribe_body_len(s, trim))?;
            buf.put_u16(s.packet_id.get());
            put_block(buf, &s.properties, len_of(&s.properties, trim), trim)?;
            for (filter, options) in &s.filters {
                put_field(buf, filter.as_bytes())?;
                buf.put_u8(
                    options.qos.bits()
                        | u8::from(options.no_local) << 2
                        | u8::from(options.retain_as_published) << 3
                        | options.retain_handling.bits() << 4,
                );
            }
        }
        Packet::SubAck(s) => {
            put_header(buf, 0x90, suback_body_len(s, trim))?;
            buf.put_u16(s.packet_id.get());
            put_block(buf, &s.properties, len_of(&s.properties, trim), trim)?;
            for code in &s.reason_codes {
                buf.put_u8(code.value());
            }
        }
        Packet::Unsubscribe(u) => {
            put_header(buf, 0xA2, unsubscribe_body_len(u, trim))?;
            buf.put_u16(u.packet_id.get());
            put_block(buf, &u.properties, len_of(&u.properties, trim), trim)?;
            for filter in &u.filters {
                put_field(buf, filter.as_bytes())?;
            }
        }
        Packet::UnsubAck(u) => {
            put_header(buf, 0xB0, unsuback_body_len(u, trim))?;
            buf.put_u16(u.packet_id.get());
            put_block(buf, &u.properties, len_of(&u.properties, trim), trim)?;
            for code in &u.reason_codes {
                buf.put_u8(code.value());
            }
        }
        Packet::PingReq => put_header(buf, 0xC0, 0)?,
        Packet::PingResp => put_header(buf, 0xD0, 0)?,
        Packet::Disconnect(d) => {
            let len = len_of(&d.properties, trim);
            put_header(buf, 0xE0, disconnect_body_len(d, trim))?;
            match (d.reason_code, len) {
                (ReasonCode::Success, 0) => {}
                (code, 0) => buf.put_u8(code.value()),
                (code, len) => {
                    buf.put_u8(code.value());
                    put_block(buf, &d.properties, len, trim)?;
                }
            }
        }
        Packet::Auth(a) => {
            let len = len_of(&a.properties, trim);
            put_header(buf, 0xF0, auth_body_len(a, trim))?;
            if (a.reason_code, len) != (ReasonCode::Success, 0) {
                buf.put_u8(a.reason_code.value());
                put_block(buf, &a.properties, len, trim)?;
            }
        }
    }
    Ok(())
}

/// Whether `packet` carries a Reason String or User Properties that the specification lets a
/// sender leave out to respect the receiver's Maximum Packet Size: the packets whose section
/// says so (CONNACK [MQTT-3.2.2-19] [MQTT-3.2.2-20], PUBACK [MQTT-3.4.2-2] [MQTT-3.4.2-3] and
/// its three siblings, SUBACK, UNSUBACK, DISCONNECT [MQTT-3.14.2-3] [MQTT-3.14.2-4] and AUTH).
/// CONNECT, SUBSCRIBE and UNSUBSCRIBE have no such statement, nor does PUBLISH.
pub(crate) fn may_trim(packet: &Packet) -> bool {
    matches!(
        packet,
        Packet::ConnAck(_)
            | Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::Disconnect(_)
            | Packet::Auth(_)
    )
}
