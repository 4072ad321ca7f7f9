//! A plugin built the way upstream's are (its own v4.1.4 struct declaration, copied by
//! value) works unchanged: image_lock reads, journal writes, pointer writes under the lock,
//! logging, the debug thunks, execute_command, get_stats, request_plc_stop.

mod support;

use openplc_plugin_host::{CommandError, PluginHost, PluginState};
use shared_abi::layout::PlcState;
use support::*;

#[test]
fn an_upstream_style_plugin_works_unchanged() {
    let plc = Plc::start();
    let so = build_so(plc.dir(), "libupstream_style.so", &[fixture("upstream_style.c")]);
    let (data, conf) = data_dir(&[format!("upstream_style,{},1,1,conf/up.json", so.display())]);
    let host = PluginHost::new(&conf, plc.port.clone()).unwrap();
    let status = host.start().unwrap();
    assert_eq!(status_of(&status, "upstream_style").state, PluginState::Running, "{}", plc.log_text());

    // journal_write_int(%IW0 = 21) → the program's %QW0 = 42 → seen under image_lock →
    // journal_write_bool(%IX0.0) → the program's %QX0.0 = %IX0.0.
    wait_for("%QX0.0 set by the program from the plugin's input", || (plc.output("%QX0.0") == 1).then_some(()));
    assert_eq!(plc.output("%QW0"), 42);
    // Cells written through the pointers while holding the lock.
    wait_for("%MW5 written through the pointer table", || (plc.output("%MW5") == 777).then_some(()));
    assert_eq!(plc.input("%IX0.2"), 1);

    let log = plc.log_text();
    let config = data.path().join("conf/up.json");
    assert!(
        log.contains(&format!(
            "[upstream_style] upstream_style: buffer_size=1024 bits=8 base_tick_ns=10000000 config={}",
            config.display()
        )),
        "{log}"
    );
    assert!(log.contains("[upstream_style] upstream_style: expanded text stays inert: %n %s %x"), "{log}");
    assert!(!log.contains("a bad journal write was accepted"), "{log}");
    assert!(!log.contains("a good journal write was refused"), "{log}");

    // The debug thunks (blocking reads run on this thread, through execute_command).
    let reply = host.execute_command("upstream_style", r#"{"cmd":"debug"}"#).unwrap();
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(v, serde_json::json!({"arrays": 1, "elems": 7, "size": 2, "read": 2, "missing": 0}));
    assert_eq!(
        host.execute_command("upstream_style", r#"{"cmd":"what"}"#),
        Err(CommandError::Failed { code: 2, reply: "unknown command".into() })
    );
    assert_eq!(host.execute_command("nobody", "{}"), Err(CommandError::NoSuchPlugin));

    let stats = host.stats();
    assert!(stats["upstream_style"]["scans"].as_u64().unwrap() > 0, "{stats:?}");

    // request_plc_stop reaches rt-core.
    host.execute_command("upstream_style", r#"{"cmd":"stop"}"#).unwrap();
    wait_for("the PLC to stop at the plugin's request", || (plc.port.state() == Some(PlcState::Stopped)).then_some(()));
    assert!(plc.log_text().contains("requests a PLC stop: upstream_style was asked to stop the PLC"));

    host.stop();
    let log = plc.log_text();
    let stop_at = log.find("upstream_style: stop_loop").expect("stop_loop ran");
    let cleanup_at = log.find("upstream_style: cleanup").expect("cleanup ran");
    assert!(stop_at < cleanup_at, "stop_loop before cleanup\n{log}");
}

#[test]
fn an_upstream_style_python_plugin_reads_the_capsule_with_ctypes() {
    let plc = Plc::start();
    let (_data, conf) = data_dir(&[format!("ctypes_style,{},1,0", fixture("ctypes_style.py").display())]);
    let host = PluginHost::new(&conf, plc.port.clone()).unwrap();
    let status = host.start().unwrap();
    assert_eq!(status_of(&status, "ctypes_style").state, PluginState::Running, "{}", plc.log_text());

    // %IW0 = 50 → the program's %QW0 = 100 → read under image_lock → %IW3 = 101.
    plc.set_input("%IW0", 50);
    wait_for("%IW3 = %QW0 + 1 from the ctypes plugin", || (plc.input("%IW3") == 101).then_some(()));
    assert_eq!(status_of(&host.status(), "ctypes_style").state, PluginState::Running, "{}", plc.log_text());
    host.stop();
}
