//! Online change and RETAIN migration through the real companion and rt-core: an Editor
//! upload of a changed program while the old one runs (MatIEC and STruC++ bundles) carries
//! every variable matched by name and type into the new program at a cycle boundary, so the
//! count continues, converted and dropped variables are reported by name in
//! `/api/retain-status`, and RETAIN values are kept with the counts upstream reports.
//! `?clean=1` starts the new program cold.

mod common;

use common::{Runtime, rewrite_zip, wait_for};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn deploy(rt: &Runtime, token: &str, zip: &Path, query: &str) -> Value {
    assert_eq!(rt.upload_with(zip, token, query, &[]).status, 200);
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(token, "STATUS:RUNNING");
    build
}

fn value(rt: &Runtime, token: &str, name: &str) -> Value {
    let reply = rt.get(&format!("/variables/values?names={name}"), token);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["values"][0]["value"].clone()
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

/// Applies text edits (file, from, to) to a bundle's entries, every occurrence.
fn edited(src: &Path, out: &Path, edits: &[(&str, &str, &str)]) {
    rewrite_zip(
        src,
        out,
        |name, data| {
            let mut text = String::from_utf8(data).unwrap();
            for (_, from, to) in edits.iter().filter(|(f, ..)| *f == name) {
                assert!(text.contains(from), "{name} has no {from:?}");
                text = text.replace(from, to);
            }
            Some(text.into_bytes())
        },
        &[],
    );
}

/// What `/api/retain-status` reports of the RETAIN variables after the online change.
#[derive(Debug, PartialEq)]
struct RetainCounts {
    kept: u64,
    converted: u64,
    truncated: u64,
    added: u64,
    dropped: u64,
}

/// The common checks: the count continues across the online change, the report names what
/// changed, and the RETAIN variables are counted as `retained` says.
fn check_online_change(rt: &Runtime, token: &str, prefix: &str, v1: &Path, v2: &Path, retained: RetainCounts) {
    let counter = format!("{prefix}V_UDINT");
    deploy(rt, token, v1, "");
    let before = wait_for("V_UDINT to count", T, || value(rt, token, &counter).as_u64().filter(|&v| v >= 3_000_000));
    let scans_before = rt.scan_count(token);

    let build = deploy(rt, token, v2, "");
    let logs = build["logs"].to_string();
    assert!(logs.contains("Online change: "), "{logs}");
    let after = value(rt, token, &counter).as_u64().unwrap();
    assert!(after > before, "V_UDINT carried on from {before}: {after}");
    assert!(rt.scan_count(token) > scans_before, "the scan count continues");

    let status = rt.get("/retain-status", token).json();
    let change = &status["online_change"];
    assert_eq!(change["done"], true, "{status:#}");
    assert_eq!(names(&change["names"]["converted"]), [format!("{prefix}V_DINT"), format!("{prefix}V_UINT")]);
    assert_eq!(names(&change["names"]["dropped"]), [format!("{prefix}V_LINT")]);
    assert_eq!(names(&change["names"]["added"]), [format!("{prefix}V_LINT2")]);
    assert_eq!(change["truncated"], 1, "V_DINT (1000 per scan) no longer fits an INT: {change:#}");
    assert!(change["tick"].as_u64().unwrap() >= scans_before, "{change:#}");
    let retain = &status["retain"];
    assert_eq!(retain["migrated"], true, "{retain:#}");
    let count = |what: &str| retain[what].as_u64().unwrap_or_else(|| panic!("no {what}: {retain:#}"));
    let counts = RetainCounts {
        kept: count("kept"),
        converted: count("converted"),
        truncated: count("truncated"),
        added: count("added"),
        dropped: count("dropped"),
    };
    assert_eq!(counts, retained, "{retain:#}");
    wait_for("the online change in the runtime log", T, || rt.log().contains("Online change to program").then_some(()));

    // ?clean=1: cold, V_UDINT starts over.
    deploy(rt, token, v2, "?clean=1");
    assert!(rt.get("/retain-status", token).json()["online_change"].is_null());
    let fresh = value(rt, token, &counter).as_u64().unwrap();
    assert!(fresh < after, "started over: {fresh}");
}

/// The type and name changes of every v2: V_DINT DINT -> INT (converted, truncated),
/// V_UINT UINT -> UDINT (converted), V_LINT renamed V_LINT2 (dropped, added).
const MATIEC_V2: &[(&str, &str, &str)] = &[
    ("POUS.h", "__DECLARE_VAR(DINT,V_DINT)", "__DECLARE_VAR(INT,V_DINT)"),
    ("POUS.h", "__DECLARE_VAR(UINT,V_UINT)", "__DECLARE_VAR(UDINT,V_UINT)"),
    ("POUS.h", "V_LINT)", "V_LINT2)"),
    ("POUS.c", "V_LINT", "V_LINT2"),
    ("debug.c", "V_DINT), DINT_ENUM", "V_DINT), INT_ENUM"),
    ("debug.c", "V_UINT), UINT_ENUM", "V_UINT), UDINT_ENUM"),
    ("debug.c", "V_LINT)", "V_LINT2)"),
    ("VARIABLES.csv", "V_DINT;DINT;DINT", "V_DINT;INT;INT"),
    ("VARIABLES.csv", "V_UINT;UINT;UINT", "V_UINT;UDINT;UDINT"),
    ("VARIABLES.csv", "V_LINT", "V_LINT2"),
];

#[test]
fn a_matiec_upload_is_an_online_change_that_keeps_the_count() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let plain = rt.dir.path().join("plain.zip");
    common::demo_bundle(&plain, &["--period-ms", "10"]);
    // V_UDINT, V_DINT and V_LINT RETAIN (MatIEC's init flag and VARIABLES.csv's column).
    let v1 = rt.dir.path().join("v1.zip");
    let mut retain = Vec::new();
    for (var, ty) in [("V_UDINT", "UDINT"), ("V_DINT", "DINT"), ("V_LINT", "LINT")] {
        retain.push((
            "POUS.c",
            format!("__INIT_VAR(data__->{var},0,retain)"),
            format!("__INIT_VAR(data__->{var},0,1)"),
        ));
        retain.push(("VARIABLES.csv", format!("{var};{ty};{ty};0;"), format!("{var};{ty};{ty};1;")));
    }
    edited(&plain, &v1, &common::edits(&retain));
    let v2 = rt.dir.path().join("v2.zip");
    edited(&v1, &v2, MATIEC_V2);
    // V_UDINT kept; V_DINT converted (and truncated); V_LINT dropped, V_LINT2 added (RETAIN:
    // the rename keeps its flag).
    let retained = RetainCounts { kept: 1, converted: 1, truncated: 1, added: 1, dropped: 1 };
    check_online_change(&rt, &token, "CONFIG0.RES0.INSTANCE0.", &v1, &v2, retained);
}

#[test]
fn a_strucpp_upload_is_an_online_change_that_keeps_the_count() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    // COUNTER, V_UDINT, V_DINT and V_LINT RETAIN in v1; the same in v2 with V_DINT an INT and
    // V_LINT renamed V_LINT2.
    let retain_v1 =
        common::strucpp_retain(&[("COUNTER", "UINT"), ("V_UDINT", "UDINT"), ("V_DINT", "DINT"), ("V_LINT", "LINT")]);
    let retain_v2 =
        common::strucpp_retain(&[("COUNTER", "UINT"), ("V_UDINT", "UDINT"), ("V_DINT", "INT"), ("V_LINT2", "LINT")]);
    let v1 = common::strucpp_bundle(rt.dir.path(), "v1", &common::edits(&retain_v1));
    // The renames first: the RETAIN table names V_LINT2 already.
    let mut v2_edits = vec![
        ("generated.hpp", "IEC_DINT V_DINT;", "IEC_INT V_DINT;"),
        ("generated.hpp", "IEC_UINT V_UINT;", "IEC_UDINT V_UINT;"),
        ("generated.hpp", "V_LINT", "V_LINT2"),
        ("pou_MAIN.cpp", "V_LINT", "V_LINT2"),
        ("generated_debug.cpp", "V_DINT, TAG_DINT", "V_DINT, TAG_INT"),
        ("generated_debug.cpp", "V_UINT, TAG_UINT", "V_UINT, TAG_UDINT"),
        ("generated_debug.cpp", "V_LINT", "V_LINT2"),
        (
            "debug-map.json",
            "\"INSTANCE0.V_DINT\",\n      \"type\": \"DINT\",\n      \"size\": 4",
            "\"INSTANCE0.V_DINT\",\n      \"type\": \"INT\",\n      \"size\": 2",
        ),
        (
            "debug-map.json",
            "\"INSTANCE0.V_UINT\",\n      \"type\": \"UINT\",\n      \"size\": 2",
            "\"INSTANCE0.V_UINT\",\n      \"type\": \"UDINT\",\n      \"size\": 4",
        ),
        ("debug-map.json", "INSTANCE0.V_LINT", "INSTANCE0.V_LINT2"),
    ];
    v2_edits.extend(common::edits(&retain_v2));
    let v2 = common::strucpp_bundle(rt.dir.path(), "v2", &v2_edits);
    // COUNTER and V_UDINT kept; V_DINT converted (and truncated); V_LINT dropped, V_LINT2 added.
    let retained = RetainCounts { kept: 2, converted: 1, truncated: 1, added: 1, dropped: 1 };
    check_online_change(&rt, &token, "INSTANCE0.", &v1, &v2, retained);
}
