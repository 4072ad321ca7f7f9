//! `plugins_conf`: `<data dir>/plugins.conf` (`openplc_plugin_host::PluginsConf::parse`).
//! What is accepted obeys upstream's limits, and what the runtime writes back it reads back
//! the same.

use openplc_plugin_host::PluginsConf;
use openplc_plugin_host::conf::{MAX_PATH, MAX_PLUGINS, check_name};
use std::path::Path;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Path::new("plugins.conf");
    let conf = match PluginsConf::parse(text, file) {
        Ok(conf) => conf,
        Err(e) => {
            let lines = text.lines().count();
            assert!(e.line.is_some_and(|n| (1..=lines).contains(&n)), "{e}: a refusal names its line");
            assert!(!e.message.is_empty());
            return;
        }
    };
    let entries: Vec<_> = conf.entries().collect();
    assert!(entries.len() <= MAX_PLUGINS);
    for (i, e) in entries.iter().enumerate() {
        assert!(check_name(&e.name).is_ok(), "{:?}", e.name);
        assert!(!e.path.is_empty() && e.path.len() <= MAX_PATH, "{:?}", e.path);
        assert!(entries[..i].iter().all(|o| o.name != e.name), "{:?} twice", e.name);
    }
    let written = conf.to_text();
    let again = PluginsConf::parse(&written, file).unwrap_or_else(|e| panic!("cannot read back what was written: {e}"));
    assert_eq!(again, conf, "read back differently:\n{written}");
    assert_eq!(again.to_text(), written);
}
