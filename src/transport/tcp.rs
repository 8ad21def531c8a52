//! Plain TCP: a tokio listener whose accepted sockets have Nagle's algorithm off, since the
//! connection task already coalesces packets into one write per wake-up.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// A bound TCP listening socket.
pub struct TcpTransportListener {
    /// The tokio listener.
    inner: TcpListener,
}

impl TcpTransportListener {
    /// Binds `host:port`.
    pub async fn bind(address: &str) -> io::Result<TcpTransportListener> {
        Ok(TcpTransportListener { inner: TcpListener::bind(address).await? })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts one connection and sets TCP_NODELAY on it.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }
}
