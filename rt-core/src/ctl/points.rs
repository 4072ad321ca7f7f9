//! Image points: setting inputs, writing outputs and memory, reading them back.

use super::{CtlError, CtlResult, TIMEOUT, client, out, reader};
use shared_abi::client::Reader;
use shared_abi::image::{Area, IecAddress};

fn parse_addr(text: &str) -> Result<IecAddress, CtlError> {
    IecAddress::parse(text).map_err(|e| CtlError::Usage(format!("{text}: {e}")))
}

pub(crate) fn parse_u64(text: &str) -> Result<u64, CtlError> {
    let not_a_number = || CtlError::Usage(format!("{text}: not a number"));
    match text {
        "true" | "TRUE" | "on" => Ok(1),
        "false" | "FALSE" | "off" => Ok(0),
        t => {
            if let Some(hex) = t.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).map_err(|_| not_a_number())
            } else if let Ok(v) = t.parse::<u64>() {
                Ok(v)
            } else {
                t.parse::<i64>().map(|v| v as u64).map_err(|_| not_a_number())
            }
        }
    }
}

fn truncate_signed(addr: IecAddress, text: &str, value: u64) -> u64 {
    // A negative number means two's complement at the location's width.
    if text.starts_with('-') && addr.width().bytes() < 8 { value & addr.width().max_value() } else { value }
}

pub fn set_input(shm: &str, addr: &str, value: &str) -> CtlResult {
    let addr = parse_addr(addr)?;
    if addr.area() != Area::Input {
        return Err(CtlError::Usage(format!("{addr} is not an input; use `write` for %Q and %M")));
    }
    let v = truncate_signed(addr, value, parse_u64(value)?);
    let mut c = client(shm)?;
    c.set_input(addr, v)?;
    out!("{addr} = {v}")
}

pub fn write_point(shm: &str, addr: &str, value: &str) -> CtlResult {
    let addr = parse_addr(addr)?;
    let v = truncate_signed(addr, value, parse_u64(value)?);
    let mut c = client(shm)?;
    c.write(addr, v)?;
    let after = c.status().heartbeat;
    c.wait_cycle_after(after, TIMEOUT)?;
    out!("{addr} <- {v}")
}

pub fn read(shm: &str, addrs: &[String]) -> CtlResult {
    let r = reader(shm)?;
    let outputs = r.outputs()?;
    for a in addrs {
        let addr = parse_addr(a)?;
        let value = match addr.area() {
            Area::Input => {
                return Err(CtlError::Usage(format!("{addr}: inputs are read with `watch` on their debug variable")));
            }
            _ => outputs.image.get(addr),
        };
        match value {
            Some(v) => out!("{addr} = {v}")?,
            None => return Err(CtlError::Usage(format!("{addr}: no such location"))),
        }
    }
    Ok(())
}
