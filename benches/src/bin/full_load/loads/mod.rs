//! Load generators, one module per interface. `start` launches an interface's clients
//! against the running stack for a fixed time; `finish` waits for them and reports
//! throughput and reply latency. Adding a protocol (S7; browser monitors are `monitor`,
//! OPC-UA `opcua`) is one module implementing [`Load`], one option and one line in
//! `main.rs`'s `loads()`.

pub mod debugger;
pub mod https;
pub mod modbus;
pub mod monitor;
pub mod opcua;
pub mod s7;

use crate::https::Api;
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;

/// What a generator needs to reach the stack.
pub struct Target {
    pub api: Api,
    pub token: String,
    pub modbus_port: u16,
    pub s7_port: u16,
    /// The bundle's OPC-UA server, when the OPC-UA load is on.
    pub opcua_port: Option<u16>,
    pub var_count: u32,
    pub runtime: tokio::runtime::Handle,
    /// For the generators' own logs.
    pub dir: PathBuf,
}

pub trait Load {
    /// Starts the clients; they stop by themselves after `run_for`.
    fn start(&self, target: &Target, run_for: Duration) -> Result<Box<dyn Running>>;
}

pub trait Running {
    /// Waits for the clients to stop and reports (one line per interface or path).
    fn finish(self: Box<Self>) -> Result<Vec<Report>>;
}

/// One interface's figures over the whole load.
#[derive(Clone, Debug)]
pub struct Report {
    /// Short key for the machine-readable line (`https_status`, `modbus`, …).
    pub key: String,
    /// What a person reads (`HTTPS GET /api/status`).
    pub interface: String,
    pub clients: String,
    /// Replies counted (successful ones).
    pub count: u64,
    pub seconds: f64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Anything else worth a line (first error, read/write split).
    pub note: String,
}

impl Report {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 { self.count as f64 / self.seconds } else { 0.0 }
    }
}

/// The `f`-th fraction of sorted samples (nearest rank).
pub fn nearest_rank<T: Copy>(sorted: &[T], f: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((f * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}
