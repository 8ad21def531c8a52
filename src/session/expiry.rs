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

    /// The expiry of a 5.0 session from its Session Expiry Interval in seconds (3.1.2.11.2),
    /// capped by the server's `timeout` (`None`: no cap), with the interval granted: 0 ends the
    /// session with the connection, `u32::MAX` never expires it.
    pub fn for_v5(interval: u32, timeout: Option<Duration>) -> (SessionExpiry, u32) {
        let cap = timeout.map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX - 1));
        match (interval, cap) {
            (0, _) => (SessionExpiry::OnClose, 0),
            (u32::MAX, None) => (SessionExpiry::Never, u32::MAX),
            (requested, Some(cap)) if requested > cap => {
                (SessionExpiry::After(Duration::from_secs(u64::from(cap))), cap)
            }
            (requested, _) => (SessionExpiry::After(Duration::from_secs(u64::from(requested))), requested),
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

    /// 3.1.2.11.2: the interval replaces the clean flag; the server's maximum caps it.
    #[test]
    fn session_expiry_interval_is_capped_by_the_server() {
        let cap = Some(Duration::from_secs(300));
        assert_eq!(SessionExpiry::for_v5(0, cap), (SessionExpiry::OnClose, 0));
        assert_eq!(SessionExpiry::for_v5(60, cap), (SessionExpiry::After(Duration::from_secs(60)), 60));
        assert_eq!(SessionExpiry::for_v5(3600, cap), (SessionExpiry::After(Duration::from_secs(300)), 300));
        assert_eq!(SessionExpiry::for_v5(u32::MAX, cap).1, 300);
        assert_eq!(SessionExpiry::for_v5(u32::MAX, None), (SessionExpiry::Never, u32::MAX));
        assert_eq!(SessionExpiry::for_v5(7, None), (SessionExpiry::After(Duration::from_secs(7)), 7));
    }
}
