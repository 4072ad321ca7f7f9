//! The bytes an unauthenticated peer can put in front of the server's decoders, run the
//! way the server runs them: async-opcua's TCP framing (Hello, Acknowledge, Error, message
//! chunks) with the server's decoding limits, then, for each chunk, the chunk header and
//! security header, the security check of an unsecured channel, and the decoding of the
//! request body into a service request. For the fuzz target `opcua_decode` (the repository's
//! `fuzz/`, whose inputs `cargo test` replays): whatever the bytes, this returns (no panic, bounded
//! memory).

use crate::config::Limits;
use bytes::BytesMut;
use opcua::core::RequestMessage;
use opcua::core::comms::chunker::Chunker;
use opcua::core::comms::secure_channel::{Role, SecureChannel};
use opcua::core::comms::tcp_codec::{Message, TcpCodec};
use opcua::crypto::CertificateStore;
use opcua::sync::RwLock;
use opcua::types::DecodingOptions;
use opcua::types::{ContextOwned, NamespaceMap};
use std::sync::Arc;
use tokio_util::codec::Decoder;

/// What the decoders made of the bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub frames: usize,
    pub hellos: usize,
    pub chunks: usize,
    pub requests: usize,
    /// Where the framing stopped on an error (the server closes the connection there).
    pub framing_error: bool,
}

/// The server's decoding options for `limits` (what `Server::start` configures).
pub fn decoding_options(limits: &Limits) -> DecodingOptions {
    DecodingOptions {
        max_message_size: limits.max_message_size,
        max_chunk_count: limits.max_chunk_count,
        max_string_length: 65_535,
        max_byte_string_length: 65_535,
        max_array_length: 100_000,
        ..Default::default()
    }
}

/// Feeds `data` through the server's decoders as if it arrived on a fresh connection of an
/// unsecured (None) channel.
pub fn decode_untrusted(data: &[u8]) -> Decoded {
    let options = decoding_options(&Limits::default());
    let mut codec = TcpCodec::new(options.clone());
    // A channel without a certificate: what an unauthenticated peer meets first.
    let store = CertificateStore::new(std::path::Path::new("/nonexistent/openplc-opcua-fuzz"));
    let context = ContextOwned::new_default(NamespaceMap::new(), options.clone());
    let mut channel = SecureChannel::new(Arc::new(RwLock::new(store)), Role::Server, Arc::new(RwLock::new(context)));
    channel.set_decoding_options(options);
    let mut buf = BytesMut::from(data);
    let mut out = Decoded::default();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                out.frames += 1;
                match frame {
                    Message::Hello(hello) => {
                        out.hellos += 1;
                        let _ = hello.is_valid_buffer_sizes();
                    }
                    Message::Chunk(chunk) => {
                        out.chunks += 1;
                        let Ok(info) = chunk.chunk_info(&channel) else { continue };
                        let _ = info;
                        let Ok(chunk) = channel.verify_and_remove_security_server(chunk.data.clone()) else { continue };
                        if Chunker::decode::<RequestMessage>(&[chunk], &channel, None).is_ok() {
                            out.requests += 1;
                        }
                    }
                    _ => {}
                }
            }
            Ok(None) => return out,
            Err(_) => {
                out.framing_error = true;
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real Hello (as asyncua sends it) is one frame, one Hello.
    #[test]
    fn a_hello_decodes() {
        let url = b"opc.tcp://127.0.0.1:4840/openplc/opcua";
        let mut hello = b"HELF".to_vec();
        hello.extend_from_slice(&((32 + url.len()) as u32).to_le_bytes());
        for v in [0u32, 65536, 65536, 0, 0] {
            hello.extend_from_slice(&v.to_le_bytes());
        }
        hello.extend_from_slice(&(url.len() as i32).to_le_bytes());
        hello.extend_from_slice(url);
        assert_eq!(decode_untrusted(&hello), Decoded { frames: 1, hellos: 1, ..Default::default() });
        let mut cut = hello.clone();
        cut.truncate(20);
        assert_eq!(decode_untrusted(&cut).frames, 0, "half a frame waits for the rest");
        let mut huge = hello;
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_untrusted(&huge).frames, 0);
    }
}
