//! The monitor's own REST calls (the page also uses the Editor's: login, logout, status,
//! start/stop, variables, plugins): an overview of the program and runtime, forcing and
//! releasing a variable by index with a typed value, and resetting the cycle statistics.
//! Each needs the `Authorization` header like every other route; forcing, releasing and
//! resetting need the `user` role, and a viewer's attempt is refused *and* logged.

use super::value::{self, ValueError};
use crate::api::error::ApiError;
use crate::api::extract::{JsonBody, Operator, Viewer};
use crate::auth::Session;
use crate::auth::users::Role;
use crate::state::App;
use crate::variables::{NamesUnavailable, VarMap, Variable, decode};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use openplc_port::Value as Sampled;
use serde::Deserialize;
use serde_json::{Value, json};
use shared_abi::debug::Generator;
use shared_abi::msg::{Command, CommandStatus};
use shared_abi::program::VarKind;
use std::sync::Arc;
use std::time::Duration;

/// The least a force or release waits for rt-core's answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest the size and kind of a variable take to learn (one watched scan).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn conflict(text: impl Into<String>) -> ApiError {
    ApiError::Raw(StatusCode::CONFLICT, json!({ "msg": text.into() }))
}

fn names_error(e: NamesUnavailable) -> ApiError {
    match e {
        NamesUnavailable::Task(_) => ApiError::internal(e),
        other => conflict(other.to_string()),
    }
}

/// A name fit for a log line (escaped as the debugger does).
fn who(s: &Session) -> String {
    crate::text::escape_hidden(&s.user.username, &[]).into_owned()
}

/// `GET /api/monitor/overview`: the running program (generator, MD5, upload time, period,
/// variable count), the runtime and the caller's name and role.
pub async fn overview(State(app): State<Arc<App>>, Viewer(session): Viewer) -> Json<Value> {
    let port = app.plc.port();
    let program = port.program_info().map(|info| {
        let generator = match Generator::from_u32(info.generator) {
            Generator::Matiec => "MatIEC (Editor ≤ 4.1)",
            Generator::Strucpp => "STruC++ (Editor ≥ 4.2)",
            _ => "other",
        };
        let record = app.programs.store.current();
        let uploaded = record.as_ref().and_then(|r| {
            let zip = app.programs.store.upload_path(&r.id);
            let modified = std::fs::metadata(&zip).or_else(|_| std::fs::metadata(&r.dir)).ok()?.modified().ok()?;
            let unix = modified.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            Some(crate::timefmt::iso8601(unix))
        });
        json!({
            "generator": generator,
            "md5": info.md5_str(),
            "id": record.map(|r| r.id),
            "uploaded": uploaded,
            "period_us": info.period_ns.saturating_add(500) / 1000,
            "variables": info.var_count,
        })
    });
    Json(json!({
        "program": program,
        "runtime": {
            "version": env!("CARGO_PKG_VERSION"),
            "api": app.settings.editor_compat.api_version(),
            "uptime_s": app.started.elapsed().as_secs(),
        },
        "user": { "name": session.user.username, "role": session.user.role.as_str() },
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceBody {
    pub index: u32,
    pub value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    pub index: u32,
}

/// A viewer may look, not touch: refused with 403, and the attempt goes in the log.
fn may_force(app: &App, s: &Session, action: &str, var: &str) -> Result<(), ApiError> {
    if s.user.role.at_least(Role::User) {
        return Ok(());
    }
    app.logs.warn(format!("monitor: user {:?} may not force; refused to {action} {var}", who(s)));
    Err(ApiError::Forbidden(format!(
        "Forbidden: user {:?} may monitor but not force or release variables",
        s.user.username
    )))
}

/// The variable at `index` of the running program, with its name, and the program's generation.
async fn variable(app: &Arc<App>, index: u32) -> Result<(u32, Arc<VarMap>, Variable), ApiError> {
    let (info, names) = crate::variables::running(app).await.map_err(names_error)?;
    let var = names.by_index(index).cloned().ok_or_else(|| ApiError::NotFound(format!("No variable {index}")))?;
    Ok((info.program_gen, names, var))
}

/// How the program stores the variable: its kind and size, from one watched scan.
async fn layout(app: &App, program_gen: u32, index: u32) -> Result<(VarKind, usize), ApiError> {
    let port = app.plc.port();
    let lease = port.sampler().lease(&[index]).map_err(|e| conflict(e.to_string()))?;
    let sample = lease.wait(program_gen, port.arrival(), PROBE_TIMEOUT).await.map_err(|e| conflict(e.to_string()))?;
    match sample.get(index) {
        Some(Sampled::Bytes { kind, raw }) => Ok((kind, raw.len())),
        Some(Sampled::Missing) | None => Err(ApiError::NotFound(format!("No variable {index} in the running program"))),
        Some(Sampled::NoRoom) => Err(conflict("rt-core's debug area is full; try again")),
    }
}

fn refused(status: CommandStatus) -> ApiError {
    match status {
        CommandStatus::BadValue => ApiError::BadRequest(format!("rt-core refused the value: {}", status.as_str())),
        CommandStatus::BadVariable => ApiError::NotFound(status.as_str().into()),
        other => conflict(format!("rt-core refused: {}", other.as_str())),
    }
}

/// `POST /api/monitor/force {"index", "value"}`: forces the variable to the value typed
/// as in the Editor (`TRUE`, `-12`, `16#FF`, `2.5`, `T#1s500ms`, text) until released.
pub async fn force(
    State(app): State<Arc<App>>,
    Viewer(session): Viewer,
    JsonBody(body): JsonBody<ForceBody>,
) -> Result<Json<Value>, ApiError> {
    let (program_gen, _, var) = variable(&app, body.index).await?;
    may_force(&app, &session, "force", &var.name)?;
    let (kind, size) = layout(&app, program_gen, var.index).await?;
    let bytes = value::encode(&var.iec_type, kind, size, &body.value)
        .map_err(|e: ValueError| ApiError::BadRequest(format!("{}: {e}", var.name)))?;
    let shown = decode(&var.iec_type, &bytes);
    let port = app.plc.port();
    let status = port
        .force(var.index, &bytes, false, port.command_timeout(COMMAND_TIMEOUT))
        .await
        .map_err(|e| conflict(format!("The PLC runtime did not answer: {e}")))?;
    if status != CommandStatus::Ok {
        app.logs.warn(format!(
            "monitor: user {:?} could not force {} to {shown}: {}",
            who(&session),
            var.name,
            status.as_str()
        ));
        return Err(refused(status));
    }
    app.logs.info(format!("monitor: user {:?} forced {} ({}) to {shown}", who(&session), var.name, var.iec_type));
    Ok(Json(json!({ "index": var.index, "name": var.name, "forced": shown })))
}

/// `POST /api/monitor/release {"index"}`: releases a forced variable.
pub async fn release(
    State(app): State<Arc<App>>,
    Viewer(session): Viewer,
    JsonBody(body): JsonBody<ReleaseBody>,
) -> Result<Json<Value>, ApiError> {
    let (_, _, var) = variable(&app, body.index).await?;
    may_force(&app, &session, "release", &var.name)?;
    let port = app.plc.port();
    let status = port
        .unforce(var.index, port.command_timeout(COMMAND_TIMEOUT))
        .await
        .map_err(|e| conflict(format!("The PLC runtime did not answer: {e}")))?;
    if status != CommandStatus::Ok {
        return Err(refused(status));
    }
    app.logs.info(format!("monitor: user {:?} released {}", who(&session), var.name));
    Ok(Json(json!({ "index": var.index, "name": var.name, "released": true })))
}

/// `POST /api/monitor/reset-stats`: zeroes the cycle statistics and the latency histogram.
pub async fn reset_stats(State(app): State<Arc<App>>, Operator(session): Operator) -> Result<Json<Value>, ApiError> {
    match app.plc.command(Command::ResetStats).await {
        Ok(CommandStatus::Ok) => {
            app.logs.info(format!("monitor: statistics reset by {:?}", who(&session)));
            Ok(Json(json!({ "reset": true })))
        }
        Ok(other) => Err(refused(other)),
        Err(e) => Err(conflict(format!("The PLC runtime did not answer: {e}"))),
    }
}
