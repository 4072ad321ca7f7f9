//! How long the builder takes to build the demo MatIEC bundle and the STruC++ fixture:
//! `cargo run --release -p openplc-builder --example build_time [-- ROUNDS [unconfined]]`
//! builds each bundle ROUNDS times (default 10), alternating, and prints the median, fastest
//! and slowest wall time of each. `unconfined` builds without the sandbox. The README's
//! build-time figures come from this command (run with `nice -n -20` on a machine shared
//! with other work, so that the figures are the build's and not the queue's).

use openplc_builder::{BuildOptions, Isolation, build};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let unconfined = args.next().as_deref() == Some("unconfined");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundles: [(&str, PathBuf); 2] = [
        ("MatIEC demo", root.join("../../scripts/demo-bundle")),
        ("STruC++ fixture", root.join("tests/fixtures/strucpp-demo")),
    ];
    let out_dir = tempfile::tempdir().expect("temporary directory");
    let mut opts = BuildOptions::default();
    if unconfined {
        opts.isolation = Isolation::Unconfined;
    }
    let mut wall: Vec<Vec<Duration>> = vec![Vec::new(); bundles.len()];
    for _ in 0..rounds {
        for (i, (name, dir)) in bundles.iter().enumerate() {
            let out = out_dir.path().join(format!("p{i}.so"));
            let started = Instant::now();
            let mut lines = Vec::new();
            if let Err(e) = build(dir, &out, &opts, &mut |l| lines.push(l.to_string())) {
                panic!("{name} does not build: {e}\n{}", lines.join("\n"));
            }
            wall[i].push(started.elapsed());
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for ((name, _), mut t) in bundles.iter().zip(wall) {
        t.sort();
        println!(
            "{name}{}: {rounds} builds, median {:.0} ms, fastest {:.0} ms, slowest {:.0} ms",
            if unconfined { " (unconfined)" } else { "" },
            ms(t[t.len() / 2]),
            ms(t[0]),
            ms(t[t.len() - 1])
        );
    }
}
