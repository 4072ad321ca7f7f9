//! One sampler for every open monitor page: however many pages follow the PLC, one task
//! reads it a few times a second — the state, the cycle figures, the forced variables, the
//! histogram when a page shows it, and the values of the union of what the pages show,
//! through ONE lease of the port's shared watch list per tick — and publishes the result
//! as a [`Frame`]. Each page's socket picks its own variables out of the frame. Ten tabs
//! thus cost rt-core what one costs: the same watch list (≤ [`MAX_UNION`] variables, which
//! rt-core copies at the end of each scan whoever reads them) and no command at all.
//!
//! The task runs only while a page is subscribed; the last [`Subscription`] dropped ends it
//! at its next tick.

use crate::state::App;
use crate::variables::{NamesUnavailable, VarMap, decode};
use openplc_port::SampleError;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How often the pages are updated.
pub const TICK: Duration = Duration::from_millis(200);
/// The histogram goes out every this many ticks (it changes slowly and is 1000 buckets).
const HISTOGRAM_EVERY: u64 = 5;
/// Most variables the monitor puts in the shared watch list at once, all pages together
/// (the list holds 1024 and is shared with the Editor's debugger and plugins).
pub const MAX_UNION: usize = 512;
/// Longest a tick waits for values from a fresh scan.
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);

/// What the pages see at one tick.
#[derive(Default)]
pub struct Frame {
    /// Increases with every tick.
    pub seq: u64,
    /// The API's state word (`RUNNING`, `STOPPED`, …).
    pub status: &'static str,
    /// The running program's generation (0: none); a page reloads the names when it changes.
    pub program_gen: u32,
    /// `/api/status?include_stats=true`'s `timing_stats` plus the period.
    pub stats: Value,
    /// Decoded values of the union's variables, from one scan.
    pub values: HashMap<u32, Value>,
    /// rt-core's loop counter when `values` were taken (0: none yet).
    pub values_cycle: u64,
    /// Why `values` are missing or old, if they are.
    pub values_note: Option<String>,
    /// Forced variables of the running program: (index, decoded value).
    pub forced: Vec<(u32, Value)>,
    /// The latest histogram (`/api/stats/histogram?format=json`'s, buckets as sparse
    /// `[µs, count]` pairs) and the tick it was taken at.
    pub histogram: Option<(u64, Arc<Value>)>,
}

/// The pages subscribed and what each shows.
#[derive(Default)]
struct Pages {
    next_id: u64,
    wants: HashMap<u64, Want>,
    /// The sampling task is running (or about to).
    running: bool,
}

#[derive(Clone, Default)]
struct Want {
    vars: Vec<u32>,
    histogram: bool,
}

/// The monitor's shared sampler (one per companion, in [`App`]).
pub struct Hub {
    pages: Mutex<Pages>,
    frames: watch::Sender<Arc<Frame>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { pages: Mutex::default(), frames: watch::channel(Arc::new(Frame::default())).0 }
    }
}

impl Hub {
    fn pages(&self) -> MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes a page (showing nothing yet); starts the sampling task if it is not running.
    pub fn subscribe(app: &Arc<App>) -> Subscription {
        let mut pages = app.monitor.pages();
        let id = pages.next_id;
        pages.next_id += 1;
        pages.wants.insert(id, Want::default());
        if !pages.running {
            pages.running = true;
            tokio::spawn(sample_loop(app.clone()));
        }
        Subscription { app: app.clone(), id, frames: app.monitor.frames.subscribe() }
    }

    /// Pages subscribed now.
    pub fn pages_open(&self) -> usize {
        self.pages().wants.len()
    }
}

/// A page's place in the hub; dropping it unsubscribes.
pub struct Subscription {
    app: Arc<App>,
    id: u64,
    frames: watch::Receiver<Arc<Frame>>,
}

impl Subscription {
    /// Replaces what the page shows (variables already checked against the page limit).
    pub fn show(&self, vars: Vec<u32>, histogram: bool) {
        if let Some(w) = self.app.monitor.pages().wants.get_mut(&self.id) {
            *w = Want { vars, histogram };
        }
    }

    /// The frames as they come (`changed()` resolves at every tick).
    pub fn frames(&mut self) -> &mut watch::Receiver<Arc<Frame>> {
        &mut self.frames
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.app.monitor.pages().wants.remove(&self.id);
    }
}

/// What the pages want now, or `None` (and the task marked stopped) when there are none.
fn wanted(hub: &Hub) -> Option<(Vec<u32>, bool)> {
    let mut pages = hub.pages();
    if pages.wants.is_empty() {
        pages.running = false;
        return None;
    }
    let union: BTreeSet<u32> = pages.wants.values().flat_map(|w| w.vars.iter().copied()).collect();
    let histogram = pages.wants.values().any(|w| w.histogram);
    Some((union.into_iter().take(MAX_UNION).collect(), histogram))
}

async fn sample_loop(app: Arc<App>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seq = 0u64;
    let mut previous = app.monitor.frames.borrow().clone();
    loop {
        ticker.tick().await;
        let Some((union, histogram)) = wanted(&app.monitor) else { return };
        seq += 1;
        let frame = Arc::new(tick(&app, seq, &union, histogram, &previous).await);
        app.monitor.frames.send_replace(frame.clone());
        previous = frame;
    }
}

/// One tick's frame. Values that cannot be read this time are the previous tick's, with a
/// note saying why.
async fn tick(app: &Arc<App>, seq: u64, union: &[u32], want_histogram: bool, previous: &Frame) -> Frame {
    let port = app.plc.port();
    let mut stats = serde_json::Value::Object(crate::api::timing::figures(port.stats().as_ref()));
    stats["period_us"] = json!(port.period_ns().saturating_add(500) / 1000);
    let mut frame = Frame {
        seq,
        status: app.status_word(),
        program_gen: port.program_info().map_or(0, |p| p.program_gen),
        stats,
        ..Frame::default()
    };
    let histogram_due = want_histogram && (previous.histogram.is_none() || seq.is_multiple_of(HISTOGRAM_EVERY));
    frame.histogram = if histogram_due {
        port.histogram().map(|h| (seq, Arc::new(sparse_histogram(&h, port.stats().as_ref()))))
    } else {
        previous.histogram.clone()
    };
    if frame.program_gen == 0 {
        frame.values_note = Some("No program is loaded".into());
        return frame;
    }
    let names = match crate::variables::running(app).await {
        Ok((info, names)) if info.program_gen == frame.program_gen => names,
        Ok(_) => {
            frame.values_note = Some("The program is being replaced".into());
            return frame;
        }
        Err(e) => {
            frame.values_note = Some(match e {
                NamesUnavailable::NoProgram => "No program is loaded".into(),
                other => other.to_string(),
            });
            return frame;
        }
    };
    frame.forced = forced(app, frame.program_gen, &names);
    if union.is_empty() {
        return frame;
    }
    let arrival = port.arrival();
    match port.sample(union, arrival, SAMPLE_TIMEOUT).await {
        Ok(raw) => {
            frame.values = union
                .iter()
                .zip(raw)
                .filter_map(|(&i, bytes)| {
                    let var = names.by_index(i)?;
                    Some((i, bytes.map(|b| decode(&var.iec_type, &b)).unwrap_or(Value::Null)))
                })
                .collect();
            frame.values_cycle = port.cycle();
        }
        Err(e) => {
            frame.values = previous.values.clone();
            frame.values_cycle = previous.values_cycle;
            frame.values_note = Some(match e {
                SampleError::Timeout(_) => "No scan completed in time: the values shown are older".into(),
                other => other.to_string(),
            });
        }
    }
    frame
}

/// The forced variables of program `program_gen`, decoded by their IEC types.
fn forced(app: &App, program_gen: u32, names: &VarMap) -> Vec<(u32, Value)> {
    let Some(table) = app.plc.port().forces() else { return Vec::new() };
    if table.program_gen != program_gen {
        return Vec::new();
    }
    table
        .forced()
        .iter()
        .filter_map(|f| {
            let var = names.by_index(f.var)?;
            Some((f.var, decode(&var.iec_type, f.value())))
        })
        .collect()
}

/// `histogram_json` with the buckets as `[µs, count]` pairs of the non-empty ones (a
/// quiet PLC fills a few dozen of the 1000).
fn sparse_histogram(h: &shared_abi::stats::HistogramSnapshot, stats: Option<&shared_abi::stats::Stats>) -> Value {
    let mut v = crate::api::plc::histogram_json(h, stats);
    // The page plots the 1 µs buckets (to 1 ms); what lies past them is its "over 1 ms".
    let pairs: Vec<Value> =
        h.fine().iter().enumerate().filter(|(_, n)| **n > 0).map(|(us, n)| json!([us, n])).collect();
    v["buckets"] = Value::Array(pairs);
    v["bucket_count"] = json!(h.fine().len());
    v["overflow"] = json!(h.coarse().iter().sum::<u64>() + h.overflow);
    if let Some(map) = v.as_object_mut() {
        map.remove("coarse_buckets");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_union_is_sorted_deduplicated_and_bounded() {
        let hub = Hub::default();
        {
            let mut p = hub.pages();
            p.running = true;
            p.wants.insert(1, Want { vars: vec![5, 1, 9], histogram: false });
            p.wants.insert(2, Want { vars: vec![9, 2], histogram: true });
        }
        assert_eq!(wanted(&hub), Some((vec![1, 2, 5, 9], true)));
        hub.pages().wants.insert(3, Want { vars: (100..1000).collect(), histogram: false });
        assert_eq!(wanted(&hub).map(|(u, _)| u.len()), Some(MAX_UNION));
        hub.pages().wants.clear();
        assert_eq!(wanted(&hub), None);
        assert!(!hub.pages().running, "the task stops when the last page leaves");
    }

    #[test]
    fn histogram_pairs_only_for_filled_buckets() {
        let mut h = shared_abi::stats::HistogramSnapshot::empty();
        h.buckets[3] = 7;
        h.buckets[40] = 1;
        let v = sparse_histogram(&h, None);
        assert_eq!(v["buckets"], json!([[3, 7], [40, 1]]));
        assert_eq!(v["count"], 8);
        assert_eq!(v["p50_us"], 3);
    }
}
