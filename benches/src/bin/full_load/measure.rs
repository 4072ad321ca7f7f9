//! rt-core's wake-up latency and cyclictest's on the same CPU, in the same windows, under
//! the same load.
//!
//! rt-core runs the program the whole time (it is the system under test; stopping it would
//! change what the clients see). The measured time is cut into slices on a fixed timeline of
//! whole seconds, alternating in ABBA order:
//!
//! - **A**: rt-core alone on its CPU; its histogram over the slice is the difference of two
//!   snapshots of the shared memory (the companion holds the client lease, so no reset).
//! - **B**: cyclictest on the same CPU at the same SCHED_FIFO priority and period, started
//!   with `--secaligned` so that its wake-ups fall at a known distance after rt-core's
//!   (whose deadline phase is read from the shared memory first). rt-core's histogram is
//!   taken over exactly cyclictest's window.
//!
//! The distance is 200 to 800 µs (a different one in each B slice, spread evenly): the two
//! never want the CPU at the same moment unless one is already 200 µs late, and cyclictest's
//! figure is not the luck of one phase against the periodic things on the CPU (the 4 ms
//! kernel tick at HZ=250, work that follows rt-core's cycle). rt-core's own phase is fixed
//! for a run (set when it started): that luck is not in the intervals, and shows between runs.
//!
//! The headline comparison is rt-core against cyclictest over the B windows: the same
//! seconds, the same load, the same host stalls, and each has the other as a 1 ms neighbour
//! far from its own wake-ups, so neither is favoured. The A slices show what that neighbour
//! costs rt-core (rt-core B against rt-core A) and give the classic alternating comparison
//! (rt-core A against the cyclictest B next to it).

use anyhow::{Result, bail};
use openplc_benches::cyclictest::Cyclictest;
use openplc_benches::histogram::Histogram;
use openplc_benches::process::{self, pause_until_monotonic};
use shared_abi::client::{Observer, Reader};
use shared_abi::shm::monotonic_ns;
use shared_abi::stats::Stats;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SECOND: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// rt-core alone on its CPU.
    Alone,
    /// cyclictest beside rt-core, its wake-ups 200 to 800 µs after rt-core's.
    Beside,
}

/// ABBA: A B B A A B B A …
pub fn abba(n: usize) -> Vec<Kind> {
    (0..n).map(|i| if matches!(i % 4, 0 | 3) { Kind::Alone } else { Kind::Beside }).collect()
}

/// Where cyclictest's wake-ups fall after rt-core's.
#[derive(Clone, Copy, Debug)]
pub enum Distance {
    /// The same in every B slice (`--phase-us`).
    Fixed(u64),
    /// 20 % to 80 % of the period, a different value in each B slice.
    Spread,
}

/// The timeline: slice `k` starts at whole second `first_s + k·(seconds+1)` plus its
/// offset (less than a period); the spare second between slices is for cyclictest to exit
/// and the next to start.
pub struct Plan {
    pub kinds: Vec<Kind>,
    pub seconds: u64,
    pub first_s: u64,
    pub period_ns: u64,
    /// rt-core's deadlines, modulo the period.
    pub rt_phase_ns: u64,
    pub distance: Distance,
}

/// 0, 1/2, 1/4, 3/4, 1/8, …: evenly spread whatever the number of slices.
fn van_der_corput(mut n: usize) -> f64 {
    let (mut q, mut bit) = (0.0, 0.5);
    while n > 0 {
        if n & 1 == 1 {
            q += bit;
        }
        n >>= 1;
        bit /= 2.0;
    }
    q
}

impl Plan {
    /// A plan whose first slice begins at least `lead` from now.
    pub fn new(
        slices: usize,
        seconds: u64,
        lead: Duration,
        period_ns: u64,
        rt_phase_ns: u64,
        distance: Distance,
    ) -> Plan {
        let first_s = (monotonic_ns() + lead.as_nanos() as u64) / SECOND + 1;
        Plan { kinds: abba(slices), seconds, first_s, period_ns, rt_phase_ns, distance }
    }

    fn slot_start_ns(&self, k: usize) -> u64 {
        (self.first_s + k as u64 * (self.seconds + 1)) * SECOND
    }

    /// cyclictest's distance after rt-core's deadlines in the `b`-th B slice.
    pub fn distance_ns(&self, b: usize) -> u64 {
        match self.distance {
            Distance::Fixed(d) => d % self.period_ns,
            Distance::Spread => self.period_ns / 5 + (0.6 * self.period_ns as f64 * van_der_corput(b)) as u64,
        }
    }

    /// Where in the second a slice's window starts: `distance` after rt-core's deadlines.
    fn offset_ns(&self, distance_ns: u64) -> u64 {
        (self.rt_phase_ns + distance_ns) % self.period_ns
    }

    /// When the last slice ends (at the latest).
    pub fn end_ns(&self) -> u64 {
        self.slot_start_ns(self.kinds.len().saturating_sub(1)) + self.period_ns + self.seconds * SECOND
    }
}

pub struct Slice {
    pub kind: Kind,
    pub rt: Histogram,
    pub ct: Option<Histogram>,
    /// rt-core's overruns and skipped periods within the window.
    pub overruns: u64,
    pub skipped: u64,
    /// How late the bench took its snapshots (it runs at normal priority under the load).
    pub slip_ms: f64,
    /// cyclictest's wake-ups after rt-core's, in a B slice.
    pub distance_us: Option<u64>,
}

/// rt-core's deadline phase within its period, from the end-of-cycle times it publishes:
/// the earliest end (deadline + the smallest latency and scan) over a few hundred cycles.
pub fn deadline_phase_ns(o: &Observer, period_ns: u64) -> Result<u64> {
    if period_ns == 0 {
        bail!("rt-core reports no period");
    }
    let mut samples = Vec::new();
    for _ in 0..250 {
        samples.push(o.shm().header.last_cycle_ns.load(Ordering::Acquire) % period_ns);
        // Not a divisor of the period: the samples walk over the cycle.
        std::thread::sleep(Duration::from_micros(1370));
    }
    // Circular minimum around the first sample (the spread is far below half a period).
    let r = samples[0];
    let signed = |x: u64| {
        let d = (x + period_ns - r) % period_ns;
        if d > period_ns / 2 { d as i64 - period_ns as i64 } else { d as i64 }
    };
    let min = samples.iter().map(|&x| signed(x)).min().unwrap_or(0);
    Ok((r as i64 + min).rem_euclid(period_ns as i64) as u64)
}

fn snapshot(o: &Observer) -> Result<(Box<shared_abi::stats::HistogramSnapshot>, Stats)> {
    Ok((o.histogram(), o.stats()?))
}

/// Runs the plan.
pub fn run(
    o: &Observer,
    ct: &Cyclictest,
    plan: &Plan,
    dir: &Path,
    mut progress: impl FnMut(&Slice),
) -> Result<Vec<Slice>> {
    let mut out = Vec::new();
    let mut b = 0;
    for (k, &kind) in plan.kinds.iter().enumerate() {
        let slot = plan.slot_start_ns(k);
        let distance = match kind {
            Kind::Alone => None,
            Kind::Beside => {
                b += 1;
                Some(plan.distance_ns(b - 1))
            }
        };
        let offset = plan.offset_ns(distance.unwrap_or(plan.period_ns / 2));
        let (from, to) = (slot + offset, slot + offset + plan.seconds * SECOND);
        let run = match distance {
            None => None,
            Some(_) => {
                // Half a second before the slot: cyclictest then aligns to `slot` itself.
                pause_until_monotonic(slot - SECOND / 2)?;
                if monotonic_ns() > slot - SECOND / 10 {
                    bail!("the bench was too late to start cyclictest for slice {} (a host stall?)", k + 1);
                }
                let slice_dir = dir.join(format!("slice-{}", k + 1));
                std::fs::create_dir_all(&slice_dir)?;
                Some(ct.start(plan.seconds, Some(offset / 1000), &slice_dir)?)
            }
        };
        pause_until_monotonic(from)?;
        let slip0 = monotonic_ns().saturating_sub(from);
        let (h0, s0) = snapshot(o)?;
        pause_until_monotonic(to)?;
        let slip1 = monotonic_ns().saturating_sub(to);
        let (h1, s1) = snapshot(o)?;
        let ct_hist = match run {
            Some(r) => Some(r.finish()?),
            None => None,
        };
        process::check_interrupt()?;
        let slice = Slice {
            kind,
            rt: Histogram::between(&h0, &h1),
            ct: ct_hist,
            overruns: s1.overruns.saturating_sub(s0.overruns),
            skipped: s1.skipped_periods.saturating_sub(s0.skipped_periods),
            slip_ms: slip0.max(slip1) as f64 / 1e6,
            distance_us: distance.map(|d| d / 1000),
        };
        progress(&slice);
        out.push(slice);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abba_alternates_in_pairs() {
        use Kind::*;
        assert_eq!(abba(6), vec![Alone, Beside, Beside, Alone, Alone, Beside]);
    }

    fn plan(distance: Distance) -> Plan {
        Plan { kinds: abba(8), seconds: 3, first_s: 10, period_ns: 1_000_000, rt_phase_ns: 900_000, distance }
    }

    #[test]
    fn slices_sit_on_whole_seconds_with_a_spare_second_between() {
        let p = plan(Distance::Spread);
        assert_eq!(p.slot_start_ns(0), 10 * SECOND);
        assert_eq!(p.slot_start_ns(1), 14 * SECOND);
        assert_eq!(p.end_ns(), 38 * SECOND + 1_000_000 + 3 * SECOND);
    }

    #[test]
    fn cyclictest_keeps_a_fifth_of_a_period_away_from_rt_core() {
        let p = plan(Distance::Spread);
        let d: Vec<u64> = (0..4).map(|b| p.distance_ns(b) / 1000).collect();
        assert_eq!(d, vec![200, 500, 350, 650]);
        assert!((0..64).map(|b| p.distance_ns(b)).all(|d| (200_000..=800_000).contains(&d)));
        // 900 µs + 200 µs wraps to 100 µs into the next millisecond.
        assert_eq!(p.offset_ns(p.distance_ns(0)), 100_000);
        assert_eq!(plan(Distance::Fixed(0)).offset_ns(0), 900_000);
    }
}
