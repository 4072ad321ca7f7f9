#![no_main]
//! See `openplc_fuzz_entries::s7_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::s7_request::run(data));
