#![no_main]
//! See `openplc_fuzz_entries::settings_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::settings_json::run(data));
