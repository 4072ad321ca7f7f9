//! Where S7 addresses land in the image, and how image cells become S7 bytes.
//!
//! A region (a data block or PE/PA/MK) is a run of consecutive cells of one image table
//! starting at `start_buffer`. Byte `o` of the region is byte `o % n` of element
//! `start_buffer + o / n`, `n` being the element's size (1 for bool and byte, 2 for int,
//! 4 for dint, 8 for lint), and every element is stored **big-endian**, as S7 stores INT,
//! DINT and LINT: `DB10.DBW0` is `%IW0` (high byte at `DBB0`), `DB10.DBD4` of a dint region
//! is `%ID1`. A bool element is the eight bits of one byte address: bit `b` of region byte
//! `o` is `%IX(start+o).b` (`DB1.DBX3.5` of a `bool_output` region from 0 is `%QX3.5`).

use crate::config::{CellType, Region, S7Config};
use shared_abi::image::{BITS_PER_BYTE, IecAddress, InputImage, OutputImage, Width};
use shared_abi::sizes::{ImageSizes, Table};

/// S7 area codes (the `area` byte of an S7ANY address).
pub mod area {
    pub const PE: u8 = 0x81;
    pub const PA: u8 = 0x82;
    pub const MK: u8 = 0x83;
    pub const DB: u8 = 0x84;
    pub const COUNTERS: u8 = 0x1C;
    pub const TIMERS: u8 = 0x1D;
}

/// Every region the configuration serves.
#[derive(Clone, Debug, Default)]
pub struct AreaMap {
    /// Sorted by number.
    dbs: Vec<(u16, Region)>,
    pe: Option<Region>,
    pa: Option<Region>,
    mk: Option<Region>,
}

impl AreaMap {
    pub fn new(cfg: &S7Config) -> AreaMap {
        let mut dbs: Vec<(u16, Region)> = cfg.data_blocks.iter().map(|d| (d.number, d.region)).collect();
        dbs.sort_by_key(|&(n, _)| n);
        AreaMap { dbs, pe: cfg.pe, pa: cfg.pa, mk: cfg.mk }
    }

    /// The region an S7 area code (and DB number) names; `None` is "object does not exist".
    pub fn region(&self, area: u8, db: u16) -> Option<&Region> {
        match area {
            area::DB => self.dbs.binary_search_by_key(&db, |&(n, _)| n).ok().map(|i| &self.dbs[i].1),
            area::PE => self.pe.as_ref(),
            area::PA => self.pa.as_ref(),
            area::MK => self.mk.as_ref(),
            _ => None,
        }
    }
}

/// The IEC address of element `index` of a cell type (bit `bit` for bool tables); `None`
/// past the image.
fn address(cell: CellType, index: usize, bit: u8) -> Option<IecAddress> {
    let bit = if cell.width() == Width::Bit { bit } else { 0 };
    IecAddress::new(cell.area(), cell.width(), u16::try_from(index).ok()?, bit).ok()
}

fn pack_bits(bits: &[u8; BITS_PER_BYTE]) -> u64 {
    bits.iter().enumerate().fold(0, |acc, (i, &b)| acc | (((b != 0) as u64) << i))
}

/// The value of element `index` (a bool element is its eight bits, bit 0 lowest).
/// `index` is below `TABLE_CAPACITY` for every region the configuration built.
pub fn element(inputs: &InputImage, outputs: &OutputImage, cell: CellType, index: usize) -> u64 {
    use CellType::*;
    let i = index.min(shared_abi::image::TABLE_CAPACITY - 1);
    match cell {
        BoolInput => pack_bits(&inputs.bool_input[i]),
        BoolOutput => pack_bits(&outputs.bool_output[i]),
        BoolMemory => pack_bits(&outputs.bool_memory[i]),
        ByteInput => inputs.byte_input[i] as u64,
        ByteOutput => outputs.byte_output[i] as u64,
        IntInput => inputs.int_input[i] as u64,
        IntOutput => outputs.int_output[i] as u64,
        IntMemory => outputs.int_memory[i] as u64,
        DintInput => inputs.dint_input[i] as u64,
        DintOutput => outputs.dint_output[i] as u64,
        DintMemory => outputs.dint_memory[i] as u64,
        LintInput => inputs.lint_input[i],
        LintOutput => outputs.lint_output[i],
        LintMemory => outputs.lint_memory[i],
    }
}

/// Byte `k` (0 = most significant) of an `n`-byte big-endian value.
fn be_byte(value: u64, n: usize, k: usize) -> u8 {
    (value >> (8 * (n - 1 - k))) as u8
}

fn with_be_byte(value: u64, n: usize, k: usize, byte: u8) -> u64 {
    let shift = 8 * (n - 1 - k);
    (value & !(0xFFu64 << shift)) | ((byte as u64) << shift)
}

impl Region {
    /// Whether bytes `start..start+len` lie inside the region.
    pub fn contains(&self, start: usize, len: usize) -> bool {
        start.checked_add(len).is_some_and(|end| end <= self.size as usize)
    }

    /// Whether every element that bytes `start..start+len` touch lies inside the running
    /// program's table (`sizes`): the configuration may map more than the program's image
    /// holds, and an element past it is out of range as a byte past the region is.
    pub fn inside(&self, sizes: &ImageSizes, start: usize, len: usize) -> bool {
        let last = self.start as usize + (start + len.max(1) - 1) / self.cell.element_bytes();
        Table::of(self.cell.area(), self.cell.width()).is_some_and(|t| last < sizes.get(t))
    }

    /// Copies region bytes `start..start + out.len()` (which the caller checked with
    /// [`Region::contains`]).
    pub fn read(&self, inputs: &InputImage, outputs: &OutputImage, start: usize, out: &mut [u8]) {
        let n = self.cell.element_bytes();
        let mut cached: Option<(usize, u64)> = None;
        for (j, b) in out.iter_mut().enumerate() {
            let o = start + j;
            let index = self.start as usize + o / n;
            let value = match cached {
                Some((i, v)) if i == index => v,
                _ => {
                    let v = element(inputs, outputs, self.cell, index);
                    cached = Some((index, v));
                    v
                }
            };
            *b = be_byte(value, n, o % n);
        }
    }

    /// Appends the image writes that store `data` at region byte `start` (checked by the
    /// caller). A bool byte becomes its eight bit writes; an element the data covers only
    /// in part keeps its other bytes from the latest earlier write to it in `out`, or else
    /// from the image. False (with `out` partly extended) when an element lies past the
    /// image, which a region the configuration built never reaches.
    pub fn writes(
        &self,
        inputs: &InputImage,
        outputs: &OutputImage,
        start: usize,
        data: &[u8],
        out: &mut Vec<(IecAddress, u64)>,
    ) -> bool {
        let n = self.cell.element_bytes();
        let mut o = start;
        let end = start + data.len();
        while o < end {
            let index = self.start as usize + o / n;
            let first = o % n;
            let last = (n - 1).min(first + (end - o) - 1);
            if self.cell.width() == Width::Bit {
                let byte = data[o - start];
                for bit in 0..BITS_PER_BYTE as u8 {
                    let Some(addr) = address(self.cell, index, bit) else { return false };
                    out.push((addr, ((byte >> bit) & 1) as u64));
                }
            } else {
                let Some(addr) = address(self.cell, index, 0) else { return false };
                let mut value =
                    if first == 0 && last == n - 1 { 0 } else { base(inputs, outputs, self.cell, index, addr, out) };
                for k in first..=last {
                    value = with_be_byte(value, n, k, data[o - start + k - first]);
                }
                out.push((addr, value));
            }
            o += last - first + 1;
        }
        true
    }

    /// Appends the write of one bit: bit `bit` of region byte `byte`. False when it lies
    /// past the image (see [`Region::writes`]).
    pub fn bit_write(
        &self,
        inputs: &InputImage,
        outputs: &OutputImage,
        byte: usize,
        bit: u8,
        value: bool,
        out: &mut Vec<(IecAddress, u64)>,
    ) -> bool {
        let n = self.cell.element_bytes();
        let index = self.start as usize + byte / n;
        let Some(addr) = address(self.cell, index, bit) else { return false };
        if self.cell.width() == Width::Bit {
            out.push((addr, value as u64));
            return true;
        }
        let old = base(inputs, outputs, self.cell, index, addr, out);
        let k = byte % n;
        let mut b = be_byte(old, n, k);
        b = if value { b | (1 << bit) } else { b & !(1 << bit) };
        out.push((addr, with_be_byte(old, n, k, b)));
        true
    }
}

/// What a partial write of element `index` builds on.
fn base(
    inputs: &InputImage,
    outputs: &OutputImage,
    cell: CellType,
    index: usize,
    addr: IecAddress,
    pending: &[(IecAddress, u64)],
) -> u64 {
    match pending.iter().rev().find(|(a, _)| *a == addr) {
        Some(&(_, v)) => v,
        None => element(inputs, outputs, cell, index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_abi::image::Area;

    fn images() -> (Box<InputImage>, Box<OutputImage>) {
        (bytemuck::zeroed_box(), bytemuck::zeroed_box())
    }

    fn a(area: Area, width: Width, index: u16, bit: u8) -> IecAddress {
        IecAddress::new(area, width, index, bit).unwrap()
    }

    #[test]
    fn ints_are_big_endian_in_the_region() {
        let (mut i, o) = images();
        i.int_input[3] = 0x1234;
        i.int_input[4] = 0xABCD;
        let r = Region { cell: CellType::IntInput, start: 3, size: 10 };
        let mut buf = [0u8; 4];
        r.read(&i, &o, 0, &mut buf);
        assert_eq!(buf, [0x12, 0x34, 0xAB, 0xCD]);
        let mut odd = [0u8; 2];
        r.read(&i, &o, 1, &mut odd);
        assert_eq!(odd, [0x34, 0xAB], "an odd start reads the low byte of one cell and the high of the next");
    }

    #[test]
    fn lint_and_dint_regions() {
        let (i, mut o) = images();
        o.lint_memory[0] = 0x0102_0304_0506_0708;
        o.dint_output[2] = 0xDEAD_BEEF;
        let mut buf = [0u8; 8];
        Region { cell: CellType::LintMemory, start: 0, size: 8 }.read(&i, &o, 0, &mut buf);
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut d = [0u8; 4];
        Region { cell: CellType::DintOutput, start: 1, size: 8 }.read(&i, &o, 4, &mut d);
        assert_eq!(d, [0xDE, 0xAD, 0xBE, 0xEF]);
    }

    #[test]
    fn a_bool_byte_is_eight_bits_lowest_first() {
        let (mut i, o) = images();
        i.bool_input[2][0] = 1;
        i.bool_input[2][7] = 1;
        let r = Region { cell: CellType::BoolInput, start: 0, size: 4 };
        let mut buf = [0u8; 3];
        r.read(&i, &o, 0, &mut buf);
        assert_eq!(buf, [0, 0, 0x81]);
    }

    #[test]
    fn whole_element_writes_need_no_base() {
        let (i, o) = images();
        let r = Region { cell: CellType::IntMemory, start: 10, size: 8 };
        let mut w = Vec::new();
        r.writes(&i, &o, 2, &[0x01, 0x02, 0x03, 0x04], &mut w);
        assert_eq!(
            w,
            vec![(a(Area::Memory, Width::Word, 11, 0), 0x0102), (a(Area::Memory, Width::Word, 12, 0), 0x0304)]
        );
    }

    #[test]
    fn partial_element_writes_keep_the_other_bytes() {
        let (i, mut o) = images();
        o.dint_memory[0] = 0x1122_3344;
        let r = Region { cell: CellType::DintMemory, start: 0, size: 8 };
        let mut w = Vec::new();
        r.writes(&i, &o, 1, &[0xAA, 0xBB], &mut w);
        assert_eq!(w, vec![(a(Area::Memory, Width::DWord, 0, 0), 0x11AA_BB44)]);
        // A second partial write in the same batch builds on the first.
        r.writes(&i, &o, 3, &[0xCC], &mut w);
        assert_eq!(w[1], (a(Area::Memory, Width::DWord, 0, 0), 0x11AA_BBCC));
        // Straddling two elements.
        let mut w = Vec::new();
        r.writes(&i, &o, 3, &[0x01, 0x02], &mut w);
        assert_eq!(
            w,
            vec![
                (a(Area::Memory, Width::DWord, 0, 0), 0x1122_3301),
                (a(Area::Memory, Width::DWord, 1, 0), 0x0200_0000)
            ]
        );
    }

    #[test]
    fn bool_writes_and_bit_writes() {
        let (i, mut o) = images();
        let r = Region { cell: CellType::BoolOutput, start: 4, size: 2 };
        let mut w = Vec::new();
        r.writes(&i, &o, 1, &[0b1000_0001], &mut w);
        assert_eq!(w.len(), 8);
        assert_eq!(w[0], (a(Area::Output, Width::Bit, 5, 0), 1));
        assert_eq!(w[1], (a(Area::Output, Width::Bit, 5, 1), 0));
        assert_eq!(w[7], (a(Area::Output, Width::Bit, 5, 7), 1));
        let mut w = Vec::new();
        r.bit_write(&i, &o, 0, 3, true, &mut w);
        assert_eq!(w, vec![(a(Area::Output, Width::Bit, 4, 3), 1)]);
        // A bit of an int region: read-modify-write of the cell, big-endian bytes.
        o.int_output[0] = 0x00FF;
        let ri = Region { cell: CellType::IntOutput, start: 0, size: 2 };
        let mut w = Vec::new();
        ri.bit_write(&i, &o, 0, 1, true, &mut w);
        assert_eq!(w, vec![(a(Area::Output, Width::Word, 0, 0), 0x02FF)]);
        let mut w = Vec::new();
        ri.bit_write(&i, &o, 1, 0, false, &mut w);
        assert_eq!(w, vec![(a(Area::Output, Width::Word, 0, 0), 0x00FE)]);
    }

    #[test]
    fn contains_checks_both_ends_without_overflow() {
        let r = Region { cell: CellType::ByteOutput, start: 0, size: 10 };
        assert!(r.contains(0, 10) && r.contains(9, 1) && r.contains(10, 0));
        assert!(!r.contains(9, 2) && !r.contains(usize::MAX, 2));
    }
}
