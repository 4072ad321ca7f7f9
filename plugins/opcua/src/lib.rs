//! The first-party OPC-UA plugin of the OpenPLC runtime, on the `async-opcua` crates:
//!
//! - a **server** (`conf/opcua.json`, exactly as the Editor writes it) exposing the
//!   program's debug variables, structures and arrays with the right OPC-UA type for each
//!   IEC type, users and roles, security profiles, subscriptions at `cycle_time_ms`;
//! - a **client** (`conf/opcua_client.json`) that subscribes to remote servers' nodes and
//!   writes them into the PLC, and writes PLC values out when they change.
//!
//! ```no_run
//! # async fn host(port: std::sync::Arc<openplc_port::PlcPort>) -> Result<(), Box<dyn std::error::Error>> {
//! let data = std::path::Path::new("data");
//! let plc = openplc_opcua::Plc::from_port(port);
//! let config = openplc_opcua::Config::from_conf_dir(&data.join("conf"))?;
//! for w in config.warnings() { tracing::warn!("{w}"); }
//! let handle = openplc_opcua::start(config, plc, &data.join("opcua")).await?;
//! println!("{:?}", handle.status());
//! handle.stop().await;
//! # Ok(()) }
//! ```
//!
//! The plugin reaches the PLC only through the companion's port to rt-core ([`Plc`]).

pub mod client;
pub mod config;
pub mod iec;
#[cfg(any(test, feature = "model"))]
mod memory_plc;
pub mod plc;
mod port;
pub mod server;
pub mod wire;

pub use client::{Client, RemoteState, RemoteStatus};
pub use config::client::ClientConfig;
pub use config::{ConfigError, ServerConfig};
#[cfg(any(test, feature = "model"))]
pub use memory_plc::{MemVar, MemoryPlc, ScanContext};
pub use plc::{DebugVars, Plc, PlcError, ProgramLayout, RawValue, Scan};
pub use port::PortVars;
pub use server::{Server, ServerStatus, StartError};

use serde::Serialize;
use std::path::Path;

/// Variables in one [`DebugVars::sample`] call (a quarter of rt-core's shared watch list,
/// leaving room for the Editor's debugger and other clients).
pub const MAX_SAMPLE_VARS: usize = 256;

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub server: Option<ServerConfig>,
    pub client: Option<ClientConfig>,
}

impl Config {
    /// Reads `opcua.json` and `opcua_client.json` from `dir`; a missing file leaves its
    /// half off (presence of the file = enabled, as upstream).
    pub fn from_conf_dir(dir: &Path) -> Result<Config, ConfigError> {
        let server = dir.join(config::SERVER_FILE);
        let client = dir.join(config::CLIENT_FILE);
        Ok(Config {
            server: if server.exists() { Some(ServerConfig::load(&server)?) } else { None },
            client: if client.exists() { Some(ClientConfig::load(&client)?) } else { None },
        })
    }

    pub fn is_empty(&self) -> bool {
        self.server.is_none() && self.client.is_none()
    }

    /// Adjustments the files needed (to log once at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(s) = &self.server {
            w.extend(s.warnings.iter().map(|m| format!("{}: {m}", config::SERVER_FILE)));
        }
        if let Some(c) = &self.client {
            w.extend(c.warnings.iter().map(|m| format!("{}: {m}", config::CLIENT_FILE)));
        }
        w
    }
}

/// The plugin's health, for logs and `/api/plugins`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Status {
    pub server: Option<ServerStatus>,
    pub client: Vec<RemoteStatus>,
}

/// A running plugin.
pub struct Handle {
    server: Option<Server>,
    client: Option<Client>,
}

/// Starts what `config` enables (inside a tokio runtime). `data_dir` keeps the server's
/// and the client's certificates. The server is listening when this returns; the client's
/// remote servers are being connected to.
pub async fn start(config: Config, plc: Plc, data_dir: &Path) -> Result<Handle, StartError> {
    let server = match config.server {
        Some(cfg) => Some(Server::start(cfg, plc.vars.clone(), data_dir).await?),
        None => None,
    };
    let client = match config.client {
        Some(cfg) => Some(Client::start(cfg, plc, data_dir).await?),
        None => None,
    };
    Ok(Handle { server, client })
}

impl Handle {
    pub fn status(&self) -> Status {
        Status {
            server: self.server.as_ref().map(Server::status),
            client: self.client.as_ref().map(Client::status).unwrap_or_default(),
        }
    }

    pub fn server(&self) -> Option<&Server> {
        self.server.as_ref()
    }

    pub async fn stop(self) {
        if let Some(s) = self.server {
            s.stop().await;
        }
        if let Some(c) = self.client {
            c.stop().await;
        }
    }
}
