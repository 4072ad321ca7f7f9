//! A read-only variable monitor over REST (ours): the running program's debug variables by
//! name and their current values, for a browser, curl or a script, without the Editor.

use super::error::ApiError;
use super::extract::Viewer;
use crate::state::App;
use crate::variables::{NamesUnavailable, VarMap, decode};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use openplc_port::SampleError;
use serde::Deserialize;
use serde_json::{Value, json};
use shared_abi::debug::ProgramInfo;
use std::sync::Arc;
use std::time::Duration;

/// Most variables one values request reads (the Editor polls 60 at a time).
pub const MAX_PER_REQUEST: usize = 256;
const READ_TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(text: impl Into<String>) -> ApiError {
    ApiError::Raw(StatusCode::CONFLICT, json!({ "msg": text.into() }))
}

/// The running program and its variables' names, or why not (409; 500 if the read broke).
async fn current(app: &Arc<App>) -> Result<(ProgramInfo, Arc<VarMap>), ApiError> {
    crate::variables::running(app).await.map_err(|e| match e {
        NamesUnavailable::Task(_) => ApiError::internal(e),
        other => unavailable(other.to_string()),
    })
}

/// `GET /api/variables`: `{"md5", "variables": [{"index", "name", "type"}]}`.
pub async fn list(State(app): State<Arc<App>>, _v: Viewer) -> Result<Json<Value>, ApiError> {
    let (info, map) = current(&app).await?;
    let vars: Vec<Value> =
        map.vars.iter().map(|v| json!({ "index": v.index, "name": v.name, "type": v.iec_type })).collect();
    Ok(Json(json!({ "md5": info.md5_str(), "variables": vars })))
}

#[derive(Deserialize)]
pub struct Selection {
    /// Comma-separated names.
    names: Option<String>,
    /// Comma-separated debug indices.
    indices: Option<String>,
}

/// `GET /api/variables/values[?names=A,B][&indices=0,1]`: values from a scan that began
/// after the request arrived, `{"cycle", "values": [{"index", "name", "type", "value"}]}`.
/// Without a selection, every variable of a program with at most 256.
pub async fn values(
    State(app): State<Arc<App>>,
    _v: Viewer,
    Query(selection): Query<Selection>,
) -> Result<Json<Value>, ApiError> {
    let (_, map) = current(&app).await?;
    let mut wanted: Vec<u32> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let split = |s: &Option<String>| -> Vec<String> {
        s.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
    };
    for name in split(&selection.names) {
        match map.by_name(&name) {
            Some(v) => wanted.push(v.index),
            None => unknown.push(name),
        }
    }
    for index in split(&selection.indices) {
        match index.parse::<u32>().ok().and_then(|i| map.by_index(i)) {
            Some(v) => wanted.push(v.index),
            None => unknown.push(index),
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::NotFound(format!("No such variable: {}", unknown.join(", "))));
    }
    if wanted.is_empty() {
        if selection.names.is_some() || selection.indices.is_some() || map.vars.len() > MAX_PER_REQUEST {
            return Err(ApiError::BadRequest(format!(
                "Name up to {MAX_PER_REQUEST} variables: ?names=A,B or ?indices=0,1"
            )));
        }
        wanted = map.vars.iter().map(|v| v.index).collect();
    }
    if wanted.len() > MAX_PER_REQUEST {
        return Err(ApiError::BadRequest(format!("At most {MAX_PER_REQUEST} variables per request")));
    }
    let port = app.plc.port();
    let sampled = port.sample(&wanted, port.arrival(), READ_TIMEOUT).await.map_err(|e| match e {
        SampleError::Timeout(_) => unavailable("No scan completed in time (is the PLC running?)"),
        other => unavailable(other.to_string()),
    })?;
    let values: Vec<Value> = wanted
        .iter()
        .zip(sampled)
        .filter_map(|(&index, raw)| {
            let var = map.by_index(index)?;
            let value = raw.map(|raw| decode(&var.iec_type, &raw)).unwrap_or(Value::Null);
            Some(json!({ "index": index, "name": var.name, "type": var.iec_type, "value": value }))
        })
        .collect();
    Ok(Json(json!({ "cycle": port.cycle(), "values": values })))
}
