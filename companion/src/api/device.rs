//! `GET /api/device-info` (the machine, from the system itself) and upstream's EtherCAT
//! discovery routes, which answer that this runtime has no EtherCAT master in the shapes
//! the Editor reads (`available: false` with a message, `status: "not_available"`).

use super::extract::{JsonBody, Operator, Viewer};
use crate::device;
use axum::Json;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// What every EtherCAT route says.
pub const NO_ETHERCAT: &str = "No EtherCAT master on this runtime";

/// `GET /api/device-info` → `{"hostname", "architecture", "kernel", "system",
/// "containerized", "updatePolicy", "bootloaderPort"}` (and `sidecarPort`, the same port under
/// the name the 4.2 line used).
pub async fn device_info(_v: Viewer) -> Json<Value> {
    let u = device::uname();
    let d = device::deployment();
    Json(json!({
        "hostname": crate::tls::hostname().unwrap_or_default(),
        "architecture": u.as_ref().map(|u| u.machine.as_str()).unwrap_or(std::env::consts::ARCH),
        "kernel": u.as_ref().map(|u| u.release.as_str()).unwrap_or_default(),
        "system": u.as_ref().map(|u| u.sysname.as_str()).unwrap_or("Linux"),
        "containerized": d.containerized,
        "updatePolicy": d.policy.as_str(),
        "bootloaderPort": d.sidecar_port,
        "sidecarPort": d.sidecar_port,
    }))
}

/// `GET /api/discovery/ethercat/status` → `{"available": false, "message": …}`.
pub async fn ethercat_status(_v: Viewer) -> Json<Value> {
    Json(json!({ "available": false, "message": NO_ETHERCAT }))
}

/// `GET /api/discovery/interfaces` → `{"status": "not_available", "interfaces": [], "message"}`.
pub async fn interfaces(_v: Viewer) -> Json<Value> {
    Json(json!({ "status": "not_available", "interfaces": [], "message": NO_ETHERCAT }))
}

fn interface_of(body: &Value) -> Value {
    body.get("interface").filter(|v| v.is_string()).cloned().unwrap_or(json!(""))
}

/// `POST /api/discovery/ethercat/scan` → `{"status": "not_available", "devices": [], …}`.
pub async fn scan(_o: Operator, JsonBody(body): JsonBody<Value>) -> Json<Value> {
    Json(json!({
        "status": "not_available", "devices": [], "message": NO_ETHERCAT, "scan_time_ms": 0,
        "interface": interface_of(&body),
    }))
}

/// `POST /api/discovery/ethercat/test` → `{"status": "not_available", "connected": false, …}`.
pub async fn test(_o: Operator, JsonBody(_body): JsonBody<Value>) -> Json<Value> {
    Json(json!({
        "status": "not_available", "connected": false, "device": null, "message": NO_ETHERCAT,
        "response_time_ms": 0,
    }))
}

/// `POST /api/discovery/ethercat/validate` → `{"valid": false, "errors": [NO_ETHERCAT], …}`.
pub async fn validate(_o: Operator, JsonBody(_body): JsonBody<Value>) -> Json<Value> {
    Json(json!({ "valid": false, "errors": [NO_ETHERCAT], "warnings": [] }))
}

/// `GET /api/discovery/ethercat/runtime-status` and `…/diagnostics` → 503
/// `{"status": "not_available", "message"}` (upstream's answer when there is no master).
pub async fn unavailable(_v: Viewer) -> (StatusCode, Json<Value>) {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_available", "message": NO_ETHERCAT })))
}
