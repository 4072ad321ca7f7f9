//! RETAIN variables across restarts: the values rt-core publishes for the running program
//! are written to `<data dir>/retain/retain.bin` when they changed, at most every
//! `retain_flush_s` seconds (off by default: flash storage wears out), and handed back to
//! rt-core on a warm load of the same program (a restart of rt-core, the machine or the
//! PLC). A new upload is a cold start: the file is removed.
//!
//! The file is written to a temporary name, fsynced and renamed over the old one, so a
//! power cut leaves either the old values or the new ones, never a mix; its checksum,
//! program MD5 and RETAIN layout hash decide whether it is given back at all.

use crate::logs::LogHub;
use shared_abi::retain::{RETAIN_BYTES, RetainImage};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &[u8; 8] = b"OPLCRTN1";
const HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 32 + 4 + 4;

pub struct RetainStore {
    path: PathBuf,
    /// The bytes last written (or read), so unchanged values are not written again.
    last: Mutex<Option<Vec<u8>>>,
}

impl RetainStore {
    pub fn new(data_dir: &Path) -> RetainStore {
        RetainStore { path: data_dir.join("retain").join("retain.bin"), last: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved values, ready to stage for a warm load (`None`: none, or unreadable).
    pub fn saved(&self, logs: &LogHub) -> Option<Box<RetainImage>> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                logs.warn(format!("RETAIN values not read ({}): {e}", self.path.display()));
                return None;
            }
        };
        match decode(&bytes) {
            Ok(image) => {
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
                Some(image)
            }
            Err(why) => {
                logs.warn(format!("RETAIN values in {} are not used: {why}", self.path.display()));
                None
            }
        }
    }

    /// Writes `image` when it differs from what was last written. Returns whether it wrote.
    pub fn save(&self, image: &RetainImage) -> std::io::Result<bool> {
        let bytes = encode(image);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_deref() == Some(&bytes[..]) {
            return Ok(false);
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        fs::File::open(dir)?.sync_all()?;
        *last = Some(bytes);
        Ok(true)
    }

    /// Forgets the saved values (a new upload starts cold).
    pub fn clear(&self) -> std::io::Result<()> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Writes the running program's RETAIN values every `period` when they changed (and the
/// program has any), for as long as the companion runs.
pub fn spawn_flusher(
    store: std::sync::Arc<RetainStore>,
    plc: std::sync::Arc<crate::rt_link::RtLink>,
    logs: std::sync::Arc<LogHub>,
    period: std::time::Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let port = plc.port();
            let Some(image) = port.retain_saved() else { continue };
            // Only the running program's own values (a swap may be under way).
            let Some(current) = port.status().map(|s| s.program_gen) else { continue };
            if image.program_gen == 0 || image.program_gen != current || image.count == 0 {
                continue;
            }
            let store = store.clone();
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

fn encode(image: &RetainImage) -> Vec<u8> {
    let data = image.bytes();
    let mut out = Vec::with_capacity(HEADER_BYTES + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&image.count.to_le_bytes());
    out.extend_from_slice(&image.layout_hash.to_le_bytes());
    out.extend_from_slice(&image.md5);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn decode(bytes: &[u8]) -> Result<Box<RetainImage>, String> {
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err("not a RETAIN file".into());
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    if u32_at(8) != 1 {
        return Err(format!("format version {}", u32_at(8)));
    }
    let len = u32_at(56) as usize;
    let data = &bytes[HEADER_BYTES..];
    if len > RETAIN_BYTES || data.len() != len {
        return Err(format!("{} bytes of values where the header says {len}", data.len()));
    }
    if crc32(data) != u32_at(60) {
        return Err("checksum mismatch".into());
    }
    let mut image: Box<RetainImage> = bytemuck::zeroed_box();
    image.program_gen = 1;
    image.count = u32_at(12);
    image.layout_hash = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or([0; 8]));
    image.md5.copy_from_slice(&bytes[24..56]);
    image.len = len as u32;
    image.data[..len].copy_from_slice(data);
    Ok(image)
}

/// CRC-32 (IEEE 802.3, reflected), bit by bit: at most 64 KiB every few seconds.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(values: &[u8]) -> Box<RetainImage> {
        let mut i: Box<RetainImage> = bytemuck::zeroed_box();
        i.program_gen = 3;
        i.count = 2;
        i.layout_hash = 0x1234_5678_9abc_def0;
        i.md5.copy_from_slice(b"0123456789abcdef0123456789abcdef");
        i.len = values.len() as u32;
        i.data[..values.len()].copy_from_slice(values);
        i
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn values_round_trip_and_unchanged_values_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogHub::in_memory();
        let store = RetainStore::new(dir.path());
        assert!(store.saved(&logs).is_none());
        assert!(store.save(&image(&[1, 2, 3, 4, 5, 6])).unwrap());
        assert!(!store.save(&image(&[1, 2, 3, 4, 5, 6])).unwrap(), "unchanged: not written");
        assert!(store.save(&image(&[1, 2, 3, 4, 5, 7])).unwrap());

        let back = RetainStore::new(dir.path()).saved(&logs).unwrap();
        assert_eq!(back.bytes(), [1, 2, 3, 4, 5, 7]);
        assert_eq!(
            (back.count, back.layout_hash, &back.md5),
            (2, 0x1234_5678_9abc_def0, b"0123456789abcdef0123456789abcdef")
        );
        assert_ne!(back.program_gen, 0, "staged images are marked present");

        store.clear().unwrap();
        assert!(store.saved(&logs).is_none());
        store.clear().unwrap();
    }

    #[test]
    fn a_damaged_file_is_not_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogHub::in_memory();
        let store = RetainStore::new(dir.path());
        store.save(&image(&[9; 40])).unwrap();
        let mut bytes = fs::read(store.path()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(store.path(), &bytes).unwrap();
        assert!(store.saved(&logs).is_none());
        fs::write(store.path(), &bytes[..20]).unwrap();
        assert!(store.saved(&logs).is_none());
        assert!(logs.since(0, None).iter().any(|e| e.message.contains("checksum mismatch")));
    }
}
