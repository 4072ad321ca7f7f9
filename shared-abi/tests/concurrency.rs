//! Hammers the lock-free paths from two threads, each through its own mapping of a real
//! shared-memory file (the way rt-core and the companion see it), and checks that nothing
//! is lost, torn, duplicated or reordered.

use shared_abi::image::{IecAddress, InputImage};
use shared_abi::layout::OutputSnapshot;
use shared_abi::msg::ImageWrite;
use shared_abi::ring::PushError;
use shared_abi::shm::{ClientMapping, RtMapping};
use shared_abi::sizes::ImageSizes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

/// Taken by the tests whose threads spin against each other: two of them at once are five
/// spinning threads, and on a 2-CPU machine a writer waiting for its readers can then wait
/// for minutes. Each is quick alone.
static SPINNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    SPINNING.lock().unwrap_or_else(|p| p.into_inner())
}

fn pair() -> (tempfile::TempDir, RtMapping, ClientMapping) {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("shm").to_str().unwrap().to_string();
    let rt = RtMapping::open(&name).unwrap();
    let client = ClientMapping::open(&name).unwrap();
    (dir, rt, client)
}

/// A message whose fields must agree with each other: a torn slot would break the pattern.
fn message(seq: u64) -> ImageWrite {
    let index = (seq % 1024) as u16;
    ImageWrite {
        addr: IecAddress::new(shared_abi::image::Area::Memory, shared_abi::image::Width::LWord, index, 0).unwrap(),
        value: seq,
    }
}

#[test]
fn ring_delivers_millions_in_order_across_mappings() {
    let _turn = take_turn();
    const N: u64 = 3_000_000;
    let (_dir, rt, client) = pair();
    let producer = thread::spawn(move || {
        // SAFETY: this thread is the only producer of the write ring.
        let mut tx = unsafe { client.shm().writes.producer() };
        let mut full = 0u64;
        for seq in 0..N {
            loop {
                match tx.push(&message(seq)) {
                    Ok(()) => break,
                    Err(PushError::Full) => {
                        full += 1;
                        std::hint::spin_loop();
                    }
                    Err(PushError::TooLarge) => panic!("message must fit a slot"),
                }
            }
        }
        (full, client)
    });
    // SAFETY: this thread is the only consumer of the write ring.
    let mut rx = unsafe { rt.shm().writes.consumer() };
    let mut expected = 0u64;
    while expected < N {
        match rx.pop::<ImageWrite>() {
            Some(Ok(m)) => {
                assert_eq!(m, message(expected), "message {expected} lost, duplicated, torn or reordered");
                expected += 1;
            }
            Some(Err(e)) => panic!("undecodable slot at {expected}: {e:?}"),
            None => std::hint::spin_loop(),
        }
    }
    let (full, client) = producer.join().unwrap();
    assert!(rx.pop::<ImageWrite>().is_none(), "nothing extra arrives");
    assert_eq!(client.shm().writes.dropped(), full, "every refused push is counted");
}

#[test]
fn a_full_ring_refuses_and_counts_instead_of_blocking() {
    let (_dir, rt, client) = pair();
    // SAFETY: single producer and single consumer in this test.
    let mut tx = unsafe { client.shm().events.producer() };
    let capacity = client.shm().events.capacity();
    for seq in 0..capacity as u64 {
        tx.push(&message(seq)).unwrap();
    }
    for _ in 0..5 {
        assert_eq!(tx.push(&message(999)), Err(PushError::Full));
    }
    assert_eq!(rt.shm().events.dropped(), 5);
    // SAFETY: as above.
    let mut rx = unsafe { rt.shm().events.consumer() };
    assert_eq!(rx.pop::<ImageWrite>(), Some(Ok(message(0))));
    tx.push(&message(capacity as u64)).expect("a freed slot is reused");
    assert_eq!(rx.len(), capacity);
}

#[test]
fn oversized_messages_are_refused_not_truncated() {
    let (_dir, _rt, client) = pair();
    // SAFETY: single producer in this test.
    let mut tx = unsafe { client.shm().writes.producer() };
    assert_eq!(tx.push_bytes(&[0u8; 64]), Err(PushError::TooLarge));
    assert_eq!(tx.push(&[u64::MAX; 8]), Err(PushError::TooLarge), "80 bytes of varints");
    assert!(client.shm().writes.is_empty());
}

/// The tables of the program these snapshots come from (what readers copy, and in the
/// input tests the lines the client copies and the reader compares).
const SIZES: ImageSizes = ImageSizes::LEGACY;
const N: usize = 1024;

fn fill(snapshot: &mut OutputSnapshot, value: u64) {
    snapshot.cycle = value;
    snapshot.tick = value;
    snapshot.sizes = SIZES;
    snapshot.image.lint_output[..N].fill(value);
    snapshot.image.lint_memory[..N].fill(value);
    snapshot.image.int_memory[..N].fill(value as u16);
}

fn consistent(snapshot: &OutputSnapshot) -> bool {
    let v = snapshot.cycle;
    snapshot.tick == v
        && snapshot.sizes == SIZES
        && snapshot.image.lint_output[..N].iter().all(|&x| x == v)
        && snapshot.image.lint_memory[..N].iter().all(|&x| x == v)
        && snapshot.image.int_memory[..N].iter().all(|&x| x == v as u16)
}

#[test]
fn seqlock_readers_never_accept_a_torn_snapshot() {
    let _turn = take_turn();
    const WRITES: u64 = 100_000;
    const READERS: usize = 2;
    let (_dir, rt, client) = pair();
    // Version 0 first, before any reader starts: a fresh snapshot (no sizes) is not one the
    // readers' check knows.
    // SAFETY: this thread is the only writer of the outputs seqlock until the writer below.
    unsafe { rt.shm().outputs.write(|snap| fill(snap, 0)) };
    let done = AtomicBool::new(false);
    let successes: [AtomicU64; READERS] = [AtomicU64::new(0), AtomicU64::new(0)];
    thread::scope(|s| {
        s.spawn(|| {
            for v in 1..=WRITES {
                // SAFETY: this thread is the only writer of the outputs seqlock.
                unsafe { rt.shm().outputs.write(|snap| fill(snap, v)) };
                // Like rt-core, which writes once per cycle, leave readers room: every 500
                // writes, wait until each reader has completed another read.
                if v % 500 == 0 {
                    let seen: Vec<u64> = successes.iter().map(|c| c.load(Ordering::Acquire)).collect();
                    let since = std::time::Instant::now();
                    while successes.iter().zip(&seen).any(|(c, &n)| c.load(Ordering::Acquire) == n) {
                        // A reader that failed its checks has stopped: fail, never hang.
                        if since.elapsed().as_secs() >= 60 {
                            done.store(true, Ordering::Release);
                            panic!("a reader stopped reading");
                        }
                        // Three threads on as few as two CPUs: give the readers the CPU.
                        thread::yield_now();
                    }
                }
            }
            done.store(true, Ordering::Release);
        });
        let readers: Vec<_> = successes
            .iter()
            .map(|count| {
                let (client, done) = (&client, &done);
                s.spawn(move || {
                    let mut snap: Box<OutputSnapshot> = bytemuck::zeroed_box();
                    let (mut torn, mut last) = (0u64, 0u64);
                    while !done.load(Ordering::Acquire) {
                        // What the companion does: the head, then the prefixes it names.
                        match shared_abi::layout::read_outputs(&client.shm().outputs, &mut snap, 1) {
                            Ok(_) => {
                                assert!(consistent(&snap), "accepted a torn snapshot at {}", snap.cycle);
                                assert!(snap.cycle >= last, "versions went backwards");
                                last = snap.cycle;
                                count.fetch_add(1, Ordering::AcqRel);
                            }
                            Err(_) => torn += 1,
                        }
                    }
                    torn
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
    });
    for c in &successes {
        assert!(c.load(Ordering::Acquire) >= WRITES / 500, "each reader got through at every handshake");
    }
    let mut snap: Box<OutputSnapshot> = bytemuck::zeroed_box();
    client.shm().outputs.read(&mut snap, 10).unwrap();
    assert_eq!(snap.cycle, WRITES, "the last write is what a quiet reader sees");
}

#[test]
fn triple_buffer_hands_over_whole_snapshots_newest_first() {
    let _turn = take_turn();
    const PUBLISHES: u64 = 300_000;
    let (_dir, rt, client) = pair();
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            for v in 1..=PUBLISHES {
                // SAFETY: this thread is the only writer of the input buffer.
                let back = &mut unsafe { client.shm().inputs.back_buffer() }.image;
                back.lint_input[..N].fill(v);
                back.int_input[..N].fill(v as u16);
                back.bool_input[1023][7] = (v % 2) as u8;
                // SAFETY: as above.
                unsafe { client.shm().inputs.publish() };
            }
            done.store(true, Ordering::Release);
        });
        let mut last = 0u64;
        let mut fresh_count = 0u64;
        loop {
            let finished = done.load(Ordering::Acquire);
            // SAFETY: this thread is the only reader of the input buffer.
            let (snapshot, fresh) = unsafe { rt.shm().inputs.read_latest() };
            let image = &snapshot.image;
            let v = image.lint_input[0];
            assert!(image.lint_input[..N].iter().all(|&x| x == v), "torn input snapshot");
            assert!(image.int_input[..N].iter().all(|&x| x == v as u16), "torn input snapshot");
            assert_eq!(image.bool_input[1023][7], (v % 2) as u8);
            if fresh {
                assert!(v > last, "a snapshot came back older or twice: {v} after {last}");
                fresh_count += 1;
            } else {
                assert_eq!(v, last, "a buffer changed while the reader held it");
            }
            last = v;
            if finished && !fresh {
                break;
            }
        }
        assert_eq!(last, PUBLISHES, "the reader ends on the newest snapshot");
        assert!(fresh_count > 0);
    });
    assert_eq!(client.shm().inputs.published(), PUBLISHES);
}

#[test]
fn a_new_writer_starts_from_what_the_reader_sees() {
    let (_dir, rt, client) = pair();
    for v in [5u64, 6, 7] {
        // SAFETY: single writer in this test.
        unsafe {
            client.shm().inputs.back_buffer().image.lint_input[3] = v;
            client.shm().inputs.publish();
        }
        if v == 6 {
            // SAFETY: single reader in this test.
            let (img, _) = unsafe { rt.shm().inputs.read_latest() };
            assert_eq!(img.image.lint_input[3], 6);
        }
    }
    let mut copy: Box<shared_abi::layout::InputSnapshot> = bytemuck::zeroed_box();
    // SAFETY: the test's writer is not writing.
    assert!(unsafe { client.shm().inputs.copy_latest(&mut copy) });
    assert_eq!(copy.image.lint_input[3], 7, "unread newest snapshot");
    // SAFETY: single reader.
    let _ = unsafe { rt.shm().inputs.read_latest() };
    // SAFETY: as above.
    assert!(unsafe { client.shm().inputs.copy_latest(&mut copy) });
    assert_eq!(copy.image.lint_input[3], 7, "snapshot the reader already holds");
}

/// A reader that keeps its own copy of the inputs the way rt-core keeps the program's
/// image: only the changed lines when the snapshot says they suffice, else everything.
/// Each fresh snapshot carries the whole image too, so the copy is checked against it.
/// Publishes a program with the tables `SIZES`, as rt-core does at a swap: the client then
/// compares and copies the lines of those tables (with no program, of every table).
fn run_a_program(rt: &RtMapping) {
    let shm = rt.shm();
    // SAFETY: the test stands in for rt-core, the program info's only writer.
    unsafe {
        shm.program.write(|p| {
            p.program_gen = 1;
            p.image_sizes = SIZES;
        })
    };
    shm.header.program_gen.store(1, Ordering::Release);
}

struct InputReader {
    image: Box<shared_abi::image::InputImage>,
    held: u64,
    partial: u64,
    full: u64,
}

impl InputReader {
    fn new() -> InputReader {
        InputReader { image: bytemuck::zeroed_box(), held: 0, partial: 0, full: 0 }
    }

    /// Takes the newest snapshot, if any; returns whether one was taken.
    fn take(&mut self, rt: &RtMapping) -> bool {
        // SAFETY: the calling thread is the only reader of the input buffer.
        let (snap, fresh) = unsafe { rt.shm().inputs.read_latest() };
        if !fresh {
            return false;
        }
        if self.held != 0 && snap.lines_suffice_from(self.held) {
            snap.copy_changed_lines(&mut self.image, &SIZES);
            self.partial += 1;
        } else {
            self.image.copy_within_sizes(&snap.image, &SIZES);
            self.full += 1;
        }
        let (mine, theirs) = (bytemuck::bytes_of(&*self.image), bytemuck::bytes_of(&snap.image));
        assert!(
            InputImage::ranges_within(&SIZES).iter().all(|&(o, n)| mine[o..o + n] == theirs[o..o + n]),
            "generation {} taken from {}: the reader's copy differs",
            snap.generation,
            self.held
        );
        self.held = snap.generation;
        true
    }
}

/// A small deterministic generator for the tests below.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

#[test]
fn changed_input_lines_suffice_whatever_snapshots_the_reader_skips() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("shm").to_str().unwrap().to_string();
    let rt = RtMapping::open(&name).unwrap();
    run_a_program(&rt);
    let mut client = shared_abi::client::RtClient::open(&name).unwrap();
    let mut reader = InputReader::new();
    let mut rng = 7u64;
    for _ in 0..3000 {
        // Up to four snapshots between two reads, each changing a few points and sometimes
        // changing one back (a line that differs from the reader's copy but not from the
        // snapshot before).
        for _ in 0..next(&mut rng) % 5 {
            let (i, v) = ((next(&mut rng) % 1024) as usize, next(&mut rng) as u16 % 3);
            let b = (next(&mut rng) % 1024) as usize;
            client.update_inputs(|img| {
                img.int_input[i] = v;
                img.bool_input[b][0] ^= 1;
            });
        }
        reader.take(&rt);
    }
    assert!(reader.partial > 1000, "changed lines used: {} partial, {} full", reader.partial, reader.full);
    assert!(reader.full >= 1, "the first snapshot after taking over is whole");
}

#[test]
fn changed_input_lines_suffice_across_threads() {
    let _turn = take_turn();
    const UPDATES: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("shm").to_str().unwrap().to_string();
    let rt = RtMapping::open(&name).unwrap();
    run_a_program(&rt);
    let mut client = shared_abi::client::RtClient::open(&name).unwrap();
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let writer = thread::spawn(move || {
        let mut rng = 11u64;
        for _ in 0..UPDATES {
            let (i, v) = ((next(&mut rng) % 1024) as usize, next(&mut rng));
            client.update_inputs(|img| img.lint_input[i] = v % 4);
        }
        finished.store(true, Ordering::Release);
        client
    });
    let mut reader = InputReader::new();
    while !done.load(Ordering::Acquire) {
        reader.take(&rt);
    }
    reader.take(&rt);
    drop(writer.join().unwrap());
    assert!(reader.partial > 100, "changed lines used: {} partial, {} full", reader.partial, reader.full);
}
