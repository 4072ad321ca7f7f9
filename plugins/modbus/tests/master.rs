//! Our Modbus master against pymodbus slaves (TCP, and RTU over a pseudo-terminal pair),
//! feeding a real openplc-rt running rt-core's test program: values polled from a slave
//! land in the inputs the program reads (`%IW0` from a slave → `%QW0 = 2 × %IW0` in the
//! outputs), and outputs are written back to the slaves.

mod support;

use openplc_modbus::{DeviceState, DeviceStatus, Master, MasterConfig, MasterOptions};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;
use tokio_modbus::Slave;
use tokio_modbus::client::Reader;

const FAST: &str = "PERIOD_NS=2000000ULL";

fn device(name: &str, link: &str, slave: u8, timeout_ms: u64, points: &str) -> String {
    format!(
        r#"{{"name":"{name}","protocol":"MODBUS","config":{{"type":"SLAVE",{link},"timeout_ms":{timeout_ms},"slave_id":{slave},"io_points":[{points}]}}}}"#
    )
}

fn tcp(port: u16) -> String {
    format!(r#""transport":"tcp","host":"127.0.0.1","port":{port}"#)
}

fn point(fc: u8, offset: u16, loc: &str, len: u16, cycle_ms: u64) -> String {
    format!(r#"{{"fc":{fc},"offset":"0x{offset:04X}","iec_location":"{loc}","len":{len},"cycle_time_ms":{cycle_ms}}}"#)
}

/// A pymodbus TCP slave on a port of the system's choosing (no window for another process
/// to take it), and that port.
fn tcp_slave() -> (Proc, u16) {
    let (proc, port) = spawn_ready(&py("slave.py"), &["--tcp", "0"]);
    (proc, port.parse().expect("the slave's TCP port"))
}

fn by_name<'a>(st: &'a [DeviceStatus], name: &str) -> &'a DeviceStatus {
    st.iter().find(|d| d.name == name).expect("device in status")
}

/// Reads holding registers of `slave` from a pymodbus TCP server.
async fn slave_registers(port: u16, slave: u8, addr: u16, n: u16) -> Vec<u16> {
    let addr_ = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = tokio_modbus::client::tcp::connect_slave(addr_, Slave(slave)).await.expect("connect to the slave");
    c.read_holding_registers(addr, n).await.expect("reply").expect("no exception")
}

async fn slave_coils(port: u16, slave: u8, addr: u16, n: u16) -> Vec<bool> {
    let addr_ = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = tokio_modbus::client::tcp::connect_slave(addr_, Slave(slave)).await.expect("connect to the slave");
    c.read_coils(addr, n).await.expect("reply").expect("no exception")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_and_writes_two_slaves_behind_one_tcp_port() {
    let (_rt, plc) = start_rt(&[FAST]);
    let (_slave, port) = tcp_slave();
    let json = format!(
        "[{},{}]",
        device("io1", &tcp(port), 1, 500, &[point(4, 0, "%IW0", 1, 50), point(2, 0, "%IX0.0", 4, 50)].join(",")),
        device(
            "io2",
            &tcp(port),
            2,
            500,
            &[point(3, 0, "%IW1", 3, 50), point(16, 10, "%QW0", 1, 50), point(5, 3, "%QX0.0", 1, 50)].join(","),
        ),
    );
    let cfg = MasterConfig::from_json(&json).expect("config");
    let master = Master::start(cfg, MasterOptions::default(), plc.clone());

    // Slave 1's input register 0 (21) reaches %IW0; the program answers %QW0 = 42.
    until("%QW0 = 2 × the polled %IW0", Duration::from_secs(10), || {
        let o = plc.outputs();
        (o.image.int_output[0] == 42 && o.image.bool_output[0][0] == 1).then_some(())
    })
    .await;
    // Slave 2 is polled on its own schedule: its values may land a moment later.
    let inputs = || {
        plc.inputs(|img| {
            (img.int_input[0], [img.int_input[1], img.int_input[2], img.int_input[3]], {
                let b = img.bool_input[0];
                [b[0], b[1], b[2], b[3]]
            })
        })
    };
    let want = (21, [1111, 2222, 3333], [1, 0, 1, 1]);
    until("slave 1 → %IW0, %IX0.0-3; slave 2 → %IW1-3", Duration::from_secs(10), || {
        (inputs() == Some(want)).then_some(())
    })
    .await;

    // Our outputs reach slave 2: %QW0 by FC 16 into register 10, %QX0.0 by FC 5 into coil 3.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let regs = slave_registers(port, 2, 10, 1).await;
        let coils = slave_coils(port, 2, 3, 1).await;
        if regs == [42] && coils == [true] {
            break;
        }
        assert!(Instant::now() < deadline, "slave 2 holds {regs:?} / {coils:?}, not our outputs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = master.status();
    for d in &st {
        assert_eq!(d.state, DeviceState::Ok, "{d:?}");
        assert!(d.ok > 0 && d.failed == 0 && d.exceptions == 0, "{d:?}");
    }
    master.stop().await;
}

/// A dead slave behind the same gateway (no reply: timeouts), a dead endpoint (refused)
/// and an endpoint that accepts but never answers are each reported failing and retried
/// with growing back-off, while a healthy device keeps its 50 ms schedule; the refused
/// endpoint's device recovers once a slave appears there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_devices_back_off_and_do_not_delay_a_healthy_one() {
    let (_rt, plc) = start_rt(&[FAST]);
    let (_slave, port) = tcp_slave();
    // A port held bound but not listening (connections to it are refused) until the late
    // slave, started and waiting, takes it.
    let hold = tokio::net::TcpSocket::new_v4().unwrap();
    hold.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let late_port = hold.local_addr().unwrap().port();
    let mut late_slave = Script::spawn(&py("slave.py"), &["--standby", "--tcp", &late_port.to_string()]);
    late_slave.expect("standby");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // Accepts and holds connections, never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let json = format!(
        "[{},{},{},{}]",
        device("healthy", &tcp(port), 1, 200, &point(4, 0, "%IW0", 1, 50)),
        device("missing-slave", &tcp(port), 3, 200, &point(3, 0, "%IW5", 1, 50)),
        device("late", &tcp(late_port), 1, 200, &point(4, 0, "%IW10", 1, 50)),
        device("silent", &tcp(silent_port), 1, 200, &point(3, 0, "%IW20", 1, 50)),
    );
    let cfg = MasterConfig::from_json(&json).expect("config");
    let options = MasterOptions { backoff_initial: Duration::from_millis(200), backoff_max: Duration::from_secs(1) };
    let master = Master::start(cfg, options, plc.clone());

    // Watch the healthy device for 3 s: the longest wait between two of its answers.
    let start = Instant::now();
    let (mut last_ok, mut last_change, mut worst_gap) = (0u64, Instant::now(), Duration::ZERO);
    while start.elapsed() < Duration::from_secs(3) {
        let ok = by_name(&master.status(), "healthy").ok;
        if ok != last_ok {
            if last_ok > 0 {
                worst_gap = worst_gap.max(last_change.elapsed());
            }
            last_ok = ok;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = master.status();
    let healthy = by_name(&st, "healthy");
    assert_eq!(healthy.state, DeviceState::Ok, "{healthy:?}");
    assert!(healthy.ok >= 30, "healthy device answered only {} times in 3 s at 50 ms: {st:#?}", healthy.ok);
    // At worst it waits for one 200 ms timeout of the dead slave sharing its connection.
    assert!(worst_gap < Duration::from_millis(600), "healthy device stalled {worst_gap:?}");
    eprintln!("healthy: {} answers in 3 s, longest wait between two {worst_gap:?}", healthy.ok);
    for name in ["missing-slave", "late", "silent"] {
        let d = by_name(&st, name);
        assert_eq!(d.state, DeviceState::Failing, "{d:?}");
        assert!(d.last_error.is_some() && d.failing_since_ms.is_some(), "{d:?}");
        // Back-off 200, 400, 800, 1000 ms…: a handful of attempts in 3 s, not sixty.
        assert!((2..=8).contains(&d.consecutive_failures), "{name} tried {} times: {d:?}", d.consecutive_failures);
        assert!(d.retry_in_ms.is_some_and(|ms| ms <= 1000), "{d:?}");
    }
    assert!(by_name(&st, "missing-slave").last_error.as_deref().is_some_and(|e| e.contains("no reply")));

    // A slave appears on the refused port: the device recovers within its back-off.
    drop(hold);
    late_slave.send("go");
    late_slave.expect("ready");
    until("the late device to recover", Duration::from_secs(5), || {
        (by_name(&master.status(), "late").state == DeviceState::Ok).then_some(())
    })
    .await;
    until("its value to land in %IW10", Duration::from_secs(2), || {
        (plc.inputs(|img| img.int_input[10]) == Some(21)).then_some(())
    })
    .await;
    let late = by_name(&master.status(), "late").clone();
    assert_eq!((late.consecutive_failures, late.failing_since_ms), (0, None), "{late:?}");
    master.stop().await;
}

/// Opens a pseudo-terminal pair with socat; returns the process and the two paths.
fn pty_pair() -> (Proc, String, String) {
    let mut child = Command::new("socat")
        .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat (scripts/test-deps installs it)");
    let stderr = child.stderr.take().expect("stderr");
    let proc = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(path) = line.split("PTY is ").nth(1) {
                let _ = tx.send(path.trim().to_string());
            }
        }
    });
    let a = rx.recv_timeout(Duration::from_secs(10)).expect("socat's first pty");
    let b = rx.recv_timeout(Duration::from_secs(10)).expect("socat's second pty");
    (proc, a, b)
}

/// RTU over a pseudo-terminal pair: pymodbus serves slaves 1 and 2 on one end (and the
/// same data over TCP, to check what we wrote), our master polls the other end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_and_writes_a_pymodbus_rtu_slave_over_a_pty() {
    let (_rt, plc) = start_rt(&[FAST]);
    let (_socat, slave_end, master_end) = pty_pair();
    let (_slave, tcp_port) = spawn_ready(&py("slave.py"), &["--rtu", &slave_end, "--baud", "19200", "--tcp", "0"]);
    let tcp_port: u16 = tcp_port.parse().expect("the slave's TCP port");
    let rtu = format!(
        r#""transport":"rtu","serial_port":"{master_end}","baud_rate":19200,"parity":"N","stop_bits":1,"data_bits":8"#
    );
    let json = format!(
        "[{},{},{}]",
        device("rtu1", &rtu, 1, 500, &[point(4, 0, "%IW0", 1, 50), point(3, 0, "%IW4", 2, 100)].join(",")),
        device("rtu2", &rtu, 2, 500, &[point(6, 5, "%QW0", 1, 100), point(15, 8, "%QX0.0", 2, 100)].join(",")),
        device("rtu-missing", &rtu, 9, 150, &point(3, 0, "%IW30", 1, 100)),
    );
    let cfg = MasterConfig::from_json(&json).expect("config");
    let options = MasterOptions { backoff_initial: Duration::from_millis(300), backoff_max: Duration::from_secs(2) };
    let master = Master::start(cfg, options, plc.clone());
    plc.update_inputs(|img| img.bool_input[0][0] = 1).unwrap();

    until("%QW0 = 2 × %IW0 polled over RTU", Duration::from_secs(15), || {
        (plc.outputs().image.int_output[0] == 42).then_some(())
    })
    .await;
    until("%IW4-5 from slave 1's holding registers", Duration::from_secs(5), || {
        (plc.inputs(|img| (img.int_input[4], img.int_input[5])) == Some((100, 200))).then_some(())
    })
    .await;
    // What we wrote over RTU, read back over TCP from the same store.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let regs = slave_registers(tcp_port, 2, 5, 1).await;
        let coils = slave_coils(tcp_port, 2, 8, 2).await;
        if regs == [42] && coils == [true, false] {
            break;
        }
        assert!(Instant::now() < deadline, "slave 2 holds {regs:?} / {coils:?}, not our outputs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let st = master.status();
    assert_eq!(by_name(&st, "rtu1").state, DeviceState::Ok, "{st:#?}");
    assert_eq!(by_name(&st, "rtu2").state, DeviceState::Ok, "{st:#?}");
    assert_eq!(by_name(&st, "rtu-missing").state, DeviceState::Failing, "{st:#?}");
    master.stop().await;
}
