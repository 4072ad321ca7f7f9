//! A sequence lock for plain-old-data snapshots with one writer and any number of readers.
//!
//! The writer never waits: it bumps the sequence to odd, writes, and bumps it to even.
//! Readers copy the data and keep it only if the sequence was even and unchanged around
//! the copy. `try_read` makes exactly one attempt, so a real-time reader can fall back to
//! its previous copy instead of spinning on a writer that was preempted or killed.

use bytemuck::Pod;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering, fence};

/// Attempts a reader that may wait a little (the companion, tools; never rt-core) makes
/// before it calls a snapshot torn: only a writer that died mid-write leaves the sequence
/// odd for that long.
pub const READER_ATTEMPTS: u32 = 100_000;

/// A read overlapped a write; the copy was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Torn;

/// One writer, many readers, never a lock. `T` must be valid for every bit pattern (`Pod`),
/// because a reader may copy a half-written value before it notices and discards it.
#[repr(C, align(64))]
pub struct SeqLock<T> {
    seq: AtomicU64,
    data: UnsafeCell<T>,
}

// SAFETY: all shared access goes through the sequence protocol below: the single writer is
// the only one creating a `&mut T` (the `unsafe fn write` contract), readers only perform
// volatile word copies of `Pod` data that they discard when torn.
unsafe impl<T: Pod + Send> Sync for SeqLock<T> {}

impl<T: Pod> SeqLock<T> {
    /// Resets to version 0 with zeroed data. Only for the creator of the shared memory,
    /// before anyone else can see it.
    pub fn init(&mut self) {
        *self.seq.get_mut() = 0;
        // In place: a large `T` (the output image) must not pass through the stack.
        bytemuck::bytes_of_mut(self.data.get_mut()).fill(0);
    }

    /// Where the protected value lies, for its writer's calls on the pages themselves
    /// (locking them in memory, giving unused ones back): never read or written through.
    pub fn memory(&self) -> *const T {
        self.data.get()
    }

    /// The current version: even and stable when no write is under way.
    pub fn version(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Runs `f` on the data inside a write section.
    ///
    /// # Safety
    /// The caller must be the only writer of this lock, in every process, for the whole
    /// call (the shared-memory roles in `layout` say who that is for each region).
    pub unsafe fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let s = self.seq.load(Ordering::Relaxed);
        // Leave an odd sequence behind from a writer that died mid-write: the next write
        // starts from the next even value.
        let start = s | 1;
        self.seq.store(start, Ordering::Relaxed);
        // Orders the odd store before the data stores below.
        fence(Ordering::Release);
        // SAFETY: the caller is the single writer, so no other `&mut T` exists; readers only
        // make volatile copies that they discard because the sequence is odd.
        let result = f(unsafe { &mut *self.data.get() });
        self.seq.store(start.wrapping_add(1), Ordering::Release);
        result
    }

    /// One attempt to copy a consistent snapshot into `out`. Never waits.
    pub fn try_read(&self, out: &mut T) -> Result<u64, Torn> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return Err(Torn);
        }
        // SAFETY: `data` points at a live `T` inside `self`; `out` is a distinct `&mut T`.
        // The copy may race with the writer, which is why it is volatile and checked below.
        unsafe { volatile_copy(self.data.get(), out) };
        // Orders the data loads above before the re-check of the sequence.
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        if before == after { Ok(before) } else { Err(Torn) }
    }

    /// One attempt to copy a consistent snapshot of part of the data: its first `head`
    /// bytes, then the byte ranges `parts` names (given the head just copied; ranges past
    /// the end are cut). What lies outside them in `out` is left as it was. For large
    /// snapshots of which a reader needs a known prefix (the published image tables).
    pub fn try_read_parts<const N: usize>(
        &self,
        out: &mut T,
        head: usize,
        parts: impl Fn(&T) -> [(usize, usize); N],
    ) -> Result<u64, Torn> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return Err(Torn);
        }
        let len = core::mem::size_of::<T>();
        // SAFETY: the ranges are cut to the size of `T`; `data` is a live `T` and `out` a
        // distinct one. The copy may race with the writer, which the check below detects.
        unsafe { volatile_copy_range(self.data.get(), out, 0, head.min(len)) };
        // Orders the head's loads before reading what it says.
        fence(Ordering::Acquire);
        for (offset, bytes) in parts(out) {
            let start = offset.min(len);
            let end = offset.saturating_add(bytes).min(len);
            // SAFETY: as above, in bounds.
            unsafe { volatile_copy_range(self.data.get(), out, start, end) };
        }
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        if before == after { Ok(before) } else { Err(Torn) }
    }

    /// Copies a consistent snapshot, retrying up to `attempts` times. For readers that are
    /// allowed to wait a little (the companion), never for rt-core.
    pub fn read(&self, out: &mut T, attempts: u32) -> Result<u64, Torn> {
        for _ in 0..attempts.max(1) {
            match self.try_read(out) {
                Ok(version) => return Ok(version),
                Err(Torn) => core::hint::spin_loop(),
            }
        }
        Err(Torn)
    }
}

/// Copies bytes `start..end` of `*src` into the same bytes of `*dst`, volatile.
///
/// # Safety
/// `src` must point at a readable `T` not overlapping `dst`; `start <= end <= size_of::<T>()`.
unsafe fn volatile_copy_range<T: Pod>(src: *const T, dst: &mut T, start: usize, end: usize) {
    let dst_bytes = &mut bytemuck::bytes_of_mut(dst)[start..end];
    // SAFETY: `start` is within the `T` at `src` (caller).
    let src_bytes = unsafe { (src as *const u8).add(start) };
    let mut i = 0;
    let n = dst_bytes.len();
    if (src_bytes as usize).is_multiple_of(8) {
        while i + 8 <= n {
            // SAFETY: in bounds (`i + 8 <= n`) and 8-aligned because `src_bytes` is.
            let w = unsafe { core::ptr::read_volatile(src_bytes.add(i) as *const u64) };
            dst_bytes[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        }
    }
    while i < n {
        // SAFETY: in bounds (`i < n`).
        dst_bytes[i] = unsafe { core::ptr::read_volatile(src_bytes.add(i)) };
        i += 1;
    }
}

/// Copies `*src` into `*dst` with volatile loads, one machine word at a time, so the
/// compiler neither elides nor reorders the loads around the sequence checks.
///
/// # Safety
/// `src` must point at a readable `T`; `dst` must not overlap it.
unsafe fn volatile_copy<T: Pod>(src: *const T, dst: &mut T) {
    let len = core::mem::size_of::<T>();
    let dst_bytes = bytemuck::bytes_of_mut(dst);
    let src_bytes = src as *const u8;
    let words = len / 8;
    let aligned = (src_bytes as usize).is_multiple_of(8);
    let mut i = 0;
    if aligned {
        while i < words {
            // SAFETY: in bounds (`i < len / 8`) and 8-aligned because `src` is.
            let w = unsafe { core::ptr::read_volatile((src_bytes as *const u64).add(i)) };
            dst_bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
            i += 1;
        }
        i *= 8;
    }
    while i < len {
        // SAFETY: in bounds (`i < len`).
        dst_bytes[i] = unsafe { core::ptr::read_volatile(src_bytes.add(i)) };
        i += 1;
    }
}
