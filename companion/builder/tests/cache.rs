//! The build cache: what a second build takes from it, what it must not (a changed header,
//! a damaged entry, a clean build), its bound, concurrent builds, and the precompiled headers.

mod common;

use common::{Program, build_collect, copy_dir, demo_dir, scratch, strucpp_dir};
use openplc_builder::{
    BuildLine, BuildOptions, BuildReport, CacheSettings, Isolation, Level, wait_for_background_work,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn cached(cache: &Path) -> BuildOptions {
    BuildOptions {
        cache: Some(CacheSettings { dir: cache.to_path_buf(), max_bytes: 256 << 20 }),
        ..BuildOptions::default()
    }
}

fn build_ok(dir: &Path, out: &Path, opts: &BuildOptions) -> (BuildReport, Vec<BuildLine>) {
    let (result, lines) = build_collect(dir, out, opts);
    match result {
        Ok(report) => (report, lines),
        Err(e) => panic!("{} does not build: {e}\n{lines:#?}", dir.display()),
    }
}

/// The build log's line about the cache.
fn cache_line(lines: &[BuildLine]) -> String {
    let found = lines.iter().find(|l| l.text.starts_with("Build cache: ") || l.text.starts_with("Clean build"));
    found.map(|l| l.text.clone()).unwrap_or_else(|| panic!("no cache line in {lines:#?}"))
}

/// The demo with its counter stepping by `POUS.h`'s OPLC_TEST_STEP.
fn demo_with_step_header(dir: &Path, step: u8) {
    copy_dir(&demo_dir(), dir);
    let pous_h = fs::read_to_string(dir.join("POUS.h")).expect("POUS.h");
    fs::write(dir.join("POUS.h"), format!("{pous_h}\n#define OPLC_TEST_STEP {step}\n")).expect("write");
    let pous = fs::read_to_string(dir.join("POUS.c")).expect("POUS.c");
    let stepped =
        pous.replacen("(__GET_LOCATED(data__->COUNTER,) + 1)", "(__GET_LOCATED(data__->COUNTER,) + OPLC_TEST_STEP)", 1);
    assert_ne!(stepped, pous, "the demo's counter line changed");
    fs::write(dir.join("POUS.c"), stepped).expect("write");
}

fn counter_after_three_scans(library: &Path) -> u16 {
    let mut program = Program::load(library);
    program.start();
    program.run(0, 3);
    program.image.outputs.int_memory[0]
}

#[test]
fn a_second_build_takes_every_unit_from_the_cache_and_a_changed_header_byte_rebuilds() {
    let work = scratch("cache-reuse");
    let opts = cached(&work.join("cache"));
    let bundle = work.join("src");
    demo_with_step_header(&bundle, 1);
    let out = work.join("program.so");

    let (first, lines) = build_ok(&bundle, &out, &opts);
    assert_eq!(cache_line(&lines), "Build cache: none of the 7 units could be reused");
    assert_eq!(first.compiled.len(), 7);
    assert_eq!(counter_after_three_scans(&out), 3);

    let (second, lines) = build_ok(&bundle, &out, &opts);
    assert!(
        cache_line(&lines).starts_with("Build cache: 7 of 7 units reused (Config0.c, Res0.c, debug.c"),
        "{lines:#?}"
    );
    assert!(second.compiled.is_empty(), "{:?}", second.compiled);
    assert!(!lines.iter().any(|l| l.text.starts_with("Compiling ")), "{lines:#?}");
    assert_eq!(counter_after_three_scans(&out), 3);

    // One byte of a header three units include (Res0.c through POUS.c): those three are
    // compiled again, and the program does what the new header says.
    let pous_h = fs::read_to_string(bundle.join("POUS.h")).expect("POUS.h");
    fs::write(bundle.join("POUS.h"), pous_h.replace("#define OPLC_TEST_STEP 1", "#define OPLC_TEST_STEP 3"))
        .expect("write");
    let (third, lines) = build_ok(&bundle, &out, &opts);
    assert_eq!(third.compiled, ["Config0.c", "Res0.c", "debug.c"], "{lines:#?}");
    assert_eq!(
        cache_line(&lines),
        "Build cache: 4 of 7 units reused (glueVars.c, the runtime adapter, the RETAIN table, c_blocks_code.cpp)"
    );
    assert_eq!(counter_after_three_scans(&out), 9, "no stale object was served");

    // And a library header, which every unit of the bundle reaches through iec_std_lib.h and
    // the adapter includes itself.
    let types = bundle.join("lib/iec_types_all.h");
    let text = fs::read_to_string(&types).expect("header");
    fs::write(&types, format!("{text}\n/* one more byte */\n")).expect("write");
    let (fourth, _) = build_ok(&bundle, &out, &opts);
    assert_eq!(fourth.compiled, ["Config0.c", "Res0.c", "debug.c", "glueVars.c", "the runtime adapter"]);
    assert!(wait_for_background_work(Duration::from_secs(120)));
}

#[test]
fn a_clean_build_compiles_everything() {
    let work = scratch("cache-clean");
    let opts = cached(&work.join("cache"));
    let out = work.join("program.so");
    build_ok(&demo_dir(), &out, &opts);
    let (report, lines) = build_ok(&demo_dir(), &out, &BuildOptions { clean: true, ..opts.clone() });
    assert_eq!(cache_line(&lines), "Clean build: all 7 units are compiled, none taken from the build cache");
    assert_eq!(report.compiled.len(), 7);
    assert!(report.reused.is_empty());
    assert!(!lines.iter().any(|l| l.text.starts_with("Using the precompiled")), "{lines:#?}");
    // What the clean build compiled is in the cache for the next one.
    let (report, _) = build_ok(&demo_dir(), &out, &opts);
    assert_eq!(report.reused.len(), 7);
    assert!(wait_for_background_work(Duration::from_secs(120)));
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn cache_bytes(dir: &Path) -> u64 {
    files_under(dir).iter().filter_map(|p| fs::metadata(p).ok()).map(|m| m.len()).sum()
}

#[test]
fn a_damaged_entry_is_compiled_again_not_served() {
    let work = scratch("cache-damage");
    let cache = work.join("cache");
    let opts = cached(&cache);
    let out = work.join("program.so");
    build_ok(&demo_dir(), &out, &opts);
    assert!(wait_for_background_work(Duration::from_secs(120)));

    // Flip the last byte of every object; break one manifest.
    let objects: Vec<PathBuf> = files_under(&cache.join("objects"));
    assert_eq!(objects.len(), 7, "{objects:?}");
    for path in &objects {
        let mut bytes = fs::read(path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x5a;
        fs::write(path, bytes).expect("damage");
    }
    let (report, lines) = build_ok(&demo_dir(), &out, &opts);
    let damaged = lines.iter().filter(|l| l.level == Level::Warning && l.text.contains("was damaged")).count();
    assert_eq!(damaged, 7, "{lines:#?}");
    assert_eq!(report.compiled.len(), 7);
    assert_eq!(counter_after_three_scans(&out), 3);
    let (report, _) = build_ok(&demo_dir(), &out, &opts);
    assert_eq!(report.reused.len(), 7, "the damaged entries were replaced");
}

#[test]
fn the_bound_evicts_the_least_recently_used_entries() {
    let work = scratch("cache-bound");
    let cache = work.join("cache");
    let out = work.join("program.so");
    // Room for about one program's objects, not for a precompiled header.
    let max_bytes = 96 << 10;
    let opts = BuildOptions { cache: Some(CacheSettings { dir: cache.clone(), max_bytes }), ..BuildOptions::default() };
    build_ok(&demo_dir(), &out, &opts);
    assert!(wait_for_background_work(Duration::from_secs(120)));
    let after_demo = cache_bytes(&cache);
    assert!(after_demo <= max_bytes, "{after_demo} bytes");
    build_ok(&strucpp_dir(), &work.join("strucpp.so"), &opts);
    assert!(wait_for_background_work(Duration::from_secs(120)));
    let total = cache_bytes(&cache);
    assert!(total <= max_bytes, "{total} bytes over the bound");
    // The demo's entries were the oldest: some of them went.
    let (report, _) = build_ok(&demo_dir(), &out, &opts);
    assert!(!report.compiled.is_empty(), "everything was kept in {total} bytes?");
}

#[test]
fn the_cache_is_the_runtimes_alone() {
    let work = scratch("cache-mode");
    let cache = work.join("cache");
    build_ok(&demo_dir(), &work.join("program.so"), &cached(&cache));
    assert!(wait_for_background_work(Duration::from_secs(120)));
    assert_eq!(fs::metadata(&cache).expect("cache").permissions().mode() & 0o777, 0o700);
    for sub in ["manifests", "objects", "pch", "tmp"] {
        assert_eq!(fs::metadata(cache.join(sub)).expect("sub").permissions().mode() & 0o077, 0, "{sub}");
    }
    for object in files_under(&cache.join("objects")) {
        assert_eq!(fs::metadata(&object).expect("object").permissions().mode() & 0o077, 0, "{}", object.display());
    }
}

#[test]
fn concurrent_builds_share_the_cache_without_damaging_it() {
    let work = scratch("cache-concurrent");
    let cache = work.join("cache");
    let opts = BuildOptions { jobs: 1, ..cached(&cache) };
    let mut variants = Vec::new();
    for step in 1..=3u8 {
        let dir = work.join(format!("step{step}"));
        demo_with_step_header(&dir, step);
        variants.push((dir, u16::from(step) * 3));
    }
    variants.push((strucpp_dir(), 0));
    for round in 0..2 {
        std::thread::scope(|scope| {
            for (i, (dir, _)) in variants.iter().enumerate() {
                let out = work.join(format!("r{round}-{i}.so"));
                let opts = &opts;
                scope.spawn(move || build_ok(dir, &out, opts));
            }
        });
    }
    assert!(wait_for_background_work(Duration::from_secs(120)));
    assert!(files_under(&cache.join("tmp")).is_empty(), "nothing left half-written");
    // Everything in the cache is whole, and serves the right program.
    for (i, (dir, counter)) in variants.iter().enumerate() {
        let out = work.join(format!("final-{i}.so"));
        let (report, lines) = build_ok(dir, &out, &opts);
        assert!(report.compiled.is_empty(), "{lines:#?}");
        assert!(!lines.iter().any(|l| l.level == Level::Warning), "{lines:#?}");
        if *counter > 0 {
            assert_eq!(counter_after_three_scans(&out), *counter);
        }
    }
}

/// A C and C++ compiler that reports, on standard error, every header it reads and every
/// precompiled header it considers (`-H`: `!` for one it used, `x` for one it found invalid),
/// and warns about a precompiled header it cannot use (`-Winvalid-pch`, with `-w` taken out).
fn pch_reporting_compilers(dir: &Path) -> (String, String) {
    let mut names = Vec::new();
    for (name, real) in [("cc", "cc"), ("c++", "c++")] {
        let path = dir.join(format!("report-{name}"));
        fs::write(
            &path,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do shift; [ \"$a\" = -w ] || set -- \"$@\" \"$a\"; done\n\
                 case \" $* \" in *\" -c \"*) exec {real} -Winvalid-pch -H \"$@\" ;; esac\nexec {real} \"$@\"\n"
            ),
        )
        .expect("write the wrapper");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        names.push(path.to_string_lossy().into_owned());
    }
    (names[0].clone(), names[1].clone())
}

/// A build whose precompiled header was made by an earlier one, unconfined (the compilers
/// are wrappers outside /usr) with compilers that say which precompiled headers they use.
fn build_with_precompiled(bundle: &Path, change: impl Fn(&Path), tag: &str) -> (BuildReport, Vec<BuildLine>) {
    let work = scratch(tag);
    let tools = tempfile::Builder::new().prefix("oplc-pch-tools-").tempdir().expect("temp");
    fs::set_permissions(tools.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let (cc, cxx) = pch_reporting_compilers(tools.path());
    let opts = BuildOptions { cc, cxx, isolation: Isolation::Unconfined, ..cached(&work.join("cache")) };
    let dir = work.join("src");
    copy_dir(bundle, &dir);
    let (_, lines) = build_ok(&dir, &work.join("first.so"), &opts);
    assert!(lines.iter().any(|l| l.text.starts_with("No precompiled ")), "{lines:#?}");
    assert!(wait_for_background_work(Duration::from_secs(300)), "the precompiled header was made");
    change(&dir);
    let (report, lines) = build_ok(&dir, &work.join("second.so"), &opts);
    assert!(lines.iter().any(|l| l.text.starts_with("Using the precompiled ")), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.text.contains("not used because") || l.text.starts_with("x ")), "{lines:#?}");
    (report, lines)
}

#[test]
fn matiec_units_use_the_precompiled_library_headers() {
    let (report, lines) = build_with_precompiled(
        &demo_dir(),
        |dir| {
            let pous = fs::read_to_string(dir.join("POUS.c")).expect("POUS.c");
            fs::write(dir.join("POUS.c"), pous.replacen("+ 1));", "+ 2));", 1)).expect("write");
        },
        "pch-matiec",
    );
    assert_eq!(report.compiled, ["Res0.c"]);
    // GCC itself says it used it.
    assert!(lines.iter().any(|l| l.text.starts_with("! ") && l.text.ends_with("pch/iec_std_lib.h.gch")), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.text
            == "The precompiled MatIEC library headers (lib/iec_std_lib.h) was used by 1 of 1 compiled units"),
        "{lines:#?}"
    );
    assert_eq!(counter_after_three_scans(&report.library), 6);
}

#[test]
fn strucpp_units_use_the_precompiled_runtime_headers() {
    let (report, lines) = build_with_precompiled(
        &strucpp_dir(),
        |dir| {
            let pou = fs::read_to_string(dir.join("pou_MAIN.cpp")).expect("pou");
            fs::write(dir.join("pou_MAIN.cpp"), pou.replacen("COUNTER = COUNTER + 1;", "COUNTER = COUNTER + 2;", 1))
                .expect("write");
            fs::write(dir.join("defines.h"), "#define PROGRAM_MD5 \"00000000000000000000000000000002\"\n")
                .expect("write");
        },
        "pch-strucpp",
    );
    // The POU and the MD5 changed; the adapter, the configuration and the debug table did not.
    assert_eq!(report.compiled, ["pou_MAIN.cpp", "the program's MD5"], "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.text.starts_with("! ") && l.text.ends_with("pch/oplc_prelude.hpp.gch")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.text.ends_with("was used by 1 of 1 compiled units")), "{lines:#?}");
    let mut program = Program::load(&report.library);
    program.start();
    program.run(0, 3);
    assert_eq!(program.image.outputs.int_memory[0], 6);
    assert_eq!(program.md5().as_deref(), Some("00000000000000000000000000000002"));
}

#[test]
fn the_report_says_where_the_time_went() {
    let work = scratch("cache-steps");
    let (report, _) = build_ok(&demo_dir(), &work.join("p.so"), &cached(&work.join("cache")));
    let names: Vec<&str> = report.steps.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["prepare", "cache lookup", "compile", "link", "place"]);
    let total: Duration = report.steps.iter().map(|(_, d)| *d).sum();
    assert!(total <= report.duration, "{total:?} > {:?}", report.duration);
    assert!(wait_for_background_work(Duration::from_secs(120)));
}
