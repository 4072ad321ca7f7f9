//! The two examples in `plugins/examples/` against a real rt-core: each sees outputs change
//! and writes inputs that the program then sees.

mod support;

use openplc_plugin_host::{PluginHost, PluginState};
use std::sync::Arc;
use support::*;

#[test]
fn native_example_sees_outputs_and_drives_inputs_the_program_reads() {
    let plc = Plc::start();
    let so = build_so(plc.dir(), "libnative_counter.so", &[example("native_counter/native_counter.c")]);
    let (_data, conf) = data_dir(&[format!("native_counter,{},1,1", so.display())]);
    let host = PluginHost::new(&conf, plc.port.clone()).unwrap();

    let status = host.start().unwrap();
    assert_eq!(status_of(&status, "native_counter").state, PluginState::Running, "{}", plc.log_text());

    // The plugin counts scans into %IW0; the program's %QW0 = 2 * %IW0 follows.
    let q0 = wait_for("%QW0 to follow the plugin's %IW0", || {
        let q0 = plc.output("%QW0");
        (q0 >= 20).then_some(q0)
    });
    assert!(q0.is_multiple_of(2));
    // The plugin mirrors %QW0 (an output it reads under image_lock) into %IW1.
    wait_for("%IW1 to mirror %QW0", || {
        let i1 = plc.input("%IW1");
        (i1 >= 20 && i1.is_multiple_of(2)).then_some(())
    });
    assert!(plc.log_text().contains("[native_counter] native_counter ready (config: '')"), "{}", plc.log_text());

    // Stopped plugins write no more; a second start works like the first.
    host.stop();
    assert_eq!(host.status()[0].state, PluginState::Stopped);
    let frozen = plc.input("%IW0");
    plc.wait_scans(5);
    assert_eq!(plc.input("%IW0"), frozen, "the counter stopped with the plugin");
    host.start().unwrap();
    wait_for("the counter to move again", || (plc.input("%IW0") > frozen).then_some(()));
    host.stop();
}

#[test]
fn python_example_sees_outputs_and_drives_inputs_the_program_reads() {
    let plc = Plc::start();
    let script = example("python_echo/python_echo.py");
    let (data, conf) = data_dir(&[
        format!("echo_bit,{},1,0", script.display()),
        format!("echo_counter,{},1,0,counter.json", script.display()),
    ]);
    std::fs::write(data.path().join("counter.json"), r#"{"from": "%MW0", "to": "%IW0"}"#).unwrap();
    let host = PluginHost::new(&conf, plc.port.clone()).unwrap();

    let status = host.start().unwrap();
    for name in ["echo_bit", "echo_counter"] {
        assert_eq!(status_of(&status, name).state, PluginState::Running, "{name}: {}", plc.log_text());
    }

    // echo_counter copies the scan counter %MW0 into %IW0; the program doubles it into %QW0.
    wait_for("%QW0 to follow %MW0 through the plugin", || (plc.output("%QW0") >= 20).then_some(()));

    // echo_bit copies %QX0.0 (= %IX0.0 in the program) into %IX0.1.
    assert_eq!(plc.input("%IX0.1"), 0);
    plc.set_input("%IX0.0", 1);
    wait_for("%IX0.1 to echo %QX0.0", || (plc.input("%IX0.1") == 1).then_some(()));
    plc.set_input("%IX0.0", 0);
    wait_for("%IX0.1 to echo %QX0.0 back to 0", || (plc.input("%IX0.1") == 0).then_some(()));

    let log = plc.log_text();
    assert!(log.contains("[echo_bit] python_echo: %QX0.0 -> %IX0.1"), "{log}");
    assert!(log.contains("[echo_counter] python_echo: %MW0 -> %IW0"), "{log}");
    host.stop();
    assert!(host.status().iter().all(|s| s.state == PluginState::Stopped));
}

#[test]
fn python_plugins_get_their_venv_on_the_path() {
    let plc = Plc::start();
    let (data, conf) = data_dir(&[format!("uses_venv,{},1,0,,venv", fixture("uses_venv.py").display())]);
    let version = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"])
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let site = data.path().join(format!("venv/lib/python{}/site-packages", version.trim()));
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("venv_helper.py"), "ANSWER = 42\n").unwrap();

    let host = PluginHost::new(&conf, plc.port.clone()).unwrap();
    let status = host.start().unwrap();
    assert_eq!(status_of(&status, "uses_venv").state, PluginState::Running, "{}", plc.log_text());
    wait_for("%IW5 written from the venv's module", || (plc.input("%IW5") == 42).then_some(()));
    wait_for("%IX2.3 written through the area helper", || (plc.input("%IX2.3") == 1).then_some(()));
    drop(host);
    let _ = Arc::clone(&plc.port);
}
