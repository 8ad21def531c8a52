//! The properties of SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
//!
//! Only the model: storing a Subscription Identifier with its subscription and sending it back
//! on matching publications belong to the router.

use alloc::vec::Vec;
use core::num::NonZeroU32;

use bytestring::ByteString;

/// The properties of a 5.0 SUBSCRIBE (section 3.8.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// Subscription Identifier (0x0B), kept with every subscription this packet creates or
    /// modifies and sent back with each publication they match (3.8.2.1.2). 1 to 268,435,455; 0 is a Protocol
    /// Error, which the type cannot hold.
    pub subscription_identifier: Option<NonZeroU32>,
    /// User Properties (0x26), in wire order; a name may repeat (3.8.2.1.3).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl SubscribeProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == SubscribeProperties::default()
    }
}

/// The properties of a 5.0 SUBACK (section 3.9.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubAckProperties {
    /// Reason String (0x1F), a human-readable diagnostic that the client must not parse
    /// (3.9.2.1.2).
    pub reason_string: Option<ByteString>,
    /// User Properties (0x26), in wire order; a name may repeat (3.9.2.1.3).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl SubAckProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == SubAckProperties::default()
    }
}

/// The properties of a 5.0 UNSUBSCRIBE (section 3.10.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// User Properties (0x26), in wire order; a name may repeat (3.10.2.1.2).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl UnsubscribeProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == UnsubscribeProperties::default()
    }
}

/// The properties of a 5.0 UNSUBACK (section 3.11.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubAckProperties {
    /// Reason String (0x1F), a human-readable diagnostic that the client must not parse
    /// (3.11.2.1.2).
    pub reason_string: Option<ByteString>,
    /// User Properties (0x26), in wire order; a name may repeat (3.11.2.1.3).
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl UnsubAckProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        *self == UnsubAckProperties::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_empty_and_any_property_is_not() {
        assert!(SubscribeProperties::default().is_empty());
        assert!(SubAckProperties::default().is_empty());
        assert!(UnsubscribeProperties::default().is_empty());
        assert!(UnsubAckProperties::default().is_empty());

        let user = || [("region".into(), "eu".into())].into();
        let subscribe =
            SubscribeProperties { subscription_identifier: Some(NonZeroU32::MIN), ..Default::default() };
        assert!(!subscribe.is_empty());
        assert!(!SubAckProperties { reason_string: Some("no".into()), ..Default::default() }.is_empty());
        assert!(!UnsubscribeProperties { user_properties: user() }.is_empty());
        assert!(!UnsubAckProperties { user_properties: user(), ..Default::default() }.is_empty());
    }
}
