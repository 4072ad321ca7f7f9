//! Version discovery, runtime logs, serial ports and the catch-all.

use super::error::ApiError;
use super::extract::Viewer;
use crate::logs::Level;
use crate::settings::{EditorCompat, MIN_EDITOR_VERSION};
use crate::state::App;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header::AUTHORIZATION};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// `GET /api/version` (no credentials): `{"version": "…"}`.
pub async fn version(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({ "version": app.settings.editor_compat.api_version() }))
}

/// `GET /api/capabilities` (no credentials): what Editor ≥ 4.2 reads before uploading and
/// before offering to send or fetch a project snapshot, with upstream's newest
/// `updatePolicy` and `bootloaderPort`.
pub async fn capabilities(State(app): State<Arc<App>>) -> Json<Value> {
    let deployment = crate::device::deployment();
    Json(json!({
        "runtimeVersion": app.settings.editor_compat.api_version(),
        "minEditorVersion": MIN_EDITOR_VERSION,
        "projectSnapshot": true,
        "updatePolicy": deployment.policy.as_str(),
        "bootloaderPort": deployment.sidecar_port,
    }))
}

/// `GET /api/runtime-logs[?id=n][&level=L]` → `{"runtime-logs": [{id, timestamp, level, message}]}`,
/// entries with `id >= n`.
pub async fn runtime_logs(
    State(app): State<Arc<App>>,
    _v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let min_id = match q.get("id").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| ApiError::BadRequest("`id` must be a non-negative number".into()))?,
    };
    let level = match q.get("level").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(l) => Some(
            Level::parse(l)
                .ok_or_else(|| ApiError::BadRequest("`level` must be DEBUG, INFO, WARNING or ERROR".into()))?,
        ),
    };
    Ok(Json(json!({ "runtime-logs": app.logs.since(min_id, level) })))
}

/// `GET /api/serial-ports` → `{"ports": [{"device", "description"}]}`.
pub async fn serial_ports(_v: Viewer) -> Json<Value> {
    let ports =
        tokio::task::spawn_blocking(|| list_serial_ports(Path::new("/sys/class/tty"))).await.unwrap_or_default();
    Json(
        json!({ "ports": ports.into_iter().map(|(device, description)| json!({ "device": device, "description": description })).collect::<Vec<_>>() }),
    )
}

/// Serial devices as pyserial lists them: tty class devices backed by real hardware (a
/// `device` link), leaving out the legacy 8250 placeholders that exist on every PC.
pub fn list_serial_ports(class_dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(class_dir) else { return Vec::new() };
    let mut ports = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dev = entry.path().join("device");
        if !dev.exists() {
            continue;
        }
        let subsystem = std::fs::read_link(dev.join("subsystem"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        if subsystem == "platform" || (subsystem == "pnp" && name.starts_with("ttyS")) {
            continue;
        }
        let read = |p: &Path| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let real = std::fs::canonicalize(&dev).ok();
        let description = real
            .as_deref()
            .and_then(|d| {
                // USB serial: the interface's device (one or two levels up) names the product.
                d.ancestors().take(3).find_map(|a| read(&a.join("product")).or_else(|| read(&a.join("interface"))))
            })
            .unwrap_or_else(|| "n/a".into());
        ports.push((format!("/dev/{name}"), description));
    }
    ports.sort();
    ports
}

/// Any other `/api/…` path. Upstream's catch-all needs a valid token, then answers a
/// one-segment path with 200 and an error object (`{"error": "Unknown argument"}`, or
/// `{"PostRequestError": …}` for a POST); a longer path gets a 404 there.
///
/// No Editor reads that 200 body: Editor ≤ 4.1.4 calls only routes served here, and reads
/// `{"error"}` only from `serial-ports`, which is served; Editor ≥ 4.2 validates every 200
/// body against the shape it expects, so a 200 error object turns a missing route into
/// "the device sent an unreadable …". So an unknown route answers 404 with a JSON error
/// (which still carries `"error": "Unknown argument"`), except in `editor_compat` `legacy`,
/// which keeps upstream's bodies exactly.
pub async fn api_fallback(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let Some(rest) = uri.path().strip_prefix("/api/") else {
        return Err(ApiError::NotFound("Not found".into()));
    };
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    app.auth.authenticate(authorization).map_err(ApiError::Unauthorized)?;
    let one_segment = !rest.trim_end_matches('/').contains('/');
    let upstream_200 = app.settings.editor_compat == EditorCompat::Legacy && one_segment;
    match method {
        Method::GET | Method::POST if !upstream_200 => Err(ApiError::Raw(
            StatusCode::NOT_FOUND,
            json!({
                "error": "Unknown argument",
                "msg": super::error::scrub(&format!("No such API route: {method} {}", uri.path())),
            }),
        )),
        Method::GET => Ok(Json(json!({ "error": "Unknown argument" }))),
        Method::POST => Ok(Json(json!({ "PostRequestError": "Unknown argument" }))),
        _ => Err(ApiError::Raw(StatusCode::METHOD_NOT_ALLOWED, json!({ "msg": "Method not allowed" }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_ports_skip_placeholders_and_name_usb_products() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path();
        let class = sys.join("class/tty");
        std::fs::create_dir_all(&class).unwrap();
        // ttyUSB0 → a USB interface whose parent names the product.
        let usb_if = sys.join("devices/usb1/1-1/1-1:1.0");
        std::fs::create_dir_all(usb_if.join("ttyUSB0")).unwrap();
        std::fs::write(sys.join("devices/usb1/1-1/product"), "FT232R USB UART\n").unwrap();
        std::fs::create_dir_all(sys.join("bus/usb-serial")).unwrap();
        std::os::unix::fs::symlink(sys.join("bus/usb-serial"), usb_if.join("ttyUSB0/subsystem")).unwrap();
        std::fs::create_dir_all(class.join("ttyUSB0")).unwrap();
        std::os::unix::fs::symlink(usb_if.join("ttyUSB0"), class.join("ttyUSB0/device")).unwrap();
        // ttyS3 → a platform placeholder.
        let plat = sys.join("devices/platform/serial8250");
        std::fs::create_dir_all(&plat).unwrap();
        std::fs::create_dir_all(sys.join("bus/platform")).unwrap();
        std::os::unix::fs::symlink(sys.join("bus/platform"), plat.join("subsystem")).unwrap();
        std::fs::create_dir_all(class.join("ttyS3")).unwrap();
        std::os::unix::fs::symlink(&plat, class.join("ttyS3/device")).unwrap();
        // tty1 → a virtual console, no device link.
        std::fs::create_dir_all(class.join("tty1")).unwrap();
        let ports = list_serial_ports(&class);
        assert_eq!(ports, vec![("/dev/ttyUSB0".to_string(), "FT232R USB UART".to_string())]);
    }
}
