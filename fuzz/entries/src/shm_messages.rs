//! `shm_messages`: what crosses the shared-memory rings, as the receiving side takes it: a
//! slot's bytes decoded with postcard into each message type (`shared_abi::msg`:
//! `CommandEnvelope` and `ImageWrite` that rt-core takes from the companion, `Event` and
//! `LogLine` the companion takes from rt-core), cut to each ring's slot size as
//! `Consumer::pop` cuts them; then a ring (`shared_abi::ring`) driven by the input against a
//! model queue: any bytes pushed, typed pushes, raw and typed pops, a full ring.
//!
//! The slots rt-core takes also go through rt-core's own decoders (`decode_command`,
//! `decode_write`); every write they accept, and every `ImageWrite` postcard decodes (its
//! address is validated while decoding), is applied to an image: an address out of range
//! cannot be built, so applying one must never panic (issue 8, the `%MW5000` crash).

use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_abi::image::Image;
use shared_abi::layout::{CommandRing, EventRing, LogRing, WriteRing};
use shared_abi::msg::{
    Command, CommandEnvelope, Event, ImageWrite, LogLine, MAX_FORCE_BYTES, MAX_LOG_TEXT, MAX_PATH, decode_command,
    decode_write,
};
use shared_abi::ring::{PushError, Ring};
use std::collections::VecDeque;
use std::fmt::Debug;

/// Slot sizes of the shared-memory rings.
const COMMAND_SLOT: usize = slot_size::<CommandRing>();
const WRITE_SLOT: usize = slot_size::<WriteRing>();
const EVENT_SLOT: usize = slot_size::<EventRing>();
const LOG_SLOT: usize = slot_size::<LogRing>();

const fn slot_size<R: SlotSize>() -> usize {
    R::SLOT
}

trait SlotSize {
    const SLOT: usize;
}

impl<const N: usize, const S: usize> SlotSize for Ring<N, S> {
    const SLOT: usize = S;
}

/// Slots in the model rings: small, so the input can fill one.
const SLOTS: usize = 8;

pub fn run(data: &[u8]) {
    decode::<CommandEnvelope, COMMAND_SLOT>(data);
    decode::<ImageWrite, WRITE_SLOT>(data);
    if let Ok(command) = decode_command(&data[..data.len().min(COMMAND_SLOT)]) {
        command.check();
    }
    if let Ok(write) = decode_write(&data[..data.len().min(WRITE_SLOT)]) {
        assert!(write.addr.check_value(write.value).is_ok(), "decode_write let through {write:?}");
        write.check();
    }
    decode::<Event, EVENT_SLOT>(data);
    decode::<LogLine, LOG_SLOT>(data);
    let Some((&pick, ops)) = data.split_first() else { return };
    match pick % 4 {
        0 => ring::<CommandEnvelope, COMMAND_SLOT>(ops),
        1 => ring::<ImageWrite, WRITE_SLOT>(ops),
        2 => ring::<Event, EVENT_SLOT>(ops),
        _ => ring::<LogLine, LOG_SLOT>(ops),
    }
}

/// What holds for every decoded message of a type.
trait Message: Serialize + DeserializeOwned + PartialEq + Debug {
    fn check(&self) {}
}

impl Message for CommandEnvelope {
    fn check(&self) {
        match &self.command {
            Command::Load { path, .. } => assert!(path.len() <= MAX_PATH),
            Command::Force { value, .. } => assert!(value.len() <= MAX_FORCE_BYTES),
            _ => {}
        }
    }
}

impl Message for ImageWrite {
    fn check(&self) {
        IMAGE.with_borrow_mut(|image| {
            image.set(self.addr, self.value);
        });
    }
}

impl Message for Event {}

impl Message for LogLine {
    fn check(&self) {
        assert!(self.text.len() <= MAX_LOG_TEXT);
    }
}

thread_local! {
    static IMAGE: std::cell::RefCell<Box<Image>> = std::cell::RefCell::new(bytemuck::zeroed_box());
}

/// Decodes the first slot's worth of `data` as an `M`: a message that decodes re-encodes
/// into its slot, no longer than what was read, and decodes back to itself.
fn decode<M: Message, const S: usize>(data: &[u8]) -> Option<M> {
    let bytes = &data[..data.len().min(S)];
    let m: M = postcard::from_bytes(bytes).ok()?;
    m.check();
    let mut slot = [0u8; S];
    let used = match postcard::to_slice(&m, &mut slot) {
        Ok(used) => used.len(),
        Err(e) => panic!("{m:?} decoded from a slot but does not encode into one: {e}"),
    };
    assert!(used <= bytes.len(), "{m:?}: {used} bytes re-encoded from {}", bytes.len());
    let again: M = postcard::from_bytes(&slot[..used]).unwrap_or_else(|e| panic!("{m:?} does not decode back: {e}"));
    assert_eq!(again, m);
    Some(m)
}

/// Runs `ops` on a ring of `SLOTS` slots of `S` bytes and checks it against a queue.
fn ring<M: Message, const S: usize>(ops: &[u8]) {
    // SAFETY: a ring is atomics, integers and byte arrays, all valid when zero-filled (what
    // `SharedMemory::init_in_place` relies on for the mapped file).
    let mut ring: Box<Ring<SLOTS, S>> = Box::new(unsafe { core::mem::zeroed() });
    ring.init();
    // SAFETY: this function holds the ring's only producer and only consumer, on one thread.
    let (mut tx, mut rx) = unsafe { (ring.producer(), ring.consumer()) };
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut dropped = 0u64;
    let mut input = Cursor(ops);
    while let Some(&op) = input.take(1).first() {
        match op % 4 {
            0 => {
                let len = input.take(2).iter().fold(0usize, |v, &b| v << 8 | b as usize) % (S + 9);
                let bytes = input.take(len).to_vec();
                // `push_bytes` refuses an oversized message before looking for room.
                let expected = if bytes.len() > S {
                    Err(PushError::TooLarge)
                } else {
                    expect_push(&mut model, &mut dropped, bytes.clone(), S)
                };
                assert_eq!(tx.push_bytes(&bytes), expected);
            }
            1 => {
                let Some(m) = decode::<M, S>(input.0) else { continue };
                let encoded = postcard::to_allocvec(&m).unwrap_or_else(|e| panic!("{m:?}: {e}"));
                input.take(encoded.len());
                let expected = expect_push(&mut model, &mut dropped, encoded, S);
                assert_eq!(tx.push(&m), expected);
            }
            2 => assert_eq!(rx.pop_with(|b| b.to_vec()), model.pop_front(), "FIFO, whole slots"),
            _ => {
                let want = model.pop_front().map(|b| postcard::from_bytes::<M>(&b).map_err(|_| ()));
                let got = rx.pop::<M>().map(|r| r.map_err(|_| ()));
                assert_eq!(got, want, "a slot decodes as its bytes do");
            }
        }
        assert_eq!(rx.len(), model.len());
        assert_eq!(tx.free(), SLOTS - model.len());
        assert_eq!(ring.dropped(), dropped);
    }
}

/// The unread rest of the input.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    /// The next `n` bytes, or as many as are left.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// What pushing `bytes` must do to the model: room first, then size.
fn expect_push(model: &mut VecDeque<Vec<u8>>, dropped: &mut u64, bytes: Vec<u8>, slot: usize) -> Result<(), PushError> {
    if model.len() == SLOTS {
        *dropped += 1;
        return Err(PushError::Full);
    }
    if bytes.len() > slot {
        return Err(PushError::TooLarge);
    }
    model.push_back(bytes);
    Ok(())
}
