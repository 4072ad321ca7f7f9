//! `openplc-modbus`: the Modbus plugin on its own, attached to a running `openplc-rt`
//! as the shared memory's client (so not while a companion holds the lease). For tests,
//! benches and a companion-less setup.

use clap::Parser;
use openplc_modbus::{Config, MasterConfig, ServerConfig};
use openplc_port::{LogSink, PlcPort};
use shared_abi::msg::LogLevel;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "openplc-modbus", about = "Modbus TCP server and Modbus master over a running openplc-rt")]
struct Args {
    /// Shared-memory name (/dev/shm/NAME) or path of the openplc-rt to attach to.
    #[arg(long, env = "OPENPLC_RT_SHM", default_value = shared_abi::shm::DEFAULT_NAME)]
    shm: String,
    /// A directory holding modbus_slave.json and/or modbus_master.json.
    #[arg(long)]
    conf_dir: Option<PathBuf>,
    /// modbus_slave.json (the server).
    #[arg(long)]
    slave: Option<PathBuf>,
    /// modbus_master.json (the master).
    #[arg(long)]
    master: Option<PathBuf>,
    /// Print the plugin's status as JSON this often (0: never).
    #[arg(long, default_value_t = 0)]
    status_every_s: u64,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("openplc-modbus: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut config = match &args.conf_dir {
        Some(dir) => Config::from_conf_dir(dir)?,
        None => Config::default(),
    };
    if let Some(p) = &args.slave {
        config.server = Some(ServerConfig::load(p)?);
    }
    if let Some(p) = &args.master {
        config.master = Some(MasterConfig::load(p)?);
    }
    if config.server.is_none() && config.master.is_none() {
        return Err("nothing to run: give --slave, --master or a --conf-dir holding their files".into());
    }
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    let log = LogSink::new(|level, text| match level {
        LogLevel::Error => tracing::error!(target: "runtime", "{text}"),
        LogLevel::Warning => tracing::warn!(target: "runtime", "{text}"),
        LogLevel::Info => tracing::info!(target: "runtime", "{text}"),
        LogLevel::Debug => tracing::debug!(target: "runtime", "{text}"),
    });
    let plc = PlcPort::open(&args.shm, log).map_err(|e| format!("{}: {e}", args.shm))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let handle = openplc_modbus::start(config, plc).await?;
        if let Some(addr) = handle.server_addr() {
            // One line on stdout a parent process can wait for.
            println!("listening {addr}");
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let every = Duration::from_secs(args.status_every_s.max(1));
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick.tick(), if args.status_every_s > 0 => {
                    println!("{}", serde_json::to_string(&handle.status())?);
                }
            }
        }
        println!("{}", serde_json::to_string(&handle.status())?);
        handle.stop().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
