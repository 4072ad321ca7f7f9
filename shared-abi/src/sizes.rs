//! How long each of the fourteen image tables is for one program.
//!
//! The layout has room for `TABLE_CAPACITY` elements per table; a program uses a prefix of
//! each, sized from its `image.conf` (when the upload has one) and never below what its own
//! located variables reach. rt-core decides the sizes at load, publishes them with the
//! program and with every output snapshot, and copies, publishes and accepts writes only
//! inside them, so the scan's cost follows the program, not the layout.
//!
//! The table order is upstream's (`image_table_id_t`): the order of `image.conf`, of the
//! array a native plugin's `set_image_sizes` receives, and of [`ImageSizes`] here.
//!
//! A size read from the other process is never trusted: [`ImageSizes::get`] clamps to the
//! capacity, so indexing a table with a prefix length can never go out of bounds.

use crate::image::{Area, IecAddress, TABLE_CAPACITY, Width};
use bytemuck::{Pod, Zeroable};
use core::fmt;
use serde::{Deserialize, Serialize};

/// The fourteen tables.
pub const TABLE_COUNT: usize = 14;

/// Elements per table for a program that lists no located variables and brings no
/// `image.conf`: the fixed size every table had before sizes were per program.
pub const LEGACY_TABLE_ELEMENTS: u32 = 1024;

/// One image table, numbered in upstream's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Table {
    BoolInput = 0,
    BoolOutput = 1,
    ByteInput = 2,
    ByteOutput = 3,
    IntInput = 4,
    IntOutput = 5,
    DintInput = 6,
    DintOutput = 7,
    LintInput = 8,
    LintOutput = 9,
    IntMemory = 10,
    DintMemory = 11,
    LintMemory = 12,
    BoolMemory = 13,
}

impl Table {
    pub const ALL: [Table; TABLE_COUNT] = [
        Table::BoolInput,
        Table::BoolOutput,
        Table::ByteInput,
        Table::ByteOutput,
        Table::IntInput,
        Table::IntOutput,
        Table::DintInput,
        Table::DintOutput,
        Table::LintInput,
        Table::LintOutput,
        Table::IntMemory,
        Table::DintMemory,
        Table::LintMemory,
        Table::BoolMemory,
    ];

    /// The table's name: its `image.conf` key and upstream's buffer name.
    pub const fn key(self) -> &'static str {
        match self {
            Table::BoolInput => "bool_input",
            Table::BoolOutput => "bool_output",
            Table::ByteInput => "byte_input",
            Table::ByteOutput => "byte_output",
            Table::IntInput => "int_input",
            Table::IntOutput => "int_output",
            Table::DintInput => "dint_input",
            Table::DintOutput => "dint_output",
            Table::LintInput => "lint_input",
            Table::LintOutput => "lint_output",
            Table::IntMemory => "int_memory",
            Table::DintMemory => "dint_memory",
            Table::LintMemory => "lint_memory",
            Table::BoolMemory => "bool_memory",
        }
    }

    /// The table holding an area and width; `None` for `%MB`, which has none.
    pub const fn of(area: Area, width: Width) -> Option<Table> {
        Some(match (area, width) {
            (Area::Input, Width::Bit) => Table::BoolInput,
            (Area::Output, Width::Bit) => Table::BoolOutput,
            (Area::Memory, Width::Bit) => Table::BoolMemory,
            (Area::Input, Width::Byte) => Table::ByteInput,
            (Area::Output, Width::Byte) => Table::ByteOutput,
            (Area::Memory, Width::Byte) => return None,
            (Area::Input, Width::Word) => Table::IntInput,
            (Area::Output, Width::Word) => Table::IntOutput,
            (Area::Memory, Width::Word) => Table::IntMemory,
            (Area::Input, Width::DWord) => Table::DintInput,
            (Area::Output, Width::DWord) => Table::DintOutput,
            (Area::Memory, Width::DWord) => Table::DintMemory,
            (Area::Input, Width::LWord) => Table::LintInput,
            (Area::Output, Width::LWord) => Table::LintOutput,
            (Area::Memory, Width::LWord) => Table::LintMemory,
        })
    }

    /// Whether the table's element is a byte of eight `%?X` bits.
    pub const fn is_bits(self) -> bool {
        matches!(self, Table::BoolInput | Table::BoolOutput | Table::BoolMemory)
    }
}

/// A table asked for more than `TABLE_CAPACITY` elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    pub table: Table,
    pub elements: u32,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} asks for {} elements; a table holds at most {TABLE_CAPACITY}", self.table.key(), self.elements)
    }
}

/// Elements per table, in [`Table`] order (`uint32_t sizes[14]` in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable, Serialize, Deserialize)]
#[serde(try_from = "[u32; TABLE_COUNT]", into = "[u32; TABLE_COUNT]")]
pub struct ImageSizes {
    elements: [u32; TABLE_COUNT],
}

impl TryFrom<[u32; TABLE_COUNT]> for ImageSizes {
    type Error = TooLarge;
    fn try_from(elements: [u32; TABLE_COUNT]) -> Result<Self, TooLarge> {
        ImageSizes::new(elements)
    }
}

impl From<ImageSizes> for [u32; TABLE_COUNT] {
    fn from(sizes: ImageSizes) -> Self {
        sizes.elements
    }
}

impl ImageSizes {
    /// Every table empty.
    pub const ZERO: ImageSizes = ImageSizes { elements: [0; TABLE_COUNT] };
    /// Every table at the former fixed size (1024).
    pub const LEGACY: ImageSizes = ImageSizes { elements: [LEGACY_TABLE_ELEMENTS; TABLE_COUNT] };
    /// Every table at its capacity.
    pub const FULL: ImageSizes = ImageSizes { elements: [TABLE_CAPACITY as u32; TABLE_COUNT] };

    /// Checked sizes: none above the capacity.
    pub const fn new(elements: [u32; TABLE_COUNT]) -> Result<ImageSizes, TooLarge> {
        let mut i = 0;
        while i < TABLE_COUNT {
            if elements[i] as usize > TABLE_CAPACITY {
                return Err(TooLarge { table: Table::ALL[i], elements: elements[i] });
            }
            i += 1;
        }
        Ok(ImageSizes { elements })
    }

    /// Elements of `table`, never above the capacity (the value may come from the other
    /// process, so it is clamped rather than trusted).
    pub const fn get(&self, table: Table) -> usize {
        let n = self.elements[table as usize] as usize;
        if n > TABLE_CAPACITY { TABLE_CAPACITY } else { n }
    }

    /// The sizes as upstream's `set_image_sizes` array (clamped).
    pub fn as_array(&self) -> [u32; TABLE_COUNT] {
        let mut out = [0; TABLE_COUNT];
        for t in Table::ALL {
            out[t as usize] = self.get(t) as u32;
        }
        out
    }

    /// Sets one table (clamped to the capacity).
    pub fn set(&mut self, table: Table, elements: usize) {
        self.elements[table as usize] = elements.min(TABLE_CAPACITY) as u32;
    }

    /// Whether `addr` lies inside its table.
    pub const fn contains(&self, addr: IecAddress) -> bool {
        match Table::of(addr.area(), addr.width()) {
            Some(t) => (addr.index() as usize) < self.get(t),
            None => false,
        }
    }

    /// Table by table, the larger of the two.
    pub fn max(&self, other: &ImageSizes) -> ImageSizes {
        self.zip(other, usize::max)
    }

    /// Table by table, the smaller of the two.
    pub fn min(&self, other: &ImageSizes) -> ImageSizes {
        self.zip(other, usize::min)
    }

    fn zip(&self, other: &ImageSizes, pick: fn(usize, usize) -> usize) -> ImageSizes {
        let mut out = ImageSizes::ZERO;
        for t in Table::ALL {
            out.set(t, pick(self.get(t), other.get(t)));
        }
        out
    }

    /// The longest table.
    pub fn largest(&self) -> usize {
        Table::ALL.iter().map(|&t| self.get(t)).max().unwrap_or(0)
    }

    /// Every table as long as the longest: upstream's rule while a plugin that cannot be
    /// told per-table sizes is loaded (it bounds every table by one `buffer_size`).
    pub fn square(&self) -> ImageSizes {
        ImageSizes { elements: [self.largest() as u32; TABLE_COUNT] }
    }

    /// Makes sure `addr` is inside its table.
    pub fn widen(&mut self, addr: IecAddress) {
        if let Some(t) = Table::of(addr.area(), addr.width()) {
            let n = addr.index() as usize + 1;
            if n > self.get(t) {
                self.set(t, n);
            }
        }
    }
}

/// What a `Load` asks of the program's image: the sizes its upload configured (all zero
/// without an `image.conf`) and whether every table must have one common length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRequest {
    pub configured: ImageSizes,
    pub square: bool,
}

impl ImageRequest {
    /// No `image.conf`, no plugin that needs a square image: sized from the program alone.
    pub const FROM_PROGRAM: ImageRequest = ImageRequest { configured: ImageSizes::ZERO, square: false };

    /// The sizes a program gets: table by table the larger of what was configured and what
    /// its located variables reach (`floor`); square when asked.
    pub fn resolve(&self, floor: &ImageSizes) -> ImageSizes {
        let sizes = self.configured.max(floor);
        if self.square { sizes.square() } else { sizes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_upstreams_order_and_names() {
        let keys: heapless::Vec<&str, 14> = Table::ALL.iter().map(|t| t.key()).collect();
        assert_eq!(
            keys.as_slice(),
            [
                "bool_input",
                "bool_output",
                "byte_input",
                "byte_output",
                "int_input",
                "int_output",
                "dint_input",
                "dint_output",
                "lint_input",
                "lint_output",
                "int_memory",
                "dint_memory",
                "lint_memory",
                "bool_memory"
            ]
        );
        for (i, t) in Table::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        assert_eq!(Table::of(Area::Memory, Width::Byte), None);
    }

    #[test]
    fn sizes_are_checked_on_decode_and_clamped_on_read() {
        let mut raw = [0u32; TABLE_COUNT];
        raw[Table::IntOutput as usize] = 65_537;
        assert_eq!(ImageSizes::new(raw), Err(TooLarge { table: Table::IntOutput, elements: 65_537 }));
        let mut buf = [0u8; 128];
        let bytes = postcard::to_slice(&raw, &mut buf).unwrap();
        assert!(postcard::from_bytes::<ImageSizes>(bytes).is_err());
        // A value taken from the shared memory as plain bytes is clamped.
        let forged: ImageSizes = bytemuck::cast(raw);
        assert_eq!(forged.get(Table::IntOutput), TABLE_CAPACITY);
    }

    #[test]
    fn resolving_takes_the_larger_of_configured_and_floor_and_squares_on_request() {
        let mut floor = ImageSizes::ZERO;
        floor.widen(IecAddress::parse("%QW4095").unwrap());
        floor.widen(IecAddress::parse("%IX2.3").unwrap());
        let mut configured = ImageSizes::ZERO;
        configured.set(Table::IntOutput, 100);
        configured.set(Table::DintMemory, 7);
        let req = ImageRequest { configured, square: false };
        let sizes = req.resolve(&floor);
        assert_eq!((sizes.get(Table::IntOutput), sizes.get(Table::BoolInput)), (4096, 3));
        assert_eq!((sizes.get(Table::DintMemory), sizes.get(Table::LintInput)), (7, 0));
        assert!(sizes.contains(IecAddress::parse("%QW4095").unwrap()));
        assert!(!sizes.contains(IecAddress::parse("%QW4096").unwrap()));
        assert!(!sizes.contains(IecAddress::parse("%IX3.0").unwrap()));
        let square = ImageRequest { configured, square: true }.resolve(&floor);
        assert!(Table::ALL.iter().all(|&t| square.get(t) == 4096));
    }
}
