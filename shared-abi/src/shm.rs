//! Opening the shared-memory file from a process (the `std` feature).
//!
//! Three ways in, one per role:
//! - `RtMapping::open`: rt-core. Takes an exclusive `flock` on the file for its whole life
//!   (other rt-cores are refused), creates the file or takes over a dead predecessor's in
//!   place, so a client that still maps it carries on without re-opening anything.
//! - `ClientMapping::open`: the companion or the control tool. Takes the client lease, an
//!   exclusive `flock` on `<file>.client`, which the kernel releases if the holder dies.
//! - `ObserverMapping::open`: read-only access for status, stats and outputs, alongside a
//!   client.

use crate::layout::{AttachError, CommandRing, EventRing, LAYOUT_SIZE, LogRing, MAGIC, SharedMemory, WriteRing};
use crate::ring::{Consumer, Producer};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;

/// The default shared-memory name of `openplc-rt` on its own (the control tool, a
/// standalone `openplc-rt run`). The companion names its rt-core's after its data
/// directory instead ([`name_for_data_dir`]).
pub const DEFAULT_NAME: &str = "openplc-rt";

/// The shared-memory name the companion uses for the data directory `dir` unless told
/// otherwise: `openplc-rt-<12 hex digits>`, a hash of the directory's canonical path, so
/// two installations (or tests) on one machine never share an rt-core by accident. A
/// directory that does not exist yet is named after its nearest existing ancestor's
/// canonical path plus the rest, which is what canonicalising it gives once it is made.
pub fn name_for_data_dir(dir: &Path) -> String {
    let canonical = canonical_or_planned(dir);
    // FNV-1a 64 over the path's bytes: stable across builds and platforms, and 48 bits of
    // it make a collision between two directories of one machine a non-issue.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.as_os_str().as_encoded_bytes() {
        hash ^= *b as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{DEFAULT_NAME}-{:012x}", hash >> 16)
}

fn canonical_or_planned(dir: &Path) -> PathBuf {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map(|cwd| cwd.join(dir)).unwrap_or_else(|_| dir.to_path_buf())
    };
    if let Ok(c) = std::fs::canonicalize(&absolute) {
        return c;
    }
    let mut missing = Vec::new();
    let mut at = absolute.as_path();
    loop {
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                at = parent;
                if let Ok(mut c) = std::fs::canonicalize(at) {
                    c.extend(missing.iter().rev());
                    return c;
                }
            }
            // `..` or the root: nothing better than the path as given.
            _ => return absolute,
        }
    }
}

/// `/dev/shm/<name>`, or `name` itself when it contains a slash (tests use temp paths).
pub fn shm_path(name: &str) -> PathBuf {
    if name.contains('/') { PathBuf::from(name) } else { Path::new("/dev/shm").join(name) }
}

fn client_lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".client");
    PathBuf::from(p)
}

#[derive(Debug)]
pub enum ShmError {
    Io(PathBuf, io::Error),
    /// Another rt-core owns the file.
    RtRunning {
        path: PathBuf,
        pid: u32,
    },
    /// Another client (the companion, usually) holds the lease.
    ClientAttached {
        path: PathBuf,
        pid: u32,
    },
    /// rt-core has not created the file.
    NoRuntime(PathBuf),
    /// No rt-core holds the file (it exited or crashed).
    RtNotRunning(PathBuf),
    Attach(PathBuf, AttachError),
    /// A file of another ABI version is still in use by someone.
    IncompatibleInUse(PathBuf, AttachError),
}

impl std::fmt::Display for ShmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShmError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ShmError::RtRunning { path, pid } => {
                write!(f, "{}: another openplc-rt (pid {pid}) is already running on it", path.display())
            }
            ShmError::ClientAttached { path, pid } => write!(
                f,
                "{}: another client (pid {pid}, usually the companion) is attached; use the companion's API while it runs",
                path.display()
            ),
            ShmError::NoRuntime(p) => write!(f, "{}: no such shared memory; is openplc-rt running?", p.display()),
            ShmError::RtNotRunning(p) => {
                write!(f, "{}: openplc-rt is not running (nothing holds the file)", p.display())
            }
            ShmError::Attach(p, e) => write!(f, "{}: {e}", p.display()),
            ShmError::IncompatibleInUse(p, e) => write!(
                f,
                "{}: {e}; it is still in use, so it was left alone: stop the other runtime first",
                p.display()
            ),
        }
    }
}

impl std::error::Error for ShmError {}

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Tries an flock without blocking. Ok(true) when taken.
fn try_flock(file: &File, exclusive: bool) -> io::Result<bool> {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH } | libc::LOCK_NB;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) { Ok(false) } else { Err(err) }
}

fn unlock(file: &File) {
    // SAFETY: as in `try_flock`.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// Whether some rt-core holds `path` (its exclusive flock).
pub fn rt_alive(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return false };
    match try_flock(&file, false) {
        Ok(true) => {
            unlock(&file);
            false
        }
        Ok(false) => true,
        Err(_) => false,
    }
}

fn map(file: &File, path: &Path, writable: bool) -> Result<MmapRaw, ShmError> {
    let len = file.metadata().map_err(|e| ShmError::Io(path.into(), e))?.len();
    if len == 0 {
        return Err(ShmError::Attach(path.into(), AttachError::NotInitialised));
    }
    let mut opts = MmapOptions::new();
    opts.len(len as usize);
    let map = if writable { opts.map_raw(file) } else { opts.map_raw_read_only(file) };
    map.map_err(|e| ShmError::Io(path.into(), e))
}

fn validate<'a>(map: &'a MmapRaw, path: &Path) -> Result<&'a SharedMemory, ShmError> {
    // SAFETY: the mapping is page-aligned, `len` bytes long and lives as long as `map`.
    unsafe { SharedMemory::from_mapping(map.as_ptr(), map.len()) }.map_err(|e| ShmError::Attach(path.into(), e))
}

/// rt-core's handle: the owner of the file.
pub struct RtMapping {
    map: MmapRaw,
    /// The open file, whose exclusive flock says "rt-core is alive".
    lock: File,
    path: PathBuf,
    created: bool,
    ends_taken: AtomicBool,
}

/// rt-core's single-role ends of the rings: the only consumer of commands and image
/// writes, the only producer of events and log lines. [`RtMapping::take_ends`] hands them
/// out once per mapping, and only one mapping of a file exists at a time (its exclusive
/// flock), so holding these proves the single-role contract the rings need.
pub struct RtEnds<'a> {
    pub commands: CommandConsumer<'a>,
    pub writes: WriteConsumer<'a>,
    pub events: EventProducer<'a>,
    pub logs: LogProducer<'a>,
}

pub type CommandConsumer<'a> = Consumer<'a, { CommandRing::SLOTS }, { CommandRing::SLOT_BYTES }>;
pub type WriteConsumer<'a> = Consumer<'a, { WriteRing::SLOTS }, { WriteRing::SLOT_BYTES }>;
pub type EventProducer<'a> = Producer<'a, { EventRing::SLOTS }, { EventRing::SLOT_BYTES }>;
pub type LogProducer<'a> = Producer<'a, { LogRing::SLOTS }, { LogRing::SLOT_BYTES }>;

impl RtMapping {
    /// Creates the file, or takes over one whose rt-core died. Refuses when another rt-core
    /// holds it, and when a file of another version is still in use by anyone.
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let path = shm_path(name);
        let io = |e| ShmError::Io(path.clone(), e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            // Group read-write: on a device rt-core and the companion run as two accounts
            // sharing rt-core's group (scripts/install); others get nothing.
            .mode(0o660)
            .open(&path)
            .map_err(io)?;
        if !try_flock(&file, true).map_err(io)? {
            let pid = peek_pid(&file, false);
            return Err(ShmError::RtRunning { path, pid });
        }
        let len = file.metadata().map_err(io)?.len();
        if len != 0 {
            let map = map(&file, &path, true)?;
            match validate(&map, &path) {
                Ok(shm) => {
                    shm.header.rt_pid.store(std::process::id(), Ordering::Release);
                    return Ok(RtMapping::new(map, file, path, false));
                }
                Err(ShmError::Attach(_, err)) => {
                    // Another version, or a creator that died mid-way. Replace it only if no
                    // client still maps it.
                    if let Ok(client) = OpenOptions::new().read(true).open(client_lock_path(&path))
                        && !try_flock(&client, true).map_err(io)?
                    {
                        return Err(ShmError::IncompatibleInUse(path, err));
                    }
                    drop(map);
                    file.set_len(0).map_err(io)?;
                }
                Err(other) => return Err(other),
            }
        }
        file.set_len(LAYOUT_SIZE as u64).map_err(io)?;
        let map = map(&file, &path, true)?;
        // SAFETY: the file was just truncated to zero and re-extended, so the mapping is
        // zero-filled; we hold the exclusive lock, and no client can validate the mapping
        // before the magic is published at the end of `init_in_place`.
        unsafe {
            SharedMemory::init_in_place(map.as_mut_ptr() as *mut SharedMemory, std::process::id(), monotonic_ns())
        };
        Ok(RtMapping::new(map, file, path, true))
    }

    fn new(map: MmapRaw, lock: File, path: PathBuf, created: bool) -> RtMapping {
        RtMapping { map, lock, path, created, ends_taken: AtomicBool::new(false) }
    }

    /// Takes over the file behind `fd`, which this process inherited across `execve` from
    /// the rt-core it replaces (same pid): the exclusive flock stays held throughout, so no
    /// client ever sees rt-core gone. Checks that the lock is really held through `fd` and
    /// that the file holds a layout this build can use.
    ///
    /// # Safety
    /// `fd` must not be the file of another live `RtMapping` of this process (it came across
    /// `execve`, where no mapping survives).
    pub unsafe fn inherit(fd: OwnedFd, path: PathBuf) -> Result<Self, ShmError> {
        let file = File::from(fd);
        let io = |e| ShmError::Io(path.clone(), e);
        // flock on the open file description that already holds the lock succeeds; on any
        // other one it fails while the holder lives.
        if !try_flock(&file, true).map_err(io)? {
            let pid = peek_pid(&file, false);
            return Err(ShmError::RtRunning { path, pid });
        }
        let map = map(&file, &path, true)?;
        let shm = validate(&map, &path)?;
        shm.header.rt_pid.store(std::process::id(), Ordering::Release);
        Ok(RtMapping::new(map, file, path, false))
    }

    pub fn shm(&self) -> &SharedMemory {
        // SAFETY: validated or initialised in `open`; mapped for as long as `self`.
        unsafe { &*(self.map.as_ptr() as *const SharedMemory) }
    }

    /// rt-core's ring ends, the first time only (`None` after that).
    pub fn take_ends(&self) -> Option<RtEnds<'_>> {
        if self.ends_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        let shm = self.shm();
        // SAFETY: one live RtMapping per file (the exclusive flock, held from `open` or
        // `inherit` until drop) and one call that gets past the flag above per mapping: these
        // are the only rt-core-side ends in any process. Clients take the other ends only
        // under the client lease.
        unsafe {
            Some(RtEnds {
                commands: shm.commands.consumer(),
                writes: shm.writes.consumer(),
                events: shm.events.producer(),
                logs: shm.logs.producer(),
            })
        }
    }

    /// The locked file, to hand across `execve` to the rt-core that replaces this one.
    pub fn lock_fd(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }

    /// Whether `open` made a new file (false: took over a predecessor's).
    pub fn created(&self) -> bool {
        self.created
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RtMapping {
    fn drop(&mut self) {
        // Leave the file for clients to notice the exit; only the liveness lock goes.
        self.shm().header.rt_pid.store(0, Ordering::Release);
    }
}

/// A client's handle: the lease holder, sole writer of inputs, watch list, commands and
/// writes.
pub struct ClientMapping {
    map: MmapRaw,
    _lease: File,
    path: PathBuf,
}

impl ClientMapping {
    /// Attaches as the client. Refuses while another client holds the lease.
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let path = shm_path(name);
        let io = |e| ShmError::Io(path.clone(), e);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ShmError::NoRuntime(path)),
            Err(e) => return Err(io(e)),
        };
        let lease = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o660)
            .open(client_lock_path(&path))
            .map_err(io)?;
        if !try_flock(&lease, true).map_err(io)? {
            let pid = peek_pid(&file, true);
            return Err(ShmError::ClientAttached { path, pid });
        }
        let map = map(&file, &path, true)?;
        let shm = validate(&map, &path)?;
        shm.header.client_pid.store(std::process::id(), Ordering::Release);
        Ok(ClientMapping { map, _lease: lease, path })
    }

    pub fn shm(&self) -> &SharedMemory {
        // SAFETY: validated in `open`; mapped for as long as `self`.
        unsafe { &*(self.map.as_ptr() as *const SharedMemory) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether an rt-core holds the file right now.
    pub fn rt_alive(&self) -> bool {
        rt_alive(&self.path)
    }
}

impl Drop for ClientMapping {
    fn drop(&mut self) {
        let me = std::process::id();
        let _ = self.shm().header.client_pid.compare_exchange(me, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A read-only view for anyone: status, stats, histogram, outputs, debug values.
pub struct ObserverMapping {
    map: MmapRaw,
    path: PathBuf,
}

impl ObserverMapping {
    pub fn open(name: &str) -> Result<Self, ShmError> {
        let path = shm_path(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ShmError::NoRuntime(path)),
            Err(e) => return Err(ShmError::Io(path, e)),
        };
        let map = map(&file, &path, false)?;
        validate(&map, &path)?;
        Ok(ObserverMapping { map, path })
    }

    pub fn shm(&self) -> &SharedMemory {
        // SAFETY: validated in `open`; mapped for as long as `self`. Read-only pages: the
        // observer only ever loads (atomics and seqlock reads), never stores.
        unsafe { &*(self.map.as_ptr() as *const SharedMemory) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rt_alive(&self) -> bool {
        rt_alive(&self.path)
    }
}

/// Reads a pid from the header of an initialised file, for error messages.
fn peek_pid(file: &File, client: bool) -> u32 {
    let Ok(map) = MmapOptions::new().len(std::mem::size_of::<crate::layout::Header>()).map_raw_read_only(file) else {
        return 0;
    };
    // SAFETY: a header-sized, page-aligned read-only mapping; only atomics are loaded.
    let header = unsafe { &*(map.as_ptr() as *const crate::layout::Header) };
    if header.magic.load(Ordering::Acquire) != MAGIC {
        return 0;
    }
    if client { header.client_pid.load(Ordering::Acquire) } else { header.rt_pid.load(Ordering::Acquire) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_data_directory_gets_its_own_name_whatever_the_spelling() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let name = name_for_data_dir(&a);
        assert!(name.starts_with("openplc-rt-") && name.len() == "openplc-rt-".len() + 12, "{name}");
        assert_ne!(name, name_for_data_dir(&b));
        // Named before it exists as after, and through a symlink or a detour as directly.
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        assert_eq!(name_for_data_dir(&a), name);
        assert_eq!(name_for_data_dir(&root.path().join("b/../a")), name);
        std::os::unix::fs::symlink(&a, root.path().join("link")).unwrap();
        assert_eq!(name_for_data_dir(&root.path().join("link")), name);
        assert_eq!(name_for_data_dir(&a.join("x/y")), name_for_data_dir(&a.join("x/y")));
        assert_ne!(name_for_data_dir(&a.join("x/y")), name);
    }
}
