//! `latency`: rt-core's wake-up latency against cyclictest's, measured in the same run.
//!
//! Alternating slices in ABBA order (rt-core, cyclictest, cyclictest, rt-core, …) with the
//! same priority, CPU, period and memory locking, both holding `/dev/cpu_dma_latency` at 0.
//! rt-core runs a real program (the demo bundle at 1 ms unless `--program` names another
//! library). Both histograms are read at cyclictest's resolution (1 µs buckets, `-h 400`)
//! and pooled per tool; the report gives p50 / p99 / p99.9 / max per tool and the ratios,
//! and its last line is `p50_delta_us=… p99_ratio=… p999_ratio=…`.

use clap::Parser;
use shared_abi::client::{Reader, RtClient};
use shared_abi::msg::Command;
use shared_abi::stats::percentile_us;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

/// cyclictest's histogram size, used for both tools.
const BUCKETS: usize = 400;

#[derive(Parser)]
#[command(about = "rt-core vs cyclictest wake-up latency, alternating slices")]
struct Args {
    /// Slices per tool (at least 8 for a verdict; --quick uses 2).
    #[arg(long, default_value_t = 8)]
    slices: usize,
    /// Seconds per slice.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// 2 slices of 5 s each.
    #[arg(long)]
    quick: bool,
    /// SCHED_FIFO priority for both.
    #[arg(long, default_value_t = 49)]
    priority: i32,
    /// CPU for both (default: the one rt-core picks by itself).
    #[arg(long)]
    cpu: Option<usize>,
    /// The program library rt-core runs (built with a runtime adapter, period 1 ms).
    #[arg(long)]
    program: PathBuf,
    /// The openplc-rt binary.
    #[arg(long)]
    rt_binary: PathBuf,
    /// cyclictest.
    #[arg(long, default_value = "cyclictest")]
    cyclictest: String,
}

struct Pool {
    buckets: Vec<u64>,
    overflow: u64,
    maxima_us: Vec<u64>,
}

impl Pool {
    fn new() -> Pool {
        Pool { buckets: vec![0; BUCKETS], overflow: 0, maxima_us: Vec::new() }
    }

    /// Adds a histogram; buckets past cyclictest's last one count as overflow.
    fn add(&mut self, buckets: &[u64], overflow: u64, max_us: u64) {
        for (i, &n) in buckets.iter().enumerate() {
            match self.buckets.get_mut(i) {
                Some(b) => *b += n,
                None => self.overflow += n,
            }
        }
        self.overflow += overflow;
        self.maxima_us.push(max_us);
    }

    fn samples(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }

    fn pct(&self, f: f64) -> Option<u64> {
        percentile_us(&self.buckets, self.overflow, f)
    }

    fn max(&self) -> u64 {
        self.maxima_us.iter().copied().max().unwrap_or(0)
    }

    fn median_max(&self) -> u64 {
        let mut m = self.maxima_us.clone();
        m.sort_unstable();
        m.get(m.len() / 2).copied().unwrap_or(0)
    }
}

struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, String> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One rt-core slice: start, load, warm up, reset, measure, read the histogram, stop.
fn rt_slice(args: &Args, cpu: Option<usize>, seconds: u64, dir: &Path) -> Result<(Vec<u64>, u64, u64, u64), String> {
    let shm = dir.join("shm").to_string_lossy().to_string();
    let cpu_arg = cpu.map_or("auto".to_string(), |c| c.to_string());
    let log = std::fs::File::create(dir.join("rt.log")).map_err(|e| e.to_string())?;
    let child = Process::new(&args.rt_binary)
        .args(["--shm", &shm, "run", "--cpu", &cpu_arg, "--priority", &args.priority.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", args.rt_binary.display()))?;
    let _guard = Killer(child);
    let mut client = wait_for("openplc-rt", Duration::from_secs(10), || RtClient::open(&shm).ok())?;
    client.load(&args.program.to_string_lossy(), true, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    if client.status().period_ns != 1_000_000 {
        return Err(format!("the program's period is {} ns; the comparison needs 1 ms", client.status().period_ns));
    }
    std::thread::sleep(Duration::from_millis(500));
    client.command(Command::ResetStats, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(seconds));
    let h = client.histogram();
    let scans = client.stats().map_err(|e| e.to_string())?.scan_count;
    let _ = client.command(Command::Shutdown, Duration::from_secs(2));
    let max_us = h.max_ns / 1000;
    Ok((h.buckets.to_vec(), h.overflow, max_us, scans))
}

/// One cyclictest slice, parsed from its histogram file.
fn ct_slice(args: &Args, cpu: Option<usize>, seconds: u64, dir: &Path) -> Result<(Vec<u64>, u64, u64, u64), String> {
    let hist = dir.join("ct.hist");
    let mut cmd = Process::new(&args.cyclictest);
    cmd.args(["-m", "-q", "-t", "1", "-i", "1000", "-h", &BUCKETS.to_string()])
        .arg(format!("-p{}", args.priority))
        .arg(format!("-D{seconds}s"))
        .arg(format!("--histfile={}", hist.display()));
    if let Some(c) = cpu {
        cmd.arg(format!("-a{c}"));
    }
    let out = cmd.stdout(Stdio::null()).output().map_err(|e| format!("{}: {e} (install rt-tests)", args.cyclictest))?;
    if !out.status.success() {
        return Err(format!("cyclictest failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = std::fs::read_to_string(&hist).map_err(|e| e.to_string())?;
    let mut buckets = vec![0u64; BUCKETS];
    let (mut overflow, mut max_us, mut total) = (0, 0, 0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# Histogram Overflows:") {
            overflow = rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("# Max Latencies:") {
            max_us = rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("# Total:") {
            total = rest.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        } else if !line.starts_with('#') {
            let mut it = line.split_whitespace();
            if let (Some(b), Some(n)) = (it.next(), it.next())
                && let (Ok(b), Ok(n)) = (b.parse::<usize>(), n.parse::<u64>())
                && b < BUCKETS
            {
                buckets[b] = n;
            }
        }
    }
    Ok((buckets, overflow, max_us, total))
}

fn show(v: Option<u64>) -> String {
    match v {
        Some(us) if us as usize >= BUCKETS => format!(">{}", BUCKETS - 1),
        Some(us) => us.to_string(),
        None => "-".into(),
    }
}

fn ratio(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if (a as usize) < BUCKETS && (b as usize) < BUCKETS => {
            format!("{:.2}", a as f64 / b.max(1) as f64)
        }
        _ => "nan".into(),
    }
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.slices = 2;
        args.seconds = 5;
    }
    args.program = match std::fs::canonicalize(&args.program) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("latency: {}: {e}", args.program.display());
            std::process::exit(1);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("latency: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let cpu = args.cpu;
    let (mut rt, mut ct) = (Pool::new(), Pool::new());
    println!(
        "# {} slices x {} s per tool, ABBA order, SCHED_FIFO {}, CPU {}, period 1000 us, histogram 1 us x {BUCKETS}",
        args.slices,
        args.seconds,
        args.priority,
        cpu.map_or("as rt-core picks it (auto)".into(), |c| c.to_string())
    );
    let mut ct_cpu = cpu;
    for i in 0..args.slices * 2 {
        let rt_first = matches!(i % 4, 0 | 3);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if rt_first {
            let (b, o, m, scans) = rt_slice(args, cpu, args.seconds, dir.path())?;
            if ct_cpu.is_none() {
                // Run cyclictest where rt-core chose to run.
                ct_cpu = read_rt_cpu(dir.path());
            }
            let mut one = Pool::new();
            one.add(&b, o, m);
            println!(
                "slice {:2} rt-core     samples {:7} scans {scans:7} p99 {:>4} max {m} us",
                i + 1,
                one.samples(),
                show(one.pct(0.99))
            );
            rt.add(&b, o, m);
        } else {
            let (b, o, m, total) = ct_slice(args, ct_cpu.or(cpu), args.seconds, dir.path())?;
            println!(
                "slice {:2} cyclictest  samples {total:7} p99 {:>4} max {m} us",
                i + 1,
                show(percentile_us(&b, o, 0.99))
            );
            ct.add(&b, o, m);
        }
    }
    println!();
    println!(
        "{:<11} {:>9} {:>6} {:>6} {:>7} {:>8} {:>12}",
        "tool", "samples", "p50", "p99", "p99.9", "max", "median max"
    );
    for (name, p) in [("cyclictest", &ct), ("rt-core", &rt)] {
        println!(
            "{name:<11} {:>9} {:>6} {:>6} {:>7} {:>8} {:>12}",
            p.samples(),
            show(p.pct(0.5)),
            show(p.pct(0.99)),
            show(p.pct(0.999)),
            p.max(),
            p.median_max()
        );
    }
    let delta = match (rt.pct(0.5), ct.pct(0.5)) {
        (Some(a), Some(b)) => (a as i64 - b as i64).to_string(),
        _ => "nan".into(),
    };
    println!("max ratio (noise on a VM, see realtime-baseline.md): {:.2}", rt.max() as f64 / ct.max().max(1) as f64);
    println!(
        "p50_delta_us={delta} p99_ratio={} p999_ratio={}",
        ratio(rt.pct(0.99), ct.pct(0.99)),
        ratio(rt.pct(0.999), ct.pct(0.999))
    );
    Ok(())
}

fn read_rt_cpu(dir: &Path) -> Option<usize> {
    let log = std::fs::read_to_string(dir.join("rt.log")).ok()?;
    let line = log.lines().find(|l| l.contains("scan thread CPU:"))?;
    let after = line.split("CPU ").nth(1)?;
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}
