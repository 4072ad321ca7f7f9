//! The watched debug values: after the program, the variables on the client's watch list
//! are copied into the debug area, laid out by the sizes the program reported at load.
//! Where each value lives is asked from the program only after a change of watch list,
//! program, force or release (the ABI lets an address move only then).

use super::{Engine, live, stamped};
use crate::sys;
use shared_abi::debug::{DEBUG_DATA_BYTES, MAX_WATCH, WatchList, WatchedValue};
use shared_abi::program::VarKind;
use std::sync::atomic::Ordering;

/// The debug publisher's state, owned by the engine.
pub(super) struct DebugPublisher {
    watch: Box<WatchList>,
    watch_version: u64,
    layout: Box<[WatchedValue; MAX_WATCH]>,
    layout_count: usize,
    layout_dirty: bool,
    /// The layout passed `LoadedProgram::layout_fits` for the current program, which is
    /// what makes copying with it sound.
    layout_fits: bool,
    /// Where each watched variable's value is, as the program last said.
    addresses: Box<[usize; MAX_WATCH]>,
    /// The addresses must be asked again (new layout, a force or a release).
    addresses_stale: bool,
}

impl DebugPublisher {
    pub(super) fn new() -> DebugPublisher {
        DebugPublisher {
            watch: bytemuck::zeroed_box(),
            watch_version: u64::MAX,
            layout: Box::new([WatchedValue::default(); MAX_WATCH]),
            layout_count: 0,
            layout_dirty: true,
            layout_fits: false,
            addresses: Box::new([0; MAX_WATCH]),
            addresses_stale: true,
        }
    }

    /// Another program (or none, or a faulted one): lay the watch list out again.
    pub(super) fn program_changed(&mut self) {
        self.layout_dirty = true;
    }

    /// A force or release: the program may have moved variables.
    pub(super) fn variables_moved(&mut self) {
        self.addresses_stale = true;
    }

    /// Places each watched variable in the debug data area, by the sizes `size_of`
    /// reports (0: the variable does not exist, or no program can be read).
    fn relayout(&mut self, size_of: impl Fn(u32) -> (u32, VarKind)) {
        let count = (self.watch.count as usize).min(MAX_WATCH);
        let mut offset = 0usize;
        for (slot, &var) in self.layout.iter_mut().zip(&self.watch.vars[..count]) {
            let (size, kind) = size_of(var);
            let size = size as usize;
            let fits = size > 0 && size <= u16::MAX as usize && offset + size <= DEBUG_DATA_BYTES;
            *slot = WatchedValue { var, offset: offset as u32, size: size as u16, kind: kind as u8, valid: fits as u8 };
            if fits {
                offset += size;
            }
        }
        self.layout_count = count;
    }
}

impl Engine {
    pub(super) fn publish_debug(&mut self) {
        let shm = self.shm;
        let program_gen = self.program.as_deref().map_or(0, |p| p.info().program_gen);
        let d = &mut self.debug;
        if shm.watch.version() != d.watch_version {
            // One attempt: a torn read keeps the previous list until the next cycle.
            if let Ok(version) = shm.watch.try_read(&mut d.watch) {
                d.watch_version = version;
                d.layout_dirty = true;
            }
        }
        let dirty = core::mem::take(&mut d.layout_dirty);
        let program = live(self.state, &mut self.program);
        if dirty {
            match program.as_deref() {
                Some(p) => d.relayout(|var| (p.var_size(var), p.var_kind(var))),
                None => d.relayout(|_| (0, VarKind::Opaque)),
            }
            let layout = &d.layout[..d.layout_count];
            d.layout_fits = program.as_deref().is_some_and(|p| p.layout_fits(layout, DEBUG_DATA_BYTES));
            d.addresses_stale = true;
        }
        if d.layout_count == 0 && !dirty {
            return;
        }
        let mut program = program.filter(|_| d.layout_fits);
        if d.addresses_stale
            && let Some(p) = program.as_deref_mut()
        {
            let now = sys::now_ns();
            let (layout, addresses) = (&d.layout[..d.layout_count], &mut d.addresses[..]);
            if let Err(f) = stamped(shm, p, now, |p| p.watched_addresses(layout, addresses)) {
                self.program_faulted(f, now);
                return;
            }
            d.addresses_stale = false;
        }
        let cycle = shm.header.heartbeat.load(Ordering::Relaxed);
        let tick = self.tick;
        let generation = d.watch.generation;
        let layout = &d.layout[..d.layout_count];
        let addresses = &d.addresses[..d.layout_count];
        let program = program.as_deref();
        let mut fault = None;
        let fill = |dv: &mut shared_abi::debug::DebugValues| {
            if dirty {
                dv.entries[..layout.len()].copy_from_slice(layout);
                dv.count = layout.len() as u32;
                dv.data_len = layout.iter().map(|w| w.offset + w.size as u32).max().unwrap_or(0);
                dv.watch_generation = generation;
                dv.program_gen = program_gen;
            }
            if let Some(p) = program {
                // SAFETY: `layout_fits` checked this layout against this program and the
                // data area, and the addresses were asked for it after the last change.
                if let Err(f) = unsafe { p.copy_watched(addresses, layout, &mut dv.data) } {
                    fault = Some(f);
                }
            }
            dv.cycle = cycle;
            dv.tick = tick;
        };
        // SAFETY: the engine is the single writer of the debug values.
        unsafe { shm.debug.write(fill) };
        if let Some(f) = fault {
            self.program_faulted(f, sys::now_ns());
        }
    }
}
