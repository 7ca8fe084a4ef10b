//! The probe results of one target over a stretch of time (a minute, an
//! hour, a statistics window): counts, round-trip sum, min and max, and a
//! histogram of round trips from which percentiles are read.
//!
//! The histogram has fixed logarithmic buckets, four per doubling: bucket
//! `i` holds round trips `r` (µs) with `floor(4 · log2(max(r, 1))) = i`, so
//! `[2^(i/4), 2^((i+1)/4))`, up to bucket 127 (about 50 min). Aggregates of
//! any stretches merge by adding buckets, exactly. A percentile is read as
//! the geometric middle of its bucket, `2^((i + 0.5)/4)`: at most
//! `2^(1/8) − 1 ≈ 9.1 %` away from the true round trip of that rank.
//!
//! Stored as a BLOB of the buckets in use, 5 bytes each (the bucket index,
//! then the count as u32 little-endian): a minute of a steady target holds a
//! few buckets.

/// Buckets per doubling of the round trip.
const PER_DOUBLING: f64 = 4.0;
const BUCKETS: usize = 128;

#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub sent: u64,
    pub answered: u64,
    pub rtt_sum_us: u64,
    pub rtt_min_us: Option<u32>,
    pub rtt_max_us: Option<u32>,
    hist: [u64; BUCKETS],
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            sent: 0,
            answered: 0,
            rtt_sum_us: 0,
            rtt_min_us: None,
            rtt_max_us: None,
            hist: [0; BUCKETS],
        }
    }
}

fn bucket(rtt_us: u32) -> usize {
    ((f64::from(rtt_us.max(1))).log2() * PER_DOUBLING).floor() as usize
}

impl Aggregate {
    /// Counts one probe. An answer without a round trip (an HTTP probe that
    /// cannot time itself) counts as answered, outside the round trips.
    pub fn add(&mut self, ok: bool, rtt_us: Option<u32>) {
        self.sent += 1;
        if !ok {
            return;
        }
        self.answered += 1;
        if let Some(rtt) = rtt_us {
            self.rtt_sum_us += u64::from(rtt);
            self.rtt_min_us = Some(self.rtt_min_us.map_or(rtt, |m| m.min(rtt)));
            self.rtt_max_us = Some(self.rtt_max_us.map_or(rtt, |m| m.max(rtt)));
            self.hist[bucket(rtt).min(BUCKETS - 1)] += 1;
        }
    }

    pub fn merge(&mut self, other: &Aggregate) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.rtt_sum_us += other.rtt_sum_us;
        self.rtt_min_us = min_some(self.rtt_min_us, other.rtt_min_us, u32::min);
        self.rtt_max_us = min_some(self.rtt_max_us, other.rtt_max_us, u32::max);
        for (mine, theirs) in self.hist.iter_mut().zip(other.hist) {
            *mine += theirs;
        }
    }

    /// Round trips counted in the histogram.
    fn timed(&self) -> u64 {
        self.hist.iter().sum()
    }

    /// The round trip (µs) at quantile `q` (0.5 for the median), to the
    /// histogram's precision (see the module's comment); None without any.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let timed = self.timed();
        if timed == 0 {
            return None;
        }
        // The rank of the value, 1-based, as "nearest rank" defines it.
        let rank = ((q * timed as f64).ceil() as u64).clamp(1, timed);
        let mut seen = 0;
        let i = self.hist.iter().position(|&n| {
            seen += n;
            seen >= rank
        })?;
        let middle = 2_f64.powf((i as f64 + 0.5) / PER_DOUBLING);
        // The bucket may be wider than what it holds.
        let (min, max) = (self.rtt_min_us?, self.rtt_max_us?);
        Some(middle.clamp(f64::from(min), f64::from(max)))
    }

    /// Loss in percent of the probes sent; None when none were.
    pub fn loss_percent(&self) -> Option<f64> {
        (self.sent > 0).then(|| 100.0 * (self.sent - self.answered) as f64 / self.sent as f64)
    }

    /// The histogram as stored.
    pub fn hist_blob(&self) -> Vec<u8> {
        let mut blob = Vec::new();
        for (i, &n) in self.hist.iter().enumerate().filter(|(_, n)| **n > 0) {
            blob.push(i as u8);
            blob.extend_from_slice(&(n.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        }
        blob
    }

    /// Adds a stored histogram; bytes that do not form one are ignored (a
    /// damaged row must not stop the statistics).
    pub fn merge_hist_blob(&mut self, blob: &[u8]) {
        for entry in blob.chunks_exact(5) {
            let i = usize::from(entry[0]).min(BUCKETS - 1);
            let n = u32::from_le_bytes([entry[1], entry[2], entry[3], entry[4]]);
            self.hist[i] += u64::from(n);
        }
    }
}

fn min_some(a: Option<u32>, b: Option<u32>, pick: fn(u32, u32) -> u32) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_four_per_doubling() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 4);
        assert_eq!(bucket(1024), 40);
        // 2^(41/4) = 1217.7: the next bucket starts there.
        assert_eq!(bucket(1217), 40);
        assert_eq!(bucket(1218), 41);
    }

    #[test]
    fn quantiles_are_within_the_documented_error() {
        let mut a = Aggregate::default();
        // 1..=1000 ms: the true p50 is 500 ms, p95 950 ms, p99 990 ms.
        for ms in 1..=1000u32 {
            a.add(true, Some(ms * 1000));
        }
        a.add(false, None);
        for (q, truth) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = a.quantile_us(q).unwrap();
            assert!(
                (got / truth - 1.0).abs() <= 2_f64.powf(0.125) - 1.0,
                "q{q}: {got} vs {truth}"
            );
        }
        assert_eq!(a.sent, 1001);
        assert_eq!(a.answered, 1000);
        assert!((a.loss_percent().unwrap() - 100.0 / 1001.0).abs() < 1e-9);
        assert_eq!((a.rtt_min_us, a.rtt_max_us), (Some(1000), Some(1_000_000)));
    }

    #[test]
    fn merging_stored_histograms_is_exact() {
        let (mut a, mut b) = (Aggregate::default(), Aggregate::default());
        for rtt in [900, 9_000, 9_100, 90_000] {
            a.add(true, Some(rtt));
        }
        b.add(true, Some(9_050));
        b.add(false, None);
        let mut whole = a.clone();
        whole.merge(&b);
        let mut stored = Aggregate::default();
        stored.merge_hist_blob(&a.hist_blob());
        stored.merge_hist_blob(&b.hist_blob());
        assert_eq!(stored.hist, whole.hist);
        // Three of the five round trips are in the 9 ms bucket: the median.
        let median = whole.quantile_us(0.5).unwrap();
        assert!((8_800.0..9_600.0).contains(&median), "{median}");
        assert_eq!(whole.rtt_min_us, Some(900));
        assert_eq!(a.hist_blob().len(), 3 * 5);
    }

    #[test]
    fn no_round_trips_no_quantiles() {
        let mut a = Aggregate::default();
        assert_eq!(a.quantile_us(0.5), None);
        assert_eq!(a.loss_percent(), None);
        a.add(false, None);
        assert_eq!(a.quantile_us(0.5), None);
        assert_eq!(a.loss_percent(), Some(100.0));
    }
}
