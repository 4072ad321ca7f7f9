//! rt-core against cyclictest: p50 difference, p99 and p99.9 ratios of the pooled
//! histograms, each with a 95 % bootstrap interval over slice pairs.
//!
//! The unit of resampling is a *pair of slices* measured close together (back to back in
//! ABBA order, or the very same window), not a single wake-up: latencies come in bursts
//! (a host stall, a noisy neighbour) that last longer than a cycle, so wake-ups within a
//! slice are far from independent and a per-sample bootstrap would give intervals that
//! are much too narrow. Resampling pairs keeps each rt-core slice with the cyclictest slice
//! measured beside it, so a burst that hit both stays paired. Each resample pools its
//! slices exactly as the point estimate does, so the interval is about the figure printed.
//!
//! The per-pair ratio (one p99.9 per 5 s slice, i.e. the 5th-highest of 5000 samples) was
//! not used: it is dominated by a handful of samples per slice, and the median of such
//! ratios estimates something else than the ratio of the pooled percentiles.

use crate::histogram::{Histogram, Quantile};

/// Resamples per interval; with a fixed seed the same data gives the same interval.
pub const RESAMPLES: usize = 2000;
const SEED: u64 = 0x5EED_0FC1_C11C_7E00;

/// A figure, or a bound on it where a percentile lay past a histogram's range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Exact(f64),
    AtLeast(f64),
    AtMost(f64),
    Unknown,
}

impl Value {
    fn number(self) -> Option<f64> {
        match self {
            Value::Exact(v) | Value::AtLeast(v) | Value::AtMost(v) => Some(v),
            Value::Unknown => None,
        }
    }

    /// `1.03`, `>1.60`, `<0.20` or `nan`; `decimals` digits after the point.
    pub fn show(self, decimals: usize) -> String {
        match self {
            Value::Exact(v) => format!("{v:.decimals$}"),
            Value::AtLeast(v) => format!(">{v:.decimals$}"),
            Value::AtMost(v) => format!("<{v:.decimals$}"),
            Value::Unknown => "nan".into(),
        }
    }
}

/// A point estimate and its 95 % interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub value: Value,
    pub low: Value,
    pub high: Value,
}

impl Estimate {
    /// `1.03 [0.97, 1.10]`.
    pub fn show(&self, decimals: usize) -> String {
        format!("{} [{}, {}]", self.value.show(decimals), self.low.show(decimals), self.high.show(decimals))
    }

    /// `name=1.03 name_ci=0.97..1.10` for the machine-readable line.
    pub fn tokens(&self, name: &str, decimals: usize) -> String {
        format!(
            "{name}={} {name}_ci={}..{}",
            self.value.show(decimals),
            self.low.show(decimals),
            self.high.show(decimals)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub pairs: usize,
    pub p50_delta_us: Estimate,
    pub p99_ratio: Estimate,
    pub p999_ratio: Estimate,
}

impl Comparison {
    /// `p50_delta_us=… p50_delta_us_ci=…..… p99_ratio=… … p999_ratio=…`
    pub fn tokens(&self, prefix: &str) -> String {
        [
            self.p50_delta_us.tokens(&format!("{prefix}p50_delta_us"), 0),
            self.p99_ratio.tokens(&format!("{prefix}p99_ratio"), 2),
            self.p999_ratio.tokens(&format!("{prefix}p999_ratio"), 2),
        ]
        .join(" ")
    }
}

/// rt-core's p50 minus cyclictest's, in µs.
fn delta(rt: Quantile, ct: Quantile) -> Value {
    match (rt, ct) {
        (Quantile::Us(a), Quantile::Us(b)) => Value::Exact(a as f64 - b as f64),
        (Quantile::Beyond(a), Quantile::Us(b)) => Value::AtLeast(a as f64 - b as f64),
        (Quantile::Us(a), Quantile::Beyond(b)) => Value::AtMost(a as f64 - b as f64),
        (Quantile::Beyond(_), Quantile::Beyond(_)) => Value::Unknown,
    }
}

/// rt-core's percentile over cyclictest's (a 0 µs bucket counts as 1 µs).
fn ratio(rt: Quantile, ct: Quantile) -> Value {
    let r = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    match (rt, ct) {
        (Quantile::Us(a), Quantile::Us(b)) => Value::Exact(r(a, b)),
        (Quantile::Beyond(a), Quantile::Us(b)) => Value::AtLeast(r(a, b)),
        (Quantile::Us(a), Quantile::Beyond(b)) => Value::AtMost(r(a, b)),
        (Quantile::Beyond(_), Quantile::Beyond(_)) => Value::Unknown,
    }
}

fn statistics(rt: &Pooled, ct: &Pooled) -> [Value; 3] {
    match (rt.quantiles(), ct.quantiles()) {
        (Some(a), Some(b)) => [delta(a[0], b[0]), ratio(a[1], b[1]), ratio(a[2], b[2])],
        _ => [Value::Unknown; 3],
    }
}

/// Compares rt-core with cyclictest over `(rt-core slice, cyclictest slice)` pairs.
pub fn compare(pairs: &[(&Histogram, &Histogram)]) -> Comparison {
    let rt_slices: Vec<Sparse> = pairs.iter().map(|(rt, _)| Sparse::of(rt)).collect();
    let ct_slices: Vec<Sparse> = pairs.iter().map(|(_, ct)| Sparse::of(ct)).collect();
    let all: Vec<usize> = (0..pairs.len()).collect();
    let rt_range = pairs.first().map_or(0, |(rt, _)| rt.range_us());
    let ct_range = pairs.first().map_or(0, |(_, ct)| ct.range_us());
    let (mut rt, mut ct) = (Pooled::new(rt_range), Pooled::new(ct_range));
    rt.fill(&rt_slices, &all);
    ct.fill(&ct_slices, &all);
    let point = statistics(&rt, &ct);

    let mut rng = SplitMix(SEED);
    let mut draws: [Vec<Value>; 3] = Default::default();
    let mut pick = vec![0usize; pairs.len()];
    if pairs.len() > 1 {
        for _ in 0..RESAMPLES {
            for p in pick.iter_mut() {
                *p = (rng.next() % pairs.len() as u64) as usize;
            }
            rt.fill(&rt_slices, &pick);
            ct.fill(&ct_slices, &pick);
            for (d, v) in draws.iter_mut().zip(statistics(&rt, &ct)) {
                d.push(v);
            }
        }
    }
    let mut estimate = |i: usize| {
        let (low, high) = interval(&mut draws[i]);
        Estimate { value: point[i], low, high }
    };
    Comparison { pairs: pairs.len(), p50_delta_us: estimate(0), p99_ratio: estimate(1), p999_ratio: estimate(2) }
}

/// The 2.5 % and 97.5 % points of the resampled statistic (percentile interval). A bound
/// stays a bound; any unknown resample makes the interval unknown.
fn interval(draws: &mut [Value]) -> (Value, Value) {
    if draws.is_empty() || draws.contains(&Value::Unknown) {
        return (Value::Unknown, Value::Unknown);
    }
    draws.sort_by(|a, b| a.number().unwrap_or(0.0).total_cmp(&b.number().unwrap_or(0.0)));
    let at = |f: f64| draws[((f * draws.len() as f64) as usize).min(draws.len() - 1)];
    (at(0.025), at(0.975))
}

/// A slice's non-empty buckets: pooling a resample touches only these.
struct Sparse {
    cells: Vec<(u32, u64)>,
    overflow: u64,
}

impl Sparse {
    fn of(h: &Histogram) -> Sparse {
        let cells = h.buckets().iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| (i as u32, n)).collect();
        Sparse { cells, overflow: h.overflow() }
    }
}

/// A pooled histogram reused across resamples.
struct Pooled {
    buckets: Vec<u64>,
    overflow: u64,
}

impl Pooled {
    fn new(range: usize) -> Pooled {
        Pooled { buckets: vec![0; range], overflow: 0 }
    }

    fn fill(&mut self, slices: &[Sparse], pick: &[usize]) {
        self.buckets.iter_mut().for_each(|b| *b = 0);
        self.overflow = 0;
        for &i in pick {
            for &(b, n) in &slices[i].cells {
                self.buckets[b as usize] += n;
            }
            self.overflow += slices[i].overflow;
        }
    }

    /// p50, p99 and p99.9 in one pass.
    fn quantiles(&self) -> Option<[Quantile; 3]> {
        let total = self.buckets.iter().sum::<u64>() + self.overflow;
        if total == 0 {
            return None;
        }
        let wants = [0.5, 0.99, 0.999].map(|f: f64| ((f * total as f64).ceil() as u64).max(1));
        let mut out = [Quantile::Beyond(self.buckets.len() as u64); 3];
        let (mut seen, mut next) = (0u64, 0usize);
        for (us, &n) in self.buckets.iter().enumerate() {
            seen += n;
            while next < 3 && seen >= wants[next] {
                out[next] = Quantile::Us(us as u64);
                next += 1;
            }
            if next == 3 {
                break;
            }
        }
        Some(out)
    }
}

/// SplitMix64: a small, good enough generator for resampling indices.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice of 5000 wake-ups at `typical` µs with `tail` of them at `slow` µs.
    fn slice(range: usize, typical: usize, slow: usize, tail: u64) -> Histogram {
        let mut b = vec![0; range];
        b[typical] = 5000 - tail;
        let mut overflow = 0;
        match b.get_mut(slow) {
            Some(s) => *s += tail,
            None => overflow = tail,
        }
        Histogram::from_parts(b, overflow, None)
    }

    #[test]
    fn equal_tools_give_ratios_of_one_inside_their_intervals() {
        let rt: Vec<Histogram> = (0..20).map(|i| slice(1000, 20, 100 + i, 10)).collect();
        let ct: Vec<Histogram> = (0..20).map(|i| slice(2000, 20, 100 + i, 10)).collect();
        let pairs: Vec<_> = rt.iter().zip(&ct).collect();
        let c = compare(&pairs);
        assert_eq!(c.p50_delta_us.value, Value::Exact(0.0));
        assert_eq!(c.p999_ratio.value, Value::Exact(1.0));
        let (Value::Exact(lo), Value::Exact(hi)) = (c.p999_ratio.low, c.p999_ratio.high) else { panic!("{c:?}") };
        assert!(lo <= 1.0 && 1.0 <= hi, "{c:?}");
    }

    #[test]
    fn a_slower_tail_shows_in_the_ratio_and_a_noisy_one_widens_the_interval() {
        let ct: Vec<Histogram> = (0..20).map(|_| slice(2000, 20, 100, 10)).collect();
        let steady: Vec<Histogram> = (0..20).map(|_| slice(1000, 20, 200, 10)).collect();
        let noisy: Vec<Histogram> = (0..20).map(|i| slice(1000, 20, if i % 2 == 0 { 100 } else { 300 }, 10)).collect();
        let c = compare(&steady.iter().zip(&ct).collect::<Vec<_>>());
        assert_eq!(c.p999_ratio.value, Value::Exact(2.0));
        assert_eq!((c.p999_ratio.low, c.p999_ratio.high), (Value::Exact(2.0), Value::Exact(2.0)));
        let n = compare(&noisy.iter().zip(&ct).collect::<Vec<_>>());
        let (Value::Exact(lo), Value::Exact(hi)) = (n.p999_ratio.low, n.p999_ratio.high) else { panic!("{n:?}") };
        assert!(hi - lo >= 1.0, "alternating 100/300 µs tails: a wide interval, got {n:?}");
    }

    #[test]
    fn a_percentile_past_rt_cores_range_is_a_lower_bound() {
        let rt: Vec<Histogram> = (0..4).map(|_| slice(1000, 20, 5000, 10)).collect();
        let ct: Vec<Histogram> = (0..4).map(|_| slice(2000, 20, 500, 10)).collect();
        let c = compare(&rt.iter().zip(&ct).collect::<Vec<_>>());
        assert_eq!(c.p999_ratio.value, Value::AtLeast(2.0));
        assert_eq!(c.p999_ratio.value.show(2), ">2.00");
        assert_eq!(c.p99_ratio.value, Value::Exact(1.0));
    }
}
