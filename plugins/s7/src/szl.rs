//! The system status lists (SZL) clients read at connect: module identification
//! (0x0011, snap7's `GetOrderCode`), component identification with the configured
//! identity (0x001C, `GetCpuInfo`), communication capabilities (0x0131 index 1,
//! `GetCpInfo`), the CPU mode (0x0424, `GetPlcStatus`) and the list of lists (0x0000).
//! Record layouts are the ones S7-300 CPUs send; each list is built whole (at most a few
//! hundred bytes) as `[record length][record count][records…]`.

use crate::config::Identity;
use shared_abi::layout::PlcState;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a list cannot be given (the userdata parameter error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SzlError {
    /// No such list: 0xD401.
    UnknownId,
    /// The list exists but not that index: 0xD402.
    UnknownIndex,
}

impl SzlError {
    pub fn code(self) -> u16 {
        match self {
            SzlError::UnknownId => 0xD401,
            SzlError::UnknownIndex => 0xD402,
        }
    }
}

/// What the lists are made of.
pub struct Facts<'a> {
    pub identity: &'a Identity,
    pub max_pdu: u16,
    pub max_connections: u16,
    pub state: PlcState,
    /// When the server saw the PLC enter its current state.
    pub state_since: SystemTime,
}

/// The lists we give, for 0x0000.
const LISTS: [u16; 9] = [0x0000, 0x0011, 0x0111, 0x0F11, 0x001C, 0x011C, 0x0F1C, 0x0131, 0x0424];

/// The order number we report: not a Siemens one (clients show it; none depend on it).
const ORDER_NUMBER: &str = "OpenPLC-Runtime";

/// Bytes of one S7 CPU mode code in 0x0424 (`bzu-id`), what snap7 reads as the state.
pub fn cpu_mode(state: PlcState) -> u8 {
    match state {
        PlcState::Running => 0x08,
        _ => 0x04,
    }
}

fn text(out: &mut Vec<u8>, s: &str, width: usize, pad: u8) {
    // Cut at a character boundary so a multi-byte character never splits.
    let mut end = s.len().min(width);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&s.as_bytes()[..end]);
    out.resize(out.len() + width - end, pad);
}

/// Appends list `id`/`index` to `out` (which the caller cleared).
pub fn build(id: u16, index: u16, f: &Facts<'_>, out: &mut Vec<u8>) -> Result<(), SzlError> {
    // The high byte selects all records (0x00), one by index (0x01) or only the header (0x0F).
    let (part, list) = ((id >> 8) as u8, id & 0x00FF);
    let (record_len, records): (u16, Vec<(u16, Vec<u8>)>) = match list {
        0x00 if part == 0x00 || part == 0x0F => {
            let body = LISTS.iter().map(|&l| (l, l.to_be_bytes().to_vec())).collect();
            (2, body)
        }
        0x11 => (28, module_identification()),
        0x1C => (34, component_identification(f.identity)),
        0x31 if part == 0x01 => {
            if index != 1 {
                return Err(SzlError::UnknownIndex);
            }
            (40, vec![(1, communication_capabilities(f))])
        }
        0x24 if part == 0x04 => (20, vec![(0, mode(f))]),
        _ => return Err(SzlError::UnknownId),
    };
    let chosen: Vec<&Vec<u8>> = match part {
        0x00 | 0x04 => records.iter().map(|(_, r)| r).collect(),
        0x01 => match records.iter().find(|(i, _)| *i == index) {
            Some((_, r)) => vec![r],
            None => return Err(SzlError::UnknownIndex),
        },
        0x0F => Vec::new(),
        _ => return Err(SzlError::UnknownId),
    };
    out.extend_from_slice(&record_len.to_be_bytes());
    let count = if part == 0x0F { records.len() } else { chosen.len() };
    out.extend_from_slice(&(count as u16).to_be_bytes());
    for r in chosen {
        debug_assert_eq!(r.len(), record_len as usize);
        out.extend_from_slice(r);
    }
    Ok(())
}

/// 0x0011: module, basic hardware and basic firmware (the version last: snap7's
/// `GetOrderCode` reads it from the list's last three bytes).
fn module_identification() -> Vec<(u16, Vec<u8>)> {
    let version = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse::<u8>().unwrap_or(0)).collect::<Vec<_>>();
    let v = |i: usize| version.get(i).copied().unwrap_or(0);
    let record = |index: u16, mlfb: &str, ausbg: [u8; 2], ausbe: [u8; 2]| {
        let mut r = index.to_be_bytes().to_vec();
        text(&mut r, mlfb, 20, b' ');
        r.extend_from_slice(&[0x00, 0xC0]);
        r.extend_from_slice(&ausbg);
        r.extend_from_slice(&ausbe);
        (index, r)
    };
    vec![
        record(0x0001, ORDER_NUMBER, [0, 1], [0, 1]),
        record(0x0006, ORDER_NUMBER, [0, 1], [0, 1]),
        record(0x0007, "", [b'V', v(0)], [v(1), v(2)]),
    ]
}

/// 0x001C: the configured identity where snap7's `GetCpuInfo` looks for it.
fn component_identification(id: &Identity) -> Vec<(u16, Vec<u8>)> {
    let record = |index: u16, s: &str, width: usize| {
        let mut r = index.to_be_bytes().to_vec();
        text(&mut r, s, width, 0);
        r.resize(34, 0);
        (index, r)
    };
    vec![
        record(0x0001, &id.name, 24),
        record(0x0002, &id.module_name, 24),
        record(0x0003, "", 32),
        record(0x0004, &id.copyright, 26),
        record(0x0005, &id.serial_number, 24),
        record(0x0007, &id.module_type, 32),
        record(0x0008, "", 32),
        record(0x0009, "", 32),
        record(0x000A, "", 32),
        record(0x000B, "", 32),
    ]
}

/// 0x0131 index 1: maximum PDU and connections, MPI and bus rates.
fn communication_capabilities(f: &Facts<'_>) -> Vec<u8> {
    let mut r = 1u16.to_be_bytes().to_vec();
    r.extend_from_slice(&f.max_pdu.to_be_bytes());
    r.extend_from_slice(&f.max_connections.to_be_bytes());
    r.extend_from_slice(&187_500u32.to_be_bytes());
    r.extend_from_slice(&12_000_000u32.to_be_bytes());
    r.resize(40, 0);
    r
}

/// 0x0424: the current mode and when it began.
fn mode(f: &Facts<'_>) -> Vec<u8> {
    let mut r = vec![0, 0, 0xFF, cpu_mode(f.state), 0, 0, 0, 0, 0, 0, 0, 0];
    r.extend_from_slice(&bcd_time(f.state_since));
    r
}

fn bcd(v: u32) -> u8 {
    (((v / 10) % 10) << 4 | (v % 10)) as u8
}

/// S7 DATE_AND_TIME (UTC): BCD year, month, day, hour, minute, second, milliseconds and
/// weekday (1 = Sunday).
pub fn bcd_time(t: SystemTime) -> [u8; 8] {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let rem = (secs % 86_400) as u32;
    let ms = since.subsec_millis();
    let weekday = ((days + 4).rem_euclid(7) + 1) as u8; // 1970-01-01 was a Thursday.
    [
        bcd((y % 100) as u32),
        bcd(m),
        bcd(d),
        bcd(rem / 3600),
        bcd(rem / 60 % 60),
        bcd(rem % 60),
        bcd(ms / 10),
        (((ms % 10) as u8) << 4) | weekday,
    ]
}

/// Civil date of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn facts(id: &Identity) -> Facts<'_> {
        Facts { identity: id, max_pdu: 480, max_connections: 32, state: PlcState::Running, state_since: UNIX_EPOCH }
    }

    #[test]
    fn cpu_info_sits_where_snap7_reads_it() {
        let id = Identity::default();
        let mut out = Vec::new();
        build(0x001C, 0, &facts(&id), &mut out).unwrap();
        let s = |from: usize, len: usize| {
            let b = &out[from..from + len];
            String::from_utf8(b[..b.iter().position(|&c| c == 0).unwrap_or(len)].to_vec()).unwrap()
        };
        assert_eq!(s(6, 24), "OpenPLC Runtime");
        assert_eq!(s(40, 24), "OpenPLC");
        assert_eq!(s(108, 26), "OpenPLC Project");
        assert_eq!(s(142, 24), "S C-XXXXXXXXX");
        assert_eq!(s(176, 32), "CPU 315-2 PN/DP");
        assert_eq!(out.len(), 4 + 10 * 34);
    }

    #[test]
    fn order_code_and_version_where_snap7_reads_them() {
        let id = Identity::default();
        let mut out = Vec::new();
        build(0x0011, 0, &facts(&id), &mut out).unwrap();
        assert_eq!(&out[6..21], b"OpenPLC-Runtime");
        let n = out.len();
        let version: Vec<String> = out[n - 3..].iter().map(|b| b.to_string()).collect();
        assert_eq!(version.join("."), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn single_records_headers_and_unknown_lists() {
        let id = Identity::default();
        let mut out = Vec::new();
        build(0x011C, 5, &facts(&id), &mut out).unwrap();
        assert_eq!(&out[..6], &[0, 34, 0, 1, 0, 5]);
        out.clear();
        build(0x0F1C, 0, &facts(&id), &mut out).unwrap();
        assert_eq!(out, [0, 34, 0, 10]);
        out.clear();
        assert_eq!(build(0x011C, 6, &facts(&id), &mut out), Err(SzlError::UnknownIndex));
        assert_eq!(build(0x0131, 2, &facts(&id), &mut out), Err(SzlError::UnknownIndex));
        assert_eq!(build(0x0232, 4, &facts(&id), &mut out), Err(SzlError::UnknownId));
        assert_eq!(build(0x0A00, 0, &facts(&id), &mut out), Err(SzlError::UnknownId));
    }

    #[test]
    fn mode_and_capabilities() {
        let id = Identity::default();
        let mut f = facts(&id);
        let mut out = Vec::new();
        build(0x0424, 0, &f, &mut out).unwrap();
        assert_eq!(out[7], 0x08, "RUN where snap7's GetPlcStatus reads it");
        f.state = PlcState::Stopped;
        out.clear();
        build(0x0424, 0, &f, &mut out).unwrap();
        assert_eq!(out[7], 0x04);
        out.clear();
        build(0x0131, 1, &f, &mut out).unwrap();
        assert_eq!(&out[6..10], &[0x01, 0xE0, 0, 32]);
    }

    #[test]
    fn bcd_date_and_time() {
        // 2026-12-04 05:35:26.789 UTC, a Friday.
        let t = UNIX_EPOCH + Duration::from_millis(1_796_362_526_789);
        assert_eq!(bcd_time(t), [0x26, 0x12, 0x04, 0x05, 0x35, 0x26, 0x78, 0x96]);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
