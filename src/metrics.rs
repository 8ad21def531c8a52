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
    /// MQTT packets received from clients, of every type.
    pub packets_received: AtomicU64,
    /// PUBLISH packets received from clients, by QoS.
    pub messages_received: [AtomicU64; 3],
    /// PUBLISH packets sent to clients, by QoS.
    pub messages_sent: [AtomicU64; 3],
    /// Payload bytes of the PUBLISH packets received.
    pub payload_bytes_received: AtomicU64,
    /// Payload bytes of the PUBLISH packets sent.
    pub payload_bytes_sent: AtomicU64,
    /// Bytes read from client connections (after TLS and WebSocket framing).
    pub bytes_received: AtomicU64,
    /// Bytes written to client connections (before TLS and WebSocket framing).
    pub bytes_sent: AtomicU64,
    /// QoS 0 publications that no subscription matched.
    pub dropped_no_subscribers: AtomicU64,
    /// Connections whose CONNECT was accepted, by protocol level 3, 4 and 5.
    pub connects_by_version: [AtomicU64; 3],
    /// Logins accepted, and refused for bad credentials or as not authorised.
    pub auth_accepted: AtomicU64,
    /// Logins refused: bad username or password (0x04 / 0x86).
    pub auth_bad_credentials: AtomicU64,
    /// Logins refused: not authorised (0x05 / 0x87).
    pub auth_not_authorized: AtomicU64,
    /// Offline sessions discarded at their expiry.
    pub sessions_expired: AtomicU64,
    /// Connections online (CONNACK sent and not yet closed).
    pub connections_current: AtomicU64,
    /// Most connections online at once.
    pub connections_maximum: AtomicU64,
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
    /// Each listener's counts.
    pub listeners: std::sync::Mutex<Vec<std::sync::Arc<ListenerCounters>>>,
}

/// The counts of one listener.
#[derive(Debug)]
pub struct ListenerCounters {
    /// The listener's URL as configured.
    pub name: std::sync::Arc<str>,
    /// Connections it accepted.
    pub accepted: AtomicU64,
    /// Its connections open now (accepted and not yet closed).
    pub open: AtomicU64,
}

impl Metrics {
    /// The counters of a new listener called `name`, kept for `/metrics`.
    pub(crate) fn listener(&self, name: &std::sync::Arc<str>) -> std::sync::Arc<ListenerCounters> {
        let counters = std::sync::Arc::new(ListenerCounters {
            name: std::sync::Arc::clone(name),
            accepted: AtomicU64::new(0),
            open: AtomicU64::new(0),
        });
        self.listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(std::sync::Arc::clone(&counters));
        counters
    }
}

/// One connection's counts since it last added them to the server's: kept in the connection's
/// task and added once per turn, so that counting costs no shared write per message.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocalCounts {
    pub(crate) received: [u64; 3],
    pub(crate) received_payload: u64,
    pub(crate) sent: [u64; 3],
    pub(crate) sent_payload: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) no_subscribers: u64,
    pub(crate) packets_in: u64,
}

impl LocalCounts {
    /// Adds the counts to `metrics` and starts again from zero.
    pub(crate) fn flush(&mut self, metrics: &Metrics) {
        let add = |counter: &AtomicU64, value: u64| {
            if value != 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        for qos in 0..3 {
            add(&metrics.messages_received[qos], self.received[qos]);
            add(&metrics.messages_sent[qos], self.sent[qos]);
        }
        add(&metrics.payload_bytes_received, self.received_payload);
        add(&metrics.payload_bytes_sent, self.sent_payload);
        add(&metrics.bytes_received, self.bytes_in);
        add(&metrics.bytes_sent, self.bytes_out);
        add(&metrics.dropped_no_subscribers, self.no_subscribers);
        add(&metrics.packets_received, self.packets_in);
        *self = LocalCounts::default();
    }
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
