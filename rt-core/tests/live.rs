//! After rt-core is killed and restarted (it takes the shared memory over in place), a warm
//! load of the same program gets back its forces and its RETAIN values from the live copy
//! in the shared memory, not the older values a client staged from its file; the staged
//! values count only when there is no live copy (a power cut: /dev/shm is gone).

mod support;

use shared_abi::client::{Reader, RtClient};
use shared_abi::msg::{Command, CommandStatus};
use shared_abi::retain::RetainImage;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{Runtime, build_fixture, wait_for};

const T: Duration = Duration::from_secs(10);

fn counter(c: &RtClient) -> u16 {
    c.outputs().unwrap().image.int_memory[0]
}

fn saved_counter(r: &RetainImage) -> u16 {
    u16::from_le_bytes([r.data[0], r.data[1]])
}

fn force(c: &mut RtClient, var: u32, value: &[u8]) {
    let value = heapless::Vec::from_slice(value).unwrap();
    assert_eq!(c.command(Command::Force { var, value, big_endian: false }, T).unwrap(), CommandStatus::Ok);
}

/// Runs the RETAIN fixture with %QX0.0 (debug 1) forced on and the REAL (debug 3) forced to
/// 12.5 until its counter passed 60; returns what a client's file would hold (taken near
/// the start) and the last live value.
fn run_and_force(rt: &Runtime, c: &mut RtClient) -> (std::path::PathBuf, Box<RetainImage>, u16) {
    let so = build_fixture(rt.dir.path(), "retain.so", &["WITH_RETAIN"]);
    c.load(so.to_str().unwrap(), true, T).unwrap();
    let program_gen = c.status().program_gen;
    let file = wait_for("early RETAIN values", T, || {
        c.retain_saved().ok().filter(|r| r.program_gen == program_gen && saved_counter(r) >= 5)
    });
    force(c, 1, &[1]);
    force(c, 3, &12.5f32.to_le_bytes());
    let live = wait_for("later RETAIN values", T, || {
        c.retain_saved().ok().filter(|r| saved_counter(r) > 60).map(|r| saved_counter(&r))
    });
    assert!(saved_counter(&file) < 30, "the file's values are older");
    (so, file, live)
}

fn restart_on_the_same_memory(rt: &mut Runtime) -> Runtime {
    rt.kill();
    let dir = std::mem::replace(&mut rt.dir, tempfile::tempdir().unwrap());
    Runtime::start_on(dir, rt.shm.clone(), &[])
}

#[test]
fn a_restarted_rt_core_gives_back_forces_and_live_retain_values() {
    let mut rt = Runtime::start(&[]);
    let mut c = rt.client();
    let (so, file, live) = run_and_force(&rt, &mut c);
    let rt2 = restart_on_the_same_memory(&mut rt);
    assert_eq!(c.status().state, shared_abi::layout::PlcState::Empty);

    // What the companion does after a restart: stage the file's values, load warm.
    c.stage_retain(Some(&file));
    let loaded = c.load_with(so.to_str().unwrap(), true, true, T).unwrap();
    let message = loaded.message_str();
    assert!(message.contains("restored from the live copy"), "{message}");
    assert!(message.contains("2 forced variables restored"), "{message}");
    let first = counter(&c);
    assert!(first >= live, "carried on from the live {live}, not the file's {}: {first}", saved_counter(&file));

    assert_eq!(c.shm().control.forced_count.load(Ordering::Acquire), 2);
    let forces = c.forces().unwrap();
    assert_eq!(forces.program_gen, c.status().program_gen, "the table describes the new instance");
    assert_eq!(forces.forced().iter().map(|f| f.var).collect::<Vec<_>>(), [1, 3]);
    // %IX0.0 is 0: only the restored force keeps %QX0.0 on.
    c.wait_cycle_after(c.status().heartbeat + 2, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.bool_output[0][0], 1, "%QX0.0 still forced");
    let generation = c.set_watch(&[3]);
    let v = c.wait_debug_values(generation, c.status().heartbeat, T).unwrap();
    assert_eq!(f32::from_le_bytes(v.data[..4].try_into().unwrap()), 12.5, "the REAL still forced");
    drop(rt2);
}

#[test]
fn after_a_power_cut_the_staged_values_count_and_nothing_is_forced() {
    let mut rt = Runtime::start(&[]);
    let mut c = rt.client();
    let (so, file, live) = run_and_force(&rt, &mut c);
    drop(c);
    rt.kill();
    // A power cut: /dev/shm is gone, with the live copies in it.
    std::fs::remove_file(&rt.shm).unwrap();
    let _ = std::fs::remove_file(format!("{}.client", rt.shm));
    let rt2 = restart_on_the_same_memory(&mut rt);
    let mut c = rt2.client();
    c.stage_retain(Some(&file));
    let loaded = c.load_with(so.to_str().unwrap(), true, true, T).unwrap();
    let message = loaded.message_str();
    assert!(message.contains("restored from the saved values"), "{message}");
    assert!(!message.contains("forced"), "{message}");
    let first = counter(&c);
    assert!(first >= saved_counter(&file) && first < live, "carried on from the file's value: {first}");
    assert_eq!(c.shm().control.forced_count.load(Ordering::Acquire), 0);
    c.wait_cycle_after(c.status().heartbeat + 2, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.bool_output[0][0], 0, "%QX0.0 follows the program");
}
