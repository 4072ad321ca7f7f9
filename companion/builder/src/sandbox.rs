//! Where the compilers, the linker and the load check run: a bubblewrap sandbox that shows
//! them the build folder and the toolchain, and nothing else.
//!
//! An uploaded bundle is C or C++ the compiler reads with our privileges: an `#include` of
//! an absolute path, or an `.incbin` in an `asm` block, would copy any file the runtime can
//! read (its token secret, its TLS key, `/etc/shadow` when it runs as root) into the build
//! log that viewers read. So every job runs in `bwrap` with, as its whole file system:
//!
//! | path | what | how |
//! |---|---|---|
//! | `/build` | the build folder: a copy of the bundle (`src/`), our adapter and objects (`out/`), `tmp/` | read-write (read-only for the load check) |
//! | `/usr`, and `/bin`, `/sbin`, `/lib*` as on the host (symlinks into `/usr` on Debian) | the toolchain, system headers and libraries | read-only |
//! | `/etc/alternatives`, `/etc/ld.so.cache` | what `cc`/`c++` and the dynamic loader need | read-only |
//! | `/proc`, `/dev` | a fresh procfs of the new pid namespace; null, zero, random, tty | bwrap's own |
//!
//! and new user, pid, network (loopback only), IPC, UTS and cgroup namespaces, no nested user
//! namespaces, a new session, death with the builder, no capabilities, `no_new_privs`. No data
//! directory, no `/home`, `/root`, `/tmp` or the rest of `/etc`. When the runtime runs as
//! root, the jobs first drop to `nobody` (65534) and bwrap runs unprivileged: the sandbox is
//! the same as on a device where the runtime runs as its own user.

use crate::BuildError;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Whether the compilers run in the sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// In the bubblewrap sandbox; a build is refused when it cannot run (the default).
    #[default]
    Sandbox,
    /// Directly, with the runtime's view of the file system (minus root, when it is root):
    /// only for a machine without bubblewrap where every uploader is trusted. Every build
    /// log says so.
    Unconfined,
}

/// The account a job runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

/// `nobody`/`nogroup`: the account jobs run as when the runtime is root. It owns nothing on
/// a Debian system, and needs no entry in /etc/passwd to be used.
pub const NOBODY: Identity = Identity { uid: 65534, gid: 65534 };

impl Identity {
    /// Whom builds run as: `nobody` when this process is root, else this process's own
    /// account (it holds no privilege to switch).
    pub fn for_builds() -> Option<Identity> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        (unsafe { libc::geteuid() } == 0).then_some(NOBODY)
    }
}

/// Where the build folder appears inside the sandbox.
pub(crate) const BUILD_ROOT: &str = "/build";

/// Resource limits of every job.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub cpu_seconds: u64,
    pub address_space: u64,
    pub file_size: u64,
    /// Run at idle priority (`SCHED_IDLE`): work nobody waits for, such as precompiling
    /// headers for the next build, takes only CPU time nothing else wants.
    pub idle: bool,
}

/// How a job sees the build folder.
pub(crate) struct View<'a> {
    /// The build folder on the host.
    pub host: &'a Path,
    pub writable: bool,
    /// The job's working directory, relative to the build folder.
    pub cwd: &'a str,
}

/// Starts jobs: in bubblewrap, or directly when the sandbox is off.
#[derive(Clone)]
pub(crate) struct Launcher {
    /// `bwrap`, when sandboxed.
    bwrap: Option<PathBuf>,
    identity: Option<Identity>,
}

impl Launcher {
    /// Finds bubblewrap and checks that it runs here, as the jobs will run it.
    pub fn new(isolation: Isolation) -> Result<Launcher, BuildError> {
        let identity = Identity::for_builds();
        match isolation {
            Isolation::Unconfined => Ok(Launcher { bwrap: None, identity }),
            Isolation::Sandbox => {
                let bwrap = find_program(OsStr::new("bwrap")).ok_or_else(|| BuildError::SandboxUnavailable {
                    detail: "bwrap (bubblewrap) is not installed".into(),
                })?;
                let launcher = Launcher { bwrap: Some(bwrap), identity };
                launcher.probe()?;
                Ok(launcher)
            }
        }
    }

    pub fn sandboxed(&self) -> bool {
        self.bwrap.is_some()
    }

    /// The account jobs run as (`None`: this process's own).
    pub fn identity(&self) -> Option<Identity> {
        self.identity
    }

    /// Where jobs see the build folder `host`.
    pub fn build_root(&self, host: &Path) -> PathBuf {
        if self.sandboxed() { PathBuf::from(BUILD_ROOT) } else { host.to_path_buf() }
    }

    /// One line for the build log: how the jobs are confined.
    pub fn describe(&self) -> String {
        let who = match self.identity {
            Some(id) => format!("as uid {}", id.uid),
            None => "as this runtime's own user".to_string(),
        };
        if self.sandboxed() {
            format!(
                "The compiler runs in a sandbox ({who}): it sees the bundle, the toolchain and the system headers, \
                 and no network"
            )
        } else {
            format!(
                "The compiler runs WITHOUT a sandbox ({who}; build_sandbox is off): an uploaded program can include \
                 any file this user can read"
            )
        }
    }

    /// Checks that `program` can run: it exists on PATH (or at its path) and, in the sandbox,
    /// lives in what the sandbox shows, or it is one we put in the build folder.
    pub fn check_program(&self, program: &str) -> io::Result<()> {
        if self.sandboxed() && Path::new(program).starts_with(BUILD_ROOT) {
            return Ok(());
        }
        let found = find_program(OsStr::new(program))
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))?;
        if !self.sandboxed() {
            return Ok(());
        }
        let real = found.canonicalize()?;
        if !SYSTEM_ROOTS.iter().any(|root| real.starts_with(root)) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is outside the directories the compiler sandbox shows (/usr)", real.display()),
            ));
        }
        Ok(())
    }

    /// The command that runs `program args` with `view` of the build folder. The caller
    /// adds the environment, pipes and [`confine`] in `pre_exec`. With `block_fd`,
    /// bubblewrap sets the sandbox up and then waits until that descriptor (which the child
    /// must inherit) has something to read before it runs `program`.
    pub fn command(&self, program: &str, args: &[OsString], view: &View<'_>, block_fd: Option<RawFd>) -> Command {
        let Some(bwrap) = &self.bwrap else {
            let mut cmd = Command::new(program);
            cmd.args(args).current_dir(view.host.join(view.cwd));
            return cmd;
        };
        let mut cmd = Command::new(bwrap);
        cmd.args(sandbox_args());
        cmd.arg(if view.writable { "--bind" } else { "--ro-bind" }).arg(view.host).arg(BUILD_ROOT);
        cmd.arg("--chdir").arg(Path::new(BUILD_ROOT).join(view.cwd));
        if let Some(fd) = block_fd {
            cmd.arg("--block-fd").arg(fd.to_string());
        }
        cmd.arg("--").arg(program).args(args);
        // bwrap's own working directory does not matter; `/` always exists.
        cmd.current_dir("/");
        cmd
    }

    /// Runs `true` in the sandbox once per process (and again after a failure): bubblewrap
    /// is installed but user namespaces can be off, or a service manager can forbid them.
    fn probe(&self) -> Result<(), BuildError> {
        static WORKS: OnceLock<()> = OnceLock::new();
        if WORKS.get().is_some() {
            return Ok(());
        }
        let Some(bwrap) = &self.bwrap else { return Ok(()) };
        let mut cmd = Command::new(bwrap);
        cmd.args(sandbox_args()).args(["--", "true"]).current_dir("/");
        cmd.env_clear().stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let identity = self.identity;
        // SAFETY: `confine` only makes async-signal-safe system calls on copied values.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || confine(None, identity));
        }
        let unavailable = |detail: String| BuildError::SandboxUnavailable { detail };
        let output = cmd.output().map_err(|e| unavailable(format!("cannot run {}: {e}", bwrap.display())))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(unavailable(if said.is_empty() { format!("bwrap {}", output.status) } else { said }));
        }
        let _ = WORKS.set(());
        Ok(())
    }
}

/// What the sandbox shows of the host, read-only: the toolchain lives under `/usr` (Debian's
/// `/bin`, `/lib`, ... are symlinks into it; on a system where they are directories they are
/// shown as they are).
pub(crate) const SYSTEM_ROOTS: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
/// Files of /etc the toolchain needs: the `cc`/`c++` alternatives and the loader's cache.
const SYSTEM_ETC: [&str; 2] = ["/etc/alternatives", "/etc/ld.so.cache"];

/// Everything but the build folder and the command.
fn sandbox_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    for root in SYSTEM_ROOTS {
        match std::fs::symlink_metadata(root) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(root) {
                    args.extend(["--symlink".into(), target.into_os_string(), root.into()]);
                }
            }
            Ok(meta) if meta.is_dir() => args.extend(["--ro-bind".into(), root.into(), root.into()]),
            _ => {}
        }
    }
    for path in SYSTEM_ETC {
        args.extend(["--ro-bind-try".into(), path.into(), path.into()]);
    }
    args
}

/// `program` as the child would find it: a path, or the first executable file of that name
/// on PATH.
pub(crate) fn find_program(program: &OsStr) -> Option<PathBuf> {
    let is_executable =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let as_path = Path::new(program);
    if as_path.components().count() > 1 {
        return is_executable(as_path).then(|| as_path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

/// What a job's process does between fork and exec: lowers its resource limits, drops
/// every ambient capability (bubblewrap refuses to run with capabilities it was not given
/// by a setuid bit, and a compiler needs none), and becomes `identity` when one is given.
///
/// Only async-signal-safe system calls on the values passed in: it runs in the forked child.
pub(crate) fn confine(limits: Option<Limits>, identity: Option<Identity>) -> io::Result<()> {
    if let Some(limits) = limits {
        set_limit(libc::RLIMIT_CPU, limits.cpu_seconds)?;
        set_limit(libc::RLIMIT_AS, limits.address_space)?;
        set_limit(libc::RLIMIT_FSIZE, limits.file_size)?;
        set_limit(libc::RLIMIT_CORE, 0)?;
        if limits.idle {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler on this process with a parameter on this stack
            // frame. Lowering the policy to SCHED_IDLE needs no privilege.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    // SAFETY: prctl with integer arguments only; clearing the ambient set cannot fail on a
    // kernel that has one (>= 4.3), and EINVAL from an older kernel means there is none.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    if let Some(id) = identity {
        // SAFETY: setgroups with an empty list, then setresgid and setresuid: plain system
        // calls on integers. The group changes come first, while we may still change them.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(id.gid, id.gid, id.gid) != 0
                || libc::setresuid(id.uid, id.uid, id.uid) != 0
            {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// Lowers both the soft and the hard limit to `value`, never raising them.
fn set_limit(resource: Resource, value: u64) -> io::Result<()> {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we own on this stack frame.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let value = (value as libc::rlim_t).min(current.rlim_max);
    let wanted = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: setrlimit reads one rlimit from the struct we own on this stack frame.
    if unsafe { libc::setrlimit(resource, &wanted) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How builds are confined here, or why the sandbox cannot run: for the runtime's start-up
/// log, so a device without a working sandbox is noticed before the first upload.
pub fn sandbox_status(isolation: Isolation) -> Result<String, BuildError> {
    Launcher::new(isolation).map(|l| l.describe())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_shows_the_toolchain_read_only_and_nothing_writable() {
        let args: Vec<String> = sandbox_args().iter().map(|a| a.to_string_lossy().into_owned()).collect();
        for flag in ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"] {
            assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
        }
        assert!(!args.iter().any(|a| a == "--bind" || a == "--share-net"), "{args:?}");
        let usr = args.windows(3).any(|w| w[0] == "--ro-bind" && w[1] == "/usr" && w[2] == "/usr");
        assert!(usr, "{args:?}");
        assert!(!args.iter().any(|a| a.starts_with("/home") || a.starts_with("/root") || a == "/etc"), "{args:?}");
    }

    #[test]
    fn programs_are_found_on_path_or_at_their_path() {
        assert!(find_program(OsStr::new("sh")).is_some());
        assert_eq!(find_program(OsStr::new("/nonexistent/cc")), None);
        assert_eq!(find_program(OsStr::new("surely-no-such-compiler")), None);
    }
}
