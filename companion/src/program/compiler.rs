//! The seam between the upload pipeline and the program builder (`openplc-builder`), so
//! the pipeline can be tested with a fake compiler and the builder can change behind it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Which Editor generation produced a bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleKind {
    /// MatIEC C sources: Editor ≤ 4.1.4.
    Matiec,
    /// STruC++ C++ sources: Editor ≥ 4.2.
    Strucpp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineLevel {
    Info,
    Warning,
    Error,
}

impl LineLevel {
    /// The prefix the Editor's console colours by (and strips).
    pub fn prefix(self) -> &'static str {
        match self {
            LineLevel::Info => "[INFO] ",
            LineLevel::Warning => "[WARNING] ",
            LineLevel::Error => "[ERROR] ",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Built {
    /// The program's MD5 as the Editor computes it (what the debugger compares).
    pub md5: Option<String>,
    pub duration: Duration,
}

pub trait ProgramCompiler: Send + Sync + 'static {
    /// What kind of bundle `src` holds, or why it is none the runtime knows.
    fn detect(&self, src: &Path) -> Result<BundleKind, String>;

    /// Builds the bundle in `src` into the library `out`, reporting every compiler line in
    /// order. Blocking: run it on the blocking pool.
    fn build(&self, src: &Path, out: &Path, on_line: &mut dyn FnMut(LineLevel, &str)) -> Result<Built, String>;
}

/// The system C/C++ compiler, through `openplc-builder`.
pub struct SystemCompiler {
    pub cc: Option<String>,
    pub cxx: Option<String>,
    pub jobs: Option<usize>,
    pub timeout: Duration,
    /// `openplc-rt`, to open every built library once in a throwaway process
    /// (`openplc-rt check`) before it may reach the real-time process: code that runs while
    /// a library loads (C++ constructors) runs outside any fault guard.
    pub checker: Option<PathBuf>,
}

/// What `openplc-rt check` prints when the library loaded (rt-core's `ctl::CHECK_OK`).
const CHECK_OK: &str = "loads, program ABI";

/// How long `openplc-rt check` may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens `library` with `openplc-rt check`: `Err` with a sentence for the build log when
/// it fails, crashes or hangs.
fn check_library(checker: &Path, library: &Path) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(checker)
        .arg("check")
        .arg(library)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {} check: {e}", checker.display()))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the program did not finish loading within {} s", CHECK_TIMEOUT.as_secs()));
            }
        }
    };
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().trim_start_matches("openplc-rt: ").to_string();
    match (status.success(), status.signal()) {
        // The success line too: a library that ends the checker with status 0 from its
        // constructors (a raw exit system call) printed nothing.
        (true, _) if String::from_utf8_lossy(&output.stdout).contains(CHECK_OK) => Ok(said(&output.stdout)),
        (true, _) => {
            Err("the program ended the check while loading, without an error: its start-up code is faulty".into())
        }
        (false, Some(signal)) => Err(format!(
            "the program crashed while loading ({}): its start-up code is faulty",
            shared_abi::msg::signal_name(signal)
        )),
        (false, None) => Err(said(&output.stderr)),
    }
}

impl SystemCompiler {
    fn options(&self) -> openplc_builder::BuildOptions {
        let mut opts = openplc_builder::BuildOptions::default();
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
        opts
    }
}

impl ProgramCompiler for SystemCompiler {
    fn detect(&self, src: &Path) -> Result<BundleKind, String> {
        match openplc_builder::detect(src) {
            Ok(openplc_builder::Generation::Matiec) => Ok(BundleKind::Matiec),
            Ok(openplc_builder::Generation::Strucpp) => Ok(BundleKind::Strucpp),
            Err(e) => Err(e.to_string()),
        }
    }

    fn build(&self, src: &Path, out: &Path, on_line: &mut dyn FnMut(LineLevel, &str)) -> Result<Built, String> {
        let opts = self.options();
        let report = openplc_builder::build(src, out, &opts, &mut |line: openplc_builder::BuildLine| {
            let level = match line.level {
                openplc_builder::Level::Info => LineLevel::Info,
                openplc_builder::Level::Warning => LineLevel::Warning,
                openplc_builder::Level::Error => LineLevel::Error,
            };
            on_line(level, &line.text);
        })
        .map_err(|e| e.to_string())?;
        if let Some(checker) = &self.checker {
            match check_library(checker, out) {
                Ok(said) => on_line(LineLevel::Info, &format!("Load check: {said}")),
                Err(why) => {
                    on_line(LineLevel::Error, &format!("Load check failed: {why}"));
                    return Err(why);
                }
            }
        }
        Ok(Built { md5: report.md5, duration: report.duration })
    }
}
