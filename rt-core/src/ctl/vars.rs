//! Debug variables by index: watching, forcing, writing once and releasing.

use super::points::parse_u64;
use super::{CtlError, CtlResult, TIMEOUT, client, expect_ok, out, simple};
use shared_abi::client::{Reader, RtClient};
use shared_abi::debug::{DebugValues, WatchedValue};
use shared_abi::msg::{Command, MAX_FORCE_BYTES};
use shared_abi::program::VarKind;
use std::time::Duration;

/// Sets a watch on `vars` and waits for values taken after the call.
fn watch_once(c: &mut RtClient, vars: &[u32]) -> Result<Box<DebugValues>, CtlError> {
    let generation = c.set_watch(vars);
    let now = c.status().heartbeat;
    Ok(c.wait_debug_values(generation, now, TIMEOUT)?)
}

/// The bytes of watched entry `e` in `values`, if they lie inside its data.
fn bytes_of<'v>(values: &'v DebugValues, e: &WatchedValue) -> Option<&'v [u8]> {
    values.data.get(e.offset as usize..e.offset as usize + e.size as usize)
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
        let values = c.wait_debug_values(generation, after, TIMEOUT)?;
        after = values.cycle;
        let mut line = format!("tick {}:", values.tick);
        let n = (values.count as usize).min(values.entries.len());
        for e in &values.entries[..n] {
            match bytes_of(&values, e).filter(|_| e.valid != 0) {
                Some(bytes) => {
                    line.push_str(&format!("  [{}] {}", e.var, render(VarKind::from_u32(e.kind as u32), bytes)))
                }
                None => line.push_str(&format!("  [{}] (no such variable)", e.var)),
            }
        }
        out!("{line}")?;
        printed += 1;
        if interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    Ok(())
}

/// Parses `value` into the native bytes of a variable of `size` bytes and `kind`.
pub fn encode_value(kind: VarKind, size: usize, value: &str) -> Result<Vec<u8>, CtlError> {
    match kind {
        VarKind::String => {
            let body = value.as_bytes();
            if body.len() + 1 > size || body.len() > 255 {
                return Err(CtlError::Usage(format!("string too long for a {size}-byte variable")));
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
            let f: f64 = value.parse().map_err(|_| CtlError::Usage(format!("{value}: not a number")))?;
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
                return Err(CtlError::Usage(format!("{value} does not fit a {size}-byte variable")));
            }
            Ok(bytes[..size.min(8)].to_vec())
        }
    }
}

fn parse_duration_ns(text: &str) -> Result<i64, CtlError> {
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
        .map_err(|_| CtlError::Usage(format!("{text}: expected a duration such as 500ms or 2s")))
}

/// The native bytes of `value` for variable `var`, whose size and kind a watch tells.
fn value_for(c: &mut RtClient, var: u32, value: &str) -> Result<heapless::Vec<u8, MAX_FORCE_BYTES>, CtlError> {
    let values = watch_once(c, &[var])?;
    let entry = values.entries[0];
    if entry.valid == 0 {
        return Err(CtlError::Usage(format!("variable {var} does not exist in the loaded program")));
    }
    let bytes = encode_value(VarKind::from_u32(entry.kind as u32), entry.size as usize, value)?;
    heapless::Vec::from_slice(&bytes).map_err(|_| CtlError::Usage("value too large".into()))
}

/// Prints variable `var` as the program has it now.
fn show(c: &mut RtClient, var: u32, what: &str) -> CtlResult {
    let after = watch_once(c, &[var])?;
    let e = after.entries[0];
    let now = bytes_of(&after, &e).unwrap_or_default();
    out!("[{var}] {what}: {}", render(VarKind::from_u32(e.kind as u32), now))
}

pub fn force(shm: &str, var: u32, value: &str) -> CtlResult {
    let mut c = client(shm)?;
    let value = value_for(&mut c, var, value)?;
    let status = c.command(Command::Force { var, value, big_endian: false }, TIMEOUT)?;
    expect_ok(status, "force")?;
    show(&mut c, var, "forced")
}

pub fn set_var(shm: &str, var: u32, value: &str) -> CtlResult {
    let mut c = client(shm)?;
    let value = value_for(&mut c, var, value)?;
    let status = c.command(Command::SetVar { var, value, big_endian: false }, TIMEOUT)?;
    expect_ok(status, "set-var")?;
    show(&mut c, var, "written")
}

pub fn unforce(shm: &str, var: Option<u32>) -> CtlResult {
    match var {
        Some(var) => simple(shm, Command::Unforce { var }, "unforce"),
        None => simple(shm, Command::UnforceAll, "unforce all"),
    }
}
