//! The watchdog's abort request names the program run it was sent for (its stamp): one
//! that arrives late, during another run, ends nothing. The scan thread is this test's own.

mod support;

use rt_core::guard;
use shared_abi::client::Reader;
use shared_abi::layout::PlcState;
use shared_abi::msg::Event;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn only_an_abort_request_for_the_current_run_aborts_it() {
    let mut rig = support::InProcess::new();
    // About 10 ms of spinning in the program's own code per scan.
    rig.load_fixture(&["SPIN_LOOPS=20000000L"]);
    let shm = rig.shm;
    let tid = rt_core::sys::gettid();

    // Requests with a stamp no run has: sent into the middle of running scans.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let stale = std::thread::spawn(move || {
        let mut sent = 0u32;
        while !s.load(Ordering::Acquire) {
            if shm.header.in_program_since_ns.load(Ordering::Acquire) != 0 {
                guard::signal_watchdog(tid, 1).unwrap();
                sent += 1;
            }
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        sent
    });
    let before = rig.client.stats().unwrap().scan_count;
    for _ in 0..20 {
        assert_eq!(rig.cycle().restart, None);
    }
    stop.store(true, Ordering::Release);
    let sent = stale.join().unwrap();
    assert!(sent > 5, "requests arrived during scans ({sent})");
    assert_eq!(rig.engine.state(), PlcState::Running, "stale requests aborted nothing");
    assert_eq!(rig.client.stats().unwrap().scan_count, before + 20);

    // A request for the run under way ends it.
    let current = std::thread::spawn(move || {
        loop {
            let stamp = shm.header.in_program_since_ns.load(Ordering::Acquire);
            if stamp != 0 {
                guard::signal_watchdog(tid, stamp).unwrap();
                return;
            }
            std::hint::spin_loop();
        }
    });
    let mut ends = Vec::new();
    while rig.engine.state() == PlcState::Running {
        ends.push(rig.cycle());
        assert!(ends.len() < 1000, "the abort never landed");
    }
    current.join().unwrap();
    assert_eq!(rig.engine.state(), PlcState::Error);
    assert!(ends.iter().all(|e| e.restart.is_none()), "aborted in the program's own code: no restart");
    let mut aborted = false;
    rig.client.drain_events(|e| aborted |= matches!(e, Event::WatchdogAbort { restart: false, .. }));
    assert!(aborted);
}
