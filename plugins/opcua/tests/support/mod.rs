//! A PLC in memory with one variable of every IEC base type, a structure, an array and a
//! counter; the `conf/opcua.json` that exposes them (as the MatIEC-era Editor writes it);
//! and a runner for the Python asyncua client script.
#![allow(dead_code)]

use openplc_opcua::server::auth::PasswordHash;
use openplc_opcua::{Config, Handle, MemVar, MemoryPlc, Plc};
use openplc_port::MemoryImage;
use serde_json::{Value, json};
use shared_abi::program::VarKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const NS: &str = "urn:openplc:test:namespace";
pub const COUNTER: u32 = 21;
pub const SETPOINT: u32 = 29;
pub const LABEL: u32 = 30;

/// 2026-11-24T21:55:03.250Z.
const DT_SECS: i64 = 1_795_557_303;

fn timespec(secs: i64, nanos: i64) -> MemVar {
    let mut b = secs.to_le_bytes().to_vec();
    b.extend_from_slice(&nanos.to_le_bytes());
    MemVar { kind: VarKind::Timespec, bytes: b }
}

fn string(text: &str) -> MemVar {
    let mut b = vec![0u8; 127];
    b[0] = text.len() as u8;
    b[1..1 + text.len()].copy_from_slice(text.as_bytes());
    MemVar { kind: VarKind::String, bytes: b }
}

fn wstring(text: &str) -> MemVar {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut b = vec![0u8; 253];
    b[0] = units.len() as u8;
    for (i, u) in units.iter().enumerate() {
        b[1 + 2 * i..3 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    MemVar { kind: VarKind::String, bytes: b }
}

fn s(b: &[u8]) -> MemVar {
    MemVar::scalar(b)
}

/// The test program's variables, by debug index.
pub fn variables() -> Vec<MemVar> {
    vec![
        s(&[1]),                                                // 0 BOOL
        s(&(-100i8).to_le_bytes()),                             // 1 SINT
        s(&(-31_000i16).to_le_bytes()),                         // 2 INT
        s(&(-2_000_000_000i32).to_le_bytes()),                  // 3 DINT
        s(&(-9_000_000_000_000i64).to_le_bytes()),              // 4 LINT
        s(&[200]),                                              // 5 USINT
        s(&60_000u16.to_le_bytes()),                            // 6 UINT
        s(&4_000_000_000u32.to_le_bytes()),                     // 7 UDINT
        s(&18_000_000_000_000_000_000u64.to_le_bytes()),        // 8 ULINT
        s(&[0xAB]),                                             // 9 BYTE
        s(&0xBEEFu16.to_le_bytes()),                            // 10 WORD
        s(&0xDEAD_BEEFu32.to_le_bytes()),                       // 11 DWORD
        s(&0x0123_4567_89AB_CDEFu64.to_le_bytes()),             // 12 LWORD
        s(&std::f32::consts::PI.to_le_bytes()),                 // 13 REAL
        s(&(-std::f64::consts::E).to_le_bytes()),               // 14 LREAL
        timespec(90_061, 500_000_000),                          // 15 TIME (MatIEC layout)
        s(&((DT_SECS - 78_903) * 1_000_000_000).to_le_bytes()), // 16 DATE (STruC++ layout)
        s(&45_296_789_000_000i64.to_le_bytes()),                // 17 TOD
        timespec(DT_SECS, 250_000_000),                         // 18 DT
        string("Grüße, 1 €"),                                   // 19 STRING
        wstring("Ωmega 𝄞"),                                     // 20 WSTRING
        s(&0u32.to_le_bytes()),                                 // 21 COUNTER (UDINT)
        s(&0i16.to_le_bytes()),                                 // 22 Motor.Speed (INT)
        s(&[1]),                                                // 23 Motor.Run
        s(&0f32.to_le_bytes()),                                 // 24 Motor.Inner.Gain (REAL)
        s(&10i16.to_le_bytes()),                                // 25 Levels[0]
        s(&(-20i16).to_le_bytes()),                             // 26
        s(&30i16.to_le_bytes()),                                // 27
        s(&(-40i16).to_le_bytes()),                             // 28
        s(&7i32.to_le_bytes()),                                 // 29 SETPOINT (DINT)
        string(""),                                             // 30 LABEL (STRING)
    ]
}

/// Every scan: the counter counts; Speed and Gain both take `counter % 30000`, so a
/// reading where they differ was torn across scans.
pub fn program(plc: &MemoryPlc) {
    plc.set_program(|ctx| {
        let n = u32::from_le_bytes(ctx.vars[COUNTER as usize].bytes[..4].try_into().unwrap_or([0; 4])).wrapping_add(1);
        ctx.vars[COUNTER as usize].bytes = n.to_le_bytes().to_vec();
        let m = (n % 30_000) as i16;
        ctx.vars[22].bytes = m.to_le_bytes().to_vec();
        ctx.vars[24].bytes = (m as f32).to_le_bytes().to_vec();
    });
}

pub const BASE: [(&str, &str, u32); 21] = [
    ("BOOL", "BOOL", 0),
    ("SINT", "SINT", 1),
    ("INT", "INT", 2),
    ("DINT", "DINT", 3),
    ("LINT", "LINT", 4),
    ("USINT", "USINT", 5),
    ("UINT", "UINT", 6),
    ("UDINT", "UDINT", 7),
    ("ULINT", "ULINT", 8),
    ("BYTE", "BYTE", 9),
    ("WORD", "WORD", 10),
    ("DWORD", "DWORD", 11),
    ("LWORD", "LWORD", 12),
    ("REAL", "REAL", 13),
    ("LREAL", "LREAL", 14),
    ("TIME", "TIME", 15),
    ("DATE", "DATE", 16),
    ("TOD", "TOD", 17),
    ("DT", "DT", 18),
    ("STRING", "STRING", 19),
    ("WSTRING", "WSTRING", 20),
];

fn perms(viewer: &str, operator: &str, engineer: &str) -> Value {
    json!({ "viewer": viewer, "operator": operator, "engineer": engineer })
}

fn hash(password: &str) -> String {
    // The Editor's format; fewer rounds than its 600 000 keep the tests quick.
    PasswordHash::create(password, b"test-salt-16byte", 1000)
}

/// `conf/opcua.json` for the test program (`trusted_pem`: the certificate a client signs in
/// with on the secure profile).
pub fn config_json(trusted_pem: Option<&str>) -> Value {
    let mut variables: Vec<Value> = BASE
        .iter()
        .map(|(name, ty, index)| {
            json!({ "node_id": format!("PLC.{name}"), "browse_name": name, "display_name": name, "datatype": ty,
                    "initial_value": 0, "description": format!("a {ty}"), "index": index, "permissions": perms("r", "r", "rw") })
        })
        .collect();
    variables.push(
        json!({ "node_id": "PLC.Counter", "browse_name": "Counter", "display_name": "Counter", "datatype": "UDINT",
        "initial_value": 0, "description": "", "index": COUNTER, "permissions": perms("r", "r", "r") }),
    );
    variables.push(
        json!({ "node_id": "PLC.Setpoint", "browse_name": "Setpoint", "display_name": "Setpoint", "datatype": "DINT",
        "initial_value": 0, "description": "", "index": SETPOINT, "permissions": perms("r", "rw", "rw") }),
    );
    variables
        .push(json!({ "node_id": "PLC.Label", "browse_name": "Label", "display_name": "Label", "datatype": "STRING",
        "initial_value": "", "description": "", "index": LABEL, "permissions": perms("r", "r", "rw") }));
    let trusted: Vec<Value> = trusted_pem.map(|pem| json!({ "id": "scada", "pem": pem })).into_iter().collect();
    let mut users = vec![
        json!({ "type": "password", "username": "eng", "password_hash": hash("eng-pass"), "certificate_id": null, "role": "engineer" }),
        json!({ "type": "password", "username": "op", "password_hash": hash("op-pass"), "certificate_id": null, "role": "operator" }),
        json!({ "type": "password", "username": "view", "password_hash": hash("view-pass"), "certificate_id": null, "role": "viewer" }),
    ];
    if trusted_pem.is_some() {
        users.push(json!({ "type": "certificate", "username": null, "password_hash": null, "certificate_id": "scada", "role": "operator" }));
    }
    json!([{
        "name": "opcua_server",
        "protocol": "OPC-UA",
        "config": {
            "server": {
                "name": "OpenPLC test server",
                "application_uri": "urn:openplc:test:server",
                "product_uri": "urn:openplc:runtime",
                "endpoint_url": "opc.tcp://127.0.0.1:0/openplc/opcua",
                "security_profiles": [
                    { "name": "insecure", "enabled": true, "security_policy": "None", "security_mode": "None",
                      "auth_methods": ["Anonymous", "Username"], "anonymous_role": "engineer" },
                    { "name": "secure", "enabled": true, "security_policy": "Basic256Sha256", "security_mode": "SignAndEncrypt",
                      "auth_methods": ["Username", "Certificate"] },
                    { "name": "pss", "enabled": true, "security_policy": "Aes256_Sha256_RsaPss", "security_mode": "Sign",
                      "auth_methods": ["Username"] },
                    { "name": "oaep", "enabled": true, "security_policy": "Aes128_Sha256_RsaOaep", "security_mode": "SignAndEncrypt",
                      "auth_methods": ["Username"] }
                ]
            },
            "security": {
                "server_certificate_strategy": "auto_self_signed",
                "server_certificate_custom": null,
                "server_private_key_custom": null,
                "trusted_client_certificates": trusted
            },
            "users": users,
            "cycle_time_ms": 100,
            "address_space": {
                "namespace_uri": NS,
                "variables": variables,
                "structures": [{
                    "node_id": "PLC.Motor", "browse_name": "Motor", "display_name": "Motor", "description": "a structure",
                    "fields": [
                        { "name": "Speed", "datatype": "INT", "initial_value": 0, "index": 22, "permissions": perms("r", "r", "rw") },
                        { "name": "Run", "datatype": "BOOL", "initial_value": false, "index": 23, "permissions": perms("r", "r", "rw") },
                        { "name": "Inner", "datatype": "GAINS", "initial_value": 0, "index": null, "permissions": perms("r", "r", "r"),
                          "fields": [ { "name": "Gain", "datatype": "REAL", "initial_value": 0, "index": 24, "permissions": perms("r", "r", "rw") } ] }
                    ]
                }],
                "arrays": [{
                    "node_id": "PLC.Levels", "browse_name": "Levels", "display_name": "Levels", "datatype": "INT", "length": 4,
                    "initial_value": 0, "index": 25, "permissions": perms("r", "r", "rw")
                }]
            }
        }
    }])
}

pub struct Running {
    pub plc: MemoryPlc,
    pub handle: Handle,
    pub url: String,
    pub dir: tempfile::TempDir,
}

/// Starts the test program (scans every 10 ms) and the server on a free loopback port.
pub async fn start(trusted_pem: Option<&str>) -> Running {
    start_with(trusted_pem, |_| {}).await
}

/// As [`start`], with the configuration changed by `patch` first.
pub async fn start_with(trusted_pem: Option<&str>, patch: impl FnOnce(&mut Value)) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).expect("conf dir");
    let mut json = config_json(trusted_pem);
    patch(&mut json[0]["config"]);
    std::fs::write(conf.join("opcua.json"), serde_json::to_vec_pretty(&json).expect("json")).expect("write");
    let plc = MemoryPlc::new(variables(), Duration::from_millis(10));
    program(&plc);
    let config = Config::from_conf_dir(&conf).expect("config");
    let shared = Plc { vars: Arc::new(plc.clone()), image: Arc::new(MemoryImage::zeroed()) };
    let handle = openplc_opcua::start(config, shared, &dir.path().join("opcua")).await.expect("server starts");
    let addr = handle.server().expect("server").local_addr();
    let url = format!("opc.tcp://127.0.0.1:{}/openplc/opcua", addr.port());
    Running { plc, handle, url, dir }
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py").join(name)
}

/// Runs the Python client with `args`; its one line of JSON.
pub async fn py(args: &[&str]) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("python3").arg(script("ua_client.py")).args(args).kill_on_drop(true).output(),
    )
    .await
    .expect("the Python client finished in time")
    .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ua_client.py {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
