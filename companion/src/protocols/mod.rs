//! The first-party protocol servers (Modbus, OPC-UA; S7 next), each enabled by the
//! upload's `conf/<name>.json` and run while the PLC runs, like every plugin.
//!
//! One module per protocol implements [`Protocol`]: read its configuration from the
//! data directory's `conf/`, start on the PLC port, report a status, stop. The plugin
//! watcher ([`crate::plugins`]) starts and stops them all the same way, and `/api/plugins`
//! shows each one's [`ProtocolState`], including why it did not start (a configuration
//! that does not parse, a port already taken).

mod modbus;
mod opcua;

use crate::logs::LogHub;
use crate::rt_link::RtLink;
use std::future::Future;
use std::path::PathBuf;
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
    vec![Box::new(modbus::Modbus), Box::new(opcua::Opcua)]
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

/// Starts every configured protocol; logs what started and what failed.
pub async fn start_all(protocols: &[Box<dyn Protocol>], ctx: &StartContext) -> Vec<(&'static str, ProtocolState)> {
    let mut states = Vec::new();
    for p in protocols {
        match p.start(ctx).await {
            Ok(Some(running)) => states.push((p.name(), ProtocolState::Running(running))),
            Ok(None) => {}
            Err(e) => {
                ctx.logs.error(format!("{} not started: {e}", p.name()));
                states.push((p.name(), ProtocolState::Failed(e)));
            }
        }
    }
    states
}

/// Stops every running protocol.
pub async fn stop_all(states: Vec<(&'static str, ProtocolState)>) {
    for (_, state) in states {
        if let ProtocolState::Running(r) = state {
            r.stop().await;
        }
    }
}
