//! The MQTT 5.0 packet bodies (chapter 3 of the 5.0 specification) and their properties
//! (section 2.2.2).
//!
//! Every property block starts with its Property Length, a Variable Byte Integer that must fit
//! in what is left of the packet; each property is an identifier, also a Variable Byte Integer,
//! then a value of the type table 2-4 gives it. Each packet type has one reader for its property
//! struct, which accepts exactly the identifiers table 2-4 allows in that packet. A property is
//! held in an `Option` while it may appear once, so a second one is found by the `Option`
//! already being set.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;

use super::{empty_body, packet_id, Reader, TRUNCATED};
use crate::error::DecodeError;
use crate::packet::{
    Auth, ConnAck, Disconnect, Packet, Publish, PublishResponse, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};
use crate::properties::id;
use crate::properties::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PayloadFormat,
    PublishProperties, PublishResponseProperties, SubAckProperties, SubscribeProperties, UnsubAckProperties,
    UnsubscribeProperties, WillProperties,
};
use crate::rule::Rule;
use crate::topic::{validate_subscription_filter, validate_topic_name};
use crate::types::{QoS, ReasonCode};

const fn broken(rule: Rule) -> DecodeError {
    DecodeError::Violation(rule)
}

/// Parses the body of any 5.0 packet but CONNECT, whose fixed header has passed `check`.
pub(super) fn parse(first_byte: u8, body: &[u8]) -> Result<Packet, DecodeError> {
    let flags = first_byte & 0x0F;
    Ok(match first_byte >> 4 {
        2 => Packet::ConnAck(connack(Reader::copy_v5(body))?),
        3 => Packet::Publish(publish(flags, Reader::copy_v5(body))?),
        4 => Packet::PubAck(publish_response(body, ReasonCode::is_valid_for_puback)?),
        5 => Packet::PubRec(publish_response(body, ReasonCode::is_valid_for_puback)?),
        6 => Packet::PubRel(publish_response(body, ReasonCode::is_valid_for_pubrel)?),
        7 => Packet::PubComp(publish_response(body, ReasonCode::is_valid_for_pubrel)?),
        8 => Packet::Subscribe(subscribe(Reader::copy_v5(body))?),
        9 => Packet::SubAck(suback(Reader::copy_v5(body))?),
        10 => Packet::Unsubscribe(unsubscribe(Reader::copy_v5(body))?),
        11 => Packet::UnsubAck(unsuback(Reader::copy_v5(body))?),
        12 => empty_body(body, Packet::PingReq)?,
        13 => empty_body(body, Packet::PingResp)?,
        14 => Packet::Disconnect(disconnect(body)?),
        15 => Packet::Auth(auth(body)?),
        _ => return Err(broken(Rule::ReservedPacketType)),
    })
}

impl Reader {
    fn copy_v5(body: &[u8]) -> Reader {
        Reader { buf: Bytes::copy_from_slice(body), v5: true }
    }

    /// A Variable Byte Integer of at most four bytes (section 1.5.5).
    fn variable_byte_integer(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for shift in [0, 7, 14, 21] {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(broken(Rule::V5_1_5_5_1))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.remaining() < 4 {
            return Err(TRUNCATED);
        }
        Ok(bytes::Buf::get_u32(&mut self.buf))
    }

    /// The Property Length and the properties it covers, which must fit in the rest of the
    /// packet (section 2.2.2.1).
    fn properties(&mut self) -> Result<Properties, DecodeError> {
        let len = self.variable_byte_integer()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.remaining() {
            return Err(broken(Rule::PropertyLengthInvalid));
        }
        Ok(Properties { r: Reader { buf: self.buf.split_to(len), v5: true } })
    }

    /// A reason code that `valid` allows for this packet type.
    fn reason_code(&mut self, valid: fn(ReasonCode) -> bool) -> Result<ReasonCode, DecodeError> {
        reason_code(self.u8()?, valid)
    }
}

fn reason_code(value: u8, valid: fn(ReasonCode) -> bool) -> Result<ReasonCode, DecodeError> {
    ReasonCode::from_u8(value).filter(|&code| valid(code)).ok_or(broken(Rule::InvalidReasonCode))
}

/// The properties of one packet. A value that runs past the Property Length leaves the
/// properties short of their length, which section 2.2.2.1 makes a malformed packet.
struct Properties {
    r: Reader,
}

/// A value cut short by the end of the properties is a Property Length too short for them.
fn cut_short(error: DecodeError) -> DecodeError {
    if error == TRUNCATED {
        broken(Rule::PropertyLengthInvalid)
    } else {
        error
    }
}

/// Sets a property that may appear only once.
fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(broken(Rule::DuplicateProperty));
    }
    *slot = Some(value);
    Ok(())
}

/// A struct is `None` when the packet carries none of its properties.
fn boxed<T: Default + PartialEq>(properties: T) -> Option<Box<T>> {
    if properties == T::default() {
        None
    } else {
        Some(Box::new(properties))
    }
}

impl Properties {
    /// The next property identifier, or `None` at the end of the properties. An identifier is a
    /// Variable Byte Integer; every one that table 2-4 defines fits in a byte.
    fn next(&mut self) -> Result<Option<u8>, DecodeError> {
        if !self.r.has_remaining() {
            return Ok(None);
        }
        let id = self.r.variable_byte_integer().map_err(cut_short)?;
        u8::try_from(id).map(Some).map_err(|_| broken(Rule::PropertyNotAllowed))
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        self.r.u8().map_err(cut_short)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.r.u16().map_err(cut_short)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.r.u32().map_err(cut_short)
    }

    fn string(&mut self) -> Result<ByteString, DecodeError> {
        self.r.string().map_err(cut_short)
    }

    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        self.r.binary().map_err(cut_short)
    }

    /// A User Property: a name and a value, both UTF-8 strings (section 1.5.7).
    fn user_property(&mut self) -> Result<(ByteString, ByteString), DecodeError> {
        Ok((self.string()?, self.string()?))
    }

    /// A yes-or-no byte: 0 or 1, anything else a Protocol Error.
    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(broken(Rule::YesNoPropertyInvalid)),
        }
    }

    fn payload_format(&mut self) -> Result<PayloadFormat, DecodeError> {
        match self.byte()? {
            0 => Ok(PayloadFormat::Unspecified),
            1 => Ok(PayloadFormat::Utf8),
            _ => Err(broken(Rule::PayloadFormatIndicatorInvalid)),
        }
    }

    fn maximum_qos(&mut self) -> Result<QoS, DecodeError> {
        match self.byte()? {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            _ => Err(broken(Rule::MaximumQoSInvalid)),
        }
    }

    fn receive_maximum(&mut self) -> Result<NonZeroU16, DecodeError> {
        NonZeroU16::new(self.u16()?).ok_or(broken(Rule::ReceiveMaximumZero))
    }

    fn maximum_packet_size(&mut self) -> Result<NonZeroU32, DecodeError> {
        NonZeroU32::new(self.u32()?).ok_or(broken(Rule::MaximumPacketSizeZero))
    }

    fn subscription_identifier(&mut self) -> Result<NonZeroU32, DecodeError> {
        let value = self.r.variable_byte_integer().map_err(cut_short)?;
        NonZeroU32::new(value).ok_or(broken(Rule::SubscriptionIdentifierZero))
    }

    /// A Response Topic: a topic name, so not empty and without wildcards [MQTT-3.3.2-14].
    fn response_topic(&mut self) -> Result<ByteString, DecodeError> {
        let topic = self.string()?;
        match validate_topic_name(&topic) {
            Err(DecodeError::Violation(Rule::Mqtt3_3_2_2)) => Err(broken(Rule::V5_3_3_2_14)),
            other => other.map(|()| topic),
        }
    }
}

fn not_allowed<T>() -> Result<T, DecodeError> {
    Err(broken(Rule::PropertyNotAllowed))
}

/// CONNECT properties (section 3.1.2.11).
pub(super) fn connect_properties(r: &mut Reader) -> Result<Option<Box<ConnectProperties>>, DecodeError> {
    let mut p = r.properties()?;
    let mut out = ConnectProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::SESSION_EXPIRY_INTERVAL => once(&mut out.session_expiry_interval, p.u32()?)?,
            id::RECEIVE_MAXIMUM => once(&mut out.receive_maximum, p.receive_maximum()?)?,
            id::MAXIMUM_PACKET_SIZE => once(&mut out.maximum_packet_size, p.maximum_packet_size()?)?,
            id::TOPIC_ALIAS_MAXIMUM => once(&mut out.topic_alias_maximum, p.u16()?)?,
            id::REQUEST_RESPONSE_INFORMATION => once(&mut out.request_response_information, p.flag()?)?,
            id::REQUEST_PROBLEM_INFORMATION => once(&mut out.request_problem_information, p.flag()?)?,
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::AUTHENTICATION_METHOD => once(&mut out.authentication_method, p.string()?)?,
            id::AUTHENTICATION_DATA => once(&mut out.authentication_data, p.binary()?)?,
            _ => return not_allowed(),
        }
    }
    if out.authentication_data.is_some() && out.authentication_method.is_none() {
        return Err(broken(Rule::AuthenticationDataWithoutMethod));
    }
    Ok(boxed(out))
}

/// Will properties (section 3.1.3.2).
pub(super) fn will_properties(r: &mut Reader) -> Result<Option<Box<WillProperties>>, DecodeError> {
    let mut p = r.properties()?;
    let mut out = WillProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::WILL_DELAY_INTERVAL => once(&mut out.will_delay_interval, p.u32()?)?,
            id::PAYLOAD_FORMAT_INDICATOR => once(&mut out.payload_format_indicator, p.payload_format()?)?,
            id::MESSAGE_EXPIRY_INTERVAL => once(&mut out.message_expiry_interval, p.u32()?)?,
            id::CONTENT_TYPE => once(&mut out.content_type, p.string()?)?,
            id::RESPONSE_TOPIC => once(&mut out.response_topic, p.response_topic()?)?,
            id::CORRELATION_DATA => once(&mut out.correlation_data, p.binary()?)?,
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            _ => return not_allowed(),
        }
    }
    Ok(boxed(out))
}

fn connack_properties(r: &mut Reader) -> Result<Option<Box<ConnAckProperties>>, DecodeError> {
    let mut p = r.properties()?;
    let mut out = ConnAckProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::SESSION_EXPIRY_INTERVAL => once(&mut out.session_expiry_interval, p.u32()?)?,
            id::RECEIVE_MAXIMUM => once(&mut out.receive_maximum, p.receive_maximum()?)?,
            id::MAXIMUM_QOS => once(&mut out.maximum_qos, p.maximum_qos()?)?,
            id::RETAIN_AVAILABLE => once(&mut out.retain_available, p.flag()?)?,
            id::MAXIMUM_PACKET_SIZE => once(&mut out.maximum_packet_size, p.maximum_packet_size()?)?,
            id::ASSIGNED_CLIENT_IDENTIFIER => once(&mut out.assigned_client_identifier, p.string()?)?,
            id::TOPIC_ALIAS_MAXIMUM => once(&mut out.topic_alias_maximum, p.u16()?)?,
            id::REASON_STRING => once(&mut out.reason_string, p.string()?)?,
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                once(&mut out.wildcard_subscription_available, p.flag()?)?;
            }
            id::SUBSCRIPTION_IDENTIFIERS_AVAILABLE => {
                once(&mut out.subscription_identifiers_available, p.flag()?)?;
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => once(&mut out.shared_subscription_available, p.flag()?)?,
            id::SERVER_KEEP_ALIVE => once(&mut out.server_keep_alive, p.u16()?)?,
            id::RESPONSE_INFORMATION => once(&mut out.response_information, p.string()?)?,
            id::SERVER_REFERENCE => once(&mut out.server_reference, p.string()?)?,
            id::AUTHENTICATION_METHOD => once(&mut out.authentication_method, p.string()?)?,
            id::AUTHENTICATION_DATA => once(&mut out.authentication_data, p.binary()?)?,
            _ => return not_allowed(),
        }
    }
    Ok(boxed(out))
}

fn publish_properties(r: &mut Reader) -> Result<Option<Box<PublishProperties>>, DecodeError> {
    let mut p = r.properties()?;
    if !p.r.has_remaining() {
        // The common case, a PUBLISH without properties: nothing to build.
        return Ok(None);
    }
    let mut out = PublishProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::PAYLOAD_FORMAT_INDICATOR => once(&mut out.payload_format_indicator, p.payload_format()?)?,
            id::MESSAGE_EXPIRY_INTERVAL => once(&mut out.message_expiry_interval, p.u32()?)?,
            id::TOPIC_ALIAS => {
                let alias = NonZeroU16::new(p.u16()?).ok_or(broken(Rule::V5_3_3_2_8))?;
                once(&mut out.topic_alias, alias)?;
            }
            id::RESPONSE_TOPIC => once(&mut out.response_topic, p.response_topic()?)?,
            id::CORRELATION_DATA => once(&mut out.correlation_data, p.binary()?)?,
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            // May repeat in PUBLISH: one per matching subscription (section 3.3.2.3.8).
            id::SUBSCRIPTION_IDENTIFIER => out.subscription_identifiers.push(p.subscription_identifier()?),
            id::CONTENT_TYPE => once(&mut out.content_type, p.string()?)?,
            _ => return not_allowed(),
        }
    }
    Ok(boxed(out))
}

/// The Reason String and User Properties that PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and
/// UNSUBACK allow, read into `reason_string` and `user_properties`.
fn diagnostics(
    r: &mut Reader,
    reason_string: &mut Option<ByteString>,
    user_properties: &mut Vec<(ByteString, ByteString)>,
) -> Result<(), DecodeError> {
    let mut p = r.properties()?;
    while let Some(id) = p.next()? {
        match id {
            id::REASON_STRING => once(reason_string, p.string()?)?,
            id::USER_PROPERTY => user_properties.push(p.user_property()?),
            _ => return not_allowed(),
        }
    }
    Ok(())
}

fn user_properties_only(r: &mut Reader) -> Result<Vec<(ByteString, ByteString)>, DecodeError> {
    let mut p = r.properties()?;
    let mut out = Vec::new();
    while let Some(id) = p.next()? {
        match id {
            id::USER_PROPERTY => out.push(p.user_property()?),
            _ => return not_allowed(),
        }
    }
    Ok(out)
}

fn connack(mut r: Reader) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & 0xFE != 0 {
        return Err(broken(Rule::Mqtt3_2_2_1));
    }
    let reason_code = r.reason_code(ReasonCode::is_valid_for_connack)?;
    let properties = connack_properties(&mut r)?;
    r.finish()?;
    Ok(ConnAck { session_present: flags & 1 == 1, reason_code, properties })
}

fn publish(flags: u8, mut r: Reader) -> Result<Publish, DecodeError> {
    let dup = flags & 0x08 != 0;
    let retain = flags & 0x01 != 0;
    let qos = QoS::from_bits((flags >> 1) & 0x03).ok_or(broken(Rule::Mqtt3_3_1_4))?;
    if dup && qos == QoS::AtMostOnce {
        return Err(broken(Rule::Mqtt3_3_1_2));
    }
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce { None } else { Some(packet_id(r.u16()?)?) };
    let properties = publish_properties(&mut r)?;
    // An empty topic name stands for the one a Topic Alias maps to (section 3.3.2.3.4).
    let has_alias = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
    if !(topic.is_empty() && has_alias) {
        validate_topic_name(&topic)?;
    }
    let payload = r.rest();
    Ok(Publish { dup, qos, retain, topic, packet_id, payload, properties })
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: a remaining length of 2 means Success without properties,
/// of 3 a reason code without properties (section 3.4.2.1 and its counterparts).
fn publish_response(body: &[u8], valid: fn(ReasonCode) -> bool) -> Result<PublishResponse, DecodeError> {
    let Some((&[hi, lo], rest)) = body.split_first_chunk::<2>() else {
        return Err(TRUNCATED);
    };
    let packet_id = packet_id(u16::from_be_bytes([hi, lo]))?;
    match rest {
        [] => Ok(PublishResponse::new(packet_id)),
        [code] => {
            Ok(PublishResponse { packet_id, reason_code: reason_code(*code, valid)?, properties: None })
        }
        [code, ..] => {
            let reason_code = reason_code(*code, valid)?;
            let mut r = Reader::copy_v5(&rest[1..]);
            let mut properties = PublishResponseProperties::default();
            diagnostics(&mut r, &mut properties.reason_string, &mut properties.user_properties)?;
            r.finish()?;
            Ok(PublishResponse { packet_id, reason_code, properties: boxed(properties) })
        }
    }
}

fn subscribe(mut r: Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r.u16()?)?;
    let mut p = r.properties()?;
    let mut properties = SubscribeProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::SUBSCRIPTION_IDENTIFIER => {
                once(&mut properties.subscription_identifier, p.subscription_identifier()?)?;
            }
            id::USER_PROPERTY => properties.user_properties.push(p.user_property()?),
            _ => return not_allowed(),
        }
    }
    let mut filters = Vec::new();
    while r.has_remaining() {
        let filter = r.string()?;
        // A malformed ShareName is refused in SUBACK, not here (4.8.2).
        validate_subscription_filter(&filter)?;
        let options = subscription_options(r.u8()?)?;
        if options.no_local && filter.starts_with("$share/") {
            return Err(broken(Rule::V5_3_8_3_4));
        }
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(broken(Rule::Mqtt3_8_3_3));
    }
    Ok(Subscribe { packet_id, filters, properties: boxed(properties) })
}

/// The subscription options byte (section 3.8.3.1): QoS in bits 0-1, No Local in bit 2, Retain
/// As Published in bit 3, Retain Handling in bits 4-5, and bits 6-7 reserved.
fn subscription_options(byte: u8) -> Result<SubscriptionOptions, DecodeError> {
    if byte & 0xC0 != 0 {
        return Err(broken(Rule::V5_3_8_3_5));
    }
    let qos = QoS::from_bits(byte & 0x03).ok_or(broken(Rule::RequestedQoS3))?;
    let retain_handling =
        RetainHandling::from_bits((byte >> 4) & 0x03).ok_or(broken(Rule::RetainHandling3))?;
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn suback(mut r: Reader) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r.u16()?)?;
    let mut properties = SubAckProperties::default();
    diagnostics(&mut r, &mut properties.reason_string, &mut properties.user_properties)?;
    let reason_codes = reason_codes(&r, ReasonCode::is_valid_for_suback)?;
    if reason_codes.is_empty() {
        return Err(broken(Rule::SubAckWithoutReturnCodes));
    }
    Ok(SubAck { packet_id, reason_codes, properties: boxed(properties) })
}

fn unsubscribe(mut r: Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r.u16()?)?;
    let properties = UnsubscribeProperties { user_properties: user_properties_only(&mut r)? };
    let mut filters = Vec::new();
    while r.has_remaining() {
        let filter = r.string()?;
        // A malformed ShareName is refused in SUBACK, not here (4.8.2).
        validate_subscription_filter(&filter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(broken(Rule::Mqtt3_10_3_2));
    }
    Ok(Unsubscribe { packet_id, filters, properties: boxed(properties) })
}

fn unsuback(mut r: Reader) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r.u16()?)?;
    let mut properties = UnsubAckProperties::default();
    diagnostics(&mut r, &mut properties.reason_string, &mut properties.user_properties)?;
    let reason_codes = reason_codes(&r, ReasonCode::is_valid_for_unsuback)?;
    if reason_codes.is_empty() {
        return Err(broken(Rule::UnsubAckWithoutReasonCodes));
    }
    Ok(UnsubAck { packet_id, reason_codes, properties: boxed(properties) })
}

fn reason_codes(r: &Reader, valid: fn(ReasonCode) -> bool) -> Result<Vec<ReasonCode>, DecodeError> {
    r.buf.iter().map(|&code| reason_code(code, valid)).collect()
}

/// DISCONNECT: a remaining length of 0 means 0x00 Normal disconnection, of 1 a reason code
/// without properties (section 3.14.2.1).
fn disconnect(body: &[u8]) -> Result<Disconnect, DecodeError> {
    let Some((&code, rest)) = body.split_first() else {
        return Ok(Disconnect::default());
    };
    let reason_code = reason_code(code, ReasonCode::is_valid_for_disconnect)?;
    if rest.is_empty() {
        return Ok(Disconnect { reason_code, properties: None });
    }
    let mut r = Reader::copy_v5(rest);
    let mut p = r.properties()?;
    let mut out = DisconnectProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::SESSION_EXPIRY_INTERVAL => once(&mut out.session_expiry_interval, p.u32()?)?,
            id::REASON_STRING => once(&mut out.reason_string, p.string()?)?,
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            id::SERVER_REFERENCE => once(&mut out.server_reference, p.string()?)?,
            _ => return not_allowed(),
        }
    }
    r.finish()?;
    Ok(Disconnect { reason_code, properties: boxed(out) })
}

/// AUTH: a remaining length of 0 means 0x00 Success without properties (section 3.15.2.1). A
/// remaining length of 1, a reason code without properties, is read as DISCONNECT's is.
fn auth(body: &[u8]) -> Result<Auth, DecodeError> {
    let Some((&code, rest)) = body.split_first() else {
        return Ok(Auth::default());
    };
    let reason_code = reason_code(code, ReasonCode::is_valid_for_auth)?;
    if rest.is_empty() {
        return Ok(Auth { reason_code, properties: None });
    }
    let mut r = Reader::copy_v5(rest);
    let mut p = r.properties()?;
    let mut out = AuthProperties::default();
    while let Some(id) = p.next()? {
        match id {
            id::AUTHENTICATION_METHOD => once(&mut out.authentication_method, p.string()?)?,
            id::AUTHENTICATION_DATA => once(&mut out.authentication_data, p.binary()?)?,
            id::REASON_STRING => once(&mut out.reason_string, p.string()?)?,
            id::USER_PROPERTY => out.user_properties.push(p.user_property()?),
            _ => return not_allowed(),
        }
    }
    r.finish()?;
    Ok(Auth { reason_code, properties: boxed(out) })
}
