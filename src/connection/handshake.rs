//! The start of a connection: the CONNECT packet, the client identifier, the session takeover
//! and the CONNACK.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use bytes::BytesMut;
use bytestring::ByteString;
use iothub_protocol::{ConnAck, Connect, DecodeError, Packet, ProtocolVersion, ReasonCode, Rule};

use super::handoff::discard;
use crate::context::Context;
use crate::exit::Exit;
use crate::mailbox::Mailbox;
use crate::message::too_deep;
use crate::session::{write, Previous, Session};

/// The outcome of a CONNECT that the server accepts.
pub(super) struct Accepted {
    /// The session to serve, fresh or resumed.
    pub session: Box<Session>,
    /// Whether a stored session was resumed.
    pub session_present: bool,
}

/// Checks a CONNECT before any session is touched. Returns the CONNACK refusal code, if any.
pub(super) fn refusal(connect: &Connect, context: &Context) -> Option<ReasonCode> {
    let keep_alive_max = context.config.keep_alive_timeout_secs;
    if u64::from(connect.keep_alive) > keep_alive_max {
        // As Mosquitto's max_keepalive: 3.1.1 cannot tell the client a shorter interval.
        return Some(ReasonCode::ClientIdentifierNotValid);
    }
    if connect.client_id.is_empty() && (!connect.clean_start || connect.protocol == ProtocolVersion::V31) {
        // [MQTT-3.1.3-8]: a zero-length identifier needs a clean session; 3.1 requires an
        // identifier (as Mosquitto answers 3.1 clients).
        return Some(ReasonCode::ClientIdentifierNotValid);
    }
    None
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

/// The decode error of the first packet, turned into what the client is told before the close:
/// a CONNACK 0x01 for an unsupported protocol level [MQTT-3.1.2-2], nothing otherwise.
pub(super) fn answer_to_bad_connect(error: DecodeError, out: &mut BytesMut) -> Exit {
    if let DecodeError::UnsupportedProtocolVersion(_) = error {
        connack(out, false, ReasonCode::UnsupportedProtocolVersion);
    }
    Exit::Violation(error)
}

/// Writes a CONNACK.
pub(super) fn connack(out: &mut BytesMut, session_present: bool, reason_code: ReasonCode) {
    let packet = Packet::ConnAck(ConnAck { session_present, reason_code, properties: None });
    // A CONNACK always fits: it is four bytes.
    let _ = write(out, &packet);
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
    match previous {
        Some(Previous::Stored(previous)) if !connect.clean_start && !previous.clean => {
            previous.mailbox().set_online(true);
            return Accepted { session: previous, session_present: true };
        }
        Some(Previous::Stored(mut previous) | Previous::Expired(mut previous)) => {
            discard(context, &mut previous);
        }
        None => {}
    }
    let mailbox = Arc::new(
        Mailbox::new(context.registry.next_id(), context.queue_limits())
            .counting_in(Arc::clone(&context.metrics)),
    );
    Accepted {
        session: Box::new(Session::new(client_id, connect.clean_start, mailbox, context.session_limits())),
        session_present: false,
    }
}
