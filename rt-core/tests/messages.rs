//! What rt-core makes of what a client sends: slots that do not decode or name something
//! out of range are reported and dropped (rt-core runs on), and `SetVar` writes a variable
//! once, through the program's `var_write`, for a C and a STruC++ program.

mod support;

use shared_abi::client::{Reader, RtClient};
use shared_abi::image::IecAddress;
use shared_abi::layout::PlcState;
use shared_abi::msg::{Command, CommandStatus, Event, RingId};
use std::time::Duration;
use support::{Runtime, build_fixture, build_strucpp, wait_for};

const T: Duration = Duration::from_secs(10);

fn bad_messages(c: &mut RtClient, seen: &mut Vec<RingId>) {
    c.drain_events(|e| {
        if let Event::BadMessage { ring } = e {
            seen.push(ring);
        }
    });
}

#[test]
fn a_write_to_mw5000_pushed_raw_into_the_ring_is_reported_and_rt_core_runs_on() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "prog.so", &[]);
    // Every table at 1024 elements (as an image.conf could ask): %MW500 is inside them,
    // %MW5000 is not.
    let image = shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false };
    c.load_sized(so.to_str().unwrap(), true, false, image, T).unwrap();
    let pid = c.status().rt_pid;
    {
        // SAFETY: this client holds the lease, so it is the only producer of the write and
        // command rings, and none of its own producers is alive during this block.
        let (mut writes, mut commands) = unsafe { (c.shm().writes.producer(), c.shm().commands.producer()) };
        // %MW5000 = 42 (past the program's tables), encoded as a client with its own encoder could: area 2, width 2,
        // index 5000 (varint 0x88 0x27), bit 0, value 42.
        writes.push_bytes(&[2, 2, 0x88, 0x27, 0, 42]).unwrap();
        // %QX0.0 = 2 (a bit holds 0 or 1), and bytes that are no message at all.
        writes.push_bytes(&[1, 0, 0, 0, 2]).unwrap();
        commands.push_bytes(&[7, 200, 1, 2, 3]).unwrap();
    }
    let mut seen = Vec::new();
    wait_for("three BadMessage events", T, || {
        bad_messages(&mut c, &mut seen);
        (seen.len() >= 3).then_some(())
    });
    assert_eq!(seen.iter().filter(|r| **r == RingId::Writes).count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|r| **r == RingId::Commands).count(), 1, "{seen:?}");
    let s = c.status();
    assert!(s.rt_alive && s.rt_pid == pid, "rt-core is still the same process");
    assert_eq!(s.state, PlcState::Running);
    // Good writes after the bad ones are applied as ever.
    let addr = IecAddress::parse("%MW500").unwrap();
    c.write(addr, 4242).unwrap();
    wait_for("%MW500 = 4242", T, || (c.outputs().ok()?.image.get(addr) == Some(4242)).then_some(()));
    assert!(!rt.log().contains("panicked"), "{}", rt.log());
}

fn set_var(c: &mut RtClient, var: u32, value: &[u8], big_endian: bool) -> CommandStatus {
    c.command(Command::SetVar { var, value: heapless::Vec::from_slice(value).unwrap(), big_endian }, T).unwrap()
}

fn force(c: &mut RtClient, var: u32, value: &[u8]) -> CommandStatus {
    c.command(Command::Force { var, value: heapless::Vec::from_slice(value).unwrap(), big_endian: false }, T).unwrap()
}

#[test]
fn set_var_writes_once_and_the_program_carries_on_from_there() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "prog.so", &[]);
    c.load(so.to_str().unwrap(), true, T).unwrap();
    // The counter (debug 0, %MW0, UINT) counts scans: written to 1000 it counts on from there.
    assert_eq!(set_var(&mut c, 0, &1000u16.to_be_bytes(), true), CommandStatus::Ok);
    let out = wait_for("the counter to carry on from 1000", T, || {
        let o = c.outputs().ok()?;
        (o.image.int_memory[0] >= 1000).then_some(o)
    });
    assert!(out.image.int_memory[0] < 1100, "written once, then counted: {}", out.image.int_memory[0]);
    assert_eq!(c.shm().control.forced_count.load(std::sync::atomic::Ordering::Acquire), 0, "not a force");

    // While stopped it is written at once.
    assert_eq!(c.command(Command::Stop, T).unwrap(), CommandStatus::Ok);
    assert_eq!(set_var(&mut c, 6, b"\x02hi", false), CommandStatus::Ok);
    let generation = c.set_watch(&[6]);
    let v = c.wait_debug_values(generation, c.status().heartbeat, T).unwrap();
    assert_eq!(&v.data[..4], b"\x02hi\0", "STRING written while stopped");
    assert_eq!(c.command(Command::Start, T).unwrap(), CommandStatus::Ok);

    // A forced variable keeps its forced value.
    assert_eq!(force(&mut c, 1, &[1]), CommandStatus::Ok);
    assert_eq!(set_var(&mut c, 1, &[0], false), CommandStatus::Ok);
    c.wait_cycle_after(c.status().heartbeat + 3, T).unwrap();
    assert_eq!(c.outputs().unwrap().image.bool_output[0][0], 1);

    // Refusals: no such variable, a value that does not fit, a library without var_write.
    assert_eq!(set_var(&mut c, 99, &[1], false), CommandStatus::BadVariable);
    assert_eq!(set_var(&mut c, 3, &[1, 2], true), CommandStatus::BadValue);
    let old = build_fixture(rt.dir.path(), "old.so", &["WITH_RETAIN", "RETAIN_TABLE"]);
    c.load(old.to_str().unwrap(), true, T).unwrap();
    assert_eq!(set_var(&mut c, 0, &[1, 0], false), CommandStatus::Unsupported);
}

#[test]
fn set_var_reaches_a_strucpp_program_through_its_adapter() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_strucpp(rt.dir.path(), "strucpp.so", &[]);
    c.load(so.to_str().unwrap(), true, T).unwrap();
    // COUNTER (debug 0, %MW0) and V_LREAL (debug 15, +0.25 per scan), as the Editor sends
    // values: big-endian.
    assert_eq!(set_var(&mut c, 0, &5000u16.to_be_bytes(), true), CommandStatus::Ok);
    assert_eq!(set_var(&mut c, 15, &1e6f64.to_be_bytes(), true), CommandStatus::Ok);
    let out = wait_for("COUNTER to carry on from 5000", T, || {
        let o = c.outputs().ok()?;
        (o.image.int_memory[0] >= 5000).then_some(o)
    });
    assert!(out.image.int_memory[0] < 5100, "{}", out.image.int_memory[0]);
    let generation = c.set_watch(&[15]);
    let v = c.wait_debug_values(generation, c.status().heartbeat, T).unwrap();
    let lreal = f64::from_le_bytes(v.data[..8].try_into().unwrap());
    assert!((1e6..1e6 + 50.0).contains(&lreal), "V_LREAL carries on from 1e6: {lreal}");
}
