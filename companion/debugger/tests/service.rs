//! The service against a pretend rt-core: the paths a real one rarely takes (a full debug
//! data area, a stalled or dead scan loop, refused forces) and how forced values are passed.

use openplc_debugger::protocol::encode_hex;
use openplc_debugger::{Backend, BackendError, Config, Debugger, Family, Identity, Reply, Session};
use shared_abi::debug::{DEBUG_DATA_BYTES, DebugValues, Generator, MAX_WATCH, ProgramInfo, WatchedValue};
use shared_abi::msg::{CommandStatus, LogLevel};
use shared_abi::program::VarKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Variables: (size, kind, byte the value is filled with).
struct Plc {
    vars: Vec<(u16, VarKind)>,
    generator: Generator,
    /// Bytes of rt-core's data area (the real one has `DEBUG_DATA_BYTES`).
    budget: usize,
    watch: Mutex<(u32, Vec<u32>)>,
    heartbeat: AtomicU64,
    scanning: AtomicBool,
    alive: AtomicBool,
    force_status: Mutex<CommandStatus>,
    forces: Mutex<Vec<(u32, Vec<u8>, bool)>>,
}

impl Plc {
    fn new(vars: Vec<(u16, VarKind)>, generator: Generator, budget: usize) -> Arc<Plc> {
        let plc = Arc::new(Plc {
            vars,
            generator,
            budget,
            watch: Mutex::new((0, vec![])),
            heartbeat: AtomicU64::new(1),
            scanning: AtomicBool::new(true),
            alive: AtomicBool::new(true),
            force_status: Mutex::new(CommandStatus::Ok),
            forces: Mutex::new(vec![]),
        });
        let weak = Arc::downgrade(&plc);
        std::thread::spawn(move || {
            while let Some(p) = weak.upgrade() {
                if p.scanning.load(Ordering::Acquire) {
                    p.heartbeat.fetch_add(1, Ordering::AcqRel);
                }
                drop(p);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        plc
    }
}

impl Backend for Plc {
    fn heartbeat(&self) -> u64 {
        self.heartbeat.load(Ordering::Acquire)
    }
    fn rt_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
    fn program_info(&self) -> Result<ProgramInfo, BackendError> {
        let mut info: ProgramInfo = bytemuck::Zeroable::zeroed();
        info.program_gen = 1;
        info.generator = self.generator as u32;
        info.var_count = self.vars.len() as u32;
        info.group_count = 1;
        info.group_len[0] = info.var_count;
        info.md5.copy_from_slice(b"00112233445566778899aabbccddeeff");
        info.has_md5 = 1;
        Ok(info)
    }
    fn set_watch(&self, vars: &[u32]) -> Result<u32, BackendError> {
        let mut w = self.watch.lock().unwrap();
        w.0 += 1;
        w.1 = vars.to_vec();
        Ok(w.0)
    }
    fn debug_values(&self, out: &mut DebugValues) -> Result<(), BackendError> {
        // Laid out as rt-core does: in list order, dropping what does not fit.
        let w = self.watch.lock().unwrap();
        let hb = self.heartbeat.load(Ordering::Acquire);
        out.cycle = hb.saturating_sub(1);
        out.tick = out.cycle;
        out.program_gen = 1;
        out.watch_generation = w.0;
        out.count = w.1.len().min(MAX_WATCH) as u32;
        let mut offset = 0usize;
        for (i, &var) in w.1.iter().enumerate().take(MAX_WATCH) {
            let (size, kind) = self.vars.get(var as usize).map_or((0, VarKind::Opaque), |&(s, k)| (s as usize, k));
            let fits = size > 0 && offset + size <= self.budget.min(DEBUG_DATA_BYTES);
            out.entries[i] =
                WatchedValue { var, offset: offset as u32, size: size as u16, kind: kind as u8, valid: fits as u8 };
            if fits {
                out.data[offset..offset + size].fill(var as u8);
                offset += size;
            }
        }
        out.data_len = offset as u32;
        Ok(())
    }
    fn force(&self, var: u32, value: &[u8], big_endian: bool) -> Result<CommandStatus, BackendError> {
        self.forces.lock().unwrap().push((var, value.to_vec(), big_endian));
        Ok(*self.force_status.lock().unwrap())
    }
    fn unforce(&self, var: u32) -> Result<CommandStatus, BackendError> {
        self.forces.lock().unwrap().push((var, vec![], false));
        Ok(*self.force_status.lock().unwrap())
    }
    fn log(&self, _: LogLevel, _: &str) {}
}

fn debugger(plc: &Arc<Plc>, family: Family) -> Arc<Debugger> {
    let auth = |_: &str| -> Result<Identity, String> { Ok(Identity { name: "t".into(), may_force: true }) };
    let config = Config { default_family: family, read_timeout: Duration::from_millis(300), ..Config::default() };
    Debugger::new(plc.clone(), Arc::new(auth), config)
}

fn session() -> Session {
    Session::new(Identity { name: "t".into(), may_force: true }, "test")
}

async fn ask(d: &Debugger, s: &mut Session, hex: &str) -> Reply {
    d.handle(s, hex, d.arrival()).await
}

fn pdu(hex: &str) -> Reply {
    Reply::Pdu(openplc_debugger::protocol::decode_hex(hex).unwrap())
}

const STRING: (u16, VarKind) = (127, VarKind::String);
const WORD: (u16, VarKind) = (2, VarKind::Scalar);

#[tokio::test]
async fn values_that_cannot_fit_the_data_area_get_0x82_and_the_rest_are_served() {
    // Room for one STRING only.
    let plc = Plc::new(vec![STRING, STRING, WORD], Generator::Matiec, 200);
    let d = debugger(&plc, Family::FlatIndex);
    let mut s = session();
    assert_eq!(ask(&d, &mut s, "44 00 02 00 00 00 01").await, pdu("44 82"), "two STRINGs never fit");
    let Reply::Pdu(b) = ask(&d, &mut s, "44 00 02 00 01 00 02").await else { panic!() };
    assert_eq!(&b[..4], &[0x44, 0x7E, 0x00, 0x02], "the Editor's halved batch is served");
    assert_eq!(b.len(), 10 + 127 + 2);
    assert!(b[10..137].iter().all(|&x| x == 1) && b[137..] == [2, 2]);
}

#[tokio::test]
async fn a_stalled_or_dead_scan_loop_fails_the_read_instead_of_answering_old_values() {
    let plc = Plc::new(vec![WORD], Generator::Matiec, 100);
    let d = debugger(&plc, Family::FlatIndex);
    let mut s = session();
    assert!(matches!(ask(&d, &mut s, "44 00 01 00 00").await, Reply::Pdu(b) if b[1] == 0x7E));
    plc.scanning.store(false, Ordering::Release);
    match ask(&d, &mut s, "44 00 01 00 00").await {
        Reply::Error(e) => assert!(e.starts_with("No fresh values"), "{e}"),
        other => panic!("{other:?}"),
    }
    plc.scanning.store(true, Ordering::Release);
    plc.alive.store(false, Ordering::Release);
    assert_eq!(ask(&d, &mut s, "41").await, Reply::Error("The PLC runtime (openplc-rt) is not running".into()));
}

#[tokio::test]
async fn refused_forces_map_to_statuses_and_the_probe_sets_the_byte_order() {
    let plc = Plc::new(vec![WORD, (4, VarKind::Scalar)], Generator::Matiec, 100);
    let d = debugger(&plc, Family::FlatIndex);
    let mut s = session();
    assert_eq!(ask(&d, &mut s, "42 00 01 01 00 04 3F C0 00 00").await, pdu("42 7E"));
    // A client whose numbers are in our order says so with the reversed probe.
    let Reply::Pdu(b) = ask(&d, &mut s, "45 AD DE 00 00").await else { panic!() };
    assert_eq!(encode_hex(&b[..2]), "45 7E");
    assert_eq!(ask(&d, &mut s, "42 00 01 01 00 04 00 00 C0 3F").await, pdu("42 7E"));
    assert_eq!(ask(&d, &mut s, "42 00 01 00 00 01 00").await, pdu("42 7E"));
    let forces = plc.forces.lock().unwrap().clone();
    assert_eq!(forces, vec![(1, vec![0x3F, 0xC0, 0, 0], true), (1, vec![0, 0, 0xC0, 0x3F], false), (1, vec![], false)]);
    for (status, want) in [
        (CommandStatus::BadValue, pdu("42 82")),
        (CommandStatus::TooManyForces, pdu("42 82")),
        (CommandStatus::BadVariable, pdu("42 81")),
        (CommandStatus::NoProgram, Reply::Error("No PLC program loaded".into())),
    ] {
        *plc.force_status.lock().unwrap() = status;
        assert_eq!(ask(&d, &mut s, "42 00 00 01 00 02 00 01").await, want, "{status:?}");
    }
    *plc.force_status.lock().unwrap() = CommandStatus::InError;
    assert!(matches!(ask(&d, &mut s, "42 00 00 01 00 02 00 01").await, Reply::Error(e) if e.contains("ERROR")));
}

#[tokio::test]
async fn the_program_generator_picks_the_family() {
    let plc = Plc::new(vec![WORD, WORD], Generator::Strucpp, 100);
    // The configured default is flat, but a STruC++ program speaks (array, element).
    let d = debugger(&plc, Family::FlatIndex);
    let mut s = session();
    assert_eq!(ask(&d, &mut s, "41").await, pdu("41 01 7E 00 02"));
    assert_eq!(ask(&d, &mut s, "42 00 00 01 01 00 02 01 00").await, pdu("42 7E"));
    assert_eq!(plc.forces.lock().unwrap()[0], (1, vec![1, 0], false), "pair-family values are native order");
    let Reply::Pdu(b) = ask(&d, &mut s, "45 DE AD 00 00").await else { panic!() };
    assert_eq!(b.len(), 36);
    let Reply::Pdu(b) = ask(&d, &mut s, "43 00 00 00 00 01").await else { panic!() };
    assert_eq!(&b[..4], &[0x43, 0x7E, 0, 1]);
    assert_eq!(ask(&d, &mut s, "43 01 00 00 00 00").await, pdu("43 81"), "no array 1");

    let plc = Plc::new(vec![WORD], Generator::Matiec, 100);
    let d = debugger(&plc, Family::ArrayElement);
    assert_eq!(ask(&d, &mut s, "41").await, pdu("41 00 01"), "a MatIEC program speaks flat indices");
}
