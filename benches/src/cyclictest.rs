//! cyclictest (rt-tests), the reference every latency figure here is divided by: one
//! thread, absolute-deadline `clock_nanosleep`, memory locked, `/dev/cpu_dma_latency` held at
//! 0 (its default, as rt-core does), a 1 µs histogram 10 ms wide.

use crate::Error;
use crate::histogram::{Histogram, Quantile};
use crate::process::ChildGuard;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// 10 ms of 1 µs buckets (`-h 10000`): on this kind of host p99.9 lies between 0.1 and a few
/// ms, so a 400 µs histogram made it "overflow", not a number.
pub const RANGE_US: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Cyclictest {
    pub binary: String,
    pub cpu: Option<usize>,
    pub priority: i32,
    pub interval_us: u64,
}

/// A run in progress.
pub struct Run {
    child: ChildGuard,
    histfile: PathBuf,
    errfile: PathBuf,
    seconds: u64,
}

impl Cyclictest {
    /// Runs for `seconds` and returns the histogram.
    pub fn run(&self, seconds: u64, dir: &Path) -> Result<Histogram, Error> {
        self.start(seconds, None, dir)?.finish()
    }

    /// Starts a run of `seconds`. With `aligned_us`, cyclictest waits for the next whole
    /// second of CLOCK_MONOTONIC and wakes at `aligned_us` past it, then every interval
    /// (`--secaligned`): the caller knows the window and the phase of every wake-up.
    pub fn start(&self, seconds: u64, aligned_us: Option<u64>, dir: &Path) -> Result<Run, Error> {
        let histfile = dir.join("cyclictest.hist");
        let errfile = dir.join("cyclictest.err");
        let err = std::fs::File::create(&errfile).map_err(Error::io(errfile.display().to_string()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(["-m", "-q", "-t", "1"])
            .arg(format!("-i{}", self.interval_us))
            .arg(format!("-h{RANGE_US}"))
            .arg(format!("-p{}", self.priority))
            .arg(format!("-D{seconds}s"))
            .arg(format!("--histfile={}", histfile.display()));
        if let Some(c) = self.cpu {
            cmd.arg(format!("-a{c}"));
        }
        if let Some(us) = aligned_us {
            cmd.arg(format!("--secaligned={us}"));
        }
        cmd.stdout(Stdio::null()).stderr(err).stdin(Stdio::null());
        let child = ChildGuard::spawn("cyclictest", &mut cmd).map_err(|e| match e {
            Error::Io { what, source } => Error::Io { what: format!("{what} (install rt-tests)"), source },
            other => other,
        })?;
        Ok(Run { child, histfile, errfile, seconds })
    }
}

impl Run {
    /// Waits for the end of the run and reads its histogram.
    pub fn finish(self) -> Result<Histogram, Error> {
        let Run { child, histfile, errfile, seconds } = self;
        let (status, _) = child.finish(Duration::from_secs(seconds + 15))?;
        if !status.success() {
            let detail = std::fs::read_to_string(&errfile).unwrap_or_default();
            return Err(Error::Failed { command: "cyclictest".into(), detail: format!("{status}: {detail}") });
        }
        let text = std::fs::read_to_string(&histfile).map_err(Error::io(histfile.display().to_string()))?;
        Ok(parse_histfile(&text, RANGE_US))
    }
}

/// cyclictest's `--histfile`: `NNNNNN count` lines, then `# Max Latencies: N` and
/// `# Histogram Overflows: N` (one column per thread; one thread here).
pub fn parse_histfile(text: &str, range_us: usize) -> Histogram {
    let mut buckets = vec![0u64; range_us];
    let (mut overflow, mut max) = (0, None);
    let first_number = |rest: &str| rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# Histogram Overflows:") {
            overflow = first_number(rest).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("# Max Latencies:") {
            max = first_number(rest).map(Quantile::Us);
        } else if !line.starts_with('#') {
            let mut it = line.split_whitespace();
            if let (Some(us), Some(n)) = (it.next(), it.next())
                && let (Ok(us), Ok(n)) = (us.parse::<usize>(), n.parse::<u64>())
                && let Some(b) = buckets.get_mut(us)
            {
                *b += n;
            }
        }
    }
    let h = Histogram::from_parts(buckets, overflow, None);
    let max = if h.samples() == 0 { None } else { max };
    Histogram::from_parts(h.buckets().to_vec(), overflow, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_buckets_overflow_and_max() {
        let text = "# Histogram\n000000 000000\n000012 000990\n000013 000005\n# Total: 000000995\n\
                    # Min Latencies: 00012\n# Avg Latencies: 00012\n# Max Latencies: 12001\n\
                    # Histogram Overflows: 00005\n# Histogram Overflow at cycle number:\n# Thread 0: 00017\n";
        let h = parse_histfile(text, 100);
        assert_eq!(h.samples(), 1000);
        assert_eq!(h.overflow(), 5);
        assert_eq!(h.quantile(0.5), Some(Quantile::Us(12)));
        assert_eq!(h.quantile(0.999), Some(Quantile::Beyond(100)));
        assert_eq!(h.max(), Some(Quantile::Us(12001)));
    }
}
