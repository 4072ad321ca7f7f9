//! Plugins through the real companion: the Editor's per-upload rule (`conf/<name>.json`)
//! enables the built-in Modbus server and upstream-style native and Python plugins listed in
//! `plugins.conf`; they run while the PLC runs, see its outputs and write inputs it sees.
//! Modbus is driven with `mbpoll`, a client no one here wrote.

mod common;

use common::{Runtime, rewrite_zip, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The demo bundle with `conf/` replaced by `configs` (name, JSON).
fn bundle_with(rt: &Runtime, name: &str, configs: &[(&str, String)]) -> PathBuf {
    let plain = rt.dir.path().join(format!("{name}-plain.zip"));
    common::demo_bundle(&plain, &["--no-conf"]);
    let out = rt.dir.path().join(format!("{name}.zip"));
    let extra: Vec<(String, Vec<u8>, zip::CompressionMethod)> = configs
        .iter()
        .map(|(n, json)| (format!("conf/{n}.json"), json.clone().into_bytes(), zip::CompressionMethod::Stored))
        .collect();
    let extra: Vec<(&str, Vec<u8>, zip::CompressionMethod)> =
        extra.iter().map(|(n, d, m)| (n.as_str(), d.clone(), *m)).collect();
    rewrite_zip(&plain, &out, |_, data| Some(data), &extra);
    out
}

fn deploy(rt: &Runtime, token: &str, zip: &Path) {
    assert_eq!(rt.upload(zip, token).status, 200);
    let build = rt.wait_build(token);
    assert_eq!(build["status"], "SUCCESS", "{build:#}");
    rt.wait_status(token, "STATUS:RUNNING");
}

/// An output point, read with the control tool as an observer beside the companion.
fn read_point(rt: &Runtime, addr: &str) -> u64 {
    let out = Command::new(common::rt_binary()).arg("--shm").arg(&rt.shm).args(["read", addr]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{text}"))
}

fn plugin_state(rt: &Runtime, token: &str, name: &str) -> Option<String> {
    let status = rt.get("/plugins", token).json();
    status["plugins"].as_array()?.iter().find(|p| p["name"] == name).and_then(|p| p["state"].as_str().map(String::from))
}

fn mbpoll(port: u16, args: &[&str]) -> String {
    let out = Command::new("mbpoll")
        .args(["-m", "tcp", "-p", &port.to_string(), "-a", "1", "-0", "-1", "-o", "2"])
        .args(args)
        .output()
        .expect("mbpoll (scripts/test-deps installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mbpoll {args:?}: {text}");
    text
}

/// The register values mbpoll printed, as `[address]: value` lines.
fn registers(text: &str) -> Vec<(u32, i64)> {
    text.lines()
        .filter_map(|l| {
            let (a, v) = l.trim().strip_prefix('[')?.split_once("]:")?;
            Some((a.parse().ok()?, v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn an_uploaded_modbus_config_starts_the_server_with_the_program() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let port = common::free_port();
    // The Editor's file (the demo's), on a free port.
    let slave = std::fs::read_to_string(common::repo_root().join("scripts/demo-bundle/conf/modbus_slave.json"))
        .unwrap()
        .replace("5020", &port.to_string());
    deploy(&rt, &token, &bundle_with(&rt, "modbus", &[("modbus_slave", slave)]));
    wait_for("the Modbus server", T, || std::net::TcpStream::connect(("127.0.0.1", port)).ok());

    // Holding register 1024 is %MW0, the demo's scan counter: write it, the program counts on.
    mbpoll(port, &["-t", "4", "-r", "1024", "127.0.0.1", "30000"]);
    let counter = wait_for("the counter to carry on from 30000", T, || {
        let r = registers(&mbpoll(port, &["-t", "4", "-r", "1024", "127.0.0.1"]));
        r.first().map(|&(_, v)| v).filter(|&v| v >= 30_000)
    });
    assert!(counter < 40_000, "the write landed, then the program incremented it: {counter}");
    // %QX0.0 (coil 0) and %QW0 (holding register 0) are the program's outputs.
    let coils = mbpoll(port, &["-t", "0", "-r", "0", "-c", "8", "127.0.0.1"]);
    assert!(coils.contains("[0]:"), "{coils}");
    assert!(rt.get("/plugins", &token).json()["protocols"]["modbus"]["status"]["server"].is_object());
    // One deploy starts the server once: clients connected after the upload stay connected.
    let logs = rt.get("/runtime-logs", &token).json()["runtime-logs"].to_string();
    assert_eq!(logs.matches("Modbus TCP server listening on").count(), 1, "{logs}");

    // Stopping the PLC stops its plugins, as upstream; starting brings the server back.
    assert_eq!(rt.get("/stop-plc", &token).json()["status"], "STOP:OK");
    wait_for("the server to close", T, || std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(()));
    assert_eq!(rt.get("/start-plc", &token).json()["status"], "START:OK");
    wait_for("the server to come back", T, || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
}

#[test]
fn a_protocol_that_cannot_start_says_why_in_the_plugins_status() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    // Something else holds the port the upload asks for.
    let taken = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let slave = std::fs::read_to_string(common::repo_root().join("scripts/demo-bundle/conf/modbus_slave.json"))
        .unwrap()
        .replace("5020", &port.to_string());
    deploy(&rt, &token, &bundle_with(&rt, "modbus", &[("modbus_slave", slave)]));
    let modbus = wait_for("the Modbus server's state", T, || {
        let status = rt.get("/plugins", &token).json();
        let modbus = status["protocols"]["modbus"].clone();
        (!modbus.is_null()).then_some(modbus)
    });
    assert_eq!(modbus["state"], "failed", "{modbus}");
    let error = modbus["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("in use"), "{modbus}");
    let logs = rt.get("/runtime-logs", &token).json()["runtime-logs"].to_string();
    assert!(logs.contains("modbus not started"), "{logs}");
}

#[test]
fn native_and_python_plugins_follow_the_upload_rule_and_drive_the_program() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let root = common::repo_root();
    let native = rt.dir.path().join("libnative_counter.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-I"])
        .arg(root.join("shared-abi/include"))
        .arg("-o")
        .arg(&native)
        .arg(root.join("plugins/examples/native_counter/native_counter.c"))
        .status()
        .unwrap();
    assert!(built.success());
    let broken = rt.dir.path().join("raises.py");
    std::fs::write(&broken, "def init(capsule):\n    raise RuntimeError('this plugin is broken on purpose')\n")
        .unwrap();
    std::fs::create_dir_all(rt.data_dir()).unwrap();
    std::fs::write(
        rt.data_dir().join("plugins.conf"),
        format!(
            "# name,path,enabled,type,config_path,venv_path\nnative_counter,{},0,1\npython_echo,{},0,0\nraises,{},0,0\n",
            native.display(),
            root.join("plugins/examples/python_echo/python_echo.py").display(),
            broken.display()
        ),
    )
    .unwrap();

    // Upload 1 enables the native plugin: it writes the scans it sees into %IW0, and the
    // program's %QW0 = 2 x %IW0 follows.
    deploy(&rt, &token, &bundle_with(&rt, "native", &[("native_counter", "{}".into())]));
    let first = wait_for("%QW0 driven by the native plugin", T, || Some(read_point(&rt, "%QW0")).filter(|&v| v > 0));
    wait_for("%QW0 to keep moving", T, || (read_point(&rt, "%QW0") > first).then_some(()));
    assert_eq!(plugin_state(&rt, &token, "native_counter").as_deref(), Some("running"));
    assert_eq!(plugin_state(&rt, &token, "python_echo").as_deref(), Some("disabled"));

    // Upload 2 enables the Python plugin (copying the program's %MW0 counter into %IW0, so
    // %QW0 = 2 x %IW0 follows) and a plugin that raises: the broken one is reported and
    // isolated.
    let echo = r#"{"from": "%MW0", "to": "%IW0"}"#.to_string();
    deploy(&rt, &token, &bundle_with(&rt, "python", &[("python_echo", echo), ("raises", "{}".into())]));
    let first = wait_for("%QW0 driven by the Python plugin", T, || Some(read_point(&rt, "%QW0")).filter(|&v| v > 0));
    wait_for("%QW0 to follow the counter", T, || (read_point(&rt, "%QW0") > first).then_some(()));
    wait_for("the broken plugin to be degraded", T, || {
        (plugin_state(&rt, &token, "raises").as_deref() == Some("degraded")).then_some(())
    });
    assert_eq!(plugin_state(&rt, &token, "python_echo").as_deref(), Some("running"));
    assert_eq!(plugin_state(&rt, &token, "native_counter").as_deref(), Some("disabled"));
    let log = rt.log();
    assert!(log.contains("this plugin is broken on purpose"), "the traceback reaches the runtime log");
    assert_eq!(rt.status(&token), "STATUS:RUNNING", "the PLC runs on");

    assert_eq!(rt.get("/stop-plc", &token).json()["status"], "STOP:OK");
    wait_for("plugins to stop with the PLC", T, || {
        (plugin_state(&rt, &token, "python_echo").as_deref() != Some("running")).then_some(())
    });
}

/// A native plugin that takes commands: it echoes what it receives, refuses `fail`, and
/// counts the commands in its `get_stats`.
const COMMAND_PLUGIN: &str = r#"
#include <stdio.h>
#include <string.h>
static int calls;
int init(void *args) { (void)args; return 0; }
int execute_command(const char *json, char *resp, size_t n) {
    calls++;
    if (strstr(json, "\"command\":\"fail\"")) { snprintf(resp, n, "{\"error\":\"failed on purpose\"}"); return 3; }
    snprintf(resp, n, "{\"got\":%s}", json);
    return 0;
}
int get_stats(char *out, size_t n) { snprintf(out, n, "{\"calls\":%d}", calls); return 0; }
"#;

#[test]
fn plugin_commands_reach_a_running_native_plugin() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let source = rt.dir.path().join("commands.c");
    std::fs::write(&source, COMMAND_PLUGIN).unwrap();
    let so = rt.dir.path().join("libcommands.so");
    assert!(Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&so).arg(&source).status().unwrap().success());
    std::fs::create_dir_all(rt.data_dir()).unwrap();
    std::fs::write(
        rt.data_dir().join("plugins.conf"),
        format!("commands,{},0,1\nidle,{},0,1\n", so.display(), so.display()),
    )
    .unwrap();
    deploy(&rt, &token, &bundle_with(&rt, "commands", &[("commands", "{}".into())]));
    wait_for("the plugin to run", T, || {
        (plugin_state(&rt, &token, "commands").as_deref() == Some("running")).then_some(())
    });

    let send = |token: &str, body: &str| rt.curl("POST", "/plugin-command", Some(token), Some(body));
    let r = send(&token, r#"{"plugin":"commands","command":"scan","params":{"port":"eth0"}}"#);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"got": {"command": "scan", "params": {"port": "eth0"}}}));
    let r = send(&token, r#"{"plugin":"commands","command":"fail"}"#);
    assert_eq!(
        (r.status, r.json()),
        (422, serde_json::json!({"error": "failed on purpose"})),
        "the plugin's own reply"
    );
    assert_eq!(send(&token, r#"{"plugin":"nobody","command":"scan"}"#).status, 404);
    assert_eq!(
        send(&token, r#"{"plugin":"idle","command":"scan"}"#).status,
        409,
        "listed but not enabled by the upload"
    );
    assert_eq!(send(&token, r#"{"plugin":"commands"}"#).status, 400);
    assert_eq!(send(&token, "not json").status, 400);
    assert_eq!(send("not-a-jwt", r#"{"plugin":"commands","command":"scan"}"#).status, 401);
    let r = rt.curl(
        "POST",
        "/create-user",
        Some(&token),
        Some(r#"{"username":"eve","password":"eve-pass","role":"viewer"}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let viewer = rt.login("eve", "eve-pass");
    assert_eq!(
        send(&viewer, r#"{"plugin":"commands","command":"scan"}"#).status,
        403,
        "viewers may not command plugins"
    );

    // get_stats reaches the Editor's statistics as upstream's `plugin_stats`.
    let stats = rt.get("/status?include_stats=true", &token).json();
    assert_eq!(stats["timing_stats"]["plugin_stats"]["commands"]["calls"], 2, "{stats:#}");
    assert!(rt.log().contains(r#"Plugin command "scan" to "commands" by "admin""#), "{}", rt.log());
}

/// A native plugin reporting a hardware run/stop switch at STOP when it starts.
const NATIVE_SWITCH: &str = r#"
#include "openplc_abi.h"
static plugin_runtime_args_t *rt;
int init(void *args) { rt = args; return 0; }
int start_loop(void) { rt->set_switch_position(OPLC_PLUGIN_SWITCH_STOP); return 0; }
"#;

/// The same through the Python helper.
const PYTHON_SWITCH: &str = "import openplc\nrt = None\n\
def init(capsule):\n    global rt\n    rt = openplc.Runtime(capsule)\n\
def start_loop():\n    rt.set_switch_position('stop')\n";

#[test]
fn a_plugin_reporting_the_switch_at_stop_stops_the_plc_and_refuses_starts() {
    let rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let root = common::repo_root();
    let source = rt.dir.path().join("switcher.c");
    std::fs::write(&source, NATIVE_SWITCH).unwrap();
    let so = rt.dir.path().join("libswitcher.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-I"])
        .arg(root.join("shared-abi/include"))
        .arg("-o")
        .arg(&so)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    let py = rt.dir.path().join("py_switcher.py");
    std::fs::write(&py, PYTHON_SWITCH).unwrap();
    std::fs::create_dir_all(rt.data_dir()).unwrap();
    std::fs::write(
        rt.data_dir().join("plugins.conf"),
        format!("switcher,{},0,1\npy_switcher,{},0,0\n", so.display(), py.display()),
    )
    .unwrap();

    for plugin in ["switcher", "py_switcher"] {
        // The program starts, its plugin starts and reports STOP: the PLC stops.
        assert_eq!(rt.curl("POST", "/switch", Some(&token), Some(r#"{"position":"run"}"#)).status, 200);
        assert_eq!(rt.upload(&bundle_with(&rt, plugin, &[(plugin, "{}".into())]), &token).status, 200);
        assert_eq!(rt.wait_build(&token)["status"], "SUCCESS");
        wait_for("the switch at STOP", T, || {
            (rt.get("/switch", &token).json()["switchPosition"] == "stop").then_some(())
        });
        rt.wait_status(&token, "STATUS:STOPPED");
        assert_eq!(rt.get("/status", &token).json()["switchPosition"], "stop");
        assert_eq!(rt.get("/start-plc", &token).json()["status"], "START:ERROR_SWITCH_STOP", "{plugin}");
        let logs = rt.get("/runtime-logs", &token).json()["runtime-logs"].to_string();
        assert!(logs.contains(&format!("Run/stop switch moved to STOP by plugin {plugin}")), "{logs}");
    }
}

/// A native plugin that is the RETAIN store: `retain_save`/`retain_load`/`retain_flush`
/// keep the blob and the identity `retain_load` was given in one file (the path compiled
/// in), as upstream's protocol asks: what `retain_load` returns is only for the same MD5.
const RETAIN_STORE: &str = r#"
#include <stdint.h>
#include <stdio.h>
#include <string.h>
static char identity[32];
static uint8_t held[65536];
static uint16_t held_len;
int init(void *args) { (void)args; return 0; }
int retain_load(const char *md5, uint16_t md5_len, uint8_t *out, uint16_t cap, uint16_t *out_len) {
    *out_len = 0;
    if (md5_len != 32) return 0;
    memcpy(identity, md5, 32);
    FILE *f = fopen(STORE, "rb");
    if (!f) return 0;
    char stored[32];
    size_t n = fread(stored, 1, 32, f);
    if (n == 32 && memcmp(stored, md5, 32) == 0) {
        size_t len = fread(out, 1, cap, f);
        *out_len = (uint16_t)len;
    }
    fclose(f);
    return 0;
}
int retain_save(const uint8_t *blob, uint16_t len) { memcpy(held, blob, len); held_len = len; return 0; }
int retain_flush(void) {
    FILE *f = fopen(STORE ".tmp", "wb");
    if (!f) return 1;
    fwrite(identity, 1, 32, f);
    fwrite(held, 1, held_len, f);
    fclose(f);
    return rename(STORE ".tmp", STORE) == 0 ? 0 : 2;
}
"#;

#[test]
fn a_native_plugin_keeps_the_retain_values_across_a_power_cut() {
    const V: &str = "CONFIG0.RES0.INSTANCE0.V_UDINT";
    // No --retain-flush-s: the plugin is the only store.
    let mut rt = Runtime::start(&[]);
    let token = rt.bootstrap("admin", "admin-pass");
    let store = rt.dir.path().join("plugin-store.bin");
    let source = rt.dir.path().join("keeper.c");
    std::fs::write(&source, RETAIN_STORE).unwrap();
    let so = rt.dir.path().join("libkeeper.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(format!("-DSTORE=\"{}\"", store.display()))
        .arg("-o")
        .arg(&so)
        .arg(&source)
        .status()
        .unwrap();
    assert!(built.success());
    std::fs::create_dir_all(rt.data_dir()).unwrap();
    std::fs::write(rt.data_dir().join("plugins.conf"), format!("keeper,{},0,1\n", so.display())).unwrap();

    // The demo at 100 ms (V_UDINT grows by 1 000 000 a second) with V_UDINT RETAIN, and
    // conf/keeper.json enabling the store plugin.
    let plain = rt.dir.path().join("keeper-plain.zip");
    common::demo_bundle(&plain, &["--no-conf", "--period-ms", "100"]);
    let zip = rt.dir.path().join("keeper.zip");
    rewrite_zip(
        &plain,
        &zip,
        |name, data| {
            let text = String::from_utf8(data.clone()).ok();
            Some(match (name, text) {
                ("POUS.c", Some(t)) => {
                    t.replace("__INIT_VAR(data__->V_UDINT,0,retain)", "__INIT_VAR(data__->V_UDINT,0,1)").into_bytes()
                }
                ("VARIABLES.csv", Some(t)) => {
                    t.replace(&format!("{V};{V};UDINT;UDINT;0;"), &format!("{V};{V};UDINT;UDINT;1;")).into_bytes()
                }
                _ => data,
            })
        },
        &[("conf/keeper.json", b"{}".to_vec(), zip::CompressionMethod::Stored)],
    );
    deploy(&rt, &token, &zip);
    let status = rt.get("/retain-status", &token).json()["retain"].clone();
    assert_eq!(status["store"], "keeper", "{status}");
    // What the plugin holds: 32 bytes of identity, then the companion's blob (a 64-byte
    // header and V_UDINT).
    let held = || {
        let bytes = std::fs::read(&store).ok()?;
        Some(u32::from_le_bytes(bytes.get(96..100)?.try_into().ok()?) as u64)
    };
    let saved = wait_for("the plugin to hold V_UDINT", T, || held().filter(|&v| v >= 3_000_000));

    // A power cut: both processes and the shared memory gone; the values come from the plugin.
    rt.stop_companion(libc::SIGKILL);
    let pid = rt.rt_pid();
    // SAFETY: kill() touches no memory; the pid is the rt-core of this test.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    wait_for("rt-core to be gone", T, || (!shared_abi::shm::rt_alive(&rt.shm)).then_some(()));
    std::fs::remove_file(&rt.shm).unwrap();
    rt.restart_companion();
    rt.wait_status(&token, "STATUS:RUNNING");
    let r = rt.get(&format!("/variables/values?names={V}"), &token).json();
    let after = r["values"][0]["value"].as_u64().unwrap();
    assert!(after >= saved, "carried on from the plugin's {saved}: {after}");
    let status = wait_for("the warm start's report", T, || {
        let s = rt.get("/retain-status", &token).json()["retain"].clone();
        (s["blob_bytes"] == 4).then_some(s)
    });
    assert_eq!(
        (status["start"].as_str(), status["restored"].as_bool(), status["stored_bytes"].as_u64()),
        (Some("warm"), Some(true), Some(4)),
        "{status}"
    );

    // A cold start resets the plugin's store (identity, then an empty blob) and the new
    // run's values follow within a second, far below the old ones.
    assert_eq!(rt.get("/stop-plc", &token).json()["status"], "STOP:OK");
    assert_eq!(rt.get("/cold-start-plc", &token).json()["status"], "COLD_START:OK");
    wait_for("the plugin to hold the new run's values", T, || held().filter(|&v| v < saved));
    assert_eq!(rt.get("/retain-status", &token).json()["retain"]["start"], "cold");
}
