//! Test support for IoTHub's integration tests, one place for what every test file used to
//! carry a copy of:
//!
//! - [`TestBroker`]: the real broker on `127.0.0.1:0` in a thread of its own, and
//!   [`RawClient`], a blocking client that speaks raw bytes;
//! - [`packets`]: builders for the raw packets those clients send, and a parser for the
//!   PUBLISH packets they receive;
//! - [`exchange`]: whole exchanges over a [`RawClient`] (connect, subscribe, publish with its
//!   QoS handshake, read until a marker);
//! - [`mqtt`]: the rumqttc client, through a channel or its event loop;
//! - [`tools`]: Mosquitto's command-line clients, run with timeouts;
//! - [`paused`]: the broker on the test's own runtime with tokio's clock paused, so that
//!   keep-alive and session expiry are tested in virtual time;
//! - [`v5_client`]: a blocking MQTT 5.0 client that sends and decodes the codec's packets,
//!   for exchanges whose properties and reason codes a test checks.
//!
//! Every wait is bounded by [`WAIT`]; nothing sleeps to synchronise. A helper that fails panics
//! with a message that says what failed (see [`OrFail`]): in test support, a panic is a test
//! failure. The crate checks the broker; it holds no oracle of its own, so the codec's
//! byte-exact vectors (`crates/iothub-protocol/tests`) keep their separate encoders.

use std::fmt::Debug;
use std::time::Duration;

pub mod broker;
pub mod exchange;
pub mod mqtt;
pub mod packets;
pub mod paused;
pub mod pki;
pub mod tools;
pub mod v5_client;

pub use broker::{config_with_listeners, http, loopback_config, RawClient, TestBroker};
pub use exchange::{
    expect_no_publish_before_pingresp, next_publish, publish, publishes_until, raw_connected, raw_subscriber,
    subscribe,
};
pub use mqtt::{incoming_connack, incoming_publish, incoming_suback, next_event, Mqtt};
pub use packets::{
    ack, connect_packet, connect_packet_raw, connect_with_will, field, parse_publish, publish_packet,
    qos0_publish, suback_granting, subscribe_packet, subscribe_packet_raw, unsubscribe_packet,
    unsubscribe_packet_raw, with_header, Incoming, Will, CONNACK_ACCEPTED, CONNACK_SESSION_PRESENT,
    DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBCOMP, PUBREC, PUBREL,
};
pub use paused::{PausedBroker, PausedClient, Seen};
pub use pki::{ClientCert, TestPki, TlsClient};
pub use tools::{
    mosquitto_pub, require_tool, run_tool, tool_stdout, try_mosquitto_pub, MosquittoSub, SubMessage, Tool,
};
pub use v5_client::V5Client;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Unwrapping that names what failed, for test support outside `#[test]` functions, where
/// `unwrap` and `expect` are linted: the panic is the test failure, and its message says which
/// step of the test it was.
pub trait OrFail<T> {
    /// The value, or a panic with `what` (and the error, for a `Result`).
    fn or_fail(self, what: &str) -> T;
}

impl<T, E: Debug> OrFail<T> for Result<T, E> {
    #[track_caller]
    fn or_fail(self, what: &str) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("{what}: {error:?}"),
        }
    }
}

impl<T> OrFail<T> for Option<T> {
    #[track_caller]
    fn or_fail(self, what: &str) -> T {
        match self {
            Some(value) => value,
            None => panic!("{what}"),
        }
    }
}
