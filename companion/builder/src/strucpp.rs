//! STruC++ bundles (Editor >= 4.2): every `*.cpp` at the bundle root compiled as C++17
//! against the `strucpp_runtime/include/` headers the bundle ships, with our C++ adapter,
//! which must instantiate the bundle's configuration class.

use crate::md5::{Witness, debug_map_md5, program_md5, read_text};
use crate::pch;
use crate::toolchain::{OurSource, Paths, Plan, Toolchain, Unit};
use crate::{
    ADAPTER_HEADERS, BuildError, BuildLine, BuildOptions, Generation, STRUCPP_ADAPTER_HEADERS, STRUCPP_ADAPTER_SOURCE,
    STRUCPP_MD5_SOURCE,
};
use std::borrow::Cow;
use std::fs;
use std::path::{Path, PathBuf};

/// The files a STruC++ bundle needs besides its `*.cpp` and `strucpp_runtime/include/`: the
/// declarations, and the debugger's pointer table (which names the configuration object).
pub const STRUCPP_REQUIRED_FILES: [&str; 2] = ["generated.hpp", "generated_debug.cpp"];

const ADAPTER_FILE: &str = "oplc_strucpp_adapter.cpp";
/// The program's MD5 (`PROGRAM_MD5` of the bundle's `defines.h`) in a unit of its own: it
/// changes with every upload, and the adapter, which changes with nothing but the program's
/// declarations, can then come from the build cache.
const MD5_FILE: &str = "oplc_strucpp_md5.cpp";

pub(crate) struct Strucpp {
    /// The configuration class the adapter instantiates as `g_config`.
    config_class: String,
    /// `program.st` declares two or more tasks: rt-core runs each on a thread of its own,
    /// so the program is built with `STRUCPP_THREADED`.
    threaded: bool,
}

impl Strucpp {
    /// Checks the bundle before anything is compiled: its required files and its
    /// configuration class.
    pub fn for_bundle(bundle: &Path) -> Result<Strucpp, BuildError> {
        let source = read_text(&bundle.join("program.st")).unwrap_or_default();
        let threaded = declared_tasks(&String::from_utf8_lossy(&source)) >= 2;
        Ok(Strucpp { config_class: config_class(bundle)?, threaded })
    }
}

/// How many `TASK name (` declarations an ST source has, outside comments and strings.
fn declared_tasks(source: &str) -> usize {
    let mut text = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let (mut depth, mut quote) = (0usize, None::<char>);
    while let Some(c) = chars.next() {
        match (depth, quote, c, chars.peek().copied()) {
            (_, None, '(', Some('*')) => {
                chars.next();
                depth += 1;
            }
            (1.., None, '*', Some(')')) => {
                chars.next();
                depth -= 1;
            }
            (1.., ..) => {}
            (0, None, '/', Some('/')) => while chars.next_if(|&c| c != '\n').is_some() {},
            (0, None, '\'' | '"', _) => quote = Some(c),
            (0, Some(q), _, _) if c == q => quote = None,
            (0, Some(_), _, _) => {}
            _ => text.push(c),
        }
        if depth > 0 || quote.is_some() {
            text.push(' ');
        }
    }
    let spaced = text.replace('(', " ( ");
    let tokens: Vec<&str> =
        spaced.split(|c: char| c.is_whitespace() || c == ';' || c == ':').filter(|t| !t.is_empty()).collect();
    let ident = |t: &str| t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    tokens.windows(3).filter(|w| w[0].eq_ignore_ascii_case("TASK") && ident(w[1]) && w[2] == "(").count()
}

impl Toolchain for Strucpp {
    fn generation(&self) -> Generation {
        Generation::Strucpp
    }

    fn md5_witnesses(&self, bundle: &Path) -> (Witness, Witness) {
        (
            Witness {
                file: "defines.h",
                md5: program_md5(bundle),
                when_missing: Some(
                    "defines.h has no #define PROGRAM_MD5 \"<md5>\"; the Editor's debugger will not attach",
                ),
            },
            Witness { file: "debug-map.json", md5: debug_map_md5(bundle), when_missing: None },
        )
    }

    fn our_sources(&self, _bundle: &Path, _on_line: &mut dyn FnMut(BuildLine)) -> Vec<OurSource> {
        let mut sources = vec![
            OurSource { name: ADAPTER_FILE, text: Cow::Borrowed(STRUCPP_ADAPTER_SOURCE) },
            OurSource { name: MD5_FILE, text: Cow::Borrowed(STRUCPP_MD5_SOURCE) },
        ];
        sources.extend(
            ADAPTER_HEADERS
                .iter()
                .chain(STRUCPP_ADAPTER_HEADERS.iter())
                .map(|(name, text)| OurSource { name, text: Cow::Borrowed(text) }),
        );
        sources
    }

    /// One unit per `*.cpp` of the bundle root (STruC++ writes one per POU plus
    /// `configuration.cpp` and `generated_debug.cpp`, older versions a single `generated.cpp`;
    /// `c_blocks_code.cpp` too), in name order, then the adapter and the program's MD5.
    ///
    /// C++17, position-independent, and `-fno-gnu-unique`: the generated code's C++17 inline
    /// variables (the program clock, the debug type table, ...) would otherwise be GNU unique
    /// symbols, which glibc never unloads and binds a later program to, so a reloaded program
    /// would inherit the old one's globals. `STRUCPP_THREADED` is defined only when `program.st`
    /// declares two or more tasks: rt-core then runs each task on a thread of its own, which
    /// needs the per-thread program clock, the per-global mutexes and each program's located
    /// range. A one-task program runs on rt-core's scan thread, where a plain global clock
    /// spares the thread-local that a dlopened library allocates on a thread's first access.
    ///
    /// The units that start with `#include "generated.hpp"` (every generated one, and the
    /// adapter) may use the precompiled runtime headers.
    fn plan(&self, bundle: &Path, at: &Paths, _opts: &BuildOptions) -> Result<Plan, BuildError> {
        let unreadable = |source| BuildError::BundleUnreadable { path: bundle.to_path_buf(), source };
        let mut names: Vec<String> = Vec::new();
        for entry in fs::read_dir(bundle).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".cpp") && entry.file_type().map_err(unreadable)?.is_file() {
                names.push(name);
            }
        }
        names.sort();

        let includes = vec![at.src.clone(), at.src.join("strucpp_runtime").join("include"), at.out.clone()];
        let mut flags: Vec<String> = ["-std=c++17", "-w", "-O2", "-fPIC", "-fno-gnu-unique"].map(String::from).to_vec();
        if self.threaded {
            // Every unit alike (and the precompiled headers): the define changes class layouts.
            flags.push("-DSTRUCPP_THREADED".into());
        }
        let pch = read_text(&bundle.join("generated.hpp")).and_then(|text| pch::strucpp(&text, &flags, &includes));
        let starts_with_generated = |text: &[u8]| pch.is_some() && pch::starts_with_include(text, "generated.hpp");
        let unit = |name: String, source: PathBuf, defines: Vec<String>, precompiled: bool| Unit {
            name,
            source,
            cplusplus: true,
            flags: flags.clone(),
            defines,
            includes: includes.clone(),
            precompiled,
        };
        let mut units: Vec<Unit> = names
            .into_iter()
            .map(|name| {
                let precompiled = read_text(&bundle.join(&name)).is_some_and(|t| starts_with_generated(&t));
                unit(name.clone(), at.src.join(&name), Vec::new(), precompiled)
            })
            .collect();
        let define = format!("-DOPLC_STRUCPP_CONFIG={}", self.config_class);
        let adapter_precompiled = starts_with_generated(STRUCPP_ADAPTER_SOURCE.as_bytes());
        units.push(unit("the runtime adapter".into(), at.out.join(ADAPTER_FILE), vec![define], adapter_precompiled));
        units.push(unit("the program's MD5".into(), at.out.join(MD5_FILE), Vec::new(), false));
        Ok(Plan { units, pch })
    }
}

/// The configuration class a STruC++ bundle's adapter must instantiate as `g_config`.
///
/// The debugger table (`generated_debug.cpp`) declares the object it reads
/// (`extern ::strucpp::Configuration_<NAME> g_config;`): that is the class, whatever the
/// header holds. A bundle without that declaration falls back to the one configuration class
/// of `generated.hpp`.
fn config_class(dir: &Path) -> Result<String, BuildError> {
    let missing: Vec<String> =
        STRUCPP_REQUIRED_FILES.iter().filter(|name| !dir.join(name).is_file()).map(|name| name.to_string()).collect();
    if !missing.is_empty() {
        return Err(BuildError::IncompleteBundle { generation: Generation::Strucpp, missing });
    }
    let unbuildable = |detail: String| BuildError::Unbuildable { generation: Generation::Strucpp, detail };
    let debug_table = read_text(&dir.join("generated_debug.cpp"))
        .ok_or_else(|| unbuildable("generated_debug.cpp cannot be read".into()))?;
    if let Some(class) = config_class_in_debug_table(&String::from_utf8_lossy(&debug_table)) {
        return Ok(class);
    }
    let header =
        read_text(&dir.join("generated.hpp")).ok_or_else(|| unbuildable("generated.hpp cannot be read".into()))?;
    let classes = config_classes_in_header(&String::from_utf8_lossy(&header));
    match classes.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(unbuildable("generated.hpp declares no CONFIGURATION (no Configuration_<NAME> class)".into())),
        many => Err(unbuildable(format!(
            "generated.hpp declares {} configurations ({}) and generated_debug.cpp does not say which one the \
             debugger reads",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// `Configuration_<NAME>` from `extern ::strucpp::Configuration_<NAME> g_config;`.
fn config_class_in_debug_table(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("extern")?.trim_start();
        let rest = rest.strip_prefix("::").unwrap_or(rest);
        let rest = rest.strip_prefix("strucpp::")?;
        let (class, object) = rest.split_once(char::is_whitespace)?;
        (object.trim() == "g_config;" && is_config_class(class)).then(|| class.to_string())
    })
}

/// Every `class Configuration_<NAME> : public ConfigurationInstance` of the header.
fn config_classes_in_header(text: &str) -> Vec<String> {
    let mut classes = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("class ") else { continue };
        let Some((class, base)) = rest.split_once(':') else { continue };
        let class = class.trim();
        if is_config_class(class) && base.contains("ConfigurationInstance") && !classes.iter().any(|c| c == class) {
            classes.push(class.to_string());
        }
    }
    classes
}

/// A C++ identifier of the form `Configuration_<NAME>` (it becomes a -D value).
fn is_config_class(name: &str) -> bool {
    name.strip_prefix("Configuration_")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tasks_are_counted_outside_comments_and_strings() {
        let st = "CONFIGURATION C\n RESOURCE R ON PLC\n  TASK FAST(INTERVAL := T#1ms, PRIORITY := 0);\n  \
                  task slow (INTERVAL := T#50ms, PRIORITY := 1);\n  (* TASK HIDDEN(INTERVAL := T#1s); *)\n  \
                  // TASK ALSO(INTERVAL := T#1s);\n  x := 'TASK S(';\n END_RESOURCE\nEND_CONFIGURATION\n";
        assert_eq!(super::declared_tasks(st), 2);
        assert_eq!(super::declared_tasks("TASK ONLY(INTERVAL := T#10ms);"), 1);
    }

    use super::*;

    #[test]
    fn finds_the_strucpp_configuration_class() {
        let table = "#include \"generated.hpp\"\n// comment: strucpp::Configuration_X g_config;\n\
                     extern ::strucpp::Configuration_CONFIG0 g_config;\n";
        assert_eq!(config_class_in_debug_table(table).as_deref(), Some("Configuration_CONFIG0"));
        assert_eq!(
            config_class_in_debug_table("extern strucpp::Configuration_PLANT_2 g_config;").as_deref(),
            Some("Configuration_PLANT_2")
        );
        for bad in [
            "extern ::strucpp::Configuration_CONFIG0 other;",
            "extern ::strucpp::Configuration_ g_config;",
            "extern ::strucpp::Configuration_A-B g_config;",
            "extern ::other::Configuration_CONFIG0 g_config;",
            "::strucpp::Configuration_CONFIG0 g_config;",
        ] {
            assert_eq!(config_class_in_debug_table(bad), None, "{bad}");
        }
        let header = "class Program_MAIN : public ProgramBase {\nclass Configuration_CONFIG0;\n\
                      class Configuration_CONFIG0 : public ConfigurationInstance {\n\
                      class Configuration_B : public ConfigurationInstance {\n";
        assert_eq!(config_classes_in_header(header), ["Configuration_CONFIG0", "Configuration_B"]);
    }
}
