//! The client half: for each remote server of `opcua_client.json`, one task that connects
//! (retrying with back-off from 1 s doubling to 30 s, reported in the status, never holding
//! up the other servers), subscribes to the `remote_to_plc` nodes and writes each new value
//! into the PLC, and samples the `plc_to_remote` values at their cycle time, writing a value
//! out when it changed (again after a failure or a reconnection).

mod convert;

use crate::MAX_SAMPLE_VARS;
use crate::config::client::{Auth, ClientConfig, Direction, Local, Mapping, Remote};
use crate::config::{Mode, Policy, VarRef};
use crate::plc::{Plc, ProgramLayout};
use crate::server::StartError;
use opcua::client::{ClientBuilder, DataChangeCallback, IdentityToken, Session};
use opcua::crypto::{PrivateKey, SecurityPolicy, X509};
use opcua::types::{
    AttributeId, DataValue, MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters,
    NodeId, ReadValueId, StatusCode, TimestampsToReturn, UserTokenPolicy, Variant, WriteValue,
};
use serde::Serialize;
use shared_abi::image::{Area, IecAddress};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    Connecting,
    Connected,
    Failing,
}

/// One remote server's health, for `/api/plugins`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RemoteStatus {
    pub name: String,
    pub endpoint_url: String,
    pub state: RemoteState,
    pub last_error: Option<String>,
    /// Connection attempts that failed in a row.
    pub failures: u32,
    pub values_in: u64,
    pub values_out: u64,
}

/// The running client.
pub struct Client {
    status: Vec<Arc<Mutex<RemoteStatus>>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Client {
    pub async fn start(config: ClientConfig, plc: Plc, data_dir: &Path) -> Result<Client, StartError> {
        let layout = plc.vars.program().unwrap_or_default();
        let stop = CancellationToken::new();
        let mut status = Vec::new();
        let mut tasks = Vec::new();
        for remote in config.servers {
            let st = Arc::new(Mutex::new(RemoteStatus {
                name: remote.name.clone(),
                endpoint_url: remote.endpoint_url.clone(),
                state: RemoteState::Connecting,
                last_error: None,
                failures: 0,
                values_in: 0,
                values_out: 0,
            }));
            let link = Link::new(remote, plc.clone(), &layout, data_dir, st.clone(), stop.clone());
            status.push(st);
            tasks.push(tokio::spawn(link.run()));
        }
        Ok(Client { status, stop, tasks })
    }

    pub fn status(&self) -> Vec<RemoteStatus> {
        self.status.iter().map(|s| lock(s).clone()).collect()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// A mapping resolved against the running program.
#[derive(Clone)]
struct Bound {
    mapping: Mapping,
    node: Option<NodeId>,
    /// The flat index of a debug-variable mapping.
    var: Option<u32>,
    problem: Option<String>,
}

/// One remote server's connection.
struct Link {
    remote: Remote,
    plc: Plc,
    bound: Vec<Bound>,
    pki: PathBuf,
    status: Arc<Mutex<RemoteStatus>>,
    stop: CancellationToken,
    /// Sizes of the debug variables written, learnt from a sample.
    sizes: Mutex<HashMap<u32, usize>>,
}

fn flat(at: VarRef, layout: &ProgramLayout) -> Option<u32> {
    match at {
        VarRef::Flat(i) => (i < layout.var_count).then_some(i),
        VarRef::Leaf { arr, elem } => layout.flat_index(arr, elem),
    }
}

impl Link {
    fn new(
        remote: Remote,
        plc: Plc,
        layout: &ProgramLayout,
        data_dir: &Path,
        status: Arc<Mutex<RemoteStatus>>,
        stop: CancellationToken,
    ) -> Link {
        let bound = remote
            .mappings
            .iter()
            .map(|m| {
                let node = NodeId::from_str(&m.remote_node_id).ok();
                let var = match m.local {
                    Local::Var(at) => flat(at, layout),
                    Local::Point(_) => None,
                };
                let problem = if node.is_none() {
                    Some(format!("{:?} is not a node id", m.remote_node_id))
                } else if matches!(m.local, Local::Var(_)) && var.is_none() {
                    Some(format!("{:?} is not a variable of the running program", m.local))
                } else {
                    None
                };
                if let Some(p) = &problem {
                    tracing::warn!("OPC-UA client {:?}: {p}; mapping skipped", remote.name);
                }
                Bound { mapping: m.clone(), node, var, problem }
            })
            .collect();
        let safe: String = remote.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        Link {
            pki: data_dir.join("client-pki").join(safe),
            remote,
            plc,
            bound,
            status,
            stop,
            sizes: Mutex::new(HashMap::new()),
        }
    }

    fn set_state(&self, state: RemoteState, error: Option<String>) {
        let mut s = lock(&self.status);
        s.state = state;
        match state {
            RemoteState::Connected => {
                s.failures = 0;
                s.last_error = None;
            }
            RemoteState::Failing => {
                s.failures += 1;
                s.last_error = error;
            }
            RemoteState::Connecting => {}
        }
    }

    fn identity(&self) -> Result<IdentityToken, String> {
        Ok(match &self.remote.auth {
            Auth::Anonymous => IdentityToken::Anonymous,
            Auth::Username { username, password } => IdentityToken::new_user_name(username.clone(), password.clone()),
            Auth::Certificate => {
                let (cert, key) = self.own_cert()?.ok_or("no client certificate")?;
                IdentityToken::new_x509(cert, key)
            }
        })
    }

    fn own_cert(&self) -> Result<Option<(X509, PrivateKey)>, String> {
        match (&self.remote.client_cert_pem, &self.remote.client_key_pem) {
            (Some(c), Some(k)) => Ok(Some((
                X509::from_pem(c.as_bytes()).map_err(|e| format!("client_cert_pem: {e}"))?,
                PrivateKey::from_pem(k.as_bytes()).map_err(|_| "client_key_pem is not a PEM RSA key".to_string())?,
            ))),
            _ => Ok(None),
        }
    }

    /// Writes the configured certificates where async-opcua's client reads them.
    fn prepare_pki(&self) -> Result<(), String> {
        for sub in ["own", "private", "trusted", "rejected"] {
            std::fs::create_dir_all(self.pki.join(sub)).map_err(|e| format!("{}: {e}", self.pki.display()))?;
        }
        if let Some((cert, _)) = self.own_cert()? {
            let der = cert.to_der().map_err(|e| e.to_string())?;
            std::fs::write(self.pki.join("own/cert.der"), der).map_err(|e| e.to_string())?;
            std::fs::write(
                self.pki.join("private/private.pem"),
                self.remote.client_key_pem.as_deref().unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
        }
        if let Some(pem) = &self.remote.server_cert_pem {
            let cert = X509::from_pem(pem.as_bytes()).map_err(|e| format!("server_cert_pem: {e}"))?;
            let name = opcua::crypto::CertificateStore::cert_file_name(&cert);
            std::fs::write(self.pki.join("trusted").join(name), cert.to_der().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn connect(&self) -> Result<(Arc<Session>, tokio::task::JoinHandle<StatusCode>), String> {
        self.prepare_pki()?;
        let mut client = ClientBuilder::new()
            .application_name("OpenPLC Runtime OPC-UA client")
            .application_uri("urn:openplc:runtime:opcua-client")
            .product_uri("urn:openplc:runtime")
            .pki_dir(self.pki.clone())
            .create_sample_keypair(true)
            // Without a configured server certificate to pin, the server's is taken on
            // first use (as upstream's client does); with one, only that one.
            .trust_server_certs(self.remote.server_cert_pem.is_none())
            // One attempt per connect, no reconnection inside the session: `run` retries
            // with its own back-off and reports every failure, and a lost session is rebuilt
            // whole (subscribed again, every output sent again). async-opcua's own retries
            // would hold a dead server's first attempt for the whole connect timeout.
            .session_retry_limit(0)
            .session_timeout(self.remote.session_timeout_ms as u32)
            .keep_alive_interval(Duration::from_secs(2))
            .request_timeout(Duration::from_secs(5))
            .client()
            .map_err(|e| e.join(", "))?;
        let policy = match self.remote.policy {
            Policy::None => SecurityPolicy::None,
            Policy::Basic256Sha256 => SecurityPolicy::Basic256Sha256,
            Policy::Aes128Sha256RsaOaep => SecurityPolicy::Aes128Sha256RsaOaep,
            Policy::Aes256Sha256RsaPss => SecurityPolicy::Aes256Sha256RsaPss,
        };
        let mode = match self.remote.mode {
            Mode::None => MessageSecurityMode::None,
            Mode::Sign => MessageSecurityMode::Sign,
            Mode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
        };
        let endpoint: opcua::types::EndpointDescription =
            (self.remote.endpoint_url.as_str(), policy.to_uri(), mode, UserTokenPolicy::anonymous()).into();
        let connect = client.connect_to_matching_endpoint(endpoint, self.identity()?);
        let (session, event_loop) = tokio::time::timeout(Duration::from_secs(10), connect)
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let handle = event_loop.spawn();
        if !tokio::time::timeout(Duration::from_secs(10), session.wait_for_connection()).await.unwrap_or(false) {
            handle.abort();
            return Err("the session did not open".into());
        }
        Ok((session, handle))
    }

    async fn run(self) {
        let mut backoff = RETRY_FIRST;
        loop {
            self.set_state(RemoteState::Connecting, None);
            let attempt = tokio::select! {
                _ = self.stop.cancelled() => return,
                a = self.connect() => a,
            };
            match attempt {
                Ok((session, event_loop)) => {
                    backoff = RETRY_FIRST;
                    self.set_state(RemoteState::Connected, None);
                    let ended = self.serve(&session).await;
                    event_loop.abort();
                    let _ = tokio::time::timeout(Duration::from_secs(2), session.disconnect()).await;
                    if self.stop.is_cancelled() {
                        return;
                    }
                    self.set_state(RemoteState::Failing, Some(ended));
                }
                Err(e) => {
                    tracing::debug!("OPC-UA client {:?}: {e}", self.remote.name);
                    self.set_state(RemoteState::Failing, Some(e));
                }
            }
            if !self.remote.reconnect {
                return;
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(RETRY_MAX);
        }
    }

    /// Subscribes and pushes values until the connection is lost (returns why) or stop.
    async fn serve(&self, session: &Arc<Session>) -> String {
        let incoming: Arc<Mutex<HashMap<NodeId, Variant>>> = Arc::default();
        let wake = Arc::new(tokio::sync::Notify::new());
        let inputs: Vec<(usize, &Bound)> = self
            .bound
            .iter()
            .enumerate()
            .filter(|(_, b)| b.problem.is_none() && b.mapping.direction == Direction::RemoteToPlc)
            .collect();
        if !inputs.is_empty() {
            let period = inputs.iter().map(|(_, b)| b.mapping.cycle_time_ms).min().unwrap_or(100);
            let (sink, w) = (incoming.clone(), wake.clone());
            let callback = DataChangeCallback::new(move |dv: DataValue, item| {
                if let Some(v) = dv.value.filter(|_| dv.status.is_none_or(|s| s.is_good())) {
                    lock(&sink).insert(item.item_to_monitor().node_id.clone(), v);
                    w.notify_one();
                }
            });
            let sub = session.create_subscription(Duration::from_millis(period), 30, 10, 0, 0, true, callback).await;
            let Ok(sub) = sub else {
                return format!("cannot subscribe: {}", sub.err().map(|e| e.to_string()).unwrap_or_default());
            };
            let requests = inputs
                .iter()
                .map(|(_, b)| MonitoredItemCreateRequest {
                    item_to_monitor: ReadValueId {
                        node_id: b.node.clone().unwrap_or_default(),
                        attribute_id: AttributeId::Value as u32,
                        ..Default::default()
                    },
                    monitoring_mode: MonitoringMode::Reporting,
                    requested_parameters: MonitoringParameters {
                        sampling_interval: b.mapping.cycle_time_ms as f64,
                        queue_size: 1,
                        discard_oldest: true,
                        ..Default::default()
                    },
                })
                .collect();
            match session.create_monitored_items(sub, TimestampsToReturn::Neither, requests).await {
                Ok(results) => {
                    for (r, (_, b)) in results.iter().zip(&inputs) {
                        if !r.result.status_code.is_good() {
                            tracing::warn!(
                                "OPC-UA client {:?}: cannot monitor {}: {}",
                                self.remote.name,
                                b.mapping.remote_node_id,
                                r.result.status_code
                            );
                        }
                    }
                }
                Err(e) => return format!("cannot monitor: {e}"),
            }
        }
        let outputs: Vec<(usize, &Bound)> = self
            .bound
            .iter()
            .enumerate()
            .filter(|(_, b)| b.problem.is_none() && b.mapping.direction == Direction::PlcToRemote)
            .collect();
        let out_period =
            Duration::from_millis(outputs.iter().map(|(_, b)| b.mapping.cycle_time_ms).min().unwrap_or(1000));
        let mut sent: HashMap<usize, Variant> = HashMap::new();
        let mut remote_types = convert::RemoteTypes::default();
        let mut tick = tokio::time::interval(out_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_check = Instant::now();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return "stopped".into(),
                _ = wake.notified() => {
                    let batch: Vec<(NodeId, Variant)> = lock(&incoming).drain().collect();
                    for (node, v) in batch {
                        for (_, b) in inputs.iter().filter(|(_, b)| b.node.as_ref() == Some(&node)) {
                            match self.to_plc(b, &v).await {
                                Ok(()) => lock(&self.status).values_in += 1,
                                Err(e) => tracing::warn!("OPC-UA client {:?}: {} → PLC: {e}", self.remote.name, b.mapping.remote_node_id),
                            }
                        }
                    }
                }
                _ = tick.tick(), if !outputs.is_empty() => {
                    if let Err(e) = self.to_remote(session, &outputs, &mut sent, &mut remote_types).await {
                        return e;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            // A session that lost its connection is rebuilt from scratch (fresh
            // subscription, every output sent again).
            if last_check.elapsed() > Duration::from_millis(500) {
                last_check = Instant::now();
                let state = [ReadValueId {
                    node_id: opcua::types::VariableId::Server_ServerStatus_State.into(),
                    attribute_id: AttributeId::Value as u32,
                    ..Default::default()
                }];
                let probe = session.read(&state, TimestampsToReturn::Neither, 0.0);
                match tokio::time::timeout(Duration::from_secs(3), probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("connection lost: {e}"),
                    Err(_) => return "connection lost: no answer".into(),
                }
            }
        }
    }

    async fn var_size(&self, var: u32, hint: Option<u32>) -> Result<usize, String> {
        if let Some(n) = hint {
            return Ok(n as usize);
        }
        if let Some(n) = lock(&self.sizes).get(&var) {
            return Ok(*n);
        }
        let scan = self.plc.vars.sample(&[var], Duration::from_secs(2)).await.map_err(|e| e.to_string())?;
        let n = scan.values.first().and_then(|v| v.as_ref()).map(|v| v.bytes.len()).ok_or("no such variable")?;
        lock(&self.sizes).insert(var, n);
        Ok(n)
    }

    /// A located point now: `%I` as the companion last published the inputs, `%Q`/`%M` as
    /// the last scan published them (`None` while rt-core is not attached).
    fn read_point(&self, addr: IecAddress) -> Option<u64> {
        match addr.area() {
            Area::Input => self.plc.image.inputs(|img| img.get(addr)).flatten(),
            _ => self.plc.image.outputs().image.get(addr),
        }
    }

    /// Writes a located point: `%I` into the inputs of the next scan, `%Q`/`%M` through
    /// rt-core's write queue (returns once applied).
    async fn write_point(&self, addr: IecAddress, raw: u64) -> Result<(), String> {
        if addr.area() == Area::Input {
            let mut stored = false;
            self.plc.image.update_inputs(&mut |img| stored = img.set(addr, raw)).map_err(|e| e.to_string())?;
            return if stored { Ok(()) } else { Err(format!("{addr} is not an input")) };
        }
        let ticket = self.plc.image.write(&[(addr, raw)]).map_err(|e| e.to_string())?;
        self.plc.image.wait_applied(ticket, Duration::from_secs(2)).await.map(drop).map_err(|e| e.to_string())
    }

    async fn to_plc(&self, b: &Bound, value: &Variant) -> Result<(), String> {
        match (b.mapping.local, b.var) {
            (Local::Point(addr), _) => {
                let raw = convert::to_point(b.mapping.ty, addr, value)?;
                self.write_point(addr, raw).await
            }
            (Local::Var(_), Some(var)) => {
                let size = self.var_size(var, b.mapping.size).await?;
                let bytes = convert::to_var(b.mapping.ty, size, value)?;
                self.plc.vars.write_var(var, &bytes, Duration::from_secs(2)).await.map_err(|e| e.to_string())
            }
            _ => Err("unresolved".into()),
        }
    }

    async fn to_remote(
        &self,
        session: &Session,
        outputs: &[(usize, &Bound)],
        sent: &mut HashMap<usize, Variant>,
        types: &mut convert::RemoteTypes,
    ) -> Result<(), String> {
        // Current PLC values: debug variables in one sample, points from the image.
        let vars: Vec<u32> = outputs.iter().filter_map(|(_, b)| b.var).collect();
        let mut by_var = HashMap::new();
        for chunk in vars.chunks(MAX_SAMPLE_VARS) {
            match self.plc.vars.sample(chunk, Duration::from_secs(2)).await {
                Ok(scan) => {
                    for (v, raw) in chunk.iter().zip(scan.values) {
                        if let Some(raw) = raw {
                            by_var.insert(*v, raw.bytes);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("OPC-UA client {:?}: no PLC sample: {e}", self.remote.name);
                    return Ok(());
                }
            }
        }
        let mut writes = Vec::new();
        for (i, b) in outputs {
            let value = match (b.mapping.local, b.var) {
                (Local::Point(addr), _) => self.read_point(addr).and_then(|raw| convert::from_point(b.mapping.ty, raw)),
                (Local::Var(_), Some(var)) => by_var
                    .get(&var)
                    .and_then(|raw| crate::iec::decode(b.mapping.ty, crate::iec::TimeMapping::Duration, raw)),
                _ => None,
            };
            let Some(value) = value else { continue };
            if sent.get(i) == Some(&value) {
                continue;
            }
            let node = b.node.clone().unwrap_or_default();
            let target = types.get(session, &node).await;
            let wire = convert::for_remote(&value, target);
            writes.push((
                *i,
                value,
                WriteValue {
                    node_id: node,
                    attribute_id: AttributeId::Value as u32,
                    value: DataValue::value_only(wire),
                    ..Default::default()
                },
            ));
        }
        if writes.is_empty() {
            return Ok(());
        }
        let request: Vec<WriteValue> = writes.iter().map(|(_, _, w)| w.clone()).collect();
        let results = session.write(&request).await.map_err(|e| format!("connection lost: {e}"))?;
        for ((i, value, w), status) in writes.into_iter().zip(results) {
            if status.is_good() {
                sent.insert(i, value);
                lock(&self.status).values_out += 1;
            } else {
                tracing::warn!("OPC-UA client {:?}: writing {} was refused: {status}", self.remote.name, w.node_id);
            }
        }
        Ok(())
    }
}
