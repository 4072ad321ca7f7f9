//! RETAIN variables through the program ABI's appended functions (retain_count, retain_var,
//! retain_set), for both adapters, as rt-core uses them: save `var_size` bytes from `var_addr`
//! of each RETAIN variable of a running program, load a fresh instance of the library, `init`,
//! restore with `retain_set`, and the program continues from the saved values.

mod common;

use common::{
    Program, build_variant_of, demo_dir, demo_library, edit, iec_string, started, strucpp_dir, strucpp_library,
};
use openplc_builder::Level;
use std::fs;
use std::path::Path;

// ---- MatIEC ----

// Debug indices of the demo program (scripts/demo-bundle/README.md).
const M_V_DINT: u32 = 8;
const M_V_UDINT: u32 = 12;
const M_TEXT: u32 = 32;

/// What MatIEC generates for `VAR RETAIN`: the init call's retain argument 1 and the
/// VARIABLES.csv row's retain field 1. V_UDINT and TEXT are RETAIN here.
fn matiec_retain_changes(dir: &Path) {
    edit(
        dir,
        "POUS.c",
        &[
            ("__INIT_VAR(data__->V_UDINT,0,retain)", "__INIT_VAR(data__->V_UDINT,0,1)"),
            (
                "__INIT_VAR(data__->TEXT,__STRING_LITERAL(7,\"OpenPLC\"),retain)",
                "__INIT_VAR(data__->TEXT,__STRING_LITERAL(7,\"OpenPLC\"),1)",
            ),
        ],
    );
    edit(
        dir,
        "VARIABLES.csv",
        &[
            ("CONFIG0.RES0.INSTANCE0.V_UDINT;UDINT;UDINT;0;", "CONFIG0.RES0.INSTANCE0.V_UDINT;UDINT;UDINT;1;"),
            ("CONFIG0.RES0.INSTANCE0.TEXT;STRING;STRING;0;", "CONFIG0.RES0.INSTANCE0.TEXT;STRING;STRING;1;"),
        ],
    );
}

#[test]
fn matiec_retain_variables_continue_from_their_saved_values() {
    let (library, lines) = build_variant_of(&demo_dir(), "matiec-retain", matiec_retain_changes);
    assert!(lines.iter().any(|l| l.level == Level::Info && l.text.starts_with("2 RETAIN variables")), "{lines:#?}");

    let mut first = started(&library);
    assert!(first.has_retain_fields());
    assert_eq!(first.retain_count(), Some(2));
    assert_eq!(first.retain_var(0), M_V_UDINT);
    assert_eq!(first.retain_var(1), M_TEXT);
    assert_eq!(first.retain_var(2), u32::MAX);
    assert_eq!(first.retain_var(u32::MAX), u32::MAX);

    first.run(0, 7);
    // TEXT is never written by the program: a force leaves the new text after release.
    assert_eq!(first.force(M_TEXT, b"\x05saved"), 0);
    assert_eq!(first.unforce(M_TEXT), 0);
    let saved = first.retain_save();
    assert_eq!(saved, [(M_V_UDINT, 700_000u32.to_le_bytes().to_vec()), (M_TEXT, iec_string(b"saved"))]);
    drop(first);

    let mut second = started(&library);
    assert_eq!(second.var_bytes(M_V_UDINT), [0; 4], "a fresh instance starts from the initial value");
    assert_eq!(second.var_bytes(M_TEXT), iec_string(b"OpenPLC"));
    // A wrong length, a missing value or an index out of range is refused, and changes nothing.
    assert_eq!(second.retain_set(0, &saved[0].1[..3]), -1);
    assert_eq!(second.retain_set(0, &[0; 5]), -1);
    assert_eq!(second.retain_set(1, &saved[1].1[..8]), -1);
    assert_eq!(second.retain_set(2, &saved[0].1), -1);
    assert_eq!(second.retain_set(0, &[]), -1);
    assert_eq!(second.var_bytes(M_V_UDINT), [0; 4]);

    for (i, (_, bytes)) in saved.iter().enumerate() {
        assert_eq!(second.retain_set(i as u32, bytes), 0, "retain_set({i})");
    }
    assert_eq!(second.var_bytes(M_V_UDINT), 700_000u32.to_le_bytes());
    second.run(0, 1);
    assert_eq!(second.var_bytes(M_V_UDINT), 800_000u32.to_le_bytes(), "continues from the saved value");
    assert_eq!(second.var_bytes(M_V_DINT), 1000i32.to_le_bytes(), "a variable that is not RETAIN starts over");
    assert_eq!(second.var_bytes(M_TEXT), iec_string(b"saved"));
    assert_eq!(second.image.outputs.int_memory[0], 1, "the counter (not RETAIN) starts over");
}

#[test]
fn the_matiec_demo_has_no_retain_variables() {
    let program = Program::load(demo_library());
    assert!(program.has_retain_fields());
    assert_eq!(program.retain_count().unwrap_or(0), 0);
    assert_eq!(program.retain_var(0), u32::MAX);
    assert_eq!(program.retain_set(0, &[0; 4]), -1);
}

#[test]
fn a_matiec_bundle_without_variables_csv_builds_without_retain() {
    // Bundles stored before RETAIN was supported may lack the file: they build as before.
    let (library, lines) = build_variant_of(&demo_dir(), "matiec-no-csv", |dir| {
        matiec_retain_changes(dir);
        fs::remove_file(dir.join("VARIABLES.csv")).expect("remove");
    });
    assert!(lines.iter().all(|l| l.level == Level::Info), "{lines:#?}");
    let mut program = started(&library);
    assert_eq!(program.retain_count(), Some(0));
    program.run(0, 2);
    assert_eq!(program.var_bytes(M_V_UDINT), 200_000u32.to_le_bytes());
}

#[test]
fn a_variables_csv_that_disagrees_with_debug_c_keeps_nothing() {
    let (library, lines) = build_variant_of(&demo_dir(), "matiec-csv-mismatch", |dir| {
        matiec_retain_changes(dir);
        edit(
            dir,
            "VARIABLES.csv",
            &[("34;VAR;", "35;VAR;CONFIG0.RES0.INSTANCE0.EXTRA;CONFIG0.RES0.INSTANCE0.EXTRA;BOOL;BOOL;0;\n34;VAR;")],
        );
    });
    assert!(
        lines.iter().any(|l| l.level == Level::Warning
            && l.text
                == "VARIABLES.csv lists 34 debug variables but debug.c has 33; RETAIN variables will not be kept"),
        "{lines:#?}"
    );
    assert_eq!(Program::load(&library).retain_count(), Some(0));
}

// ---- STruC++ ----

// Debug indices of the fixture (tests/fixtures/strucpp-demo/README.md).
const S_COUNTER: u32 = 0;
const S_V_DINT: u32 = 8;
const S_V_UDINT: u32 = 12;
const S_TEXT: u32 = 26;

/// What STruC++ generates for RETAIN variables of a program: the descriptor array and count
/// overrides, and the table. COUNTER (%MW0), V_UDINT and TEXT are RETAIN; so is the UPTIME
/// timer instance, which is no debug leaf.
fn strucpp_retain_changes(dir: &Path) {
    edit(
        dir,
        "generated.hpp",
        &[(
            "    Program_MAIN();\n    void run() override;\n",
            "    Program_MAIN();\n    void run() override;\n\n    static const RetainVarInfo retain_table[4];\n    \
             const RetainVarInfo *getRetainVars() const override { return retain_table; }\n    \
             size_t getRetainCount() const override { return 4; }\n",
        )],
    );
    edit(
        dir,
        "pou_MAIN.cpp",
        &[(
            "void Program_MAIN::run()",
            "const RetainVarInfo Program_MAIN::retain_table[] = {\n    \
             {\"COUNTER\", offsetof(Program_MAIN, COUNTER), sizeof(IEC_UINT)},\n    \
             {\"UPTIME\", offsetof(Program_MAIN, UPTIME), sizeof(TON)},\n    \
             {\"V_UDINT\", offsetof(Program_MAIN, V_UDINT), sizeof(IEC_UDINT)},\n    \
             {\"TEXT\", offsetof(Program_MAIN, TEXT), sizeof(IEC_STRING)},\n};\n\nvoid Program_MAIN::run()",
        )],
    );
}

#[test]
fn strucpp_retain_variables_continue_from_their_saved_values() {
    let (library, _) = build_variant_of(&strucpp_dir(), "strucpp-retain", strucpp_retain_changes);

    let mut first = started(&library);
    assert!(first.has_retain_fields());
    assert_eq!(first.retain_count(), Some(3), "the timer instance is no debug variable");
    assert_eq!([first.retain_var(0), first.retain_var(1), first.retain_var(2)], [S_COUNTER, S_V_UDINT, S_TEXT]);
    assert_eq!(first.retain_var(3), u32::MAX);

    first.run(0, 7);
    assert_eq!(first.force(S_TEXT, b"\x05saved"), 0);
    assert_eq!(first.unforce(S_TEXT), 0);
    let saved = first.retain_save();
    assert_eq!(
        saved,
        [
            (S_COUNTER, 7u16.to_le_bytes().to_vec()),
            (S_V_UDINT, 700_000u32.to_le_bytes().to_vec()),
            (S_TEXT, iec_string(b"saved")),
        ]
    );
    drop(first);

    let mut second = started(&library);
    assert_eq!(second.var_bytes(S_V_UDINT), [0; 4]);
    assert_eq!(second.var_bytes(S_TEXT), iec_string(b"OpenPLC"));
    assert_eq!(second.retain_set(1, &saved[1].1[..2]), -1, "a wrong length is refused");
    assert_eq!(second.retain_set(2, &saved[2].1[..6]), -1);
    assert_eq!(second.retain_set(3, &saved[1].1), -1);
    assert_eq!(second.var_bytes(S_V_UDINT), [0; 4]);

    for (i, (_, bytes)) in saved.iter().enumerate() {
        assert_eq!(second.retain_set(i as u32, bytes), 0, "retain_set({i})");
    }
    assert_eq!(second.image.outputs.int_memory[0], 7, "a restored %MW0 reaches the image at once");
    assert_eq!(second.var_bytes(S_TEXT), iec_string(b"saved"), "the STRING's shadow is refreshed");
    second.run(0, 1);
    assert_eq!(second.var_bytes(S_V_UDINT), 800_000u32.to_le_bytes(), "continues from the saved value");
    assert_eq!(second.image.outputs.int_memory[0], 8, "the program saw the restored counter");
    assert_eq!(second.var_bytes(S_V_DINT), 1000i32.to_le_bytes(), "a variable that is not RETAIN starts over");
    assert_eq!(second.var_bytes(S_TEXT), iec_string(b"saved"), "the program sees the restored text");
    // Restored values are ordinary values: forcing and release still work on them.
    assert_eq!(second.force(S_V_UDINT, &5u32.to_ne_bytes()), 0);
    assert_eq!(second.unforce(S_V_UDINT), 0);
    second.run(1, 1);
    assert_eq!(second.var_bytes(S_V_UDINT), 100_005u32.to_le_bytes());
}

#[test]
fn the_strucpp_fixture_has_no_retain_variables() {
    let program = Program::load(strucpp_library());
    assert!(program.has_retain_fields());
    assert_eq!(program.retain_count().unwrap_or(0), 0);
    assert_eq!(program.retain_var(0), u32::MAX);
    assert_eq!(program.retain_set(0, &[0; 4]), -1);
}

#[test]
fn a_strucpp_runtime_without_retain_descriptors_builds_without_retain() {
    // A runtime whose headers have no iec_retain.hpp: the adapter builds and keeps nothing.
    let (library, _) = build_variant_of(&strucpp_dir(), "strucpp-no-retain-header", |dir| {
        let include = dir.join("strucpp_runtime/include");
        fs::remove_file(include.join("iec_retain.hpp")).expect("remove");
        edit(
            dir,
            "strucpp_runtime/include/iec_std_lib.hpp",
            &[
                ("#include \"iec_retain.hpp\"\n", ""),
                ("namespace strucpp {\n", "namespace strucpp {\n\nstruct RetainVarInfo;\n"),
            ],
        );
    });
    assert_eq!(Program::load(&library).retain_count(), Some(0));
}
