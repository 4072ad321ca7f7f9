//! HTTPS only: TLS by rustls, HTTP/1.1 with keep-alive (and upgrades, for the Socket.IO
//! WebSocket), with the connection caps of [`admission`] and short timeouts on every phase
//! a stranger controls, so no one address can starve another.
//!
//! A connection's life: accepted only if its source is under its caps (else closed at
//! once, before any TLS work); the first byte of the TLS ClientHello within
//! [`FIRST_BYTE_TIMEOUT`], the whole handshake within [`HANDSHAKE_TIMEOUT`]; every request
//! head within [`HEADER_TIMEOUT`] of the server starting to wait for it (which also closes
//! a keep-alive connection idle that long); an upgrade to a WebSocket only within the
//! source's WebSocket share, and the upgraded socket keeps its place in the caps until it
//! closes.

pub mod admission;
mod stream;

pub use admission::{Admission, Limits, Refusal, Source};

use admission::Ticket;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use stream::AdmittedStream;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// From accept to the first byte of the TLS ClientHello.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(3);
/// From accept to the end of the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// For each request head, from when the server starts waiting for it; also how long an
/// idle keep-alive connection stays open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one warning about refused connections per this period.
const REPORT_PERIOD: Duration = Duration::from_secs(10);

/// Pending connections the kernel queues for `accept`. A flood that reconnects as fast
/// as its sockets are closed keeps hundreds of connections in that queue; with the usual
/// 128 a legitimate SYN is dropped and retried only a second later. (Linux caps it at
/// `net.core.somaxconn`, 4096 by default.)
const ACCEPT_BACKLOG: u32 = 4096;

/// A listening socket with a backlog deep enough for a flood of reconnects.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Serves `router` on `listener` with the default [`Limits`] until `shutdown` resolves;
/// connections in flight then get a few seconds to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with(listener, tls, router, Limits::default(), shutdown).await
}

pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let admission = Admission::new(limits);
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut report = RefusalReport::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let admitted = admission.admit(peer.ip());
        report.maybe_warn(&admission, peer);
        // Refused: closed before any TLS work, so a flood of them costs an accept each.
        let Ok(ticket) = admitted else { continue };
        tokio::spawn(connection(tcp, peer, ticket, acceptor.clone(), router.clone(), closing_rx.clone()));
    }
    let _ = closing_tx.send(true);
    // WebSockets have no graceful end here: closing their sockets tells their clients.
    admission.close_websockets();
    let deadline = Instant::now() + Duration::from_secs(5);
    while admission.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// One admitted connection, until it closes, is evicted or the server shuts down.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: Arc<Ticket>,
    acceptor: TlsAcceptor,
    router: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let slot = ticket.slot().clone();
    let work = async move {
        let _ = tcp.set_nodelay(true);
        let handshake_deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
        if !matches!(tokio::time::timeout(FIRST_BYTE_TIMEOUT, tcp.readable()).await, Ok(Ok(()))) {
            return;
        }
        let stream = AdmittedStream::new(tcp, ticket.clone());
        let Ok(Ok(tls)) = tokio::time::timeout_at(handshake_deadline, acceptor.accept(stream)).await else {
            return;
        };
        let service = hyper::service::service_fn(move |req| request(req, peer, ticket.clone(), router.clone()));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .keep_alive(true)
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = closing.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
            }
        }
    };
    // Eviction drops the connection wherever it is (an upgraded socket notices by itself).
    tokio::select! {
        _ = slot.killed() => {}
        _ = work => {}
    }
}

/// One request: the connection is past its pending phase; an upgrade must fit the source's
/// WebSocket share.
async fn request(
    mut req: hyper::Request<Incoming>,
    peer: SocketAddr,
    ticket: Arc<Ticket>,
    router: Router,
) -> Result<Response, Infallible> {
    ticket.request_started();
    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
    let upgrade = wants_websocket(req.headers());
    if upgrade && !ticket.reserve_websocket() {
        return Ok(too_many_websockets());
    }
    let response = router.oneshot(req).await?;
    if upgrade && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        ticket.cancel_websocket();
    }
    Ok(response)
}

fn wants_websocket(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn too_many_websockets() -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(serde_json::json!({ "msg": "Too many WebSocket connections from this address" })),
    )
        .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// Warns about refused and evicted connections at most once per [`REPORT_PERIOD`], with
/// the counts since the last warning (a flood must not flood the log too).
struct RefusalReport {
    last: Instant,
    seen: [u64; 4],
}

impl RefusalReport {
    fn new() -> Self {
        RefusalReport { last: Instant::now(), seen: [0; 4] }
    }

    fn maybe_warn(&mut self, admission: &Admission, peer: SocketAddr) {
        if self.last.elapsed() < REPORT_PERIOD {
            return;
        }
        let r = &admission.refused;
        let now = [&r.source_pending, &r.source_full, &r.full, &r.evicted].map(|c| c.load(Ordering::Relaxed));
        if now != self.seen {
            let d: Vec<u64> = now.iter().zip(self.seen).map(|(n, s)| n - s).collect();
            let limits = admission.limits();
            tracing::warn!(
                "connections refused in the last {} s: {} (source had {} unfinished handshakes), {} (source had {} \
                 connections), {} (server full); {} evicted from the heaviest source; latest from {}",
                self.last.elapsed().as_secs(),
                d[0],
                limits.pending_per_source,
                d[1],
                limits.per_source,
                d[2],
                d[3],
                Source::of(peer.ip()),
            );
            self.seen = now;
        }
        self.last = Instant::now();
    }
}
