//! Keeps `include/openplc_abi.h` in step with the Rust declarations: a C program compiled
//! with the system compiler prints every size and offset the header defines, and each one
//! must equal what Rust computes for the same field.

use shared_abi::image::{Image, InputImage, OutputImage};
use shared_abi::program::{LocatedInfo, PROGRAM_ABI_VERSION, ProgramAbi, TaskInfo};
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

const PROBE: &str = r#"
#include <stdio.h>
#include "openplc_abi.h"
#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define OFF(t, f) printf("off %s.%s %zu\n", #t, #f, offsetof(t, f))
int main(void) {
    printf("version %u\n", OPLC_PROGRAM_ABI_VERSION);
    SIZE(oplc_inputs_t); SIZE(oplc_outputs_t); SIZE(oplc_image_t); SIZE(oplc_located_t); SIZE(oplc_program_abi_t);
    OFF(oplc_inputs_t, lint_input); OFF(oplc_inputs_t, dint_input); OFF(oplc_inputs_t, int_input);
    OFF(oplc_inputs_t, byte_input); OFF(oplc_inputs_t, bool_input);
    OFF(oplc_outputs_t, lint_output); OFF(oplc_outputs_t, lint_memory); OFF(oplc_outputs_t, dint_output);
    OFF(oplc_outputs_t, dint_memory); OFF(oplc_outputs_t, int_output); OFF(oplc_outputs_t, int_memory);
    OFF(oplc_outputs_t, byte_output); OFF(oplc_outputs_t, bool_output); OFF(oplc_outputs_t, bool_memory);
    OFF(oplc_image_t, in); OFF(oplc_image_t, out);
    OFF(oplc_located_t, area); OFF(oplc_located_t, width); OFF(oplc_located_t, index);
    OFF(oplc_located_t, bit); OFF(oplc_located_t, in_image); OFF(oplc_located_t, size);
    OFF(oplc_program_abi_t, abi_version); OFF(oplc_program_abi_t, struct_size); OFF(oplc_program_abi_t, generator);
    OFF(oplc_program_abi_t, bind_image); OFF(oplc_program_abi_t, init); OFF(oplc_program_abi_t, run_tick);
    OFF(oplc_program_abi_t, tick_period_ns); OFF(oplc_program_abi_t, program_md5); OFF(oplc_program_abi_t, var_count);
    OFF(oplc_program_abi_t, var_size); OFF(oplc_program_abi_t, var_kind); OFF(oplc_program_abi_t, var_addr);
    OFF(oplc_program_abi_t, var_force); OFF(oplc_program_abi_t, var_unforce); OFF(oplc_program_abi_t, group_count);
    OFF(oplc_program_abi_t, group_len); OFF(oplc_program_abi_t, located_count); OFF(oplc_program_abi_t, located_at);
    OFF(oplc_program_abi_t, retain_count); OFF(oplc_program_abi_t, retain_var); OFF(oplc_program_abi_t, retain_set); OFF(oplc_program_abi_t, var_write);
    OFF(oplc_program_abi_t, task_count); OFF(oplc_program_abi_t, task_info); OFF(oplc_program_abi_t, task_thread_init);
    OFF(oplc_program_abi_t, task_inputs); OFF(oplc_program_abi_t, task_run); OFF(oplc_program_abi_t, task_outputs);
    SIZE(oplc_task_info_t); OFF(oplc_task_info_t, name); OFF(oplc_task_info_t, interval_ns); OFF(oplc_task_info_t, priority);
    return 0;
}
"#;

fn rust_layout() -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: usize| {
        m.insert(k.to_string(), v);
    };
    put("version", PROGRAM_ABI_VERSION as usize);
    put("size oplc_inputs_t", size_of::<InputImage>());
    put("size oplc_outputs_t", size_of::<OutputImage>());
    put("size oplc_image_t", size_of::<Image>());
    put("size oplc_located_t", size_of::<LocatedInfo>());
    put("size oplc_program_abi_t", size_of::<ProgramAbi>());
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident => $cf:literal),*) => {$(
            put(concat!("off ", $c, ".", $cf), offset_of!($t, $f));
        )*};
    }
    off!("oplc_inputs_t", InputImage, lint_input => "lint_input", dint_input => "dint_input", int_input => "int_input", byte_input => "byte_input", bool_input => "bool_input");
    off!("oplc_outputs_t", OutputImage, lint_output => "lint_output", lint_memory => "lint_memory", dint_output => "dint_output", dint_memory => "dint_memory", int_output => "int_output", int_memory => "int_memory", byte_output => "byte_output", bool_output => "bool_output", bool_memory => "bool_memory");
    off!("oplc_image_t", Image, inputs => "in", outputs => "out");
    off!("oplc_located_t", LocatedInfo, area => "area", width => "width", index => "index", bit => "bit", in_image => "in_image", size => "size");
    off!("oplc_program_abi_t", ProgramAbi, abi_version => "abi_version", struct_size => "struct_size", generator => "generator", bind_image => "bind_image", init => "init", run_tick => "run_tick", tick_period_ns => "tick_period_ns", program_md5 => "program_md5", var_count => "var_count", var_size => "var_size", var_kind => "var_kind", var_addr => "var_addr", var_force => "var_force", var_unforce => "var_unforce", group_count => "group_count", group_len => "group_len", located_count => "located_count", located_at => "located_at", retain_count => "retain_count", retain_var => "retain_var", retain_set => "retain_set", var_write => "var_write", task_count => "task_count", task_info => "task_info", task_thread_init => "task_thread_init", task_inputs => "task_inputs", task_run => "task_run", task_outputs => "task_outputs");
    put("size oplc_task_info_t", size_of::<TaskInfo>());
    off!("oplc_task_info_t", TaskInfo, name => "name", interval_ns => "interval_ns", priority => "priority");
    m
}

fn c_layout(compiler: &str, source_name: &str) -> BTreeMap<String, usize> {
    run_probe(compiler, source_name, PROBE)
}

/// Compiles `source` (which includes the header) with `compiler`, runs it, and reads the
/// `name value` lines it prints.
fn run_probe(compiler: &str, source_name: &str, source: &str) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(source_name);
    let exe = dir.path().join("probe");
    std::fs::write(&src, source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let out = Command::new(compiler)
        .args(["-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(&include)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} must be installed: {e}"));
    assert!(out.status.success(), "{compiler} failed: {}", String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn c_header_matches_rust_layout() {
    assert_eq!(c_layout("cc", "probe.c"), rust_layout());
}

#[test]
fn c_header_is_valid_cplusplus_too() {
    // STruC++ adapters include the header from C++.
    assert_eq!(c_layout("c++", "probe.cpp"), rust_layout());
}

// ---- The plugin ABI (`plugin_runtime_args_t`) ----

/// Every field of `plugin_runtime_args_t`, in declaration order, with its Rust offset.
fn plugin_rust_layout() -> BTreeMap<String, usize> {
    use shared_abi::plugin::PluginRuntimeArgs as A;
    let mut m = BTreeMap::new();
    m.insert("size plugin_runtime_args_t".to_string(), size_of::<A>());
    macro_rules! off {
        ($($f:ident),*) => {$(
            m.insert(concat!("off ", stringify!($f)).to_string(), offset_of!(A, $f));
        )*};
    }
    off!(
        bool_input,
        bool_output,
        byte_input,
        byte_output,
        int_input,
        int_output,
        dint_input,
        dint_output,
        lint_input,
        lint_output,
        int_memory,
        dint_memory,
        lint_memory,
        bool_memory,
        image_lock,
        image_unlock,
        debug_array_count,
        debug_elem_count,
        debug_size,
        debug_read,
        debug_set,
        debug_write,
        plugin_specific_config_file_path,
        buffer_size,
        bits_per_buffer,
        log_info,
        log_debug,
        log_warn,
        log_error,
        journal_write_bool,
        journal_write_byte,
        journal_write_int,
        journal_write_dint,
        journal_write_lint,
        request_plc_stop,
        base_tick_ns,
        request_plc_start,
        set_switch_position,
        get_plc_state
    );
    m.insert("journal lint_memory".to_string(), shared_abi::plugin::JournalType::LintMemory as usize);
    m.insert("journal int_input".to_string(), shared_abi::plugin::JournalType::IntInput as usize);
    m
}

fn plugin_c_layout(compiler: &str, source_name: &str) -> BTreeMap<String, usize> {
    let fields = plugin_rust_layout()
        .keys()
        .filter_map(|k| k.strip_prefix("off "))
        .map(|f| format!("    printf(\"off {f} %zu\\n\", offsetof(plugin_runtime_args_t, {f}));\n"))
        .collect::<String>();
    let probe = format!(
        "#include <stdio.h>\n#include \"openplc_abi.h\"\nint main(void) {{\n\
         printf(\"size plugin_runtime_args_t %zu\\n\", sizeof(plugin_runtime_args_t));\n{fields}\
         printf(\"journal lint_memory %d\\n\", (int)OPLC_JOURNAL_LINT_MEMORY);\n\
         printf(\"journal int_input %d\\n\", (int)OPLC_JOURNAL_INT_INPUT);\n\
         return 0;\n}}\n"
    );
    run_probe(compiler, source_name, &probe)
}

#[test]
fn plugin_args_match_the_c_compiler_field_by_field() {
    let rust = plugin_rust_layout();
    assert_eq!(rust.len(), 39 + 1 + 2, "every field is compared");
    assert_eq!(plugin_c_layout("cc", "plugin_probe.c"), rust);
    assert_eq!(plugin_c_layout("c++", "plugin_probe.cpp"), rust);
}

#[test]
fn plugin_args_keep_upstream_v4_1_4_prefix() {
    // A 4.1.4 plugin's struct ends at base_tick_ns; the appended fields start right after.
    use shared_abi::plugin::{ARGS_SIZE_V4_1_4, PluginRuntimeArgs as A};
    assert_eq!(offset_of!(A, base_tick_ns) + 8, ARGS_SIZE_V4_1_4);
    assert_eq!(offset_of!(A, request_plc_start), ARGS_SIZE_V4_1_4);
}
