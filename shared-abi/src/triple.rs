//! A triple buffer: one writer publishes whole snapshots, one reader takes the newest.
//!
//! Both sides are wait-free. The writer fills its private back buffer and swaps it into the
//! "latest" slot; the reader swaps its front buffer for the latest one when a newer one is
//! there. The three buffer indices always form a permutation of {0, 1, 2}, so the writer
//! never touches the buffer the reader holds, and no copy is ever torn.
//!
//! Used for the input image: the companion writes it, rt-core reads it at cycle start.
//! Both owners' indices live in the shared memory, so either process can be restarted and
//! carry on from where its predecessor left off.

use crate::pad::CachePadded;
use bytemuck::Pod;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const INDEX_MASK: u32 = 0b11;
const FRESH: u32 = 0b100;

#[repr(C, align(64))]
pub struct TripleBuffer<T> {
    /// Index of the most recently published buffer, plus `FRESH` until the reader takes it.
    latest: CachePadded<AtomicU32>,
    /// The writer's back buffer. Written only by the writer.
    writer_index: CachePadded<AtomicU32>,
    /// The reader's front buffer. Written only by the reader.
    reader_index: CachePadded<AtomicU32>,
    /// Snapshots published so far. Written only by the writer.
    published: CachePadded<AtomicU64>,
    buffers: [UnsafeCell<T>; 3],
}

// SAFETY: the index protocol hands each buffer to at most one side for writing: the writer
// only writes `buffers[writer_index]`, the reader only reads `buffers[reader_index]`, and the
// swaps on `latest` keep the three indices distinct.
unsafe impl<T: Pod + Send> Sync for TripleBuffer<T> {}

impl<T: Pod> TripleBuffer<T> {
    /// Resets to "nothing published", all buffers zeroed. Only for the creator of the
    /// shared memory, before anyone else can see it.
    pub fn init(&mut self) {
        *self.writer_index.0.get_mut() = 0;
        *self.latest.0.get_mut() = 1;
        *self.reader_index.0.get_mut() = 2;
        *self.published.0.get_mut() = 0;
        for b in &mut self.buffers {
            // In place: a large `T` (the input image) must not pass through the stack.
            bytemuck::bytes_of_mut(b.get_mut()).fill(0);
        }
    }

    /// Where the three buffers lie, for calls on the pages themselves (locking them in
    /// memory, giving unused ones back): never read or written through.
    pub fn memory(&self) -> [*const T; 3] {
        [self.buffers[0].get(), self.buffers[1].get(), self.buffers[2].get()]
    }

    /// How many snapshots the writer has published.
    pub fn published(&self) -> u64 {
        self.published.0.load(Ordering::Acquire)
    }

    /// Whether the reader has taken the most recent publication (or nothing was published
    /// since it last took one). Once true it stays true until the next `publish`: only the
    /// writer makes a snapshot fresh.
    pub fn latest_taken(&self) -> bool {
        self.latest.0.load(Ordering::Acquire) & FRESH == 0
    }

    /// Whether the index protocol's invariant holds (a check for attachers).
    pub fn is_consistent(&self) -> bool {
        let w = self.writer_index.0.load(Ordering::Acquire);
        let l = self.latest.0.load(Ordering::Acquire) & INDEX_MASK;
        let r = self.reader_index.0.load(Ordering::Acquire);
        w < 3 && l < 3 && r < 3 && w != l && l != r && w != r
    }

    /// The writer's back buffer, to be filled completely before `publish`.
    ///
    /// # Safety
    /// The caller must be the only writer, in every process, and must not keep the
    /// reference across `publish`.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn back_buffer(&self) -> &mut T {
        let w = self.writer_index.0.load(Ordering::Relaxed) as usize;
        // SAFETY: `w` is the writer's index; by the permutation invariant no reader holds it.
        unsafe { &mut *self.buffers[w].get() }
    }

    /// Publishes the back buffer as the newest snapshot and takes a new back buffer.
    ///
    /// # Safety
    /// The caller must be the only writer, in every process.
    pub unsafe fn publish(&self) {
        let w = self.writer_index.0.load(Ordering::Relaxed);
        let previous = self.latest.0.swap(w | FRESH, Ordering::AcqRel);
        self.writer_index.0.store(previous & INDEX_MASK, Ordering::Release);
        self.published.0.fetch_add(1, Ordering::Release);
    }

    /// Takes the newest snapshot if one was published since the last call.
    /// Returns the reader's current buffer and whether it is new.
    ///
    /// # Safety
    /// The caller must be the only reader, in every process, and must not keep the
    /// reference across the next call.
    pub unsafe fn read_latest(&self) -> (&T, bool) {
        let fresh = self.latest.0.load(Ordering::Relaxed) & FRESH != 0;
        if fresh {
            let mine = self.reader_index.0.load(Ordering::Relaxed);
            let previous = self.latest.0.swap(mine, Ordering::AcqRel);
            self.reader_index.0.store(previous & INDEX_MASK, Ordering::Release);
        }
        let r = self.reader_index.0.load(Ordering::Relaxed) as usize;
        // SAFETY: `r` is the reader's index; the writer never writes it.
        (unsafe { &*self.buffers[r].get() }, fresh)
    }

    /// Copies the most recently published snapshot into `out`, for a writer that takes
    /// over from a predecessor and must start from the state the reader already sees.
    /// Returns false if the reader was mid-swap; call again.
    ///
    /// # Safety
    /// The caller must be the only writer (it is about to become it), so that the buffer
    /// copied from cannot be written during the copy.
    pub unsafe fn copy_latest(&self, out: &mut T) -> bool {
        let latest = self.latest.0.load(Ordering::Acquire);
        let reader = self.reader_index.0.load(Ordering::Acquire);
        let source = if latest & FRESH != 0 { latest & INDEX_MASK } else { reader };
        if latest & INDEX_MASK == reader || source >= 3 {
            return false;
        }
        // SAFETY: `source` is either the published buffer or the reader's buffer; only the
        // writer ever writes a buffer, and the caller is that writer and is not writing.
        *out = unsafe { *self.buffers[source as usize].get() };
        self.latest.0.load(Ordering::Acquire) == latest && self.reader_index.0.load(Ordering::Acquire) == reader
    }
}
