//! The newest Editor's calls (`editor_newest_flow.mjs`: its REST client's code paths and its
//! debug transport's license codes, in Node) against the real companion and rt-core.

mod common;

use common::Runtime;
use std::process::Command;

#[test]
fn the_newest_editors_calls_over_node_https() {
    let rt = Runtime::start(&["--editor-compat", "dual"]);
    let zip = rt.dir.path().join("program.zip");
    common::demo_bundle(&zip, &["--period-ms", "10"]);
    // A project archive (the runtime never opens it).
    let snapshot = rt.dir.path().join("project.zip");
    std::fs::write(&snapshot, (0..150_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect::<Vec<_>>())
        .unwrap();
    let modules = common::repo_root().join("target/node-deps/node_modules");
    assert!(
        modules.join("socket.io-client").exists(),
        "{} has no socket.io-client: run scripts/test-deps",
        modules.display()
    );
    let out = Command::new("node")
        .arg(common::repo_root().join("companion/tests/editor_newest_flow.mjs"))
        .arg(rt.port.to_string())
        .arg(&zip)
        .arg(&snapshot)
        .env("NODE_PATH", modules)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the newest Editor's flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("editor-newest: OK"), "{stdout}");
}
