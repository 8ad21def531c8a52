//! Protection against clients that connect or publish too much: connection-rate buckets per
//! source address (those per listener belong to the accept loop alone), flapping detection by
//! client identifier, the per-connection publish limits, and the rate-limited log line of
//! connections closed at accept.
//!
//! Sans-IO: every decision takes `now`; nothing here reads the clock, owns a socket or spawns.
//! Each table is bounded. With every limit off (the default) nothing here is built, and the
//! connection's hot path pays one `Option` check per packet.

mod bucket;
mod flapping;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use bucket::{AddressRates, TokenBucket};
pub(crate) use flapping::{Flapping, Verdict};

use crate::config::ServerConfig;

/// The protection state the whole server shares.
#[derive(Debug)]
pub(crate) struct Protection {
    /// Connection-rate buckets per source address; `None` when
    /// `max_connection_rate_per_address` is 0.
    pub(crate) address_rates: Option<AddressRates>,
    /// Flapping detection; `None` when `flapping_max_connects` is 0.
    pub(crate) flapping: Option<Flapping>,
    /// PUBLISH packets per second per client; 0: no limit.
    publish_rate: u64,
    /// PUBLISH bytes per second per client; 0: no limit.
    publish_bytes_rate: u64,
    /// The log lines of connections closed at accept, one limiter per reason.
    refusal_logs: [LogLimiter; Refusal::COUNT],
}

impl Protection {
    /// The protection `config` asks for.
    pub(crate) fn new(config: &ServerConfig) -> Protection {
        let flapping = (config.flapping_max_connects > 0).then(|| {
            Flapping::new(
                config.flapping_max_connects,
                Duration::from_secs(config.flapping_window_secs),
                Duration::from_secs(config.flapping_ban_secs),
            )
        });
        Protection {
            address_rates: (config.max_connection_rate_per_address > 0)
                .then(|| AddressRates::new(config.max_connection_rate_per_address)),
            flapping,
            publish_rate: config.max_publish_rate,
            publish_bytes_rate: config.max_publish_bytes_rate,
            refusal_logs: Default::default(),
        }
    }

    /// The publish limits of a new connection, if any are configured: a 5.0 connection
    /// (`refuse`) is refused a PUBLISH beyond them, any other is slowed down.
    pub(crate) fn publish_limit(&self, refuse: bool, now: Instant) -> Option<PublishLimit> {
        if self.publish_rate == 0 && self.publish_bytes_rate == 0 {
            return None;
        }
        let bucket = |rate: u64| (rate > 0).then(|| TokenBucket::new(rate, now));
        Some(PublishLimit {
            packets: bucket(self.publish_rate),
            bytes: bucket(self.publish_bytes_rate),
            refuse,
            paused_until: None,
        })
    }

    /// Whether a connection closed at accept for `refusal` is logged now: at most one line per
    /// second for each reason. Returns how many were closed without a line since the last one.
    pub(crate) fn log_refusal(&self, refusal: Refusal, now: Instant) -> Option<u64> {
        self.refusal_logs[refusal as usize].allow(now)
    }
}

/// Why a connection was closed at accept, before any handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `server.max_connections` reached.
    ServerLimit,
    /// The listener's `max_connections` reached.
    ListenerLimit,
    /// The listener's connection rate exceeded.
    ListenerRate,
    /// The source address's connection rate exceeded.
    AddressRate,
}

impl Refusal {
    /// Number of reasons.
    const COUNT: usize = 4;

    /// What the log line says.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Refusal::ServerLimit => "server.max_connections reached",
            Refusal::ListenerLimit => "the listener's max_connections reached",
            Refusal::ListenerRate => "the listener's connection rate (max_connection_rate) exceeded",
            Refusal::AddressRate => {
                "the address's connection rate (max_connection_rate_per_address) exceeded"
            }
        }
    }
}

/// At most one log line per second of one kind, counting what it did not log.
#[derive(Debug, Default)]
pub(crate) struct LogLimiter {
    /// When the last line was logged, and how many were not logged since.
    state: Mutex<Option<(Instant, u64)>>,
}

impl LogLimiter {
    /// Whether a line may be logged at `now`, with the number not logged since the last one.
    pub(crate) fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            Some((last, suppressed)) if now.duration_since(*last) < Duration::from_secs(1) => {
                *suppressed += 1;
                None
            }
            _ => {
                let suppressed = state.map_or(0, |(_, suppressed)| suppressed);
                *state = Some((now, 0));
                Some(suppressed)
            }
        }
    }
}

/// One connection's PUBLISH limits (`max_publish_rate`, `max_publish_bytes_rate`).
#[derive(Debug)]
pub(crate) struct PublishLimit {
    /// PUBLISH packets per second.
    packets: Option<TokenBucket>,
    /// PUBLISH bytes per second.
    bytes: Option<TokenBucket>,
    /// Whether a PUBLISH beyond the limits is refused (5.0: DISCONNECT 0x96) rather than
    /// slowed down.
    refuse: bool,
    /// Until when the connection reads nothing more, having published beyond its limits.
    paused_until: Option<Instant>,
}

impl PublishLimit {
    /// Whether the connection must not read another packet at `now`.
    pub(crate) fn paused(&mut self, now: Instant) -> bool {
        match self.paused_until {
            Some(until) if until > now => true,
            Some(_) => {
                self.paused_until = None;
                false
            }
            None => false,
        }
    }

    /// When reading may resume, if it is paused.
    pub(crate) fn resume_at(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Counts a PUBLISH packet of `size` bytes read at `now`. Returns false if it is refused;
    /// a connection that is slowed instead takes every packet and pauses once its buckets run
    /// dry, until they hold again.
    pub(crate) fn admit(&mut self, size: usize, now: Instant) -> bool {
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if self.refuse {
            return self.packets.as_mut().is_none_or(|b| b.try_take(1, now))
                && self.bytes.as_mut().is_none_or(|b| b.try_take(size, now));
        }
        let packets = self.packets.as_mut().and_then(|b| b.take(1, now));
        let bytes = self.bytes.as_mut().and_then(|b| b.take(size, now));
        self.paused_until = packets.max(bytes);
        true
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    fn config(publish_rate: u64, bytes_rate: u64) -> ServerConfig {
        ServerConfig {
            max_publish_rate: publish_rate,
            max_publish_bytes_rate: bytes_rate,
            ..Default::default()
        }
    }

    #[test]
    fn no_limit_builds_nothing() {
        let now = Instant::now();
        let protection = Protection::new(&ServerConfig::default());
        assert!(protection.publish_limit(true, now).is_none());
        assert!(protection.address_rates.is_none() && protection.flapping.is_none());
    }

    #[test]
    fn a_refusing_limit_refuses_the_publish_beyond_one_seconds_worth() {
        let now = Instant::now();
        let mut limit = Protection::new(&config(3, 0)).publish_limit(true, now).unwrap();
        assert!((0..3).all(|_| limit.admit(10, now)));
        assert!(!limit.admit(10, now));
        assert!(!limit.paused(now), "refusing never pauses");
        let mut bytes = Protection::new(&config(0, 100)).publish_limit(true, now).unwrap();
        assert!(bytes.admit(60, now));
        assert!(!bytes.admit(60, now), "120 bytes in an instant, against 100 a second");
        assert!(bytes.admit(60, now + Duration::from_millis(200)));
    }

    #[test]
    fn a_slowing_limit_takes_every_publish_and_pauses_until_the_bucket_holds_again() {
        let now = Instant::now();
        let mut limit = Protection::new(&config(10, 0)).publish_limit(false, now).unwrap();
        assert!((0..10).all(|_| limit.admit(10, now)));
        assert!(!limit.paused(now));
        assert!(limit.admit(10, now), "slowed, never refused");
        assert!(limit.paused(now));
        let resume = limit.resume_at().unwrap();
        assert_eq!(resume - now, Duration::from_millis(100));
        assert!(!limit.paused(resume));
        assert_eq!(limit.resume_at(), None);
    }

    #[test]
    fn refusals_are_logged_once_a_second_with_the_count_left_out() {
        let now = Instant::now();
        let log = LogLimiter::default();
        assert_eq!(log.allow(now), Some(0));
        assert_eq!(log.allow(now + Duration::from_millis(10)), None);
        assert_eq!(log.allow(now + Duration::from_millis(999)), None);
        assert_eq!(log.allow(now + Duration::from_secs(1)), Some(2));
        assert_eq!(log.allow(now + Duration::from_secs(5)), Some(0));
    }
}
