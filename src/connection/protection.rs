//! The connection's side of the protection limits: the PROXY header and the per-address
//! connection rate behind a proxy (before the transport's handshake), flapping detection at
//! CONNECT, and the wait of a client paused for publishing beyond its limits.
//!
//! The decisions are `crate::protection`'s; this module reads the clock and the socket.

use std::io;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::context::Context;
use crate::exit::Exit;
use crate::identity::ConnectionInfo;
use crate::protection::{Refusal, Verdict};
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

/// Whether flapping detection has banned `client_id` (counting nothing): asked before the
/// password check, so a banned client costs none.
#[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
pub(super) fn is_banned(context: &Context, client_id: &str) -> bool {
    context.protection.flapping.as_ref().is_some_and(|flapping| flapping.is_banned(client_id, Instant::now()))
}

/// Counts an authenticated CONNECT of `client_id` for flapping detection; true if it is
/// refused, having begun a ban or come during one.
#[allow(clippy::disallowed_methods)] // The I/O edge reads the clock.
pub(super) fn is_flapping(context: &Context, client_id: &str) -> bool {
    let Some(flapping) = &context.protection.flapping else { return false };
    match flapping.connect(client_id, Instant::now()) {
        Verdict::Allowed => false,
        Verdict::Banned { new } => {
            if new {
                context.metrics.flapping_bans.fetch_add(1, Ordering::Relaxed);
                let config = &context.config;
                tracing::warn!(
                    connects = config.flapping_max_connects,
                    window_secs = config.flapping_window_secs,
                    ban_secs = config.flapping_ban_secs,
                    "client identifier banned for flapping: too many CONNECTs within the window"
                );
            }
            true
        }
    }
}

/// Completes at `until`; never without it.
pub(super) async fn resume(until: Option<Instant>) {
    match until {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}
