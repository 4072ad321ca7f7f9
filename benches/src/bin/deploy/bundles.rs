//! The programs the deploy bench uploads, each as a family of variants zipped as the Editor
//! zips them (entries at the root, stored):
//!
//! - **MatIEC demo**: `scripts/demo-bundle` (its `conf/` left out: no plugin starts).
//! - **MatIEC blink**: one program, a TON blinking `%QX0.0`: the 5 generated files of a
//!   blink, with the demo's `lib/` or, with `--matiec-lib`, MatIEC's own headers (its
//!   `debug.c` uses only what both define).
//! - **STruC++ 3 POUs**: the builder's STruC++ fixture with two function blocks added, each
//!   in its own `pou_*.cpp`; with `--strucpp-runtime`, STruC++'s own runtime headers instead
//!   of the fixture's stand-in.
//!
//! A variant is `(program, body)`: another `program` changes the declarations (a variable
//! more), as a new program does; another `body` changes one POU's code only. Both change the
//! program's MD5, as the Editor's does on every edit.

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use zip::write::SimpleFileOptions;

/// The MD5 the hand-written bundles carry; each variant replaces it with its own.
const FIXTURE_MD5: &str = "e2895d32c3671083340f0ee26e3d1516";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub program: u32,
    pub body: u32,
}

impl Variant {
    fn md5(self) -> String {
        format!("{:016x}{:016x}", 0xbe4c_0000_0000_0000u64 | u64::from(self.program), u64::from(self.body))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    MatiecDemo,
    MatiecBlink,
    Strucpp3,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::MatiecDemo => "MatIEC demo",
            Kind::MatiecBlink => "MatIEC blink",
            Kind::Strucpp3 => "STruC++ 3 POUs",
        }
    }

    /// Short name for the machine-readable line.
    pub fn key(self) -> &'static str {
        match self {
            Kind::MatiecDemo => "matiec_demo",
            Kind::MatiecBlink => "matiec_blink",
            Kind::Strucpp3 => "strucpp_3pou",
        }
    }
}

/// Where the headers come from.
pub struct Headers {
    /// MatIEC's `lib/C` (or a folder of its headers); `None`: the demo's stand-in `lib/`.
    pub matiec_lib: Option<PathBuf>,
    /// STruC++'s `src/runtime/include`; `None`: the fixture's stand-in.
    pub strucpp_runtime: Option<PathBuf>,
}

impl Headers {
    pub fn describe(&self, kind: Kind) -> String {
        match (kind, &self.matiec_lib, &self.strucpp_runtime) {
            (Kind::MatiecDemo, ..) => "the demo's stand-in lib/".into(),
            (Kind::MatiecBlink, Some(lib), _) => format!("MatIEC's headers from {}", lib.display()),
            (Kind::MatiecBlink, None, _) => "the demo's stand-in lib/".into(),
            (Kind::Strucpp3, _, Some(rt)) => format!("STruC++'s runtime headers from {}", rt.display()),
            (Kind::Strucpp3, _, None) => "the fixture's stand-in runtime headers".into(),
        }
    }
}

/// Writes `variant` of `kind` as a zip in `dir`; its path.
pub fn zip(kind: Kind, variant: Variant, headers: &Headers, dir: &Path) -> Result<PathBuf> {
    let tree = dir.join(format!("{}-{}-{}", kind.key(), variant.program, variant.body));
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    match kind {
        Kind::MatiecDemo => matiec_demo(&tree, variant)?,
        Kind::MatiecBlink => matiec_blink(&tree, variant, headers.matiec_lib.as_deref())?,
        Kind::Strucpp3 => strucpp3(&tree, variant, headers.strucpp_runtime.as_deref())?,
    }
    let path = tree.with_extension("zip");
    zip_dir(&tree, &path)?;
    Ok(path)
}

fn repo() -> PathBuf {
    openplc_benches::repo_root()
}

/// Copies `from` into `to` (files and folders), leaving out the root entries in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| from.display().to_string())? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &to.join(&name), &[])?;
        } else {
            fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Replaces `from` by `to` in `file` (at least once).
fn edit(file: &Path, from: &str, to: &str) -> Result<()> {
    let text = fs::read_to_string(file).with_context(|| file.display().to_string())?;
    if !text.contains(from) {
        bail!("{} has no {from:?}", file.display());
    }
    fs::write(file, text.replace(from, to))?;
    Ok(())
}

/// The variant's MD5 wherever the hand-written bundle has the fixture's.
fn set_md5(tree: &Path, variant: Variant, files: &[&str]) -> Result<()> {
    for file in files {
        edit(&tree.join(file), FIXTURE_MD5, &variant.md5())?;
    }
    Ok(())
}

fn matiec_demo(tree: &Path, v: Variant) -> Result<()> {
    copy_tree(&repo().join("scripts/demo-bundle"), tree, &["README.md", "conf"])?;
    edit(&tree.join("POUS.h"), "} MAIN;", &format!("  __DECLARE_VAR(UINT,BENCH_{})\n\n}} MAIN;", v.program))?;
    edit(
        &tree.join("POUS.c"),
        "(__GET_VAR(data__->V_DINT,) + 1000)",
        &format!("(__GET_VAR(data__->V_DINT,) + {})", 1000 + v.body),
    )?;
    set_md5(tree, v, &["program.st", "debug.c"])
}

fn matiec_blink(tree: &Path, v: Variant, matiec_lib: Option<&Path>) -> Result<()> {
    let demo = repo().join("scripts/demo-bundle");
    copy_tree(
        &demo,
        tree,
        &[
            "README.md",
            "conf",
            "lib",
            "POUS.c",
            "POUS.h",
            "debug.c",
            "glueVars.c",
            "LOCATED_VARIABLES.h",
            "VARIABLES.csv",
            "program.st",
            "plc.xml",
        ],
    )?;
    match matiec_lib {
        Some(lib) => {
            fs::create_dir_all(tree.join("lib"))?;
            for entry in fs::read_dir(lib).with_context(|| lib.display().to_string())? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().ends_with(".h") {
                    fs::copy(entry.path(), tree.join("lib").join(entry.file_name()))?;
                }
            }
        }
        None => copy_tree(&demo.join("lib"), &tree.join("lib"), &[])?,
    }
    let md5 = v.md5();
    fs::write(tree.join("LOCATED_VARIABLES.h"), "__LOCATED_VAR(BOOL,__QX0_0,Q,X,0,0)\n")?;
    fs::write(
        tree.join("POUS.h"),
        format!(
            "/* deploy bench: a blink, in the shape of MatIEC output. */\n#ifndef __POUS_H\n#define __POUS_H\n\n\
             #include \"accessor.h\"\n#include \"iec_std_lib.h\"\n\n// PROGRAM MAIN\ntypedef struct {{\n\
             \x20 __DECLARE_LOCATED(BOOL,LAMP)\n  __DECLARE_VAR(BOOL,ON)\n  TON TIMER;\n  __DECLARE_VAR(UINT,BENCH_{})\n\n\
             }} MAIN;\n\nvoid MAIN_init__(MAIN *data__, BOOL retain);\nvoid MAIN_body__(MAIN *data__);\n#endif //__POUS_H\n",
            v.program
        ),
    )?;
    fs::write(
        tree.join("POUS.c"),
        format!(
            "/* deploy bench: a blink, in the shape of MatIEC output. */\n#include \"POUS.h\"\n\n\
             void MAIN_init__(MAIN *data__, BOOL retain) {{\n\
             \x20 __INIT_LOCATED(BOOL,__QX0_0,data__->LAMP,retain)\n\
             \x20 __INIT_LOCATED_VALUE(data__->LAMP,__BOOL_LITERAL(FALSE))\n\
             \x20 __INIT_VAR(data__->ON,__BOOL_LITERAL(FALSE),retain)\n\
             \x20 TON_init__(&data__->TIMER,retain);\n}}\n\n\
             void MAIN_body__(MAIN *data__) {{\n\
             \x20 __SET_VAR(data__->TIMER.,IN,,!(__GET_VAR(data__->TIMER.Q,)));\n\
             \x20 __SET_VAR(data__->TIMER.,PT,,__time_to_timespec(1, {}, 0, 0, 0, 0));\n\
             \x20 TON_body__(&data__->TIMER);\n\
             \x20 if (__GET_VAR(data__->TIMER.Q,)) {{\n\
             \x20   __SET_VAR(data__->,ON,,!(__GET_VAR(data__->ON,)));\n  }}\n\
             \x20 __SET_LOCATED(data__->,LAMP,,__GET_VAR(data__->ON,));\n\n\
             \x20 goto __end;\n\n__end:\n  return;\n}} // MAIN_body__()\n",
            500 + v.body
        ),
    )?;
    // The demo's glue without the located variables a blink does not have.
    let glue = fs::read_to_string(demo.join("glueVars.c"))?;
    let others = ["__MW0", "__IX0_0", "__IW0", "__QW0"];
    let glue: Vec<&str> = glue.lines().filter(|l| !others.iter().any(|o| l.contains(o))).collect();
    fs::write(tree.join("glueVars.c"), glue.join("\n") + "\n")?;
    fs::write(tree.join("debug.c"), blink_debug_c(&md5))?;
    fs::write(
        tree.join("program.st"),
        format!(
            "PROGRAM main\n  VAR\n    lamp AT %QX0.0 : BOOL;\n  END_VAR\n  VAR\n    on : BOOL;\n    timer : TON;\n    \
             bench_{} : UINT;\n  END_VAR\n  timer(IN := NOT timer.Q, PT := T#{}ms);\n  IF timer.Q THEN on := NOT on; END_IF;\n  \
             lamp := on;\nEND_PROGRAM\n\nCONFIGURATION Config0\n  RESOURCE Res0 ON PLC\n    TASK task0(INTERVAL := T#10ms, \
             PRIORITY := 0);\n    PROGRAM instance0 WITH task0 : main;\n  END_RESOURCE\nEND_CONFIGURATION\n\n\
             (*DBG:char md5[] = \"{md5}\";*)\n",
            v.program,
            500 + v.body
        ),
    )?;
    Ok(())
}

/// debug.c of the blink: four variables, and only names MatIEC's headers and the demo's
/// stand-in both define.
fn blink_debug_c(md5: &str) -> String {
    format!(
        r#"/* deploy bench: the debug table of the blink, in the shape of xml2st's debug.c. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "iec_types_all.h"
#include "POUS.h"

#define SAME_ENDIANNESS 0
#define REVERSE_ENDIANNESS 1

char plc_program_md5[] = "{md5}";
uint8_t endianness;

extern MAIN RES0__INSTANCE0;

static const struct {{
    void *ptr;
    __IEC_types_enum type;
}} debug_vars[] = {{
    {{&(RES0__INSTANCE0.LAMP), BOOL_O_ENUM}},
    {{&(RES0__INSTANCE0.ON), BOOL_ENUM}},
    {{&(RES0__INSTANCE0.TIMER.Q), BOOL_ENUM}},
    {{&(RES0__INSTANCE0.TIMER.ET), TIME_ENUM}},
}};

#define VAR_COUNT 4

uint16_t get_var_count(void) {{ return VAR_COUNT; }}

size_t get_var_size(size_t idx)
{{
    if (idx >= VAR_COUNT) return 0;
    switch (debug_vars[idx].type) {{
    case BOOL_ENUM: case BOOL_O_ENUM: return sizeof(BOOL);
    case TIME_ENUM: return sizeof(TIME);
    default: return 0;
    }}
}}

void *get_var_addr(size_t idx)
{{
    void *ptr = debug_vars[idx].ptr;
    switch (debug_vars[idx].type) {{
    case BOOL_O_ENUM: {{
        __IEC_BOOL_p *v = (__IEC_BOOL_p *)ptr;
        return (v->flags & __IEC_FORCE_FLAG) ? (void *)&v->fvalue : (void *)v->value;
    }}
    case BOOL_ENUM: return &((__IEC_BOOL_t *)ptr)->value;
    case TIME_ENUM: return &((__IEC_TIME_t *)ptr)->value;
    default: return NULL;
    }}
}}

static void force_var(size_t idx, bool forced, void *val)
{{
    void *ptr = debug_vars[idx].ptr;
    size_t size = get_var_size(idx);
    switch (debug_vars[idx].type) {{
    case BOOL_O_ENUM: {{
        __IEC_BOOL_p *v = (__IEC_BOOL_p *)ptr;
        if (forced) {{ memcpy(v->value, val, size); memcpy(&v->fvalue, val, size); v->flags |= __IEC_FORCE_FLAG; }}
        else v->flags &= (IEC_BYTE)~__IEC_FORCE_FLAG;
        break;
    }}
    case BOOL_ENUM: {{
        __IEC_BOOL_t *v = (__IEC_BOOL_t *)ptr;
        if (forced) {{ memcpy(&v->value, val, size); v->flags |= __IEC_FORCE_FLAG; }}
        else v->flags &= (IEC_BYTE)~__IEC_FORCE_FLAG;
        break;
    }}
    case TIME_ENUM: {{
        __IEC_TIME_t *v = (__IEC_TIME_t *)ptr;
        if (forced) {{ memcpy(&v->value, val, size); v->flags |= __IEC_FORCE_FLAG; }}
        else v->flags &= (IEC_BYTE)~__IEC_FORCE_FLAG;
        break;
    }}
    default: break;
    }}
}}

void swap_bytes(void *ptr, size_t size)
{{
    uint8_t *b = (uint8_t *)ptr;
    for (size_t lo = 0, hi = size; hi > lo + 1; lo++) {{
        uint8_t t = b[lo];
        hi--;
        b[lo] = b[hi];
        b[hi] = t;
    }}
}}

void trace_reset(void)
{{
    for (size_t i = 0; i < VAR_COUNT; i++) force_var(i, false, NULL);
}}

void set_trace(size_t idx, bool forced, void *val)
{{
    if (idx >= VAR_COUNT) return;
    if (endianness == REVERSE_ENDIANNESS) swap_bytes(val, get_var_size(idx));
    force_var(idx, forced, val);
}}

void set_endianness(uint8_t value)
{{
    if (value == SAME_ENDIANNESS || value == REVERSE_ENDIANNESS) endianness = value;
}}
"#
    )
}

fn strucpp3(tree: &Path, v: Variant, runtime: Option<&Path>) -> Result<()> {
    let fixture = repo().join("companion/builder/tests/fixtures/strucpp-demo");
    copy_tree(&fixture, tree, &["README.md", "conf"])?;
    if let Some(runtime) = runtime {
        let include = tree.join("strucpp_runtime/include");
        fs::remove_dir_all(&include)?;
        copy_tree(runtime, &include, &[])?;
    }
    let blocks = format!(
        "// Two function blocks of the deploy bench, one POU file each.\nclass FB_SCALE {{\npublic:\n    IEC_INT IN;\n    \
         IEC_INT OUT;\n    IEC_BOOL ENO = true;\n    FB_SCALE();\n    void operator()();\n    virtual ~FB_SCALE() = default;\n}};\n\n\
         class FB_FILTER {{\npublic:\n    IEC_INT IN;\n    IEC_INT OUT;\n    IEC_UINT BENCH_{};\n    IEC_BOOL ENO = true;\n    \
         FB_FILTER();\n    void operator()();\n    virtual ~FB_FILTER() = default;\n}};\n\nclass Program_MAIN;\n",
        v.program
    );
    edit(&tree.join("generated.hpp"), "class Program_MAIN;\n", &blocks)?;
    fs::write(
        tree.join("pou_FB_SCALE.cpp"),
        format!(
            "// deploy bench: a POU in the shape of STruC++ output.\n\n#include \"generated.hpp\"\n\nnamespace strucpp {{\n\n\
             FB_SCALE::FB_SCALE() : IN(0), OUT(0) {{}}\n\nvoid FB_SCALE::operator()()\n{{\n    OUT = IN * {};\n}}\n\n\
             }}  // namespace strucpp\n",
            2 + v.body
        ),
    )?;
    fs::write(
        tree.join("pou_FB_FILTER.cpp"),
        "// deploy bench: a POU in the shape of STruC++ output.\n\n#include \"generated.hpp\"\n\nnamespace strucpp {\n\n\
         FB_FILTER::FB_FILTER() : IN(0), OUT(0), BENCH_0(0) {}\n\nvoid FB_FILTER::operator()()\n{\n    OUT = (OUT * 3 + IN) / 4;\n}\n\n\
         }  // namespace strucpp\n"
            .replace("BENCH_0", &format!("BENCH_{}", v.program)),
    )?;
    set_md5(tree, v, &["defines.h", "debug-map.json"])
}

/// Zips `tree` as the Editor does: entries at the root, folders as entries, stored.
fn zip_dir(tree: &Path, out: &Path) -> Result<()> {
    fn add(w: &mut zip::ZipWriter<fs::File>, root: &Path, dir: &Path) -> Result<()> {
        let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            let name = path.strip_prefix(root)?.to_string_lossy().into_owned();
            if path.is_dir() {
                w.add_directory(format!("{name}/"), stored)?;
                add(w, root, &path)?;
            } else {
                w.start_file(name, stored)?;
                w.write_all(&fs::read(&path)?)?;
            }
        }
        Ok(())
    }
    let mut w = zip::ZipWriter::new(fs::File::create(out)?);
    add(&mut w, tree, tree)?;
    w.finish()?;
    Ok(())
}
