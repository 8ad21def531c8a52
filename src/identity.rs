//! Who is on the other end of a connection: what the transport tells at accept (peer address,
//! listener) and what CONNECT adds (client identifier, username). It survives the handshake, for
//! logs, authorisation and the admin API; and the Common Name of a verified TLS client certificate.
//!
//! A bottom-layer type: it knows nothing about sessions, the router or sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use bytestring::ByteString;

/// What the transport knows about a connection before any MQTT is read.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The listener that accepted it, as its URL (e.g. `tcp://0.0.0.0:1883`).
    pub listener: Arc<str>,
    /// The Common Name of the client certificate that TLS verified, if the client presented one.
    pub certificate_name: Option<Arc<str>>,
}

/// The identity of a connected client.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The client identifier, as given or as assigned by the server.
    pub client_id: ByteString,
    /// The username CONNECT carried, if any (never the password).
    pub username: Option<ByteString>,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The listener that accepted the connection.
    pub listener: Arc<str>,
    /// The protocol level of its CONNECT (3, 4 or 5).
    pub protocol: u8,
    /// The keep-alive in force, in seconds (0: off).
    pub keep_alive: u16,
}

impl ClientIdentity {
    /// The identity of a client that connected over `info` with these CONNECT fields.
    pub fn new(info: &ConnectionInfo, client_id: ByteString, username: Option<ByteString>) -> ClientIdentity {
        ClientIdentity {
            client_id,
            username,
            peer: info.peer,
            listener: Arc::clone(&info.listener),
            protocol: 0,
            keep_alive: 0,
        }
    }

    /// The same identity with its CONNECT's protocol level and the keep-alive in force.
    pub fn with_connect(mut self, protocol: u8, keep_alive: u16) -> ClientIdentity {
        self.protocol = protocol;
        self.keep_alive = keep_alive;
        self
    }
}
