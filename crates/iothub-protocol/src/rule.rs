//! The rules a peer can break: one variant per normative statement, or per grammar rule that the
//! specification states without a number, that the decoder or the broker checks.
//!
//! Each rule knows the message logged when it is broken, whether breaking it makes the packet
//! malformed or is a protocol error (3.1.1 section 4.8, 5.0 section 4.13), and the MQTT 5.0
//! reason code a server sends for it. This module only names rules; the decoder checks the
//! grammar and the broker checks the rules that need session state.

use core::fmt;

use crate::types::ReasonCode;

/// The two kinds of violation the specification distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// The bytes cannot be parsed as the packet they claim to be.
    Malformed,
    /// The packet parses but is not allowed, or not allowed here.
    Protocol,
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ViolationKind::Malformed => "malformed packet",
            ViolationKind::Protocol => "protocol error",
        })
    }
}

/// A rule of the MQTT specification that a packet broke.
///
/// A variant named `MqttA_B_C_N` is the normative statement [MQTT-A.B.C-N] of MQTT 3.1.1, and one
/// named `V5_A_B_C_N` the statement [MQTT-A.B.C-N] of MQTT 5.0, whose numbering differs. The
/// other variants are rules the specification states in the section their documentation names
/// (of 3.1.1 unless it says 5.0), checks that split one statement in two, or limits of the
/// broker. A 5.0 packet that breaks a rule both versions share is refused with the 3.1.1
/// variant, such as [`Rule::Mqtt3_3_1_4`] for a PUBLISH with QoS 3. `Display` writes the message
/// alone; [`DecodeError`](crate::DecodeError) prefixes it with the [`ViolationKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// [MQTT-1.5.3-1]: a UTF-8 string is well formed and encodes no surrogate.
    Mqtt1_5_3_1,
    /// [MQTT-1.5.3-2]: a UTF-8 string does not contain U+0000.
    Mqtt1_5_3_2,
    /// Section 2.2.1: packet types 0 and 15 are reserved.
    ReservedPacketType,
    /// [MQTT-2.2.2-2]: the flags of the fixed header are those of table 2.2.
    Mqtt2_2_2_2,
    /// Section 2.2.3: the remaining length takes at most four bytes.
    RemainingLengthTooLong,
    /// Section 2.2.3: PINGREQ, PINGRESP and DISCONNECT have no body.
    RemainingLengthNotZero,
    /// Section 2.2.3: PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK hold a packet identifier only.
    RemainingLengthNotTwo,
    /// Section 2.2.3: CONNACK holds its flags and return code only.
    ConnAckRemainingLengthNotTwo,
    /// Section 2.2.3: the remaining length leaves no room for a field the packet must carry.
    PacketTooShort,
    /// Section 2.2.3: bytes follow the last field of a CONNECT.
    TrailingBytes,
    /// [MQTT-2.3.1-1]: a packet identifier is not 0.
    Mqtt2_3_1_1,
    /// [MQTT-3.1.0-1]: the first packet from the client is CONNECT. Checked by the broker.
    Mqtt3_1_0_1,
    /// [MQTT-3.1.0-2]: a client sends CONNECT only once. Checked by the broker.
    Mqtt3_1_0_2,
    /// [MQTT-3.1.2-3]: the reserved flag of CONNECT is 0.
    Mqtt3_1_2_3,
    /// [MQTT-3.1.2-13]: without the will flag, the will QoS is 0.
    Mqtt3_1_2_13,
    /// [MQTT-3.1.2-14]: the will QoS is not 3.
    Mqtt3_1_2_14,
    /// [MQTT-3.1.2-15]: without the will flag, will retain is 0.
    Mqtt3_1_2_15,
    /// [MQTT-3.1.2-22]: a password comes only with a user name.
    Mqtt3_1_2_22,
    /// [MQTT-3.2.2-1]: the reserved CONNACK flags are 0.
    Mqtt3_2_2_1,
    /// Section 3.2.2.3: CONNACK return codes 6 to 255 are reserved.
    ReservedConnAckReturnCode,
    /// [MQTT-3.3.1-2]: the DUP flag is 0 on a QoS 0 PUBLISH.
    Mqtt3_3_1_2,
    /// [MQTT-3.3.1-4]: a PUBLISH does not have both QoS bits set.
    Mqtt3_3_1_4,
    /// [MQTT-3.3.2-2]: a topic name contains no wildcard character.
    Mqtt3_3_2_2,
    /// [MQTT-3.8.3-3]: a SUBSCRIBE carries at least one topic filter.
    Mqtt3_8_3_3,
    /// [MQTT-3.8.3-4], first half: the reserved bits of a requested QoS byte are 0.
    Mqtt3_8_3_4,
    /// [MQTT-3.8.3-4], second half: a requested QoS is 0, 1 or 2.
    RequestedQoS3,
    /// Section 3.9.3: a SUBACK carries one return code per filter, so at least one.
    SubAckWithoutReturnCodes,
    /// [MQTT-3.9.3-2]: SUBACK return codes other than 0x00, 0x01, 0x02 and 0x80 are reserved.
    Mqtt3_9_3_2,
    /// [MQTT-3.10.3-2]: an UNSUBSCRIBE carries at least one topic filter.
    Mqtt3_10_3_2,
    /// [MQTT-4.7.1-2]: `#` stands alone as the last level of a topic filter.
    Mqtt4_7_1_2,
    /// [MQTT-4.7.1-3]: `+` occupies a whole level of a topic filter.
    Mqtt4_7_1_3,
    /// [MQTT-4.7.3-1] for topic names: a topic name is at least one character long.
    EmptyTopicName,
    /// [MQTT-4.7.3-1] for topic filters: a topic filter is at least one character long.
    EmptyTopicFilter,
    /// A client sent a packet that only a server sends (CONNACK, SUBACK, UNSUBACK, PINGRESP);
    /// [MQTT-4.8.0-1] has the connection closed. Checked by the broker.
    ServerOnlyPacket,
    /// A topic name deeper than the broker's topic hierarchy allows. Checked by the broker.
    TopicTooDeep,
    /// 5.0 [MQTT-1.5.4-1]: a UTF-8 string is well formed and encodes no surrogate.
    V5_1_5_4_1,
    /// 5.0 [MQTT-1.5.4-2]: a UTF-8 string does not contain U+0000.
    V5_1_5_4_2,
    /// 5.0 [MQTT-1.5.5-1]: a Variable Byte Integer takes at most four bytes (section 1.5.5).
    V5_1_5_5_1,
    /// 5.0 section 2.2.2.1: the Property Length fits in the packet, and the properties fit in the
    /// Property Length.
    PropertyLengthInvalid,
    /// 5.0 section 2.2.2.2: the property identifier is one that table 2-4 allows in this packet.
    PropertyNotAllowed,
    /// 5.0 section 2.2.2.2 and each property's section: a property other than User Property,
    /// and Subscription Identifier in PUBLISH, appears at most once.
    DuplicateProperty,
    /// 5.0 section 2.4 and the reason code table of each packet (sections 3.2.2.2, 3.4.2.1,
    /// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1): the reason code is one
    /// the packet type may carry. The specification names no kind for this; the code is part of
    /// the packet's grammar, so a code outside its table makes the packet malformed, as a
    /// reserved SUBACK return code does in 3.1.1 ([`Rule::Mqtt3_9_3_2`]).
    InvalidReasonCode,
    /// 5.0 sections 3.1.2.11.3 and 3.2.2.3.3: Receive Maximum is not 0.
    ReceiveMaximumZero,
    /// 5.0 sections 3.1.2.11.4 and 3.2.2.3.6: Maximum Packet Size is not 0.
    MaximumPacketSizeZero,
    /// 5.0 sections 3.3.2.3.2 and 3.1.3.2.3: the Payload Format Indicator is 0 or 1.
    PayloadFormatIndicatorInvalid,
    /// 5.0 section 3.2.2.3.4: Maximum QoS is 0 or 1 (an absent one means 2).
    MaximumQoSInvalid,
    /// 5.0 sections 3.1.2.11.6, 3.1.2.11.7, 3.2.2.3.5 and 3.2.2.3.11 to 3.2.2.3.13: Request
    /// Response Information, Request Problem Information, Retain Available and the three
    /// "Available" properties are 0 or 1.
    YesNoPropertyInvalid,
    /// 5.0 section 3.1.2.11.10: Authentication Data comes only with an Authentication Method.
    AuthenticationDataWithoutMethod,
    /// 5.0 [MQTT-3.3.2-8]: a Topic Alias is not 0.
    V5_3_3_2_8,
    /// 5.0 [MQTT-3.3.2-14]: a Response Topic (of a PUBLISH, or of a will in section 3.1.3.2.6)
    /// is a topic name, so it contains no wildcard character. An empty one is
    /// [`Rule::EmptyTopicName`].
    V5_3_3_2_14,
    /// 5.0 sections 3.3.2.3.8 and 3.8.2.1.2: a Subscription Identifier is not 0.
    SubscriptionIdentifierZero,
    /// 5.0 [MQTT-3.8.3-4]: No Local is not set on a shared subscription (a `$share/` filter).
    V5_3_8_3_4,
    /// 5.0 [MQTT-3.8.3-5]: bits 6 and 7 of the subscription options are 0.
    V5_3_8_3_5,
    /// 5.0 section 3.8.3.1: Retain Handling is not 3.
    RetainHandling3,
    /// 5.0 section 3.11.3: an UNSUBACK carries one reason code per filter, so at least one.
    UnsubAckWithoutReasonCodes,
    /// 5.0 [MQTT-3.3.2-9]: a client's Topic Alias is at most the Topic Alias Maximum of the
    /// server's CONNACK. Checked by the broker.
    V5_3_3_2_9,
    /// 5.0 section 3.3.2.3.4: a PUBLISH with an empty topic name carries a Topic Alias that an
    /// earlier PUBLISH of the connection set. Checked by the broker.
    TopicAliasUnknown,
    /// 5.0 [MQTT-3.3.4-6]: a client's PUBLISH carries no Subscription Identifier. Checked by the
    /// broker.
    V5_3_3_4_6,
    /// 5.0 [MQTT-3.3.4-7]: a client has at most the server's Receive Maximum QoS 1 and 2
    /// PUBLISHes unacknowledged. Checked by the broker.
    V5_3_3_4_7,
    /// 5.0 section 3.3.2.3.2: a payload whose Payload Format Indicator is 1 is UTF-8. Checked by
    /// the broker.
    PayloadNotUtf8,
    /// 5.0 section 3.14.2.2.2: a DISCONNECT does not set a non-zero Session Expiry Interval when
    /// the CONNECT's was 0. Checked by the broker.
    SessionExpiryRaisedFromZero,
    /// 5.0 section 4.12: AUTH comes only on a connection whose CONNECT named an authentication
    /// method. Checked by the broker.
    AuthWithoutMethod,
    /// 5.0 sections 4.12 and 4.12.1: an AUTH names the connection's authentication method, and
    /// its reason code is the one the exchange is at (0x18 to continue, 0x19 to start
    /// re-authentication). Checked by the broker.
    AuthOutOfSequence,
    /// 5.0 section 3.2.2.3.5: no retained PUBLISH to a server whose Retain Available is 0.
    /// Checked by the broker; 3.1.1 has no such rule, and the broker closes the connection.
    RetainNotAvailable,
    /// 5.0 section 3.2.2.3.13: no shared subscription on a server whose Shared Subscription
    /// Available is 0. Checked by the broker.
    SharedSubscriptionNotAvailable,
}

impl Rule {
    /// The message logged when the rule is broken; it cites the rule's identifier.
    pub const fn message(self) -> &'static str {
        match self {
            Rule::Mqtt1_5_3_1 => "[MQTT-1.5.3-1] string is not well-formed UTF-8",
            Rule::Mqtt1_5_3_2 => "[MQTT-1.5.3-2] UTF-8 string contains U+0000",
            Rule::ReservedPacketType => "[MQTT-2.2.1] reserved control packet type",
            Rule::Mqtt2_2_2_2 => "[MQTT-2.2.2-2] invalid flags in the fixed header",
            Rule::RemainingLengthTooLong => {
                "[MQTT-2.2.3] remaining length is encoded in more than four bytes"
            }
            Rule::RemainingLengthNotZero => "[MQTT-2.2.3] remaining length must be 0 for this packet type",
            Rule::RemainingLengthNotTwo => "[MQTT-2.2.3] remaining length must be 2 for this packet type",
            Rule::ConnAckRemainingLengthNotTwo => "[MQTT-2.2.3] remaining length of CONNACK must be 2",
            Rule::PacketTooShort => "[MQTT-2.2.3] packet is shorter than its fields",
            Rule::TrailingBytes => "[MQTT-2.2.3] packet has bytes after its last field",
            Rule::Mqtt2_3_1_1 => "[MQTT-2.3.1-1] packet identifier is 0",
            Rule::Mqtt3_1_0_1 => "[MQTT-3.1.0-1] the first packet must be CONNECT",
            Rule::Mqtt3_1_0_2 => "[MQTT-3.1.0-2] a second CONNECT",
            Rule::Mqtt3_1_2_3 => "[MQTT-3.1.2-3] reserved CONNECT flag is set",
            Rule::Mqtt3_1_2_13 => "[MQTT-3.1.2-13] will QoS is set without the will flag",
            Rule::Mqtt3_1_2_14 => "[MQTT-3.1.2-14] will QoS is 3",
            Rule::Mqtt3_1_2_15 => "[MQTT-3.1.2-15] will retain is set without the will flag",
            Rule::Mqtt3_1_2_22 => "[MQTT-3.1.2-22] password flag is set without the user name flag",
            Rule::Mqtt3_2_2_1 => "[MQTT-3.2.2-1] reserved CONNACK flags are set",
            Rule::ReservedConnAckReturnCode => "[MQTT-3.2.2.3] reserved CONNACK return code",
            Rule::Mqtt3_3_1_2 => "[MQTT-3.3.1-2] DUP flag set on a QoS 0 PUBLISH",
            Rule::Mqtt3_3_1_4 => "[MQTT-3.3.1-4] PUBLISH with QoS 3",
            Rule::Mqtt3_3_2_2 => "[MQTT-3.3.2-2] topic name contains a wildcard character",
            Rule::Mqtt3_8_3_3 => "[MQTT-3.8.3-3] SUBSCRIBE carries no topic filter",
            Rule::Mqtt3_8_3_4 => "[MQTT-3.8.3-4] reserved bits of the requested QoS byte are set",
            Rule::RequestedQoS3 => "[MQTT-3.8.3-4] requested QoS is 3",
            Rule::SubAckWithoutReturnCodes => "[MQTT-3.9.3] SUBACK carries no return codes",
            Rule::Mqtt3_9_3_2 => "[MQTT-3.9.3-2] reserved SUBACK return code",
            Rule::Mqtt3_10_3_2 => "[MQTT-3.10.3-2] UNSUBSCRIBE carries no topic filter",
            Rule::Mqtt4_7_1_2 => {
                "[MQTT-4.7.1-2] '#' must be the last level of a topic filter and stand alone"
            }
            Rule::Mqtt4_7_1_3 => "[MQTT-4.7.1-3] '+' must occupy a whole topic level",
            Rule::EmptyTopicName => "[MQTT-4.7.3-1] topic name is empty",
            Rule::EmptyTopicFilter => "[MQTT-4.7.3-1] topic filter is empty",
            Rule::ServerOnlyPacket => "[MQTT-4.8.0-1] a packet only a server may send",
            Rule::TopicTooDeep => "topic has more than 200 separators, the broker's hierarchy limit",
            Rule::V5_1_5_4_1 => "[MQTT-1.5.4-1] string is not well-formed UTF-8 (MQTT 5.0)",
            Rule::V5_1_5_4_2 => "[MQTT-1.5.4-2] UTF-8 string contains U+0000 (MQTT 5.0)",
            Rule::V5_1_5_5_1 => "[MQTT-1.5.5-1] variable byte integer is longer than four bytes",
            Rule::PropertyLengthInvalid => {
                "[MQTT-2.2.2.1] property length runs past the packet or cuts a property short"
            }
            Rule::PropertyNotAllowed => "[MQTT-2.2.2.2] property identifier not allowed in this packet",
            Rule::DuplicateProperty => "[MQTT-2.2.2.2] property that may appear once appears twice",
            Rule::InvalidReasonCode => "[MQTT-2.4] reason code not allowed in this packet type",
            Rule::ReceiveMaximumZero => "[MQTT-3.1.2.11.3] Receive Maximum is 0",
            Rule::MaximumPacketSizeZero => "[MQTT-3.1.2.11.4] Maximum Packet Size is 0",
            Rule::PayloadFormatIndicatorInvalid => "[MQTT-3.3.2.3.2] Payload Format Indicator is not 0 or 1",
            Rule::MaximumQoSInvalid => "[MQTT-3.2.2.3.4] Maximum QoS is not 0 or 1",
            Rule::YesNoPropertyInvalid => "[MQTT-3.1.2.11.7] a yes-or-no property is not 0 or 1",
            Rule::AuthenticationDataWithoutMethod => {
                "[MQTT-3.1.2.11.10] Authentication Data without an Authentication Method"
            }
            Rule::V5_3_3_2_8 => "[MQTT-3.3.2-8] Topic Alias is 0",
            Rule::V5_3_3_2_14 => "[MQTT-3.3.2-14] Response Topic contains a wildcard character",
            Rule::SubscriptionIdentifierZero => "[MQTT-3.8.2.1.2] Subscription Identifier is 0",
            Rule::V5_3_8_3_4 => "[MQTT-3.8.3-4] No Local is set on a shared subscription",
            Rule::V5_3_8_3_5 => "[MQTT-3.8.3-5] reserved bits of the subscription options are set",
            Rule::V5_3_3_2_9 => "[MQTT-3.3.2-9] Topic Alias is above the server's Topic Alias Maximum",
            Rule::TopicAliasUnknown => {
                "[MQTT-3.3.2.3.4] empty topic name with a Topic Alias that was never set"
            }
            Rule::V5_3_3_4_6 => "[MQTT-3.3.4-6] a client's PUBLISH carries a Subscription Identifier",
            Rule::V5_3_3_4_7 => {
                "[MQTT-3.3.4-7] more unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum"
            }
            Rule::PayloadNotUtf8 => {
                "[MQTT-3.3.2.3.2] payload is not UTF-8 though its Payload Format Indicator is 1"
            }
            Rule::SessionExpiryRaisedFromZero => {
                "[MQTT-3.14.2.2.2] DISCONNECT sets a Session Expiry Interval after CONNECT set 0"
            }
            Rule::AuthWithoutMethod => "[MQTT-4.12] AUTH without an authentication method",
            Rule::RetainNotAvailable => {
                "[MQTT-3.2.2.3.5] retained PUBLISH, and the server has Retain Available 0"
            }
            Rule::SharedSubscriptionNotAvailable => {
                "[MQTT-3.2.2.3.13] shared subscription, and the server has Shared Subscription Available 0"
            }
            Rule::AuthOutOfSequence => {
                "[MQTT-4.12.1] AUTH with another method, or a reason code the exchange is not at"
            }
            Rule::RetainHandling3 => "[MQTT-3.8.3.1] Retain Handling is 3",
            Rule::UnsubAckWithoutReasonCodes => "[MQTT-3.11.3] UNSUBACK carries no reason codes",
        }
    }

    /// Whether breaking the rule makes the packet malformed or is a protocol error, as MQTT
    /// 3.1.1 classifies it, or MQTT 5.0 for the rules only 5.0 has.
    pub const fn kind(self) -> ViolationKind {
        match self {
            Rule::Mqtt3_1_0_1
            | Rule::Mqtt3_1_0_2
            | Rule::Mqtt3_8_3_3
            | Rule::SubAckWithoutReturnCodes
            | Rule::Mqtt3_10_3_2
            | Rule::ServerOnlyPacket
            | Rule::TopicTooDeep
            | Rule::DuplicateProperty
            | Rule::ReceiveMaximumZero
            | Rule::MaximumPacketSizeZero
            | Rule::PayloadFormatIndicatorInvalid
            | Rule::MaximumQoSInvalid
            | Rule::YesNoPropertyInvalid
            | Rule::AuthenticationDataWithoutMethod
            | Rule::V5_3_3_2_8
            | Rule::V5_3_3_2_14
            | Rule::SubscriptionIdentifierZero
            | Rule::V5_3_8_3_4
            | Rule::RetainHandling3
            | Rule::UnsubAckWithoutReasonCodes
            | Rule::V5_3_3_2_9
            | Rule::TopicAliasUnknown
            | Rule::V5_3_3_4_6
            | Rule::V5_3_3_4_7
            | Rule::PayloadNotUtf8
            | Rule::SessionExpiryRaisedFromZero
            | Rule::AuthWithoutMethod
            | Rule::AuthOutOfSequence
            | Rule::RetainNotAvailable
            | Rule::SharedSubscriptionNotAvailable => ViolationKind::Protocol,
            Rule::Mqtt1_5_3_1
            | Rule::Mqtt1_5_3_2
            | Rule::ReservedPacketType
            | Rule::Mqtt2_2_2_2
            | Rule::RemainingLengthTooLong
            | Rule::RemainingLengthNotZero
            | Rule::RemainingLengthNotTwo
            | Rule::ConnAckRemainingLengthNotTwo
            | Rule::PacketTooShort
            | Rule::TrailingBytes
            | Rule::Mqtt2_3_1_1
            | Rule::Mqtt3_1_2_3
            | Rule::Mqtt3_1_2_13
            | Rule::Mqtt3_1_2_14
            | Rule::Mqtt3_1_2_15
            | Rule::Mqtt3_1_2_22
            | Rule::Mqtt3_2_2_1
            | Rule::ReservedConnAckReturnCode
            | Rule::Mqtt3_3_1_2
            | Rule::Mqtt3_3_1_4
            | Rule::Mqtt3_3_2_2
            | Rule::Mqtt3_8_3_4
            | Rule::RequestedQoS3
            | Rule::Mqtt3_9_3_2
            | Rule::Mqtt4_7_1_2
            | Rule::Mqtt4_7_1_3
            | Rule::EmptyTopicName
            | Rule::EmptyTopicFilter
            | Rule::V5_1_5_4_1
            | Rule::V5_1_5_4_2
            | Rule::V5_1_5_5_1
            | Rule::PropertyLengthInvalid
            | Rule::PropertyNotAllowed
            | Rule::InvalidReasonCode
            | Rule::V5_3_8_3_5 => ViolationKind::Malformed,
        }
    }

    /// The MQTT 5.0 reason code a server sends (in CONNACK or DISCONNECT) for this rule: the
    /// specific code where 5.0 has one, else 0x81 Malformed Packet or 0x82 Protocol Error as
    /// 5.0 classifies the rule, and as 3.1.1 does where 5.0 has no such rule.
    pub const fn reason_code(self) -> ReasonCode {
        match self {
            // 0x90: the topic name is not accepted by the receiver.
            Rule::Mqtt3_3_2_2 | Rule::TopicTooDeep => ReasonCode::TopicNameInvalid,
            // 0x8F: the topic filter is not accepted by the receiver.
            Rule::Mqtt4_7_1_2 | Rule::Mqtt4_7_1_3 | Rule::EmptyTopicFilter => ReasonCode::TopicFilterInvalid,
            // 5.0 section 3.8.3.1 makes a Maximum QoS of 3 a Protocol Error, and section 3.3.2.3.4
            // an empty topic name without a Topic Alias.
            Rule::RequestedQoS3 | Rule::EmptyTopicName => ReasonCode::ProtocolError,
            // 0x94: a Topic Alias of 0 (5.0 section 3.3.2.3.4).
            Rule::V5_3_3_2_8 | Rule::V5_3_3_2_9 => ReasonCode::TopicAliasInvalid,
            // 0x93: more QoS 1/2 PUBLISHes than the Receive Maximum (3.3.4).
            Rule::V5_3_3_4_7 => ReasonCode::ReceiveMaximumExceeded,
            // 0x99: the payload does not match its Payload Format Indicator (3.3.2.3.2).
            Rule::PayloadNotUtf8 => ReasonCode::PayloadFormatInvalid,
            // 0x9A and 0x9E: features the server has turned off (3.2.2.3.5, 3.2.2.3.13).
            Rule::RetainNotAvailable => ReasonCode::RetainNotSupported,
            Rule::SharedSubscriptionNotAvailable => ReasonCode::SharedSubscriptionsNotSupported,
            _ => match self.kind() {
                ViolationKind::Malformed => ReasonCode::MalformedPacket,
                ViolationKind::Protocol => ReasonCode::ProtocolError,
            },
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    use super::*;
    use crate::error::DecodeError;

    /// Every rule, in declaration order.
    const ALL: [Rule; 65] = [
        Rule::Mqtt1_5_3_1,
        Rule::Mqtt1_5_3_2,
        Rule::ReservedPacketType,
        Rule::Mqtt2_2_2_2,
        Rule::RemainingLengthTooLong,
        Rule::RemainingLengthNotZero,
        Rule::RemainingLengthNotTwo,
        Rule::ConnAckRemainingLengthNotTwo,
        Rule::PacketTooShort,
        Rule::TrailingBytes,
        Rule::Mqtt2_3_1_1,
        Rule::Mqtt3_1_0_1,
        Rule::Mqtt3_1_0_2,
        Rule::Mqtt3_1_2_3,
        Rule::Mqtt3_1_2_13,
        Rule::Mqtt3_1_2_14,
        Rule::Mqtt3_1_2_15,
        Rule::Mqtt3_1_2_22,
        Rule::Mqtt3_2_2_1,
        Rule::ReservedConnAckReturnCode,
        Rule::Mqtt3_3_1_2,
        Rule::Mqtt3_3_1_4,
        Rule::Mqtt3_3_2_2,
        Rule::Mqtt3_8_3_3,
        Rule::Mqtt3_8_3_4,
        Rule::RequestedQoS3,
        Rule::SubAckWithoutReturnCodes,
        Rule::Mqtt3_9_3_2,
        Rule::Mqtt3_10_3_2,
        Rule::Mqtt4_7_1_2,
        Rule::Mqtt4_7_1_3,
        Rule::EmptyTopicName,
        Rule::EmptyTopicFilter,
        Rule::ServerOnlyPacket,
        Rule::TopicTooDeep,
        Rule::V5_1_5_4_1,
        Rule::V5_1_5_4_2,
        Rule::V5_1_5_5_1,
        Rule::PropertyLengthInvalid,
        Rule::PropertyNotAllowed,
        Rule::DuplicateProperty,
        Rule::InvalidReasonCode,
        Rule::ReceiveMaximumZero,
        Rule::MaximumPacketSizeZero,
        Rule::PayloadFormatIndicatorInvalid,
        Rule::MaximumQoSInvalid,
        Rule::YesNoPropertyInvalid,
        Rule::AuthenticationDataWithoutMethod,
        Rule::V5_3_3_2_8,
        Rule::V5_3_3_2_14,
        Rule::SubscriptionIdentifierZero,
        Rule::V5_3_8_3_4,
        Rule::V5_3_8_3_5,
        Rule::RetainHandling3,
        Rule::UnsubAckWithoutReasonCodes,
        Rule::V5_3_3_2_9,
        Rule::TopicAliasUnknown,
        Rule::V5_3_3_4_6,
        Rule::V5_3_3_4_7,
        Rule::PayloadNotUtf8,
        Rule::SessionExpiryRaisedFromZero,
        Rule::AuthWithoutMethod,
        Rule::AuthOutOfSequence,
        Rule::RetainNotAvailable,
        Rule::SharedSubscriptionNotAvailable,
    ];

    #[test]
    fn a_rule_named_after_a_statement_cites_that_statement() {
        let (mut v311, mut v5) = (0, 0);
        for rule in ALL {
            let name = format!("{rule:?}");
            let Some(id) = name.strip_prefix("Mqtt").or_else(|| name.strip_prefix("V5_")) else {
                continue;
            };
            let Some((section, statement)) = id.rsplit_once('_') else {
                panic!("{name} is not named MqttA_B_C_N or V5_A_B_C_N");
            };
            let cited = format!("[MQTT-{}-{statement}] ", section.replace('_', "."));
            assert!(rule.message().starts_with(&cited), "{name}: {}", rule.message());
            if name.starts_with("V5_") {
                v5 += 1;
            } else {
                v311 += 1;
            }
        }
        // Both schemes are in use: the 3.1.1 statements and the 5.0 ones.
        assert_eq!((v311, v5), (21, 10));
    }

    #[test]
    fn a_5_0_rule_named_descriptively_cites_a_section_not_a_statement() {
        // The rules after TopicTooDeep are the 5.0 ones; those not named V5_A_B_C_N cite the
        // section that states them. (Older descriptive rules may split a statement in two.)
        let first_v5 = ALL.iter().position(|&rule| rule == Rule::TopicTooDeep).unwrap() + 1;
        for rule in &ALL[first_v5..] {
            let name = format!("{rule:?}");
            if name.starts_with("V5_") {
                continue;
            }
            let cited = rule.message().split_once(']').map(|(cited, _)| cited).unwrap_or_default();
            // A section reads [MQTT-2.2.3]; a statement would read [MQTT-2.2.3-1].
            let section = cited.strip_prefix("[MQTT-").unwrap_or_else(|| panic!("{name}: {cited}"));
            assert!(!section.contains('-'), "{name}: {}", rule.message());
        }
    }

    #[test]
    fn every_rule_but_the_broker_limit_cites_the_specification_and_messages_differ() {
        for rule in ALL {
            assert_eq!(rule.message().starts_with("[MQTT-"), rule != Rule::TopicTooDeep, "{rule:?}");
        }
        let mut messages: Vec<&str> = ALL.iter().map(|rule| rule.message()).collect();
        messages.sort_unstable();
        messages.dedup();
        assert_eq!(messages.len(), ALL.len());
    }

    #[test]
    fn a_violation_displays_as_its_kind_then_its_message() {
        // The text the decoder logged before rules were typed.
        assert_eq!(
            DecodeError::Violation(Rule::Mqtt3_3_2_2).to_string(),
            "malformed packet: [MQTT-3.3.2-2] topic name contains a wildcard character"
        );
        assert_eq!(
            DecodeError::from(Rule::Mqtt3_1_0_2).to_string(),
            "protocol error: [MQTT-3.1.0-2] a second CONNECT"
        );
        for rule in ALL {
            assert_eq!(DecodeError::from(rule).to_string(), format!("{}: {rule}", rule.kind()));
        }
    }

    #[test]
    fn reason_codes_follow_mqtt_5_0() {
        let specific = [
            (Rule::Mqtt3_3_2_2, ReasonCode::TopicNameInvalid),
            (Rule::TopicTooDeep, ReasonCode::TopicNameInvalid),
            (Rule::Mqtt4_7_1_2, ReasonCode::TopicFilterInvalid),
            (Rule::Mqtt4_7_1_3, ReasonCode::TopicFilterInvalid),
            (Rule::EmptyTopicFilter, ReasonCode::TopicFilterInvalid),
            (Rule::RequestedQoS3, ReasonCode::ProtocolError),
            (Rule::EmptyTopicName, ReasonCode::ProtocolError),
            (Rule::V5_3_3_2_8, ReasonCode::TopicAliasInvalid),
            (Rule::V5_3_3_2_9, ReasonCode::TopicAliasInvalid),
            (Rule::V5_3_3_4_7, ReasonCode::ReceiveMaximumExceeded),
            (Rule::PayloadNotUtf8, ReasonCode::PayloadFormatInvalid),
            (Rule::RetainNotAvailable, ReasonCode::RetainNotSupported),
            (Rule::SharedSubscriptionNotAvailable, ReasonCode::SharedSubscriptionsNotSupported),
        ];
        for (rule, code) in specific {
            assert_eq!(rule.reason_code(), code, "{rule:?}");
            assert_eq!(DecodeError::from(rule).reason_code(), code, "{rule:?}");
        }
        for rule in ALL.into_iter().filter(|rule| specific.iter().all(|(other, _)| other != rule)) {
            let code = match rule.kind() {
                ViolationKind::Malformed => ReasonCode::MalformedPacket,
                ViolationKind::Protocol => ReasonCode::ProtocolError,
            };
            assert_eq!(rule.reason_code(), code, "{rule:?}");
        }
    }
}
