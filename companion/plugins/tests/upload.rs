//! The per-upload rule: `conf/<name>.json` in the bundle enables that plugin with that
//! configuration; every other plugin is disabled; no `conf/` turns them all off.

use openplc_plugin_host::{PluginHost, PluginState, PluginsConf, UploadedConfig};
use openplc_port::{LogSink, PlcPort};
use std::path::Path;

/// A port with no rt-core behind it: the upload rule does not need one.
fn no_plc() -> std::sync::Arc<PlcPort> {
    PlcPort::detached(LogSink::discard())
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn conf_files_in_the_bundle_enable_exactly_their_plugins() {
    let data = tempfile::tempdir().unwrap();
    let conf = data.path().join("plugins.conf");
    write(
        &conf,
        "# my plugins\nalpha,./alpha.so,0,1\nbeta,./beta.py,1,0,./old.json\n\n# gamma is python\ngamma,./gamma.py,1,0,,./venvs/gamma\n",
    );
    let host = PluginHost::new(&conf, no_plc()).unwrap();

    let bundle = tempfile::tempdir().unwrap();
    write(&bundle.path().join("conf/alpha.json"), r#"{"port": 5020}"#);
    write(&bundle.path().join("conf/modbus_slave.json"), r#"{"network_configuration": {"port": 502}}"#);
    write(&bundle.path().join("conf/notes.txt"), "not a config");
    write(&bundle.path().join("Res0.c"), "/* program */");

    let uploaded = host.apply_upload(bundle.path()).unwrap();
    let store = std::path::absolute(data.path().join("conf")).unwrap();
    assert_eq!(
        uploaded,
        vec![
            UploadedConfig { name: "alpha".into(), config_path: store.join("alpha.json"), listed: true },
            UploadedConfig { name: "modbus_slave".into(), config_path: store.join("modbus_slave.json"), listed: false },
        ]
    );
    assert_eq!(std::fs::read_to_string(store.join("alpha.json")).unwrap(), r#"{"port": 5020}"#);

    let text = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(
        text,
        format!(
            "# my plugins\nalpha,./alpha.so,1,1,{}\nbeta,./beta.py,0,0,./old.json\n\n# gamma is python\ngamma,./gamma.py,0,0,,./venvs/gamma\n",
            store.join("alpha.json").display()
        )
    );
    let status = host.status();
    let state = |n: &str| status.iter().find(|s| s.name == n).unwrap().state;
    assert_eq!(
        (state("alpha"), state("beta"), state("gamma")),
        (PluginState::Stopped, PluginState::Disabled, PluginState::Disabled)
    );
    assert_eq!(status[0].config_path.as_deref(), Some(store.join("alpha.json").as_path()));

    // A bundle without conf/ turns every plugin off and leaves no stale copies behind.
    let bare = tempfile::tempdir().unwrap();
    write(&bare.path().join("Res0.c"), "/* program */");
    assert_eq!(host.apply_upload(bare.path()).unwrap(), vec![]);
    let conf_now = PluginsConf::load(&conf).unwrap();
    assert!(conf_now.entries().all(|e| !e.enabled), "{}", conf_now.to_text());
    assert!(host.status().iter().all(|s| s.state == PluginState::Disabled));
    assert!(!store.join("alpha.json").exists());
    assert!(!store.join("modbus_slave.json").exists());

    // Starting with every plugin disabled loads nothing and stops cleanly.
    let started = host.start().unwrap();
    assert!(started.iter().all(|s| s.state == PluginState::Disabled));
    host.stop();
}

#[test]
fn without_a_plugins_conf_the_rule_still_reports_the_built_ins() {
    let data = tempfile::tempdir().unwrap();
    let conf = data.path().join("plugins.conf");
    let host = PluginHost::new(&conf, no_plc()).unwrap();
    assert!(host.status().is_empty());
    let bundle = tempfile::tempdir().unwrap();
    write(&bundle.path().join("conf/modbus_master.json"), "[]");
    let uploaded = host.apply_upload(bundle.path()).unwrap();
    assert_eq!(uploaded.len(), 1);
    assert!(!uploaded[0].listed);
    assert!(!conf.exists(), "no plugins.conf is made up when none existed and none is listed");
}

#[test]
fn a_conf_file_with_an_unusable_name_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let conf = data.path().join("plugins.conf");
    write(&conf, "alpha,./alpha.so,1,1\n");
    let host = PluginHost::new(&conf, no_plc()).unwrap();
    let bundle = tempfile::tempdir().unwrap();
    write(&bundle.path().join("conf/bad name.json"), "{}");
    let err = host.apply_upload(bundle.path()).unwrap_err();
    assert!(err.to_string().contains("may only hold letters"), "{err}");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "alpha,./alpha.so,1,1\n", "plugins.conf untouched");
}
