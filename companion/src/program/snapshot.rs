//! The source project an Editor (≥ 4.2) may send with an upload (multipart parts `snapshot`,
//! the project archive, and `snapshot_metadata`, JSON describing it), so another engineer
//! can fetch the project from the device later.
//!
//! The archive is opaque: it is never opened here. Everything the device says about it
//! comes from the metadata, cleaned as upstream cleans it (known keys only, printable text,
//! bounded lengths). Both are kept inside the program's own folder
//! (`programs/<id>/snapshot/project.zip` and `project.json`), so they live and die with the
//! program they came with: a failed build is discarded with its folder and the device keeps
//! the previous program **and its snapshot** (upstream clears the snapshot before building,
//! and its failed build leaves no program either); an upload without a snapshot leaves the
//! new program without one.

use crate::fsutil::write_atomic;
use crate::program::store::{ProgramRecord, ProgramStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest archive kept (upstream's cap).
pub const MAX_SNAPSHOT_BYTES: u64 = 100 * 1024 * 1024;
/// Largest metadata text read.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
const MAX_STRING: usize = 512;
const MAX_LIBRARIES: usize = 256;

/// One library the project uses, as its metadata names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    pub name: String,
    pub version: String,
    pub hash: String,
}

/// The stored description of a project, the shape `GET /api/project-snapshot/info` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub format_version: u64,
    pub project_name: String,
    pub editor_version: String,
    pub uploaded_by: String,
    pub timestamp: String,
    pub libraries: Vec<Library>,
    pub size_bytes: u64,
}

/// Why a snapshot is not kept; the upload goes on without it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("Snapshot ignored: the upload carried an archive but no snapshot_metadata")]
    NoMetadata,
    #[error("Snapshot ignored: snapshot_metadata is not valid JSON")]
    NotJson,
    #[error("Snapshot ignored: snapshot metadata must be a JSON object")]
    NotObject,
    #[error("Snapshot ignored: snapshot metadata needs an integer formatVersion of 1 or more")]
    FormatVersion,
    #[error("Snapshot ignored: snapshot metadata needs a projectName")]
    ProjectName,
    #[error("Snapshot ignored: archive is too large (limit {MAX_SNAPSHOT_BYTES} bytes)")]
    TooLarge,
    #[error("Snapshot ignored: could not store the project snapshot ({0})")]
    Storage(String),
}

/// Printable characters only (no newline, tab or other control or formatting character: the
/// text ends up in a discovery reply and in other clients' UI), trimmed, 512 at most.
fn clean(value: Option<&Value>) -> String {
    let Some(Value::String(s)) = value else { return String::new() };
    let kept: String = s.chars().filter(|&c| !crate::text::is_hidden(c)).collect();
    let bounded: String = kept.trim().chars().take(MAX_STRING).collect();
    bounded.trim_end().to_string()
}

/// The metadata the device will keep, from what the client sent (`size_bytes` is the
/// archive's real size).
pub fn normalize_metadata(raw: &str, size_bytes: u64) -> Result<Metadata, SnapshotError> {
    let value: Value = serde_json::from_str(raw).map_err(|_| SnapshotError::NotJson)?;
    let Value::Object(map) = value else { return Err(SnapshotError::NotObject) };
    let format_version = match map.get("formatVersion") {
        Some(Value::Number(n)) => n.as_u64().filter(|&v| v >= 1).ok_or(SnapshotError::FormatVersion)?,
        _ => return Err(SnapshotError::FormatVersion),
    };
    let project_name = clean(map.get("projectName"));
    if project_name.is_empty() {
        return Err(SnapshotError::ProjectName);
    }
    let libraries = match map.get("libraries") {
        Some(Value::Array(list)) => list
            .iter()
            .take(MAX_LIBRARIES)
            .filter_map(|entry| {
                let Value::Object(e) = entry else { return None };
                let name = clean(e.get("name"));
                (!name.is_empty()).then(|| Library {
                    name,
                    version: clean(e.get("version")),
                    hash: clean(e.get("hash")),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Metadata {
        format_version,
        project_name,
        editor_version: clean(map.get("editorVersion")),
        uploaded_by: clean(map.get("uploadedBy")),
        timestamp: clean(map.get("timestamp")),
        libraries,
        size_bytes,
    })
}

/// The snapshot's folder inside a program's folder (the companion's only).
pub const FOLDER: &str = "snapshot";

fn folder(record: &ProgramRecord) -> PathBuf {
    record.dir.join(FOLDER)
}

/// Where an upload's archive is received (beside the program it comes with).
pub fn receiving_path(record: &ProgramRecord) -> PathBuf {
    folder(record).join("project.zip.part")
}

/// Makes the received archive and its metadata the program's snapshot: the metadata is
/// written atomically, then the archive renamed into place (the archive is what makes a
/// snapshot present, so a half-kept one is never offered).
pub fn keep(record: &ProgramRecord, meta: &Metadata) -> Result<(), SnapshotError> {
    let dir = folder(record);
    let storage = |e: std::io::Error| SnapshotError::Storage(e.to_string());
    let text = serde_json::to_vec(meta).map_err(|e| SnapshotError::Storage(e.to_string()))?;
    write_atomic(&dir.join("project.json"), &text, 0o600).map_err(storage)?;
    std::fs::rename(dir.join("project.zip.part"), dir.join("project.zip")).map_err(storage)
}

/// Drops whatever an upload left of a snapshot that is not kept.
pub fn discard(record: &ProgramRecord) {
    let _ = std::fs::remove_dir_all(folder(record));
}

/// The stored snapshot of one program: its description and where its archive is.
#[derive(Clone, Debug)]
pub struct Stored {
    pub meta: Arc<Metadata>,
    pub archive: PathBuf,
}

fn read(dir: &Path) -> Option<Stored> {
    let archive = dir.join("project.zip");
    if !archive.is_file() {
        return None;
    }
    let meta: Metadata = serde_json::from_slice(&std::fs::read(dir.join("project.json")).ok()?).ok()?;
    Some(Stored { meta: Arc::new(meta), archive })
}

/// The current program's snapshot, read once per program (UDP discovery asks on every
/// probe, unauthenticated: no disk access per datagram).
#[derive(Default)]
pub struct Snapshots {
    cache: Mutex<Option<(String, Option<Stored>)>>,
}

impl Snapshots {
    pub fn current(&self, store: &ProgramStore) -> Option<Stored> {
        let record = store.record(&store.state().current?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match &*cache {
            Some((id, stored)) if *id == record.id => stored.clone(),
            _ => {
                let stored = read(&folder(&record));
                *cache = Some((record.id, stored.clone()));
                stored
            }
        }
    }

    /// What discovery advertises: the name and timestamp of the stored project, or nothing.
    pub fn advertised(&self, store: &ProgramStore) -> Option<(String, String)> {
        self.current(store).map(|s| (s.meta.project_name.clone(), s.meta.timestamp.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_cleaned_and_checked_as_upstream() {
        let m = normalize_metadata(
            r#"{"formatVersion":1,"projectName":"Line\nBreak\tProject ","editorVersion":"4.2.0","uploadedBy":"me",
               "timestamp":"2026-08-31T12:00:00Z","somethingElse":"dropped",
               "libraries":["x",{"version":"1"},{"name":"Real","version":"1.2","hash":"abc"}]}"#,
            7,
        )
        .unwrap();
        assert_eq!(m.project_name, "LineBreakProject");
        assert_eq!(m.libraries, vec![Library { name: "Real".into(), version: "1.2".into(), hash: "abc".into() }]);
        assert_eq!(m.size_bytes, 7);
        let json = serde_json::to_value(&m).unwrap();
        assert!(json.get("somethingElse").is_none());
        assert_eq!(json["formatVersion"], 1);
        assert_eq!(json["sizeBytes"], 7);

        assert_eq!(normalize_metadata(r#"{"projectName":"P"}"#, 0), Err(SnapshotError::FormatVersion));
        assert_eq!(
            normalize_metadata(r#"{"formatVersion":0,"projectName":"P"}"#, 0),
            Err(SnapshotError::FormatVersion)
        );
        assert_eq!(
            normalize_metadata(r#"{"formatVersion":1.5,"projectName":"P"}"#, 0),
            Err(SnapshotError::FormatVersion)
        );
        assert_eq!(normalize_metadata(r#"{"formatVersion":1,"projectName":"  "}"#, 0), Err(SnapshotError::ProjectName));
        assert_eq!(normalize_metadata(r#"["not","an","object"]"#, 0), Err(SnapshotError::NotObject));
        assert_eq!(normalize_metadata("{", 0), Err(SnapshotError::NotJson));
        let long = format!(r#"{{"formatVersion":2,"projectName":"{}"}}"#, "é".repeat(600));
        assert_eq!(normalize_metadata(&long, 0).unwrap().project_name.chars().count(), 512);
    }

    #[test]
    fn a_snapshot_is_present_only_once_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProgramStore::open(dir.path()).unwrap();
        let id = store.new_id();
        let record = store.record(&id);
        std::fs::create_dir_all(folder(&record)).unwrap();
        std::fs::write(record.library(), b"so").unwrap();
        std::fs::write(receiving_path(&record), b"\x00 not a zip \xff").unwrap();
        store.set_current(&id, true, None).unwrap();
        let snapshots = Snapshots::default();
        assert!(read(&folder(&record)).is_none(), "received, not kept");
        let meta = normalize_metadata(r#"{"formatVersion":1,"projectName":"P","timestamp":"T"}"#, 13).unwrap();
        keep(&record, &meta).unwrap();
        let fresh = Snapshots::default();
        let stored = fresh.current(&store).unwrap();
        assert_eq!(std::fs::read(&stored.archive).unwrap(), b"\x00 not a zip \xff");
        assert_eq!(fresh.advertised(&store), Some(("P".into(), "T".into())));
        assert!(snapshots.current(&store).is_some());
        discard(&record);
        assert!(read(&folder(&record)).is_none());
    }
}
