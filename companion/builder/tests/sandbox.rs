//! The compiler sandbox: an uploaded bundle that reaches for a file outside itself (an
//! `#include` of an absolute path or up the tree, an `.incbin`) fails to build and the build
//! log holds none of the file's bytes; a library whose start-up code snoops around finds
//! no secret, no network and nothing writable; the builder works from an unprivileged
//! process holding capabilities, as under the systemd unit.
//!
//! These tests run as root in CI (the builder then drops to `nobody`); run as another user
//! they check the same sandbox without the drop.

mod common;

use common::{build_collect, copy_dir, demo_dir, edit, scratch, strucpp_dir};
use openplc_builder::{BuildLine, BuildOptions, Isolation, build};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// A secret no build may see: a C identifier (so a compiler that reads it prints it back in
/// an error), unique to this run, in `mode` at `dir/name` under a world-traversable folder.
struct Secret {
    _dir: tempfile::TempDir,
    path: PathBuf,
    text: String,
}

fn secret(name: &str, mode: u32) -> Secret {
    let dir = tempfile::Builder::new().prefix("oplc-secret-").tempdir_in(std::env::temp_dir()).expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    let text = format!("OPLC_SECRET_{nanos:x}_{}", std::process::id());
    let path = dir.path().join(name);
    fs::write(&path, format!("{text}\n")).expect("write the secret");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
    Secret { _dir: dir, path, text }
}

/// The demo bundle with `line` added to POUS.c (compiled through Res0.c).
fn demo_with(tag: &str, line: &str) -> PathBuf {
    let dir = scratch(tag).join("src");
    copy_dir(&demo_dir(), &dir);
    let pous = fs::read_to_string(dir.join("POUS.c")).expect("POUS.c");
    fs::write(dir.join("POUS.c"), format!("{line}\n{pous}")).expect("write");
    dir
}

fn all_text(lines: &[BuildLine], result: &Result<openplc_builder::BuildReport, String>) -> String {
    let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    if let Err(e) = result {
        text.push(e.clone());
    }
    text.join("\n")
}

fn unconfined() -> BuildOptions {
    BuildOptions { isolation: Isolation::Unconfined, ..BuildOptions::default() }
}

#[test]
fn an_include_of_an_absolute_path_fails_and_the_log_holds_none_of_its_bytes() {
    let secret = secret("jwt.key", 0o644);
    let dir = demo_with("include-abs", &format!("#include \"{}\"", secret.path.display()));
    let out = dir.parent().expect("parent").join("program.so");

    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    let log = all_text(&lines, &result);
    assert!(result.is_err(), "the build must fail: {log}");
    assert!(log.contains("No such file or directory"), "the compiler cannot see the file: {log}");
    assert!(!log.contains(&secret.text), "the secret leaked into the log:\n{log}");
    assert!(lines.iter().any(|l| l.text.contains("runs in a sandbox")), "{log}");
    assert!(!out.exists());

    // The check is able to fail: without the sandbox the same bundle prints the secret back
    // (the file is world-readable, so even `nobody` reads it).
    let (result, lines) = build_collect(&dir, &out, &unconfined());
    let log = all_text(&lines, &result);
    assert!(log.contains(&secret.text), "unconfined, the compiler reads the file: {log}");
    assert!(lines.iter().any(|l| l.text.contains("WITHOUT a sandbox")), "{log}");
}

#[test]
fn root_only_files_and_paths_up_the_tree_stay_out_of_reach() {
    let root_only = secret("shadow", 0o600);
    let mut includes = vec![
        format!("#include \"{}\"", root_only.path.display()),
        "#include \"../../../../../../../../etc/passwd\"".to_string(),
    ];
    if Path::new("/etc/shadow").exists() {
        includes.push("#include \"/etc/shadow\"".into());
    }
    for (n, include) in includes.iter().enumerate() {
        let dir = demo_with(&format!("include-{n}"), include);
        let out = dir.parent().expect("parent").join("program.so");
        let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
        let log = all_text(&lines, &result);
        assert!(result.is_err(), "{include}: the build must fail: {log}");
        assert!(!log.contains(&root_only.text), "{include}: the root-only file leaked:\n{log}");
        assert!(!log.contains("root:"), "{include}: /etc/passwd or /etc/shadow leaked:\n{log}");
    }
}

#[test]
fn an_incbin_of_a_file_outside_the_bundle_fails() {
    let secret = secret("tls.key", 0o644);
    let dir = demo_with(
        "incbin",
        &format!("__asm__(\".section .rodata\\n.incbin \\\"{}\\\"\\n.previous\");", secret.path.display()),
    );
    let out = dir.parent().expect("parent").join("program.so");
    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    let log = all_text(&lines, &result);
    assert!(result.is_err(), "the assembler cannot see the file: {log}");
    assert!(log.contains("file not found"), "{log}");
    assert!(!out.exists());

    // Unconfined the same bundle builds, with the file's bytes inside the library.
    let (result, _) = build_collect(&dir, &out, &unconfined());
    result.expect("unconfined, .incbin reads the file");
    let library = fs::read(&out).expect("library");
    assert!(library.windows(secret.text.len()).any(|w| w == secret.text.as_bytes()));
}

/// `openplc-rt`, built beside the test executables (`cargo build --workspace --bins`).
fn rt_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>/deps").join("openplc-rt");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace --bins` before the tests", bin.display());
    bin
}

#[test]
fn start_up_code_in_the_load_check_finds_no_secret_no_network_and_nothing_writable() {
    let secret = secret("users.json", 0o644);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("address").port();
    let dir = scratch("snoop").join("src");
    copy_dir(&demo_dir(), &dir);
    let snoop = format!(
        r#"
#include <arpa/inet.h>
#include <cstdio>
#include <netinet/in.h>
#include <sys/socket.h>
namespace {{
struct Snoop {{
    Snoop() {{
        std::FILE *secret = std::fopen("{secret}", "r");
        std::printf("snoop: secret %s\n", secret != nullptr ? "READ" : "hidden");
        int s = socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in to{{}};
        to.sin_family = AF_INET;
        to.sin_port = htons({port});
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool reached = s >= 0 && connect(s, reinterpret_cast<sockaddr *>(&to), sizeof to) == 0;
        std::printf("snoop: network %s\n", reached ? "REACHED" : "unreachable");
        std::FILE *planted = std::fopen("/build/out/planted", "w");
        std::printf("snoop: build folder %s\n", planted != nullptr ? "WRITABLE" : "read-only");
        std::fflush(stdout);
    }}
}} snoop;
}}
"#,
        secret = secret.path.display()
    );
    let c_blocks = fs::read_to_string(dir.join("c_blocks_code.cpp")).expect("c_blocks_code.cpp");
    fs::write(dir.join("c_blocks_code.cpp"), c_blocks + &snoop).expect("write");
    let out = dir.parent().expect("parent").join("program.so");
    let opts = BuildOptions { load_check: Some(rt_binary()), ..BuildOptions::default() };

    let (result, lines) = build_collect(&dir, &out, &opts);
    let log = all_text(&lines, &result);
    result.unwrap_or_else(|e| panic!("the library loads: {e}\n{log}"));
    for said in ["snoop: secret hidden", "snoop: network unreachable", "snoop: build folder read-only"] {
        assert!(lines.iter().any(|l| l.text == said), "{said:?} in\n{log}");
    }
    assert!(lines.iter().any(|l| l.text.contains("loads, program ABI")), "{log}");
    assert!(listener.accept().is_err(), "nothing connected to the host");
}

#[test]
fn a_library_that_crashes_while_loading_fails_the_load_check() {
    let dir = scratch("crash-on-load").join("src");
    copy_dir(&strucpp_dir(), &dir);
    edit(
        &dir,
        "pou_MAIN.cpp",
        &[(
            "namespace strucpp {",
            "namespace { struct CrashOnLoad { CrashOnLoad() { volatile int *volatile p = nullptr; *p = 1; } } \
             crash_on_load; }\nnamespace strucpp {",
        )],
    );
    let out = dir.parent().expect("parent").join("program.so");
    let opts = BuildOptions { load_check: Some(rt_binary()), ..BuildOptions::default() };
    let (result, _) = build_collect(&dir, &out, &opts);
    let message = result.expect_err("the load check fails");
    // openplc-rt check catches the fault in its guard and says where it happened.
    assert!(message.starts_with("the program does not load: "), "{message}");
    assert!(message.contains("constructors") && message.contains("SIGSEGV"), "{message}");
    assert!(!out.exists(), "no library is handed out");
}

const HELPER_BUNDLE: &str = "OPLC_SANDBOX_HELPER_BUNDLE";

#[test]
#[ignore = "a helper: builds_from_an_unprivileged_process_holding_capabilities runs it as nobody"]
fn helper_builds_the_bundle_it_is_given() {
    let bundle = PathBuf::from(std::env::var_os(HELPER_BUNDLE).expect("run by its parent test"));
    let out = bundle.parent().expect("parent").join("program.so");
    let mut lines = Vec::new();
    let result = build(&bundle, &out, &BuildOptions::default(), &mut |l| lines.push(l.to_string()));
    if let Err(e) = result {
        panic!("{e}\n{}", lines.join("\n"));
    }
    assert!(lines.iter().any(|l| l.contains("runs in a sandbox (as this runtime's own user)")), "{lines:#?}");
}

#[test]
fn builds_from_an_unprivileged_process_holding_capabilities() {
    // The systemd unit runs the runtime as its own user with CAP_SYS_NICE and CAP_IPC_LOCK
    // in the ambient set; bubblewrap refuses to start with capabilities it did not get from
    // a setuid bit, so the builder must drop them for its jobs.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: this test needs root to start a process as nobody; the other tests ran unprivileged");
        return;
    }
    let work = tempfile::Builder::new().prefix("oplc-unprivileged-").tempdir_in(std::env::temp_dir()).expect("temp");
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let bundle = work.path().join("bundle").join("src");
    copy_dir(&demo_dir(), &bundle);
    let bin = work.path().join("test-binary");
    fs::copy(std::env::current_exe().expect("test binary"), &bin).expect("copy the test binary");
    let status =
        Command::new("chown").args(["-R", "65534:65534"]).arg(work.path().join("bundle")).status().expect("chown");
    assert!(status.success());

    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["--inh-caps=+sys_nice,+ipc_lock", "--ambient-caps=+sys_nice,+ipc_lock", "--"])
        .arg(&bin)
        .args(["--exact", "helper_builds_the_bundle_it_is_given", "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER_BUNDLE, &bundle)
        .output()
        .expect("run the helper as nobody");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(said.contains("1 passed"), "{said}");
    assert!(work.path().join("bundle/program.so").exists());
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn the_timeout_kills_every_process_in_the_sandbox() {
    // A translation unit that keeps cc1plus busy for far longer than the build may take,
    // named uniquely so that its processes can be found.
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    let name = format!("aaa_slow_{nanos:x}.cpp");
    let dir = scratch("slow").join("src");
    copy_dir(&strucpp_dir(), &dir);
    fs::write(
        dir.join(&name),
        // Nested loops, each under GCC's constexpr loop limit: minutes of constant evaluation.
        "constexpr unsigned long spin() { unsigned long x = 0; for (unsigned i = 0; i < 200000; ++i) \
         for (unsigned j = 0; j < 200000; ++j) x += i ^ j; return x; }\nconstexpr unsigned long spun = spin();\n",
    )
    .expect("write");
    let out = dir.parent().expect("parent").join("program.so");
    let opts = BuildOptions { timeout: std::time::Duration::from_millis(1500), ..BuildOptions::default() };
    let started = std::time::Instant::now();
    let (result, lines) = build_collect(&dir, &out, &opts);
    let message = result.expect_err("must time out");
    let expected = format!("the build took longer than 1.5 s and was stopped while compiling {name}");
    assert!(message.starts_with(&expected), "{message}\n{lines:#?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "stopped promptly");
    let left = processes_mentioning(&name);
    assert!(left.is_empty(), "compiler processes outlived the build: {left:#?}");
}
