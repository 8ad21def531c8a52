//! Session expiry: how long a session outlives its network connection.
//!
//! 3.1.1 knows two cases: a clean session ends with its connection [MQTT-3.1.2-6], a persistent
//! one is kept (here for `session_timeout_secs`). 5.0's Session Expiry Interval, set at CONNECT
//! and changed at DISCONNECT, will be a third source of the same value. Sans-IO: `now` is an
//! argument.

use std::time::Duration;

use tokio::time::Instant;

/// How long a session is kept once its connection has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionExpiry {
    /// It ends with the connection (clean session).
    OnClose,
    /// It is kept this long.
    After(Duration),
    /// It is kept while the server runs.
    Never,
}

impl SessionExpiry {
    /// The expiry of a 3.1.1 session: clean sessions end on close, persistent ones after the
    /// configured timeout (`None`: never).
    pub fn for_v3(clean: bool, timeout: Option<Duration>) -> SessionExpiry {
        match (clean, timeout) {
            (true, _) => SessionExpiry::OnClose,
            (false, Some(after)) => SessionExpiry::After(after),
            (false, None) => SessionExpiry::Never,
        }
    }

    /// Whether the session is kept at all once its connection ends.
    pub fn keeps(self) -> bool {
        self != SessionExpiry::OnClose
    }

    /// When a session whose connection ended at `now` is discarded; `None` for never (and for a
    /// session that is not kept at all, see `keeps`).
    pub fn deadline(self, now: Instant) -> Option<Instant> {
        match self {
            SessionExpiry::After(after) => now.checked_add(after),
            SessionExpiry::OnClose | SessionExpiry::Never => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    #[test]
    fn mqtt_3_1_2_6_clean_sessions_are_not_kept() {
        let now = Instant::now();
        assert!(!SessionExpiry::for_v3(true, Some(Duration::from_secs(5))).keeps());
        let kept = SessionExpiry::for_v3(false, Some(Duration::from_secs(5)));
        assert!(kept.keeps());
        assert_eq!(kept.deadline(now), Some(now + Duration::from_secs(5)));
        assert_eq!(SessionExpiry::for_v3(false, None).deadline(now), None);
    }
}
