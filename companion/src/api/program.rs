//! `POST /api/upload-file` and `GET /api/compilation-status`.

use super::error::ApiError;
use super::extract::{Operator, Viewer};
use crate::program::CompilationStatus;
use crate::program::compiler::BuildRequest;
use crate::program::upload::{PartialUpload, ReceiveError};
use crate::state::App;
use axum::Json;
use axum::extract::{FromRequest, Multipart, RawQuery, Request, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

/// Largest `program.zip` accepted (its contents may not inflate beyond 50 MiB either).
pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;
/// Largest multipart body: the zip plus the optional parts Editor ≥ 4.2 may add
/// (`snapshot`, `snapshot_metadata`), which are read and discarded.
pub const MAX_UPLOAD_BODY: usize = 256 * 1024 * 1024;

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
/// or `yes`) compiles everything, nothing taken from the build cache.
fn build_request(query: Option<&str>) -> BuildRequest {
    let clean = query.unwrap_or_default().split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == "clean" && matches!(value.to_ascii_lowercase().as_str(), "1" | "true" | "yes")
    });
    BuildRequest { clean }
}

/// Saves the part `file` and starts the build in the background; answers at once.
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
            json!({ "UploadFileFail": e.to_string(), "CompilationStatus": "COMPILING" }),
        )
    })?;
    let id = app.programs.store.new_id();
    let path = app.programs.store.upload_path(&id);
    let mut saved: Option<u64> = None;
    let bad = |_| upload_fail(StatusCode::BAD_REQUEST, "The multipart body could not be read");
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        if field.name() == Some("file") && saved.is_none() {
            // Dropped unfinished on any early return: the partial file goes with it.
            let mut file = PartialUpload::create(&path, MAX_ZIP_BYTES).await.map_err(receive_fail)?;
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                file.write(&chunk).await.map_err(receive_fail)?;
            }
            saved = Some(file.finish().await.map_err(receive_fail)?);
        } else {
            while field.chunk().await.map_err(bad)?.is_some() {}
        }
    }
    let Some(bytes) = saved else {
        return Err(upload_fail(StatusCode::BAD_REQUEST, "No `file` part in the upload"));
    };
    app.logs.info(format!("Program upload of {bytes} bytes by {:?}", session.user.username));
    app.programs.spawn_build_with(ticket, id, build_request);
    Ok(Json(json!({ "UploadFileFail": "", "CompilationStatus": "COMPILING" })))
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
