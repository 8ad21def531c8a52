//! Codec errors. A broken rule of the specification is a [`Rule`], which names the rule and
//! knows the MQTT 5.0 reason code a server answers it with; the other errors carry what the
//! decoder found.
//!
//! "Need more bytes" is never an error: the decoder returns `Ok(None)` for it.

use crate::rule::Rule;
use crate::types::ReasonCode;

/// Why a byte sequence is not a valid MQTT packet, or a packet is not allowed where it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet breaks a rule of the specification. The decoder returns the grammar rules;
    /// the broker builds the rules that need session state, such as [`Rule::Mqtt3_1_0_2`].
    #[error("{}: {}", .0.kind(), .0)]
    Violation(Rule),
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
    /// A packet this decoder has no reading for. The decoder reads every packet of MQTT 3.1,
    /// 3.1.1 and 5.0 and never returns this; the variant stays for callers that match on it.
    #[error("implementation specific error: packet not supported")]
    Unsupported,
}

impl DecodeError {
    /// The MQTT 5.0 reason code a server sends (in CONNACK or DISCONNECT) for this error.
    pub fn reason_code(self) -> ReasonCode {
        match self {
            DecodeError::Violation(rule) => rule.reason_code(),
            DecodeError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                ReasonCode::UnsupportedProtocolVersion
            }
            DecodeError::Unsupported => ReasonCode::ImplementationSpecificError,
        }
    }
}

impl From<Rule> for DecodeError {
    fn from(rule: Rule) -> DecodeError {
        DecodeError::Violation(rule)
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
    /// The packet has no encoding in the requested protocol version: AUTH, which MQTT 3.1 and
    /// 3.1.1 do not have.
    #[error("{0} cannot be encoded in this protocol version")]
    Unsupported(&'static str),
    /// The packet, with everything [`Packet::encode_within`](crate::Packet::encode_within) may
    /// leave out left out, is larger than the receiver's Maximum Packet Size.
    #[error("packet of {size} bytes exceeds the receiver's maximum packet size of {max} bytes")]
    ExceedsMaximumPacketSize {
        /// Size of the smallest packet that could be written, fixed header included.
        size: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// A Subscription Identifier above 268,435,455, the most a Variable Byte Integer encodes
    /// (section 3.3.2.3.8).
    #[error("subscription identifier {0} exceeds 268435455, the most a variable byte integer encodes")]
    SubscriptionIdentifierTooLarge(u32),
}
