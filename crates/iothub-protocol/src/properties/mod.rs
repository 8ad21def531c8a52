//! MQTT 5.0 properties (section 2.2.2): one struct per packet type, each holding exactly the
//! properties that table 2-4 (section 2.2.2.2) allows in that packet.
//!
//! Values are typed by what the specification lets them hold: a property that may not be 0 is a
//! `NonZero*`, a yes-or-no byte is a `bool`, Maximum QoS is a [`QoS`] and the Payload Format
//! Indicator a [`PayloadFormat`]. A property that may appear at most once is an `Option`, and
//! `None` means it is absent; one that may repeat (User Property, and Subscription Identifier in
//! PUBLISH) is a `Vec` in wire order. `Default` is the struct with every property absent, and
//! `is_empty` says whether a struct is that one. What an absent property means (an absent
//! Receive Maximum is 65,535, for example) differs per property; the field documentation says
//! it, and the reader of the packet applies it.
//!
//! MQTT 3.1 and 3.1.1 have no properties: every packet the 3.x decoder returns has
//! `properties: None`, and the 3.x encoder ignores them. The packets hold their properties as
//! `Option<Box<..>>`, so a packet without any pays one pointer. This module is the model; the
//! 5.0 decoder and encoder (in the [`decode`](mod@crate::decode) and [`encode`](mod@crate::encode) modules) read and
//! write it, and the decoder also refuses what the types cannot (a property given twice, a
//! Maximum QoS of 2). The decoder returns `None` rather than an empty struct when a packet has
//! no properties; the encoder writes `None` and an empty struct alike, as Property Length 0.
//!
//! `Debug` shows binary properties (Correlation Data, Authentication Data) as their length only,
//! as the packets show payloads and passwords.
//!
//! [`QoS`]: crate::QoS

mod connection;
pub(crate) mod id;
mod publish;
mod subscription;

pub use connection::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, WillProperties,
};
pub use publish::{PayloadFormat, PublishProperties, PublishResponseProperties};
pub use subscription::{SubAckProperties, SubscribeProperties, UnsubAckProperties, UnsubscribeProperties};
