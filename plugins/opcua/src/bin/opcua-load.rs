//! `opcua-load`: N OPC-UA clients (async-opcua's client, not our server code) against any
//! OPC-UA server for a fixed time. Each client opens its own session, subscribes to the same
//! V variables at an interval, and reads V variables in one Read request after another.
//! Reports reads per second and their latency, data-change notifications per second and
//! their lateness (arrival minus the value's source timestamp: how old a value is when a
//! client gets it). Used by `benches/opcua` (against the runtime's server and against an
//! asyncua server with the same variables). The last line printed is JSON.

use clap::Parser;
use opcua::client::{ClientBuilder, DataChangeCallback, IdentityToken, Session};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    AttributeId, DataValue, MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters,
    NodeId, ReadValueId, TimestampsToReturn, UserTokenPolicy,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "opcua-load", about = "Concurrent OPC-UA subscriptions and reads with latency percentiles")]
struct Args {
    /// Endpoint URL (security None, anonymous).
    #[arg(long)]
    url: String,
    /// Namespace URI of the variables.
    #[arg(long)]
    ns: String,
    /// Node ids are `<prefix><k>` for k in 0..vars (string identifiers).
    #[arg(long, default_value = "PLC.X")]
    prefix: String,
    #[arg(long, default_value_t = 100)]
    vars: usize,
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Publishing and sampling interval of each client's subscription.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
}

#[derive(Default)]
struct Tally {
    /// Read round trips, µs.
    reads: Vec<u32>,
    read_errors: u64,
    /// Notification lateness, µs (arrival minus source timestamp).
    lateness: Vec<u32>,
    notifications: u64,
    first_error: Option<String>,
}

async fn connect(
    args: &Args,
    pki: &std::path::Path,
) -> Result<(Arc<Session>, tokio::task::JoinHandle<opcua::types::StatusCode>), String> {
    let mut client = ClientBuilder::new()
        .application_name("opcua-load")
        .application_uri("urn:openplc:bench:opcua-load")
        .pki_dir(pki)
        .create_sample_keypair(false)
        .trust_server_certs(true)
        .session_retry_limit(0)
        .session_timeout(60_000)
        .request_timeout(Duration::from_secs(10))
        .client()
        .map_err(|e| e.join(", "))?;
    let endpoint: opcua::types::EndpointDescription =
        (args.url.as_str(), SecurityPolicy::None.to_uri(), MessageSecurityMode::None, UserTokenPolicy::anonymous())
            .into();
    let (session, event_loop) = client
        .connect_to_matching_endpoint(endpoint, IdentityToken::Anonymous)
        .await
        .map_err(|e| format!("connect {}: {e}", args.url))?;
    let handle = event_loop.spawn();
    if !tokio::time::timeout(Duration::from_secs(20), session.wait_for_connection()).await.unwrap_or(false) {
        return Err("the session did not open".into());
    }
    Ok((session, handle))
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

async fn client(id: usize, args: Arc<Args>, pki: std::path::PathBuf, until: Instant) -> Result<Tally, String> {
    let (session, event_loop) = connect(&args, &pki).await.map_err(|e| format!("client {id}: {e}"))?;
    let namespaces = session.read_namespace_array().await.map_err(|e| format!("client {id}: namespaces: {e}"))?;
    let ns = namespaces
        .get_index(&args.ns)
        .ok_or_else(|| format!("client {id}: the server has no namespace {}", args.ns))?;
    let nodes: Vec<NodeId> = (0..args.vars).map(|k| NodeId::new(ns, format!("{}{k}", args.prefix))).collect();

    let seen: Arc<Mutex<(u64, Vec<u32>)>> = Arc::default();
    let sink = seen.clone();
    let callback = DataChangeCallback::new(move |dv: DataValue, _item| {
        let arrived = chrono::Utc::now();
        let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        if let Some(ts) = dv.source_timestamp {
            let age = (arrived - ts.as_chrono()).num_microseconds().unwrap_or(0).max(0);
            s.1.push(age.min(u32::MAX as i64) as u32);
        }
    });
    let interval = Duration::from_millis(args.interval_ms);
    let sub = session
        .create_subscription(interval, 60, 10, 0, 0, true, callback)
        .await
        .map_err(|e| format!("client {id}: subscribe: {e}"))?;
    let items = nodes
        .iter()
        .map(|n| MonitoredItemCreateRequest {
            item_to_monitor: ReadValueId {
                node_id: n.clone(),
                attribute_id: AttributeId::Value as u32,
                ..Default::default()
            },
            monitoring_mode: MonitoringMode::Reporting,
            requested_parameters: MonitoringParameters {
                sampling_interval: args.interval_ms as f64,
                queue_size: 1,
                discard_oldest: true,
                ..Default::default()
            },
        })
        .collect();
    let created = session
        .create_monitored_items(sub, TimestampsToReturn::Both, items)
        .await
        .map_err(|e| format!("client {id}: monitor: {e}"))?;
    if let Some(bad) = created.iter().find(|r| !r.result.status_code.is_good()) {
        return Err(format!("client {id}: monitoring refused: {}", bad.result.status_code));
    }

    let reads: Vec<ReadValueId> = nodes.iter().map(|n| ReadValueId::from(n.clone())).collect();
    let mut t = Tally::default();
    while Instant::now() < until {
        let start = Instant::now();
        match session.read(&reads, TimestampsToReturn::Neither, 0.0).await {
            Ok(values)
                if values.len() == reads.len() && values.iter().all(|v| v.status.is_none_or(|s| s.is_good())) =>
            {
                t.reads.push(micros(start.elapsed()))
            }
            Ok(values) => {
                t.read_errors += 1;
                let bad = values.iter().find_map(|v| v.status.filter(|s| !s.is_good()));
                t.first_error.get_or_insert_with(|| format!("client {id}: read: {bad:?}"));
            }
            Err(e) => {
                t.read_errors += 1;
                t.first_error.get_or_insert_with(|| format!("client {id}: read: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let _ = session.delete_subscription(sub).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), session.disconnect()).await;
    event_loop.abort();
    let (notifications, lateness) = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    t.notifications = notifications;
    t.lateness = lateness;
    Ok(t)
}

fn pct(sorted: &[u32], f: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((f * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1000.0)
}

fn json_ms(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| format!("{x:.3}"))
}

fn main() {
    let args = Arc::new(Args::parse());
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opcua-load: {e}");
            std::process::exit(1);
        }
    };
    // async-opcua's client keeps a certificate store; a directory of our own, removed after.
    let pki = std::env::temp_dir().join(format!("opcua-load-{}", std::process::id()));
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(args.seconds);
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..args.clients)
            .map(|id| tokio::spawn(client(id, args.clone(), pki.join(format!("client{id}")), until)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        out
    });
    let elapsed = began.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&pki);
    let (mut reads, mut lateness, mut notifications, mut read_errors) = (Vec::new(), Vec::new(), 0u64, 0u64);
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(t) => {
                reads.extend(t.reads);
                lateness.extend(t.lateness);
                notifications += t.notifications;
                read_errors += t.read_errors;
                errors.extend(t.first_error);
            }
            Err(e) => errors.push(e),
        }
    }
    reads.sort_unstable();
    lateness.sort_unstable();
    let rps = reads.len() as f64 / elapsed;
    let nps = notifications as f64 / elapsed;
    println!(
        "opcua-load: {} clients × {} variables, {elapsed:.1} s: {} reads ({rps:.0}/s, p50 {} ms, p99 {} ms), \
         {notifications} notifications ({nps:.0}/s, lateness p50 {} ms, p99 {} ms), {read_errors} read errors",
        args.clients,
        args.vars,
        reads.len(),
        json_ms(pct(&reads, 0.5)),
        json_ms(pct(&reads, 0.99)),
        json_ms(pct(&lateness, 0.5)),
        json_ms(pct(&lateness, 0.99)),
    );
    for e in &errors {
        eprintln!("opcua-load: {e}");
    }
    let first_error = errors.first().map_or("null".into(), |e| serde_json::Value::from(e.as_str()).to_string());
    println!(
        "{{\"clients\":{},\"vars\":{},\"seconds\":{elapsed:.3},\"reads\":{},\"reads_per_s\":{rps:.1},\"read_errors\":{read_errors},\
         \"read_p50_ms\":{},\"read_p99_ms\":{},\"notifications\":{notifications},\"notifications_per_s\":{nps:.1},\
         \"lateness_p50_ms\":{},\"lateness_p99_ms\":{},\"errors\":{},\"first_error\":{first_error}}}",
        args.clients,
        args.vars,
        reads.len(),
        json_ms(pct(&reads, 0.5)),
        json_ms(pct(&reads, 0.99)),
        json_ms(pct(&lateness, 0.5)),
        json_ms(pct(&lateness, 0.99)),
        errors.len(),
    );
    if reads.is_empty() || errors.iter().any(|e| !e.contains("read:")) {
        std::process::exit(1);
    }
}
