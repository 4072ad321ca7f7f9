//! Replays the fuzz corpus (`fuzz/corpus/decode`: real client traffic captured from asyncua
//! and what libFuzzer kept) through the server's decoders: no input may panic, and the real
//! traffic must still decode into requests.

use openplc_opcua::wire::decode_untrusted;
use std::path::Path;

#[test]
fn the_fuzz_corpus_decodes_without_panicking() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut files = 0;
    let mut requests = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus is in the repository") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        requests += decode_untrusted(&data).requests;
        files += 1;
    }
    assert!(files >= 20, "{files} corpus files");
    // The captured sessions hold CreateSession, Browse, Read, Write, CreateSubscription, ...
    assert!(requests >= 10, "only {requests} requests decoded from real traffic");
}

#[test]
fn truncations_and_bit_flips_of_real_traffic_are_harmless() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let data = std::fs::read(entry.expect("entry").path()).expect("read");
        for cut in (0..data.len()).step_by(7) {
            decode_untrusted(&data[..cut]);
        }
        for _ in 0..200 {
            let mut d = data.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if !d.is_empty() {
                    let i = (seed as usize) % d.len();
                    d[i] ^= (seed >> 32) as u8 | 1;
                }
            }
            decode_untrusted(&d);
        }
    }
}
