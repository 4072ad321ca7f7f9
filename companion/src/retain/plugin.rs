//! A native plugin as the RETAIN store (`retain_save`/`retain_load`/`retain_flush`, see
//! `openplc_plugin_host::RetainPlugin`): the plugin keeps the same blob the file store
//! writes, opaque to it, under the identity `retain_load` was given.

use super::codec;
use super::{RetainBackend, RetainError};
use crate::logs::LogHub;
use openplc_plugin_host::RetainPlugin;
use shared_abi::retain::RetainImage;
use std::sync::Mutex;

pub struct PluginStore {
    plugin: RetainPlugin,
    last: Mutex<Option<Vec<u8>>>,
}

impl PluginStore {
    pub fn new(plugin: RetainPlugin) -> PluginStore {
        PluginStore { plugin, last: Mutex::new(None) }
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the store the program's identity (it labels its next commit with it).
    fn identify(&self, md5: Option<&str>) -> Result<Vec<u8>, RetainError> {
        let md5 = md5.unwrap_or_default();
        Ok(self.plugin.load(md5.as_bytes())?)
    }
}

impl RetainBackend for PluginStore {
    fn describe(&self) -> String {
        self.plugin.name().to_string()
    }

    fn load(&self, md5: Option<&str>, logs: &LogHub) -> Option<Box<RetainImage>> {
        let blob = match self.identify(md5) {
            Ok(b) if b.is_empty() => return None,
            Ok(b) => b,
            Err(e) => {
                logs.warn(format!("RETAIN values not read from plugin {}: {e}", self.plugin.name()));
                return None;
            }
        };
        match codec::decode(&blob) {
            Ok(image) => {
                *self.last() = Some(blob);
                Some(image)
            }
            Err(why) => {
                logs.warn(format!("RETAIN values from plugin {} are not used: {why}", self.plugin.name()));
                None
            }
        }
    }

    fn save(&self, image: &RetainImage) -> Result<bool, RetainError> {
        let blob = codec::encode(image);
        let mut last = self.last();
        if last.as_deref() == Some(&blob[..]) {
            return Ok(false);
        }
        self.plugin.save(&blob)?;
        *last = Some(blob);
        Ok(true)
    }

    /// Upstream's cold restart: the identity through `retain_load` (what it returns is
    /// dropped), then an empty blob committed at once, so a power cut before the first save
    /// of the new values cannot bring the old ones back.
    fn reset(&self, md5: Option<&str>) -> Result<(), RetainError> {
        *self.last() = None;
        self.identify(md5)?;
        self.plugin.save(&[])?;
        Ok(())
    }
}
