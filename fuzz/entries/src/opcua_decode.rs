//! `opcua_decode`: the bytes an unauthenticated peer can put in front of the OPC-UA
//! server's decoders, run as the server runs them (`openplc_opcua::wire::decode_untrusted`:
//! async-opcua's TCP framing with the server's limits, each chunk's header and security
//! header on an unsecured channel, the request body into a service request).
//!
//! Input: the bytes of one connection. Checked besides "no panic": every frame decoded
//! stood on at least its 8-byte header, a Hello or a chunk is a frame, and a request came
//! out of a chunk.
//!
//! Seeds (`fuzz/seeds/opcua_decode/asyncua-*`): connections captured from asyncua sessions
//! against the server, kept as they were (`make_seeds` does not write them).

use openplc_opcua::wire::decode_untrusted;

/// The TCP frame header: message type, chunk type, size.
const FRAME_HEADER: usize = 8;

pub fn run(data: &[u8]) {
    let d = decode_untrusted(data);
    assert!(d.frames * FRAME_HEADER <= data.len(), "{} frames from {} bytes", d.frames, data.len());
    assert!(d.hellos + d.chunks <= d.frames, "{d:?}");
    assert!(d.requests <= d.chunks, "{d:?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn seeds() -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/opcua_decode");
        let mut files: Vec<_> = std::fs::read_dir(&dir).expect("fuzz/seeds/opcua_decode").flatten().collect();
        files.sort_by_key(|e| e.path());
        files.into_iter().map(|e| std::fs::read(e.path()).expect("seed")).collect()
    }

    /// The seeds are traffic captured from asyncua sessions (Hello, OpenSecureChannel,
    /// CreateSession, Browse, Read, Write, CreateSubscription, ...): they must still decode
    /// into requests, or the target fuzzes only the framing.
    #[test]
    fn real_traffic_decodes_into_requests() {
        let seeds = seeds();
        assert!(seeds.len() >= 20, "{} seeds", seeds.len());
        let requests: usize = seeds.iter().map(|s| decode_untrusted(s).requests).sum();
        assert!(requests >= 10, "only {requests} requests decoded from real traffic");
    }

    /// Every truncation (in steps of 7) and 200 four-byte mutations of each seed.
    #[test]
    fn truncations_and_bit_flips_of_real_traffic_hold_the_invariants() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for data in seeds() {
            for cut in (0..data.len()).step_by(7) {
                run(&data[..cut]);
            }
            for _ in 0..200 {
                let mut d = data.clone();
                for _ in 0..4 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let i = (seed as usize) % d.len().max(1);
                    if let Some(b) = d.get_mut(i) {
                        *b ^= (seed >> 32) as u8 | 1;
                    }
                }
                run(&d);
            }
        }
    }
}
