//! `timing_stats` of `GET /api/status?include_stats=true`: rt-core's statistics in whole µs
//! (`null` without a sample), in both shapes the Editors read:
//!
//! - flat (`scan_count`, `scan_time_min`, …, `overruns`): what Editor ≤ 4.1.4 shows;
//! - `tasks[]` (upstream's newest): one entry per IEC task with `name`, the same figures, and
//!   ours `period_us`, `priority`, `stats_scope`. The newest Editor uses `tasks` when present.
//!
//! A program whose tasks run on threads of their own (STruC++ with two or more tasks) has one
//! record per task from rt-core: each entry carries its task's own figures (`stats_scope:
//! "task"`, plus ours `fifo_priority`, `cpu`). Otherwise rt-core runs every due task in one
//! scan and keeps one record for it: a program with one task gets that record as its task's
//! figures (`stats_scope: "task"`); with several tasks (a MatIEC program, whose tasks all run
//! inside one `config_run__` per tick), each entry carries the figures of the whole scan
//! (`stats_scope: "scan"`).

use crate::program::tasks::TaskDecl;
use serde_json::{Map, Value, json};
use shared_abi::stats::{Stats, Summary};
use shared_abi::tasks::TaskRecords;

fn us(v: Option<u64>) -> Value {
    v.map(|ns| json!(ns.saturating_add(500) / 1000)).unwrap_or(Value::Null)
}

fn summary(prefix: &str, s: Option<&Summary>, out: &mut Map<String, Value>) {
    out.insert(format!("{prefix}_min"), us(s.and_then(Summary::min)));
    out.insert(format!("{prefix}_max"), us(s.and_then(Summary::max)));
    out.insert(format!("{prefix}_avg"), us(s.and_then(Summary::mean_ns)));
}

/// The flat figures: `scan_count`, `scan_time_*`, `cycle_time_*`, `cycle_latency_*`, `overruns`.
pub fn figures(stats: Option<&Stats>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("scan_count".into(), json!(stats.map(|s| s.scan_count).unwrap_or(0)));
    summary("scan_time", stats.map(|s| &s.scan_time), &mut m);
    summary("cycle_time", stats.map(|s| &s.cycle_time), &mut m);
    summary("cycle_latency", stats.map(|s| &s.latency), &mut m);
    m.insert("overruns".into(), json!(stats.map(|s| s.overruns).unwrap_or(0)));
    m
}

/// The whole `timing_stats` object (`plugin_stats` is added by the caller). Without declared
/// tasks the program is one task named `plc` (the name the newest Editor gives a flat
/// record) at rt-core's period.
pub fn timing_stats(stats: Option<&Stats>, tasks: &[TaskDecl], scan_period_ns: u64) -> Value {
    let flat = figures(stats);
    let fallback = [TaskDecl { name: "plc".into(), interval_ns: Some(scan_period_ns).filter(|&p| p > 0), priority: 0 }];
    let tasks = if tasks.is_empty() { &fallback[..] } else { tasks };
    let scope = if tasks.len() == 1 { "task" } else { "scan" };
    let entries: Vec<Value> = tasks
        .iter()
        .map(|task| {
            let mut entry = Map::new();
            entry.insert("name".into(), json!(task.name));
            entry.extend(flat.clone());
            entry.insert("period_us".into(), us(task.interval_ns));
            entry.insert("priority".into(), json!(task.priority));
            entry.insert("stats_scope".into(), json!(scope));
            Value::Object(entry)
        })
        .collect();
    let mut out = flat;
    out.insert("tasks".into(), Value::Array(entries));
    Value::Object(out)
}

/// `timing_stats` from rt-core's per-task records: one entry per task thread, with that
/// task's own figures; the flat fields stay the dispatcher's (the base tick's) for Editor
/// ≤ 4.1.4.
pub fn timing_stats_per_task(stats: Option<&Stats>, records: &TaskRecords) -> Value {
    let entries: Vec<Value> = records
        .active()
        .iter()
        .map(|t| {
            let mut entry = Map::new();
            entry.insert("name".into(), json!(t.name_str()));
            entry.extend(figures(Some(&t.stats)));
            entry.insert("period_us".into(), us(Some(t.interval_ns).filter(|&p| p > 0)));
            entry.insert("priority".into(), json!(t.iec_priority));
            entry.insert("fifo_priority".into(), json!(t.fifo_priority));
            entry.insert("cpu".into(), if t.cpu < 0 { Value::Null } else { json!(t.cpu) });
            entry.insert("stats_scope".into(), json!("task"));
            Value::Object(entry)
        })
        .collect();
    let mut out = figures(stats);
    out.insert("tasks".into(), Value::Array(entries));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_figures_in_whole_microseconds_and_null_without_samples() {
        let empty = figures(None);
        assert_eq!(empty["scan_count"], 0);
        assert!(empty["scan_time_min"].is_null());
        assert_eq!(empty.len(), 11);
        let mut s = Stats { scan_count: 10, overruns: 2, ..Default::default() };
        s.cycle_time.record(1_000_400);
        s.cycle_time.record(999_600);
        s.latency.record(12_345);
        let v = figures(Some(&s));
        assert_eq!(v["cycle_time_min"], 1000);
        assert_eq!(v["cycle_time_max"], 1000);
        assert_eq!(v["cycle_time_avg"], 1000);
        assert_eq!(v["cycle_latency_max"], 12);
        assert!(v["scan_time_avg"].is_null());
        assert_eq!(v["overruns"], 2);
    }

    #[test]
    fn tasks_beside_the_flat_fields() {
        let s = Stats { scan_count: 5, ..Default::default() };
        let one = timing_stats(Some(&s), &[], 10_000_000);
        assert_eq!(one["scan_count"], 5, "flat fields stay for Editor <= 4.1.4");
        let tasks = one["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!((tasks[0]["name"].as_str(), tasks[0]["period_us"].as_u64()), (Some("plc"), Some(10_000)));
        assert_eq!((tasks[0]["scan_count"].as_u64(), tasks[0]["stats_scope"].as_str()), (Some(5), Some("task")));

        let declared = [
            TaskDecl { name: "FAST".into(), interval_ns: Some(10_000_000), priority: 0 },
            TaskDecl { name: "SLOW".into(), interval_ns: Some(50_000_000), priority: 2 },
        ];
        let two = timing_stats(Some(&s), &declared, 10_000_000);
        let tasks = two["tasks"].as_array().unwrap();
        let names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["FAST", "SLOW"]);
        assert_eq!((tasks[1]["period_us"].as_u64(), tasks[1]["priority"].as_i64()), (Some(50_000), Some(2)));
        assert!(tasks.iter().all(|t| t["stats_scope"] == "scan"));
        for key in ["scan_count", "scan_time_min", "cycle_time_avg", "cycle_latency_max", "overruns"] {
            assert!(tasks[0].get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn per_task_records_give_each_task_its_own_figures() {
        use bytemuck::Zeroable;
        let mut r = TaskRecords::zeroed();
        r.program_gen = 3;
        r.count = 2;
        for (i, (name, every, runs, overruns)) in
            [("FAST", 1_000_000, 900, 0), ("SLOW", 50_000_000, 18, 1)].into_iter().enumerate()
        {
            let t = &mut r.tasks[i];
            t.name[..name.len()].copy_from_slice(name.as_bytes());
            t.interval_ns = every;
            t.iec_priority = i as i32;
            t.fifo_priority = 48 - i as i32;
            t.cpu = 1;
            t.stats.scan_count = runs;
            t.stats.overruns = overruns;
            t.stats.scan_time.record(30_000_000 * i as u64 + 2_000);
        }
        let base = Stats { scan_count: 950, ..Default::default() };
        let v = timing_stats_per_task(Some(&base), &r);
        assert_eq!(v["scan_count"], 950, "flat fields: the base tick");
        let tasks = v["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!((tasks[0]["name"].as_str(), tasks[0]["scan_count"].as_u64()), (Some("FAST"), Some(900)));
        assert_eq!((tasks[1]["overruns"].as_u64(), tasks[1]["period_us"].as_u64()), (Some(1), Some(50_000)));
        assert_eq!((tasks[1]["scan_time_max"].as_u64(), tasks[1]["fifo_priority"].as_i64()), (Some(30_002), Some(47)));
        assert!(tasks.iter().all(|t| t["stats_scope"] == "task" && t["cpu"] == 1));
    }
}
