//! Receiving an upload: the zip is written to `uploads/<id>.zip` as its chunks arrive, and a
//! receive that fails or is refused (too large, a broken body, a full device) leaves no file
//! behind: the file is removed unless the upload is finished.

use openplc_builder::storage_problem;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("The upload is larger than {} MiB", limit >> 20)]
    TooLarge { limit: u64 },
    /// Writing failed; [`ReceiveError::is_storage`] tells a full or failing device.
    #[error("{}", write_failure(source))]
    Write { source: io::Error },
}

fn write_failure(source: &io::Error) -> String {
    match storage_problem(source) {
        Some(problem) => format!("{problem}: saving the upload ({source})"),
        None => format!("cannot save the upload ({source})"),
    }
}

impl ReceiveError {
    /// Whether the device is full, over quota or failing (rather than the upload at fault).
    pub fn is_storage(&self) -> bool {
        matches!(self, ReceiveError::Write { source } if storage_problem(source).is_some())
    }
}

/// An upload being received; removed when dropped unfinished.
pub struct PartialUpload {
    path: PathBuf,
    file: tokio::fs::File,
    written: u64,
    limit: u64,
    finished: bool,
}

impl PartialUpload {
    /// Starts `path` (replacing nothing: a fresh id's file), accepting at most `limit` bytes.
    pub async fn create(path: &Path, limit: u64) -> Result<PartialUpload, ReceiveError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .await
            .map_err(|source| ReceiveError::Write { source })?;
        Ok(PartialUpload { path: path.to_path_buf(), file, written: 0, limit, finished: false })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ReceiveError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(ReceiveError::TooLarge { limit: self.limit });
        }
        self.file.write_all(chunk).await.map_err(|source| ReceiveError::Write { source })
    }

    /// Flushes and syncs the file (a full device may only show here) and keeps it; the
    /// bytes received.
    pub async fn finish(mut self) -> Result<u64, ReceiveError> {
        self.file.flush().await.map_err(|source| ReceiveError::Write { source })?;
        self.file.sync_all().await.map_err(|source| ReceiveError::Write { source })?;
        self.finished = true;
        Ok(self.written)
    }
}

impl Drop for PartialUpload {
    fn drop(&mut self) {
        if !self.finished {
            // Small and local: a blocking unlink is fine even on the async thread.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unfinished_upload_leaves_nothing_and_a_finished_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.zip");
        let mut up = PartialUpload::create(&path, 8).await.unwrap();
        up.write(b"12345").await.unwrap();
        let err = up.write(b"6789").await.unwrap_err();
        assert!(matches!(err, ReceiveError::TooLarge { limit: 8 }), "{err}");
        drop(up);
        assert!(!path.exists(), "a refused upload is removed");

        let mut up = PartialUpload::create(&path, 8).await.unwrap();
        up.write(b"1234").await.unwrap();
        assert_eq!(up.finish().await.unwrap(), 4);
        assert_eq!(std::fs::read(&path).unwrap(), b"1234");

        let full = ReceiveError::Write { source: io::Error::from_raw_os_error(libc::ENOSPC) };
        assert!(full.is_storage());
        assert!(full.to_string().starts_with("no space left on the device: saving the upload"), "{full}");
        let denied = ReceiveError::Write { source: io::Error::from_raw_os_error(libc::EACCES) };
        assert!(!denied.is_storage() && denied.to_string().starts_with("cannot save the upload ("), "{denied}");
    }
}
