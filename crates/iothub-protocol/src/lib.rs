//! Sans-IO MQTT wire format for IoTHub: the packet model, a resumable decoder and an encoder.
//!
//! This crate never touches a socket, a clock or an async runtime; the dependency graph keeps it
//! that way. It reads and writes MQTT 3.1 and 3.1.1 today. The packet model is shared with MQTT 5.0
//! (reason codes and properties are already fields of the packets), but the 5.0 property codec is
//! not here yet.

pub mod decode;
pub mod encode;
pub mod error;
pub mod packet;
pub mod properties;
pub mod topic;
pub mod types;

pub use decode::{check, decode, FixedHeader, MAX_REMAINING_LENGTH};
pub use encode::{encode_publish, publish_size};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    ConnAck, Connect, Disconnect, Packet, Publish, PublishResponse, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe, Will,
};
pub use properties::Properties;
pub use topic::{validate_topic_filter, validate_topic_name};
pub use types::{PacketId, ProtocolVersion, QoS, ReasonCode};
