//! `POST /api/upload-file` and `GET /api/compilation-status`.

use super::error::ApiError;
use super::extract::{Operator, Viewer};
use crate::program::compiler::BuildRequest;
use crate::program::snapshot::{self, MAX_METADATA_BYTES, MAX_SNAPSHOT_BYTES, SnapshotError};
use crate::program::store::ProgramRecord;
use crate::program::upload::{PartialUpload, ReceiveError};
use crate::program::{CompilationStatus, Programs};
use crate::state::App;
use axum::Json;
use axum::extract::multipart::Field;
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest `program.zip` accepted (its contents may not inflate beyond 50 MiB either).
pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;
/// Largest multipart body: the zip, the project snapshot Editor ≥ 4.2 may add and the
/// multipart framing (upstream's overall cap is built the same way).
pub const MAX_UPLOAD_BODY: usize = (MAX_ZIP_BYTES + MAX_SNAPSHOT_BYTES) as usize + 8 * 1024 * 1024;

fn upload_fail(status: StatusCode, why: &str) -> ApiError {
    ApiError::Raw(status, json!({ "UploadFileFail": super::error::scrub(why), "CompilationStatus": "FAILED" }))
}

/// 413 too large, 507 for a full (or failing) device, 500 for another write failure; the
/// partial file is gone by then.
fn receive_fail(e: ReceiveError) -> ApiError {
    let status = match &e {
        ReceiveError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        e if e.is_storage() => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    upload_fail(status, &e.to_string())
}

/// What the upload's query asks of the build: `?clean=1` (upstream's parameter; also `true`
/// or `yes`) compiles everything, nothing taken from the build cache, and starts the new
/// program cold (no online change).
fn build_request(query: Option<&str>) -> BuildRequest {
    let clean = query.unwrap_or_default().split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == "clean" && matches!(value.to_ascii_lowercase().as_str(), "1" | "true" | "yes")
    });
    BuildRequest { clean }
}

fn unreadable(_: axum::extract::multipart::MultipartError) -> ApiError {
    upload_fail(StatusCode::BAD_REQUEST, "The multipart body could not be read")
}

/// Removes what an upload stored when it does not reach its build.
struct Unfinished<'a> {
    programs: &'a Programs,
    id: &'a str,
    done: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.programs.store.discard(self.id);
        }
    }
}

/// What the snapshot parts amounted to.
#[derive(Default)]
struct SnapshotParts {
    /// Bytes of the received archive, or why it was not received.
    archive: Option<Result<u64, SnapshotError>>,
    metadata: Option<String>,
}

/// Saves the part `file` (and the optional project snapshot) and starts the build in the
/// background; answers at once. A second upload while one is received or built is refused.
pub async fn upload_file(
    State(app): State<Arc<App>>,
    Operator(session): Operator,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let build_request = build_request(query.as_deref());
    let mut multipart = Multipart::from_request(request, &app).await.map_err(|_| {
        upload_fail(StatusCode::BAD_REQUEST, "Expected a multipart/form-data upload with a `file` part")
    })?;
    let ticket = app.programs.begin().map_err(|e| {
        ApiError::Raw(
            StatusCode::CONFLICT,
            json!({ "UploadFileFail": e.to_string(), "CompilationStatus": app.programs.status().status }),
        )
    })?;
    let id = app.programs.store.new_id();
    let record = app.programs.store.record(&id);
    let mut unfinished = Unfinished { programs: &app.programs, id: &id, done: false };
    let path = app.programs.store.upload_path(&id);
    let mut saved: Option<u64> = None;
    let mut parts = SnapshotParts::default();
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("file") if saved.is_none() => {
                // Dropped unfinished on any early return: the partial file goes with it.
                let mut file = PartialUpload::create(&path, MAX_ZIP_BYTES).await.map_err(receive_fail)?;
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    file.write(&chunk).await.map_err(receive_fail)?;
                }
                saved = Some(file.finish().await.map_err(receive_fail)?);
            }
            Some("snapshot") if parts.archive.is_none() => {
                parts.archive = Some(receive_snapshot(&record, &mut field).await?);
            }
            Some("snapshot_metadata") if parts.metadata.is_none() => {
                parts.metadata = Some(receive_metadata(&mut field).await?);
            }
            _ => while field.chunk().await.map_err(unreadable)?.is_some() {},
        }
    }
    let Some(bytes) = saved else {
        return Err(upload_fail(StatusCode::BAD_REQUEST, "No `file` part in the upload"));
    };
    let warning = keep_snapshot(&record, parts);
    if let Some(w) = &warning {
        app.logs.warn(w.to_string());
    }
    app.logs.info(format!("Program upload of {bytes} bytes by {:?}", session.user.username));
    unfinished.done = true;
    app.programs.spawn_build_with(ticket, id.clone(), build_request);
    Ok(Json(json!({
        "UploadFileFail": "",
        "CompilationStatus": "COMPILING",
        "ProjectSnapshotWarning": warning.map(|w| w.to_string()).unwrap_or_default(),
    })))
}

/// Streams the archive beside the program; an archive over the cap is read to its end and
/// dropped (the upload itself goes on). A write failure other than the cap fails the upload.
async fn receive_snapshot(
    record: &ProgramRecord,
    field: &mut Field<'_>,
) -> Result<Result<u64, SnapshotError>, ApiError> {
    let path = snapshot::receiving_path(record);
    let write_fail = |source| receive_fail(ReceiveError::Write { source });
    // The program's folder as the build makes it (rt-core's account reads its library); the
    // snapshot's own folder for the companion only.
    tokio::fs::create_dir_all(&record.dir).await.map_err(write_fail)?;
    if let Some(dir) = path.parent() {
        let mut folder = tokio::fs::DirBuilder::new();
        folder.mode(0o700);
        match folder.create(dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(write_fail(e)),
            _ => {}
        }
    }
    let mut file = PartialUpload::create(&path, MAX_SNAPSHOT_BYTES).await.map_err(receive_fail)?;
    while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
        match file.write(&chunk).await {
            Ok(()) => {}
            Err(ReceiveError::TooLarge { .. }) => {
                drop(file);
                while field.chunk().await.map_err(unreadable)?.is_some() {}
                return Ok(Err(SnapshotError::TooLarge));
            }
            Err(e) => return Err(receive_fail(e)),
        }
    }
    Ok(Ok(file.finish().await.map_err(receive_fail)?))
}

/// The metadata text (at most 64 KiB are kept; more makes it unreadable, not the upload).
async fn receive_metadata(field: &mut Field<'_>) -> Result<String, ApiError> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
        if text.len() + chunk.len() <= MAX_METADATA_BYTES {
            text.extend_from_slice(&chunk);
        } else {
            text.clear();
            text.push(b'!');
        }
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Keeps the snapshot with the program when both parts came and make sense; otherwise
/// drops what arrived and says why (`None`: nothing to say, including no snapshot at all).
fn keep_snapshot(record: &ProgramRecord, parts: SnapshotParts) -> Option<SnapshotError> {
    let result = match (parts.archive, parts.metadata) {
        (None, _) => return None,
        (Some(Err(e)), _) => Err(e),
        (Some(Ok(_)), None) => Err(SnapshotError::NoMetadata),
        (Some(Ok(size)), Some(text)) => {
            snapshot::normalize_metadata(&text, size).and_then(|meta| snapshot::keep(record, &meta))
        }
    };
    match result {
        Ok(()) => None,
        Err(e) => {
            snapshot::discard(record);
            Some(e)
        }
    }
}

/// `GET /api/compilation-status` → `{"status", "logs", "exit_code"}`.
pub async fn compilation_status(State(app): State<Arc<App>>, _v: Viewer) -> Json<CompilationStatus> {
    Json(app.programs.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_is_read_from_the_query() {
        for (query, clean) in [
            (None, false),
            (Some(""), false),
            (Some("clean=1"), true),
            (Some("x=2&clean=true"), true),
            (Some("clean=0"), false),
            (Some("clean"), false),
            (Some("unclean=1"), false),
        ] {
            assert_eq!(build_request(query), BuildRequest { clean }, "{query:?}");
        }
    }
}
