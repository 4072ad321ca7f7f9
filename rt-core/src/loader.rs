//! The loader thread: a normal-priority thread that does everything about programs the scan
//! thread must not do. It loads libraries (file I/O, dlopen, allocation, the program's own
//! init), reports the outcome in `load_result` and the log ring, hands good programs to the
//! scan thread, and unloads the ones the scan thread retires.
//!
//! After a fault that needs a restart in place (see `restart`) it touches nothing more: the
//! dynamic loader's lock may be held, and the main thread replaces the process shortly.

use crate::program::{LoadedProgram, Migration, RetainSource, WarmStart};
use crate::queue::{LoaderEnds, LoaderReply, LoaderRequest};
use crate::restart::{self, RestartKind};
use crate::tasks::{self, TaskPolicy};
use shared_abi::debug::{ForceTable, LoadOutcome, fill_text};
use shared_abi::layout::SharedMemory;
use shared_abi::migrate::MigratePlan;
use shared_abi::msg::{LogLevel, LogLine};
use shared_abi::retain::RetainImage;
use shared_abi::shm::LogProducer;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The loader thread's stack: it runs program code too (constructors, `init`, the
/// description), so it gets what the scan thread gets. `openplc-rt check` loads on a thread
/// of the same size, so a program that needs more fails the check, not the real load.
pub const LOADER_STACK_BYTES: usize = crate::runtime::SCAN_STACK_BYTES;

/// How often the loader looks for work. Loads are rare; a millisecond is invisible next to
/// dlopen, and polling keeps every syscall off the scan thread.
const POLL: Duration = Duration::from_millis(1);

/// The single producer of the log ring: the loader thread, or main before it starts.
pub struct Log {
    ring: LogProducer<'static>,
}

impl Log {
    /// Takes rt-core's log producer (from `RtMapping::take_ends`, so it is the only one).
    pub fn new(ring: LogProducer<'static>) -> Log {
        Log { ring }
    }

    /// Writes to stderr and, when there is room, to the log ring for the companion.
    pub fn line(&mut self, level: LogLevel, text: &str) {
        eprintln!("openplc-rt: [{}] {text}", level.as_str());
        let _ = self.ring.push(&LogLine::new(level, text));
    }
}

/// Runs until `stop` is set; task threads at normal priority, not pinned.
pub fn run(shm: &'static SharedMemory, ends: LoaderEnds, log: Log, stop: Arc<AtomicBool>) {
    run_with(shm, ends, log, stop, TaskPolicy::default());
}

/// Runs until `stop` is set, starting the task threads of a multi-task program by `policy`.
pub fn run_with(
    shm: &'static SharedMemory,
    mut ends: LoaderEnds,
    mut log: Log,
    stop: Arc<AtomicBool>,
    policy: TaskPolicy,
) {
    while !stop.load(Ordering::Acquire) {
        if restart::pending().is_some() {
            // The process is about to be replaced; touch nothing that might need a lock.
            std::thread::sleep(POLL);
            continue;
        }
        let mut idle = true;
        while let Ok(request) = ends.requests.pop() {
            idle = false;
            match request {
                LoaderRequest::Load { seq, path, start, warm, online, program_gen, image } => {
                    let loaded = load(shm, &mut log, seq, &path, warm, online, program_gen, image);
                    let reply = match loaded.and_then(|p| start_tasks(shm, p, &policy, &mut log)) {
                        Some(program) => LoaderReply::Loaded { program, start },
                        None => LoaderReply::Failed,
                    };
                    if ends.replies.push(reply).is_err() {
                        // Cannot happen with one load in flight; if it did, the program is
                        // dropped here, on this thread, and the client times out.
                        log.line(LogLevel::Error, "internal: loader reply queue full");
                    }
                }
                LoaderRequest::Retire(program) => {
                    let generation = program.info().program_gen;
                    match program.unload() {
                        Ok(()) => log.line(LogLevel::Debug, &format!("unloaded program generation {generation}")),
                        Err(fault) => {
                            restart::request(RestartKind::UnloadFault, Some(fault.cause), 0);
                            log.line(
                                LogLevel::Error,
                                &format!("program generation {generation} ended in its destructors with {fault}"),
                            );
                        }
                    }
                }
            }
            if restart::pending().is_some() {
                break;
            }
        }
        if idle {
            std::thread::sleep(POLL);
        }
    }
}

/// Starts the program's task threads (when its tasks run on threads of their own); a
/// program whose threads cannot start is not swapped in.
fn start_tasks(
    shm: &'static SharedMemory,
    mut program: Box<LoadedProgram>,
    policy: &TaskPolicy,
    log: &mut Log,
) -> Option<Box<LoadedProgram>> {
    match tasks::start(shm, &mut program, policy) {
        Ok(()) => {
            if let (Some(t), Some(threads)) = (program.tasks(), program.task_threads()) {
                let list: Vec<String> = t
                    .descs()
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        let (fifo, cpu) = threads.placement(i);
                        let cpu = if cpu < 0 { "any CPU".to_string() } else { format!("CPU {cpu}") };
                        let prio = if fifo > 0 { format!("SCHED_FIFO {fifo}") } else { "normal priority".into() };
                        format!(
                            "{} every {} µs ({prio}, {cpu})",
                            d.info.name_str(),
                            d.divisor * program.period_ns() / 1000
                        )
                    })
                    .collect();
                log.line(LogLevel::Info, &format!("{} task threads: {}", list.len(), list.join("; ")));
            }
            Some(program)
        }
        Err(e) => {
            log.line(LogLevel::Error, &format!("program not started, the running one is kept: {e}"));
            if let Err(fault) = program.unload() {
                restart::request(RestartKind::UnloadFault, Some(fault.cause), 0);
            }
            None
        }
    }
}

/// The live copies a warm load may give back, read from the shared memory.
struct Copies {
    live_retain: Box<RetainImage>,
    staged_retain: Box<RetainImage>,
    live_forces: Box<ForceTable>,
}

impl Copies {
    fn read(shm: &SharedMemory) -> (Copies, bool, bool, bool) {
        let mut c = Copies {
            live_retain: bytemuck::zeroed_box(),
            staged_retain: bytemuck::zeroed_box(),
            live_forces: bytemuck::zeroed_box(),
        };
        // A torn read (a writer killed mid-write) counts as no copy.
        let live = shm.retain_saved.read(&mut c.live_retain, 64).is_ok() && c.live_retain.program_gen != 0;
        let staged = shm.retain_restore.read(&mut c.staged_retain, 64).is_ok() && c.staged_retain.program_gen != 0;
        let forces = shm.forces.read(&mut c.live_forces, 64).is_ok() && c.live_forces.program_gen != 0;
        (c, live, staged, forces)
    }
}

/// The staged migration plan, checked against `program`; `None` when it does not read or
/// names no program (the swap then starts the program cold and says why).
fn migration(shm: &SharedMemory, program: &LoadedProgram) -> Option<Migration> {
    let mut plan: Box<MigratePlan> = bytemuck::zeroed_box();
    let read = shm.migrate_plan.read(&mut plan, 64).is_ok() && plan.old_program_gen != 0;
    read.then(|| Migration::new(&plan, program))
}

#[allow(clippy::too_many_arguments)]
fn load(
    shm: &SharedMemory,
    log: &mut Log,
    seq: u32,
    path: &str,
    warm: bool,
    online: bool,
    program_gen: u32,
    image: shared_abi::sizes::ImageRequest,
) -> Option<Box<LoadedProgram>> {
    let how = match (online, warm) {
        (true, _) => " (online change)",
        (false, true) => " (warm)",
        (false, false) => "",
    };
    log.line(LogLevel::Info, &format!("loading {path}{how}"));
    let started = std::time::Instant::now();
    let (copies, live, staged, forces) = Copies::read(shm);
    let warm_start = warm.then(|| WarmStart {
        live_retain: live.then_some(&*copies.live_retain),
        staged_retain: staged.then_some(&*copies.staged_retain),
        live_forces: forces.then_some(&*copies.live_forces),
    });
    let mut restart = None;
    let (outcome, message, program) = match LoadedProgram::load(Path::new(path), program_gen, warm_start, image) {
        Ok(mut program) => {
            if let Err(e) = crate::residency::settle(shm, &mut program) {
                log.line(
                    LogLevel::Warning,
                    &format!("the image tables' pages are not settled ({e}): the first scans may fault on them"),
                );
            }
            let carried = match online.then(|| migration(shm, &program)) {
                Some(Some(m)) => {
                    let n = m.len();
                    program.attach_migration(m);
                    format!(", {n} variables to carry over at the swap")
                }
                Some(None) => ", no migration plan staged: it starts cold".to_string(),
                None => String::new(),
            };
            let info = program.info();
            let md5 = info.md5_str().unwrap_or("none");
            let retain = match program.retain_summary() {
                (0, _, _) => String::new(),
                (n, bytes, RetainSource::Live) => {
                    format!(", {n} RETAIN variables ({bytes} bytes) restored from the live copy")
                }
                (n, bytes, RetainSource::Staged) => {
                    format!(", {n} RETAIN variables ({bytes} bytes) restored from the saved values")
                }
                (n, bytes, RetainSource::Initial) => {
                    format!(", {n} RETAIN variables ({bytes} bytes) at their initial values")
                }
            };
            let restored = program.restored_forces().len();
            let forced = if restored > 0 { format!(", {restored} forced variables restored") } else { String::new() };
            let message = format!(
                "loaded {path} in {:.1} ms: scan period {} µs, {} debug variables, md5 {md5}{retain}{forced}{carried}; image {}",
                started.elapsed().as_secs_f64() * 1e3,
                info.period_ns / 1000,
                info.var_count,
                describe_sizes(&info.image_sizes)
            );
            log.line(LogLevel::Info, &message);
            (LoadOutcome::Loaded, message, Some(program))
        }
        Err(e) => {
            if e.needs_restart() {
                restart = e.fault().map(|f| f.cause);
            }
            let how = if restart.is_some() { "; rt-core restarts itself in place and reloads it" } else { "" };
            let message = format!("program not loaded, the running one is kept: {e}{how}");
            log.line(LogLevel::Error, &message);
            (LoadOutcome::Failed, message, None)
        }
    };
    // SAFETY: the loader thread is the single writer of `load_result`.
    unsafe {
        shm.load_result.write(|r| {
            r.request_seq = seq;
            r.outcome = outcome as u32;
            r.program_gen = if program.is_some() { program_gen } else { 0 };
            r.message_len = fill_text(&mut r.message, &message);
        })
    };
    // Only now, so the client that asked sees the answer before the process is replaced.
    if let Some(cause) = restart {
        restart::request(RestartKind::LoadFault, Some(cause), 0);
    }
    program
}

/// The tables a program uses, for the load message (`int_output=4096, bool_input=2`).
fn describe_sizes(sizes: &shared_abi::sizes::ImageSizes) -> String {
    use shared_abi::sizes::Table;
    let used: Vec<String> =
        Table::ALL.iter().filter(|&&t| sizes.get(t) > 0).map(|&t| format!("{}={}", t.key(), sizes.get(t))).collect();
    if used.is_empty() { "empty".into() } else { used.join(", ") }
}
