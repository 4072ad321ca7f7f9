//! `online-change`: repeated online changes under a 1 ms program, and rt-core's wake-up
//! latency meanwhile against cyclictest's.
//!
//! As `latency`, short alternating slices in ABBA order (rt-core, cyclictest, cyclictest,
//! rt-core, …; 6 × 5 s per tool by default, so 60 s in all) at the same SCHED_FIFO priority
//! and CPU. In each rt-core slice a fresh rt-core runs the demo program at 1 ms and, once a
//! second, the client stages a migration plan (all 33 variables by index) and loads the
//! other of two builds of it online: dlopen and init on the loader thread, the values carried
//! at a cycle boundary on the scan thread, the old library unloaded on the loader thread.
//! Printed: every swap's cost on the scan thread (`SwapReport::swap_ns`), the largest scan
//! time of each slice (the swap cycle's included), missed cycles (periods skipped: the target
//! is 0), and the latency comparison with its bootstrap intervals. The last line is
//! machine-readable.

use clap::Parser;
use openplc_benches::Error;
use openplc_benches::compare::compare;
use openplc_benches::cyclictest::Cyclictest;
use openplc_benches::histogram::{Histogram, show};
use openplc_benches::process::{self, wait_for};
use openplc_benches::slice_rt::{SliceRt, beside_this_exe, unexpected};
use shared_abi::client::Reader;
use shared_abi::migrate::{MigrateEntry, MigratePlan, SwapOutcome};
use shared_abi::msg::Command;
use shared_abi::sizes::ImageRequest;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(about = "repeated online changes under a 1 ms program, with rt-core vs cyclictest latency")]
struct Args {
    /// Slices per tool (ABBA order).
    #[arg(long, default_value_t = 6)]
    slices: usize,
    /// Seconds per slice (one online change per second in rt-core's).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    #[arg(long, default_value_t = 49)]
    priority: i32,
    #[arg(long)]
    cpu: Option<usize>,
    #[arg(long)]
    rt_binary: Option<PathBuf>,
    #[arg(long, default_value = "cyclictest")]
    cyclictest: String,
}

/// The demo program's period.
const PERIOD_US: usize = 1000;

struct Slice {
    hist: Histogram,
    swaps_ns: Vec<u64>,
    max_scan_ns: u64,
    skipped: u64,
    cpu: usize,
}

fn rt_slice(args: &Args, rt_binary: &Path, builds: &[PathBuf; 2], dir: &Path) -> Result<Slice, Error> {
    let mut rt = SliceRt::start(rt_binary, dir, args.cpu, args.priority, &builds[0])?;
    let cpu = rt.scan_cpu()?;
    let client = &mut rt.client;
    process::pause(Duration::from_millis(500))?;
    client.command(Command::ResetStats, Duration::from_secs(5)).map_err(unexpected("reset-stats"))?;
    let vars = client.program_info().map_err(unexpected("program info"))?.var_count;
    let mut plan: Box<MigratePlan> = bytemuck::zeroed_box();
    let mut swaps_ns = Vec::new();
    for k in 0..args.seconds {
        process::pause(Duration::from_secs(1))?;
        plan.old_program_gen = client.status().program_gen;
        plan.count = vars;
        for v in 0..vars {
            plan.entries[v as usize] = MigrateEntry { old_var: v, new_var: v, ..Default::default() };
        }
        client.stage_plan(Some(&plan));
        let path = shared_abi::msg::bounded(&builds[(k as usize + 1) % 2].to_string_lossy());
        let before = client.status().program_gen;
        client
            .send(Command::Load { path, start: true, warm: false, online: true, image: ImageRequest::FROM_PROGRAM })
            .map_err(unexpected("load"))?;
        wait_for("the online change", Duration::from_secs(10), || {
            (client.status().program_gen != before).then_some(())
        })?;
        let report = client.swap_report().map_err(unexpected("swap report"))?;
        if report.outcome() != SwapOutcome::Online {
            return Err(Error::Unexpected { what: "the swap", detail: format!("{report:?}") });
        }
        swaps_ns.push(report.swap_ns);
    }
    let hist = Histogram::of_snapshot(&client.histogram());
    let stats = client.stats().map_err(unexpected("stats"))?;
    let _ = client.command(Command::Shutdown, Duration::from_secs(2));
    Ok(Slice { hist, swaps_ns, max_scan_ns: stats.scan_time.max_ns, skipped: stats.skipped_periods, cpu })
}

fn main() {
    let args = Args::parse();
    process::install_interrupt_handler();
    if let Err(e) = run(&args) {
        eprintln!("online-change: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let work = tempfile::Builder::new().prefix("oplc-online").tempdir().map_err(Error::io("temp dir"))?;
    let rt_binary = match &args.rt_binary {
        Some(p) => p.clone(),
        None => beside_this_exe("openplc-rt")?,
    };
    eprintln!("online-change: building the demo program at 1 ms (two copies to swap between)");
    let first = openplc_benches::demo_program(work.path(), (PERIOD_US / 1000) as u32)?;
    let second = work.path().join("demo-1ms-b.so");
    std::fs::copy(&first, &second).map_err(Error::io("copying the program"))?;
    let builds = [first, second];
    println!(
        "# {} slices x {} s per tool, ABBA, SCHED_FIFO {}, period {PERIOD_US} us, one online change per second",
        args.slices, args.seconds, args.priority
    );
    let mut ct_tool = Cyclictest {
        binary: args.cyclictest.clone(),
        cpu: args.cpu,
        priority: args.priority,
        interval_us: PERIOD_US as u64,
    };
    let (mut rt, mut ct, mut swaps, mut max_scan, mut skipped) = (Vec::new(), Vec::new(), Vec::new(), 0u64, 0u64);
    for i in 0..args.slices * 2 {
        let dir = tempfile::tempdir_in(work.path()).map_err(Error::io("slice dir"))?;
        if matches!(i % 4, 0 | 3) {
            let s = rt_slice(args, &rt_binary, &builds, dir.path())?;
            ct_tool.cpu.get_or_insert(s.cpu);
            println!(
                "slice {:2} rt-core     swaps {:2} swap max {:>5} us  scan max {:>5} us  missed {}  p99 {:>5} max {:>6} us",
                i + 1,
                s.swaps_ns.len(),
                s.swaps_ns.iter().max().copied().unwrap_or(0) / 1000,
                s.max_scan_ns / 1000,
                s.skipped,
                show(s.hist.quantile(0.99)),
                show(s.hist.max())
            );
            swaps.extend(s.swaps_ns);
            max_scan = max_scan.max(s.max_scan_ns);
            skipped += s.skipped;
            rt.push(s.hist);
        } else {
            let h = ct_tool.run(args.seconds, dir.path())?;
            println!(
                "slice {:2} cyclictest                                                   p99 {:>5} max {:>6} us",
                i + 1,
                show(h.quantile(0.99)),
                show(h.max())
            );
            ct.push(h);
        }
    }
    swaps.sort_unstable();
    let median = swaps.get(swaps.len() / 2).copied().unwrap_or(0);
    let worst = swaps.last().copied().unwrap_or(0);
    let pairs: Vec<(&Histogram, &Histogram)> = rt.iter().zip(&ct).collect();
    let c = compare(&pairs);
    println!();
    println!(
        "online changes {}: swap on the scan thread median {} us, max {} us",
        swaps.len(),
        median / 1000,
        worst / 1000
    );
    // A wake-up a whole period late has lost that period before the scan starts, whatever
    // the scan does: the host's stalls, which cyclictest meets as often in its own slices.
    // The missed cycles the wake-ups do not account for are the runtime's own.
    let lost = |h: &[Histogram]| h.iter().map(|h| h.periods_lost(PERIOD_US)).sum::<u64>();
    let (rt_lost, ct_lost) = (lost(&rt), lost(&ct));
    let own = skipped.saturating_sub(rt_lost);
    println!("largest scan time (swap cycles included) {} us of a {PERIOD_US} us period", max_scan / 1000);
    println!("missed cycles {skipped}: {rt_lost} lost to late wake-ups, {own} not (target 0)");
    println!("  cyclictest's wake-ups in its slices would have lost {ct_lost}");
    println!("  p99 ratio   {}   (target <= 1.10)", c.p99_ratio.show(2));
    println!("  p99.9 ratio {}   (target <= 1.25)", c.p999_ratio.show(2));
    println!(
        "swaps={} swap_median_us={} swap_max_us={} scan_max_us={} missed={skipped} missed_not_late={own} rt_lost_late={rt_lost} ct_lost_late={ct_lost} {}",
        swaps.len(),
        median / 1000,
        worst / 1000,
        max_scan / 1000,
        c.tokens("")
    );
    Ok(())
}
