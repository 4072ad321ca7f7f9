//! The plugin host of the OpenPLC companion: loads OpenPLC v4 plugins (native shared
//! libraries and Python modules) as upstream configures them, and connects them to rt-core
//! through the shared-memory rules only.
//!
//! ```no_run
//! use openplc_plugin_host::{PluginHost, rt_bridge::RtClientBridge};
//! use std::sync::Arc;
//!
//! let plc = Arc::new(RtClientBridge::open("openplc-rt").expect("rt-core"));
//! let host = PluginHost::new("/var/lib/openplc/plugins.conf", plc).expect("plugins.conf");
//! // After an upload was extracted into `bundle`:
//! let uploaded = host.apply_upload(std::path::Path::new("/var/lib/openplc/bundle")).expect("upload rule");
//! // On program start and stop (from a blocking thread):
//! let status = host.start().expect("plugins.conf");
//! host.stop();
//! # let _ = (uploaded, status);
//! ```
//!
//! - [`conf`]: `plugins.conf` and the per-upload enable rule.
//! - [`plc::PluginPlc`]: what the host needs from the PLC; the companion implements it.
//! - [`rt_bridge::RtClientBridge`]: an implementation over a `Mutex<RtClient>`.
//! - [`PluginHost`]: lifecycle, status, commands, statistics.
//!
//! The ABI struct itself (`plugin_runtime_args_t`) is `shared_abi::plugin`.

pub mod conf;
mod core;
mod host;
mod native;
pub mod plc;
mod python;
pub mod rt_bridge;
mod slots;

pub use conf::{ConfError, PluginEntry, PluginKind, PluginsConf, UploadedConfig};
pub use host::{CommandError, PluginHost, PluginState, PluginStatus};
pub use plc::{PlcError, PluginPlc};

// The companion shares one host between its handlers and its supervisor.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<PluginHost>();
};
