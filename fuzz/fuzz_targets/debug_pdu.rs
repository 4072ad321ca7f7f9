#![no_main]
//! See `openplc_fuzz_entries::debug_pdu`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::debug_pdu::run(data));
