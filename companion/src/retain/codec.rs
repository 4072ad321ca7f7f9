//! The RETAIN blob: rt-core's values of one program with what identifies them (count,
//! layout hash, program MD5) and a CRC-32, in one byte string. The file store writes it as
//! the file; a plugin store keeps it as an opaque blob.
//!
//! ```text
//! "OPLCRTN1" | version u32 = 1 | count u32 | layout_hash u64 | md5 [32] | len u32 | crc32 u32 | data[len]
//! ```
//! (little-endian)

use shared_abi::retain::{RETAIN_BYTES, RetainImage};

const MAGIC: &[u8; 8] = b"OPLCRTN1";
pub const HEADER_BYTES: usize = 8 + 4 + 4 + 8 + 32 + 4 + 4;
/// The largest blob: header and the most values rt-core keeps.
pub const MAX_BLOB: usize = HEADER_BYTES + RETAIN_BYTES;

/// Why a blob is not given back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    #[error("not a RETAIN blob")]
    NotRetain,
    #[error("format version {0}")]
    Version(u32),
    #[error("{found} bytes of values where the header says {declared}")]
    Length { found: usize, declared: usize },
    #[error("checksum mismatch")]
    Checksum,
}

pub fn encode(image: &RetainImage) -> Vec<u8> {
    let data = image.bytes();
    let mut out = Vec::with_capacity(HEADER_BYTES + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&image.count.to_le_bytes());
    out.extend_from_slice(&image.layout_hash.to_le_bytes());
    out.extend_from_slice(&image.md5);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The image a blob holds, marked present (`program_gen` 1) for staging.
pub fn decode(bytes: &[u8]) -> Result<Box<RetainImage>, BlobError> {
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err(BlobError::NotRetain);
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    if u32_at(8) != 1 {
        return Err(BlobError::Version(u32_at(8)));
    }
    let len = u32_at(56) as usize;
    let data = &bytes[HEADER_BYTES..];
    if len > RETAIN_BYTES || data.len() != len {
        return Err(BlobError::Length { found: data.len(), declared: len });
    }
    if crc32(data) != u32_at(60) {
        return Err(BlobError::Checksum);
    }
    let mut image: Box<RetainImage> = bytemuck::zeroed_box();
    image.program_gen = 1;
    image.count = u32_at(12);
    image.layout_hash = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or([0; 8]));
    image.md5.copy_from_slice(&bytes[24..56]);
    image.len = len as u32;
    image.data[..len].copy_from_slice(data);
    Ok(image)
}

/// CRC-32 (IEEE 802.3, reflected), bit by bit: at most 64 KiB every few seconds.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn image(values: &[u8]) -> Box<RetainImage> {
        let mut i: Box<RetainImage> = bytemuck::zeroed_box();
        i.program_gen = 3;
        i.count = 2;
        i.layout_hash = 0x1234_5678_9abc_def0;
        i.md5.copy_from_slice(b"0123456789abcdef0123456789abcdef");
        i.len = values.len() as u32;
        i.data[..values.len()].copy_from_slice(values);
        i
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn blobs_round_trip_and_damage_is_named() {
        let blob = encode(&image(&[1, 2, 3]));
        assert_eq!(blob.len(), HEADER_BYTES + 3);
        let back = decode(&blob).unwrap();
        assert_eq!((back.bytes(), back.count, back.program_gen), (&[1, 2, 3][..], 2, 1));
        let mut bad = blob.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&bad).err(), Some(BlobError::Checksum));
        assert_eq!(decode(&blob[..10]).err(), Some(BlobError::NotRetain));
        assert_eq!(decode(&[]).err(), Some(BlobError::NotRetain));
        assert_eq!(decode(&blob[..blob.len() - 1]).err(), Some(BlobError::Length { found: 2, declared: 3 }));
    }
}
