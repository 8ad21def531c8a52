//! The properties of the packets that open, authenticate and close a connection: CONNECT and its
//! will, CONNACK, DISCONNECT and AUTH.
//!
//! Only the model: what the server does with a Session Expiry Interval or a Receive Maximum
//! belongs to the broker, and reading and writing them to the 5.0 property codec.

use alloc::vec::Vec;
use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;

use super::publish::PayloadFormat;
use crate::packet::Redacted;
use crate::types::QoS;

/// The properties of a 5.0 CONNECT (section 3.1.2.11).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// Session Expiry Interval (0x11) in seconds (3.1.2.11.2). Absent means 0: the session ends
    /// when the network connection closes; `u32::MAX` means it never expires.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (0x21), the number of QoS 1 and 2 publications the client will process at
    /// once (3.1.2.11.3). Absent means 65,535; 0 is a Protocol Error, which the type cannot hold.
    pub receive_maximum: Option<NonZeroU16>,
    /// Maximum Packet Size (0x27), the largest packet the client accepts, in bytes
    /// (3.1.2.11.4). Absent means no limit beyond the protocol's; 0 is a Protocol Error.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Topic Alias Maximum (0x22), the highest Topic Alias the client accepts from the server
    /// (3.1.2.11.5). Absent or 0 means the server sends no Topic Alias.
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information (0x19): whether the client asks for Response Information
    /// in the CONNACK (3.1.2.11.6). Absent means false.
    pub request_response_information: Option<bool>,
    /// Request Problem Information (0x17): whether the server may send a Reason String or User
    /// Properties on packets other than PUBLISH, CONNACK and DISCONNECT (3.1.2.11.7). Absent
    /// means true.
    pub request_problem_information: Option<bool>,
    /// User Properties (0x26), in wire order; a name may repeat (3.1.2.11.8).
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// Authentication Method (0x15), the name of the extended authentication method
    /// (3.1.2.11.9). Absent means no extended authentication.
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16), defined by the authentication method (3.1.2.11.10).
    pub authentication_data: Option<Bytes>,
}

impl ConnectProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == ConnectProperties::default()
    }
}

impl fmt::Debug for ConnectProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectProperties")
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("receive_maximum", &self.receive_maximum)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field("request_response_information", &self.request_response_information)
            .field("request_problem_information", &self.request_problem_information)
            .field("user_properties", &self.user_properties)
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &self.authentication_data.as_ref().map(|d| Redacted(d.len())))
            .finish()
    }
}

/// The properties of the will message in a 5.0 CONNECT (section 3.1.3.2). All but the Will
/// Delay Interval become the properties of the will's PUBLISH.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// Will Delay Interval (0x18) in seconds: the will is published this long after the
    /// connection closes, or when the session ends if that is sooner, unless a new connection
    /// resumes the session first (3.1.3.2.2). Absent means 0.
    pub will_delay_interval: Option<u32>,
    /// Payload Format Indicator (0x01) of the will payload (3.1.3.2.3). Absent means
    /// unspecified bytes.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// Message Expiry Interval (0x02) in seconds, the lifetime of the will message once
    /// published (3.1.3.2.4). Absent means it does not expire.
    pub message_expiry_interval: Option<u32>,
    /// Content Type (0x03) of the will payload, defined by the application (3.1.3.2.5).
    pub content_type: Option<ByteString>,
    /// Response Topic (0x08), the topic name for a response to the will message (3.1.3.2.6).
    pub response_topic: Option<ByteString>,
    /// Correlation Data (0x09), which the requester uses to match a response to the will
    /// message (3.1.3.2.7).
    pub correlation_data: Option<Bytes>,
    /// User Properties (0x26), in wire order; a name may repeat (3.1.3.2.8).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl WillProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == WillProperties::default()
    }
}

impl fmt::Debug for WillProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WillProperties")
            .field("will_delay_interval", &self.will_delay_interval)
            .field("payload_format_indicator", &self.payload_format_indicator)
            .field("message_expiry_interval", &self.message_expiry_interval)
            .field("content_type", &self.content_type)
            .field("response_topic", &self.response_topic)
            .field("correlation_data", &self.correlation_data.as_ref().map(|d| Redacted(d.len())))
            .field("user_properties", &self.user_properties)
            .finish()
    }
}

/// The properties of a 5.0 CONNACK (section 3.2.2.3): what the server grants and supports.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// Session Expiry Interval (0x11) in seconds, replacing the one the client asked for
    /// (3.2.2.3.2). Absent means the client's value stands.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (0x21), the number of QoS 1 and 2 publications the server will process
    /// at once (3.2.2.3.3). Absent means 65,535; 0 is a Protocol Error.
    pub receive_maximum: Option<NonZeroU16>,
    /// Maximum QoS (0x24) the server supports (3.2.2.3.4). Absent means QoS 2; only 0 and 1 may
    /// be sent, so `Some(QoS::ExactlyOnce)` is not valid on the wire: the decoder refuses a 2,
    /// and the encoder writes `Some(QoS::ExactlyOnce)` as an absent Maximum QoS, which means the
    /// same.
    pub maximum_qos: Option<QoS>,
    /// Retain Available (0x25): whether the server supports retained messages (3.2.2.3.5).
    /// Absent means true.
    pub retain_available: Option<bool>,
    /// Maximum Packet Size (0x27), the largest packet the server accepts, in bytes (3.2.2.3.6).
    /// Absent means no limit beyond the protocol's; 0 is a Protocol Error.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Assigned Client Identifier (0x12), the identifier the server chose because the CONNECT
    /// carried an empty one (3.2.2.3.7).
    pub assigned_client_identifier: Option<ByteString>,
    /// Topic Alias Maximum (0x22), the highest Topic Alias the server accepts from the client
    /// (3.2.2.3.8). Absent or 0 means the client sends no Topic Alias.
    pub topic_alias_maximum: Option<u16>,
    /// Reason String (0x1F), a human-readable diagnostic that the client must not parse
    /// (3.2.2.3.9).
    pub reason_string: Option<ByteString>,
    /// User Properties (0x26), in wire order; a name may repeat (3.2.2.3.10).
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// Wildcard Subscription Available (0x28) (3.2.2.3.11). Absent means true.
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription Identifiers Available (0x29) (3.2.2.3.12). Absent means true.
    pub subscription_identifiers_available: Option<bool>,
    /// Shared Subscription Available (0x2A) (3.2.2.3.13). Absent means true.
    pub shared_subscription_available: Option<bool>,
    /// Server Keep Alive (0x13) in seconds, which the client must use instead of the Keep Alive
    /// it sent (3.2.2.3.14).
    pub server_keep_alive: Option<u16>,
    /// Response Information (0x1A), the basis for the client's response topics, if it asked for
    /// it (3.2.2.3.15).
    pub response_information: Option<ByteString>,
    /// Server Reference (0x1C), another server for the client to use (3.2.2.3.16).
    pub server_reference: Option<ByteString>,
    /// Authentication Method (0x15), the same as in the CONNECT (3.2.2.3.17).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16), defined by the authentication method (3.2.2.3.18).
    pub authentication_data: Option<Bytes>,
}

impl ConnAckProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == ConnAckProperties::default()
    }
}

impl fmt::Debug for ConnAckProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnAckProperties")
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("receive_maximum", &self.receive_maximum)
            .field("maximum_qos", &self.maximum_qos)
            .field("retain_available", &self.retain_available)
            .field("maximum_packet_size", &self.maximum_packet_size)
            .field("assigned_client_identifier", &self.assigned_client_identifier)
            .field("topic_alias_maximum", &self.topic_alias_maximum)
            .field("reason_string", &self.reason_string)
            .field("user_properties", &self.user_properties)
            .field("wildcard_subscription_available", &self.wildcard_subscription_available)
            .field("subscription_identifiers_available", &self.subscription_identifiers_available)
            .field("shared_subscription_available", &self.shared_subscription_available)
            .field("server_keep_alive", &self.server_keep_alive)
            .field("response_information", &self.response_information)
            .field("server_reference", &self.server_reference)
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &self.authentication_data.as_ref().map(|d| Redacted(d.len())))
            .finish()
    }
}

/// The properties of a 5.0 DISCONNECT (section 3.14.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (0x11) in seconds, replacing the one in force (3.14.2.2.2). Only a
    /// client sends it, and not to raise an interval of 0 set at CONNECT, which is a Protocol
    /// Error. Absent means the interval in force stands.
    pub session_expiry_interval: Option<u32>,
    /// Reason String (0x1F), a human-readable diagnostic that the receiver must not parse
    /// (3.14.2.2.3).
    pub reason_string: Option<ByteString>,
    /// User Properties (0x26), in wire order; a name may repeat (3.14.2.2.4).
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// Server Reference (0x1C), another server for the client to use (3.14.2.2.5).
    pub server_reference: Option<ByteString>,
}

impl DisconnectProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == DisconnectProperties::default()
    }
}

/// The properties of a 5.0 AUTH (section 3.15.2.2), one step of extended authentication.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Authentication Method (0x15), the same as in the CONNECT (3.15.2.2.2).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16), defined by the authentication method (3.15.2.2.3).
    pub authentication_data: Option<Bytes>,
    /// Reason String (0x1F), a human-readable diagnostic that the receiver must not parse
    /// (3.15.2.2.4).
    pub reason_string: Option<ByteString>,
    /// User Properties (0x26), in wire order; a name may repeat (3.15.2.2.5).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl AuthProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == AuthProperties::default()
    }
}

impl fmt::Debug for AuthProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthProperties")
            .field("authentication_method", &self.authentication_method)
            .field("authentication_data", &self.authentication_data.as_ref().map(|d| Redacted(d.len())))
            .field("reason_string", &self.reason_string)
            .field("user_properties", &self.user_properties)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use super::*;

    #[test]
    fn default_is_empty_and_any_property_is_not() {
        assert!(ConnectProperties::default().is_empty());
        assert!(WillProperties::default().is_empty());
        assert!(ConnAckProperties::default().is_empty());
        assert!(DisconnectProperties::default().is_empty());
        assert!(AuthProperties::default().is_empty());

        // Present with the value an absent property stands for is still present.
        let connect = ConnectProperties { session_expiry_interval: Some(0), ..Default::default() };
        assert!(!connect.is_empty());
        let will =
            WillProperties { user_properties: [("a".into(), "b".into())].into(), ..Default::default() };
        assert!(!will.is_empty());
        let connack = ConnAckProperties { retain_available: Some(true), ..Default::default() };
        assert!(!connack.is_empty());
        let disconnect = DisconnectProperties { reason_string: Some("bye".into()), ..Default::default() };
        assert!(!disconnect.is_empty());
        let auth = AuthProperties { authentication_data: Some(Bytes::new()), ..Default::default() };
        assert!(!auth.is_empty());
    }

    #[test]
    fn debug_shows_binary_properties_as_their_length() {
        let secret = Bytes::from_static(b"s3cr3t-token");
        let connect = ConnectProperties { authentication_data: Some(secret.clone()), ..Default::default() };
        let will = WillProperties { correlation_data: Some(secret.clone()), ..Default::default() };
        let connack = ConnAckProperties { authentication_data: Some(secret.clone()), ..Default::default() };
        let auth = AuthProperties {
            authentication_method: Some("SCRAM-SHA-256".into()),
            authentication_data: Some(secret),
            ..Default::default()
        };
        for shown in
            [format!("{connect:?}"), format!("{will:?}"), format!("{connack:?}"), format!("{auth:?}")]
        {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("<REDACTED 12 bytes>"), "{shown}");
        }
        assert!(format!("{auth:?}").contains("SCRAM-SHA-256"));
    }
}
