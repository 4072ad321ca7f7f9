//! Compiling a build's units and linking them: every unit the build cache holds (same bytes,
//! same headers, same compiler and flags) is taken from it, the others are compiled by the
//! job runner in one sandbox, as many at a time as there are CPUs, and stored in the cache
//! while the library links.

use crate::cache::{Cache, DepPath, Deps, Digest, KeyHasher, Miss, compiler_identity, file_digest, read_depfile};
use crate::folder::{self, BuildFolder};
use crate::pch::{self, PchSpec, relative_to};
use crate::runner::{self, Context, Dispatcher, Job};
use crate::toolchain::{self, Paths, Plan, Unit};
use crate::{BuildError, BuildLine, BuildOptions, Level, Steps};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What compiling and linking left for the rest of the build.
pub(crate) struct Compiled {
    /// Units taken from the build cache, and units compiled.
    pub reused: Vec<String>,
    pub compiled: Vec<String>,
    /// The precompiled header this build's header set lacks (its key): made after the build.
    pub pch_to_make: Option<(PchSpec, Digest)>,
}

/// A unit, its object and what the cache knows of it.
struct Slot<'a> {
    unit: &'a Unit,
    object: PathBuf,
    depfile: PathBuf,
    host_object: PathBuf,
    host_depfile: PathBuf,
    /// Its cache key, when it can be cached.
    key: Option<Digest>,
    /// It uses the precompiled header.
    with_pch: bool,
}

/// Compiles `plan` (from the cache where it can) and links `out/program.so`, with the
/// build's job runner.
#[allow(clippy::too_many_arguments)]
pub(crate) fn compile_and_link(
    plan: &Plan,
    folder: &BuildFolder,
    (ctx, dispatcher): (&Context<'_>, &mut Dispatcher),
    at: &Paths,
    opts: &BuildOptions,
    (deadline, shown_name): (Instant, &str),
    steps: &mut Steps,
    on_line: &mut dyn FnMut(BuildLine),
) -> Result<Compiled, BuildError> {
    let host = folder.host();
    let root = ctx.launcher.build_root(host);
    let cache = open_cache(opts, on_line);
    let mut deps = Deps::new(root.clone(), at.out.clone(), host.to_path_buf());

    // The precompiled header: found in the cache (with the headers it holds), or to be made
    // after this build.
    let mut pch_found: Option<Vec<(DepPath, Digest)>> = None;
    let mut pch_to_make = None;
    if let (Some(spec), Some(cache)) = (&plan.pch, &cache)
        && !opts.clean
        && let Ok(key) = spec.key(opts, &root)
    {
        match cache.find(&key, &mut deps).and_then(|found| cache.pch(&found.entry).map(|dir| (found.deps, dir))) {
            Ok((held, dir)) => match link_pch(folder, &dir) {
                Ok(()) => {
                    on_line(info(format!("Using the precompiled {}", spec.what)));
                    pch_found = Some(held);
                }
                Err(e) => on_line(warning(format!("The precompiled {} cannot be used: {e}", spec.what))),
            },
            Err(miss) => {
                if let Miss::Corrupt(why) = miss {
                    on_line(warning(format!(
                        "The precompiled {} in the build cache was damaged ({why}); it was removed",
                        spec.what
                    )));
                }
                on_line(info(format!(
                    "No precompiled {} yet: this build compiles without, and it is made afterwards for the next builds",
                    spec.what
                )));
                pch_to_make = Some((spec.clone(), key));
            }
        }
    }
    let pch = plan.pch.as_ref().zip(pch_found.as_ref());

    // The jobs: every unit's, and the link.
    let mut slots = Vec::new();
    for (index, unit) in plan.units.iter().enumerate() {
        let with_pch = unit.precompiled && pch.is_some();
        let key = cache.as_ref().and_then(|_| unit_key(unit, opts, (&root, host)).ok());
        slots.push(Slot {
            unit,
            object: at.out.join(format!("{index}.o")),
            depfile: at.out.join(format!("{index}.d")),
            host_object: host.join(folder::OUT).join(format!("{index}.o")),
            host_depfile: host.join(folder::OUT).join(format!("{index}.d")),
            key,
            with_pch,
        });
    }
    let pch_dir = at.pch.clone();
    let jobs: Vec<Job> = slots
        .iter()
        .map(|s| {
            s.unit.job(
                &s.object,
                &s.depfile,
                pch.map(|(spec, _)| (spec, pch_dir.as_path())).filter(|_| s.with_pch),
                opts,
            )
        })
        .collect();
    let objects: Vec<PathBuf> = slots.iter().map(|s| s.object.clone()).collect();
    let link = toolchain::link_job(&objects, at, shown_name, opts);
    steps.mark("prepare");

    // The cache.
    let mut to_compile: Vec<usize> = Vec::new();
    let mut reused = Vec::new();
    for (index, slot) in slots.iter().enumerate() {
        let found = match (&cache, slot.key) {
            (Some(cache), Some(key)) if !opts.clean => {
                cache.find(&key, &mut deps).and_then(|found| cache.read_object(&found.entry))
            }
            _ => Err(Miss::Absent),
        };
        match found {
            Ok(object) => {
                let name = format!("{index}.o");
                folder.write_in(folder::OUT, &name, &object)?;
                reused.push(slot.unit.name.clone());
            }
            Err(miss) => {
                if let Miss::Corrupt(why) = miss {
                    on_line(warning(format!(
                        "The build cache's entry for {} was damaged ({why}); it was removed and the unit is compiled",
                        slot.unit.name
                    )));
                }
                to_compile.push(index);
            }
        }
    }
    if cache.is_some() {
        on_line(info(reuse_line(&reused, slots.len(), opts.clean)));
    }
    steps.mark("cache lookup");

    let compile: Vec<&Job> = to_compile.iter().map(|i| &jobs[*i]).collect();
    let starts = longest_first(&slots, &to_compile, at, (&root, host));
    runner::run_starting(&compile, &starts, opts.jobs, dispatcher, (deadline, opts.timeout), on_line)?;
    steps.mark("compile");

    // Link, and meanwhile store what was compiled.
    let compiled: Vec<&Slot> = to_compile.iter().map(|i| &slots[*i]).collect();
    let pch_use = std::thread::scope(|scope| {
        let held = pch.map(|(_, held)| held.as_slice()).unwrap_or_default();
        let storing = scope.spawn(|| store(cache.as_ref(), &compiled, held, &mut deps));
        let linked = runner::run(&[&link], 1, dispatcher, (deadline, opts.timeout), on_line);
        let pch_use = storing.join().unwrap_or_default();
        linked.map(|()| pch_use)
    })?;
    if let Some((spec, _)) = pch {
        let offered = compiled.iter().filter(|s| s.with_pch).count();
        if offered > 0 {
            on_line(info(format!("The precompiled {} was used by {pch_use} of {offered} compiled units", spec.what)));
        }
    }
    steps.mark("link");
    let compiled = compiled.iter().map(|s| s.unit.name.clone()).collect();
    Ok(Compiled { reused, compiled, pch_to_make })
}

/// The order to start the compilations in (positions in `to_compile`): the longest first,
/// so that no long one starts last while the other CPUs idle. The builder's own units (the
/// runtime adapter, the RETAIN table, the MD5) go first: the STruC++ adapter reads the
/// program's header and the adapter's own, the longest compilation of a program. The
/// bundle's units follow, the largest first. Their output is still shown in file order.
fn longest_first(slots: &[Slot], to_compile: &[usize], at: &Paths, (root, host): (&Path, &Path)) -> Vec<usize> {
    let size = |slot: &Slot| {
        let rel = slot.unit.source.strip_prefix(root).ok()?;
        std::fs::metadata(host.join(rel)).map(|m| m.len()).ok()
    };
    let mut order: Vec<(bool, std::cmp::Reverse<u64>, usize)> = to_compile
        .iter()
        .enumerate()
        .map(|(position, &i)| {
            let slot = &slots[i];
            let ours = slot.unit.source.starts_with(&at.out);
            (!ours, std::cmp::Reverse(size(slot).unwrap_or(0)), position)
        })
        .collect();
    order.sort();
    order.into_iter().map(|(_, _, position)| position).collect()
}

fn open_cache(opts: &BuildOptions, on_line: &mut dyn FnMut(BuildLine)) -> Option<Cache> {
    let settings = opts.cache.as_ref()?;
    match Cache::open(settings) {
        Ok(cache) => Some(cache),
        Err(e) => {
            on_line(warning(format!(
                "The build cache {} cannot be used ({e}); every unit is compiled",
                settings.dir.display()
            )));
            None
        }
    }
}

/// Links (or copies) the precompiled header's files into the build folder's `pch/`.
fn link_pch(folder: &BuildFolder, dir: &Path) -> Result<(), BuildError> {
    let list = std::fs::read_dir(dir).map_err(|e| BuildError::io(format!("cannot read {}", dir.display()), e))?;
    for item in list.flatten() {
        if item.file_name() != "meta.json" {
            folder.link_in(folder::PCH, &item.path())?;
        }
    }
    Ok(())
}

/// "Build cache: 5 of 7 units reused (Config0.c, ...)".
fn reuse_line(reused: &[String], total: usize, clean: bool) -> String {
    if clean {
        return format!("Clean build: all {total} units are compiled, none taken from the build cache");
    }
    match reused {
        [] => format!("Build cache: none of the {total} units could be reused"),
        names => format!("Build cache: {} of {total} units reused ({})", names.len(), names.join(", ")),
    }
}

/// A unit's key: its bytes, where it is, its flags and include directories, the compiler,
/// the environment the compiler sees, and this builder's cache format and adapter sources.
/// The headers it includes are checked by the cache. Whether it was compiled with the
/// precompiled header is not part of it: that is a faster way to read the same headers,
/// and they are recorded either way.
fn unit_key(unit: &Unit, opts: &BuildOptions, (root, host): (&Path, &Path)) -> std::io::Result<Digest> {
    let program = if unit.cplusplus { &opts.cxx } else { &opts.cc };
    let mut key = KeyHasher::new("unit");
    key.field(crate::CACHE_FORMAT.as_bytes()).digest(&crate::adapter_digest());
    key.digest(&compiler_identity(program)?).field(program.as_bytes());
    for flag in unit.flags.iter().chain(&unit.defines) {
        key.field(flag.as_bytes());
    }
    key.field(b"includes");
    for dir in &unit.includes {
        key.field(relative_to(dir, root).as_bytes());
    }
    key.field(relative_to(&unit.source, root).as_bytes());
    let rel = unit.source.strip_prefix(root).map_err(|_| std::io::Error::other("a unit outside the build folder"))?;
    key.digest(&file_digest(&host.join(rel))?);
    key.field(std::env::var_os("PATH").unwrap_or_default().as_encoded_bytes());
    Ok(key.finish())
}

/// Stores every compiled unit that can be cached; how many used the precompiled header.
/// A unit compiled with the precompiled header did not read the headers it holds: they are
/// `held`, recorded with the unit's own.
fn store(cache: Option<&Cache>, compiled: &[&Slot], held: &[(DepPath, Digest)], deps: &mut Deps) -> usize {
    let mut used_pch = 0;
    let sentinel = format!("{}/{}", folder::PCH, pch::SENTINEL);
    for slot in compiled {
        let Some(files) = read_depfile(&slot.host_depfile) else { continue };
        let source = deps.classify(&slot.unit.source);
        let mut recorded = Vec::new();
        let mut cacheable = true;
        let mut saw_sentinel = false;
        for file in &files {
            let dep = deps.classify(file);
            if dep.is_some() && dep == source {
                continue; // its bytes are in the key
            }
            match dep {
                Some(DepPath::Folder(rel)) if rel.starts_with(&format!("{}/", folder::PCH)) => {
                    saw_sentinel |= rel == sentinel;
                }
                Some(dep) => match deps.digest(&dep) {
                    Some(digest) => recorded.push((dep, digest)),
                    None => cacheable = false,
                },
                None => cacheable = false,
            }
        }
        if slot.with_pch {
            // Through the precompiled header or through its wrapper's text: these headers
            // either way (the wrapper includes the real header by its path).
            recorded.extend(held.iter().cloned());
            recorded.sort();
            recorded.dedup();
            used_pch += usize::from(!saw_sentinel);
        }
        let (Some(cache), Some(key), true) = (cache, slot.key, cacheable) else { continue };
        if let Ok(object) = std::fs::read(&slot.host_object) {
            let _ = cache.store_object(&key, recorded, &object);
        }
    }
    if let Some(cache) = cache
        && !compiled.is_empty()
    {
        cache.evict();
    }
    used_pch
}

fn info(text: String) -> BuildLine {
    BuildLine { level: Level::Info, text }
}

fn warning(text: String) -> BuildLine {
    BuildLine { level: Level::Warning, text }
}
