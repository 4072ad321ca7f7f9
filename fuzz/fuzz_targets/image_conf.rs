#![no_main]
//! See `openplc_fuzz_entries::image_conf`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::image_conf::run(data));
