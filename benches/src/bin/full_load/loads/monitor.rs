//! Browser-monitor pages without a browser: N WebSockets on `/api/monitor/live`, each
//! signed in with the bench user's token and showing what a page on the Variables view of
//! a 256-variable program shows (every variable up to 256, the latency histogram, the
//! runtime log), for the whole run: N pages' worth of the page's live traffic. Counts the
//! ticks each page receives and the time between them (the server sends one per 200 ms).

use super::{Load, Report, Running, Target, nearest_rank};
use crate::https::Api;
use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

pub struct MonitorLoad {
    pub clients: u32,
}

#[derive(Default)]
struct Tally {
    ticks: u64,
    histograms: u64,
    log_batches: u64,
    /// Milliseconds between consecutive ticks.
    gaps_ms: Vec<f64>,
    values: usize,
    errors: u64,
    first_error: Option<String>,
}

struct Started {
    tasks: Vec<JoinHandle<Tally>>,
    runtime: tokio::runtime::Handle,
    clients: u32,
    vars: u32,
    seconds: f64,
}

impl Load for MonitorLoad {
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>> {
        let until = Instant::now() + run_for;
        let vars = target.var_count.min(256);
        // Opened one after another, as tabs are: the server closes a source's handshakes
        // beyond 32 at once (the HTTPS load opens its 50 connections at this moment too).
        let tasks = (0..self.clients)
            .map(|i| {
                let start = Duration::from_millis(1000 + 100 * u64::from(i));
                target.runtime.spawn(page(target.api.clone(), target.token.clone(), vars, start, until))
            })
            .collect();
        Ok(Box::new(Started {
            tasks,
            runtime: target.runtime.clone(),
            clients: self.clients,
            vars,
            seconds: run_for.as_secs_f64(),
        }))
    }
}

/// One page, reconnecting (and counting an error) whenever its socket ends early.
async fn page(api: Api, token: String, vars: u32, start: Duration, until: Instant) -> Tally {
    tokio::time::sleep(start).await;
    let mut t = Tally::default();
    while Instant::now() < until {
        if let Err(e) = session(&api, &token, vars, until, &mut t).await {
            t.errors += 1;
            t.first_error.get_or_insert(e.to_string());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    t
}

async fn session(api: &Api, token: &str, vars: u32, until: Instant, t: &mut Tally) -> Result<()> {
    let tls = api.tls().await?;
    let url = format!("wss://127.0.0.1:{}/api/monitor/live", api.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.context("WebSocket upgrade")?;
    ws.send(Message::text(serde_json::json!({ "t": "auth", "token": token }).to_string())).await?;
    let watch =
        serde_json::json!({ "t": "watch", "vars": (0..vars).collect::<Vec<u32>>(), "histogram": true, "logs_from": 0 });
    let mut last_tick: Option<Instant> = None;
    while Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left.min(Duration::from_secs(3)), ws.next()).await {
            Err(_) if left <= Duration::from_secs(3) => break,
            Err(_) => anyhow::bail!("no message for 3 s"),
            Ok(None) => anyhow::bail!("the server closed the socket"),
            Ok(Some(m)) => m?,
        };
        let Message::Text(text) = msg else { continue };
        let v: serde_json::Value = serde_json::from_str(&text).context("a JSON message")?;
        match v["t"].as_str() {
            Some("hello") => ws.send(Message::text(watch.to_string())).await?,
            Some("tick") => {
                let now = Instant::now();
                if let Some(prev) = last_tick {
                    t.gaps_ms.push(now.duration_since(prev).as_secs_f64() * 1e3);
                }
                last_tick = Some(now);
                t.ticks += 1;
                t.values = t.values.max(v["values"].as_array().map_or(0, Vec::len));
            }
            Some("histogram") => t.histograms += 1,
            Some("logs") => t.log_batches += 1,
            Some("end") => anyhow::bail!("session ended: {}", v["reason"]),
            Some("error") => anyhow::bail!("refused: {}", v["msg"]),
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

impl Running for Started {
    fn finish(self: Box<Self>) -> Result<Vec<Report>> {
        let mut all = Tally::default();
        for task in self.tasks {
            let t = self.runtime.block_on(task).context("a monitor page task")?;
            all.ticks += t.ticks;
            all.histograms += t.histograms;
            all.log_batches += t.log_batches;
            all.gaps_ms.extend(t.gaps_ms);
            all.values = all.values.max(t.values);
            all.errors += t.errors;
            if all.first_error.is_none() {
                all.first_error = t.first_error;
            }
        }
        all.gaps_ms.sort_by(f64::total_cmp);
        let mut note = format!(
            "{} vars each ({} per tick seen), {} histogram and {} log messages; p50/p99 are the gaps between ticks",
            self.vars, all.values, all.histograms, all.log_batches
        );
        if let Some(e) = &all.first_error {
            note += &format!("; first error: {e}");
        }
        Ok(vec![Report {
            key: "monitor".into(),
            interface: "browser monitor pages (wss /api/monitor/live)".into(),
            clients: self.clients.to_string(),
            count: all.ticks,
            seconds: self.seconds,
            errors: all.errors,
            p50_ms: nearest_rank(&all.gaps_ms, 0.5),
            p99_ms: nearest_rank(&all.gaps_ms, 0.99),
            note,
        }])
    }
}
