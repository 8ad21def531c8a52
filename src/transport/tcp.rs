//! Plain TCP: a tokio listener whose accepted sockets have Nagle's algorithm off, since the
//! connection task already coalesces packets into one write per wake-up.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Connections the kernel may hold before they are accepted.
const ACCEPT_BACKLOG: u32 = 8192;

/// A bound TCP listening socket.
#[derive(Debug)]
pub(crate) struct TcpTransportListener {
    /// The tokio listener.
    inner: TcpListener,
}

impl TcpTransportListener {
    /// Binds `host:port` (the first address it resolves to) with a deep accept backlog, so that
    /// a burst of connections waits in the kernel instead of having its SYNs dropped and retried
    /// a second later. The kernel caps the backlog at `net.core.somaxconn`.
    pub(crate) async fn bind(address: &str) -> io::Result<TcpTransportListener> {
        let resolved = tokio::net::lookup_host(address).await?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{address} resolves to nothing"))
        })?;
        let socket = if resolved.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(resolved)?;
        Ok(TcpTransportListener { inner: socket.listen(ACCEPT_BACKLOG)? })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts one connection and sets TCP_NODELAY on it.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer))
    }
}
