#![no_main]
//! See `openplc_fuzz_entries::upload_zip`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::upload_zip::run(data));
