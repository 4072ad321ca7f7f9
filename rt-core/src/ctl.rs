//! The control tool: `openplc-rt <command>` drives a running rt-core through the shared
//! memory, as the companion does. Mutating commands take the client lease (refused while the
//! companion holds it); reads work alongside the companion as an observer.

use shared_abi::client::{ClientError, Observer, Reader, RtClient, Status};
use shared_abi::debug::DebugValues;
use shared_abi::image::{Area, IecAddress};
use shared_abi::layout::{RT_DMA_LATENCY, RT_FIFO, RT_ISOLATED_CPU, RT_MLOCKED, RT_PINNED};
use shared_abi::msg::{Command, CommandStatus, MAX_FORCE_BYTES};
use shared_abi::program::VarKind;
use shared_abi::stats::{HIST_BUCKETS, HistogramSnapshot, Summary};
use std::time::Duration;

pub type CtlResult = Result<(), String>;

const TIMEOUT: Duration = Duration::from_secs(5);

fn text(e: ClientError) -> String {
    e.to_string()
}

fn client(shm: &str) -> Result<RtClient, String> {
    RtClient::open(shm).map_err(text)
}

/// Prefers the lease (so a lone control tool sees its own inputs), falls back to observing.
fn reader(shm: &str) -> Result<Box<dyn Reader>, String> {
    match RtClient::open(shm) {
        Ok(c) => Ok(Box::new(c)),
        Err(ClientError::Shm(shared_abi::shm::ShmError::ClientAttached { .. })) => {
            Ok(Box::new(Observer::open(shm).map_err(text)?))
        }
        Err(e) => Err(text(e)),
    }
}

fn expect_ok(status: CommandStatus, what: &str) -> CtlResult {
    match status {
        CommandStatus::Ok => Ok(()),
        other => Err(format!("{what}: {}", other.as_str())),
    }
}

pub fn simple(shm: &str, command: Command, what: &str) -> CtlResult {
    let mut c = client(shm)?;
    let status = c.command(command, TIMEOUT).map_err(text)?;
    expect_ok(status, what)?;
    println!("{what}: ok");
    Ok(())
}

pub fn load(shm: &str, path: &str, start: bool, timeout_ms: u64) -> CtlResult {
    let mut c = client(shm)?;
    let absolute = std::fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
    let result = c.load(&absolute.to_string_lossy(), start, Duration::from_millis(timeout_ms)).map_err(text)?;
    println!("{}", result.message_str());
    println!("program generation {}, state {}", result.program_gen, c.status().state.as_str());
    Ok(())
}

pub fn check(path: &str) -> CtlResult {
    let checked = crate::program::LoadedProgram::check(std::path::Path::new(path)).map_err(|e| e.to_string())?;
    println!(
        "{path}: loads, program ABI {}, generator {}",
        shared_abi::program::PROGRAM_ABI_VERSION,
        checked.generator.as_deref().unwrap_or("unknown")
    );
    Ok(())
}

fn flag_names(flags: u32) -> String {
    let names = [
        (RT_MLOCKED, "mlocked"),
        (RT_FIFO, "fifo"),
        (RT_PINNED, "pinned"),
        (RT_ISOLATED_CPU, "isolated-cpu"),
        (RT_DMA_LATENCY, "dma-latency-0"),
    ];
    let set: Vec<&str> = names.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect();
    if set.is_empty() { "none".into() } else { set.join(",") }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn status(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let s: Status = r.status();
    let info = r.program_info().map_err(text)?;
    let load = r.load_result().map_err(text)?;
    if json {
        println!(
            "{{\"state\":{},\"rt_alive\":{},\"rt_pid\":{},\"heartbeat\":{},\"period_ns\":{},\"program_gen\":{},\"program_path\":{},\"md5\":{},\"var_count\":{},\"scan_cpu\":{},\"scan_priority\":{},\"rt_flags\":{},\"last_load\":{}}}",
            json_str(s.state.as_str()),
            s.rt_alive,
            s.rt_pid,
            s.heartbeat,
            s.period_ns,
            s.program_gen,
            json_str(info.path_str()),
            info.md5_str().map_or("null".into(), json_str),
            info.var_count,
            s.scan_cpu,
            s.scan_priority,
            json_str(&flag_names(s.rt_flags)),
            json_str(load.message_str()),
        );
        return Ok(());
    }
    println!("state:       {}{}", s.state.as_str(), if s.rt_alive { "" } else { " (openplc-rt is not running)" });
    println!("rt-core:     pid {}, cycle {}, period {} µs", s.rt_pid, s.heartbeat, s.period_ns / 1000);
    println!(
        "scan thread: cpu {}, SCHED_FIFO {}, {}",
        if s.scan_cpu < 0 { "any".into() } else { s.scan_cpu.to_string() },
        s.scan_priority,
        flag_names(s.rt_flags)
    );
    if info.program_gen != 0 {
        println!("program:     {} (generation {})", info.path_str(), info.program_gen);
        println!("             md5 {}, {} debug variables", info.md5_str().unwrap_or("none"), info.var_count);
    } else {
        println!("program:     none");
    }
    if !load.message_str().is_empty() {
        println!("last load:   {}", load.message_str());
    }
    Ok(())
}

fn us(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1000.0))
}

fn json_us(ns: Option<u64>) -> String {
    ns.map_or("null".into(), |v| format!("{:.3}", v as f64 / 1000.0))
}

pub fn stats(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let s = r.stats().map_err(text)?;
    let rows: [(&str, &Summary); 3] =
        [("latency", &s.latency), ("scan_time", &s.scan_time), ("cycle_time", &s.cycle_time)];
    if json {
        let parts: Vec<String> = rows
            .iter()
            .map(|(n, m)| {
                format!(
                    "\"{n}_us\":{{\"min\":{},\"avg\":{},\"max\":{}}}",
                    json_us(m.min()),
                    json_us(m.mean_ns()),
                    json_us(m.max())
                )
            })
            .collect();
        println!(
            "{{\"scan_count\":{},\"overruns\":{},\"skipped_periods\":{},\"period_us\":{},{}}}",
            s.scan_count,
            s.overruns,
            s.skipped_periods,
            s.period_ns / 1000,
            parts.join(",")
        );
        return Ok(());
    }
    println!(
        "scans {}  overruns {}  skipped periods {}  period {} µs",
        s.scan_count,
        s.overruns,
        s.skipped_periods,
        s.period_ns / 1000
    );
    println!("{:<11} {:>9} {:>9} {:>9}  (µs)", "", "min", "avg", "max");
    for (name, m) in rows {
        println!("{name:<11} {:>9} {:>9} {:>9}", us(m.min()), us(m.mean_ns()), us(m.max()));
    }
    Ok(())
}

/// cyclictest's `-h` output format, so existing plotting scripts read it.
pub fn format_histogram(h: &HistogramSnapshot) -> String {
    let mut out = String::from("# Histogram\n");
    for (us, n) in h.buckets.iter().enumerate() {
        out.push_str(&format!("{us:06} {n:06}\n"));
    }
    let total = h.total();
    let min = h.buckets.iter().position(|&n| n > 0).unwrap_or(0);
    let sum: u64 = h.buckets.iter().enumerate().map(|(us, &n)| us as u64 * n).sum();
    let avg = if total > h.overflow { sum / (total - h.overflow) } else { 0 };
    out.push_str(&format!("# Total: {total:09}\n# Min Latencies: {min:05}\n# Avg Latencies: {avg:05}\n"));
    out.push_str(&format!("# Max Latencies: {:05}\n# Histogram Overflows: {:05}\n", h.max_ns / 1000, h.overflow));
    out
}

pub fn histogram(shm: &str, json: bool) -> CtlResult {
    let r = reader(shm)?;
    let h = r.histogram();
    if json {
        let p = |f: f64| h.percentile_us(f).map_or("null".into(), |v| v.to_string());
        let buckets: Vec<String> = h.buckets.iter().map(u64::to_string).collect();
        println!(
            "{{\"bucket_us\":1,\"buckets\":[{}],\"overflow\":{},\"count\":{},\"max_ns\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
            buckets.join(","),
            h.overflow,
            h.count,
            h.max_ns,
            p(0.5),
            p(0.99),
            p(0.999)
        );
    } else {
        print!("{}", format_histogram(&h));
    }
    debug_assert_eq!(h.buckets.len(), HIST_BUCKETS);
    Ok(())
}

fn parse_addr(text: &str) -> Result<IecAddress, String> {
    IecAddress::parse(text).map_err(|e| format!("{text}: {e}"))
}

fn parse_u64(text: &str) -> Result<u64, String> {
    match text {
        "true" | "TRUE" | "on" => Ok(1),
        "false" | "FALSE" | "off" => Ok(0),
        t => {
            if let Some(hex) = t.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).map_err(|_| format!("{t}: not a number"))
            } else if let Ok(v) = t.parse::<u64>() {
                Ok(v)
            } else {
                t.parse::<i64>().map(|v| v as u64).map_err(|_| format!("{t}: not a number"))
            }
        }
    }
}

fn truncate_signed(addr: IecAddress, text: &str, value: u64) -> u64 {
    // A negative number means two's complement at the location's width.
    if text.starts_with('-') && addr.width.bytes() < 8 { value & addr.width.max_value() } else { value }
}

pub fn set_input(shm: &str, addr: &str, value: &str) -> CtlResult {
    let addr = parse_addr(addr)?;
    if addr.area != Area::Input {
        return Err(format!("{addr} is not an input; use `write` for %Q and %M"));
    }
    let v = truncate_signed(addr, value, parse_u64(value)?);
    let mut c = client(shm)?;
    c.set_input(addr, v).map_err(text)?;
    println!("{addr} = {v}");
    Ok(())
}

pub fn write_point(shm: &str, addr: &str, value: &str) -> CtlResult {
    let addr = parse_addr(addr)?;
    let v = truncate_signed(addr, value, parse_u64(value)?);
    let mut c = client(shm)?;
    c.write(addr, v).map_err(text)?;
    let after = c.status().heartbeat;
    c.wait_cycle_after(after, TIMEOUT).map_err(text)?;
    println!("{addr} <- {v}");
    Ok(())
}

pub fn read(shm: &str, addrs: &[String]) -> CtlResult {
    let r = reader(shm)?;
    let outputs = r.outputs().map_err(text)?;
    for a in addrs {
        let addr = parse_addr(a)?;
        let value = match addr.area {
            Area::Input => return Err(format!("{addr}: inputs are read with `watch` on their debug variable")),
            _ => outputs.image.get(addr),
        };
        match value {
            Some(v) => println!("{addr} = {v}"),
            None => return Err(format!("{addr}: no such location")),
        }
    }
    Ok(())
}

/// Sets a watch on `vars` and waits for values taken after the call.
fn watch_once(c: &mut RtClient, vars: &[u32]) -> Result<Box<DebugValues>, String> {
    let generation = c.set_watch(vars);
    let now = c.status().heartbeat;
    c.wait_debug_values(generation, now, TIMEOUT).map_err(text)
}

/// Renders a watched value the way a person reads it.
pub fn render(kind: VarKind, bytes: &[u8]) -> String {
    match (kind, bytes.len()) {
        (VarKind::Timespec, 16) => {
            let sec = i64::from_ne_bytes(bytes[..8].try_into().unwrap_or_default());
            let nsec = i64::from_ne_bytes(bytes[8..].try_into().unwrap_or_default());
            format!("{}.{:09} s", sec, nsec)
        }
        (VarKind::String, n) if n > 0 => {
            let len = (bytes[0] as usize).min(n - 1);
            format!("{:?}", String::from_utf8_lossy(&bytes[1..1 + len]))
        }
        (VarKind::Scalar, n @ (1 | 2 | 4 | 8)) => {
            let mut buf = [0u8; 8];
            buf[..n].copy_from_slice(bytes);
            let v = u64::from_le_bytes(buf);
            let signed = match n {
                1 => v as u8 as i8 as i64,
                2 => v as u16 as i16 as i64,
                4 => v as u32 as i32 as i64,
                _ => v as i64,
            };
            let real = match n {
                4 => format!(" / {}", f32::from_bits(v as u32)),
                8 => format!(" / {}", f64::from_bits(v)),
                _ => String::new(),
            };
            if signed < 0 { format!("{v} / {signed}{real}") } else { format!("{v}{real}") }
        }
        _ => bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" "),
    }
}

pub fn watch(shm: &str, vars: &[u32], count: u64, interval_ms: u64) -> CtlResult {
    let mut c = client(shm)?;
    let generation = c.set_watch(vars);
    let mut after = c.status().heartbeat;
    let mut printed = 0;
    while count == 0 || printed < count {
        let values = c.wait_debug_values(generation, after, TIMEOUT).map_err(text)?;
        after = values.cycle;
        let mut line = format!("tick {}:", values.tick);
        for e in &values.entries[..values.count as usize] {
            if e.valid == 0 {
                line.push_str(&format!("  [{}] (no such variable)", e.var));
                continue;
            }
            let bytes = &values.data[e.offset as usize..e.offset as usize + e.size as usize];
            line.push_str(&format!("  [{}] {}", e.var, render(VarKind::from_u32(e.kind as u32), bytes)));
        }
        println!("{line}");
        printed += 1;
        if interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    Ok(())
}

/// Parses `value` into the native bytes of a variable of `size` bytes and `kind`.
pub fn encode_force(kind: VarKind, size: usize, value: &str) -> Result<Vec<u8>, String> {
    match kind {
        VarKind::String => {
            let body = value.as_bytes();
            if body.len() + 1 > size || body.len() > 255 {
                return Err(format!("string too long for a {size}-byte variable"));
            }
            let mut v = vec![body.len() as u8];
            v.extend_from_slice(body);
            Ok(v)
        }
        VarKind::Timespec => {
            let ns = parse_duration_ns(value)?;
            let mut v = (ns / 1_000_000_000).to_ne_bytes().to_vec();
            v.extend_from_slice(&(ns % 1_000_000_000).to_ne_bytes());
            Ok(v)
        }
        VarKind::Scalar if value.contains(['.', 'e']) && (size == 4 || size == 8) => {
            let f: f64 = value.parse().map_err(|_| format!("{value}: not a number"))?;
            Ok(if size == 4 { (f as f32).to_le_bytes().to_vec() } else { f.to_le_bytes().to_vec() })
        }
        _ => {
            let v = parse_u64(value)?;
            let bytes = v.to_le_bytes();
            let fits = size >= 8
                || if value.starts_with('-') {
                    (v as i64) >= -(1i64 << (size * 8 - 1))
                } else {
                    v < (1u64 << (size * 8))
                };
            if !fits {
                return Err(format!("{value} does not fit a {size}-byte variable"));
            }
            Ok(bytes[..size.min(8)].to_vec())
        }
    }
}

fn parse_duration_ns(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1_000_000.0)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1_000.0)
    } else if let Some(n) = t.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e9)
    } else {
        (t, 1_000_000.0)
    };
    num.trim()
        .parse::<f64>()
        .map(|v| (v * scale) as i64)
        .map_err(|_| format!("{text}: expected a duration such as 500ms or 2s"))
}

pub fn force(shm: &str, var: u32, value: &str) -> CtlResult {
    let mut c = client(shm)?;
    let values = watch_once(&mut c, &[var])?;
    let entry = values.entries[0];
    if entry.valid == 0 {
        return Err(format!("variable {var} does not exist in the loaded program"));
    }
    let bytes = encode_force(VarKind::from_u32(entry.kind as u32), entry.size as usize, value)?;
    let value_vec =
        heapless::Vec::<u8, MAX_FORCE_BYTES>::from_slice(&bytes).map_err(|_| "value too large".to_string())?;
    let status = c.command(Command::Force { var, value: value_vec, big_endian: false }, TIMEOUT).map_err(text)?;
    expect_ok(status, "force")?;
    let after = watch_once(&mut c, &[var])?;
    let e = after.entries[0];
    let now = &after.data[e.offset as usize..e.offset as usize + e.size as usize];
    println!("[{var}] forced: {}", render(VarKind::from_u32(e.kind as u32), now));
    Ok(())
}

pub fn unforce(shm: &str, var: Option<u32>) -> CtlResult {
    match var {
        Some(var) => simple(shm, Command::Unforce { var }, "unforce"),
        None => simple(shm, Command::UnforceAll, "unforce all"),
    }
}
