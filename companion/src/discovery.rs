//! LAN discovery as upstream's: a UDP datagram that is exactly `OPENPLC_DISCOVER_V1` gets
//! a unicast JSON reply describing this runtime; anything else is dropped. One reply per
//! source address per 100 ms, so the responder cannot be used as an amplifier. When the
//! current program came with a project snapshot, its name and timestamp are advertised
//! (`project_name`, `project_timestamp`, as upstream) so an Editor can fill its device picker
//! without signing in; nothing else about the project is.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

pub const MAGIC: &[u8] = b"OPENPLC_DISCOVER_V1";
const MAX_REQUEST: usize = 64;
const PER_ADDRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What this runtime advertises.
#[derive(Clone, Debug)]
pub struct Advert {
    pub runtime_version: String,
    pub api_port: u16,
    pub hostname: String,
}

impl Advert {
    pub fn new(runtime_version: &str, api_port: u16) -> Advert {
        let hostname = crate::tls::hostname().unwrap_or_else(|| "localhost".into());
        Advert { runtime_version: runtime_version.to_string(), api_port, hostname }
    }

    /// The reply, with the stored project's name and timestamp when there is one.
    pub fn reply(&self, project: Option<(String, String)>) -> Vec<u8> {
        let mut body = serde_json::json!({
            "service": "openplc-runtime",
            "protocol_version": 1,
            "runtime_version": self.runtime_version,
            "hostname": self.hostname,
            "api_port": self.api_port,
        });
        if let Some((name, timestamp)) = project {
            body["project_name"] = name.into();
            body["project_timestamp"] = timestamp.into();
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Whether a datagram is a discovery request.
pub fn is_request(data: &[u8]) -> bool {
    data.len() <= MAX_REQUEST && data.trim_ascii() == MAGIC
}

/// Answers discovery requests on `socket` forever, with the reply `payload` makes at the time.
pub async fn respond(socket: UdpSocket, payload: impl Fn() -> Vec<u8> + Send + 'static) {
    let mut buf = [0u8; MAX_REQUEST + 1];
    let mut last: HashMap<IpAddr, Instant> = HashMap::new();
    loop {
        let (n, from): (usize, SocketAddr) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !is_request(&buf[..n]) {
            continue;
        }
        let now = Instant::now();
        if last.get(&from.ip()).is_some_and(|t| now.duration_since(*t) < PER_ADDRESS_INTERVAL) {
            continue;
        }
        if last.len() > 1024 {
            last.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        }
        last.insert(from.ip(), now);
        let _ = socket.send_to(&payload(), from).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_magic_is_a_request() {
        assert!(is_request(b"OPENPLC_DISCOVER_V1"));
        assert!(is_request(b"OPENPLC_DISCOVER_V1\n"));
        assert!(!is_request(b"OPENPLC_DISCOVER_V2"));
        assert!(!is_request(&[b'x'; 65]));
    }

    #[tokio::test]
    async fn answers_with_json_once_per_interval() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let advert = Advert::new("v4", 8443);
        let project = std::sync::Arc::new(std::sync::Mutex::new(None::<(String, String)>));
        let current = project.clone();
        tokio::spawn(respond(server, move || advert.reply(current.lock().unwrap().clone())));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(MAGIC, addr).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf)).await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["service"], "openplc-runtime");
        assert_eq!(v["api_port"], 8443);
        assert_eq!(v["protocol_version"], 1);
        assert!(v.get("project_name").is_none(), "no project stored: no project fields");
        client.send_to(MAGIC, addr).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), client.recv(&mut buf)).await.is_err(), "rate limited");
        *project.lock().unwrap() = Some(("Traffic Light".into(), "2026-08-31T12:00:00Z".into()));
        tokio::time::sleep(PER_ADDRESS_INTERVAL).await;
        client.send_to(MAGIC, addr).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf)).await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(
            (v["project_name"].as_str(), v["project_timestamp"].as_str()),
            (Some("Traffic Light"), Some("2026-08-31T12:00:00Z"))
        );
    }
}
