//! The TCP stream of an admitted connection: it carries the connection's [`Ticket`], so
//! the connection keeps its place in the caps for exactly as long as its socket lives —
//! also after hyper hands the socket to a WebSocket — and it stops working the moment the
//! connection is evicted.

use super::admission::Ticket;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct AdmittedStream {
    inner: TcpStream,
    ticket: Arc<Ticket>,
}

impl AdmittedStream {
    pub fn new(inner: TcpStream, ticket: Arc<Ticket>) -> AdmittedStream {
        AdmittedStream { inner, ticket }
    }

    fn evicted() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionAborted, "connection evicted")
    }
}

impl AsyncRead for AdmittedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let slot = self.ticket.slot().clone();
        // Registered before the check, so an eviction between the two still wakes us.
        slot.read_waker.register(cx.waker());
        if slot.is_killed() {
            return Poll::Ready(Err(Self::evicted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for AdmittedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let slot = self.ticket.slot().clone();
        slot.write_waker.register(cx.waker());
        if slot.is_killed() {
            return Poll::Ready(Err(Self::evicted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let slot = self.ticket.slot().clone();
        slot.write_waker.register(cx.waker());
        if slot.is_killed() {
            return Poll::Ready(Err(Self::evicted()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::super::admission::{Admission, Limits};
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_evicted_stream_fails_its_pending_read_and_frees_its_place_on_drop() {
        let admission =
            Admission::new(Limits { connections: 2, per_source: 2, pending_per_source: 2, websockets_per_source: 1 });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let mut stream = AdmittedStream::new(server, admission.admit(peer.ip()).unwrap());
        let _younger = admission.admit(peer.ip()).unwrap();
        client.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        stream.read_exact(&mut one).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let r = stream.read(&mut buf).await;
            (r.map_err(|e| e.kind()), stream)
        });
        tokio::task::yield_now().await;
        // A lighter source evicts the heavier source's oldest connection: this one.
        let other = admission.admit("192.0.2.7".parse().unwrap()).unwrap();
        let (read, stream) = tokio::time::timeout(std::time::Duration::from_secs(5), reader).await.unwrap().unwrap();
        assert_eq!(read.err(), Some(io::ErrorKind::ConnectionAborted));
        assert_eq!(admission.open(), 2, "the evicted place went to the newcomer");
        drop(stream);
        assert_eq!(admission.open(), 2, "dropping the evicted stream frees nothing twice");
        drop(other);
        assert_eq!(admission.open(), 1);
    }
}
