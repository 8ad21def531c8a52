//! Percentiles: the nearest-rank rule over sorted samples, and a log-linear histogram that applies
//! the same rule to millions of latencies in constant memory.
//!
//! Nearest rank: the p-th percentile of n samples is the sample of rank `ceil(p / 100 * n)` in
//! ascending order (rank 1 for p = 0), so it is always a value that was recorded. The histogram
//! keeps values below 128 exactly and larger values in buckets at most 1/128 (0.79 %) of their
//! value wide; it reports the highest value of the bucket that holds the nearest-rank sample,
//! clamped to the largest value recorded. Nothing here reads a clock or does I/O.

/// Sub-bucket bits: each power of two above `2^SUB_BITS` is split into `2^SUB_BITS` buckets.
const SUB_BITS: u32 = 7;

/// Number of sub-buckets per power of two, and the largest value kept exactly, plus one.
const SUB_COUNT: u64 = 1 << SUB_BITS;

/// The 1-based nearest rank of percentile `p` (0 to 100) among `n` samples; 0 when `n` is 0.
pub fn nearest_rank(p: f64, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    // Integer arithmetic in parts per billion keeps `ceil` exact for percentiles such as 99.9,
    // whose binary approximation would otherwise round a whole rank up or down.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // p is within 0..=100.
    let ppb = (p * 1e7).round() as u128;
    let rank = (ppb * u128::from(n)).div_ceil(1_000_000_000);
    u64::try_from(rank).unwrap_or(n).clamp(1, n)
}

/// The nearest-rank percentile `p` of `sorted` (ascending); `None` when it is empty.
pub fn percentile_of_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    let n = u64::try_from(sorted.len()).ok()?;
    let rank = nearest_rank(p, n);
    let index = usize::try_from(rank.checked_sub(1)?).ok()?;
    sorted.get(index).copied()
}

/// Counts of values (nanoseconds, say) in log-linear buckets, with exact count, sum, min and max.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Count per bucket index; grown on demand to the largest index seen.
    counts: Vec<u64>,
    /// Number of values recorded.
    total: u64,
    /// Sum of the values recorded, for the mean.
    sum: u128,
    /// Smallest value recorded; meaningless while `total` is 0.
    min: u64,
    /// Largest value recorded.
    max: u64,
}

/// The bucket index of `value`.
fn bucket_of(value: u64) -> usize {
    let index = if value < SUB_COUNT {
        value
    } else {
        let exponent = 63 - value.leading_zeros();
        let shift = exponent - SUB_BITS;
        u64::from(shift + 1) * SUB_COUNT + ((value >> shift) - SUB_COUNT)
    };
    usize::try_from(index).unwrap_or(usize::MAX)
}

/// The highest value that falls in bucket `index`.
fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_COUNT {
        return index;
    }
    // Bucket `index` holds the values whose top `SUB_BITS + 1` bits are `mantissa`, shifted.
    let shift = index / SUB_COUNT - 1;
    let mantissa = u128::from(SUB_COUNT + index % SUB_COUNT);
    let high = ((mantissa + 1) << shift.min(64)) - 1;
    u64::try_from(high).unwrap_or(u64::MAX)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        let index = bucket_of(value);
        if index >= self.counts.len() {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += 1;
        if self.total == 0 || value < self.min {
            self.min = value;
        }
        self.max = self.max.max(value);
        self.total += 1;
        self.sum += u128::from(value);
    }

    /// Adds every value of `other` to this histogram.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if other.counts.len() > self.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        if self.total == 0 || other.min < self.min {
            self.min = other.min;
        }
        self.max = self.max.max(other.max);
        self.total += other.total;
        self.sum += other.sum;
    }

    /// Number of values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Largest value recorded, exactly; `None` when empty.
    pub fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// Smallest value recorded, exactly; `None` when empty.
    pub fn min(&self) -> Option<u64> {
        (self.total > 0).then_some(self.min)
    }

    /// Mean of the values recorded; `None` when empty.
    #[allow(clippy::cast_precision_loss)] // A mean for a report, not an exact quantity.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum as f64 / self.total as f64)
    }

    /// The nearest-rank percentile `p` (0 to 100): the highest value of the bucket holding the
    /// sample of that rank, clamped to the recorded maximum; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let rank = nearest_rank(p, self.total);
        if rank == 0 {
            return None;
        }
        let mut seen = 0u64;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_high(index).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_follows_the_definition() {
        assert_eq!(nearest_rank(50.0, 0), 0);
        assert_eq!(nearest_rank(0.0, 10), 1);
        assert_eq!(nearest_rank(50.0, 10), 5);
        assert_eq!(nearest_rank(50.0, 11), 6);
        assert_eq!(nearest_rank(99.0, 100), 99);
        assert_eq!(nearest_rank(99.0, 101), 100);
        assert_eq!(nearest_rank(99.9, 1000), 999);
        assert_eq!(nearest_rank(99.9, 1001), 1000);
        assert_eq!(nearest_rank(100.0, 7), 7);
        assert_eq!(nearest_rank(150.0, 7), 7);
        assert_eq!(nearest_rank(-1.0, 7), 1);
    }

    #[test]
    fn percentile_of_sorted_returns_recorded_samples() {
        let samples = [15, 20, 35, 40, 50];
        assert_eq!(percentile_of_sorted(&samples, 5.0), Some(15));
        assert_eq!(percentile_of_sorted(&samples, 30.0), Some(20));
        assert_eq!(percentile_of_sorted(&samples, 40.0), Some(20));
        assert_eq!(percentile_of_sorted(&samples, 50.0), Some(35));
        assert_eq!(percentile_of_sorted(&samples, 100.0), Some(50));
        assert_eq!(percentile_of_sorted(&[], 50.0), None);
    }

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut previous_high = None;
        for index in 0..bucket_of(1 << 40) {
            let high = bucket_high(index);
            if let Some(prev) = previous_high {
                let low = prev + 1;
                assert_eq!(bucket_of(low), index, "low end of bucket {index}");
                assert!((high - low) * SUB_COUNT <= low, "bucket {index} too wide");
            }
            assert_eq!(bucket_of(high), index, "high end of bucket {index}");
            previous_high = Some(high);
        }
        assert_eq!(bucket_high(bucket_of(u64::MAX)), u64::MAX);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), Some(50));
        assert_eq!(h.percentile(99.0), Some(99));
        assert_eq!(h.percentile(99.9), Some(100));
        assert_eq!(h.min(), Some(1));
        assert_eq!(h.max(), Some(100));
        assert_eq!(h.mean(), Some(50.5));
    }

    #[test]
    fn large_values_stay_within_the_bucket_error_of_the_exact_answer() {
        let mut h = Histogram::new();
        let mut samples: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 10_007 * 1_000 + 37).collect();
        for &v in &samples {
            h.record(v);
        }
        samples.sort_unstable();
        for p in [0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0] {
            let exact = percentile_of_sorted(&samples, p).unwrap();
            let approx = h.percentile(p).unwrap();
            assert!(approx >= exact, "p{p}: {approx} < {exact}");
            assert!((approx - exact) * SUB_COUNT <= exact, "p{p}: {approx} too far from {exact}");
        }
        assert_eq!(h.percentile(100.0), h.max());
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut both = Histogram::new();
        for v in 0..5_000u64 {
            let value = v * v;
            if v % 3 == 0 { &mut a } else { &mut b }.record(value);
            both.record(value);
        }
        a.merge(&b);
        assert_eq!(a, both);
        let mut empty = Histogram::new();
        empty.merge(&Histogram::new());
        assert!(empty.is_empty());
        assert_eq!(empty.percentile(50.0), None);
    }
}
