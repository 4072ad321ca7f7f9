//! Shared harness for the end-to-end tests: real `openplc-runtime` and `openplc-rt`
//! processes on a temporary data directory, a free port and a temporary shared-memory
//! file, driven over HTTPS by clients that are not ours (curl, Node's `https`).
//!
//! Every process started here is killed when the harness is dropped, also on failure.

#![allow(dead_code)]

use serde_json::Value;
use shared_abi::client::{Observer, Reader};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("companion/ is inside the repo").to_path_buf()
}

/// `openplc-rt`, built beside the test executables (`cargo build --workspace --bins`).
pub fn rt_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("test executables live in deps/");
    let bin = dir.join("..").join("openplc-rt");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` before the tests", bin.display());
    bin
}

pub fn companion_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_openplc-runtime"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().unwrap().port()
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A response as curl saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One runtime under test: a companion (restartable) and the rt-core it starts.
pub struct Runtime {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub shm: PathBuf,
    pub args: Vec<String>,
    /// `--shm` is passed (a file in the temporary directory); otherwise the companion
    /// names its shared memory after its data directory, in /dev/shm, removed on drop.
    pub explicit_shm: bool,
    companion: Option<Child>,
    rt_pids: Vec<u32>,
}

impl Runtime {
    /// Starts a companion on a fresh data directory, with `extra` arguments.
    pub fn start(extra: &[&str]) -> Runtime {
        let mut rt = Runtime::prepared(extra);
        rt.spawn_companion();
        rt
    }

    /// A runtime whose companion is not started yet: the test prepares the directory (a
    /// file system of its own, an rt-core it starts itself), then calls `spawn_companion`.
    pub fn prepared(extra: &[&str]) -> Runtime {
        let dir = tempfile::Builder::new().prefix("oplc-e2e").tempdir().expect("temp dir");
        let shm = dir.path().join("shm");
        Runtime {
            port: free_port(),
            shm,
            args: extra.iter().map(|s| s.to_string()).collect(),
            explicit_shm: true,
            dir,
            companion: None,
            rt_pids: Vec::new(),
        }
    }

    /// Like `prepared`, but the companion gets no `--shm`: it uses the shared memory it
    /// names after its data directory (`/dev/shm/openplc-rt-<hash>`).
    pub fn prepared_default_shm(extra: &[&str]) -> Runtime {
        let mut rt = Runtime::prepared(extra);
        rt.explicit_shm = false;
        rt.shm = shared_abi::shm::shm_path(&shared_abi::shm::name_for_data_dir(&rt.data_dir()));
        rt
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}/api", self.port)
    }

    pub fn spawn_companion(&mut self) {
        self.spawn_companion_unattached();
        let base = self.base();
        wait_for("rt-core to be attached", Duration::from_secs(20), || {
            let r = curl(&base, "GET", "/health", None, None).ok()?;
            (r.json()["rt_core"] == "up").then_some(())
        });
        self.remember_rt_pid();
    }

    /// Starts the companion and waits for its API only (not for rt-core to be attached).
    pub fn spawn_companion_unattached(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("companion.log"))
            .expect("companion log");
        let child = Command::new(companion_binary())
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .args(if self.explicit_shm { vec!["--shm".into(), self.shm.clone().into_os_string()] } else { vec![] })
            .arg("--rt-binary")
            .arg(rt_binary())
            // Not pinned unless the test names a CPU itself.
            .args(if self.args.iter().any(|a| a == "--rt-cpu") { &[][..] } else { &["--rt-cpu", "none"][..] })
            .args(if self.args.iter().any(|a| a == "--discovery-port") {
                &[][..]
            } else {
                &["--discovery-port", "0"][..]
            })
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start openplc-runtime");
        self.companion = Some(child);
        let base = self.base();
        wait_for("the companion to answer", Duration::from_secs(20), || {
            curl(&base, "GET", "/version", None, None).ok().filter(|r| r.status == 200)
        });
    }

    /// The rt-core pid recorded in the shared memory.
    pub fn rt_pid(&self) -> u32 {
        Observer::open(self.shm.to_str().unwrap()).expect("observe the shared memory").status().rt_pid
    }

    /// rt-core's loop counter, read from the shared memory (works with no companion).
    pub fn heartbeat(&self) -> u64 {
        Observer::open(self.shm.to_str().unwrap()).expect("observe the shared memory").status().heartbeat
    }

    pub fn remember_rt_pid(&mut self) {
        if let Ok(obs) = Observer::open(self.shm.to_str().unwrap()) {
            let pid = obs.status().rt_pid;
            if pid != 0 && !self.rt_pids.contains(&pid) {
                self.rt_pids.push(pid);
            }
        }
    }

    pub fn companion_pid(&self) -> u32 {
        self.companion.as_ref().expect("companion running").id()
    }

    /// Stops the companion with `signal` and waits for it; rt-core is left alone.
    pub fn stop_companion(&mut self, signal: i32) {
        self.remember_rt_pid();
        if let Some(mut child) = self.companion.take() {
            // SAFETY: signalling a child we started and have not reaped yet.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    pub fn restart_companion(&mut self) {
        self.stop_companion(libc::SIGTERM);
        self.spawn_companion();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("companion.log")).unwrap_or_default()
    }

    pub fn curl(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        curl(&self.base(), method, path, token, body).unwrap_or_else(|e| panic!("curl {method} {path}: {e}"))
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.curl("GET", path, Some(token), None)
    }

    /// Creates the first user and logs in; returns the access token.
    pub fn bootstrap(&self, username: &str, password: &str) -> String {
        let body = serde_json::json!({ "username": username, "password": password, "role": "user" }).to_string();
        let r = self.curl("POST", "/create-user", None, Some(&body));
        assert_eq!(r.status, 201, "{r:?}");
        self.login(username, password)
    }

    pub fn login(&self, username: &str, password: &str) -> String {
        let body = serde_json::json!({ "username": username, "password": password }).to_string();
        let r = self.curl("POST", "/login", None, Some(&body));
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["access_token"].as_str().expect("access_token").to_string()
    }

    /// Uploads `zip` as the Editor does (multipart part `file`, `program.zip`).
    pub fn upload(&self, zip: &Path, token: &str) -> Reply {
        self.upload_with(zip, token, "", &[])
    }

    /// Uploads `zip` with `query` (`"?clean=1"` or `""`) and more curl form arguments
    /// (`-F snapshot=@…`, `--form-string snapshot_metadata=…`).
    pub fn upload_with(&self, zip: &Path, token: &str, query: &str, more: &[String]) -> Reply {
        let out = self.upload_command(zip, token, query, more).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        Reply { status: code.trim().parse().unwrap_or(0), headers: Vec::new(), body: body.to_string() }
    }

    /// The curl command of [`Runtime::upload_with`], for a test that runs it in the background.
    pub fn upload_command(&self, zip: &Path, token: &str, query: &str, more: &[String]) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg("-F")
            .arg(format!("file=@{};filename=program.zip;type=application/zip", zip.display()))
            .args(more)
            .arg(format!("{}/upload-file{query}", self.base()));
        cmd
    }

    /// Waits for the build to finish; returns `compilation-status`.
    pub fn wait_build(&self, token: &str) -> Value {
        wait_for("the build to finish", Duration::from_secs(120), || {
            let s = self.get("/compilation-status", token).json();
            (s["status"] != "COMPILING").then_some(s)
        })
    }

    pub fn status(&self, token: &str) -> String {
        self.get("/status", token).json()["status"].as_str().unwrap_or_default().to_string()
    }

    pub fn scan_count(&self, token: &str) -> u64 {
        self.get("/status?include_stats=true", token).json()["timing_stats"]["scan_count"].as_u64().unwrap_or(0)
    }

    pub fn wait_status(&self, token: &str, want: &str) {
        wait_for(&format!("status {want}"), Duration::from_secs(30), || (self.status(token) == want).then_some(()));
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_companion(libc::SIGKILL);
        self.remember_rt_pid();
        for pid in &self.rt_pids {
            // SAFETY: kill() touches no memory; the pids are the rt-cores this test's
            // companion started, read from this test's own shared-memory file.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        if !self.explicit_shm {
            // Outside the temporary directory: this test's own, named after its data dir.
            let mut client = self.shm.clone().into_os_string();
            client.push(".client");
            let _ = std::fs::remove_file(&self.shm);
            let _ = std::fs::remove_file(client);
        }
        if std::thread::panicking() {
            eprintln!("---- companion log ----\n{}", self.log());
            let rt_log = std::fs::read_to_string(self.data_dir().join("logs/openplc-rt.log")).unwrap_or_default();
            eprintln!("---- openplc-rt log ----\n{rt_log}");
        }
    }
}

/// One HTTPS request with curl (certificate not checked, like the Editor).
pub fn curl(base: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Result<Reply, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-D", "-", "-o", "-", "--max-time", "30", "-X", method]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if body.is_some() {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", "@-"]);
        cmd.stdin(Stdio::piped());
    } else {
        cmd.stdin(Stdio::null());
    }
    cmd.arg(format!("{base}{path}")).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(b) = body {
        child.stdin.take().expect("stdin").write_all(b.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("curl failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header block")?;
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).ok_or("no status line")?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Ok(Reply { status, headers, body: body.to_string() })
}

/// The demo program zipped as the Editor zips it (see scripts/make-demo-bundle).
pub fn demo_bundle(out: &Path, args: &[&str]) {
    let status = Command::new("python3")
        .arg(repo_root().join("scripts/make-demo-bundle"))
        .arg(out)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run make-demo-bundle");
    assert!(status.success(), "make-demo-bundle failed");
}

/// Rewrites a zip: `edit` may change or drop entries (by name), `extra` adds entries.
pub fn rewrite_zip(
    src: &Path,
    dst: &Path,
    mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: &[(&str, Vec<u8>, zip::CompressionMethod)],
) {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut w = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let name = entry.name().to_string();
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        if entry.is_dir() {
            w.add_directory(name, opts).unwrap();
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&name, data) {
            w.start_file(name, opts).unwrap();
            w.write_all(&data).unwrap();
        }
    }
    for (name, data, method) in extra {
        let opts =
            zip::write::SimpleFileOptions::default().compression_method(*method).large_file(data.len() > (1 << 31));
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
}

/// Zips the bundle directory `src` as the Editor zips its build folder: entries at the root,
/// a directory entry for each folder, stored (no compression); `skip` names root files left
/// out (a fixture's README).
pub fn zip_bundle_dir(src: &Path, out: &Path, skip: &[&str]) {
    fn add(w: &mut zip::ZipWriter<std::fs::File>, root: &Path, dir: &Path, skip: &[&str]) {
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            if path.is_dir() {
                w.add_directory(format!("{name}/"), opts).unwrap();
                add(w, root, &path, skip);
            } else if !skip.contains(&name.as_str()) {
                w.start_file(name, opts).unwrap();
                w.write_all(&std::fs::read(&path).unwrap()).unwrap();
            }
        }
    }
    let mut w = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    add(&mut w, src, src, skip);
    w.finish().unwrap();
}

/// The STruC++ demo fixture copied to `work/name`, with `edits` (file, from, to) applied, each
/// `from` required and every occurrence replaced, zipped as the Editor zips it
/// (`work/name.zip`).
pub fn strucpp_bundle(work: &Path, name: &str, edits: &[(&str, &str, &str)]) -> PathBuf {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = work.join(name);
    copy_dir(&repo_root().join("companion/builder/tests/fixtures/strucpp-demo"), &dir);
    for (file, from, to) in edits {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
    }
    let zip = work.join(format!("{name}.zip"));
    zip_bundle_dir(&dir, &zip, &["README.md"]);
    zip
}

/// The edits that declare `vars` (name, IEC type) of the STruC++ fixture's MAIN program
/// RETAIN, as STruC++ generates a program with RETAIN variables: a table of name, offset and
/// size. Pass them to [`strucpp_bundle`] as `(file, &from, &to)`.
pub fn strucpp_retain(vars: &[(&str, &str)]) -> [(&'static str, String, String); 2] {
    let n = vars.len();
    let entries: String = vars
        .iter()
        .map(|(name, ty)| format!("    {{\"{name}\", offsetof(Program_MAIN, {name}), sizeof(IEC_{ty})}},\n"))
        .collect();
    [
        (
            "generated.hpp",
            "    Program_MAIN();\n    void run() override;\n".into(),
            format!(
                "    Program_MAIN();\n    void run() override;\n\n    static const RetainVarInfo retain_table[{n}];\n    \
                 const RetainVarInfo *getRetainVars() const override {{ return retain_table; }}\n    \
                 size_t getRetainCount() const override {{ return {n}; }}\n"
            ),
        ),
        (
            "pou_MAIN.cpp",
            "void Program_MAIN::run()".into(),
            format!("const RetainVarInfo Program_MAIN::retain_table[] = {{\n{entries}}};\n\nvoid Program_MAIN::run()"),
        ),
    ]
}

/// [`strucpp_retain`]'s edits as [`strucpp_bundle`] takes them.
pub fn edits<'a>(owned: &'a [(&'static str, String, String)]) -> Vec<(&'static str, &'a str, &'a str)> {
    owned.iter().map(|(f, from, to)| (*f, from.as_str(), to.as_str())).collect()
}
