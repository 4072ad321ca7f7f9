//! What the last load did with RETAIN values, for `GET /api/retain-status`, in upstream's
//! field names (`{"retain": {start, format, store, blob_bytes, stored_bytes, result, …}}`).
//!
//! The companion records each load (warm or cold, what the store handed back, the live copy
//! rt-core found in the shared memory); the program's own layout is what rt-core publishes
//! for it once it has scanned. A warm load restores values whose MD5 and layout match the
//! program's exactly (`kept` … `refused` are then 0, as in upstream's format-1 report); an
//! online change (an upload while the old program runs) carries them from the running
//! instance by name, and the counts say how (`migrated`: true).

use serde_json::{Value, json};
use shared_abi::retain::RetainImage;

/// How a load treated RETAIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetainStart {
    /// Saved values given back (a restart of rt-core, the machine or the PLC).
    Warm,
    /// Every variable at its initial value; the stored values replaced (a new upload, a cold
    /// start on request).
    Cold,
}

/// What identifies a set of RETAIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub count: u32,
    pub layout_hash: u64,
    pub md5: [u8; 32],
    pub bytes: u32,
}

impl Layout {
    pub fn of(image: &RetainImage) -> Layout {
        Layout { count: image.count, layout_hash: image.layout_hash, md5: image.md5, bytes: image.len }
    }

    /// rt-core's rule for giving values back: the same program (MD5) and the same RETAIN
    /// variables in the same places (layout hash, count, size).
    fn restores_into(&self, program: &Layout) -> bool {
        self == program
    }
}

/// One load, as the companion saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastStart {
    pub kind: RetainStart,
    /// The program generation the load gave (0 when it did not load).
    pub program_gen: u32,
    /// What the store handed back for a warm load.
    pub stored: Option<Layout>,
    /// The live copy rt-core found in the shared memory (a restarted rt-core prefers it).
    pub live: Option<Layout>,
    /// An online change (an upload that carried the running program's values over).
    pub online: Option<crate::program::online::OnlineChange>,
}

/// Upstream's restore results (`strucpp::retain::LoadResult`), those this runtime can give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RestoreResult {
    Ok = 0,
    StaleLayout = 5,
}

impl RestoreResult {
    fn name(self) -> &'static str {
        match self {
            RestoreResult::Ok => "ok",
            RestoreResult::StaleLayout => "stale_layout",
        }
    }
}

/// The `retain` object. `store` is the store's description (`None`: retain is off);
/// `program` the layout rt-core published for the running program, when it has RETAIN
/// variables and has scanned; `last` the last load, when it was of that program.
pub fn retain_json(store: Option<&str>, program: Option<Layout>, last: Option<&LastStart>) -> Value {
    if let (Some(program), Some(change)) = (program, last.and_then(|l| l.online.as_ref()).filter(|c| c.done())) {
        return migrated_json(store, program, &change.report);
    }
    let (Some(store), Some(program)) = (store, program) else {
        // As upstream with no store or no retained variables: nothing is kept.
        return json!({
            "start": "none", "format": 0, "store": store.unwrap_or(""), "blob_bytes": 0, "stored_bytes": 0,
            "result": null, "restored": false,
        });
    };
    let start = match last.map(|l| l.kind) {
        Some(RetainStart::Warm) => "warm",
        Some(RetainStart::Cold) => "cold",
        None => "none",
    };
    // A store hands back only the values of this program (its identity is the MD5).
    let stored = last.filter(|l| l.kind == RetainStart::Warm).and_then(|l| l.stored).filter(|s| s.md5 == program.md5);
    let live = last.filter(|l| l.kind == RetainStart::Warm).and_then(|l| l.live).filter(|l| l.restores_into(&program));
    let mut out = json!({
        "start": start,
        "format": 1,
        "store": store,
        "blob_bytes": program.bytes,
        "stored_bytes": stored.map_or(0, |s| s.bytes),
    });
    let report = match (live, stored) {
        (Some(from), _) => Some((RestoreResult::Ok, from)),
        (None, Some(s)) if s.restores_into(&program) => Some((RestoreResult::Ok, s)),
        (None, Some(s)) => Some((RestoreResult::StaleLayout, s)),
        (None, None) => None,
    };
    let Some(o) = out.as_object_mut() else { return out };
    match report {
        Some((result, from)) => {
            let restored = result == RestoreResult::Ok;
            o.insert("result".into(), json!(result as u8));
            o.insert("result_name".into(), json!(result.name()));
            o.insert("restored".into(), json!(restored));
            o.insert("stored_format".into(), json!(if restored { 1 } else { 0 }));
            for count in ["kept", "converted", "truncated", "added", "dropped", "refused"] {
                o.insert(count.into(), json!(0));
            }
            o.insert("stored_layout".into(), json!(format!("{:016x}", from.layout_hash)));
            o.insert("program_layout".into(), json!(format!("{:016x}", program.layout_hash)));
        }
        None => {
            o.insert("result".into(), Value::Null);
            o.insert("restored".into(), json!(false));
        }
    }
    out
}

/// The `retain` object after an online change: the RETAIN values were carried from the
/// running instance (with or without a store), counted by rt-core at the swap. A RETAIN
/// variable whose type could not be converted counts as dropped (old) and added (new).
fn migrated_json(store: Option<&str>, program: Layout, report: &shared_abi::migrate::SwapReport) -> Value {
    let r = &report.carried;
    json!({
        "start": "warm",
        "format": 1,
        "store": store.unwrap_or(""),
        "blob_bytes": program.bytes,
        "stored_bytes": 0,
        "result": RestoreResult::Ok as u8,
        "result_name": RestoreResult::Ok.name(),
        "restored": r.retain_copied > 0,
        "migrated": true,
        "kept": r.retain_copied - r.retain_converted.min(r.retain_copied),
        "converted": r.retain_converted,
        "truncated": r.retain_truncated,
        "added": r.retain_added,
        "dropped": r.retain_dropped,
        "refused": 0,
        "program_layout": format!("{:016x}", program.layout_hash),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(hash: u64, md5: u8, bytes: u32) -> Layout {
        Layout { count: 1, layout_hash: hash, md5: [md5; 32], bytes }
    }

    #[test]
    fn off_or_without_retain_variables_nothing_is_kept() {
        for v in [retain_json(None, Some(layout(1, b'a', 4)), None), retain_json(Some("/x"), None, None)] {
            assert_eq!(v["start"], "none");
            assert_eq!(v["format"], 0);
            assert!(v["result"].is_null());
            assert_eq!(v["restored"], false);
        }
    }

    #[test]
    fn a_warm_start_reports_what_came_back() {
        let program = layout(7, b'a', 4);
        let warm = |stored, live| LastStart { kind: RetainStart::Warm, program_gen: 2, stored, live, online: None };

        let v = retain_json(Some("store"), Some(program), Some(&warm(Some(program), None)));
        assert_eq!(
            (v["start"].as_str(), v["result"].as_u64(), v["result_name"].as_str()),
            (Some("warm"), Some(0), Some("ok"))
        );
        assert_eq!(
            (v["restored"].as_bool(), v["stored_bytes"].as_u64(), v["blob_bytes"].as_u64()),
            (Some(true), Some(4), Some(4))
        );
        assert_eq!(v["program_layout"], "0000000000000007");
        assert_eq!(v["kept"], 0);

        // Same program, other RETAIN variables: refused.
        let v = retain_json(Some("store"), Some(program), Some(&warm(Some(layout(9, b'a', 8)), None)));
        assert_eq!(
            (v["result"].as_u64(), v["result_name"].as_str(), v["restored"].as_bool()),
            (Some(5), Some("stale_layout"), Some(false))
        );
        assert_eq!(v["stored_layout"], "0000000000000009");

        // Another program's values: the store keeps them to itself.
        let v = retain_json(Some("store"), Some(program), Some(&warm(Some(layout(7, b'b', 4)), None)));
        assert_eq!((v["stored_bytes"].as_u64(), v["result"].is_null()), (Some(0), true));

        // A restarted rt-core's live copy counts even with nothing stored.
        let v = retain_json(Some("store"), Some(program), Some(&warm(None, Some(program))));
        assert_eq!((v["restored"].as_bool(), v["stored_bytes"].as_u64()), (Some(true), Some(0)));
    }

    #[test]
    fn a_cold_start_restores_nothing() {
        let program = layout(7, b'a', 4);
        let cold = LastStart {
            kind: RetainStart::Cold,
            program_gen: 3,
            stored: Some(program),
            live: Some(program),
            online: None,
        };
        let v = retain_json(Some("store"), Some(program), Some(&cold));
        assert_eq!(
            (v["start"].as_str(), v["stored_bytes"].as_u64(), v["restored"].as_bool()),
            (Some("cold"), Some(0), Some(false))
        );
        assert!(v["result"].is_null());
    }
}
