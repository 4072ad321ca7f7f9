//! Replays every committed input of every fuzz target through its entry point, on stable:
//! the hand-made seeds (`fuzz/seeds/<target>/`), what `scripts/fuzz` kept
//! (`fuzz/corpus/<target>/`) and every crash input found so far
//! (`fuzz/regressions/<target>/`, each named after what it broke). A parser
//! change that brings a fixed crash back, or breaks an invariant on a known input, fails
//! here, in `cargo test`, without nightly.

use openplc_fuzz_entries::{Entry, TARGETS};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(items) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else { return Vec::new() };
    let mut files: Vec<PathBuf> = items.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs every input of `target`; a panic names the file before it is passed on.
fn replay(target: &str) {
    let entry: Entry = TARGETS.iter().find(|(name, _)| *name == target).map(|&(_, e)| e).expect("a listed target");
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no inputs");
    let all = [seeds, inputs("corpus", target), inputs("regressions", target)].concat();
    for path in &all {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| entry(&data))) {
            let shown = path.strip_prefix(fuzz_dir()).unwrap_or(path).display();
            eprintln!("{target}: fuzz/{shown} fails (`cargo +nightly fuzz run --fuzz-dir fuzz {target} fuzz/{shown}`)");
            resume_unwind(panic);
        }
    }
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $( #[test] fn $target() { replay(stringify!($target)); } )*

        /// Every target has its replay test above and its `cargo fuzz` binary.
        #[test]
        fn every_target_is_replayed_and_fuzzed() {
            let tested = [$(stringify!($target)),*];
            let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
            for (name, _) in TARGETS {
                assert!(tested.contains(name), "{name} has no replay test");
                assert!(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")).is_file(), "{name}: no fuzz_targets/{name}.rs");
                assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}: no [[bin]] in fuzz/Cargo.toml");
            }
            assert_eq!(tested.len(), TARGETS.len());
        }
    };
}

replay_tests!(
    upload_zip,
    bundle_files,
    debug_pdu,
    debug_values,
    modbus_conf,
    modbus_tcp,
    s7_request,
    opcua_decode,
    plugins_conf,
    settings_json,
    image_conf,
    rest_bodies,
    shm_messages,
    monitor_input,
);
