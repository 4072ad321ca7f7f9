//! Serves an `s7comm.json` over an in-memory image, without rt-core: for trying S7
//! clients against the server, and for the interop tests. Prints `listening on ADDR`
//! once the server accepts connections.

use clap::Parser;
use openplc_s7::{MemoryImage, S7Config};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "S7comm server over an in-memory PLC image (no rt-core)")]
struct Args {
    /// The configuration, as the Editor writes it (conf/s7comm.json).
    #[arg(long)]
    conf: PathBuf,
    /// Listen on this port instead of the configured one (0: any free port).
    #[arg(long)]
    port: Option<u16>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("OPENPLC_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut cfg = match S7Config::load(&args.conf) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    if let Some(port) = args.port {
        cfg.port = port;
    }
    let handle = match openplc_s7::start(cfg, Arc::new(MemoryImage::new())).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(1);
        }
    };
    match handle.local_addr() {
        Some(addr) => println!("listening on {addr}"),
        None => println!("disabled"),
    }
    let _ = tokio::signal::ctrl_c().await;
    handle.stop().await;
    std::process::ExitCode::SUCCESS
}
