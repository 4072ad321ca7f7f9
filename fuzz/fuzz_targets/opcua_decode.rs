#![no_main]
//! See `openplc_fuzz_entries::opcua_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::opcua_decode::run(data));
