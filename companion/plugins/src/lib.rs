//! The plugin host of the OpenPLC companion: loads OpenPLC v4 plugins (native shared
//! libraries and Python modules) as upstream configures them, and connects them to rt-core
//! through the shared-memory rules only.
//!
//! ```no_run
//! use openplc_plugin_host::PluginHost;
//! use openplc_port::{LogSink, PlcPort};
//!
//! let plc = PlcPort::open("openplc-rt", LogSink::discard()).expect("rt-core");
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
//! - [`PluginHost`]: lifecycle, status, commands, statistics. It reaches rt-core through
//!   an `openplc_port::PlcPort` (the companion's): reads, writes, forces, debug reads
//!   through the port's shared watch list, and log lines to the port's log sink.
//!
//! The ABI struct itself (`plugin_runtime_args_t`) is `shared_abi::plugin`.

pub mod conf;
mod core;
mod host;
mod native;
mod python;
mod retain_store;
mod slots;
pub mod switch;

pub use conf::{ConfError, PluginEntry, PluginKind, PluginsConf, UploadedConfig};
pub use host::{CommandError, PluginHost, PluginState, PluginStatus};
pub use retain_store::{RetainHookError, RetainPlugin};
pub use switch::{RunSwitch, SwitchPosition};

// The companion shares one host between its handlers and its supervisor.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<PluginHost>();
};
