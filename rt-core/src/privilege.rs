//! `openplc-rt run --user NAME`: give up root once what real time needs is acquired.
//!
//! As root, rt-core locks its memory, opens `/dev/cpu_dma_latency` and the shared-memory
//! file; then it becomes NAME (its uid, its primary group, no supplementary groups) keeping
//! only CAP_SYS_NICE (SCHED_FIFO, affinity) and CAP_IPC_LOCK (memory locking), as effective,
//! permitted, inheritable and ambient capabilities (ambient, so they survive a restart in
//! place, which re-executes the binary), with every other capability dropped from the
//! bounding set and `no_new_privs` set. A program's code then runs as NAME: it cannot read
//! the companion's 0600 secrets, nor regain root through a set-user-ID binary.

use std::ffi::CString;
use std::io;

const CAP_IPC_LOCK: u32 = 14;
const CAP_SYS_NICE: u32 = 23;
/// The capabilities rt-core keeps.
const KEPT: [u32; 2] = [CAP_IPC_LOCK, CAP_SYS_NICE];

const PR_SET_KEEPCAPS: libc::c_int = 8;
const PR_CAPBSET_DROP: libc::c_int = 24;
const PR_SET_NO_NEW_PRIVS: libc::c_int = 38;
const PR_CAP_AMBIENT: libc::c_int = 47;
const PR_CAP_AMBIENT_RAISE: libc::c_ulong = 2;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Why rt-core could not become the requested user.
#[derive(Debug)]
pub enum PrivilegeError {
    NoSuchUser(String),
    /// `--user` needs rt-core to start as root.
    NotRoot,
    /// A system call of the drop failed.
    Call(&'static str, io::Error),
    /// The drop did not hold (root could be regained).
    NotDropped,
}

impl std::fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivilegeError::NoSuchUser(name) => write!(f, "--user {name}: no such user"),
            PrivilegeError::NotRoot => write!(f, "--user needs openplc-rt to start as root"),
            PrivilegeError::Call(what, e) => write!(f, "dropping privileges: {what}: {e}"),
            PrivilegeError::NotDropped => write!(f, "dropping privileges: root could still be regained"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// A user account, looked up by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

pub fn lookup(name: &str) -> Result<Account, PrivilegeError> {
    let c_name = CString::new(name).map_err(|_| PrivilegeError::NoSuchUser(name.into()))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; zeroed is a valid (empty) value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` is as long as we say.
    let rc = unsafe { libc::getpwnam_r(c_name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return Err(PrivilegeError::NoSuchUser(name.into()));
    }
    Ok(Account { uid: pwd.pw_uid, gid: pwd.pw_gid })
}

fn check(what: &'static str, rc: libc::c_int) -> Result<(), PrivilegeError> {
    if rc == 0 { Ok(()) } else { Err(PrivilegeError::Call(what, io::Error::last_os_error())) }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|t| t.trim().parse().ok()).unwrap_or(40)
}

/// Becomes `account`, keeping CAP_SYS_NICE and CAP_IPC_LOCK. Must run before any other
/// thread starts (capabilities are per thread; threads created later inherit them). A
/// process that already is `account` (a restart in place) has nothing to do.
pub fn drop_to(account: Account) -> Result<(), PrivilegeError> {
    // SAFETY: getuid/geteuid cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    if uid == account.uid && euid == account.uid {
        return Ok(());
    }
    if euid != 0 {
        return Err(PrivilegeError::NotRoot);
    }
    for cap in 0..=last_cap() {
        if !KEPT.contains(&cap) {
            // SAFETY: prctl with integer arguments; needs CAP_SETPCAP, which root has.
            check("PR_CAPBSET_DROP", unsafe { libc::prctl(PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })?;
        }
    }
    // SAFETY: a one-element group list, valid for the call.
    check("setgroups", unsafe { libc::setgroups(1, &account.gid) })?;
    // SAFETY: integer arguments only.
    check("setresgid", unsafe { libc::setresgid(account.gid, account.gid, account.gid) })?;
    // SAFETY: as above.
    check("PR_SET_KEEPCAPS", unsafe { libc::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) })?;
    // SAFETY: as above.
    check("setresuid", unsafe { libc::setresuid(account.uid, account.uid, account.uid) })?;
    let mask = KEPT.iter().fold(0u32, |m, &c| m | (1 << c));
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [
        Data { effective: mask, permitted: mask, inheritable: mask },
        Data { effective: 0, permitted: 0, inheritable: 0 },
    ];
    // SAFETY: capset with a version-3 header and its two data words, valid for the call.
    check("capset", unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int })?;
    for cap in KEPT {
        // SAFETY: prctl with integer arguments.
        check("PR_CAP_AMBIENT_RAISE", unsafe {
            libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap as libc::c_ulong, 0, 0)
        })?;
    }
    // SAFETY: prctl with integer arguments.
    check("PR_SET_KEEPCAPS", unsafe { libc::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) })?;
    // SAFETY: as above.
    check("PR_SET_NO_NEW_PRIVS", unsafe { libc::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
    // SAFETY: setresuid with integer arguments; it must fail now.
    if unsafe { libc::setresuid(0, 0, 0) } == 0 {
        return Err(PrivilegeError::NotDropped);
    }
    Ok(())
}
