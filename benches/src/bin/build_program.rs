//! `build-program`: builds a benchmark program library. `--demo` (default) builds the demo
//! bundle, `--all-points` the demo extended to bind every image point; `--period-ms` sets
//! its scan period.

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
struct Args {
    /// Where to write the library.
    out: PathBuf,
    /// Bind every point of every MatIEC-locatable area.
    #[arg(long)]
    all_points: bool,
    #[arg(long, default_value_t = 1)]
    period_ms: u32,
}

fn main() {
    let args = Args::parse();
    let work = match tempfile::tempdir() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("build-program: {e}");
            std::process::exit(1);
        }
    };
    let built = if args.all_points {
        openplc_benches::all_points_program(work.path(), args.period_ms)
    } else {
        openplc_benches::demo_program(work.path(), args.period_ms)
    };
    let copied = built.and_then(|so| {
        std::fs::copy(&so, &args.out).map_err(openplc_benches::Error::io(args.out.display().to_string()))
    });
    match copied {
        Ok(_) => println!("{}", args.out.display()),
        Err(e) => {
            eprintln!("build-program: {e}");
            std::process::exit(1);
        }
    }
}
