//! Token buckets, and a bounded table of them per source address.
//!
//! A bucket is kept as the time at which it will be full again (the generic cell rate
//! algorithm): taking `n` units pushes that time `n / rate` seconds on, and a bucket may run at
//! most `capacity` seconds ahead of now. One `Instant` per bucket, no timer, no task. Time is
//! an argument; nothing here reads the clock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket that refills at `rate` units per second and holds one second's worth.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Units per second.
    rate: u64,
    /// How far ahead of now the bucket may run: what it holds when full, as time.
    capacity: Duration,
    /// When the bucket is full again; at or before now it is full.
    full_at: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` units per second (at least 1) that holds one second's worth.
    pub(crate) fn new(rate: u64, now: Instant) -> TokenBucket {
        TokenBucket { rate: rate.max(1), capacity: Duration::from_secs(1), full_at: now }
    }

    /// How long `units` take to refill.
    fn cost(&self, units: u64) -> Duration {
        let nanos = u128::from(units) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Takes `units` if the bucket holds them, or if it is full (so that one request larger
    /// than the bucket still passes, once); otherwise takes nothing and returns false.
    pub(crate) fn try_take(&mut self, units: u64, now: Instant) -> bool {
        if self.full_at <= now {
            self.full_at = now + self.cost(units);
            return true;
        }
        let after = self.full_at + self.cost(units);
        if after <= now + self.capacity {
            self.full_at = after;
            true
        } else {
            false
        }
    }

    /// Takes `units` whatever the bucket holds; returns when it will hold something again, if
    /// it ran dry (the moment to resume taking), or `None` if it still holds some now.
    pub(crate) fn take(&mut self, units: u64, now: Instant) -> Option<Instant> {
        self.full_at = self.full_at.max(now) + self.cost(units);
        let limit = now + self.capacity;
        (self.full_at > limit).then(|| self.full_at - self.capacity)
    }
}

/// A map of at most `bound` entries that forgets the least recently used half when it fills:
/// entries live in two generations, a lookup moves an entry to the current one, and when the
/// current one holds half the bound the previous one is dropped. Every operation is O(1)
/// amortised; an entry not used for a whole generation is forgotten.
#[derive(Debug)]
pub(crate) struct Generations<K, V> {
    /// Entries used in this generation.
    current: HashMap<K, V>,
    /// Entries of the previous generation not used since.
    previous: HashMap<K, V>,
    /// Most entries of one generation.
    half: usize,
}

impl<K: Eq + Hash, V> Generations<K, V> {
    /// An empty map of at most `bound` entries (at least 2).
    pub(crate) fn new(bound: usize) -> Generations<K, V> {
        Generations { current: HashMap::new(), previous: HashMap::new(), half: (bound / 2).max(1) }
    }

    /// The entry of `key`, made by `make` if the map has none.
    pub(crate) fn entry(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.current.contains_key(&key) {
            let value = self.previous.remove(&key).unwrap_or_else(make);
            if self.current.len() >= self.half {
                self.previous = std::mem::take(&mut self.current);
            }
            return self.current.entry(key).or_insert(value);
        }
        self.current.entry(key).or_insert_with(make)
    }

    /// The entry of `key`, if the map has one, moved to the current generation.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if !self.current.contains_key(key) {
            let (key, value) = self.previous.remove_entry(key)?;
            if self.current.len() >= self.half {
                self.previous = std::mem::take(&mut self.current);
            }
            return Some(self.current.entry(key).or_insert(value));
        }
        self.current.get_mut(key)
    }

    /// Number of entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// The connection-rate buckets of source addresses, shared by every listener.
#[derive(Debug)]
pub(crate) struct AddressRates {
    /// Connections per second allowed to one address.
    rate: u64,
    /// The buckets of addresses seen lately.
    buckets: Mutex<Generations<IpAddr, TokenBucket>>,
}

/// Most addresses whose buckets are kept. An address forgotten gets a full bucket, which is
/// what an address idle for a second has anyway.
pub(crate) const TRACKED_ADDRESSES: usize = 100_000;

impl AddressRates {
    /// Buckets of `rate` connections per second per address.
    pub(crate) fn new(rate: u64) -> AddressRates {
        AddressRates { rate, buckets: Mutex::new(Generations::new(TRACKED_ADDRESSES)) }
    }

    /// Whether `address` may open another connection at `now`; counts it if so.
    pub(crate) fn admit(&self, address: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = self.rate;
        let bucket = buckets.entry(address, || TokenBucket::new(rate, now));
        bucket.try_take(1, now)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests start their fake clocks from a real instant.
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_seconds_worth_and_refills_at_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(4, start);
        for _ in 0..4 {
            assert!(bucket.try_take(1, start));
        }
        assert!(!bucket.try_take(1, start), "a fifth connection in the same instant");
        assert!(!bucket.try_take(1, start + Duration::from_millis(200)));
        assert!(bucket.try_take(1, start + Duration::from_millis(250)), "a quarter second refills one");
        assert!(!bucket.try_take(1, start + Duration::from_millis(250)));
        let later = start + Duration::from_secs(60);
        for _ in 0..4 {
            assert!(bucket.try_take(1, later), "a bucket never holds more than it can");
        }
        assert!(!bucket.try_take(1, later));
    }

    #[test]
    fn a_request_larger_than_the_bucket_passes_once_when_it_is_full() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1000, start);
        assert!(bucket.try_take(5000, start));
        assert!(!bucket.try_take(1, start + Duration::from_secs(4)));
        let later = start + Duration::from_millis(4001);
        assert!(bucket.try_take(1, later), "it owed 5 s, of which 1 s may be ahead");
    }

    #[test]
    fn taking_regardless_says_when_to_resume() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        for _ in 0..10 {
            assert_eq!(bucket.take(1, start), None);
        }
        let resume = bucket.take(1, start).unwrap();
        assert_eq!(resume - start, Duration::from_millis(100));
        let resume = bucket.take(1, resume).unwrap();
        assert_eq!(resume - start, Duration::from_millis(200));
    }

    #[test]
    fn generations_hold_at_most_their_bound_and_keep_what_is_used() {
        let mut table: Generations<u32, u32> = Generations::new(10);
        for key in 0..1000 {
            *table.entry(key, || 0) += 1;
            assert!(table.len() <= 10, "{} entries after {key}", table.len());
            // Key 0 is used all along, so it is never forgotten.
            *table.entry(0, || 0) += 1;
        }
        assert_eq!(*table.entry(0, || 0), 1001);
        assert_eq!(*table.entry(1, || 0), 0, "an entry unused for a generation is forgotten");
    }

    #[test]
    fn addresses_have_buckets_of_their_own() {
        let start = Instant::now();
        let rates = AddressRates::new(1);
        let (one, two): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(rates.admit(one, start));
        assert!(!rates.admit(one, start));
        assert!(rates.admit(two, start));
        assert!(rates.admit(one, start + Duration::from_secs(1)));
    }
}
