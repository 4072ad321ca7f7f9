//! A minimal HTTPS client for the bench: one HTTP/1.1 keep-alive connection per `Conn`
//! (hyper over rustls), accepting the runtime's self-signed certificate as `curl -k` does.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("connecting to {addr}: {source}")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("HTTP/1.1 handshake: {0}")]
    Handshake(hyper::Error),
    #[error("request: {0}")]
    Request(#[from] hyper::Error),
    #[error("building the request: {0}")]
    Build(#[from] hyper::http::Error),
    #[error("{what}: HTTP {status}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("{what}: not the JSON expected: {body}")]
    Json { what: String, body: String },
}

/// Accepts any certificate (the runtime makes a self-signed one on first start) but still
/// checks the handshake signatures, so the session is real TLS.
#[derive(Debug)]
struct AcceptSelfSigned(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptSelfSigned {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The runtime's API at `https://127.0.0.1:port`.
#[derive(Clone)]
pub struct Api {
    addr: SocketAddr,
    tls: TlsConnector,
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body of a 2xx reply.
    pub fn ok_json(&self, what: &str) -> Result<serde_json::Value, HttpError> {
        if !(200..300).contains(&self.status) {
            return Err(HttpError::Status { what: what.into(), status: self.status, body: self.text() });
        }
        serde_json::from_slice(&self.body).map_err(|_| HttpError::Json { what: what.into(), body: self.text() })
    }
}

/// A request body and its content type.
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Body {
    pub fn json(v: &serde_json::Value) -> Body {
        Body { content_type: "application/json".into(), bytes: v.to_string().into_bytes() }
    }

    /// One file in a multipart form, as the Editor uploads a program.
    pub fn multipart_file(field: &str, filename: &str, content_type: &str, data: &[u8]) -> Body {
        let boundary = "----openplcbench7MA4YWxkTrZu0gW";
        let mut bytes = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Body { content_type: format!("multipart/form-data; boundary={boundary}"), bytes }
    }
}

impl Api {
    pub fn new(port: u16) -> Result<Api, HttpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptSelfSigned(provider)))
            .with_no_client_auth();
        Ok(Api { addr: SocketAddr::from(([127, 0, 0, 1], port)), tls: TlsConnector::from(Arc::new(config)) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A new TLS connection to the runtime (for a protocol of its own, such as a WebSocket).
    pub async fn tls(&self) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HttpError> {
        let connect_err = |source| HttpError::Connect { addr: self.addr, source };
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(connect_err)?;
        tcp.set_nodelay(true).map_err(connect_err)?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        self.tls.connect(name, tcp).await.map_err(connect_err)
    }

    /// A new TLS connection, HTTP/1.1 with keep-alive.
    pub async fn connect(&self) -> Result<Conn, HttpError> {
        let tls = self.tls().await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(HttpError::Handshake)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender, host: self.addr.to_string() })
    }

    /// One request on a connection of its own.
    pub async fn once(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
    ) -> Result<Reply, HttpError> {
        self.connect().await?.send(method, path, token, body).await
    }
}

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
    ) -> Result<Reply, HttpError> {
        let mut req = Request::builder().method(method).uri(path).header(hyper::header::HOST, &self.host);
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req.header(hyper::header::CONTENT_TYPE, b.content_type).body(Full::new(Bytes::from(b.bytes)))?,
            None => req.body(Full::new(Bytes::new()))?,
        };
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
}
