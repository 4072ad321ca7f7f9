#![no_main]
//! See `openplc_fuzz_entries::debug_values`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::debug_values::run(data));
