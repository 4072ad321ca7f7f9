#![no_main]
//! See `openplc_fuzz_entries::bundle_files`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::bundle_files::run(data));
