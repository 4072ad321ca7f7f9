//! Precompiled headers: the heavy headers every bundle of a generation ships (MatIEC's
//! `lib/iec_std_lib.h` and what it includes, STruC++'s `strucpp_runtime/include/`), compiled
//! once per distinct header set, with exactly the flags of the units, and kept in the build
//! cache for every later build that ships the same headers.
//!
//! GCC uses a precompiled header `H.gch` for an `#include "H"` only when it is the unit's
//! first, checks that the flags and the macros defined before it allow it, and otherwise
//! reads `H` itself: the result is the same object either way (a precompiled header is a
//! faster way to read the same text). We put a small *wrapper* in the build folder's `pch/`
//! and precompile that:
//!
//! - MatIEC: `pch/iec_std_lib.h` includes the bundle's own `lib/iec_std_lib.h` by its path;
//!   `-I pch` first in the search path of the units whose first line includes
//!   `iec_std_lib.h`, so that GCC finds the precompiled wrapper before the library's header.
//! - STruC++: every generated unit starts with `#include "generated.hpp"`, a program's own
//!   declarations, which start (after `#pragma once`) with includes of the runtime headers.
//!   The wrapper `pch/oplc_prelude.hpp` holds exactly that run of includes, and the units
//!   that start with `#include "generated.hpp"` get `-include pch/oplc_prelude.hpp`: the same
//!   headers, in the same order, with nothing defined before them, so the unit means what it
//!   meant; when `generated.hpp` includes them again, their guards make that a no-op (every
//!   bundle header the wrapper reaches must guard itself, or the precompiled header is not
//!   kept).
//!
//! The wrapper ends with `#include "oplc_pch_sentinel.h"` (an empty file beside it): when GCC
//! used the precompiled header it never opens the sentinel, so a unit's dependency file says
//! whether it did.
//!
//! A build whose header set has no precompiled header yet compiles without one (making it
//! first would cost more than it saves that build) and precompiles it afterwards, in the
//! background at idle priority, in the finished build's folder: the next build gets it.

use crate::cache::{Cache, CacheSettings, DepPath, Deps, Digest, KeyHasher, compiler_identity, read_depfile};
use crate::folder::{self, BuildFolder};
use crate::runner::{self, Context, Job, Processes};
use crate::sandbox::{Launcher, Limits, View};
use crate::scan::{Directive, is_guarded, leading_directives};
use crate::toolchain::Paths;
use crate::{BackgroundLog, BuildLine, BuildOptions, Level};
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// The empty file whose absence from a unit's dependencies shows the precompiled header
/// was used.
pub(crate) const SENTINEL: &str = "oplc_pch_sentinel.h";
const PRELUDE: &str = "oplc_prelude.hpp";
/// How many leading directives of a file are read.
const MAX_DIRECTIVES: usize = 256;

/// What to precompile for a build, and how its units use it.
#[derive(Clone, Debug)]
pub(crate) struct PchSpec {
    /// The wrapper's file name in `pch/`.
    pub header: String,
    /// The wrapper's text.
    pub wrapper: String,
    /// Units name it with `-include` (STruC++) rather than find it first on their search
    /// path (MatIEC).
    pub forced: bool,
    pub cplusplus: bool,
    /// The units' shared flags and include directories (without `pch/`).
    pub flags: Vec<String>,
    pub includes: Vec<PathBuf>,
    /// Every bundle header it reaches must guard itself against a second inclusion.
    pub guarded_only: bool,
    /// What it holds, for the build log.
    pub what: String,
}

impl PchSpec {
    /// The precompiled header's key: everything that makes it what it is but the headers it
    /// reads (the cache checks those).
    pub fn key(&self, opts: &BuildOptions, root: &Path) -> std::io::Result<Digest> {
        let program = self.program(opts);
        let mut key = KeyHasher::new("pch");
        key.field(crate::CACHE_FORMAT.as_bytes()).digest(&crate::adapter_digest());
        key.digest(&compiler_identity(program)?).field(program.as_bytes());
        // The wrapper names the bundle's header by its path in the build folder, which is a
        // fresh one per build when the sandbox is off.
        let wrapper = match root.to_str() {
            Some(root) => self.wrapper.replace(root, "<build>"),
            None => self.wrapper.clone(),
        };
        key.field(self.header.as_bytes()).field(wrapper.as_bytes()).field(&[u8::from(self.forced)]);
        for flag in &self.flags {
            key.field(flag.as_bytes());
        }
        for dir in &self.includes {
            key.field(relative_to(dir, root).as_bytes());
        }
        Ok(key.finish())
    }

    pub fn program<'a>(&self, opts: &'a BuildOptions) -> &'a str {
        if self.cplusplus { &opts.cxx } else { &opts.cc }
    }

    /// The job precompiling the wrapper in `dir` (as the compiler sees it).
    fn job(&self, dir: &Path, depfile: &Path, opts: &BuildOptions) -> Job {
        let mut args: Vec<OsString> = self.flags.iter().map(OsString::from).collect();
        if !self.forced {
            args.extend(["-I".into(), dir.into()]);
        }
        for include in &self.includes {
            args.extend(["-I".into(), include.into()]);
        }
        let header = dir.join(&self.header);
        let language = if self.cplusplus { "c++-header" } else { "c-header" };
        args.extend(["-x".into(), language.into(), header.clone().into_os_string()]);
        args.extend(["-o".into(), header.with_file_name(format!("{}.gch", self.header)).into()]);
        args.extend(["-MD".into(), "-MF".into(), depfile.into()]);
        Job {
            label: format!("Precompiling the {}", self.what),
            step: format!("precompiling the {}", self.what),
            program: self.program(opts).to_string(),
            args,
        }
    }
}

/// `dir` relative to the build folder `root`, or as it is.
pub(crate) fn relative_to(dir: &Path, root: &Path) -> String {
    match dir.strip_prefix(root) {
        Ok(rel) => format!("<build>/{}", rel.display()),
        Err(_) => dir.display().to_string(),
    }
}

/// MatIEC: `iec_std_lib.h` of the bundle's `lib/` (or `lib/C/`), unless the bundle root has
/// one too (a unit's own folder is searched before `pch/`, so it would hide the wrapper).
pub(crate) fn matiec(bundle: &Path, at: &Paths, flags: &[String], includes: &[PathBuf]) -> Option<PchSpec> {
    const HEADER: &str = "iec_std_lib.h";
    if bundle.join(HEADER).exists() {
        return None;
    }
    let lib = ["lib", "lib/C"].into_iter().find(|dir| bundle.join(dir).join(HEADER).is_file())?;
    let real = at.src.join(lib).join(HEADER);
    let real = real.to_str()?;
    if real.contains(['"', '\n', '\\']) {
        return None;
    }
    Some(PchSpec {
        header: HEADER.into(),
        wrapper: format!(
            "/* openplc-builder: precompiled in place of the bundle's {lib}/{HEADER}. */\n\
             #ifndef OPLC_PCH_IEC_STD_LIB\n#define OPLC_PCH_IEC_STD_LIB\n#include \"{real}\"\n#include \"{SENTINEL}\"\n#endif\n"
        ),
        forced: false,
        cplusplus: false,
        flags: flags.to_vec(),
        includes: includes.to_vec(),
        guarded_only: false,
        what: format!("MatIEC library headers ({lib}/{HEADER})"),
    })
}

/// Whether a unit starting with `text` may use the MatIEC wrapper: its first line includes
/// `iec_std_lib.h`.
pub(crate) fn starts_with_include(text: &[u8], name: &str) -> bool {
    let first = leading_directives(text, MAX_DIRECTIVES).into_iter().find(|d| *d != Directive::PragmaOnce);
    matches!(first, Some(Directive::Include { quoted: true, name: n }) if n == name)
}

/// STruC++: the includes `generated.hpp` starts with (after `#pragma once`), when there are
/// any and nothing else comes before them.
pub(crate) fn strucpp(generated_hpp: &[u8], flags: &[String], includes: &[PathBuf]) -> Option<PchSpec> {
    let run: Vec<Directive> = leading_directives(generated_hpp, MAX_DIRECTIVES)
        .into_iter()
        .skip_while(|d| *d == Directive::PragmaOnce)
        .take_while(|d| matches!(d, Directive::Include { .. }))
        .collect();
    let reserved = |d: &Directive| matches!(d, Directive::Include { name, .. } if name == PRELUDE || name == SENTINEL);
    if run.is_empty() || run.iter().any(reserved) {
        return None;
    }
    let lines: Vec<String> = run.iter().map(Directive::line).collect();
    Some(PchSpec {
        header: PRELUDE.into(),
        wrapper: format!(
            "/* openplc-builder: the includes generated.hpp starts with, precompiled. */\n\
             #ifndef OPLC_PCH_PRELUDE\n#define OPLC_PCH_PRELUDE\n{}\n#include \"{SENTINEL}\"\n#endif\n",
            lines.join("\n")
        ),
        forced: true,
        cplusplus: true,
        flags: flags.to_vec(),
        includes: includes.to_vec(),
        guarded_only: true,
        what: "STruC++ runtime headers".into(),
    })
}

/// Precompiled headers being made in the background, by key.
static IN_FLIGHT: Mutex<Option<HashSet<Digest>>> = Mutex::new(None);
static SETTLED: Condvar = Condvar::new();

/// Waits until no precompiled header is being made in the background (at most `timeout`);
/// whether none is.
pub fn wait_for_background_work(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if guard.as_ref().is_none_or(|set| set.is_empty()) {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        guard = SETTLED.wait_timeout(guard, left).unwrap_or_else(|p| p.into_inner()).0;
    }
}

/// What the background job needs from the finished build.
pub(crate) struct Background {
    pub spec: PchSpec,
    pub key: Digest,
    pub folder: BuildFolder,
    pub launcher: Launcher,
    pub cache: CacheSettings,
    pub opts: BuildOptions,
}

/// Precompiles `job.spec` in the background (unless the same key already is), stores it in
/// the cache and says how it went on `log`.
pub(crate) fn precompile_later(job: Background, log: Option<BackgroundLog>) {
    {
        let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
        if !guard.get_or_insert_with(HashSet::new).insert(job.key) {
            return;
        }
    }
    let key = job.key;
    let spawned = std::thread::Builder::new().name("builder-pch".into()).spawn(move || {
        let what = job.spec.what.clone();
        let started = Instant::now();
        let line = match precompile(&job) {
            Ok(bytes) => BuildLine {
                level: Level::Info,
                text: format!(
                    "Precompiled the {what} for the next builds ({:.1} MiB, {:.1} s)",
                    bytes as f64 / (1 << 20) as f64,
                    started.elapsed().as_secs_f64()
                ),
            },
            Err(why) => BuildLine { level: Level::Warning, text: format!("Could not precompile the {what}: {why}") },
        };
        if let Some(log) = &log {
            (log.0)(line);
        }
        settle(&key);
    });
    if spawned.is_err() {
        settle(&key);
    }
}

fn settle(key: &Digest) {
    let mut guard = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(set) = guard.as_mut() {
        set.remove(key);
    }
    SETTLED.notify_all();
}

/// Makes the precompiled header in the build folder and stores it; its size.
fn precompile(job: &Background) -> Result<u64, String> {
    let host = job.folder.host();
    let root = job.launcher.build_root(host);
    let (seen_pch, host_pch) = (root.join(folder::PCH), host.join(folder::PCH));

    job.folder.write_in(folder::PCH, &job.spec.header, job.spec.wrapper.as_bytes()).map_err(|e| e.to_string())?;
    job.folder
        .write_in(folder::PCH, SENTINEL, b"/* empty: see openplc-builder pch.rs */\n")
        .map_err(|e| e.to_string())?;
    let depfile = root.join(folder::LOG).join("pch.d");
    let compile = job.spec.job(&seen_pch, &depfile, &job.opts);
    let ctx = Context {
        launcher: &job.launcher,
        view: View { host, writable: true, cwd: folder::OUT },
        tmpdir: root.join(folder::TMP),
        limits: Limits {
            cpu_seconds: job.opts.timeout.as_secs().saturating_add(1),
            address_space: 2 << 30,
            file_size: 1 << 30,
            idle: true,
        },
    };
    let mut said = Vec::new();
    let mut starter = Processes::new(&ctx);
    let limit = (crate::deadline(Instant::now(), job.opts.timeout), job.opts.timeout);
    runner::run(&[&compile], 1, &mut starter, limit, &mut |line| {
        if line.level != Level::Info {
            said.push(line.text);
        }
    })
    .map_err(|e| match said.first() {
        Some(first) => format!("{e} ({first})"),
        None => e.to_string(),
    })?;

    let files = read_depfile(&host.join(folder::LOG).join("pch.d")).ok_or("its dependency file cannot be read")?;
    let mut deps = Deps::new(root.clone(), root.join(folder::OUT), host.to_path_buf());
    let mut recorded = Vec::new();
    for file in files {
        let dep = deps.classify(&file).ok_or_else(|| format!("it read {}, outside the bundle", file.display()))?;
        if let DepPath::Folder(rel) = &dep {
            if rel.starts_with(&format!("{}/", folder::PCH)) {
                continue;
            }
            if job.spec.guarded_only {
                let text = std::fs::read(host.join(rel)).map_err(|e| e.to_string())?;
                if !is_guarded(&text) {
                    return Err(format!("{rel} does not guard itself against a second inclusion"));
                }
            }
        }
        let digest = deps.digest(&dep).ok_or_else(|| format!("{} cannot be read", file.display()))?;
        recorded.push((dep, digest));
    }
    let cache = Cache::open(&job.cache).map_err(|e| format!("the build cache cannot be opened: {e}"))?;
    let entry = cache.store_pch(&job.key, recorded, &host_pch).map_err(|e| format!("storing it: {e}"))?;
    cache.evict();
    let size = cache.pch(&entry).map(|dir| crate::cache::dir_bytes(&dir)).unwrap_or(0);
    Ok(size)
}
