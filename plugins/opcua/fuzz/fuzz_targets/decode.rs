//! Raw bytes from an unauthenticated peer through the server's decoders (TCP framing,
//! chunk and security headers, request bodies). Run: `cargo +nightly fuzz run decode`
//! in plugins/opcua/fuzz (the corpus in `corpus/decode` is replayed by `cargo test`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = openplc_opcua::wire::decode_untrusted(data);
});
