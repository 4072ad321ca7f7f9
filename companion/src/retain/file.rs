//! The built-in store: `<data dir>/retain/retain.bin`, written to a temporary name, fsynced
//! and renamed over the old one, so a power cut leaves either the old values or the new
//! ones, never a mix. rt-core decides from the blob's MD5 and layout hash whether the values
//! are the program's; this store hands back whatever it holds.

use super::codec::{self, BlobError};
use super::{RetainBackend, RetainError};
use crate::logs::LogHub;
use shared_abi::retain::RetainImage;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct FileStore {
    path: PathBuf,
    /// The bytes last written (or read), so unchanged values are not written again.
    last: Mutex<Option<Vec<u8>>>,
}

impl FileStore {
    pub fn new(data_dir: &Path) -> FileStore {
        FileStore { path: data_dir.join("retain").join("retain.bin"), last: Mutex::new(None) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RetainBackend for FileStore {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&self, _md5: Option<&str>, logs: &LogHub) -> Option<Box<RetainImage>> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                logs.warn(format!("RETAIN values not read ({}): {e}", self.path.display()));
                return None;
            }
        };
        match codec::decode(&bytes) {
            Ok(image) => {
                *self.last() = Some(bytes);
                Some(image)
            }
            Err(why) => {
                let why: BlobError = why;
                logs.warn(format!("RETAIN values in {} are not used: {why}", self.path.display()));
                None
            }
        }
    }

    fn save(&self, image: &RetainImage) -> Result<bool, RetainError> {
        let bytes = codec::encode(image);
        let mut last = self.last();
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

    /// Removes the file: nothing saved comes back (no file is the initial values).
    fn reset(&self, _md5: Option<&str>) -> Result<(), RetainError> {
        *self.last() = None;
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retain::codec::tests::image;

    #[test]
    fn values_round_trip_and_unchanged_values_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogHub::in_memory();
        let store = FileStore::new(dir.path());
        assert!(store.load(None, &logs).is_none());
        assert!(store.save(&image(&[1, 2, 3, 4, 5, 6])).unwrap());
        assert!(!store.save(&image(&[1, 2, 3, 4, 5, 6])).unwrap(), "unchanged: not written");
        assert!(store.save(&image(&[1, 2, 3, 4, 5, 7])).unwrap());

        let back = FileStore::new(dir.path()).load(None, &logs).unwrap();
        assert_eq!(back.bytes(), [1, 2, 3, 4, 5, 7]);
        assert_eq!(
            (back.count, back.layout_hash, &back.md5),
            (2, 0x1234_5678_9abc_def0, b"0123456789abcdef0123456789abcdef")
        );
        assert_ne!(back.program_gen, 0, "staged images are marked present");

        store.reset(None).unwrap();
        assert!(store.load(None, &logs).is_none());
        store.reset(None).unwrap();
    }

    #[test]
    fn a_damaged_file_is_not_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogHub::in_memory();
        let store = FileStore::new(dir.path());
        store.save(&image(&[9; 40])).unwrap();
        let mut bytes = fs::read(store.path()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(store.path(), &bytes).unwrap();
        assert!(store.load(None, &logs).is_none());
        fs::write(store.path(), &bytes[..20]).unwrap();
        assert!(store.load(None, &logs).is_none());
        assert!(logs.since(0, None).iter().any(|e| e.message.contains("checksum mismatch")));
    }
}
