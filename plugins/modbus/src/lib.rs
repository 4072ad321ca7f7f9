//! The first-party Modbus plugin of the OpenPLC runtime: a Modbus TCP server over the
//! PLC's image (`conf/modbus_slave.json`) and a Modbus master, TCP and RTU
//! (`conf/modbus_master.json`). The companion hosts it:
//!
//! ```no_run
//! # async fn host(plc: std::sync::Arc<openplc_port::PlcPort>) -> Result<(), Box<dyn std::error::Error>> {
//! let config = openplc_modbus::Config::from_conf_dir(std::path::Path::new("data/conf"))?;
//! for w in config.warnings() { tracing::warn!("{w}"); }
//! let handle = openplc_modbus::start(config, plc).await?;
//! println!("{:?}", handle.status());
//! handle.stop().await;
//! # Ok(()) }
//! ```
//!
//! The plugin reaches the PLC only through the `openplc_port::PlcPort` it is given (the
//! companion's); no state is global, so several instances (tests do this) can run side by
//! side.

pub mod config;
pub mod map;
pub mod master;
pub mod pdu;
pub mod server;

pub use config::{ConfigError, MasterConfig, ServerConfig};
pub use master::{DeviceState, DeviceStatus, Master, MasterOptions};
pub use server::{Server, ServerStatus};

use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// File names the Editor writes; a file's presence enables its half of the plugin.
pub const SLAVE_FILE: &str = "modbus_slave.json";
pub const MASTER_FILE: &str = "modbus_master.json";

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub server: Option<ServerConfig>,
    pub master: Option<MasterConfig>,
    pub master_options: MasterOptions,
}

impl Config {
    /// Reads `modbus_slave.json` and `modbus_master.json` from `dir`; a missing file
    /// leaves its half off, as upstream (presence of the file = enabled).
    pub fn from_conf_dir(dir: &Path) -> Result<Config, ConfigError> {
        let slave = dir.join(SLAVE_FILE);
        let master = dir.join(MASTER_FILE);
        Ok(Config {
            server: if slave.exists() { Some(ServerConfig::load(&slave)?) } else { None },
            master: if master.exists() { Some(MasterConfig::load(&master)?) } else { None },
            master_options: MasterOptions::default(),
        })
    }

    /// Adjustments the configuration files needed (to log once at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(s) = &self.server {
            w.extend(s.warnings.iter().map(|m| format!("{SLAVE_FILE}: {m}")));
        }
        if let Some(m) = &self.master {
            w.extend(m.warnings.iter().map(|x| format!("{MASTER_FILE}: {x}")));
        }
        w
    }
}

/// Why the plugin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Server(#[from] std::io::Error),
}

/// The plugin's health, for logs and the companion's API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    pub server: Option<ServerStatus>,
    pub master: Vec<DeviceStatus>,
}

/// A running plugin.
pub struct Handle {
    server: Option<Server>,
    master: Option<Master>,
}

/// Starts what `config` enables (inside a tokio runtime). The server is listening when
/// this returns; the master's devices are being polled.
pub async fn start(config: Config, plc: Arc<dyn openplc_port::ImagePort>) -> Result<Handle, StartError> {
    let server = match config.server {
        Some(cfg) => Some(Server::start(cfg, plc.clone()).await?),
        None => None,
    };
    let master = config.master.map(|cfg| Master::start(cfg, config.master_options, plc));
    Ok(Handle { server, master })
}

impl Handle {
    pub fn status(&self) -> Status {
        Status {
            server: self.server.as_ref().map(Server::status),
            master: self.master.as_ref().map(Master::status).unwrap_or_default(),
        }
    }

    /// Where the server listens (useful with port 0).
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(Server::local_addr)
    }

    /// Stops the server (closing every connection) and the master's device tasks.
    pub async fn stop(self) {
        if let Some(s) = self.server {
            s.stop().await;
        }
        if let Some(m) = self.master {
            m.stop().await;
        }
    }
}
