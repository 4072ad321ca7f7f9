//! `modbus-load`: N concurrent Modbus TCP clients (tokio-modbus's client, not our server
//! code) sending a mix of reads and writes for a fixed time; reports requests per second
//! and reply latency percentiles. Used by `benches/modbus`.
//!
//! The mix: FC 3 (10 holding registers), FC 1 (16 coils), FC 4 (10 input registers),
//! FC 2 (16 discrete inputs), and `--write-percent` of FC 16 (4 `%MW` registers) / FC 6 /
//! FC 5, each client writing its own addresses. The last line printed is JSON.

use clap::Parser;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_modbus::client::Client;
use tokio_modbus::{Request, Slave};

#[derive(Parser)]
#[command(name = "modbus-load", about = "Concurrent Modbus TCP load with latency percentiles")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:5020")]
    addr: SocketAddr,
    #[arg(long, default_value_t = 20)]
    clients: usize,
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Share of requests that are writes.
    #[arg(long, default_value_t = 10)]
    write_percent: u32,
    /// Reply timeout per request.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

/// 1 µs buckets up to 100 ms; slower replies count in the overflow.
const BUCKETS: usize = 100_000;

#[derive(Clone)]
struct Hist {
    buckets: Vec<u64>,
    overflow: u64,
    max_us: u64,
}

impl Hist {
    fn new() -> Hist {
        Hist { buckets: vec![0; BUCKETS], overflow: 0, max_us: 0 }
    }

    fn add(&mut self, d: Duration) {
        let us = d.as_micros() as u64;
        match self.buckets.get_mut(us as usize) {
            Some(b) => *b += 1,
            None => self.overflow += 1,
        }
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, o: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.overflow += o.overflow;
        self.max_us = self.max_us.max(o.max_us);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().sum::<u64>() + self.overflow
    }

    fn pct(&self, f: f64) -> Option<u64> {
        shared_abi::stats::percentile_us(&self.buckets, self.overflow, f)
    }
}

struct Tally {
    reads: Hist,
    writes: Hist,
    exceptions: u64,
    failures: u64,
}

/// A small deterministic generator: each client gets its own sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

async fn client(id: usize, args: &Args, until: Instant) -> Result<Tally, String> {
    let stream = tokio::net::TcpStream::connect(args.addr).await.map_err(|e| format!("connect {}: {e}", args.addr))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(1));
    let mut t = Tally { reads: Hist::new(), writes: Hist::new(), exceptions: 0, failures: 0 };
    let mut rng = Lcg(id as u64 + 1);
    // %MW1000.. per client (holding registers 1024 + 1000 + 4·id), coils 200 + id.
    let mw = 1024 + 1000 + 4 * id as u16;
    let coil = 200 + id as u16;
    let limit = Duration::from_millis(args.timeout_ms);
    let mut n = 0u16;
    while Instant::now() < until {
        n = n.wrapping_add(1);
        let roll = rng.next() % 100;
        let (req, is_write) = if roll < args.write_percent {
            match rng.next() % 3 {
                0 => (Request::WriteMultipleRegisters(mw, Cow::Owned(vec![n, n ^ 0xFFFF, n, 0])), true),
                1 => (Request::WriteSingleRegister(mw, n), true),
                _ => (Request::WriteSingleCoil(coil, n.is_multiple_of(2)), true),
            }
        } else {
            match rng.next() % 10 {
                0..=3 => (Request::ReadHoldingRegisters(0, 10), false),
                4..=5 => (Request::ReadCoils(0, 16), false),
                6..=8 => (Request::ReadInputRegisters(0, 10), false),
                _ => (Request::ReadDiscreteInputs(0, 16), false),
            }
        };
        let start = Instant::now();
        match tokio::time::timeout(limit, ctx.call(req)).await {
            Ok(Ok(Ok(_))) => {
                let d = start.elapsed();
                if is_write { t.writes.add(d) } else { t.reads.add(d) }
            }
            Ok(Ok(Err(_))) => t.exceptions += 1,
            Ok(Err(e)) => return Err(format!("client {id}: {e}")),
            Err(_) => {
                t.failures += 1;
                return Err(format!("client {id}: no reply within {limit:?}"));
            }
        }
    }
    Ok(t)
}

fn main() {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("modbus-load: {e}");
            std::process::exit(1);
        }
    };
    let args = std::sync::Arc::new(args);
    let began = Instant::now();
    let until = began + Duration::from_secs_f64(args.seconds);
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..args.clients)
            .map(|id| {
                let a = args.clone();
                tokio::spawn(async move { client(id, &a, until).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r));
        }
        out
    });
    let elapsed = began.elapsed().as_secs_f64();
    let (mut reads, mut writes, mut all) = (Hist::new(), Hist::new(), Hist::new());
    let (mut exceptions, mut errors) = (0u64, Vec::new());
    for r in results {
        match r {
            Ok(t) => {
                reads.merge(&t.reads);
                writes.merge(&t.writes);
                exceptions += t.exceptions;
            }
            Err(e) => errors.push(e),
        }
    }
    all.merge(&reads);
    all.merge(&writes);
    let total = all.count();
    let rps = total as f64 / elapsed;
    let p = |h: &Hist, f| h.pct(f).map_or("null".to_string(), |v| v.to_string());
    println!(
        "modbus-load: {} clients, {:.1} s: {total} replies ({rps:.0}/s), {exceptions} exceptions, {} client errors",
        args.clients,
        elapsed,
        errors.len()
    );
    for (name, h) in [("all", &all), ("reads", &reads), ("writes", &writes)] {
        println!(
            "  {name:6} n={:<8} p50={} µs  p99={} µs  p99.9={} µs  max={} µs",
            h.count(),
            p(h, 0.5),
            p(h, 0.99),
            p(h, 0.999),
            h.max_us
        );
    }
    for e in &errors {
        eprintln!("modbus-load: {e}");
    }
    println!(
        "{{\"clients\":{},\"seconds\":{:.3},\"replies\":{total},\"rps\":{rps:.1},\"exceptions\":{exceptions},\"errors\":{},\
         \"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"read_p50_us\":{},\"read_p99_us\":{},\
         \"write_p50_us\":{},\"write_p99_us\":{}}}",
        args.clients,
        elapsed,
        errors.len(),
        p(&all, 0.5),
        p(&all, 0.99),
        p(&all, 0.999),
        all.max_us,
        p(&reads, 0.5),
        p(&reads, 0.99),
        p(&writes, 0.5),
        p(&writes, 0.99)
    );
    if !errors.is_empty() || total == 0 {
        std::process::exit(1);
    }
}
