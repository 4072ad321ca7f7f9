//! Online change on upload: the running program's variables matched with the new one's by
//! name and compatible type, as the plan rt-core carries their values by at the swap, and
//! what the match amounts to (kept, converted, new, dropped, refused, by name).
//!
//! The names and IEC types come from the bundles (MatIEC's `VARIABLES.csv`, STruC++'s
//! `debug-map.json`), the same ones the monitor names variables by. Which variables they
//! list, and so which can be carried, depends on the generation:
//! - MatIEC: every program variable (located or not), CONFIGURATION globals, and every member
//!   of a function-block instance, internal state included (a TON's `START_TIME`, `STATE`, …).
//! - STruC++: program variables and globals, and only the inputs and outputs of
//!   function-block instances (their internal state is not exposed: a TON restarts).

use crate::variables::{Variable, from_debug_map, from_matiec_csv};
use serde::Serialize;
use serde_json::{Value, json};
use shared_abi::debug::{MAX_GROUPS, ProgramInfo};
use shared_abi::migrate::{MAX_MIGRATE, MigrateEntry, MigratePlan, OnlineRefusal, SwapOutcome, SwapReport, ValueType};
use std::collections::HashMap;
use std::path::Path;

/// Names listed per category in a report; the counts are always whole.
const MAX_NAMES: usize = 200;

/// How the running program's variables meet the new program's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Same name, same IEC type: copied as they are.
    pub kept: Vec<String>,
    /// Same name, another numeric type: converted (see `shared_abi::migrate::convert`).
    pub converted: Vec<String>,
    /// Only in the new program: they start at their initial values.
    pub added: Vec<String>,
    /// Only in the old program: gone.
    pub dropped: Vec<String>,
    /// Same name, a type the value cannot be converted to: the new one starts at its
    /// initial value.
    pub refused: Vec<String>,
}

impl Summary {
    pub fn carried(&self) -> usize {
        self.kept.len() + self.converted.len()
    }
}

/// The plan for rt-core and its summary.
pub struct Matched {
    pub plan: Box<MigratePlan>,
    pub summary: Summary,
}

impl std::fmt::Debug for Matched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matched").field("entries", &self.plan.count).field("summary", &self.summary).finish()
    }
}

/// The variables a bundle names, without a loaded program: STruC++'s flat indices are
/// placed by the map's own array sizes (rt-core checks every carried index's size).
pub fn bundle_variables(src: &Path) -> Result<Vec<Variable>, String> {
    let read = |name: &str| -> Result<String, String> {
        let path = src.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.len() > 16 << 20 {
            return Err(format!("{} is too large", path.display()));
        }
        std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    if src.join("VARIABLES.csv").is_file() {
        return from_matiec_csv(&read("VARIABLES.csv")?);
    }
    if !src.join("debug-map.json").is_file() {
        return Err("the bundle has neither VARIABLES.csv nor debug-map.json".into());
    }
    let text = read("debug-map.json")?;
    #[derive(serde::Deserialize)]
    struct Arrays {
        arrays: Vec<ArrayDecl>,
    }
    #[derive(serde::Deserialize)]
    struct ArrayDecl {
        index: u32,
        count: u32,
    }
    let arrays: Arrays = serde_json::from_str(&text).map_err(|e| format!("debug-map.json: {e}"))?;
    let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
    for a in &arrays.arrays {
        let slot = info
            .group_len
            .get_mut(a.index as usize)
            .ok_or_else(|| format!("debug-map.json: array {} is past the {MAX_GROUPS} this runtime reads", a.index))?;
        *slot = a.count;
        info.group_count = info.group_count.max(a.index + 1);
    }
    info.var_count = info.group_len.iter().try_fold(0u32, |sum, &n| sum.checked_add(n)).ok_or("too many variables")?;
    from_debug_map(&text, &info)
}

/// Matches `old` (the running program, generation `old_gen`) with `new` by name
/// (case-insensitive) and type.
pub fn match_variables(old_gen: u32, old: &[Variable], new: &[Variable]) -> Matched {
    let mut plan: Box<MigratePlan> = bytemuck::zeroed_box();
    plan.old_program_gen = old_gen;
    let mut summary = Summary::default();
    let by_name: HashMap<String, &Variable> = old.iter().map(|v| (v.name.to_ascii_uppercase(), v)).collect();
    let mut matched = std::collections::HashSet::new();
    let mut n = 0usize;
    for v in new {
        let Some(o) = by_name.get(&v.name.to_ascii_uppercase()) else {
            summary.added.push(v.name.clone());
            continue;
        };
        matched.insert(o.index);
        let same = o.iec_type.trim().eq_ignore_ascii_case(v.iec_type.trim());
        let types = match (same, ValueType::of_iec(&o.iec_type), ValueType::of_iec(&v.iec_type)) {
            (true, _, _) => Some((ValueType::Raw, ValueType::Raw)),
            (false, Some(from), Some(to)) => Some((from, to)),
            _ => None,
        };
        let Some((from, to)) = types else {
            summary.refused.push(v.name.clone());
            continue;
        };
        if n == MAX_MIGRATE {
            // Past what one plan carries: it starts at its initial value.
            summary.added.push(v.name.clone());
            continue;
        }
        plan.entries[n] =
            MigrateEntry { old_var: o.index, new_var: v.index, from: from as u8, to: to as u8, ..Default::default() };
        n += 1;
        if same { summary.kept.push(v.name.clone()) } else { summary.converted.push(v.name.clone()) }
    }
    plan.count = n as u32;
    summary.dropped = old.iter().filter(|o| !matched.contains(&o.index)).map(|o| o.name.clone()).collect();
    Matched { plan, summary }
}

/// An online change as it went: the match, and what rt-core did at the swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlineChange {
    pub summary: Summary,
    pub report: SwapReport,
}

impl OnlineChange {
    /// Whether rt-core carried the values (else the program started cold).
    pub fn done(&self) -> bool {
        self.report.outcome() == SwapOutcome::Online
    }

    /// One line for the runtime log.
    pub fn describe(&self) -> String {
        let s = &self.summary;
        let r = &self.report;
        if !self.done() {
            let why = match r.outcome() {
                SwapOutcome::OnlineRefused => r.refusal().as_str(),
                _ => OnlineRefusal::NoPlan.as_str(),
            };
            return format!("Online change not possible ({why}): program #{} started cold", r.program_gen);
        }
        format!(
            "Online change to program #{} at cycle {} after scan {} ({} µs on the scan thread): {} variables kept, \
             {} converted ({} truncated), {} new, {} dropped, {} refused; {} forces kept, {} released",
            r.program_gen,
            r.cycle,
            r.tick,
            r.swap_ns / 1000,
            s.kept.len(),
            s.converted.len(),
            r.carried.truncated,
            s.added.len(),
            s.dropped.len(),
            s.refused.len(),
            r.forces_kept,
            r.forces_dropped
        )
    }

    /// The `online_change` object of `/api/retain-status`.
    pub fn json(&self) -> Value {
        let s = &self.summary;
        let r = &self.report;
        let names = |v: &Vec<String>| v.iter().take(MAX_NAMES).cloned().collect::<Vec<_>>();
        json!({
            "done": self.done(),
            "refusal": if self.done() { Value::Null } else { json!(r.refusal().as_str()) },
            "program_gen": r.program_gen,
            "cycle": r.cycle,
            "tick": r.tick,
            "swap_us": r.swap_ns / 1000,
            "kept": s.kept.len(),
            "converted": s.converted.len(),
            "truncated": r.carried.truncated,
            "added": s.added.len(),
            "dropped": s.dropped.len(),
            "refused": s.refused.len(),
            "failed": r.carried.failed,
            "forces_kept": r.forces_kept,
            "forces_released": r.forces_dropped,
            "names": {
                "kept": names(&s.kept),
                "converted": names(&s.converted),
                "added": names(&s.added),
                "dropped": names(&s.dropped),
                "refused": names(&s.refused),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(index: u32, name: &str, iec_type: &str) -> Variable {
        Variable { index, name: name.into(), iec_type: iec_type.into() }
    }

    #[test]
    fn variables_match_by_name_and_compatible_type() {
        let old = [var(0, "P.COUNTER", "UINT"), var(1, "P.A", "DINT"), var(2, "P.GONE", "BOOL"), var(3, "P.T", "TIME")];
        let new =
            [var(0, "p.counter", "UINT"), var(1, "P.T", "STRING"), var(2, "P.A", "LREAL"), var(3, "P.NEW", "INT")];
        let m = match_variables(7, &old, &new);
        assert_eq!(m.plan.old_program_gen, 7);
        assert_eq!(
            m.plan.used(),
            [
                MigrateEntry { old_var: 0, new_var: 0, ..Default::default() },
                MigrateEntry {
                    old_var: 1,
                    new_var: 2,
                    from: ValueType::I32 as u8,
                    to: ValueType::F64 as u8,
                    ..Default::default()
                },
            ]
        );
        assert_eq!(m.summary.kept, ["p.counter"]);
        assert_eq!(m.summary.converted, ["P.A"]);
        assert_eq!(m.summary.refused, ["P.T"], "TIME cannot become a STRING");
        assert_eq!(m.summary.added, ["P.NEW"]);
        assert_eq!(m.summary.dropped, ["P.GONE"]);
    }

    #[test]
    fn a_strucpp_map_is_placed_by_its_own_arrays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("debug-map.json"),
            r#"{"version":2,"arrays":[{"index":0,"count":1},{"index":1,"count":2}],"leaves":[
                {"arrayIdx":1,"elemIdx":1,"path":"I.B","type":"INT"},
                {"arrayIdx":0,"elemIdx":0,"path":"G","type":"BOOL"},
                {"arrayIdx":1,"elemIdx":0,"path":"I.A","type":"UINT"}]}"#,
        )
        .unwrap();
        let vars = bundle_variables(dir.path()).unwrap();
        let named: Vec<_> = vars.iter().map(|v| (v.index, v.name.as_str())).collect();
        assert_eq!(named, [(0, "G"), (1, "I.A"), (2, "I.B")]);
        std::fs::write(dir.path().join("debug-map.json"), r#"{"arrays":[{"index":99,"count":1}],"leaves":[]}"#)
            .unwrap();
        assert!(bundle_variables(dir.path()).is_err());
    }
}
