//! HTTPS clients: N keep-alive connections, each alternating `GET` on the paths as fast as
//! the server answers (closed loop, as wrk does), with the bench user's token. A connection
//! the server closes is reopened and counted as an error.

use super::{Load, Report, Running, Target, nearest_rank};
use crate::https::Api;
use anyhow::{Context, Result};
use hyper::Method;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

pub struct HttpsLoad {
    pub connections: usize,
    pub paths: Vec<&'static str>,
}

/// What one connection saw on one path.
#[derive(Default)]
struct PathTally {
    micros: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

struct Started {
    tasks: Vec<JoinHandle<Vec<PathTally>>>,
    runtime: tokio::runtime::Handle,
    paths: Vec<&'static str>,
    connections: usize,
    seconds: f64,
}

impl Load for HttpsLoad {
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>> {
        let until = Instant::now() + run_for;
        let tasks = (0..self.connections)
            .map(|i| {
                let (api, token, paths) = (target.api.clone(), target.token.clone(), self.paths.clone());
                target.runtime.spawn(connection(api, token, paths, i, until))
            })
            .collect();
        Ok(Box::new(Started {
            tasks,
            runtime: target.runtime.clone(),
            paths: self.paths.clone(),
            connections: self.connections,
            seconds: run_for.as_secs_f64(),
        }))
    }
}

async fn connection(api: Api, token: String, paths: Vec<&'static str>, first: usize, until: Instant) -> Vec<PathTally> {
    let mut tally: Vec<PathTally> = paths.iter().map(|_| PathTally::default()).collect();
    let mut conn = None;
    let mut n = first;
    let fail = |t: &mut PathTally, e: String| {
        t.errors += 1;
        t.first_error.get_or_insert(e);
    };
    while Instant::now() < until {
        let i = n % paths.len();
        n += 1;
        if conn.is_none() {
            match api.connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    fail(&mut tally[i], e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let t0 = Instant::now();
        match c.send(Method::GET, paths[i], Some(&token), None).await {
            Ok(r) if r.status == 200 => {
                tally[i].micros.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            Ok(r) => {
                fail(&mut tally[i], format!("HTTP {}: {}", r.status, r.text().chars().take(200).collect::<String>()))
            }
            Err(e) => {
                fail(&mut tally[i], e.to_string());
                conn = None;
            }
        }
    }
    tally
}

impl Running for Started {
    fn finish(self: Box<Self>) -> Result<Vec<Report>> {
        let Started { tasks, runtime, paths, connections, seconds } = *self;
        let per_conn: Vec<Vec<PathTally>> = runtime.block_on(async {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.context("an HTTPS client task")?);
            }
            anyhow::Ok(out)
        })?;
        let mut reports = Vec::new();
        for (i, path) in paths.iter().enumerate() {
            let mut micros: Vec<u32> = per_conn.iter().flat_map(|c| c[i].micros.iter().copied()).collect();
            micros.sort_unstable();
            let errors = per_conn.iter().map(|c| c[i].errors).sum();
            let first_error = per_conn.iter().find_map(|c| c[i].first_error.clone());
            let ms = |f| nearest_rank(&micros, f).map(|us| f64::from(us) / 1000.0);
            let key = path.trim_start_matches("/api/").replace(['-', '/'], "_");
            reports.push(Report {
                key: format!("https_{key}"),
                interface: format!("HTTPS GET {path}"),
                clients: format!("{connections}*"),
                count: micros.len() as u64,
                seconds,
                errors,
                p50_ms: ms(0.5),
                p99_ms: ms(0.99),
                note: first_error.map_or_else(String::new, |e| format!("first error: {e}")),
            });
        }
        Ok(reports)
    }
}
