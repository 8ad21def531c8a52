//! Server-wide counters. Cheap relaxed atomics today; the seam where Prometheus metrics and
//! `$SYS` topics will read from.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use iothub_protocol::QoS;

/// Counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections accepted by a listener.
    pub connections_accepted: AtomicU64,
    /// Connections closed at accept because `server.max_connections` or the listener's
    /// `max_connections` was reached.
    pub connections_refused: AtomicU64,
    /// Connections closed for a protocol violation or malformed packet.
    pub protocol_errors: AtomicU64,
    /// QoS 0 deliveries dropped because a session queue was full.
    pub dropped_qos0: AtomicU64,
    /// QoS 1 and 2 deliveries dropped because a session queue was full.
    pub dropped_qos12: AtomicU64,
    /// Retained messages not stored because `retained_message_limit` was reached.
    pub retained_refused: AtomicU64,
    /// Retained-store walks on subscribe cut short by their budget.
    pub retained_walks_cut: AtomicU64,
    /// Deliveries not sent because their Message Expiry Interval had passed.
    pub dropped_expired: AtomicU64,
    /// Deliveries not sent because they exceed the client's Maximum Packet Size.
    pub dropped_too_large: AtomicU64,
    /// Deliveries not sent because the ACL no longer lets the subscriber read their topic (it
    /// was revoked by a reload after they were queued).
    pub dropped_acl: AtomicU64,
    /// Shared subscription deliveries handed to another member when a member's session ended.
    pub shared_handed_on: AtomicU64,
    /// Connections closed before any handshake because a listener's or a source address's
    /// connection rate was exceeded.
    pub connections_rate_limited: AtomicU64,
    /// PUBLISH packets beyond a client's `max_publish_rate` or `max_publish_bytes_rate`: 5.0
    /// connections closed with DISCONNECT 0x96, 3.1.1 connections paused.
    pub publish_rate_limited: AtomicU64,
    /// Client identifiers banned for flapping.
    pub flapping_bans: AtomicU64,
    /// Connections closed because their PROXY protocol header was missing or malformed.
    pub proxy_header_errors: AtomicU64,
}

impl Metrics {
    /// Counts one delivery dropped at a full queue.
    pub fn count_dropped(&self, qos: QoS) {
        let counter = if qos == QoS::AtMostOnce { &self.dropped_qos0 } else { &self.dropped_qos12 };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one retained message refused at the limit; returns the count so far.
    pub fn count_retained_refused(&self) -> u64 {
        self.retained_refused.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts one retained-store walk cut short by its budget, logging at powers of two.
    pub fn count_retained_walk_cut(&self) {
        let cut = self.retained_walks_cut.fetch_add(1, Ordering::Relaxed) + 1;
        if cut.is_power_of_two() {
            tracing::warn!(
                cut,
                "retained messages on subscribe cut short: the SUBSCRIBE's walk budget ran out"
            );
        }
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "connections accepted {}, refused {}, protocol errors {}; dropped QoS 0 {}, QoS 1/2 {}; retained refused {}",
            get(&self.connections_accepted),
            get(&self.connections_refused),
            get(&self.protocol_errors),
            get(&self.dropped_qos0),
            get(&self.dropped_qos12),
            get(&self.retained_refused),
        )
    }
}
