//! Small value types shared by every packet: QoS, protocol version, packet identifiers and
//! reason codes.
//!
//! One model serves MQTT 3.1, 3.1.1 and 5.0: 5.0 reason codes are the superset, and the encoder
//! maps them onto the 3.1.1 return codes when it writes an older version.

use core::num::NonZeroU16;

/// A packet identifier. Zero is never valid on the wire [MQTT-2.3.1-1], so the type cannot hold it.
pub type PacketId = NonZeroU16;

/// Quality of service of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once.
    AtLeastOnce = 1,
    /// QoS 2: exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a two-bit wire value; `None` for the forbidden value 3.
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The two-bit wire value.
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// The protocol revision a connection speaks, fixed by its CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1, protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1, protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0, protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name string of CONNECT.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolVersion::V31 => "MQIsdp",
            ProtocolVersion::V311 | ProtocolVersion::V5 => "MQTT",
        }
    }
}

/// MQTT 5.0 reason codes (section 2.4). The 3.1.1 CONNACK and SUBACK return codes are mapped onto
/// these so that one packet model serves both versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Each variant is the reason code of the same name in the 5.0 table.
pub enum ReasonCode {
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWill = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl ReasonCode {
    /// The reason code that grants `qos` in a SUBACK.
    pub fn granted(qos: QoS) -> ReasonCode {
        match qos {
            QoS::AtMostOnce => ReasonCode::Success,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        }
    }

    /// The byte value on the wire.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The reason code with this byte value; `None` for a value the 5.0 table (section 2.4)
    /// does not define.
    pub fn from_u8(value: u8) -> Option<ReasonCode> {
        use ReasonCode::*;
        Some(match value {
            0x00 => Success,
            0x01 => GrantedQoS1,
            0x02 => GrantedQoS2,
            0x04 => DisconnectWithWill,
            0x10 => NoMatchingSubscribers,
            0x11 => NoSubscriptionExisted,
            0x18 => ContinueAuthentication,
            0x19 => ReAuthenticate,
            0x80 => UnspecifiedError,
            0x81 => MalformedPacket,
            0x82 => ProtocolError,
            0x83 => ImplementationSpecificError,
            0x84 => UnsupportedProtocolVersion,
            0x85 => ClientIdentifierNotValid,
            0x86 => BadUserNameOrPassword,
            0x87 => NotAuthorized,
            0x88 => ServerUnavailable,
            0x89 => ServerBusy,
            0x8A => Banned,
            0x8B => ServerShuttingDown,
            0x8C => BadAuthenticationMethod,
            0x8D => KeepAliveTimeout,
            0x8E => SessionTakenOver,
            0x8F => TopicFilterInvalid,
            0x90 => TopicNameInvalid,
            0x91 => PacketIdentifierInUse,
            0x92 => PacketIdentifierNotFound,
            0x93 => ReceiveMaximumExceeded,
            0x94 => TopicAliasInvalid,
            0x95 => PacketTooLarge,
            0x96 => MessageRateTooHigh,
            0x97 => QuotaExceeded,
            0x98 => AdministrativeAction,
            0x99 => PayloadFormatInvalid,
            0x9A => RetainNotSupported,
            0x9B => QoSNotSupported,
            0x9C => UseAnotherServer,
            0x9D => ServerMoved,
            0x9E => SharedSubscriptionsNotSupported,
            0x9F => ConnectionRateExceeded,
            0xA0 => MaximumConnectTime,
            0xA1 => SubscriptionIdentifiersNotSupported,
            0xA2 => WildcardSubscriptionsNotSupported,
            _ => return None,
        })
    }

    /// The 3.1.1 CONNACK return code (section 3.2.2.3) closest to this reason code.
    pub fn v3_connack_code(self) -> u8 {
        match self {
            ReasonCode::Success => 0,
            ReasonCode::UnsupportedProtocolVersion => 1,
            ReasonCode::ClientIdentifierNotValid => 2,
            ReasonCode::BadUserNameOrPassword | ReasonCode::BadAuthenticationMethod => 4,
            ReasonCode::NotAuthorized | ReasonCode::Banned => 5,
            _ => 3,
        }
    }

    /// The reason code for a 3.1.1 CONNACK return code; `None` for the reserved values 6-255.
    pub fn from_v3_connack_code(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::Success,
            1 => ReasonCode::UnsupportedProtocolVersion,
            2 => ReasonCode::ClientIdentifierNotValid,
            3 => ReasonCode::ServerUnavailable,
            4 => ReasonCode::BadUserNameOrPassword,
            5 => ReasonCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The 3.1.1 SUBACK return code: the granted QoS, or 0x80 for any failure [MQTT-3.9.3-2].
    pub fn v3_suback_code(self) -> u8 {
        match self {
            ReasonCode::Success => 0x00,
            ReasonCode::GrantedQoS1 => 0x01,
            ReasonCode::GrantedQoS2 => 0x02,
            _ => 0x80,
        }
    }

    /// The reason code for a 3.1.1 SUBACK return code; `None` for values the spec forbids.
    pub fn from_v3_suback_code(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0x00 => ReasonCode::Success,
            0x01 => ReasonCode::GrantedQoS1,
            0x02 => ReasonCode::GrantedQoS2,
            0x80 => ReasonCode::UnspecifiedError,
            _ => return None,
        })
    }

    /// Whether a 5.0 CONNACK may carry this reason code (section 3.2.2.2).
    pub fn is_valid_for_connack(self) -> bool {
        use ReasonCode::*;
        matches!(
            self,
            Success
                | UnspecifiedError
                | MalformedPacket
                | ProtocolError
                | ImplementationSpecificError
                | UnsupportedProtocolVersion
                | ClientIdentifierNotValid
                | BadUserNameOrPassword
                | NotAuthorized
                | ServerUnavailable
                | ServerBusy
                | Banned
                | BadAuthenticationMethod
                | TopicNameInvalid
                | PacketTooLarge
                | QuotaExceeded
                | PayloadFormatInvalid
                | RetainNotSupported
                | QoSNotSupported
                | UseAnotherServer
                | ServerMoved
                | ConnectionRateExceeded
        )
    }

    /// Whether a 5.0 PUBACK or PUBREC may carry this reason code (sections 3.4.2.1 and
    /// 3.5.2.1, which list the same codes).
    pub fn is_valid_for_puback(self) -> bool {
        use ReasonCode::*;
        matches!(
            self,
            Success
                | NoMatchingSubscribers
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicNameInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | PayloadFormatInvalid
        )
    }

    /// Whether a 5.0 PUBREL or PUBCOMP may carry this reason code (sections 3.6.2.1 and
    /// 3.7.2.1): 0x00 Success or 0x92 Packet Identifier not found.
    pub fn is_valid_for_pubrel(self) -> bool {
        matches!(self, ReasonCode::Success | ReasonCode::PacketIdentifierNotFound)
    }

    /// Whether a 5.0 SUBACK may carry this reason code (section 3.9.3).
    pub fn is_valid_for_suback(self) -> bool {
        use ReasonCode::*;
        matches!(
            self,
            Success
                | GrantedQoS1
                | GrantedQoS2
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicFilterInvalid
                | PacketIdentifierInUse
                | QuotaExceeded
                | SharedSubscriptionsNotSupported
                | SubscriptionIdentifiersNotSupported
                | WildcardSubscriptionsNotSupported
        )
    }

    /// Whether a 5.0 UNSUBACK may carry this reason code (section 3.11.3).
    pub fn is_valid_for_unsuback(self) -> bool {
        use ReasonCode::*;
        matches!(
            self,
            Success
                | NoSubscriptionExisted
                | UnspecifiedError
                | ImplementationSpecificError
                | NotAuthorized
                | TopicFilterInvalid
                | PacketIdentifierInUse
        )
    }

    /// Whether a 5.0 DISCONNECT may carry this reason code (section 3.14.2.1).
    pub fn is_valid_for_disconnect(self) -> bool {
        use ReasonCode::*;
        !matches!(
            self,
            GrantedQoS1
                | GrantedQoS2
                | NoMatchingSubscribers
                | NoSubscriptionExisted
                | ContinueAuthentication
                | ReAuthenticate
                | UnsupportedProtocolVersion
                | ClientIdentifierNotValid
                | BadUserNameOrPassword
                | ServerUnavailable
                | Banned
                | BadAuthenticationMethod
                | PacketIdentifierInUse
                | PacketIdentifierNotFound
        )
    }

    /// Whether a 5.0 AUTH may carry this reason code (section 3.15.2.1): 0x00 Success, 0x18
    /// Continue authentication or 0x19 Re-authenticate.
    pub fn is_valid_for_auth(self) -> bool {
        matches!(self, ReasonCode::Success | ReasonCode::ContinueAuthentication | ReasonCode::ReAuthenticate)
    }

    /// True for codes below 0x80, which report success.
    pub fn is_success(self) -> bool {
        self.value() < 0x80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_u8_inverts_value_and_knows_only_the_5_0_codes() {
        let mut known = 0;
        for value in 0..=u8::MAX {
            if let Some(code) = ReasonCode::from_u8(value) {
                assert_eq!(code.value(), value);
                known += 1;
            }
        }
        // Section 2.4 defines 43 reason codes.
        assert_eq!(known, 43);
    }

    #[test]
    fn each_packet_type_allows_the_codes_of_its_table() {
        let allowed = |valid: fn(ReasonCode) -> bool| -> usize {
            (0..=u8::MAX).filter_map(ReasonCode::from_u8).filter(|&code| valid(code)).count()
        };
        assert_eq!(allowed(ReasonCode::is_valid_for_connack), 22); // Section 3.2.2.2.
        assert_eq!(allowed(ReasonCode::is_valid_for_puback), 9); // Sections 3.4.2.1 and 3.5.2.1.
        assert_eq!(allowed(ReasonCode::is_valid_for_pubrel), 2); // Sections 3.6.2.1 and 3.7.2.1.
        assert_eq!(allowed(ReasonCode::is_valid_for_suback), 12); // Section 3.9.3.
        assert_eq!(allowed(ReasonCode::is_valid_for_unsuback), 7); // Section 3.11.3.
        assert_eq!(allowed(ReasonCode::is_valid_for_disconnect), 29); // Section 3.14.2.1.
        assert_eq!(allowed(ReasonCode::is_valid_for_auth), 3); // Section 3.15.2.1.
        assert!(ReasonCode::DisconnectWithWill.is_valid_for_disconnect());
        assert!(!ReasonCode::DisconnectWithWill.is_valid_for_connack());
    }
}
