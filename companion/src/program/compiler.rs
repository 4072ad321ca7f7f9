//! The seam between the upload pipeline and the program builder (`openplc-builder`), so
//! the pipeline can be tested with a fake compiler and the builder can change behind it.

use crate::logs::LogHub;
use openplc_builder::{
    BackgroundLog, BuildError, BuildLine, BuildOptions, CacheSettings, Generation, Isolation, Level,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What one upload asks of its build.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildRequest {
    /// Compile every unit, taking nothing from the build cache (`POST
    /// /api/upload-file?clean=1`); what is compiled is still stored for later builds.
    pub clean: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Built {
    /// The program's MD5 as the Editor computes it (what the debugger compares).
    pub md5: Option<String>,
    pub duration: Duration,
    /// Where the build's time went, step by step.
    pub steps: Vec<(&'static str, Duration)>,
}

pub trait ProgramCompiler: Send + Sync + 'static {
    /// Which Editor generation made the bundle in `src`, or why it is none the runtime knows.
    fn detect(&self, src: &Path) -> Result<Generation, BuildError>;

    /// Builds the bundle in `src` into the library `out`, reporting every compiler line in
    /// order. Blocking: run it on the blocking pool.
    fn build(
        &self,
        src: &Path,
        out: &Path,
        request: BuildRequest,
        on_line: &mut dyn FnMut(BuildLine),
    ) -> Result<Built, BuildError>;
}

/// The system C/C++ compiler, through `openplc-builder`: in its sandbox unless `sandbox` is
/// off, and every built library opened once by `openplc-rt check` in a throwaway, sandboxed
/// process before it may reach the real-time process (code that runs while a library loads,
/// C++ constructors, runs outside any fault guard).
pub struct SystemCompiler {
    pub cc: Option<String>,
    pub cxx: Option<String>,
    pub jobs: Option<usize>,
    pub timeout: Duration,
    /// `openplc-rt`, for the load check.
    pub checker: Option<PathBuf>,
    /// Whether the compilers run in the bubblewrap sandbox.
    pub sandbox: bool,
    /// The build cache (in the data directory), when there is one.
    pub cache: Option<CacheSettings>,
    /// Where work the builder does after a build (precompiling headers) is logged.
    pub logs: Option<Arc<LogHub>>,
}

impl SystemCompiler {
    fn options(&self, request: BuildRequest) -> BuildOptions {
        let mut opts = BuildOptions::default();
        if let Some(cc) = &self.cc {
            opts.cc = cc.clone();
        }
        if let Some(cxx) = &self.cxx {
            opts.cxx = cxx.clone();
        }
        if let Some(jobs) = self.jobs {
            opts.jobs = jobs.max(1);
        }
        opts.timeout = self.timeout;
        opts.load_check = self.checker.clone();
        opts.isolation = if self.sandbox { Isolation::Sandbox } else { Isolation::Unconfined };
        opts.cache = self.cache.clone();
        opts.clean = request.clean;
        opts.background_log = self.logs.clone().map(|logs| {
            BackgroundLog(Arc::new(move |line: BuildLine| match line.level {
                Level::Info => logs.info(line.text),
                Level::Warning => logs.warn(line.text),
                Level::Error => logs.error(line.text),
            }))
        });
        opts
    }

    /// How builds are confined, or why they cannot be: for the start-up log.
    pub fn sandbox_status(&self) -> Result<String, BuildError> {
        openplc_builder::sandbox_status(self.options(BuildRequest::default()).isolation)
    }
}

impl ProgramCompiler for SystemCompiler {
    fn detect(&self, src: &Path) -> Result<Generation, BuildError> {
        openplc_builder::detect(src)
    }

    fn build(
        &self,
        src: &Path,
        out: &Path,
        request: BuildRequest,
        on_line: &mut dyn FnMut(BuildLine),
    ) -> Result<Built, BuildError> {
        let report = openplc_builder::build(src, out, &self.options(request), on_line)?;
        Ok(Built { md5: report.md5, duration: report.duration, steps: report.steps })
    }
}
