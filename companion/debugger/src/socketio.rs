//! The Socket.IO face of the debugger: namespace `/api/debug`, JWT checked at connect,
//! `connected {status:"ok"}`, then one `debug_response` per `debug_command`, in order.
//!
//! socketioxide runs each event handler's future as its own task, so two commands of one
//! client could finish in any order. The handler therefore does no work in its future: its
//! synchronous part (which socketioxide calls in packet order, on the connection's receive
//! task) stamps the command with rt-core's loop counter and queues it; one task per
//! connection takes the queue in order and emits each reply before starting the next.

use crate::service::{Debugger, Reply, Session};
use serde_json::{Value, json};
use shared_abi::msg::LogLevel;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SendError, SocketError, SocketIo};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

/// The Socket.IO namespace the Editor connects to.
pub const NAMESPACE: &str = "/api/debug";
/// Engine.IO heartbeat, as upstream's server.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
pub const PING_TIMEOUT: Duration = Duration::from_secs(60);
/// An Engine.IO connection that has not joined the debugger's namespace (with a valid
/// token) this long after opening is closed: unauthenticated sockets cannot pile up. The
/// Editor joins at once, and gives up itself after 5 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Socket.IO layer with the debugger mounted, for the companion's axum router:
/// `Router::new()....layer(layer)`. Serves `/socket.io/` (WebSocket and polling).
pub fn layer(debugger: Arc<Debugger>) -> (SocketIoLayer, SocketIo) {
    let (layer, io) = SocketIo::builder()
        .ping_interval(PING_INTERVAL)
        .ping_timeout(PING_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        // Room for a burst of pipelined replies before the writer catches up.
        .max_buffer_size(1024)
        .build_layer();
    attach(&io, debugger);
    (layer, io)
}

/// Mounts the debugger's namespace on an existing Socket.IO server.
pub fn attach(io: &SocketIo, debugger: Arc<Debugger>) {
    let middleware = move |s: SocketRef, TryData(auth): TryData<Value>| {
        let debugger = debugger.clone();
        async move { admit(debugger, s, auth.ok()) }
    };
    io.ns(NAMESPACE, on_connect.with(middleware));
}

async fn on_connect(s: SocketRef) {
    emit(&s, "connected", &json!({ "status": "ok" })).await;
}

/// A queued command.
struct Job {
    socket: SocketRef,
    payload: Result<Value, String>,
    arrival: u64,
}

/// Authenticates the connection and wires its command queue (before the namespace accepts
/// it, so no command can arrive without a queue).
fn admit(debugger: Arc<Debugger>, s: SocketRef, auth: Option<Value>) -> Result<(), String> {
    let from_auth = auth.as_ref().and_then(|a| a.get("token")).and_then(Value::as_str).map(str::to_owned);
    let token = from_auth.or_else(|| query_token(s.req_parts().uri.query()?)).filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err("Unauthorized: no access token (send it as auth.token)".into());
    };
    let identity = debugger.authenticate(&token).map_err(|e| format!("Unauthorized: {e}"))?;
    tracing::info!(user = identity.name, sid = %s.id, "debug client connected");
    let connection = Connection {
        socket: s.clone(),
        token,
        session: Session::new(identity, s.id.to_string()),
        gone: Arc::new(Notify::new()),
    };
    let gone = connection.gone.clone();
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    tokio::spawn(serve(debugger.clone(), connection, rx));
    let d = debugger.clone();
    s.on("debug_command", move |s: SocketRef, TryData(payload): TryData<Value>| {
        let arrival = d.arrival();
        let payload = payload.map_err(|e| e.to_string());
        // Only fails once the queue's task is gone, i.e. never while the socket lives.
        let _ = tx.send(Job { socket: s, payload, arrival });
        std::future::ready(())
    });
    s.on_disconnect(move |s: SocketRef| {
        // Ends the queue's task, which holds the socket (the socket holds the queue's
        // sender through its handler: without this neither would ever be dropped).
        gone.notify_one();
        async move { tracing::info!(sid = %s.id, "debug client disconnected") }
    });
    Ok(())
}

/// One connected client: its socket, the token it connected with (checked again when
/// users or tokens change) and its session.
struct Connection {
    socket: SocketRef,
    token: String,
    session: Session,
    /// Notified when the socket disconnects, whoever ends it.
    gone: Arc<Notify>,
}

impl Connection {
    /// Checks the token again after users or tokens changed: the session takes the user's
    /// current rights (a demoted user's forces are refused from now on), or, when the
    /// token no longer counts (logged out, user deleted, password changed), the reason.
    fn recheck(&mut self, debugger: &Debugger) -> Result<(), String> {
        match debugger.reauthenticate(&self.token) {
            Ok(identity) => {
                self.session.identity = identity;
                Ok(())
            }
            Err(e) => {
                debugger.log(
                    LogLevel::Warning,
                    &format!("debugger: the session of user '{}' ended: {e}", self.session.identity.name),
                );
                Err(format!("Unauthorized: {e}"))
            }
        }
    }
}

/// Resolves when `changes` ticks; never without a change feed (or once it is gone).
async fn changed(changes: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = changes
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// The connection's queue: commands in arrival order, one reply each; and, between
/// commands, the end of a session whose rights were taken away. Ends when the socket is
/// gone.
async fn serve(debugger: Arc<Debugger>, mut c: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut changes = debugger.auth_changes();
    loop {
        tokio::select! {
            biased;
            _ = c.gone.notified() => break,
            _ = changed(&mut changes) => {
                if c.recheck(&debugger).is_err() {
                    let _ = c.socket.clone().disconnect();
                    break;
                }
            }
            job = rx.recv() => {
                let Some(job) = job else { break };
                // A change that arrived with this command applies to it.
                if changes.as_mut().is_some_and(|rx| rx.has_changed().unwrap_or(false)) {
                    if let Some(rx) = changes.as_mut() {
                        rx.borrow_and_update();
                    }
                    if let Err(e) = c.recheck(&debugger) {
                        emit(&job.socket, "debug_response", &Reply::Error(e).to_json()).await;
                        let _ = c.socket.clone().disconnect();
                        break;
                    }
                }
                let reply = match command_text(&job.payload) {
                    Ok(command) => debugger.handle(&mut c.session, command, job.arrival).await,
                    Err(e) => Reply::Error(e),
                };
                emit(&job.socket, "debug_response", &reply.to_json()).await;
            }
        }
    }
}

fn command_text(payload: &Result<Value, String>) -> Result<&str, String> {
    let shape = || "Malformed debug_command: expected {\"command\": \"<hex bytes>\"}".to_string();
    match payload {
        Ok(Value::Object(o)) => o.get("command").and_then(Value::as_str).ok_or_else(shape),
        Ok(Value::String(s)) => Ok(s),
        Ok(_) => Err(shape()),
        Err(e) => Err(format!("Malformed debug_command: {e}")),
    }
}

/// Emits, waiting while the connection's outgoing buffer is full; gives up only when the
/// connection is gone.
async fn emit(s: &SocketRef, event: &str, data: &Value) {
    let start = Instant::now();
    loop {
        match s.emit(event, data) {
            Ok(()) => return,
            Err(SendError::Socket(SocketError::InternalChannelFull)) if start.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => {
                tracing::debug!(sid = %s.id, "cannot emit {event}: {e}");
                return;
            }
        }
    }
}

/// `token` from a query string (upstream also accepts `?token=`).
fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| pair.strip_prefix("token=")).map(percent_decode)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_the_query() {
        assert_eq!(query_token("EIO=4&transport=websocket&token=abc.def"), Some("abc.def".into()));
        assert_eq!(query_token("token=a%2Eb%3D"), Some("a.b=".into()));
        assert_eq!(query_token("EIO=4"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn command_payload_shapes() {
        assert_eq!(command_text(&Ok(json!({"command": "45 DE AD 00 00"}))), Ok("45 DE AD 00 00"));
        assert_eq!(command_text(&Ok(json!("41"))), Ok("41"));
        assert!(command_text(&Ok(json!({"cmd": "41"}))).is_err());
        assert!(command_text(&Ok(json!(41))).is_err());
        assert!(command_text(&Err("bad".into())).is_err());
    }
}
