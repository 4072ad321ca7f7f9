#![no_main]
//! See `openplc_fuzz_entries::rest_bodies`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::rest_bodies::run(data));
