//! Which native plugin is the RETAIN store, and its hooks called the way upstream's protocol
//! says: the first enabled native plugin of plugins.conf exporting both `retain_save` and
//! `retain_load` wins; one with only `retain_save` is no store; `retain_flush` follows every
//! save when exported; the hooks work without `init` having run.

mod support;

use openplc_plugin_host::{RetainHookError, RetainPlugin};
use std::path::Path;

/// A store keeping one blob per identity in memory; counts its flushes.
const STORE: &str = r#"
#include <stdint.h>
#include <string.h>
static char id[64]; static uint16_t id_len;
static uint8_t blob[65536]; static uint16_t blob_len;
static char blob_id[64]; static uint16_t blob_id_len;
static int flushes;
int init(void *a) { (void)a; return 0; }
int retain_load(const char *md5, uint16_t n, uint8_t *out, uint16_t cap, uint16_t *out_len) {
    memcpy(id, md5, n); id_len = n; *out_len = 0;
    if (n != blob_id_len || memcmp(md5, blob_id, n) != 0) return 0;
    if (blob_len > cap) { *out_len = blob_len; return 7; }
    memcpy(out, blob, blob_len); *out_len = blob_len; return 0;
}
int retain_save(const uint8_t *b, uint16_t n) {
    if (n == 3 && b[0] == 'b' && b[1] == 'a' && b[2] == 'd') return 5;
    memcpy(blob, b, n); blob_len = n; memcpy(blob_id, id, id_len); blob_id_len = id_len; return 0;
}
int retain_flush(void) { return flushes++ < 100 ? 0 : 9; }
"#;

const SAVE_ONLY: &str = r#"
#include <stdint.h>
int init(void *a) { (void)a; return 0; }
int retain_save(const uint8_t *b, uint16_t n) { (void)b; (void)n; return 0; }
"#;

fn library(dir: &Path, name: &str, source: &str) -> std::path::PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    support::build_so(dir, &format!("lib{name}.so"), &[c])
}

#[test]
fn the_first_enabled_native_plugin_with_both_hooks_is_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let half = library(dir.path(), "half", SAVE_ONLY);
    let store = library(dir.path(), "store", STORE);
    let conf = dir.path().join("plugins.conf");
    let write = |text: String| std::fs::write(&conf, text).unwrap();

    write(format!("half,{},1,1\nstore,{},0,1\n", half.display(), store.display()));
    assert!(RetainPlugin::find(&conf).is_none(), "the store is disabled; a save-only plugin is no store");
    write(format!("half,{},1,1\nstore,{},1,1\nsecond,{},1,1\n", half.display(), store.display(), store.display()));
    let plugin = RetainPlugin::find(&conf).expect("the store");
    assert_eq!(plugin.name(), "store", "the first one that offers both hooks");
    write("# nothing\n".into());
    assert!(RetainPlugin::find(&conf).is_none());

    // Never initialised: the hooks still work. Values are handed back for their identity only.
    let md5 = b"0123456789abcdef0123456789abcdef";
    assert_eq!(plugin.load(md5).unwrap(), b"");
    plugin.save(b"values").unwrap();
    assert_eq!(plugin.load(md5).unwrap(), b"values");
    assert_eq!(plugin.load(b"ffffffffffffffffffffffffffffffff").unwrap(), b"", "another program's");
    assert_eq!(plugin.save(b"bad"), Err(RetainHookError::Failed { hook: "retain_save", code: 5 }));
    assert!(plugin.save(&vec![0u8; 70_000]).is_err(), "more than a uint16_t length");
}
