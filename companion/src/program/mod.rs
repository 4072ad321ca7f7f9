//! Program deployment: the upload is answered at once, then in the background the bundle
//! is unzipped into a fresh folder, compiled into a library with our adapter, handed to
//! rt-core and started. `GET /api/compilation-status` follows along.
//!
//! A failed build changes nothing on the device: the last good program stays loaded and
//! keeps running (upstream leaves the device empty).

pub mod compiler;
pub mod store;
pub mod unzip;

use self::compiler::{BundleKind, LineLevel, ProgramCompiler};
use self::store::ProgramStore;
use crate::logs::LogHub;
use crate::rt_link::RtLink;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Compiler lines kept for one build.
const MAX_BUILD_LINES: usize = 10_000;
/// Longest compiler line kept.
const MAX_LINE: usize = 2000;
/// How long a freshly built program may take to load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum BuildState {
    Idle,
    Compiling,
    Success,
    Failed,
}

/// `GET /api/compilation-status`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CompilationStatus {
    pub status: BuildState,
    /// Cumulative for the current build, `[INFO]`/`[WARNING]`/`[ERROR]` prefixed.
    pub logs: Vec<String>,
    pub exit_code: Option<i32>,
}

/// Told about every program that was deployed (built, loaded and started), with the root of
/// its bundle: the plugins take their configuration from its `conf/`. Called on a blocking
/// thread.
pub trait DeployHook: Send + Sync + 'static {
    fn deployed(&self, bundle_root: &Path);
}

pub struct Programs {
    pub store: ProgramStore,
    deploy_hook: OnceLock<Arc<dyn DeployHook>>,
    status: Mutex<CompilationStatus>,
    building: AtomicBool,
    compiler: Arc<dyn ProgramCompiler>,
    plc: Arc<RtLink>,
    logs: Arc<LogHub>,
    build_log: PathBuf,
    /// How long a build waits for rt-core to be attached before loading.
    pub attach_timeout: Duration,
}

/// The right to run the one build at a time; released when dropped unused.
pub struct BuildTicket {
    programs: Arc<Programs>,
    used: bool,
}

impl Drop for BuildTicket {
    fn drop(&mut self) {
        if !self.used {
            self.programs.building.store(false, Ordering::Release);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("Runtime is compiling another program, please wait")]
pub struct AlreadyBuilding;

impl Programs {
    pub fn new(
        store: ProgramStore,
        compiler: Arc<dyn ProgramCompiler>,
        plc: Arc<RtLink>,
        logs: Arc<LogHub>,
        build_log: PathBuf,
    ) -> Programs {
        Programs {
            store,
            deploy_hook: OnceLock::new(),
            status: Mutex::new(CompilationStatus { status: BuildState::Idle, logs: Vec::new(), exit_code: None }),
            building: AtomicBool::new(false),
            compiler,
            plc,
            logs,
            build_log,
            attach_timeout: Duration::from_secs(10),
        }
    }

    /// Sets who hears about deployed programs (once).
    pub fn set_deploy_hook(&self, hook: Arc<dyn DeployHook>) {
        let _ = self.deploy_hook.set(hook);
    }

    pub fn status(&self) -> CompilationStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_building(&self) -> bool {
        self.building.load(Ordering::Acquire)
    }

    /// Reserves the builder; refused while another build runs.
    pub fn begin(self: &Arc<Self>) -> Result<BuildTicket, AlreadyBuilding> {
        self.building
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| AlreadyBuilding)?;
        Ok(BuildTicket { programs: self.clone(), used: false })
    }

    /// Starts building the saved upload `id` in the background.
    pub fn spawn_build(self: &Arc<Self>, mut ticket: BuildTicket, id: String) {
        ticket.used = true;
        {
            let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
            *st = CompilationStatus { status: BuildState::Compiling, logs: Vec::new(), exit_code: None };
        }
        let this = self.clone();
        tokio::spawn(async move {
            let ok = this.clone().run(&id).await;
            this.finish(&id, ok);
        });
    }

    fn push(&self, level: LineLevel, text: &str) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if st.logs.len() == MAX_BUILD_LINES {
            st.logs.push("[WARNING] … further compiler output omitted".into());
        }
        if st.logs.len() > MAX_BUILD_LINES {
            return;
        }
        let mut line = format!("{}{}", level.prefix(), text.trim_end());
        if line.len() > MAX_LINE {
            let mut end = MAX_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        st.logs.push(line);
    }

    async fn run(self: Arc<Self>, id: &str) -> bool {
        let record = self.store.record(id);
        let zip = self.store.upload_path(id);
        self.push(LineLevel::Info, "Starting compilation");
        self.logs.info(format!("Building uploaded program {id}"));

        let src = record.sources();
        let dir = record.dir.clone();
        let extracted = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| unzip::UnzipError(format!("{}: {e}", dir.display())))?;
            unzip::extract(&zip, &src)
        })
        .await;
        match extracted {
            Ok(Ok(x)) => {
                self.push(LineLevel::Info, &format!("Extracted {} files ({} KiB)", x.files, x.bytes.div_ceil(1024)))
            }
            Ok(Err(e)) => {
                self.push(LineLevel::Error, &format!("Uploaded ZIP file failed safety checks: {e}"));
                return false;
            }
            Err(e) => {
                self.push(LineLevel::Error, &format!("Extraction failed: {e}"));
                return false;
            }
        }

        let compiler = self.compiler.clone();
        let src = record.sources();
        let kind = match tokio::task::spawn_blocking(move || compiler.detect(&src)).await {
            Ok(Ok(kind)) => kind,
            Ok(Err(e)) => {
                self.push(LineLevel::Error, &format!("Not a program bundle this runtime can build: {e}"));
                return false;
            }
            Err(e) => {
                self.push(LineLevel::Error, &format!("Bundle detection failed: {e}"));
                return false;
            }
        };
        match kind {
            BundleKind::Matiec => self.push(LineLevel::Info, "MatIEC bundle (OpenPLC Editor 4.1.4 or earlier)"),
            BundleKind::Strucpp => self.push(LineLevel::Info, "STruC++ bundle (OpenPLC Editor 4.2 or later)"),
        }

        let compiler = self.compiler.clone();
        let src = record.sources();
        let library = record.library();
        let this = self.clone();
        let built = tokio::task::spawn_blocking(move || {
            compiler.build(&src, &library, &mut |level, text| this.push(level, text))
        })
        .await;
        let built = match built {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                self.push(LineLevel::Error, &format!("Compilation failed: {e}"));
                return false;
            }
            Err(e) => {
                self.push(LineLevel::Error, &format!("Compilation failed: {e}"));
                return false;
            }
        };
        self.push(
            LineLevel::Info,
            &format!(
                "Compiled in {:.1} s{}",
                built.duration.as_secs_f64(),
                built.md5.as_ref().map(|m| format!(", program MD5 {m}")).unwrap_or_default()
            ),
        );

        if !self.plc.wait_attached(self.attach_timeout).await {
            self.push(LineLevel::Error, "The real-time core (openplc-rt) is not running; the program was not loaded");
            return false;
        }
        self.push(LineLevel::Info, "Loading the program into the real-time core");
        // Busy until the deploy hook has applied the upload's plugin configuration too, so
        // the plugin watcher starts the new set once, not once per half-applied step.
        let _deploying = self.plc.busy_guard();
        // A new upload starts cold, as upstream: its RETAIN variables take their initial
        // values, and the values saved for the previous program are dropped.
        match self.plc.load(&record.library(), true, false, LOAD_TIMEOUT).await {
            Ok(loaded) => {
                if let Err(e) = self.store.set_current(id, true, built.md5.clone()) {
                    self.logs.error(format!("Could not record the new program as current: {e}"));
                }
                self.plc.leave_safe_mode();
                if let Some(store) = self.plc.retain_store().cloned()
                    && let Err(e) = tokio::task::spawn_blocking(move || store.clear()).await.unwrap_or(Ok(()))
                {
                    self.logs.warn(format!("Could not remove the previous program's RETAIN values: {e}"));
                }
                self.push(LineLevel::Info, &format!("Program #{} loaded and started", loaded.program_gen));
                if let Some(hook) = self.deploy_hook.get().cloned() {
                    let src = record.sources();
                    let _ = tokio::task::spawn_blocking(move || hook.deployed(&src)).await;
                }
                true
            }
            Err(e) => {
                self.push(LineLevel::Error, &format!("The real-time core refused the program: {e}"));
                false
            }
        }
    }

    fn finish(&self, id: &str, ok: bool) {
        let logs = {
            let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if !ok {
                let tail = if self.store.current().is_some() {
                    "Build FAILED; the previous program is still loaded"
                } else {
                    "Build FAILED"
                };
                st.logs.push(format!("{}{tail}", LineLevel::Error.prefix()));
            }
            st.status = if ok { BuildState::Success } else { BuildState::Failed };
            st.exit_code = Some(if ok { 0 } else { 1 });
            st.logs.join("\n")
        };
        if ok {
            self.logs.info(format!("Program {id} built, loaded and running"));
        } else {
            self.store.discard(id);
            self.logs.error(format!("Build of program {id} failed; the PLC keeps its previous program"));
        }
        let _ = std::fs::write(&self.build_log, logs + "\n");
        self.building.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::compiler::Built;
    use super::*;
    use std::path::Path;

    struct FakeCompiler {
        fail: bool,
    }

    impl ProgramCompiler for FakeCompiler {
        fn detect(&self, src: &Path) -> Result<BundleKind, String> {
            if src.join("generated.hpp").exists() {
                Ok(BundleKind::Strucpp)
            } else if src.join("Config0.c").exists() {
                Ok(BundleKind::Matiec)
            } else {
                Err("no Config0.c".into())
            }
        }
        fn build(&self, _src: &Path, out: &Path, on_line: &mut dyn FnMut(LineLevel, &str)) -> Result<Built, String> {
            on_line(LineLevel::Info, "cc -c Config0.c");
            if self.fail {
                on_line(LineLevel::Error, "Config0.c:1: error: expected ';'");
                return Err("cc exited with status 1".into());
            }
            std::fs::write(out, b"not really a library").unwrap();
            Ok(Built { md5: Some("0123".into()), duration: Duration::from_millis(5) })
        }
    }

    fn programs(fail: bool) -> (tempfile::TempDir, Arc<Programs>) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(LogHub::in_memory());
        let store = ProgramStore::open(dir.path()).unwrap();
        let plc = Arc::new(RtLink::new(logs.clone()));
        let mut p = Programs::new(store, Arc::new(FakeCompiler { fail }), plc, logs, dir.path().join("build.log"));
        p.attach_timeout = Duration::from_millis(50);
        (dir, Arc::new(p))
    }

    async fn wait_done(p: &Programs) -> CompilationStatus {
        for _ in 0..2000 {
            let st = p.status();
            if st.status != BuildState::Compiling {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("build did not finish");
    }

    fn upload(p: &Programs, entries: &[(&str, &[u8])]) -> String {
        let id = p.store.new_id();
        unzip::tests::make_zip(&p.store.upload_path(&id), entries, zip::CompressionMethod::Stored);
        id
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compiler_errors_fail_with_their_lines_and_one_build_at_a_time() {
        let (_d, p) = programs(true);
        let id = upload(&p, &[("Config0.c", b"int x")]);
        let ticket = p.begin().unwrap();
        assert!(p.begin().is_err(), "one build at a time");
        p.spawn_build(ticket, id.clone());
        let st = wait_done(&p).await;
        assert_eq!(st.status, BuildState::Failed);
        assert_eq!(st.exit_code, Some(1));
        assert!(st.logs.iter().any(|l| l == "[INFO] cc -c Config0.c"), "{:?}", st.logs);
        assert!(st.logs.iter().any(|l| l.starts_with("[ERROR] Config0.c:1")));
        assert!(!p.store.record(&id).dir.exists(), "failed build discarded");
        assert!(p.begin().is_ok(), "builder free again");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unsafe_zip_fails_clearly() {
        let (_d, p) = programs(false);
        let id = upload(&p, &[("Config0.c", b"x"), ("../escape.c", b"x")]);
        p.spawn_build(p.begin().unwrap(), id);
        let st = wait_done(&p).await;
        assert_eq!(st.status, BuildState::Failed);
        assert!(st.logs.iter().any(|l| l.contains("failed safety checks") && l.contains("..")), "{:?}", st.logs);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_strucpp_bundle_is_named_and_handed_to_the_compiler() {
        let (_d, p) = programs(false);
        let id = upload(&p, &[("generated.hpp", b"x"), ("generated.cpp", b"x")]);
        p.spawn_build(p.begin().unwrap(), id);
        let st = wait_done(&p).await;
        assert!(st.logs.iter().any(|l| l.contains("STruC++ bundle (OpenPLC Editor 4.2 or later)")), "{:?}", st.logs);
        assert!(st.logs.iter().any(|l| l.contains("Compiled in")), "{:?}", st.logs);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_build_without_rt_core_fails_after_compiling() {
        let (_d, p) = programs(false);
        let id = upload(&p, &[("Config0.c", b"x")]);
        p.spawn_build(p.begin().unwrap(), id);
        let st = wait_done(&p).await;
        assert_eq!(st.status, BuildState::Failed);
        assert!(st.logs.iter().any(|l| l.contains("openplc-rt") && l.contains("not running")), "{:?}", st.logs);
    }
}
