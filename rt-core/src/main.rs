//! `openplc-rt`: the real-time scan engine (`run`, from the `rt_core` library) and its
//! control tool (every other subcommand, in this binary's `ctl` module tree, which the
//! real-time library does not contain).

mod ctl;

use clap::{Parser, Subcommand};
use rt_core::restart::RestartNote;
use rt_core::runtime::{self, Inherited, RunOptions};
use shared_abi::layout::CpuChoice;
use shared_abi::msg::Command;
use shared_abi::shm::DEFAULT_NAME;

#[derive(Parser)]
#[command(name = "openplc-rt", version, about = "OpenPLC real-time scan engine and its control tool")]
struct Cli {
    /// Shared-memory name (/dev/shm/NAME), or a path [default: openplc-rt, or the one of
    /// --data-dir].
    #[arg(long, global = true, env = "OPENPLC_RT_SHM")]
    shm: Option<String>,
    /// The companion's data directory: use the shared memory it names after it
    /// (openplc-rt-<hash>, unless its settings name one).
    #[arg(long, global = true, conflicts_with = "shm")]
    data_dir: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

fn parse_task_cpu(s: &str) -> Result<(String, usize), String> {
    let (name, cpu) = s.split_once('=').ok_or_else(|| format!("expected NAME=CPU, not {s:?}"))?;
    let cpu = cpu.trim().parse().map_err(|_| format!("{cpu:?} is not a CPU number"))?;
    if name.trim().is_empty() {
        return Err(format!("expected NAME=CPU, not {s:?}"));
    }
    Ok((name.trim().to_string(), cpu))
}

fn parse_cpu(s: &str) -> Result<CpuChoice, String> {
    s.parse().map_err(|e| format!("{e}, not {s:?}"))
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the scan engine in the foreground until SIGTERM/SIGINT or a shutdown command.
    Run {
        /// Scan thread CPU: auto (an isolated CPU, else the last one), none, or a number.
        #[arg(long, default_value = "auto", value_parser = parse_cpu)]
        cpu: CpuChoice,
        /// SCHED_FIFO priority of the scan thread (below PREEMPT_RT's IRQ threads at 50).
        #[arg(long, default_value_t = 49, value_parser = clap::value_parser!(i32).range(1..=99))]
        priority: i32,
        /// CPU of an IEC task that runs on a thread of its own, as NAME=CPU (repeatable; for
        /// hosts with several isolated CPUs). Other tasks run on the scan CPU.
        #[arg(long = "task-cpu", value_parser = parse_task_cpu)]
        task_cpu: Vec<(String, usize)>,
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
        /// Once real time is set up as root, run as this user, keeping only CAP_SYS_NICE
        /// and CAP_IPC_LOCK: program code then cannot read what only root may.
        #[arg(long)]
        user: Option<String>,
        /// Set by a restart in place: the shared-memory file's descriptor (lock held).
        #[arg(long, hide = true, requires = "restart_note")]
        inherit_shm_fd: Option<i32>,
        /// Set by a restart in place: the /dev/cpu_dma_latency descriptor.
        #[arg(long, hide = true, requires = "inherit_shm_fd")]
        inherit_dma_fd: Option<i32>,
        /// Set by a restart in place: why it happened.
        #[arg(long, hide = true, requires = "inherit_shm_fd")]
        restart_note: Option<String>,
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
        /// The histogram of this IEC task (a program whose tasks run on threads of their own).
        #[arg(long)]
        task: Option<String>,
    },
    /// Per-task statistics of a program whose IEC tasks run on threads of their own.
    Tasks {
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
    /// Write a debug variable once (not a force), at the start of the next scan.
    SetVar { var: u32, value: String },
    /// Release a forced variable, or all with --all.
    Unforce {
        #[arg(required_unless_present = "all")]
        var: Option<u32>,
        #[arg(long)]
        all: bool,
    },
    /// Ask rt-core to exit.
    Shutdown,
    /// Load a program library in this throwaway process exactly as rt-core would (its
    /// constructors, bind with a scratch image, init, its description, then its
    /// destructors), without touching a running rt-core: the companion runs this before a
    /// load, so a library that ends its process while loading never reaches rt-core.
    Check { path: String },
}

/// The shared memory of the companion using `dir`: the `shm` of its settings.json when it
/// names one, else the name derived from the directory (as the companion derives it).
fn shm_of_data_dir(dir: &std::path::Path) -> String {
    std::fs::read(dir.join("settings.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("shm").and_then(|s| s.as_str()).map(String::from))
        .unwrap_or_else(|| shared_abi::shm::name_for_data_dir(dir))
}

fn main() {
    let cli = Cli::parse();
    let shm_name = match (&cli.shm, &cli.data_dir) {
        (Some(name), _) => name.clone(),
        (None, Some(dir)) => shm_of_data_dir(dir),
        (None, None) => DEFAULT_NAME.to_string(),
    };
    let shm = shm_name.as_str();
    let result = match cli.command {
        Cmd::Run {
            cpu,
            priority,
            task_cpu,
            watchdog_ms,
            idle_period_us,
            load,
            start,
            user,
            inherit_shm_fd,
            inherit_dma_fd,
            restart_note,
        } => {
            let inherited = match (inherit_shm_fd, restart_note.as_deref().map(RestartNote::parse)) {
                (Some(shm_fd), Some(Some(note))) => Some(Inherited { shm_fd, dma_fd: inherit_dma_fd, note }),
                (None, None) => None,
                _ => {
                    eprintln!("openplc-rt: a restart in place passed an unreadable note");
                    std::process::exit(2);
                }
            };
            let opts = RunOptions {
                shm_name: shm_name.clone(),
                cpu,
                priority,
                task_cpus: task_cpu,
                watchdog_ms,
                idle_period_us,
                load,
                start,
                user,
                inherited,
            };
            runtime::run(opts).map_err(ctl::CtlError::from)
        }
        Cmd::Status { json } => ctl::report::status(shm, json),
        Cmd::Load { path, start, timeout_ms } => ctl::load(shm, &path, start, timeout_ms),
        Cmd::Start => ctl::simple(shm, Command::Start, "start"),
        Cmd::Stop => ctl::simple(shm, Command::Stop, "stop"),
        Cmd::Unload => ctl::simple(shm, Command::Unload, "unload"),
        Cmd::Stats { json } => ctl::report::stats(shm, json),
        Cmd::Histogram { json, task: None } => ctl::report::histogram(shm, json),
        Cmd::Histogram { json, task: Some(name) } => ctl::tasks::histogram(shm, &name, json),
        Cmd::Tasks { json } => ctl::tasks::tasks(shm, json),
        Cmd::ResetStats => ctl::simple(shm, Command::ResetStats, "reset-stats"),
        Cmd::Set { addr, value } => ctl::points::set_input(shm, &addr, &value),
        Cmd::Write { addr, value } => ctl::points::write_point(shm, &addr, &value),
        Cmd::Read { addrs } => ctl::points::read(shm, &addrs),
        Cmd::Watch { vars, count, interval_ms } => ctl::vars::watch(shm, &vars, count, interval_ms),
        Cmd::Force { var, value } => ctl::vars::force(shm, var, &value),
        Cmd::SetVar { var, value } => ctl::vars::set_var(shm, var, &value),
        Cmd::Unforce { var, all } => ctl::vars::unforce(shm, if all { None } else { var }),
        Cmd::Shutdown => ctl::simple(shm, Command::Shutdown, "shutdown"),
        Cmd::Check { path } => ctl::check(&path),
    };
    match result {
        Ok(()) => {}
        // `openplc-rt stats | head -1`: the reader went away; nothing more to say.
        Err(ctl::CtlError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("openplc-rt: {e}");
            std::process::exit(1);
        }
    }
}
