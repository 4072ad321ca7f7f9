//! One connection: MBAP framing with its timeouts, one request at a time, until the client
//! closes, a timeout runs out, the frame is impossible, or the connection is evicted.

use super::admission::Slot;
use super::{Counters, MBAP, Shared, execute};
use crate::pdu;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

struct Open<'a>(&'a AtomicU64);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves one connection until it closes, times out, sends an impossible frame or is
/// evicted.
pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, s: &Shared, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    serve_io(rd, wr, peer, s, &slot).await;
}

/// [`serve`] over any byte stream (the fuzz target feeds it a slice).
pub(super) async fn serve_io(
    rd: impl AsyncRead + Unpin,
    mut wr: impl AsyncWrite + Unpin,
    peer: SocketAddr,
    s: &Shared,
    slot: &Slot,
) {
    let n: &Counters = &s.n;
    n.open.fetch_add(1, Ordering::Relaxed);
    let _open = Open(&n.open);
    let mut rd = BufReader::with_capacity(MBAP + pdu::MAX_PDU, rd);
    let mut head = [0u8; MBAP];
    let mut body = [0u8; pdu::MAX_PDU];
    let mut out = Vec::with_capacity(MBAP + pdu::MAX_PDU);
    let cfg = &s.cfg;
    loop {
        // Idle: waiting for the first byte of the next request.
        tokio::select! {
            biased;
            () = slot.evicted() => {
                count(&n.closed_evicted);
                tracing::debug!(%peer, "idle Modbus connection closed to make room for a new one");
                return;
            }
            first = timeout(cfg.idle_timeout, rd.read_exact(&mut head[..1])) => match first {
                Err(_) => {
                    count(&n.closed_idle);
                    tracing::debug!(%peer, "Modbus connection idle, closed");
                    return;
                }
                Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
            },
        }
        if !slot.busy() {
            // Evicted as this request began: its place is someone else's now.
            count(&n.closed_evicted);
            return;
        }
        let deadline = Instant::now() + cfg.frame_timeout;
        let frame_timed_out = || {
            count(&n.closed_frame_timeout);
            tracing::debug!(%peer, "Modbus frame incomplete within the frame timeout, closed");
        };
        match timeout_at(deadline, rd.read_exact(&mut head[1..])).await {
            Err(_) => return frame_timed_out(),
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let protocol = u16::from_be_bytes([head[2], head[3]]);
        let length = u16::from_be_bytes([head[4], head[5]]) as usize;
        if protocol != 0 || !(2..=pdu::MAX_PDU + 1).contains(&length) {
            count(&n.closed_malformed);
            tracing::debug!(%peer, protocol, length, "impossible MBAP header, connection closed");
            return;
        }
        let pdu_len = length - 1;
        match timeout_at(deadline, rd.read_exact(&mut body[..pdu_len])).await {
            Err(_) => return frame_timed_out(),
            Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        count(&n.requests);
        out.clear();
        out.extend_from_slice(&head);
        execute::handle(s, head[6], &body[..pdu_len], &mut out).await;
        let reply_len = (out.len() - 6) as u16;
        out[4..6].copy_from_slice(&reply_len.to_be_bytes());
        match timeout(cfg.frame_timeout, wr.write_all(&out)).await {
            Ok(Ok(())) => {}
            Err(_) => return frame_timed_out(),
            Ok(Err(_)) => return,
        }
        slot.idle();
    }
}
