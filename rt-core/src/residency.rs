//! Which pages of the image tables are resident. Every table has room for 65 536 elements
//! (about 4.3 MiB in an image, three input buffers and the published outputs in the shared
//! memory), but a program uses only the prefixes its sizes name (`image.conf`, or its
//! located variables). Under `mlockall` every mapped page would be resident and locked, so
//! rt-core gives back the pages past the sizes: the shared memory's at start, a program's
//! own image as it is loaded. Before a program is swapped in, the loader locks the shared
//! memory's pages its sizes need, so the scan never faults on them.
//!
//! Nobody reads past the sizes (readers copy the prefixes the published sizes name, writes
//! past them are refused), so the zero pages left there are never seen.

use crate::sys::{self, Release};
use shared_abi::image::{Image, InputImage, OutputImage};
use shared_abi::layout::{InputSnapshot, OutputSnapshot, SharedMemory};
use shared_abi::sizes::ImageSizes;
use std::io;
use std::mem::offset_of;

/// Byte ranges (from the image's start) past `sizes` in each table of an image whose
/// tables' full ranges are `full` and used prefixes `used`.
fn past<const N: usize>(full: [(usize, usize); N], used: [(usize, usize); N]) -> [(usize, usize); N] {
    let mut out = full;
    for (o, (&(offset, room), &(_, len))) in out.iter_mut().zip(full.iter().zip(used.iter())) {
        *o = (offset + len, room - len.min(room));
    }
    out
}

fn inputs_past(sizes: &ImageSizes) -> [(usize, usize); 5] {
    past(InputImage::ranges_within(&ImageSizes::FULL), InputImage::ranges_within(sizes))
}

fn outputs_past(sizes: &ImageSizes) -> [(usize, usize); 9] {
    past(OutputImage::ranges_within(&ImageSizes::FULL), OutputImage::ranges_within(sizes))
}

/// Each table region of the shared memory (the three input buffers' images and the
/// published outputs' image): its base address and its ranges.
fn shared_regions(
    shm: &SharedMemory,
    inputs: [(usize, usize); 5],
    outputs: [(usize, usize); 9],
) -> Vec<(usize, usize)> {
    let mut all = Vec::with_capacity(3 * 5 + 9);
    for buffer in shm.inputs.memory() {
        let image = buffer as usize + offset_of!(InputSnapshot, image);
        all.extend(inputs.iter().map(|&(o, n)| (image + o, n)));
    }
    let image = shm.outputs.memory() as usize + offset_of!(OutputSnapshot, image);
    all.extend(outputs.iter().map(|&(o, n)| (image + o, n)));
    all
}

/// Gives back the shared memory's table pages past `sizes` (at start: no program yet, so
/// `ImageSizes::ZERO`). `fresh`: rt-core has just created the shared memory, so the pages
/// are freed outright; otherwise (taken over from an earlier rt-core, whose companion may
/// still be reading) they are only dropped from this process.
pub fn release_shared_tables(shm: &SharedMemory, sizes: &ImageSizes, fresh: bool) -> io::Result<()> {
    let how = if fresh { Release::Shared } else { Release::Private };
    for (start, len) in shared_regions(shm, inputs_past(sizes), outputs_past(sizes)) {
        sys::release_pages(start as *const u8, len, how)?;
    }
    Ok(())
}

/// Locks the shared memory's table pages that `sizes` use (faulting them in), before a
/// program of those sizes is swapped in.
pub fn lock_shared_tables(shm: &SharedMemory, sizes: &ImageSizes) -> io::Result<()> {
    let regions = shared_regions(shm, InputImage::ranges_within(sizes), OutputImage::ranges_within(sizes));
    for (start, len) in regions {
        sys::lock_pages(start as *const u8, len)?;
    }
    Ok(())
}

/// Readies a freshly loaded program's memory: its own image's pages past its sizes given
/// back, the shared memory's pages its sizes use locked.
pub fn settle(shm: &SharedMemory, program: &mut crate::program::LoadedProgram) -> io::Result<()> {
    let sizes = program.info().image_sizes;
    release_program_tables(program.image_mut(), &sizes)?;
    lock_shared_tables(shm, &sizes)
}

/// Gives back the pages of a freshly loaded program's image past its `sizes`.
pub fn release_program_tables(image: &mut Image, sizes: &ImageSizes) -> io::Result<()> {
    let base = image as *mut Image as usize;
    let inputs = base + offset_of!(Image, inputs);
    let outputs = base + offset_of!(Image, outputs);
    let ranges = inputs_past(sizes)
        .map(|(o, n)| (inputs + o, n))
        .into_iter()
        .chain(outputs_past(sizes).map(|(o, n)| (outputs + o, n)));
    for (start, len) in ranges {
        sys::release_pages(start as *const u8, len, Release::Private)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_abi::sizes::Table;

    #[test]
    fn the_ranges_past_the_sizes_complete_the_used_ones() {
        let mut sizes = ImageSizes::LEGACY;
        sizes.set(Table::IntMemory, 4096);
        sizes.set(Table::LintInput, 0);
        let used = InputImage::ranges_within(&sizes);
        for ((full, used), past) in
            InputImage::ranges_within(&ImageSizes::FULL).iter().zip(used).zip(inputs_past(&sizes))
        {
            assert_eq!((used.0, used.1 + past.1), *full);
            assert_eq!(past.0, used.0 + used.1);
        }
        let used = OutputImage::ranges_within(&sizes);
        let total: usize =
            outputs_past(&sizes).iter().map(|r| r.1).sum::<usize>() + used.iter().map(|r| r.1).sum::<usize>();
        assert_eq!(total, std::mem::size_of::<OutputImage>());
        assert!(outputs_past(&ImageSizes::FULL).iter().all(|r| r.1 == 0));
    }

    #[test]
    fn a_programs_image_past_its_sizes_reads_zero_after_release() {
        let mut image: Box<Image> = bytemuck::zeroed_box();
        image.outputs.int_memory.fill(7);
        let mut sizes = ImageSizes::ZERO;
        sizes.set(Table::IntMemory, 10);
        release_program_tables(&mut image, &sizes).unwrap();
        assert!(image.outputs.int_memory[..10].iter().all(|&v| v == 7), "the used prefix is kept");
        // Whole pages only: the pages the prefix and the next table share keep their values.
        let middle = &image.outputs.int_memory[4096..65536 - 4096];
        assert!(middle.iter().all(|&v| v == 0), "the pages past it read zero");
    }
}
