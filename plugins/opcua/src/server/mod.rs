//! The OPC-UA server: async-opcua with the PLC's namespace, our authenticator, the
//! configuration's endpoints and limits, behind a TCP front that caps connections.

pub mod auth;
mod bindings;
mod front;
mod monitor;
mod nodes;
pub mod pki;

use crate::config::{Mode, Policy, Profile, ServerConfig};
use crate::plc::DebugVars;
use auth::{Authenticator, PermissionTable, endpoint_token_ids};
use opcua::crypto::SecurityPolicy;
use opcua::server::node_manager::memory::InMemoryNodeManagerBuilder;
use opcua::server::{ServerBuilder, ServerEndpoint, ServerHandle, ServerUserToken};
use opcua::types::MessageSecurityMode;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("certificates: {0}")]
    Pki(String),
    #[error("{0}")]
    Program(String),
    #[error("{0}")]
    Server(String),
}

/// What `/api/plugins` shows.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServerStatus {
    pub endpoint: String,
    pub listening: String,
    pub connections: usize,
    pub connections_refused: u64,
    /// Monitored items sampled for subscriptions now.
    pub monitored_items: usize,
    /// Client certificates refused so far (file names in `rejected_dir`, to trust later).
    pub rejected_certificates: Vec<String>,
    /// Where refused client certificates are kept (`<data dir>/opcua/pki/rejected`).
    pub rejected_dir: String,
    /// Moving a file from `rejected_dir` here trusts it (kept across restarts and uploads).
    pub trusted_dir: String,
    pub warnings: Vec<String>,
}

pub struct Server {
    handle: ServerHandle,
    front: front::Front,
    monitor: Arc<monitor::Monitor>,
    task: tokio::task::JoinHandle<Result<(), String>>,
    addr: SocketAddr,
    endpoint: String,
    pki_dir: PathBuf,
    warnings: Vec<String>,
}

fn policy(p: Policy) -> SecurityPolicy {
    match p {
        Policy::None => SecurityPolicy::None,
        Policy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
        Policy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
        Policy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
    }
}

fn mode(m: Mode) -> MessageSecurityMode {
    match m {
        Mode::None => MessageSecurityMode::None,
        Mode::Sign => MessageSecurityMode::Sign,
        Mode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    }
}

fn endpoint(path: &str, p: &Profile) -> ServerEndpoint {
    ServerEndpoint::new(path, policy(p.policy), mode(p.mode), &endpoint_token_ids(p))
}

/// The host name clients are told (a wildcard bind address names no host).
fn advertised_host(bind: &str) -> String {
    if bind == "0.0.0.0" || bind == "::" || bind.is_empty() {
        opcua::crypto::X509Data::computer_hostnames().into_iter().next().unwrap_or_else(|| "localhost".into())
    } else {
        bind.to_string()
    }
}

impl Server {
    /// Starts serving `config` over `plc`, keeping certificates under `data_dir`. The PLC
    /// must be running: the variables' sizes are learnt from a first sample.
    pub async fn start(config: ServerConfig, plc: Arc<dyn DebugVars>, data_dir: &Path) -> Result<Server, StartError> {
        let mut warnings = config.warnings.clone();
        for p in config.profiles.iter().filter(|p| p.policy == Policy::None && p.username) {
            warnings.push(format!("security profile {:?} takes passwords without encryption", p.name));
        }
        let bind = format!("{}:{}", config.endpoint.host, config.endpoint.port);
        let listener = TcpListener::bind(if config.endpoint.host.contains(':') {
            format!("[{}]:{}", config.endpoint.host, config.endpoint.port)
        } else {
            bind.clone()
        })
        .await
        .map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
        let inner = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| StartError::Bind { addr: "127.0.0.1:0".into(), source })?;
        let inner_addr =
            inner.local_addr().map_err(|source| StartError::Bind { addr: "127.0.0.1:0".into(), source })?;

        let dir = data_dir.to_path_buf();
        let cfg = config.clone();
        let pki = tokio::task::spawn_blocking(move || pki::prepare(&dir, &cfg))
            .await
            .map_err(|e| StartError::Pki(e.to_string()))?
            .map_err(StartError::Pki)?;

        let read_timeout = Duration::from_millis(config.limits.read_timeout_ms);
        let resolved = bindings::resolve(&config.nodes, &*plc, read_timeout).await.map_err(StartError::Program)?;
        warnings.extend(resolved.warnings);
        let program_gen = plc.program().map(|p| p.program_gen).unwrap_or(0);

        let permissions = Arc::new(PermissionTable::new(
            resolved.bindings.iter().map(|(id, b)| (id.clone(), b.permissions)).collect::<HashMap<_, _>>(),
        ));
        let authenticator = Authenticator::new(
            &config.users,
            &config.trusted,
            &config.profiles,
            permissions.clone(),
            config.limits.max_failed_logins,
        )
        .map_err(StartError::Server)?;

        let cycle = Duration::from_millis(config.cycle_time_ms);
        let monitor =
            Arc::new(monitor::Monitor::new(plc.clone(), config.time_mapping, cycle, read_timeout, program_gen));
        let nodes_config = nodes::PlcNodesConfig {
            namespace_uri: config.namespace_uri.clone(),
            nodes: config.nodes.clone(),
            bindings: resolved.bindings,
            plc: plc.clone(),
            time_mapping: config.time_mapping,
            read_timeout,
            cycle_time: cycle,
            program_gen,
            permissions,
            monitor: monitor.clone(),
        };

        let host = advertised_host(&config.endpoint.host);
        let l = &config.limits;
        let mut builder = ServerBuilder::new()
            .application_name(config.name.clone())
            .application_uri(config.application_uri.clone())
            .product_uri(config.product_uri.clone())
            .pki_dir(pki.dir.clone())
            .certificate_path(pki.cert.clone())
            .private_key_path(pki.key.clone())
            .create_sample_keypair(false)
            .trust_client_certs(false)
            .check_cert_time(true)
            .host(host.clone())
            .port(addr.port())
            .hello_timeout(l.hello_timeout_s)
            .discovery_urls(vec![config.endpoint.path.clone()])
            .max_sessions(l.max_sessions)
            .max_message_size(l.max_message_size)
            .max_chunk_count(l.max_chunk_count)
            .max_array_length(100_000)
            .max_string_length(65_535)
            .max_byte_string_length(65_535)
            .subscription_poll_interval_ms(config.cycle_time_ms.min(100))
            .diagnostics_enabled(false)
            .max_session_timeout_ms(l.session_timeout_ms.max(1000))
            .with_authenticator(Arc::new(authenticator))
            .with_node_manager(InMemoryNodeManagerBuilder::new(move |ctx, space: &mut _| {
                nodes::build(nodes_config, ctx, space)
            }));
        {
            let limits = builder.limits_mut();
            let s = &mut limits.subscriptions;
            s.max_subscriptions_per_session = l.max_subscriptions_per_session;
            s.max_monitored_items_per_sub = l.max_monitored_items_per_subscription;
            s.min_sampling_interval_ms = config.cycle_time_ms as f64;
            s.min_publishing_interval_ms = config.cycle_time_ms as f64;
            // Lifetime = lifetime count × publishing interval (≥ the cycle time): capped so
            // a client that stops publishing loses its subscription, and its queue, in time.
            let lifetime = (l.subscription_lifetime_ms / config.cycle_time_ms).clamp(3, u32::MAX as u64) as u32;
            s.max_lifetime_count = lifetime;
            s.max_keep_alive_count = (lifetime / 3).max(1);
            s.default_keep_alive_count = s.default_keep_alive_count.min(s.max_keep_alive_count);
            let o = &mut limits.operational;
            o.max_nodes_per_read = l.max_nodes_per_request;
            o.max_nodes_per_write = l.max_nodes_per_request;
            o.max_nodes_per_browse = l.max_nodes_per_request;
            o.max_monitored_items_per_call = l.max_nodes_per_request;
            o.max_nodes_per_register_nodes = l.max_nodes_per_request;
            o.max_nodes_per_translate_browse_paths_to_node_ids = l.max_nodes_per_request;
        }
        for p in &config.profiles {
            let marker = format!("profile:{}", p.name);
            // The endpoint names its profile through a user token id, which async-opcua wants
            // declared; the password is random and never checked (our authenticator decides).
            let unused: String = (0..32).map(|_| rand::random::<char>()).filter(|c| c.is_alphanumeric()).collect();
            builder = builder
                .add_user_token(&marker, ServerUserToken::user_pass(&marker, &format!("x{unused}")))
                .add_endpoint(&p.name, endpoint(&config.endpoint.path, p));
        }
        let (server, handle) = builder.build().map_err(StartError::Server)?;
        let task = tokio::spawn(server.run_with(inner));
        let front = front::Front::start(listener, inner_addr, l.max_connections, l.max_connections_per_source);
        let endpoint = format!("opc.tcp://{host}:{}{}", addr.port(), config.endpoint.path);
        Ok(Server { handle, front, monitor, task, addr, endpoint, pki_dir: pki.dir, warnings })
    }

    /// Where the server listens (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL clients are told.
    pub fn endpoint_url(&self) -> &str {
        &self.endpoint
    }

    pub fn status(&self) -> ServerStatus {
        ServerStatus {
            endpoint: self.endpoint.clone(),
            listening: self.addr.to_string(),
            connections: self.front.stats.open(),
            connections_refused: self.front.stats.refused.load(Ordering::Relaxed),
            monitored_items: self.monitor.len(),
            rejected_certificates: pki::rejected(&self.pki_dir),
            rejected_dir: self.pki_dir.join("rejected").display().to_string(),
            trusted_dir: self.pki_dir.join("trusted").display().to_string(),
            warnings: self.warnings.clone(),
        }
    }

    /// Closes every connection and stops.
    pub async fn stop(self) {
        self.front.stop().await;
        self.monitor.stop();
        self.handle.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}
