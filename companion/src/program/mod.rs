//! Program deployment: the upload is answered at once, then in the background the bundle
//! is unzipped into a fresh folder, compiled into a library with our adapter, handed to
//! rt-core and started. `GET /api/compilation-status` follows along.
//!
//! A failed build changes nothing on the device: the last good program stays loaded and
//! keeps running (upstream leaves the device empty).

pub mod compiler;
pub mod image_conf;
pub mod online;
pub mod rt_access;
pub mod snapshot;
pub mod store;
pub mod tasks;
pub mod unzip;
pub mod upload;

use self::compiler::{BuildRequest, ProgramCompiler};
use self::store::ProgramStore;
use self::unzip::UnzipError;
use crate::logs::LogHub;
use crate::rt_link::{LoadRequest, RetainStart, RtLink};
use openplc_builder::{BuildError, Level};
use openplc_plugin_host::RunSwitch;
use serde::Serialize;
use shared_abi::sizes::ImageSizes;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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
/// its bundle: the plugins take their configuration from its `conf/`. What it passes to
/// `build_log` ends the upload's build log (a configuration that cannot be used, say).
/// Called on a blocking thread.
pub trait DeployHook: Send + Sync + 'static {
    fn deployed(&self, bundle_root: &Path, build_log: &mut dyn FnMut(Level, &str));
}

/// Why an upload was not deployed; the build log's last line says it. The running program
/// is never touched.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("Uploaded ZIP file failed safety checks: {0}")]
    Refused(String),
    #[error("Could not extract the upload: {0}")]
    Extract(UnzipError),
    #[error("Not a program bundle this runtime can build: {0}")]
    NotABundle(BuildError),
    #[error("Compilation failed: {0}")]
    Compile(BuildError),
    #[error("The upload's image.conf was refused: {0}")]
    ImageConf(image_conf::ImageConfError),
    #[error("The real-time core (openplc-rt) is not running; the program was not loaded")]
    NoCore,
    /// rt-core runs but this runtime cannot use it (its lease is held, or it runs another
    /// installation's program): the supervisor's reason.
    #[error("The real-time core (openplc-rt) is not available to this runtime: {0}; the program was not loaded")]
    CoreUnavailable(String),
    #[error("The real-time core refused the program: {0}")]
    Rejected(Box<dyn std::error::Error + Send + Sync>),
    #[error("{0} stopped unexpectedly: {1}")]
    Task(&'static str, tokio::task::JoinError),
}

impl From<UnzipError> for DeployError {
    fn from(e: UnzipError) -> DeployError {
        match e {
            UnzipError::Refused(why) => DeployError::Refused(why),
            write => DeployError::Extract(write),
        }
    }
}

impl DeployError {
    /// Whether the device could not store what the deployment wrote (full, over quota,
    /// failing): then the upload itself is removed too, to give the space back.
    pub fn is_storage(&self) -> bool {
        match self {
            DeployError::Extract(e) => e.is_storage(),
            DeployError::Compile(e) => e.is_storage(),
            _ => false,
        }
    }
}

/// Runs `f` on the blocking pool; a panic in it becomes [`DeployError::Task`].
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, DeployError> + Send + 'static,
) -> Result<T, DeployError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| DeployError::Task(what, e))?
}

/// Where an upload's time went, from the start of its extraction to the program running:
/// one line of the build log (`benches/deploy` reads it).
struct DeployTimings {
    extract: Duration,
    detect: Duration,
    build: Duration,
    build_steps: Vec<(&'static str, Duration)>,
    /// Waiting for rt-core, loading (its load check, the swap at a cycle boundary) and
    /// starting.
    load: Duration,
}

impl std::fmt::Display for DeployTimings {
    /// `Deploy timings: extract 3 ms, detect 0 ms, build 120 ms (prepare 9 ms, ...), load
    /// and start 11 ms; total 134 ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        let steps: Vec<String> = self.build_steps.iter().map(|(step, d)| format!("{step} {}", ms(*d))).collect();
        let total = self.extract + self.detect + self.build + self.load;
        write!(
            f,
            "Deploy timings: extract {}, detect {}, build {} ({}), load and start {}; total {}",
            ms(self.extract),
            ms(self.detect),
            ms(self.build),
            steps.join(", "),
            ms(self.load),
            ms(total)
        )
    }
}

pub struct Programs {
    pub store: ProgramStore,
    /// The current program's project snapshot.
    pub snapshots: snapshot::Snapshots,
    /// The current program's tasks.
    pub tasks: tasks::TaskCache,
    /// A deployed program starts only while the run/stop switch says RUN.
    switch: Arc<RunSwitch>,
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

/// Why an upload is refused: one upload at a time, from its first byte to its build's end.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AlreadyBuilding {
    #[error("Another upload is in progress, please wait")]
    Receiving,
    #[error("Runtime is compiling another program, please wait")]
    Compiling,
}

impl Programs {
    pub fn new(
        store: ProgramStore,
        compiler: Arc<dyn ProgramCompiler>,
        plc: Arc<RtLink>,
        switch: Arc<RunSwitch>,
        logs: Arc<LogHub>,
        build_log: PathBuf,
    ) -> Programs {
        Programs {
            store,
            snapshots: snapshot::Snapshots::default(),
            tasks: tasks::TaskCache::default(),
            switch,
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

    /// Reserves the builder; refused while another upload is received or built.
    pub fn begin(self: &Arc<Self>) -> Result<BuildTicket, AlreadyBuilding> {
        self.building.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).map_err(|_| {
            if self.status().status == BuildState::Compiling {
                AlreadyBuilding::Compiling
            } else {
                AlreadyBuilding::Receiving
            }
        })?;
        Ok(BuildTicket { programs: self.clone(), used: false })
    }

    /// The current program's declared tasks (empty when unknown).
    pub fn current_tasks(&self) -> Arc<Vec<tasks::TaskDecl>> {
        match self.store.current() {
            Some(record) => self.tasks.of(&record.id, &record.sources()),
            None => Arc::new(Vec::new()),
        }
    }

    /// Starts building the saved upload `id` in the background; it replaces the running
    /// program by an online change when their variables match.
    pub fn spawn_build(self: &Arc<Self>, ticket: BuildTicket, id: String) {
        self.spawn_build_with(ticket, id, BuildRequest::default());
    }

    /// Starts building the saved upload `id` in the background, as `request` asks (`clean`:
    /// nothing taken from the build cache, and the new program starts cold: no online
    /// change).
    pub fn spawn_build_with(self: &Arc<Self>, mut ticket: BuildTicket, id: String, request: BuildRequest) {
        ticket.used = true;
        {
            let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
            *st = CompilationStatus { status: BuildState::Compiling, logs: Vec::new(), exit_code: None };
        }
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.clone().run(&id, request).await;
            this.finish(&id, result);
        });
    }

    fn push(&self, level: Level, text: &str) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if st.logs.len() == MAX_BUILD_LINES {
            st.logs.push("[WARNING] … further compiler output omitted".into());
        }
        if st.logs.len() > MAX_BUILD_LINES {
            return;
        }
        let mut line = format!("[{level}] {}", text.trim_end());
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

    /// The pipeline: unzip → detect → build (with the load check) → load → plugins.
    async fn run(self: Arc<Self>, id: &str, request: BuildRequest) -> Result<(), DeployError> {
        let started = Instant::now();
        let record = self.store.record(id);
        self.push(Level::Info, "Starting compilation");
        self.logs.info(format!("Building uploaded program {id}"));

        let (zip, src, dir) = (self.store.upload_path(id), record.sources(), record.dir.clone());
        let extracted = blocking("extraction", move || {
            std::fs::create_dir_all(&dir).map_err(|source| UnzipError::Write {
                what: format!("creating {} ({source})", dir.display()),
                source,
            })?;
            Ok(unzip::extract(&zip, &src)?)
        })
        .await?;
        self.push(
            Level::Info,
            &format!("Extracted {} files ({} KiB)", extracted.files, extracted.bytes.div_ceil(1024)),
        );
        let extracted_at = Instant::now();

        // Checked before compiling: a refused image.conf fails the build at once.
        let src = record.sources();
        let configured = blocking("image.conf", move || image_conf::read(&src).map_err(DeployError::ImageConf)).await?;
        match &configured {
            Some(sizes) => {
                self.push(Level::Info, &format!("Image sizes from image.conf: {}", image_conf::describe(sizes)))
            }
            None => self.push(Level::Info, "No image.conf: the image is sized from the program's located variables"),
        }

        let (compiler, src) = (self.compiler.clone(), record.sources());
        let generation =
            blocking("bundle detection", move || compiler.detect(&src).map_err(DeployError::NotABundle)).await?;
        self.push(Level::Info, &format!("{generation} bundle ({})", generation.editor_versions()));
        let detected_at = Instant::now();

        let (compiler, src, library, this) = (self.compiler.clone(), record.sources(), record.library(), self.clone());
        let built = blocking("compilation", move || {
            compiler
                .build(&src, &library, request, &mut |line| this.push(line.level, &line.text))
                .map_err(DeployError::Compile)
        })
        .await?;
        self.push(
            Level::Info,
            &format!(
                "Compiled in {:.1} s{}",
                built.duration.as_secs_f64(),
                built.md5.as_ref().map(|m| format!(", program MD5 {m}")).unwrap_or_default()
            ),
        );

        let built_at = Instant::now();
        if !self.plc.wait_attached(self.attach_timeout).await {
            return Err(self.plc.unavailable().map_or(DeployError::NoCore, DeployError::CoreUnavailable));
        }
        self.push(Level::Info, "Loading the program into the real-time core");
        // Busy until the deploy hook has applied the upload's plugin configuration too, so
        // the plugin watcher starts the new set once, not once per half-applied step.
        let _deploying = self.plc.busy_guard();
        // An online change when the running program's variables match the new one's: their
        // values carry over at the swap. Otherwise (or with `?clean=1`) a cold start, as
        // upstream: RETAIN variables take their initial values, and the store forgets the
        // previous program's. It runs unless the run/stop switch says STOP (then the
        // Editor's own start-plc is refused the same way).
        let matched = if request.clean { None } else { self.plan_online(record.sources()).await };
        if let Some(m) = &matched {
            self.push(
                Level::Info,
                &format!(
                    "Online change: {} variables carried ({} converted), {} new, {} dropped, {} refused",
                    m.summary.carried(),
                    m.summary.converted.len(),
                    m.summary.added.len(),
                    m.summary.dropped.len(),
                    m.summary.refused.len()
                ),
            );
        }
        let start = self.switch.allows_run();
        let request = LoadRequest {
            path: &record.library(),
            start,
            retain: RetainStart::Cold,
            md5: built.md5.as_deref(),
            online: matched.as_ref(),
            image: configured.unwrap_or(ImageSizes::ZERO),
        };
        let loaded = self.plc.load(request, LOAD_TIMEOUT).await.map_err(|e| DeployError::Rejected(Box::new(e)))?;
        if let Err(e) = self.store.set_current(id, start, built.md5.clone()) {
            self.logs.error(format!("Could not record the new program as current: {e}"));
        }
        self.plc.leave_safe_mode();
        self.push(
            Level::Info,
            &if start {
                format!("Program #{} loaded and started", loaded.program_gen)
            } else {
                format!("Program #{} loaded; not started: the run/stop switch is at STOP", loaded.program_gen)
            },
        );
        let timings = DeployTimings {
            extract: extracted_at - started,
            detect: detected_at - extracted_at,
            build: built_at - detected_at,
            build_steps: built.steps.clone(),
            load: Instant::now() - built_at,
        };
        self.push(Level::Info, &timings.to_string());
        if let Some(hook) = self.deploy_hook.get().cloned() {
            let (src, this) = (record.sources(), self.clone());
            let _ = tokio::task::spawn_blocking(move || hook.deployed(&src, &mut |level, text| this.push(level, text)))
                .await;
        }
        Ok(())
    }

    /// Matches the running program's variables with those of the bundle in `src`; `None`
    /// (with the reason in the log) when no online change is possible: nothing running, in
    /// ERROR, not the program deployed last (its names are unknown), unreadable names, or
    /// not one variable in common.
    async fn plan_online(&self, src: PathBuf) -> Option<online::Matched> {
        let port = self.plc.port();
        let status = port.status()?;
        if status.program_gen == 0 || status.state == shared_abi::layout::PlcState::Error {
            return None;
        }
        let info = port.program_info().filter(|i| i.program_gen == status.program_gen)?;
        let running = self.store.current()?;
        let deployed = self.store.state().md5;
        if let (Some(d), Some(r)) = (deployed.as_deref(), info.md5_str())
            && !d.eq_ignore_ascii_case(r)
        {
            self.logs.info("No online change: the running program is not the one deployed last");
            return None;
        }
        let old_src = running.sources();
        let matched = tokio::task::spawn_blocking(move || {
            let old = crate::variables::VarMap::load(&old_src, &info)?;
            let new = online::bundle_variables(&src)?;
            Ok::<_, String>(online::match_variables(info.program_gen, &old.vars, &new))
        })
        .await;
        match matched {
            Ok(Ok(m)) if m.summary.carried() > 0 => Some(m),
            Ok(Ok(_)) => {
                self.logs.info("No online change: the new program has no variable of the running one");
                None
            }
            Ok(Err(e)) => {
                self.logs.info(format!("No online change: {e}"));
                None
            }
            Err(e) => {
                self.logs.warn(format!("No online change: {e}"));
                None
            }
        }
    }

    fn finish(&self, id: &str, result: Result<(), DeployError>) {
        let ok = result.is_ok();
        let logs = {
            if let Err(e) = &result {
                self.push(Level::Error, &e.to_string());
            }
            let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if !ok {
                let tail = if self.store.current().is_some() {
                    "Build FAILED; the previous program is still loaded"
                } else {
                    "Build FAILED"
                };
                st.logs.push(format!("[{}] {tail}", Level::Error));
            }
            st.logs.join("\n")
        };
        match &result {
            Ok(()) => self.logs.info(format!("Program {id} built, loaded and running")),
            Err(e) => {
                // Nothing of a failed build stays (its folder; the upload too when the
                // device is full, to give the space back).
                self.store.discard(id);
                if e.is_storage() {
                    self.store.discard_upload(id);
                }
                self.logs.error(format!("Build of program {id} failed; the PLC keeps its previous program: {e}"));
            }
        }
        if let Err(e) = std::fs::write(&self.build_log, logs + "\n") {
            self.logs.warn(format!("Could not write {}: {e}", self.build_log.display()));
        }
        // The outcome and a free builder at once: whoever sees SUCCESS or FAILED may upload
        // again right away. Under the status lock, so a build started at once sets
        // COMPILING after this.
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.status = if ok { BuildState::Success } else { BuildState::Failed };
        st.exit_code = Some(if ok { 0 } else { 1 });
        self.building.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::compiler::Built;
    use super::*;
    use openplc_builder::{BuildLine, Generation};
    use std::path::Path;

    struct FakeCompiler {
        fail: bool,
        requests: Mutex<Vec<BuildRequest>>,
    }

    impl ProgramCompiler for FakeCompiler {
        fn detect(&self, src: &Path) -> Result<Generation, BuildError> {
            if src.join("generated.hpp").exists() {
                Ok(Generation::Strucpp)
            } else if src.join("Config0.c").exists() {
                Ok(Generation::Matiec)
            } else {
                Err(BuildError::NotABundle { detail: "no Config0.c".into() })
            }
        }
        fn build(
            &self,
            _src: &Path,
            out: &Path,
            request: BuildRequest,
            on_line: &mut dyn FnMut(BuildLine),
        ) -> Result<Built, BuildError> {
            self.requests.lock().unwrap().push(request);
            on_line(BuildLine { level: Level::Info, text: "cc -c Config0.c".into() });
            if self.fail {
                on_line(BuildLine { level: Level::Error, text: "Config0.c:1: error: expected ';'".into() });
                return Err(BuildError::CompilerFailed {
                    step: "compiling Config0.c".into(),
                    exit_code: Some(1),
                    signal: None,
                    first_error: None,
                });
            }
            std::fs::write(out, b"not really a library").unwrap();
            Ok(Built {
                md5: Some("0123".into()),
                duration: Duration::from_millis(5),
                steps: vec![("compile", Duration::from_millis(4))],
            })
        }
    }

    fn programs(fail: bool) -> (tempfile::TempDir, Arc<Programs>) {
        let (dir, p, _) = programs_with_compiler(fail);
        (dir, p)
    }

    fn programs_with_compiler(fail: bool) -> (tempfile::TempDir, Arc<Programs>, Arc<FakeCompiler>) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(LogHub::in_memory());
        let store = ProgramStore::open(dir.path()).unwrap();
        let plc = Arc::new(RtLink::new(logs.clone()));
        let compiler = Arc::new(FakeCompiler { fail, requests: Mutex::new(Vec::new()) });
        let mut p =
            Programs::new(store, compiler.clone(), plc, Arc::new(RunSwitch::new()), logs, dir.path().join("build.log"));
        p.attach_timeout = Duration::from_millis(50);
        (dir, Arc::new(p), compiler)
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
        assert_eq!(p.begin().err(), Some(AlreadyBuilding::Receiving), "one upload at a time");
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
        assert!(st.logs.iter().any(|l| l.contains("STruC++ bundle (OpenPLC Editor 4.2 and later)")), "{:?}", st.logs);
        assert!(st.logs.iter().any(|l| l.contains("Compiled in")), "{:?}", st.logs);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_clean_request_reaches_the_compiler() {
        let (_d, p, compiler) = programs_with_compiler(false);
        let id = upload(&p, &[("Config0.c", b"x")]);
        p.spawn_build_with(p.begin().unwrap(), id, BuildRequest { clean: true });
        wait_done(&p).await;
        let id = upload(&p, &[("Config0.c", b"x")]);
        p.spawn_build(p.begin().unwrap(), id);
        wait_done(&p).await;
        assert_eq!(*compiler.requests.lock().unwrap(), [BuildRequest { clean: true }, BuildRequest { clean: false }]);
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

    #[tokio::test(flavor = "multi_thread")]
    async fn a_build_says_why_a_running_core_is_not_available() {
        let (_d, p) = programs(false);
        p.plc.set_unavailable(Some("another client (pid 7) holds its lease".into()));
        let id = upload(&p, &[("Config0.c", b"x")]);
        p.spawn_build(p.begin().unwrap(), id);
        let st = wait_done(&p).await;
        assert_eq!(st.status, BuildState::Failed);
        let why = "[ERROR] The real-time core (openplc-rt) is not available to this runtime: another client (pid 7) \
                   holds its lease; the program was not loaded";
        assert!(st.logs.iter().any(|l| l == why), "{:?}", st.logs);
        assert!(!st.logs.iter().any(|l| l.contains("not running")), "{:?}", st.logs);
    }
}
