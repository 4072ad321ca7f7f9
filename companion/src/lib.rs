//! The OpenPLC runtime's companion process (`openplc-runtime`): the HTTPS REST API the
//! OpenPLC Editor drives, users and tokens, the program builder pipeline, and supervision
//! of the real-time core (`openplc-rt`), which it talks to through shared memory only.
//!
//! Modules later features build on: [`state::App`] (shared by every handler),
//! [`rt_link::RtLink`] (the link to rt-core: its `openplc_port::PlcPort` and the
//! supervisor's view of it), [`api::router`] (all routes, in one place).

pub mod adoption;
pub mod api;
pub mod auth;
pub mod control;
pub mod debugging;
pub mod device;
pub mod discovery;
pub mod fsutil;
pub mod logs;
pub mod monitor;
pub mod plugins;
pub mod program;
pub mod protocols;
pub mod retain;
pub mod rt_link;
pub mod server;
pub mod settings;
pub mod state;
pub mod supervisor;
pub mod text;
pub mod timefmt;
pub mod tls;
pub mod variables;

use crate::auth::Auth;
use crate::logs::{FileLog, LogHub};
use crate::program::Programs;
use crate::program::compiler::SystemCompiler;
use crate::program::store::ProgramStore;
use crate::rt_link::RtLink;
use crate::settings::{Cli, Command, Settings};
use crate::state::App;
use crate::supervisor::Supervisor;
use clap::Parser;
use std::fs::File;
use std::io::BufRead;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

/// The `openplc-runtime` command.
pub fn main_entry() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    auth::password::release_large_blocks_at_once();
    let settings = match Settings::resolve(&cli.opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openplc-runtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        None | Some(Command::Serve) => serve_blocking(settings),
        Some(Command::AddUser { username, role }) => add_user(&settings, &username, &role),
        Some(Command::ShutdownRt) => shutdown_rt(&settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openplc-runtime: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// async-opcua logs every connection and session at INFO: on a busy OPC-UA server that
/// would drown the console.
const DEFAULT_LOG: &str = "info,opcua_server=warn,opcua_client=warn,opcua_core=warn,opcua_crypto=warn";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPENPLC_LOG").unwrap_or_else(|_| DEFAULT_LOG.into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn serve_blocking(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("companion").build()?;
    runtime.block_on(serve(settings))
}

/// Holds the data directory's lock: one companion (or `add-user`) per data directory.
pub struct DataDirLock(#[allow(dead_code)] File);

pub fn lock_data_dir(settings: &Settings) -> anyhow::Result<DataDirLock> {
    fsutil::ensure_dir(&settings.data_dir, 0o750)?;
    let path = settings.data_dir.join("companion.lock");
    let file = File::options().create(true).truncate(false).write(true).open(&path)?;
    // SAFETY: flock on a descriptor we own; the lock lives as long as the file.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        anyhow::bail!(
            "{} is in use by another openplc-runtime (stop it first, or choose another --data-dir)",
            settings.data_dir.display()
        );
    }
    Ok(DataDirLock(file))
}

/// Everything the server needs, built from the settings (used by `serve` and by tests).
pub fn build_app(settings: Settings, with_supervisor: bool) -> anyhow::Result<Arc<App>> {
    let data = settings.data_dir.clone();
    fsutil::ensure_dir(&data.join("logs"), 0o750)?;
    let logs =
        Arc::new(LogHub::with_file(FileLog { path: logs::runtime_log_path(&data), max_bytes: 4 << 20, keep: 5 })?);
    let auth = Arc::new(Auth::open(&data)?);
    let plc = Arc::new(RtLink::new(logs.clone()));
    if settings.retain_flush.is_some() {
        plc.set_file_store(Arc::new(retain::file::FileStore::new(&data)));
    }
    let switch = Arc::new(openplc_plugin_host::RunSwitch::new());
    let (moves_tx, moves_rx) = tokio::sync::mpsc::unbounded_channel();
    switch.on_move(move |position, by| {
        let _ = moves_tx.send((position, by.to_string()));
    });
    let debugger = debugging::debugger(plc.port().clone(), auth.clone(), settings.editor_compat);
    let store = ProgramStore::open(&data)?;
    if let Some(user) = &settings.rt_user {
        // rt-core runs as its own account: it may read the built programs, nothing else.
        match program::rt_access::account(user).and_then(|a| program::rt_access::share_programs(&data, a.gid)) {
            Ok(()) => logs.info(format!(
                "Programs are readable by {user} (rt-core's account); secrets, TLS keys, users and logs are not"
            )),
            Err(e) => logs.error(format!(
                "Cannot share the programs with rt_user {user}: {e}; rt-core may not be able to load them"
            )),
        }
    }
    let compiler = Arc::new(SystemCompiler {
        cc: settings.cc.clone(),
        cxx: settings.cxx.clone(),
        jobs: settings.build_jobs,
        timeout: settings.build_timeout,
        checker: Some(settings.rt_binary.clone()),
        sandbox: settings.build_sandbox,
        cache: (settings.build_cache_bytes > 0).then(|| openplc_builder::CacheSettings {
            dir: data.join("build-cache"),
            max_bytes: settings.build_cache_bytes,
        }),
        logs: Some(logs.clone()),
    });
    match compiler.sandbox_status() {
        Ok(how) => logs.info(format!("Program builds: {how}")),
        Err(e) => logs.error(format!("Uploaded programs cannot be built: {e}")),
    }
    let programs = Arc::new(Programs::new(
        store,
        compiler,
        plc.clone(),
        switch.clone(),
        logs.clone(),
        data.join("logs").join("build.log"),
    ));
    let plugins = plugins::Plugins::new(&data, plc.clone(), switch.clone(), logs.clone());
    programs.set_deploy_hook(plugins.clone());
    let supervisor = with_supervisor.then(|| {
        let programs_for_sup: Arc<dyn supervisor::CurrentProgram> = Arc::new(ProgramsCurrent(programs.clone()));
        Arc::new(Supervisor::new(settings.clone(), plc.clone(), logs.clone(), programs_for_sup))
    });
    Ok(Arc::new(App {
        settings,
        logs,
        auth,
        debugger,
        plugins,
        plc,
        programs,
        supervisor,
        variables: Default::default(),
        switch,
        switch_moves: std::sync::Mutex::new(Some(moves_rx)),
        monitor: Default::default(),
        started: Instant::now(),
    }))
}

/// Acts on the run/stop switch's movements: logged, and a move to STOP stops a running PLC
/// (a move to RUN only allows starts again, as a hardware switch's plugin would then ask). A
/// move during a transition (a deploy, a restart of rt-core) is acted on once it has landed,
/// as upstream reconciles the switch after a transition.
pub fn spawn_switch_watcher(app: Arc<App>) {
    let Some(mut moves) = app.switch_moves.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
    tokio::spawn(async move {
        while let Some((position, by)) = moves.recv().await {
            app.logs.info(format!("Run/stop switch moved to {} by {by}", position.as_str().to_uppercase()));
            if position == openplc_plugin_host::SwitchPosition::Stop {
                stop_for_switch(&app).await;
            }
        }
    });
}

async fn stop_for_switch(app: &App) {
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if app.switch.allows_run() || app.plc.plc_state() != Some(shared_abi::layout::PlcState::Running) {
            return;
        }
        let reply = control::stop(app).await;
        control::remember_run_state(app, reply);
        match reply.outcome {
            control::Outcome::Ok => return app.logs.info("PLC stopped by the run/stop switch"),
            control::Outcome::Busy if Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            _ => return app.logs.warn(format!("The run/stop switch could not stop the PLC: {}", reply.wire())),
        }
    }
}

struct ProgramsCurrent(Arc<Programs>);

impl supervisor::CurrentProgram for ProgramsCurrent {
    fn current_program(&self) -> Option<supervisor::Current> {
        supervisor::CurrentProgram::current_program(&self.0.store)
    }
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _lock = lock_data_dir(&settings)?;
    let tls_files = tls::ensure(&settings.data_dir, settings.cert.as_deref(), settings.key.as_deref())?;
    let (tls_config, fingerprint) = tls::server_config(&tls_files)?;
    let app = build_app(settings.clone(), true)?;
    app.logs.info(format!(
        "openplc-runtime {} starting: data directory {}, editor_compat {}, first users from {:?}",
        env!("CARGO_PKG_VERSION"),
        settings.data_dir.display(),
        settings.editor_compat.as_str(),
        settings.first_user_from
    ));
    if tls_files.generated {
        app.logs.info(format!("Generated a self-signed certificate {}", tls_files.cert.display()));
    }
    app.logs.info(format!("TLS certificate SHA-256 fingerprint {fingerprint}"));
    if app.auth.users.is_empty() {
        app.logs.warn(format!(
            "No user yet: create the first one from the OpenPLC Editor (allowed from: {:?})",
            settings.first_user_from
        ));
    }

    let listener = server::bind(std::net::SocketAddr::new(settings.bind, settings.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", settings.bind, settings.port))?;
    let local = listener.local_addr()?;
    app.logs.info(format!("Listening on https://{local}"));

    if settings.discovery_port != 0 {
        match tokio::net::UdpSocket::bind((settings.bind, settings.discovery_port)).await {
            Ok(sock) => {
                let advert = discovery::Advert::new(settings.editor_compat.api_version(), local.port());
                let programs = app.programs.clone();
                let payload = move || advert.reply(programs.snapshots.advertised(&programs.store));
                tokio::spawn(discovery::respond(sock, payload));
                app.logs.info(format!("Discovery answers on UDP {}", settings.discovery_port));
            }
            Err(e) => app.logs.warn(format!("Discovery is off: UDP {} unavailable ({e})", settings.discovery_port)),
        }
    }

    if let Some(sup) = app.supervisor.clone() {
        // In the background, so the API (logs, users) answers while rt-core starts, and
        // even when it cannot be started.
        let logs = app.logs.clone();
        tokio::spawn(async move {
            let mut said = String::new();
            while let Err(e) = sup.start().await {
                // Once per reason, not every 5 s while it lasts.
                let text = format!("{e:#}");
                if text != said {
                    logs.error(format!("openplc-rt is not available: {text}; retrying every 5 s"));
                    said = text;
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        });
    }

    app.plugins.clone().spawn_lifecycle();
    spawn_switch_watcher(app.clone());
    let period = app.settings.retain_flush.unwrap_or(retain::PLUGIN_SAVE_PERIOD);
    if let Some(store) = app.plc.retain_store() {
        app.logs.info(format!(
            "RETAIN values are kept in {} (written every {} s when they change)",
            store.describe(),
            period.as_secs()
        ));
    }
    retain::spawn_flusher(app.plc.clone(), app.logs.clone(), period);
    let router = api::router(app.clone());
    server::serve(listener, tls_config, router, shutdown_signal()).await?;
    app.logs.info("openplc-runtime stopping; openplc-rt keeps running");
    Ok(())
}

#[allow(
    clippy::expect_used,
    reason = "at start-up, before serving: a runtime that cannot be stopped cleanly must not start"
)]
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn add_user(settings: &Settings, username: &str, role: &str) -> anyhow::Result<()> {
    let _lock = lock_data_dir(settings)?;
    let role = auth::users::Role::parse(role).ok_or_else(|| anyhow::anyhow!("role must be admin, user or viewer"))?;
    let username = auth::users::check_username(username)?;
    eprintln!("Password for {username:?} (one line on standard input):");
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    if !auth::users::valid_password(&password) {
        anyhow::bail!("empty or overlong password");
    }
    let store = auth::users::UserStore::open(settings.data_dir.join(auth::users::USERS_FILE))?;
    let role = if store.is_empty() { auth::users::Role::Admin } else { role };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let hash = rt.block_on(auth::password::PasswordHasherPool::with_threads(1).hash(password))?;
    let user = store.create(username, role, hash, false)?;
    println!("Created user {:?} (id {}, role {})", user.username, user.id, user.role.as_str());
    Ok(())
}

fn shutdown_rt(settings: &Settings) -> anyhow::Result<()> {
    use openplc_port::{LogSink, PlcPort, PortError};
    let port = PlcPort::open(&settings.shm, LogSink::discard())?;
    match port.command_blocking(shared_abi::msg::Command::Shutdown, std::time::Duration::from_secs(5)) {
        // The answer may not make it out before the process ends.
        Ok(_) | Err(PortError::RtGone) => {
            println!("openplc-rt is shutting down");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
