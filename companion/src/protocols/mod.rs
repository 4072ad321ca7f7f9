//! The first-party protocol servers (Modbus, S7, OPC-UA), each enabled by the
//! upload's `conf/<name>.json` and run while the PLC runs, like every plugin.
//!
//! One module per protocol implements [`Protocol`]: check its configuration, read it from
//! the data directory's `conf/`, start on the PLC port, report a status, stop. The plugin
//! watcher ([`crate::plugins`]) starts and stops them all the same way, and `/api/plugins`
//! shows each one's [`ProtocolState`], including why it did not start (a configuration
//! that does not parse, a port already taken). A configuration that does not parse is
//! also reported in the build log of the upload that carried it ([`Protocol::check`]).

mod modbus;
mod opcua;
mod s7;

use crate::logs::LogHub;
use crate::rt_link::RtLink;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a protocol starts with.
pub struct StartContext {
    /// `<data dir>/conf`: the upload's `conf/*.json`.
    pub conf_dir: PathBuf,
    /// `<data dir>`: for what a protocol keeps (certificates, say).
    pub data_dir: PathBuf,
    pub plc: Arc<RtLink>,
    pub logs: Arc<LogHub>,
}

/// Why a protocol did not start. Shown in `/api/plugins` and the runtime log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StartFailure(pub String);

/// A protocol server kind.
pub trait Protocol: Send + Sync {
    /// Its name in `/api/plugins` and in log lines.
    fn name(&self) -> &'static str;

    /// Checks the configuration in `conf_dir` without starting anything: `Err` with what
    /// [`Protocol::start`] would fail with on it, `Ok` when it is fine or absent. Called
    /// when an upload's `conf/` is applied, for the build log.
    fn check(&self, conf_dir: &Path) -> Result<(), StartFailure>;

    /// Whether it keeps serving while the PLC is stopped (a program loaded, not running):
    /// a protocol whose clients expect to read the stopped state from it. Every other
    /// protocol stops with the PLC, as upstream's plugins do.
    fn serves_while_stopped(&self) -> bool {
        false
    }

    /// Starts it when the upload configured it: `Ok(None)` when it did not (no file, or
    /// the file disables it).
    fn start<'a>(&'a self, ctx: &'a StartContext) -> BoxFuture<'a, Result<Option<Box<dyn Running>>, StartFailure>>;
}

/// A started protocol server.
pub trait Running: Send + Sync {
    /// Its own status (listening address, connections, counters), as JSON.
    fn status(&self) -> serde_json::Value;

    /// Stops it and waits until its sockets are closed.
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Every protocol this runtime has.
pub fn all() -> Vec<Box<dyn Protocol>> {
    vec![Box::new(modbus::Modbus), Box::new(s7::S7), Box::new(opcua::Opcua)]
}

/// One protocol's state, for `/api/plugins`.
pub enum ProtocolState {
    Running(Box<dyn Running>),
    Failed(StartFailure),
}

impl ProtocolState {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ProtocolState::Running(r) => serde_json::json!({ "state": "running", "status": r.status() }),
            ProtocolState::Failed(e) => serde_json::json!({ "state": "failed", "error": e.0 }),
        }
    }
}

/// Starts `protocol` when configured: its state, `None` when the upload did not configure
/// it. Logs a failure.
pub async fn start(protocol: &dyn Protocol, ctx: &StartContext) -> Option<ProtocolState> {
    match protocol.start(ctx).await {
        Ok(Some(running)) => Some(ProtocolState::Running(running)),
        Ok(None) => None,
        Err(e) => {
            ctx.logs.error(format!("{} not started: {e}", protocol.name()));
            Some(ProtocolState::Failed(e))
        }
    }
}

/// Stops it if it runs.
pub async fn stop(state: ProtocolState) {
    if let ProtocolState::Running(r) = state {
        r.stop().await;
    }
}

/// Every protocol's configuration error in `conf_dir`, by name.
pub fn check_all(protocols: &[Box<dyn Protocol>], conf_dir: &Path) -> Vec<(&'static str, StartFailure)> {
    protocols.iter().filter_map(|p| p.check(conf_dir).err().map(|e| (p.name(), e))).collect()
}
