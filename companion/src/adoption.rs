//! Whether an rt-core found running on this companion's shared memory is its own to adopt.
//!
//! A companion that starts while an rt-core already runs (it was restarted or upgraded)
//! attaches to it and leaves the PLC as it is. That is right only when the PLC runs this
//! installation's program: another installation configured with the same shared memory,
//! or a test that picked the same name, must not be taken over, or the companion would
//! report, debug, stop and replace a program it knows nothing about (another machine's
//! plant). So:
//!
//! - an **idle** rt-core (no program loaded) is adopted: nothing runs that could be lost,
//!   and the companion loads its own program into it;
//! - an rt-core running a program is adopted only when that program is the companion's
//!   own: a library of its data directory's `programs/` (the path rt-core loaded it from),
//!   or, where rt-core no longer knows the path (it restarted in place and reloaded the
//!   program from a descriptor), the same program MD5 as the companion's current program;
//! - anything else is refused: the companion does not attach, says so in its log and in
//!   `/api/status`, and checks again every few seconds (a refused rt-core that goes away
//!   is replaced by the companion's own).

use shared_abi::debug::ProgramInfo;
use std::path::{Path, PathBuf};

/// What the companion knows of its own program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnProgram {
    /// The data directory: its `programs/` holds every library this companion built.
    pub data_dir: PathBuf,
    /// The current program's MD5 (state.json), when known.
    pub md5: Option<String>,
}

/// The verdict on a running rt-core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adoption {
    /// No program loaded: adopt it and load ours.
    Idle,
    /// It runs our program: adopt it as it is.
    Ours,
    /// It runs another installation's program: leave it alone.
    Foreign { path: String, md5: Option<String> },
}

/// Judges the program `running` (rt-core's published program information) against ours.
pub fn judge(running: &ProgramInfo, own: &OwnProgram) -> Adoption {
    if running.program_gen == 0 {
        return Adoption::Idle;
    }
    let path = running.path_str();
    let theirs_md5 = running.md5_str().map(|m| m.to_ascii_lowercase());
    if !path.is_empty() && inside(Path::new(path), &own.data_dir.join("programs")) {
        return Adoption::Ours;
    }
    let ours_md5 = own.md5.as_deref().map(str::to_ascii_lowercase);
    if theirs_md5.is_some() && theirs_md5 == ours_md5 {
        return Adoption::Ours;
    }
    Adoption::Foreign { path: path.to_string(), md5: theirs_md5 }
}

/// Whether `path` lies inside `dir`, compared as the file system resolves them (a relative
/// data directory, a symlink) where both exist, else as written.
fn inside(path: &Path, dir: &Path) -> bool {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    resolve(path).starts_with(resolve(dir))
}

impl Adoption {
    /// The log line and `/api/status` detail for a refusal.
    pub fn refusal(&self, shm: &Path, rt_pid: u32) -> Option<String> {
        let Adoption::Foreign { path, md5 } = self else { return None };
        Some(format!(
            "openplc-rt (pid {rt_pid}) on {} runs a program that is not this runtime's ({}{}): it was left alone and \
             is not attached. Stop that openplc-rt (openplc-rt --shm {} shutdown) or give this runtime another \
             shared memory (--shm); the check is repeated every few seconds",
            shm.display(),
            if path.is_empty() { "path unknown" } else { path },
            md5.as_ref().map(|m| format!(", MD5 {m}")).unwrap_or_default(),
            shm.display(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn info(program_gen: u32, path: &str, md5: Option<&str>) -> ProgramInfo {
        let mut i = ProgramInfo::zeroed();
        i.program_gen = program_gen;
        i.path[..path.len()].copy_from_slice(path.as_bytes());
        i.path_len = path.len() as u32;
        if let Some(m) = md5 {
            i.md5.copy_from_slice(m.as_bytes());
            i.has_md5 = 1;
        }
        i
    }

    const MD5: &str = "0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn an_idle_core_and_our_own_programs_are_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let own = OwnProgram { data_dir: dir.path().join("data"), md5: Some(MD5.to_uppercase()) };
        assert_eq!(judge(&info(0, "", None), &own), Adoption::Idle);
        let lib = own.data_dir.join("programs/p7/program.so");
        assert_eq!(
            judge(&info(3, lib.to_str().unwrap(), Some(OTHER)), &own),
            Adoption::Ours,
            "an older program of ours"
        );
        assert_eq!(judge(&info(3, "/proc/self/fd/9", Some(MD5)), &own), Adoption::Ours, "reloaded after a restart");
    }

    #[test]
    fn another_installations_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let own = OwnProgram { data_dir: dir.path().join("mine"), md5: Some(MD5.into()) };
        let theirs = dir.path().join("theirs/programs/p1/program.so");
        let verdict = judge(&info(2, theirs.to_str().unwrap(), Some(OTHER)), &own);
        assert_eq!(verdict, Adoption::Foreign { path: theirs.to_str().unwrap().into(), md5: Some(OTHER.into()) });
        let text = verdict.refusal(Path::new("/dev/shm/x"), 42).unwrap();
        assert!(text.contains("pid 42") && text.contains("not this runtime's") && text.contains(OTHER), "{text}");
        assert!(matches!(judge(&info(2, "/proc/self/fd/9", None), &own), Adoption::Foreign { .. }), "nothing to tell");
        let none = OwnProgram { data_dir: own.data_dir.clone(), md5: None };
        assert!(matches!(judge(&info(2, "/elsewhere.so", None), &none), Adoption::Foreign { .. }));
        assert_eq!(Adoption::Ours.refusal(Path::new("/dev/shm/x"), 1), None);
    }
}
