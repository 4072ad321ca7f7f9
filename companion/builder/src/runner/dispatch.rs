//! One sandbox for all the jobs of a build: a small job runner (a POSIX shell script of our
//! own, `sh` from the toolchain's `/usr`) runs inside it and, for each line `N <command>` it
//! reads on its standard input (the command quoted by us, every argument in single quotes),
//! runs the command in the background with its output in `log/N.out` and `log/N.err` of the
//! build folder, and writes `N <status>` on its standard output when it ends. Closing its
//! standard input lets the runner finish once the jobs it started have ended. The builder
//! decides what runs and when (parallelism, stopping after a failure, the deadline) exactly as
//! with one process per job; only the sandbox's start-up is paid once, and it is started as
//! soon as the build folder exists, so that it is ready by the time the first job is.
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
    next_id: usize,
    events: VecDeque<Event>,
    /// The runner ended; what it said.
    gone: Option<String>,
    /// Checks each job's program before it is sent.
    launcher: crate::sandbox::Launcher,
}

impl Dispatcher {
    /// Starts the runner with `ctx.view` of the build folder `host` (the script is written
    /// into it).
    pub fn spawn(ctx: &Context<'_>, host: &Path) -> Result<Dispatcher, BuildError> {
        let log_as_seen = ctx.launcher.build_root(host).join(LOG_DIR);
        let script_path = host.join(LOG_DIR).join(SCRIPT);
        std::fs::write(&script_path, script(&log_as_seen))
            .map_err(|e| BuildError::io(format!("cannot write {}", script_path.display()), e))?;

        let args = vec![log_as_seen.join(SCRIPT).into_os_string()];
        let mut cmd = ctx.launcher.command("/bin/sh", &args, &ctx.view, None);
        scrub(&mut cmd, ctx);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let (limits, identity) = (ctx.limits, ctx.launcher.identity());
        // SAFETY: the closure runs in the forked child before exec. `confine` only makes
        // async-signal-safe system calls (getrlimit/setrlimit, prctl, setgroups, setresgid,
        // setresuid, sched_setscheduler) on values copied into it; it allocates nothing and
        // touches no lock.
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
            // What the runner itself prints (bubblewrap's errors): read on a thread of its
            // own, so that a full pipe never stops it.
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
            let said = stderr_reader.join().unwrap_or_default();
            let _ = tx.send(Report::Gone { said });
        });
        if let Err(e) = listen {
            kill_group(pid);
            let _ = child.wait();
            return Err(BuildError::Io { what: "starting the job runner".into(), source: e });
        }
        Ok(Dispatcher {
            child: Some(child),
            pid,
            stdin: Some(stdin),
            reports,
            host: host.to_path_buf(),
            started: HashMap::new(),
            next_id: 0,
            events: VecDeque::new(),
            gone: None,
            launcher: ctx.launcher.clone(),
        })
    }
    /// Lets the runner end once its jobs have, and waits for it until `until`.
    pub fn finish(mut self, until: Instant) {
        self.stdin = None;
        if self.gone.is_some() {
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
                self.gone = Some(said);
                self.abandon_started();
            }
        }
    }

    /// The runner is gone: every job it was sent ends here, with what it left.
    fn abandon_started(&mut self) {
        let said = self.gone.clone().unwrap_or_default();
        let mut left: Vec<(usize, usize)> = self.started.drain().collect();
        left.sort_by_key(|(_, index)| *index);
        for (id, index) in left {
            self.output_events(id, index);
            let why =
                if said.is_empty() { "the job runner ended before the job did".to_string() } else { said.clone() };
            self.events.push_back(Event::Exited { job: index, status: Err(why) });
        }
    }
}

impl Starter for Dispatcher {
    fn start(&mut self, index: usize, job: &Job) -> Result<(), BuildError> {
        let io_error = |source| BuildError::Io { what: format!("{}: cannot start it", job.step), source };
        self.launcher
            .check_program(&job.program)
            .map_err(|source| BuildError::CompilerUnavailable { program: job.program.clone(), source })?;
        let id = self.next_id;
        let mut line = format!("{id} ").into_bytes();
        line.extend_from_slice(&command_line(job).map_err(|what| BuildError::NotABundle { detail: what })?);
        line.push(b'\n');
        let stdin = self.stdin.as_mut().ok_or_else(|| io_error(io::Error::other("the job runner was closed")))?;
        stdin.write_all(&line).map_err(io_error)?;
        self.next_id += 1;
        self.started.insert(id, index);
        Ok(())
    }

    fn next_event(&mut self, until: Instant) -> Option<Event> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.gone.is_some() {
                if self.started.is_empty() {
                    return None;
                }
                self.abandon_started();
                continue;
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

/// The runner: reads `N <command>` lines, runs each command in the background with its
/// output in files, reports `N <status>`, and waits for what it started when its input ends.
fn script(log: &Path) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"# The builder's job runner (openplc-builder, runner/dispatch.rs).\nlog=");
    s.extend_from_slice(&quote(log.as_os_str().as_bytes()));
    s.extend_from_slice(
        b"\nwhile IFS= read -r line; do\n  id=${line%% *}\n  cmd=${line#* }\n  case $id in ''|*[!0-9]*) continue ;; esac\n  \
          ( eval \"$cmd\" </dev/null >\"$log/$id.out\" 2>\"$log/$id.err\"; echo \"$id $?\" ) &\ndone\nwait\n",
    );
    s
}

/// `job` as one line of sh: every word in single quotes. A word with a line break (or a
/// NUL) cannot be sent; such a file name is refused.
fn command_line(job: &Job) -> Result<Vec<u8>, String> {
    let mut line = quote(job.program.as_bytes());
    for arg in &job.args {
        let bytes = arg.as_bytes();
        if bytes.iter().any(|b| matches!(b, b'\n' | b'\r' | 0)) {
            return Err(format!("{}: a file name with a line break cannot be compiled", arg.to_string_lossy()));
        }
        line.push(b' ');
        line.extend_from_slice(&quote(bytes));
    }
    Ok(line)
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
        let job = |arg: &str| Job {
            label: "l".into(),
            step: "s".into(),
            program: "cc".into(),
            args: vec!["-c".into(), arg.into()],
        };
        assert_eq!(command_line(&job("a'b.c")).expect("a line"), b"'cc' '-c' 'a'\\''b.c'");
        assert!(command_line(&job("a\nb.c")).is_err());
        let text = String::from_utf8(script(Path::new("/build/log"))).expect("utf-8");
        assert!(text.contains("log='/build/log'"), "{text}");
    }

    #[test]
    fn the_runner_runs_what_it_is_sent_and_reports_each_status() {
        use std::os::unix::fs::PermissionsExt;
        // The jobs run as nobody when the tests run as root: a folder they may use.
        let dir = tempfile::tempdir().expect("temp");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir_all(dir.path().join(LOG_DIR)).expect("log dir");
        std::fs::set_permissions(dir.path().join(LOG_DIR), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let launcher = crate::sandbox::Launcher::new(crate::Isolation::Unconfined).expect("launcher");
        let ctx = Context {
            launcher: &launcher,
            view: crate::sandbox::View { host: dir.path(), writable: true, cwd: "." },
            tmpdir: dir.path().into(),
            limits: crate::sandbox::Limits { cpu_seconds: 10, address_space: 1 << 30, file_size: 1 << 20, idle: false },
        };
        let mut runner = Dispatcher::spawn(&ctx, dir.path()).expect("runner");
        let sh = |script: &str| Job {
            label: script.into(),
            step: script.into(),
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
        };
        runner.start(0, &sh("echo 'it''s'; echo oops >&2; exit 3")).expect("start");
        runner.start(1, &sh("kill -9 $$")).expect("start");
        let until = Instant::now() + std::time::Duration::from_secs(20);
        let mut lines = Vec::new();
        let mut statuses = Vec::new();
        while statuses.len() < 2 {
            match runner.next_event(until).expect("an event") {
                Event::Line { job, stderr, text } => lines.push((job, stderr, text)),
                Event::Exited { job, status } => statuses.push((job, status.expect("a status"))),
                Event::Closed { .. } => {}
            }
        }
        statuses.sort_by_key(|(job, _)| *job);
        assert_eq!(statuses[0].1.code(), Some(3));
        assert_eq!(statuses[1].1.signal(), Some(9));
        assert!(lines.contains(&(0, false, "its".into())), "{lines:?}");
        assert!(lines.contains(&(0, true, "oops".into())), "{lines:?}");
        runner.finish(until);
    }
}
