//! The connection's side of the protection limits: the PROXY header and the per-address
//! connection rate behind a proxy (before the transport's handshake), and the wait of a client
//! paused for publishing beyond its limits.
//!
//! The decisions are `crate::protection`'s; this module reads the clock and the socket.

use std::io;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::context::Context;
use crate::exit::Exit;
use crate::identity::ConnectionInfo;
use crate::protection::Refusal;
use crate::transport::proxy::{self, Prefixed, ProxyHeader};
use crate::transport::{Upgraded, Upgrader};

/// Turns an accepted socket into a transport. On a `proxied` listener the PROXY header comes
/// first: its source address becomes `info.peer` (and the span's `peer`), and the per-address
/// connection rate, which the accept loop could not apply, is applied to it here. A missing or
/// malformed header closes the connection (one log line, as a failed handshake). Then the
/// transport's handshake. All of it runs under the caller's connect timeout.
#[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
pub(super) async fn open(
    mut stream: TcpStream,
    upgrader: &Upgrader,
    proxied: bool,
    info: &mut ConnectionInfo,
    context: &Context,
) -> Result<Upgraded, Exit> {
    if !proxied {
        return upgrader.upgrade(stream).await.map_err(Exit::Handshake);
    }
    let (header, rest) = match proxy::read_header(&mut stream).await {
        Ok(Ok(found)) => found,
        Ok(Err(error)) => {
            context.metrics.proxy_header_errors.fetch_add(1, Ordering::Relaxed);
            return Err(Exit::Handshake(io::Error::new(io::ErrorKind::InvalidData, error)));
        }
        Err(error) => return Err(Exit::Handshake(error)),
    };
    if let ProxyHeader::Source(source) = header {
        info.peer = source;
    }
    tracing::Span::current().record("peer", tracing::field::display(info.peer));
    if let Some(addresses) = &context.protection.address_rates {
        let now = Instant::now();
        if !addresses.admit(info.peer.ip(), now) {
            context.refused(Refusal::AddressRate, info.peer, &info.listener, now);
            return Err(Exit::RateLimited);
        }
    }
    upgrader.upgrade(Prefixed::new(rest, stream)).await.map_err(Exit::Handshake)
}

/// Completes at `until`; never without it.
pub(super) async fn resume(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}
