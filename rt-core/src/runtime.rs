//! `openplc-rt run`: sets the process up for real time and runs the threads.
//!
//! - main: locks memory, holds `/dev/cpu_dma_latency`, gives up root (`--user`), keeps
//!   itself and the helper threads off the scan CPU, then waits for the scan thread to end
//!   or for a restart in place (`restart`), which it carries out.
//! - scan: pinned, SCHED_FIFO (raised last, so nothing inherits it), loops on
//!   `clock_nanosleep(TIMER_ABSTIME)` and `Engine::run_cycle`.
//! - loader: normal priority, loads and unloads programs (`loader`).
//! - watchdog: normal priority, aborts a program that overstays its scan (`watchdog`).

use crate::engine::{Engine, EngineConfig, EngineRings};
use crate::loader::{self, Log};
use crate::privilege::{self, PrivilegeError};
use crate::queue::loader_queues;
use crate::restart::{self, ExecPlan, RestartNote};
use crate::tasks::TaskPolicy;
use crate::{guard, sys, watchdog};
use shared_abi::layout::{CpuChoice, RT_DMA_LATENCY, RT_FIFO, RT_ISOLATED_CPU, RT_MLOCKED, RT_PINNED, SharedMemory};
use shared_abi::msg::LogLevel;
use shared_abi::shm::{RtMapping, ShmError, shm_path};
use shared_abi::sizes::{ImageRequest, ImageSizes};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The scan thread's stack: the engine's frames and the program's own (a MatIEC or
/// STruC++ program keeps its instances in static storage; its calls nest a few levels).
/// `mlockall` keeps every page of it resident, so it is sized for need, not by default.
pub const SCAN_STACK_BYTES: usize = 1 << 20;
/// How much of it is touched before the loop (all of it but a margin for what the thread
/// start put at its top), for when `mlockall` was refused.
const SCAN_STACK_PREFAULT_BYTES: usize = SCAN_STACK_BYTES - (128 << 10);
/// The watchdog only sleeps, reads the shared memory and signals.
const WATCHDOG_STACK_BYTES: usize = 128 << 10;

pub struct RunOptions {
    pub shm_name: String,
    pub cpu: CpuChoice,
    pub priority: i32,
    /// Task name → CPU for programs whose tasks run on threads (`--task-cpu NAME=CPU`);
    /// other tasks run on the scan CPU.
    pub task_cpus: Vec<(String, usize)>,
    /// 0: automatic (ten periods, at least 500 ms).
    pub watchdog_ms: u64,
    pub idle_period_us: u64,
    pub load: Option<String>,
    pub start: bool,
    /// Become this user once real time is set up.
    pub user: Option<String>,
    /// What a restart in place hands over (`None` on a normal start).
    pub inherited: Option<Inherited>,
}

/// What crosses a restart in place: descriptors and the reason.
pub struct Inherited {
    pub shm_fd: RawFd,
    pub dma_fd: Option<RawFd>,
    pub note: RestartNote,
}

/// Why `openplc-rt run` could not run.
#[derive(Debug)]
pub enum RunError {
    Shm(ShmError),
    /// The shared memory's ring ends were already taken (cannot happen in `run`).
    EndsTaken,
    Cpu(String),
    Privilege(PrivilegeError),
    Thread(&'static str, std::io::Error),
    ScanPanicked,
    Exec(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Shm(e) => write!(f, "{e}"),
            RunError::EndsTaken => f.write_str("internal: the shared memory's ring ends were already taken"),
            RunError::Cpu(m) => f.write_str(m),
            RunError::Privilege(e) => write!(f, "{e}"),
            RunError::Thread(what, e) => write!(f, "cannot start the {what} thread: {e}"),
            RunError::ScanPanicked => f.write_str("the scan thread panicked"),
            RunError::Exec(e) => write!(f, "cannot prepare the restart in place: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Picks the scan CPU and says why.
fn choose_cpu(choice: CpuChoice) -> Result<(Option<usize>, bool, String), RunError> {
    let allowed = sys::allowed_cpus().map_err(|e| RunError::Cpu(format!("sched_getaffinity: {e}")))?;
    let isolated = sys::isolated_cpus();
    match choice {
        CpuChoice::None => Ok((None, false, "not pinned (--cpu none)".into())),
        CpuChoice::Cpu(c) => {
            // An isolated CPU is usually outside the default affinity mask; allow it.
            if !allowed.contains(&c) && !isolated.contains(&c) {
                return Err(RunError::Cpu(format!(
                    "--cpu {c}: CPU {c} is not available to this process (allowed: {allowed:?})"
                )));
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

/// The command line a restart in place runs again (without `--load`: the program comes
/// back through the note, or not at all).
fn restart_args(opts: &RunOptions, shm_fd: RawFd, dma_fd: Option<RawFd>) -> Vec<String> {
    let mut args = vec![
        "--shm".to_string(),
        opts.shm_name.clone(),
        "run".into(),
        "--cpu".into(),
        opts.cpu.to_string(),
        "--priority".into(),
        opts.priority.to_string(),
        "--watchdog-ms".into(),
        opts.watchdog_ms.to_string(),
        "--idle-period-us".into(),
        opts.idle_period_us.to_string(),
        "--inherit-shm-fd".into(),
        shm_fd.to_string(),
    ];
    if let Some(user) = &opts.user {
        args.extend(["--user".into(), user.clone()]);
    }
    for (name, cpu) in &opts.task_cpus {
        args.extend(["--task-cpu".into(), format!("{name}={cpu}")]);
    }
    if let Some(fd) = dma_fd {
        args.extend(["--inherit-dma-fd".into(), fd.to_string()]);
    }
    args
}

pub fn run(opts: RunOptions) -> Result<(), RunError> {
    sys::limit_allocator();
    guard::install();
    if let Some(i) = &opts.inherited {
        for fd in [Some(i.shm_fd), i.dma_fd, i.note.resume_fd].into_iter().flatten() {
            sys::set_cloexec(fd);
        }
    }
    let mapping = match &opts.inherited {
        // SAFETY: the descriptor crossed execve from the rt-core this process replaces; no
        // mapping of this image uses it.
        Some(inherited) => unsafe {
            RtMapping::inherit(OwnedFd::from_raw_fd(inherited.shm_fd), shm_path(&opts.shm_name))
        },
        None => RtMapping::open(&opts.shm_name),
    }
    .map_err(RunError::Shm)?;
    let created = mapping.created();
    // The mapping lives as long as the process: the threads below borrow it for 'static.
    let mapping: &'static RtMapping = Box::leak(Box::new(mapping));
    let shm: &'static SharedMemory = mapping.shm();
    let (rings, logs) = EngineRings::split(mapping.take_ends().ok_or(RunError::EndsTaken)?);
    let mut log = Log::new(logs);
    log.line(
        LogLevel::Info,
        &format!(
            "openplc-rt {} started on {} ({})",
            env!("CARGO_PKG_VERSION"),
            mapping.path().display(),
            match (&opts.inherited, created) {
                (Some(_), _) => "restarted in place, same pid",
                (None, true) => "new shared memory",
                (None, false) => "took over the shared memory in place",
            }
        ),
    );

    let mut flags = 0;
    match sys::lock_memory() {
        Ok(()) => flags |= RT_MLOCKED,
        Err(e) => log.line(LogLevel::Warning, &format!("mlockall failed ({e}): page faults can delay scans; run as root or with CAP_IPC_LOCK / LimitMEMLOCK=infinity")),
    }
    // No program yet: none of the image tables' pages are needed until one is loaded.
    if let Err(e) = crate::residency::release_shared_tables(shm, &ImageSizes::ZERO, created) {
        log.line(LogLevel::Warning, &format!("the image tables' unused pages stay resident: {e}"));
    }
    let inherited_dma = opts.inherited.as_ref().and_then(|i| i.dma_fd);
    let dma = match inherited_dma {
        // SAFETY: the descriptor crossed execve from the rt-core this process replaces.
        Some(fd) => Ok(unsafe { File::from_raw_fd(fd) }),
        None => sys::hold_zero_dma_latency(),
    };
    let dma = match dma {
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
    if let Some(user) = &opts.user {
        let account = privilege::lookup(user).map_err(RunError::Privilege)?;
        privilege::drop_to(account).map_err(RunError::Privilege)?;
        log.line(
            LogLevel::Info,
            &format!("running as user {user} (uid {}), with CAP_SYS_NICE and CAP_IPC_LOCK only", account.uid),
        );
    }
    let plan = ExecPlan::install(
        restart_args(&opts, mapping.lock_fd().as_raw_fd(), dma.as_ref().map(|f| f.as_raw_fd())),
        [Some(mapping.lock_fd().as_raw_fd()), dma.as_ref().map(|f| f.as_raw_fd())].into_iter().flatten().collect(),
    )
    .map_err(|e| RunError::Exec(std::io::Error::other(e)))?;

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

    // A restart in place reloads the running program with the sizes it had (the engine
    // clears the published program information below).
    let live_sizes = {
        let mut info: shared_abi::debug::ProgramInfo = bytemuck::Zeroable::zeroed();
        match shm.program.read(&mut info, shared_abi::seqlock::READER_ATTEMPTS) {
            Ok(_) => info.image_sizes,
            Err(_) => shared_abi::sizes::ImageSizes::ZERO,
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (link, ends) = loader_queues();
    let mut engine = Engine::new(
        shm,
        rings,
        link,
        EngineConfig { idle_period_ns: opts.idle_period_us.clamp(100, 10_000_000) * 1000 },
    );
    shm.header.rt_boot_ns.store(sys::now_ns(), Ordering::Release);
    match &opts.inherited {
        Some(Inherited { note, .. }) => {
            log.line(LogLevel::Error, &format!("rt-core restarted itself in place: {}", note.describe()));
            match note.resume_fd.filter(|_| note.kind.resumes_program()) {
                Some(fd) => {
                    let image = ImageRequest { configured: live_sizes, square: false };
                    engine.request_initial_load(&format!("/proc/self/fd/{fd}"), note.resume_start, true, image);
                }
                None => engine.enter_error(),
            }
        }
        None => {
            if let Some(path) = &opts.load {
                engine.request_initial_load(path, opts.start, false, ImageRequest::FROM_PROGRAM);
            }
        }
    }

    let loader_stop = stop.clone();
    let task_policy = TaskPolicy { scan_priority: opts.priority, cpu, task_cpus: opts.task_cpus.clone() };
    let loader = std::thread::Builder::new()
        .name("rt-loader".into())
        .stack_size(loader::LOADER_STACK_BYTES)
        .spawn(move || loader::run_with(shm, ends, log, loader_stop, task_policy))
        .map_err(|e| RunError::Thread("loader", e))?;
    let watchdog_stop = stop.clone();
    let watchdog_ms = opts.watchdog_ms;
    let watchdog = std::thread::Builder::new()
        .name("rt-watchdog".into())
        .stack_size(WATCHDOG_STACK_BYTES)
        .spawn(move || watchdog::run(shm, watchdog_ms, watchdog_stop))
        .map_err(|e| RunError::Thread("watchdog", e))?;

    let priority = opts.priority;
    let scan = std::thread::Builder::new()
        .name("rt-scan".into())
        .stack_size(SCAN_STACK_BYTES)
        .spawn(move || scan_thread(engine, shm, cpu, priority, flags))
        .map_err(|e| RunError::Thread("scan", e))?;
    // Wait for the end, or carry out a restart in place: nothing here allocates or locks
    // from the moment a restart is requested (the faulted thread may hold a libc lock).
    loop {
        if let Some(note) = restart::pending() {
            let e = plan.exec(note);
            eprintln!("openplc-rt: [ERROR] the restart in place failed ({e}); exiting (43) for a restart");
            // SAFETY: ends the process at once, running nothing of the threads' state.
            unsafe { libc::_exit(43) };
        }
        if scan.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let scan_result = scan.join();
    stop.store(true, Ordering::Release);
    let _ = loader.join();
    let _ = watchdog.join();
    drop(dma);
    scan_result.map_err(|_| RunError::ScanPanicked)
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
    sys::prefault_stack(SCAN_STACK_PREFAULT_BYTES);
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
        if end.shutdown || guard::stop_requested() {
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
