//! The stored project (see [`crate::program::snapshot`]): `GET /api/project-snapshot/info`
//! for any signed-in user (deciding whether to offer retrieval is not privileged) and
//! `GET /api/project-snapshot` for admins only (the archive is not encrypted on the device:
//! this role check is the whole of its access control), in upstream's shapes.

use super::error::ApiError;
use super::extract::{Admin, Viewer};
use crate::state::App;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Archive bytes encoded per chunk: a multiple of 3, so every chunk is whole base64 quads.
const CHUNK: usize = 3 * 64 * 1024;

/// `GET /api/project-snapshot/info` → `{"present": false}` or `{"present": true,
/// "formatVersion", "projectName", "editorVersion", "uploadedBy", "timestamp", "libraries",
/// "sizeBytes"}`.
pub async fn info(State(app): State<Arc<App>>, _v: Viewer) -> Json<Value> {
    match app.programs.snapshots.current(&app.programs.store) {
        None => Json(json!({ "present": false })),
        Some(stored) => {
            let mut body = serde_json::to_value(&*stored.meta).unwrap_or_else(|_| json!({}));
            body["present"] = json!(true);
            Json(body)
        }
    }
}

/// `GET /api/project-snapshot` (admin) → `{"projectName", "formatVersion", "filename":
/// "project.zip", "contentBase64"}`, streamed: memory stays at one chunk whatever the
/// archive's size. A read failure after the head ends the response mid-value (invalid JSON),
/// so a partial archive is never taken for a whole one.
pub async fn download(State(app): State<Arc<App>>, _a: Admin) -> Result<Response, ApiError> {
    let not_stored = || ApiError::NotFound("No project is stored on this device".into());
    let stored = app.programs.snapshots.current(&app.programs.store).ok_or_else(not_stored)?;
    let file = tokio::fs::File::open(&stored.archive).await.map_err(|_| not_stored())?;
    let head = json!({
        "projectName": stored.meta.project_name,
        "formatVersion": stored.meta.format_version,
        "filename": "project.zip",
    });
    // The head object without its closing brace, then the value as it is encoded.
    let mut head = head.to_string();
    head.pop();
    head.push_str(",\"contentBase64\":\"");
    let chunks = futures_util::stream::unfold((Some(file), Some(head)), |(file, head)| async move {
        if let Some(head) = head {
            return Some((Ok(Bytes::from(head)), (file, None)));
        }
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        // Fill the chunk completely (short reads would break the base64 quads).
        while filled < CHUNK {
            match file.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Some((Err(e), (None, None))),
            }
        }
        if filled == 0 {
            return Some((Ok(Bytes::from_static(b"\"}")), (None, None)));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(&buf[..filled]);
        Some((Ok(Bytes::from(encoded)), (Some(file), None)))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(chunks)).into_response())
}
