//! The REST API: OpenPLC Runtime v4's, as the Editor uses it, plus our own (health, the
//! latency histogram). All routes are composed in [`router`]; other layers (the Socket.IO
//! debugger) wrap the router it returns.

pub mod control;
pub mod device;
pub mod error;
pub mod extract;
pub mod info;
pub mod plc;
pub mod plugins;
pub mod program;
pub mod snapshot;
pub mod timing;
pub mod users;
pub mod variables;

use crate::state::App;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use std::sync::Arc;

/// The version header every response carries (the Editor reads it on `get-users-info`).
pub const VERSION_HEADER: &str = "x-openplc-runtime-version";

/// Body limit for the JSON endpoints.
const JSON_BODY_LIMIT: usize = 64 * 1024;

pub fn router(app: Arc<App>) -> Router {
    // The Editor's debugger: Socket.IO on /socket.io/, namespace /api/debug, on this port.
    let (debugger, _io) = openplc_debugger::socketio::layer(app.debugger.clone());
    Router::new()
        .route("/api/get-users-info", get(users::get_users_info))
        .route("/api/get-user-info/{id}", get(users::get_user_info))
        .route("/api/create-user", post(users::create_user))
        .route("/api/login", post(users::login))
        .route("/api/logout", post(users::logout))
        .route("/api/whoami", get(users::whoami))
        .route("/api/update-user/{id}", put(users::update_user))
        .route("/api/delete-user/{id}", delete(users::delete_user))
        .route("/api/password-change/{id}", put(users::password_change))
        .route("/api/status", get(plc::status))
        .route("/api/ping", get(plc::ping))
        .route("/api/start-plc", get(control::start_plc))
        .route("/api/stop-plc", get(control::stop_plc))
        .route("/api/cold-start-plc", get(control::cold_start_plc))
        .route("/api/switch", get(control::switch).post(control::set_switch))
        .route("/api/retain-status", get(control::retain_status))
        .route("/api/project-snapshot", get(snapshot::download))
        .route("/api/project-snapshot/info", get(snapshot::info))
        .route("/api/device-info", get(device::device_info))
        .route("/api/discovery/interfaces", get(device::interfaces))
        .route("/api/discovery/ethercat/status", get(device::ethercat_status))
        .route("/api/discovery/ethercat/scan", post(device::scan))
        .route("/api/discovery/ethercat/test", post(device::test))
        .route("/api/discovery/ethercat/validate", post(device::validate))
        .route("/api/discovery/ethercat/runtime-status", get(device::unavailable))
        .route("/api/discovery/ethercat/diagnostics", get(device::unavailable))
        .route("/api/stats/histogram", get(plc::histogram))
        .route("/api/health", get(plc::health))
        .route("/api/plugins", get(plugins::plugins))
        .route("/api/plugin-command", post(plugins::plugin_command))
        .route("/api/variables", get(variables::list))
        .route("/api/variables/values", get(variables::values))
        .route("/api/compilation-status", get(program::compilation_status))
        .route("/api/runtime-logs", get(info::runtime_logs))
        .route("/api/serial-ports", get(info::serial_ports))
        .route("/api/version", get(info::version))
        .route("/api/capabilities", get(info::capabilities))
        // The browser monitor: the page at `/` and its own calls under /api/monitor/.
        .merge(crate::monitor::routes())
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .route("/api/upload-file", post(program::upload_file).layer(DefaultBodyLimit::max(program::MAX_UPLOAD_BODY)))
        .fallback(info::api_fallback)
        .layer(middleware::from_fn_with_state(app.clone(), version_header))
        .layer(debugger)
        .with_state(app)
}

async fn version_header(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from_static(app.settings.editor_compat.header_version()));
    response
}
