//! RETAIN variables through the real companion and rt-core: the demo with `V_UDINT`
//! declared `VAR RETAIN` (as MatIEC generates it) keeps its value across a killed rt-core
//! and a power cut (both processes killed), and a clean upload starts it cold.

mod common;

use common::{Runtime, rewrite_zip, wait_for};
use std::path::PathBuf;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const V_UDINT: &str = "CONFIG0.RES0.INSTANCE0.V_UDINT";

/// The demo bundle with V_UDINT (it adds 100 000 every scan) in a `VAR RETAIN` block.
fn retain_bundle(rt: &Runtime) -> PathBuf {
    let plain = rt.dir.path().join("plain.zip");
    common::demo_bundle(&plain, &["--period-ms", "10"]);
    let out = rt.dir.path().join("retain.zip");
    rewrite_zip(
        &plain,
        &out,
        |name, data| {
            let text = String::from_utf8(data.clone()).ok();
            Some(match (name, text) {
                ("POUS.c", Some(t)) => {
                    assert!(t.contains("__INIT_VAR(data__->V_UDINT,0,retain)"));
                    t.replace("__INIT_VAR(data__->V_UDINT,0,retain)", "__INIT_VAR(data__->V_UDINT,0,1)").into_bytes()
                }
                ("VARIABLES.csv", Some(t)) => {
                    let row = format!("{V_UDINT};{V_UDINT};UDINT;UDINT;0;");
                    assert!(t.contains(&row));
                    t.replace(&row, &format!("{V_UDINT};{V_UDINT};UDINT;UDINT;1;")).into_bytes()
                }
                _ => data,
            })
        },
        &[],
    );
    out
}

fn v_udint(rt: &Runtime, token: &str) -> u64 {
    let reply = rt.get(&format!("/variables/values?names={V_UDINT}"), token);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["values"][0]["value"].as_u64().unwrap()
}

/// The value in the RETAIN file (its only variable: the last 4 bytes).
fn saved(rt: &Runtime) -> Option<u64> {
    let bytes = std::fs::read(rt.data_dir().join("retain/retain.bin")).ok()?;
    let tail: [u8; 4] = bytes[bytes.len().checked_sub(4)?..].try_into().ok()?;
    Some(u32::from_le_bytes(tail) as u64)
}

fn deploy(rt: &Runtime, token: &str, zip: &std::path::Path) {
    assert_eq!(rt.upload(zip, token).status, 200);
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(token, "STATUS:RUNNING");
}

#[test]
fn retain_values_survive_restarts_and_a_new_upload_starts_cold() {
    let mut rt = Runtime::start(&["--retain-flush-s", "1"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = retain_bundle(&rt);
    deploy(&rt, &token, &zip);

    // Saved within the flush period; 100 000 per scan, so 30 scans are 3 000 000.
    let before = wait_for("RETAIN values to be written", T, || saved(&rt).filter(|&v| v >= 3_000_000));

    // rt-core killed: the supervisor starts it again, warm.
    let pid = rt.rt_pid();
    // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to come back", T, || (shared_abi::shm::rt_alive(&rt.shm) && rt.rt_pid() != pid).then_some(()));
    rt.wait_status(&token, "STATUS:RUNNING");
    let after = v_udint(&rt, &token);
    assert!(after >= before, "carried on from the saved {before}: {after}");
    wait_for("rt-core's report of the restore in the runtime log", T, || {
        rt.log().contains("RETAIN variables (4 bytes) restored").then_some(())
    });

    // A power cut: both processes gone, the companion restores the program at boot.
    let before = wait_for("newer RETAIN values", T, || saved(&rt).filter(|&v| v > after));
    rt.stop_companion(libc::SIGKILL);
    let pid = rt.rt_pid();
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to be gone", T, || (!shared_abi::shm::rt_alive(&rt.shm)).then_some(()));
    rt.restart_companion();
    rt.wait_status(&token, "STATUS:RUNNING");
    let after = v_udint(&rt, &token);
    assert!(after >= before, "carried on after the power cut from {before}: {after}");

    // A clean upload (`?clean=1`) is a cold start: V_UDINT is 100 000 × the scans since the
    // load (the scan count restarts with each program), not the saved value plus that. (An
    // ordinary upload is an online change that carries the value on: see online_e2e.)
    assert_eq!(rt.upload_with(&zip, &token, "?clean=1", &[]).status, 200);
    assert_eq!(rt.wait_build(&token)["status"], "SUCCESS");
    rt.wait_status(&token, "STATUS:RUNNING");
    let fresh = v_udint(&rt, &token);
    let scans = rt.scan_count(&token);
    assert!(fresh <= 100_000 * scans, "started over: {fresh} after {scans} scans");
}

/// How far V_UDINT (100 000 a scan, 10 ms scans) runs in the 100 ms between two
/// publications of rt-core's live RETAIN copy.
const LIVE_COPY_LAG: u64 = 1_000_000;

#[test]
fn a_killed_rt_core_comes_back_with_the_live_retain_values_not_the_files() {
    // A long flush period: the file holds nothing newer than the first minute.
    let rt = Runtime::start(&["--retain-flush-s", "600"]);
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = retain_bundle(&rt);
    deploy(&rt, &token, &zip);
    let file_before = saved(&rt).unwrap_or(0);
    let live = wait_for("V_UDINT to pass 5 000 000", T, || Some(v_udint(&rt, &token)).filter(|&v| v >= 5_000_000));
    let file_at_kill = saved(&rt).unwrap_or(0);
    assert!(file_at_kill + LIVE_COPY_LAG < live, "the file is older than the live values");

    let pid = rt.rt_pid();
    // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to come back", T, || (shared_abi::shm::rt_alive(&rt.shm) && rt.rt_pid() != pid).then_some(()));
    rt.wait_status(&token, "STATUS:RUNNING");
    let after = v_udint(&rt, &token);
    // The live copy is published every 100 ms: what it carries back may be up to that much
    // older than the value read before the kill, and is newer than anything in the file.
    assert!(
        after + LIVE_COPY_LAG >= live && after > file_at_kill,
        "carried on from the live {live} (the file had {file_before}, then {file_at_kill}): {after}"
    );
    wait_for("rt-core's report of the restore in the runtime log", T, || {
        rt.log().contains("restored from the live copy").then_some(())
    });
}
