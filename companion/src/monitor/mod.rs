//! The live monitor in the browser: a small page served at `/` on the HTTPS port (its files
//! embedded in the binary, see [`assets`]) that shows the PLC's state with start and stop,
//! the cycle figures, the latency histogram as a plot, the running program's variables
//! with live values, trends and forcing, and the runtime log, to anyone signed in with the
//! runtime's users and roles. The Editor stays the tool to program and configure; this is a
//! glance at a running PLC from a phone or a control-room screen.
//!
//! How it is kept safe: the access token travels only in an `Authorization` header (REST)
//! or in the first message of the page's WebSocket, never in a cookie or a URL, so another
//! site cannot make the browser act for its user (no CSRF); the page runs only its own
//! files under a strict Content-Security-Policy; the live session ends when the token
//! expires, is logged out, or the user changes ([`live`]).
//!
//! What it costs rt-core: every page's live values come from one shared sampler ([`hub`]):
//! one lease of the port's watch list per tick however many pages are open.

pub mod actions;
pub mod assets;
pub mod hub;
pub mod live;
pub mod messages;
pub mod value;

use crate::state::App;
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::sync::Arc;

pub use hub::Hub;

/// The page and the monitor's own API, merged into the companion's router.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(assets::index))
        .route("/monitor/{*path}", get(assets::file))
        .route("/api/monitor/live", get(live::upgrade))
        .route("/api/monitor/overview", get(actions::overview))
        .route("/api/monitor/force", post(actions::force))
        .route("/api/monitor/release", post(actions::release))
        .route("/api/monitor/reset-stats", post(actions::reset_stats))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    assets::protect(response.headers_mut());
    response
}
