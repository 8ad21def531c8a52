//! Transports: how bytes reach a connection. A connection task sees only `Transport`, a byte
//! stream, whatever carries it: plain TCP, TLS (`tls.rs`), WebSocket (`ws.rs`) or WebSocket
//! over TLS. Every listener is a TCP socket; what differs is the handshake on each accepted
//! socket.
//!
//! Accepting is split in two so that one slow client can never stall a listener: the accept
//! loop only accepts a socket (`Listener::accept`), and any handshake a transport needs (TLS,
//! the WebSocket upgrade) runs in the connection's own task, under the connect timeout, through
//! the `Upgrader` the listener hands out. On a `proxy_protocol` listener the connection task
//! reads the PROXY header (`proxy.rs`) before that handshake; the accept loop never does.

pub(crate) mod proxy;
mod tcp;
mod tls;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

pub(crate) use tcp::TcpTransportListener;
pub(crate) use tls::TlsFiles;

use crate::config::{ListenAddress, ListenerSettings, Scheme};

/// A bidirectional byte stream carrying MQTT packets.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// A bound listening socket of any transport.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The socket.
    tcp: TcpTransportListener,
    /// The handshake its connections go through.
    upgrader: Upgrader,
    /// The listener's own settings, from its URL's query string.
    settings: ListenerSettings,
}

impl Listener {
    /// Binds the listener an address describes. A `tls://` or `wss://` address needs `tls`;
    /// WebSocket frames are bounded by `max_packet_size`.
    pub(crate) async fn bind(
        address: &ListenAddress,
        tls: Option<&Arc<TlsFiles>>,
        max_packet_size: usize,
    ) -> io::Result<Listener> {
        let tls = || {
            tls.cloned().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "[tls] is not configured"))
        };
        let path = || Arc::from(address.path.as_deref().unwrap_or(crate::config::DEFAULT_WEBSOCKET_PATH));
        let upgrader = match address.scheme {
            Scheme::Tcp => Upgrader::Tcp,
            Scheme::Tls => Upgrader::Tls(tls()?),
            Scheme::Ws => Upgrader::Ws { path: path(), max_packet_size },
            Scheme::Wss => Upgrader::Wss { tls: tls()?, path: path(), max_packet_size },
        };
        let tcp = TcpTransportListener::bind(&address.address).await?;
        Ok(Listener { tcp, upgrader, settings: address.settings })
    }

    /// The address actually bound (the port is chosen by the OS when 0 was asked for).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// The scheme of this listener, for logs.
    pub(crate) fn scheme(&self) -> &'static str {
        match self.upgrader {
            Upgrader::Tcp => "tcp",
            Upgrader::Tls(_) => "tls",
            Upgrader::Ws { .. } => "ws",
            Upgrader::Wss { .. } => "wss",
        }
    }

    /// Waits for the next connection: a bare socket, with no handshake done on it.
    pub(crate) async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.tcp.accept().await
    }

    /// The listener's own settings: its connection limit and rate, and whether its connections
    /// start with a PROXY protocol header.
    pub(crate) fn settings(&self) -> ListenerSettings {
        self.settings
    }

    /// What turns this listener's accepted sockets into transports.
    pub(crate) fn upgrader(&self) -> Upgrader {
        self.upgrader.clone()
    }
}

/// Turns an accepted socket into a `Transport`, running the transport's handshake; called in the
/// connection's task, never in the accept loop.
#[derive(Debug, Clone)]
pub(crate) enum Upgrader {
    /// Plain TCP: no handshake.
    Tcp,
    /// A TLS handshake.
    Tls(Arc<TlsFiles>),
    /// The WebSocket upgrade of `path`.
    Ws { path: Arc<str>, max_packet_size: usize },
    /// A TLS handshake, then the WebSocket upgrade of `path`.
    Wss { tls: Arc<TlsFiles>, path: Arc<str>, max_packet_size: usize },
}

/// A transport after its handshake.
pub(crate) struct Upgraded {
    /// The byte stream.
    pub(crate) transport: Box<dyn Transport>,
    /// The Common Name of the client certificate that TLS verified, if any.
    pub(crate) certificate_name: Option<String>,
}

impl Upgrader {
    /// Runs the handshake on `stream`: an accepted socket, or one whose PROXY header was read.
    pub(crate) async fn upgrade<S: Transport>(&self, stream: S) -> io::Result<Upgraded> {
        let (transport, certificate_name): (Box<dyn Transport>, _) = match self {
            Upgrader::Tcp => (Box::new(stream), None),
            Upgrader::Tls(tls) => {
                let (stream, name) = tls.accept(stream).await?;
                (Box::new(stream), name)
            }
            Upgrader::Ws { path, max_packet_size } => {
                (Box::new(ws::accept(stream, path, *max_packet_size).await?), None)
            }
            Upgrader::Wss { tls, path, max_packet_size } => {
                let (stream, name) = tls.accept(stream).await?;
                (Box::new(ws::accept(stream, path, *max_packet_size).await?), name)
            }
        };
        Ok(Upgraded { transport, certificate_name })
    }
}
