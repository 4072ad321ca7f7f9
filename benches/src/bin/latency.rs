//! `latency`: rt-core's wake-up latency against cyclictest's, each alone on the same CPU.
//!
//! Short alternating slices in ABBA order (rt-core, cyclictest, cyclictest, rt-core, …;
//! 40 × 5 s per tool by default) with the same SCHED_FIFO priority, CPU, 1 ms period and
//! memory locking, both holding `/dev/cpu_dma_latency` at 0. rt-core runs a real program
//! (the demo bundle at 1 ms unless `--program` names another library), started fresh for
//! each of its slices so the CPU is cyclictest's alone in the others. Histograms have 1 µs
//! buckets: cyclictest's 10 ms wide, rt-core's as wide as shared-abi's (1 ms today; a
//! percentile past it is printed as a bound, `≥1000`, never as a number). Slices are pooled
//! per tool; each ratio gets a 95 % bootstrap interval over the ABBA pairs
//! (`openplc_benches::compare`). The last line is machine-readable.
//!
//! `--tasks`: each IEC task of a two-task program against cyclictest threads at the same
//! priorities (`latency/tasks.rs`).

#[path = "latency/tasks.rs"]
mod tasks;

use clap::Parser;
use openplc_benches::Error;
use openplc_benches::compare::{Comparison, compare};
use openplc_benches::cyclictest::{self, Cyclictest};
use openplc_benches::histogram::{Histogram, Quantile, show};
use openplc_benches::process;
use openplc_benches::slice_rt::{SliceRt, beside_this_exe, unexpected};
use shared_abi::client::Reader;
use shared_abi::msg::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "rt-core vs cyclictest wake-up latency, alternating slices on one CPU")]
pub(crate) struct Args {
    /// Slices per tool (ABBA order; pairs of adjacent slices are the bootstrap's unit).
    #[arg(long, default_value_t = 40)]
    pub(crate) slices: usize,
    /// Seconds per slice.
    #[arg(long, default_value_t = 5)]
    pub(crate) seconds: u64,
    /// 10 slices of 3 s per tool.
    #[arg(long)]
    quick: bool,
    /// SCHED_FIFO priority for both.
    #[arg(long, default_value_t = 49)]
    pub(crate) priority: i32,
    /// CPU for both (default: the one rt-core picks by itself).
    #[arg(long)]
    pub(crate) cpu: Option<usize>,
    /// The program library rt-core runs (period 1 ms); default: the demo bundle, built now.
    #[arg(long)]
    program: Option<PathBuf>,
    /// The openplc-rt binary (default: beside this executable).
    #[arg(long)]
    rt_binary: Option<PathBuf>,
    #[arg(long, default_value = "cyclictest")]
    pub(crate) cyclictest: String,
    /// Per task: the two-task STruC++ program, each task against a cyclictest thread at its
    /// priority and interval.
    #[arg(long)]
    tasks: bool,
}

/// One rt-core slice: start, load, warm up, reset, measure, read the histogram, stop.
/// Returns the histogram, the scans done and the CPU rt-core ran on.
fn rt_slice(args: &Args, rt_binary: &Path, program: &Path, dir: &Path) -> Result<(Histogram, u64, usize), Error> {
    let mut rt = SliceRt::start(rt_binary, dir, args.cpu, args.priority, program)?;
    let status = rt.client.status();
    if status.period_ns != 1_000_000 {
        return Err(Error::Unexpected {
            what: "the program's period",
            detail: format!("{} ns; the comparison needs 1 ms", status.period_ns),
        });
    }
    let cpu = rt.scan_cpu()?;
    let client = &mut rt.client;
    process::pause(Duration::from_millis(500))?;
    client.command(Command::ResetStats, Duration::from_secs(5)).map_err(unexpected("reset-stats"))?;
    process::pause(Duration::from_secs(args.seconds))?;
    let h = Histogram::of_snapshot(&client.histogram());
    let scans = client.stats().map_err(unexpected("stats"))?.scan_count;
    let _ = client.command(Command::Shutdown, Duration::from_secs(2));
    Ok((h, scans, cpu))
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.slices = 10;
        args.seconds = 3;
    }
    process::install_interrupt_handler();
    if let Err(e) = run(&args) {
        eprintln!("latency: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let work = tempfile::Builder::new().prefix("oplc-latency").tempdir().map_err(Error::io("temp dir"))?;
    let rt_binary = match &args.rt_binary {
        Some(p) => p.clone(),
        None => beside_this_exe("openplc-rt")?,
    };
    if args.tasks {
        return tasks::run(args, work.path(), &rt_binary);
    }
    let program = match &args.program {
        Some(p) => std::fs::canonicalize(p).map_err(Error::io(p.display().to_string()))?,
        None => {
            eprintln!("latency: building the demo program at 1 ms");
            openplc_benches::demo_program(work.path(), 1)?
        }
    };
    println!(
        "# {} slices x {} s per tool, ABBA order, SCHED_FIFO {}, CPU {}, period 1000 us; \
         histograms: cyclictest 1 us buckets {} us wide, rt-core 1 us to {} us then {} us to {} us",
        args.slices,
        args.seconds,
        args.priority,
        args.cpu.map_or("as rt-core picks it".into(), |c| c.to_string()),
        cyclictest::RANGE_US,
        shared_abi::stats::HIST_COARSE_FROM_US,
        shared_abi::stats::HIST_COARSE_US,
        shared_abi::stats::HIST_RANGE_US,
    );
    let mut ct_tool =
        Cyclictest { binary: args.cyclictest.clone(), cpu: args.cpu, priority: args.priority, interval_us: 1000 };
    let (mut rt, mut ct) = (Vec::new(), Vec::new());
    for i in 0..args.slices * 2 {
        let dir = tempfile::tempdir_in(work.path()).map_err(Error::io("slice dir"))?;
        if matches!(i % 4, 0 | 3) {
            let (h, scans, cpu) = rt_slice(args, &rt_binary, &program, dir.path())?;
            // cyclictest runs where rt-core chose to run.
            ct_tool.cpu.get_or_insert(cpu);
            println!(
                "slice {:2} rt-core     samples {:6} scans {scans:6} p99 {:>5} max {:>6} us",
                i + 1,
                h.samples(),
                show(h.quantile(0.99)),
                show(h.max())
            );
            rt.push(h);
        } else {
            let h = ct_tool.run(args.seconds, dir.path())?;
            println!(
                "slice {:2} cyclictest  samples {:6}              p99 {:>5} max {:>6} us",
                i + 1,
                h.samples(),
                show(h.quantile(0.99)),
                show(h.max())
            );
            ct.push(h);
        }
    }
    report(&rt, &ct);
    Ok(())
}

fn report(rt: &[Histogram], ct: &[Histogram]) {
    let (Some(rt_all), Some(ct_all)) = (Histogram::pooled(rt), Histogram::pooled(ct)) else { return };
    println!();
    println!(
        "{:<11} {:>9} {:>6} {:>6} {:>7} {:>8} {:>12}",
        "tool", "samples", "p50", "p99", "p99.9", "max", "median max"
    );
    for (name, slices, all) in [("cyclictest", ct, &ct_all), ("rt-core", rt, &rt_all)] {
        let mut maxima: Vec<u64> = slices.iter().filter_map(|h| h.max().map(Quantile::floor_us)).collect();
        maxima.sort_unstable();
        println!(
            "{name:<11} {:>9} {:>6} {:>6} {:>7} {:>8} {:>12}",
            all.samples(),
            show(all.quantile(0.5)),
            show(all.quantile(0.99)),
            show(all.quantile(0.999)),
            show(all.max()),
            maxima.get(maxima.len() / 2).map_or("-".into(), |m| m.to_string()),
        );
    }
    // ABBA: slices 2k and 2k+1 are one rt-core and one cyclictest slice, back to back.
    let pairs: Vec<(&Histogram, &Histogram)> = rt.iter().zip(ct).collect();
    let c: Comparison = compare(&pairs);
    println!();
    println!("rt-core vs cyclictest, 95 % bootstrap intervals over {} adjacent slice pairs:", c.pairs);
    println!("  p50 difference  {} us   (target <= 1)", c.p50_delta_us.show(0));
    println!("  p99 ratio       {}   (target <= 1.10)", c.p99_ratio.show(2));
    println!("  p99.9 ratio     {}   (target <= 1.25)", c.p999_ratio.show(2));
    println!(
        "  maxima are the host's (several-ms stalls of the VM, realtime-baseline.md): compare them only within a run"
    );
    println!("{}", c.tokens(""));
}
