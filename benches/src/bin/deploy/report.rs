//! What the deploy bench prints: per program and scenario the time to RUNNING (median,
//! fastest, slowest), the companion's own steps, the compile share and the runtime's share,
//! and whether the targets are met.

use crate::bundles::Kind;
use crate::runtime::Deployed;
use std::time::Duration;

/// One upload.
pub struct Sample {
    to_running_ms: f64,
    steps: Vec<(String, f64)>,
    cache_line: String,
}

impl From<Deployed> for Sample {
    fn from(d: Deployed) -> Sample {
        Sample { to_running_ms: ms(d.to_running), steps: d.timings, cache_line: d.cache_line }
    }
}

pub struct Scenario {
    name: &'static str,
    samples: Vec<Sample>,
}

impl Scenario {
    pub fn new(name: &'static str) -> Scenario {
        Scenario { name, samples: Vec::new() }
    }

    pub fn push(&mut self, s: Sample) {
        self.samples.push(s);
    }

    fn median_to_running(&self) -> Option<f64> {
        median(self.samples.iter().map(|s| s.to_running_ms).collect())
    }

    fn median_step(&self, step: &str) -> f64 {
        median(self.samples.iter().map(|s| step_ms(s, step)).collect()).unwrap_or(0.0)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn step_ms(s: &Sample, step: &str) -> f64 {
    s.steps.iter().find(|(n, _)| n == step).map_or(0.0, |(_, v)| *v)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The compiler's work.
const COMPILE_STEPS: [&str; 3] = ["cache lookup", "compile", "link"];
/// The runtime's own work around it.
const RUNTIME_STEPS: [&str; 6] = ["extract", "detect", "prepare", "load check", "place", "load and start"];
/// Every step, in order.
const STEPS: [&str; 9] =
    ["extract", "detect", "prepare", "cache lookup", "compile", "link", "load check", "place", "load and start"];

/// The targets for this program: (first upload, re-upload), ms.
fn targets(kind: Kind) -> (f64, f64) {
    match kind {
        Kind::MatiecDemo | Kind::MatiecBlink => (500.0, 250.0),
        Kind::Strucpp3 => (1500.0, 500.0),
    }
}

pub fn print(kind: Kind, headers: &str, scenarios: &[Scenario]) {
    println!("\n{} ({headers})", kind.name());
    for s in scenarios {
        let Some(med) = s.median_to_running() else { continue };
        let all: Vec<f64> = s.samples.iter().map(|x| x.to_running_ms).collect();
        let (lo, hi) = (all.iter().copied().fold(f64::MAX, f64::min), all.iter().copied().fold(0.0, f64::max));
        let compile: f64 = COMPILE_STEPS.iter().map(|st| s.median_step(st)).sum();
        let own: f64 = RUNTIME_STEPS.iter().map(|st| s.median_step(st)).sum();
        let total = s.median_step("total");
        println!(
            "  {:<56} n={:<2} median {:>6.0} ms  [{:.0} .. {:.0}]  compile {:.0} + runtime {:.0} + HTTP/poll {:.0} ms",
            s.name,
            s.samples.len(),
            med,
            lo,
            hi,
            compile,
            own,
            (med - total).max(0.0)
        );
        let steps: Vec<String> = STEPS.iter().map(|st| format!("{st} {:.1}", s.median_step(st))).collect();
        println!("  {:<56}   steps (median ms): {}", "", steps.join(", "));
        if let Some(line) = s.samples.last().map(|x| x.cache_line.as_str()).filter(|l| !l.is_empty()) {
            println!("  {:<56}   {line}", "");
        }
    }
    let (first_target, again_target) = targets(kind);
    let verdict = |name: &str, s: Option<&Scenario>, target: f64| {
        let Some(med) = s.and_then(Scenario::median_to_running) else { return String::new() };
        format!("{name} median {med:.0} ms vs target {target:.0} ms: {}", if med <= target { "met" } else { "NOT met" })
    };
    println!(
        "  targets: {}; {}; {}",
        verdict("first upload (nothing reused)", scenarios.get(1), first_target),
        verdict("first upload (cache warm)", scenarios.get(2), first_target),
        verdict("re-upload", scenarios.get(3), again_target)
    );
}

/// `matiec_demo_first_clean_ms=… …` for the machine-readable last line.
pub fn summary(kind: Kind, scenarios: &[Scenario]) -> Vec<String> {
    let names = ["very_first_ms", "first_clean_ms", "first_warm_ms", "reupload_ms"];
    scenarios
        .iter()
        .zip(names)
        .filter_map(|(s, n)| s.median_to_running().map(|m| format!("{}_{n}={m:.0}", kind.key())))
        .collect()
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}
