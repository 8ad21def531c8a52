//! MQTT 5.0 properties (section 2.2.2).
//!
//! The packet model carries them so that 5.0 plugs in without reshaping the packets. MQTT 3.1 and
//! 3.1.1 have no properties, so the 3.x codec neither reads nor writes them and every packet it
//! decodes has `properties: None`.

use alloc::vec::Vec;

use bytes::Bytes;
use bytestring::ByteString;

/// The properties a 5.0 packet may carry. Each packet type allows a subset (table 2-4); a field
/// that is `None` or empty is absent on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// Payload Format Indicator (0x01).
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval in seconds (0x02).
    pub message_expiry_interval: Option<u32>,
    /// Content Type (0x03).
    pub content_type: Option<ByteString>,
    /// Response Topic (0x08).
    pub response_topic: Option<ByteString>,
    /// Correlation Data (0x09).
    pub correlation_data: Option<Bytes>,
    /// Subscription Identifiers (0x0B); a PUBLISH may carry several.
    pub subscription_identifiers: Vec<u32>,
    /// Session Expiry Interval in seconds (0x11).
    pub session_expiry_interval: Option<u32>,
    /// Assigned Client Identifier (0x12).
    pub assigned_client_identifier: Option<ByteString>,
    /// Server Keep Alive in seconds (0x13).
    pub server_keep_alive: Option<u16>,
    /// Authentication Method (0x15).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16).
    pub authentication_data: Option<Bytes>,
    /// Request Problem Information (0x17).
    pub request_problem_information: Option<u8>,
    /// Will Delay Interval in seconds (0x18).
    pub will_delay_interval: Option<u32>,
    /// Request Response Information (0x19).
    pub request_response_information: Option<u8>,
    /// Response Information (0x1A).
    pub response_information: Option<ByteString>,
    /// Server Reference (0x1C).
    pub server_reference: Option<ByteString>,
    /// Reason String (0x1F).
    pub reason_string: Option<ByteString>,
    /// Receive Maximum (0x21).
    pub receive_maximum: Option<u16>,
    /// Topic Alias Maximum (0x22).
    pub topic_alias_maximum: Option<u16>,
    /// Topic Alias (0x23).
    pub topic_alias: Option<u16>,
    /// Maximum QoS (0x24).
    pub maximum_qos: Option<u8>,
    /// Retain Available (0x25).
    pub retain_available: Option<u8>,
    /// User Properties (0x26), in wire order; names may repeat.
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// Maximum Packet Size (0x27).
    pub maximum_packet_size: Option<u32>,
    /// Wildcard Subscription Available (0x28).
    pub wildcard_subscription_available: Option<u8>,
    /// Subscription Identifier Available (0x29).
    pub subscription_identifier_available: Option<u8>,
    /// Shared Subscription Available (0x2A).
    pub shared_subscription_available: Option<u8>,
}
