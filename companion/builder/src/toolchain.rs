//! What differs between the two generations of bundles, behind one interface: each
//! generation (`matiec.rs`, `strucpp.rs`) says where the Editor and the program keep their
//! MD5, which sources of ours go with the bundle, how its translation units compile, and
//! which of their headers are worth precompiling. Linking and the load check are the same
//! for both.

use crate::md5::Witness;
use crate::pch::PchSpec;
use crate::runner::Job;
use crate::{BuildError, BuildLine, BuildOptions, Generation};
use std::borrow::Cow;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The build folder as the compilers see it (inside the sandbox, or on the host).
pub(crate) struct Paths {
    /// The copy of the bundle.
    pub src: PathBuf,
    /// Our sources, the objects and the library.
    pub out: PathBuf,
    /// The precompiled header, when the build has one.
    pub pch: PathBuf,
}

/// A source file of ours written beside the objects: an adapter, a header, a generated table.
pub(crate) struct OurSource {
    pub name: &'static str,
    pub text: Cow<'static, str>,
}

/// One translation unit.
#[derive(Clone, Debug)]
pub(crate) struct Unit {
    /// As shown: "Config0.c", "the runtime adapter".
    pub name: String,
    /// The source, as the compiler sees it.
    pub source: PathBuf,
    pub cplusplus: bool,
    /// The flags it shares with the precompiled header of its generation.
    pub flags: Vec<String>,
    /// Its own definitions (`-D...`).
    pub defines: Vec<String>,
    /// Include directories, in search order.
    pub includes: Vec<PathBuf>,
    /// It may use the build's precompiled header (its first line includes what it holds).
    pub precompiled: bool,
}

/// How a bundle compiles.
pub(crate) struct Plan {
    /// In the order their output is shown and their objects are linked.
    pub units: Vec<Unit>,
    /// The headers worth precompiling, when the bundle's first lines allow it.
    pub pch: Option<PchSpec>,
}

pub(crate) trait Toolchain {
    fn generation(&self) -> Generation;

    /// The Editor's copy of the program's MD5 and the program's own, from the bundle.
    fn md5_witnesses(&self, bundle: &Path) -> (Witness, Witness);

    /// Our sources for this bundle.
    fn our_sources(&self, bundle: &Path, on_line: &mut dyn FnMut(BuildLine)) -> Vec<OurSource>;

    /// The translation units and the precompiled header. `bundle` is the bundle on the host
    /// (to list and read its files).
    fn plan(&self, bundle: &Path, at: &Paths, opts: &BuildOptions) -> Result<Plan, BuildError>;
}

impl Unit {
    /// The compile job writing `object` and the dependency file `depfile`, with the
    /// precompiled header `pch` when given (and the unit may use it).
    pub fn job(&self, object: &Path, depfile: &Path, pch: Option<(&PchSpec, &Path)>, opts: &BuildOptions) -> Job {
        let mut args: Vec<OsString> = self.flags.iter().chain(&self.defines).map(OsString::from).collect();
        let mut includes: Vec<&Path> = self.includes.iter().map(PathBuf::as_path).collect();
        if let Some((spec, dir)) = pch.filter(|_| self.precompiled) {
            if spec.forced {
                args.push("-include".into());
                args.push(dir.join(&spec.header).into());
            } else {
                includes.insert(0, dir);
            }
        }
        for dir in includes {
            args.push("-I".into());
            args.push(dir.into());
        }
        args.extend(["-c".into(), self.source.clone().into(), "-o".into(), object.into()]);
        args.extend(["-MD".into(), "-MF".into(), depfile.into()]);
        Job {
            label: format!("Compiling {}", self.name),
            step: format!("compiling {}", self.name),
            program: if self.cplusplus { opts.cxx.clone() } else { opts.cc.clone() },
            args,
        }
    }
}

/// The library's name inside the build folder.
pub(crate) const LIBRARY: &str = "program.so";

/// Links with the C++ compiler (c_blocks_code.cpp may need its runtime). `-z defs` turns a
/// symbol the program needs but nobody defines into a build error rather than a crash of
/// the scan when it is first called (programs are loaded with lazy binding); `-Bsymbolic`
/// keeps two loaded programs from binding to each other's globals.
///
/// With gold when the system has it (binutils' `ld.gold`): it links these libraries in half
/// the time of the default linker.
pub(crate) fn link_job(objects: &[PathBuf], at: &Paths, shown_name: &str, opts: &BuildOptions) -> Job {
    let mut args: Vec<OsString> = vec!["-shared".into(), "-o".into(), at.out.join(LIBRARY).into()];
    if has_gold() {
        args.push("-fuse-ld=gold".into());
    }
    args.extend(objects.iter().map(OsString::from));
    args.extend(["-Wl,-z,defs", "-Wl,-Bsymbolic", "-lpthread", "-lrt", "-lm"].iter().map(OsString::from));
    Job {
        label: format!("Linking {shown_name}"),
        step: "linking the program library".into(),
        program: opts.cxx.clone(),
        args,
    }
}

/// `openplc-rt check <library>`: opens the library in a throwaway process, where code that
/// runs while it loads (C++ constructors) can crash or hang without harming anything.
pub(crate) fn check_job(checker: &Path, at: &Paths) -> Job {
    Job {
        label: "Checking that the program loads (in a throwaway process)".into(),
        step: "checking that the program loads".into(),
        program: checker.to_string_lossy().into_owned(),
        args: vec!["check".into(), at.out.join(LIBRARY).into()],
    }
}

/// Whether `ld.gold` is on PATH (asked once).
fn has_gold() -> bool {
    static GOLD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *GOLD.get_or_init(|| crate::sandbox::find_program("ld.gold".as_ref()).is_some())
}
