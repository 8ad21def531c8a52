//! Keep-alive: when a silent client is considered gone [MQTT-3.1.2-24].
//!
//! Sans-IO: time is an argument. The connection reports activity (a whole packet read, or, while
//! the broker itself is the one not reading, bytes the client took), and asks for the deadline
//! to sleep until. It never reads a clock or a socket.

use std::time::Duration;

use tokio::time::Instant;

/// The keep-alive of one network connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepAlive {
    /// One and a half times the client's keep-alive; `None` when the client turned it off (0).
    limit: Option<Duration>,
    /// When the client last showed it was alive.
    last_activity: Instant,
}

impl KeepAlive {
    /// The keep-alive a CONNECT asked for, in seconds, starting at `now`.
    pub(crate) fn new(keep_alive_secs: u16, now: Instant) -> KeepAlive {
        let limit = (keep_alive_secs > 0).then(|| Duration::from_millis(u64::from(keep_alive_secs) * 1500));
        KeepAlive { limit, last_activity: now }
    }

    /// Records that the client was alive at `now`: it sent a whole control packet (a trickle of
    /// bytes that never completes one does not count), or the broker had paused reading it.
    pub(crate) fn record_activity(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    /// When the connection is due to be closed unless the client shows activity first.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.limit.map(|limit| self.last_activity + limit)
    }

    /// True once the deadline has passed at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|deadline| now >= deadline)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    #[test]
    fn mqtt_3_1_2_24_expires_after_one_and_a_half_keep_alives_without_activity() {
        let start = Instant::now();
        let mut keep_alive = KeepAlive::new(10, start);
        assert_eq!(keep_alive.deadline(), Some(start + Duration::from_secs(15)));
        assert!(!keep_alive.expired(start + Duration::from_millis(14_999)));
        keep_alive.record_activity(start + Duration::from_secs(10));
        assert!(!keep_alive.expired(start + Duration::from_secs(24)));
        assert!(keep_alive.expired(start + Duration::from_secs(25)));
    }

    #[test]
    fn keep_alive_zero_never_expires() {
        let start = Instant::now();
        let keep_alive = KeepAlive::new(0, start);
        assert_eq!(keep_alive.deadline(), None);
        assert!(!keep_alive.expired(start + Duration::from_secs(1_000_000)));
    }
}
