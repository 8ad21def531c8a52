//! Flapping detection: a client identifier that connects `max_connects` times within a window
//! is banned for a while, so that a client stuck in a reconnect loop (or two clients fighting
//! over one identifier, taking each other over) stops costing a session takeover each time.
//!
//! The window is fixed: it opens at the identifier's first CONNECT and lasts `window`; the
//! CONNECT that reaches `max_connects` within it is refused and starts the ban, and every
//! CONNECT during the ban is refused without extending it. Only CONNECTs that passed
//! authentication are counted (the connection counts them after the password check), so that
//! nobody can get someone else's identifier banned; a banned identifier is refused before the
//! check. The table is bounded; time is an argument.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::Generations;

/// Most client identifiers whose recent CONNECTs are remembered.
const TRACKED_CLIENTS: usize = 100_000;

/// What flapping detection says of a CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not flapping.
    Allowed,
    /// Banned; `new` when this CONNECT began the ban.
    Banned {
        /// Whether this CONNECT began the ban.
        new: bool,
    },
}

/// One client identifier's recent CONNECTs.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// When the current window opened.
    window_start: Instant,
    /// CONNECTs counted in it.
    connects: u64,
    /// When the ban ends, if the identifier is banned.
    banned_until: Option<Instant>,
}

/// The CONNECTs of recent client identifiers.
#[derive(Debug)]
pub(crate) struct Flapping {
    /// CONNECTs within `window` that ban an identifier.
    max_connects: u64,
    /// How long a window lasts.
    window: Duration,
    /// How long a ban lasts.
    ban: Duration,
    /// Records by client identifier.
    clients: Mutex<Generations<String, Record>>,
}

impl Flapping {
    /// Detection of `max_connects` CONNECTs within `window`, banning for `ban`.
    pub(crate) fn new(max_connects: u64, window: Duration, ban: Duration) -> Flapping {
        Flapping { max_connects, window, ban, clients: Mutex::new(Generations::new(TRACKED_CLIENTS)) }
    }

    /// Whether `client_id` is banned at `now`; counts nothing.
    pub(crate) fn is_banned(&self, client_id: &str, now: Instant) -> bool {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.get_mut(client_id).and_then(|record| record.banned_until).is_some_and(|until| now < until)
    }

    /// Counts a CONNECT of `client_id` at `now` and says whether it may go on.
    pub(crate) fn connect(&self, client_id: &str, now: Instant) -> Verdict {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        let record = clients.entry(client_id.to_owned(), || Record {
            window_start: now,
            connects: 0,
            banned_until: None,
        });
        if let Some(until) = record.banned_until {
            if now < until {
                return Verdict::Banned { new: false };
            }
            *record = Record { window_start: now, connects: 0, banned_until: None };
        }
        if now.duration_since(record.window_start) >= self.window {
            record.window_start = now;
            record.connects = 0;
        }
        record.connects += 1;
        if record.connects >= self.max_connects {
            record.banned_until = Some(now + self.ban);
            return Verdict::Banned { new: true };
        }
        Verdict::Allowed
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    #[test]
    fn the_connect_that_reaches_the_limit_within_the_window_bans_until_the_ban_ends() {
        let start = Instant::now();
        let flapping = Flapping::new(3, Duration::from_secs(10), Duration::from_secs(60));
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(flapping.connect("c", at(0)), Verdict::Allowed);
        assert_eq!(flapping.connect("c", at(5)), Verdict::Allowed);
        assert!(!flapping.is_banned("c", at(6)));
        assert_eq!(flapping.connect("c", at(9)), Verdict::Banned { new: true });
        assert!(flapping.is_banned("c", at(10)));
        assert_eq!(flapping.connect("c", at(30)), Verdict::Banned { new: false });
        assert_eq!(flapping.connect("other", at(30)), Verdict::Allowed);
        assert!(flapping.is_banned("c", at(68)));
        assert!(!flapping.is_banned("c", at(69)), "the ban lasts 60 s from the CONNECT that began it");
        assert_eq!(flapping.connect("c", at(69)), Verdict::Allowed, "a ban that ended leaves a clean record");
    }

    #[test]
    fn connects_spread_beyond_the_window_are_not_flapping() {
        let start = Instant::now();
        let flapping = Flapping::new(2, Duration::from_secs(10), Duration::from_secs(60));
        for window in 0..10 {
            let at = start + Duration::from_secs(10 * window);
            assert_eq!(flapping.connect("c", at), Verdict::Allowed, "window {window}");
        }
    }
}
