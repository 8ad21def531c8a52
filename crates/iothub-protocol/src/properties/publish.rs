//! The properties of PUBLISH and of the four packets that answer it: PUBACK, PUBREC, PUBREL and
//! PUBCOMP.
//!
//! Only the model: resolving a Topic Alias, counting down a Message Expiry Interval and merging
//! Subscription Identifiers belong to the broker.

use alloc::vec::Vec;
use core::fmt;
use core::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use bytestring::ByteString;

use crate::packet::Redacted;

/// The Payload Format Indicator (0x01) of a PUBLISH or a will (sections 3.3.2.3.2 and
/// 3.1.3.2.3). The discriminant is the byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// 0: the payload is unspecified bytes, as when the indicator is absent.
    Unspecified = 0,
    /// 1: the payload is UTF-8 encoded character data. A receiver may check it and refuse the
    /// message with reason code 0x99 (Payload format invalid).
    Utf8 = 1,
}

/// The properties of a 5.0 PUBLISH (section 3.3.2.3). A server forwards them to subscribers
/// unaltered, except the Topic Alias, which is per connection, the Message Expiry Interval,
/// which counts down, and the Subscription Identifiers, which are the subscriber's own.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// Payload Format Indicator (0x01) (3.3.2.3.2). Absent means unspecified bytes.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// Message Expiry Interval (0x02) in seconds, the lifetime of the message (3.3.2.3.3).
    /// Absent means it does not expire.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias (0x23), a number that stands for the topic name on this network connection
    /// (3.3.2.3.4). 0 is a Protocol Error, which the type cannot hold.
    pub topic_alias: Option<NonZeroU16>,
    /// Response Topic (0x08), the topic name for a response to this message (3.3.2.3.5).
    pub response_topic: Option<ByteString>,
    /// Correlation Data (0x09), which the requester uses to match a response to this message
    /// (3.3.2.3.6).
    pub correlation_data: Option<Bytes>,
    /// User Properties (0x26), in wire order; a name may repeat. A server forwards them
    /// unaltered and in order [MQTT-3.3.2-17] [MQTT-3.3.2-18] (3.3.2.3.7).
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// Subscription Identifiers (0x0B), one for each matching subscription that has one
    /// (3.3.2.3.8). Only a server sends them; 0 is a Protocol Error.
    pub subscription_identifiers: Vec<NonZeroU32>,
    /// Content Type (0x03) of the payload, defined by the application (3.3.2.3.9).
    pub content_type: Option<ByteString>,
}

impl PublishProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == PublishProperties::default()
    }
}

impl fmt::Debug for PublishProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishProperties")
            .field("payload_format_indicator", &self.payload_format_indicator)
            .field("message_expiry_interval", &self.message_expiry_interval)
            .field("topic_alias", &self.topic_alias)
            .field("response_topic", &self.response_topic)
            .field("correlation_data", &self.correlation_data.as_ref().map(|d| Redacted(d.len())))
            .field("user_properties", &self.user_properties)
            .field("subscription_identifiers", &self.subscription_identifiers)
            .field("content_type", &self.content_type)
            .finish()
    }
}

/// The properties of a 5.0 PUBACK, PUBREC, PUBREL or PUBCOMP (sections 3.4.2.2, 3.5.2.2,
/// 3.6.2.2 and 3.7.2.2), which all allow the same two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishResponseProperties {
    /// Reason String (0x1F), a human-readable diagnostic that the receiver must not parse
    /// (3.4.2.2.2).
    pub reason_string: Option<ByteString>,
    /// User Properties (0x26), in wire order; a name may repeat (3.4.2.2.3).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl PublishResponseProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == PublishResponseProperties::default()
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;

    use super::*;

    #[test]
    fn default_is_empty_and_any_property_is_not() {
        assert!(PublishProperties::default().is_empty());
        assert!(PublishResponseProperties::default().is_empty());

        let publish = PublishProperties {
            subscription_identifiers: [NonZeroU32::MIN].into(),
            ..PublishProperties::default()
        };
        assert!(!publish.is_empty());
        let format = PublishProperties {
            payload_format_indicator: Some(PayloadFormat::Unspecified),
            ..PublishProperties::default()
        };
        assert!(!format.is_empty());
        let response =
            PublishResponseProperties { reason_string: Some("quota".into()), ..Default::default() };
        assert!(!response.is_empty());
    }

    #[test]
    fn debug_shows_correlation_data_as_its_length() {
        let publish = PublishProperties {
            correlation_data: Some(Bytes::from_static(b"request-42")),
            response_topic: Some("replies/7".into()),
            ..PublishProperties::default()
        };
        let shown = format!("{publish:?}");
        assert!(!shown.contains("request-42"), "{shown}");
        assert!(shown.contains("<REDACTED 10 bytes>"), "{shown}");
        assert!(shown.contains("replies/7"), "{shown}");
    }

    #[test]
    fn payload_format_discriminants_are_the_wire_bytes() {
        assert_eq!(PayloadFormat::Unspecified as u8, 0);
        assert_eq!(PayloadFormat::Utf8 as u8, 1);
    }
}
