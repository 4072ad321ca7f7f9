//! Wake-up latency histograms with 1 µs buckets, as cyclictest (`-h N`) keeps them and as
//! rt-core's are read here (its 10 µs buckets past 1 ms counted at their first µs). Each
//! knows its own range: a percentile past the last bucket is reported as "beyond the
//! range", never as a made-up number.

use shared_abi::stats::{HIST_RANGE_US, HistogramSnapshot, percentile_us};

/// A percentile of a histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantile {
    /// In the bucket `[us, us + 1)` µs.
    Us(u64),
    /// In the overflow: at least this many µs (the histogram's range).
    Beyond(u64),
}

impl Quantile {
    /// The number when known, the lower bound otherwise.
    pub fn floor_us(self) -> u64 {
        match self {
            Quantile::Us(v) | Quantile::Beyond(v) => v,
        }
    }
}

/// A percentile for a table: the number, or `-` without samples.
pub fn show(q: Option<Quantile>) -> String {
    q.map_or("-".into(), |q| q.to_string())
}

impl std::fmt::Display for Quantile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Quantile::Us(v) => write!(f, "{v}"),
            Quantile::Beyond(v) => write!(f, "≥{v}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    buckets: Vec<u64>,
    overflow: u64,
    /// The largest sample, when known (cyclictest prints it; rt-core's is cumulative).
    max: Option<Quantile>,
}

impl Histogram {
    pub fn new(range_us: usize) -> Histogram {
        Histogram { buckets: vec![0; range_us], overflow: 0, max: None }
    }

    pub fn from_parts(buckets: Vec<u64>, overflow: u64, max: Option<Quantile>) -> Histogram {
        Histogram { buckets, overflow, max }
    }

    /// What rt-core recorded between two snapshots of its cumulative histogram (the
    /// companion holds the client lease, so a bench cannot reset it: it takes differences).
    /// The maximum is exact when it rose during the window; otherwise it is the highest
    /// non-empty bucket, or "beyond the range" when only the overflow grew.
    pub fn between(before: &HistogramSnapshot, after: &HistogramSnapshot) -> Histogram {
        let buckets: Vec<u64> = in_us(after).iter().zip(&in_us(before)).map(|(a, b)| a.saturating_sub(*b)).collect();
        let overflow = after.overflow.saturating_sub(before.overflow);
        let range = buckets.len() as u64;
        let max = if after.max_ns > before.max_ns {
            Some(Quantile::Us(after.max_ns / 1000))
        } else if overflow > 0 {
            Some(Quantile::Beyond(range))
        } else {
            buckets.iter().rposition(|&n| n > 0).map(|i| Quantile::Us(i as u64))
        };
        Histogram { buckets, overflow, max }
    }

    /// One whole snapshot (taken after a reset).
    pub fn of_snapshot(h: &HistogramSnapshot) -> Histogram {
        let max = (h.total() > 0).then_some(Quantile::Us(h.max_ns / 1000));
        Histogram { buckets: in_us(h), overflow: h.overflow, max }
    }

    pub fn range_us(&self) -> usize {
        self.buckets.len()
    }

    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    pub fn samples(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }

    pub fn max(&self) -> Option<Quantile> {
        self.max
    }

    /// The smallest bucket reaching `fraction` of the samples; `None` without samples.
    pub fn quantile(&self, fraction: f64) -> Option<Quantile> {
        quantile_of(&self.buckets, self.overflow, fraction)
    }

    /// Samples of at least `us` µs, when the histogram can tell (`us` within its range).
    pub fn at_least(&self, us: usize) -> Option<u64> {
        (us <= self.buckets.len()).then(|| self.buckets[us..].iter().sum::<u64>() + self.overflow)
    }

    /// Periods of `period_us` a periodic task with these wake-ups loses to lateness alone: a
    /// wake-up `L` µs late has let `floor(L / period)` deadlines pass. A sample in the
    /// overflow counts as late as the range (a lower bound).
    pub fn periods_lost(&self, period_us: usize) -> u64 {
        let period = period_us.max(1);
        let in_range: u64 = self.buckets.iter().enumerate().map(|(us, &n)| n * (us / period) as u64).sum();
        in_range + self.overflow * (self.buckets.len() / period) as u64
    }

    /// Adds another histogram of the same tool. A wider one's extra buckets go to the overflow.
    pub fn add(&mut self, other: &Histogram) {
        for (i, &n) in other.buckets.iter().enumerate() {
            match self.buckets.get_mut(i) {
                Some(b) => *b += n,
                None => self.overflow += n,
            }
        }
        self.overflow += other.overflow;
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(max_of(a, b)),
            (a, b) => a.or(b),
        };
    }

    /// The histograms pooled.
    pub fn pooled<'a>(parts: impl IntoIterator<Item = &'a Histogram>) -> Option<Histogram> {
        let mut parts = parts.into_iter();
        let mut pool = parts.next()?.clone();
        for p in parts {
            pool.add(p);
        }
        Some(pool)
    }
}

/// rt-core's histogram as 1 µs buckets over its whole range (`HIST_RANGE_US`, read from
/// the snapshot's layout): a 10 µs bucket past 1 ms is counted at its first µs, so a
/// percentile there is rounded down to 10 µs, never made finer than it was measured.
fn in_us(h: &HistogramSnapshot) -> Vec<u64> {
    let mut out = vec![0u64; HIST_RANGE_US as usize];
    for (start, _, n) in h.cells() {
        out[start as usize] += n;
    }
    out
}

fn max_of(a: Quantile, b: Quantile) -> Quantile {
    match (a, b) {
        (Quantile::Us(x), Quantile::Us(y)) => Quantile::Us(x.max(y)),
        (Quantile::Beyond(x), Quantile::Us(y)) | (Quantile::Us(y), Quantile::Beyond(x)) if y >= x => Quantile::Us(y),
        (Quantile::Beyond(x), _) | (_, Quantile::Beyond(x)) => Quantile::Beyond(x),
    }
}

/// The percentile of a 1 µs histogram, with the overflow kept as what it is.
pub fn quantile_of(buckets: &[u64], overflow: u64, fraction: f64) -> Option<Quantile> {
    let v = percentile_us(buckets, overflow, fraction)?;
    Some(if (v as usize) < buckets.len() { Quantile::Us(v) } else { Quantile::Beyond(buckets.len() as u64) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[(usize, u64)], range: usize, overflow: u64) -> Histogram {
        let mut h = Histogram::new(range);
        for &(us, n) in values {
            h.buckets[us] += n;
        }
        h.overflow = overflow;
        h
    }

    #[test]
    fn percentiles_past_the_range_are_bounds_not_numbers() {
        let h = hist(&[(10, 990)], 100, 10);
        assert_eq!(h.quantile(0.5), Some(Quantile::Us(10)));
        assert_eq!(h.quantile(0.99), Some(Quantile::Us(10)));
        assert_eq!(h.quantile(0.999), Some(Quantile::Beyond(100)));
        assert_eq!(Histogram::new(10).quantile(0.5), None);
    }

    #[test]
    fn periods_lost_count_whole_periods_of_lateness() {
        // 999 µs late loses nothing, 1000 and 1999 one period each, 2500 two; the overflow
        // (past 10 000 µs) at least ten.
        let h = hist(&[(20, 5000), (999, 1), (1000, 1), (1999, 1), (2500, 1)], 10_000, 1);
        assert_eq!(h.periods_lost(1000), 1 + 1 + 2 + 10);
        assert_eq!(hist(&[(20, 5000)], 10_000, 0).periods_lost(1000), 0);
    }

    #[test]
    fn a_wider_histogram_folds_into_a_narrower_ones_overflow() {
        let mut narrow = hist(&[(5, 1)], 10, 0);
        narrow.add(&hist(&[(5, 1), (50, 2)], 100, 1));
        assert_eq!(narrow.samples(), 5);
        assert_eq!(narrow.overflow(), 3);
        assert_eq!(narrow.at_least(10), Some(3));
        assert_eq!(narrow.at_least(11), None);
    }

    #[test]
    fn the_difference_of_two_snapshots_is_the_window() {
        let mut before = HistogramSnapshot::empty();
        before.buckets[20] = 100;
        before.max_ns = 5_000_000;
        let mut after = before.clone();
        after.buckets[20] += 7;
        after.buckets[30] += 3;
        let h = Histogram::between(&before, &after);
        assert_eq!(h.samples(), 10);
        assert_eq!(h.range_us(), 10_000, "the snapshot's whole range, fine and coarse");
        assert_eq!(h.max(), Some(Quantile::Us(30)), "the cumulative 5 ms max is older than the window");
        after.buckets[shared_abi::stats::bucket_of_us(4_321).unwrap()] += 1;
        let h = Histogram::between(&before, &after);
        assert_eq!((h.max(), h.quantile(1.0)), (Some(Quantile::Us(4320)), Some(Quantile::Us(4320))));
        after.overflow += 1;
        assert_eq!(Histogram::between(&before, &after).max(), Some(Quantile::Beyond(10_000)));
        after.max_ns = 6_000_000;
        assert_eq!(Histogram::between(&before, &after).max(), Some(Quantile::Us(6000)));
    }
}
