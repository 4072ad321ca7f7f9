//! `openplc-rt run --user nobody`: real time is set up as root, then the process runs as
//! nobody with CAP_SYS_NICE and CAP_IPC_LOCK only, so a program's code cannot read a
//! root-only file; the scan thread still gets SCHED_FIFO and locked memory, also after a
//! restart in place. Run as root (as `scripts/test` is).

mod support;

use shared_abi::client::Reader;
use shared_abi::layout::{PlcState, RT_FIFO, RT_MLOCKED};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use support::{Runtime, build_fixture, wait_for};

const T: Duration = Duration::from_secs(10);
/// CAP_IPC_LOCK (14) and CAP_SYS_NICE (23).
const KEPT_CAPS: u64 = (1 << 14) | (1 << 23);

fn proc_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_default().trim().to_string()
}

/// What the program's init could make of `secret`: 1 read, 2 refused (%MW1).
fn file_result(rt: &Runtime, so: &std::path::Path) -> u16 {
    let mut c = rt.client();
    c.load(so.to_str().unwrap(), true, T).expect("the program loads");
    wait_for("a scan", T, || {
        let o = c.outputs().ok()?;
        (o.tick > 2).then_some(o.image.int_memory[1])
    })
}

#[test]
fn a_program_run_as_nobody_cannot_read_a_root_only_file_and_the_plc_runs() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test starts openplc-rt as root (scripts/test runs as root)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("jwt.key");
    std::fs::write(&secret, "not for programs").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let define = format!("READ_FILE=\"{}\"", secret.display());
    let so = build_fixture(dir.path(), "reader.so", &[&define, "FAULT_KIND=8", "FAULT_IN=3", "FAULT_TICK=1000000"]);
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o644)).unwrap();

    // As root the program reads it: the test can tell.
    let root = Runtime::start(&[]);
    assert_eq!(file_result(&root, &so), 1, "root reads the file");
    drop(root);

    let shm = dir.path().join("shm").to_str().unwrap().to_string();
    let rt = Runtime::start_on(dir, shm, &["--user", "nobody"]);
    let pid = rt.child.id();
    assert_eq!(proc_field(pid, "Uid:"), "65534\t65534\t65534\t65534");
    assert_eq!(u64::from_str_radix(&proc_field(pid, "CapEff:"), 16).unwrap(), KEPT_CAPS);
    assert_eq!(file_result(&rt, &so), 2, "nobody cannot read the root-only file");
    let c = rt.client();
    assert_eq!(c.status().state, PlcState::Running, "the PLC runs");
    let flags = c.status().rt_flags;
    assert!(flags & RT_FIFO != 0 && flags & RT_MLOCKED != 0, "SCHED_FIFO and locked memory: {flags:#x}");
    assert!(rt.log().contains("running as user nobody"), "{}", rt.log());
}

#[test]
fn a_restart_in_place_keeps_the_user_and_the_real_time_capabilities() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test starts openplc-rt as root (scripts/test runs as root)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A failed assert in scan 3: a fault inside libc, so a restart in place.
    let so = build_fixture(dir.path(), "asserts.so", &["FAULT_KIND=8", "FAULT_IN=3"]);
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shm = dir.path().join("shm").to_str().unwrap().to_string();
    let rt = Runtime::start_on(dir, shm, &["--user", "nobody"]);
    let mut c = rt.client();
    let boot = c.status().rt_boot_ns;
    c.load(so.to_str().unwrap(), true, T).unwrap();
    wait_for("the restart in place", T, || (c.status().rt_boot_ns != boot && c.status().rt_alive).then_some(()));
    c.wait_cycle_after(c.status().heartbeat + 2, T).unwrap();
    let pid = rt.child.id();
    assert_eq!(c.status().rt_pid, pid);
    assert_eq!(proc_field(pid, "Uid:"), "65534\t65534\t65534\t65534");
    assert_eq!(u64::from_str_radix(&proc_field(pid, "CapEff:"), 16).unwrap(), KEPT_CAPS);
    let flags = c.status().rt_flags;
    assert!(flags & RT_FIFO != 0 && flags & RT_MLOCKED != 0, "still real time after the restart: {flags:#x}");
}
