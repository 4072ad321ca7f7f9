//! RETAIN variables' values as they cross the shared memory: rt-core publishes the running
//! program's (`SharedMemory::retain_saved`), the companion stores them and, before a warm
//! load, hands them back (`SharedMemory::retain_restore`) for rt-core to put into the
//! freshly initialised program before its first scan.

use bytemuck::{Pod, Zeroable};

/// Most bytes of RETAIN values a program may have (upstream's retain blob limit).
pub const RETAIN_BYTES: usize = 64 * 1024;

/// The RETAIN variables of one program, packed in `retain_var` order, each `var_size`
/// bytes as read from `var_addr`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct RetainImage {
    /// Generation of the program the values were taken from (0: nothing here).
    pub program_gen: u32,
    /// How many RETAIN variables.
    pub count: u32,
    /// `layout_hash` of the program: values are only given back to a program with the
    /// same hash and MD5.
    pub layout_hash: u64,
    /// rt-core's loop counter when taken.
    pub cycle: u64,
    /// The program's MD5 as lower-case hex, zeros when it has none.
    pub md5: [u8; 32],
    /// Bytes used in `data`.
    pub len: u32,
    pub _reserved: u32,
    pub data: [u8; RETAIN_BYTES],
}

impl RetainImage {
    pub fn bytes(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(RETAIN_BYTES)]
    }
}

/// FNV-1a over each RETAIN variable's (debug index, size, kind): two builds whose RETAIN
/// variables differ in number, order, position or type do not share values.
pub fn layout_hash(vars: impl Iterator<Item = (u32, u32, u32)>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |v: u32| {
        for b in v.to_le_bytes() {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let mut count = 0u32;
    for (index, size, kind) in vars {
        feed(index);
        feed(size);
        feed(kind);
        count += 1;
    }
    feed(count);
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_hash_sees_order_size_and_kind() {
        let a = layout_hash([(3, 4, 0), (7, 2, 0)].into_iter());
        assert_eq!(a, layout_hash([(3, 4, 0), (7, 2, 0)].into_iter()));
        assert_ne!(a, layout_hash([(7, 2, 0), (3, 4, 0)].into_iter()));
        assert_ne!(a, layout_hash([(3, 8, 0), (7, 2, 0)].into_iter()));
        assert_ne!(a, layout_hash([(3, 4, 1), (7, 2, 0)].into_iter()));
        assert_ne!(layout_hash([].into_iter()), layout_hash([(0, 0, 0)].into_iter()));
    }
}
