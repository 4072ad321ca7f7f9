#![no_main]
//! See `openplc_fuzz_entries::monitor_input`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::monitor_input::run(data));
