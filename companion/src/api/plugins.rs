//! Plugins: what they are doing (ours) and upstream's command channel to a native plugin's
//! `execute_command` (`POST /api/plugin-command`, runtime ≥ 4.1.0; EtherCAT tooling uses it).

use super::error::ApiError;
use super::extract::{JsonBody, Operator, Viewer};
use crate::state::App;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use openplc_plugin_host::CommandError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /api/plugins` (ours): every plugin's state, and the built-in Modbus server's and
/// master's counters and device states.
pub async fn plugins(State(app): State<Arc<App>>, _v: Viewer) -> Json<Value> {
    Json(app.plugins.status().await)
}

#[derive(Deserialize)]
pub struct PluginCommand {
    pub plugin: String,
    pub command: String,
    #[serde(default)]
    pub params: Value,
}

/// `POST /api/plugin-command` `{"plugin", "command", "params"}`: the plugin receives
/// `{"command", "params"}` and its JSON reply is the response body. A plugin can act on
/// the plant, so this needs more than a viewer, and every command is logged with its user.
pub async fn plugin_command(
    State(app): State<Arc<App>>,
    Operator(session): Operator,
    JsonBody(req): JsonBody<PluginCommand>,
) -> Result<Response, ApiError> {
    if req.plugin.is_empty() || req.command.is_empty() {
        return Err(ApiError::BadRequest("plugin and command must not be empty".into()));
    }
    let forwarded = json!({ "command": req.command, "params": req.params }).to_string();
    app.logs.info(format!("Plugin command {:?} to {:?} by {:?}", req.command, req.plugin, session.user.username));
    match app.plugins.execute_command(&req.plugin, forwarded).await {
        Ok(reply) => Ok((StatusCode::OK, Json(reply_body(&reply))).into_response()),
        Err(CommandError::Failed { code, reply }) => {
            app.logs.warn(format!("Plugin {:?} refused command {:?} ({code}): {reply}", req.plugin, req.command));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(reply_body(&reply))).into_response())
        }
        // The newest Editor scans for EtherCAT devices through a plugin named `ethercat`.
        Err(CommandError::NoSuchPlugin) if req.plugin == "ethercat" => {
            Err(ApiError::Raw(StatusCode::NOT_FOUND, json!({ "error": super::device::NO_ETHERCAT })))
        }
        Err(e @ CommandError::NoSuchPlugin) => Err(ApiError::NotFound(format!("Plugin {:?}: {e}", req.plugin))),
        Err(e @ CommandError::NotRunning) => Err(ApiError::Conflict(format!("Plugin {:?}: {e}", req.plugin))),
        Err(e @ (CommandError::Unsupported | CommandError::InvalidCommand(_))) => {
            Err(ApiError::BadRequest(format!("Plugin {:?}: {e}", req.plugin)))
        }
    }
}

/// A plugin's reply as it sent it when it is JSON, else wrapped as `{"response": text}`.
fn reply_body(reply: &str) -> Value {
    serde_json::from_str(reply).unwrap_or_else(|_| json!({ "response": reply }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_that_are_not_json_are_wrapped() {
        assert_eq!(reply_body(r#"{"ok":true}"#), json!({"ok": true}));
        assert_eq!(reply_body("done"), json!({"response": "done"}));
        assert_eq!(reply_body(""), json!({"response": ""}));
    }
}
