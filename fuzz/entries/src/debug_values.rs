//! `debug_values`: values and program facts that come from rt-core across the shared
//! memory, as the companion turns them into replies: a variable's bytes decoded to JSON for
//! `/api/variables/values` (`companion::variables::decode`), to the Editor's wire form
//! (`openplc_debugger::values::to_wire`), and a `ProgramInfo`'s accessors (`flat_index`,
//! `md5_str`, `path_str`) and the variable names a bundle's `debug-map.json` gives it
//! (`companion::variables::from_debug_map`), with every field taken from the input.
//!
//! Input: one byte choosing the IEC type name (or, past the list, a type name read from
//! the input), then the raw value; the whole input also fills a `ProgramInfo`.

use openplc_debugger::values;
use serde_json::Value;
use shared_abi::debug::{MAX_GROUPS, ProgramInfo};
use shared_abi::program::VarKind;

const TYPES: &[&str] = &[
    "BOOL",
    "SINT",
    "INT",
    "DINT",
    "LINT",
    "USINT",
    "BYTE",
    "UINT",
    "WORD",
    "UDINT",
    "DWORD",
    "ULINT",
    "LWORD",
    "REAL",
    "LREAL",
    "TIME",
    "DATE",
    "TOD",
    "TIME_OF_DAY",
    "DT",
    "DATE_AND_TIME",
    "STRING",
    "WSTRING",
    "MY_STRUCT",
];

pub fn run(data: &[u8]) {
    let Some((&pick, raw)) = data.split_first() else { return };
    let owned;
    let iec_type = match TYPES.get(pick as usize) {
        Some(t) => *t,
        None => {
            let (name, _) = raw.split_at(raw.len().min(12));
            owned = String::from_utf8_lossy(name).into_owned();
            &owned
        }
    };
    decode(iec_type, raw);
    for kind in [VarKind::Scalar, VarKind::Timespec, VarKind::String, VarKind::Opaque] {
        let mut scratch = [0u8; values::WIRE_TIMESPEC];
        let wire = values::to_wire(kind, raw, &mut scratch);
        assert_eq!(wire.len(), values::wire_len(kind, raw.len()), "{kind:?}: the length announced is the one sent");
    }
    program_info(data);
}

fn decode(iec_type: &str, raw: &[u8]) {
    let value = openplc_companion::variables::decode(iec_type, raw);
    match &value {
        Value::Bool(_) => assert!(iec_type.eq_ignore_ascii_case("BOOL")),
        Value::Number(_) => {}
        // Hex bytes (3 characters a byte), an IEC literal, or a string no longer than its bytes.
        Value::String(s) => {
            assert!(s.len() <= 3 * raw.len() + 64, "{iec_type}: {} characters from {} bytes", s.len(), raw.len());
            literal(&iec_type.to_ascii_uppercase(), s);
        }
        Value::Null => {}
        other => panic!("{iec_type}: decoded to {other}"),
    }
}

/// A DATE / TOD / DT value is a whole IEC literal: `D#<year>-MM-DD`, `TOD#hh:mm:ss[.fff]`,
/// `DT#<year>-MM-DD-hh:mm:ss[.fff]` (the year may be negative or longer than 4 digits).
fn literal(iec_type: &str, text: &str) {
    let date = |d: &str| {
        let d = d.strip_prefix('-').unwrap_or(d);
        let parts: Vec<&str> = d.split('-').collect();
        parts.len() == 3
            && parts[0].len() >= 4
            && [2, 2].iter().zip(&parts[1..]).all(|(&n, p)| p.len() == n)
            && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    let time = |t: &str| {
        let (hms, frac) = t.split_once('.').unwrap_or((t, "000"));
        let parts: Vec<&str> = hms.split(':').collect();
        parts.len() == 3
            && parts.iter().chain([&frac]).all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            && parts.iter().all(|p| p.len() == 2)
            && frac.len() == 3
    };
    // A value of another size than the type's goes out as hex bytes.
    let hex = text.is_empty() || text.split(' ').all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()));
    let ok = match iec_type {
        "DATE" => text.strip_prefix("D#").map_or(hex, date),
        "TOD" | "TIME_OF_DAY" => text.strip_prefix("TOD#").map_or(hex, time),
        "DT" | "DATE_AND_TIME" => {
            text.strip_prefix("DT#").map_or(hex, |v| v.rsplit_once('-').is_some_and(|(d, t)| date(d) && time(t)))
        }
        _ => true,
    };
    assert!(ok, "{iec_type} decoded to {text:?}");
}

/// A STruC++ `debug-map.json` of two arrays.
const DEBUG_MAP: &str = r#"{"version":2,"leaves":[
{"arrayIdx":0,"elemIdx":0,"path":"I.A","type":"INT"},{"arrayIdx":0,"elemIdx":1,"path":"I.B","type":"BOOL"},
{"arrayIdx":1,"elemIdx":0,"path":"I.C","type":"TIME"}]}"#;

fn program_info(data: &[u8]) {
    let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
    let bytes = bytemuck::bytes_of_mut(&mut info);
    let n = bytes.len().min(data.len());
    bytes[..n].copy_from_slice(&data[..n]);
    let _ = info.md5_str();
    let _ = info.path_str();
    let groups = (info.group_count as usize).min(MAX_GROUPS);
    let total: u64 = info.group_len[..groups].iter().map(|&l| l as u64).sum();
    let probes =
        data.chunks(3).map(|c| (c[0] as u32, c.get(1..).map_or(0, |e| e.iter().fold(0u32, |v, &b| v << 8 | b as u32))));
    for (group, element) in probes.chain([(0, 0), (groups.saturating_sub(1) as u32, u32::MAX)]) {
        if let Some(flat) = info.flat_index(group, element) {
            assert!((flat as u64) < total, "({group}, {element}) → {flat} of {total}");
        }
    }
    // The names of a bundle's variables placed by this program's facts.
    if let Ok(vars) = openplc_companion::variables::from_debug_map(DEBUG_MAP, &info) {
        assert_eq!(vars.len(), info.var_count as usize);
    }
}
