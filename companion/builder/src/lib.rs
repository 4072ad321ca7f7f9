//! Turns an extracted OpenPLC Editor program bundle into a program library (`.so`) that
//! exports the runtime's one program ABI (`shared-abi`, `openplc_abi.h`).
//!
//! The Editor uploads C or C++ sources, not a binary, and two generations of them exist:
//! MatIEC C from Editor 4.1.4 and earlier, STruC++ C++ from Editor 4.2 on. [`detect`] tells
//! them apart; [`build`] compiles the bundle together with our adapter for its generation
//! (`matiec.rs`, `strucpp.rs`, one [`toolchain::Toolchain`] each), links it, and opens the
//! library once in a throwaway process (`openplc-rt check`) when asked to.
//!
//! Every compiler, the linker and the load check run in a sandbox (`sandbox.rs`: bubblewrap,
//! as an unprivileged user, seeing only a build folder with a copy of the bundle and the
//! toolchain; `folder.rs`), with a scrubbed environment, resource limits (CPU time, 2 GiB of
//! address space, file size), killed when the build's timeout expires; every line they print
//! reaches the caller (`runner/`). The compilers of one build share one sandbox and run as
//! many at a time as there are CPUs (`runner/dispatch.rs`).
//!
//! With a build cache (`cache/`), a unit whose bytes, headers, compiler and flags are those
//! of a unit compiled before is not compiled again (`compile.rs`), and the heavy headers each
//! generation ships are precompiled once per distinct header set (`pch.rs`).

mod cache;
mod compile;
mod detect;
mod error;
mod folder;
mod matiec;
mod md5;
mod pch;
mod runner;
mod sandbox;
mod scan;
mod strucpp;
mod toolchain;

pub use cache::CacheSettings;
pub use detect::{Generation, MATIEC_REQUIRED_FILES, detect};
pub use error::{BuildError, storage_problem};
pub use matiec::{CsvError, MatiecVariable, matiec_retain_indices, matiec_variables};
pub use md5::program_md5;
pub use pch::wait_for_background_work;
pub use sandbox::{Identity, Isolation, NOBODY, sandbox_status};
pub use strucpp::STRUCPP_REQUIRED_FILES;

use folder::BuildFolder;
use sandbox::{Launcher, Limits, View};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use toolchain::{LIBRARY, Paths, Toolchain};

/// The C adapter compiled into every MatIEC program library.
pub const MATIEC_ADAPTER_SOURCE: &str = include_str!("../adapters/matiec_adapter.c");
/// The C++ adapter compiled into every STruC++ program library.
pub const STRUCPP_ADAPTER_SOURCE: &str = include_str!("../adapters/strucpp_adapter.cpp");
/// The STruC++ adapter's unit holding the program's MD5.
pub const STRUCPP_MD5_SOURCE: &str = include_str!("../adapters/oplc_strucpp_md5.cpp");
/// The program ABI header the adapter includes.
pub const PROGRAM_ABI_HEADER: &str = include_str!("../../../shared-abi/include/openplc_abi.h");
/// Where located variables live in rt-core's image: shared by both adapters.
pub const IMAGE_SLOT_HEADER: &str = include_str!("../adapters/oplc_image_slot.h");
/// The headers both adapters include, by file name, written beside them for every build.
pub const ADAPTER_HEADERS: [(&str, &str); 2] =
    [("openplc_abi.h", PROGRAM_ABI_HEADER), ("oplc_image_slot.h", IMAGE_SLOT_HEADER)];
/// The parts of the STruC++ adapter, one job each, which its one `.cpp` includes in this order.
pub const STRUCPP_ADAPTER_HEADERS: [(&str, &str); 7] = [
    ("oplc_strucpp_types.hpp", include_str!("../adapters/oplc_strucpp_types.hpp")),
    ("oplc_strucpp_state.hpp", include_str!("../adapters/oplc_strucpp_state.hpp")),
    ("oplc_strucpp_located.hpp", include_str!("../adapters/oplc_strucpp_located.hpp")),
    ("oplc_strucpp_force.hpp", include_str!("../adapters/oplc_strucpp_force.hpp")),
    ("oplc_strucpp_retain.hpp", include_str!("../adapters/oplc_strucpp_retain.hpp")),
    ("oplc_strucpp_tables.hpp", include_str!("../adapters/oplc_strucpp_tables.hpp")),
    ("oplc_strucpp_tasks.hpp", include_str!("../adapters/oplc_strucpp_tasks.hpp")),
];

/// How long `openplc-rt check` may take to open a library.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// The build cache's format: a new one when what a key covers or how entries are written
/// changes, so that nothing cached by another version of this builder is ever served.
pub(crate) const CACHE_FORMAT: &str = concat!("openplc-builder cache 1, builder ", env!("CARGO_PKG_VERSION"));

/// The digest of every source of ours that goes into a program library (the adapters and
/// their headers): part of every cache key.
pub(crate) fn adapter_digest() -> cache::Digest {
    static DIGEST: OnceLock<cache::Digest> = OnceLock::new();
    *DIGEST.get_or_init(|| {
        let mut key = cache::KeyHasher::new("adapters");
        for text in [MATIEC_ADAPTER_SOURCE, STRUCPP_ADAPTER_SOURCE, STRUCPP_MD5_SOURCE] {
            key.field(text.as_bytes());
        }
        for (name, text) in ADAPTER_HEADERS.iter().chain(STRUCPP_ADAPTER_HEADERS.iter()) {
            key.field(name.as_bytes()).field(text.as_bytes());
        }
        key.finish()
    })
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
    /// Compilers run at once (by default, as many as there are CPUs).
    pub jobs: usize,
    /// Limit for the whole build; the compilers are killed when it expires.
    pub timeout: Duration,
    /// Whether the compilers run in the sandbox (by default they do, and a build is refused
    /// where the sandbox cannot run).
    pub isolation: Isolation,
    /// `openplc-rt`, to open the built library once in a throwaway process (`openplc-rt
    /// check`, in the sandbox too) before it is handed out: code that runs while a library
    /// loads (C++ constructors) runs outside any fault guard.
    pub load_check: Option<PathBuf>,
    /// Where build folders are made (the system's temporary directory by default).
    pub build_root: Option<PathBuf>,
    /// The build cache of compiled units and precompiled headers (none by default).
    pub cache: Option<CacheSettings>,
    /// Compile every unit, taking nothing from the cache (what is compiled is still stored).
    pub clean: bool,
    /// Where work that goes on after the build (precompiling headers for the next builds)
    /// says how it went.
    pub background_log: Option<BackgroundLog>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            cc: "cc".into(),
            cxx: "c++".into(),
            jobs: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
            timeout: Duration::from_secs(300),
            isolation: Isolation::Sandbox,
            load_check: None,
            build_root: None,
            cache: None,
            clean: false,
            background_log: None,
        }
    }
}

/// Receives the lines of work that goes on after a build.
#[derive(Clone)]
pub struct BackgroundLog(pub Arc<dyn Fn(BuildLine) + Send + Sync>);

impl fmt::Debug for BackgroundLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackgroundLog")
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
    /// Where the time went, step by step: "prepare", "cache lookup", "compile", "link",
    /// "load check", "place".
    pub steps: Vec<(&'static str, Duration)>,
    /// The units taken from the build cache, and the units compiled.
    pub reused: Vec<String>,
    pub compiled: Vec<String>,
}

/// Time spent per step of a build.
pub(crate) struct Steps {
    last: Instant,
    list: Vec<(&'static str, Duration)>,
}

impl Steps {
    fn new(started: Instant) -> Steps {
        Steps { last: started, list: Vec::new() }
    }

    /// The time since the last mark goes to `step`.
    pub fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        let spent = now - self.last;
        self.last = now;
        match self.list.iter_mut().find(|(name, _)| *name == step) {
            Some((_, total)) => *total += spent,
            None => self.list.push((step, spent)),
        }
    }
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
    let mut steps = Steps::new(started);
    let detected = detect(dir)?;
    let dir = std::fs::canonicalize(dir).map_err(|source| BuildError::BundleUnreadable { path: dir.into(), source })?;
    let out = absolute(out)?;
    // A bundle is checked (and refused) before anything is compiled.
    let toolchain: Box<dyn Toolchain> = match detected {
        Generation::Matiec => Box::new(matiec::Matiec),
        Generation::Strucpp => Box::new(strucpp::Strucpp::for_bundle(&dir)?),
    };
    let generation = toolchain.generation();
    on_line(info(format!("Building a {generation} program ({})", generation.editor_versions())));
    let (editor_md5, program_md5) = toolchain.md5_witnesses(&dir);
    if let Some(warning) = md5::mismatch_warning(&editor_md5, &program_md5) {
        on_line(BuildLine { level: Level::Warning, text: warning });
    }

    let launcher = Launcher::new(opts.isolation)?;
    on_line(BuildLine {
        level: if launcher.sandboxed() { Level::Info } else { Level::Warning },
        text: launcher.describe(),
    });
    let folder = BuildFolder::create(opts.build_root.as_deref(), launcher.identity())?;
    let root = launcher.build_root(folder.host());
    let at = Paths { src: root.join(folder::SRC), out: root.join(folder::OUT), pch: root.join(folder::PCH) };
    let limits = Limits {
        cpu_seconds: opts.timeout.as_secs().saturating_add(1),
        address_space: 2 << 30,
        file_size: 1 << 30,
        idle: false,
    };
    let ctx = runner::Context {
        launcher: &launcher,
        view: View { host: folder.host(), writable: true, cwd: folder::OUT },
        tmpdir: root.join(folder::TMP),
        limits,
    };
    // The sandboxes start now and are set up while the build folder fills and the cache
    // is searched: the job runner's, and the load check's, which runs the check with a
    // read-only view (the library's start-up code runs there and may write nothing) once
    // the library is linked.
    let mut dispatcher = runner::Dispatcher::spawn(&ctx, folder.host())?;
    let check_ctx = runner::Context {
        launcher: &launcher,
        view: View { host: folder.host(), writable: false, cwd: folder::OUT },
        tmpdir: root.join(folder::TMP),
        limits: Limits { cpu_seconds: CHECK_TIMEOUT.as_secs() + 1, ..limits },
    };
    let check = match &opts.load_check {
        Some(checker) => {
            folder.add_executable(checker, "openplc-rt")?;
            let job = toolchain::check_job(&root.join(folder::BIN).join("openplc-rt"), &at);
            let held = runner::Prestarted::spawn(&job, &check_ctx)?;
            Some((job, held))
        }
        None => None,
    };
    folder.copy_bundle(&dir)?;
    for source in toolchain.our_sources(&dir, on_line) {
        folder.write(source.name, &source.text)?;
    }

    let plan = toolchain.plan(&dir, &at, opts)?;
    let shown_name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let deadline_at = deadline(started, opts.timeout);
    let compiled = compile::compile_and_link(
        &plan,
        &folder,
        (&ctx, &mut dispatcher),
        &at,
        opts,
        (deadline_at, &shown_name),
        &mut steps,
        on_line,
    )?;
    dispatcher.finish(deadline_at);

    if let Some((job, held)) = check {
        load_check(&job, &check_ctx, held, on_line)?;
        steps.mark("load check");
    }

    folder.place(LIBRARY, &out)?;
    steps.mark("place");
    let duration = started.elapsed();
    on_line(info(format!("Built {} in {:.1} s", out.display(), duration.as_secs_f64())));
    if let (Some((spec, key)), Some(cache)) = (compiled.pch_to_make, &opts.cache) {
        let background = pch::Background { spec, key, folder, launcher, cache: cache.clone(), opts: opts.clone() };
        pch::precompile_later(background, opts.background_log.clone());
    }
    Ok(BuildReport {
        generation,
        library: out,
        md5: editor_md5.md5,
        duration,
        steps: steps.list,
        reused: compiled.reused,
        compiled: compiled.compiled,
    })
}

/// Releases the load check set up beforehand; its failure says why the program does not load.
fn load_check(
    check: &runner::Job,
    ctx: &runner::Context<'_>,
    held: runner::Prestarted,
    on_line: &mut dyn FnMut(BuildLine),
) -> Result<(), BuildError> {
    let mut said = None;
    let mut loaded = false;
    let mut starter = runner::Processes::with_prestarted(ctx, held);
    let limit = (deadline(Instant::now(), CHECK_TIMEOUT), CHECK_TIMEOUT);
    let result = runner::run(&[check], 1, &mut starter, limit, &mut |line| {
        if line.text != check.label {
            loaded |= line.text.contains(shared_abi::program::CHECK_OK);
            said = Some(line.text.trim().trim_start_matches("openplc-rt: ").to_string());
        }
        on_line(line);
    });
    let reason = match result {
        // The success line too: a library that ends the checker with status 0 from its
        // start-up code (a raw exit system call, which no interposer sees) printed nothing.
        Ok(()) if loaded => return Ok(()),
        Ok(()) => "it ended the check while loading, without an error: its start-up code is faulty".to_string(),
        Err(BuildError::CompilerFailed { signal: Some(signal), .. }) => {
            format!("it crashed while loading ({}): its start-up code is faulty", shared_abi::msg::signal_name(signal))
        }
        Err(BuildError::CompilerFailed { exit_code, .. }) => {
            said.unwrap_or_else(|| format!("openplc-rt check failed with exit code {}", exit_code.unwrap_or(-1)))
        }
        Err(BuildError::TimedOut { .. }) => {
            format!("it did not finish loading within {} s", CHECK_TIMEOUT.as_secs())
        }
        Err(other) => return Err(other),
    };
    Err(BuildError::LoadCheckFailed { reason })
}

fn info(text: String) -> BuildLine {
    BuildLine { level: Level::Info, text }
}

/// `started + timeout`; a timeout too long for the clock is no timeout (about 136 years).
pub(crate) fn deadline(started: Instant, timeout: Duration) -> Instant {
    started
        .checked_add(timeout)
        .or_else(|| started.checked_add(Duration::from_secs(u32::MAX.into())))
        .unwrap_or(started)
}

/// `out` made absolute, checked to be a file name in an existing directory.
fn absolute(out: &Path) -> Result<PathBuf, BuildError> {
    let out = if out.is_absolute() {
        out.to_path_buf()
    } else {
        let cwd = std::env::current_dir().map_err(|e| BuildError::io("cannot resolve the output path", e))?;
        cwd.join(out)
    };
    let invalid =
        |what: String, why: &str, kind| BuildError::Io { what, source: std::io::Error::new(kind, why.to_string()) };
    match (out.parent(), out.file_name()) {
        (Some(parent), Some(_)) if parent.is_dir() => Ok(out),
        (Some(parent), Some(_)) => Err(invalid(
            format!("cannot write the library into {}", parent.display()),
            "no such directory",
            std::io::ErrorKind::NotFound,
        )),
        _ => Err(invalid(
            format!("cannot write the library to {}", out.display()),
            "not a file name",
            std::io::ErrorKind::InvalidInput,
        )),
    }
}
