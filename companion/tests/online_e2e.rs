//! Online change and RETAIN migration through the real companion and rt-core: an Editor
//! upload of a changed program while the old one runs (MatIEC and STruC++ bundles) carries
//! every variable matched by name and type into the new program at a cycle boundary, so the
//! count continues, converted and dropped variables are reported by name in
//! `/api/retain-status`, and RETAIN values are kept with the counts upstream reports.
//! `?clean=1` starts the new program cold.

mod common;

use common::{Runtime, rewrite_zip, wait_for, zip_bundle_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
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

/// Applies text edits (file, [(from, to)]) to a bundle's entries.
fn edited(src: &Path, out: &Path, edits: &[(&str, &[(&str, &str)])]) {
    rewrite_zip(
        src,
        out,
        |name, data| {
            let Some((_, reps)) = edits.iter().find(|(f, _)| *f == name) else { return Some(data) };
            let mut text = String::from_utf8(data).unwrap();
            for (from, to) in *reps {
                assert!(text.contains(from), "{name} has no {from:?}");
                text = text.replace(from, to);
            }
            Some(text.into_bytes())
        },
        &[],
    );
}

/// The common checks: the count continues across the online change, the report names what
/// changed, V_UDINT (RETAIN) is kept.
fn check_online_change(rt: &Runtime, token: &str, prefix: &str, v1: &Path, v2: &Path, retained: bool) {
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
    // V_UDINT is RETAIN in both (MatIEC): carried as is.
    let retain = &status["retain"];
    if retained {
        assert_eq!((retain["migrated"].as_bool(), retain["kept"].as_u64()), (Some(true), Some(1)), "{retain:#}");
        assert_eq!((retain["converted"].as_u64(), retain["dropped"].as_u64()), (Some(0), Some(0)), "{retain:#}");
    }
    wait_for("the online change in the runtime log", T, || rt.log().contains("Online change to program").then_some(()));

    // ?clean=1: cold, V_UDINT starts over.
    deploy(rt, token, v2, "?clean=1");
    assert!(rt.get("/retain-status", token).json()["online_change"].is_null());
    let fresh = value(rt, token, &counter).as_u64().unwrap();
    assert!(fresh < after, "started over: {fresh}");
}

#[test]
fn a_matiec_upload_is_an_online_change_that_keeps_the_count() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let plain = rt.dir.path().join("plain.zip");
    common::demo_bundle(&plain, &["--period-ms", "10"]);
    let v1 = rt.dir.path().join("v1.zip");
    let retain: &[(&str, &str)] = &[("__INIT_VAR(data__->V_UDINT,0,retain)", "__INIT_VAR(data__->V_UDINT,0,1)")];
    let retain_csv = "V_UDINT;UDINT;UDINT;0;";
    edited(&plain, &v1, &[("POUS.c", retain), ("VARIABLES.csv", &[(retain_csv, "V_UDINT;UDINT;UDINT;1;")])]);
    let v2 = rt.dir.path().join("v2.zip");
    edited(
        &v1,
        &v2,
        &[
            (
                "POUS.h",
                &[
                    ("__DECLARE_VAR(DINT,V_DINT)", "__DECLARE_VAR(INT,V_DINT)"),
                    ("__DECLARE_VAR(UINT,V_UINT)", "__DECLARE_VAR(UDINT,V_UINT)"),
                    ("V_LINT)", "V_LINT2)"),
                ],
            ),
            ("POUS.c", &[("V_LINT", "V_LINT2")]),
            (
                "debug.c",
                &[
                    ("V_DINT), DINT_ENUM", "V_DINT), INT_ENUM"),
                    ("V_UINT), UINT_ENUM", "V_UINT), UDINT_ENUM"),
                    ("V_LINT)", "V_LINT2)"),
                ],
            ),
            (
                "VARIABLES.csv",
                &[
                    ("V_DINT;DINT;DINT", "V_DINT;INT;INT"),
                    ("V_UINT;UINT;UINT", "V_UINT;UDINT;UDINT"),
                    ("V_LINT", "V_LINT2"),
                ],
            ),
        ],
    );
    check_online_change(&rt, &token, "CONFIG0.RES0.INSTANCE0.", &v1, &v2, true);
}

fn strucpp_zip(rt: &Runtime, name: &str, edits: &[(&str, &[(&str, &str)])]) -> PathBuf {
    let src = rt.dir.path().join(format!("{name}-src"));
    let fixture = common::repo_root().join("companion/builder/tests/fixtures/strucpp-demo");
    copy_dir(&fixture, &src);
    for (file, reps) in edits {
        let path = src.join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (from, to) in *reps {
            assert!(text.contains(from), "{file} has no {from:?}");
            text = text.replace(from, to);
        }
        std::fs::write(&path, text).unwrap();
    }
    let out = rt.dir.path().join(format!("{name}.zip"));
    zip_bundle_dir(&src, &out, &["README.md"]);
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_strucpp_upload_is_an_online_change_that_keeps_the_count() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    // The fixture declares no RETAIN variable: V_UDINT is carried as a plain variable.
    let v1 = strucpp_zip(&rt, "v1", &[]);
    let v2 = strucpp_zip(
        &rt,
        "v2",
        &[
            (
                "generated.hpp",
                &[
                    ("IEC_DINT V_DINT;", "IEC_INT V_DINT;"),
                    ("IEC_UINT V_UINT;", "IEC_UDINT V_UINT;"),
                    ("V_LINT", "V_LINT2"),
                ],
            ),
            ("pou_MAIN.cpp", &[("V_LINT", "V_LINT2")]),
            (
                "generated_debug.cpp",
                &[
                    ("V_DINT, TAG_DINT", "V_DINT, TAG_INT"),
                    ("V_UINT, TAG_UINT", "V_UINT, TAG_UDINT"),
                    ("V_LINT", "V_LINT2"),
                ],
            ),
            (
                "debug-map.json",
                &[
                    (
                        "\"INSTANCE0.V_DINT\",\n      \"type\": \"DINT\",\n      \"size\": 4",
                        "\"INSTANCE0.V_DINT\",\n      \"type\": \"INT\",\n      \"size\": 2",
                    ),
                    (
                        "\"INSTANCE0.V_UINT\",\n      \"type\": \"UINT\",\n      \"size\": 2",
                        "\"INSTANCE0.V_UINT\",\n      \"type\": \"UDINT\",\n      \"size\": 4",
                    ),
                    ("INSTANCE0.V_LINT", "INSTANCE0.V_LINT2"),
                ],
            ),
        ],
    );
    check_online_change(&rt, &token, "INSTANCE0.", &v1, &v2, false);
}
