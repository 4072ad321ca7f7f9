//! The Modbus server's address map: which image point each coil, discrete input, input
//! register and holding register is, as upstream lays them out (editor reference §4.1):
//!
//! | table | addresses from 0 | image |
//! |---|---|---|
//! | coils | `qx_bits`, then `mx_bits` | `%QX0.0…`, then `%MX0.0…` (bit n ↔ byte n/8, bit n%8) |
//! | discrete inputs | `ix_bits` | `%IX0.0…` |
//! | input registers | `iw_count` | `%IW0…` |
//! | holding registers | `qw_count`, `mw_count`, `2·md_count`, `4·ml_count` | `%QW…`, `%MW…`, `%MD…` (2 registers each), `%ML…` (4 each) |
//!
//! A `%MD`/`%ML` value spans 2/4 consecutive registers. [`WordOrder::HighWordFirst`] (the
//! default, upstream's and OpenPLC v3's) puts the most significant word at the lowest
//! address, which is also Modbus's own big-endian convention inside a register, so a
//! client reading "32-bit big-endian" gets the value without swapping.

use shared_abi::image::{Area, BITS_PER_BYTE, IecAddress, InputImage, OutputImage, TABLE_CAPACITY, Width};
use shared_abi::sizes::{ImageSizes, Table};

/// The Editor's default number of coils and discrete inputs (`%QX0.0` … `%QX1023.7`).
pub const IMAGE_BITS: u32 = (shared_abi::sizes::LEGACY_TABLE_ELEMENTS as usize * BITS_PER_BYTE) as u32;
/// The Editor's default number of registers per segment.
pub const IMAGE_WORDS: u32 = shared_abi::sizes::LEGACY_TABLE_ELEMENTS;
/// The most bits a bit segment can map: the room of a bit table.
pub const MAX_BITS: u32 = (TABLE_CAPACITY * BITS_PER_BYTE) as u32;
/// The most elements a word/dword/lword segment can map: the room of a table.
pub const MAX_WORDS: u32 = TABLE_CAPACITY as u32;

/// Order of the 16-bit words of a `%MD`/`%ML` value across consecutive registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WordOrder {
    /// Most significant word at the lowest register address (upstream's default).
    #[default]
    HighWordFirst,
    /// Least significant word at the lowest register address.
    LowWordFirst,
}

impl WordOrder {
    /// The 16-bit word at position `pos` (0 = lowest register address) of a value of
    /// `words` words.
    pub fn word(self, value: u64, pos: u32, words: u32) -> u16 {
        let shift = match self {
            WordOrder::HighWordFirst => 16 * (words - 1 - pos),
            WordOrder::LowWordFirst => 16 * pos,
        };
        (value >> shift) as u16
    }

    /// `value` with the word at position `pos` replaced by `word`.
    pub fn with_word(self, value: u64, pos: u32, words: u32, word: u16) -> u64 {
        let shift = match self {
            WordOrder::HighWordFirst => 16 * (words - 1 - pos),
            WordOrder::LowWordFirst => 16 * pos,
        };
        (value & !(0xFFFFu64 << shift)) | ((word as u64) << shift)
    }
}

/// How many points of each kind the server exposes (already fitted to the image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressMap {
    pub qx_bits: u32,
    pub mx_bits: u32,
    pub ix_bits: u32,
    pub iw_count: u32,
    pub qw_count: u32,
    pub mw_count: u32,
    pub md_count: u32,
    pub ml_count: u32,
    pub word_order: WordOrder,
}

impl Default for AddressMap {
    /// The Editor's defaults.
    fn default() -> Self {
        AddressMap {
            qx_bits: IMAGE_BITS,
            mx_bits: 0,
            ix_bits: IMAGE_BITS,
            iw_count: IMAGE_WORDS,
            qw_count: IMAGE_WORDS,
            mw_count: IMAGE_WORDS,
            md_count: IMAGE_WORDS,
            ml_count: IMAGE_WORDS,
            word_order: WordOrder::HighWordFirst,
        }
    }
}

/// What one holding register is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// A whole `%QW`/`%MW` point.
    Word(IecAddress),
    /// Word `pos` (0 = lowest register address) of a `%MD` (`words` = 2) or `%ML` (4).
    Part { addr: IecAddress, pos: u32, words: u32 },
}

fn addr(area: Area, width: Width, index: u32, bit: u32) -> IecAddress {
    // Callers pass indices below the fitted counts, which never exceed the image, and never
    // %MB; the fallback (checked at compile time) is only there so nothing can panic.
    const FALLBACK: IecAddress = match IecAddress::new(Area::Output, Width::Bit, 0, 0) {
        Ok(a) => a,
        Err(_) => panic!("%QX0.0 is a valid address"),
    };
    IecAddress::new(area, width, index.min(u16::MAX as u32) as u16, bit.min(u8::MAX as u32) as u8).unwrap_or(FALLBACK)
}

impl AddressMap {
    pub fn coils(&self) -> u32 {
        self.qx_bits + self.mx_bits
    }

    pub fn discrete_inputs(&self) -> u32 {
        self.ix_bits
    }

    pub fn input_registers(&self) -> u32 {
        self.iw_count
    }

    pub fn holding_registers(&self) -> u32 {
        self.qw_count + self.mw_count + 2 * self.md_count + 4 * self.ml_count
    }

    /// The point behind coil `n` (`n < coils()`).
    pub fn coil(&self, n: u32) -> IecAddress {
        if n < self.qx_bits {
            addr(Area::Output, Width::Bit, n / 8, n % 8)
        } else {
            let m = n - self.qx_bits;
            addr(Area::Memory, Width::Bit, m / 8, m % 8)
        }
    }

    /// The point behind holding register `n` (`n < holding_registers()`).
    pub fn holding(&self, n: u32) -> Holding {
        if n < self.qw_count {
            return Holding::Word(addr(Area::Output, Width::Word, n, 0));
        }
        let n = n - self.qw_count;
        if n < self.mw_count {
            return Holding::Word(addr(Area::Memory, Width::Word, n, 0));
        }
        let n = n - self.mw_count;
        if n < 2 * self.md_count {
            return Holding::Part { addr: addr(Area::Memory, Width::DWord, n / 2, 0), pos: n % 2, words: 2 };
        }
        let n = n - 2 * self.md_count;
        Holding::Part { addr: addr(Area::Memory, Width::LWord, n / 4, 0), pos: n % 4, words: 4 }
    }

    /// Holding register `n` as read from `image`.
    pub fn read_holding(&self, image: &OutputImage, n: u32) -> u16 {
        match self.holding(n) {
            Holding::Word(a) => image.get(a).unwrap_or(0) as u16,
            Holding::Part { addr, pos, words } => self.word_order.word(image.get(addr).unwrap_or(0), pos, words),
        }
    }

    /// Coil `n` as read from `image`.
    pub fn read_coil(&self, image: &OutputImage, n: u32) -> bool {
        image.get(self.coil(n)).unwrap_or(0) != 0
    }

    /// Whether coil `n` is inside the running program's tables.
    pub fn coil_inside(&self, sizes: &ImageSizes, n: u32) -> bool {
        sizes.contains(self.coil(n))
    }

    /// Whether holding register `n` is inside the running program's tables.
    pub fn holding_inside(&self, sizes: &ImageSizes, n: u32) -> bool {
        match self.holding(n) {
            Holding::Word(a) | Holding::Part { addr: a, .. } => sizes.contains(a),
        }
    }

    /// Whether discrete input `n` is inside the running program's `%IX` table.
    pub fn discrete_inside(sizes: &ImageSizes, n: u32) -> bool {
        ((n / 8) as usize) < sizes.get(Table::BoolInput)
    }

    /// Whether input register `n` is inside the running program's `%IW` table.
    pub fn input_register_inside(sizes: &ImageSizes, n: u32) -> bool {
        (n as usize) < sizes.get(Table::IntInput)
    }

    /// Discrete input `n` as read from `inputs`.
    pub fn read_discrete(inputs: &InputImage, n: u32) -> bool {
        inputs.bool_input.get((n / 8) as usize).is_some_and(|b| b[(n % 8) as usize] != 0)
    }

    /// Input register `n` as read from `inputs`.
    pub fn read_input_register(inputs: &InputImage, n: u32) -> u16 {
        inputs.int_input.get(n as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> IecAddress {
        IecAddress::parse(text).unwrap()
    }

    #[test]
    fn default_map_matches_upstream_layout() {
        let m = AddressMap::default();
        assert_eq!(m.coils(), 8192);
        assert_eq!(m.coil(0), p("%QX0.0"));
        assert_eq!(m.coil(13), p("%QX1.5"));
        assert_eq!(m.coil(8191), p("%QX1023.7"));
        assert_eq!(m.holding_registers(), 8192);
        assert_eq!(m.holding(0), Holding::Word(p("%QW0")));
        assert_eq!(m.holding(1023), Holding::Word(p("%QW1023")));
        assert_eq!(m.holding(1024), Holding::Word(p("%MW0")));
        assert_eq!(m.holding(2047), Holding::Word(p("%MW1023")));
        assert_eq!(m.holding(2048), Holding::Part { addr: p("%MD0"), pos: 0, words: 2 });
        assert_eq!(m.holding(2051), Holding::Part { addr: p("%MD1"), pos: 1, words: 2 });
        assert_eq!(m.holding(4095), Holding::Part { addr: p("%MD1023"), pos: 1, words: 2 });
        assert_eq!(m.holding(4096), Holding::Part { addr: p("%ML0"), pos: 0, words: 4 });
        assert_eq!(m.holding(8191), Holding::Part { addr: p("%ML1023"), pos: 3, words: 4 });
    }

    #[test]
    fn memory_bits_follow_output_bits() {
        let m = AddressMap { qx_bits: 16, mx_bits: 16, ..AddressMap::default() };
        assert_eq!(m.coils(), 32);
        assert_eq!(m.coil(15), p("%QX1.7"));
        assert_eq!(m.coil(16), p("%MX0.0"));
        assert_eq!(m.coil(25), p("%MX1.1"));
    }

    #[test]
    fn smaller_segments_shift_the_ones_after_them() {
        let m = AddressMap { qw_count: 10, mw_count: 5, md_count: 2, ml_count: 1, ..AddressMap::default() };
        assert_eq!(m.holding_registers(), 10 + 5 + 4 + 4);
        assert_eq!(m.holding(10), Holding::Word(p("%MW0")));
        assert_eq!(m.holding(15), Holding::Part { addr: p("%MD0"), pos: 0, words: 2 });
        assert_eq!(m.holding(19), Holding::Part { addr: p("%ML0"), pos: 0, words: 4 });
    }

    #[test]
    fn word_orders() {
        let v = 0x1122_3344_5566_7788u64;
        let hi = WordOrder::HighWordFirst;
        let lo = WordOrder::LowWordFirst;
        assert_eq!((0..4).map(|i| hi.word(v, i, 4)).collect::<Vec<_>>(), [0x1122, 0x3344, 0x5566, 0x7788]);
        assert_eq!((0..4).map(|i| lo.word(v, i, 4)).collect::<Vec<_>>(), [0x7788, 0x5566, 0x3344, 0x1122]);
        assert_eq!(hi.word(0xAABB_CCDD, 0, 2), 0xAABB);
        assert_eq!(hi.with_word(0xAABB_CCDD, 1, 2, 0x1234), 0xAABB_1234);
        assert_eq!(lo.with_word(0xAABB_CCDD, 1, 2, 0x1234), 0x1234_CCDD);
        assert_eq!(hi.with_word(v, 0, 4, 0), 0x0000_3344_5566_7788);
    }
}
