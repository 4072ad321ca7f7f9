//! LAN discovery as upstream's: a UDP datagram that is exactly `OPENPLC_DISCOVER_V1` gets
//! a unicast JSON reply describing this runtime; anything else is dropped. One reply per
//! source address per 100 ms, so the responder cannot be used as an amplifier. No project
//! details are advertised.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

pub const MAGIC: &[u8] = b"OPENPLC_DISCOVER_V1";
const MAX_REQUEST: usize = 64;
const PER_ADDRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The reply for this runtime.
pub fn reply(runtime_version: &str, api_port: u16) -> Vec<u8> {
    let hostname = crate::tls::hostname().unwrap_or_else(|| "localhost".into());
    serde_json::to_vec(&serde_json::json!({
        "service": "openplc-runtime",
        "protocol_version": 1,
        "runtime_version": runtime_version,
        "hostname": hostname,
        "api_port": api_port,
    }))
    .unwrap_or_default()
}

/// Whether a datagram is a discovery request.
pub fn is_request(data: &[u8]) -> bool {
    data.len() <= MAX_REQUEST && data.trim_ascii() == MAGIC
}

/// Answers discovery requests on `socket` forever.
pub async fn respond(socket: UdpSocket, payload: Vec<u8>) {
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
        let _ = socket.send_to(&payload, from).await;
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
        tokio::spawn(respond(server, reply("v4", 8443)));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(MAGIC, addr).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf)).await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(v["service"], "openplc-runtime");
        assert_eq!(v["api_port"], 8443);
        assert_eq!(v["protocol_version"], 1);
        client.send_to(MAGIC, addr).await.unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(50), client.recv(&mut buf)).await.is_err(), "rate limited");
    }
}
