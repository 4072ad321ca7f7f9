//! `monitor_input`: what a browser monitor page sends. Its live socket's text frames
//! (`monitor::messages::parse`), the force and release bodies through the REST extractor
//! (`JsonBody<ForceBody>`, `JsonBody<ReleaseBody>`), and a typed value turned into native
//! bytes (`monitor::value::encode`) for a type, kind and size taken from the input's first
//! three bytes. Round trips: an integer, BOOL or TIME value decoded as the monitor shows it
//! (`variables::decode`) encodes back to the same bytes.

use crate::support::block_on;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use openplc_companion::api::error::ApiError;
use openplc_companion::api::extract::JsonBody;
use openplc_companion::monitor::actions::{ForceBody, ReleaseBody};
use openplc_companion::monitor::messages::{self, ClientMessage, MAX_VARS_PER_PAGE};
use openplc_companion::monitor::value;
use openplc_companion::variables::decode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared_abi::program::VarKind;

const TYPES: [&str; 21] = [
    "BOOL", "SINT", "INT", "DINT", "LINT", "USINT", "UINT", "UDINT", "ULINT", "BYTE", "WORD", "DWORD", "LWORD", "REAL",
    "LREAL", "TIME", "STRING", "WSTRING", "DT", "TOD", "MY_TYPE",
];

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match messages::parse(&text) {
        Ok(ClientMessage::Watch(w)) => {
            assert!(w.vars.len() <= MAX_VARS_PER_PAGE);
            assert!(w.vars.windows(2).all(|p| p[0] < p[1]), "sorted, no duplicates");
        }
        Ok(ClientMessage::Auth { .. }) => {}
        Err(e) => assert!(e.to_string().len() < 300, "a short message to send back"),
    }
    body::<ForceBody>(data);
    body::<ReleaseBody>(data);
    if let [ty, kind, size, rest @ ..] = data {
        let iec_type = TYPES[*ty as usize % TYPES.len()];
        let kind = VarKind::from_u32(u32::from(*kind % 4));
        encode(iec_type, kind, *size as usize, &String::from_utf8_lossy(rest));
    }
}

fn body<T: DeserializeOwned>(data: &[u8]) {
    let request = Request::new(Body::from(data.to_vec()));
    match block_on(JsonBody::<T>::from_request(request, &())) {
        Ok(_) | Err(ApiError::BadRequest(_)) => {}
        Err(other) => panic!("a body that does not parse is a 400, not {other:?}"),
    }
}

fn encode(iec_type: &str, kind: VarKind, size: usize, text: &str) {
    let Ok(bytes) = value::encode(iec_type, kind, size, text) else { return };
    match kind {
        VarKind::String => {
            assert!(bytes.len() <= size, "{iec_type}: {} bytes for {size}", bytes.len());
            let units = if iec_type == "WSTRING" { 2 } else { 1 };
            assert_eq!(bytes.len(), 1 + bytes[0] as usize * units, "length prefix");
            return;
        }
        _ => assert_eq!(bytes.len(), size, "{iec_type} ({kind:?}) is exactly its size"),
    }
    let shown = match decode(iec_type, &bytes) {
        Value::Bool(b) => if b { "TRUE" } else { "FALSE" }.to_string(),
        Value::Number(n) if !matches!(iec_type, "REAL" | "LREAL") => n.to_string(),
        Value::String(s) if iec_type == "TIME" => s,
        _ => return,
    };
    assert_eq!(value::encode(iec_type, kind, size, &shown).ok(), Some(bytes), "{iec_type} {text:?} → {shown}");
}
