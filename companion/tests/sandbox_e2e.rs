//! What an uploaded program can reach, end to end with the real binaries: its compiler sees
//! neither the data directory's token secret nor a root-only file (and viewers, who read the
//! compilation status, never see them); rt-core running as an account of its own (as
//! scripts/install sets it up, here `nobody` started by the test as its service would)
//! loads the programs the companion builds but cannot read the companion's secrets, and is
//! never started by the companion in its place.
//!
//! Needs root (CI runs as root): the test starts processes as `nobody`.

mod common;

use common::{Runtime, demo_bundle, rewrite_zip, rt_binary, wait_for};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn must_be_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests start processes as nobody: run them as root (CI does)");
}

/// Reads `path` as nobody: `Ok(bytes)` or the error `cat` printed.
fn read_as_nobody(path: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "cat"])
        .arg(path)
        .output()
        .expect("setpriv");
    if out.status.success() { Ok(out.stdout) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

#[test]
fn an_upload_that_includes_the_token_secret_fails_and_viewers_never_see_it() {
    must_be_root();
    let rt = Runtime::start(&[]);
    let admin = rt.bootstrap("admin", "admin-pass");
    let r = rt.curl(
        "POST",
        "/create-user",
        Some(&admin),
        Some(r#"{"username":"eve","password":"eve-pass","role":"viewer"}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let viewer = rt.login("eve", "eve-pass");
    let key_path = rt.data_dir().join("secrets/jwt.key");
    let key = fs::read_to_string(&key_path).expect("jwt.key");
    let key = key.trim();
    assert!(key.len() >= 32, "a real secret: {key:?}");

    // A root-only file of its own (like /etc/shadow), in a folder anyone may traverse.
    let outside = tempfile::Builder::new().prefix("oplc-root-only").tempdir().expect("temp");
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let root_only = outside.path().join("shadow");
    fs::write(&root_only, "OPLC_ROOT_ONLY_SECRET\n").expect("write");
    fs::set_permissions(&root_only, fs::Permissions::from_mode(0o600)).expect("chmod");

    let good = rt.dir.path().join("good.zip");
    demo_bundle(&good, &[]);
    let mut reaches = vec![key_path.clone(), root_only.clone()];
    if Path::new("/etc/shadow").exists() {
        reaches.push("/etc/shadow".into());
    }
    for (n, target) in reaches.iter().enumerate() {
        let zip = rt.dir.path().join(format!("reach-{n}.zip"));
        let include = format!("#include \"{}\"\n", target.display());
        rewrite_zip(
            &good,
            &zip,
            |name, d| Some(if name == "POUS.c" { [include.as_bytes(), &d].concat() } else { d }),
            &[],
        );
        assert_eq!(rt.upload(&zip, &admin).status, 200);
        let build = rt.wait_build(&admin);
        assert_eq!(build["status"], "FAILED", "{target:?}: {build:#}");
        let seen = rt.get("/compilation-status", &viewer);
        assert_eq!(seen.status, 200);
        for text in [seen.body.as_str(), &build.to_string(), &rt.get("/runtime-logs", &admin).body] {
            assert!(!text.contains(key), "{target:?}: the token secret leaked: {text}");
            assert!(!text.contains("OPLC_ROOT_ONLY_SECRET"), "{target:?}: the root-only file leaked: {text}");
            assert!(!text.contains("root:"), "{target:?}: /etc/shadow leaked: {text}");
        }
        let logs = build["logs"].to_string();
        assert!(logs.contains("No such file or directory"), "{target:?}: the compiler cannot see it: {logs}");
        assert!(logs.contains("runs in a sandbox"), "{logs}");
    }
    let logs = rt.get("/runtime-logs", &admin).body;
    assert!(logs.contains("Program builds: The compiler runs in a sandbox"), "said at start: {logs}");

    // A normal upload still builds and runs.
    assert_eq!(rt.upload(&good, &admin).status, 200);
    let build = rt.wait_build(&admin);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(&admin, "STATUS:RUNNING");
}

/// rt-core as nobody, started the way openplc-rt.service starts it: its own account with
/// CAP_SYS_NICE and CAP_IPC_LOCK (without CAP_IPC_LOCK its locked memory would be capped).
struct ServiceRt {
    child: Child,
}

impl ServiceRt {
    fn start(binary: &Path, shm: &Path, log: &Path) -> ServiceRt {
        let log = fs::OpenOptions::new().create(true).append(true).open(log).expect("rt log");
        let child = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["--inh-caps=+sys_nice,+ipc_lock", "--ambient-caps=+sys_nice,+ipc_lock", "--"])
            .arg(binary)
            .args(["run", "--cpu", "none", "--shm"])
            .arg(shm)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start openplc-rt as nobody");
        ServiceRt { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceRt {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rt_status_pid(shm: &Path) -> Option<u32> {
    use shared_abi::client::{Observer, Reader};
    let obs = Observer::open(shm.to_str()?).ok()?;
    obs.rt_alive().then(|| obs.status().rt_pid)
}

#[test]
fn rt_core_under_its_own_account_loads_programs_but_reads_no_secret() {
    must_be_root();
    let mut rt = Runtime::prepared(&["--rt-external", "true", "--rt-user", "nobody"]);
    // The test directory is the device's root here: passable for nobody, who also gets a
    // folder for the shared memory and a copy of openplc-rt it may run.
    fs::set_permissions(rt.dir.path(), fs::Permissions::from_mode(0o711)).expect("chmod");
    let rt_dir = rt.dir.path().join("rt");
    fs::create_dir(&rt_dir).expect("mkdir");
    let binary: PathBuf = rt_dir.join("openplc-rt");
    fs::copy(rt_binary(), &binary).expect("copy openplc-rt");
    let status = Command::new("chown").args(["-R", "65534:65534"]).arg(&rt_dir).status().expect("chown");
    assert!(status.success());
    rt.shm = rt_dir.join("shm");
    let rt_log = rt.dir.path().join("openplc-rt.log");

    let mut service = ServiceRt::start(&binary, &rt.shm, &rt_log);
    wait_for("openplc-rt (as nobody) to come up", Duration::from_secs(20), || {
        (rt_status_pid(&rt.shm) == Some(service.pid())).then_some(())
    });
    rt.spawn_companion();
    let token = rt.bootstrap("admin", "admin-pass");
    let zip = rt.dir.path().join("demo.zip");
    demo_bundle(&zip, &["--period-ms", "10"]);
    assert_eq!(rt.upload(&zip, &token).status, 200);
    let build = rt.wait_build(&token);
    assert_eq!(build["status"], "SUCCESS", "rt-core as nobody loaded the program: {build:#}");
    rt.wait_status(&token, "STATUS:RUNNING");
    assert_eq!(rt_status_pid(&rt.shm), Some(service.pid()), "the companion attached to the service's rt-core");

    // What nobody (rt-core's account) can read of the data directory.
    let data = rt.data_dir();
    let current = fs::read_to_string(data.join("state.json")).expect("state.json");
    let id = serde_json::from_str::<serde_json::Value>(&current).expect("json")["current"]
        .as_str()
        .expect("current program")
        .to_string();
    let library = data.join("programs").join(&id).join("program.so");
    assert!(read_as_nobody(&library).expect("rt-core's account reads the program").starts_with(b"\x7fELF"));
    let upload = fs::read_dir(data.join("uploads")).expect("uploads").next().expect("an upload").expect("entry").path();
    for secret in [
        data.join("secrets/jwt.key"),
        data.join("users.json"),
        data.join("tls/key.pem"),
        data.join("logs/runtime.log"),
        upload,
    ] {
        assert!(secret.exists(), "{secret:?}");
        let err = read_as_nobody(&secret).expect_err(&format!("{secret:?} must be closed to rt-core's account"));
        assert!(err.contains("Permission denied"), "{secret:?}: {err}");
    }
    let listing = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "ls"])
        .arg(&data)
        .output()
        .expect("ls");
    assert!(!listing.status.success(), "the data directory cannot be listed by rt-core's account");

    // rt-core dies; its service, not the companion, starts the next one, and the companion
    // reloads the program into it.
    service.kill();
    wait_for("the companion to notice and wait for the service", Duration::from_secs(20), || {
        rt.get("/runtime-logs", &token).body.contains("waiting for its service to restart it").then_some(())
    });
    assert_eq!(rt_status_pid(&rt.shm), None, "the companion started no openplc-rt of its own");
    let service = ServiceRt::start(&binary, &rt.shm, &rt_log);
    wait_for("the program to run again in the new rt-core", Duration::from_secs(30), || {
        (rt_status_pid(&rt.shm) == Some(service.pid()) && rt.status(&token) == "STATUS:RUNNING").then_some(())
    });
    wait_for("scans to advance", Duration::from_secs(10), || (rt.scan_count(&token) > 0).then_some(()));
}
