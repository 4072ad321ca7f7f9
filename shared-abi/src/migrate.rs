//! Online change: what a client stages for a `Load { online: true }`, and what rt-core
//! reports once the new program is in.
//!
//! rt-core knows variables by debug index, size and kind only; their names and IEC types
//! live in the bundle the client built the program from. So the client matches the running
//! program's variables with the new one's by name and compatible type and stages the result
//! as a [`MigratePlan`]: for each carried variable, its index in each program and how its
//! value is converted. rt-core checks every entry against both programs' variable tables
//! (nothing in the plan is trusted), copies the values from the old instance into the new
//! one at a cycle boundary, and publishes a [`SwapReport`].
//!
//! [`convert`] is the one conversion rule set, shared by rt-core (which applies it) and
//! the client (which tests and documents it).

use bytemuck::{Pod, Zeroable};

/// Variables a plan carries at most; a larger program's further variables start at
/// their initial values (the client reports them as not carried).
pub const MAX_MIGRATE: usize = 8192;
/// Largest value a plan carries (the largest forced value: a Gen B WSTRING).
pub const MAX_MIGRATE_BYTES: usize = 256;

/// How a value's bytes are read and written when it changes type. `Raw` copies the bytes
/// as they are (the same IEC type on both sides, sizes equal); the numeric types convert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ValueType {
    Raw = 0,
    I8 = 1,
    U8 = 2,
    I16 = 3,
    U16 = 4,
    I32 = 5,
    U32 = 6,
    I64 = 7,
    U64 = 8,
    F32 = 9,
    F64 = 10,
}

impl ValueType {
    pub const fn from_u8(v: u8) -> Option<ValueType> {
        Some(match v {
            0 => ValueType::Raw,
            1 => ValueType::I8,
            2 => ValueType::U8,
            3 => ValueType::I16,
            4 => ValueType::U16,
            5 => ValueType::I32,
            6 => ValueType::U32,
            7 => ValueType::I64,
            8 => ValueType::U64,
            9 => ValueType::F32,
            10 => ValueType::F64,
            _ => return None,
        })
    }

    /// Bytes of a numeric type; `None` for `Raw` (any size).
    pub const fn size(self) -> Option<usize> {
        match self {
            ValueType::Raw => None,
            ValueType::I8 | ValueType::U8 => Some(1),
            ValueType::I16 | ValueType::U16 => Some(2),
            ValueType::I32 | ValueType::U32 | ValueType::F32 => Some(4),
            ValueType::I64 | ValueType::U64 | ValueType::F64 => Some(8),
        }
    }

    /// The numeric type an elementary IEC type converts as: signed and unsigned integers,
    /// bit strings as unsigned, REAL/LREAL as floats. `None` for anything else (BOOL, the
    /// time types, strings, user types), which only carries to the same type.
    pub fn of_iec(name: &str) -> Option<ValueType> {
        let upper = name.trim();
        Some(match () {
            _ if upper.eq_ignore_ascii_case("SINT") => ValueType::I8,
            _ if upper.eq_ignore_ascii_case("USINT") || upper.eq_ignore_ascii_case("BYTE") => ValueType::U8,
            _ if upper.eq_ignore_ascii_case("INT") => ValueType::I16,
            _ if upper.eq_ignore_ascii_case("UINT") || upper.eq_ignore_ascii_case("WORD") => ValueType::U16,
            _ if upper.eq_ignore_ascii_case("DINT") => ValueType::I32,
            _ if upper.eq_ignore_ascii_case("UDINT") || upper.eq_ignore_ascii_case("DWORD") => ValueType::U32,
            _ if upper.eq_ignore_ascii_case("LINT") => ValueType::I64,
            _ if upper.eq_ignore_ascii_case("ULINT") || upper.eq_ignore_ascii_case("LWORD") => ValueType::U64,
            _ if upper.eq_ignore_ascii_case("REAL") => ValueType::F32,
            _ if upper.eq_ignore_ascii_case("LREAL") => ValueType::F64,
            _ => return None,
        })
    }
}

/// One variable carried from the running program into the new one.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct MigrateEntry {
    /// Debug index in the running program.
    pub old_var: u32,
    /// Debug index in the new program.
    pub new_var: u32,
    /// `var_size` the client expects in the running program, 0: the size of `from` (a
    /// numeric type) or the new variable's (`Raw`). Checked by rt-core against the program.
    pub old_size: u16,
    /// `var_size` the client expects in the new program, 0: the program's own. Checked.
    pub new_size: u16,
    /// `ValueType` as u8, in the running program.
    pub from: u8,
    /// `ValueType` as u8, in the new program.
    pub to: u8,
    /// Reserved, 0.
    pub flags: u8,
    pub _reserved: u8,
}

/// The plan for the next online `Load`, staged by the client (single writer: the lease).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct MigratePlan {
    /// The running program the plan was made for: rt-core carries nothing when another
    /// program is running at the swap (the load then starts cold).
    pub old_program_gen: u32,
    /// Entries in use.
    pub count: u32,
    pub entries: [MigrateEntry; MAX_MIGRATE],
}

impl MigratePlan {
    /// The entries in use (never more than the array).
    pub fn used(&self) -> &[MigrateEntry] {
        &self.entries[..(self.count as usize).min(MAX_MIGRATE)]
    }
}

/// How the last swap went, as [`SwapReport::outcome`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SwapOutcome {
    /// No swap yet.
    None = 0,
    /// A cold swap: the new program with its initial values (or a warm load's RETAIN values).
    Cold = 1,
    /// An online change: values carried from the old instance.
    Online = 2,
    /// An online change was asked for but could not be done (see `SwapReport::refusal`):
    /// the new program started cold.
    OnlineRefused = 3,
}

impl SwapOutcome {
    pub const fn from_u32(v: u32) -> SwapOutcome {
        match v {
            1 => SwapOutcome::Cold,
            2 => SwapOutcome::Online,
            3 => SwapOutcome::OnlineRefused,
            _ => SwapOutcome::None,
        }
    }
}

/// Why an online change fell back to a cold start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum OnlineRefusal {
    None = 0,
    /// No program was loaded, or it was in ERROR (its values cannot be trusted).
    NoLiveProgram = 1,
    /// Another program was running than the one the plan was made for.
    OtherProgram = 2,
    /// The new program cannot be written to (`var_write` missing: rebuild it).
    NoVarWrite = 3,
    /// The old program faulted while its values were read.
    OldFaulted = 4,
    /// The plan did not read (torn) or named no program.
    NoPlan = 5,
}

impl OnlineRefusal {
    pub const fn from_u32(v: u32) -> OnlineRefusal {
        match v {
            1 => OnlineRefusal::NoLiveProgram,
            2 => OnlineRefusal::OtherProgram,
            3 => OnlineRefusal::NoVarWrite,
            4 => OnlineRefusal::OldFaulted,
            5 => OnlineRefusal::NoPlan,
            _ => OnlineRefusal::None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            OnlineRefusal::None => "none",
            OnlineRefusal::NoLiveProgram => "no program was running (or it was in ERROR)",
            OnlineRefusal::OtherProgram => "another program was running than the plan was made for",
            OnlineRefusal::NoVarWrite => "the new program has no var_write (rebuild it)",
            OnlineRefusal::OldFaulted => "the running program faulted while its values were read",
            OnlineRefusal::NoPlan => "no migration plan was staged",
        }
    }
}

/// What an online change carried, counted by rt-core at the swap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Carried {
    /// Plan entries applied (value written into the new program).
    pub copied: u32,
    /// Of those, values that changed type.
    pub converted: u32,
    /// Of the converted, values that did not fit and were saturated or rounded.
    pub truncated: u32,
    /// Plan entries not applied: an index out of range or a size that is not the one the
    /// plan expected, or the new program refused the write.
    pub failed: u32,
    /// RETAIN variables of the new program: values carried, of those converted and
    /// truncated; not carried (they start at their initial values); and RETAIN variables of
    /// the old program whose value was not carried (dropped).
    pub retain_copied: u32,
    pub retain_converted: u32,
    pub retain_truncated: u32,
    pub retain_added: u32,
    pub retain_dropped: u32,
}

/// What the last program swap did, written by rt-core's scan thread at the swap.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SwapReport {
    /// The program swapped in.
    pub program_gen: u32,
    /// `SwapOutcome` as u32.
    pub outcome: u32,
    /// `OnlineRefusal` as u32.
    pub refusal: u32,
    /// What the online change carried (all zero after a cold swap).
    pub carried: Carried,
    /// Forced variables still forced in the new program, and those released (their
    /// variable is gone or changed type).
    pub forces_kept: u32,
    pub forces_dropped: u32,
    /// Loop counter (`Header::heartbeat`) of the cycle at whose start the swap happened;
    /// the new program's first scan runs in that same cycle.
    pub cycle: u64,
    /// Program scans counted before the new program's first scan (`OutputSnapshot::tick`
    /// just before the swap): continued by an online change, 0 after a cold swap.
    pub tick: u64,
    /// Time the swap took on the scan thread, ns.
    pub swap_ns: u64,
}

impl SwapReport {
    pub fn outcome(&self) -> SwapOutcome {
        SwapOutcome::from_u32(self.outcome)
    }

    pub fn refusal(&self) -> OnlineRefusal {
        OnlineRefusal::from_u32(self.refusal)
    }
}

/// How a value came through [`convert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Converted {
    /// The same value (bytes copied, or a number that fits exactly).
    Exact,
    /// The nearest value the new type holds: an integer saturated to its range, a float
    /// rounded toward zero into an integer, or a float rounded to a narrower float.
    Truncated,
}

/// Why [`convert`] wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertError {
    /// A size that is not the type's, or `Raw` on one side only.
    Mismatch,
}

enum Number {
    Int(i128),
    Float(f64),
}

fn read_number(t: ValueType, b: &[u8]) -> Option<Number> {
    let n = |k: usize| -> Option<[u8; 8]> {
        let mut out = [0u8; 8];
        out[..k].copy_from_slice(b.get(..k)?);
        Some(out)
    };
    Some(match t {
        ValueType::Raw => return None,
        ValueType::I8 => Number::Int(i8::from_le_bytes([*b.first()?]) as i128),
        ValueType::U8 => Number::Int(*b.first()? as i128),
        ValueType::I16 => Number::Int(i16::from_le_bytes([*b.first()?, *b.get(1)?]) as i128),
        ValueType::U16 => Number::Int(u16::from_le_bytes([*b.first()?, *b.get(1)?]) as i128),
        ValueType::I32 => {
            let v = n(4)?;
            Number::Int(i32::from_le_bytes([v[0], v[1], v[2], v[3]]) as i128)
        }
        ValueType::U32 => {
            let v = n(4)?;
            Number::Int(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as i128)
        }
        ValueType::I64 => Number::Int(i64::from_le_bytes(n(8)?) as i128),
        ValueType::U64 => Number::Int(u64::from_le_bytes(n(8)?) as i128),
        ValueType::F32 => {
            let v = n(4)?;
            Number::Float(f32::from_le_bytes([v[0], v[1], v[2], v[3]]) as f64)
        }
        ValueType::F64 => Number::Float(f64::from_le_bytes(n(8)?)),
    })
}

fn int_range(t: ValueType) -> (i128, i128) {
    match t {
        ValueType::I8 => (i8::MIN as i128, i8::MAX as i128),
        ValueType::U8 => (0, u8::MAX as i128),
        ValueType::I16 => (i16::MIN as i128, i16::MAX as i128),
        ValueType::U16 => (0, u16::MAX as i128),
        ValueType::I32 => (i32::MIN as i128, i32::MAX as i128),
        ValueType::U32 => (0, u32::MAX as i128),
        ValueType::I64 => (i64::MIN as i128, i64::MAX as i128),
        _ => (0, u64::MAX as i128),
    }
}

/// Converts `src` (a value of type `from`) into `dst` (of type `to`), little-endian.
///
/// The rules: the same type copies the bytes (sizes must be equal). Between numeric types
/// a value that the new type holds exactly is carried exactly (widening always is); an
/// integer outside the new range saturates to its nearest bound; a float into an integer
/// rounds toward zero and saturates (NaN becomes 0); a float into a narrower float or an
/// integer into a float that cannot hold it exactly rounds to nearest. Those are
/// [`Converted::Truncated`]. Everything else (BOOL, times, strings, user types changing
/// type) is not convertible: the client leaves such variables out of the plan.
pub fn convert(from: ValueType, to: ValueType, src: &[u8], dst: &mut [u8]) -> Result<Converted, ConvertError> {
    if from == ValueType::Raw || to == ValueType::Raw {
        if from != to || src.len() != dst.len() {
            return Err(ConvertError::Mismatch);
        }
        dst.copy_from_slice(src);
        return Ok(Converted::Exact);
    }
    let (Some(from_size), Some(to_size)) = (from.size(), to.size()) else { return Err(ConvertError::Mismatch) };
    if src.len() != from_size || dst.len() != to_size {
        return Err(ConvertError::Mismatch);
    }
    let value = read_number(from, src).ok_or(ConvertError::Mismatch)?;
    let mut exact = true;
    match to {
        ValueType::F32 => {
            let v = match value {
                Number::Int(i) => {
                    let f = i as f32;
                    exact = f as i128 == i;
                    f
                }
                Number::Float(f) => {
                    let g = f as f32;
                    exact = g as f64 == f || f.is_nan();
                    g
                }
            };
            dst.copy_from_slice(&v.to_le_bytes());
        }
        ValueType::F64 => {
            let v = match value {
                Number::Int(i) => {
                    let f = i as f64;
                    exact = f as i128 == i;
                    f
                }
                Number::Float(f) => f,
            };
            dst.copy_from_slice(&v.to_le_bytes());
        }
        _ => {
            let (lo, hi) = int_range(to);
            let i = match value {
                Number::Int(i) => i,
                Number::Float(f) if f.is_nan() => {
                    exact = false;
                    0
                }
                Number::Float(f) => {
                    let t = f.trunc();
                    exact = t == f;
                    // `as` saturates at i128's bounds; the range check below does the rest.
                    t as i128
                }
            };
            let clamped = i.clamp(lo, hi);
            exact &= clamped == i;
            let bytes = clamped.to_le_bytes();
            dst.copy_from_slice(&bytes[..to_size]);
        }
    }
    Ok(if exact { Converted::Exact } else { Converted::Truncated })
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<MigrateEntry>() == 16);
    assert!(size_of::<SwapReport>() == 80);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(from: ValueType, to: ValueType, src: &[u8]) -> (Vec<u8>, Converted) {
        let mut dst = vec![0u8; to.size().unwrap_or(src.len())];
        let c = convert(from, to, src, &mut dst).unwrap();
        (dst, c)
    }

    #[test]
    fn widening_is_exact_and_narrowing_saturates() {
        use ValueType::*;
        assert_eq!(conv(U16, U32, &60_000u16.to_le_bytes()), (60_000u32.to_le_bytes().to_vec(), Converted::Exact));
        assert_eq!(conv(I16, I64, &(-5i16).to_le_bytes()), ((-5i64).to_le_bytes().to_vec(), Converted::Exact));
        assert_eq!(conv(I32, I16, &1234i32.to_le_bytes()), (1234i16.to_le_bytes().to_vec(), Converted::Exact));
        assert_eq!(conv(I32, I16, &70_000i32.to_le_bytes()), (i16::MAX.to_le_bytes().to_vec(), Converted::Truncated));
        assert_eq!(conv(I32, U8, &(-3i32).to_le_bytes()), (vec![0], Converted::Truncated));
        assert_eq!(conv(U64, I64, &u64::MAX.to_le_bytes()), (i64::MAX.to_le_bytes().to_vec(), Converted::Truncated));
    }

    #[test]
    fn floats_round_toward_zero_into_integers() {
        use ValueType::*;
        assert_eq!(conv(F64, I32, &2.75f64.to_le_bytes()), (2i32.to_le_bytes().to_vec(), Converted::Truncated));
        assert_eq!(conv(F32, I16, &(-8.0f32).to_le_bytes()), ((-8i16).to_le_bytes().to_vec(), Converted::Exact));
        assert_eq!(conv(F64, U8, &f64::NAN.to_le_bytes()), (vec![0], Converted::Truncated));
        assert_eq!(conv(F64, U16, &1e9f64.to_le_bytes()), (u16::MAX.to_le_bytes().to_vec(), Converted::Truncated));
        assert_eq!(conv(I32, F64, &7i32.to_le_bytes()), (7f64.to_le_bytes().to_vec(), Converted::Exact));
        assert_eq!(conv(F32, F64, &0.5f32.to_le_bytes()), (0.5f64.to_le_bytes().to_vec(), Converted::Exact));
        assert_eq!(conv(F64, F32, &0.1f64.to_le_bytes()).1, Converted::Truncated);
        assert_eq!(conv(I64, F32, &((1i64 << 40) + 1).to_le_bytes()).1, Converted::Truncated);
    }

    #[test]
    fn raw_copies_only_the_same_size() {
        let mut dst = [0u8; 3];
        assert_eq!(convert(ValueType::Raw, ValueType::Raw, &[1, 2, 3], &mut dst), Ok(Converted::Exact));
        assert_eq!(dst, [1, 2, 3]);
        assert_eq!(convert(ValueType::Raw, ValueType::Raw, &[1, 2], &mut dst), Err(ConvertError::Mismatch));
        assert_eq!(convert(ValueType::Raw, ValueType::U8, &[1], &mut [0]), Err(ConvertError::Mismatch));
        assert_eq!(convert(ValueType::U16, ValueType::U8, &[1], &mut [0]), Err(ConvertError::Mismatch));
    }

    #[test]
    fn iec_types_map_to_value_types() {
        assert_eq!(ValueType::of_iec("word"), Some(ValueType::U16));
        assert_eq!(ValueType::of_iec("LREAL"), Some(ValueType::F64));
        assert_eq!(ValueType::of_iec("BOOL"), None);
        assert_eq!(ValueType::of_iec("TIME"), None);
        for v in 0..=10 {
            assert_eq!(ValueType::from_u8(v).map(|t| t as u8), Some(v));
        }
        assert_eq!(ValueType::from_u8(11), None);
    }
}
