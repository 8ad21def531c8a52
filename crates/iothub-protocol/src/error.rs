//! Codec errors. Each names the rule of the specification that the input broke and knows the
//! MQTT 5.0 reason code a server answers it with.
//!
//! "Need more bytes" is never an error: the decoder returns `Ok(None)` for it.

use crate::types::ReasonCode;

/// Why a byte sequence is not a valid MQTT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes break the packet grammar; the message names the rule.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well formed but not allowed here; the message names the rule.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The fixed header announces a packet larger than the configured maximum.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// CONNECT names a protocol level this server does not speak [MQTT-3.1.2-2].
    #[error("[MQTT-3.1.2-2] unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT names a protocol other than "MQTT" or "MQIsdp" [MQTT-3.1.2-1].
    #[error("[MQTT-3.1.2-1] protocol name is not \"MQTT\"")]
    InvalidProtocolName,
}

impl DecodeError {
    /// The MQTT 5.0 reason code a server sends (in CONNACK or DISCONNECT) for this error.
    pub fn reason_code(self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) => ReasonCode::MalformedPacket,
            DecodeError::Protocol(_) => ReasonCode::ProtocolError,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                ReasonCode::UnsupportedProtocolVersion
            }
        }
    }
}

/// Why a packet cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The packet's remaining length exceeds 268,435,455 bytes, the most four bytes can encode.
    #[error("packet body of {0} bytes exceeds the 268435455 bytes MQTT can encode")]
    PacketTooLarge(usize),
    /// A string or binary field is longer than the 65,535 bytes its length prefix can encode.
    #[error("field of {0} bytes exceeds the 65535 bytes of a length-prefixed field")]
    FieldTooLong(usize),
    /// The packet has no encoding in the requested protocol version.
    #[error("{0} cannot be encoded in this protocol version")]
    Unsupported(&'static str),
}
