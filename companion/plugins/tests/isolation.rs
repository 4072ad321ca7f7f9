//! Plugins that fail (to load, to init, to start, later in a thread) are reported and
//! skipped, and the PLC and the other plugins go on.

mod support;

use openplc_plugin_host::{PluginHost, PluginState};
use shared_abi::layout::PlcState;
use shared_abi::msg::LogLevel;
use support::*;

#[test]
fn failing_plugins_are_degraded_and_the_others_keep_working() {
    let plc = Plc::start();
    let dir = plc.dir();
    let counter = build_so(dir, "libnative_counter.so", &[example("native_counter/native_counter.c")]);
    let failing = build_so(dir, "libfailing_init.so", &[fixture("failing_init.c")]);
    let no_init = build_so(dir, "libno_init.so", &[fixture("no_init.c")]);
    let (data, conf) = data_dir(&[
        format!("native_counter,{},1,1", counter.display()),
        format!("failing_init,{},1,1", failing.display()),
        format!("no_init,{},1,1", no_init.display()),
        "missing,./does/not/exist.so,1,1".to_string(),
        format!("echo,{},1,0,echo.json", example("python_echo/python_echo.py").display()),
        format!("raises_in_init,{},1,0", fixture("raises_in_init.py").display()),
        format!("raises_in_start,{},1,0", fixture("raises_in_start.py").display()),
        format!("raises_in_thread,{},1,0", fixture("raises_in_thread.py").display()),
        // Same directory as raises_in_thread: the thread's exception must not be blamed on it.
        format!("quiet,{},1,0", fixture("quiet.py").display()),
        "python_missing,./nowhere.py,1,0".to_string(),
        format!("disabled,{},0,1", counter.display()),
    ]);
    std::fs::write(data.path().join("echo.json"), r#"{"from": "%QW0", "to": "%IW2"}"#).unwrap();
    let host = PluginHost::new(&conf, plc.port.clone()).unwrap();
    let status = host.start().unwrap();
    let log = plc.log_text();

    let reason = |name: &str| {
        let s = status_of(&status, name);
        assert_eq!(s.state, PluginState::Degraded, "{name}: {s:?}\n{log}");
        s.reason.clone().unwrap()
    };
    assert!(reason("failing_init").contains("init() returned -3"));
    assert!(reason("no_init").contains("does not export init()"));
    assert!(reason("missing").contains("does/not/exist.so does not exist"));
    let init_tb = reason("raises_in_init");
    assert!(init_tb.contains("Traceback (most recent call last)"), "{init_tb}");
    assert!(init_tb.contains("raises_in_init.py\", line 2, in init"), "{init_tb}");
    assert!(init_tb.contains("ValueError: bad config: no port given"), "{init_tb}");
    let start_tb = reason("raises_in_start");
    assert!(start_tb.contains("in open_port"), "{start_tb}");
    assert!(start_tb.contains("RuntimeError: cannot open /dev/ttyFAKE"), "{start_tb}");
    assert!(reason("python_missing").contains("is not a Python file"));
    assert_eq!(status_of(&status, "disabled").state, PluginState::Disabled);
    for name in ["native_counter", "echo", "raises_in_thread", "quiet"] {
        assert_eq!(status_of(&status, name).state, PluginState::Running, "{name}\n{log}");
    }

    // Each failure is in the runtime log at error level, tracebacks included.
    let errors: Vec<String> = plc.logs().into_iter().filter(|(l, _)| *l == LogLevel::Error).map(|(_, t)| t).collect();
    for needle in [
        "[failing_init] init() returned -3",
        "[no_init] not loaded",
        "[missing] not loaded",
        "[raises_in_init] init() raised:\nTraceback (most recent call last)",
        "[raises_in_start] start_loop() raised:\nTraceback (most recent call last)",
    ] {
        assert!(errors.iter().any(|t| t.starts_with(needle)), "no error line {needle:?} in\n{log}");
    }
    assert!(log.contains("raises_in_start cleaned up"), "a plugin failing start_loop gets cleanup\n{log}");

    // The exception in raises_in_thread's own thread degrades it, with its traceback.
    wait_for("the thread's exception to be reported", || {
        let s = host.status();
        (status_of(&s, "raises_in_thread").state == PluginState::Degraded).then_some(())
    });
    let log = plc.log_text();
    assert!(log.contains("[raises_in_thread] exception in thread raises_in_thread:\nTraceback"), "{log}");
    assert!(log.contains("ZeroDivisionError: division by zero"), "{log}");
    assert_eq!(status_of(&host.status(), "quiet").state, PluginState::Running, "only the plugin that raised");
    assert_eq!(plc.input("%IW7"), 7);

    // The PLC and the healthy plugins go on.
    assert_eq!(plc.port.state(), Some(PlcState::Running));
    let t0 = plc.tick();
    wait_for("native_counter to keep driving %QW0", || {
        (plc.tick() > t0 + 10 && plc.output("%QW0") >= 20).then_some(())
    });
    wait_for("echo to keep copying %QW0 into %IW2", || {
        let i2 = plc.input("%IW2");
        (i2 >= 20 && i2.is_multiple_of(2)).then_some(())
    });
    host.stop();
    let after = host.status();
    assert!(status_of(&after, "failing_init").reason.is_some(), "the reason stays visible after stop");
    assert_eq!(status_of(&after, "native_counter").state, PluginState::Stopped);
}

#[test]
fn an_unreadable_plugins_conf_is_a_clear_error() {
    let plc = Plc::start();
    let (_data, conf) = data_dir(&["good,./a.so,1,1".into(), "bad,./b.so,yes,1".into()]);
    let err = PluginHost::new(&conf, plc.port.clone()).err().expect("a bad line is refused");
    assert!(err.to_string().ends_with("plugins.conf line 3: enabled must be 1 or 0, not \"yes\""), "{err}");

    // Broken after the host was made: start refuses and says why in the runtime log.
    let (_data2, conf2) = data_dir(&["good,./a.so,0,1".into()]);
    let host = PluginHost::new(&conf2, plc.port.clone()).unwrap();
    std::fs::write(&conf2, "x\n").unwrap();
    let err = host.start().expect_err("start refuses a broken plugins.conf");
    assert!(err.to_string().contains("line 1: expected name,path,enabled,type"), "{err}");
    assert!(plc.log_text().contains("plugins not started:"), "{}", plc.log_text());
}
