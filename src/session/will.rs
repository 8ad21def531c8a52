//! The will message: what is published for a client whose network connection ends without
//! DISCONNECT [MQTT-3.1.2-8].
//!
//! It belongs to the session for the life of one network connection. It decides whether an
//! exit publishes it; routing it is the caller's job. 5.0's Will Delay Interval will live here.

use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;

use crate::exit::Exit;
use crate::message::Message;

/// The will of the current network connection.
#[derive(Debug, Clone)]
pub struct Will {
    /// The message to publish.
    message: Arc<Message>,
}

impl Will {
    /// The will a CONNECT carries, copied out of the packet so that it does not pin the CONNECT
    /// buffer. A will on a `$SYS` topic is accepted and never published, as Mosquitto does.
    pub fn from_connect(will: &iothub_protocol::Will) -> Option<Will> {
        if super::is_reserved_for_broker(&will.topic) {
            return None;
        }
        let message = Message::new(
            ByteString::from(&*will.topic),
            Bytes::copy_from_slice(&will.payload),
            will.qos,
            will.retain,
        );
        Some(Will { message: Arc::new(message) })
    }

    /// The message, when `exit` publishes it: every end of the network connection other than
    /// DISCONNECT [MQTT-3.1.2-10] publishes it [MQTT-3.1.2-8], a takeover by a new connection
    /// included, except a refused CONNECT (no session began) and server shutdown (a decision:
    /// the client did not go away, the server did, as in Mosquitto).
    pub fn due(self, exit: &Exit) -> Option<Arc<Message>> {
        let publish = !matches!(exit, Exit::Disconnect | Exit::Shutdown | Exit::Refused(_));
        publish.then_some(self.message)
    }
}
