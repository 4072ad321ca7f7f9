//! Which Editor generation produced a bundle, told by the files it holds.

use crate::BuildError;
use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// The files every MatIEC bundle has; `POUS.c` is not among them because `Res0.c` includes it.
pub const MATIEC_REQUIRED_FILES: [&str; 4] = ["Config0.c", "Res0.c", "debug.c", "glueVars.c"];

/// Which Editor generation produced a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generation {
    /// MatIEC C: `Config0.c`, `Res0.c` (+ `POUS.c`), `debug.c`, `glueVars.c` (Editor <= 4.1.4).
    Matiec,
    /// STruC++ C++: `generated.cpp/.hpp`, `defines.h`, `strucpp_runtime/include/` (Editor >= 4.2).
    Strucpp,
}

impl Generation {
    /// The Editor versions that produce this generation.
    pub const fn editor_versions(self) -> &'static str {
        match self {
            Generation::Matiec => "OpenPLC Editor 4.1.4 and earlier",
            Generation::Strucpp => "OpenPLC Editor 4.2 and later",
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generation::Matiec => "MatIEC",
            Generation::Strucpp => "STruC++",
        })
    }
}

/// Tells which Editor generation produced the bundle in `dir`.
///
/// MatIEC: `Config0.c`, `Res0.c`, `debug.c` and `glueVars.c`. STruC++: `generated.hpp` or
/// `defines.h`, at least one `*.cpp` of its own and `strucpp_runtime/include/`. Anything
/// else is an error naming what is missing.
pub fn detect(dir: &Path) -> Result<Generation, BuildError> {
    let meta = fs::metadata(dir).map_err(|source| BuildError::BundleUnreadable { path: dir.into(), source })?;
    if !meta.is_dir() {
        return Err(BuildError::NotABundle { detail: format!("{} is not a directory", dir.display()) });
    }
    let has = |name: &str| dir.join(name).is_file();

    let matiec_missing: Vec<String> =
        MATIEC_REQUIRED_FILES.iter().filter(|name| !has(name)).map(|name| name.to_string()).collect();
    if matiec_missing.is_empty() {
        return Ok(Generation::Matiec);
    }

    let header = has("generated.hpp") || has("defines.h");
    let sources = has_own_cpp(dir).map_err(|source| BuildError::BundleUnreadable { path: dir.into(), source })?;
    let runtime = dir.join("strucpp_runtime").join("include").is_dir();
    if header && sources && runtime {
        return Ok(Generation::Strucpp);
    }

    if matiec_missing.len() < MATIEC_REQUIRED_FILES.len() {
        return Err(BuildError::IncompleteBundle { generation: Generation::Matiec, missing: matiec_missing });
    }
    if header || runtime {
        let mut missing = Vec::new();
        if !header {
            missing.push("generated.hpp or defines.h".to_string());
        }
        if !sources {
            missing.push("a generated *.cpp".to_string());
        }
        if !runtime {
            missing.push("strucpp_runtime/include/".to_string());
        }
        return Err(BuildError::IncompleteBundle { generation: Generation::Strucpp, missing });
    }
    Err(BuildError::NotABundle {
        detail: format!(
            "found neither {} (MatIEC, {}) nor generated.hpp/defines.h, *.cpp and strucpp_runtime/include/ \
             (STruC++, {})",
            MATIEC_REQUIRED_FILES.join(", "),
            Generation::Matiec.editor_versions(),
            Generation::Strucpp.editor_versions()
        ),
    })
}

/// A `*.cpp` other than the `c_blocks_code.cpp` every MatIEC bundle has too.
fn has_own_cpp(dir: &Path) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".cpp") && name != "c_blocks_code.cpp" && entry.path().is_file() {
            return Ok(true);
        }
    }
    Ok(false)
}
