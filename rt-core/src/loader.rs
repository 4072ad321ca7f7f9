//! The loader thread: a normal-priority thread that does everything about programs the scan
//! thread must not do. It loads libraries (file I/O, dlopen, allocation, the program's own
//! init), reports the outcome in `load_result` and the log ring, hands good programs to the
//! scan thread, and frees the ones the scan thread retires.

use crate::engine::{LoaderEnds, LoaderReply, LoaderRequest};
use crate::program::LoadedProgram;
use shared_abi::debug::{LoadOutcome, fill_text};
use shared_abi::layout::{LogRing, SharedMemory};
use shared_abi::msg::{LogLevel, LogLine};
use shared_abi::retain::RetainImage;
use shared_abi::ring::Producer;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the loader looks for work. Loads are rare; a millisecond is invisible next to
/// dlopen, and polling keeps every syscall off the scan thread.
const POLL: Duration = Duration::from_millis(1);

/// The single producer of the log ring: the loader thread, or main before it starts.
pub struct Log {
    ring: Producer<'static, 256, 508>,
}

impl Log {
    /// # Safety
    /// Only one `Log` may exist per process (rt-core makes one in main and moves it into
    /// the loader thread).
    pub unsafe fn new(ring: &'static LogRing) -> Log {
        // SAFETY: the caller guarantees a single producer.
        Log { ring: unsafe { ring.producer() } }
    }

    /// Writes to stderr and, when there is room, to the log ring for the companion.
    pub fn line(&mut self, level: LogLevel, text: &str) {
        eprintln!("openplc-rt: [{}] {text}", level.as_str());
        let _ = self.ring.push(&LogLine::new(level, text));
    }
}

/// Runs until `stop` is set.
pub fn run(shm: &'static SharedMemory, mut ends: LoaderEnds, mut log: Log, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        let mut idle = true;
        while let Ok(request) = ends.requests.pop() {
            idle = false;
            match request {
                LoaderRequest::Load { seq, path, start, warm, program_gen } => {
                    let reply = load(shm, &mut log, seq, &path, warm, program_gen);
                    let reply = match reply {
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
                    drop(program);
                    log.line(LogLevel::Debug, &format!("unloaded program generation {generation}"));
                }
            }
        }
        if idle {
            std::thread::sleep(POLL);
        }
    }
}

fn load(
    shm: &SharedMemory,
    log: &mut Log,
    seq: u32,
    path: &str,
    warm: bool,
    program_gen: u32,
) -> Option<Box<LoadedProgram>> {
    log.line(LogLevel::Info, &format!("loading {path}"));
    let started = std::time::Instant::now();
    // RETAIN values the client staged for this load (a warm start), if any and readable.
    let mut staged: Box<RetainImage> = bytemuck::zeroed_box();
    let staged =
        shm.retain_restore.read(&mut staged, 64).ok().filter(|_| warm && staged.program_gen != 0).map(|_| &*staged);
    let (outcome, message, program) = match LoadedProgram::load(Path::new(path), program_gen, staged) {
        Ok(program) => {
            let info = program.info();
            let md5 = info.md5_str().unwrap_or("none");
            let retain = match program.retain_summary() {
                (0, _, _) => String::new(),
                (n, bytes, true) => format!(", {n} RETAIN variables ({bytes} bytes) restored"),
                (n, bytes, false) => format!(", {n} RETAIN variables ({bytes} bytes) at their initial values"),
            };
            let message = format!(
                "loaded {path} in {:.1} ms: scan period {} µs, {} debug variables, md5 {md5}{retain}",
                started.elapsed().as_secs_f64() * 1e3,
                info.period_ns / 1000,
                info.var_count
            );
            log.line(LogLevel::Info, &message);
            (LoadOutcome::Loaded, message, Some(program))
        }
        Err(e) => {
            let message = format!("program not loaded, the running one is kept: {e}");
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
    program
}
