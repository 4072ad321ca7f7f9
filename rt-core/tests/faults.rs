//! Programs that end themselves (exit, _exit, _Exit, quick_exit, abort, raise, a failed
//! assert, a fault, pthread_exit, a signal sent to themselves) in a constructor, in init and
//! in a scan, in a real `openplc-rt`: a scan fault gives ERROR, a load-time fault a refused
//! load with the running program kept, always with rt-core's pid unchanged; a fault outside
//! the program's own code restarts rt-core in place (same pid), which reloads the running
//! program when the fault hit a load. Both a C program (the ABI fixture) and a STruC++
//! program (the builder's STruC++ fixture, built with the real adapter).

mod support;

use shared_abi::client::{ClientError, Reader, RtClient};
use shared_abi::layout::PlcState;
use shared_abi::msg::{Event, FaultCause};
use std::path::Path;
use std::time::Duration;
use support::{Runtime, build_fixture, build_strucpp, wait_for};

const T: Duration = Duration::from_secs(15);
const SIGABRT: i32 = libc::SIGABRT;
const SIGSEGV: i32 = libc::SIGSEGV;
const SIGTERM: i32 = libc::SIGTERM;

/// The first ProgramFault or WatchdogAbort event: (cause, restart).
fn wait_fault(c: &mut RtClient) -> (FaultCause, bool) {
    let mut seen = None;
    wait_for("a fault event", T, || {
        c.drain_events(|e| match e {
            Event::ProgramFault { cause, restart, .. } if seen.is_none() => seen = Some((cause, restart)),
            Event::WatchdogAbort { restart, .. } if seen.is_none() => seen = Some((FaultCause::Watchdog, restart)),
            _ => {}
        });
        seen
    })
}

/// Waits until a new rt-core image (a restart in place) runs its loop.
fn wait_restarted(c: &RtClient, boot_before: u64) {
    wait_for("rt-core to restart in place", T, || {
        let s = c.status();
        (s.rt_alive && s.rt_boot_ns != boot_before).then_some(())
    });
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 2, T).expect("the restarted loop runs");
}

fn load_running(c: &mut RtClient, so: &Path) {
    let r = c.load(so.to_str().unwrap(), true, T).expect("load");
    assert!(r.message_str().contains("loaded"), "{}", r.message_str());
}

/// Counter steps of the running program over a few cycles (the program's identity).
fn counter_step(c: &RtClient) -> u16 {
    let a = c.outputs().unwrap();
    c.wait_cycle_after(c.status().heartbeat + 3, T).unwrap();
    let b = c.outputs().unwrap();
    assert!(b.tick > a.tick, "the program scans");
    (b.image.int_memory[0].wrapping_sub(a.image.int_memory[0]) as u64 / (b.tick - a.tick)) as u16
}

/// Loads `so`, which faults in a scan, and checks the outcome.
fn scan_fault(rt: &Runtime, c: &mut RtClient, so: &Path, cause: FaultCause, restart: bool) {
    let pid = rt.child.id();
    let boot = c.status().rt_boot_ns;
    c.drain_events(|_| {});
    load_running(c, so);
    assert_eq!(wait_fault(c), (cause, restart), "{}", so.display());
    wait_for("ERROR", T, || (c.status().state == PlcState::Error).then_some(()));
    let out = wait_for("safe outputs", T, || c.outputs().ok().filter(|o| o.state == PlcState::Error as u32));
    assert_eq!(out.image.bool_output[0][0], 0);
    if restart {
        wait_restarted(c, boot);
        assert_eq!(c.status().state, PlcState::Error, "a restart after a scan fault comes up in ERROR");
        assert!(rt.log().contains("restarted itself in place"), "{}", rt.log());
    } else {
        assert_eq!(c.status().rt_boot_ns, boot, "no restart for a fault in the program's own code");
    }
    assert_eq!(c.status().rt_pid, pid, "rt-core's pid is unchanged");
    c.wait_cycle_after(c.status().heartbeat + 2, T).expect("the loop keeps running");
}

#[test]
fn every_way_a_c_program_ends_its_scan_gives_error_with_rt_core_alive() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let dir = rt.dir.path();
    let cases = [
        (1, FaultCause::Exit(0), false),
        (2, FaultCause::Exit(4), false),
        (3, FaultCause::Exit(5), false),
        (4, FaultCause::Exit(6), false),
        (5, FaultCause::Abort, false),
        (6, FaultCause::Raise(SIGTERM), false),
        (7, FaultCause::Raise(SIGSEGV), false),
        (10, FaultCause::Signal(SIGSEGV), false),
        (11, FaultCause::ThreadExit, false),
        // glibc's assert aborts from inside libc: not the program's code, so a restart.
        (8, FaultCause::Signal(SIGABRT), true),
        // A signal the program sent its own thread arrives inside libc (pthread_kill).
        (9, FaultCause::Signal(SIGTERM), true),
    ];
    for (kind, cause, restart) in cases {
        let so = build_fixture(dir, &format!("scan{kind}.so"), &[&format!("FAULT_KIND={kind}"), "FAULT_IN=3"]);
        scan_fault(&rt, &mut c, &so, cause, restart);
    }
    // A new load recovers.
    load_running(&mut c, &build_fixture(dir, "good.so", &["COUNTER_STEP=7"]));
    assert_eq!(counter_step(&c), 7);
    assert_eq!(c.status().rt_pid, rt.child.id());
}

#[test]
fn a_terminating_signal_the_program_sends_the_whole_process_is_not_a_shutdown() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    // kill(getpid(), SIGTERM) in scan 3: the process-directed signal lands on another
    // thread, outside any program call. It is ignored: neither a shutdown nor a fault.
    load_running(&mut c, &build_fixture(rt.dir.path(), "kill.so", &["FAULT_KIND=12", "FAULT_IN=3"]));
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 10, T).expect("rt-core keeps running");
    assert_eq!(c.status().state, PlcState::Running);
    assert!(counter_step(&c) == 1);
    // The same signal from another process is a shutdown request.
    // SAFETY: kill with a pid of our own child; no memory involved.
    assert_eq!(unsafe { libc::kill(rt.child.id() as i32, SIGTERM) }, 0);
    wait_for("rt-core to shut down", T, || (!c.rt_alive()).then_some(()));
}

/// Loads `so`, which faults while loading: refused, the running program (counting in
/// `step`s) kept; after a restart in place it is reloaded warm.
fn load_fault(rt: &Runtime, c: &mut RtClient, so: &Path, expect: &str, restart: bool, step: u16) {
    let pid = rt.child.id();
    let boot = c.status().rt_boot_ns;
    let program_gen = c.status().program_gen;
    match c.load(so.to_str().unwrap(), true, T) {
        Err(ClientError::LoadFailed(msg)) => {
            assert!(msg.contains(expect), "{}: {msg}", so.display());
            assert_eq!(msg.contains("restarts itself in place"), restart, "{msg}");
        }
        Ok(r) => panic!("{} must be refused, got {}", so.display(), r.message_str()),
        Err(other) => panic!("{} must be refused, got {other}", so.display()),
    }
    if restart {
        wait_restarted(c, boot);
        wait_for("the running program to be reloaded", T, || {
            let s = c.status();
            (s.state == PlcState::Running && s.program_gen != 0).then_some(())
        });
    } else {
        assert_eq!(c.status().program_gen, program_gen, "the running program is the one loaded");
        assert_eq!(c.status().rt_boot_ns, boot);
    }
    assert_eq!(c.status().state, PlcState::Running);
    assert_eq!(counter_step(c), step, "the program that was running runs on");
    assert_eq!(c.status().rt_pid, pid, "rt-core's pid is unchanged");
}

#[test]
fn a_c_program_that_ends_itself_while_loading_is_refused_and_the_running_one_kept() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let dir = rt.dir.path();
    load_running(&mut c, &build_fixture(dir, "running.so", &["COUNTER_STEP=7"]));
    // In a constructor the dynamic loader's lock is held: always a restart, which reloads
    // the running program.
    for (kind, cause) in [
        (1, "a call of exit(0)"),
        (2, "a call of exit(4)"),
        (5, "a call of abort()"),
        (6, "raise(SIGTERM"),
        (10, "SIGSEGV"),
    ] {
        let so = build_fixture(dir, &format!("ctor{kind}.so"), &[&format!("FAULT_KIND={kind}"), "FAULT_IN=1"]);
        let expect = format!("in its constructors (while being loaded) with {cause}");
        load_fault(&rt, &mut c, &so, &expect, true, 7);
    }
    // In init: the program's own code, no restart; a failed assert ends inside libc.
    for (kind, cause, restart) in [
        (1, "a call of exit(0)", false),
        (2, "a call of exit(4)", false),
        (5, "a call of abort()", false),
        (6, "raise(SIGTERM", false),
        (7, "raise(SIGSEGV", false),
        (10, "SIGSEGV", false),
        (8, "SIGABRT", true),
    ] {
        let so = build_fixture(dir, &format!("init{kind}.so"), &[&format!("FAULT_KIND={kind}"), "FAULT_IN=2"]);
        load_fault(&rt, &mut c, &so, &format!("in init with {cause}"), restart, 7);
    }
}

#[test]
fn check_catches_what_the_real_load_would_hit() {
    let dir = tempfile::tempdir().unwrap();
    let check = |so: &Path| {
        std::process::Command::new(support::RT_BIN).arg("check").arg(so).output().expect("run openplc-rt check")
    };
    for (kind, place) in [(1, 1), (2, 1), (5, 1), (6, 1), (1, 2), (2, 2), (3, 2), (4, 2), (5, 2), (8, 2), (11, 2)] {
        let so = build_fixture(
            dir.path(),
            &format!("c{kind}-{place}.so"),
            &[&format!("FAULT_KIND={kind}"), &format!("FAULT_IN={place}")],
        );
        let out = check(&so);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "kind {kind} in {place}: {out:?}");
        let stage = if place == 1 { "in its constructors" } else { "in init" };
        assert!(stderr.contains(stage), "kind {kind} in {place}: {stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("loads, program ABI"));
    }
    let good = check(&build_fixture(dir.path(), "good.so", &[]));
    assert!(good.status.success(), "{good:?}");
    assert!(String::from_utf8_lossy(&good.stdout).contains("loads, program ABI 2, generator other, 7 debug variables"));
}

/// The STruC++ fixture changed so that its program's constructor ends itself the way the
/// number in `ctor_file` says, and its scan the way %IW0 - 100 says (1 exit(0), 2 _exit(4),
/// 3 abort(), 4 raise(SIGTERM), 5 raise(SIGSEGV), 6 an uncaught C++ exception, 7 a NULL
/// dereference).
fn faulty_strucpp(dir: &Path, ctor_file: &Path) -> std::path::PathBuf {
    let helpers = format!(
        r#"#include "generated.hpp"
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace {{
void do_fault(int k)
{{
    volatile int *volatile null = nullptr;
    switch (k) {{
    case 1: std::exit(0);
    case 2: _exit(4);
    case 3: std::abort();
    case 4: std::raise(SIGTERM); break;
    case 5: std::raise(SIGSEGV); break;
    case 6: throw 1;
    case 7: *null = 1; break;
    default: break;
    }}
}}
int ctor_fault()
{{
    int k = 0;
    if (FILE *f = std::fopen("{}", "r")) {{
        if (std::fscanf(f, "%d", &k) != 1) k = 0;
        std::fclose(f);
    }}
    return k;
}}
}}  // namespace
"#,
        ctor_file.display()
    );
    build_strucpp(
        dir,
        "faulty-strucpp.so",
        &[(
            "pou_MAIN.cpp",
            &[
                ("#include \"generated.hpp\"\n", helpers.as_str()),
                (
                    "    locatedVars[0].pointer = COUNTER.raw_ptr();",
                    "    do_fault(ctor_fault());\n    locatedVars[0].pointer = COUNTER.raw_ptr();",
                ),
                (
                    "    COUNTER = COUNTER + 1;",
                    "    COUNTER = COUNTER + 1;\n    if (AIN0 >= 100) {\n        do_fault(AIN0 - 100);\n    }",
                ),
            ],
        )],
    )
}

#[test]
fn a_strucpp_program_that_ends_itself_in_a_constructor_or_a_scan() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let dir = rt.dir.path();
    let ctor_file = dir.join("ctor-fault");
    let so = faulty_strucpp(dir, &ctor_file);

    // Scans: %IW0 = 100 + k once the program runs.
    let cases = [
        (1, FaultCause::Exit(0), false),
        (2, FaultCause::Exit(4), false),
        (3, FaultCause::Abort, false),
        (4, FaultCause::Raise(SIGTERM), false),
        (5, FaultCause::Raise(SIGSEGV), false),
        // The adapter catches the exception and raises SIGILL from its own code.
        (6, FaultCause::Raise(libc::SIGILL), false),
        (7, FaultCause::Signal(SIGSEGV), false),
    ];
    for (k, cause, restart) in cases {
        c.update_inputs(|i| i.int_input[0] = 0);
        let pid = rt.child.id();
        c.drain_events(|_| {});
        load_running(&mut c, &so);
        c.update_inputs(|i| i.int_input[0] = 100 + k);
        assert_eq!(wait_fault(&mut c), (cause, restart), "scan fault {k}");
        wait_for("ERROR", T, || (c.status().state == PlcState::Error).then_some(()));
        assert_eq!(c.status().rt_pid, pid);
    }

    // Constructors (STruC++'s initial values are set there): refused, the running program
    // (a C one, whose reload does not read the file) kept through a restart in place.
    load_running(&mut c, &build_fixture(dir, "running.so", &["COUNTER_STEP=7"]));
    let check = |so: &Path| std::process::Command::new(support::RT_BIN).arg("check").arg(so).output().unwrap();
    for (k, cause) in [(1, "a call of exit(0)"), (3, "a call of abort()"), (4, "raise(SIGTERM"), (7, "SIGSEGV")] {
        std::fs::write(&ctor_file, k.to_string()).unwrap();
        let out = check(&so);
        assert_eq!(out.status.code(), Some(1), "check, constructor fault {k}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(cause), "{out:?}");
        load_fault(&rt, &mut c, &so, &format!("in its constructors (while being loaded) with {cause}"), true, 7);
        std::fs::remove_file(&ctor_file).unwrap();
    }
}

#[test]
fn a_watchdog_abort_inside_libc_restarts_rt_core_in_place() {
    let rt = Runtime::start(&["--watchdog-ms", "200"]);
    let mut c = rt.client();
    let pid = rt.child.id();
    let boot = c.status().rt_boot_ns;
    load_running(&mut c, &build_fixture(rt.dir.path(), "sleeps.so", &["HANG_IN_LIBC_AT_TICK=3"]));
    assert_eq!(wait_fault(&mut c), (FaultCause::Watchdog, true), "aborted inside usleep: outside the program");
    wait_restarted(&c, boot);
    assert_eq!((c.status().state, c.status().rt_pid), (PlcState::Error, pid));
    assert!(rt.log().contains("the watchdog aborted a scan"), "{}", rt.log());
    load_running(&mut c, &build_fixture(rt.dir.path(), "good.so", &["COUNTER_STEP=7"]));
    assert_eq!(counter_step(&c), 7, "a new load recovers");
}

#[test]
fn a_scan_that_blocks_the_watchdog_is_ended_by_a_restart_in_place() {
    let rt = Runtime::start(&["--watchdog-ms", "200"]);
    let mut c = rt.client();
    let pid = rt.child.id();
    let boot = c.status().rt_boot_ns;
    load_running(&mut c, &build_fixture(rt.dir.path(), "blocks.so", &["HANG_BLOCKED_AT_TICK=3"]));
    wait_restarted(&c, boot);
    assert_eq!((c.status().state, c.status().rt_pid), (PlcState::Error, pid));
    assert!(rt.log().contains("did not return after the watchdog abort"), "{}", rt.log());
    load_running(&mut c, &build_fixture(rt.dir.path(), "good.so", &["COUNTER_STEP=7"]));
    assert_eq!(counter_step(&c), 7, "a new load recovers");
}
