//! The MatIEC adapter on its own: clean C99, and the cases the demo program does not reach
//! (located variables that cannot live in the image, the tick wrap).

mod common;

use common::{Program, demo_dir, edit, scratch};
use openplc_builder::{ADAPTER_HEADERS, MATIEC_ADAPTER_SOURCE};
use std::fs;
use std::path::Path;
use std::process::Command;

// Debug indices of the demo program.
const COUNTER: u32 = 0;
const DOUT0: u32 = 2;
const AIN0: u32 = 3;
const AOUT0: u32 = 4;

/// Compiles the adapter alone, strictly, against `located` as LOCATED_VARIABLES.h.
fn compile_adapter_strictly(located: &str) {
    let dir = scratch("strict");
    fs::write(dir.join("matiec_adapter.c"), MATIEC_ADAPTER_SOURCE).expect("write adapter");
    for (name, text) in ADAPTER_HEADERS {
        fs::write(dir.join(name), text).expect("write header");
    }
    fs::write(dir.join("LOCATED_VARIABLES.h"), located).expect("write located");
    let out = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-fPIC", "-c", "matiec_adapter.c"])
        .arg("-I")
        .arg(&dir)
        .arg("-I")
        .arg(demo_dir().join("lib"))
        .current_dir(&dir)
        .output()
        .expect("run cc");
    assert!(out.status.success(), "{located:?}:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_adapter_is_warning_free_c99() {
    let demo = fs::read_to_string(demo_dir().join("LOCATED_VARIABLES.h")).expect("LOCATED_VARIABLES.h");
    compile_adapter_strictly(&demo);
    compile_adapter_strictly("");
    compile_adapter_strictly(concat!(
        "__LOCATED_VAR(DINT,__IW0,I,W,0)\n",
        "__LOCATED_VAR(BOOL,__QX2000_1,Q,X,2000,1)\n",
        "__LOCATED_VAR(BYTE,__MB3,M,B,3)\n",
        "__LOCATED_VAR(REAL,__QD7,Q,D,7)\n",
        "__LOCATED_VAR(BOOL,__MX1_7,M,X,1,7)\n",
        "__LOCATED_VAR(LREAL,__IL1023,I,L,1023)\n",
        "__LOCATED_VAR(TIME,__MD4,M,D,4)\n",
    ));
}

fn build_variant(tag: &str, change: impl FnOnce(&Path)) -> Program {
    common::started(&common::build_variant_of(&demo_dir(), tag, change).0)
}

/// The demo with %MW0, %IW0 and %QW0 declared DINT and %QX0.0 moved to %QX65536.0, as a
/// MatIEC program with such declarations would be generated.
fn mismatched_demo(dir: &Path) {
    edit(
        dir,
        "POUS.h",
        &[
            ("__DECLARE_LOCATED(UINT,COUNTER)", "__DECLARE_LOCATED(DINT,COUNTER)"),
            ("__DECLARE_LOCATED(UINT,AIN0)", "__DECLARE_LOCATED(DINT,AIN0)"),
            ("__DECLARE_LOCATED(UINT,AOUT0)", "__DECLARE_LOCATED(DINT,AOUT0)"),
        ],
    );
    edit(
        dir,
        "POUS.c",
        &[
            ("__INIT_LOCATED(UINT,__MW0,", "__INIT_LOCATED(DINT,__MW0,"),
            ("__INIT_LOCATED(UINT,__IW0,", "__INIT_LOCATED(DINT,__IW0,"),
            ("__INIT_LOCATED(UINT,__QW0,", "__INIT_LOCATED(DINT,__QW0,"),
            ("__QX0_0", "__QX65536_0"),
        ],
    );
    edit(
        dir,
        "LOCATED_VARIABLES.h",
        &[
            ("(UINT,__MW0,", "(DINT,__MW0,"),
            ("(UINT,__IW0,", "(DINT,__IW0,"),
            ("(UINT,__QW0,", "(DINT,__QW0,"),
            ("__QX0_0,Q,X,0,0", "__QX65536_0,Q,X,65536,0"),
        ],
    );
    edit(
        dir,
        "glueVars.c",
        &[
            ("UINT ___MW0;\nUINT *__MW0", "DINT ___MW0;\nDINT *__MW0"),
            ("UINT ___IW0;\nUINT *__IW0", "DINT ___IW0;\nDINT *__IW0"),
            ("UINT ___QW0;\nUINT *__QW0", "DINT ___QW0;\nDINT *__QW0"),
            ("__QX0_0", "__QX65536_0"),
        ],
    );
    edit(
        dir,
        "debug.c",
        &[
            ("COUNTER), UINT_O_ENUM", "COUNTER), DINT_O_ENUM"),
            ("AIN0), UINT_P_ENUM", "AIN0), DINT_P_ENUM"),
            ("AOUT0), UINT_O_ENUM", "AOUT0), DINT_O_ENUM"),
        ],
    );
}

fn dint(bytes: Vec<u8>) -> i32 {
    i32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

#[test]
fn located_variables_that_do_not_fit_are_copied_around_the_scan() {
    let mut program = build_variant("mismatch", mismatched_demo);

    let in_image: Vec<u8> = (0..5).map(|i| program.located_at(i).expect("located").in_image).collect();
    assert_eq!(in_image, [0, 1, 0, 0, 0], "only %IX0.0 fits its element");
    assert_eq!(program.located_at(0).expect("located").size, 4);

    // %IW0 is zero-extended into the DINT; %QW0 gets the DINT truncated.
    program.image.inputs.int_input[0] = 40_000;
    program.run(0, 1);
    assert_eq!(dint(program.var_bytes(AIN0)), 40_000);
    assert_eq!(dint(program.var_bytes(AOUT0)), 80_000);
    assert_eq!(program.image.outputs.int_output[0], (80_000 & 0xFFFF) as u16);

    // %QX65536.0 has no element: the program keeps its own storage, the image is untouched.
    program.image.inputs.bool_input[0][0] = 1;
    program.run(1, 1);
    assert_eq!(program.var_bytes(DOUT0), [1]);
    assert!(program.image.outputs.bool_output.iter().all(|bits| bits == &[0; 8]));

    // The counter in %MW0 counts in DINT; the image shows its low 16 bits ...
    assert_eq!(program.image.outputs.int_memory[0], 2);
    assert_eq!(program.force(COUNTER, &65_535i32.to_ne_bytes()), 0);
    program.run(2, 1);
    assert_eq!(program.image.outputs.int_memory[0], 65_535);
    assert_eq!(program.unforce(COUNTER), 0);
    program.run(3, 2);
    assert_eq!(dint(program.var_bytes(COUNTER)), 65_537, "the image's echo does not truncate the program's value");
    assert_eq!(program.image.outputs.int_memory[0], 1);

    // ... and a value written into the image from outside (a Modbus client) is taken over.
    program.image.outputs.int_memory[0] = 500;
    program.run(5, 1);
    assert_eq!(dint(program.var_bytes(COUNTER)), 501);
    assert_eq!(program.image.outputs.int_memory[0], 501);
}

#[test]
fn ticks_wrap_at_greatest_tick_count() {
    // Not a combination MatIEC emits: a wrap of 2 with a task every 3 ticks makes the wrap
    // visible. Wrapped, ticks 0..6 become 0,1,0,1,0,1 and the task runs 3 times, not 2.
    let mut program = build_variant("wrap", |dir| {
        edit(
            dir,
            "Config0.c",
            &[("greatest_tick_count__ = (unsigned long)0UL", "greatest_tick_count__ = (unsigned long)2UL")],
        );
        edit(dir, "Res0.c", &[("TASK0 = !(tick % 1);", "TASK0 = !(tick % 3);")]);
    });
    program.run(0, 6);
    assert_eq!(program.image.outputs.int_memory[0], 3);
}
