//! RETAIN variables across restarts: the values rt-core publishes for the running program
//! are handed to a store when they changed, and given back to rt-core on a warm load of the
//! same program (a restart of rt-core, the machine or the PLC). A cold load (a new upload, a
//! cold start on request) resets the store: the old values never come back.
//!
//! Two stores, as upstream: a native plugin exporting `retain_save` and `retain_load`
//! ([`plugin::PluginStore`]) outranks the built-in file ([`file::FileStore`], on when
//! `retain_flush_s` is set). Without either, RETAIN variables start at their initial
//! values every time.

pub mod codec;
pub mod file;
pub mod plugin;
pub mod status;

use crate::logs::LogHub;
use shared_abi::retain::RetainImage;
use std::sync::Arc;
use std::time::Duration;

/// How often values are offered to a plugin store when `retain_flush_s` is not set (the
/// plugin decides when to commit; unchanged values are not offered again).
pub const PLUGIN_SAVE_PERIOD: Duration = Duration::from_secs(1);

/// Why a store did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum RetainError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Plugin(#[from] openplc_plugin_host::RetainHookError),
}

/// Where RETAIN values are kept. Blocking (file or plugin I/O): call from a blocking thread.
pub trait RetainBackend: Send + Sync {
    /// What `retain-status` calls the store: the file's path, the plugin's name.
    fn describe(&self) -> String;
    /// The values kept for the program with this MD5, ready to stage for a warm load
    /// (`None`: nothing, or nothing usable; the reason is logged).
    fn load(&self, md5: Option<&str>, logs: &LogHub) -> Option<Box<RetainImage>>;
    /// Keeps `image` when it differs from what was last kept. Returns whether it wrote.
    fn save(&self, image: &RetainImage) -> Result<bool, RetainError>;
    /// A cold start of the program with this MD5: nothing kept so far may come back.
    fn reset(&self, md5: Option<&str>) -> Result<(), RetainError>;
}

/// Offers the running program's RETAIN values to the store every `period` (for as long as
/// the companion runs); a store is looked up at each tick, so one that appears later (a
/// plugin enabled by an upload) is used from then on.
pub fn spawn_flusher(plc: Arc<crate::rt_link::RtLink>, logs: Arc<LogHub>, period: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let Some(store) = plc.retain_store() else { continue };
            let port = plc.port();
            let Some(image) = port.retain_saved() else { continue };
            // Only the running program's own values (a swap may be under way).
            let Some(current) = port.status().map(|s| s.program_gen) else { continue };
            if image.program_gen == 0 || image.program_gen != current || image.count == 0 {
                continue;
            }
            match tokio::task::spawn_blocking(move || store.save(&image)).await {
                Ok(Ok(_)) if failing => {
                    failing = false;
                    logs.info("RETAIN values are being saved again");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) if !failing => {
                    failing = true;
                    logs.error(format!("RETAIN values could not be saved: {e}"));
                }
                _ => {}
            }
        }
    });
}
