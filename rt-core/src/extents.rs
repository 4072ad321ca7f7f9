//! How much of each output and memory area a program can change: the cells its located
//! variables occupy, plus any cell an image write has touched, never past the program's
//! table sizes. Only those prefixes are copied into the published snapshot each cycle; the
//! rest of the program's tables was published in full when it was swapped in and cannot
//! change.

use shared_abi::image::{Area, IecAddress, OutputImage, Width};
use shared_abi::program::LocatedInfo;
use shared_abi::sizes::{ImageSizes, Table};

/// Number of leading elements of each area to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputExtents {
    bool_output: usize,
    bool_memory: usize,
    byte_output: usize,
    int_output: usize,
    int_memory: usize,
    dint_output: usize,
    dint_memory: usize,
    lint_output: usize,
    lint_memory: usize,
}

impl OutputExtents {
    pub const NONE: OutputExtents = OutputExtents {
        bool_output: 0,
        bool_memory: 0,
        byte_output: 0,
        int_output: 0,
        int_memory: 0,
        dint_output: 0,
        dint_memory: 0,
        lint_output: 0,
        lint_memory: 0,
    };

    /// Every output and memory cell inside `sizes`.
    pub fn all_of(sizes: &ImageSizes) -> OutputExtents {
        OutputExtents {
            bool_output: sizes.get(Table::BoolOutput),
            bool_memory: sizes.get(Table::BoolMemory),
            byte_output: sizes.get(Table::ByteOutput),
            int_output: sizes.get(Table::IntOutput),
            int_memory: sizes.get(Table::IntMemory),
            dint_output: sizes.get(Table::DintOutput),
            dint_memory: sizes.get(Table::DintMemory),
            lint_output: sizes.get(Table::LintOutput),
            lint_memory: sizes.get(Table::LintMemory),
        }
    }

    /// The extents a program's located variables need; `None` (no listing) means all of
    /// its tables.
    pub fn of_program(located: Option<&[LocatedInfo]>, sizes: &ImageSizes) -> OutputExtents {
        let Some(located) = located else { return OutputExtents::all_of(sizes) };
        let mut e = OutputExtents::NONE;
        let bound = located.iter().filter(|l| l.in_image == 1).filter_map(LocatedInfo::address);
        for addr in bound.filter(|a| a.area() != Area::Input && sizes.contains(*a)) {
            e.widen(addr);
        }
        e
    }

    /// Makes sure `addr` is published (the caller checked it is inside the sizes).
    pub fn widen(&mut self, addr: IecAddress) {
        let n = addr.index() as usize + 1;
        let slot = match (addr.area(), addr.width()) {
            (Area::Output, Width::Bit) => &mut self.bool_output,
            (Area::Memory, Width::Bit) => &mut self.bool_memory,
            (Area::Output, Width::Byte) => &mut self.byte_output,
            (Area::Output, Width::Word) => &mut self.int_output,
            (Area::Memory, Width::Word) => &mut self.int_memory,
            (Area::Output, Width::DWord) => &mut self.dint_output,
            (Area::Memory, Width::DWord) => &mut self.dint_memory,
            (Area::Output, Width::LWord) => &mut self.lint_output,
            (Area::Memory, Width::LWord) => &mut self.lint_memory,
            _ => return,
        };
        *slot = (*slot).max(n);
    }

    /// Copies the published prefixes of `src` into `dst`.
    pub fn copy(&self, src: &OutputImage, dst: &mut OutputImage) {
        dst.bool_output[..self.bool_output].copy_from_slice(&src.bool_output[..self.bool_output]);
        dst.bool_memory[..self.bool_memory].copy_from_slice(&src.bool_memory[..self.bool_memory]);
        dst.byte_output[..self.byte_output].copy_from_slice(&src.byte_output[..self.byte_output]);
        dst.int_output[..self.int_output].copy_from_slice(&src.int_output[..self.int_output]);
        dst.int_memory[..self.int_memory].copy_from_slice(&src.int_memory[..self.int_memory]);
        dst.dint_output[..self.dint_output].copy_from_slice(&src.dint_output[..self.dint_output]);
        dst.dint_memory[..self.dint_memory].copy_from_slice(&src.dint_memory[..self.dint_memory]);
        dst.lint_output[..self.lint_output].copy_from_slice(&src.lint_output[..self.lint_output]);
        dst.lint_memory[..self.lint_memory].copy_from_slice(&src.lint_memory[..self.lint_memory]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(area: u8, width: u8, index: u16, bit: u8, in_image: u8) -> LocatedInfo {
        LocatedInfo { area, width, index, bit, in_image, size: 1 }
    }

    #[test]
    fn extents_cover_located_outputs_and_writes_only() {
        let list =
            [located(1, 0, 3, 7, 1), located(2, 2, 10, 0, 1), located(0, 2, 900, 0, 1), located(1, 4, 500, 0, 0)];
        let mut e = OutputExtents::of_program(Some(&list), &ImageSizes::LEGACY);
        assert_eq!((e.bool_output, e.int_memory, e.lint_output), (4, 11, 0), "inputs and copied variables add nothing");
        e.widen(IecAddress::parse("%QL20").unwrap());
        assert_eq!(e.lint_output, 21);
        assert_eq!(OutputExtents::of_program(None, &ImageSizes::LEGACY), OutputExtents::all_of(&ImageSizes::LEGACY));
        let mut small = ImageSizes::LEGACY;
        small.set(Table::IntMemory, 5);
        assert_eq!(OutputExtents::of_program(Some(&list), &small).int_memory, 0, "outside the sizes: never published");

        let mut src: Box<OutputImage> = bytemuck::zeroed_box();
        let mut dst: Box<OutputImage> = bytemuck::zeroed_box();
        src.int_memory[10] = 7;
        src.int_memory[11] = 8;
        src.bool_output[3][7] = 1;
        e.copy(&src, &mut dst);
        assert_eq!((dst.int_memory[10], dst.int_memory[11], dst.bool_output[3][7]), (7, 0, 1));
    }
}
