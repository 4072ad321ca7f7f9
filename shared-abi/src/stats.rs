//! Scan statistics and the cyclictest-style wake-up latency histogram.

use bytemuck::{Pod, Zeroable};
use core::sync::atomic::{AtomicU64, Ordering};

/// 1 µs buckets, like `cyclictest -h`; later samples count as overflow.
pub const HIST_BUCKETS: usize = 1000;

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

/// Wake-up latency histogram: 1 µs buckets plus overflow, written only by the scan thread.
#[repr(C, align(64))]
pub struct Histogram {
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
        let us = (ns / 1000) as usize;
        let cell = self.buckets.get(us).unwrap_or(&self.overflow);
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

    /// Samples counted in buckets and overflow.
    pub fn total(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }

    /// The bucket (µs) below which `fraction` of the samples fall, as cyclictest's
    /// histogram users compute it; `None` without samples, `HIST_BUCKETS` when the
    /// percentile lies in the overflow.
    pub fn percentile_us(&self, fraction: f64) -> Option<u64> {
        percentile_us(&self.buckets, self.overflow, fraction)
    }
}

/// Percentile of a 1 µs-bucket histogram: the smallest bucket whose cumulative count
/// reaches `fraction` of all samples (overflow included).
pub fn percentile_us(buckets: &[u64], overflow: u64, fraction: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum::<u64>() + overflow;
    if total == 0 {
        return None;
    }
    // ceil() by hand: no libm in no_std.
    let exact = fraction.clamp(0.0, 1.0) * total as f64;
    let floor = exact as u64;
    let wanted = if (floor as f64) < exact { floor + 1 } else { floor }.max(1);
    let mut seen = 0u64;
    for (us, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return Some(us as u64);
        }
    }
    Some(buckets.len() as u64)
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
}
