//! Status, statistics and the latency histogram, as text or JSON (serde_json).

use super::{CtlResult, out, reader};
use serde_json::{Value, json};
use shared_abi::client::Status;
use shared_abi::layout::{RT_DMA_LATENCY, RT_FIFO, RT_ISOLATED_CPU, RT_MLOCKED, RT_PINNED};
use shared_abi::stats::{HIST_COARSE_FROM_US, HIST_COARSE_US, HIST_FINE_US, HIST_RANGE_US, HistogramSnapshot, Summary};

fn flag_names(flags: u32) -> String {
    let names = [
        (RT_MLOCKED, "mlocked"),
        (RT_FIFO, "fifo"),
        (RT_PINNED, "pinned"),
        (RT_ISOLATED_CPU, "isolated-cpu"),
        (RT_DMA_LATENCY, "dma-latency-0"),
    ];
    let set: Vec<&str> = names.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect();
    if set.is_empty() { "none".into() } else { set.join(",") }
}

pub fn status(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let s: Status = r.status();
    let info = r.program_info()?;
    let load = r.load_result()?;
    if json {
        let doc = json!({
            "state": s.state.as_str(),
            "rt_alive": s.rt_alive,
            "rt_pid": s.rt_pid,
            "heartbeat": s.heartbeat,
            "period_ns": s.period_ns,
            "program_gen": s.program_gen,
            "program_path": info.path_str(),
            "md5": info.md5_str(),
            "var_count": info.var_count,
            "scan_cpu": s.scan_cpu,
            "scan_priority": s.scan_priority,
            "rt_flags": flag_names(s.rt_flags),
            "last_load": load.message_str(),
        });
        return out!("{doc}");
    }
    out!("state:       {}{}", s.state.as_str(), if s.rt_alive { "" } else { " (openplc-rt is not running)" })?;
    out!("rt-core:     pid {}, cycle {}, period {} µs", s.rt_pid, s.heartbeat, s.period_ns / 1000)?;
    out!(
        "scan thread: cpu {}, SCHED_FIFO {}, {}",
        if s.scan_cpu < 0 { "any".into() } else { s.scan_cpu.to_string() },
        s.scan_priority,
        flag_names(s.rt_flags)
    )?;
    if info.program_gen != 0 {
        out!("program:     {} (generation {})", info.path_str(), info.program_gen)?;
        out!("             md5 {}, {} debug variables", info.md5_str().unwrap_or("none"), info.var_count)?;
    } else {
        out!("program:     none")?;
    }
    if !load.message_str().is_empty() {
        out!("last load:   {}", load.message_str())?;
    }
    Ok(())
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1000.0))
}

fn json_us(ns: Option<u64>) -> Value {
    ns.map_or(Value::Null, |v| json!(v as f64 / 1000.0))
}

pub fn stats(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let s = r.stats()?;
    let rows: [(&str, &Summary); 3] =
        [("latency", &s.latency), ("scan_time", &s.scan_time), ("cycle_time", &s.cycle_time)];
    if json {
        let mut doc = json!({
            "scan_count": s.scan_count,
            "overruns": s.overruns,
            "skipped_periods": s.skipped_periods,
            "period_us": s.period_ns / 1000,
        });
        for (name, m) in rows {
            doc[format!("{name}_us")] =
                json!({"min": json_us(m.min()), "avg": json_us(m.mean_ns()), "max": json_us(m.max())});
        }
        return out!("{doc}");
    }
    out!(
        "scans {}  overruns {}  skipped periods {}  period {} µs",
        s.scan_count,
        s.overruns,
        s.skipped_periods,
        s.period_ns / 1000
    )?;
    out!("{:<11} {:>9} {:>9} {:>9}  (µs)", "", "min", "avg", "max")?;
    for (name, m) in rows {
        out!("{name:<11} {:>9} {:>9} {:>9}", us(m.min()), us(m.mean_ns()), us(m.max()))?;
    }
    Ok(())
}

/// cyclictest's `-h` output format, so existing plotting scripts read it (the coarse part
/// above 1 ms as `HistogramSnapshot::write_cyclictest` renders it).
pub fn format_histogram(h: &HistogramSnapshot) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = h.write_cyclictest(&mut out, None);
    out
}

pub fn histogram(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let h = r.histogram();
    if json {
        let p = |f: f64| h.percentile_us(f).map_or(Value::Null, |v| json!(v));
        let doc = json!({
            "bucket_us": HIST_FINE_US,
            "buckets": h.fine(),
            "coarse_from_us": HIST_COARSE_FROM_US,
            "coarse_bucket_us": HIST_COARSE_US,
            "coarse_buckets": h.coarse(),
            "range_us": HIST_RANGE_US,
            "overflow": h.overflow,
            "count": h.count,
            "max_ns": h.max_ns,
            "p50_us": p(0.5),
            "p99_us": p(0.99),
            "p999_us": p(0.999),
        });
        return out!("{doc}");
    }
    let text = format_histogram(&h);
    out!("{}", text.trim_end_matches('\n'))
}
