//! The start of a connection: the CONNECT packet, the client identifier, the session takeover
//! and the CONNACK.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use std::num::NonZeroU16;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{
    ConnAck, ConnAckProperties, Connect, ConnectProperties, DecodeError, EncodeError, Packet,
    ProtocolVersion, ReasonCode, Rule,
};

use super::handoff::discard;
use crate::context::Context;
use crate::exit::Exit;
use crate::mailbox::Mailbox;
use crate::message::too_deep;
use crate::session::{Link, Previous, Session};

/// The outcome of a CONNECT that the server accepts.
pub(super) struct Accepted {
    /// The session to serve, fresh or resumed.
    pub session: Box<Session>,
    /// Whether a stored session was resumed.
    pub session_present: bool,
    /// The Session Expiry Interval granted (5.0).
    pub expiry_interval: u32,
}

/// No properties: what a 3.1.1 CONNECT has.
static NO_PROPERTIES: ConnectProperties = ConnectProperties {
    session_expiry_interval: None,
    receive_maximum: None,
    maximum_packet_size: None,
    topic_alias_maximum: None,
    request_response_information: None,
    request_problem_information: None,
    user_properties: Vec::new(),
    authentication_method: None,
    authentication_data: None,
};

/// The CONNECT's properties, or none.
pub(super) fn properties(connect: &Connect) -> &ConnectProperties {
    connect.properties.as_deref().unwrap_or(&NO_PROPERTIES)
}

/// Checks a CONNECT before any session is touched. Returns the CONNACK refusal code, if any.
pub(super) fn refusal(connect: &Connect, context: &Context) -> Option<ReasonCode> {
    let v5 = connect.protocol == ProtocolVersion::V5;
    let keep_alive_max = context.config.keep_alive_timeout_secs;
    if !v5 && u64::from(connect.keep_alive) > keep_alive_max {
        // As Mosquitto's max_keepalive: 3.1.1 cannot tell the client a shorter interval (5.0
        // clients are told the cap in Server Keep Alive instead).
        return Some(ReasonCode::ClientIdentifierNotValid);
    }
    if !v5
        && connect.client_id.is_empty()
        && (!connect.clean_start || connect.protocol == ProtocolVersion::V31)
    {
        // [MQTT-3.1.3-8]: a zero-length identifier needs a clean session; 3.1 requires an
        // identifier (as Mosquitto answers 3.1 clients). 5.0 assigns one either way.
        return Some(ReasonCode::ClientIdentifierNotValid);
    }
    if connect.will.as_ref().is_some_and(|w| w.retain) && !context.config.retain_available {
        // 3.2.2.3.5: a retained will when Retain Available is 0 gets 0x9A (3.1.1: 0x03, the
        // closest return code, as Mosquitto answers).
        return Some(ReasonCode::RetainNotSupported);
    }
    if let Some(method) = properties(connect).authentication_method.as_deref().filter(|_| v5) {
        if context.auth_method(method).is_none() {
            // The server has no such enhanced authentication method (4.12).
            return Some(ReasonCode::BadAuthenticationMethod);
        }
    }
    None
}

/// The keep-alive the connection runs with: the client's, or for 5.0 the server's cap, which
/// CONNACK tells it in Server Keep Alive [MQTT-3.2.2-21]; the second value is that cap when it
/// applies.
pub(super) fn keep_alive(connect: &Connect, context: &Context) -> (u16, Option<u16>) {
    let cap = u16::try_from(context.config.keep_alive_timeout_secs).unwrap_or(u16::MAX);
    if connect.protocol == ProtocolVersion::V5 && connect.keep_alive > cap {
        (cap, Some(cap))
    } else {
        (connect.keep_alive, None)
    }
}

/// What the CONNECT and the server's settings make of the connection.
pub(super) fn link(connect: &Connect, context: &Context) -> Link {
    let config = &context.config;
    if connect.protocol != ProtocolVersion::V5 {
        return Link::v3(connect.protocol, config.max_inflight_messages);
    }
    let p = properties(connect);
    let receive_maximum = p.receive_maximum.map_or(usize::from(u16::MAX), |m| usize::from(m.get()));
    Link {
        version: ProtocolVersion::V5,
        max_inflight: config.max_inflight_messages.min(receive_maximum),
        max_packet_size: p.maximum_packet_size.map_or(usize::MAX, |m| m.get() as usize),
        client_alias_max: p.topic_alias_maximum.unwrap_or(0),
        server_alias_max: u16::try_from(config.max_topic_alias).unwrap_or(u16::MAX),
        receive_maximum: usize::try_from(config.receive_maximum).unwrap_or(usize::from(u16::MAX)),
        problem_information: p.request_problem_information.unwrap_or(true),
    }
}

/// The properties of a 5.0 CONNACK that accepts `connect`: what was granted where it differs
/// from what was asked, and what the server supports (3.2.2.3).
pub(super) fn connack_properties(
    connect: &Connect,
    context: &Context,
    accepted: &Accepted,
    assigned: Option<&ByteString>,
    server_keep_alive: Option<u16>,
) -> ConnAckProperties {
    let config = &context.config;
    let p = properties(connect);
    let requested = p.session_expiry_interval.unwrap_or(0);
    ConnAckProperties {
        session_expiry_interval: (accepted.expiry_interval != requested).then_some(accepted.expiry_interval),
        receive_maximum: u16::try_from(config.receive_maximum)
            .ok()
            .filter(|&m| m < u16::MAX)
            .and_then(NonZeroU16::new),
        retain_available: Some(config.retain_available),
        maximum_packet_size: u32::try_from(config.max_packet_size).ok().and_then(std::num::NonZeroU32::new),
        assigned_client_identifier: assigned.cloned(),
        topic_alias_maximum: u16::try_from(config.max_topic_alias).ok().filter(|&m| m > 0),
        wildcard_subscription_available: Some(true),
        subscription_identifiers_available: Some(true),
        shared_subscription_available: Some(config.shared_subscription_available),
        server_keep_alive,
        response_information: (p.request_response_information == Some(true))
            .then(|| ByteString::from(format!("response/{}", accepted.session.client_id))),
        ..ConnAckProperties::default()
    }
}

/// Checks a CONNECT for what the broker cannot honour and the client must not be told it has:
/// a will topic deeper than the hierarchy limit could never be published [MQTT-3.1.2-8], so the
/// connection is closed without CONNACK [MQTT-3.1.4-1] rather than accepted.
pub(super) fn violation(connect: &Connect) -> Option<DecodeError> {
    let will = connect.will.as_ref()?;
    too_deep(&will.topic).then_some(DecodeError::Violation(Rule::TopicTooDeep))
}

/// A server-assigned client identifier for a zero-length one [MQTT-3.1.3-6].
pub(super) fn assigned_client_id() -> ByteString {
    let state = RandomState::new();
    let high = state.hash_one(std::time::SystemTime::now());
    let low = RandomState::new().hash_one(high);
    ByteString::from(format!("auto-{high:016x}{low:016x}"))
}

/// True when `buf` starts with the fixed header of a CONNECT whose protocol is "MQTT" level 5,
/// whatever follows: a CONNECT the decoder refuses is still answered in 5.0 then.
pub(super) fn is_v5_connect(buf: &[u8]) -> bool {
    let Ok(Some(header)) = iothub_protocol::check(buf, usize::MAX) else {
        return false;
    };
    header.first_byte == 0x10
        && buf.get(header.header_len..header.header_len + 7) == Some(&[0, 4, b'M', b'Q', b'T', b'T', 5][..])
}

/// The decode error of the first packet, turned into what the client is told before the close:
/// a CONNACK 0x01 for an unsupported protocol level [MQTT-3.1.2-2]; for a 5.0 CONNECT, a CONNACK
/// with the error's reason code (0x81 Malformed Packet, 0x82 Protocol Error, 0x95 Packet too
/// large ...), as 3.2.2.2 allows before the close [MQTT-3.1.4-1]; for 3.1.1 nothing otherwise.
pub(super) fn answer_to_bad_connect(error: DecodeError, v5: bool, out: &mut BytesMut) -> Exit {
    if v5 && !matches!(error, DecodeError::UnsupportedProtocolVersion(_)) {
        // The client's own limits are in the CONNECT that could not be read: none apply.
        let link = Link::v3(ProtocolVersion::V5, 1);
        let _ = connack(out, &link, false, error.reason_code(), None);
        return Exit::Violation(error);
    }
    if let DecodeError::UnsupportedProtocolVersion(_) = error {
        // A 3.1.1 CONNACK is four bytes: it always fits.
        let link = Link::v3(ProtocolVersion::V311, 1);
        let _ = connack(out, &link, false, ReasonCode::UnsupportedProtocolVersion, None);
    }
    Exit::Violation(error)
}

/// Writes a CONNACK in the link's wire format.
/// If the client's Maximum Packet Size has no room for it, the properties that only say what
/// their absence says too (the "Available" ones set to 1) are left out; a CONNACK that still
/// does not fit is not sent [MQTT-3.1.2-24] and the error is returned, for the caller to close
/// the connection.
pub(super) fn connack(
    out: &mut BytesMut,
    link: &Link,
    session_present: bool,
    reason_code: ReasonCode,
    properties: Option<ConnAckProperties>,
) -> Result<(), EncodeError> {
    let packet = |properties: Option<ConnAckProperties>| {
        let properties = properties.filter(|p| !p.is_empty()).map(Box::new);
        Packet::ConnAck(ConnAck { session_present, reason_code, properties })
    };
    let full = packet(properties.clone());
    if link.write(out, &full).is_ok() {
        return Ok(());
    }
    let defaults = properties.map(|mut p| {
        let implied = |flag: &mut Option<bool>| {
            if *flag == Some(true) {
                *flag = None;
            }
        };
        implied(&mut p.retain_available);
        implied(&mut p.wildcard_subscription_available);
        implied(&mut p.subscription_identifiers_available);
        implied(&mut p.shared_subscription_available);
        p
    });
    link.write(out, &packet(defaults))
}

/// Builds the session for an accepted CONNECT from what the registry handed over: the stored
/// session is resumed for a persistent connection and discarded for a clean one
/// [MQTT-3.1.2-4], [MQTT-3.1.2-6].
pub(super) fn open_session(
    connect: &Connect,
    client_id: ByteString,
    previous: Option<Previous>,
    context: &Context,
) -> Accepted {
    let v5 = connect.protocol == ProtocolVersion::V5;
    let requested = properties(connect).session_expiry_interval.unwrap_or(0);
    match previous {
        Some(Previous::Stored(mut previous)) if !connect.clean_start && !previous.clean => {
            previous.mailbox().set_online(true);
            let expiry_interval = if v5 { previous.set_expiry_interval(requested) } else { 0 };
            return Accepted { session: previous, session_present: true, expiry_interval };
        }
        Some(Previous::Stored(mut previous) | Previous::Expired(mut previous)) => {
            discard(context, &mut previous);
        }
        None => {}
    }
    let session_id = context.registry.next_id();
    let mut mailbox =
        Mailbox::new(session_id, context.queue_limits()).counting_in(Arc::clone(&context.metrics));
    // A session that outlives its connection is durable, when storage is: 3.1.1 without clean
    // session, 5.0 with a Session Expiry Interval.
    let persistent = if v5 { requested > 0 } else { !connect.clean_start };
    if let Some(log) = context.session_log(&client_id, session_id).filter(|_| persistent) {
        mailbox = mailbox.logging_to(log);
    }
    let mailbox = Arc::new(mailbox);
    let mut session =
        Box::new(Session::new(client_id, connect.clean_start, mailbox, context.session_limits()));
    let expiry_interval = if v5 { session.set_expiry_interval(requested) } else { 0 };
    Accepted { session, session_present: false, expiry_interval }
}
