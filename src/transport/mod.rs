//! Transports: how bytes reach a connection. A connection task sees only `Transport`, a byte
//! stream; TCP is the one built today, and TLS and WebSocket plug in beside it as further
//! `Listener` kinds.
//!
//! Accepting is split in two so that one slow client can never stall a listener: the accept
//! loop only accepts a socket (`Listener::accept`), and any handshake a transport needs (TLS,
//! the WebSocket upgrade) runs in the connection's own task, under the connect timeout, through
//! the `Upgrader` the listener hands out.

mod tcp;

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub(crate) use tcp::TcpTransportListener;

use crate::config::ListenAddress;

/// A bidirectional byte stream carrying MQTT packets.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// A bound listening socket of any transport.
#[derive(Debug)]
pub(crate) enum Listener {
    /// Plain MQTT over TCP.
    Tcp(TcpTransportListener),
}

impl Listener {
    /// Binds the listener an address describes.
    pub(crate) async fn bind(address: &ListenAddress) -> io::Result<Listener> {
        Ok(Listener::Tcp(TcpTransportListener::bind(&address.address).await?))
    }

    /// The address actually bound (the port is chosen by the OS when 0 was asked for).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr(),
        }
    }

    /// The scheme of this listener, for logs.
    pub(crate) fn scheme(&self) -> &'static str {
        match self {
            Listener::Tcp(_) => "tcp",
        }
    }

    /// Waits for the next connection: a bare socket, with no handshake done on it.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match self {
            Listener::Tcp(listener) => listener.accept().await,
        }
    }

    /// What turns this listener's accepted sockets into transports.
    pub(crate) fn upgrader(&self) -> Upgrader {
        match self {
            Listener::Tcp(_) => Upgrader::Tcp,
        }
    }
}

/// Turns an accepted socket into a `Transport`, running the transport's handshake; called in the
/// connection's task, never in the accept loop.
#[derive(Debug, Clone)]
pub(crate) enum Upgrader {
    /// Plain TCP: no handshake.
    Tcp,
}

impl Upgrader {
    /// Runs the handshake on `stream`.
    pub(crate) async fn upgrade(&self, stream: TcpStream) -> io::Result<Box<dyn Transport>> {
        match self {
            Upgrader::Tcp => Ok(Box::new(stream)),
        }
    }
}
