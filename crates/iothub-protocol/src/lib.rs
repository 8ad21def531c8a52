//! Sans-IO MQTT wire format for IoTHub: the packet model, a resumable decoder and an encoder.
//!
//! The crate is `#![no_std]` and needs only `alloc`: without `std` there is no socket, file,
//! clock, thread or async runtime to reach for, so "no I/O, no clock" holds by construction
//! rather than by convention. `bytes` and `thiserror` are built without their `std` features and
//! `bytestring` is `no_std` itself, so no dependency brings `std` back.
//!
//! It reads and writes MQTT 3.1, 3.1.1 and 5.0. One packet model serves all three: reason codes
//! and a typed property struct per packet type are fields of the packets, `None` or `Success` in
//! 3.x. The connection's version, fixed by its CONNECT, selects the wire format; CONNECT itself
//! is read the same way whatever the connection's version, since it is what fixes it.

#![no_std]

extern crate alloc;

pub mod decode;
pub mod encode;
pub mod error;
pub mod packet;
pub mod properties;
pub mod rule;
pub mod topic;
pub mod types;

pub use decode::{check, decode, FixedHeader, MAX_REMAINING_LENGTH};
pub use encode::{encode_publish, encode_publish_v5_plain, publish_size, OutgoingPublish};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, Publish, PublishHeader, PublishResponse, RetainHandling,
    SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use properties::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PayloadFormat,
    PublishProperties, PublishResponseProperties, SubAckProperties, SubscribeProperties, UnsubAckProperties,
    UnsubscribeProperties, WillProperties,
};
pub use rule::{Rule, ViolationKind};
pub use topic::{validate_subscription_filter, validate_topic_filter, validate_topic_name};
pub use types::{PacketId, ProtocolVersion, QoS, ReasonCode};
