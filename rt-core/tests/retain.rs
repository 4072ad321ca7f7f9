//! RETAIN variables through a real `openplc-rt`: published while the program runs and when
//! it stops, given back on a warm load of the same program only, ignored on a cold load,
//! and libraries from before the RETAIN functions still load.

mod support;

use shared_abi::client::{Reader, RtClient};
use shared_abi::retain::RetainImage;
use std::time::Duration;
use support::{Runtime, build_fixture, wait_for};

const T: Duration = Duration::from_secs(10);

fn counter(c: &RtClient) -> u16 {
    c.outputs().unwrap().image.int_memory[0]
}

fn saved(c: &RtClient) -> Box<RetainImage> {
    c.retain_saved().unwrap()
}

#[test]
fn retain_values_survive_a_warm_load_only() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "retain.so", &["WITH_RETAIN"]);
    let path = so.to_str().unwrap();
    c.load(path, true, T).unwrap();
    wait_for("the counter to pass 30", T, || (counter(&c) > 30).then_some(()));

    // Published while running (about every 100 ms), and exactly at the stop.
    let gen_ = c.status().program_gen;
    wait_for("RETAIN values to be published", T, || (saved(&c).program_gen == gen_).then_some(()));
    c.send(shared_abi::msg::Command::Stop).unwrap();
    wait_for("the PLC to stop", T, || (c.status().state == shared_abi::layout::PlcState::Stopped).then_some(()));
    let at_stop = saved(&c);
    let value = counter(&c);
    assert_eq!((at_stop.count, at_stop.len), (1, 2));
    assert_eq!(at_stop.bytes(), value.to_le_bytes(), "the last value, taken when the PLC stopped");
    assert_eq!(&at_stop.md5, b"0123456789abcdef0123456789abcdef");

    // Warm: the new instance carries on from the saved counter (the live copy, which is
    // the same as what was staged: both were taken at the stop).
    c.stage_retain(Some(&at_stop));
    let loaded = c.load_with(path, true, true, T).unwrap();
    assert!(
        loaded.message_str().contains("1 RETAIN variables (2 bytes) restored from the live copy"),
        "{}",
        loaded.message_str()
    );
    let first = counter(&c);
    assert!(first >= value, "carried on from {value}, saw {first}");

    // Cold (the same values staged): back to the initial value.
    let loaded = c.load_with(path, true, false, T).unwrap();
    assert!(loaded.message_str().contains("at their initial values"), "{}", loaded.message_str());
    assert!(counter(&c) < value, "started over");

    // Staged values of another program (another layout) are not given back; the live copy
    // of this one is.
    wait_for("the cold instance's values to be published", T, || {
        (saved(&c).program_gen == c.status().program_gen).then_some(())
    });
    let mut foreign = at_stop.clone();
    foreign.layout_hash ^= 1;
    foreign.data[0] ^= 0x55;
    c.stage_retain(Some(&foreign));
    let loaded = c.load_with(path, true, true, T).unwrap();
    assert!(loaded.message_str().contains("restored from the live copy"), "{}", loaded.message_str());
    assert!(counter(&c) < value, "the cold instance's counter, not the foreign one");
}

#[test]
fn a_library_from_before_the_retain_functions_still_loads() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "old.so", &["WITH_RETAIN", "FIRST_RELEASE_TABLE"]);
    let loaded = c.load(so.to_str().unwrap(), true, T).unwrap();
    assert!(!loaded.message_str().contains("RETAIN"), "{}", loaded.message_str());
    wait_for("the old library to run", T, || (counter(&c) > 5).then_some(()));
    assert_eq!(saved(&c).program_gen, 0, "no RETAIN functions: nothing published");
}

#[test]
fn values_of_a_program_that_crashed_are_not_published_again() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let so = build_fixture(rt.dir.path(), "crash.so", &["WITH_RETAIN", "CRASH_AT_TICK=30"]);
    c.load(so.to_str().unwrap(), true, T).unwrap();
    wait_for("the crash", T, || (c.status().state == shared_abi::layout::PlcState::Error).then_some(()));
    let last_good = saved(&c);
    assert_eq!(last_good.program_gen, c.status().program_gen, "published while it ran");
    let value = u16::from_le_bytes([last_good.data[0], last_good.data[1]]);
    // Published every 10 scans at the fixture's 10 ms: the 30th scan completed, the 31st crashed.
    assert_eq!(value, 30, "taken after the last completed scan");

    // Unloading a faulted program publishes nothing: a crashed scan may have left the
    // values half-updated.
    c.send(shared_abi::msg::Command::Unload).unwrap();
    wait_for("the unload", T, || (c.status().state == shared_abi::layout::PlcState::Empty).then_some(()));
    assert_eq!(saved(&c).cycle, last_good.cycle);
}
