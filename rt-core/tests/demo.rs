//! The demo program (a MatIEC-shaped Editor bundle, built with the real adapter) in a real
//! `openplc-rt` at 10 ms, driven through the shared memory.

mod support;

use shared_abi::client::{Reader, RtClient};
use shared_abi::layout::PlcState;
use shared_abi::msg::{Command, CommandStatus};
use std::path::PathBuf;
use std::time::Duration;
use support::{Runtime, repo_root, wait_for};

const T: Duration = Duration::from_secs(10);

fn build_demo(rt: &Runtime) -> PathBuf {
    let out = rt.dir.path().join("demo.so");
    let dir = repo_root().join("scripts/demo-bundle");
    openplc_builder::build(&dir, &out, &openplc_builder::BuildOptions::default(), &mut |_| {}).expect("demo builds");
    out
}

fn start_demo() -> (Runtime, RtClient) {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_demo(&rt);
    c.load(so.to_str().unwrap(), true, T).expect("demo loads");
    (rt, c)
}

fn force(c: &mut RtClient, var: u32, value: &[u8], big_endian: bool) -> CommandStatus {
    c.command(Command::Force { var, value: heapless::Vec::from_slice(value).unwrap(), big_endian }, T).unwrap()
}

#[test]
fn the_demo_runs_at_10_ms_with_its_md5() {
    let (_rt, c) = start_demo();
    assert_eq!(c.status().state, PlcState::Running);
    assert_eq!(c.status().period_ns, 10_000_000);
    let info = c.program_info().unwrap();
    let expected = openplc_builder::program_md5(&repo_root().join("scripts/demo-bundle")).unwrap();
    assert_eq!(info.md5_str(), Some(expected.as_str()));
    assert_eq!(info.var_count, 33);
}

#[test]
fn demo_outputs_follow_inputs_within_two_cycles_and_the_counter_counts_scans() {
    let (_rt, mut c) = start_demo();
    let before = c.status().heartbeat;
    c.update_inputs(|i| {
        i.bool_input[0][0] = 1;
        i.int_input[0] = 1234;
    });
    let snap = wait_for("%QX0.0 and %QW0 to follow", T, || {
        let o = c.outputs().ok()?;
        (o.image.bool_output[0][0] == 1 && o.image.int_output[0] == 2468).then_some(o)
    });
    assert!(snap.inputs_cycle <= before + 2, "taken in cycle {} after publishing at {before}", snap.inputs_cycle);

    let a = c.outputs().unwrap();
    c.wait_cycle_after(c.status().heartbeat + 20, T).unwrap();
    let b = c.outputs().unwrap();
    assert!(b.tick > a.tick + 10);
    assert_eq!(b.image.int_memory[0].wrapping_sub(a.image.int_memory[0]) as u64, b.tick - a.tick, "%MW0 counts scans");
    assert_eq!(b.image.int_memory[0] as u64, b.tick % 65536, "and started from zero at load");
}

fn i64_at(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    i64::from_le_bytes(b)
}

#[test]
fn every_base_type_reads_back_as_the_program_computes_it() {
    let (_rt, mut c) = start_demo();
    let vars: Vec<u32> = (0..33).collect();
    let generation = c.set_watch(&vars);
    let v = c.wait_debug_values(generation, c.status().heartbeat + 5, T).unwrap();
    let n = v.tick;
    let get = |var: usize| {
        let e = v.entries[var];
        assert_eq!(e.valid, 1, "variable {var}");
        &v.data[e.offset as usize..e.offset as usize + e.size as usize]
    };
    let sizes: Vec<u16> = (0..33).map(|i| v.entries[i].size).collect();
    assert_eq!(&sizes[5..20], &[1, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 1, 2, 4, 8]);
    assert_eq!(i64_at(get(0)) as u64, n % 65536, "COUNTER");
    assert_eq!(get(5)[0] as u64, n % 2, "V_BOOL");
    assert_eq!(get(6)[0] as i8, (n % 256) as u8 as i8, "V_SINT");
    assert_eq!(i16::from_le_bytes(get(7).try_into().unwrap()), (n as i16).wrapping_neg(), "V_INT");
    assert_eq!(i32::from_le_bytes(get(8).try_into().unwrap()), (1000 * n) as i32, "V_DINT");
    assert_eq!(i64::from_le_bytes(get(9).try_into().unwrap()), (1_000_000_000_000u64.wrapping_mul(n)) as i64, "V_LINT");
    assert_eq!(get(10)[0] as u64, n % 256, "V_USINT");
    assert_eq!(u16::from_le_bytes(get(11).try_into().unwrap()) as u64, (2 * n) % 65536, "V_UINT");
    assert_eq!(u32::from_le_bytes(get(12).try_into().unwrap()), (100_000 * n) as u32, "V_UDINT");
    assert_eq!(u64::from_le_bytes(get(13).try_into().unwrap()), 5_000_000_000u64.wrapping_mul(n), "V_ULINT");
    assert_eq!(f32::from_le_bytes(get(14).try_into().unwrap()), 0.5 * n as f32, "V_REAL");
    assert_eq!(f64::from_le_bytes(get(15).try_into().unwrap()), 0.25 * n as f64, "V_LREAL");
    let odd = n % 2 == 1;
    assert_eq!(get(16)[0], if odd { 0xA5 } else { 0 }, "V_BYTE");
    assert_eq!(u64::from_le_bytes(get(19).try_into().unwrap()), if odd { 0x0123_4567_89AB_CDEF } else { 0 }, "V_LWORD");
    // TIME is MatIEC's 16-byte timespec: ELAPSED = (n-1) periods; PRESET = 500 ms.
    let elapsed = get(30);
    assert_eq!((v.entries[30].kind, elapsed.len()), (shared_abi::program::VarKind::Timespec as u8, 16));
    let ns = i64_at(&elapsed[..8]) * 1_000_000_000 + i64_at(&elapsed[8..]);
    assert_eq!(ns as u64, (n - 1) * 10_000_000, "ELAPSED");
    let preset = get(31);
    assert_eq!((i64_at(&preset[..8]), i64_at(&preset[8..])), (0, 500_000_000), "PRESET");
    let text = get(32);
    assert_eq!((text.len(), &text[..8]), (127, &b"\x07OpenPLC"[..]), "TEXT");
}

#[test]
fn forcing_an_output_and_a_real_then_releasing_them() {
    let (_rt, mut c) = start_demo();
    // %QX0.0 (debug 2) echoes %IX0.0 = 0; force it on.
    assert_eq!(force(&mut c, 2, &[1], true), CommandStatus::Ok);
    wait_for("forced %QX0.0 in the outputs", T, || (c.outputs().ok()?.image.bool_output[0][0] == 1).then_some(()));
    // V_REAL (debug 14) is rewritten every scan; the Editor sends reals big-endian.
    assert_eq!(force(&mut c, 14, &42.25f32.to_be_bytes(), true), CommandStatus::Ok);
    let generation = c.set_watch(&[2, 14]);
    for _ in 0..3 {
        let v = c.wait_debug_values(generation, c.status().heartbeat + 1, T).unwrap();
        assert_eq!(v.data[v.entries[0].offset as usize], 1);
        let e = v.entries[1];
        let real = f32::from_le_bytes(v.data[e.offset as usize..e.offset as usize + 4].try_into().unwrap());
        assert_eq!(real, 42.25, "the force holds against the program at tick {}", v.tick);
    }
    assert_eq!(c.command(Command::Unforce { var: 2 }, T).unwrap(), CommandStatus::Ok);
    assert_eq!(c.command(Command::Unforce { var: 14 }, T).unwrap(), CommandStatus::Ok);
    wait_for("%QX0.0 back to the input's 0", T, || (c.outputs().ok()?.image.bool_output[0][0] == 0).then_some(()));
    // The program adds 0.5 per scan and, as in MatIEC, continues from the forced value.
    let real_at = |v: &shared_abi::debug::DebugValues| {
        let e = v.entries[1];
        f32::from_le_bytes(v.data[e.offset as usize..e.offset as usize + 4].try_into().unwrap())
    };
    let a = c.wait_debug_values(generation, c.status().heartbeat + 1, T).unwrap();
    let b = c.wait_debug_values(generation, a.cycle + 3, T).unwrap();
    assert!(real_at(&a) > 42.25, "released at the forced value and counting on: {}", real_at(&a));
    assert_eq!(real_at(&b) - real_at(&a), 0.5 * (b.tick - a.tick) as f32, "the program writes V_REAL again");
}

#[test]
fn forcing_an_input_changes_what_the_program_sees_not_the_image() {
    let (_rt, mut c) = start_demo();
    // Watched before the force: the debugger must see the forced value, not the input.
    let generation = c.set_watch(&[1]);
    let read_din0 = |c: &RtClient| {
        let v = c.wait_debug_values(generation, c.status().heartbeat + 1, T).unwrap();
        v.data[v.entries[0].offset as usize]
    };
    assert_eq!(read_din0(&c), 0);
    assert_eq!(force(&mut c, 1, &[1], true), CommandStatus::Ok);
    wait_for("the program to see the forced %IX0.0", T, || {
        (c.outputs().ok()?.image.bool_output[0][0] == 1).then_some(())
    });
    assert_eq!(read_din0(&c), 1, "reads show the forced value");
    assert_eq!(c.inputs().bool_input[0][0], 0, "the published input stays 0");
    assert_eq!(c.command(Command::UnforceAll, T).unwrap(), CommandStatus::Ok);
    wait_for("the live input to show again", T, || (c.outputs().ok()?.image.bool_output[0][0] == 0).then_some(()));
    assert_eq!(read_din0(&c), 0, "reads show the live input again");
}

#[test]
fn the_demo_stops_starts_survives_a_broken_library_and_a_killed_control_tool() {
    let (rt, mut c) = start_demo();
    assert_eq!(c.command(Command::Stop, T).unwrap(), CommandStatus::Ok);
    let frozen = wait_for("the stop", T, || c.outputs().ok().filter(|o| o.state == PlcState::Stopped as u32));
    c.wait_cycle_after(c.status().heartbeat + 3, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.int_memory[0], frozen.image.int_memory[0], "no scans while stopped");
    assert_eq!(c.command(Command::Start, T).unwrap(), CommandStatus::Ok);
    wait_for("scans to resume", T, || {
        (c.outputs().ok()?.image.int_memory[0] > frozen.image.int_memory[0]).then_some(())
    });

    // A library that is not a program: refused, the demo keeps running.
    let broken = rt.dir.path().join("broken.so");
    std::fs::write(&broken, b"\x7fELF but not really").unwrap();
    let program_gen = c.status().program_gen;
    assert!(c.load(broken.to_str().unwrap(), true, T).is_err());
    let before = c.outputs().unwrap().tick;
    c.wait_cycle_after(c.status().heartbeat + 3, T).unwrap();
    assert!(c.outputs().unwrap().tick > before, "the demo keeps scanning");
    assert_eq!(c.status().program_gen, program_gen);
    drop(c);

    // The control tool, killed while it holds the lease mid-command.
    let mut tool = std::process::Command::new(support::RT_BIN)
        .args(["--shm", &rt.shm, "watch", "0", "--count", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(tool.stdout.as_mut().unwrap()), &mut line).unwrap();
    tool.kill().unwrap();
    tool.wait().unwrap();
    let c = wait_for("the lease to be free again", T, || RtClient::open(&rt.shm).ok());
    assert_eq!((c.status().state, c.status().period_ns), (PlcState::Running, 10_000_000), "the loop keeps its period");
    c.wait_cycle_after(c.status().heartbeat + 5, T).expect("cycles continue");
}
