//! An online change's migration: the plan the client staged, checked against the new
//! program on the loader thread and given every buffer the swap needs, so that the scan
//! thread only asks the old instance where its values are, copies and converts them, and
//! writes them into the new instance (no allocation, no lock).
//!
//! Nothing in the plan is trusted: each entry must name a variable of the new program of
//! the size the plan says (checked here) and one of the old program of the size the plan
//! says (checked at the swap, against the old program's own table); a value is written
//! into the new program only through its `var_write`, as a program write.

use super::LoadedProgram;
use crate::guard::Fault;
use shared_abi::debug::{FORCE_VALUE_BYTES, ForcedValue, WatchedValue};
use shared_abi::migrate::{Carried, Converted, MAX_MIGRATE_BYTES, MigrateEntry, MigratePlan, ValueType, convert};
use shared_abi::program::VarKind;

/// One plan entry that names a variable of the new program as it is.
#[derive(Clone, Copy)]
struct Checked {
    old_var: u32,
    old_size: u16,
    from: ValueType,
    to: ValueType,
    new_var: u32,
    new_size: u16,
    new_kind: VarKind,
    retain: bool,
}

pub struct Migration {
    old_program_gen: u32,
    /// RETAIN variables of the new program.
    retain_total: u32,
    entries: Vec<Checked>,
    /// Entries the new program did not match (index or size).
    failed_at_load: u32,
    /// One per entry: the old variable's place in `old_values`.
    old_watch: Vec<WatchedValue>,
    old_addresses: Vec<usize>,
    old_values: Vec<u8>,
    /// The values to write into the new program (capacity: one per entry).
    new_values: Vec<ForcedValue>,
}

fn entry_fits(e: &MigrateEntry, program: &LoadedProgram) -> Option<Checked> {
    let from = ValueType::from_u8(e.from)?;
    let to = ValueType::from_u8(e.to)?;
    if (from == ValueType::Raw) != (to == ValueType::Raw) || e.new_var >= program.var_count() {
        return None;
    }
    let actual = program.var_size(e.new_var) as usize;
    let new_size = if e.new_size == 0 { actual } else { e.new_size as usize };
    // A raw copy needs the same size on both sides; a number the size of its type.
    let old_size = match (e.old_size, from.size()) {
        (0, Some(size)) => size,
        (0, None) => new_size,
        (size, _) => size as usize,
    };
    let max = MAX_MIGRATE_BYTES.min(FORCE_VALUE_BYTES);
    let sized = |t: ValueType, size: usize| t.size().is_none_or(|s| s == size);
    let fits = (1..=max).contains(&old_size)
        && (1..=max).contains(&new_size)
        && actual == new_size
        && sized(from, old_size)
        && sized(to, new_size)
        && (from != ValueType::Raw || old_size == new_size);
    fits.then_some(Checked {
        old_var: e.old_var,
        old_size: old_size as u16,
        from,
        to,
        new_var: e.new_var,
        new_size: new_size as u16,
        new_kind: program.var_kind(e.new_var),
        retain: program.is_retained(e.new_var),
    })
}

impl Migration {
    /// Checks `plan` against the freshly loaded `program` (loader thread).
    pub fn new(plan: &MigratePlan, program: &LoadedProgram) -> Migration {
        let used = plan.used();
        let mut entries: Vec<Checked> = used.iter().filter_map(|e| entry_fits(e, program)).collect();
        // By old index, for the binary searches at the swap; one entry per old variable.
        entries.sort_by_key(|c| c.old_var);
        entries.dedup_by_key(|c| c.old_var);
        let mut offset = 0u32;
        let old_watch = entries
            .iter()
            .map(|c| {
                let w = WatchedValue { var: c.old_var, offset, size: c.old_size, kind: 0, valid: 1 };
                offset += c.old_size as u32;
                w
            })
            .collect();
        let retain_total = program.retain_summary().0 as u32;
        Migration {
            old_program_gen: plan.old_program_gen,
            retain_total,
            failed_at_load: (used.len() - entries.len()) as u32,
            old_addresses: vec![0; entries.len()],
            old_values: vec![0; offset as usize],
            new_values: Vec::with_capacity(entries.len()),
            old_watch,
            entries,
        }
    }

    /// The running program the plan was made for.
    pub fn old_program_gen(&self) -> u32 {
        self.old_program_gen
    }

    /// Plan entries carried (after the load's checks).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Copies the old instance's values (scan thread, at the swap; calls into `old`). An
    /// entry whose old variable is not of the size the plan says is left out.
    pub fn read_old(&mut self, old: &LoadedProgram) -> Result<(), Fault> {
        for (w, c) in self.old_watch.iter_mut().zip(&self.entries) {
            let same_kind = c.from != ValueType::Raw || old.var_kind(c.old_var) == c.new_kind;
            w.valid = u8::from(old.var_size(c.old_var) == c.old_size as u32 && same_kind);
            w.kind = old.var_kind(c.old_var) as u8;
        }
        old.watched_addresses(&self.old_watch, &mut self.old_addresses)?;
        if !old.layout_fits(&self.old_watch, self.old_values.len()) {
            // Cannot happen: the offsets were laid out for these sizes, checked above.
            self.old_watch.iter_mut().for_each(|w| w.valid = 0);
            return Ok(());
        }
        // SAFETY: the layout fits `old_values` and `old` (checked just above), and the
        // addresses were asked of `old` for these entries just now, with no force between.
        unsafe { old.copy_watched(&self.old_addresses, &self.old_watch, &mut self.old_values) }
    }

    /// Converts the values read by [`read_old`](Self::read_old) into the values to write.
    pub fn convert(&mut self) -> Carried {
        let mut carried = Carried { failed: self.failed_at_load, ..Carried::default() };
        self.new_values.clear();
        for (w, c) in self.old_watch.iter().zip(&self.entries) {
            if w.valid == 0 || self.new_values.len() == self.new_values.capacity() {
                carried.failed += 1;
                continue;
            }
            let src = &self.old_values[w.offset as usize..w.offset as usize + w.size as usize];
            let mut value = ForcedValue { var: c.new_var, len: c.new_size as u32, bytes: [0; FORCE_VALUE_BYTES] };
            match convert(c.from, c.to, src, &mut value.bytes[..c.new_size as usize]) {
                Ok(how) => {
                    carried.copied += 1;
                    carried.retain_copied += u32::from(c.retain);
                    if c.from != c.to {
                        carried.converted += 1;
                        carried.retain_converted += u32::from(c.retain);
                    }
                    if how == Converted::Truncated {
                        carried.truncated += 1;
                        carried.retain_truncated += u32::from(c.retain);
                    }
                    // Within capacity (checked above): no allocation.
                    self.new_values.push(value);
                }
                Err(_) => carried.failed += 1,
            }
        }
        carried.retain_added = self.retain_total.saturating_sub(carried.retain_copied);
        carried
    }

    /// How many of `old`'s RETAIN variables were not carried (after [`read_old`]).
    ///
    /// [`read_old`]: Self::read_old
    pub fn retain_dropped(&self, old: &LoadedProgram) -> u32 {
        old.retained_vars()
            .filter(|&var| {
                let found = self.entries.binary_search_by_key(&var, |c| c.old_var).ok();
                found.is_none_or(|i| self.old_watch[i].valid == 0)
            })
            .count() as u32
    }

    /// The values [`convert`](Self::convert) made, for the new program's `var_write`.
    pub fn new_values(&self) -> &[ForcedValue] {
        &self.new_values
    }

    /// The new program's variable a force of old variable `old_var` carries to: the same
    /// IEC type and size (a converted variable's force is released).
    pub fn forced_in_new(&self, old_var: u32, len: u32) -> Option<u32> {
        let i = self.entries.binary_search_by_key(&old_var, |c| c.old_var).ok()?;
        let c = &self.entries[i];
        (c.from == c.to && c.new_size as u32 == len && self.old_watch[i].valid != 0).then_some(c.new_var)
    }
}

impl LoadedProgram {
    /// Attaches an online change's migration (loader thread).
    pub fn attach_migration(&mut self, migration: Migration) {
        self.migration = Some(Box::new(migration));
    }

    /// The migration, taken for the swap. Give it back with
    /// [`restore_migration`](Self::restore_migration): it is freed with the program, on the
    /// loader thread.
    pub fn take_migration(&mut self) -> Option<Box<Migration>> {
        self.migration.take()
    }

    pub fn restore_migration(&mut self, migration: Box<Migration>) {
        self.migration = Some(migration);
    }

    /// Whether debug variable `var` is one of the program's RETAIN variables.
    pub fn is_retained(&self, var: u32) -> bool {
        self.retained.vars.iter().any(|w| w.var == var)
    }

    /// The debug indices of the program's RETAIN variables.
    pub fn retained_vars(&self) -> impl Iterator<Item = u32> + '_ {
        self.retained.vars.iter().map(|w| w.var)
    }

    pub fn has_migration(&self) -> bool {
        self.migration.is_some()
    }

    /// Copies the output image (outputs and memory) of the instance it replaces, so the
    /// outputs keep their values across the swap.
    pub fn take_outputs_of(&mut self, old: &LoadedProgram) {
        // Only inside both programs' tables: past the old one's there is nothing to carry,
        // past the new one's nothing may be written, and a whole table's room (65 536
        // elements) is megabytes this cycle would copy for nothing.
        let common = old.info().image_sizes.min(&self.info().image_sizes);
        let from = &old.image().outputs;
        self.image_mut().outputs.copy_within_sizes(from, &common);
    }
}
