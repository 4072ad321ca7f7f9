//! Debugger load bench (run by `benches/debugger`): 10 Editor-like clients poll 60 variables
//! every 50 ms against a 1 ms program while rt-core's wake-up latency is recorded; then the
//! same load runs against an rt-core on another CPU while cyclictest measures the first CPU
//! at the same priority, for the same length. Not a pass/fail test: it reports.
//!
//! Phase 1 answers "how fast are replies, and what does the debugger cost the scan loop";
//! phase 2 gives the machine's own latency under identical load, so the ratio isolates
//! rt-core from the host.

use openplc_debugger::{Config, Debugger, Family, Identity, socketio};
use openplc_port::{LogSink, PlcPort};
use shared_abi::client::{Observer, Reader};
use shared_abi::msg::Command as RtCommand;
use shared_abi::stats::percentile_us;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Histogram range in 1 µs buckets for both tools: rt-core's (`HIST_RANGE_US`, its 10 µs
/// buckets past 1 ms counted at their first µs), passed to cyclictest as `-h`.
const BUCKETS: usize = shared_abi::stats::HIST_RANGE_US as usize;
const TOKEN: &str = "bench";

struct Args {
    rt_binary: PathBuf,
    bundle: PathBuf,
    load_script: PathBuf,
    node_modules: PathBuf,
    cyclictest: String,
    seconds: u64,
    cpu: usize,
    priority: i32,
    clients: u32,
    vars: u32,
    interval_ms: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut args = Args {
        rt_binary: PathBuf::new(),
        bundle: PathBuf::new(),
        load_script: PathBuf::new(),
        node_modules: PathBuf::new(),
        cyclictest: "cyclictest".into(),
        seconds: 60,
        cpu: cpus - 1,
        priority: 49,
        clients: 10,
        vars: 60,
        interval_ms: 50,
    };
    while let Some(flag) = a.next() {
        let mut value = || a.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: {v} is not a number"));
        match flag.as_str() {
            "--rt-binary" => args.rt_binary = value()?.into(),
            "--bundle" => args.bundle = value()?.into(),
            "--load-script" => args.load_script = value()?.into(),
            "--node-modules" => args.node_modules = value()?.into(),
            "--cyclictest" => args.cyclictest = value()?,
            "--seconds" => args.seconds = num(value()?)?,
            "--cpu" => args.cpu = num(value()?)? as usize,
            "--priority" => args.priority = num(value()?)? as i32,
            "--clients" => args.clients = num(value()?)? as u32,
            "--vars" => args.vars = num(value()?)? as u32,
            "--interval-ms" => args.interval_ms = num(value()?)? as u32,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    for (name, p) in
        [("--rt-binary", &args.rt_binary), ("--bundle", &args.bundle), ("--load-script", &args.load_script)]
    {
        if !p.exists() {
            return Err(format!("{name} {} does not exist", p.display()));
        }
    }
    Ok(args)
}

struct Killed(Child);

impl Drop for Killed {
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

/// rt-core on `cpu` with the program loaded and running, the debugger serving it.
struct Stack {
    _rt: Killed,
    shm: String,
    port: Arc<PlcPort>,
    url: String,
    _runtime: tokio::runtime::Runtime,
    var_count: u32,
}

fn start_stack(args: &Args, dir: &Path, cpu: &str, program: &Path) -> Result<Stack, String> {
    let shm = dir.join("shm").to_string_lossy().into_owned();
    let log = std::fs::File::create(dir.join("rt.log")).map_err(|e| e.to_string())?;
    let child = Command::new(&args.rt_binary)
        .args(["--shm", &shm, "run", "--cpu", cpu, "--priority", &args.priority.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting openplc-rt: {e}"))?;
    let pid = child.id();
    let rt = Killed(child);
    wait_for("openplc-rt", Duration::from_secs(10), || {
        let o = Observer::open(&shm).ok()?;
        let s = o.status();
        (s.rt_alive && s.rt_pid == pid).then_some(())
    })?;
    let port = PlcPort::open(&shm, LogSink::discard()).map_err(|e| e.to_string())?;
    let image = shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false };
    port.load_blocking(&program.to_string_lossy(), true, openplc_port::LoadKind::Cold, image, Duration::from_secs(10))
        .map_err(|e| format!("loading the program: {e}"))?;
    let var_count = port.program_info().ok_or("no program after the load")?.var_count;
    let auth = |t: &str| -> Result<Identity, String> {
        (t == TOKEN)
            .then(|| Identity { name: "bench".into(), may_force: false })
            .ok_or_else(|| "bad credentials".into())
    };
    let debugger =
        Debugger::new(port.clone(), Arc::new(auth), Config { default_family: Family::FlatIndex, ..Config::default() });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| e.to_string())?;
    let tcp_port = listener.local_addr().map_err(|e| e.to_string())?.port();
    runtime.spawn(async move {
        let (layer, _io) = socketio::layer(debugger);
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "debugger bench" })).layer(layer);
        let _ = axum::serve(listener, app).await;
    });
    Ok(Stack { _rt: rt, shm, port, url: format!("http://127.0.0.1:{tcp_port}"), _runtime: runtime, var_count })
}

fn start_load(args: &Args, stack: &Stack) -> Result<Child, String> {
    Command::new("node")
        .arg(&args.load_script)
        .args([
            stack.url.as_str(),
            TOKEN,
            &args.clients.to_string(),
            &args.vars.to_string(),
            &args.interval_ms.to_string(),
            &args.seconds.to_string(),
            &stack.var_count.to_string(),
        ])
        .env("NODE_PATH", &args.node_modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting node: {e}"))
}

fn finish_load(child: Child) -> Result<serde_json::Value, String> {
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().ok_or("the load script printed nothing")?;
    serde_json::from_str(line).map_err(|e| format!("load script output {line:?}: {e}"))
}

#[derive(Default)]
struct Latency {
    buckets: Vec<u64>,
    overflow: u64,
    max_us: u64,
}

impl Latency {
    fn of_rt(h: &shared_abi::stats::HistogramSnapshot) -> Latency {
        let mut l = Latency { buckets: vec![0; BUCKETS], overflow: h.overflow, max_us: h.max_ns / 1000 };
        for (start, _, n) in h.cells() {
            match l.buckets.get_mut(start as usize) {
                Some(b) => *b += n,
                None => l.overflow += n,
            }
        }
        l
    }

    fn samples(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }

    fn pct(&self, f: f64) -> String {
        match percentile_us(&self.buckets, self.overflow, f) {
            Some(v) if v as usize >= BUCKETS => format!(">{BUCKETS}"),
            Some(v) => v.to_string(),
            None => "-".into(),
        }
    }

    /// `None` when unknown or past the histogram (a ratio of two overflows means nothing).
    fn pct_num(&self, f: f64) -> Option<f64> {
        percentile_us(&self.buckets, self.overflow, f).filter(|&v| (v as usize) < BUCKETS).map(|v| v as f64)
    }
}

/// cyclictest's `-h` output: `NNNNNN count` lines, `# Max Latencies: N`, `# Histogram Overflows: N`.
fn parse_cyclictest(out: &str) -> Latency {
    let mut buckets = vec![0u64; BUCKETS];
    let (mut overflow, mut max_us) = (0, 0);
    for line in out.lines() {
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(us), Some(n)) if !us.starts_with('#') => {
                if let (Ok(us), Ok(n)) = (us.parse::<usize>(), n.parse::<u64>())
                    && let Some(b) = buckets.get_mut(us)
                {
                    *b += n;
                }
            }
            _ => {}
        }
        let number = |l: &str| l.split(':').nth(1).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        if line.starts_with("# Histogram Overflows:") {
            overflow = number(line).unwrap_or(0);
        } else if line.starts_with("# Max Latencies:") {
            max_us = number(line).unwrap_or(0);
        }
    }
    Latency { buckets, overflow, max_us }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let program = work.path().join("program.so");
    eprintln!("building the program from {}", args.bundle.display());
    openplc_builder::build(&args.bundle, &program, &openplc_builder::BuildOptions::default(), &mut |_| {})
        .map_err(|e| format!("building the bundle: {e}"))?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let other_cpu = if cpus > 1 { ((args.cpu + 1) % cpus).to_string() } else { "none".into() };

    // Phase 1: rt-core on the measured CPU under the debugger load.
    eprintln!("phase 1: rt-core on CPU {} (priority {}) under load, {} s", args.cpu, args.priority, args.seconds);
    let dir1 = tempfile::tempdir_in(work.path()).map_err(|e| e.to_string())?;
    let stack = start_stack(&args, dir1.path(), &args.cpu.to_string(), &program)?;
    std::thread::sleep(Duration::from_secs(2));
    stack.port.command_blocking(RtCommand::ResetStats, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let load = finish_load(start_load(&args, &stack)?)?;
    let observer = Observer::open(&stack.shm).map_err(|e| e.to_string())?;
    let h = observer.histogram();
    let stats = observer.stats().map_err(|e| e.to_string())?;
    let rt = Latency::of_rt(&h);
    drop(observer);
    let period_us = stats.period_ns / 1000;
    let var_count = stack.var_count;
    drop(stack);

    // Phase 2: the same load against an rt-core elsewhere, cyclictest on the measured CPU.
    eprintln!(
        "phase 2: cyclictest on CPU {} (priority {}) under the same load, {} s",
        args.cpu, args.priority, args.seconds
    );
    let dir2 = tempfile::tempdir_in(work.path()).map_err(|e| e.to_string())?;
    let stack = start_stack(&args, dir2.path(), &other_cpu, &program)?;
    std::thread::sleep(Duration::from_secs(2));
    let loader = start_load(&args, &stack)?;
    let ct = Command::new(&args.cyclictest)
        .args(["-m", "-q", "-t", "1", "-i", &period_us.max(100).to_string(), "-h", &BUCKETS.to_string()])
        .args(["-a", &args.cpu.to_string(), "-p", &args.priority.to_string(), "-D", &args.seconds.to_string()])
        .output()
        .map_err(|e| format!("running {}: {e}", args.cyclictest))?;
    let load2 = finish_load(loader)?;
    let ct = parse_cyclictest(&String::from_utf8_lossy(&ct.stdout));
    drop(stack);

    let ms = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
    println!();
    println!(
        "debugger load: {} clients × {} variables every {} ms for {} s; program period {} µs (MatIEC demo bundle, {} debug variables)",
        args.clients, args.vars, args.interval_ms, args.seconds, period_us, var_count,
    );
    for (name, l) in [("phase 1 (rt-core measured)", &load), ("phase 2 (cyclictest measured)", &load2)] {
        println!(
            "  {name}: {} replies ({:.1}/s), {} errors, {} polls skipped (previous in flight); reply latency p50 {} ms, p99 {} ms, max {} ms",
            l["replies"],
            l["replies_per_s"].as_f64().unwrap_or(0.0),
            l["errors"],
            l["skipped"],
            ms(&l["latency_ms"]["p50"]),
            ms(&l["latency_ms"]["p99"]),
            ms(&l["latency_ms"]["max"]),
        );
        if let Some(e) = l["first_error"].as_str() {
            println!("    first error: {e}");
        }
    }
    println!();
    println!("wake-up latency (µs), CPU {}, SCHED_FIFO {}:", args.cpu, args.priority);
    println!("  {:<24} {:>10} {:>6} {:>6} {:>7} {:>6}", "", "samples", "p50", "p99", "p99.9", "max");
    for (name, l) in [("rt-core under load", &rt), ("cyclictest under load", &ct)] {
        println!(
            "  {:<24} {:>10} {:>6} {:>6} {:>7} {:>6}",
            name,
            l.samples(),
            l.pct(0.5),
            l.pct(0.99),
            l.pct(0.999),
            l.max_us
        );
    }
    let ratio = |f: f64| match (rt.pct_num(f), ct.pct_num(f)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    };
    println!(
        "  {:<24} {:>10} {:>6} {:>6} {:>7}",
        "ratio rt-core/cyclictest",
        "",
        ratio(0.5),
        ratio(0.99),
        ratio(0.999)
    );
    println!("  rt-core overruns during the load: {}", stats.overruns);
    println!();
    println!(
        "replies_per_s={:.1} reply_p50_ms={} reply_p99_ms={} rt_p50_us={} rt_p99_us={} rt_p999_us={} ct_p50_us={} ct_p99_us={} ct_p999_us={} p50_ratio={} p99_ratio={} p999_ratio={}",
        load["replies_per_s"].as_f64().unwrap_or(0.0),
        ms(&load["latency_ms"]["p50"]),
        ms(&load["latency_ms"]["p99"]),
        rt.pct(0.5),
        rt.pct(0.99),
        rt.pct(0.999),
        ct.pct(0.5),
        ct.pct(0.99),
        ct.pct(0.999),
        ratio(0.5),
        ratio(0.99),
        ratio(0.999)
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("debugger bench: {e}");
        std::process::exit(1);
    }
}
