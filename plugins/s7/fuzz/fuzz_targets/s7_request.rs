//! The whole path a client's bytes take: TPKT framing, COTP, the S7 PDU parser and the
//! request handler over an in-memory image, replies checked for shape.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| openplc_s7::fuzzing::run(data));
