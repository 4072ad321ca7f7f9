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
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// The blob last handed over, so unchanged values are not offered again.
    last: Option<Vec<u8>>,
    /// The identity the plugin was last given (it labels its commits with it).
    identity: Option<Vec<u8>>,
}

impl PluginStore {
    pub fn new(plugin: RetainPlugin) -> PluginStore {
        PluginStore { plugin, state: Mutex::new(Held::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Held> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the store the program's identity through `retain_load` (the only way the
    /// protocol has); returns what it holds for that program.
    fn identify(&self, held: &mut Held, md5: &[u8]) -> Result<Vec<u8>, RetainError> {
        let blob = self.plugin.load(md5)?;
        held.identity = Some(md5.to_vec());
        Ok(blob)
    }
}

impl RetainBackend for PluginStore {
    fn describe(&self) -> String {
        self.plugin.name().to_string()
    }

    fn load(&self, md5: Option<&str>, logs: &LogHub) -> Option<Box<RetainImage>> {
        let mut held = self.state();
        let blob = match self.identify(&mut held, md5.unwrap_or_default().as_bytes()) {
            Ok(b) if b.is_empty() => return None,
            Ok(b) => b,
            Err(e) => {
                logs.warn(format!("RETAIN values not read from plugin {}: {e}", self.plugin.name()));
                return None;
            }
        };
        match codec::decode(&blob) {
            Ok(image) => {
                held.last = Some(blob);
                Some(image)
            }
            Err(why) => {
                logs.warn(format!("RETAIN values from plugin {} are not used: {why}", self.plugin.name()));
                None
            }
        }
    }

    /// Offers `image`; a store that has not been told whose values these are (it became
    /// the store after the program was loaded) is told first.
    fn save(&self, image: &RetainImage) -> Result<bool, RetainError> {
        let blob = codec::encode(image);
        let mut held = self.state();
        if held.last.as_deref() == Some(&blob[..]) {
            return Ok(false);
        }
        if held.identity.as_deref() != Some(&image.md5[..]) {
            self.identify(&mut held, &image.md5)?;
        }
        self.plugin.save(&blob)?;
        held.last = Some(blob);
        Ok(true)
    }

    /// Upstream's cold restart: the identity through `retain_load` (what it returns is
    /// dropped), then an empty blob committed at once, so a power cut before the first save
    /// of the new values cannot bring the old ones back.
    fn reset(&self, md5: Option<&str>) -> Result<(), RetainError> {
        let mut held = self.state();
        held.last = None;
        self.identify(&mut held, md5.unwrap_or_default().as_bytes())?;
        self.plugin.save(&[])?;
        Ok(())
    }
}
