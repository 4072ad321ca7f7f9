//! One process per job, its output streamed line by line as it arrives: the load check. A
//! job can be started ahead of time ([`Prestarted`]): its sandbox is set up while the build
//! compiles and links, and waits on a pipe until it is released.

use super::{Context, Event, Job, MAX_LINE_BYTES, Starter, unwrap_shell_status};
use crate::BuildError;
use crate::sandbox::confine;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Instant;

/// Starts each job as its own process (in its own sandbox).
pub(crate) struct Processes<'a> {
    ctx: &'a Context<'a>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Process groups of started jobs whose exit has not been seen.
    running: Vec<(usize, i32)>,
    prestarted: Option<Prestarted>,
}

impl<'a> Processes<'a> {
    pub fn new(ctx: &'a Context<'a>) -> Processes<'a> {
        let (tx, rx) = mpsc::channel();
        Processes { ctx, tx, rx, running: Vec::new(), prestarted: None }
    }

    /// The first job started is `prestarted`, released rather than spawned.
    pub fn with_prestarted(ctx: &'a Context<'a>, prestarted: Prestarted) -> Processes<'a> {
        Processes { prestarted: Some(prestarted), ..Processes::new(ctx) }
    }
}

impl Starter for Processes<'_> {
    fn start(&mut self, index: usize, job: &Job) -> Result<(), BuildError> {
        let started = match self.prestarted.take() {
            Some(Prestarted::Held(held)) => held.release(),
            _ => Held::spawn(job, self.ctx, None)?.release(),
        };
        let (child, pid, stdout, stderr) = started.map_err(|e| io_error(job, e))?;
        self.running.push((index, pid));
        if let Err(err) = follow(child, index, stdout, stderr, &self.tx) {
            kill_group(pid);
            return Err(io_error(job, err));
        }
        Ok(())
    }

    fn next_event(&mut self, until: Instant) -> Option<Event> {
        match self.rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(event) => {
                if let Event::Exited { job, .. } = &event {
                    self.running.retain(|(index, _)| index != job);
                }
                Some(event)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    fn kill(&mut self) {
        for (_, pid) in &self.running {
            kill_group(*pid);
        }
    }
}

/// A job started ahead of time: in the sandbox, bubblewrap sets the sandbox up at once and
/// then waits until the job is released; unconfined there is nothing to set up, and the job
/// is spawned when it starts.
pub(crate) enum Prestarted {
    Held(Held),
    Later,
}

impl Prestarted {
    pub fn spawn(job: &Job, ctx: &Context<'_>) -> Result<Prestarted, BuildError> {
        if !ctx.launcher.sandboxed() {
            return Ok(Prestarted::Later);
        }
        let (read, write) = pipe().map_err(|e| io_error(job, e))?;
        Ok(Prestarted::Held(Held::spawn(job, ctx, Some((read, File::from(write))))?))
    }
}

/// A spawned job's process, possibly held at a gate.
pub(crate) struct Held {
    child: Option<Child>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// Writing to it lets bubblewrap go on (`--block-fd`).
    gate: Option<File>,
}

impl Held {
    /// Spawns `job`; with a `gate` (the read end for bubblewrap, the write end for us),
    /// bubblewrap sets up the sandbox and then waits for [`Held::release`].
    fn spawn(job: &Job, ctx: &Context<'_>, gate: Option<(OwnedFd, File)>) -> Result<Held, BuildError> {
        ctx.launcher
            .check_program(&job.program)
            .map_err(|source| BuildError::CompilerUnavailable { program: job.program.clone(), source })?;
        let block_fd = gate.as_ref().map(|(read, _)| read.as_raw_fd());
        let mut cmd = ctx.launcher.command(&job.program, &job.args, &ctx.view, block_fd);
        scrub(&mut cmd, ctx);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let (limits, identity) = (ctx.limits, ctx.launcher.identity());
        // SAFETY: the closure runs in the forked child before exec. It only makes
        // async-signal-safe system calls (fcntl on a descriptor number copied into it;
        // `confine`: getrlimit/setrlimit, prctl, setgroups, setresgid, setresuid) and
        // allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(fd) = block_fd
                    && libc::fcntl(fd, libc::F_SETFD, 0) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                confine(Some(limits), identity)
            });
        }
        let mut child =
            cmd.spawn().map_err(|source| BuildError::CompilerUnavailable { program: job.program.clone(), source })?;
        // Our copy of the read end closes here; bubblewrap holds its own.
        let gate = gate.map(|(_, write)| write);
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        Ok(Held { child: Some(child), stdout, stderr, gate })
    }

    /// Lets the job run; its process, process group, and output.
    fn release(mut self) -> io::Result<(Child, i32, ChildStdout, ChildStderr)> {
        if let Some(mut gate) = self.gate.take() {
            gate.write_all(b"g")?;
        }
        let (Some(child), Some(stdout), Some(stderr)) = (self.child.take(), self.stdout.take(), self.stderr.take())
        else {
            return Err(io::Error::other("no pipes to the process"));
        };
        let pid = child.id() as i32;
        Ok((child, pid, stdout, stderr))
    }
}

impl Drop for Held {
    /// Never released: the process is killed and reaped.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(child.id() as i32);
            let _ = child.wait();
        }
    }
}

/// The environment every job gets: PATH and LANG only, English diagnostics, and temporary
/// files in the build folder (nowhere else is writable in the sandbox).
pub(super) fn scrub(cmd: &mut Command, ctx: &Context<'_>) {
    cmd.env_clear();
    for key in ["PATH", "LANG"] {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    // English diagnostics whatever LANG says, so that their level can be read off them.
    cmd.env("LC_MESSAGES", "C");
    cmd.env("TMPDIR", &ctx.tmpdir);
}

/// A pipe, both ends close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads the job's output and waits for it, on threads of their own.
fn follow(
    mut child: Child,
    index: usize,
    stdout: ChildStdout,
    stderr: ChildStderr,
    tx: &Sender<Event>,
) -> io::Result<()> {
    read_lines_in_thread(stdout, index, false, tx.clone())?;
    read_lines_in_thread(stderr, index, true, tx.clone())?;
    let tx = tx.clone();
    thread::Builder::new().name("builder-wait".into()).spawn(move || {
        let status = child.wait().map(unwrap_shell_status).map_err(|e| e.to_string());
        let _ = tx.send(Event::Exited { job: index, status });
    })?;
    Ok(())
}

pub(super) fn kill_group(pid: i32) {
    // SAFETY: kill() only sends a signal. The child was spawned with process_group(0), so
    // -pid names the group it leads: the job and the subprocesses it started. The job's exit
    // has not been seen, so the id is not yet free for reuse.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

fn io_error(job: &Job, source: io::Error) -> BuildError {
    BuildError::Io { what: format!("{}: cannot follow the process", job.step), source }
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
            match (&mut reader).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut buf) {
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
