//! The Modbus master: polls and writes remote devices as `conf/modbus_master.json` says.
//!
//! One task per device. Devices that share an endpoint (several slave ids behind one
//! TCP gateway, or several slaves on one serial line) share one connection, taken in
//! turn (FIFO), so their requests never interleave on the wire; devices on different
//! endpoints never wait for each other. Each I/O point runs at its own `cycle_time_ms`;
//! a point that falls behind skips the missed periods rather than bursting.
//!
//! A device that does not answer (timeout, refused or broken connection) is reported as
//! failing and retried with exponential back-off (1 s doubling to 30 s by default); while
//! it waits it does not hold the shared connection, so a dead slave behind a gateway
//! costs its neighbours at most one `timeout_ms` per retry. A reply that is a Modbus
//! exception means the device is there: the point is reported, the device is not backed
//! off. After any timeout or transport error the connection is dropped and opened again
//! on next use, so a late reply can never be taken for the answer to a later request.
//!
//! Reads (FC 1/2 → bits, FC 3/4 → words) into `%I` points go through `update_inputs`
//! (the program sees them at its next scan); into `%Q`/`%M` points they are queued
//! writes. Writes (FC 5/15 bits, FC 6/16 words) send the latest published outputs. A
//! `%ID`/`%IL` (or `%QD`/`%QL`) point takes 2/4 registers, lowest word first, as
//! upstream's master does. Values of a failing device keep their last value.

use crate::config::{DeviceConfig, Function, IoPoint, Link, MasterConfig, Parity, registers_per_element};
use openplc_port::ImagePort;
use serde::Serialize;
use shared_abi::image::{Area, IecAddress, Width};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{Request, Response, Slave};

/// Back-off of a failing device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MasterOptions {
    /// Wait before the first retry.
    pub backoff_initial: Duration,
    /// Longest wait between retries.
    pub backoff_max: Duration,
}

impl Default for MasterOptions {
    fn default() -> Self {
        MasterOptions { backoff_initial: Duration::from_secs(1), backoff_max: Duration::from_secs(30) }
    }
}

/// Health of one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Not polled yet.
    Starting,
    /// The last exchange got an answer.
    Ok,
    /// The last exchange got none; retried with back-off.
    Failing,
    /// No io_points: nothing to do.
    Idle,
}

/// What the companion logs and serves about one device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    pub name: String,
    /// `host:port` or the serial line.
    pub link: String,
    pub slave_id: u8,
    pub state: DeviceState,
    /// The last failure (no answer, or an exception reply), kept after recovery.
    pub last_error: Option<String>,
    /// When the current failing spell began (ms since the Unix epoch).
    pub failing_since_ms: Option<u64>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Time until the next retry while failing.
    pub retry_in_ms: Option<u64>,
    /// Exchanges that got a normal answer.
    pub ok: u64,
    /// Exchanges that got no answer.
    pub failed: u64,
    /// Exchanges answered with a Modbus exception.
    pub exceptions: u64,
    /// When the last normal answer came (ms since the Unix epoch).
    pub last_ok_ms: Option<u64>,
}

struct Tracked {
    status: DeviceStatus,
    retry_at: Option<Instant>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One connection shared by the devices of an endpoint.
struct Endpoint {
    link: Link,
    conn: tokio::sync::Mutex<Option<Context>>,
}

/// A running master.
pub struct Master {
    devices: Vec<Arc<Mutex<Tracked>>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Master {
    /// Starts one task per device (inside a tokio runtime).
    pub fn start(cfg: MasterConfig, options: MasterOptions, plc: Arc<dyn ImagePort>) -> Master {
        let (shutdown, rx) = watch::channel(false);
        let mut endpoints: HashMap<String, Arc<Endpoint>> = HashMap::new();
        let mut devices = Vec::new();
        let mut tasks = Vec::new();
        for dev in cfg.devices {
            let ep = endpoints
                .entry(dev.link.key())
                .or_insert_with(|| Arc::new(Endpoint { link: dev.link.clone(), conn: tokio::sync::Mutex::new(None) }))
                .clone();
            let tracked = Arc::new(Mutex::new(Tracked {
                status: DeviceStatus {
                    name: dev.name.clone(),
                    link: dev.link.to_string(),
                    slave_id: dev.slave_id,
                    state: if dev.points.is_empty() { DeviceState::Idle } else { DeviceState::Starting },
                    last_error: None,
                    failing_since_ms: None,
                    consecutive_failures: 0,
                    retry_in_ms: None,
                    ok: 0,
                    failed: 0,
                    exceptions: 0,
                    last_ok_ms: None,
                },
                retry_at: None,
            }));
            devices.push(tracked.clone());
            tasks.push(tokio::spawn(run_device(dev, ep, plc.clone(), tracked, options, rx.clone())));
        }
        Master { devices, shutdown, tasks }
    }

    /// Every device's health, in configuration order.
    pub fn status(&self) -> Vec<DeviceStatus> {
        let now = Instant::now();
        self.devices
            .iter()
            .map(|d| {
                let t = d.lock().unwrap_or_else(|p| p.into_inner());
                let mut s = t.status.clone();
                s.retry_in_ms = t.retry_at.map(|r| r.saturating_duration_since(now).as_millis() as u64);
                s
            })
            .collect()
    }

    /// Stops every device task and closes the connections.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// What one exchange brought back.
enum Reply {
    Bits(Vec<bool>),
    Words(Vec<u16>),
    Written,
}

enum Failure {
    /// The device answered with a Modbus exception.
    Exception(String),
    /// No usable answer: the device (or its link) is failing.
    NoAnswer(String),
}

async fn run_device(
    dev: DeviceConfig,
    ep: Arc<Endpoint>,
    plc: Arc<dyn ImagePort>,
    tracked: Arc<Mutex<Tracked>>,
    options: MasterOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    if dev.points.is_empty() {
        return;
    }
    let start = Instant::now();
    let mut due = vec![start; dev.points.len()];
    let mut backoff = options.backoff_initial;
    let mut retry_at: Option<Instant> = None;
    loop {
        let Some((i, &next)) = due.iter().enumerate().min_by_key(|(_, d)| **d) else { return };
        let when = retry_at.map_or(next, |r| r.max(next));
        tokio::select! {
            _ = sleep_until(when) => {}
            _ = shutdown.changed() => return,
        }
        let point = &dev.points[i];
        let result = tokio::select! {
            r = exchange(&dev, point, &ep, &*plc) => r,
            _ = shutdown.changed() => return,
        };
        let now = Instant::now();
        let mut t = tracked.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut t.status;
        match result {
            Ok(()) => {
                if s.state == DeviceState::Failing {
                    tracing::info!(device = %dev.name, link = %ep.link, "Modbus device answers again");
                }
                s.state = DeviceState::Ok;
                s.ok += 1;
                s.last_ok_ms = Some(unix_ms());
                s.consecutive_failures = 0;
                s.failing_since_ms = None;
                retry_at = None;
                backoff = options.backoff_initial;
                due[i] = next_due(due[i], point.period, now);
            }
            Err(Failure::Exception(msg)) => {
                tracing::warn!(device = %dev.name, fc = point.function.code(), offset = point.offset, "{msg}");
                s.exceptions += 1;
                s.last_error = Some(msg);
                if s.state != DeviceState::Failing {
                    s.state = DeviceState::Ok;
                }
                due[i] = next_due(due[i], point.period, now);
            }
            Err(Failure::NoAnswer(msg)) => {
                if s.state != DeviceState::Failing {
                    tracing::warn!(device = %dev.name, link = %ep.link, "Modbus device failing: {msg}; retrying with back-off");
                    s.failing_since_ms = Some(unix_ms());
                } else {
                    tracing::debug!(device = %dev.name, "Modbus retry failed: {msg}");
                }
                s.state = DeviceState::Failing;
                s.failed += 1;
                s.consecutive_failures += 1;
                s.last_error = Some(msg);
                retry_at = Some(now + backoff);
                backoff = (backoff * 2).min(options.backoff_max);
            }
        }
        t.retry_at = retry_at;
    }
}

/// The next deadline after `prev`: one period on, or, when that has already passed, one
/// period from now (missed periods are skipped, never caught up in a burst).
fn next_due(prev: Instant, period: Duration, now: Instant) -> Instant {
    let next = prev + period;
    if next > now { next } else { now + period }
}

async fn connect(link: &Link, slave: Slave) -> Result<Context, String> {
    match link {
        Link::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|e| format!("connect {host}:{port}: {e}"))?;
            let _ = stream.set_nodelay(true);
            Ok(tokio_modbus::client::tcp::attach_slave(stream, slave))
        }
        Link::Rtu(s) => {
            let parity = match s.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            };
            let stop_bits = if s.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One };
            let data_bits = match s.data_bits {
                5 => tokio_serial::DataBits::Five,
                6 => tokio_serial::DataBits::Six,
                7 => tokio_serial::DataBits::Seven,
                _ => tokio_serial::DataBits::Eight,
            };
            let builder =
                tokio_serial::new(&s.path, s.baud_rate).parity(parity).stop_bits(stop_bits).data_bits(data_bits);
            let port = tokio_serial::SerialStream::open(&builder).map_err(|e| format!("open {}: {e}", s.path))?;
            Ok(tokio_modbus::client::rtu::attach_slave(port, slave))
        }
    }
}

/// The request for `point`; writes carry the image's current values.
fn request(point: &IoPoint, plc: &dyn ImagePort) -> Vec<Request<'static>> {
    let n = point.wire_count() as u16;
    let a = point.offset;
    match point.function {
        Function::ReadCoils => vec![Request::ReadCoils(a, n)],
        Function::ReadDiscreteInputs => vec![Request::ReadDiscreteInputs(a, n)],
        Function::ReadHoldingRegisters => vec![Request::ReadHoldingRegisters(a, n)],
        Function::ReadInputRegisters => vec![Request::ReadInputRegisters(a, n)],
        Function::WriteMultipleCoils => vec![Request::WriteMultipleCoils(a, Cow::Owned(image_bits(point, plc)))],
        Function::WriteMultipleRegisters => {
            vec![Request::WriteMultipleRegisters(a, Cow::Owned(image_words(point, plc)))]
        }
        // One request per item: the function carries a single value.
        Function::WriteSingleCoil => {
            image_bits(point, plc).into_iter().zip(a..).map(|(v, addr)| Request::WriteSingleCoil(addr, v)).collect()
        }
        Function::WriteSingleRegister => image_words(point, plc)
            .into_iter()
            .zip(a..)
            .map(|(v, addr)| Request::WriteSingleRegister(addr, v))
            .collect(),
    }
}

/// One exchange (or, for FC 5/6 over several items, one series) with the device.
async fn exchange(dev: &DeviceConfig, point: &IoPoint, ep: &Endpoint, plc: &dyn ImagePort) -> Result<(), Failure> {
    let requests = request(point, plc);
    let mut conn = ep.conn.lock().await;
    let ctx = match conn.as_mut() {
        Some(ctx) => ctx,
        None => {
            let c = match timeout(dev.timeout, connect(&ep.link, Slave(dev.slave_id))).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(Failure::NoAnswer(e)),
                Err(_) => {
                    return Err(Failure::NoAnswer(format!("connect {}: no answer within {:?}", ep.link, dev.timeout)));
                }
            };
            conn.insert(c)
        }
    };
    ctx.set_slave(Slave(dev.slave_id));
    let mut reply = Reply::Written;
    for req in requests {
        let fc = req.function_code().value();
        match timeout(dev.timeout, ctx.call(req)).await {
            Err(_) => {
                *conn = None;
                return Err(Failure::NoAnswer(format!("no reply to FC {fc} within {:?}", dev.timeout)));
            }
            Ok(Err(e)) => {
                *conn = None;
                return Err(Failure::NoAnswer(format!("FC {fc}: {e}")));
            }
            Ok(Ok(Err(exc))) => {
                return Err(Failure::Exception(format!(
                    "FC {fc} answered with exception {:#04x} ({exc})",
                    u8::from(exc)
                )));
            }
            Ok(Ok(Ok(rsp))) => {
                reply = match rsp {
                    Response::ReadCoils(b) | Response::ReadDiscreteInputs(b) => Reply::Bits(b),
                    Response::ReadHoldingRegisters(w) | Response::ReadInputRegisters(w) => Reply::Words(w),
                    _ => Reply::Written,
                }
            }
        }
    }
    drop(conn);
    store(point, reply, plc)
}

/// Puts what a read brought back into the image.
fn store(point: &IoPoint, reply: Reply, plc: &dyn ImagePort) -> Result<(), Failure> {
    let want = point.wire_count() as usize;
    let values: Vec<(IecAddress, u64)> = match reply {
        Reply::Written => return Ok(()),
        Reply::Bits(bits) => {
            // A reply carries whole bytes; fewer bits than asked is a broken device.
            if bits.len() < want {
                return Err(Failure::NoAnswer(format!("{} bits in a reply to a read of {want}", bits.len())));
            }
            (0..want).map(|k| (bit_at(point.location, k), bits[k] as u64)).collect()
        }
        Reply::Words(words) => {
            if words.len() != want {
                return Err(Failure::NoAnswer(format!("{} registers in a reply to a read of {want}", words.len())));
            }
            let per = registers_per_element(point.location.width()) as usize;
            words
                .chunks(per)
                .enumerate()
                .map(|(k, w)| {
                    let v = w.iter().rev().fold(0u64, |acc, &x| (acc << 16) | x as u64);
                    let v = if point.location.width() == Width::Byte { v & 0xFF } else { v };
                    (element_at(point.location, k), v)
                })
                .collect()
        }
    };
    if point.location.area() == Area::Input {
        plc.update_inputs(&mut |img| {
            for &(a, v) in &values {
                img.set(a, v);
            }
        })
        .map_err(|e| Failure::Exception(format!("cannot store into the image: {e}")))
    } else {
        plc.write(&values).map(|_| ()).map_err(|e| Failure::Exception(format!("cannot store into the image: {e}")))
    }
}

/// The `k`-th bit from `first`, carrying into the next byte address.
fn bit_at(first: IecAddress, k: usize) -> IecAddress {
    // The configuration check keeps every point of a range inside the image.
    first.offset_by(k).unwrap_or(first)
}

fn element_at(first: IecAddress, k: usize) -> IecAddress {
    // As above.
    first.offset_by(k).unwrap_or(first)
}

fn image_value(plc: &dyn ImagePort, addrs: &[IecAddress]) -> Vec<u64> {
    match addrs.first().map(|a| a.area()) {
        // Detached: zeros, as before the first scan.
        Some(Area::Input) => plc
            .inputs(|img| addrs.iter().map(|&a| img.get(a).unwrap_or(0)).collect())
            .unwrap_or_else(|| vec![0; addrs.len()]),
        Some(_) => {
            let snap = plc.outputs();
            addrs.iter().map(|&a| snap.image.get(a).unwrap_or(0)).collect()
        }
        None => Vec::new(),
    }
}

fn image_bits(point: &IoPoint, plc: &dyn ImagePort) -> Vec<bool> {
    let addrs: Vec<_> = (0..point.len as usize).map(|k| bit_at(point.location, k)).collect();
    image_value(plc, &addrs).into_iter().map(|v| v != 0).collect()
}

fn image_words(point: &IoPoint, plc: &dyn ImagePort) -> Vec<u16> {
    let addrs: Vec<_> = (0..point.len as usize).map(|k| element_at(point.location, k)).collect();
    let per = registers_per_element(point.location.width());
    image_value(plc, &addrs).into_iter().flat_map(|v| (0..per).map(move |j| (v >> (16 * j)) as u16)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_carry_into_the_next_byte() {
        let a = IecAddress::parse("%IX0.6").unwrap();
        assert_eq!(bit_at(a, 0), a);
        assert_eq!(bit_at(a, 2), IecAddress::parse("%IX1.0").unwrap());
        assert_eq!(bit_at(a, 11), IecAddress::parse("%IX2.1").unwrap());
    }

    #[test]
    fn missed_periods_are_skipped() {
        let t0 = Instant::now();
        let p = Duration::from_millis(100);
        assert_eq!(next_due(t0, p, t0 + Duration::from_millis(10)), t0 + p);
        assert_eq!(next_due(t0, p, t0 + Duration::from_millis(350)), t0 + Duration::from_millis(450));
    }
}
