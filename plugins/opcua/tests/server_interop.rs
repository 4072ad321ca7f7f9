//! The server against Python asyncua (a client stack no one here wrote), over real sockets,
//! in front of the in-memory PLC: what the running demo programs of
//! `companion/tests/opcua_e2e.rs` cannot show — a variable of every IEC base type (DATE,
//! TOD, DT, WSTRING, extreme values) read exactly, and the secure profiles with trusted and
//! untrusted client certificates. Browsing, reads against the debugger, subscriptions and
//! writes by role are proven there, against real programs. Needs `asyncua`
//! (scripts/test-deps).

mod support;

use serde_json::{Value, json};
use support::*;

async fn read(url: &str, nodes: &[&str]) -> Value {
    let mut args = vec!["read", url, NS];
    args.extend_from_slice(nodes);
    py(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_reads_every_base_type_exactly() {
    let r = start(None).await;
    let nodes: Vec<String> = BASE.iter().map(|(n, _, _)| format!("PLC.{n}")).collect();
    let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let got = read(&r.url, &refs).await;
    let expected = json!({
        "PLC.BOOL": ["Boolean", true],
        "PLC.SINT": ["SByte", -100],
        "PLC.INT": ["Int16", -31000],
        "PLC.DINT": ["Int32", -2000000000],
        "PLC.LINT": ["Int64", -9000000000000i64],
        "PLC.USINT": ["Byte", 200],
        "PLC.UINT": ["UInt16", 60000],
        "PLC.UDINT": ["UInt32", 4000000000u32],
        "PLC.ULINT": ["UInt64", 18000000000000000000u64],
        "PLC.BYTE": ["Byte", 171],
        "PLC.WORD": ["UInt16", 48879],
        "PLC.DWORD": ["UInt32", 3735928559u32],
        "PLC.LWORD": ["UInt64", 81985529216486895u64],
        // The exact f32 a REAL holds, not a rounded print of it.
        "PLC.REAL": ["Float", "3.1415927410125732"],
        "PLC.LREAL": ["Double", "-2.718281828459045"],
        "PLC.TIME": ["Double", "90061500.0"],
        "PLC.DATE": ["DateTime", "2026-11-24T00:00:00+00:00"],
        "PLC.TOD": ["DateTime", "1970-01-01T12:34:56.789000+00:00"],
        "PLC.DT": ["DateTime", "2026-11-24T21:55:03.250000+00:00"],
        "PLC.STRING": ["String", "Grüße, 1 €"],
        "PLC.WSTRING": ["String", "Ωmega 𝄞"],
    });
    assert_eq!(got, expected);
    r.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_channels_need_a_trusted_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    let dir = certs.path().to_str().expect("utf-8 path");
    py(&["certs", dir]).await;
    let pem = std::fs::read_to_string(certs.path().join("trusted/cert.pem")).expect("pem");
    let r = start(Some(&pem)).await;
    let trusted = format!("{dir}/trusted");
    let stranger = format!("{dir}/stranger");
    let attempts = json!([
        [trusted, "eng", "eng-pass", "PLC.INT", "Basic256Sha256", "SignAndEncrypt"],
        [trusted, "op", "op-pass", "PLC.UINT", "Aes256Sha256RsaPss", "Sign"],
        [trusted, "op", "op-pass", "PLC.UINT", "Aes128Sha256RsaOaep", "SignAndEncrypt"],
        [stranger, "eng", "eng-pass", "PLC.INT", "Basic256Sha256", "SignAndEncrypt"],
    ]);
    let got = py(&["secure", &r.url, NS, &attempts.to_string()]).await;
    let ok = &got[0];
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["value"], -31000);
    assert!(ok["policy"].as_str().unwrap_or_default().ends_with("#Basic256Sha256"), "{ok}");
    for (got, policy) in [(&got[1], "Aes256_Sha256_RsaPss"), (&got[2], "Aes128_Sha256_RsaOaep")] {
        assert_eq!(got["ok"], true, "{policy}: {got}");
        assert_eq!(got["value"], 60000);
        assert!(got["policy"].as_str().unwrap_or_default().ends_with(&format!("#{policy}")), "{got}");
    }
    let refused = &got[3];
    assert_eq!(refused["ok"], false, "an untrusted client certificate is refused: {refused}");
    let status = r.handle.status();
    let server = status.server.expect("server status");
    let name = server.rejected_certificates.iter().find(|n| n.contains("test client stranger"));
    let name = name.unwrap_or_else(|| panic!("listed for an admin to trust: {:?}", server.rejected_certificates));
    // What the README tells an admin: move the file into the trusted folder.
    let from = std::path::Path::new(&server.rejected_dir).join(name);
    std::fs::rename(&from, std::path::Path::new(&server.trusted_dir).join(name)).expect("move the certificate");
    let again = py(&["secure", &r.url, NS, &json!([attempts[3]]).to_string()]).await;
    assert_eq!(again[0]["ok"], true, "trusted once moved: {again}");
    assert!(r.handle.status().server.expect("status").rejected_certificates.is_empty());
    r.handle.stop().await;
}
