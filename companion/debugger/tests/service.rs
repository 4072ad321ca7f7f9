//! The service against a real rt-core running a program made for the paths a debugger meets
//! rarely (tests/fixtures/service_program.c): a value larger than rt-core's debug data area,
//! a stalled or dead scan loop, forces rt-core refuses, how forced values are passed, and
//! the program's generator choosing the PDU family.

use openplc_debugger::protocol::{self, encode_hex};
use openplc_debugger::{Config, Debugger, Family, Identity, Reply, Session};
use openplc_port::testkit::{DEADLINE, Rt, build_program};
use openplc_port::{LogSink, PlcPort};
use shared_abi::client::Reader;
use shared_abi::msg::LogLevel;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const READ_TIMEOUT: Duration = Duration::from_millis(300);
/// Variables of the program: 0 UINT counter, 1 a 40 000-byte value, 2 REAL, 3 size 0,
/// then 130 one-byte variables (group 1).
const BYTE_VARS: u32 = 130;

struct Fixture {
    rt: Rt,
    port: Arc<PlcPort>,
    debugger: Arc<Debugger>,
    logs: Arc<Mutex<Vec<String>>>,
}

fn serve(defines: &[&str], family: Family) -> Fixture {
    let rt = Rt::start();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/service_program.c");
    rt.load(&build_program(rt.dir.path(), "service.so", &source, defines));
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = logs.clone();
    let port = rt.port_with_log(LogSink::new(move |level: LogLevel, text: &str| {
        sink.lock().unwrap().push(format!("{}: {text}", level.as_str()))
    }));
    let auth = |_: &str| -> Result<Identity, String> { Ok(Identity { name: "t".into(), may_force: true }) };
    let config = Config { default_family: family, read_timeout: READ_TIMEOUT };
    let debugger = Debugger::new(port.clone(), Arc::new(auth), config);
    Fixture { rt, port, debugger, logs }
}

fn session() -> Session {
    Session::new(Identity { name: "t".into(), may_force: true }, "test")
}

async fn ask(d: &Debugger, s: &mut Session, hex: &str) -> Reply {
    d.handle(s, hex, d.arrival()).await
}

fn pdu(hex: &str) -> Reply {
    Reply::Pdu(protocol::decode_hex(hex).unwrap())
}

/// The bytes of `var` from a scan after now, through the port's shared watch list.
async fn value(port: &PlcPort, var: u32) -> Vec<u8> {
    port.sample(&[var], port.cycle(), DEADLINE).await.unwrap().pop().flatten().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_larger_than_rt_cores_debug_area_gets_0x82_and_the_others_are_served() {
    let f = serve(&[], Family::FlatIndex);
    let mut s = session();
    assert_eq!(ask(&f.debugger, &mut s, "44 00 02 00 00 00 01").await, pdu("44 82"), "the 40 000 bytes never fit");
    let Reply::Pdu(b) = ask(&f.debugger, &mut s, "44 00 02 00 00 00 02").await else { panic!() };
    assert_eq!(&b[..4], &[0x44, 0x7E, 0x00, 0x02], "the Editor's next batch is served");
    assert_eq!(b.len(), protocol::LIST_HEADER + 2 + 4, "UINT and REAL");
    assert_eq!(ask(&f.debugger, &mut s, "44 00 01 00 01").await, pdu("44 82"), "and alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_dead_scan_loop_fails_the_read_instead_of_answering_old_values() {
    let mut f = serve(&[], Family::FlatIndex);
    let mut s = session();
    assert!(matches!(ask(&f.debugger, &mut s, "44 00 01 00 00").await, Reply::Pdu(b) if b[1] == 0x7E));
    f.rt.pause();
    match ask(&f.debugger, &mut s, "44 00 01 00 00").await {
        Reply::Error(e) => assert!(e.starts_with("No fresh values"), "{e}"),
        other => panic!("{other:?}"),
    }
    f.rt.resume();
    f.rt.kill();
    assert_eq!(
        ask(&f.debugger, &mut s, "41").await,
        Reply::Error("The PLC runtime (openplc-rt) is not running".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forces_arrive_in_the_clients_byte_order_and_refusals_map_to_statuses() {
    let f = serve(&[], Family::FlatIndex);
    let (d, mut s) = (&f.debugger, session());
    // The Editor sends numbers big-endian: REAL 1.5.
    assert_eq!(ask(d, &mut s, "42 00 02 01 00 04 3F C0 00 00").await, pdu("42 7E"));
    assert_eq!(value(&f.port, 2).await, 1.5f32.to_le_bytes());
    // A client whose numbers are in our order says so with the reversed probe: REAL 2.5.
    let Reply::Pdu(b) = ask(d, &mut s, "45 AD DE 00 00").await else { panic!() };
    assert_eq!(encode_hex(&b[..2]), "45 7E");
    assert_eq!(ask(d, &mut s, "42 00 02 01 00 04 00 00 20 40").await, pdu("42 7E"));
    assert_eq!(value(&f.port, 2).await, 2.5f32.to_le_bytes());
    assert_eq!(ask(d, &mut s, "42 00 02 00 00 01 00").await, pdu("42 7E"), "released");

    assert_eq!(ask(d, &mut s, "42 00 00 01 00 04 01 00 00 00").await, pdu("42 82"), "4 bytes for a UINT");
    assert_eq!(ask(d, &mut s, "42 00 01 01 00 01 00").await, pdu("42 82"), "larger than any forced value");
    assert_eq!(ask(d, &mut s, "42 00 03 01 00 01 00").await, pdu("42 81"), "rt-core knows no such variable");
    assert_eq!(ask(d, &mut s, "42 01 00 01 00 01 00").await, pdu("42 81"), "past the program's variables");
    // rt-core holds 128 forces at once.
    for var in 4..4 + 128u32 {
        let hex = format!("42 {} 01 00 01 07", encode_hex(&(var as u16).to_be_bytes()));
        assert_eq!(ask(d, &mut s, &hex).await, pdu("42 7E"), "force of {var}");
    }
    assert_eq!(ask(d, &mut s, "42 00 84 01 00 01 07").await, pdu("42 82"), "the 129th");
    assert_eq!(f.rt.observer().shm().control.forced_count.load(std::sync::atomic::Ordering::Acquire), 128);
    assert_eq!(value(&f.port, 4 + 127).await, [7]);
    let logs = f.logs.lock().unwrap().join("\n");
    assert!(logs.contains("WARNING: debugger: user 't' could not have forced debug variable 132"), "{logs}");
    assert!(logs.contains("too many forced variables"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_generator_picks_the_family() {
    // The configured default is flat, but a STruC++ program speaks (array, element).
    let f = serve(&["STRUCPP"], Family::FlatIndex);
    let (d, mut s) = (&f.debugger, session());
    assert_eq!(ask(d, &mut s, "41").await, Reply::Pdu(protocol::info_pairs(&[4, BYTE_VARS])));
    // (1, 0) is variable 4; pair-family values are in the target's order.
    assert_eq!(ask(d, &mut s, "42 01 00 00 01 00 01 09").await, pdu("42 7E"));
    assert_eq!(value(&f.port, 4).await, [9]);
    let Reply::Pdu(b) = ask(d, &mut s, "45 DE AD 00 00").await else { panic!() };
    assert_eq!(b.len(), 36, "MD5 and the 0xDEAD sentinel");
    let Reply::Pdu(b) = ask(d, &mut s, "43 01 00 00 00 01").await else { panic!() };
    assert_eq!(&b[..4], &[0x43, 0x7E, 0, 1]);
    assert_eq!(ask(d, &mut s, "43 02 00 00 00 00").await, pdu("43 81"), "no array 2");

    let f = serve(&[], Family::ArrayElement);
    assert_eq!(ask(&f.debugger, &mut s, "41").await, Reply::Pdu(protocol::info_flat(4 + BYTE_VARS)), "MatIEC: flat");
}
