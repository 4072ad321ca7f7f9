#![no_main]
//! See `openplc_fuzz_entries::modbus_tcp`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_fuzz_entries::modbus_tcp::run(data));
