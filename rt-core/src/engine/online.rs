//! The online change at the swap: the running instance's values carried into the new one at
//! this cycle boundary, so the new program's first scan runs in this very cycle and
//! continues from where the old one stopped (its scan count, the program time, the values
//! of every carried variable, the outputs and the forces).
//!
//! All of it happens on the scan thread between two scans, so the debugger, Modbus and the
//! other clients see either the old program's last published cycle or the new one's first:
//! never a half-swapped state. Every buffer was sized by the loader (`program::Migration`);
//! the old instance goes back to the loader to be unloaded, as in any swap.

use super::{Engine, stamped};
use crate::guard::Fault;
use crate::program::LoadedProgram;
use crate::sys;
use heapless::Vec as FixedVec;
use shared_abi::debug::ForcedValue;
use shared_abi::layout::PlcState;
use shared_abi::migrate::{Carried, OnlineRefusal, SwapOutcome, SwapReport};

use super::MAX_FORCES;

/// What carrying the values over did.
// The forces travel inline: boxing them would allocate on the scan thread.
#[allow(clippy::large_enum_variant)]
pub(super) enum Carry {
    /// Values carried; the forces to keep applying in the new program.
    Done { carried: Carried, forces: FixedVec<ForcedValue, MAX_FORCES>, dropped_forces: u32 },
    /// Nothing carried: the new program starts cold.
    Refused(OnlineRefusal),
    /// The new program faulted while its values were written (it goes to ERROR).
    NewFaulted(Fault),
}

impl Engine {
    /// Carries the running program's values into `new` as its migration says.
    pub(super) fn carry_over(&mut self, new: &mut LoadedProgram, now: u64) -> Carry {
        let Some(mut migration) = new.take_migration() else { return Carry::Refused(OnlineRefusal::NoPlan) };
        let result = self.carry_with(new, &mut migration, now);
        new.restore_migration(migration);
        result
    }

    fn carry_with(&mut self, new: &mut LoadedProgram, migration: &mut crate::program::Migration, now: u64) -> Carry {
        let live = self.state != PlcState::Error;
        let Some(old) = self.program.as_deref_mut().filter(|p| live && !p.is_faulted()) else {
            return Carry::Refused(OnlineRefusal::NoLiveProgram);
        };
        if old.info().program_gen != migration.old_program_gen() {
            return Carry::Refused(OnlineRefusal::OtherProgram);
        }
        if !new.can_write_vars() {
            return Carry::Refused(OnlineRefusal::NoVarWrite);
        }
        // Outputs first: the carried located variables are written over them below.
        new.take_outputs_of(old);
        if stamped(self.shm, old, now, |old| migration.read_old(old)).is_err() {
            // Its values cannot be trusted; it is never called again (nor unloaded).
            old.mark_faulted();
            return Carry::Refused(OnlineRefusal::OldFaulted);
        }
        let mut carried = migration.convert();
        carried.retain_dropped = migration.retain_dropped(old);
        let mut forces = FixedVec::new();
        let mut dropped_forces = 0;
        for f in &self.forces {
            match migration.forced_in_new(f.var, f.len) {
                Some(var) => {
                    let _ = forces.push(ForcedValue { var, ..*f });
                }
                None => dropped_forces += 1,
            }
        }
        let written = stamped(self.shm, new, now, |new| {
            new.write_vars(migration.new_values())?;
            new.apply_forces(&forces)
        });
        match written {
            Ok(()) => Carry::Done { carried, forces, dropped_forces },
            Err(fault) => Carry::NewFaulted(fault),
        }
    }

    /// Publishes what the swap did (before the new generation, which clients take as "the
    /// swap is complete").
    pub(super) fn publish_swap(&mut self, mut report: SwapReport, started_ns: u64) {
        report.cycle = self.shm.header.heartbeat.load(std::sync::atomic::Ordering::Relaxed);
        report.swap_ns = sys::now_ns().saturating_sub(started_ns);
        // SAFETY: the engine is the single writer of the swap report.
        unsafe { self.shm.swap.write(|r| *r = report) };
    }
}

/// The report of a swap that carried `carried`.
pub(super) fn online_report(program_gen: u32, tick: u64, carried: &Carried, kept: u32, dropped: u32) -> SwapReport {
    SwapReport {
        program_gen,
        outcome: SwapOutcome::Online as u32,
        carried: *carried,
        forces_kept: kept,
        forces_dropped: dropped,
        tick,
        ..SwapReport::default()
    }
}
