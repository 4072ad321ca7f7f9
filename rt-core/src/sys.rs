//! The real-time syscalls rt-core makes, each wrapped once: memory locking, scheduling,
//! CPU affinity, timer slack, `/dev/cpu_dma_latency`, the absolute-deadline sleep, and
//! memfd for loading program copies. Everything else in rt-core is safe Rust.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// CLOCK_MONOTONIC in nanoseconds (vDSO: no syscall).
pub fn now_ns() -> u64 {
    shared_abi::shm::monotonic_ns()
}

/// Sleeps until the absolute CLOCK_MONOTONIC time `deadline_ns`, resuming after signals.
pub fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
        let rc =
            unsafe { libc::clock_nanosleep(libc::CLOCK_MONOTONIC, libc::TIMER_ABSTIME, &ts, std::ptr::null_mut()) };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// Waits while `word` holds `expected` (FUTEX_WAIT, process-private). Returns at once when
/// it does not; may return spuriously (callers re-check in a loop).
pub fn futex_wait(word: &std::sync::atomic::AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call; no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// Wakes the threads waiting on `word` (FUTEX_WAKE, process-private).
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; waking never touches its value.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
}

/// Locks all current and future pages of the process in RAM.
pub fn lock_memory() -> io::Result<()> {
    // SAFETY: mlockall takes flags only.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The whole pages inside `len` bytes at `start` (none when they hold no whole page).
fn whole_pages(start: *const u8, len: usize) -> Option<(*mut libc::c_void, usize)> {
    const PAGE: usize = 4096;
    let first = (start as usize).div_ceil(PAGE) * PAGE;
    let end = (start as usize + len) / PAGE * PAGE;
    (end > first).then_some((first as *mut libc::c_void, end - first))
}

/// How [`release_pages`] gives pages back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Private memory: the pages read as zero from then on (`MADV_DONTNEED`).
    Private,
    /// Shared memory: the pages are freed in the file itself and read as zero in every
    /// process (`MADV_REMOVE`).
    Shared,
}

/// Unlocks the whole pages inside `len` bytes at `start` and gives them back to the system:
/// from then on they read as zero and are neither resident nor locked until touched. Only
/// for memory nobody reads past a value it rewrites first (the image tables past the sizes
/// of the running program).
pub fn release_pages(start: *const u8, len: usize, how: Release) -> io::Result<()> {
    let Some((addr, len)) = whole_pages(start, len) else { return Ok(()) };
    let advice = match how {
        Release::Private => libc::MADV_DONTNEED,
        Release::Shared => libc::MADV_REMOVE,
    };
    // SAFETY: `addr..addr+len` is whole pages inside a mapping of this process (the caller's
    // range); munlock and madvise change residency only, and the zero content they leave
    // is a valid value of the Pod tables there, which the caller guarantees no one reads.
    let done = unsafe { libc::munlock(addr, len) == 0 && libc::madvise(addr, len, advice) == 0 };
    if done { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Faults in and locks the pages holding `len` bytes at `start`, so that code touching them
/// later (the scan) never takes a page fault on them.
pub fn lock_pages(start: *const u8, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: mlock only faults in and pins pages of a range inside a mapping of this
    // process; it reads and writes nothing.
    if unsafe { libc::mlock(start.cast(), len) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Keeps the C allocator to one arena and returns large blocks to the system when freed:
/// under `mlockall` every page an arena ever held stays locked, and glibc would give each
/// thread that allocates (the loader, the watchdog, main) an arena of its own. The scan
/// thread never allocates, so the one arena's lock is never in its way. Call before any
/// thread is started.
pub fn limit_allocator() {
    // SAFETY: mallopt only changes allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // A fixed threshold (the default one rises after the first large free): a library
        // read while loading is mapped and unmapped, never left in the heap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Touches `bytes` of the current thread's stack so the scan never faults on it.
#[inline(never)]
pub fn prefault_stack(bytes: usize) {
    const CHUNK: usize = 64 * 1024;
    fn touch(depth: usize) {
        let mut page = [0u8; CHUNK];
        // Keep the writes: the point is to fault the pages in.
        std::hint::black_box(&mut page);
        if depth > 1 {
            touch(depth - 1);
        }
        std::hint::black_box(&page);
    }
    touch(bytes.div_ceil(CHUNK).max(1));
}

/// Makes the calling thread SCHED_FIFO at `priority`.
pub fn set_fifo(priority: i32) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: pid 0 is the calling thread; `param` is valid for the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's kernel thread id.
pub fn gettid() -> u32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

/// Sets the calling thread's timer slack (ns); RT threads want 1.
pub fn set_timer_slack(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut cpus = Vec::new();
    for c in 0..libc::CPU_SETSIZE as usize {
        // SAFETY: c < CPU_SETSIZE, so CPU_ISSET reads inside `set`.
        if unsafe { libc::CPU_ISSET(c, &set) } {
            cpus.push(c);
        }
    }
    Ok(cpus)
}

/// Restricts the calling thread to `cpus`.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: c < CPU_SETSIZE, so CPU_SET writes inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Parses a kernel CPU list such as `2-3,6`.
pub fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    cpus.extend(a..=b.min(a + 4096));
                }
            }
            None => {
                if let Ok(c) = part.trim().parse() {
                    cpus.push(c);
                }
            }
        }
    }
    cpus
}

/// CPUs the kernel isolated from the general scheduler (`isolcpus=`).
pub fn isolated_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/isolated").map(|t| parse_cpu_list(&t)).unwrap_or_default()
}

/// CPUs running tickless (`nohz_full=`).
pub fn nohz_full_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/nohz_full").map(|t| parse_cpu_list(&t)).unwrap_or_default()
}

/// Whether the kernel is PREEMPT_RT.
pub fn is_preempt_rt() -> bool {
    std::fs::read_to_string("/sys/kernel/realtime").map(|t| t.trim() == "1").unwrap_or(false)
}

/// Holds `/dev/cpu_dma_latency` at 0 µs for as long as the returned file is open, so idle
/// CPUs stay out of deep C-states (cyclictest does the same by default).
pub fn hold_zero_dma_latency() -> io::Result<File> {
    let mut f = OpenOptions::new().write(true).open("/dev/cpu_dma_latency")?;
    f.write_all(&0i32.to_ne_bytes())?;
    Ok(f)
}

/// An anonymous in-memory file holding a copy of a program library, so each load maps a
/// fresh file (a path dlopen'ed twice would share one instance) and the companion can
/// replace its build output at will. Not affected by `noexec` on /dev/shm or /tmp. The
/// copy is made by the kernel (`copy_file_range`/`sendfile` through `io::copy`), never
/// through a buffer of this process, whose pages `mlockall` would keep.
pub fn memfd_copy_of(source: &mut File) -> io::Result<OwnedFd> {
    let name = c"openplc-program";
    // SAFETY: `name` is NUL-terminated; flags are valid.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(owned);
    io::copy(source, &mut file)?;
    file.flush()?;
    Ok(OwnedFd::from(file))
}

/// `/proc/self/fd/<n>`, the path dlopen uses for a memfd.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Marks a descriptor close-on-exec (one inherited across a restart in place, so no
/// child of a program inherits it; the next restart clears the flag again).
pub fn set_cloexec(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on a descriptor number; no memory involved.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_the_kernel_prints_them() {
        assert_eq!(parse_cpu_list("2-3,6\n"), vec![2, 3, 6]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("0"), vec![0]);
        assert_eq!(parse_cpu_list("x,1"), vec![1]);
    }

    #[test]
    fn the_absolute_sleep_waits_for_the_deadline() {
        let deadline = now_ns() + 2_000_000;
        sleep_until(deadline);
        assert!(now_ns() >= deadline);
    }
}
