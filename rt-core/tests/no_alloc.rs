//! The scan path allocates nothing: a counting global allocator watches the thread that runs
//! the engine's cycles while a client drives every path (inputs, writes, forcing, variable
//! writes, watch lists, stop/start, statistics resets, program swaps, overruns, undecodable
//! and out-of-range messages, faults, a watchdog abort, a fault that asks for a restart).
//! It sees Rust's allocator only: C `malloc` inside program code is the program's business.
//! First the same for a program whose tasks run on threads of their own: the dispatching
//! cycles and every task thread (once set up, until it ends) are watched.

mod support;

use rt_core::engine::Engine;
use rt_core::sys;
use shared_abi::client::{Reader, RtClient};
use shared_abi::layout::{PlcState, SharedMemory};
use shared_abi::msg::Command;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// The shared memory whose task threads are watched (`tasks.tids`), once armed.
static TASK_SHM: AtomicPtr<SharedMemory> = AtomicPtr::new(std::ptr::null_mut());
static TASK_ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

/// Whether the calling thread is one of the armed shared memory's task threads (set up and
/// in its loop: a task thread publishes its id once set up and clears it before it ends).
fn on_task_thread() -> bool {
    let shm = TASK_SHM.load(Ordering::Acquire);
    if shm.is_null() {
        return false;
    }
    // SAFETY: the pointer is the test's 'static mapping, set once armed.
    let tids = unsafe { &(*shm).tasks.tids };
    let me = sys::gettid();
    tids.iter().any(|t| t.load(Ordering::Relaxed) == me)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// atomics and the thread-local flag needs no allocation (const-initialised).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        if on_task_thread() {
            TASK_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        if on_task_thread() {
            TASK_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        if on_task_thread() {
            TASK_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the pointer and layout the caller got from us.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        if on_task_thread() {
            TASK_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` with the allocation counter armed on this thread.
fn counted<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

fn cycle(engine: &mut Engine) {
    let now = sys::now_ns();
    counted(|| engine.run_cycle(now, now));
}

fn set_var(var: u32, bytes: &[u8]) -> Command {
    Command::SetVar { var, value: heapless::Vec::from_slice(bytes).unwrap(), big_endian: false }
}

fn force(var: u32, bytes: &[u8]) -> Command {
    Command::Force { var, value: heapless::Vec::from_slice(bytes).unwrap(), big_endian: false }
}

#[test]
fn the_scan_path_allocates_nothing() {
    the_dispatcher_and_the_task_threads_allocate_nothing();
    let mut rig = support::InProcess::new();
    let dir = rig.dir.path().to_path_buf();
    // With a RETAIN variable: its values are published every 100 scans and at each stop.
    let first = support::build_fixture(&dir, "a.so", &["PERIOD_NS=1000000ULL", "WITH_RETAIN"]);
    let second = support::build_fixture(&dir, "b.so", &["PERIOD_NS=1000000ULL", "COUNTER_STEP=3", "WITH_RETAIN"]);
    let crash = support::build_fixture(&dir, "c.so", &["CRASH_AT_TICK=20"]);
    let spin = support::build_fixture(&dir, "s.so", &["SPIN_LOOPS=20000000L"]);
    let asserts = support::build_fixture(&dir, "assert.so", &["FAULT_KIND=8", "FAULT_IN=3"]);
    let shm = rig.shm;
    let (engine, client) = (&mut rig.engine, &mut rig.client);

    // Cycles with no program at all, with a watch list.
    client.set_watch(&[0, 1, 2]);
    for _ in 0..50 {
        cycle(engine);
    }

    let load = |client: &mut RtClient, engine: &mut Engine, path: &std::path::Path| {
        let p = shared_abi::msg::bounded(path.to_str().unwrap());
        // Every table at 1024, so the writes below (%MW7) land inside them.
        let image =
            shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false };
        client.send(Command::Load { path: p, start: true, warm: false, online: false, image }).unwrap();
        let target = shm.header.program_gen.load(Ordering::Acquire);
        // Keep cycling (counted) while the loader works: the swap happens inside a cycle.
        for _ in 0..20_000 {
            cycle(engine);
            if shm.header.program_gen.load(Ordering::Acquire) != target {
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        panic!("program never swapped in");
    };
    load(client, engine, &first);
    assert_eq!(engine.state(), PlcState::Running);

    let mut seen = std::collections::BTreeSet::new();
    for i in 0..6000u32 {
        // Client work happens on this thread too, but outside the counted section.
        match i % 600 {
            0 => {
                client.drain_events(|e| {
                    seen.insert(format!("{e:?}").split([' ', '{', '(']).next().unwrap_or_default().to_string());
                });
            }
            10 => client.update_inputs(|img| {
                img.bool_input[0][0] ^= 1;
                img.int_input[0] = i as u16;
            }),
            20 => client.write(shared_abi::image::IecAddress::parse("%MW7").unwrap(), i as u64).unwrap(),
            30 => {
                client.send(force(1, &[1])).unwrap();
            }
            40 => {
                client.send(force(3, &2.5f32.to_le_bytes())).unwrap();
            }
            50 => {
                client.send(force(6, b"\x03abc")).unwrap();
            }
            55 => {
                // The RETAIN variable: its address is asked again after the force.
                client.send(force(0, &7u16.to_le_bytes())).unwrap();
            }
            60 => {
                client.send(Command::Unforce { var: 1 }).unwrap();
            }
            70 => {
                client.set_watch(&[0, 1, 2, 3, 4, 5, 6, 99]);
            }
            80 => {
                client.send(Command::Stop).unwrap();
            }
            90 => {
                client.send(Command::Start).unwrap();
            }
            100 => {
                client.send(Command::ResetStats).unwrap();
            }
            110 => {
                client.send(Command::UnforceAll).unwrap();
            }
            120 => {
                // An overrun: the deadline lies several periods in the past.
                let now = sys::now_ns();
                counted(|| engine.run_cycle(now - 5_000_000, now));
            }
            130 => {
                client.send(set_var(0, &1000u16.to_le_bytes())).unwrap();
            }
            140 => {
                // SAFETY: this client holds the lease and none of its own producers is alive:
                // the only producer of both rings.
                let (mut writes, mut commands) = unsafe { (shm.writes.producer(), shm.commands.producer()) };
                writes.push_bytes(&[2, 2, 0x88, 0x27, 0, 42]).unwrap(); // %MW5000
                commands.push_bytes(&[1, 200]).unwrap();
            }
            _ => {}
        }
        cycle(engine);
        if i == 3000 {
            load(client, engine, &second);
        }
    }
    assert_ne!(client.retain_saved().unwrap().program_gen, 0, "RETAIN values were published");
    load(client, engine, &crash);
    for _ in 0..100 {
        cycle(engine);
    }
    assert_eq!(engine.state(), PlcState::Error, "the crash path ran too");
    assert_eq!(client.stats().unwrap().scan_count, 20, "the crashing program ran its 20 scans");

    // A watchdog abort of the run under way (sent from another thread, as the watchdog does).
    load(client, engine, &spin);
    let tid = sys::gettid();
    let watchdog = std::thread::spawn(move || {
        loop {
            let stamp = shm.header.in_program_since_ns.load(Ordering::Acquire);
            if stamp != 0 {
                rt_core::guard::signal_watchdog(tid, stamp).unwrap();
                return;
            }
            std::hint::spin_loop();
        }
    });
    for _ in 0..1000 {
        cycle(engine);
        if engine.state() == PlcState::Error {
            break;
        }
    }
    watchdog.join().unwrap();
    assert_eq!(engine.state(), PlcState::Error, "the watchdog path ran");

    // A fault inside libc (a failed assert): the engine asks for a restart in place.
    load(client, engine, &asserts);
    let mut restart = None;
    for _ in 0..100 {
        let now = sys::now_ns();
        restart = restart.or(counted(|| engine.run_cycle(now, now)).restart);
    }
    assert_eq!(restart, Some(rt_core::restart::RestartKind::ScanFault), "the restart path ran");

    client.drain_events(|e| {
        seen.insert(format!("{e:?}").split([' ', '{', '(']).next().unwrap_or_default().to_string());
    });
    for kind in ["Forced", "StateChanged", "ProgramSwapped", "Overruns", "ProgramFault", "BadMessage", "WatchdogAbort"]
    {
        assert!(seen.contains(kind), "the {kind} path was exercised: {seen:?}");
    }

    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations on the scan path");
    assert_eq!(FREES.load(Ordering::Relaxed), 0, "frees on the scan path");
    // The counter itself works: an allocation under `counted` is seen.
    counted(|| drop(std::hint::black_box(Box::new(1u64))));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1);
}

/// The dispatcher and the task threads of a two-task program, before the single-thread path
/// (in the same test: a restart in place requested there would stop this one's loader).
fn the_dispatcher_and_the_task_threads_allocate_nothing() {
    let mut rig = support::InProcess::new();
    let dir = rig.dir.path().to_path_buf();
    let tasks = ["PERIOD_NS=1000000ULL", "WITH_TASKS", "SLOW_EVERY=5", "SLOW_BUSY_NS=2000000LL"];
    let first = support::build_fixture(&dir, "t1.so", &tasks);
    let second = support::build_fixture(&dir, "t2.so", &[&tasks[..], &["COUNTER_STEP=3"]].concat());
    let shm = rig.shm;
    let (engine, client) = (&mut rig.engine, &mut rig.client);
    let load = |client: &mut RtClient, engine: &mut Engine, path: &std::path::Path| {
        let p = shared_abi::msg::bounded(path.to_str().unwrap());
        let image =
            shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false };
        client.send(Command::Load { path: p, start: true, warm: false, online: false, image }).unwrap();
        let target = shm.header.program_gen.load(Ordering::Acquire);
        for _ in 0..20_000 {
            cycle(engine);
            if shm.header.program_gen.load(Ordering::Acquire) != target {
                return;
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        panic!("program never swapped in");
    };
    load(client, engine, &first);
    TASK_SHM.store(shm as *const SharedMemory as *mut SharedMemory, Ordering::Release);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..3000u32 {
        match i % 500 {
            10 => {
                client.send(force(1, &[1])).unwrap();
            }
            20 => {
                client.set_watch(&[0, 1, 2, 3]);
            }
            30 => {
                client.send(Command::Stop).unwrap();
            }
            40 => {
                client.send(Command::Start).unwrap();
            }
            50 => {
                client.send(Command::ResetStats).unwrap();
            }
            60 => {
                client.send(Command::UnforceAll).unwrap();
            }
            _ => {}
        }
        cycle(engine);
        if i == 1500 {
            // A swap: the old threads end and new ones start (on the loader thread).
            load(client, engine, &second);
        }
        std::thread::sleep(std::time::Duration::from_micros(300));
    }
    let records = client.task_records().unwrap();
    assert_eq!(records.count, 2);
    assert!(records.tasks[0].stats.scan_count > 100 && records.tasks[1].stats.scan_count > 10, "the tasks ran");
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), before, "allocations on the dispatching scan path");
    assert_eq!(TASK_ALLOCATIONS.load(Ordering::Relaxed), 0, "allocations or frees on a task thread");
    // The watch itself works: a thread that poses as task 15 and allocates is seen.
    std::thread::spawn(move || {
        shm.tasks.tids[15].store(sys::gettid(), Ordering::Release);
        drop(std::hint::black_box(Box::new(1u64)));
        shm.tasks.tids[15].store(0, Ordering::Release);
    })
    .join()
    .unwrap();
    assert_eq!(TASK_ALLOCATIONS.swap(0, Ordering::Relaxed), 2, "one allocation and one free seen");
    TASK_SHM.store(std::ptr::null_mut(), Ordering::Release);
}
