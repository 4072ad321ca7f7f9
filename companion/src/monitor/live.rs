//! `GET /api/monitor/live`: a page's WebSocket. The page sends its token in the first
//! message, then what it shows; the server answers with one `tick` per hub frame (the state,
//! the cycle figures, its variables' values, the forced variables), the histogram when it
//! changes, and new runtime-log lines. The session ends — `{"t":"end","reason"}`, then the
//! socket closes — when the token expires, is logged out, or its user is deleted or changes
//! password; a change of role is sent to the page at once (`hello` again).
//!
//! Browsers send `Origin` with every WebSocket; one naming another site is refused (403),
//! so another site cannot even open the socket, let alone authenticate on it.

use super::hub::{Frame, Hub, Subscription};
use super::messages::{self, ClientMessage, MAX_FRAME};
use crate::auth::Session;
use crate::state::App;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The token must arrive this soon after the socket opens.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);
/// A page that cannot take a frame this long is gone (or hopelessly slow): closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Log lines sent at most per message (the first message after following starts carries
/// the tail).
const LOG_BATCH: usize = 500;

pub async fn upgrade(State(app): State<Arc<App>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, axum::Json(json!({ "msg": "Cross-origin WebSocket refused" }))).into_response();
    }
    ws.max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).on_upgrade(move |socket| session(app, socket))
}

/// No `Origin` (a program, not a browser), or one naming this very host and port.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    origin.to_str().ok().and_then(|o| o.strip_prefix("https://")).is_some_and(|o| !host.is_empty() && o == host)
}

/// Why a session ended, as the page is told.
enum End {
    Expired,
    Refused(String),
    Gone,
}

async fn session(app: Arc<App>, mut socket: WebSocket) {
    let Some(token) = first_token(&mut socket).await else {
        let _ = close(&mut socket, "Send {\"t\":\"auth\",\"token\":…} first").await;
        return;
    };
    let mut who = match app.auth.authenticate_token(&token) {
        Ok(s) => s,
        Err(e) => {
            let _ = close(&mut socket, e.message()).await;
            return;
        }
    };
    let end = Live::new(&app, token, &who).run(&mut socket, &mut who).await;
    match end {
        End::Expired => {
            let _ = close(&mut socket, "Your session expired: sign in again").await;
        }
        End::Refused(why) => {
            app.logs.info(format!("monitor: the session of user {:?} ended: {why}", who.user.username));
            let _ = close(&mut socket, &why).await;
        }
        End::Gone => {}
    }
}

async fn first_token(socket: &mut WebSocket) -> Option<String> {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, socket.recv()).await.ok()?? {
            Ok(Message::Text(text)) => {
                return match messages::parse(&text) {
                    Ok(ClientMessage::Auth { token }) => Some(token),
                    _ => None,
                };
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

/// Tells the page why, then closes the socket (normal closure).
async fn close(socket: &mut WebSocket, reason: &str) -> Result<(), axum::Error> {
    send(socket, &json!({ "t": "end", "reason": reason })).await?;
    let frame = CloseFrame { code: 1000, reason: "".into() };
    tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame))))
        .await
        .unwrap_or_else(|_| Err(axum::Error::new("timed out")))
}

async fn send(socket: &mut WebSocket, v: &Value) -> Result<(), axum::Error> {
    tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(v.to_string().into())))
        .await
        .unwrap_or_else(|_| Err(axum::Error::new("timed out")))
}

/// One authenticated page.
struct Live {
    app: Arc<App>,
    token: String,
    expires: Instant,
    sub: Subscription,
    vars: Vec<u32>,
    /// The next log entry the page wants (`None`: it does not follow the log).
    logs_from: Option<u64>,
    /// The histogram tick last sent.
    histogram_sent: u64,
}

fn hello(s: &Session) -> Value {
    json!({ "t": "hello", "user": s.user.username, "role": s.user.role.as_str(), "exp": s.claims.exp })
}

impl Live {
    fn new(app: &Arc<App>, token: String, who: &Session) -> Live {
        let left = who.claims.exp.saturating_sub(crate::timefmt::unix_now());
        Live {
            app: app.clone(),
            token,
            expires: Instant::now() + Duration::from_secs(left),
            sub: Hub::subscribe(app),
            vars: Vec::new(),
            logs_from: None,
            histogram_sent: 0,
        }
    }

    async fn run(mut self, socket: &mut WebSocket, who: &mut Session) -> End {
        if send(socket, &hello(who)).await.is_err() {
            return End::Gone;
        }
        let mut changes = self.app.auth.changes();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.expires) => return End::Expired,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return End::Gone;
                    }
                    // The expiry counts as at any request: a session is only as good as its token.
                    match self.app.auth.authenticate_token(&self.token) {
                        Ok(now) => {
                            let role_changed = now.user.role != who.user.role || now.user.username != who.user.username;
                            *who = now;
                            if role_changed && send(socket, &hello(who)).await.is_err() {
                                return End::Gone;
                            }
                        }
                        Err(e) => return End::Refused(e.message().to_string()),
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(reply) = self.on_message(&text) && send(socket, &reply).await.is_err() {
                            return End::Gone;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if send(socket, &json!({ "t": "error", "msg": "text frames only" })).await.is_err() {
                            return End::Gone;
                        }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return End::Gone,
                },
                frame = self.sub.frames().changed() => {
                    if frame.is_err() {
                        return End::Gone;
                    }
                    let frame = self.sub.frames().borrow_and_update().clone();
                    for message in self.updates(&frame) {
                        if send(socket, &message).await.is_err() {
                            return End::Gone;
                        }
                    }
                }
            }
        }
    }

    /// A page's message; `Some` reply for a refused one.
    fn on_message(&mut self, text: &str) -> Option<Value> {
        match messages::parse(text) {
            Ok(ClientMessage::Watch(w)) => {
                self.vars = w.vars.clone();
                self.logs_from = w.logs_from;
                self.sub.show(w.vars, w.histogram);
                if w.histogram {
                    // Send the latest at the next tick even if it was sent before.
                    self.histogram_sent = 0;
                }
                None
            }
            Ok(ClientMessage::Auth { .. }) => Some(json!({ "t": "error", "msg": "already signed in" })),
            Err(e) => Some(json!({ "t": "error", "msg": e.to_string() })),
        }
    }

    /// What this page gets of a frame.
    fn updates(&mut self, frame: &Frame) -> Vec<Value> {
        let values: Vec<Value> = self.vars.iter().filter_map(|i| frame.values.get(i).map(|v| json!([i, v]))).collect();
        let forced: Vec<Value> = frame.forced.iter().map(|(i, v)| json!([i, v])).collect();
        let mut out = vec![json!({
            "t": "tick",
            "seq": frame.seq,
            "status": frame.status,
            "program_gen": frame.program_gen,
            "stats": frame.stats,
            "values": values,
            "values_cycle": frame.values_cycle,
            "values_note": frame.values_note,
            "forced": forced,
        })];
        if let Some((taken, h)) = &frame.histogram
            && *taken != self.histogram_sent
        {
            self.histogram_sent = *taken;
            let mut m = (**h).clone();
            m["t"] = json!("histogram");
            out.push(m);
        }
        if let Some(from) = self.logs_from {
            let mut entries = self.app.logs.since(from, None);
            if let Some(last) = entries.last() {
                self.logs_from = Some(last.id + 1);
                let skip = entries.len().saturating_sub(LOG_BATCH);
                entries.drain(..skip);
                out.push(json!({ "t": "logs", "entries": entries }));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_this_origin_may_open_the_socket() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("plc.local:8443"));
        assert!(same_origin(&h), "no Origin: not a browser");
        h.insert(header::ORIGIN, HeaderValue::from_static("https://plc.local:8443"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://plc.local:8443"));
        assert!(!same_origin(&h), "another scheme is another origin");
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}
