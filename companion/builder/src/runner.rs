//! Running compiler processes: in the sandbox (`sandbox.rs`), with a scrubbed environment,
//! resource limits set in the child, one process group per job (so a timeout kills the
//! compiler's own subprocesses too), one deadline for the whole build, and every output line
//! handed on in job order as it arrives.

use crate::error::says_no_space;
use crate::sandbox::{Launcher, Limits, View, confine};
use crate::{BuildError, BuildLine, Level};
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

/// Longest line handed on; longer output is split into pieces of this size.
const MAX_LINE_BYTES: u64 = 4096;
/// Output lines handed on per build; past that they are counted and dropped.
const MAX_LINES: usize = 20_000;
/// How long killed processes get to be reaped before the build gives up on them.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One compiler, linker or load-check invocation.
pub(crate) struct Job {
    /// Progress line shown when the job's output starts, e.g. "Compiling Config0.c".
    pub label: String,
    /// For error messages, e.g. "compiling Config0.c".
    pub step: String,
    pub program: String,
    pub args: Vec<OsString>,
}

/// What all jobs of one run share.
pub(crate) struct Context<'a> {
    pub launcher: &'a Launcher,
    /// What the jobs see of the build folder.
    pub view: View<'a>,
    /// The compilers' temporary directory, as they see it.
    pub tmpdir: PathBuf,
    pub deadline: Instant,
    pub timeout: Duration,
    pub limits: Limits,
}

enum Event {
    Line { job: usize, stderr: bool, text: String },
    Closed { job: usize },
    Exited { job: usize, status: Result<ExitStatus, String> },
}

#[derive(Default)]
struct JobState {
    pid: Option<i32>,
    open_streams: u8,
    status: Option<Result<ExitStatus, String>>,
    pending: Vec<BuildLine>,
    stderr_level: Option<Level>,
    first_error: Option<String>,
    /// The compiler said the device is full.
    no_space: bool,
}

impl JobState {
    fn started(&self) -> bool {
        self.pid.is_some()
    }

    fn finished(&self) -> bool {
        self.started() && self.open_streams == 0 && self.status.is_some()
    }

    fn failed(&self) -> bool {
        matches!(&self.status, Some(Ok(s)) if !s.success()) || matches!(self.status, Some(Err(_)))
    }
}

/// Runs `jobs`, at most `parallel` at a time, stopping new ones after the first failure.
/// Lines reach `on_line` in job order: the earliest unfinished job's as they arrive, the
/// others' when their turn comes.
pub(crate) fn run(
    jobs: &[Job],
    parallel: usize,
    ctx: &Context<'_>,
    on_line: &mut dyn FnMut(BuildLine),
) -> Result<(), BuildError> {
    let (tx, rx) = mpsc::channel();
    let mut states: Vec<JobState> = jobs.iter().map(|_| JobState::default()).collect();
    let mut next = 0;
    let mut running = 0;
    let mut cursor = 0;
    let mut stop = false;
    let mut budget = Budget { left: MAX_LINES, dropped: 0 };

    loop {
        while !stop && running < parallel.max(1) && next < jobs.len() {
            match spawn(&jobs[next], next, ctx, &tx) {
                Ok(pid) => {
                    let state = &mut states[next];
                    state.pid = Some(pid);
                    state.open_streams = 2;
                    state.pending.push(BuildLine { level: Level::Info, text: jobs[next].label.clone() });
                    running += 1;
                    next += 1;
                }
                Err(err) => {
                    abandon(&mut states, &rx);
                    deliver(&mut states, &mut cursor, on_line);
                    return Err(err);
                }
            }
        }
        deliver(&mut states, &mut cursor, on_line);
        if running == 0 && (stop || next == jobs.len()) {
            break;
        }

        let event = match rx.recv_timeout(ctx.deadline.saturating_duration_since(Instant::now())) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                // The step still running when time ran out: the earliest unfinished job,
                // named before the killed jobs finish and the cursor moves past them.
                let step = jobs.get(cursor.min(jobs.len().saturating_sub(1))).map(|j| j.step.clone());
                abandon(&mut states, &rx);
                deliver(&mut states, &mut cursor, on_line);
                return Err(BuildError::TimedOut { step: step.unwrap_or_default(), limit: ctx.timeout });
            }
        };
        if let Some(job) = apply(event, &mut states, &mut budget) {
            running -= 1;
            if states[job].failed() {
                stop = true;
            }
        }
    }
    if budget.dropped > 0 {
        on_line(BuildLine {
            level: Level::Warning,
            text: format!("{} further lines of compiler output were not shown", budget.dropped),
        });
    }

    match jobs.iter().zip(&states).find(|(_, s)| s.failed()) {
        None => Ok(()),
        Some((job, state)) if state.no_space => {
            Err(BuildError::Storage { what: job.step.clone(), source: io::Error::from_raw_os_error(libc::ENOSPC) })
        }
        Some((job, state)) => {
            let (exit_code, signal) = match &state.status {
                Some(Ok(status)) => ctx.launcher.outcome(*status),
                _ => (None, None),
            };
            Err(BuildError::CompilerFailed {
                step: job.step.clone(),
                exit_code,
                signal,
                first_error: state.first_error.clone(),
            })
        }
    }
}

struct Budget {
    left: usize,
    dropped: usize,
}

/// Records an event; returns the job it finished, if any.
fn apply(event: Event, states: &mut [JobState], budget: &mut Budget) -> Option<usize> {
    let job = match event {
        Event::Line { job, stderr, text } => {
            let state = &mut states[job];
            let level = if stderr { classify(&text, state.stderr_level) } else { Level::Info };
            if stderr {
                state.stderr_level = Some(level);
            }
            if level == Level::Error && state.first_error.is_none() {
                state.first_error = Some(text.clone());
            }
            state.no_space |= stderr && says_no_space(&text);
            if budget.left > 0 {
                budget.left -= 1;
                state.pending.push(BuildLine { level, text });
            } else {
                budget.dropped += 1;
            }
            return None;
        }
        Event::Closed { job } => {
            states[job].open_streams = states[job].open_streams.saturating_sub(1);
            job
        }
        Event::Exited { job, status } => {
            states[job].status = Some(status);
            job
        }
    };
    states[job].finished().then_some(job)
}

fn deliver(states: &mut [JobState], cursor: &mut usize, on_line: &mut dyn FnMut(BuildLine)) {
    while let Some(state) = states.get_mut(*cursor) {
        for line in state.pending.drain(..) {
            on_line(line);
        }
        if !state.finished() {
            break;
        }
        *cursor += 1;
    }
}

/// Kills every started, unfinished job and waits (briefly) for their last events.
fn abandon(states: &mut [JobState], rx: &mpsc::Receiver<Event>) {
    for state in states.iter().filter(|s| s.started() && s.status.is_none()) {
        if let Some(pid) = state.pid {
            kill_group(pid);
        }
    }
    let grace = Instant::now() + KILL_GRACE;
    let mut budget = Budget { left: usize::MAX, dropped: 0 };
    while states.iter().any(|s| s.started() && !s.finished()) {
        match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
            Ok(event) => {
                apply(event, states, &mut budget);
            }
            Err(_) => break,
        }
    }
}

fn kill_group(pid: i32) {
    // SAFETY: kill() only sends a signal. The child was spawned with process_group(0), so
    // -pid names the group it leads: the compiler driver and the subprocesses it started.
    // The job is not yet reaped (no exit status recorded), so the id cannot have been reused.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Gives a stderr line a level. Source excerpts and notes that follow a diagnostic take its
/// level; context lines before one ("In file included from") are Info.
pub(crate) fn classify(text: &str, previous: Option<Level>) -> Level {
    let lower = text.to_ascii_lowercase();
    if lower.contains("error") || lower.contains("undefined reference") || lower.contains("multiple definition") {
        return Level::Error;
    }
    if lower.contains("warning") {
        return Level::Warning;
    }
    let trimmed = text.trim_start();
    let continues = text.starts_with([' ', '\t'])
        || trimmed.starts_with('|')
        || trimmed.starts_with('^')
        || lower.contains("note:");
    match previous {
        Some(level) if continues => level,
        _ => Level::Info,
    }
}

fn spawn(job: &Job, index: usize, ctx: &Context<'_>, tx: &Sender<Event>) -> Result<i32, BuildError> {
    ctx.launcher
        .check_program(&job.program)
        .map_err(|source| BuildError::CompilerUnavailable { program: job.program.clone(), source })?;
    let mut cmd = ctx.launcher.command(&job.program, &job.args, &ctx.view);
    cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    for key in ["PATH", "LANG"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    // English diagnostics whatever LANG says, so that their level can be read off them.
    cmd.env("LC_MESSAGES", "C");
    // Temporary files in the build folder: nowhere else is writable in the sandbox.
    cmd.env("TMPDIR", &ctx.tmpdir);
    let (limits, identity) = (ctx.limits, ctx.launcher.identity());
    // SAFETY: the closure runs in the forked child before exec. `confine` only makes
    // async-signal-safe system calls (getrlimit/setrlimit, prctl, setgroups, setresgid,
    // setresuid) on values copied into it; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || confine(Some(limits), identity));
    }

    let mut child =
        cmd.spawn().map_err(|source| BuildError::CompilerUnavailable { program: job.program.clone(), source })?;
    let pid = child.id() as i32;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(pid);
        let _ = child.wait();
        return Err(io_error(job, io::Error::other("no pipes to the compiler")));
    };

    let started = (|| -> io::Result<()> {
        read_lines_in_thread(stdout, index, false, tx.clone())?;
        read_lines_in_thread(stderr, index, true, tx.clone())?;
        let tx = tx.clone();
        thread::Builder::new().name("builder-wait".into()).spawn(move || {
            let status = child.wait().map_err(|e| e.to_string());
            let _ = tx.send(Event::Exited { job: index, status });
        })?;
        Ok(())
    })();
    if let Err(err) = started {
        // The waiter thread never started, so the child will not be reaped by it; a killed
        // zombie is all that can be left behind.
        kill_group(pid);
        return Err(io_error(job, err));
    }
    Ok(pid)
}

fn io_error(job: &Job, source: io::Error) -> BuildError {
    BuildError::Io { what: format!("{}: cannot follow the compiler", job.step), source }
}

fn read_lines_in_thread(
    pipe: impl Read + Send + 'static,
    job: usize,
    stderr: bool,
    tx: Sender<Event>,
) -> io::Result<()> {
    thread::Builder::new().name("builder-output".into()).spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut reader).take(MAX_LINE_BYTES).read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(Event::Line { job, stderr, text }).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(Event::Closed { job });
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_gcc_output() {
        let first = classify("In file included from Res0.c:14:", None);
        assert_eq!(first, Level::Info);
        let error = classify("POUS.c:3:5: error: expected ';' before '}' token", Some(first));
        assert_eq!(error, Level::Error);
        assert_eq!(classify("    3 |   x = 1", Some(error)), Level::Error);
        assert_eq!(classify("      |       ^", Some(error)), Level::Error);
        assert_eq!(classify("debug.c:9:1: warning: unused variable 'x'", None), Level::Warning);
        assert_eq!(classify("/usr/bin/ld: a.o: undefined reference to `f'", None), Level::Error);
        assert_eq!(classify("collect2: error: ld returned 1 exit status", None), Level::Error);
        assert_eq!(classify("compilation terminated.", Some(Level::Error)), Level::Info);
    }
}
