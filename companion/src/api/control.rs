//! Run/stop: `start-plc`, `stop-plc`, `cold-start-plc` (upstream's reply bodies, see
//! [`crate::control`]), the run/stop switch (`GET /api/switch`, and ours: `POST /api/switch`
//! to set a switch that has no hardware behind it), and `retain-status`.

use super::error::ApiError;
use super::extract::{JsonBody, Operator, Viewer};
use crate::control::{self, Reply};
use crate::retain::status::{Layout, retain_json};
use crate::state::App;
use axum::Json;
use axum::extract::State;
use openplc_plugin_host::SwitchPosition;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

fn answer(app: &App, reply: Reply, who: &str, done: &str) -> Json<Value> {
    control::remember_run_state(app, reply);
    if reply.is_ok() {
        app.logs.info(format!("PLC {done} by {who:?}"));
    }
    Json(json!({ "status": reply.wire() }))
}

/// `GET /api/start-plc` → `{"status": "START:OK"}` and upstream's other answers.
pub async fn start_plc(State(app): State<Arc<App>>, Operator(session): Operator) -> Json<Value> {
    let reply = control::start(&app).await;
    answer(&app, reply, &session.user.username, "started")
}

/// `GET /api/stop-plc` → `{"status": "STOP:OK"}` (`STOP:ERROR` when not running).
pub async fn stop_plc(State(app): State<Arc<App>>, Operator(session): Operator) -> Json<Value> {
    let reply = control::stop(&app).await;
    answer(&app, reply, &session.user.username, "stopped")
}

/// `GET /api/cold-start-plc` → `{"status": "COLD_START:OK"}`, `COLD_START:ERROR_ALREADY_RUNNING`
/// (stop first), `COLD_START:ERROR_SWITCH_STOP`, `COLD_START:ERROR`, `COMMAND:BUSY`.
pub async fn cold_start_plc(State(app): State<Arc<App>>, Operator(session): Operator) -> Json<Value> {
    let reply = control::cold_start(&app).await;
    answer(&app, reply, &session.user.username, "cold-started")
}

/// `GET /api/switch` → `{"switchPosition": "run" | "stop"}` (`"run"` unless a plugin or a
/// user set it to STOP).
pub async fn switch(State(app): State<Arc<App>>, _v: Viewer) -> Json<Value> {
    Json(json!({ "switchPosition": app.switch.position().as_str() }))
}

#[derive(Deserialize)]
pub struct SwitchBody {
    position: String,
}

/// `POST /api/switch {"position": "run" | "stop"}` (ours; `user` role or higher): moves a
/// switch that has no hardware behind it. Moving it to STOP stops a running PLC.
pub async fn set_switch(
    State(app): State<Arc<App>>,
    Operator(session): Operator,
    JsonBody(body): JsonBody<SwitchBody>,
) -> Result<Json<Value>, ApiError> {
    let position = SwitchPosition::parse(&body.position)
        .ok_or_else(|| ApiError::BadRequest("`position` must be \"run\" or \"stop\"".into()))?;
    app.switch.set(position, &format!("user {:?}", session.user.username));
    Ok(Json(json!({ "switchPosition": app.switch.position().as_str() })))
}

/// `GET /api/retain-status` → `{"retain": {start, format, store, blob_bytes, stored_bytes,
/// result, restored, …}, "online_change": {…}|null}` (upstream's fields; see
/// [`crate::retain::status`]; `online_change`: see [`crate::program::online`]).
pub async fn retain_status(State(app): State<Arc<App>>, _v: Viewer) -> Json<Value> {
    let port = app.plc.port();
    let current = port.status().map(|s| s.program_gen).unwrap_or(0);
    let program = port
        .retain_saved()
        .filter(|r| r.program_gen != 0 && r.program_gen == current && r.count > 0)
        .map(|r| Layout::of(&r));
    let store = app.plc.retain_store().map(|s| s.describe());
    let last = app.plc.last_start();
    // The last upload's online change, when it loaded the program now running.
    let online = last.as_ref().and_then(|l| l.online.as_ref()).map(|c| c.json()).unwrap_or(Value::Null);
    Json(json!({ "retain": retain_json(store.as_deref(), program, last.as_ref()), "online_change": online }))
}
