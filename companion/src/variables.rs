//! The running program's debug variables by name, for a monitor without the Editor (a
//! browser, curl, a script): the names and IEC types come from the bundle the program was
//! built from (MatIEC's `VARIABLES.csv`, STruC++'s `debug-map.json`), the values from rt-core
//! through the debugger's shared watch list, decoded to JSON.

use crate::state::App;
use iec_values::{IecType, IecValue};
use serde::Deserialize;
use serde_json::{Value, json};
use shared_abi::debug::ProgramInfo;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// One debug variable of the running program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variable {
    /// The flat debug index (what the Editor's 0x44 polls).
    pub index: u32,
    /// The IEC path as the bundle names it (`CONFIG0.RES0.INSTANCE0.COUNTER` for MatIEC,
    /// `INSTANCE0.COUNTER` for STruC++).
    pub name: String,
    /// The IEC type name (`UINT`, `TIME`, `STRING`, or a user type).
    pub iec_type: String,
}

/// The last program's names, kept while rt-core runs the same program generation.
#[derive(Default)]
pub struct NameCache(std::sync::Mutex<Option<(u32, std::sync::Arc<VarMap>)>>);

impl NameCache {
    pub fn cached(&self, program_gen: u32) -> Option<std::sync::Arc<VarMap>> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|(gen_, _)| *gen_ == program_gen).map(|(_, map)| map.clone())
    }

    pub fn store(&self, program_gen: u32, map: VarMap) -> std::sync::Arc<VarMap> {
        let map = std::sync::Arc::new(map);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((program_gen, map.clone()));
        map
    }
}

/// Why the running program's variables cannot be named.
#[derive(Debug, thiserror::Error)]
pub enum NamesUnavailable {
    #[error("openplc-rt is not running")]
    RtDown,
    #[error("No program is loaded")]
    NoProgram,
    #[error("No program was deployed through the API")]
    NotDeployed,
    #[error("The running program is not the one deployed last: its variable names are unknown")]
    NotTheDeployed,
    #[error("The program's variable names are unavailable: {0}")]
    Unreadable(String),
    /// The blocking task that reads the bundle did not finish.
    #[error("reading the variable names failed: {0}")]
    Task(String),
}

/// The running program and the names of its variables, read from its bundle once per
/// program generation (the REST monitor and the browser monitor share the cache).
pub async fn running(app: &App) -> Result<(ProgramInfo, Arc<VarMap>), NamesUnavailable> {
    let port = app.plc.port();
    if !port.is_attached() {
        return Err(NamesUnavailable::RtDown);
    }
    let info = port.program_info().ok_or(NamesUnavailable::NoProgram)?;
    if let Some(cached) = app.variables.cached(info.program_gen) {
        return Ok((info, cached));
    }
    let record = app.programs.store.current().ok_or(NamesUnavailable::NotDeployed)?;
    let deployed_md5 = app.programs.store.state().md5;
    if let (Some(deployed), Some(running)) = (deployed_md5.as_deref(), info.md5_str())
        && !deployed.eq_ignore_ascii_case(running)
    {
        return Err(NamesUnavailable::NotTheDeployed);
    }
    let src = record.sources();
    let map = tokio::task::spawn_blocking(move || VarMap::load(&src, &info))
        .await
        .map_err(|e| NamesUnavailable::Task(e.to_string()))?
        .map_err(NamesUnavailable::Unreadable)?;
    Ok((info, app.variables.store(info.program_gen, map)))
}

/// The names of one program's variables.
#[derive(Debug)]
pub struct VarMap {
    pub vars: Vec<Variable>,
    by_name: HashMap<String, u32>,
}

impl VarMap {
    fn new(vars: Vec<Variable>) -> VarMap {
        let by_name = vars.iter().map(|v| (v.name.to_ascii_uppercase(), v.index)).collect();
        VarMap { vars, by_name }
    }

    /// The variable called `name` (IEC names are case-insensitive).
    pub fn by_name(&self, name: &str) -> Option<&Variable> {
        self.by_name.get(&name.trim().to_ascii_uppercase()).and_then(|&i| self.vars.get(i as usize))
    }

    pub fn by_index(&self, index: u32) -> Option<&Variable> {
        self.vars.get(index as usize)
    }

    /// Reads the map of the bundle in `src` and checks it against the loaded program.
    pub fn load(src: &Path, info: &ProgramInfo) -> Result<VarMap, String> {
        let csv = src.join("VARIABLES.csv");
        let map = src.join("debug-map.json");
        let vars = if csv.is_file() {
            from_matiec_csv(&read(&csv)?)?
        } else if map.is_file() {
            from_debug_map(&read(&map)?, info)?
        } else {
            return Err("the program's bundle has neither VARIABLES.csv nor debug-map.json".into());
        };
        if vars.len() != info.var_count as usize {
            return Err(format!(
                "the bundle names {} variables but the running program has {}",
                vars.len(),
                info.var_count
            ));
        }
        Ok(VarMap::new(vars))
    }
}

fn read(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > 16 << 20 {
        return Err(format!("{} is too large", path.display()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// MatIEC's `VARIABLES.csv` (numbered as the builder numbers it for RETAIN).
pub fn from_matiec_csv(text: &str) -> Result<Vec<Variable>, String> {
    let vars = openplc_builder::matiec_variables(text).map_err(|e| format!("VARIABLES.csv: {e}"))?;
    Ok(vars.into_iter().map(|v| Variable { index: v.index, name: v.name, iec_type: v.iec_type }).collect())
}

#[derive(Deserialize)]
struct DebugMap {
    leaves: Vec<Leaf>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Leaf {
    array_idx: u32,
    elem_idx: u32,
    path: String,
    #[serde(rename = "type")]
    iec_type: String,
}

/// STruC++'s `debug-map.json` (version 2): leaves by (array, element), placed at the flat
/// index the loaded program gives that pair.
pub fn from_debug_map(text: &str, info: &ProgramInfo) -> Result<Vec<Variable>, String> {
    let map: DebugMap = serde_json::from_str(text).map_err(|e| format!("debug-map.json: {e}"))?;
    // The count and the group lengths come from rt-core: a map naming fewer variables than
    // the count cannot name them all (checked before a slot is allocated for each), and an
    // index past the count is refused like one outside the groups.
    if map.leaves.len() < info.var_count as usize {
        return Err(format!(
            "debug-map.json names {} variables but the running program has {}",
            map.leaves.len(),
            info.var_count
        ));
    }
    let mut slots: Vec<Option<Variable>> = vec![None; info.var_count as usize];
    for leaf in map.leaves {
        let found = info.flat_index(leaf.array_idx, leaf.elem_idx).and_then(|i| Some((i, slots.get_mut(i as usize)?)));
        let Some((index, slot)) = found else {
            return Err(format!(
                "debug-map.json: ({}, {}) is not a variable of the running program",
                leaf.array_idx, leaf.elem_idx
            ));
        };
        *slot = Some(Variable { index, name: leaf.path, iec_type: leaf.iec_type });
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("debug-map.json does not name variable {i}")))
        .collect()
}

/// A value as JSON: BOOL as a boolean, integers and reals as numbers, the TIME family as IEC
/// literals, strings as text (the byte layouts are `iec_values`'); anything else, or bytes
/// of a size the type never has, as hex bytes.
pub fn decode(iec_type: &str, raw: &[u8]) -> Value {
    let decoded = IecType::parse(iec_type).and_then(|ty| Some((ty, iec_values::decode(ty, raw)?)));
    match decoded {
        Some((ty, value)) => render(ty, value),
        None => json!(raw.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(" ")),
    }
}

fn render(ty: IecType, value: IecValue) -> Value {
    match value {
        IecValue::Bool(b) => json!(b),
        IecValue::Signed(v) => json!(v),
        IecValue::Unsigned(v) => json!(v),
        IecValue::Real(v) => json!(v),
        IecValue::Lreal(v) => json!(v),
        IecValue::Duration(ns) => json!(format!("T#{}", duration_text(ns))),
        IecValue::Instant(ns) => {
            let (date, time) = date_and_time(ns);
            json!(match ty {
                IecType::Date => format!("D#{date}"),
                IecType::Tod => format!("TOD#{time}"),
                _ => format!("DT#{date}-{time}"),
            })
        }
        IecValue::Text(s) => json!(s),
    }
}

/// `1d2h3m4s5ms6us7ns` without the zero parts (`0ms` for zero), `-` in front when negative.
fn duration_text(ns: i128) -> String {
    if ns == 0 {
        return "0ms".into();
    }
    let mut rest = ns.unsigned_abs();
    let mut out = String::from(if ns < 0 { "-" } else { "" });
    for (unit, size) in
        [("d", 86_400_000_000_000u128), ("h", 3_600_000_000_000), ("m", 60_000_000_000), ("s", 1_000_000_000)]
            .into_iter()
            .chain([("ms", 1_000_000), ("us", 1_000), ("ns", 1)])
    {
        if rest >= size {
            out.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    out
}

/// `YYYY-MM-DD` and `hh:mm:ss[.fff]` for nanoseconds since 1970 (UTC, as IEC literals). The
/// year can have more than four digits or a sign (a program's DT holds any 64-bit value), so
/// the two parts are made apart rather than cut out of one text at fixed places.
fn date_and_time(ns: i128) -> (String, String) {
    let secs = ns.div_euclid(1_000_000_000);
    let frac_ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let (y, m, d) = crate::timefmt::civil_from_days(secs.div_euclid(86_400) as i64);
    let day = secs.rem_euclid(86_400);
    let mut time = format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60);
    if frac_ms != 0 {
        time.push_str(&format!(".{frac_ms:03}"));
    }
    (format!("{y:04}-{m:02}-{d:02}"), time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_take_debug_indices_except_instances() {
        let csv = "// Programs\n0;CONFIG0.RES0.I;MAIN;\n\n// Variables\n0;FB;CONFIG0.RES0.I;CONFIG0.RES0.I;MAIN;;0;\n\
                   1;MEM;CONFIG0.RES0.I.COUNTER;CONFIG0.RES0.I.COUNTER;UINT;UINT;0;\n\
                   2;FB;CONFIG0.RES0.I.T;CONFIG0.RES0.I.T;TON;;0;\n\
                   3;VAR;CONFIG0.RES0.I.T.Q;CONFIG0.RES0.I.T.Q;BOOL;BOOL;0;\n\n// Ticktime\n10000000\n";
        let vars = from_matiec_csv(csv).unwrap();
        assert_eq!(
            vars.iter().map(|v| (v.index, v.name.as_str())).collect::<Vec<_>>(),
            [(0, "CONFIG0.RES0.I.COUNTER"), (1, "CONFIG0.RES0.I.T.Q")]
        );
        let map = VarMap::new(vars);
        assert_eq!(map.by_name("config0.res0.i.t.q").map(|v| v.iec_type.as_str()), Some("BOOL"));
        assert!(from_matiec_csv("// Variables\n0;VAR\n").is_err());
    }

    #[test]
    fn debug_map_leaves_go_to_their_flat_index() {
        let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
        info.var_count = 3;
        info.group_count = 2;
        info.group_len[..2].copy_from_slice(&[1, 2]);
        let map = r#"{"version":2,"leaves":[
            {"arrayIdx":1,"elemIdx":1,"path":"P.C","type":"INT","size":2},
            {"arrayIdx":0,"elemIdx":0,"path":"G","type":"BOOL","size":1},
            {"arrayIdx":1,"elemIdx":0,"path":"P.B","type":"TIME","size":8}]}"#;
        let vars = from_debug_map(map, &info).unwrap();
        assert_eq!(vars.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["G", "P.B", "P.C"]);
        let missing = r#"{"leaves":[{"arrayIdx":0,"elemIdx":0,"path":"G","type":"BOOL"}]}"#;
        assert!(
            from_debug_map(missing, &info).unwrap_err().contains("names 1 variables but the running program has 3")
        );
        let twice = r#"{"leaves":[{"arrayIdx":0,"elemIdx":0,"path":"G","type":"BOOL"},
            {"arrayIdx":0,"elemIdx":0,"path":"G","type":"BOOL"},{"arrayIdx":1,"elemIdx":0,"path":"P.B","type":"TIME"}]}"#;
        assert!(from_debug_map(twice, &info).unwrap_err().contains("does not name variable 2"));
        let outside = r#"{"leaves":[{"arrayIdx":3,"elemIdx":0,"path":"G","type":"BOOL"}]}"#;
        assert!(from_debug_map(outside, &info).is_err());
        // Facts from rt-core that do not agree: no slot for an index, or a count far too large.
        info.var_count = 2;
        assert!(from_debug_map(map, &info).unwrap_err().contains("(1, 1) is not a variable"));
        info.var_count = u32::MAX;
        assert!(from_debug_map(map, &info).is_err());
    }

    #[test]
    fn values_decode_as_iec_values() {
        assert_eq!(decode("BOOL", &[1]), json!(true));
        assert_eq!(decode("SINT", &[0xFF]), json!(-1));
        assert_eq!(decode("INT", &(-300i16).to_le_bytes()), json!(-300));
        assert_eq!(decode("UDINT", &0xDEAD_BEEFu32.to_le_bytes()), json!(0xDEAD_BEEFu32));
        assert_eq!(decode("LWORD", &u64::MAX.to_le_bytes()), json!(u64::MAX));
        assert_eq!(decode("REAL", &1.5f32.to_le_bytes()), json!(1.5));
        assert_eq!(decode("LREAL", &(-2.25f64).to_le_bytes()), json!(-2.25));
        let mut timespec = 90_061i64.to_le_bytes().to_vec();
        timespec.extend_from_slice(&500_000_000i64.to_le_bytes());
        assert_eq!(decode("TIME", &timespec), json!("T#1d1h1m1s500ms"));
        assert_eq!(decode("TIME", &(-1_500_000i64).to_le_bytes()), json!("T#-1ms500us"));
        assert_eq!(decode("TIME", &0i64.to_le_bytes()), json!("T#0ms"));
        let dt = 1_795_557_303_250_000_000i64;
        assert_eq!(decode("DT", &dt.to_le_bytes()), json!("DT#2026-11-24-21:55:03.250"));
        assert_eq!(decode("DATE", &dt.to_le_bytes()), json!("D#2026-11-24"));
        assert_eq!(decode("TOD", &dt.to_le_bytes()), json!("TOD#21:55:03.250"));
        // Year 14645: DATE and TOD are the two halves of DT, not cut at fixed places.
        let mut far = 400_000_000_000i64.to_le_bytes().to_vec();
        far.extend_from_slice(&0i64.to_le_bytes());
        assert_eq!(decode("DATE", &far), json!("D#14645-06-30"));
        assert_eq!(decode("TOD", &far), json!("TOD#15:06:40"));
        assert_eq!(decode("DT", &far), json!("DT#14645-06-30-15:06:40"));
        let mut s = vec![0u8; 127];
        s[0] = 3;
        s[1..4].copy_from_slice(b"abc");
        assert_eq!(decode("STRING", &s), json!("abc"));
        s[0] = 1;
        s[1] = 0xE9;
        assert_eq!(decode("STRING", &s), json!("é"), "bytes that are not UTF-8 read as Latin-1, as over OPC-UA");
        let mut w = vec![0u8; 253];
        w[0] = 2;
        w[1..5].copy_from_slice(&[0x41, 0, 0xAC, 0x20]);
        assert_eq!(decode("WSTRING", &w), json!("A€"));
        assert_eq!(decode("MY_STRUCT", &[1, 0xAB]), json!("01 AB"));
        assert_eq!(decode("DINT", &[1, 2]), json!("01 02"), "too short for its type: raw bytes");
    }
}
