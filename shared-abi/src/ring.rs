//! Bounded single-producer single-consumer rings of fixed-size slots.
//!
//! The producer owns `head`, the consumer owns `tail`; both are free-running counters, so
//! `head - tail` is the fill level. A full ring refuses the message and counts the refusal:
//! the producer never waits. A producer killed in the middle of a push leaves nothing
//! behind, because a slot only becomes visible when `head` moves past it.
//!
//! Messages are postcard-encoded straight into the slot, so neither side allocates.

use crate::pad::CachePadded;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use serde::{Serialize, de::DeserializeOwned};

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The ring is full; the refusal was counted in `dropped`.
    Full,
    /// The encoded message does not fit one slot.
    TooLarge,
}

/// Why a message taken from the ring could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError;

#[repr(C)]
struct Slot<const S: usize> {
    len: UnsafeCell<u32>,
    bytes: UnsafeCell<[u8; S]>,
}

/// `N` slots (a power of two) of `S` payload bytes each.
#[repr(C, align(64))]
pub struct Ring<const N: usize, const S: usize> {
    head: CachePadded<AtomicU32>,
    tail: CachePadded<AtomicU32>,
    dropped: CachePadded<AtomicU64>,
    slots: [Slot<S>; N],
}

// SAFETY: the head/tail protocol gives each slot to exactly one side at a time: the
// producer writes only slots in [head, tail + N), the consumer reads only [tail, head), and
// each side publishes its counter with Release after it is done with the slot.
unsafe impl<const N: usize, const S: usize> Sync for Ring<N, S> {}

impl<const N: usize, const S: usize> Ring<N, S> {
    /// Slots in the ring.
    pub const SLOTS: usize = N;
    /// Payload bytes per slot.
    pub const SLOT_BYTES: usize = S;

    const CHECK: () = {
        assert!(N.is_power_of_two() && N <= 1 << 16);
        assert!(S >= 8 && S.is_multiple_of(4));
    };

    /// Empties the ring. Only for the creator of the shared memory.
    pub fn init(&mut self) {
        let () = Self::CHECK;
        *self.head.0.get_mut() = 0;
        *self.tail.0.get_mut() = 0;
        *self.dropped.0.get_mut() = 0;
    }

    /// Slots in the ring, as a constant (`WriteRing::CAPACITY`).
    pub const CAPACITY: usize = N;

    /// Slots in the ring.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Messages waiting to be taken.
    pub fn len(&self) -> usize {
        let head = self.head.0.load(Ordering::Acquire);
        let tail = self.tail.0.load(Ordering::Acquire);
        head.wrapping_sub(tail) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The producer's free-running counter: messages pushed since the ring was created,
    /// modulo 2^32.
    pub fn produced(&self) -> u32 {
        self.head.0.load(Ordering::Acquire)
    }

    /// The consumer's free-running counter: messages taken since the ring was created,
    /// modulo 2^32. A message is taken once `consumed` has passed the value `produced`
    /// had just after it was pushed.
    pub fn consumed(&self) -> u32 {
        self.tail.0.load(Ordering::Acquire)
    }

    /// Pushes refused because the ring was full, since it was created.
    pub fn dropped(&self) -> u64 {
        self.dropped.0.load(Ordering::Relaxed)
    }

    /// Whether the counters describe a possible state (a check for attachers).
    pub fn is_consistent(&self) -> bool {
        self.len() <= N
    }

    /// The producer side.
    ///
    /// # Safety
    /// At most one producer may exist at a time, in every process.
    pub unsafe fn producer(&self) -> Producer<'_, N, S> {
        Producer { ring: self }
    }

    /// The consumer side.
    ///
    /// # Safety
    /// At most one consumer may exist at a time, in every process.
    pub unsafe fn consumer(&self) -> Consumer<'_, N, S> {
        Consumer { ring: self }
    }
}

/// The one writing end of a ring.
pub struct Producer<'a, const N: usize, const S: usize> {
    ring: &'a Ring<N, S>,
}

impl<const N: usize, const S: usize> Producer<'_, N, S> {
    /// Fills the next free slot with `fill`, which returns the number of bytes used, or
    /// `None` to abandon the push.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8; S]) -> Option<usize>) -> Result<(), PushError> {
        let ring = self.ring;
        let head = ring.head.0.load(Ordering::Relaxed);
        let tail = ring.tail.0.load(Ordering::Acquire);
        if head.wrapping_sub(tail) as usize >= N {
            // Single producer: a plain load/store pair is enough and avoids a locked RMW.
            let d = ring.dropped.0.load(Ordering::Relaxed);
            ring.dropped.0.store(d + 1, Ordering::Relaxed);
            return Err(PushError::Full);
        }
        let slot = &ring.slots[head as usize & (N - 1)];
        // SAFETY: the slot at `head` is outside [tail, head), so the consumer does not read
        // it until `head` is published below; we are the only producer.
        let bytes = unsafe { &mut *slot.bytes.get() };
        let used = fill(bytes).ok_or(PushError::TooLarge)?;
        if used > S {
            return Err(PushError::TooLarge);
        }
        // SAFETY: as above.
        unsafe { *slot.len.get() = used as u32 };
        ring.head.0.store(head.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Copies `bytes` into the next slot.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), PushError> {
        if bytes.len() > S {
            return Err(PushError::TooLarge);
        }
        self.push_with(|slot| {
            slot[..bytes.len()].copy_from_slice(bytes);
            Some(bytes.len())
        })
    }

    /// Encodes `message` with postcard into the next slot.
    pub fn push<M: Serialize>(&mut self, message: &M) -> Result<(), PushError> {
        self.push_with(|slot| postcard::to_slice(message, slot).ok().map(|used| used.len()))
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        N - self.ring.len()
    }
}

/// The one reading end of a ring.
pub struct Consumer<'a, const N: usize, const S: usize> {
    ring: &'a Ring<N, S>,
}

impl<const N: usize, const S: usize> Consumer<'_, N, S> {
    /// Hands the oldest message's bytes to `read` and removes it.
    pub fn pop_with<R>(&mut self, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let ring = self.ring;
        let tail = ring.tail.0.load(Ordering::Relaxed);
        let head = ring.head.0.load(Ordering::Acquire);
        if head == tail {
            return None;
        }
        let slot = &ring.slots[tail as usize & (N - 1)];
        // SAFETY: the slot at `tail` is inside [tail, head): the producer finished it before
        // publishing `head` (Acquire above) and will not reuse it until `tail` moves.
        let len = (unsafe { *slot.len.get() } as usize).min(S);
        // SAFETY: as above.
        let bytes = unsafe { &*slot.bytes.get() };
        let result = read(&bytes[..len]);
        ring.tail.0.store(tail.wrapping_add(1), Ordering::Release);
        Some(result)
    }

    /// Takes and decodes the oldest message. A message that does not decode is removed and
    /// reported, so one bad slot cannot wedge the ring.
    pub fn pop<M: DeserializeOwned>(&mut self) -> Option<Result<M, DecodeError>> {
        self.pop_with(|bytes| postcard::from_bytes(bytes).map_err(|_| DecodeError))
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}
