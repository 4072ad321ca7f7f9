//! How long the builder takes to build the demo MatIEC bundle and the STruC++ fixture:
//! `cargo run --release -p openplc-builder --example build_time [-- ROUNDS [unconfined] [BUNDLE...]]`
//! builds each bundle (by default the two above) ROUNDS times (default 10), alternating,
//! three ways: without a cache,
//! with an empty cache (its precompiled header made afterwards), and again with that cache
//! (everything reused); prints the median, fastest and slowest wall time of each and the
//! median of each step. `unconfined` builds without the sandbox. The whole upload to RUNNING
//! is `benches/deploy`.

use openplc_builder::{BuildOptions, CacheSettings, Isolation, build, wait_for_background_work};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let rest: Vec<String> = args.collect();
    let unconfined = rest.first().map(String::as_str) == Some("unconfined");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let given: Vec<(String, PathBuf)> =
        rest.iter().skip(usize::from(unconfined)).map(|dir| (dir.clone(), PathBuf::from(dir))).collect();
    let bundles: Vec<(String, PathBuf)> = if given.is_empty() {
        vec![
            ("MatIEC demo".into(), root.join("../../scripts/demo-bundle")),
            ("STruC++ fixture".into(), root.join("tests/fixtures/strucpp-demo")),
        ]
    } else {
        given
    };
    let work = tempfile::tempdir().expect("temporary directory");
    let mut base = BuildOptions::default();
    if unconfined {
        base.isolation = Isolation::Unconfined;
    }
    let modes = ["no cache", "empty cache", "warm cache"];
    let mut wall: BTreeMap<(usize, usize), Vec<Duration>> = BTreeMap::new();
    let mut steps: BTreeMap<(usize, usize, &'static str), Vec<Duration>> = BTreeMap::new();
    for round in 0..rounds {
        for (i, (name, dir)) in bundles.iter().enumerate() {
            let cache = work.path().join(format!("cache-{round}-{i}"));
            for (m, _) in modes.iter().enumerate() {
                let mut opts = base.clone();
                if m > 0 {
                    opts.cache = Some(CacheSettings { dir: cache.clone(), max_bytes: 1 << 30 });
                }
                let out = work.path().join(format!("p{i}.so"));
                let started = Instant::now();
                let mut lines = Vec::new();
                let report = match build(dir, &out, &opts, &mut |l| lines.push(l.to_string())) {
                    Ok(report) => report,
                    Err(e) => panic!("{name} does not build: {e}\n{}", lines.join("\n")),
                };
                wall.entry((i, m)).or_default().push(started.elapsed());
                for (step, spent) in report.steps {
                    steps.entry((i, m, step)).or_default().push(spent);
                }
                // The precompiled header made after the empty-cache build is there for the next.
                wait_for_background_work(Duration::from_secs(600));
            }
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for ((i, m), mut t) in wall {
        t.sort();
        let detail: Vec<String> = steps
            .iter_mut()
            .filter(|((si, sm, _), _)| *si == i && *sm == m)
            .map(|((_, _, step), d)| {
                d.sort();
                format!("{step} {:.0}", ms(d[d.len() / 2]))
            })
            .collect();
        println!(
            "{}{}, {}: {rounds} builds, median {:.0} ms, fastest {:.0} ms, slowest {:.0} ms ({} ms)",
            bundles[i].0,
            if unconfined { " (unconfined)" } else { "" },
            modes[m],
            ms(t[t.len() / 2]),
            ms(t[0]),
            ms(t[t.len() - 1]),
            detail.join(", ")
        );
    }
}
