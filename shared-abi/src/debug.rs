//! The debugger's window into the running program.
//!
//! The companion writes a watch list (the union of what every debug client polls); at the
//! end of each cycle rt-core copies the values of those variables, with the cycle and tick
//! they were taken at. The companion never touches program memory itself.

use bytemuck::{Pod, Zeroable};

/// Variables that can be watched at once (10 Editor sessions polling 60 each fit easily).
pub const MAX_WATCH: usize = 1024;
/// Bytes of watched values per cycle.
pub const DEBUG_DATA_BYTES: usize = 32 * 1024;
/// Debug variable groups (Gen B "arrays"; the array number is a u8 on the wire).
pub const MAX_GROUPS: usize = 256;
/// Bytes of the program path kept in `ProgramInfo`.
pub const INFO_PATH_BYTES: usize = 240;
/// Variables that can be forced at once.
pub const MAX_FORCES: usize = 128;
/// Largest forced value (a Gen B WSTRING is 253 bytes); `msg::MAX_FORCE_BYTES`.
pub const FORCE_VALUE_BYTES: usize = crate::msg::MAX_FORCE_BYTES;

/// Written by the companion, read by rt-core (one attempt per cycle; a torn read keeps the
/// previous list).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct WatchList {
    /// Bumped on every change, echoed in `DebugValues::watch_generation`.
    pub generation: u32,
    pub count: u32,
    pub vars: [u32; MAX_WATCH],
}

/// Where one watched variable's bytes are in `DebugValues::data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable, PartialEq, Eq)]
pub struct WatchedValue {
    pub var: u32,
    pub offset: u32,
    /// Size in the program (`var_size`), 0 if the variable does not exist.
    pub size: u16,
    /// `VarKind` as u8.
    pub kind: u8,
    /// 1 when the bytes were copied this cycle, 0 when the variable is unknown or the data
    /// area was full.
    pub valid: u8,
}

/// Written by rt-core at the end of each cycle.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct DebugValues {
    /// rt-core's loop counter (header heartbeat) when the values were taken.
    pub cycle: u64,
    /// The program's scan count when the values were taken (the debug protocol's tick).
    pub tick: u64,
    /// The watch list generation these values answer.
    pub watch_generation: u32,
    /// The program they were read from.
    pub program_gen: u32,
    pub count: u32,
    pub data_len: u32,
    pub entries: [WatchedValue; MAX_WATCH],
    pub data: [u8; DEBUG_DATA_BYTES],
}

/// One forced variable: `len` bytes of `bytes`, in the program's native order, as rt-core
/// hands them to the program's `var_force` (`oplc_forced_t` in rt-core's guard.c).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct ForcedValue {
    pub var: u32,
    pub len: u32,
    pub bytes: [u8; FORCE_VALUE_BYTES],
}

impl ForcedValue {
    /// The value's bytes (never more than the buffer).
    pub fn value(&self) -> &[u8] {
        &self.bytes[..(self.len as usize).min(FORCE_VALUE_BYTES)]
    }
}

/// The variables forced in the running program, written by rt-core's scan thread whenever
/// they change. The companion reads it to show what is forced; a restarted rt-core gives
/// them back to the same program (same MD5 and variable table) on a warm load.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct ForceTable {
    /// Generation of the program they belong to (0: none).
    pub program_gen: u32,
    pub count: u32,
    /// Hash of the program's variable table (every variable's size and kind).
    pub vars_hash: u64,
    /// The program's MD5 as lower-case hex, zeros when it has none.
    pub md5: [u8; 32],
    pub entries: [ForcedValue; MAX_FORCES],
}

impl ForceTable {
    /// The forced variables (never more than `MAX_FORCES`).
    pub fn forced(&self) -> &[ForcedValue] {
        &self.entries[..(self.count as usize).min(MAX_FORCES)]
    }
}

/// FNV-1a over every debug variable's (size, kind): two builds with the same MD5 but
/// another variable table (another adapter) do not share forces.
pub fn vars_hash(vars: impl Iterator<Item = (u32, u32)>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut count = 0u32;
    let mut feed = |v: u32| {
        for b in v.to_le_bytes() {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (size, kind) in vars {
        feed(size);
        feed(kind);
        count += 1;
    }
    feed(count);
    hash
}

/// Which generator produced the loaded program (as reported by its adapter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Generator {
    None = 0,
    Matiec = 1,
    Strucpp = 2,
    Other = 3,
}

impl Generator {
    pub fn from_name(name: &str) -> Self {
        match name {
            "matiec" => Generator::Matiec,
            "strucpp" => Generator::Strucpp,
            _ => Generator::Other,
        }
    }

    pub const fn from_u32(v: u32) -> Self {
        match v {
            1 => Generator::Matiec,
            2 => Generator::Strucpp,
            3 => Generator::Other,
            _ => Generator::None,
        }
    }
}

/// What is known about the program currently swapped in. Written by rt-core's scan thread
/// at the swap.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct ProgramInfo {
    /// 0 when no program is loaded; increases with every load.
    pub program_gen: u32,
    /// `Generator` as u32.
    pub generator: u32,
    pub var_count: u32,
    pub group_count: u32,
    pub period_ns: u64,
    /// ASCII hex MD5 of the program source, as the Editor computes it.
    pub md5: [u8; 32],
    pub has_md5: u32,
    pub path_len: u32,
    pub path: [u8; INFO_PATH_BYTES],
    /// Variables per group; the flat variable index runs through the groups in order.
    pub group_len: [u32; MAX_GROUPS],
    /// How long each image table is for this program (`image.conf`, located variables).
    pub image_sizes: crate::sizes::ImageSizes,
}

impl ProgramInfo {
    pub fn md5_str(&self) -> Option<&str> {
        if self.has_md5 == 0 {
            return None;
        }
        core::str::from_utf8(&self.md5).ok()
    }

    pub fn path_str(&self) -> &str {
        let n = (self.path_len as usize).min(INFO_PATH_BYTES);
        core::str::from_utf8(&self.path[..n]).unwrap_or("")
    }

    /// Flat index of `(group, element)`, if both exist. The lengths come from the other
    /// process, so a sum past `u32::MAX` is no index rather than an overflow.
    pub fn flat_index(&self, group: u32, element: u32) -> Option<u32> {
        let groups = (self.group_count as usize).min(MAX_GROUPS);
        if group as usize >= groups || element >= self.group_len[group as usize] {
            return None;
        }
        let before = self.group_len[..group as usize].iter().try_fold(0u32, |sum, &len| sum.checked_add(len))?;
        before.checked_add(element)
    }
}

/// Outcome of the last `Load` command. Written by rt-core's control thread.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub struct LoadResult {
    /// Sequence number of the `Load` command this answers.
    pub request_seq: u32,
    /// `LoadOutcome` as u32.
    pub outcome: u32,
    /// Generation the program got, when loaded.
    pub program_gen: u32,
    pub message_len: u32,
    pub message: [u8; 240],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LoadOutcome {
    Pending = 0,
    Loaded = 1,
    Failed = 2,
}

impl LoadResult {
    pub fn message_str(&self) -> &str {
        let n = (self.message_len as usize).min(self.message.len());
        core::str::from_utf8(&self.message[..n]).unwrap_or("")
    }

    pub fn outcome(&self) -> LoadOutcome {
        match self.outcome {
            1 => LoadOutcome::Loaded,
            2 => LoadOutcome::Failed,
            _ => LoadOutcome::Pending,
        }
    }
}

/// Copies `text` into a fixed byte field, cutting at a character boundary; returns the
/// number of bytes kept.
pub fn fill_text(field: &mut [u8], text: &str) -> u32 {
    let mut end = text.len().min(field.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    field[..end].copy_from_slice(&text.as_bytes()[..end]);
    field[end..].fill(0);
    end as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_index_runs_through_groups() {
        let mut info: ProgramInfo = Zeroable::zeroed();
        info.group_count = 3;
        info.group_len[..3].copy_from_slice(&[4, 0, 2]);
        assert_eq!(info.flat_index(0, 3), Some(3));
        assert_eq!(info.flat_index(0, 4), None);
        assert_eq!(info.flat_index(1, 0), None);
        assert_eq!(info.flat_index(2, 1), Some(5));
        assert_eq!(info.flat_index(3, 0), None);
        info.group_len[..3].copy_from_slice(&[u32::MAX, 1, 1]);
        assert_eq!(info.flat_index(0, u32::MAX - 1), Some(u32::MAX - 1));
        assert_eq!(info.flat_index(2, 0), None, "past u32::MAX");
    }

    #[test]
    fn text_is_cut_at_a_char_boundary() {
        let mut field = [0xFFu8; 4];
        assert_eq!(fill_text(&mut field, "abé€"), 4);
        assert_eq!(&field, b"ab\xC3\xA9");
        assert_eq!(fill_text(&mut field, "a€"), 4);
        assert_eq!(fill_text(&mut field, "ab€"), 2);
        assert_eq!(&field, b"ab\0\0");
    }
}
