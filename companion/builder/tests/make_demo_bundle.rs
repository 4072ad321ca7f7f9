//! scripts/make-demo-bundle: archives shaped like the Editor's uploads, and --period-ms
//! producing a consistent program.

mod common;

use common::{Program, build_collect, debug_c_md5, demo_dir, md5_hex, program_st_body, repo_root, scratch};
use openplc_builder::BuildOptions;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One entry of a zip archive's central directory.
struct Entry {
    name: String,
    method: u16,
    data: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a (STOREd, non-zip64) archive through its central directory.
fn read_zip(path: &Path) -> Vec<Entry> {
    let zip = fs::read(path).expect("read zip");
    let eocd = (0..=zip.len() - 22).rev().find(|&i| u32_at(&zip, i) == 0x0605_4b50).expect("end of central directory");
    let count = u16_at(&zip, eocd + 10) as usize;
    let mut at = u32_at(&zip, eocd + 16) as usize;
    let mut entries = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(&zip, at), 0x0201_4b50, "central directory header");
        let method = u16_at(&zip, at + 10);
        let size = u32_at(&zip, at + 20) as usize;
        let name_len = u16_at(&zip, at + 28) as usize;
        let extra_len = u16_at(&zip, at + 30) as usize;
        let comment_len = u16_at(&zip, at + 32) as usize;
        let local = u32_at(&zip, at + 42) as usize;
        let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).expect("utf-8 name");
        assert_eq!(u32_at(&zip, local), 0x0403_4b50, "local header of {name}");
        let data_at = local + 30 + u16_at(&zip, local + 26) as usize + u16_at(&zip, local + 28) as usize;
        entries.push(Entry { name, method, data: zip[data_at..data_at + size].to_vec() });
        at += 46 + name_len + extra_len + comment_len;
    }
    entries
}

fn make(tag: &str, args: &[&str]) -> (PathBuf, Vec<Entry>) {
    let out = scratch(tag).join("program.zip");
    let run = Command::new(repo_root().join("scripts/make-demo-bundle"))
        .arg(&out)
        .args(args)
        .output()
        .expect("run make-demo-bundle");
    assert!(run.status.success(), "make-demo-bundle {args:?}: {}", String::from_utf8_lossy(&run.stderr));
    let entries = read_zip(&out);
    (out, entries)
}

/// Extracts an archive made with '/' names.
fn extract(entries: &[Entry], to: &Path) {
    for entry in entries {
        let path = to.join(&entry.name);
        if entry.name.ends_with('/') {
            fs::create_dir_all(&path).expect("folder");
        } else {
            fs::create_dir_all(path.parent().expect("parent")).expect("folder");
            fs::write(&path, &entry.data).expect("file");
        }
    }
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn the_archive_looks_like_the_editors() {
    let (_, entries) = make("zip", &[]);
    let names = names(&entries);
    assert!(entries.iter().all(|e| e.method == 0), "every entry is STOREd");
    for required in [
        "program.st",
        "plc.xml",
        "POUS.c",
        "POUS.h",
        "Config0.c",
        "Config0.h",
        "Res0.c",
        "LOCATED_VARIABLES.h",
        "VARIABLES.csv",
        "debug.c",
        "glueVars.c",
        "c_blocks.h",
        "c_blocks_code.cpp",
        "lib/",
        "lib/iec_std_lib.h",
        "lib/iec_types_all.h",
        "conf/",
        "conf/modbus_slave.json",
    ] {
        assert!(names.contains(&required), "{required} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("README")), "our README is not part of an upload");
    assert!(!names.iter().any(|n| n.starts_with('/') || n.contains("..") || n.contains('\\')));
    // Entries sit at the root: no common top-level folder.
    assert!(names.iter().any(|n| !n.contains('/')));
    // A folder entry precedes the files in it.
    let lib = names.iter().position(|n| *n == "lib/").expect("lib/");
    assert!(names.iter().enumerate().all(|(i, n)| !n.starts_with("lib/") || i >= lib));

    let conf = entries.iter().find(|e| e.name == "conf/modbus_slave.json").expect("conf");
    let conf = String::from_utf8_lossy(&conf.data);
    assert!(conf.contains("\"host\": \"127.0.0.1\"") && conf.contains("\"port\": 5020"), "{conf}");
}

#[test]
fn backslash_names_as_a_windows_editor_writes_them() {
    let (_, entries) = make("backslash", &["--backslash"]);
    let names = names(&entries);
    assert!(names.contains(&"lib\\iec_std_lib.h"), "{names:?}");
    assert!(names.contains(&"conf\\modbus_slave.json"), "{names:?}");
    assert!(names.iter().all(|n| !n.contains('/')), "no '/' at all, hence no folder entries: {names:?}");
    assert!(entries.iter().all(|e| e.method == 0));
}

#[test]
fn no_conf_leaves_the_plugins_disabled() {
    let (_, entries) = make("noconf", &["--no-conf"]);
    assert!(names(&entries).iter().all(|n| !n.starts_with("conf")), "{:?}", names(&entries));
}

#[test]
fn the_repository_copy_is_consistent() {
    let program_st = fs::read(demo_dir().join("program.st")).expect("program.st");
    let debug_c = fs::read_to_string(demo_dir().join("debug.c")).expect("debug.c");
    let md5 = md5_hex(program_st_body(&program_st));
    assert_eq!(debug_c_md5(&debug_c), md5);
    assert_eq!(openplc_builder::program_md5(&demo_dir()), Some(md5));
}

#[test]
fn period_ms_changes_the_period_and_the_md5_consistently() {
    let watched = ["program.st", "debug.c", "Config0.c", "VARIABLES.csv", "plc.xml"];
    let before: Vec<Vec<u8>> = watched.iter().map(|f| fs::read(demo_dir().join(f)).expect("read")).collect();

    let (zip, entries) = make("period", &["--period-ms", "1"]);
    let after: Vec<Vec<u8>> = watched.iter().map(|f| fs::read(demo_dir().join(f)).expect("read")).collect();
    assert!(before == after, "the repository's files are never modified");

    let dir = zip.parent().expect("parent").join("src");
    extract(&entries, &dir);
    let program_st = fs::read(dir.join("program.st")).expect("program.st");
    let body = program_st_body(&program_st);
    assert!(String::from_utf8_lossy(body).contains("TASK task0(INTERVAL := T#1ms,PRIORITY := 0);"));
    let md5 = md5_hex(body);
    let debug_c = fs::read_to_string(dir.join("debug.c")).expect("debug.c");
    assert_eq!(debug_c_md5(&debug_c), md5, "debug.c carries the recomputed MD5");
    assert_eq!(openplc_builder::program_md5(&dir).as_deref(), Some(md5.as_str()), "so does the trailer");
    assert_ne!(Some(md5.clone()), openplc_builder::program_md5(&demo_dir()), "a different program, a different MD5");
    // The trailer repeats debug.c line by line.
    let trailer = String::from_utf8_lossy(&program_st[body.len()..]).into_owned();
    assert!(trailer.contains("(*DBG:char plc_program_md5[] = \""), "{trailer}");
    let config = fs::read_to_string(dir.join("Config0.c")).expect("Config0.c");
    assert!(config.contains("common_ticktime__ = 1000000ULL"), "{config}");
    assert!(fs::read_to_string(dir.join("VARIABLES.csv")).expect("csv").ends_with("// Ticktime\n1000000\n"));

    let out = dir.parent().expect("parent").join("program.so");
    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    let report = result.unwrap_or_else(|e| panic!("{e}\n{lines:#?}"));
    assert_eq!(report.md5.as_deref(), Some(md5.as_str()));

    let mut program = Program::load(&out);
    assert_eq!(program.tick_period_ns(), 1_000_000);
    assert_eq!(program.md5().as_deref(), Some(md5.as_str()));
    // Program time now advances 1 ms per scan: ELAPSED (index 30) after 11 scans is 10 ms.
    program.start();
    program.run(0, 11);
    let elapsed = program.var_bytes(30);
    assert_eq!(elapsed[..8], 0i64.to_le_bytes());
    assert_eq!(elapsed[8..], 10_000_000i64.to_le_bytes());
}
