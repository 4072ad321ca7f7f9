//! Scan statistics and the cyclictest-style wake-up latency histogram.

use bytemuck::{Pod, Zeroable};
use core::sync::atomic::{AtomicU64, Ordering};

/// The latency histogram's layout: 1 µs buckets up to 1 ms (cyclictest's `-h 1000`, where
/// almost every wake-up falls), then 10 µs buckets up to 10 ms (so a p99.9 on a noisy host
/// is still a number), then one overflow counter.
pub const HIST_FINE_BUCKETS: usize = 1000;
/// Width of a fine bucket, µs.
pub const HIST_FINE_US: u64 = 1;
/// Where the coarse buckets start, µs (the end of the fine ones).
pub const HIST_COARSE_FROM_US: u64 = HIST_FINE_BUCKETS as u64 * HIST_FINE_US;
/// Width of a coarse bucket, µs.
pub const HIST_COARSE_US: u64 = 10;
pub const HIST_COARSE_BUCKETS: usize = 900;
/// Every bucket, fine then coarse.
pub const HIST_BUCKETS: usize = HIST_FINE_BUCKETS + HIST_COARSE_BUCKETS;
/// The histogram's range: a sample of this many µs or more counts as overflow.
pub const HIST_RANGE_US: u64 = HIST_COARSE_FROM_US + HIST_COARSE_BUCKETS as u64 * HIST_COARSE_US;

const _: () = assert!(HIST_RANGE_US == 10_000);

/// The bucket a sample of `us` µs falls in; `None` past the range (overflow).
pub const fn bucket_of_us(us: u64) -> Option<usize> {
    if us < HIST_COARSE_FROM_US {
        Some((us / HIST_FINE_US) as usize)
    } else if us < HIST_RANGE_US {
        Some(HIST_FINE_BUCKETS + ((us - HIST_COARSE_FROM_US) / HIST_COARSE_US) as usize)
    } else {
        None
    }
}

/// The first µs of bucket `i` (its samples are in `[start, start + width)`).
pub const fn bucket_start_us(i: usize) -> u64 {
    if i < HIST_FINE_BUCKETS {
        i as u64 * HIST_FINE_US
    } else {
        HIST_COARSE_FROM_US + (i - HIST_FINE_BUCKETS) as u64 * HIST_COARSE_US
    }
}

/// The width of bucket `i`, µs.
pub const fn bucket_width_us(i: usize) -> u64 {
    if i < HIST_FINE_BUCKETS { HIST_FINE_US } else { HIST_COARSE_US }
}

/// Min / max / mean of a series of nanosecond samples.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct Summary {
    pub count: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    pub sum_ns: u64,
    pub last_ns: u64,
}

impl Summary {
    pub fn record(&mut self, ns: u64) {
        if self.count == 0 || ns < self.min_ns {
            self.min_ns = ns;
        }
        if ns > self.max_ns {
            self.max_ns = ns;
        }
        self.count += 1;
        self.sum_ns = self.sum_ns.wrapping_add(ns);
        self.last_ns = ns;
    }

    pub fn mean_ns(&self) -> Option<u64> {
        (self.count > 0).then(|| self.sum_ns / self.count)
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min_ns)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max_ns)
    }
}

/// What rt-core publishes about its scan, every cycle.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Stats {
    /// Program scans since the last start, program swap or reset.
    pub scan_count: u64,
    /// Cycles whose work ended after the next deadline.
    pub overruns: u64,
    /// Whole periods skipped after an overrun (never caught up in a burst).
    pub skipped_periods: u64,
    /// The scan period in force.
    pub period_ns: u64,
    /// Work done per cycle: wake-up to the end of the debug copy.
    pub scan_time: Summary,
    /// Start-to-start time of consecutive cycles.
    pub cycle_time: Summary,
    /// Wake-up latency: actual wake-up minus the absolute deadline.
    pub latency: Summary,
    pub commands_applied: u64,
    pub writes_applied: u64,
    /// Input snapshots taken from the companion.
    pub inputs_taken: u64,
    /// CLOCK_MONOTONIC time of the last reset, ns.
    pub since_ns: u64,
}

/// Wake-up latency histogram (the layout above), written only by the scan thread.
#[repr(C, align(64))]
pub struct Histogram {
    /// `HIST_FINE_BUCKETS` fine buckets, then `HIST_COARSE_BUCKETS` coarse ones.
    pub buckets: [AtomicU64; HIST_BUCKETS],
    pub overflow: AtomicU64,
    pub count: AtomicU64,
    pub max_ns: AtomicU64,
}

/// A copy of the histogram taken by a reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub buckets: [u64; HIST_BUCKETS],
    pub overflow: u64,
    pub count: u64,
    pub max_ns: u64,
}

impl Histogram {
    /// Adds one sample. Single writer: a load and a store, no locked instruction.
    pub fn record(&self, ns: u64) {
        let cell = bucket_of_us(ns / 1000).and_then(|i| self.buckets.get(i)).unwrap_or(&self.overflow);
        cell.store(cell.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.count.store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if ns > self.max_ns.load(Ordering::Relaxed) {
            self.max_ns.store(ns, Ordering::Relaxed);
        }
    }

    /// Zeroes every counter. Only the writer calls this.
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.overflow.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }

    /// Copies the counters (each one atomically; the set as a whole may be a few samples
    /// apart, which does not matter for percentiles).
    pub fn snapshot(&self, out: &mut HistogramSnapshot) {
        for (o, b) in out.buckets.iter_mut().zip(&self.buckets) {
            *o = b.load(Ordering::Relaxed);
        }
        out.overflow = self.overflow.load(Ordering::Relaxed);
        out.count = self.count.load(Ordering::Relaxed);
        out.max_ns = self.max_ns.load(Ordering::Relaxed);
    }
}

impl HistogramSnapshot {
    pub const fn empty() -> Self {
        HistogramSnapshot { buckets: [0; HIST_BUCKETS], overflow: 0, count: 0, max_ns: 0 }
    }

    /// The 1 µs buckets, from 0 to `HIST_COARSE_FROM_US`.
    pub fn fine(&self) -> &[u64] {
        &self.buckets[..HIST_FINE_BUCKETS]
    }

    /// The 10 µs buckets, from `HIST_COARSE_FROM_US` to `HIST_RANGE_US`.
    pub fn coarse(&self) -> &[u64] {
        &self.buckets[HIST_FINE_BUCKETS..]
    }

    /// Samples counted in buckets and overflow.
    pub fn total(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }

    /// Each bucket as `(first µs, width µs, count)`, fine then coarse.
    pub fn cells(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.buckets.iter().enumerate().map(|(i, &n)| (bucket_start_us(i), bucket_width_us(i), n))
    }

    /// The first µs of the smallest bucket whose cumulative count reaches `fraction` of
    /// all samples (overflow included); `None` without samples, `HIST_RANGE_US` when the
    /// percentile lies in the overflow. Exact to 1 µs below `HIST_COARSE_FROM_US`, to
    /// 10 µs (rounded down) above it.
    pub fn percentile_us(&self, fraction: f64) -> Option<u64> {
        percentile_bucket(&self.buckets, self.overflow, fraction)
            .map(|i| if i < HIST_BUCKETS { bucket_start_us(i) } else { HIST_RANGE_US })
    }

    /// The smallest and the mean sample (µs, each rounded down to its bucket's first µs,
    /// the overflow left out): what the text summary shows when the exact figures of
    /// `Stats::latency` are not at hand.
    pub fn min_mean_us(&self) -> (u64, u64) {
        let min = self.cells().find(|c| c.2 > 0).map_or(0, |c| c.0);
        let (sum, n) = self.cells().fold((0u64, 0u64), |(s, k), (start, _, n)| (s + start * n, k + n));
        (min, sum.checked_div(n).unwrap_or(0))
    }

    /// The histogram in `cyclictest -h`'s text layout, so tools that read cyclictest's
    /// output read it: one `%06d %06d` line per bucket, then the summary. The fine part is
    /// exactly cyclictest's (one line per µs, 0 to 999); each coarse bucket is one more
    /// line of the same shape carrying its first µs (001000, 001010, ... 009990), so a
    /// reader keyed on the first column files its count at the start of its 10 µs. A
    /// comment line before the coarse part says so. `latency`: rt-core's exact min/mean
    /// (from `Stats`), else they come from the buckets.
    pub fn write_cyclictest(&self, out: &mut impl core::fmt::Write, latency: Option<&Summary>) -> core::fmt::Result {
        out.write_str("# Histogram\n")?;
        for (i, (start, _, n)) in self.cells().enumerate() {
            if i == HIST_FINE_BUCKETS {
                writeln!(
                    out,
                    "# from {HIST_COARSE_FROM_US:06} us: {HIST_COARSE_US} us buckets, each line at its first us"
                )?;
            }
            writeln!(out, "{start:06} {n:06}")?;
        }
        let total = self.total();
        let whole_us = |ns: u64| ns.saturating_add(500) / 1000;
        let (min, avg) = match latency.filter(|l| l.count > 0) {
            Some(l) => (whole_us(l.min_ns), l.mean_ns().map_or(0, whole_us)),
            None => self.min_mean_us(),
        };
        let max = if total > 0 { whole_us(self.max_ns) } else { 0 };
        writeln!(out, "# Total: {total:09}")?;
        writeln!(out, "# Min Latencies: {min:05}")?;
        writeln!(out, "# Avg Latencies: {avg:05}")?;
        writeln!(out, "# Max Latencies: {max:05}")?;
        writeln!(out, "# Histogram Overflows: {:05}", self.overflow)?;
        out.write_str("# Histogram Overflow at cycle number:\n# Thread 0:\n")
    }
}

/// The index of the smallest bucket whose cumulative count reaches `fraction` of all
/// samples (overflow included); `buckets.len()` when that is the overflow.
fn percentile_bucket(buckets: &[u64], overflow: u64, fraction: f64) -> Option<usize> {
    let total: u64 = buckets.iter().sum::<u64>() + overflow;
    if total == 0 {
        return None;
    }
    // ceil() by hand: no libm in no_std.
    let exact = fraction.clamp(0.0, 1.0) * total as f64;
    let floor = exact as u64;
    let wanted = if (floor as f64) < exact { floor + 1 } else { floor }.max(1);
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return Some(i);
        }
    }
    Some(buckets.len())
}

/// Percentile of a plain 1 µs-bucket histogram (a client's own, cyclictest's): the
/// smallest bucket whose cumulative count reaches `fraction` of all samples (overflow
/// included), `buckets.len()` when that is the overflow. rt-core's histogram, which is
/// not 1 µs throughout, has [`HistogramSnapshot::percentile_us`].
pub fn percentile_us(buckets: &[u64], overflow: u64, fraction: f64) -> Option<u64> {
    percentile_bucket(buckets, overflow, fraction).map(|i| i as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_tracks_min_max_mean() {
        let mut s = Summary::default();
        assert_eq!(s.mean_ns(), None);
        for v in [5, 1, 9] {
            s.record(v);
        }
        assert_eq!((s.min(), s.max(), s.mean_ns(), s.last_ns), (Some(1), Some(9), Some(5), 9));
    }

    #[test]
    fn percentiles_follow_cumulative_counts() {
        let mut buckets = [0u64; 10];
        buckets[2] = 50;
        buckets[3] = 49;
        buckets[9] = 1;
        assert_eq!(percentile_us(&buckets, 0, 0.5), Some(2));
        assert_eq!(percentile_us(&buckets, 0, 0.99), Some(3));
        assert_eq!(percentile_us(&buckets, 0, 1.0), Some(9));
        assert_eq!(percentile_us(&buckets, 100, 0.9), Some(10), "overflow is past the last bucket");
        assert_eq!(percentile_us(&[0; 4], 0, 0.5), None);
    }

    #[test]
    fn samples_fall_in_1_us_buckets_to_1_ms_then_10_us_buckets_to_10_ms() {
        assert_eq!(bucket_of_us(0), Some(0));
        assert_eq!(bucket_of_us(999), Some(999));
        assert_eq!(bucket_of_us(1000), Some(1000));
        assert_eq!(bucket_of_us(1009), Some(1000));
        assert_eq!(bucket_of_us(1010), Some(1001));
        assert_eq!(bucket_of_us(9999), Some(HIST_BUCKETS - 1));
        assert_eq!(bucket_of_us(10_000), None);
        for i in 0..HIST_BUCKETS {
            assert_eq!(bucket_of_us(bucket_start_us(i)), Some(i));
            assert_eq!(bucket_of_us(bucket_start_us(i) + bucket_width_us(i) - 1), Some(i));
        }
        assert_eq!(bucket_start_us(HIST_BUCKETS - 1) + bucket_width_us(HIST_BUCKETS - 1), HIST_RANGE_US);
    }

    fn recorded(samples_ns: &[u64]) -> HistogramSnapshot {
        // SAFETY: `Histogram` is atomics only, for which all-zero is a valid value.
        let h: Histogram = unsafe { core::mem::zeroed() };
        for &ns in samples_ns {
            h.record(ns);
        }
        let mut s = HistogramSnapshot::empty();
        h.snapshot(&mut s);
        s
    }

    #[test]
    fn percentiles_past_1_ms_are_numbers_to_10_ms() {
        let mut samples = [20_000u64; 1000];
        samples[999] = 4_567_000; // one slow wake-up in a thousand: the p99.9
        let s = recorded(&samples);
        assert_eq!((s.count, s.total(), s.max_ns), (1000, 1000, 4_567_000));
        assert_eq!(s.percentile_us(0.5), Some(20));
        assert_eq!(s.percentile_us(0.999), Some(20));
        assert_eq!(s.percentile_us(1.0), Some(4560), "rounded down to its 10 us bucket");
        let s = recorded(&[20_000, 12_000_000]);
        assert_eq!(s.overflow, 1);
        assert_eq!(s.percentile_us(1.0), Some(HIST_RANGE_US), "the overflow is reported as the range");
        assert_eq!(HistogramSnapshot::empty().percentile_us(0.5), None);
    }

    #[test]
    fn the_text_is_cyclictests_with_the_coarse_part_at_each_buckets_first_us() {
        use core::fmt::Write;
        struct Lines(heapless::String<65536>);
        impl Write for Lines {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                self.0.push_str(s).map_err(|_| core::fmt::Error)
            }
        }
        let s = recorded(&[3_200, 3_900, 1_234_000, 20_000_000]);
        let mut text = Lines(heapless::String::new());
        s.write_cyclictest(&mut text, None).unwrap();
        let text = text.0.as_str();
        let data: heapless::Vec<&str, 2048> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(data.len(), HIST_BUCKETS);
        assert_eq!(data[3], "000003 000002");
        assert_eq!(data[999], "000999 000000");
        assert_eq!(data[1000], "001000 000000");
        assert_eq!(data[1023], "001230 000001");
        assert_eq!(data[HIST_BUCKETS - 1], "009990 000000");
        assert!(text.contains("# from 001000 us: 10 us buckets"));
        assert!(text.contains("# Total: 000000004\n# Min Latencies: 00003\n"));
        assert!(text.contains("# Max Latencies: 20000\n# Histogram Overflows: 00001\n"));
    }
}
