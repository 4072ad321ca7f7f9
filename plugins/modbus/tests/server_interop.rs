//! Our Modbus TCP server in front of a real openplc-rt running rt-core's test program
//! (`%QW0 = 2 * %IW0`, `%QX0.0 = %IX0.0`, `%MW0` counts scans), driven by clients no one
//! here wrote: pymodbus, mbpoll and libmodbus's random-test-client.

mod support;

use openplc_modbus::map::AddressMap;
use openplc_modbus::{Server, ServerConfig};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::process::Command;

/// A 2 ms program: writes wait for a scan, so a fast one keeps the tests quick.
const FAST: &str = "PERIOD_NS=2000000ULL";

fn config(port: u16) -> ServerConfig {
    ServerConfig {
        host: "127.0.0.1".into(),
        port,
        map: AddressMap { mx_bits: 64, ..AddressMap::default() },
        ..ServerConfig::default()
    }
}

/// Sets `%IW0 = 21`, `%IX0.0 = 1` and waits for the program to answer with `%QW0 = 42`.
async fn drive_inputs(plc: &Arc<openplc_port::PlcPort>) {
    plc.update_inputs(|img| {
        img.int_input[0] = 21;
        img.bool_input[0][0] = 1;
    })
    .unwrap();
    until("the program's outputs to follow its inputs", Duration::from_secs(5), || {
        let o = plc.outputs();
        (o.image.int_output[0] == 42 && o.image.bool_output[0][0] == 1).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymodbus_reads_and_writes_every_table() {
    let (_rt, plc) = start_rt(&[FAST]);
    drive_inputs(&plc).await;
    let server = Server::start(config(0), plc.clone()).await.expect("server");
    let port = server.local_addr().port().to_string();
    let out = run(
        Command::new("python3").arg(py("client_all_tables.py")).args(["127.0.0.1", &port]),
        Duration::from_secs(60),
    )
    .await;
    let log = text(&out);
    assert!(out.status.success() && log.contains("PASS"), "pymodbus client failed:\n{log}");

    // What the client wrote is what the program's image holds.
    let snap = settled(&plc).await;
    let img = &snap.image;
    assert_eq!(img.int_memory[5], 1234, "%MW5");
    assert_eq!(&img.int_output[3..6], &[7, 8, 9], "%QW3..5");
    assert_eq!(img.bool_output[0][5], 1, "%QX0.5");
    assert_eq!(img.bool_memory[0][3], 1, "%MX0.3");
    assert_eq!(img.bool_memory[1], [1, 0, 1, 1, 0, 0, 1, 0], "%MX1.*");
    assert_eq!(img.dint_memory[3], 0x1234_AAAA, "%MD3: high word first, partial write kept the high word");
    assert_eq!(img.lint_memory[2], 0x1122_3344_5566_7788, "%ML2: high word first");
    assert_eq!(&img.int_memory[16..19], &[1, 2, 3], "%MW16..18 via FC 23");
    let st = server.status();
    assert_eq!((st.closed_malformed, st.write_timeouts, st.write_busy), (0, 0, 0), "{st:?}");
    assert_eq!(st.exceptions, 5, "only the five deliberate out-of-range requests: {st:?}");
    server.stop().await;
}

async fn mbpoll(port: &str, args: &[&str], values: &[&str]) -> String {
    let out = run(
        Command::new("mbpoll")
            .args(["-m", "tcp", "-p", port, "-a", "1", "-1", "-o", "2"])
            .args(args)
            .arg("127.0.0.1")
            .args(values),
        Duration::from_secs(20),
    )
    .await;
    let log = text(&out);
    assert!(out.status.success(), "mbpoll {args:?} failed:\n{log}");
    log
}

/// mbpoll prints one `[ref]: value` line per value.
fn mbpoll_values(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix('[').and_then(|r| r.split_once("]:")).map(|(_, v)| v.trim().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_and_writes_every_table() {
    let (_rt, plc) = start_rt(&[FAST]);
    drive_inputs(&plc).await;
    let server = Server::start(config(0), plc.clone()).await.expect("server");
    let port = server.local_addr().port().to_string();
    let p = port.as_str();

    // Reads (mbpoll counts references from 1: reference 1 is address 0).
    assert_eq!(mbpoll_values(&mbpoll(p, &["-t", "3", "-r", "1", "-c", "2"], &[]).await)[0], "21", "%IW0");
    assert_eq!(mbpoll_values(&mbpoll(p, &["-t", "1", "-r", "1"], &[]).await), ["1"], "%IX0.0");
    assert_eq!(mbpoll_values(&mbpoll(p, &["-t", "4", "-r", "1"], &[]).await), ["42"], "%QW0 = 2 * %IW0");
    assert_eq!(mbpoll_values(&mbpoll(p, &["-t", "0", "-r", "1"], &[]).await), ["1"], "%QX0.0 = %IX0.0");

    // Writes, then the image.
    mbpoll(p, &["-t", "4", "-r", "1035"], &["777"]).await; // %MW10
    mbpoll(p, &["-t", "4", "-r", "2"], &["11", "12", "13"]).await; // %QW1..3
    mbpoll(p, &["-t", "0", "-r", "3"], &["1"]).await; // %QX0.2
    mbpoll(p, &["-t", "0", "-r", "8194"], &["1"]).await; // %MX0.1
    // A 32-bit value, big-endian word order: %MD0 is references 2049-2050.
    mbpoll(p, &["-t", "4:int", "-B", "-r", "2049"], &["305419896"]).await;
    let snap = settled(&plc).await;
    let img = &snap.image;
    assert_eq!(img.int_memory[10], 777);
    assert_eq!(&img.int_output[1..4], &[11, 12, 13]);
    assert_eq!(img.bool_output[0][2], 1);
    assert_eq!(img.bool_memory[0][1], 1);
    assert_eq!(img.dint_memory[0], 0x1234_5678, "mbpoll -B and our high_word_first agree");
    assert_eq!(mbpoll_values(&mbpoll(p, &["-t", "4:int", "-B", "-r", "2049"], &[]).await), ["305419896"]);
    assert_eq!(mbpoll_values(&mbpoll(p, &["-t", "4", "-r", "1035"], &[]).await), ["777"]);

    // Out of range: mbpoll reports the server's exception and exits non-zero.
    let out = run(
        Command::new("mbpoll").args([
            "-m",
            "tcp",
            "-p",
            p,
            "-a",
            "1",
            "-1",
            "-o",
            "2",
            "-t",
            "3",
            "-r",
            "1025",
            "127.0.0.1",
        ]),
        Duration::from_secs(20),
    )
    .await;
    let log = text(&out);
    assert!(log.to_lowercase().contains("illegal data address"), "mbpoll past %IW1023:\n{log}");
    server.stop().await;
}

/// libmodbus's random-test-client writes random values to coils and holding registers
/// (FC 5, 15, 6, 16, 23) and reads each back (FC 1, 3, 23). Patched to our port, 4 loops
/// (about 4000 requests), addresses 1..99 (the test program owns %QX0.0 and %QW0), and
/// without its frame dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libmodbus_random_test_client_finds_no_mismatch() {
    let (rt, plc) = start_rt(&[FAST]);
    let server = Server::start(config(0), plc.clone()).await.expect("server");
    let port = server.local_addr().port();
    let src = std::fs::read_to_string("/usr/share/doc/libmodbus-dev/examples/random-test-client.c")
        .expect("libmodbus-dev's examples (scripts/test-deps installs them)");
    let patched = src
        .replace("modbus_new_tcp(\"127.0.0.1\", 1502)", &format!("modbus_new_tcp(\"127.0.0.1\", {port})"))
        .replace("#define LOOP             1", "#define LOOP             4")
        .replace("#define ADDRESS_START    0", "#define ADDRESS_START    1")
        .replace("#define ADDRESS_END     99", "#define ADDRESS_END    100")
        .replace("modbus_set_debug(ctx, TRUE);", "modbus_set_debug(ctx, FALSE);");
    assert!(
        patched.contains(&format!(", {port})")) && patched.contains("LOOP             4"),
        "the example changed shape"
    );
    let c = rt.dir.path().join("random-test-client.c");
    std::fs::write(&c, patched).expect("write source");
    let exe = rt.dir.path().join("random-test-client");
    let flags = std::process::Command::new("pkg-config")
        .args(["--cflags", "--libs", "libmodbus"])
        .output()
        .expect("pkg-config");
    let flags = String::from_utf8_lossy(&flags.stdout).to_string();
    let built = std::process::Command::new("cc")
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace())
        .status()
        .expect("cc");
    assert!(built.success(), "random-test-client did not build");

    let before = server.status().requests;
    let out = run(&mut Command::new(&exe), Duration::from_secs(240)).await;
    let log = text(&out);
    let passes = log.lines().filter(|l| l.trim() == "Test: SUCCESS").count();
    assert!(out.status.success() && passes == 4 && !log.contains("FAILS"), "random-test-client:\n{log}");
    let st = server.status();
    let requests = st.requests - before;
    assert!(requests >= 3900, "only {requests} requests");
    assert_eq!(st.exceptions, 0, "{st:?}");
    eprintln!("random-test-client: {requests} requests, no mismatch; {st:?}");
    server.stop().await;
}

/// A partial write of a `%MD` keeps the other word from the latest value, and two
/// partial writes in a row build on each other even before rt-core publishes the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_md_and_ml_writes_read_modify_write() {
    use tokio_modbus::client::{Reader, Writer};
    let (_rt, plc) = start_rt(&[FAST]);
    let server = Server::start(config(0), plc.clone()).await.expect("server");
    let mut c = tokio_modbus::client::tcp::connect(server.local_addr()).await.expect("connect");
    let md5 = 2048 + 2 * 5;
    c.write_multiple_registers(md5, &[0x1111, 0x2222]).await.unwrap().unwrap();
    assert_eq!(settled(&plc).await.image.dint_memory[5], 0x1111_2222);
    c.write_single_register(md5, 0xAAAA).await.unwrap().unwrap();
    assert_eq!(settled(&plc).await.image.dint_memory[5], 0xAAAA_2222, "high word replaced, low kept");
    c.write_single_register(md5 + 1, 0xBBBB).await.unwrap().unwrap();
    assert_eq!(settled(&plc).await.image.dint_memory[5], 0xAAAA_BBBB, "low word replaced, high kept");
    // A write straddling two values: the low word of %MD6 and the high word of %MD7.
    plc.write(&[(shared_abi::image::IecAddress::parse("%MD6").unwrap(), 0x0102_0304)]).unwrap();
    plc.write(&[(shared_abi::image::IecAddress::parse("%MD7").unwrap(), 0x0506_0708)]).unwrap();
    until("%MD6/7 set", Duration::from_secs(2), || (plc.outputs().image.dint_memory[7] == 0x0506_0708).then_some(()))
        .await;
    c.write_multiple_registers(2048 + 13, &[0xCCCC, 0xDDDD]).await.unwrap().unwrap();
    let snap = settled(&plc).await;
    let img = &snap.image;
    assert_eq!((img.dint_memory[6], img.dint_memory[7]), (0x0102_CCCC, 0xDDDD_0708));
    // %ML1: the two middle words only.
    let ml1 = 4096 + 4;
    c.write_multiple_registers(ml1, &[1, 2, 3, 4]).await.unwrap().unwrap();
    c.write_multiple_registers(ml1 + 1, &[0xEEEE, 0xFFFF]).await.unwrap().unwrap();
    assert_eq!(settled(&plc).await.image.lint_memory[1], 0x0001_EEEE_FFFF_0004);
    assert_eq!(c.read_holding_registers(ml1, 4).await.unwrap().unwrap(), [1, 0xEEEE, 0xFFFF, 4]);
    server.stop().await;
}
