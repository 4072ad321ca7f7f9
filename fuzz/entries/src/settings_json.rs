//! `settings_json`: `<data dir>/settings.json` as the companion reads it at start
//! (`companion::settings::Settings::resolve` with no command-line options).

use crate::support::scratch_dir;
use openplc_companion::settings::{Options, SETTINGS_FILE, Settings};
use std::time::Duration;

pub fn run(data: &[u8]) {
    let scratch = scratch_dir();
    let dir = scratch.path().to_path_buf();
    std::fs::write(dir.join(SETTINGS_FILE), data).unwrap_or_else(|e| panic!("fuzz harness: {e}"));
    let opts = Options { data_dir: Some(dir.clone()), ..Options::default() };
    match Settings::resolve(&opts) {
        Ok(s) => {
            assert_eq!(s.data_dir, dir);
            assert_eq!(s.cert.is_some(), s.key.is_some(), "a certificate comes with its key");
            for p in s.cert.iter().chain(&s.key) {
                assert!(p.is_absolute(), "{} is resolved against the data directory", p.display());
            }
            assert!(s.retain_flush.is_none_or(|d| d >= Duration::from_secs(1) && d <= Duration::from_secs(3600)));
        }
        Err(e) => assert!(!format!("{e:#}").is_empty()),
    }
}
