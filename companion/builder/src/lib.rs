//! Turns an extracted OpenPLC Editor program bundle into a program library (`.so`) that
//! exports the runtime's one program ABI (`shared-abi`, `openplc_abi.h`).
//!
//! The Editor uploads C or C++ sources, not a binary, and two generations of them exist:
//! MatIEC C from Editor 4.1.4 and earlier, STruC++ C++ from Editor 4.2 on. [`detect`] tells
//! them apart; [`build`] compiles the bundle together with our adapter for its generation:
//! `adapters/matiec_adapter.c` (C) for MatIEC, `adapters/strucpp_adapter.cpp` (C++17) for
//! STruC++, against the runtime headers the bundle itself ships. For MatIEC the builder also
//! generates the adapter's table of RETAIN variables (`oplc_retain_table.c`) from the bundle's
//! `VARIABLES.csv`, as `debug.c` keeps the variables' flags to itself.
//!
//! The compiler runs with a scrubbed environment (PATH and LANG only), resource limits (CPU
//! time, 2 GiB of address space, file size), in its own process group that is killed when
//! the build's timeout expires; every line it prints reaches the caller as it arrives.

mod runner;

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The C adapter compiled into every MatIEC program library.
pub const MATIEC_ADAPTER_SOURCE: &str = include_str!("../adapters/matiec_adapter.c");
/// The C++ adapter compiled into every STruC++ program library.
pub const STRUCPP_ADAPTER_SOURCE: &str = include_str!("../adapters/strucpp_adapter.cpp");
/// The program ABI header the adapter includes.
pub const PROGRAM_ABI_HEADER: &str = include_str!("../../../shared-abi/include/openplc_abi.h");
/// Where located variables live in rt-core's image: shared by both adapters.
pub const IMAGE_SLOT_HEADER: &str = include_str!("../adapters/oplc_image_slot.h");
/// The headers the adapters include, by file name, written beside them for every build.
pub const ADAPTER_HEADERS: [(&str, &str); 2] =
    [(ABI_HEADER_FILE, PROGRAM_ABI_HEADER), ("oplc_image_slot.h", IMAGE_SLOT_HEADER)];

/// The files every MatIEC bundle has; `POUS.c` is not among them because `Res0.c` includes it.
pub const MATIEC_REQUIRED_FILES: [&str; 4] = ["Config0.c", "Res0.c", "debug.c", "glueVars.c"];

/// The files a STruC++ bundle needs besides its `*.cpp` and `strucpp_runtime/include/`: the
/// declarations, and the debugger's pointer table (which names the configuration object).
pub const STRUCPP_REQUIRED_FILES: [&str; 2] = ["generated.hpp", "generated_debug.cpp"];

const ADAPTER_FILE: &str = "oplc_matiec_adapter.c";
/// The MatIEC adapter's table of RETAIN variables, generated from `VARIABLES.csv`.
const RETAIN_TABLE_FILE: &str = "oplc_retain_table.c";
const STRUCPP_ADAPTER_FILE: &str = "oplc_strucpp_adapter.cpp";
const ABI_HEADER_FILE: &str = "openplc_abi.h";
/// Largest text file the builder reads itself (program.st, debug.c, defines.h, VARIABLES.csv,
/// and a STruC++ bundle's generated.hpp, generated_debug.cpp, debug-map.json).
const MAX_TEXT_BYTES: u64 = 64 << 20;

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

/// How a line of build output should be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        })
    }
}

/// One line of build output: our progress lines and the compiler's own output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildLine {
    pub level: Level,
    pub text: String,
}

impl fmt::Display for BuildLine {
    /// `[LEVEL] text`, the form the Editor's compilation console understands.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.level, self.text)
    }
}

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The C compiler.
    pub cc: String,
    /// The C++ compiler, also used to link.
    pub cxx: String,
    /// Compilers run at once.
    pub jobs: usize,
    /// Limit for the whole build; the compilers are killed when it expires.
    pub timeout: Duration,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { cc: "cc".into(), cxx: "c++".into(), jobs: 1, timeout: Duration::from_secs(300) }
    }
}

/// A successful build.
#[derive(Clone, Debug)]
pub struct BuildReport {
    pub generation: Generation,
    /// The program library, as requested.
    pub library: PathBuf,
    /// The program's MD5 (lower case), as the Editor reads it from `program.st`.
    pub md5: Option<String>,
    pub duration: Duration,
}

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("cannot read the bundle directory {}: {source}", path.display())]
    BundleUnreadable { path: PathBuf, source: io::Error },
    #[error("not an OpenPLC Editor program bundle: {detail}")]
    NotABundle { detail: String },
    #[error(
        "incomplete {generation} bundle ({}): {} missing",
        generation.editor_versions(),
        missing_list(missing)
    )]
    IncompleteBundle { generation: Generation, missing: Vec<String> },
    #[error("cannot build this {generation} bundle ({}): {detail}", generation.editor_versions())]
    Unbuildable { generation: Generation, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("cannot run the compiler `{program}`: {source}")]
    CompilerUnavailable { program: String, source: io::Error },
    #[error("{}", compiler_failure(step, *exit_code, *signal, first_error.as_deref()))]
    CompilerFailed { step: String, exit_code: Option<i32>, signal: Option<i32>, first_error: Option<String> },
    #[error("the build took longer than {} s and was stopped while {step}", limit.as_secs_f64())]
    TimedOut { step: String, limit: Duration },
}

impl BuildError {
    /// The compiler's exit code, where a compiler failed with one.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            BuildError::CompilerFailed { exit_code, .. } => *exit_code,
            _ => None,
        }
    }
}

fn missing_list(missing: &[String]) -> String {
    match missing {
        [one] => format!("{one} is"),
        many => format!("{} are", many.join(", ")),
    }
}

fn compiler_failure(step: &str, exit_code: Option<i32>, signal: Option<i32>, first_error: Option<&str>) -> String {
    let how = match (exit_code, signal) {
        (Some(code), _) => format!("failed with exit code {code}"),
        (None, Some(9)) => "was killed (signal 9; the compiler may have exceeded its CPU or memory limit)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "failed".into(),
    };
    match first_error {
        Some(line) => format!("{step} {how}: {line}"),
        None => format!("{step} {how}"),
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

/// The program's MD5 as the Editor sees it: from `program.st`'s
/// `(*DBG:char md5[] = "<32 hex>";*)` line, else from a STruC++ `defines.h`
/// (`#define PROGRAM_MD5 "<32 hex>"`). Lower case.
pub fn program_md5(dir: &Path) -> Option<String> {
    if let Some(text) = read_text(&dir.join("program.st"))
        && let Some(md5) = find_md5(&text, b"(*DBG:char md5[] = \"", &[b"\";*)", b"\"*)"])
    {
        return Some(md5);
    }
    let defines = read_text(&dir.join("defines.h"))?;
    find_md5(&defines, b"PROGRAM_MD5 \"", &[b"\""])
}

/// The MD5 `debug.c` compiles into the program (`char plc_program_md5[] = "..."`).
fn debug_c_md5(dir: &Path) -> Option<String> {
    let text = read_text(&dir.join("debug.c"))?;
    find_md5(&text, b"plc_program_md5[] = \"", &[b"\""])
}

/// The first 32 hex digits that follow `prefix` and are followed by one of `suffixes`.
fn find_md5(text: &[u8], prefix: &[u8], suffixes: &[&[u8]]) -> Option<String> {
    let mut from = 0;
    while let Some(at) = find(&text[from..], prefix) {
        let start = from + at + prefix.len();
        if let Some(hex) = text.get(start..start + 32)
            && hex.iter().all(u8::is_ascii_hexdigit)
            && suffixes.iter().any(|s| text[start + 32..].starts_with(s))
        {
            return Some(String::from_utf8_lossy(hex).to_ascii_lowercase());
        }
        from = start;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_text(path: &Path) -> Option<Vec<u8>> {
    let mut text = Vec::new();
    fs::File::open(path).ok()?.take(MAX_TEXT_BYTES).read_to_end(&mut text).ok()?;
    Some(text)
}

/// Builds the bundle in `dir` into the program library `out`, handing every line of output
/// to `on_line` as it arrives. `out` is replaced atomically, and only on success.
pub fn build(
    dir: &Path,
    out: &Path,
    opts: &BuildOptions,
    on_line: &mut dyn FnMut(BuildLine),
) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    let generation = detect(dir)?;
    // The compilers run in a scratch directory, so every path they get is absolute.
    let dir = fs::canonicalize(dir).map_err(|source| BuildError::BundleUnreadable { path: dir.into(), source })?;
    let out = absolute(out)?;
    let out_dir = match (out.parent(), out.file_name()) {
        (Some(parent), Some(_)) => parent.to_path_buf(),
        _ => {
            let source = io::Error::new(io::ErrorKind::InvalidInput, "not a file name");
            return Err(BuildError::Io { what: format!("cannot write the library to {}", out.display()), source });
        }
    };
    if !out_dir.is_dir() {
        let source = io::Error::new(io::ErrorKind::NotFound, "no such directory");
        return Err(BuildError::Io { what: format!("cannot write the library into {}", out_dir.display()), source });
    }

    // A STruC++ bundle is checked before anything is compiled.
    let config_class = match generation {
        Generation::Matiec => None,
        Generation::Strucpp => Some(strucpp_config_class(&dir)?),
    };

    on_line(BuildLine {
        level: Level::Info,
        text: format!("Building a {generation} program ({})", generation.editor_versions()),
    });
    let md5 = program_md5(&dir);
    match generation {
        Generation::Matiec => check_md5(md5.as_deref(), debug_c_md5(&dir).as_deref(), on_line),
        Generation::Strucpp => check_strucpp_md5(md5.as_deref(), debug_map_md5(&dir).as_deref(), on_line),
    }

    let scratch = tempfile::Builder::new()
        .prefix("openplc-build-")
        .tempdir()
        .map_err(|source| BuildError::Io { what: "cannot create a scratch directory".into(), source })?;
    let adapter = match generation {
        Generation::Matiec => (ADAPTER_FILE, MATIEC_ADAPTER_SOURCE.to_string()),
        Generation::Strucpp => (STRUCPP_ADAPTER_FILE, STRUCPP_ADAPTER_SOURCE.to_string()),
    };
    let mut generated = vec![adapter];
    generated.extend(ADAPTER_HEADERS.iter().map(|(name, text)| (*name, text.to_string())));
    if generation == Generation::Matiec {
        let retain = matiec_retain(&dir, on_line);
        generated.push((RETAIN_TABLE_FILE, retain_table_source(&retain)));
    }
    for (name, text) in generated {
        fs::write(scratch.path().join(name), text).map_err(|source| BuildError::Io {
            what: format!("cannot write {name} to the scratch directory"),
            source,
        })?;
    }

    let ctx = runner::Context {
        cwd: scratch.path(),
        // A timeout too long for the clock is no timeout (about 136 years).
        deadline: started
            .checked_add(opts.timeout)
            .or_else(|| started.checked_add(Duration::from_secs(u32::MAX.into())))
            .unwrap_or(started),
        timeout: opts.timeout,
        limits: runner::Limits {
            cpu_seconds: opts.timeout.as_secs().saturating_add(1),
            address_space: 2 << 30,
            file_size: 1 << 30,
        },
    };
    let (compile, objects) = match config_class {
        None => compile_jobs(&dir, scratch.path(), opts),
        Some(class) => strucpp_compile_jobs(&dir, scratch.path(), &class, opts)
            .map_err(|source| BuildError::BundleUnreadable { path: dir.clone(), source })?,
    };
    runner::run(&compile, opts.jobs, &ctx, on_line)?;

    let partial = partial_path(&out_dir, &out);
    let link = link_job(&objects, &partial, &out, opts);
    let linked = runner::run(std::slice::from_ref(&link), 1, &ctx, on_line);
    let placed = linked.and_then(|()| {
        fs::rename(&partial, &out)
            .map_err(|source| BuildError::Io { what: format!("cannot move the library to {}", out.display()), source })
    });
    if let Err(err) = placed {
        let _ = fs::remove_file(&partial);
        return Err(err);
    }

    let duration = started.elapsed();
    on_line(BuildLine {
        level: Level::Info,
        text: format!("Built {} in {:.1} s", out.display(), duration.as_secs_f64()),
    });
    Ok(BuildReport { generation, library: out, md5, duration })
}

fn absolute(path: &Path) -> Result<PathBuf, BuildError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir()
        .map_err(|source| BuildError::Io { what: "cannot resolve the output path".into(), source })?;
    Ok(cwd.join(path))
}

/// Warns when the Editor's view of the MD5 (program.st) and the program's own (debug.c)
/// differ: the Editor's debugger would then refuse to attach.
fn check_md5(program_st: Option<&str>, debug_c: Option<&str>, on_line: &mut dyn FnMut(BuildLine)) {
    let warning = match (program_st, debug_c) {
        (Some(a), Some(b)) if a != b => {
            format!(
                "program.st says the program MD5 is {a} but debug.c says {b}; the Editor's debugger will not attach"
            )
        }
        (None, _) => "program.st has no (*DBG:char md5[] = ...*) line; the Editor's debugger will not attach".into(),
        (_, None) => "debug.c defines no plc_program_md5".into(),
        _ => return,
    };
    on_line(BuildLine { level: Level::Warning, text: warning });
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

/// The debug variables of a MatIEC `VARIABLES.csv`, in debug-index order.
///
/// Rows `num;class;IEC path;C path;type;derived;retain;` of the `// Variables` section: rows
/// of program and function-block instances (class `FB`) have no debug index, every other row
/// takes the next one, in order (as the Editor numbers `debug_vars[]`); a row whose `retain`
/// field is `1` is RETAIN (MatIEC writes it for `VAR RETAIN`). A file from a MatIEC without the
/// `retain` column has no RETAIN variable.
pub fn matiec_variables(csv: &str) -> Result<Vec<MatiecVariable>, String> {
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
            return Err(format!("a row with {} fields: {line:?}", fields.len()));
        }
        if fields[1].trim().eq_ignore_ascii_case("FB") {
            continue;
        }
        let index = u32::try_from(vars.len()).map_err(|_| "too many variables")?;
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
pub fn matiec_retain_indices(csv: &str) -> Result<(Vec<u32>, u32), String> {
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

fn compile_jobs(dir: &Path, scratch: &Path, opts: &BuildOptions) -> (Vec<runner::Job>, Vec<PathBuf>) {
    let includes = [dir.to_path_buf(), dir.join("lib"), dir.join("lib").join("C"), scratch.to_path_buf()];
    let mut sources: Vec<(PathBuf, &str, bool, &[&str])> = vec![
        (dir.join("Config0.c"), "Config0.c", false, &[]),
        (dir.join("Res0.c"), "Res0.c", false, &[]),
        (dir.join("debug.c"), "debug.c", false, &[]),
        (dir.join("glueVars.c"), "glueVars.c", false, &["-DOPENPLC_V4"]),
        (scratch.join(ADAPTER_FILE), "the runtime adapter", false, &[]),
        (scratch.join(RETAIN_TABLE_FILE), "the RETAIN table", false, &[]),
    ];
    if dir.join("c_blocks_code.cpp").is_file() {
        sources.push((dir.join("c_blocks_code.cpp"), "c_blocks_code.cpp", true, &[]));
    }

    let mut jobs = Vec::new();
    let mut objects = Vec::new();
    for (index, (source, name, cplusplus, extra)) in sources.into_iter().enumerate() {
        let object = scratch.join(format!("{index}.o"));
        let mut args: Vec<OsString> =
            ["-w", "-O2", "-fPIC", "-fno-strict-aliasing"].iter().map(OsString::from).collect();
        args.extend(extra.iter().map(OsString::from));
        for dir in &includes {
            args.push("-I".into());
            args.push(dir.into());
        }
        args.extend(["-c".into(), source.into_os_string(), "-o".into(), object.clone().into_os_string()]);
        jobs.push(runner::Job {
            label: format!("Compiling {name}"),
            step: format!("compiling {name}"),
            program: if cplusplus { opts.cxx.clone() } else { opts.cc.clone() },
            args,
        });
        objects.push(object);
    }
    (jobs, objects)
}

/// The configuration class a STruC++ bundle's adapter must instantiate as `g_config`.
///
/// The debugger table (`generated_debug.cpp`) declares the object it reads
/// (`extern ::strucpp::Configuration_<NAME> g_config;`): that is the class, whatever the
/// header holds. A bundle without that declaration falls back to the one configuration class
/// of `generated.hpp`.
fn strucpp_config_class(dir: &Path) -> Result<String, BuildError> {
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

/// The MD5 the Editor wrote into `debug-map.json` (`"md5": "<32 hex>"`).
fn debug_map_md5(dir: &Path) -> Option<String> {
    let text = read_text(&dir.join("debug-map.json"))?;
    find_md5(&text, b"\"md5\": \"", &[b"\""]).or_else(|| find_md5(&text, b"\"md5\":\"", &[b"\""]))
}

/// Warns when the program will not answer the Editor's MD5 check: no `PROGRAM_MD5` in
/// `defines.h`, or one that differs from the debug map's.
fn check_strucpp_md5(defines_h: Option<&str>, debug_map: Option<&str>, on_line: &mut dyn FnMut(BuildLine)) {
    let warning = match (defines_h, debug_map) {
        (Some(a), Some(b)) if a != b => {
            format!(
                "defines.h says the program MD5 is {a} but debug-map.json says {b}; the Editor's debugger will not attach"
            )
        }
        (None, _) => "defines.h has no #define PROGRAM_MD5 \"<md5>\"; the Editor's debugger will not attach".into(),
        _ => return,
    };
    on_line(BuildLine { level: Level::Warning, text: warning });
}

/// One job per `*.cpp` of the bundle root (STruC++ writes one per POU plus
/// `configuration.cpp` and `generated_debug.cpp`, older versions a single `generated.cpp`;
/// `c_blocks_code.cpp` too), in name order, then the adapter.
///
/// C++17, position-independent, and `-fno-gnu-unique`: the generated code's C++17 inline
/// variables (the program clock, the debug type table, ...) would otherwise be GNU unique
/// symbols, which glibc never unloads and binds a later program to, so a reloaded program
/// would inherit the old one's globals. `STRUCPP_THREADED` is not defined: every task runs on
/// rt-core's scan thread, so the per-global mutexes are not needed, and the program clock
/// stays a plain global rather than a thread-local that a dlopened library allocates on a
/// thread's first access.
fn strucpp_compile_jobs(
    dir: &Path,
    scratch: &Path,
    config_class: &str,
    opts: &BuildOptions,
) -> io::Result<(Vec<runner::Job>, Vec<PathBuf>)> {
    // (path, name, is the adapter)
    let mut sources: Vec<(PathBuf, String, bool)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".cpp") && entry.file_type()?.is_file() {
            sources.push((entry.path(), name, false));
        }
    }
    sources.sort_by(|a, b| a.1.cmp(&b.1));
    sources.push((scratch.join(STRUCPP_ADAPTER_FILE), "the runtime adapter".into(), true));

    let includes = [dir.to_path_buf(), dir.join("strucpp_runtime").join("include"), scratch.to_path_buf()];
    let define = format!("-DOPLC_STRUCPP_CONFIG={config_class}");
    let mut jobs = Vec::new();
    let mut objects = Vec::new();
    for (index, (source, name, adapter)) in sources.into_iter().enumerate() {
        let object = scratch.join(format!("{index}.o"));
        let mut args: Vec<OsString> =
            ["-std=c++17", "-w", "-O2", "-fPIC", "-fno-gnu-unique"].iter().map(OsString::from).collect();
        if adapter {
            args.push(define.clone().into());
        }
        for dir in &includes {
            args.push("-I".into());
            args.push(dir.into());
        }
        args.extend(["-c".into(), source.into_os_string(), "-o".into(), object.clone().into_os_string()]);
        jobs.push(runner::Job {
            label: format!("Compiling {name}"),
            step: format!("compiling {name}"),
            program: opts.cxx.clone(),
            args,
        });
        objects.push(object);
    }
    Ok((jobs, objects))
}

/// Links with the C++ compiler (c_blocks_code.cpp may need its runtime). `-z defs` turns a
/// symbol the program needs but nobody defines into a build error rather than a crash of
/// the scan when it is first called (programs are loaded with lazy binding); `-Bsymbolic`
/// keeps two loaded programs from binding to each other's globals.
fn link_job(objects: &[PathBuf], partial: &Path, out: &Path, opts: &BuildOptions) -> runner::Job {
    let mut args: Vec<OsString> = vec!["-shared".into(), "-o".into(), partial.into()];
    args.extend(objects.iter().map(OsString::from));
    args.extend(["-Wl,-z,defs", "-Wl,-Bsymbolic", "-lpthread", "-lrt", "-lm"].iter().map(OsString::from));
    runner::Job {
        label: format!("Linking {}", out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()),
        step: "linking the program library".into(),
        program: opts.cxx.clone(),
        args,
    }
}

/// A unique name beside `out`, so that the final rename is atomic.
fn partial_path(out_dir: &Path, out: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "program.so".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    out_dir.join(format!(".{name}.partial-{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_md5_like_the_editor() {
        let md5 = "0123456789abcdefABCDEF0123456789";
        for trailer in [format!("(*DBG:char md5[] = \"{md5}\";*)"), format!("(*DBG:char md5[] = \"{md5}\"*)")] {
            let text = format!("PROGRAM x\nEND_PROGRAM\n\n{trailer}\n(*DBG:rest*)");
            let found = find_md5(text.as_bytes(), b"(*DBG:char md5[] = \"", &[b"\";*)", b"\"*)"]);
            assert_eq!(found.as_deref(), Some("0123456789abcdefabcdef0123456789"));
        }
        for bad in [
            "(*DBG:char md5[] = \"0123\";*)",
            "(*DBG:char md5[] = \"0123456789abcdef0123456789abcdeg\";*)",
            "(*DBG:char md5[] = \"0123456789abcdef0123456789abcdef\";",
            "(*DBG:char md5[] = \"",
        ] {
            assert_eq!(find_md5(bad.as_bytes(), b"(*DBG:char md5[] = \"", &[b"\";*)", b"\"*)"]), None, "{bad}");
        }
    }

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
        assert!(matiec_retain_indices("// Variables\n1;VAR;x\n").is_err());

        assert_eq!(
            retain_table_source(&[12, 32]),
            "/* Generated by openplc-builder from the bundle's VARIABLES.csv: the debug indices of\n \
             * the program's RETAIN variables. */\n#include <stdint.h>\n\n\
             const uint32_t oplc_retain_indices[] = {12, 32};\nconst uint32_t oplc_retain_count = 2;\n"
        );
        assert!(retain_table_source(&[]).contains("oplc_retain_indices[] = {0 /* an array may not be empty */};"));
        assert!(retain_table_source(&[]).contains("oplc_retain_count = 0;"));
    }

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

    #[test]
    fn error_messages_are_one_line_and_name_the_problem() {
        let err = BuildError::IncompleteBundle { generation: Generation::Matiec, missing: vec!["glueVars.c".into()] };
        assert_eq!(
            err.to_string(),
            "incomplete MatIEC bundle (OpenPLC Editor 4.1.4 and earlier): glueVars.c is missing"
        );
        let err = BuildError::CompilerFailed {
            step: "compiling Res0.c".into(),
            exit_code: Some(1),
            signal: None,
            first_error: Some("POUS.c:3:5: error: expected ';'".into()),
        };
        assert_eq!(err.to_string(), "compiling Res0.c failed with exit code 1: POUS.c:3:5: error: expected ';'");
        assert_eq!(err.exit_code(), Some(1));
        let err = BuildError::Unbuildable {
            generation: Generation::Strucpp,
            detail: "generated.hpp declares no CONFIGURATION (no Configuration_<NAME> class)".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot build this STruC++ bundle (OpenPLC Editor 4.2 and later): generated.hpp declares no \
             CONFIGURATION (no Configuration_<NAME> class)"
        );
    }
}
