//! Restarting rt-core in place, after a fault that may have left a library lock held.
//!
//! A fault outside the program's own code (inside libc's malloc, the dynamic loader during
//! dlopen/dlclose, libstdc++), or a scan thread that does not come back from a watchdog
//! abort, leaves the process in a state nothing can vouch for: a lock may be held forever,
//! and the next allocation or load could deadlock. rt-core then replaces itself with a
//! fresh image of the same binary (`execve` of `/proc/self/exe`): the pid stays, the
//! shared-memory file's descriptor crosses the exec with its exclusive flock held (so no
//! client ever sees rt-core gone), and so does the `/dev/cpu_dma_latency` request. The new
//! image comes up in ERROR with the reason in its log, or, when the fault hit a program
//! being loaded or unloaded (the running one was fine), reloads the running program warm
//! from the copy kept open across the exec, with its RETAIN values and forces taken from
//! the live shared memory.
//!
//! Whoever detects such a fault calls [`request`]; `openplc-rt run`'s main thread polls
//! [`pending`] and calls [`ExecPlan::exec`], which only writes into buffers prepared at
//! start-up and makes async-signal-safe system calls: no allocation, no lock, whatever
//! the state of the threads it replaces. In-process users of the engine (tests, benches)
//! only see the request, which is process-wide and sticky: once made, the loader thread of
//! that process stops loading (it waits for the exec that replaces it).

use shared_abi::msg::FaultCause;
use std::cell::UnsafeCell;
use std::ffi::{CString, c_char};
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering};

/// Why rt-core restarts itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RestartKind {
    /// The running program faulted outside its own code.
    ScanFault = 1,
    /// The watchdog aborted the running program outside its own code.
    Watchdog = 2,
    /// The scan thread did not come back from a watchdog abort.
    StuckScan = 3,
    /// A program being loaded faulted outside its own code (or in its constructors): the
    /// running program is reloaded.
    LoadFault = 4,
    /// A program being unloaded faulted in its destructors: the running one is reloaded.
    UnloadFault = 5,
}

impl RestartKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::ScanFault,
            2 => Self::Watchdog,
            3 => Self::StuckScan,
            4 => Self::LoadFault,
            5 => Self::UnloadFault,
            _ => return None,
        })
    }

    /// Whether the program that was running survives the restart (reloaded warm).
    pub fn resumes_program(self) -> bool {
        matches!(self, Self::LoadFault | Self::UnloadFault)
    }
}

/// What the new image is told about the restart (on its command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartNote {
    pub kind: RestartKind,
    pub cause: Option<FaultCause>,
    /// How long the aborted scan had run (watchdog), ms.
    pub ran_ms: u64,
    /// The running program's library, kept open across the exec (`resumes_program`).
    pub resume_fd: Option<RawFd>,
    /// Whether that program was running (else stopped).
    pub resume_start: bool,
}

fn encode_cause(cause: Option<FaultCause>) -> (u32, i32) {
    match cause {
        None => (0, 0),
        Some(FaultCause::Signal(s)) => (1, s),
        Some(FaultCause::Exit(s)) => (2, s),
        Some(FaultCause::Abort) => (3, 0),
        Some(FaultCause::Raise(s)) => (4, s),
        Some(FaultCause::ThreadExit) => (5, 0),
        Some(FaultCause::Watchdog) => (6, 0),
    }
}

fn decode_cause(code: u64, value: i32) -> Option<FaultCause> {
    Some(match code {
        1 => FaultCause::Signal(value),
        2 => FaultCause::Exit(value),
        3 => FaultCause::Abort,
        4 => FaultCause::Raise(value),
        5 => FaultCause::ThreadExit,
        6 => FaultCause::Watchdog,
        _ => return None,
    })
}

impl RestartNote {
    /// `kind.code.value.ran_ms.fd+1.start`, all unsigned decimal; written without
    /// allocating into `buf`, NUL-terminated. Returns the text's length.
    fn write_to(&self, buf: &mut [u8; NOTE_BYTES]) -> usize {
        let (code, value) = encode_cause(self.cause);
        let fields = [
            self.kind as u64,
            code as u64,
            value as u32 as u64,
            self.ran_ms,
            self.resume_fd.map_or(0, |fd| fd as u64 + 1),
            self.resume_start as u64,
        ];
        let mut at = 0;
        for (i, mut v) in fields.into_iter().enumerate() {
            if i > 0 {
                buf[at] = b'.';
                at += 1;
            }
            let mut digits = [0u8; 20];
            let mut n = 0;
            loop {
                digits[n] = b'0' + (v % 10) as u8;
                n += 1;
                v /= 10;
                if v == 0 {
                    break;
                }
            }
            for d in digits[..n].iter().rev() {
                buf[at] = *d;
                at += 1;
            }
        }
        buf[at] = 0;
        at
    }

    /// Reads what `write_to` wrote.
    pub fn parse(text: &str) -> Option<RestartNote> {
        let mut fields = [0u64; 6];
        let mut parts = text.split('.');
        for f in &mut fields {
            *f = parts.next()?.parse().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(RestartNote {
            kind: RestartKind::from_u8(u8::try_from(fields[0]).ok()?)?,
            cause: decode_cause(fields[1], fields[2] as u32 as i32),
            ran_ms: fields[3],
            resume_fd: fields[4].checked_sub(1).and_then(|fd| RawFd::try_from(fd).ok()),
            resume_start: fields[5] != 0,
        })
    }

    /// A sentence for the log.
    pub fn describe(&self) -> String {
        let cause = self.cause.map_or(String::new(), |c| format!(" ({c})"));
        match self.kind {
            RestartKind::ScanFault => format!(
                "the program faulted outside its own code{cause}, which may have left a library lock held: the PLC is in ERROR; load a program to recover"
            ),
            RestartKind::Watchdog => format!(
                "the watchdog aborted a scan of {} ms outside the program's own code{cause}: the PLC is in ERROR; load a program to recover",
                self.ran_ms
            ),
            RestartKind::StuckScan => "the scan thread did not return after the watchdog abort: the PLC is in ERROR; load a program to recover".into(),
            RestartKind::LoadFault => format!(
                "a program being loaded ended while the dynamic loader or a library held a lock{cause}; it was refused and the running program is reloaded warm"
            ),
            RestartKind::UnloadFault => format!(
                "a program being unloaded faulted in its destructors{cause}; the running program is reloaded warm"
            ),
        }
    }
}

const NOTE_BYTES: usize = 128;

/// The pending request: kind (0: none) and its details.
static KIND: AtomicU8 = AtomicU8::new(0);
static CAUSE_CODE: AtomicU64 = AtomicU64::new(0);
static CAUSE_VALUE: AtomicI32 = AtomicI32::new(0);
static RAN_MS: AtomicU64 = AtomicU64::new(0);
/// The running program's library descriptor (-1: none) and whether it runs.
static RESUME_FD: AtomicI32 = AtomicI32::new(-1);
static RESUME_START: AtomicBool = AtomicBool::new(false);

/// Asks for a restart in place. The first request wins; later ones (a cascade of the same
/// trouble) are dropped. No allocation: callable from the scan thread.
pub fn request(kind: RestartKind, cause: Option<FaultCause>, ran_ms: u64) {
    let (code, value) = encode_cause(cause);
    if KIND.load(Ordering::Acquire) != 0 {
        return;
    }
    CAUSE_CODE.store(code as u64, Ordering::Relaxed);
    CAUSE_VALUE.store(value, Ordering::Relaxed);
    RAN_MS.store(ran_ms, Ordering::Relaxed);
    let _ = KIND.compare_exchange(0, kind as u8, Ordering::AcqRel, Ordering::Acquire);
}

/// The request made so far, if any.
pub fn pending() -> Option<RestartNote> {
    let kind = RestartKind::from_u8(KIND.load(Ordering::Acquire))?;
    let resume = kind.resumes_program();
    let fd = RESUME_FD.load(Ordering::Acquire);
    Some(RestartNote {
        kind,
        cause: decode_cause(CAUSE_CODE.load(Ordering::Relaxed), CAUSE_VALUE.load(Ordering::Relaxed)),
        ran_ms: RAN_MS.load(Ordering::Relaxed),
        resume_fd: (resume && fd >= 0).then_some(fd),
        resume_start: RESUME_START.load(Ordering::Acquire),
    })
}

/// The engine says which program a restart would reload (its library's descriptor) and
/// whether it runs; `None` when there is none worth reloading (no program, or in ERROR).
pub fn set_resumable(program: Option<(RawFd, bool)>) {
    match program {
        Some((fd, running)) => {
            RESUME_START.store(running, Ordering::Release);
            RESUME_FD.store(fd, Ordering::Release);
        }
        None => RESUME_FD.store(-1, Ordering::Release),
    }
}

/// Everything `execve` needs, prepared while allocating is still safe.
pub struct ExecPlan {
    exe: CString,
    _args: Vec<CString>,
    note: Box<UnsafeCell<[u8; NOTE_BYTES]>>,
    argv: Vec<*const c_char>,
    /// Descriptors the new image inherits (their close-on-exec flag is cleared at exec).
    keep: Vec<RawFd>,
    started: AtomicBool,
}

// SAFETY: the raw pointers point into `_args` and `note`, owned by the plan and never
// moved or freed while it lives (it is kept in a static); `exec` is the only writer of
// `note`, once (the `started` flag).
unsafe impl Sync for ExecPlan {}
// SAFETY: as above; the pointers stay valid wherever the plan moves.
unsafe impl Send for ExecPlan {}

static PLAN: OnceLock<ExecPlan> = OnceLock::new();

impl ExecPlan {
    /// Prepares the exec of `/proc/self/exe` with `args` (after argv[0]), then
    /// `--restart-note <note>`, keeping the descriptors `keep` open.
    pub fn install(args: Vec<String>, keep: Vec<RawFd>) -> Result<&'static ExecPlan, std::ffi::NulError> {
        let exe = CString::new("/proc/self/exe")?;
        let mut owned = vec![CString::new("openplc-rt")?];
        for a in args {
            owned.push(CString::new(a)?);
        }
        owned.push(CString::new("--restart-note")?);
        let note = Box::new(UnsafeCell::new([0u8; NOTE_BYTES]));
        let mut argv: Vec<*const c_char> = owned.iter().map(|a| a.as_ptr()).collect();
        argv.push(note.get().cast_const().cast());
        argv.push(std::ptr::null());
        let plan = ExecPlan { exe, _args: owned, note, argv, keep, started: AtomicBool::new(false) };
        Ok(PLAN.get_or_init(|| plan))
    }

    /// Replaces the process image. Returns only if `execve` failed.
    pub fn exec(&self, note: RestartNote) -> std::io::Error {
        if self.started.swap(true, Ordering::AcqRel) {
            return std::io::Error::other("a restart is already under way");
        }
        // SAFETY: `started` makes this the only writer of the note buffer, and nothing reads
        // it before execve (the pointer in argv is only followed by the kernel).
        note.write_to(unsafe { &mut *self.note.get() });
        for &fd in self.keep.iter().chain(note.resume_fd.as_ref()) {
            // SAFETY: fcntl on a descriptor number; clearing FD_CLOEXEC touches no memory.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        // SAFETY: exe and argv are NUL-terminated strings and a NULL-terminated array that
        // live as long as the plan; execv uses the process's environment as it is.
        unsafe { libc::execv(self.exe.as_ptr(), self.argv.as_ptr()) };
        std::io::Error::last_os_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_read_back_what_was_written() {
        let notes = [
            RestartNote {
                kind: RestartKind::Watchdog,
                cause: Some(FaultCause::Watchdog),
                ran_ms: 512,
                resume_fd: None,
                resume_start: false,
            },
            RestartNote {
                kind: RestartKind::LoadFault,
                cause: Some(FaultCause::Exit(-3)),
                ran_ms: 0,
                resume_fd: Some(7),
                resume_start: true,
            },
            RestartNote {
                kind: RestartKind::StuckScan,
                cause: None,
                ran_ms: u64::MAX,
                resume_fd: Some(0),
                resume_start: false,
            },
        ];
        for note in notes {
            let mut buf = [0xFFu8; NOTE_BYTES];
            let n = note.write_to(&mut buf);
            assert_eq!(buf[n], 0);
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            assert_eq!(RestartNote::parse(text), Some(note), "{text}");
        }
        assert_eq!(RestartNote::parse("9.0.0.0.0.0"), None);
        assert_eq!(RestartNote::parse("1.0.0.0.0"), None);
        assert_eq!(RestartNote::parse("1.0.0.0.0.0.0"), None);
    }
}
