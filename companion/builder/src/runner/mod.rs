//! Running compiler, linker and load-check processes: in the sandbox (`sandbox.rs`), with a
//! scrubbed environment, resource limits set in the child, one deadline for the whole build,
//! at most `parallel` at a time, stopping new ones after the first failure, and every output
//! line handed on in job order.
//!
//! Two ways to start jobs, behind [`Starter`]: `process.rs` starts one process (one sandbox)
//! per job and streams its output as it arrives (the load check); `dispatch.rs` starts ONE
//! sandbox for all the jobs of a build, a small job runner inside it starting each job when
//! told, so that the sandbox's start-up (15-50 ms here) is paid once per build rather than
//! once per translation unit.

mod dispatch;
mod process;

pub(crate) use dispatch::Dispatcher;
pub(crate) use process::{Prestarted, Processes};

use crate::error::says_no_space;
use crate::sandbox::{Launcher, Limits, View};
use crate::{BuildError, BuildLine, Level};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

/// Longest line handed on; longer output is split into pieces of this size.
const MAX_LINE_BYTES: usize = 4096;
/// Output lines handed on per run; past that they are counted and dropped.
const MAX_LINES: usize = 20_000;
/// How long killed processes get to be reaped before the build gives up on them.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One compiler, linker or load-check invocation.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// Progress line shown when the job starts, e.g. "Compiling Config0.c".
    pub label: String,
    /// For error messages, e.g. "compiling Config0.c".
    pub step: String,
    pub program: String,
    pub args: Vec<OsString>,
}

/// What all jobs of one build share.
pub(crate) struct Context<'a> {
    pub launcher: &'a Launcher,
    /// What the jobs see of the build folder.
    pub view: View<'a>,
    /// The compilers' temporary directory, as they see it.
    pub tmpdir: PathBuf,
    pub limits: Limits,
}

/// What happened to a job of the current run (`job` is its position in the run).
pub(crate) enum Event {
    Line {
        job: usize,
        stderr: bool,
        text: String,
    },
    Closed {
        job: usize,
    },
    /// The job ended; a status that is a signal means it was killed by one.
    Exited {
        job: usize,
        status: Result<ExitStatus, String>,
    },
}

/// Starts the jobs of a run and reports what they do.
pub(crate) trait Starter {
    /// Starts `job`, the `index`-th of the run.
    fn start(&mut self, index: usize, job: &Job) -> Result<(), BuildError>;
    /// The next event, or `None` once `until` has passed (or nothing more can come).
    fn next_event(&mut self, until: Instant) -> Option<Event>;
    /// Kills every job started and not yet ended, and whatever they started.
    fn kill(&mut self);
}

#[derive(Default)]
struct JobState {
    started: bool,
    open_streams: u8,
    status: Option<Result<ExitStatus, String>>,
    pending: Vec<BuildLine>,
    stderr_level: Option<Level>,
    first_error: Option<String>,
    /// The compiler said the device is full.
    no_space: bool,
    /// Never started (the run stopped first): nothing more will come from it.
    skipped: bool,
}

impl JobState {
    fn finished(&self) -> bool {
        self.skipped || (self.started && self.open_streams == 0 && self.status.is_some())
    }

    fn failed(&self) -> bool {
        matches!(&self.status, Some(Ok(s)) if !s.success()) || matches!(self.status, Some(Err(_)))
    }
}

/// Runs `jobs`, at most `parallel` at a time, stopping new ones after the first failure,
/// until `deadline` (`timeout` is what it is named after in the error). Lines reach `on_line`
/// in job order: the earliest unfinished job's as they arrive, the others' when their turn
/// comes.
pub(crate) fn run(
    jobs: &[&Job],
    parallel: usize,
    starter: &mut dyn Starter,
    limit: (Instant, Duration),
    on_line: &mut dyn FnMut(BuildLine),
) -> Result<(), BuildError> {
    let in_order: Vec<usize> = (0..jobs.len()).collect();
    run_starting(jobs, &in_order, parallel, starter, limit, on_line)
}

/// [`run`], starting the jobs in the order `starts` gives (a permutation of their indices:
/// the longest first, say), their lines still reaching `on_line` in job order.
pub(crate) fn run_starting(
    jobs: &[&Job],
    starts: &[usize],
    parallel: usize,
    starter: &mut dyn Starter,
    (deadline, timeout): (Instant, Duration),
    on_line: &mut dyn FnMut(BuildLine),
) -> Result<(), BuildError> {
    let mut states: Vec<JobState> = jobs.iter().map(|_| JobState::default()).collect();
    // Jobs `starts` leaves out are never started.
    let starts: Vec<usize> = starts.iter().copied().filter(|&i| i < jobs.len()).collect();
    let mut next = 0;
    let mut running = 0;
    let mut cursor = 0;
    let mut stop = false;
    let mut budget = Budget { left: MAX_LINES, dropped: 0 };

    loop {
        while !stop && running < parallel.max(1) && next < starts.len() {
            let job = starts[next];
            if let Err(err) = starter.start(job, jobs[job]) {
                abandon(&mut states, starter);
                deliver(&mut states, &mut cursor, on_line);
                return Err(err);
            }
            let state = &mut states[job];
            state.started = true;
            state.open_streams = 2;
            state.pending.push(BuildLine { level: Level::Info, text: jobs[job].label.clone() });
            running += 1;
            next += 1;
        }
        deliver(&mut states, &mut cursor, on_line);
        if running == 0 && (stop || next == starts.len()) {
            skip_unstarted(&mut states);
            deliver(&mut states, &mut cursor, on_line);
            break;
        }

        let Some(event) = starter.next_event(deadline) else {
            // The step still running when time ran out: the earliest unfinished job, named
            // before the killed jobs finish and the cursor moves past them.
            let running_step = (cursor..jobs.len()).find(|&i| states[i].started);
            let step =
                jobs.get(running_step.unwrap_or(cursor.min(jobs.len().saturating_sub(1)))).map(|j| j.step.clone());
            abandon(&mut states, starter);
            deliver(&mut states, &mut cursor, on_line);
            return Err(BuildError::TimedOut { step: step.unwrap_or_default(), limit: timeout });
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
                Some(Ok(status)) => (status.code(), status.signal()),
                _ => (None, None),
            };
            let first_error = state.first_error.clone().or_else(|| match &state.status {
                Some(Err(why)) => Some(why.clone()),
                _ => None,
            });
            Err(BuildError::CompilerFailed { step: job.step.clone(), exit_code, signal, first_error })
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
            let state = states.get_mut(job)?;
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
            let state = states.get_mut(job)?;
            state.open_streams = state.open_streams.saturating_sub(1);
            job
        }
        Event::Exited { job, status } => {
            states.get_mut(job)?.status = Some(status);
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
fn abandon(states: &mut [JobState], starter: &mut dyn Starter) {
    if states.iter().any(|s| s.started && s.status.is_none()) {
        starter.kill();
    }
    let grace = Instant::now() + KILL_GRACE;
    let mut budget = Budget { left: usize::MAX, dropped: 0 };
    while states.iter().any(|s| s.started && !s.finished()) {
        match starter.next_event(grace) {
            Some(event) => {
                apply(event, states, &mut budget);
            }
            None => break,
        }
    }
    skip_unstarted(states);
}

/// What never started never will: the lines of the jobs after it may be delivered.
fn skip_unstarted(states: &mut [JobState]) {
    for state in states.iter_mut().filter(|s| !s.started) {
        state.skipped = true;
    }
}

/// A status as the job's own: a shell or bubblewrap reports a child killed by signal N as
/// exit code 128 + N.
pub(crate) fn unwrap_shell_status(status: ExitStatus) -> ExitStatus {
    match status.code() {
        Some(code) if (129..=128 + 64).contains(&code) => ExitStatus::from_raw(code - 128),
        _ => status,
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

/// Splits `bytes` (a job's output) into lines of at most [`MAX_LINE_BYTES`], without their
/// line ends.
pub(crate) fn split_lines(bytes: &[u8]) -> impl Iterator<Item = String> + '_ {
    bytes.split_inclusive(|b| *b == b'\n').flat_map(|line| line.chunks(MAX_LINE_BYTES)).map(|piece| {
        let mut end = piece.len();
        while end > 0 && (piece[end - 1] == b'\n' || piece[end - 1] == b'\r') {
            end -= 1;
        }
        String::from_utf8_lossy(&piece[..end]).into_owned()
    })
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

    #[test]
    fn output_is_split_into_bounded_lines() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut text = b"one\r\ntwo\n".to_vec();
        text.extend_from_slice(&long);
        let lines: Vec<String> = split_lines(&text).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "one");
        assert_eq!(lines[1], "two");
        assert_eq!(lines[2].len(), MAX_LINE_BYTES);
        assert_eq!(lines[3], "x".repeat(10));
    }

    #[test]
    fn shell_statuses_name_the_signal() {
        assert_eq!(unwrap_shell_status(ExitStatus::from_raw(137 << 8)).signal(), Some(9));
        assert_eq!(unwrap_shell_status(ExitStatus::from_raw(1 << 8)).code(), Some(1));
        assert_eq!(unwrap_shell_status(ExitStatus::from_raw(0)).code(), Some(0));
    }

    /// Jobs that end in the order they were started, each saying one line; `failing` exits 1.
    struct Scripted {
        failing: Option<usize>,
        started: Vec<usize>,
        events: std::collections::VecDeque<Event>,
    }

    impl Starter for Scripted {
        fn start(&mut self, index: usize, _job: &Job) -> Result<(), BuildError> {
            self.started.push(index);
            let fails = self.failing == Some(index);
            let text = if fails { format!("x.c:1:1: error: job {index}") } else { format!("job {index} said") };
            self.events.push_back(Event::Line { job: index, stderr: fails, text });
            self.events.push_back(Event::Closed { job: index });
            self.events.push_back(Event::Closed { job: index });
            let status = ExitStatus::from_raw(if fails { 1 << 8 } else { 0 });
            self.events.push_back(Event::Exited { job: index, status: Ok(status) });
            Ok(())
        }
        fn next_event(&mut self, _until: Instant) -> Option<Event> {
            self.events.pop_front()
        }
        fn kill(&mut self) {}
    }

    fn jobs(n: usize) -> Vec<Job> {
        (0..n)
            .map(|i| Job {
                label: format!("Compiling {i}"),
                step: format!("compiling {i}"),
                program: "cc".into(),
                args: vec![],
            })
            .collect()
    }

    fn run_scripted(failing: Option<usize>, starts: &[usize]) -> (Result<(), BuildError>, Vec<usize>, Vec<String>) {
        let jobs = jobs(4);
        let refs: Vec<&Job> = jobs.iter().collect();
        let mut starter = Scripted { failing, started: Vec::new(), events: Default::default() };
        let mut lines = Vec::new();
        let limit = (Instant::now() + Duration::from_secs(60), Duration::from_secs(60));
        let result = run_starting(&refs, starts, 1, &mut starter, limit, &mut |l| lines.push(l.text));
        (result, starter.started, lines)
    }

    #[test]
    fn jobs_start_in_the_order_given_and_are_shown_in_job_order() {
        let (result, started, lines) = run_scripted(None, &[3, 1, 2, 0]);
        assert!(result.is_ok());
        assert_eq!(started, [3, 1, 2, 0]);
        let expected: Vec<String> = (0..4).flat_map(|i| [format!("Compiling {i}"), format!("job {i} said")]).collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn a_failure_stops_later_starts_and_its_lines_still_reach_the_caller() {
        // Job 2 starts second and fails: 1 and 0, earlier in job order, never start.
        let (result, started, lines) = run_scripted(Some(2), &[3, 2, 1, 0]);
        assert_eq!(started, [3, 2]);
        match result {
            Err(BuildError::CompilerFailed { step, exit_code, first_error, .. }) => {
                assert_eq!(step, "compiling 2");
                assert_eq!(exit_code, Some(1));
                assert_eq!(first_error.as_deref(), Some("x.c:1:1: error: job 2"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lines, ["Compiling 2", "x.c:1:1: error: job 2", "Compiling 3", "job 3 said"]);
    }
}
