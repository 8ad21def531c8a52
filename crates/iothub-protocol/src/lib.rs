//! Sans-IO MQTT wire format for IoTHub: the packet model, a resumable decoder and an encoder.
//!
//! The crate is `#![no_std]` and needs only `alloc`: without `std` there is no socket, file,
//! clock, thread or async runtime to reach for, so "no I/O, no clock" holds by construction
//! rather than by convention. `bytes` and `thiserror` are built without their `std` features and
//! `bytestring` is `no_std` itself, so no dependency brings `std` back.
//!
//! It reads and writes MQTT 3.1 and 3.1.1 today. The packet model is shared with MQTT 5.0
//! (reason codes and a typed property struct per packet type are already fields of the packets),
//! but the 5.0 property codec is not here yet.

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
pub use encode::{encode_publish, publish_size};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    ConnAck, Connect, Disconnect, Packet, Publish, PublishHeader, PublishResponse, RetainHandling, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use properties::{
    AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PayloadFormat,
    PublishProperties, PublishResponseProperties, SubAckProperties, SubscribeProperties, UnsubAckProperties,
    UnsubscribeProperties, WillProperties,
};
pub use rule::{Rule, ViolationKind};
pub use topic::{validate_topic_filter, validate_topic_name};
pub use types::{PacketId, ProtocolVersion, QoS, ReasonCode};
