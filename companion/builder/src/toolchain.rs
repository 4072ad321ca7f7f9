//! What differs between the two generations of bundles, behind one interface: each
//! generation (`matiec.rs`, `strucpp.rs`) says where the Editor and the program keep their
//! MD5, which sources of ours go with the bundle, and how its translation units compile.
//! Linking and the load check are the same for both.

use crate::md5::Witness;
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
}

/// A source file of ours written beside the objects: an adapter, a header, a generated table.
pub(crate) struct OurSource {
    pub name: &'static str,
    pub text: Cow<'static, str>,
}

pub(crate) trait Toolchain {
    fn generation(&self) -> Generation;

    /// The Editor's copy of the program's MD5 and the program's own, from the bundle.
    fn md5_witnesses(&self, bundle: &Path) -> (Witness, Witness);

    /// Our sources for this bundle.
    fn our_sources(&self, bundle: &Path, on_line: &mut dyn FnMut(BuildLine)) -> Vec<OurSource>;

    /// One job per translation unit, in the order their output is shown, each writing one
    /// object into `at.out`; and the objects, in link order. `bundle` is the bundle on the
    /// host (to list its files).
    fn compile_jobs(
        &self,
        bundle: &Path,
        at: &Paths,
        opts: &BuildOptions,
    ) -> Result<(Vec<Job>, Vec<PathBuf>), BuildError>;
}

/// `<flags> -I<dir>... -c <source> -o <object>`.
pub(crate) fn compile_args(flags: &[&str], includes: &[PathBuf], source: &Path, object: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = flags.iter().map(OsString::from).collect();
    for dir in includes {
        args.push("-I".into());
        args.push(dir.into());
    }
    args.extend(["-c".into(), source.into(), "-o".into(), object.into()]);
    args
}

/// The library's name inside the build folder.
pub(crate) const LIBRARY: &str = "program.so";

/// Links with the C++ compiler (c_blocks_code.cpp may need its runtime). `-z defs` turns a
/// symbol the program needs but nobody defines into a build error rather than a crash of
/// the scan when it is first called (programs are loaded with lazy binding); `-Bsymbolic`
/// keeps two loaded programs from binding to each other's globals.
pub(crate) fn link_job(objects: &[PathBuf], at: &Paths, shown_name: &str, opts: &BuildOptions) -> Job {
    let mut args: Vec<OsString> = vec!["-shared".into(), "-o".into(), at.out.join(LIBRARY).into()];
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
