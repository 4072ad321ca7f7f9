//! MatIEC bundles (Editor <= 4.1.4): C compiled with our C adapter, and the adapter's table
//! of RETAIN variables generated from the bundle's `VARIABLES.csv` (`debug.c` keeps the
//! variables' flags to itself).

use crate::md5::{Witness, debug_c_md5, program_md5, read_text};
use crate::pch;
use crate::toolchain::{OurSource, Paths, Plan, Toolchain, Unit};
use crate::{ADAPTER_HEADERS, BuildError, BuildLine, BuildOptions, Generation, Level, MATIEC_ADAPTER_SOURCE};
use std::borrow::Cow;
use std::path::Path;

const ADAPTER_FILE: &str = "oplc_matiec_adapter.c";
/// The MatIEC adapter's table of RETAIN variables, generated from `VARIABLES.csv`.
const RETAIN_TABLE_FILE: &str = "oplc_retain_table.c";

pub(crate) struct Matiec;

impl Toolchain for Matiec {
    fn generation(&self) -> Generation {
        Generation::Matiec
    }

    fn md5_witnesses(&self, bundle: &Path) -> (Witness, Witness) {
        (
            Witness {
                file: "program.st",
                md5: program_md5(bundle),
                when_missing: Some(
                    "program.st has no (*DBG:char md5[] = ...*) line; the Editor's debugger will not attach",
                ),
            },
            Witness {
                file: "debug.c",
                md5: debug_c_md5(bundle),
                when_missing: Some("debug.c defines no plc_program_md5"),
            },
        )
    }

    fn our_sources(&self, bundle: &Path, on_line: &mut dyn FnMut(BuildLine)) -> Vec<OurSource> {
        let mut sources = vec![OurSource { name: ADAPTER_FILE, text: Cow::Borrowed(MATIEC_ADAPTER_SOURCE) }];
        sources.extend(ADAPTER_HEADERS.iter().map(|(name, text)| OurSource { name, text: Cow::Borrowed(text) }));
        let retain = matiec_retain(bundle, on_line);
        sources.push(OurSource { name: RETAIN_TABLE_FILE, text: Cow::Owned(retain_table_source(&retain)) });
        sources
    }

    /// `Config0.c`, `Res0.c` (which includes `POUS.c`), `debug.c`, `glueVars.c`, the adapter,
    /// the RETAIN table and `c_blocks_code.cpp` when there is one. The C units whose first
    /// line includes `iec_std_lib.h` may use the precompiled library headers.
    fn plan(&self, bundle: &Path, at: &Paths, _opts: &BuildOptions) -> Result<Plan, BuildError> {
        let includes = vec![at.src.clone(), at.src.join("lib"), at.src.join("lib").join("C"), at.out.clone()];
        let flags: Vec<String> = ["-w", "-O2", "-fPIC", "-fno-strict-aliasing"].map(String::from).to_vec();
        let pch = pch::matiec(bundle, at, &flags, &includes);
        let mut sources: Vec<(&str, &str, bool, &[&str])> = vec![
            ("Config0.c", "Config0.c", false, &[]),
            ("Res0.c", "Res0.c", false, &[]),
            ("debug.c", "debug.c", false, &[]),
            ("glueVars.c", "glueVars.c", false, &["-DOPENPLC_V4"]),
            (ADAPTER_FILE, "the runtime adapter", false, &[]),
            (RETAIN_TABLE_FILE, "the RETAIN table", false, &[]),
        ];
        if bundle.join("c_blocks_code.cpp").is_file() {
            sources.push(("c_blocks_code.cpp", "c_blocks_code.cpp", true, &[]));
        }

        let units = sources
            .into_iter()
            .map(|(file, name, cplusplus, defines)| {
                let ours = file == ADAPTER_FILE || file == RETAIN_TABLE_FILE;
                let source = if ours { at.out.join(file) } else { at.src.join(file) };
                let precompiled = pch.is_some()
                    && !cplusplus
                    && !ours
                    && read_text(&bundle.join(file))
                        .is_some_and(|text| pch::starts_with_include(&text, "iec_std_lib.h"));
                Unit {
                    name: name.to_string(),
                    source,
                    cplusplus,
                    flags: flags.clone(),
                    defines: defines.iter().map(|d| d.to_string()).collect(),
                    includes: includes.clone(),
                    precompiled,
                }
            })
            .collect();
        Ok(Plan { units, pch })
    }
}

/// One debug variable of a MatIEC `VARIABLES.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatiecVariable {
    /// Its debug index (the Editor's `debug_vars[]` position).
    pub index: u32,
    /// The IEC path (`CONFIG0.RES0.INSTANCE0.COUNTER`).
    pub name: String,
    /// The IEC type name.
    pub iec_type: String,
    /// Declared `RETAIN`.
    pub retain: bool,
}

/// Why a `VARIABLES.csv` cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("a row with {fields} fields: {row:?}")]
    ShortRow { fields: usize, row: String },
    #[error("too many variables")]
    TooMany,
}

/// The debug variables of a MatIEC `VARIABLES.csv`, in debug-index order.
///
/// Rows `num;class;IEC path;C path;type;derived;retain;` of the `// Variables` section: rows
/// of program and function-block instances (class `FB`) have no debug index, every other row
/// takes the next one, in order (as the Editor numbers `debug_vars[]`); a row whose `retain`
/// field is `1` is RETAIN (MatIEC writes it for `VAR RETAIN`). A file from a MatIEC without the
/// `retain` column has no RETAIN variable.
pub fn matiec_variables(csv: &str) -> Result<Vec<MatiecVariable>, CsvError> {
    let mut in_variables = false;
    let mut vars = Vec::new();
    for line in csv.lines().map(str::trim) {
        if let Some(section) = line.strip_prefix("//") {
            in_variables = section.trim().eq_ignore_ascii_case("Variables");
            continue;
        }
        if !in_variables || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(';').collect();
        if fields.len() < 5 {
            return Err(CsvError::ShortRow { fields: fields.len(), row: line.to_string() });
        }
        if fields[1].trim().eq_ignore_ascii_case("FB") {
            continue;
        }
        let index = u32::try_from(vars.len()).map_err(|_| CsvError::TooMany)?;
        vars.push(MatiecVariable {
            index,
            name: fields[2].trim().to_string(),
            iec_type: fields[4].trim().to_string(),
            retain: fields.get(6).is_some_and(|f| f.trim() == "1"),
        });
    }
    Ok(vars)
}

/// The debug indices of the RETAIN variables of a MatIEC `VARIABLES.csv`, in order, and the
/// number of debug variables it lists.
pub fn matiec_retain_indices(csv: &str) -> Result<(Vec<u32>, u32), CsvError> {
    let vars = matiec_variables(csv)?;
    Ok((vars.iter().filter(|v| v.retain).map(|v| v.index).collect(), vars.len() as u32))
}

/// `#define VAR_COUNT <n>` of a debug.c.
fn debug_c_var_count(dir: &Path) -> Option<u32> {
    let text = read_text(&dir.join("debug.c"))?;
    String::from_utf8_lossy(&text).lines().find_map(|line| {
        let rest = line.trim().strip_prefix("#define")?.trim_start().strip_prefix("VAR_COUNT")?;
        rest.trim().parse().ok()
    })
}

/// The RETAIN variables of a MatIEC bundle (debug indices): none without `VARIABLES.csv`
/// (bundles stored before RETAIN was supported build as they did), and none, with a warning,
/// when the file cannot be read or numbers its variables differently from `debug.c`.
fn matiec_retain(dir: &Path, on_line: &mut dyn FnMut(BuildLine)) -> Vec<u32> {
    let path = dir.join("VARIABLES.csv");
    if !path.is_file() {
        return Vec::new();
    }
    let mut warn = |text: String| {
        on_line(BuildLine { level: Level::Warning, text: format!("{text}; RETAIN variables will not be kept") })
    };
    let Some(text) = read_text(&path) else {
        warn("VARIABLES.csv cannot be read".into());
        return Vec::new();
    };
    let (retain, indexed) = match matiec_retain_indices(&String::from_utf8_lossy(&text)) {
        Ok(found) => found,
        Err(err) => {
            warn(format!("VARIABLES.csv: {err}"));
            return Vec::new();
        }
    };
    if retain.is_empty() {
        return retain;
    }
    if let Some(count) = debug_c_var_count(dir)
        && count != indexed
    {
        warn(format!("VARIABLES.csv lists {indexed} debug variables but debug.c has {count}"));
        return Vec::new();
    }
    on_line(BuildLine {
        level: Level::Info,
        text: format!(
            "{} RETAIN variable{} (kept across restarts)",
            retain.len(),
            if retain.len() == 1 { "" } else { "s" }
        ),
    });
    retain
}

/// The C source of the MatIEC adapter's RETAIN table: `oplc_retain_indices[]` (the debug
/// indices) and `oplc_retain_count`.
fn retain_table_source(indices: &[u32]) -> String {
    let list = if indices.is_empty() {
        "0 /* an array may not be empty */".to_string()
    } else {
        indices.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
    };
    format!(
        "/* Generated by openplc-builder from the bundle's VARIABLES.csv: the debug indices of\n \
         * the program's RETAIN variables. */\n#include <stdint.h>\n\n\
         const uint32_t oplc_retain_indices[] = {{{list}}};\n\
         const uint32_t oplc_retain_count = {};\n",
        indices.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_retain_variables_of_variables_csv() {
        let csv = "// Programs\n0;CONFIG0.RES0.INSTANCE0;MAIN;\n\n// Variables\n\
                   0;FB;CONFIG0.RES0.INSTANCE0;CONFIG0.RES0.INSTANCE0;MAIN;;0;\n\
                   1;VAR;CONFIG0.RES0.INSTANCE0.A;CONFIG0.RES0.INSTANCE0.A;INT;INT;1;\n\
                   2;FB;CONFIG0.RES0.INSTANCE0.T;CONFIG0.RES0.INSTANCE0.T;TON;;1;\n\
                   3;VAR;CONFIG0.RES0.INSTANCE0.T.IN;CONFIG0.RES0.INSTANCE0.T.IN;BOOL;BOOL;0;\n\
                   4;MEM;CONFIG0.RES0.INSTANCE0.B;CONFIG0.RES0.INSTANCE0.B;UINT;UINT;1;\n\n\
                   // Ticktime\n10000000\n";
        assert_eq!(matiec_retain_indices(csv), Ok((vec![0, 2], 3)));
        // A MatIEC without the retain column: no RETAIN variable.
        let old = "// Variables\n0;FB;C.R.I;C.R.I;MAIN;;\n1;VAR;C.R.I.A;C.R.I.A;INT;INT;\n";
        assert_eq!(matiec_retain_indices(old), Ok((vec![], 1)));
        assert_eq!(
            matiec_retain_indices("// Variables\n1;VAR;x\n"),
            Err(CsvError::ShortRow { fields: 3, row: "1;VAR;x".into() })
        );

        assert_eq!(
            retain_table_source(&[12, 32]),
            "/* Generated by openplc-builder from the bundle's VARIABLES.csv: the debug indices of\n \
             * the program's RETAIN variables. */\n#include <stdint.h>\n\n\
             const uint32_t oplc_retain_indices[] = {12, 32};\nconst uint32_t oplc_retain_count = 2;\n"
        );
        assert!(retain_table_source(&[]).contains("oplc_retain_indices[] = {0 /* an array may not be empty */};"));
        assert!(retain_table_source(&[]).contains("oplc_retain_count = 0;"));
    }
}
