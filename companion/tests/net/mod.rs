//! Raw network clients for the security tests, written with tokio and rustls so the tests
//! can choose the source address (127.0.0.2 plays the attacker, 127.0.0.1 the engineer),
//! hold thousands of sockets and time every request without an external tool.
//!
//! HTTP/1.1 is spoken by hand: a request with `Content-Length`, a response read by its
//! `Content-Length` (every response of the companion carries one) or to the end.

#![allow(dead_code)]

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const ATTACKER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
pub const ENGINEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));

/// Accepts any certificate, as the Editor does with the runtime's self-signed one.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TCP connection from `src` (any port) to `dst`.
pub async fn tcp_from(src: IpAddr, dst: SocketAddr) -> io::Result<TcpStream> {
    let socket = if src.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(src, 0))?;
    let stream = socket.connect(dst).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

pub async fn tls_from(src: IpAddr, dst: SocketAddr, tls: &TlsConnector) -> io::Result<TlsStream<TcpStream>> {
    let tcp = tcp_from(src, dst).await?;
    tls.connect(ServerName::try_from("localhost").expect("a valid name"), tcp).await
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Writes one request (keep-alive unless `close`).
pub async fn send<S: AsyncWrite + Unpin>(
    s: &mut S,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &str,
    close: bool,
) -> io::Result<()> {
    let connection = if close { "close" } else { "keep-alive" };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n{extra_headers}Content-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    s.flush().await
}

/// Reads one response: the head, then `Content-Length` bytes (or to the end).
pub async fn receive<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Response> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no status line in {head:?}")))?;
    let mut response = Response { status, head, body: String::new() };
    let mut body = buf[head_end..].to_vec();
    match response.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => {
            while body.len() < len {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "body cut short"));
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None if status != 101 => {
            s.read_to_end(&mut body).await?;
        }
        None => {}
    }
    response.body = String::from_utf8_lossy(&body).into_owned();
    Ok(response)
}

/// One request on a fresh TLS connection from `src`; the time until the whole response.
pub async fn one_request(
    src: IpAddr,
    dst: SocketAddr,
    tls: &TlsConnector,
    method: &str,
    path: &str,
    body: &str,
) -> io::Result<(Response, Duration)> {
    let start = Instant::now();
    let mut s = tls_from(src, dst, tls).await?;
    send(&mut s, method, path, "", body, true).await?;
    let r = receive(&mut s).await?;
    Ok((r, start.elapsed()))
}

/// Request outcomes of one client: latencies of the answered ones, the count of the others.
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    pub answered: Vec<Duration>,
    pub failed: usize,
    pub errors: Vec<String>,
}

impl Outcomes {
    pub fn record(&mut self, r: Result<Duration, String>) {
        match r {
            Ok(d) => self.answered.push(d),
            Err(e) => {
                self.failed += 1;
                if self.errors.len() < 5 {
                    self.errors.push(e);
                }
            }
        }
    }

    pub fn total(&self) -> usize {
        self.answered.len() + self.failed
    }

    pub fn answered_ratio(&self) -> f64 {
        self.answered.len() as f64 / self.total().max(1) as f64
    }

    /// Nearest-rank percentile of the answered requests (`None` when none was answered).
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut v = self.answered.clone();
        v.sort();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v.get(rank.max(1) - 1).copied()
    }

    pub fn summary(&self) -> String {
        format!(
            "{}/{} answered, p50 {:?}, p99 {:?}, errors {:?}",
            self.answered.len(),
            self.total(),
            self.percentile(50.0),
            self.percentile(99.0),
            self.errors
        )
    }
}

/// The Engine.IO WebSocket handshake on `path` (e.g. `/socket.io/?EIO=4&transport=websocket`).
pub async fn ws_upgrade<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, path: &str) -> io::Result<Response> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: \
         dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    receive(s).await
}

/// Sends one masked text frame (clients must mask).
pub async fn ws_send_text<S: AsyncWrite + Unpin>(s: &mut S, text: &str) -> io::Result<()> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let payload = text.as_bytes();
    let mut frame = vec![0x81u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).await?;
    s.flush().await
}

/// The next frame from the server: `(opcode, payload)`, `None` at the end of the stream.
pub async fn ws_next_frame<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 2];
    match s.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = match head[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).await?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    Ok(Some((head[0] & 0x0F, payload)))
}
