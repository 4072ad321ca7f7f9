//! The port against a real rt-core: the shared per-scan output copy, all-or-nothing writes
//! and their tickets, commands, forces and loads, the shared watch list, and waits that end
//! at once when rt-core dies or another one takes over.

use openplc_port::testkit::{DEADLINE, Rt, build_fixture, wait_for};
use openplc_port::{LogSink, PlcPort, PortError, SampleError, WriteRing};
use shared_abi::client::Reader;
use shared_abi::image::IecAddress;
use shared_abi::msg::{Command, CommandStatus, MAX_WRITES_PER_CYCLE};
use std::sync::Arc;

/// Every table at 1024 elements, as an image.conf could ask.
const LEGACY: shared_abi::sizes::ImageRequest =
    shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false };
use std::time::{Duration, Instant};

/// Long enough that a wait ending on its own is a failure of the test.
const LONG: Duration = Duration::from_secs(60);

fn addr(s: &str) -> IecAddress {
    IecAddress::parse(s).unwrap()
}

/// Writes queued in rt-core's ring right now.
fn queued(rt: &Rt) -> usize {
    rt.observer().shm().writes.len()
}

#[test]
fn outputs_are_copied_once_per_published_scan_and_shared_by_every_caller() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let first = port.wait_scan_after_blocking(0, DEADLINE).unwrap();
    rt.pause();
    let a = port.outputs();
    assert!(a.cycle >= first);
    let from_threads: Vec<_> = (0..4)
        .map(|_| {
            let p = port.clone();
            std::thread::spawn(move || p.outputs())
        })
        .collect();
    for t in from_threads {
        assert!(Arc::ptr_eq(&a, &t.join().unwrap()), "one copy for every caller while no scan is published");
    }
    rt.resume();
    let next = port.wait_scan_after_blocking(a.cycle, DEADLINE).unwrap();
    let b = port.outputs();
    assert!(!Arc::ptr_eq(&a, &b), "a new scan, a new copy");
    assert!(b.cycle >= next && b.tick > a.tick);
    assert!(Arc::ptr_eq(&b, &port.outputs()) || port.outputs().cycle > b.cycle);
}

/// The port's copy of a scan published after `cycle`.
fn copy_after(port: &PlcPort, cycle: u64) -> Arc<shared_abi::layout::OutputSnapshot> {
    port.wait_scan_after_blocking(cycle, DEADLINE).unwrap();
    let copy = port.outputs();
    assert!(copy.cycle > cycle);
    copy
}

/// A new copy is made into the memory of the one before last once no caller holds it
/// (zeroing a fresh 2.8 MiB per scan took milliseconds on a VM); a copy a caller holds is
/// never written again.
#[test]
fn a_copy_nobody_holds_is_reused_and_a_held_one_never_changes() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let a = copy_after(&port, 0);
    let (a_at, a_cycle) = (Arc::as_ptr(&a), a.cycle);
    drop(a);
    let b = copy_after(&port, a_cycle);
    let (b_at, b_cycle, b_tick) = (Arc::as_ptr(&b), b.cycle, b.tick);
    let c = copy_after(&port, b_cycle);
    assert_eq!(Arc::as_ptr(&c), a_at, "the copy nobody held is reused");
    let d = copy_after(&port, c.cycle);
    assert!(Arc::as_ptr(&d) != b_at && Arc::as_ptr(&d) != Arc::as_ptr(&c), "the held copies are not reused");
    assert_eq!((b.cycle, b.tick), (b_cycle, b_tick), "a held copy keeps its scan");
}

#[test]
fn writes_are_all_or_nothing_and_applied_by_their_ticket() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    rt.pause();
    let before = port.cycle();
    assert!(matches!(port.write(&[(addr("%MW1"), 1), (addr("%IW3"), 1)]), Err(PortError::InputNotWritable(_))));
    assert!(matches!(port.write(&[(addr("%MW1"), 1), (addr("%QX0.1"), 2)]), Err(PortError::ValueTooLarge { .. })));
    let too_many = vec![(addr("%MW1"), 1); WriteRing::CAPACITY + 1];
    assert!(matches!(port.write(&too_many), Err(PortError::TooManyWrites { .. })));
    assert_eq!(queued(&rt), 0, "a refused batch queues nothing");

    // Fill the queue but for 10 slots: 11 writes are refused whole, 10 fit.
    let fill: Vec<_> = (0..WriteRing::CAPACITY - 10).map(|i| (addr("%MW5"), i as u64)).collect();
    port.write(&fill).unwrap();
    let last = (WriteRing::CAPACITY - 11) as u64;
    let batch: Vec<_> = (0..11).map(|i| (addr("%MW6"), 100 + i)).collect();
    assert!(matches!(port.write(&batch), Err(PortError::WriteQueueFull)));
    assert_eq!(queued(&rt), WriteRing::CAPACITY - 10, "nothing of the refused batch was queued");
    let ticket = port.write(&batch[..10]).unwrap();
    assert_eq!(queued(&rt), WriteRing::CAPACITY);
    let cycles_to_drain = WriteRing::CAPACITY.div_ceil(MAX_WRITES_PER_CYCLE) as u64;
    assert!(ticket.applied_by() >= before + cycles_to_drain, "{} < {before} + {cycles_to_drain}", ticket.applied_by());
    assert!(ticket.applied_by() <= before + cycles_to_drain + 1);

    rt.resume();
    // Reported applied at the start of the cycle that took the last of the queue: the one
    // in progress when paused may or may not have taken its share already.
    let applied_in = port.wait_applied_blocking(ticket, DEADLINE).unwrap();
    assert!(
        (before + cycles_to_drain - 1..=ticket.applied_by()).contains(&applied_in),
        "applied in cycle {applied_in}, queued at {before}, {cycles_to_drain} cycles of writes"
    );
    assert!(port.cycle() >= applied_in);
    port.wait_scan_after_blocking(applied_in - 1, DEADLINE).unwrap();
    let out = port.outputs();
    assert_eq!((out.image.int_memory[5], out.image.int_memory[6]), (last as u16, 109), "every write applied, in order");
    assert_eq!(port.stats().unwrap().writes_applied, WriteRing::CAPACITY as u64);
}

/// A write is reported applied when the scan that sees it starts, not when it ends: with
/// scans of about 600 ms (a busy loop in the program) once a second, the wait returns while
/// that scan still runs (the ticker looks at least every 50 ms), and its outputs show the
/// write once published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_reported_applied_as_the_scan_that_sees_it_starts() {
    let rt = Rt::with_fixture(&["SPIN_LOOPS=1200000000L", "PERIOD_NS=1000000000ULL"]);
    let port = rt.port();
    for value in [7u16, 8] {
        let ticket = port.write(&[(addr("%MW3"), u64::from(value))]).unwrap();
        let applied_in = port.wait_applied(ticket, Duration::from_secs(10)).await.unwrap();
        assert_eq!(port.cycle(), applied_in, "the cycle that applied the write has not ended");
        assert!(port.outputs().cycle < applied_in, "its scan has not published");
        port.wait_scan_after(applied_in - 1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(port.outputs().image.int_memory[3], value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_waits_see_writes_forces_and_commands_through() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let ticket = port.write(&[(addr("%QW7"), 4242)]).unwrap();
    let applied_in = port.wait_applied(ticket, DEADLINE).await.unwrap();
    port.wait_scan_after(applied_in - 1, DEADLINE).await.unwrap();
    assert_eq!(port.outputs().image.int_output[7], 4242, "outputs stamped with that cycle show the write");

    // Variable 0 is the %MW0 counter: forced, it holds; big-endian bytes are converted.
    let t = port.command_timeout(Duration::from_secs(3));
    assert_eq!(port.force(0, &[0x12, 0x34], true, t).await.unwrap(), CommandStatus::Ok);
    let at = port.wait_scan_after(port.cycle(), DEADLINE).await.unwrap();
    port.wait_scan_after(at + 3, DEADLINE).await.unwrap();
    assert_eq!(port.outputs().image.int_memory[0], 0x1234, "forced value held over scans");
    assert_eq!(port.unforce(0, t).await.unwrap(), CommandStatus::Ok);
    let at = port.wait_scan_after(port.cycle(), DEADLINE).await.unwrap();
    port.wait_scan_after(at + 3, DEADLINE).await.unwrap();
    assert_ne!(port.outputs().image.int_memory[0], 0x1234, "counting again");
    assert_eq!(port.force(0, &[0; 4], false, t).await.unwrap(), CommandStatus::BadValue, "too long for a UINT");
    assert!(matches!(port.force(0, &[0; 300], false, t).await, Err(PortError::TooLarge { .. })));

    assert_eq!(port.command(Command::Start, t).await.unwrap(), CommandStatus::AlreadyRunning);
    assert_eq!(port.command(Command::Stop, t).await.unwrap(), CommandStatus::Ok);
    // The stop publishes the safe state (outputs off) once, at the end of its cycle.
    port.wait_cycle_after(port.cycle() + 1, DEADLINE).await.unwrap();
    let last = port.outputs().cycle;
    let more = port.wait_scan_after(last, Duration::from_millis(300)).await;
    assert!(matches!(more, Err(PortError::Timeout { .. })), "a stopped program publishes no scan: {more:?}");
}

#[test]
fn loads_report_refusals_failures_and_success() {
    let rt = Rt::start();
    let port = rt.port();
    let long = "/".repeat(300);
    assert!(matches!(
        port.load_blocking(&long, true, openplc_port::LoadKind::Cold, LEGACY, DEADLINE),
        Err(PortError::TooLarge { .. })
    ));
    match port.load_blocking("/nonexistent/program.so", true, openplc_port::LoadKind::Cold, LEGACY, DEADLINE) {
        Err(PortError::LoadFailed(why)) => assert!(why.contains("nonexistent"), "{why}"),
        other => panic!("{:?}", other.map(|r| r.program_gen)),
    }
    assert!(port.program_info().is_none());
    let program = build_fixture(rt.dir.path(), "p.so", &[]);
    let loaded =
        port.load_blocking(&program.to_string_lossy(), true, openplc_port::LoadKind::Cold, LEGACY, DEADLINE).unwrap();
    assert_eq!(port.program_info().map(|p| p.program_gen), Some(loaded.program_gen));
    assert_eq!(port.state(), Some(shared_abi::layout::PlcState::Running));
}

#[test]
fn waits_end_at_once_when_rt_core_dies() {
    let mut rt = Rt::with_fixture(&[]);
    let port = rt.port();
    rt.pause();
    // Stop is queued but a frozen loop never takes it.
    let ticket = port.send(Command::Stop).unwrap();
    let waiter = {
        let p = port.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            (p.wait_result_blocking(ticket, LONG), start.elapsed())
        })
    };
    let cycle = port.cycle();
    let scan_waiter = {
        let p = port.clone();
        std::thread::spawn(move || p.wait_cycle_after_blocking(cycle, LONG))
    };
    rt.kill();
    let (result, took) = waiter.join().unwrap();
    assert!(matches!(result, Err(PortError::RtGone)), "{result:?}");
    assert!(took < LONG / 4, "the wait lasted {took:?}");
    assert!(matches!(scan_waiter.join().unwrap(), Err(PortError::RtGone)));
    // Later calls say so straight away too.
    assert!(matches!(port.command_blocking(Command::Start, LONG), Err(PortError::RtGone)));
    assert!(!port.rt_alive());
    let detached = PlcPort::detached(LogSink::discard());
    assert!(matches!(detached.command_blocking(Command::Start, LONG), Err(PortError::NotAttached)));
    assert!(matches!(detached.write(&[(addr("%QX0.0"), 1)]), Err(PortError::NotAttached)));
    assert_eq!((detached.cycle(), detached.outputs().cycle), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_end_at_once_when_another_rt_core_takes_over() {
    let mut rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let first_pid = rt.pid();
    rt.pause();
    let ticket = port.write(&[(addr("%MW9"), 9)]).unwrap();
    let cycle = port.cycle();
    let in_flight = {
        let p = port.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            (p.wait_cycle_after(cycle + 1_000_000_000, LONG).await, start.elapsed())
        })
    };
    rt.replace();
    let (result, took) = in_flight.await.unwrap();
    assert!(matches!(result, Err(PortError::RtGone | PortError::RtReplaced { .. })), "{result:?}");
    assert!(took < LONG / 4, "the wait lasted {took:?}");
    // The successor's loop counter goes on from the file, past the ticket, but it has no
    // program to apply the writes to: the ticket's rt-core is gone, and the wait says so.
    port.wait_cycle_after(ticket.applied_by(), DEADLINE).await.unwrap();
    match port.wait_applied(ticket, LONG).await {
        Err(PortError::RtReplaced { asked, now }) => {
            assert_eq!(asked.pid, first_pid);
            assert_eq!(now.pid, rt.pid());
        }
        other => panic!("{other:?}"),
    }
    // The port carries on with the successor without being attached again.
    let t = port.command_timeout(Duration::from_secs(3));
    assert_eq!(port.command(Command::Start, t).await.unwrap(), CommandStatus::NoProgram);
}

/// A load whose library takes rt-core down ends as soon as the supervisor has a new rt-core
/// in place (it used to wait out its whole timeout: the successor never answers it). An
/// rt-core that survives such a library refuses it instead.
#[test]
fn a_load_that_takes_rt_core_down_ends_at_once() {
    let mut rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let crashing = build_fixture(rt.dir.path(), "crash.so", &["CRASH_IN_CONSTRUCTOR"]);
    let load = {
        let p = port.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            (
                p.load_blocking(&crashing.to_string_lossy(), true, openplc_port::LoadKind::Cold, LEGACY, LONG)
                    .map(|r| r.program_gen),
                start.elapsed(),
            )
        })
    };
    let died = wait_for("the load to end or rt-core to die", DEADLINE, || {
        if load.is_finished() { Some(false) } else { rt.exited().then_some(true) }
    });
    if died {
        // What the supervisor does: another rt-core on the same file, at once.
        rt.replace();
    }
    let (result, took) = load.join().unwrap();
    if died {
        assert!(matches!(result, Err(PortError::RtGone | PortError::RtReplaced { .. })), "{result:?}");
    } else {
        assert!(matches!(result, Err(PortError::LoadFailed(_))), "{result:?}");
    }
    assert!(took < LONG / 4, "the load waited {took:?}");
}

#[test]
fn samples_come_from_a_later_scan_through_the_shared_watch_list() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let arrival = port.cycle();
    let values = port.sample_blocking(&[6, 99, 0], arrival, DEADLINE).unwrap();
    assert_eq!(&values[0].as_ref().unwrap()[..8], b"\x07rt-core");
    assert_eq!(values[1], None, "the fixture has no variable 99");
    assert_eq!(values[2].as_ref().map(Vec::len), Some(2));
    assert!(port.sampler().latest().unwrap().cycle > arrival);
    assert_eq!(port.sampler().watched(), 3);
    rt.pause();
    assert_eq!(
        port.sample_blocking(&[0], port.cycle(), Duration::from_millis(300)),
        Err(SampleError::Timeout(Duration::from_millis(300)))
    );
    rt.resume();
    let empty = Rt::start();
    assert_eq!(empty.port().sample_blocking(&[0], 0, DEADLINE), Err(SampleError::NoProgram));
}

/// rt-core stopped between two cycles: every cycle begun has ended.
fn pause_between_cycles(rt: &Rt, port: &PlcPort) -> u64 {
    for _ in 0..100 {
        rt.pause();
        let ended = port.cycle();
        if port.arrival() + 1 == ended {
            return ended;
        }
        // Stopped inside a cycle (its scan takes microseconds of the 2 ms): again.
        rt.resume();
        port.wait_cycle_after_blocking(ended, DEADLINE).unwrap();
    }
    panic!("rt-core never stopped between two cycles");
}

/// A request that arrives between two cycles is answered by the very next scan, not the
/// one after it: that scan begins after the request.
#[test]
fn a_sample_asked_for_between_cycles_comes_from_the_next_scan() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    let program_gen = port.program_info().unwrap().program_gen;
    // Variable 0 in the watch list already, as for a debugger polling it.
    port.sample_blocking(&[0], port.arrival(), DEADLINE).unwrap();
    for _ in 0..100 {
        let next = pause_between_cycles(&rt, &port);
        let arrival = port.arrival();
        assert_eq!(arrival + 1, next, "between cycles, the next scan is after the request");
        // Let exactly that scan run: stop again once it has ended, before another begins.
        rt.resume();
        port.wait_cycle_after_blocking(next, DEADLINE).unwrap();
        let after = pause_between_cycles(&rt, &port);
        if after != next + 1 {
            rt.resume();
            continue; // another cycle ran too: its values replaced the ones wanted
        }
        let lease = port.sampler().lease(&[0]).unwrap();
        let sample = lease.wait_blocking(program_gen, arrival, DEADLINE).unwrap();
        assert_eq!(sample.cycle, next, "the first scan that began after the request");
        rt.resume();
        return;
    }
    panic!("rt-core never stopped after exactly one cycle");
}

#[test]
fn drain_hands_over_rt_cores_events() {
    let rt = Rt::with_fixture(&[]);
    let port = rt.port();
    assert_eq!(port.command_blocking(Command::Stop, DEADLINE).unwrap(), CommandStatus::Ok);
    let mut events = Vec::new();
    wait_for("a StateChanged event", DEADLINE, || {
        port.drain(|e| events.push(e), |_| {});
        events.iter().any(|e| matches!(e, shared_abi::msg::Event::StateChanged { .. })).then_some(())
    });
    assert!(!PlcPort::detached(LogSink::discard()).drain(|_| {}, |_| {}));
}
