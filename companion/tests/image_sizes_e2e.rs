//! Per-program image sizes through the real binaries: an upload whose `image.conf` asks for
//! 4096 `%MW` and whose scan counter is located at `%MW4000`. pymodbus (a client no one
//! here wrote) reads that high register through the built-in Modbus server and gets an
//! Illegal Data Address past the table; the Editor's debugger (python-socketio) reads the
//! counter located there, and the two agree. A bad `image.conf` fails the build with a clear
//! line and the running program carries on.

#[path = "../debugger/tests/support/mod.rs"]
mod clients;
mod common;

use clients::{Client, Kind};
use common::{Runtime, rewrite_zip, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Holding registers before `%MW0` in the uploaded map (`qw_count`).
const QW_COUNT: u32 = 1024;

const IMAGE_CONF: &str = "# I/O image sizes for this program.\nformat_version=2\nbool_input=8 bits\n\
    bool_output=8 bits\nbyte_input=0 bytes\nbyte_output=0 bytes\nint_input=1 words\nint_output=1 words\n\
    dint_input=0 dwords\ndint_output=0 dwords\nlint_input=0 lwords\nlint_output=0 lwords\n\
    int_memory=4096 words\ndint_memory=0 dwords\nlint_memory=0 lwords\nbool_memory=0 bits\n";

/// The demo bundle with its counter moved from `%MW0` to `%MW4000`, a Modbus map of 8192
/// `%MW` registers (more than the table has) on `port`, and `image_conf` when given.
fn bundle(rt: &Runtime, name: &str, port: u16, image_conf: Option<&str>) -> PathBuf {
    let plain = rt.dir.path().join(format!("{name}-plain.zip"));
    common::demo_bundle(&plain, &["--no-conf", "--period-ms", "10"]);
    let out = rt.dir.path().join(format!("{name}.zip"));
    let slave = serde_json::json!({
        "network_configuration": {"host": "127.0.0.1", "port": port},
        "buffer_mapping": {
            "holding_registers": {"qw_count": QW_COUNT, "mw_count": 8192, "md_count": 0, "ml_count": 0},
            "coils": {"qx_bits": 8, "mx_bits": 0},
            "discrete_inputs": {"ix_bits": 8},
            "input_registers": {"iw_count": 1}
        }
    });
    let mut extra = vec![("conf/modbus_slave.json", slave.to_string().into_bytes(), zip::CompressionMethod::Stored)];
    if let Some(conf) = image_conf {
        extra.push(("image.conf", conf.as_bytes().to_vec(), zip::CompressionMethod::Stored));
    }
    rewrite_zip(
        &plain,
        &out,
        |entry, data| {
            let text = String::from_utf8_lossy(&data);
            Some(match entry {
                "LOCATED_VARIABLES.h" => text.replace("__MW0,M,W,0)", "__MW4000,M,W,4000)").into_bytes(),
                "POUS.c" | "glueVars.c" => text.replace("__MW0", "__MW4000").into_bytes(),
                "program.st" => text.replace("%MW0 ", "%MW4000 ").into_bytes(),
                _ => data,
            })
        },
        &extra,
    );
    out
}

/// pymodbus reads `count` holding registers at `addr`: the values, or the exception code.
fn pymodbus_read(port: u16, addr: u32, count: u32) -> Result<Vec<u64>, u8> {
    let script = "import sys\nfrom pymodbus.client import ModbusTcpClient\n\
        c = ModbusTcpClient('127.0.0.1', port=int(sys.argv[1]), timeout=5, retries=0)\n\
        assert c.connect(), 'connect'\n\
        r = c.read_holding_registers(int(sys.argv[2]), count=int(sys.argv[3]))\n\
        print('EXC', r.exception_code) if r.isError() else print('OK', *r.registers)\n";
    let out = Command::new("python3")
        .args(["-c", script, &port.to_string(), &addr.to_string(), &count.to_string()])
        .output()
        .expect("python3 with pymodbus (scripts/test-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "pymodbus: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let mut words = text.split_whitespace();
    match words.next() {
        Some("OK") => Ok(words.map(|w| w.parse().unwrap()).collect()),
        Some("EXC") => Err(words.next().and_then(|c| c.parse().ok()).unwrap_or(0)),
        _ => panic!("pymodbus printed {text:?}"),
    }
}

fn deploy(rt: &Runtime, token: &str, zip: &Path) -> serde_json::Value {
    assert_eq!(rt.upload(zip, token).status, 200);
    rt.wait_build(token)
}

#[test]
fn a_4096_element_image_is_read_high_by_modbus_and_the_debugger_and_a_bad_image_conf_changes_nothing() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let port = common::free_port();
    let build = deploy(&rt, &token, &bundle(&rt, "sized", port, Some(IMAGE_CONF)));
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    let logs = build["logs"].to_string();
    assert!(logs.contains("Image sizes from image.conf: bool_input=8 bits"), "{logs}");
    assert!(logs.contains("int_memory=4096 words"), "{logs}");
    rt.wait_status(&token, "STATUS:RUNNING");
    wait_for("the Modbus server", T, || std::net::TcpStream::connect(("127.0.0.1", port)).ok());

    // %MW4000, the counter, is holding register 1024 + 4000; the table ends at %MW4095.
    let counter_reg = QW_COUNT + 4000;
    let first = wait_for("the counter at %MW4000 to count", T, || {
        pymodbus_read(port, counter_reg, 1).ok().and_then(|v| v.first().copied()).filter(|&v| v > 0)
    });
    let last_of_table = pymodbus_read(port, QW_COUNT + 4090, 6).expect("%MW4090..%MW4095 are in the table");
    assert_eq!(last_of_table, vec![0; 6]);
    assert_eq!(pymodbus_read(port, QW_COUNT + 4095, 2), Err(2), "%MW4096 is past the table: Illegal Data Address");
    assert_eq!(pymodbus_read(port, QW_COUNT + 6000, 1), Err(2));

    // The debugger reads the same variable (debug 0, the counter) where it is located.
    let url = format!("https://127.0.0.1:{}", rt.port);
    let mut c = Client::connected(Kind::Python, &url, &token);
    let counter = |c: &mut Client| {
        let p = c.poll(&[0], &["UINT"]);
        assert_eq!(p["success"], true, "{p}");
        p["values"]["0"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| panic!("{p}"))
    };
    let before = counter(&mut c);
    let modbus = pymodbus_read(port, counter_reg, 1).unwrap()[0];
    let after = counter(&mut c);
    assert!(first > 0 && before <= modbus && modbus <= after, "debugger {before} ≤ Modbus {modbus} ≤ debugger {after}");
    assert!(after > first, "the counter moved on");

    // The sizes are published with the program: the status monitor sees them too.
    let info = Command::new(common::rt_binary()).arg("--shm").arg(&rt.shm).args(["read", "%MW4000"]).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("%MW4000 = "), "{info:?}");

    // A bad image.conf: a clear line in the build log, and the running program carries on.
    let bad = "format_version=2\nint_memory=70000 words\n";
    let build = deploy(&rt, &token, &bundle(&rt, "bad", port, Some(bad)));
    assert_eq!(build["status"], "FAILED", "{build:#}");
    let logs = build["logs"].to_string();
    assert!(
        logs.contains("image.conf was refused: image.conf line 2: int_memory asks for 70000 words; a table holds at most 65536 elements"),
        "{logs}"
    );
    assert!(logs.contains("the previous program is still loaded"), "{logs}");
    rt.wait_status(&token, "STATUS:RUNNING");
    let later = wait_for("the old program to count on", T, || {
        pymodbus_read(port, counter_reg, 1).ok().and_then(|v| v.first().copied()).filter(|&v| v > after)
    });
    assert!(later > after);
    let also_bad = "int_memory=4096 words\n";
    let build = deploy(&rt, &token, &bundle(&rt, "unversioned", port, Some(also_bad)));
    assert_eq!(build["status"], "FAILED", "{build:#}");
    assert!(build["logs"].to_string().contains("no format_version line"), "{build:#}");
    assert_eq!(pymodbus_read(port, QW_COUNT + 4095, 1).map(|v| v.len()), Ok(1), "still the 4096-element image");
}

#[test]
fn without_image_conf_the_image_is_sized_from_the_located_variables() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let port = common::free_port();
    let build = deploy(&rt, &token, &bundle(&rt, "floor", port, None));
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    assert!(
        build["logs"].to_string().contains("No image.conf: the image is sized from the program's located variables")
    );
    rt.wait_status(&token, "STATUS:RUNNING");
    wait_for("the Modbus server", T, || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
    // %MW4000 is the highest %MW located: the table is 4001 long.
    let counter_reg = QW_COUNT + 4000;
    wait_for("the counter at %MW4000", T, || {
        pymodbus_read(port, counter_reg, 1).ok().and_then(|v| v.first().copied()).filter(|&v| v > 0)
    });
    assert_eq!(pymodbus_read(port, counter_reg, 2), Err(2), "%MW4001 is past the table");
}
