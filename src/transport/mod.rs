//! Transports: how bytes reach a connection. A connection task sees only `Transport`, a byte
//! stream; TCP is the one built today, and TLS and WebSocket plug in beside it as further
//! `Listener` kinds.

mod tcp;

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

pub use tcp::TcpTransportListener;

use crate::config::ListenAddress;

/// A bidirectional byte stream carrying MQTT packets.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// A bound listening socket of any transport.
pub enum Listener {
    /// Plain MQTT over TCP.
    Tcp(TcpTransportListener),
}

impl Listener {
    /// Binds the listener an address describes.
    pub async fn bind(address: &ListenAddress) -> io::Result<Listener> {
        Ok(Listener::Tcp(TcpTransportListener::bind(&address.address).await?))
    }

    /// The address actually bound (the port is chosen by the OS when 0 was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(listener) => listener.local_addr(),
        }
    }

    /// The scheme of this listener, for logs.
    pub fn scheme(&self) -> &'static str {
        match self {
            Listener::Tcp(_) => "tcp",
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<(Box<dyn Transport>, SocketAddr)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok((Box::new(stream), peer))
            }
        }
    }
}
