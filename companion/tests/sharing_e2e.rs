//! Several runtimes on one machine: each data directory gets its own rt-core by default, a
//! companion never adopts an rt-core that runs another installation's program, and a build
//! says so when another client holds rt-core's lease (rather than "not running").
//!
//! Needs `cargo build --workspace --bins` first (for `openplc-rt`), python3 and curl.

mod common;

use common::{Runtime, demo_bundle, rt_binary, wait_for};
use shared_abi::client::{Observer, Reader, RtClient};
use shared_abi::layout::PlcState;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Uploads the demo program and waits for the build; returns the compilation status.
fn upload_demo(rt: &Runtime, token: &str) -> serde_json::Value {
    let zip = rt.dir.path().join("demo.zip");
    demo_bundle(&zip, &["--period-ms", "10"]);
    assert_eq!(rt.upload(&zip, token).status, 200);
    rt.wait_build(token)
}

fn observe(rt: &Runtime) -> Observer {
    Observer::open(rt.shm.to_str().unwrap()).expect("observe the shared memory")
}

/// The reason `/api/status` gives for not being attached, once it gives one.
fn wait_unavailable(rt: &Runtime, token: &str, what: &str) -> String {
    wait_for(what, Duration::from_secs(20), || {
        let j = rt.get("/status", token).json();
        j["rt_core_unavailable"].as_str().map(String::from)
    })
}

/// An rt-core started by the test itself (as a service would start it), killed on drop.
struct OwnCore(Child);

impl OwnCore {
    fn start(rt: &Runtime) -> OwnCore {
        let log = std::fs::File::create(rt.dir.path().join("own-openplc-rt.log")).unwrap();
        let child = Command::new(rt_binary())
            .arg("--shm")
            .arg(&rt.shm)
            .args(["run", "--cpu", "none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start openplc-rt");
        let shm = rt.shm.to_str().unwrap().to_string();
        wait_for("openplc-rt to run", Duration::from_secs(10), || {
            Observer::open(&shm).ok().filter(|o| o.status().heartbeat > 0).map(|_| ())
        });
        OwnCore(child)
    }
}

impl Drop for OwnCore {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_data_directories_get_two_cores_by_default() {
    let mut a = Runtime::prepared_default_shm(&[]);
    let mut b = Runtime::prepared_default_shm(&[]);
    a.spawn_companion();
    b.spawn_companion();
    assert_ne!(a.shm, b.shm);
    for rt in [&a, &b] {
        let name = rt.shm.file_name().unwrap().to_str().unwrap();
        assert!(rt.shm.starts_with("/dev/shm") && name.starts_with("openplc-rt-"), "{}", rt.shm.display());
        assert!(observe(rt).rt_alive());
    }
    assert_ne!(a.rt_pid(), b.rt_pid(), "each companion started its own rt-core");
    // The control tool finds a data directory's rt-core by the directory.
    let out =
        Command::new(rt_binary()).arg("--data-dir").arg(a.data_dir()).args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["rt_pid"], a.rt_pid(), "{status}");
}

#[test]
fn a_core_running_another_installations_program_is_left_alone() {
    // Installation A deploys the demo, then its companion stops (rt-core runs on).
    let mut a = Runtime::start(&[]);
    let token_a = a.bootstrap("admin", "admin-pass");
    assert_eq!(upload_demo(&a, &token_a)["status"], "SUCCESS");
    a.wait_status(&token_a, "STATUS:RUNNING");
    let (pid, program_gen) = (a.rt_pid(), observe(&a).status().program_gen);
    a.stop_companion(libc::SIGTERM);

    // Installation B is pointed at the same shared memory.
    let mut b = Runtime::prepared(&[]);
    b.shm = a.shm.clone();
    b.spawn_companion_unattached();
    let token_b = b.bootstrap("admin", "admin-pass");
    let why = wait_unavailable(&b, &token_b, "B to refuse A's rt-core");
    assert!(why.contains("not this runtime's") && why.contains(&format!("pid {pid}")), "{why}");
    assert_eq!(b.status(&token_b), "STATUS:ERROR");
    assert!(b.log().contains("runs a program that is not this runtime's"), "{}", b.log());
    // B's upload is not loaded into A's PLC, and the build log says why.
    let build = upload_demo(&b, &token_b);
    assert_eq!(build["status"], "FAILED", "{build:#}");
    let logs = build["logs"].to_string();
    assert!(logs.contains("not available to this runtime") && logs.contains("not this runtime's"), "{logs}");
    let st = observe(&a).status();
    assert_eq!((st.rt_pid, st.program_gen, st.state), (pid, program_gen, PlcState::Running), "A's PLC untouched");
    b.stop_companion(libc::SIGKILL);

    // A's own companion adopts it again, program and all.
    a.spawn_companion();
    a.wait_status(&token_a, "STATUS:RUNNING");
    assert_eq!((a.rt_pid(), observe(&a).status().program_gen), (pid, program_gen));
}

#[test]
fn a_build_says_when_another_client_holds_the_core() {
    let mut rt = Runtime::prepared(&[]);
    let core = OwnCore::start(&rt);
    rt.remember_rt_pid();
    // The control tool (here: this test) holds the client lease.
    let lease = RtClient::open(rt.shm.to_str().unwrap()).expect("take the lease");
    rt.spawn_companion_unattached();
    let token = rt.bootstrap("admin", "admin-pass");
    let why = wait_unavailable(&rt, &token, "the companion to report the lease");
    assert!(why.contains("another client holds its lease"), "{why}");
    let build = upload_demo(&rt, &token);
    assert_eq!(build["status"], "FAILED", "{build:#}");
    let logs = build["logs"].to_string();
    assert!(logs.contains("another client holds its lease") && !logs.contains("not running"), "{logs}");
    // Once the lease is free the companion attaches (an idle core: it is adopted).
    drop(lease);
    wait_for("the companion to attach", Duration::from_secs(20), || {
        (rt.curl("GET", "/health", None, None).json()["rt_core"] == "up").then_some(())
    });
    assert_eq!(rt.get("/status", &token).json()["rt_core_unavailable"], serde_json::Value::Null);
    drop(core);
}
