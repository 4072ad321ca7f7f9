//! PLC monitoring: status (with the run/stop switch and timing statistics), ping, the
//! latency histogram and the health check.

use super::error::ApiError;
use super::extract::Viewer;
use super::timing;
use crate::rt_link::Phase;
use crate::state::App;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shared_abi::stats::{
    HIST_BUCKETS, HIST_COARSE_FROM_US, HIST_COARSE_US, HIST_FINE_US, HIST_RANGE_US, HistogramSnapshot, Stats, Summary,
};
use std::collections::HashMap;
use std::sync::Arc;

fn truthy(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// `GET /api/status[?include_stats=true]` → `{"status": "STATUS:RUNNING", "switchPosition":
/// "run", "timing_stats": {…}}` (see [`super::timing`]).
pub async fn status(State(app): State<Arc<App>>, _v: Viewer, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let mut body = json!({
        "status": format!("STATUS:{}", app.status_word()),
        "switchPosition": app.switch.position().as_str(),
    });
    // Why rt-core is not attached, when the supervisor knows: a running rt-core it refused
    // to adopt, or a lease another client holds (the Editor ignores keys it does not know).
    if let Some(why) = app.plc.unavailable() {
        body["rt_core_unavailable"] = json!(why);
    }
    if truthy(&q, "include_stats") {
        let port = app.plc.port();
        body["timing_stats"] = match port.task_records() {
            Some(records) => timing::timing_stats_per_task(port.stats().as_ref(), &records),
            None => timing::timing_stats(port.stats().as_ref(), &app.programs.current_tasks(), port.period_ns()),
        };
        // Upstream splices native plugins' get_stats in; the Editor ignores keys it does not know.
        let plugin_stats = app.plugins.stats().await;
        if !plugin_stats.is_empty() {
            body["timing_stats"]["plugin_stats"] = Value::Object(plugin_stats);
        }
    }
    Json(body)
}

fn us(v: Option<u64>) -> Value {
    v.map(|ns| json!(ns.saturating_add(500) / 1000)).unwrap_or(Value::Null)
}

/// `GET /api/ping` → `{"status": "PING:OK"}` while rt-core is attached.
pub async fn ping(State(app): State<Arc<App>>, _v: Viewer) -> Json<Value> {
    Json(json!({ "status": app.plc.port().is_attached().then_some("PING:OK") }))
}

/// `GET /api/stats/histogram[?format=json][&task=NAME]`: the scan thread's wake-up latency
/// in 1 µs buckets, as `cyclictest -h` prints it (text, the default) or as JSON; with `task`,
/// that IEC task's wake-up latency (a program whose tasks run on threads of their own; 404
/// for a task that has no thread).
pub async fn histogram(
    State(app): State<Arc<App>>,
    _v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let port = app.plc.port();
    let not_running = || ApiError::Raw(StatusCode::SERVICE_UNAVAILABLE, json!({ "msg": "openplc-rt is not running" }));
    let (hist, stats) = match q.get("task") {
        None => (port.histogram().ok_or_else(not_running)?, port.stats()),
        Some(name) => {
            let records = port.task_records();
            let found = records.as_ref().and_then(|r| r.find(name).map(|(i, t)| (i, t.stats)));
            let Some((index, stats)) = found else {
                let tasks: Vec<String> = records
                    .as_ref()
                    .map(|r| r.active().iter().map(|t| t.name_str().to_string()).collect())
                    .unwrap_or_default();
                return Err(ApiError::Raw(
                    StatusCode::NOT_FOUND,
                    json!({ "msg": format!("no task {name:?} runs on a thread of its own"), "tasks": tasks }),
                ));
            };
            (port.task_histogram(index).ok_or_else(not_running)?, Some(stats))
        }
    };
    if q.get("format").is_some_and(|f| f.eq_ignore_ascii_case("json")) {
        Ok(Json(histogram_json(&hist, stats.as_ref())).into_response())
    } else {
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], histogram_text(&hist, stats.as_ref()))
            .into_response())
    }
}

pub fn histogram_json(h: &HistogramSnapshot, stats: Option<&Stats>) -> Value {
    let lat = stats.map(|s| &s.latency);
    json!({
        "bucket_us": HIST_FINE_US,
        "buckets": h.fine(),
        "coarse_from_us": HIST_COARSE_FROM_US,
        "coarse_bucket_us": HIST_COARSE_US,
        "coarse_buckets": h.coarse(),
        "range_us": HIST_RANGE_US,
        "overflow": h.overflow,
        "count": h.total(),
        "min_us": us(lat.and_then(Summary::min)),
        "avg_us": us(lat.and_then(Summary::mean_ns)),
        "max_us": if h.total() > 0 { json!(h.max_ns.saturating_add(500) / 1000) } else { Value::Null },
        "p50_us": h.percentile_us(0.5),
        "p99_us": h.percentile_us(0.99),
        "p999_us": h.percentile_us(0.999),
    })
}

/// cyclictest's histogram layout: one `%06d %06d` line per 1 µs bucket to 1 ms, then one
/// per 10 µs bucket to 10 ms at its first µs (`HistogramSnapshot::write_cyclictest`).
pub fn histogram_text(h: &HistogramSnapshot, stats: Option<&Stats>) -> String {
    let mut out = String::with_capacity(HIST_BUCKETS * 14 + 400);
    out.push_str("# openplc-rt scan thread wake-up latency, 1 us buckets to 1 ms, 10 us buckets to 10 ms\n");
    // Writing into a String cannot fail.
    let _ = h.write_cyclictest(&mut out, stats.map(|s| &s.latency));
    out
}

/// `GET /api/health`: 200 while rt-core is attached and not in safe mode, else 503. No
/// credentials needed; tells nothing beyond the states.
pub async fn health(State(app): State<Arc<App>>) -> (StatusCode, Json<Value>) {
    let link = app.plc.state();
    let rt = match link.phase {
        Phase::Restarting => "restarting",
        Phase::Up | Phase::SafeMode => "up",
        Phase::Detached => "down",
    };
    let safe_mode = link.phase == Phase::SafeMode;
    let healthy = rt == "up" && !safe_mode;
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        code,
        Json(json!({
            "status": if healthy { "ok" } else { "degraded" },
            "rt_core": rt,
            "plc": app.status_word(),
            "safe_mode": safe_mode,
            "building": app.programs.is_building(),
            "uptime_s": app.started.elapsed().as_secs(),
        })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_text_is_cyclictest_shaped() {
        let mut h = HistogramSnapshot::empty();
        h.buckets[3] = 7;
        h.buckets[5] = 1;
        h.max_ns = 5_200;
        let text = histogram_text(&h, None);
        assert!(text.contains("\n000003 000007\n"));
        assert!(text.contains("# Total: 000000008\n"));
        assert!(text.contains("# Max Latencies: 00005\n"));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), HIST_BUCKETS);
        let j = histogram_json(&h, None);
        assert_eq!(j["p50_us"], 3);
        assert_eq!(j["count"], 8);
        // A slow wake-up past 1 ms lands in a 10 µs bucket: its percentile is a number.
        h.buckets[shared_abi::stats::bucket_of_us(2_345).unwrap()] = 1;
        let j = histogram_json(&h, None);
        assert_eq!((j["range_us"].as_u64(), j["coarse_buckets"][134].as_u64()), (Some(10_000), Some(1)));
        assert_eq!(j["buckets"].as_array().map(Vec::len), Some(1000));
        assert_eq!(j["p999_us"], 2340);
        assert!(histogram_text(&h, None).contains("\n002340 000001\n"));
    }
}
