//! The demo bundle built by the builder, loaded with dlopen and driven through the program ABI
//! as rt-core drives it. The expected values are the formulas of scripts/demo-bundle/README.md.

mod common;

use common::{Expected, Program, debug_c_md5, demo_dir, demo_library, iec_string};
use shared_abi::image::{Area, Width};
use shared_abi::program::{PROGRAM_ABI_VERSION, ProgramAbi, VarKind};

const PERIOD_NS: u64 = 10_000_000;
const VAR_COUNT: u32 = 33;

// Debug indices (the order of debug_vars[] in debug.c).
const COUNTER: u32 = 0;
const DIN0: u32 = 1;
const DOUT0: u32 = 2;
const AIN0: u32 = 3;
const AOUT0: u32 = 4;
const V_DINT: u32 = 8;
const V_REAL: u32 = 14;
const ELAPSED: u32 = 30;
const TEXT: u32 = 32;

fn started() -> Program {
    let mut program = Program::load(demo_library());
    program.start();
    program
}

#[test]
fn the_abi_describes_itself() {
    let program = Program::load(demo_library());
    let abi = program.abi();
    assert_eq!(abi.abi_version, PROGRAM_ABI_VERSION);
    assert_eq!(abi.struct_size as usize, size_of::<ProgramAbi>());
    assert_eq!(program.generator(), "matiec");
    assert_eq!(program.tick_period_ns(), PERIOD_NS);
    assert!(abi.group_count.is_none() && abi.group_len.is_none());
    assert_eq!(program.var_count(), VAR_COUNT);
    assert_eq!(program.bind_null(), -1, "a NULL image is refused");
}

#[test]
fn located_variables_live_in_the_image() {
    let mut program = Program::load(demo_library());
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

    // The debug addresses of the located variables are the image elements themselves.
    let image = &*program.image;
    let addr = |ptr: *const u8| ptr as usize;
    assert_eq!(addr(program.var_addr(COUNTER)), addr(image.outputs.int_memory.as_ptr().cast()));
    assert_eq!(addr(program.var_addr(DIN0)), addr(image.inputs.bool_input[0].as_ptr()));
    assert_eq!(addr(program.var_addr(DOUT0)), addr(image.outputs.bool_output[0].as_ptr()));
    assert_eq!(addr(program.var_addr(AIN0)), addr(image.inputs.int_input.as_ptr().cast()));
    assert_eq!(addr(program.var_addr(AOUT0)), addr(image.outputs.int_output.as_ptr().cast()));
}

#[test]
fn the_counter_in_mw0_counts_scans() {
    let mut program = started();
    assert_eq!(program.image.outputs.int_memory[0], 0);
    program.run(0, 25);
    assert_eq!(program.image.outputs.int_memory[0], 25);
    program.run(25, 1000);
    assert_eq!(program.image.outputs.int_memory[0], 1025);
}

#[test]
fn ix0_0_is_echoed_to_qx0_0() {
    let mut program = started();
    program.image.inputs.bool_input[0][0] = 1;
    program.run(0, 1);
    assert_eq!(program.image.outputs.bool_output[0][0], 1);
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
    program.image.inputs.int_input[0] = 40_000;
    program.run(1, 1);
    assert_eq!(program.image.outputs.int_output[0], (80_000u32 % 65_536) as u16, "UINT arithmetic wraps");
}

/// The README's table: (debug index, size, kind, value after n scans).
fn expected_after(n: u64) -> Vec<Expected> {
    let odd = n % 2 == 1;
    let period = |k: u64| timespec_ns(k * PERIOD_NS);
    let since_first = if n == 0 { timespec_ns(0) } else { period(n - 1) };
    let scalar = VarKind::Scalar;
    let bits = |v: u64, size: usize| v.to_le_bytes()[..size].to_vec();
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
        (20, 1, scalar, vec![1]),
        (21, 1, scalar, vec![1]),
        (22, 1, scalar, vec![(n > 0) as u8]),
        (23, 16, VarKind::Timespec, if n == 0 { timespec_ns(0) } else { timespec_ns(86_400_000_000_000) }),
        (24, 1, scalar, vec![0]),
        (25, 16, VarKind::Timespec, since_first.clone()),
        (26, 1, scalar, vec![(n > 0) as u8]),
        (27, 1, scalar, vec![(n > 0) as u8]),
        (28, 16, VarKind::Timespec, since_first.clone()),
        (29, 16, VarKind::Timespec, timespec_ns(0)),
        (30, 16, VarKind::Timespec, since_first),
        (31, 16, VarKind::Timespec, timespec_ns(500_000_000)),
        (32, 127, VarKind::String, iec_string(b"OpenPLC")),
    ]
}

fn timespec_ns(ns: u64) -> Vec<u8> {
    let mut bytes = ((ns / 1_000_000_000) as i64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&((ns % 1_000_000_000) as i64).to_le_bytes());
    bytes
}

#[test]
fn every_base_type_follows_the_readme_formulas() {
    let mut program = started();
    common::assert_follows_the_demo_formulas(&mut program, expected_after);
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
    assert_eq!(program.unforce(COUNTER), 0);
    program.run(15, 1);
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

    assert_eq!(program.unforce(DIN0), 0);
    assert_eq!(program.unforce(AIN0), 0);
    assert_eq!(program.var_bytes(DIN0), [0], "released: the live input shows again");
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

    // STRING: length byte and body, not padded by the client.
    assert_eq!(program.force(TEXT, b"\x03abc"), 0);
    program.run(6, 1);
    assert_eq!(program.var_bytes(TEXT), iec_string(b"abc"));

    // TIME variables take the 16-byte timespec.
    assert_eq!(program.force(ELAPSED, &timespec_ns(2_500_000_000)), 0);
    program.run(7, 1);
    assert_eq!(program.var_bytes(ELAPSED), timespec_ns(2_500_000_000));
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
    assert_eq!(program.located_at(program.located_count()), Err(-1));
    assert_eq!(program.located_at(u32::MAX), Err(-1));
}

#[test]
fn the_md5_is_the_same_everywhere() {
    let program = Program::load(demo_library());
    let from_library = program.md5().expect("program_md5");
    let from_program_st = openplc_builder::program_md5(&demo_dir()).expect("program.st MD5");
    let debug_c = std::fs::read_to_string(demo_dir().join("debug.c")).expect("debug.c");
    assert_eq!(from_library, from_program_st);
    assert_eq!(from_library, debug_c_md5(&debug_c));
    assert_eq!(from_library.len(), 32);
}

#[test]
fn ticks_beyond_unsigned_long_range_still_run() {
    let mut program = started();
    program.run(u64::MAX - 1, 2);
    assert_eq!(program.image.outputs.int_memory[0], 2);
}
