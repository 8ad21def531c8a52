//! Protection against clients that connect too often: connection-rate buckets per source
//! address (those per listener belong to the accept loop alone), and the rate-limited log line
//! of connections closed at accept.
//!
//! Sans-IO: every decision takes `now`; nothing here reads the clock, owns a socket or spawns.
//! Each table is bounded. With every limit off (the default) nothing here is built.

mod bucket;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use bucket::{AddressRates, TokenBucket};

use crate::config::ServerConfig;

/// The protection state the whole server shares.
#[derive(Debug)]
pub(crate) struct Protection {
    /// Connection-rate buckets per source address; `None` when
    /// `max_connection_rate_per_address` is 0.
    pub(crate) address_rates: Option<AddressRates>,
    /// The log lines of connections closed at accept, one limiter per reason.
    refusal_logs: [LogLimiter; Refusal::COUNT],
}

impl Protection {
    /// The protection `config` asks for.
    pub(crate) fn new(config: &ServerConfig) -> Protection {
        Protection {
            address_rates: (config.max_connection_rate_per_address > 0)
                .then(|| AddressRates::new(config.max_connection_rate_per_address)),
            refusal_logs: Default::default(),
        }
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

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    #[test]
    fn no_limit_builds_nothing() {
        let protection = Protection::new(&ServerConfig::default());
        assert!(protection.address_rates.is_none());
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
