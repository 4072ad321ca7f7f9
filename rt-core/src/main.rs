//! `openplc-rt`: the real-time scan engine (`run`) and its control tool (everything else).

use clap::{Parser, Subcommand};
use rt_core::ctl;
use rt_core::runtime::{self, CpuChoice, RunOptions};
use shared_abi::msg::Command;
use shared_abi::shm::DEFAULT_NAME;

#[derive(Parser)]
#[command(name = "openplc-rt", version, about = "OpenPLC real-time scan engine and its control tool")]
struct Cli {
    /// Shared-memory name (/dev/shm/NAME), or a path.
    #[arg(long, global = true, env = "OPENPLC_RT_SHM", default_value = DEFAULT_NAME)]
    shm: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the scan engine in the foreground until SIGTERM/SIGINT or a shutdown command.
    Run {
        /// Scan thread CPU: auto (an isolated CPU, else the last one), none, or a number.
        #[arg(long, default_value = "auto")]
        cpu: CpuChoice,
        /// SCHED_FIFO priority of the scan thread (below PREEMPT_RT's IRQ threads at 50).
        #[arg(long, default_value_t = 49, value_parser = clap::value_parser!(i32).range(1..=99))]
        priority: i32,
        /// Abort a scan running longer than this (0: ten periods, at least 500 ms).
        #[arg(long, default_value_t = 0)]
        watchdog_ms: u64,
        /// Loop period while no program is loaded.
        #[arg(long, default_value_t = 10_000)]
        idle_period_us: u64,
        /// Load this program library at start.
        #[arg(long)]
        load: Option<String>,
        /// Start the program loaded with --load.
        #[arg(long, requires = "load")]
        start: bool,
    },
    /// Show the PLC state, the program and the real-time set-up.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Load a program library (built with a runtime adapter) and swap it in.
    Load {
        path: String,
        /// Run it right away.
        #[arg(long)]
        start: bool,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Run the loaded program.
    Start,
    /// Stop the program (outputs go to zero).
    Stop,
    /// Drop the program.
    Unload,
    /// Scan statistics (µs).
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// The wake-up latency histogram, in cyclictest's format.
    Histogram {
        #[arg(long)]
        json: bool,
    },
    /// Zero the statistics and the histogram.
    ResetStats,
    /// Set an input point, e.g. `set %IX0.0 1`.
    Set { addr: String, value: String },
    /// Write an output or memory point (applied at the next cycle), e.g. `write %MW3 42`.
    Write { addr: String, value: String },
    /// Read output and memory points, e.g. `read %QX0.0 %QW0`.
    Read {
        #[arg(required = true)]
        addrs: Vec<String>,
    },
    /// Print debug variables' values (by debug index) as the program runs.
    Watch {
        #[arg(required = true)]
        vars: Vec<u32>,
        /// Stop after this many samples (0: forever).
        #[arg(long, default_value_t = 1)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
    },
    /// Force a debug variable: numbers, true/false, reals, durations (500ms) or text.
    Force { var: u32, value: String },
    /// Release a forced variable, or all with --all.
    Unforce {
        #[arg(required_unless_present = "all")]
        var: Option<u32>,
        #[arg(long)]
        all: bool,
    },
    /// Ask rt-core to exit.
    Shutdown,
    /// Open a program library in this throwaway process (its constructors run) and check
    /// its ABI table, without touching a running rt-core: the companion runs this before a
    /// load, so a library that crashes while loading never reaches the real-time process.
    Check { path: String },
}

fn main() {
    let cli = Cli::parse();
    let shm = cli.shm.as_str();
    let result = match cli.command {
        Cmd::Run { cpu, priority, watchdog_ms, idle_period_us, load, start } => runtime::run(RunOptions {
            shm_name: cli.shm.clone(),
            cpu,
            priority,
            watchdog_ms,
            idle_period_ns: idle_period_us.clamp(100, 10_000_000) * 1000,
            load,
            start,
        }),
        Cmd::Status { json } => ctl::status(shm, json),
        Cmd::Load { path, start, timeout_ms } => ctl::load(shm, &path, start, timeout_ms),
        Cmd::Start => ctl::simple(shm, Command::Start, "start"),
        Cmd::Stop => ctl::simple(shm, Command::Stop, "stop"),
        Cmd::Unload => ctl::simple(shm, Command::Unload, "unload"),
        Cmd::Stats { json } => ctl::stats(shm, json),
        Cmd::Histogram { json } => ctl::histogram(shm, json),
        Cmd::ResetStats => ctl::simple(shm, Command::ResetStats, "reset-stats"),
        Cmd::Set { addr, value } => ctl::set_input(shm, &addr, &value),
        Cmd::Write { addr, value } => ctl::write_point(shm, &addr, &value),
        Cmd::Read { addrs } => ctl::read(shm, &addrs),
        Cmd::Watch { vars, count, interval_ms } => ctl::watch(shm, &vars, count, interval_ms),
        Cmd::Force { var, value } => ctl::force(shm, var, &value),
        Cmd::Unforce { var, all } => ctl::unforce(shm, if all { None } else { var }),
        Cmd::Shutdown => ctl::simple(shm, Command::Shutdown, "shutdown"),
        Cmd::Check { path } => ctl::check(&path),
    };
    if let Err(message) = result {
        eprintln!("openplc-rt: {message}");
        std::process::exit(1);
    }
}
