//! The server against Python asyncua (a client stack no one here wrote), over real sockets,
//! in front of the in-memory PLC. Needs `asyncua` (scripts/test-deps).

mod support;

use serde_json::{Value, json};
use support::*;

async fn read(url: &str, nodes: &[&str]) -> Value {
    let mut args = vec!["read", url, NS];
    args.extend_from_slice(nodes);
    py(&args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncua_browses_the_namespace_with_the_right_types() {
    let r = start(None).await;
    let found = py(&["browse", &r.url, NS]).await;
    for (name, _, _) in BASE {
        assert!(found.get(name).is_some(), "{name} missing from {found}");
    }
    let ty = |path: &str| found[path]["data_type"].as_str().unwrap_or("").to_string();
    assert_eq!(ty("BOOL"), "i=1");
    assert_eq!(ty("SINT"), "i=2");
    assert_eq!(ty("BYTE"), "i=3");
    assert_eq!(ty("INT"), "i=4");
    assert_eq!(ty("UDINT"), "i=7");
    assert_eq!(ty("REAL"), "i=10");
    assert_eq!(ty("LREAL"), "i=11");
    assert_eq!(ty("STRING"), "i=12");
    assert_eq!(ty("WSTRING"), "i=12");
    assert_eq!(ty("DT"), "i=13");
    assert_eq!(ty("TIME"), "i=290", "TIME is a Duration");
    assert_eq!(found["Motor"]["class"], "Object");
    assert_eq!(found["Motor/Inner"]["class"], "Object");
    assert_eq!(
        found["Motor/Inner/Gain"]["node_id"].as_str().map(|s| s.ends_with(";s=PLC.Motor.Inner.Gain")),
        Some(true)
    );
    assert_eq!(found["Levels"]["value_rank"], 1);
    r.handle.stop().await;
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
async fn a_structure_and_an_array_come_from_one_scan() {
    let r = start(None).await;
    for _ in 0..5 {
        let got = read(&r.url, &["PLC.Motor.Speed", "PLC.Motor.Inner.Gain", "PLC.Motor.Run", "PLC.Levels"]).await;
        let speed = got["PLC.Motor.Speed"][1].as_i64().expect("speed");
        let gain: f64 = got["PLC.Motor.Inner.Gain"][1].as_str().and_then(|s| s.parse().ok()).expect("gain");
        assert!(speed > 0, "the program runs: {got}");
        assert_eq!(speed as f64, gain, "both fields are set in every scan: a difference is a torn read ({got})");
        assert_eq!(got["PLC.Motor.Run"], json!(["Boolean", true]));
        assert_eq!(got["PLC.Levels"], json!(["Int16", [10, -20, 30, -40]]));
    }
    r.handle.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_sees_the_counter_at_the_configured_rate() {
    let r = start(None).await;
    let calls_before = r.plc.sample_calls();
    let got = py(&["subscribe", &r.url, NS, "PLC.Counter", "3"]).await;
    let values: Vec<u64> = got["values"].as_array().expect("values").iter().filter_map(Value::as_u64).collect();
    // cycle_time_ms is 100 and the counter moves every 10 ms: about one notification per
    // 100 ms, each a new value (generous bounds: the machine is a shared VM).
    assert!(values.len() >= 12, "too few notifications in 3 s: {got}");
    assert!(values.len() <= 40, "more notifications than the publishing rate allows: {got}");
    assert!(values.windows(2).all(|w| w[1] > w[0]), "every notification is a newer value: {values:?}");
    let steps: Vec<u64> = values.windows(2).map(|w| w[1] - w[0]).collect();
    let median = {
        let mut s = steps.clone();
        s.sort_unstable();
        s[s.len() / 2]
    };
    assert!((5..=20).contains(&median), "about 10 scans (100 ms) between notifications: {steps:?}");
    // The PLC saw one sample per period for the subscription (plus reads), never one per item per client.
    let calls = r.plc.sample_calls() - calls_before;
    assert!(calls <= 80, "{calls} samples for 3 s of one subscription");
    r.handle.stop().await;
}

async fn write(url: &str, user: &str, pass: &str, node: &str, kind: &str, value: &str) -> String {
    let got = py(&["write", url, NS, user, pass, node, kind, value]).await;
    got["status"].as_str().unwrap_or_default().to_string()
}

fn dint(plc: &openplc_opcua::MemoryPlc, var: u32) -> i32 {
    i32::from_le_bytes(plc.var(var).expect("var").bytes[..4].try_into().expect("4 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_follow_roles_types_and_ranges() {
    let r = start(None).await;
    assert_eq!(write(&r.url, "eng", "eng-pass", "PLC.Setpoint", "Int32", "1234").await, "Good");
    assert_eq!(dint(&r.plc, SETPOINT), 1234, "the engineer's write reached the PLC");
    assert_eq!(read(&r.url, &["PLC.Setpoint"]).await["PLC.Setpoint"], json!(["Int32", 1234]), "and reads back");
    assert_eq!(write(&r.url, "op", "op-pass", "PLC.Setpoint", "Int32", "55").await, "Good", "operator has rw here");
    assert_eq!(dint(&r.plc, SETPOINT), 55);
    // Refusals change nothing.
    assert_eq!(write(&r.url, "view", "view-pass", "PLC.Setpoint", "Int32", "1").await, "BadUserAccessDenied");
    assert_eq!(
        write(&r.url, "-", "", "PLC.Setpoint", "Int32", "2").await,
        "BadUserAccessDenied",
        "anonymous is a viewer"
    );
    assert_eq!(
        write(&r.url, "op", "op-pass", "PLC.INT", "Int16", "3").await,
        "BadUserAccessDenied",
        "operator has r here"
    );
    assert_eq!(write(&r.url, "eng", "eng-pass", "PLC.Setpoint", "Int16", "4").await, "BadTypeMismatch");
    assert_eq!(write(&r.url, "eng", "eng-pass", "PLC.Setpoint", "Double", "5.0").await, "BadTypeMismatch");
    assert_eq!(dint(&r.plc, SETPOINT), 55);
    let long = format!("\"{}\"", "x".repeat(127));
    assert_eq!(write(&r.url, "eng", "eng-pass", "PLC.Label", "String", &long).await, "BadOutOfRange");
    assert_eq!(r.plc.var(LABEL).expect("label").bytes[0], 0, "the STRING is unchanged");
    assert_eq!(write(&r.url, "eng", "eng-pass", "PLC.Label", "String", "\"Grüße €\"").await, "Good");
    assert_eq!(read(&r.url, &["PLC.Label"]).await["PLC.Label"], json!(["String", "Grüße €"]));
    assert_eq!(write(&r.url, "eng", "wrong", "PLC.Setpoint", "Int32", "6").await, "session refused");
    assert_eq!(dint(&r.plc, SETPOINT), 55);
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
    let ok = py(&["secure", &r.url, NS, &trusted, "eng", "eng-pass", "PLC.INT"]).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["value"], -31000);
    assert!(ok["policy"].as_str().unwrap_or_default().ends_with("#Basic256Sha256"), "{ok}");
    for (policy, mode) in [("Aes256Sha256RsaPss", "Sign"), ("Aes128Sha256RsaOaep", "SignAndEncrypt")] {
        let got = py(&["secure", &r.url, NS, &trusted, "op", "op-pass", "PLC.UINT", policy, mode]).await;
        assert_eq!(got["ok"], true, "{policy} {mode}: {got}");
        assert_eq!(got["value"], 60000);
        assert!(
            got["policy"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("#{}", policy.replace("Sha256Rsa", "_Sha256_Rsa"))),
            "{got}"
        );
    }
    let stranger = format!("{dir}/stranger");
    let refused = py(&["secure", &r.url, NS, &stranger, "eng", "eng-pass", "PLC.INT"]).await;
    assert_eq!(refused["ok"], false, "an untrusted client certificate is refused: {refused}");
    let status = r.handle.status();
    let rejected = status.server.expect("server status").rejected_certificates;
    assert!(rejected.iter().any(|n| n.contains("test client stranger")), "listed for an admin to trust: {rejected:?}");
    r.handle.stop().await;
}
