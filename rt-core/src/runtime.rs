//! `openplc-rt run`: sets the process up for real time and runs the three threads.
//!
//! - main: locks memory, holds `/dev/cpu_dma_latency`, keeps itself and the helper threads
//!   off the scan CPU, then waits for the scan thread to end.
//! - scan: pinned, SCHED_FIFO (raised last, so nothing inherits it), loops on
//!   `clock_nanosleep(TIMER_ABSTIME)` and `Engine::run_cycle`.
//! - loader: normal priority, loads and frees programs (`loader`).
//! - watchdog: normal priority, aborts a program that overstays its scan (`watchdog`).

use crate::engine::{Engine, EngineConfig, loader_queues};
use crate::loader::{self, Log};
use crate::{guard, sys, watchdog};
use shared_abi::layout::{RT_DMA_LATENCY, RT_FIFO, RT_ISOLATED_CPU, RT_MLOCKED, RT_PINNED, SharedMemory};
use shared_abi::msg::LogLevel;
use shared_abi::shm::RtMapping;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the scan thread runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuChoice {
    /// An isolated CPU when the kernel has one, otherwise the last allowed CPU.
    Auto,
    /// Leave it to the scheduler.
    None,
    Cpu(usize),
}

impl std::str::FromStr for CpuChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(CpuChoice::Auto),
            "none" => Ok(CpuChoice::None),
            n => {
                n.parse().map(CpuChoice::Cpu).map_err(|_| format!("--cpu takes auto, none or a CPU number, not {n:?}"))
            }
        }
    }
}

pub struct RunOptions {
    pub shm_name: String,
    pub cpu: CpuChoice,
    pub priority: i32,
    /// 0: automatic (ten periods, at least 500 ms).
    pub watchdog_ms: u64,
    pub idle_period_ns: u64,
    pub load: Option<String>,
    pub start: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    STOP.store(true, Ordering::Release);
}

fn install_terminate_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_terminate as *const () as libc::sighandler_t) };
    }
}

/// Picks the scan CPU and says why.
fn choose_cpu(choice: CpuChoice) -> Result<(Option<usize>, bool, String), String> {
    let allowed = sys::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    let isolated = sys::isolated_cpus();
    match choice {
        CpuChoice::None => Ok((None, false, "not pinned (--cpu none)".into())),
        CpuChoice::Cpu(c) => {
            // An isolated CPU is usually outside the default affinity mask; allow it.
            if !allowed.contains(&c) && !isolated.contains(&c) {
                return Err(format!("--cpu {c}: CPU {c} is not available to this process (allowed: {allowed:?})"));
            }
            Ok((Some(c), isolated.contains(&c), format!("CPU {c} (--cpu)")))
        }
        CpuChoice::Auto => {
            if let Some(&c) = isolated.last() {
                return Ok((Some(c), true, format!("isolated CPU {c} (from /sys/devices/system/cpu/isolated)")));
            }
            match allowed.last() {
                Some(&c) if allowed.len() > 1 => Ok((
                    Some(c),
                    false,
                    format!(
                        "CPU {c}: no isolated CPU, so the last allowed one (boot with isolcpus= for better determinism)"
                    ),
                )),
                _ => Ok((None, false, "not pinned: only one CPU is available".into())),
            }
        }
    }
}

pub fn run(opts: RunOptions) -> Result<(), String> {
    guard::install();
    install_terminate_handlers();
    let mapping = RtMapping::open(&opts.shm_name).map_err(|e| e.to_string())?;
    let created = mapping.created();
    // The mapping lives as long as the process: the threads below borrow it for 'static.
    let mapping: &'static RtMapping = Box::leak(Box::new(mapping));
    let shm: &'static SharedMemory = mapping.shm();
    // SAFETY: this is the only Log of the process; it moves into the loader thread below.
    let mut log = unsafe { Log::new(&shm.logs) };
    log.line(
        LogLevel::Info,
        &format!(
            "openplc-rt {} started on {} ({})",
            env!("CARGO_PKG_VERSION"),
            mapping.path().display(),
            if created { "new shared memory" } else { "took over the shared memory in place" }
        ),
    );

    let mut flags = 0;
    match sys::lock_memory() {
        Ok(()) => flags |= RT_MLOCKED,
        Err(e) => log.line(LogLevel::Warning, &format!("mlockall failed ({e}): page faults can delay scans; run as root or with CAP_IPC_LOCK / LimitMEMLOCK=infinity")),
    }
    let _dma = match sys::hold_zero_dma_latency() {
        Ok(f) => {
            flags |= RT_DMA_LATENCY;
            Some(f)
        }
        Err(e) => {
            log.line(
                LogLevel::Warning,
                &format!("cannot hold /dev/cpu_dma_latency at 0 ({e}): idle CPUs may sleep deeply and wake late"),
            );
            None
        }
    };
    let (cpu, isolated, why) = choose_cpu(opts.cpu)?;
    log.line(LogLevel::Info, &format!("scan thread CPU: {why}"));
    if sys::is_preempt_rt() {
        log.line(LogLevel::Info, "kernel is PREEMPT_RT");
    } else {
        log.line(
            LogLevel::Warning,
            "kernel is not PREEMPT_RT: worst-case latency is not bounded (see scripts/rt-check)",
        );
    }
    if let Some(c) = cpu {
        // Keep main, loader and watchdog (which inherit this mask) off the scan CPU.
        let others: Vec<usize> = sys::allowed_cpus().unwrap_or_default().into_iter().filter(|&o| o != c).collect();
        if !others.is_empty() {
            let _ = sys::set_affinity(&others);
        }
        if isolated {
            flags |= RT_ISOLATED_CPU;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let (link, ends) = loader_queues();
    let mut engine = Engine::new(shm, link, EngineConfig { idle_period_ns: opts.idle_period_ns });
    shm.header.rt_boot_ns.store(sys::now_ns(), Ordering::Release);
    if let Some(path) = &opts.load {
        engine.request_initial_load(path, opts.start);
    }

    let loader_stop = stop.clone();
    let loader = std::thread::Builder::new()
        .name("rt-loader".into())
        .spawn(move || loader::run(shm, ends, log, loader_stop))
        .map_err(|e| format!("cannot start the loader thread: {e}"))?;
    let watchdog_stop = stop.clone();
    let watchdog_ms = opts.watchdog_ms;
    let watchdog = std::thread::Builder::new()
        .name("rt-watchdog".into())
        .spawn(move || watchdog::run(shm, watchdog_ms, watchdog_stop))
        .map_err(|e| format!("cannot start the watchdog thread: {e}"))?;

    let priority = opts.priority;
    let scan = std::thread::Builder::new()
        .name("rt-scan".into())
        .stack_size(4 << 20)
        .spawn(move || scan_thread(engine, shm, cpu, priority, flags))
        .map_err(|e| format!("cannot start the scan thread: {e}"))?;
    let scan_result = scan.join();
    stop.store(true, Ordering::Release);
    let _ = loader.join();
    let _ = watchdog.join();
    scan_result.map_err(|_| "the scan thread panicked".to_string())
}

fn scan_thread(mut engine: Box<Engine>, shm: &'static SharedMemory, cpu: Option<usize>, priority: i32, mut flags: u32) {
    let h = &shm.header;
    h.scan_tid.store(sys::gettid(), Ordering::Release);
    if let Some(c) = cpu {
        match sys::set_affinity(&[c]) {
            Ok(()) => {
                flags |= RT_PINNED;
                h.scan_cpu.store(c as i32, Ordering::Release);
            }
            Err(e) => eprintln!("openplc-rt: [WARNING] cannot pin the scan thread to CPU {c}: {e}"),
        }
    }
    let _ = sys::set_timer_slack(1);
    sys::prefault_stack(1 << 20);
    // Last step before the loop, so no helper thread ever inherits the priority.
    match sys::set_fifo(priority) {
        Ok(()) => {
            flags |= RT_FIFO;
            h.scan_priority.store(priority, Ordering::Release);
        }
        Err(e) => eprintln!(
            "openplc-rt: [WARNING] SCHED_FIFO priority {priority} refused ({e}): the scan runs at normal priority and WILL jitter; run as root or grant CAP_SYS_NICE / LimitRTPRIO"
        ),
    }
    h.rt_flags.store(flags, Ordering::Release);

    let mut deadline = sys::now_ns() + engine.period_ns();
    loop {
        sys::sleep_until(deadline);
        let wake = sys::now_ns();
        let end = engine.run_cycle(deadline, wake);
        if end.shutdown || STOP.load(Ordering::Acquire) {
            break;
        }
        deadline = end.next_deadline_ns;
    }
    // Back to normal priority before tearing down (the engine's drop publishes safe outputs).
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is this thread; SCHED_OTHER with priority 0 is always valid.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    drop(engine);
}
