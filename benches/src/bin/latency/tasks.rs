//! `latency --tasks`: each IEC task's wake-up latency against cyclictest threads at the same
//! priorities. rt-core runs the two-task STruC++ fixture (FAST every 1 ms at IEC priority 0,
//! SLOW every 50 ms at priority 1, busy 30 ms per run), each task on its own SCHED_FIFO
//! thread beside the dispatcher on one CPU; a task's latency is its wake-up minus its release
//! time on the tick grid. The cyclictest slices run two cyclictest threads on that CPU at the
//! tasks' priorities and intervals (1 ms at P − 1, 50 ms at P − 2; P the dispatcher's).
//! Slices alternate ABBA as in the single-thread mode; each task gets its own comparison.

use super::Args;
use openplc_benches::Error;
use openplc_benches::compare::compare;
use openplc_benches::cyclictest::Cyclictest;
use openplc_benches::histogram::{Histogram, show};
use openplc_benches::process;
use openplc_benches::slice_rt::{SliceRt, unexpected};
use shared_abi::client::Reader;
use shared_abi::msg::Command;
use std::path::Path;
use std::time::Duration;

const TASKS: [(&str, u64); 2] = [("FAST", 1000), ("SLOW", 50_000)];

/// One rt-core slice: the tasks' histograms and the CPU they ran on.
fn rt_slice(args: &Args, rt_binary: &Path, program: &Path, dir: &Path) -> Result<([Histogram; 2], usize), Error> {
    let mut rt = SliceRt::start(rt_binary, dir, args.cpu, args.priority, program)?;
    let client = &mut rt.client;
    process::pause(Duration::from_millis(500))?;
    client.command(Command::ResetStats, Duration::from_secs(5)).map_err(unexpected("reset-stats"))?;
    process::pause(Duration::from_secs(args.seconds))?;
    let records = client.task_records().map_err(unexpected("task records"))?;
    let mut hists = Vec::new();
    let mut cpu = None;
    for (name, _) in TASKS {
        let (i, record) = records.find(name).ok_or_else(|| Error::Unexpected {
            what: "the task threads",
            detail: format!("no task {name} on a thread of its own (is the program the two-task fixture?)"),
        })?;
        if record.fifo_priority == 0 || record.cpu < 0 {
            return Err(Error::Unexpected {
                what: "the task threads",
                detail: format!("task {name} is not pinned at SCHED_FIFO (run as root)"),
            });
        }
        cpu = Some(record.cpu as usize);
        let snap = client.task_histogram(i).ok_or(Error::Unexpected { what: "histogram", detail: name.into() })?;
        hists.push(Histogram::of_snapshot(&snap));
    }
    let _ = client.command(Command::Shutdown, Duration::from_secs(2));
    let [fast, slow]: [Histogram; 2] =
        hists.try_into().map_err(|_| Error::Unexpected { what: "histograms", detail: "two expected".into() })?;
    Ok(([fast, slow], cpu.unwrap_or(0)))
}

/// One cyclictest slice: two cyclictest processes at the tasks' priorities and intervals.
fn ct_slice(args: &Args, cpu: usize, dir: &Path) -> Result<[Histogram; 2], Error> {
    let mut runs = Vec::new();
    for (i, (name, interval_us)) in TASKS.into_iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).map_err(Error::io("slice dir"))?;
        let tool = Cyclictest {
            binary: args.cyclictest.clone(),
            cpu: Some(cpu),
            priority: rt_core::tasks::fifo_priority(args.priority, i as i32),
            interval_us,
        };
        runs.push(tool.start(args.seconds, None, &sub)?);
    }
    let mut out = Vec::new();
    for run in runs {
        out.push(run.finish()?);
    }
    out.try_into().map_err(|_| Error::Unexpected { what: "histograms", detail: "two expected".into() })
}

pub fn run(args: &Args, work: &Path, rt_binary: &Path) -> Result<(), Error> {
    eprintln!("latency: building the two-task STruC++ program");
    let program = openplc_benches::strucpp_tasks_program(work)?;
    println!(
        "# per task: {} slices x {} s per tool, ABBA order, dispatcher SCHED_FIFO {}, FAST 1 ms at {}, SLOW 50 ms at {} (busy 30 ms)",
        args.slices,
        args.seconds,
        args.priority,
        rt_core::tasks::fifo_priority(args.priority, 0),
        rt_core::tasks::fifo_priority(args.priority, 1)
    );
    let (mut rt, mut ct): (Vec<[Histogram; 2]>, Vec<[Histogram; 2]>) = (Vec::new(), Vec::new());
    let mut cpu = args.cpu;
    for i in 0..args.slices * 2 {
        let dir = tempfile::tempdir_in(work).map_err(Error::io("slice dir"))?;
        if matches!(i % 4, 0 | 3) {
            let (h, on) = rt_slice(args, rt_binary, &program, dir.path())?;
            cpu.get_or_insert(on);
            println!(
                "slice {:2} rt-core     FAST p99 {:>5}  SLOW p99 {:>5} us",
                i + 1,
                show(h[0].quantile(0.99)),
                show(h[1].quantile(0.99))
            );
            rt.push(h);
        } else {
            let h = ct_slice(args, cpu.unwrap_or(0), dir.path())?;
            println!(
                "slice {:2} cyclictest  FAST p99 {:>5}  SLOW p99 {:>5} us",
                i + 1,
                show(h[0].quantile(0.99)),
                show(h[1].quantile(0.99))
            );
            ct.push(h);
        }
    }
    println!();
    println!("{:<6} {:<11} {:>9} {:>6} {:>6} {:>7} {:>8}", "task", "tool", "samples", "p50", "p99", "p99.9", "max");
    for (t, (name, _)) in TASKS.iter().enumerate() {
        let rt_t: Vec<Histogram> = rt.iter().map(|h| h[t].clone()).collect();
        let ct_t: Vec<Histogram> = ct.iter().map(|h| h[t].clone()).collect();
        let (Some(rt_all), Some(ct_all)) = (Histogram::pooled(&rt_t), Histogram::pooled(&ct_t)) else { continue };
        for (tool, all) in [("cyclictest", &ct_all), ("rt-core", &rt_all)] {
            println!(
                "{name:<6} {tool:<11} {:>9} {:>6} {:>6} {:>7} {:>8}",
                all.samples(),
                show(all.quantile(0.5)),
                show(all.quantile(0.99)),
                show(all.quantile(0.999)),
                show(all.max())
            );
        }
        let pairs: Vec<(&Histogram, &Histogram)> = rt_t.iter().zip(&ct_t).collect();
        let c = compare(&pairs);
        println!(
            "{name:<6} rt-core vs cyclictest: p50 {} us, p99 ratio {}, p99.9 ratio {}",
            c.p50_delta_us.show(0),
            c.p99_ratio.show(2),
            c.p999_ratio.show(2)
        );
        println!("{}", c.tokens(&format!("{}_", name.to_ascii_lowercase())));
    }
    Ok(())
}
