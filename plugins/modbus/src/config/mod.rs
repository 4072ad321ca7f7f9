//! The two files the Editor writes (editor reference §4.1, §4.2), read exactly as it
//! writes them, with upstream's defaults where it leaves fields out:
//!
//! - `conf/modbus_slave.json`: the TCP server. Both `buffer_mapping` shapes upstream
//!   reads (segmented, and the legacy `max_*` one) are accepted, and upstream's top-level
//!   `word_order`. Our additions, all optional, sit in `network_configuration`:
//!   `max_connections`, `max_connections_per_source`, `idle_timeout_ms`,
//!   `frame_timeout_ms`, `write_timeout_ms` and `unit_id` (answer only this unit id; by
//!   default any, as upstream).
//! - `conf/modbus_master.json`: an array of remote devices, TCP or RTU.
//!
//! Errors name the field by its JSON path (`[1].config.io_points[0].iec_location: …`).
//!
//! This module holds what both files share (the error type and the JSON helpers); each
//! file's reader lives in its own module.

mod master;
mod server;

pub use master::{DeviceConfig, Function, IoPoint, Link, MasterConfig, Parity, SerialSettings, registers_per_element};
pub use server::{
    DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
    DEFAULT_WRITE_TIMEOUT_MS, ServerConfig,
};

use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// A configuration that cannot be used, with the JSON path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<String>,
    /// JSON path of the offending field (`.` for the whole document).
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { file: None, path: path.into(), message: message.into() }
}

fn parse_json<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json appends " at line L column C": keep it, it helps find the spot.
        err(if path.is_empty() { ".".to_string() } else { path }, inner.to_string())
    })
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.display().to_string()),
        path: ".".into(),
        message: format!("cannot read: {e}"),
    })
}

fn in_file<T>(path: &Path, r: Result<T, ConfigError>) -> Result<T, ConfigError> {
    r.map_err(|mut e| {
        e.file = Some(path.display().to_string());
        e
    })
}
