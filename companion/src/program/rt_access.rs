//! What rt-core's own account (`rt_user`) may read of the data directory: the built
//! programs, and nothing the companion keeps to itself.
//!
//! rt-core runs uploaded code, so it runs as an account of its own (scripts/install's
//! `openplc-rt`), which must open `programs/<id>/program.so` and nothing more. The companion
//! keeps this layout at every start (an install made before the account existed is brought
//! in line):
//!
//! ```text
//! <data dir>      owner rwx, rt group --x (through to programs/, no listing), others ---
//! programs/       owner rwx, rt group r-x, setgid (what is made in it belongs to the rt group)
//! programs/<id>/  the same: the bundle (src/) and program.so, group-readable, never writable
//! ```
//!
//! Everything else keeps the companion's own group and gives that group nothing, so the rt
//! account is "others" there: `secrets/` (0700), `tls/` (0700), `users.json` (0600),
//! `uploads/` (0700) and `logs/` (0750) are closed to it. Files written world-readable by
//! design (`state.json`, `settings.json`, `plugins.conf`, `conf/`) stay readable by name; the
//! systemd unit of rt-core hides even those (scripts/openplc-rt.service).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, lchown};
use std::path::Path;

/// An account, as the system's user database has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    /// Its primary group: the group rt-core's files and shared memory belong to.
    pub gid: u32,
}

/// Looks `user` up in the system's user database.
pub fn account(user: &str) -> io::Result<Account> {
    let name = CString::new(user)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{user:?} is not a user name")))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data (integers and pointers); all-zero is a valid value that
    // getpwnam_r overwrites.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local: the NUL-terminated name, the passwd record,
    // the string buffer with its true length, and the result pointer. The record's strings
    // point into `buf`, which outlives every use (only the integers are read).
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no user named {user:?} on this system")));
    }
    Ok(Account { uid: pwd.pw_uid, gid: pwd.pw_gid })
}

/// Gives group `gid` the layout above in `data_dir`. The companion must own the files and be
/// root or a member of `gid`.
pub fn share_programs(data_dir: &Path, gid: u32) -> io::Result<()> {
    let with = |path: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    lchown(data_dir, None, Some(gid)).map_err(|e| with(data_dir, e))?;
    fs::set_permissions(data_dir, fs::Permissions::from_mode(0o710)).map_err(|e| with(data_dir, e))?;
    let programs = data_dir.join("programs");
    fs::create_dir_all(&programs).map_err(|e| with(&programs, e))?;
    share_tree(&programs, gid)
}

/// `dir` and everything in it: the group `gid`, read (and traverse) for the group, nothing
/// for others; directories setgid.
fn share_tree(dir: &Path, gid: u32) -> io::Result<()> {
    let with = |path: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    lchown(dir, None, Some(gid)).map_err(|e| with(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o2750)).map_err(|e| with(dir, e))?;
    for entry in fs::read_dir(dir).map_err(|e| with(dir, e))? {
        let entry = entry.map_err(|e| with(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| with(&path, e))?;
        if kind.is_dir() && entry.file_name() == crate::program::snapshot::FOLDER {
            // A program's project snapshot is for admins over the API only, never for the
            // account that runs uploaded code.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(|e| with(&path, e))?;
        } else if kind.is_dir() {
            share_tree(&path, gid)?;
        } else if kind.is_file() {
            lchown(&path, None, Some(gid)).map_err(|e| with(&path, e))?;
            let mode = entry.metadata().map_err(|e| with(&path, e))?.permissions().mode() & 0o700;
            // The group reads (and runs) what the owner does, and never writes.
            fs::set_permissions(&path, fs::Permissions::from_mode(mode | ((mode & 0o500) >> 3)))
                .map_err(|e| with(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn nobody_is_an_account_and_a_typo_is_not() {
        assert_eq!(account("root").unwrap(), Account { uid: 0, gid: 0 });
        let err = account("surely-no-such-user").unwrap_err();
        assert!(err.to_string().contains("no user named"), "{err}");
        assert!(account("a\0b").is_err());
    }

    #[test]
    fn programs_become_group_readable_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        fs::create_dir_all(data.join("programs/p1/src")).unwrap();
        fs::write(data.join("programs/p1/program.so"), b"so").unwrap();
        fs::set_permissions(data.join("programs/p1/program.so"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(data.join("programs/p1/src/POUS.c"), b"c").unwrap();
        fs::create_dir_all(data.join("programs/p1/snapshot")).unwrap();
        fs::write(data.join("programs/p1/snapshot/project.zip"), b"zip").unwrap();
        fs::set_permissions(data.join("programs/p1/snapshot"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(data.join("secrets")).unwrap();
        fs::write(data.join("users.json"), b"{}").unwrap();
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        share_programs(data, gid).unwrap();

        let mode = |p: &str| fs::metadata(data.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode(""), 0o710);
        assert_eq!(mode("programs"), 0o2750);
        assert_eq!(mode("programs/p1"), 0o2750);
        assert_eq!(mode("programs/p1/program.so"), 0o750);
        assert_eq!(mode("programs/p1/src/POUS.c") & 0o077, 0o040, "group read, nothing for others");
        assert_eq!(fs::metadata(data.join("programs/p1/program.so")).unwrap().gid(), gid);
        assert_eq!(mode("programs/p1/snapshot"), 0o700, "the project snapshot stays the companion's");
        // A folder made later in programs/ inherits the group through the setgid bit.
        fs::create_dir(data.join("programs/p2")).unwrap();
        assert_ne!(mode("programs/p2") & 0o2000, 0, "setgid inherited");
    }
}
