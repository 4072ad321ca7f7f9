//! Programs the benchmarks run, built on the spot with the system compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// rt-core's own ABI test program at 1 ms.
pub fn fixture_program(dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("fixture.so");
    let root = repo_root();
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-DPERIOD_NS=1000000ULL"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg("-I")
        .arg(root.join("shared-abi/include"))
        .arg(root.join("rt-core/tests/fixtures/abi_program.c"))
        .status()
        .expect("cc");
    assert!(status.success());
    out
}

pub fn all_points_program(dir: &Path) -> PathBuf {
    fixture_program(dir, &["-DNO_LOCATED_LIST"])
}

pub fn demo_program(dir: &Path, _period_ms: u32) -> PathBuf {
    fixture_program(dir, &[])
}
