//! Bundles that must not build, and how the builder says so.

mod common;

use common::{Program, build_collect, copy_dir, demo_dir, scratch};
use openplc_builder::{BuildError, BuildOptions, Generation, Level, build, detect, program_md5};
use std::fs;
use std::time::Duration;

/// The demo's compilations as the build log names them, in file order.
const DEMO_UNITS_IN_FILE_ORDER: [&str; 7] = [
    "Compiling Config0.c",
    "Compiling Res0.c",
    "Compiling debug.c",
    "Compiling glueVars.c",
    "Compiling the runtime adapter",
    "Compiling the RETAIN table",
    "Compiling c_blocks_code.cpp",
];

#[test]
fn a_c_syntax_error_reaches_the_caller_with_the_compilers_line() {
    let dir = scratch("syntax").join("src");
    copy_dir(&demo_dir(), &dir);
    let pous = fs::read_to_string(dir.join("POUS.c")).expect("POUS.c");
    fs::write(dir.join("POUS.c"), pous.replacen("  goto __end;", "  this is not C\n  goto __end;", 1)).expect("write");
    let out = dir.parent().expect("parent").join("program.so");

    let mut lines = Vec::new();
    let err = build(&dir, &out, &BuildOptions::default(), &mut |line| lines.push(line)).expect_err("must fail");

    match &err {
        BuildError::CompilerFailed { step, exit_code, first_error, .. } => {
            assert_eq!(step, "compiling Res0.c", "POUS.c is compiled through Res0.c");
            assert_eq!(*exit_code, Some(1));
            let first = first_error.as_deref().expect("first error line");
            assert!(first.contains("POUS.c") && first.contains("error"), "{first}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.exit_code(), Some(1));
    let message = err.to_string();
    assert!(message.starts_with("compiling Res0.c failed with exit code 1: "), "{message}");
    assert!(!message.contains('\n'));

    let error_lines: Vec<_> = lines.iter().filter(|l| l.level == Level::Error).collect();
    assert!(error_lines.iter().any(|l| l.text.contains("POUS.c") && l.text.contains("error")), "{lines:#?}");
    // Units start longest first, the builder's own before the bundle's, and nothing starts
    // once the failure is seen (the library is not linked, below); what did start is shown
    // in file order.
    let labels: Vec<_> = lines.iter().filter(|l| l.text.starts_with("Compiling ")).map(|l| l.text.as_str()).collect();
    let positions: Vec<_> = labels.iter().map(|l| DEMO_UNITS_IN_FILE_ORDER.iter().position(|f| f == l)).collect();
    assert!(positions.iter().all(Option::is_some) && positions.is_sorted(), "{labels:?}");
    assert!(labels.contains(&"Compiling Res0.c"), "{labels:?}");
    assert!(!out.exists(), "no library is left behind");
    let leftovers: Vec<_> = fs::read_dir(out.parent().expect("parent")).expect("list").collect();
    assert_eq!(leftovers.len(), 1, "only the bundle directory remains");
}

#[test]
fn a_bundle_without_gluevars_c_is_named_as_such() {
    let dir = scratch("noglue").join("src");
    copy_dir(&demo_dir(), &dir);
    fs::remove_file(dir.join("glueVars.c")).expect("remove");

    let err = detect(&dir).expect_err("incomplete");
    assert!(
        matches!(&err, BuildError::IncompleteBundle { generation: Generation::Matiec, missing } if missing == &["glueVars.c"])
    );
    assert!(err.to_string().contains("glueVars.c is missing"), "{err}");

    let (result, lines) = build_collect(&dir, &dir.join("program.so"), &BuildOptions::default());
    let message = result.expect_err("must fail");
    assert!(message.contains("glueVars.c"), "{message}");
    assert!(lines.is_empty(), "nothing was compiled");
}

#[test]
fn a_strucpp_bundle_is_recognised_and_checked_before_anything_is_compiled() {
    let dir = scratch("strucpp").join("src");
    fs::create_dir_all(dir.join("strucpp_runtime/include")).expect("mkdir");
    fs::write(dir.join("strucpp_runtime/include/iec_types.hpp"), "#pragma once\n").expect("write");
    fs::write(dir.join("generated.hpp"), "#pragma once\n").expect("write");
    fs::write(dir.join("generated.cpp"), "#include \"generated.hpp\"\n").expect("write");
    fs::write(dir.join("defines.h"), "#define PROGRAM_MD5 \"0123456789ABCDEF0123456789abcdef\"\n").expect("write");
    fs::write(dir.join("c_blocks_code.cpp"), "\n").expect("write");
    fs::write(dir.join("program.st"), "PROGRAM main\nEND_PROGRAM\n").expect("write");

    assert_eq!(detect(&dir).expect("detect"), Generation::Strucpp);
    assert_eq!(program_md5(&dir).as_deref(), Some("0123456789abcdef0123456789abcdef"));

    // An older STruC++ (one generated.cpp) without the debugger's table cannot be debugged
    // nor linked with the adapter.
    let (result, lines) = build_collect(&dir, &dir.join("program.so"), &BuildOptions::default());
    let message = result.expect_err("must fail");
    assert_eq!(message, "incomplete STruC++ bundle (OpenPLC Editor 4.2 and later): generated_debug.cpp is missing");
    assert!(lines.is_empty());

    // A table that names no configuration object, and a header without one.
    fs::write(dir.join("generated_debug.cpp"), "#include \"generated.hpp\"\n").expect("write");
    let (result, lines) = build_collect(&dir, &dir.join("program.so"), &BuildOptions::default());
    let message = result.expect_err("must fail");
    assert_eq!(
        message,
        "cannot build this STruC++ bundle (OpenPLC Editor 4.2 and later): generated.hpp declares no CONFIGURATION \
         (no Configuration_<NAME> class)"
    );
    assert!(lines.is_empty());
}

#[test]
fn other_directories_are_not_bundles() {
    let dir = scratch("empty");
    let err = detect(&dir).expect_err("empty directory");
    assert!(matches!(err, BuildError::NotABundle { .. }), "{err:?}");
    assert!(err.to_string().contains("Config0.c"), "{err}");

    // Half a STruC++ bundle names what it lacks.
    fs::write(dir.join("defines.h"), "\n").expect("write");
    let err = detect(&dir).expect_err("incomplete STruC++");
    assert!(err.to_string().contains("strucpp_runtime/include/"), "{err}");

    let err = detect(&dir.join("missing")).expect_err("no such directory");
    assert!(matches!(err, BuildError::BundleUnreadable { .. }), "{err:?}");
    let err = detect(&dir.join("defines.h")).expect_err("a file");
    assert!(matches!(err, BuildError::NotABundle { .. }), "{err:?}");
}

#[test]
fn a_missing_compiler_is_reported() {
    let dir = scratch("nocc");
    let opts = BuildOptions { cc: "/nonexistent/cc".into(), ..BuildOptions::default() };
    let (result, _) = build_collect(&demo_dir(), &dir.join("program.so"), &opts);
    let message = result.expect_err("must fail");
    assert!(message.starts_with("cannot run the compiler `/nonexistent/cc`"), "{message}");
}

#[test]
fn a_symbol_nobody_defines_fails_the_link_not_the_scan() {
    let dir = scratch("undefined").join("src");
    copy_dir(&demo_dir(), &dir);
    let pous = fs::read_to_string(dir.join("POUS.c")).expect("POUS.c");
    let pous = pous.replacen(
        "  goto __end;",
        "  { extern void runtime_service_we_lack(void); runtime_service_we_lack(); }\n  goto __end;",
        1,
    );
    fs::write(dir.join("POUS.c"), pous).expect("write");
    let out = dir.parent().expect("parent").join("program.so");

    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    let message = result.expect_err("must fail");
    assert!(message.starts_with("linking the program library failed"), "{message}");
    assert!(lines.iter().any(|l| l.level == Level::Error && l.text.contains("runtime_service_we_lack")), "{lines:#?}");
    assert!(!out.exists());
}

#[test]
fn the_timeout_stops_the_compiler() {
    let dir = scratch("timeout");
    let opts = BuildOptions { timeout: Duration::ZERO, ..BuildOptions::default() };
    let (result, _) = build_collect(&demo_dir(), &dir.join("program.so"), &opts);
    let message = result.expect_err("must time out");
    assert!(message.starts_with("the build took longer than 0 s and was stopped while compiling"), "{message}");
    assert!(!dir.join("program.so").exists());
}

#[test]
fn parallel_jobs_build_the_same_program_with_ordered_output() {
    let dir = scratch("parallel");
    let out = dir.join("program.so");
    let opts = BuildOptions { jobs: 4, ..BuildOptions::default() };
    let (result, lines) = build_collect(&demo_dir(), &out, &opts);
    let report = result.expect("parallel build");
    assert_eq!(report.generation, Generation::Matiec);
    assert_eq!(report.library, out);
    assert_eq!(report.md5, program_md5(&demo_dir()));

    let labels: Vec<_> = lines
        .iter()
        .filter(|l| l.text.starts_with("Compiling ") || l.text.starts_with("Linking "))
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(labels, [&DEMO_UNITS_IN_FILE_ORDER[..], &["Linking program.so"]].concat());
    assert!(lines.iter().all(|l| l.level == Level::Info), "{lines:#?}");

    let mut program = Program::load(&out);
    program.start();
    program.run(0, 3);
    assert_eq!(program.image.outputs.int_memory[0], 3);
}
