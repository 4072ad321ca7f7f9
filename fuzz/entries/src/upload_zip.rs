//! `upload_zip`: an uploaded `program.zip` as the build pipeline takes it: the safe unpacker
//! (`companion::program::unzip::extract`), bundle detection (`openplc_builder::detect`,
//! `program_md5`), the per-upload plugin rule (`conf/<name>.json` → `plugins.conf`,
//! `openplc_plugin_host::conf::apply_upload`) and the Modbus and S7 configurations it
//! enables (`openplc_modbus::Config::from_conf_dir`, `openplc_s7::load`).

use crate::support::scratch_dir;
use openplc_companion::program::unzip::{self, MAX_FILE_BYTES, MAX_TOTAL_BYTES};
use std::fs;
use std::path::Path;

/// A `plugins.conf` naming one plugin the demo bundle's `conf/` enables and one it does not.
const PLUGINS_CONF: &str = "# test plugins\nmodbus_slave,./none.so,0,1\nother,./other.py,1,0,,venvs/other\n";

pub fn run(data: &[u8]) {
    let scratch = scratch_dir();
    let root = scratch.path();
    let zip = root.join("upload.zip");
    write(&zip, data);
    let src = root.join("src");
    let extracted = unzip::extract(&zip, &src);
    assert_only(root, &["upload.zip", "src"], "the unpacker writes only inside its destination");
    let extracted = match extracted {
        Ok(e) => e,
        Err(e) => {
            assert!(!e.to_string().is_empty(), "a refused upload says why");
            return;
        }
    };
    let (files, bytes) = walk(&src);
    assert_eq!((files, bytes), (extracted.files, extracted.bytes), "the report matches what was written");
    assert!(bytes <= MAX_TOTAL_BYTES);

    match openplc_builder::detect(&src) {
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().is_empty(), "a bundle that is not one says why"),
    }
    if let Some(md5) = openplc_builder::program_md5(&src) {
        assert!(md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{md5:?}");
    }

    let data_dir = root.join("data");
    mkdir(&data_dir);
    let conf_path = data_dir.join("plugins.conf");
    write(&conf_path, PLUGINS_CONF.as_bytes());
    let uploaded = match openplc_plugin_host::conf::apply_upload(&conf_path, &src) {
        Ok(u) => u,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let store = data_dir.join(openplc_plugin_host::conf::CONF_DIR);
    for u in &uploaded {
        assert!(openplc_plugin_host::conf::check_name(&u.name).is_ok(), "{:?}", u.name);
        assert!(u.config_path.starts_with(&store), "{} escapes {}", u.config_path.display(), store.display());
    }
    let conf = openplc_plugin_host::PluginsConf::load(&conf_path)
        .unwrap_or_else(|e| panic!("apply_upload wrote a plugins.conf it cannot read back: {e}"));
    for entry in conf.entries() {
        assert_eq!(entry.enabled, uploaded.iter().any(|u| u.name == entry.name), "{} enabled by the rule", entry.name);
    }
    if store.is_dir() {
        match openplc_modbus::Config::from_conf_dir(&store) {
            Ok(cfg) => {
                if let Some(server) = cfg.server {
                    crate::modbus_conf::check_server(server);
                }
                if let Some(master) = &cfg.master {
                    crate::modbus_conf::check_master(master);
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        if let Err(e) = openplc_s7::load(&store) {
            assert!(!e.to_string().is_empty(), "a refused s7comm.json says why");
        }
    }
}

/// Regular files and their total size under `dir`; no symbolic link, no file over the limit.
fn walk(dir: &Path) -> (usize, u64) {
    let (mut files, mut bytes) = (0, 0);
    let Ok(items) = fs::read_dir(dir) else { return (0, 0) };
    for item in items.flatten() {
        let path = item.path();
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!meta.file_type().is_symlink(), "{} is a symbolic link", path.display());
        if meta.is_dir() {
            let (f, b) = walk(&path);
            files += f;
            bytes += b;
        } else {
            assert!(meta.is_file(), "{} is neither a file nor a folder", path.display());
            assert!(meta.len() <= MAX_FILE_BYTES, "{} is {} bytes", path.display(), meta.len());
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

/// `dir` holds only `names` (those that exist).
fn assert_only(dir: &Path, names: &[&str], why: &str) {
    for item in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = item.file_name();
        assert!(names.iter().any(|n| name == *n), "{why}: found {name:?}");
    }
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("fuzz harness: {}: {e}", path.display()));
}

fn mkdir(path: &Path) {
    fs::create_dir(path).unwrap_or_else(|e| panic!("fuzz harness: {}: {e}", path.display()));
}
