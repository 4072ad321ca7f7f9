//! STruC++ bundles (OpenPLC Editor >= 4.2): the hand-written fixture
//! (tests/fixtures/strucpp-demo, the MatIEC demo program in STruC++'s shape) built by the
//! builder with our C++ adapter, loaded with dlopen and driven through the program ABI as
//! rt-core drives it.

mod common;

use common::{
    Expected, Program, build_collect, copy_dir, edit, iec_string, md5_hex, scratch, strucpp_dir, strucpp_library,
};
use openplc_builder::{
    ADAPTER_HEADERS, BuildOptions, Generation, STRUCPP_ADAPTER_HEADERS, STRUCPP_ADAPTER_SOURCE, detect,
};
use shared_abi::image::{Area, Width};
use shared_abi::program::{PROGRAM_ABI_VERSION, ProgramAbi, VarKind};
use std::fs;
use std::path::Path;
use std::process::Command;

const PERIOD_NS: u64 = 10_000_000;
const VAR_COUNT: u32 = 27;

// Debug variables: the leaves of generated_debug.cpp (one array), flat.
const COUNTER: u32 = 0;
const DIN0: u32 = 1;
const DOUT0: u32 = 2;
const AIN0: u32 = 3;
const AOUT0: u32 = 4;
const V_BOOL: u32 = 5;
const V_DINT: u32 = 8;
const V_REAL: u32 = 14;
const ELAPSED: u32 = 24;
const TEXT: u32 = 26;

fn started() -> Program {
    let mut program = Program::load(strucpp_library());
    program.start();
    program
}

#[test]
fn the_fixture_is_a_strucpp_bundle() {
    assert_eq!(detect(&strucpp_dir()).expect("detect"), Generation::Strucpp);
}

#[test]
fn the_abi_describes_itself() {
    let program = Program::load(strucpp_library());
    let abi = program.abi();
    assert_eq!(abi.abi_version, PROGRAM_ABI_VERSION);
    assert_eq!(abi.struct_size as usize, size_of::<ProgramAbi>());
    assert_eq!(program.generator(), "strucpp");
    assert_eq!(program.tick_period_ns(), PERIOD_NS, "the task's interval");
    assert_eq!(program.var_count(), VAR_COUNT);
    assert_eq!(program.group_count(), Some(1), "the debug table's arrays");
    assert_eq!(program.group_len(0), Some(VAR_COUNT));
    assert_eq!(program.group_len(1), Some(0));
    assert_eq!(program.bind_null(), -1, "a NULL image is refused");
}

#[test]
fn located_variables_are_bound_to_their_image_cells() {
    let mut program = Program::load(strucpp_library());
    assert_eq!(program.located_count(), 5);
    assert_eq!(program.located_at(0).expect("before bind").in_image, 0, "nothing is bound yet");
    program.start();
    let expected = [
        (Area::Memory, Width::Word, 0, 0, 2),
        (Area::Input, Width::Bit, 0, 0, 1),
        (Area::Output, Width::Bit, 0, 0, 1),
        (Area::Input, Width::Word, 0, 0, 2),
        (Area::Output, Width::Word, 0, 0, 2),
    ];
    for (i, (area, width, index, bit, size)) in expected.into_iter().enumerate() {
        let info = program.located_at(i as u32).expect("located_at");
        assert_eq!(
            (info.area, info.width, info.index, info.bit, info.size, info.in_image),
            (area as u8, width as u8, index, bit, size, 1),
            "located variable {i}"
        );
    }
    assert_eq!(program.located_at(5), Err(-1));
}

#[test]
fn the_counter_in_mw0_counts_scans() {
    let mut program = started();
    assert_eq!(program.image.outputs.int_memory[0], 0);
    program.run(0, 25);
    assert_eq!(program.image.outputs.int_memory[0], 25);
    program.run(25, 1000);
    assert_eq!(program.image.outputs.int_memory[0], 1025);
    assert_eq!(program.var_bytes(COUNTER), 1025u16.to_le_bytes());
}

#[test]
fn ix0_0_is_echoed_to_qx0_0() {
    let mut program = started();
    program.image.inputs.bool_input[0][0] = 1;
    program.run(0, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 1);
    assert_eq!(program.var_bytes(DIN0), [1]);
    program.image.inputs.bool_input[0][0] = 0;
    program.run(1, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 0);
}

#[test]
fn iw0_is_doubled_into_qw0() {
    let mut program = started();
    program.image.inputs.int_input[0] = 21;
    program.run(0, 1);
    assert_eq!(program.image.outputs.int_output[0], 42);
    assert_eq!(program.var_bytes(AOUT0), 42u16.to_le_bytes());
    program.image.inputs.int_input[0] = 40_000;
    program.run(1, 1);
    assert_eq!(program.image.outputs.int_output[0], (80_000u32 % 65_536) as u16, "UINT arithmetic wraps");
}

#[test]
fn a_value_written_into_the_image_from_outside_is_taken_over() {
    let mut program = started();
    program.run(0, 3);
    // rt-core applies a Modbus write to %MW0 at the start of a cycle.
    program.image.outputs.int_memory[0] = 500;
    program.run(3, 1);
    assert_eq!(program.image.outputs.int_memory[0], 501);
    program.run(4, 1);
    assert_eq!(program.image.outputs.int_memory[0], 502, "taken once, not on every scan");
}

/// (flat index, size, kind, value after n scans), as for the MatIEC demo, in STruC++'s
/// debug table: TON contributes only IN, PT, Q and ET, and TIME is 8 bytes of nanoseconds.
fn expected_after(n: u64) -> Vec<Expected> {
    let odd = n % 2 == 1;
    let since_first = if n == 0 { 0 } else { (n - 1) * PERIOD_NS };
    let scalar = VarKind::Scalar;
    let bits = |v: u64, size: usize| v.to_le_bytes()[..size].to_vec();
    let time = |ns: u64| (ns as i64).to_le_bytes().to_vec();
    vec![
        (0, 2, scalar, bits(n % 65_536, 2)),
        (1, 1, scalar, vec![0]),
        (2, 1, scalar, vec![0]),
        (3, 2, scalar, vec![0, 0]),
        (4, 2, scalar, vec![0, 0]),
        (5, 1, scalar, vec![odd as u8]),
        (6, 1, scalar, ((n % 256) as u8 as i8).to_le_bytes().to_vec()),
        (7, 2, scalar, (n as i16).wrapping_neg().to_le_bytes().to_vec()),
        (8, 4, scalar, (n as i32).wrapping_mul(1000).to_le_bytes().to_vec()),
        (9, 8, scalar, (n as i64).wrapping_mul(1_000_000_000_000).to_le_bytes().to_vec()),
        (10, 1, scalar, vec![(n % 256) as u8]),
        (11, 2, scalar, ((2 * n) as u16).to_le_bytes().to_vec()),
        (12, 4, scalar, (n as u32).wrapping_mul(100_000).to_le_bytes().to_vec()),
        (13, 8, scalar, n.wrapping_mul(5_000_000_000).to_le_bytes().to_vec()),
        (14, 4, scalar, (n as f32 * 0.5).to_le_bytes().to_vec()),
        (15, 8, scalar, (n as f64 * 0.25).to_le_bytes().to_vec()),
        (16, 1, scalar, vec![if odd { 0xA5 } else { 0 }]),
        (17, 2, scalar, (if odd { 0xFFFFu16 } else { 0 }).to_le_bytes().to_vec()),
        (18, 4, scalar, (if odd { 0xDEAD_BEEFu32 } else { 0 }).to_le_bytes().to_vec()),
        (19, 8, scalar, (if odd { 0x0123_4567_89AB_CDEFu64 } else { 0 }).to_le_bytes().to_vec()),
        (20, 1, scalar, vec![(n > 0) as u8]),
        (21, 8, scalar, time(if n == 0 { 0 } else { 86_400_000_000_000 })),
        (22, 1, scalar, vec![0]),
        (23, 8, scalar, time(since_first)),
        (24, 8, scalar, time(since_first)),
        (25, 8, scalar, time(500_000_000)),
        (26, 127, VarKind::String, iec_string(b"OpenPLC")),
    ]
}

#[test]
fn every_base_type_follows_the_demo_formulas() {
    let mut program = started();
    common::assert_follows_the_demo_formulas(&mut program, expected_after);
}

#[test]
fn variable_addresses_are_stable_and_inside_the_program() {
    let mut program = started();
    let before: Vec<usize> = (0..VAR_COUNT).map(|i| program.var_addr(i) as usize).collect();
    program.run(0, 3);
    assert_eq!(program.force(V_DINT, &5i32.to_ne_bytes()), 0);
    assert_eq!(program.force(TEXT, b"\x02hi"), 0);
    let after: Vec<usize> = (0..VAR_COUNT).map(|i| program.var_addr(i) as usize).collect();
    assert_eq!(before, after, "neither scans nor forces move a variable");
    let image = &*program.image as *const _ as usize;
    let image_end = image + size_of_val(&*program.image);
    assert!(after.iter().all(|&a| a != 0 && !(image..image_end).contains(&a)), "values live in the program");
}

#[test]
fn forcing_an_output_drives_the_image_and_survives_the_program() {
    let mut program = started();
    common::assert_forcing_an_output_drives_the_image(&mut program, DOUT0);
}

#[test]
fn a_released_memory_variable_continues_from_its_forced_value() {
    let mut program = started();
    program.run(0, 5);
    assert_eq!(program.force(COUNTER, &1000u16.to_ne_bytes()), 0);
    assert_eq!(program.image.outputs.int_memory[0], 1000);
    program.run(5, 10);
    assert_eq!(program.image.outputs.int_memory[0], 1000, "frozen while forced");
    // A write into the forced cell from outside does not undo the force.
    program.image.outputs.int_memory[0] = 7;
    program.run(15, 1);
    assert_eq!(program.image.outputs.int_memory[0], 1000);
    assert_eq!(program.unforce(COUNTER), 0);
    program.run(16, 1);
    assert_eq!(program.image.outputs.int_memory[0], 1001);
}

#[test]
fn forcing_an_input_changes_what_the_program_sees_but_not_the_image() {
    let mut program = started();
    program.image.inputs.int_input[0] = 21;
    assert_eq!(program.force(DIN0, &[1]), 0);
    assert_eq!(program.force(AIN0, &5u16.to_ne_bytes()), 0);
    program.run(0, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 1);
    assert_eq!(program.image.outputs.int_output[0], 10);
    assert_eq!(program.image.inputs.bool_input[0][0], 0, "the image input is untouched");
    assert_eq!(program.image.inputs.int_input[0], 21, "the image input is untouched");
    assert_eq!(program.var_bytes(DIN0), [1], "the debugger shows the forced value");
    assert_eq!(program.var_bytes(AIN0), 5u16.to_le_bytes());

    assert_eq!(program.unforce(DIN0), 0);
    assert_eq!(program.unforce(AIN0), 0);
    assert_eq!(program.var_bytes(DIN0), [0], "released: the live input shows again");
    assert_eq!(program.var_bytes(AIN0), 21u16.to_le_bytes());
    program.run(1, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 0);
    assert_eq!(program.image.outputs.int_output[0], 42);
}

#[test]
fn forcing_program_variables() {
    let mut program = started();
    program.run(0, 2);

    assert_eq!(program.force(V_DINT, &7i32.to_ne_bytes()), 0);
    program.run(2, 3);
    assert_eq!(program.var_bytes(V_DINT), 7i32.to_le_bytes(), "frozen while forced");
    assert_eq!(program.unforce(V_DINT), 0);
    program.run(5, 1);
    assert_eq!(program.var_bytes(V_DINT), 1007i32.to_le_bytes(), "continues from the forced value");

    // A short value is zero-padded, a long one cut to the variable's size.
    assert_eq!(program.force(V_DINT, &[0x34, 0x12]), 0);
    assert_eq!(program.var_bytes(V_DINT), 0x1234i32.to_le_bytes());
    assert_eq!(program.force(V_REAL, &[0, 0, 0x80, 0x3F, 0xAA, 0xBB]), 0);
    assert_eq!(program.var_bytes(V_REAL), 1.0f32.to_le_bytes());
    // BOOL: any byte other than 0 is TRUE.
    assert_eq!(program.force(V_BOOL, &[0x40]), 0);
    assert_eq!(program.var_bytes(V_BOOL), [1]);

    // STRING: length byte and body, not padded by the client; shown at once.
    assert_eq!(program.force(TEXT, b"\x03abc"), 0);
    assert_eq!(program.var_bytes(TEXT), iec_string(b"abc"));
    program.run(6, 1);
    assert_eq!(program.var_bytes(TEXT), iec_string(b"abc"));
    assert_eq!(program.unforce(TEXT), 0);
    assert_eq!(program.var_bytes(TEXT), iec_string(b"abc"), "the program never writes TEXT");

    // TIME: 8 bytes of nanoseconds.
    assert_eq!(program.force(ELAPSED, &2_500_000_000i64.to_ne_bytes()), 0);
    program.run(7, 1);
    assert_eq!(program.var_bytes(ELAPSED), 2_500_000_000i64.to_le_bytes());
    assert_eq!(program.unforce(ELAPSED), 0);
    program.run(8, 1);
    assert_eq!(program.var_bytes(ELAPSED), (8 * PERIOD_NS as i64).to_le_bytes(), "the timer's ET again");
}

#[test]
fn out_of_range_indices_are_refused() {
    let program = started();
    for index in [VAR_COUNT, VAR_COUNT + 1, u16::MAX as u32, u32::MAX] {
        assert_eq!(program.var_size(index), 0, "var_size({index})");
        assert!(program.var_addr(index).is_null(), "var_addr({index})");
        assert!(program.force(index, &[1]) < 0, "var_force({index})");
        assert!(program.unforce(index) < 0, "var_unforce({index})");
    }
    assert!(program.force_null(COUNTER, 2) < 0, "a NULL value is refused");
    assert_eq!(program.group_len(256), Some(0));
    assert_eq!(program.located_at(program.located_count()), Err(-1));
    assert_eq!(program.located_at(u32::MAX), Err(-1));
}

#[test]
fn the_md5_is_the_same_everywhere() {
    let program = Program::load(strucpp_library());
    let from_library = program.md5().expect("program_md5");
    let dir = strucpp_dir();
    let program_st = fs::read(dir.join("program.st")).expect("program.st");
    assert_eq!(from_library, md5_hex(&program_st), "the Editor hashes program.st");
    assert_eq!(openplc_builder::program_md5(&dir).as_deref(), Some(from_library.as_str()), "defines.h");
    let map = fs::read_to_string(dir.join("debug-map.json")).expect("debug-map.json");
    assert!(map.contains(&format!("\"md5\": \"{from_library}\"")), "debug-map.json carries it too");
}

/// The dynamic symbols of a library that are GNU unique (`readelf --dyn-syms`).
fn unique_symbols(library: &Path) -> Vec<String> {
    let out = Command::new("readelf").arg("-W").arg("--dyn-syms").arg(library).output().expect("run readelf");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(" UNIQUE ")).map(str::to_string).collect()
}

#[test]
fn two_loads_start_clean() {
    assert_eq!(unique_symbols(strucpp_library()), Vec::<String>::new(), "built with -fno-gnu-unique");

    // Two instances at once (rt-core loads the next program while one runs) ...
    let mut first = started();
    first.run(0, 50);
    assert_eq!(first.image.outputs.int_memory[0], 50);
    let mut second = started();
    assert_eq!(second.var_bytes(COUNTER), [0, 0], "the second instance has its own globals");
    second.run(0, 1);
    assert_eq!(second.image.outputs.int_memory[0], 1);
    assert_eq!(second.var_bytes(ELAPSED), 0i64.to_le_bytes(), "and its own clock");
    first.run(50, 1);
    assert_eq!(first.image.outputs.int_memory[0], 51, "the first goes on undisturbed");
    assert_eq!(first.var_bytes(ELAPSED), (50 * PERIOD_NS as i64).to_le_bytes());

    // ... and one after the other.
    drop(first);
    drop(second);
    let mut third = started();
    third.run(0, 2);
    assert_eq!(third.image.outputs.int_memory[0], 2);
    assert_eq!(third.var_bytes(ELAPSED), (PERIOD_NS as i64).to_le_bytes());
}

fn build_variant(tag: &str, change: impl FnOnce(&Path)) -> Program {
    common::started(&common::build_variant_of(&strucpp_dir(), tag, change).0)
}

#[test]
fn debug_arrays_are_the_groups_of_the_flat_index() {
    // The located variables in array 0, the rest in array 1, as STruC++ splits at a program
    // instance boundary.
    let program = build_variant("arrays", |dir| {
        edit(
            dir,
            "generated_debug.cpp",
            &[
                (
                    "const Entry debug_arr_0[27] STRUCPP_DEBUG_FLASH = {",
                    "const Entry debug_arr_0[5] STRUCPP_DEBUG_FLASH = {",
                ),
                (
                    "    {(void *)&g_config.INSTANCE0.V_BOOL,",
                    "};\n\nconst Entry debug_arr_1[22] STRUCPP_DEBUG_FLASH = {\n    {(void *)&g_config.INSTANCE0.V_BOOL,",
                ),
                ("const Entry *const debug_arrays[1]", "const Entry *const debug_arrays[2]"),
                ("    debug_arr_0,\n", "    debug_arr_0,\n    debug_arr_1,\n"),
                (
                    "const uint16_t debug_array_counts[1] STRUCPP_DEBUG_FLASH = {\n    27,",
                    "const uint16_t debug_array_counts[2] STRUCPP_DEBUG_FLASH = {\n    5,\n    22,",
                ),
                ("const uint8_t debug_array_count = 1;", "const uint8_t debug_array_count = 2;"),
            ],
        );
    });
    assert_eq!(program.group_count(), Some(2));
    assert_eq!((program.group_len(0), program.group_len(1), program.group_len(2)), (Some(5), Some(22), Some(0)));
    assert_eq!(program.var_count(), VAR_COUNT);
    // The flat order is unchanged: (1, 0) is flat 5, V_BOOL; (1, 21) is flat 26, TEXT.
    assert_eq!(program.var_size(V_BOOL), 1);
    assert_eq!(program.var_size(TEXT), 127);
    assert_eq!(program.var_bytes(TEXT), iec_string(b"OpenPLC"));
    assert_eq!(program.force(V_DINT, &9i32.to_ne_bytes()), 0);
    assert_eq!(program.var_bytes(V_DINT), 9i32.to_le_bytes());
}

#[test]
fn tasks_run_on_the_gcd_grid_in_priority_order() {
    // A second task, every 25 ms, running the same program: the base tick becomes 5 ms;
    // task0 (10 ms) runs on even ticks, the new one on multiples of 5.
    let mut program = build_variant("tasks", |dir| {
        edit(
            dir,
            "generated.hpp",
            &[
                ("TaskInstance tasks_storage[1];", "TaskInstance tasks_storage[2];"),
                ("ProgramBase *task_programs_storage[1];", "ProgramBase *task_programs_storage[2];"),
            ],
        );
        edit(
            dir,
            "configuration.cpp",
            &[(
                "    resources_storage[0] = ResourceInstance(\"RES0\", \"PLC\", &tasks_storage[0], 1);",
                "    task_programs_storage[1] = &INSTANCE0;\n    tasks_storage[1] = TaskInstance(\"FAST\", \
                     25000000LL, 1, &task_programs_storage[1], 1);\n    resources_storage[0] = \
                     ResourceInstance(\"RES0\", \"PLC\", &tasks_storage[0], 2);",
            )],
        );
    });
    assert_eq!(program.tick_period_ns(), 5_000_000);
    program.run(0, 10);
    // task0 at ticks 0, 2, 4, 6, 8; FAST at 0 and 5.
    assert_eq!(program.image.outputs.int_memory[0], 7);
    // Program time is the tick's: the last run (tick 8; tick 9 runs nothing) saw 40 ms.
    assert_eq!(program.var_bytes(ELAPSED), 40_000_000i64.to_le_bytes());
}

#[test]
fn a_bundle_without_its_debug_table_or_with_a_broken_pou_fails_clearly() {
    let dir = scratch("incomplete").join("src");
    copy_dir(&strucpp_dir(), &dir);
    fs::remove_file(dir.join("generated_debug.cpp")).expect("remove");
    let out = dir.parent().expect("parent").join("program.so");
    let (result, _) = build_collect(&dir, &out, &BuildOptions::default());
    assert_eq!(
        result.expect_err("refused"),
        "incomplete STruC++ bundle (OpenPLC Editor 4.2 and later): generated_debug.cpp is missing"
    );

    let dir = scratch("broken").join("src");
    copy_dir(&strucpp_dir(), &dir);
    edit(&dir, "pou_MAIN.cpp", &[("COUNTER = COUNTER + 1;", "COUNTER = COUNTER + ;")]);
    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    let err = result.expect_err("a compiler error");
    assert!(err.starts_with("compiling pou_MAIN.cpp failed with exit code 1: "), "{err}");
    assert!(err.contains("pou_MAIN.cpp:"), "{err}");
    assert!(lines.iter().any(|l| l.text == "Compiling configuration.cpp"), "{lines:#?}");
    assert!(!out.exists());
}

#[test]
fn a_bundle_without_a_program_md5_builds_with_a_warning() {
    let dir = scratch("no-md5").join("src");
    copy_dir(&strucpp_dir(), &dir);
    fs::write(dir.join("defines.h"), "// nothing\n").expect("write");
    let out = dir.parent().expect("parent").join("program.so");
    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    let report = result.expect("builds");
    assert_eq!(report.md5, None);
    assert!(lines.iter().any(|l| l.text.contains("defines.h has no #define PROGRAM_MD5")), "{lines:#?}");
    let program = Program::load(&out);
    assert_eq!(program.md5(), None);
}

/// Compiles the adapter alone, strictly, against the fixture and its stand-in runtime.
fn compile_adapter_strictly(extra: &[&str]) {
    let dir = scratch("strict-cpp");
    fs::write(dir.join("strucpp_adapter.cpp"), STRUCPP_ADAPTER_SOURCE).expect("write adapter");
    for (name, text) in ADAPTER_HEADERS.iter().chain(STRUCPP_ADAPTER_HEADERS.iter()) {
        fs::write(dir.join(name), text).expect("write header");
    }
    let fixture = strucpp_dir();
    let out = Command::new("c++")
        .args(["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-fPIC", "-fno-gnu-unique"])
        .arg("-DOPLC_STRUCPP_CONFIG=Configuration_CONFIG0")
        .args(extra)
        .arg("-I")
        .arg(&fixture)
        .arg("-I")
        .arg(fixture.join("strucpp_runtime/include"))
        .arg("-I")
        .arg(&dir)
        .args(["-c", "strucpp_adapter.cpp", "-o", "adapter.o"])
        .current_dir(&dir)
        .output()
        .expect("run c++");
    assert!(out.status.success(), "{extra:?}:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_adapter_is_warning_free_cpp17() {
    compile_adapter_strictly(&[]);
    compile_adapter_strictly(&["-DSTRUCPP_THREADED"]);
}

/// The same checks on a bundle really generated by STruC++ from the fixture's program.st (as
/// the Editor calls it: library API, debug table and debug map, the MD5 passed in). STruC++ is
/// not available here, so this runs only when asked:
/// `OPLC_STRUCPP_BUNDLE=<dir> cargo test -p openplc-builder --test strucpp -- --ignored`.
#[test]
#[ignore = "needs a STruC++-generated bundle in OPLC_STRUCPP_BUNDLE"]
fn a_real_strucpp_bundle_behaves_like_the_fixture() {
    let dir = std::env::var_os("OPLC_STRUCPP_BUNDLE").expect("OPLC_STRUCPP_BUNDLE names the bundle directory");
    let dir = Path::new(&dir);
    assert_eq!(detect(dir).expect("detect"), Generation::Strucpp);
    let out = scratch("real").join("program.so");
    let (result, lines) = build_collect(dir, &out, &BuildOptions::default());
    if let Err(err) = result {
        panic!("{err}\n{lines:#?}");
    }
    assert_eq!(unique_symbols(&out), Vec::<String>::new());
    let mut program = Program::load(&out);
    program.start();
    assert_eq!(program.generator(), "strucpp");
    assert_eq!(program.tick_period_ns(), PERIOD_NS);
    assert_eq!(program.md5(), openplc_builder::program_md5(dir));
    assert_eq!(program.located_count(), 5);
    let mut done = 0;
    for n in [0u64, 1, 2, 7, 200, 301] {
        program.run(done, n - done);
        done = n;
        for (index, size, kind, value) in expected_after(n) {
            assert_eq!(program.var_size(index), size, "size of variable {index}");
            assert_eq!(VarKind::from_u32(program.var_kind(index)), kind, "kind of variable {index}");
            assert_eq!(program.var_bytes(index), value, "variable {index} after {n} scans");
        }
    }
    assert_eq!(program.image.outputs.int_memory[0], 301);
    program.image.inputs.bool_input[0][0] = 1;
    program.image.inputs.int_input[0] = 21;
    program.run(301, 1);
    assert_eq!((program.image.outputs.bool_output[0][0], program.image.outputs.int_output[0]), (1, 42));
    assert_eq!(program.force(DIN0, &[0]), 0);
    assert_eq!(program.force(TEXT, b"\x03abc"), 0);
    assert_eq!(program.force(COUNTER, &1000u16.to_ne_bytes()), 0);
    assert_eq!(program.image.outputs.int_memory[0], 1000);
    program.run(302, 2);
    assert_eq!(program.image.outputs.bool_output[0][0], 0, "the program sees the forced input");
    assert_eq!(program.image.inputs.bool_input[0][0], 1);
    assert_eq!(program.var_bytes(TEXT), iec_string(b"abc"));
    assert_eq!(program.image.outputs.int_memory[0], 1000);
    assert_eq!(program.unforce(COUNTER), 0);
    assert_eq!(program.unforce(DIN0), 0);
    assert_eq!(program.var_bytes(DIN0), [1]);
    program.run(304, 1);
    assert_eq!(program.image.outputs.int_memory[0], 1001);
    assert_eq!(program.image.outputs.bool_output[0][0], 1);
    drop(program);
    let mut again = Program::load(&out);
    again.start();
    again.run(0, 1);
    assert_eq!(again.image.outputs.int_memory[0], 1, "a second load starts clean");
}

/// Set for the child run of `an_iec_runtime_error_becomes_a_guarded_fault`.
const THROWING_LIBRARY: &str = "OPLC_TEST_THROWING_LIBRARY";

/// Runs as a child process only (the test below runs it, with the variable set): a scan that
/// throws. Ignored in the normal run, where it would have nothing to load.
#[test]
#[ignore = "a helper: an_iec_runtime_error_becomes_a_guarded_fault runs it in a child process"]
fn helper_runs_a_program_whose_scan_throws() {
    let library = std::env::var_os(THROWING_LIBRARY).expect("run by an_iec_runtime_error_becomes_a_guarded_fault");
    let mut program = Program::load(Path::new(&library));
    program.start();
    program.run(0, 1);
    program.run(1, 1);
    std::process::exit(3); // not reached: the second scan throws
}

#[test]
fn an_iec_runtime_error_becomes_a_guarded_fault() {
    use std::os::unix::process::ExitStatusExt;
    // A program whose second scan throws, as STruC++'s code does for an array index out of
    // bounds. The exception must not unwind into rt-core (a C++ terminate would abort the
    // whole process): the adapter turns it into SIGILL, which rt-core's guard catches.
    let dir = scratch("throws").join("src");
    copy_dir(&strucpp_dir(), &dir);
    edit(
        &dir,
        "pou_MAIN.cpp",
        &[(
            "    COUNTER = COUNTER + 1;",
            "    COUNTER = COUNTER + 1;\n    if (COUNTER > 1) {\n        throw 1;\n    }",
        )],
    );
    let out = dir.parent().expect("parent").join("program.so");
    let (result, lines) = build_collect(&dir, &out, &BuildOptions::default());
    if let Err(err) = result {
        panic!("{err}\n{lines:#?}");
    }
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "helper_runs_a_program_whose_scan_throws", "--ignored", "--test-threads", "1"])
        .env(THROWING_LIBRARY, &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the child");
    assert_eq!(status.signal(), Some(libc::SIGILL), "{status:?}");
}

#[test]
fn a_leaf_resolved_when_read_is_shadowed() {
    // Later STruC++ versions resolve some leaves in read_entry (a VAR_IN_OUT's binding): the
    // table's pointer is not the variable, and the variable can move. Here V_BOOL's entry
    // points at a binding cell, and the stand-in's read_entry follows it when `_pad` is 1.
    let mut program = build_variant("indirect", |dir| {
        edit(
            dir,
            "generated_debug.cpp",
            &[
                (
                    "namespace strucpp {\nnamespace debug {\n",
                    "namespace strucpp {\nnamespace debug {\n\nvoid *v_bool_binding = &g_config.INSTANCE0.V_BOOL;\n",
                ),
                ("{(void *)&g_config.INSTANCE0.V_BOOL, TAG_BOOL, 0}", "{(void *)&v_bool_binding, TAG_BOOL, 1}"),
            ],
        );
        edit(
            dir,
            "strucpp_runtime/include/debug_dispatch.hpp",
            &[(
                "    return debug_arrays[arr][elem];",
                "    Entry e = debug_arrays[arr][elem];\n    if (e._pad == 1) {\n        e.ptr = *static_cast<void *const *>(e.ptr);\n    }\n    return e;",
            )],
        );
    });
    assert_eq!((program.var_size(V_BOOL), VarKind::from_u32(program.var_kind(V_BOOL))), (1, VarKind::Scalar));
    let addr = program.var_addr(V_BOOL);
    // A copy, not the variable: outside the program object, where every other scalar lives.
    let others: Vec<usize> = (0..TEXT).filter(|&i| i != V_BOOL).map(|i| program.var_addr(i) as usize).collect();
    let (lo, hi) = (others.iter().min().copied().unwrap(), others.iter().max().copied().unwrap());
    assert!(!(lo..=hi).contains(&(addr as usize)), "V_BOOL is shadowed");
    for n in 1..=3u8 {
        program.run(u64::from(n) - 1, 1);
        assert_eq!(program.var_bytes(V_BOOL), [n % 2], "refreshed after every scan");
    }
    assert_eq!(program.force(V_BOOL, &[1]), 0);
    assert_eq!(program.var_bytes(V_BOOL), [1], "refreshed by the force");
    program.run(3, 2);
    assert_eq!(program.var_bytes(V_BOOL), [1], "held");
    assert_eq!(program.var_addr(V_BOOL), addr, "the shadow does not move");
    assert_eq!(program.unforce(V_BOOL), 0);
    program.run(5, 1);
    assert_eq!(program.var_bytes(V_BOOL), [0]);
}
