//! The first-party S7comm plugin of the OpenPLC runtime: a Siemens S7 server
//! (ISO-on-TCP, port 102) over the PLC's image, configured by the Editor's
//! `conf/s7comm.json`. HMIs, historians and snap7-based tools read and write data
//! blocks mapped onto image tables, and the PE/PA/MK areas.
//!
//! ```no_run
//! # async fn host(image: std::sync::Arc<dyn openplc_port::ImagePort>) -> Result<(), Box<dyn std::error::Error>> {
//! let Some(cfg) = openplc_s7::load(std::path::Path::new("data/conf"))? else { return Ok(()) };
//! for w in &cfg.warnings { tracing::warn!("{w}"); }
//! let handle = openplc_s7::start(cfg, image).await?;
//! println!("{:?}", handle.status());
//! handle.stop().await;
//! # Ok(()) }
//! ```
//!
//! The server reaches the PLC only through the port's `ImagePort` (the companion passes its
//! `PlcPort`, tests `openplc_port::MemoryImage`); nothing is global, so several
//! instances can run side by side. The protocol is written here (see the README for
//! why no crate was kept), as a session state machine ([`session`]) the TCP server
//! ([`server`]) and the fuzz target (`fuzz/entries`, `s7_request`) drive alike.

pub mod config;
pub mod image;
mod job;
pub mod map;
pub mod server;
pub mod session;
pub mod stats;
pub mod szl;
mod userdata;
pub mod wire;

pub use config::{ConfigError, S7Config};
pub use server::Server;
pub use stats::ServerStatus;

use openplc_port::ImagePort;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Reads `<dir>/s7comm.json`; `None` when the upload has none (the plugin is off).
pub fn load(dir: &Path) -> Result<Option<S7Config>, ConfigError> {
    let path = dir.join(config::FILE);
    if path.exists() { S7Config::load(&path).map(Some) } else { Ok(None) }
}

/// Why the plugin could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Listen(#[from] std::io::Error),
}

/// The plugin's health, for logs and the companion's API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// False when `server.enabled` is false: the file is there, the server is not.
    pub enabled: bool,
    pub server: Option<ServerStatus>,
}

/// A started plugin (serving, or disabled by its configuration).
pub struct Handle {
    server: Option<Server>,
}

/// Starts the server `cfg` describes (inside a tokio runtime); it is listening when this
/// returns. A configuration with `server.enabled: false` starts nothing.
pub async fn start(cfg: S7Config, image: Arc<dyn ImagePort>) -> Result<Handle, StartError> {
    if !cfg.enabled {
        tracing::info!("S7 server disabled by its configuration (server.enabled is false)");
        return Ok(Handle { server: None });
    }
    Ok(Handle { server: Some(Server::start(cfg, image).await?) })
}

impl Handle {
    pub fn status(&self) -> Status {
        Status { enabled: self.server.is_some(), server: self.server.as_ref().map(Server::status) }
    }

    /// Where the server listens (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(Server::local_addr)
    }

    /// Stops the server, closing every connection.
    pub async fn stop(self) {
        if let Some(s) = self.server {
            s.stop().await;
        }
    }
}
