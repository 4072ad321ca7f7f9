//! The build cache through the real runtime over HTTPS: a re-upload compiles only what
//! changed (the build log says which units were reused), `?clean=1` compiles everything, the
//! cache survives a restart of the companion and only the runtime can read it.
//!
//! Needs `cargo build --workspace --bins` first, python3 and curl.

mod common;

use common::{Runtime, demo_bundle, rewrite_zip};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Uploads `zip` to `/api/upload-file{query}` and waits for the build; its log lines.
fn deploy(rt: &Runtime, zip: &Path, query: &str, token: &str) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg("-F")
        .arg(format!("file=@{};filename=program.zip;type=application/zip", zip.display()))
        .arg(format!("{}/upload-file{query}", rt.base()))
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(token, "STATUS:RUNNING");
    build["logs"].as_array().expect("logs").iter().map(|l| l.as_str().unwrap_or_default().to_string()).collect()
}

fn line<'a>(logs: &'a [String], start: &str) -> &'a str {
    logs.iter().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no line {start:?} in {logs:#?}"))
}

#[test]
fn a_reupload_compiles_only_what_changed_and_clean_compiles_everything() {
    let mut rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let first = rt.dir.path().join("first.zip");
    demo_bundle(&first, &["--period-ms", "10"]);

    let logs = deploy(&rt, &first, "", &token);
    assert_eq!(line(&logs, "[INFO] Build cache:"), "[INFO] Build cache: none of the 7 units could be reused");
    let timings = line(&logs, "[INFO] Deploy timings: ");
    for part in ["extract ", "detect ", "build ", "compile ", "link ", "load check ", "load and start ", "total "] {
        assert!(timings.contains(part), "{timings}");
    }

    // One POU changed: Res0.c (which includes POUS.c) is compiled, nothing else.
    let changed = rt.dir.path().join("changed.zip");
    rewrite_zip(
        &first,
        &changed,
        |name, data| {
            if name != "POUS.c" {
                return Some(data);
            }
            let text = String::from_utf8(data).expect("POUS.c");
            Some(
                text.replacen("(__GET_LOCATED(data__->COUNTER,) + 1)", "(__GET_LOCATED(data__->COUNTER,) + 2)", 1)
                    .into_bytes(),
            )
        },
        &[],
    );
    let logs = deploy(&rt, &changed, "", &token);
    assert_eq!(
        line(&logs, "[INFO] Build cache:"),
        "[INFO] Build cache: 6 of 7 units reused (Config0.c, debug.c, glueVars.c, the runtime adapter, the RETAIN table, \
         c_blocks_code.cpp)"
    );
    let compiled: Vec<&String> = logs.iter().filter(|l| l.starts_with("[INFO] Compiling ")).collect();
    assert_eq!(compiled, ["[INFO] Compiling Res0.c"]);

    // ?clean=1: everything compiled, the cache not consulted.
    let logs = deploy(&rt, &changed, "?clean=1", &token);
    assert_eq!(
        line(&logs, "[INFO] Clean build"),
        "[INFO] Clean build: all 7 units are compiled, none taken from the build cache"
    );
    assert_eq!(logs.iter().filter(|l| l.starts_with("[INFO] Compiling ")).count(), 7, "{logs:#?}");

    // The cache is the runtime's alone, and a restarted companion still has it.
    let cache = rt.data_dir().join("build-cache");
    assert_eq!(std::fs::metadata(&cache).expect("build-cache").permissions().mode() & 0o777, 0o700);
    rt.restart_companion();
    let logs = deploy(&rt, &first, "", &token);
    assert!(line(&logs, "[INFO] Build cache:").starts_with("[INFO] Build cache: 7 of 7 units reused"), "{logs:#?}");
}
