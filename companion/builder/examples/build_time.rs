//! How long the builder takes to build the demo MatIEC bundle and the STruC++ fixture:
//! `cargo run --release -p openplc-builder --example build_time [-- ROUNDS]` builds each
//! bundle ROUNDS times (default 10), alternating, and prints the median and the spread of
//! each. The README's build-time figures come from this command.

use openplc_builder::{BuildOptions, build};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundles: [(&str, PathBuf); 2] = [
        ("MatIEC demo", root.join("../../scripts/demo-bundle")),
        ("STruC++ fixture", root.join("tests/fixtures/strucpp-demo")),
    ];
    let out_dir = tempfile::tempdir().expect("temporary directory");
    let opts = BuildOptions::default();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); bundles.len()];
    for round in 0..rounds {
        for (i, (name, dir)) in bundles.iter().enumerate() {
            let out = out_dir.path().join(format!("p{i}.so"));
            let started = Instant::now();
            let mut lines = Vec::new();
            if let Err(e) = build(dir, &out, &opts, &mut |l| lines.push(l.to_string())) {
                panic!("{name} does not build: {e}\n{}", lines.join("\n"));
            }
            times[i].push(started.elapsed());
            if round == 0 {
                eprintln!("{name}: first build {:.3} s", times[i][0].as_secs_f64());
            }
        }
    }
    for ((name, _), mut t) in bundles.iter().zip(times) {
        t.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{name}: {} builds, median {:.0} ms, min {:.0} ms, max {:.0} ms",
            t.len(),
            ms(t[t.len() / 2]),
            ms(t[0]),
            ms(t[t.len() - 1])
        );
    }
}
