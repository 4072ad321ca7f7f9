//! The process image: OpenPLC's I/O and memory areas as plain value arrays.
//!
//! Every area has room for `TABLE_CAPACITY` (65 536) elements, the most a located
//! variable's 16-bit index can reach (`%IX0.0` … `%IX65535.7`, `%IW0` … `%IW65535`, and so
//! on). How many of them a program uses is its own [`crate::sizes::ImageSizes`]: every copy,
//! publication and protocol map stops there. Bits are stored one per byte (`IEC_BOOL`), exactly as
//! MatIEC and STruC++ programs store them, so a program's located variables can live
//! directly in these arrays.
//!
//! Inputs and outputs+memory are separate structs because they have separate writers:
//! inputs come from the companion, outputs and memory from rt-core's scan.

use crate::sizes::{ImageSizes, Table};
use bytemuck::{Pod, Zeroable};
use core::fmt;
use serde::{Deserialize, Serialize};

/// Room for elements in each area of the layout: 65 536, the reach of a located
/// variable's 16-bit index. A program uses a prefix of each (`sizes::ImageSizes`).
pub const TABLE_CAPACITY: usize = 65_536;
/// Bits per `%IX`/`%QX`/`%MX` byte address.
pub const BITS_PER_BYTE: usize = 8;

/// The input areas (`%IX`, `%IB`, `%IW`, `%ID`, `%IL`). Written by the companion.
///
/// Field order puts the widest elements first so the struct has no padding.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct InputImage {
    pub lint_input: [u64; TABLE_CAPACITY],
    pub dint_input: [u32; TABLE_CAPACITY],
    pub int_input: [u16; TABLE_CAPACITY],
    pub byte_input: [u8; TABLE_CAPACITY],
    pub bool_input: [[u8; BITS_PER_BYTE]; TABLE_CAPACITY],
}

/// The output and memory areas (`%QX %QB %QW %QD %QL`, `%MX %MW %MD %ML`). Written by rt-core.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct OutputImage {
    pub lint_output: [u64; TABLE_CAPACITY],
    pub lint_memory: [u64; TABLE_CAPACITY],
    pub dint_output: [u32; TABLE_CAPACITY],
    pub dint_memory: [u32; TABLE_CAPACITY],
    pub int_output: [u16; TABLE_CAPACITY],
    pub int_memory: [u16; TABLE_CAPACITY],
    pub byte_output: [u8; TABLE_CAPACITY],
    pub bool_output: [[u8; BITS_PER_BYTE]; TABLE_CAPACITY],
    pub bool_memory: [[u8; BITS_PER_BYTE]; TABLE_CAPACITY],
}

/// A whole image: what a program's located variables are bound to (`oplc_image_t` in C).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct Image {
    pub inputs: InputImage,
    pub outputs: OutputImage,
}

const _: () = {
    assert!(core::mem::size_of::<InputImage>() == 23 * TABLE_CAPACITY);
    assert!(core::mem::size_of::<OutputImage>() == 45 * TABLE_CAPACITY);
    assert!(core::mem::size_of::<Image>() == 68 * TABLE_CAPACITY);
    assert!(core::mem::align_of::<Image>() == 8);
};

/// The three IEC 61131-3 location prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Area {
    Input = 0,
    Output = 1,
    Memory = 2,
}

/// The IEC 61131-3 size prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Width {
    Bit = 0,
    Byte = 1,
    Word = 2,
    DWord = 3,
    LWord = 4,
}

impl Width {
    /// Size of one element in bytes (a bit is stored in one byte).
    pub const fn bytes(self) -> usize {
        match self {
            Width::Bit | Width::Byte => 1,
            Width::Word => 2,
            Width::DWord => 4,
            Width::LWord => 8,
        }
    }

    /// Largest value an element holds.
    pub const fn max_value(self) -> u64 {
        match self {
            Width::Bit => 1,
            Width::Byte => u8::MAX as u64,
            Width::Word => u16::MAX as u64,
            Width::DWord => u32::MAX as u64,
            Width::LWord => u64::MAX,
        }
    }
}

/// A directly represented variable such as `%IX0.3`, `%QW12` or `%MD4`.
///
/// Always in range: the fields are private, every constructor checks them, and decoding
/// (`serde`, e.g. a write taken from the shared memory) goes through the same check, so an
/// address that names no point of the image cannot be built or decoded, and indexing the
/// image with one never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawIecAddress")]
pub struct IecAddress {
    area: Area,
    width: Width,
    /// Element index (the byte number for bits); every `u16` is inside the layout.
    index: u16,
    /// Bit number for `Width::Bit`, always 0 otherwise.
    bit: u8,
}

/// An address as it arrives on the wire, before its range is checked.
#[derive(Deserialize)]
struct RawIecAddress {
    area: Area,
    width: Width,
    index: u16,
    bit: u8,
}

impl TryFrom<RawIecAddress> for IecAddress {
    type Error = AddressError;
    fn try_from(raw: RawIecAddress) -> Result<Self, AddressError> {
        IecAddress::new(raw.area, raw.width, raw.index, raw.bit)
    }
}

/// Why a location string or value does not name a point of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Not of the form `%<I|Q|M><X|B|W|D|L><index>[.<bit>]`.
    Syntax,
    /// The index is not below `TABLE_CAPACITY`, or the bit not below 8.
    OutOfRange,
    /// `%MB`: OpenPLC has no byte memory area.
    NoSuchArea,
    /// The value does not fit the element width.
    ValueTooLarge,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Syntax => "expected a location such as %IX0.0, %QW3 or %MD10",
            AddressError::OutOfRange => "index must be below 65536 and bit below 8",
            AddressError::NoSuchArea => "OpenPLC has no %MB area",
            AddressError::ValueTooLarge => "value does not fit the location's width",
        })
    }
}

impl IecAddress {
    /// A checked address.
    pub const fn new(area: Area, width: Width, index: u16, bit: u8) -> Result<Self, AddressError> {
        if matches!((area, width), (Area::Memory, Width::Byte)) {
            return Err(AddressError::NoSuchArea);
        }
        let bit_ok = match width {
            Width::Bit => (bit as usize) < BITS_PER_BYTE,
            _ => bit == 0,
        };
        if !bit_ok {
            return Err(AddressError::OutOfRange);
        }
        Ok(IecAddress { area, width, index, bit })
    }

    /// Parses `%IX0.3`, `%QW12`, `%MD4` (the `%` is optional, letters are case-insensitive).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let s = text.trim();
        let s = s.strip_prefix('%').unwrap_or(s);
        let bytes = s.as_bytes();
        if bytes.len() < 3 {
            return Err(AddressError::Syntax);
        }
        let area = match bytes[0].to_ascii_uppercase() {
            b'I' => Area::Input,
            b'Q' => Area::Output,
            b'M' => Area::Memory,
            _ => return Err(AddressError::Syntax),
        };
        let width = match bytes[1].to_ascii_uppercase() {
            b'X' => Width::Bit,
            b'B' => Width::Byte,
            b'W' => Width::Word,
            b'D' => Width::DWord,
            b'L' => Width::LWord,
            _ => return Err(AddressError::Syntax),
        };
        let rest = &s[2..];
        let (index_text, bit_text) = match rest.split_once('.') {
            Some((i, b)) => (i, Some(b)),
            None => (rest, None),
        };
        let index = parse_decimal(index_text)?;
        let bit = match (width, bit_text) {
            (Width::Bit, Some(b)) => parse_decimal(b)?,
            (Width::Bit, None) => return Err(AddressError::Syntax),
            (_, Some(_)) => return Err(AddressError::Syntax),
            (_, None) => 0,
        };
        if index >= TABLE_CAPACITY as u32 || bit >= BITS_PER_BYTE as u32 {
            return Err(AddressError::OutOfRange);
        }
        IecAddress::new(area, width, index as u16, bit as u8)
    }

    pub const fn area(self) -> Area {
        self.area
    }

    pub const fn width(self) -> Width {
        self.width
    }

    /// Element index (the byte number for bits), always below `TABLE_CAPACITY`.
    pub const fn index(self) -> u16 {
        self.index
    }

    /// Bit number for `Width::Bit`, always 0 otherwise.
    pub const fn bit(self) -> u8 {
        self.bit
    }

    /// The same area and width at another element (bit 0 for bits).
    pub const fn with_index(self, index: u16) -> Result<Self, AddressError> {
        IecAddress::new(self.area, self.width, index, 0)
    }

    /// The `k`-th point after this one in its area, counting bits across bytes for
    /// `Width::Bit` (`%QX0.7` + 1 = `%QX1.0`).
    pub const fn offset_by(self, k: usize) -> Result<Self, AddressError> {
        let (index, bit) = match self.width {
            Width::Bit => {
                let n = self.index as usize * BITS_PER_BYTE + self.bit as usize + k;
                (n / BITS_PER_BYTE, (n % BITS_PER_BYTE) as u8)
            }
            _ => (self.index as usize + k, 0),
        };
        if index >= TABLE_CAPACITY {
            return Err(AddressError::OutOfRange);
        }
        IecAddress::new(self.area, self.width, index as u16, bit)
    }

    /// The (element, bit) array indices. The modulo is the identity for every address
    /// (the constructors checked the range); it lets the compiler see that indexing an area
    /// with them cannot go out of bounds.
    const fn cell(self) -> (usize, usize) {
        (self.index as usize % TABLE_CAPACITY, self.bit as usize % BITS_PER_BYTE)
    }

    /// Checks that `value` fits this location's width.
    pub const fn check_value(self, value: u64) -> Result<u64, AddressError> {
        if value > self.width.max_value() { Err(AddressError::ValueTooLarge) } else { Ok(value) }
    }
}

fn parse_decimal(text: &str) -> Result<u32, AddressError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::Syntax);
    }
    text.parse().map_err(|_| AddressError::Syntax)
}

impl fmt::Display for IecAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let area = match self.area {
            Area::Input => 'I',
            Area::Output => 'Q',
            Area::Memory => 'M',
        };
        let width = match self.width {
            Width::Bit => 'X',
            Width::Byte => 'B',
            Width::Word => 'W',
            Width::DWord => 'D',
            Width::LWord => 'L',
        };
        match self.width {
            Width::Bit => write!(f, "%{area}{width}{}.{}", self.index, self.bit),
            _ => write!(f, "%{area}{width}{}", self.index),
        }
    }
}

impl InputImage {
    /// The value at an input address, zero-extended. Non-input addresses read as `None`.
    pub fn get(&self, addr: IecAddress) -> Option<u64> {
        let (i, b) = addr.cell();
        Some(match (addr.area, addr.width) {
            (Area::Input, Width::Bit) => self.bool_input[i][b] as u64,
            (Area::Input, Width::Byte) => self.byte_input[i] as u64,
            (Area::Input, Width::Word) => self.int_input[i] as u64,
            (Area::Input, Width::DWord) => self.dint_input[i] as u64,
            (Area::Input, Width::LWord) => self.lint_input[i],
            _ => return None,
        })
    }

    /// Stores `value` (truncated to the width) at an input address; false if not an input.
    pub fn set(&mut self, addr: IecAddress, value: u64) -> bool {
        let (i, b) = addr.cell();
        match (addr.area, addr.width) {
            (Area::Input, Width::Bit) => self.bool_input[i][b] = (value != 0) as u8,
            (Area::Input, Width::Byte) => self.byte_input[i] = value as u8,
            (Area::Input, Width::Word) => self.int_input[i] = value as u16,
            (Area::Input, Width::DWord) => self.dint_input[i] = value as u32,
            (Area::Input, Width::LWord) => self.lint_input[i] = value,
            _ => return false,
        }
        true
    }
}

impl OutputImage {
    /// The value at an output or memory address, zero-extended. Inputs read as `None`.
    pub fn get(&self, addr: IecAddress) -> Option<u64> {
        let (i, b) = addr.cell();
        Some(match (addr.area, addr.width) {
            (Area::Output, Width::Bit) => self.bool_output[i][b] as u64,
            (Area::Output, Width::Byte) => self.byte_output[i] as u64,
            (Area::Output, Width::Word) => self.int_output[i] as u64,
            (Area::Output, Width::DWord) => self.dint_output[i] as u64,
            (Area::Output, Width::LWord) => self.lint_output[i],
            (Area::Memory, Width::Bit) => self.bool_memory[i][b] as u64,
            (Area::Memory, Width::Word) => self.int_memory[i] as u64,
            (Area::Memory, Width::DWord) => self.dint_memory[i] as u64,
            (Area::Memory, Width::LWord) => self.lint_memory[i],
            _ => return None,
        })
    }

    /// Stores `value` (truncated to the width); false if not an output or memory address.
    pub fn set(&mut self, addr: IecAddress, value: u64) -> bool {
        let (i, b) = addr.cell();
        match (addr.area, addr.width) {
            (Area::Output, Width::Bit) => self.bool_output[i][b] = (value != 0) as u8,
            (Area::Output, Width::Byte) => self.byte_output[i] = value as u8,
            (Area::Output, Width::Word) => self.int_output[i] = value as u16,
            (Area::Output, Width::DWord) => self.dint_output[i] = value as u32,
            (Area::Output, Width::LWord) => self.lint_output[i] = value,
            (Area::Memory, Width::Bit) => self.bool_memory[i][b] = (value != 0) as u8,
            (Area::Memory, Width::Word) => self.int_memory[i] = value as u16,
            (Area::Memory, Width::DWord) => self.dint_memory[i] = value as u32,
            (Area::Memory, Width::LWord) => self.lint_memory[i] = value,
            _ => return false,
        }
        true
    }

    /// Sets every `%Q` point inside `sizes` to zero, leaving memory alone: the safe state of
    /// a stopped PLC. (Cells past the sizes are never read or published.)
    pub fn clear_outputs(&mut self, sizes: &ImageSizes) {
        self.lint_output[..sizes.get(Table::LintOutput)].fill(0);
        self.dint_output[..sizes.get(Table::DintOutput)].fill(0);
        self.int_output[..sizes.get(Table::IntOutput)].fill(0);
        self.byte_output[..sizes.get(Table::ByteOutput)].fill(0);
        self.bool_output[..sizes.get(Table::BoolOutput)].fill([0; BITS_PER_BYTE]);
    }

    /// Copies the output and memory tables of `src` inside `sizes` into `self`.
    pub fn copy_within_sizes(&mut self, src: &OutputImage, sizes: &ImageSizes) {
        fn prefix<T: Copy>(dst: &mut [T], src: &[T], n: usize) {
            dst[..n].copy_from_slice(&src[..n]);
        }
        prefix(&mut self.lint_output, &src.lint_output, sizes.get(Table::LintOutput));
        prefix(&mut self.lint_memory, &src.lint_memory, sizes.get(Table::LintMemory));
        prefix(&mut self.dint_output, &src.dint_output, sizes.get(Table::DintOutput));
        prefix(&mut self.dint_memory, &src.dint_memory, sizes.get(Table::DintMemory));
        prefix(&mut self.int_output, &src.int_output, sizes.get(Table::IntOutput));
        prefix(&mut self.int_memory, &src.int_memory, sizes.get(Table::IntMemory));
        prefix(&mut self.byte_output, &src.byte_output, sizes.get(Table::ByteOutput));
        prefix(&mut self.bool_output, &src.bool_output, sizes.get(Table::BoolOutput));
        prefix(&mut self.bool_memory, &src.bool_memory, sizes.get(Table::BoolMemory));
    }

    /// Byte ranges (offset, length) inside an `OutputImage` that hold the tables' prefixes
    /// `sizes` names: what a reader copies out of a published snapshot.
    pub fn ranges_within(sizes: &ImageSizes) -> [(usize, usize); 9] {
        use core::mem::offset_of;
        let r = |offset: usize, table: Table, bytes: usize| (offset, sizes.get(table) * bytes);
        [
            r(offset_of!(OutputImage, lint_output), Table::LintOutput, 8),
            r(offset_of!(OutputImage, lint_memory), Table::LintMemory, 8),
            r(offset_of!(OutputImage, dint_output), Table::DintOutput, 4),
            r(offset_of!(OutputImage, dint_memory), Table::DintMemory, 4),
            r(offset_of!(OutputImage, int_output), Table::IntOutput, 2),
            r(offset_of!(OutputImage, int_memory), Table::IntMemory, 2),
            r(offset_of!(OutputImage, byte_output), Table::ByteOutput, 1),
            r(offset_of!(OutputImage, bool_output), Table::BoolOutput, BITS_PER_BYTE),
            r(offset_of!(OutputImage, bool_memory), Table::BoolMemory, BITS_PER_BYTE),
        ]
    }
}

impl InputImage {
    /// Byte ranges (offset, length) inside an `InputImage` that hold the tables' prefixes
    /// `sizes` names.
    pub fn ranges_within(sizes: &ImageSizes) -> [(usize, usize); 5] {
        use core::mem::offset_of;
        let r = |offset: usize, table: Table, bytes: usize| (offset, sizes.get(table) * bytes);
        [
            r(offset_of!(InputImage, lint_input), Table::LintInput, 8),
            r(offset_of!(InputImage, dint_input), Table::DintInput, 4),
            r(offset_of!(InputImage, int_input), Table::IntInput, 2),
            r(offset_of!(InputImage, byte_input), Table::ByteInput, 1),
            r(offset_of!(InputImage, bool_input), Table::BoolInput, BITS_PER_BYTE),
        ]
    }

    /// Copies the input tables of `src` inside `sizes` into `self`.
    pub fn copy_within_sizes(&mut self, src: &InputImage, sizes: &ImageSizes) {
        fn prefix<T: Copy>(dst: &mut [T], src: &[T], n: usize) {
            dst[..n].copy_from_slice(&src[..n]);
        }
        prefix(&mut self.bool_input, &src.bool_input, sizes.get(Table::BoolInput));
        prefix(&mut self.byte_input, &src.byte_input, sizes.get(Table::ByteInput));
        prefix(&mut self.int_input, &src.int_input, sizes.get(Table::IntInput));
        prefix(&mut self.dint_input, &src.dint_input, sizes.get(Table::DintInput));
        prefix(&mut self.lint_input, &src.lint_input, sizes.get(Table::LintInput));
    }
}

impl Image {
    /// The value at any address.
    pub fn get(&self, addr: IecAddress) -> Option<u64> {
        match addr.area {
            Area::Input => self.inputs.get(addr),
            Area::Output | Area::Memory => self.outputs.get(addr),
        }
    }

    /// Stores `value` at any address (truncated to the width).
    pub fn set(&mut self, addr: IecAddress, value: u64) -> bool {
        match addr.area {
            Area::Input => self.inputs.set(addr, value),
            Area::Output | Area::Memory => self.outputs.set(addr, value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for text in [
            "%IX0.0",
            "%QX1023.7",
            "%MX5.1",
            "%IB3",
            "%QB9",
            "%IW0",
            "%QW1023",
            "%MW7",
            "%ID2",
            "%QD4",
            "%MD10",
            "%IL1",
            "%QL2",
            "%ML3",
        ] {
            let addr = IecAddress::parse(text).unwrap();
            let mut buf = heapless::String::<16>::new();
            core::fmt::write(&mut buf, format_args!("{addr}")).unwrap();
            assert_eq!(buf.as_str(), text);
        }
        assert_eq!(IecAddress::parse("qw3").unwrap(), IecAddress::new(Area::Output, Width::Word, 3, 0).unwrap());
    }

    #[test]
    fn rejects_malformed_locations() {
        assert_eq!(IecAddress::parse("%IX0"), Err(AddressError::Syntax));
        assert_eq!(IecAddress::parse("%IW0.1"), Err(AddressError::Syntax));
        assert_eq!(IecAddress::parse("%IX0.8"), Err(AddressError::OutOfRange));
        assert_eq!(IecAddress::parse("%QW65536"), Err(AddressError::OutOfRange));
        assert!(IecAddress::parse("%QW65535").is_ok());
        assert_eq!(IecAddress::parse("%MB0"), Err(AddressError::NoSuchArea));
        assert_eq!(IecAddress::parse("%ZW0"), Err(AddressError::Syntax));
        assert_eq!(IecAddress::parse("%IW-1"), Err(AddressError::Syntax));
        assert_eq!(IecAddress::parse("%IW99999999"), Err(AddressError::Syntax));
        assert_eq!(IecAddress::parse(""), Err(AddressError::Syntax));
    }

    #[test]
    fn get_and_set_reach_the_right_array() {
        let mut image: Box<Image> = bytemuck::zeroed_box();
        let cases = [
            ("%IX2.5", 1u64),
            ("%IB4", 200),
            ("%IW6", 0xBEEF),
            ("%ID8", 0xDEAD_BEEF),
            ("%IL9", u64::MAX),
            ("%QX3.1", 1),
            ("%QW1", 77),
            ("%MW2", 88),
            ("%MD3", 99),
            ("%ML4", 111),
            ("%MX7.7", 1),
        ];
        for (text, value) in cases {
            let addr = IecAddress::parse(text).unwrap();
            assert!(image.set(addr, value));
            assert_eq!(image.get(addr), Some(value), "{text}");
        }
        assert_eq!(image.inputs.bool_input[2][5], 1);
        assert_eq!(image.inputs.int_input[6], 0xBEEF);
        assert_eq!(image.outputs.int_memory[2], 88);
        assert_eq!(image.outputs.bool_memory[7][7], 1);
        image.outputs.clear_outputs(&ImageSizes::LEGACY);
        assert_eq!(image.outputs.int_output[1], 0);
        assert_eq!(image.outputs.int_memory[2], 88, "memory survives clearing outputs");
    }

    #[test]
    fn decoding_checks_the_range() {
        let good = IecAddress::parse("%MW7").unwrap();
        let mut buf = [0u8; 16];
        let bytes = postcard::to_slice(&good, &mut buf).unwrap();
        assert_eq!(postcard::from_bytes::<IecAddress>(bytes), Ok(good));
        // %MW5000 (area 2, width 2, index 5000 = varint 0x88 0x27, bit 0) is inside the
        // layout; an index past 16 bits (65536 = varint 0x80 0x80 0x04) is not.
        assert!(postcard::from_bytes::<IecAddress>(&[2, 2, 0x88, 0x27, 0]).is_ok());
        assert!(postcard::from_bytes::<IecAddress>(&[2, 2, 0x80, 0x80, 0x04, 0]).is_err());
        // %QX0.9 and %MB0.
        assert!(postcard::from_bytes::<IecAddress>(&[1, 0, 0, 9]).is_err());
        assert!(postcard::from_bytes::<IecAddress>(&[2, 1, 0, 0]).is_err());
    }

    #[test]
    fn offsets_walk_bits_across_bytes() {
        let q = IecAddress::parse("%QX0.6").unwrap();
        assert_eq!(q.offset_by(2), IecAddress::parse("%QX1.0"));
        assert_eq!(IecAddress::parse("%QW65532").unwrap().offset_by(3), IecAddress::parse("%QW65535"));
        assert_eq!(IecAddress::parse("%QW65532").unwrap().offset_by(4), Err(AddressError::OutOfRange));
        assert_eq!(IecAddress::parse("%QX65535.7").unwrap().offset_by(1), Err(AddressError::OutOfRange));
    }

    #[test]
    fn value_width_is_checked() {
        let addr = IecAddress::parse("%QW0").unwrap();
        assert!(addr.check_value(65_535).is_ok());
        assert_eq!(addr.check_value(65_536), Err(AddressError::ValueTooLarge));
    }
}
