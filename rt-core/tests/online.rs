//! Online change in an engine driven cycle by cycle (every cycle observed): a running demo
//! program (MatIEC and STruC++ shape, built with the real adapters) is replaced by a changed
//! build of it, and the count continues exactly: no reset, no skipped or doubled scan, the
//! outputs and the forces unchanged across the swap, the carried variables converted as the
//! plan says, the dropped one gone and the new one at its initial value.

mod support;

use shared_abi::client::Reader;
use shared_abi::debug::DebugValues;
use shared_abi::layout::OutputSnapshot;
use shared_abi::migrate::{MigrateEntry, MigratePlan, SwapOutcome, ValueType};
use shared_abi::msg::{Command, CommandStatus};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::{InProcess, build_matiec, build_strucpp};

const T: Duration = Duration::from_secs(10);
/// Debug indices, the same in both generations' demo for these.
const COUNTER: u32 = 0;
const V_INT: u32 = 7;
const V_DINT: u32 = 8;
const V_LINT: u32 = 9;
const V_UINT: u32 = 11;

/// The plan a client makes for the changed demo: every variable kept at its index, V_DINT
/// DINT → INT, V_UINT UINT → UDINT, V_LINT renamed (so dropped, and V_LINT2 new).
fn plan(old_gen: u32, vars: u32) -> Box<MigratePlan> {
    let mut plan: Box<MigratePlan> = bytemuck::zeroed_box();
    plan.old_program_gen = old_gen;
    let mut n = 0;
    for var in (0..vars).filter(|&v| v != V_LINT) {
        let (from, to) = match var {
            V_DINT => (ValueType::I32, ValueType::I16),
            V_UINT => (ValueType::U16, ValueType::U32),
            _ => (ValueType::Raw, ValueType::Raw),
        };
        plan.entries[n] =
            MigrateEntry { old_var: var, new_var: var, from: from as u8, to: to as u8, ..Default::default() };
        n += 1;
    }
    plan.count = n as u32;
    plan
}

fn watched(v: &DebugValues, var: u32) -> Vec<u8> {
    let e = v.entries[..v.count as usize].iter().find(|e| e.var == var && e.valid != 0).expect("watched value");
    v.data[e.offset as usize..e.offset as usize + e.size as usize].to_vec()
}

fn int(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    let v = i64::from_le_bytes(b);
    let shift = 64 - 8 * bytes.len() as u32;
    (v << shift) >> shift
}

struct Seen {
    out: Box<OutputSnapshot>,
    dbg: Box<DebugValues>,
}

fn observe(p: &mut InProcess) -> Seen {
    p.cycle();
    Seen { out: p.client.outputs().unwrap(), dbg: p.client.debug_values().unwrap() }
}

/// `timer`: MatIEC's ELAPSED (a TON's ET, 16-byte TIME), whose timer state MatIEC exposes
/// whole, so it continues too (STruC++ exposes only a TON's inputs and outputs).
fn online_change_continues_the_count(v1: PathBuf, v2: PathBuf, vars: u32, timer: Option<u32>, p: &mut InProcess) {
    p.load_library(&v1);
    p.client.update_inputs(|i| {
        i.int_input[0] = 21;
        i.bool_input[0][0] = 1;
    });
    let mut watch = vec![COUNTER, V_INT, V_DINT, V_LINT, V_UINT];
    watch.extend(timer);
    p.client.set_watch(&watch);
    // Forced: V_INT (carried as is, so the force stays) and V_LINT (dropped: released).
    for (var, value) in [(V_INT, &[7u8, 0][..]), (V_LINT, &1234i64.to_le_bytes()[..])] {
        let seq =
            p.client.send(Command::Force { var, value: heapless::Vec::from_slice(value).unwrap(), big_endian: false });
        p.cycle();
        assert_eq!(p.client.wait_result(seq.unwrap(), T).unwrap(), CommandStatus::Ok);
    }
    let mut seen: Vec<Seen> = (0..40).map(|_| observe(p)).collect();
    let old_gen = p.client.status().program_gen;

    p.client.stage_plan(Some(&plan(old_gen, vars)));
    let path = shared_abi::msg::bounded(v2.to_str().unwrap());
    p.client
        .send(Command::Load {
            path,
            start: true,
            warm: false,
            online: true,
            image: shared_abi::sizes::ImageRequest::FROM_PROGRAM,
        })
        .unwrap();
    let begin = Instant::now();
    while p.client.status().program_gen == old_gen {
        assert!(begin.elapsed() < T, "the new program never came in");
        seen.push(observe(p));
        std::thread::sleep(Duration::from_micros(300));
    }
    seen.extend((0..20).map(|_| observe(p)));
    let report = p.client.swap_report().unwrap();
    let new_gen = p.client.status().program_gen;
    assert_eq!(report.outcome(), SwapOutcome::Online, "{report:?}");
    assert_eq!(report.program_gen, new_gen);
    assert_eq!(
        (report.carried.copied, report.carried.converted, report.carried.truncated, report.carried.failed),
        (vars - 1, 2, 1, 0),
        "{report:?}"
    );
    assert_eq!((report.forces_kept, report.forces_dropped), (1, 1), "{report:?}");

    // Every cycle scanned once, on both sides of the swap: the scan count goes up by one
    // per cycle and %MW0 (COUNTER, one per scan) equals it throughout.
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0].out, &pair[1].out);
        assert_eq!(b.cycle, a.cycle + 1);
        assert_eq!(b.tick, a.tick + 1, "one scan per cycle at cycle {}", b.cycle);
    }
    let swap = seen.iter().position(|s| s.out.program_gen == new_gen).expect("a cycle of the new program");
    assert_eq!(seen[swap].out.cycle, report.cycle, "the new program's first scan is in the swap cycle");
    assert_eq!(report.tick, seen[swap - 1].out.tick, "the scan count continues");
    assert!(seen[..swap].iter().all(|s| s.out.program_gen == old_gen));
    for s in &seen {
        assert_eq!(s.out.image.int_memory[0] as u64, s.out.tick % 65536, "COUNTER counts every scan");
        // The outputs follow the inputs on both sides and never drop to zero.
        assert_eq!((s.out.image.int_output[0], s.out.image.bool_output[0][0]), (42, 1), "at cycle {}", s.out.cycle);
    }
    // The debugger saw one program or the other, each with its own consistent values.
    for s in &seen[swap - 3..swap + 3] {
        assert_eq!(int(&watched(&s.dbg, COUNTER)) as u64, s.dbg.tick % 65536);
        assert_eq!(int(&watched(&s.dbg, V_INT)), 7, "V_INT stays forced");
        let uint = int(&watched(&s.dbg, V_UINT));
        assert_eq!(uint as u64, 2 * s.dbg.tick, "V_UINT carried exactly (UINT → UDINT)");
        if let Some(var) = timer {
            // ELAPSED is (n - 1) periods after n scans: the program time and the timer's
            // state both continue.
            let t = watched(&s.dbg, var);
            let ns = int(&t[..8]) * 1_000_000_000 + int(&t[8..]);
            assert_eq!(ns as u64, (s.dbg.tick - 1) * 10_000_000, "ELAPSED at scan {}", s.dbg.tick);
        }
    }
    let last_old = &seen[swap - 1].dbg;
    let first_new = &seen[swap].dbg;
    assert_eq!(watched(first_new, V_UINT).len(), 4, "UDINT in the new program");
    // 1000 per scan: past INT's range, so saturated to 32 767, then one scan of the new
    // program adds 1000 (wrapping in INT).
    assert_eq!(int(&watched(last_old, V_DINT)), 1000 * last_old.tick as i64);
    assert_eq!(int(&watched(first_new, V_DINT)), 32767i16.wrapping_add(1000) as i64, "saturated, then scanned once");
    assert_eq!(int(&watched(last_old, V_LINT)), 1234, "forced");
    assert_eq!(int(&watched(first_new, V_LINT)), 1_000_000_000_000, "V_LINT2 is new: from its initial 0");
    let forces = p.client.forces().unwrap();
    assert_eq!(forces.program_gen, new_gen);
    assert_eq!(forces.forced().iter().map(|f| f.var).collect::<Vec<_>>(), vec![V_INT]);
}

#[test]
fn a_matiec_program_changed_online_continues_its_count() {
    let mut p = InProcess::new();
    let dir = p.dir.path().to_path_buf();
    let v1 = build_matiec(&dir, "v1.so", &[]);
    let v2 = build_matiec(
        &dir,
        "v2.so",
        &[
            (
                "POUS.h",
                &[
                    ("__DECLARE_VAR(DINT,V_DINT)", "__DECLARE_VAR(INT,V_DINT)"),
                    ("__DECLARE_VAR(UINT,V_UINT)", "__DECLARE_VAR(UDINT,V_UINT)"),
                    ("V_LINT)", "V_LINT2)"),
                ],
            ),
            ("POUS.c", &[("V_LINT", "V_LINT2")]),
            (
                "debug.c",
                &[
                    ("V_DINT), DINT_ENUM", "V_DINT), INT_ENUM"),
                    ("V_UINT), UINT_ENUM", "V_UINT), UDINT_ENUM"),
                    ("V_LINT)", "V_LINT2)"),
                ],
            ),
            (
                "VARIABLES.csv",
                &[
                    ("V_DINT;DINT;DINT", "V_DINT;INT;INT"),
                    ("V_UINT;UINT;UINT", "V_UINT;UDINT;UDINT"),
                    ("V_LINT", "V_LINT2"),
                ],
            ),
        ],
    );
    online_change_continues_the_count(v1, v2, 33, Some(30), &mut p);
}

#[test]
fn a_strucpp_program_changed_online_continues_its_count() {
    let mut p = InProcess::new();
    let dir = p.dir.path().to_path_buf();
    let v1 = build_strucpp(&dir, "v1.so", &[]);
    let v2 = build_strucpp(
        &dir,
        "v2.so",
        &[
            (
                "generated.hpp",
                &[
                    ("IEC_DINT V_DINT;", "IEC_INT V_DINT;"),
                    ("IEC_UINT V_UINT;", "IEC_UDINT V_UINT;"),
                    ("V_LINT", "V_LINT2"),
                ],
            ),
            ("pou_MAIN.cpp", &[("V_LINT", "V_LINT2")]),
            (
                "generated_debug.cpp",
                &[
                    ("V_DINT, TAG_DINT", "V_DINT, TAG_INT"),
                    ("V_UINT, TAG_UINT", "V_UINT, TAG_UDINT"),
                    ("V_LINT", "V_LINT2"),
                ],
            ),
        ],
    );
    online_change_continues_the_count(v1, v2, 27, None, &mut p);
}
