#![no_main]
//! See `openplc_fuzz_entries::shm_messages`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::shm_messages::run(data));
