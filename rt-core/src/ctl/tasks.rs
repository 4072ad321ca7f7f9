//! `openplc-rt tasks` and `openplc-rt histogram --task NAME`: the per-task records of a
//! program whose IEC tasks run on threads of their own.

use super::{CtlError, CtlResult, out, reader};
use serde_json::{Value, json};
use shared_abi::stats::Summary;
use shared_abi::tasks::TaskRecord;

fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1000.0))
}

fn json_us(ns: Option<u64>) -> Value {
    ns.map_or(Value::Null, |v| json!(v as f64 / 1000.0))
}

fn summary(m: &Summary) -> Value {
    json!({"min": json_us(m.min()), "avg": json_us(m.mean_ns()), "max": json_us(m.max())})
}

fn record_json(t: &TaskRecord) -> Value {
    json!({
        "name": t.name_str(),
        "interval_us": t.interval_ns / 1000,
        "iec_priority": t.iec_priority,
        "fifo_priority": t.fifo_priority,
        "cpu": t.cpu,
        "tid": t.tid,
        "scan_count": t.stats.scan_count,
        "overruns": t.stats.overruns,
        "latency_us": summary(&t.stats.latency),
        "scan_time_us": summary(&t.stats.scan_time),
        "cycle_time_us": summary(&t.stats.cycle_time),
    })
}

pub fn tasks(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let records = r.task_records()?;
    let current = records.program_gen != 0 && records.program_gen == r.status().program_gen;
    let list = if current { records.active() } else { &[] };
    if json {
        let doc = json!({ "tasks": list.iter().map(record_json).collect::<Vec<_>>() });
        return out!("{doc}");
    }
    if list.is_empty() {
        return out!("no task threads: the program (if any) runs every task on the scan thread");
    }
    out!(
        "{:<16} {:>9} {:>4} {:>4} {:>4} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "task",
        "every µs",
        "iec",
        "fifo",
        "cpu",
        "runs",
        "overruns",
        "lat avg",
        "lat max",
        "run max"
    )?;
    for t in list {
        out!(
            "{:<16} {:>9} {:>4} {:>4} {:>4} {:>10} {:>8} {:>9} {:>9} {:>9}",
            t.name_str(),
            t.interval_ns / 1000,
            t.iec_priority,
            t.fifo_priority,
            if t.cpu < 0 { "any".to_string() } else { t.cpu.to_string() },
            t.stats.scan_count,
            t.stats.overruns,
            us(t.stats.latency.mean_ns()),
            us(t.stats.latency.max()),
            us(t.stats.scan_time.max())
        )?;
    }
    Ok(())
}

/// Task `name`'s wake-up latency histogram (cyclictest's format, or JSON).
pub fn histogram(shm: &str, name: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let records = r.task_records()?;
    let Some((index, _)) = records.find(name).filter(|_| records.program_gen == r.status().program_gen) else {
        let names: Vec<&str> = records.active().iter().map(|t| t.name_str()).collect();
        return Err(CtlError::Usage(format!("no task {name:?} runs on a thread of its own (tasks: {names:?})")));
    };
    let Some(h) = r.task_histogram(index) else {
        return Err(CtlError::Usage(format!("no histogram for task {name:?}")));
    };
    if json {
        let p = |f: f64| h.percentile_us(f).map_or(Value::Null, |v| json!(v));
        let doc = json!({
            "task": name,
            "bucket_us": 1,
            "buckets": h.buckets.to_vec(),
            "overflow": h.overflow,
            "count": h.count,
            "max_ns": h.max_ns,
            "p50_us": p(0.5),
            "p99_us": p(0.99),
            "p999_us": p(0.999),
        });
        return out!("{doc}");
    }
    let text = super::report::format_histogram(&h);
    out!("{}", text.trim_end_matches('\n'))
}
