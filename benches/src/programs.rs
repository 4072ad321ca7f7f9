//! Programs the benchmarks run, built on the spot with the system compiler and the real
//! MatIEC adapter, exactly as the companion builds an upload.

use crate::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository this crate was built from (benches/ is one level below it).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd.output().map_err(Error::io(format!("{cmd:?}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Failed { command: format!("{cmd:?}"), detail: String::from_utf8_lossy(&out.stderr).into_owned() })
    }
}

/// Builds the bundle in `bundle` into `out`.
pub fn build_bundle(bundle: &Path, out: &Path) -> Result<PathBuf, Error> {
    build_bundle_with(bundle, out, &openplc_builder::BuildOptions::default())
}

fn build_bundle_with(bundle: &Path, out: &Path, options: &openplc_builder::BuildOptions) -> Result<PathBuf, Error> {
    let mut lines = Vec::new();
    openplc_builder::build(bundle, out, options, &mut |l| lines.push(l.to_string()))
        .map_err(|source| Error::Build { bundle: bundle.display().to_string(), log: lines.join("\n"), source })?;
    Ok(out.to_path_buf())
}

/// The demo program (scripts/demo-bundle) with a task period of `period_ms`, zipped by
/// `make-demo-bundle` as the Editor would and unzipped again.
pub fn demo_program(dir: &Path, period_ms: u32) -> Result<PathBuf, Error> {
    let zip = dir.join("demo.zip");
    let src = dir.join("demo-src");
    let root = repo_root();
    run(Command::new(root.join("scripts/make-demo-bundle")).arg(&zip).args(["--period-ms", &period_ms.to_string()]))?;
    run(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&zip).arg(&src))?;
    build_bundle(&src, &dir.join(format!("demo-{period_ms}ms.so")))
}

/// The STruC++-shaped demo (the builder's test fixture, `companion/builder/tests/fixtures/
/// strucpp-demo`), built with the STruC++ adapter as an Editor >= 4.2 upload is.
pub fn strucpp_demo_program(dir: &Path) -> Result<PathBuf, Error> {
    let fixture = repo_root().join("companion/builder/tests/fixtures/strucpp-demo");
    let src = dir.join("strucpp-src");
    copy_tree(&fixture, &src).map_err(Error::io(fixture.display().to_string()))?;
    build_bundle(&src, &dir.join("strucpp-demo.so"))
}

/// The STruC++-shaped two-task program (`companion/builder/tests/fixtures/strucpp-tasks`:
/// FAST every 1 ms at IEC priority 0, SLOW every 50 ms at priority 1, busy 30 ms per run).
pub fn strucpp_tasks_program(dir: &Path) -> Result<PathBuf, Error> {
    let fixture = repo_root().join("companion/builder/tests/fixtures/strucpp-tasks");
    let src = dir.join("strucpp-tasks-src");
    copy_tree(&fixture, &src).map_err(Error::io(fixture.display().to_string()))?;
    build_bundle(&src, &dir.join("strucpp-tasks.so"))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        // Follows links (a fixture may link a directory of another).
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The demo program extended to bind every point of the 13 MatIEC-locatable tables. Its
/// 27,648 located variables take gcc minutes, so the library is kept in `target/` and
/// rebuilt only when the generator, the demo sources, the adapters or the program ABI's
/// header change (a library of an older ABI is refused at load).
pub fn all_points_program(dir: &Path, period_ms: u32) -> Result<PathBuf, Error> {
    let root = repo_root();
    let cache = root.join(format!("target/bench-programs/all-points-{period_ms}ms.so"));
    let newest_source = [
        root.join("benches/make-all-points-bundle"),
        root.join("scripts/demo-bundle"),
        root.join("companion/builder/adapters"),
        root.join("shared-abi/include"),
    ]
    .iter()
    .flat_map(|p| walk(p))
    .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
    .max();
    let cached = cache.metadata().and_then(|m| m.modified()).ok();
    if let (Some(c), Some(s)) = (cached, newest_source)
        && c > s
    {
        return Ok(cache);
    }
    let src = dir.join("all-points-src");
    run(Command::new(root.join("benches/make-all-points-bundle"))
        .arg(&src)
        .args(["--period-ms", &period_ms.to_string()]))?;
    let cache_dir = root.join("target/bench-programs");
    std::fs::create_dir_all(&cache_dir).map_err(Error::io(cache_dir.display().to_string()))?;
    // Res0.c alone takes gcc several minutes on a busy 2-CPU machine: past the builder's
    // default limit for an upload, which is not what is measured here.
    let options = openplc_builder::BuildOptions {
        timeout: std::time::Duration::from_secs(3600),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Default::default()
    };
    build_bundle_with(&src, &cache, &options)
}

fn walk(path: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(path) {
        Ok(entries) => entries.flatten().flat_map(|e| walk(&e.path())).collect(),
        Err(_) => vec![path.to_path_buf()],
    }
}
