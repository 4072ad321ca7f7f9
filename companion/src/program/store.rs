//! Where uploads and built programs live, and which one is current.
//!
//! ```text
//! uploads/<id>.zip              the bundles as uploaded (the last few kept)
//! programs/<id>/src/            the extracted bundle (its conf/ enables plugins)
//! programs/<id>/program.so      the built library handed to rt-core
//! programs/<id>/build.log       the compiler output of that build
//! state.json                    {"current": "<id>", "run": true, "md5": "…"}
//! ```
//! `state.json` names the last program that built and loaded, and whether the PLC should
//! be running; at boot (and after an rt-core crash) that program is loaded again and
//! started if it was running.

use crate::fsutil::{PUBLIC_MODE, ensure_dir, read_optional, write_atomic};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const KEEP_UPLOADS: usize = 5;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PersistedState {
    /// Id of the last good program.
    pub current: Option<String>,
    /// Whether the PLC should be running.
    pub run: bool,
    /// That program's MD5 as the Editor computes it, when known.
    #[serde(default)]
    pub md5: Option<String>,
}

/// One built program.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramRecord {
    pub id: String,
    pub dir: PathBuf,
}

impl ProgramRecord {
    pub fn library(&self) -> PathBuf {
        self.dir.join("program.so")
    }
    pub fn sources(&self) -> PathBuf {
        self.dir.join("src")
    }
    /// The bundle's `conf/` folder: which plugins are enabled, and their settings.
    pub fn conf_dir(&self) -> PathBuf {
        self.sources().join("conf")
    }
}

pub struct ProgramStore {
    root: PathBuf,
    state: Mutex<PersistedState>,
}

impl ProgramStore {
    pub fn open(data_dir: &Path) -> anyhow::Result<ProgramStore> {
        ensure_dir(&data_dir.join("programs"), 0o755)?;
        ensure_dir(&data_dir.join("uploads"), 0o700)?;
        let state = match read_optional(&data_dir.join("state.json"))? {
            Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
            None => PersistedState::default(),
        };
        Ok(ProgramStore { root: data_dir.to_path_buf(), state: Mutex::new(state) })
    }

    pub fn state(&self) -> PersistedState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last good program, if its library is still there.
    pub fn current(&self) -> Option<ProgramRecord> {
        let id = self.state().current?;
        let rec = self.record(&id);
        rec.library().exists().then_some(rec)
    }

    pub fn record(&self, id: &str) -> ProgramRecord {
        ProgramRecord { id: id.to_string(), dir: self.root.join("programs").join(id) }
    }

    /// A new, unique program id (sortable by time).
    pub fn new_id(&self) -> String {
        let stamp = crate::timefmt::file_stamp(crate::timefmt::unix_now());
        let mut n = 0;
        loop {
            let id = if n == 0 { stamp.clone() } else { format!("{stamp}-{n}") };
            if !self.root.join("programs").join(&id).exists() && !self.upload_path(&id).exists() {
                return id;
            }
            n += 1;
        }
    }

    pub fn upload_path(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(format!("{id}.zip"))
    }

    /// Records `id` as the current program (run state `run`) and removes older programs,
    /// keeping the previous one as well.
    pub fn set_current(&self, id: &str, run: bool, md5: Option<String>) -> std::io::Result<()> {
        let previous = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let previous = st.current.clone();
            let next = PersistedState { current: Some(id.to_string()), run, md5 };
            self.persist(&next)?;
            *st = next;
            previous
        };
        let mut keep = vec![id.to_string()];
        keep.extend(previous);
        self.prune(&keep);
        Ok(())
    }

    pub fn set_run(&self, run: bool) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.run == run {
            return Ok(());
        }
        let next = PersistedState { run, ..st.clone() };
        self.persist(&next)?;
        *st = next;
        Ok(())
    }

    fn persist(&self, st: &PersistedState) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(st).map_err(std::io::Error::other)?;
        write_atomic(&self.root.join("state.json"), &bytes, PUBLIC_MODE)
    }

    /// Removes program folders not in `keep` (failed builds and superseded programs), and
    /// all but the newest uploads.
    pub fn prune(&self, keep: &[String]) {
        if let Ok(dir) = fs::read_dir(self.root.join("programs")) {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        self.prune_uploads();
    }

    /// Keeps only the newest uploads.
    pub fn prune_uploads(&self) {
        if let Ok(dir) = fs::read_dir(self.root.join("uploads")) {
            let mut uploads: Vec<_> = dir.flatten().map(|e| e.path()).collect();
            uploads.sort();
            let excess = uploads.len().saturating_sub(KEEP_UPLOADS);
            for old in uploads.into_iter().take(excess) {
                let _ = fs::remove_file(old);
            }
        }
    }

    /// Removes the upload `id` (its build failed for lack of space).
    pub fn discard_upload(&self, id: &str) {
        let _ = fs::remove_file(self.upload_path(id));
    }

    /// Removes one program folder (a failed build), unless it is current.
    pub fn discard(&self, id: &str) {
        if self.state().current.as_deref() != Some(id) {
            let _ = fs::remove_dir_all(self.record(id).dir);
        }
        self.prune_uploads();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_program_and_run_state_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProgramStore::open(dir.path()).unwrap();
        assert!(store.current().is_none());
        let a = store.new_id();
        fs::create_dir_all(store.record(&a).dir).unwrap();
        fs::write(store.record(&a).library(), b"so").unwrap();
        store.set_current(&a, true, Some("m".into())).unwrap();
        let b = store.new_id();
        assert_ne!(a, b);
        fs::create_dir_all(store.record(&b).dir).unwrap();
        fs::write(store.record(&b).library(), b"so").unwrap();
        store.set_current(&b, true, None).unwrap();
        let c = store.new_id();
        fs::create_dir_all(store.record(&c).dir).unwrap();
        fs::write(store.record(&c).library(), b"so").unwrap();
        store.set_current(&c, false, None).unwrap();
        assert!(!store.record(&a).dir.exists(), "older than previous: removed");
        assert!(store.record(&b).dir.exists(), "previous kept");
        let reopened = ProgramStore::open(dir.path()).unwrap();
        assert_eq!(reopened.current().unwrap().id, c);
        assert!(!reopened.state().run);
        reopened.set_run(true).unwrap();
        assert!(ProgramStore::open(dir.path()).unwrap().state().run);
    }
}
