//! One sandbox for all the jobs of a build: a small job runner (a POSIX shell script of our
//! own, `sh` from the toolchain's `/usr`) runs inside it and starts job N when it reads the
//! line `N` on its standard input, runs it with its output in `log/N.out` and `log/N.err` of
//! the build folder, and writes `N <status>` on its standard output when it ends. Closing its
//! standard input lets the runner finish once the jobs it started have ended. The builder
//! decides what runs and when (parallelism, stopping after a failure, the deadline) exactly as
//! with one process per job; only the sandbox's start-up is paid once.
//!
//! A job's output reaches the build log when the job ends (a compiler says nearly everything
//! at its end anyway). Killing the runner's process group kills bubblewrap, and with it
//! (`--die-with-parent`, a new pid namespace) every process in the sandbox.

use super::process::{kill_group, scrub};
use super::{Context, Event, Job, Starter, split_lines, unwrap_shell_status};
use crate::BuildError;
use crate::sandbox::confine;
use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Instant;

/// Where the runner's script and the jobs' output live, inside the build folder.
pub(crate) const LOG_DIR: &str = "log";
const SCRIPT: &str = "jobs.sh";
/// Most bytes of one job's output read back (a compiler gone wild could write a GiB).
const MAX_OUTPUT_BYTES: u64 = 8 << 20;

enum Report {
    /// Job `id` ended with this shell status.
    Ended { id: usize, code: i32 },
    /// The runner ended (or was killed); what it printed itself.
    Gone { said: String },
}

/// The job runner of one build, in its sandbox.
pub(crate) struct Dispatcher {
    child: Option<Child>,
    pid: i32,
    stdin: Option<ChildStdin>,
    reports: Receiver<Report>,
    /// The build folder on the host (where the jobs' output is read back).
    host: PathBuf,
    /// Jobs started in the current run: runner id -> position in the run.
    started: HashMap<usize, usize>,
    /// Ids of the jobs known to the runner, by their label (the run hands us jobs).
    ids: HashMap<String, usize>,
    events: VecDeque<Event>,
    gone: bool,
}

impl Dispatcher {
    /// Starts the runner for `jobs` (each must have a unique label), all seeing `ctx.view`.
    /// `host` is the build folder; the script is written into it.
    pub fn spawn(jobs: &[Job], ctx: &Context<'_>, host: &Path) -> Result<Dispatcher, BuildError> {
        let mut labels: Vec<&str> = jobs.iter().map(|j| j.label.as_str()).collect();
        labels.sort_unstable();
        if let Some(twice) = labels.windows(2).find(|w| w[0] == w[1]) {
            let detail = format!("two jobs are both \"{}\"", twice[0]);
            return Err(BuildError::Io { what: "planning the build".into(), source: io::Error::other(detail) });
        }
        for job in jobs {
            ctx.launcher
                .check_program(&job.program)
                .map_err(|source| BuildError::CompilerUnavailable { program: job.program.clone(), source })?;
        }
        let log_as_seen = ctx.launcher.build_root(host).join(LOG_DIR);
        let script = script(jobs, &log_as_seen);
        let script_path = host.join(LOG_DIR).join(SCRIPT);
        std::fs::write(&script_path, script)
            .map_err(|e| BuildError::io(format!("cannot write {}", script_path.display()), e))?;

        let args = vec![log_as_seen.join(SCRIPT).into_os_string()];
        let mut cmd = ctx.launcher.command("/bin/sh", &args, &ctx.view, None);
        scrub(&mut cmd, ctx);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let (limits, identity) = (ctx.limits, ctx.launcher.identity());
        // SAFETY: the closure runs in the forked child before exec. `confine` only makes
        // async-signal-safe system calls (getrlimit/setrlimit, prctl, setgroups, setresgid,
        // setresuid) on values copied into it; it allocates nothing and touches no lock.
        unsafe {
            cmd.pre_exec(move || confine(Some(limits), identity));
        }
        let unavailable = |source| BuildError::CompilerUnavailable { program: "/bin/sh".into(), source };
        let mut child = cmd.spawn().map_err(unavailable)?;
        let pid = child.id() as i32;
        let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            kill_group(pid);
            let _ = child.wait();
            return Err(BuildError::Io {
                what: "starting the job runner".into(),
                source: io::Error::other("no pipes"),
            });
        };
        let (tx, reports) = mpsc::channel();
        let listen = thread::Builder::new().name("builder-jobs".into()).spawn(move || {
            let mut said = String::new();
            // What the runner itself prints (bubblewrap's errors): read in the background,
            // so that a full pipe never stops it.
            let stderr_reader = thread::spawn(move || {
                let mut text = Vec::new();
                let _ = stderr.take(64 * 1024).read_to_end(&mut text);
                String::from_utf8_lossy(&text).trim().to_string()
            });
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                let (Some(id), Some(code)) = (parts.next(), parts.next()) else { continue };
                if let (Ok(id), Ok(code)) = (id.parse(), code.parse()) {
                    let _ = tx.send(Report::Ended { id, code });
                }
            }
            if let Ok(text) = stderr_reader.join() {
                said = text;
            }
            let _ = tx.send(Report::Gone { said });
        });
        if let Err(e) = listen {
            kill_group(pid);
            let _ = child.wait();
            return Err(BuildError::Io { what: "starting the job runner".into(), source: e });
        }
        let ids: HashMap<String, usize> = jobs.iter().enumerate().map(|(id, job)| (job.label.clone(), id)).collect();
        Ok(Dispatcher {
            child: Some(child),
            pid,
            stdin: Some(stdin),
            reports,
            host: host.to_path_buf(),
            started: HashMap::new(),
            ids,
            events: VecDeque::new(),
            gone: false,
        })
    }

    /// Lets the runner end once its jobs have, and waits for it until `until`.
    pub fn finish(mut self, until: Instant) {
        self.stdin = None;
        if self.gone {
            return;
        }
        loop {
            match self.reports.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Report::Gone { .. }) | Err(_) => break,
                Ok(Report::Ended { .. }) => {}
            }
        }
        // Drop reaps it (and kills it first if it is still there).
    }

    /// The output job `id` left, as events of the job at `index`.
    fn output_events(&mut self, id: usize, index: usize) {
        for (suffix, stderr) in [("out", false), ("err", true)] {
            let path = self.host.join(LOG_DIR).join(format!("{id}.{suffix}"));
            let (bytes, cut) = read_output(&path);
            for text in split_lines(&bytes) {
                self.events.push_back(Event::Line { job: index, stderr, text });
            }
            if cut > 0 {
                self.events.push_back(Event::Line {
                    job: index,
                    stderr: false,
                    text: format!("({cut} more bytes of output not shown)"),
                });
            }
            self.events.push_back(Event::Closed { job: index });
        }
    }

    fn receive(&mut self, report: Report) {
        match report {
            Report::Ended { id, code } => {
                let Some(index) = self.started.remove(&id) else { return };
                self.output_events(id, index);
                let status = unwrap_shell_status(ExitStatus::from_raw((code & 0xff) << 8));
                self.events.push_back(Event::Exited { job: index, status: Ok(status) });
            }
            Report::Gone { said } => {
                self.gone = true;
                let mut left: Vec<(usize, usize)> = self.started.drain().collect();
                left.sort_by_key(|(_, index)| *index);
                for (id, index) in left {
                    self.output_events(id, index);
                    let why = if said.is_empty() {
                        "the job runner ended before the job did".to_string()
                    } else {
                        said.clone()
                    };
                    self.events.push_back(Event::Exited { job: index, status: Err(why) });
                }
            }
        }
    }
}

impl Starter for Dispatcher {
    fn start(&mut self, index: usize, job: &Job) -> Result<(), BuildError> {
        let io_error = |source| BuildError::Io { what: format!("{}: cannot start it", job.step), source };
        let id = *self.ids.get(&job.label).ok_or_else(|| io_error(io::Error::other("unknown job")))?;
        let stdin = self.stdin.as_mut().ok_or_else(|| io_error(io::Error::other("the job runner was closed")))?;
        stdin.write_all(format!("{id}\n").as_bytes()).map_err(io_error)?;
        self.started.insert(id, index);
        Ok(())
    }

    fn next_event(&mut self, until: Instant) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.gone {
                return None;
            }
            match self.reports.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(report) => self.receive(report),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn kill(&mut self) {
        if self.child.is_some() {
            kill_group(self.pid);
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            // Normally it has ended by now; otherwise the build was abandoned.
            if !matches!(child.try_wait(), Ok(Some(_))) {
                kill_group(self.pid);
                let _ = child.wait();
            }
        }
    }
}

/// The runner: reads job numbers, starts each in the background with its output in files,
/// reports `N <status>`, and waits for what it started when its input ends.
fn script(jobs: &[Job], log: &Path) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"# The builder's job runner (openplc-builder, runner/dispatch.rs).\n");
    s.extend_from_slice(b"while IFS= read -r job; do\n  case \"$job\" in\n");
    for (id, job) in jobs.iter().enumerate() {
        let out = log.join(format!("{id}.out"));
        let err = log.join(format!("{id}.err"));
        s.extend_from_slice(format!("    {id}) (").as_bytes());
        s.extend_from_slice(&quote(job.program.as_bytes()));
        for arg in &job.args {
            s.push(b' ');
            s.extend_from_slice(&quote(arg.as_bytes()));
        }
        s.extend_from_slice(b" </dev/null >");
        s.extend_from_slice(&quote(out.as_os_str().as_bytes()));
        s.extend_from_slice(b" 2>");
        s.extend_from_slice(&quote(err.as_os_str().as_bytes()));
        s.extend_from_slice(format!("; echo \"{id} $?\") & ;;\n").as_bytes());
    }
    s.extend_from_slice(b"    *) echo \"$job 127\" ;;\n  esac\ndone\nwait\n");
    s
}

/// `arg` in single quotes for sh: every byte literal, a quote written as `'\''`.
fn quote(arg: &[u8]) -> Vec<u8> {
    let mut q = Vec::with_capacity(arg.len() + 2);
    q.push(b'\'');
    for &b in arg {
        if b == b'\'' {
            q.extend_from_slice(b"'\\''");
        } else {
            q.push(b);
        }
    }
    q.push(b'\'');
    q
}

/// A job's output file, at most [`MAX_OUTPUT_BYTES`] of it, and how many bytes were left
/// out. A missing file is no output (the job never started).
fn read_output(path: &Path) -> (Vec<u8>, u64) {
    let Ok(file) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) else {
        return (Vec::new(), 0);
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    let _ = file.take(MAX_OUTPUT_BYTES).read_to_end(&mut bytes);
    let cut = size.saturating_sub(bytes.len() as u64);
    (bytes, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_quoted_for_the_shell() {
        assert_eq!(quote(b"plain"), b"'plain'");
        assert_eq!(quote(b"it's $HOME `x` \\"), b"'it'\\''s $HOME `x` \\'");
        let jobs = [Job {
            label: "Compiling a'b.c".into(),
            step: "s".into(),
            program: "cc".into(),
            args: vec!["-c".into(), "a'b.c".into()],
        }];
        let text = String::from_utf8(script(&jobs, Path::new("/build/log"))).expect("utf-8");
        assert!(
            text.contains(
                "0) ('cc' '-c' 'a'\\''b.c' </dev/null >'/build/log/0.out' 2>'/build/log/0.err'; echo \"0 $?\") & ;;"
            ),
            "{text}"
        );
    }
}
