//! A real `openplc-rt` process driven through the shared memory: loading, I/O, forcing,
//! start/stop, bad programs, faults and the watchdog.

mod support;

use shared_abi::client::{ClientError, Reader, RtClient};
use shared_abi::image::IecAddress;
use shared_abi::layout::PlcState;
use shared_abi::msg::{Command, CommandStatus, Event, FaultCause};
use std::time::Duration;
use support::{Runtime, build_fixture, wait_for};

const T: Duration = Duration::from_secs(10);

fn addr(s: &str) -> IecAddress {
    IecAddress::parse(s).unwrap()
}

fn load_running(rt: &Runtime, c: &mut RtClient, defines: &[&str]) {
    let so = build_fixture(rt.dir.path(), "prog.so", defines);
    let result = c.load(so.to_str().unwrap(), true, T).expect("load");
    assert!(result.message_str().contains("loaded"), "{}", result.message_str());
    assert_eq!(c.status().state, PlcState::Running);
}

fn counter(c: &RtClient) -> (u64, u16) {
    let out = c.outputs().unwrap();
    (out.tick, out.image.int_memory[0])
}

#[test]
fn outputs_follow_inputs_within_two_cycles() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    let before = c.status().heartbeat;
    c.update_inputs(|i| {
        i.bool_input[0][0] = 1;
        i.int_input[0] = 21;
    });
    let snap = wait_for("outputs to follow", T, || {
        let o = c.outputs().ok()?;
        (o.image.bool_output[0][0] == 1 && o.image.int_output[0] == 42).then_some(o)
    });
    assert!(
        snap.inputs_cycle <= before + 2,
        "inputs published after cycle {before} were taken only in cycle {}",
        snap.inputs_cycle
    );
    assert_eq!(c.outputs().unwrap().image.get(addr("%QW0")), Some(42));
}

#[test]
fn the_counter_advances_once_per_scan() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    let (tick0, count0) = counter(&c);
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 10, T).unwrap();
    let (tick1, count1) = counter(&c);
    assert!(tick1 >= tick0 + 10, "scans advanced {tick0} -> {tick1}");
    assert_eq!(count1.wrapping_sub(count0) as u64, tick1 - tick0, "one increment per scan");
    let stats = c.stats().unwrap();
    assert!(stats.scan_count >= tick1 - tick0);
    assert_eq!(stats.period_ns, 10_000_000);
}

#[test]
fn forcing_holds_against_the_program_and_release_restores_it() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    // %QX0.0 (debug var 1) copies %IX0.0, which is 0: force it to 1.
    let st =
        c.command(Command::Force { var: 1, value: heapless::Vec::from_slice(&[1]).unwrap(), big_endian: false }, T);
    assert_eq!(st.unwrap(), CommandStatus::Ok);
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 2, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.bool_output[0][0], 1, "forced output reaches the image");
    let watch_gen = c.set_watch(&[1, 3]);
    let v = c.wait_debug_values(watch_gen, c.status().heartbeat, T).unwrap();
    assert_eq!(v.data[v.entries[0].offset as usize], 1, "forced value reads back");
    assert_eq!(c.shm().control.forced_count.load(std::sync::atomic::Ordering::Acquire), 1);

    // A REAL forced big-endian, as the Editor sends it.
    let st = c.command(
        Command::Force { var: 3, value: heapless::Vec::from_slice(&12.5f32.to_be_bytes()).unwrap(), big_endian: true },
        T,
    );
    assert_eq!(st.unwrap(), CommandStatus::Ok);
    let v = c.wait_debug_values(watch_gen, c.status().heartbeat + 1, T).unwrap();
    let e = v.entries[1];
    let bytes: [u8; 4] = v.data[e.offset as usize..e.offset as usize + 4].try_into().unwrap();
    assert_eq!(f32::from_le_bytes(bytes), 12.5);

    assert_eq!(c.command(Command::Unforce { var: 1 }, T).unwrap(), CommandStatus::Ok);
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 2, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.bool_output[0][0], 0, "released output follows the program again");

    // Forcing an input changes what the program sees, not the image.
    assert_eq!(
        c.command(Command::Force { var: 2, value: heapless::Vec::from_slice(&[1]).unwrap(), big_endian: false }, T)
            .unwrap(),
        CommandStatus::Ok
    );
    wait_for("program to see the forced input", T, || (c.outputs().ok()?.image.bool_output[0][0] == 1).then_some(()));
    assert_eq!(c.command(Command::UnforceAll, T).unwrap(), CommandStatus::Ok);
    wait_for("input released", T, || (c.outputs().ok()?.image.bool_output[0][0] == 0).then_some(()));

    // Bad requests are refused, not applied.
    assert_eq!(
        c.command(Command::Force { var: 99, value: heapless::Vec::from_slice(&[1]).unwrap(), big_endian: false }, T)
            .unwrap(),
        CommandStatus::BadVariable
    );
    assert_eq!(
        c.command(Command::Force { var: 3, value: heapless::Vec::from_slice(&[1, 2]).unwrap(), big_endian: true }, T)
            .unwrap(),
        CommandStatus::BadValue
    );
}

#[test]
fn stop_zeroes_outputs_and_start_resumes() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    c.update_inputs(|i| i.int_input[0] = 5);
    wait_for("QW0 = 10", T, || (c.outputs().ok()?.image.int_output[0] == 10).then_some(()));
    assert_eq!(c.command(Command::Stop, T).unwrap(), CommandStatus::Ok);
    assert_eq!(c.status().state, PlcState::Stopped);
    let out = wait_for("safe outputs", T, || c.outputs().ok().filter(|o| o.state == PlcState::Stopped as u32));
    assert_eq!(out.image.int_output[0], 0, "outputs go to zero when stopped");
    let frozen = out.image.int_memory[0];
    assert_ne!(frozen, 0, "memory is kept");
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 5, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.int_memory[0], frozen, "no scans while stopped");
    assert_eq!(c.command(Command::Stop, T).unwrap(), CommandStatus::NotRunning);
    assert_eq!(c.command(Command::Start, T).unwrap(), CommandStatus::Ok);
    assert_eq!(c.command(Command::Start, T).unwrap(), CommandStatus::AlreadyRunning);
    wait_for("counter to resume", T, || (c.outputs().ok()?.image.int_memory[0] > frozen).then_some(()));
    assert_eq!(c.outputs().unwrap().image.int_output[0], 10);
}

#[test]
fn a_program_that_fails_to_load_leaves_the_running_one_untouched() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    let program_gen = c.status().program_gen;
    let dir = rt.dir.path();

    let not_elf = dir.join("garbage.so");
    std::fs::write(&not_elf, b"this is not a library").unwrap();
    let no_entry = dir.join("noentry.so");
    let ok = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-x", "c", "-o"])
        .arg(&no_entry)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(b"int unrelated(void) { return 1; }\n")?;
            child.wait()
        })
        .unwrap();
    assert!(ok.success());
    let init_fails = build_fixture(dir, "initfails.so", &["INIT_FAILS"]);
    let wrong_abi = build_fixture(dir, "wrongabi.so", &["ABI_VERSION_OVERRIDE=99"]);
    let cases = [
        (not_elf, "not a shared library"),
        (no_entry, "exports no oplc_program_entry"),
        (init_fails, "init failed"),
        (wrong_abi, "ABI version 99"),
        (dir.join("missing.so"), "cannot read"),
    ];
    for (path, expected) in cases {
        let (tick0, count0) = counter(&c);
        match c.load(path.to_str().unwrap(), true, T) {
            Err(ClientError::LoadFailed(msg)) => assert!(msg.contains(expected), "{path:?}: {msg}"),
            Ok(r) => panic!("{path:?} must be refused, got {}", r.message_str()),
            Err(other) => panic!("{path:?} must be refused, got {other}"),
        }
        assert_eq!(c.status().program_gen, program_gen, "the old program is still the one loaded");
        assert_eq!(c.status().state, PlcState::Running);
        let h = c.status().heartbeat;
        c.wait_cycle_after(h + 3, T).unwrap();
        let (tick1, count1) = counter(&c);
        assert!(tick1 > tick0 && count1 != count0, "the old program keeps scanning");
    }
}

#[test]
fn loading_swaps_programs_at_a_cycle_boundary() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    let first = c.status().program_gen;
    let so = build_fixture(rt.dir.path(), "step7.so", &["COUNTER_STEP=7", "PERIOD_NS=5000000ULL"]);
    let r = c.load(so.to_str().unwrap(), true, T).unwrap();
    assert!(r.program_gen > first);
    assert_eq!(c.status().period_ns, 5_000_000, "the loop takes the new program's period");
    let a = c.outputs().unwrap();
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 3, T).unwrap();
    let b = c.outputs().unwrap();
    assert_eq!(b.program_gen, r.program_gen);
    assert_eq!(
        b.image.int_memory[0].wrapping_sub(a.image.int_memory[0]) as u64,
        7 * (b.tick - a.tick),
        "the new program starts cold and counts in sevens"
    );
}

#[test]
fn a_crashing_program_puts_the_plc_in_error_and_rt_core_survives() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "crash.so", &["CRASH_AT_TICK=5"]);
    c.load(so.to_str().unwrap(), true, T).unwrap();
    wait_for("ERROR", T, || (c.status().state == PlcState::Error).then_some(()));
    let mut fault = None;
    wait_for("fault event", T, || {
        c.drain_events(|e| {
            if let Event::ProgramFault { cause, restart, .. } = e {
                fault = Some((cause, restart));
            }
        });
        fault
    });
    assert_eq!(fault, Some((FaultCause::Signal(libc::SIGSEGV), false)), "a fault in the program's own code");
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 3, T).expect("the loop keeps running");
    assert_eq!(c.command(Command::Start, T).unwrap(), CommandStatus::InError);
    let good = build_fixture(rt.dir.path(), "good.so", &[]);
    c.load(good.to_str().unwrap(), true, T).unwrap();
    assert_eq!(c.status().state, PlcState::Running, "a new load recovers from ERROR");
}

#[test]
fn the_watchdog_aborts_a_hung_scan() {
    let rt = Runtime::start(&["--watchdog-ms", "200"]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "hang.so", &["HANG_AT_TICK=3"]);
    c.load(so.to_str().unwrap(), true, T).unwrap();
    wait_for("ERROR after the watchdog", T, || (c.status().state == PlcState::Error).then_some(()));
    let mut aborted = false;
    wait_for("watchdog event", T, || {
        c.drain_events(|e| aborted |= matches!(e, Event::WatchdogAbort { .. }));
        aborted.then_some(())
    });
    let h = c.status().heartbeat;
    c.wait_cycle_after(h + 3, T).expect("the loop runs again after the abort");
    assert!(rt.log().contains("aborting"), "{}", rt.log());
}

#[test]
fn a_second_rt_core_on_the_same_memory_is_refused() {
    let rt = Runtime::start(&[]);
    let out =
        std::process::Command::new(support::RT_BIN).args(["--shm", &rt.shm, "run", "--cpu", "none"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
}

#[test]
fn a_restarted_rt_core_takes_over_and_the_client_carries_on() {
    let mut rt = Runtime::start(&[]);
    let mut c = rt.client();
    load_running(&rt, &mut c, &[]);
    let boot = c.status().rt_boot_ns;
    rt.kill();
    assert!(!c.rt_alive());
    let dir = std::mem::replace(&mut rt.dir, tempfile::tempdir().unwrap());
    let rt2 = Runtime::start_on(dir, rt.shm.clone(), &[]);
    let s = c.status();
    assert!(s.rt_alive && s.rt_boot_ns != boot, "the client's mapping sees the new rt-core");
    assert_eq!(s.state, PlcState::Empty, "a new rt-core starts without a program");
    let so = build_fixture(rt2.dir.path(), "again.so", &[]);
    c.load(so.to_str().unwrap(), true, T).expect("the same client drives the new rt-core");
}

#[test]
fn the_control_tool_killed_mid_command_leaves_the_loop_running() {
    let rt = Runtime::start(&[]);
    {
        let mut c = rt.client();
        load_running(&rt, &mut c, &[]);
    }
    let mut tool = std::process::Command::new(support::RT_BIN)
        .args(["--shm", &rt.shm, "watch", "0", "--count", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it holds the lease and has printed a sample.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(tool.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("tick"), "{line}");
    assert!(matches!(RtClient::open(&rt.shm), Err(ClientError::Shm(_))), "the tool holds the lease");
    tool.kill().unwrap();
    tool.wait().unwrap();

    let mut c = wait_for("the lease to be free", T, || RtClient::open(&rt.shm).ok());
    let s = c.status();
    assert_eq!(s.state, PlcState::Running);
    assert_eq!(s.period_ns, 10_000_000, "the loop keeps its period");
    c.wait_cycle_after(s.heartbeat + 5, T).expect("cycles continue");
    assert_eq!(c.command(Command::ResetStats, T).unwrap(), CommandStatus::Ok, "commands still work");
}

#[test]
fn the_control_tool_drives_a_program_end_to_end() {
    let rt = Runtime::start(&[]);
    let so = build_fixture(rt.dir.path(), "tool.so", &[]);
    let ok = |args: &[&str]| {
        let out = rt.ctl(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(ok(&["load", so.to_str().unwrap(), "--start"]).contains("state RUNNING"));
    ok(&["set", "%IW0", "30"]);
    wait_for("QW0 = 60", T, || ok(&["read", "%QW0"]).contains("%QW0 = 60").then_some(()));
    assert!(ok(&["watch", "6"]).contains("\"rt-core\""));
    assert!(ok(&["force", "6", "forced!"]).contains("\"forced!\""));
    assert!(ok(&["watch", "6"]).contains("\"forced!\""));
    assert!(ok(&["force", "1", "true"]).contains("forced: 1"));
    wait_for("QX0.0 forced on", T, || ok(&["read", "%QX0.0"]).contains("%QX0.0 = 1").then_some(()));
    ok(&["unforce", "--all"]);
    wait_for("QX0.0 back to the program's 0", T, || ok(&["read", "%QX0.0"]).contains("%QX0.0 = 0").then_some(()));
    assert!(ok(&["status"]).contains("RUNNING"));
    let hist = ok(&["histogram"]);
    assert!(hist.starts_with("# Histogram\n000000 ") && hist.contains("# Max Latencies:"));
    ok(&["stop"]);
    assert!(ok(&["status", "--json"]).contains("\"state\":\"STOPPED\""));
    let bad = rt.ctl(&["write", "%MB0", "1"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no %MB"));
}

#[test]
fn check_opens_a_library_in_a_throwaway_process() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &std::path::Path| {
        std::process::Command::new(support::RT_BIN).arg("check").arg(path).output().expect("run openplc-rt check")
    };

    let good = check(&build_fixture(dir.path(), "good.so", &[]));
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("loads, program ABI"));

    // A constructor that crashes is caught and reported, in the throwaway process.
    let crashing = check(&build_fixture(dir.path(), "ctor.so", &["CRASH_IN_CONSTRUCTOR"]));
    assert_eq!(crashing.status.code(), Some(1), "{crashing:?}");
    assert!(String::from_utf8_lossy(&crashing.stderr).contains("in its constructors"), "{crashing:?}");

    let text = dir.path().join("text.so");
    std::fs::write(&text, "not a library").unwrap();
    let refused = check(&text);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no ELF header"), "{refused:?}");

    let plain = dir.path().join("plain.so");
    std::fs::write(dir.path().join("plain.c"), "int not_a_program(void) { return 0; }\n").unwrap();
    assert!(
        std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&plain)
            .arg(dir.path().join("plain.c"))
            .status()
            .unwrap()
            .success()
    );
    let refused = check(&plain);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("exports no oplc_program_entry"), "{refused:?}");
}

#[test]
fn the_control_tool_ends_quietly_when_its_reader_goes_away() {
    let rt = Runtime::start(&[]);
    {
        let mut c = rt.client();
        load_running(&rt, &mut c, &[]);
    }
    // `openplc-rt stats | head -1`, with the reader gone before the first line: a closed
    // pipe. `watch --count 0` would otherwise print forever.
    for args in [&["stats"][..], &["histogram"], &["status", "--json"], &["watch", "0", "--count", "0"]] {
        let mut tool = std::process::Command::new(support::RT_BIN)
            .args(["--shm", &rt.shm])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(tool.stdout.take());
        wait_for("the tool to end", T, || tool.try_wait().unwrap().map(|_| ()));
        let out = tool.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: nothing on stderr, no panic: {stderr}");
    }
}
