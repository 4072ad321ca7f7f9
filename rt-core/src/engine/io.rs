//! The image's way in and out: inputs from the client's triple buffer, image writes from
//! the write ring (each decoded and range-checked: a bad one is reported, never applied),
//! outputs into the published snapshot, RETAIN values into their region.

use super::{Engine, MAX_WRITES_PER_CYCLE, live, stamped};
use crate::sys;
use shared_abi::layout::{PlcState, WritesApplied};
use shared_abi::msg::{Event, ImageWrite, RingId, decode_write};
use shared_abi::sizes::ImageSizes;
use std::sync::atomic::Ordering;

impl Engine {
    pub(super) fn take_inputs(&mut self) {
        let Some(program) = self.program.as_mut() else { return };
        // SAFETY: the engine is the only reader of the input buffer (rt-core's one engine;
        // the client writes it under its lease).
        let (snapshot, fresh) = unsafe { self.shm.inputs.read_latest() };
        if fresh || self.inputs_stale {
            let sizes = program.info().image_sizes;
            let dst = &mut program.image_mut().inputs;
            if !self.inputs_stale && snapshot.lines_suffice_from(self.inputs_generation) {
                // Only the lines that changed since the snapshot the image already holds
                // (the client marks lines inside the program's tables only).
                snapshot.copy_changed_lines(dst, &sizes);
            } else {
                // Everything, of the program's tables only.
                dst.copy_within_sizes(&snapshot.image, &sizes);
            }
            self.inputs_generation = snapshot.generation;
            self.inputs_stale = false;
            self.inputs_cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
            self.stats.inputs_taken += 1;
        }
    }

    /// Applies queued image writes. Each slot is decoded by `decode_write`, which refuses an
    /// address out of range or a value too wide for it, and an address past the program's
    /// table sizes is refused here: reported as `BadMessage`, dropped.
    ///
    /// Then, when any were taken, publishes how far the ring is applied and in which cycle
    /// (one Release store): writers waiting for these writes may be answered now, since the
    /// scan that sees them follows at once.
    pub(super) fn apply_writes(&mut self) {
        let mut taken = false;
        for _ in 0..MAX_WRITES_PER_CYCLE {
            let Some(write) = self.rings.writes.pop_with(decode_write) else { break };
            taken = true;
            match write {
                Ok(ImageWrite { addr, value }) => {
                    if let Some(program) = self.program.as_mut() {
                        if !program.info().image_sizes.contains(addr) {
                            self.emit(Event::BadMessage { ring: RingId::Writes });
                            continue;
                        }
                        program.image_mut().set(addr, value);
                        program.widen_extents(addr);
                    }
                    self.stats.writes_applied += 1;
                }
                Err(_) => self.emit(Event::BadMessage { ring: RingId::Writes }),
            }
        }
        if taken {
            let h = &self.shm.header;
            let cycle_low = h.heartbeat.load(Ordering::Relaxed) as u32;
            let applied = WritesApplied { position: self.shm.writes.consumed(), cycle_low };
            h.writes_applied.store(applied.pack(), Ordering::Release);
        }
    }

    pub(super) fn publish_outputs(&mut self, safe_state: bool) {
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let tick = self.tick;
        let inputs_cycle = self.inputs_cycle;
        let state = self.state as u32;
        let program = self.program.as_deref();
        // SAFETY: the engine is the single writer of the outputs.
        unsafe {
            self.shm.outputs.write(|snap| {
                snap.cycle = cycle;
                snap.tick = tick;
                snap.inputs_cycle = inputs_cycle;
                snap.state = state;
                snap.program_gen = program.map_or(0, |p| p.info().program_gen);
                snap.sizes = program.map_or(ImageSizes::ZERO, |p| p.info().image_sizes);
                match program {
                    // The safe-state publication is the full one (of the program's tables)
                    // that follows every swap, stop and fault; in between only what the
                    // program can change is copied.
                    Some(p) if safe_state => snap.image.copy_within_sizes(&p.image().outputs, &snap.sizes),
                    Some(p) => p.extents().copy(&p.image().outputs, &mut snap.image),
                    // Readers copy nothing past the (zero) sizes.
                    None => {}
                }
                if safe_state {
                    snap.image.clear_outputs(&snap.sizes);
                }
            })
        };
    }

    /// Publishes the program's RETAIN values for the companion to store and for a
    /// restarted rt-core to give back. No allocation: the values go straight into the
    /// shared memory. Not after a fault: a scan that crashed may have left them
    /// half-updated, and the last good ones are already out.
    pub(super) fn publish_retain(&mut self) {
        if self.state == PlcState::Error {
            return;
        }
        let stale = core::mem::take(&mut self.retain_addresses_stale);
        let Some(program) = live(self.state, &mut self.program) else { return };
        if program.retain_summary().0 == 0 {
            return;
        }
        let now = sys::now_ns();
        if stale && let Err(f) = stamped(self.shm, program, now, |p| p.refresh_retain_addresses()) {
            self.program_faulted(f, now);
            return;
        }
        let cycle = self.shm.header.heartbeat.load(Ordering::Relaxed);
        let program_gen = program.info().program_gen;
        let program = &*program;
        // SAFETY: the engine is the single writer of the saved RETAIN values.
        let saved = unsafe {
            self.shm.retain_saved.write(|r| {
                r.program_gen = program_gen;
                r.cycle = cycle;
                let saved = program.save_retain(r);
                if saved.is_err() {
                    // Half copied: no live copy rather than a torn one.
                    r.program_gen = 0;
                }
                saved
            })
        };
        if let Err(f) = saved {
            self.program_faulted(f, sys::now_ns());
        }
    }
}
