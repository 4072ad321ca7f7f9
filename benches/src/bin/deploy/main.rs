//! `deploy`: how long an upload takes to run, over real HTTPS, step by step.
//!
//! For each program (the MatIEC demo, a MatIEC blink, a STruC++ program of 3 POUs; see
//! `bundles.rs`) a fresh runtime (release companion and rt-core, own data directory, so an
//! empty build cache) takes, timed from the first byte of the upload to the build's SUCCESS
//! (reported once the program is loaded and running):
//!
//! 1. the very first upload (empty cache, no precompiled header yet); then the precompiled
//!    header the runtime makes after it is awaited;
//! 2. per round: a new program uploaded with `?clean=1` (nothing reused: what a first upload
//!    costs), another new program uploaded normally (its declarations are new, but the
//!    precompiled header and the adapter's objects are in the cache, as on any device that has
//!    built a program before), and that program again with one POU changed.
//!
//! Each is split as the companion accounts for it (`Deploy timings:` in the build log):
//! the compile share (cache lookup, compiling, linking) and the runtime's own share (unzip,
//! detect, build folder and sandbox, the load check, loading and the swap at a cycle
//! boundary, starting), the rest being HTTP and the status poll.

mod bundles;
mod report;
mod runtime;

use anyhow::{Context, Result, bail};
use bundles::{Headers, Kind, Variant};
use clap::{Parser, ValueEnum};
use report::{Sample, Scenario};
use runtime::Runtime;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "deploy", about = "Upload to RUNNING over HTTPS, first upload and re-upload, step by step")]
struct Args {
    /// Rounds of (clean first upload, new program, one POU changed) per program.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Programs to measure (default: all three).
    #[arg(long, value_enum)]
    only: Vec<Program>,
    /// MatIEC's own headers for the blink (a folder of .h files, e.g. lib/C of a MatIEC
    /// checkout) instead of the demo's stand-in lib/.
    #[arg(long)]
    matiec_lib: Option<PathBuf>,
    /// STruC++'s own runtime headers (src/runtime/include of a STruC++ checkout) instead of
    /// the fixture's stand-in.
    #[arg(long)]
    strucpp_runtime: Option<PathBuf>,
    /// How often the build's status is polled, in ms.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Keep the working directory (data directories, logs, bundles).
    #[arg(long)]
    keep_dir: bool,
    #[arg(long)]
    companion: Option<PathBuf>,
    #[arg(long)]
    rt_binary: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Program {
    MatiecDemo,
    MatiecBlink,
    Strucpp,
}

impl Program {
    fn kind(self) -> Kind {
        match self {
            Program::MatiecDemo => Kind::MatiecDemo,
            Program::MatiecBlink => Kind::MatiecBlink,
            Program::Strucpp => Kind::Strucpp3,
        }
    }
}

fn main() {
    openplc_benches::process::install_interrupt_handler();
    if let Err(e) = run(Args::parse()) {
        eprintln!("deploy: {e:#}");
        std::process::exit(1);
    }
}

fn beside_this_exe(name: &str, given: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.exists() {
        bail!("{} is missing (cargo build --release --bins)", path.display());
    }
    Ok(path)
}

fn run(args: Args) -> Result<()> {
    let companion = beside_this_exe("openplc-runtime", &args.companion)?;
    let rt_binary = beside_this_exe("openplc-rt", &args.rt_binary)?;
    let programs: Vec<Program> = if args.only.is_empty() {
        vec![Program::MatiecDemo, Program::MatiecBlink, Program::Strucpp]
    } else {
        args.only.clone()
    };
    let headers = Headers { matiec_lib: args.matiec_lib.clone(), strucpp_runtime: args.strucpp_runtime.clone() };
    let work = tempfile::Builder::new().prefix("oplc-deploy-").tempdir().context("a working directory")?;
    println!(
        "deploy: {} CPUs, load average {}; {} rounds; status polled every {} ms",
        std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        report::load_average(),
        args.rounds,
        args.poll_ms
    );
    let mut summary = Vec::new();
    for program in programs {
        let kind = program.kind();
        let dir = work.path().join(kind.key());
        std::fs::create_dir_all(&dir)?;
        let scenarios = measure(kind, &headers, &args, &companion, &rt_binary, &dir)
            .with_context(|| format!("{} (logs in {})", kind.name(), dir.display()))?;
        report::print(kind, &headers.describe(kind), &scenarios);
        summary.extend(report::summary(kind, &scenarios));
    }
    println!("load average at the end {}", report::load_average());
    println!("{}", summary.join(" "));
    if args.keep_dir {
        let kept = work.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}

fn measure(
    kind: Kind,
    headers: &Headers,
    args: &Args,
    companion: &std::path::Path,
    rt_binary: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Vec<Scenario>> {
    let mut rt = Runtime::start(companion, rt_binary, dir, Duration::from_millis(args.poll_ms))?;
    let zip = |variant| bundles::zip(kind, variant, headers, dir);
    let mut scenarios = vec![
        Scenario::new("very first upload: empty cache, no precompiled header"),
        Scenario::new("first upload, nothing reused (?clean=1)"),
        Scenario::new("first upload of a new program, cache warm"),
        Scenario::new("re-upload, one POU changed"),
    ];
    let since = rt.next_log_id()?;
    let first = rt.deploy(&zip(Variant { program: 1, body: 0 })?, false)?;
    scenarios[0].push(Sample::from(first));
    match rt.wait_precompiled(since, Duration::from_secs(600))? {
        Some(line) => println!("  {}: {line}", kind.name()),
        None => println!("  {}: no precompiled header was made", kind.name()),
    }
    for round in 0..args.rounds {
        openplc_benches::process::check_interrupt()?;
        let clean = rt.deploy(&zip(Variant { program: 100 + round, body: 0 })?, true)?;
        scenarios[1].push(Sample::from(clean));
        let new = rt.deploy(&zip(Variant { program: 200 + round, body: 0 })?, false)?;
        scenarios[2].push(Sample::from(new));
        let changed = rt.deploy(&zip(Variant { program: 200 + round, body: 1 })?, false)?;
        scenarios[3].push(Sample::from(changed));
    }
    Ok(scenarios)
}
