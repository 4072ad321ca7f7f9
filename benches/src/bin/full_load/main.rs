//! `full-load`: every interface of the runtime under load at once, and what that load does
//! to the scan.
//!
//! A real companion and rt-core (own data directory, port and shared memory; the demo
//! program uploaded over HTTPS and built, running at 1 ms by default on a pinned SCHED_FIFO CPU) take
//! at the same time: HTTPS `GET /api/status` and `/api/runtime-logs` from keep-alive
//! connections, Editor-like debugger clients polling variables, Modbus TCP clients with
//! a share of writes, and (when asked for) python-snap7 S7 clients and OPC-UA clients
//! subscribing and reading. Meanwhile rt-core's wake-up latency is compared with cyclictest's on
//! the same CPU in the same windows (see `measure.rs`), with bootstrap intervals, and its
//! overruns are counted. Everything started is stopped at the end, on error and on Ctrl-C.

mod bundle;
mod loads;
mod measure;
mod report;
mod stack;

use anyhow::{Context, Result, bail};
use clap::Parser;
use loads::{Load, Target};
use openplc_benches::cyclictest::Cyclictest;
/// The HTTPS client (the library's), as `crate::https` for the loads.
pub(crate) use openplc_benches::https;
use openplc_benches::process;
use shared_abi::client::Reader;
use shared_abi::shm::monotonic_ns;
use stack::{Stack, StackConfig};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "full-load", about = "All interfaces under load at once; rt-core vs cyclictest in the same windows")]
pub struct Args {
    /// Seconds measured, cut into slices (the load runs longer: warm-up and 1 s between slices).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Seconds per slice (ABBA: rt-core alone, cyclictest beside it, …).
    #[arg(long, default_value_t = 3)]
    slice_seconds: u64,
    /// 12 s in 2 s slices (about 22 s of load).
    #[arg(long)]
    quick: bool,
    /// Seconds of load before the first slice.
    #[arg(long, default_value_t = 3)]
    warmup_seconds: u64,
    /// rt-core's CPU, and cyclictest's (default: the last CPU).
    #[arg(long)]
    cpu: Option<usize>,
    /// SCHED_FIFO priority of both.
    #[arg(long, default_value_t = 49)]
    priority: i32,
    /// The demo program's task period in ms (cyclictest runs at the same period).
    #[arg(long, default_value_t = 1)]
    period_ms: u32,
    /// Where cyclictest's wake-ups fall after rt-core's, in µs (default: 200 to 800, a
    /// different distance in each slice; 0 makes them collide, to see what that costs).
    #[arg(long)]
    phase_us: Option<u64>,
    /// HTTPS keep-alive connections, each alternating GET /api/status and /api/runtime-logs (0: none).
    #[arg(long, default_value_t = 50)]
    https_connections: usize,
    /// Editor-like debugger clients (0: none).
    #[arg(long, default_value_t = 10)]
    debugger_clients: u32,
    #[arg(long, default_value_t = 60)]
    debugger_vars: u32,
    #[arg(long, default_value_t = 50)]
    debugger_interval_ms: u32,
    /// Modbus TCP clients (0: none).
    #[arg(long, default_value_t = 20)]
    modbus_clients: u32,
    #[arg(long, default_value_t = 10)]
    modbus_write_percent: u32,
    /// S7 clients (python-snap7, 10 % writes; 0: none, the default).
    #[arg(long, default_value_t = 0)]
    s7_clients: u32,
    #[arg(long, default_value_t = 10)]
    s7_write_percent: u32,
    /// The S7 clients' driver (default: plugins/s7/bench/load.py).
    #[arg(long)]
    s7_load_py: Option<PathBuf>,
    #[arg(long, default_value = "python3")]
    python: String,
    /// OPC-UA clients, each subscribing to --opcua-vars variables and reading them in a loop
    /// (0: none; the program then gets that many more variables and a conf/opcua.json).
    #[arg(long, default_value_t = 0)]
    opcua_clients: u32,
    #[arg(long, default_value_t = 100)]
    opcua_vars: u32,
    /// The subscriptions' publishing interval (the server's cycle_time_ms).
    #[arg(long, default_value_t = 100)]
    opcua_interval_ms: u32,
    /// Afterwards, the same OPC-UA clients for the same time against an asyncua (Python)
    /// server with the same variables, standing in for upstream's server.
    #[arg(long)]
    opcua_compare_asyncua: bool,
    /// opcua-load (default: beside this executable).
    #[arg(long)]
    opcua_load: Option<PathBuf>,
    /// Browser-monitor pages (the live socket of `/`, every variable, the histogram and the
    /// log each; 0: none).
    #[arg(long, default_value_t = 0)]
    monitor_clients: u32,
    /// openplc-runtime (default: beside this executable).
    #[arg(long)]
    companion: Option<PathBuf>,
    /// openplc-rt (default: beside this executable).
    #[arg(long)]
    rt_binary: Option<PathBuf>,
    /// modbus-load (default: beside this executable).
    #[arg(long)]
    modbus_load: Option<PathBuf>,
    /// The debugger clients' driver (default: companion/debugger/bench/load.js).
    #[arg(long)]
    load_js: Option<PathBuf>,
    /// Where socket.io-client is installed (default: target/node-deps/node_modules).
    #[arg(long)]
    node_modules: Option<PathBuf>,
    #[arg(long, default_value = "node")]
    node: String,
    #[arg(long, default_value = "cyclictest")]
    cyclictest: String,
    /// Keep the work directory (data directory, logs, cyclictest histograms) and print its path.
    #[arg(long)]
    keep_dir: bool,
}

fn beside_this_exe(name: &str, given: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.exists() {
        bail!("{} is missing (cargo build --release --bins)", path.display());
    }
    Ok(path)
}

/// The load generators the options ask for.
fn loads(args: &Args) -> Result<Vec<Box<dyn Load>>> {
    let root = openplc_benches::repo_root();
    let mut out: Vec<Box<dyn Load>> = Vec::new();
    if args.https_connections > 0 {
        out.push(Box::new(loads::https::HttpsLoad {
            connections: args.https_connections,
            paths: vec!["/api/status", "/api/runtime-logs"],
        }));
    }
    if args.debugger_clients > 0 {
        out.push(Box::new(loads::debugger::DebuggerLoad {
            clients: args.debugger_clients,
            vars: args.debugger_vars,
            interval_ms: args.debugger_interval_ms,
            node: args.node.clone(),
            script: args.load_js.clone().unwrap_or_else(|| root.join("companion/debugger/bench/load.js")),
            node_modules: args.node_modules.clone().unwrap_or_else(|| root.join("target/node-deps/node_modules")),
        }));
    }
    if args.modbus_clients > 0 {
        out.push(Box::new(loads::modbus::ModbusLoad {
            clients: args.modbus_clients,
            write_percent: args.modbus_write_percent,
            binary: beside_this_exe("modbus-load", &args.modbus_load)?,
        }));
    }
    if args.s7_clients > 0 {
        out.push(Box::new(loads::s7::S7Load {
            clients: args.s7_clients,
            write_percent: args.s7_write_percent,
            python: args.python.clone(),
            script: args.s7_load_py.clone().unwrap_or_else(|| root.join("plugins/s7/bench/load.py")),
        }));
    }
    if args.opcua_clients > 0 {
        out.push(Box::new(loads::opcua::OpcuaLoad {
            clients: args.opcua_clients,
            vars: args.opcua_vars,
            interval_ms: args.opcua_interval_ms,
            binary: beside_this_exe("opcua-load", &args.opcua_load)?,
            compare_standin: args.opcua_compare_asyncua,
        }));
    }
    if args.monitor_clients > 0 {
        out.push(Box::new(loads::monitor::MonitorLoad { clients: args.monitor_clients }));
    }
    Ok(out)
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.seconds = 12;
        args.slice_seconds = 2;
    }
    process::install_interrupt_handler();
    if let Err(e) = run(&args) {
        eprintln!("full-load: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    let slices = (args.seconds / args.slice_seconds.max(1)) as usize;
    if slices < 2 || args.slice_seconds == 0 {
        bail!("--seconds must hold at least two slices of --slice-seconds");
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = args.cpu.unwrap_or(cpus - 1);
    let generators = loads(args)?;
    let mut work = tempfile::Builder::new().prefix("oplc-full-load").tempdir().context("temp dir")?;
    if args.keep_dir {
        work.disable_cleanup(true);
        eprintln!("full-load: working in {} (kept)", work.path().display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.max(2))
        .enable_all()
        .build()
        .context("tokio runtime")?;

    eprintln!("full-load: starting the companion and rt-core (CPU {cpu}, FIFO {}), uploading the demo", args.priority);
    let config = StackConfig {
        companion: beside_this_exe("openplc-runtime", &args.companion)?,
        rt_binary: beside_this_exe("openplc-rt", &args.rt_binary)?,
        cpu,
        priority: args.priority,
        period_ms: args.period_ms,
        modbus_max_connections: (args.modbus_clients as usize + 8).max(64),
        s7_max_connections: if args.s7_clients > 0 { args.s7_clients as usize + 8 } else { 0 },
        opcua: (args.opcua_clients > 0).then_some((args.opcua_vars, args.opcua_interval_ms)),
    };
    let mut stack = Stack::start(&config, work.path(), &runtime)?;
    let observer = stack.observe()?;
    let period_ns = observer.status().period_ns;
    let phase_ns = measure::deadline_phase_ns(&observer, period_ns)?;
    let distance = args.phase_us.map_or(measure::Distance::Spread, |us| measure::Distance::Fixed(us * 1000));
    let plan = measure::Plan::new(
        slices,
        args.slice_seconds,
        Duration::from_secs(args.warmup_seconds),
        period_ns,
        phase_ns,
        distance,
    );
    let run_for = Duration::from_nanos(plan.end_ns().saturating_sub(monotonic_ns())) + Duration::from_secs(1);
    let target = Target {
        api: stack.api.clone(),
        token: stack.token.clone(),
        modbus_port: stack.modbus_port,
        s7_port: stack.s7_port,
        opcua_port: stack.opcua_port,
        var_count: stack.var_count,
        runtime: runtime.handle().clone(),
        dir: work.path().to_path_buf(),
    };
    eprintln!(
        "full-load: load for {:.0} s; {slices} slices of {} s from {} s on; rt-core's deadlines at {} us in each ms",
        run_for.as_secs_f64(),
        args.slice_seconds,
        args.warmup_seconds,
        phase_ns / 1000,
    );
    let before = observer.stats()?;
    let running: Vec<Box<dyn loads::Running>> =
        generators.iter().map(|g| g.start(&target, run_for)).collect::<Result<_>>()?;

    let ct = Cyclictest {
        binary: args.cyclictest.clone(),
        cpu: Some(cpu),
        priority: args.priority,
        interval_us: u64::from(args.period_ms) * 1000,
    };
    let measured = measure::run(&observer, &ct, &plan, work.path(), report::slice_line)?;
    let mut reports = Vec::new();
    for r in running {
        reports.extend(r.finish()?);
    }
    let after = observer.stats()?;
    stack.health()?;
    report::print(&report::Summary {
        args,
        cpu,
        slices: &measured,
        interfaces: &reports,
        before: &before,
        after: &after,
        run_for,
    });
    Ok(())
}
