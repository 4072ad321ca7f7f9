//! The one program ABI rt-core knows: a versioned C struct of function pointers that every
//! program library exports through `oplc_program_entry`. Adapters (C for MatIEC bundles,
//! C++ for STruC++ bundles) are compiled together with the generated code and fill it in,
//! so rt-core never learns which compiler made a program.
//!
//! The C declaration is `include/openplc_abi.h`; `tests/c_header.rs` keeps the two in step.

use crate::image::Image;
use core::ffi::{c_char, c_void};

/// Bumped on any incompatible change of `ProgramAbi` or `LocatedInfo`.
pub const PROGRAM_ABI_VERSION: u32 = 2;

/// The symbol rt-core resolves in a program library.
pub const PROGRAM_ENTRY_SYMBOL: &str = "oplc_program_entry";

/// `const oplc_program_abi_t *oplc_program_entry(void)`.
pub type ProgramEntry = unsafe extern "C" fn() -> *const ProgramAbi;

/// How a debug variable's bytes are laid out, so the debugger can put them on the wire
/// the way each Editor generation decodes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VarKind {
    /// A little-endian scalar of `var_size` bytes (BOOL … LREAL); byte-swapped when a big-
    /// endian forced value arrives.
    Scalar = 0,
    /// MatIEC's 16-byte `{long tv_sec; long tv_nsec;}` (TIME, DATE, TOD, DT).
    Timespec = 1,
    /// A length-prefixed string (never byte-swapped).
    String = 2,
    /// Anything else, copied as is.
    Opaque = 3,
}

impl VarKind {
    pub const fn from_u32(v: u32) -> Self {
        match v {
            0 => VarKind::Scalar,
            1 => VarKind::Timespec,
            2 => VarKind::String,
            _ => VarKind::Opaque,
        }
    }
}

/// A located variable of the program, for diagnostics (`oplc_located_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocatedInfo {
    /// `image::Area` as u8.
    pub area: u8,
    /// `image::Width` as u8.
    pub width: u8,
    pub index: u16,
    pub bit: u8,
    /// 1 when the variable lives in the image itself; 0 when the adapter keeps it in the
    /// program's storage and copies it (a type whose size differs from the location's).
    pub in_image: u8,
    /// `sizeof` the IEC type the program declared.
    pub size: u16,
}

impl LocatedInfo {
    /// The image address the adapter describes (its area, width, index and, for a bit, the
    /// bit), or `None` for codes or an index no address has.
    pub fn address(&self) -> Option<crate::image::IecAddress> {
        use crate::image::{Area, IecAddress, Width};
        let area = match self.area {
            0 => Area::Input,
            1 => Area::Output,
            2 => Area::Memory,
            _ => return None,
        };
        let width = match self.width {
            0 => Width::Bit,
            1 => Width::Byte,
            2 => Width::Word,
            3 => Width::DWord,
            4 => Width::LWord,
            _ => return None,
        };
        IecAddress::new(area, width, self.index, if width == Width::Bit { self.bit } else { 0 }).ok()
    }
}

/// `oplc_program_abi_t`. Every function pointer may be null only where noted.
#[repr(C)]
pub struct ProgramAbi {
    /// `PROGRAM_ABI_VERSION` of the adapter.
    pub abi_version: u32,
    /// `sizeof(oplc_program_abi_t)` as the adapter saw it.
    pub struct_size: u32,
    /// NUL-terminated: "matiec", "strucpp", …
    pub generator: *const c_char,
    /// Puts the program's located variables into `image`. Called once, before `init`.
    /// Returns 0 or a negative error.
    pub bind_image: Option<unsafe extern "C" fn(image: *mut Image) -> i32>,
    /// Cold-start initialisation of every variable. Returns 0 or a negative error.
    pub init: Option<unsafe extern "C" fn() -> i32>,
    /// Runs one scan (tasks due at `tick`) and advances the program's clock by one period.
    pub run_tick: Option<unsafe extern "C" fn(tick: u64)>,
    /// The program's base tick, ns.
    pub tick_period_ns: Option<unsafe extern "C" fn() -> u64>,
    /// NUL-terminated hex MD5 of the program source, or null.
    pub program_md5: Option<unsafe extern "C" fn() -> *const c_char>,
    pub var_count: Option<unsafe extern "C" fn() -> u32>,
    /// Size of a debug variable in bytes, 0 when out of range.
    pub var_size: Option<unsafe extern "C" fn(index: u32) -> u32>,
    /// `VarKind` of a debug variable.
    pub var_kind: Option<unsafe extern "C" fn(index: u32) -> u32>,
    /// Address of a debug variable's current value (the forced value while forced), or
    /// null when out of range. It may change only when the variable is forced or released:
    /// rt-core keeps it until then.
    pub var_addr: Option<unsafe extern "C" fn(index: u32) -> *mut c_void>,
    /// Forces a variable to `len` native-order bytes. Returns 0 or a negative error.
    pub var_force: Option<unsafe extern "C" fn(index: u32, value: *const c_void, len: u32) -> i32>,
    /// Releases a forced variable. Returns 0 or a negative error.
    pub var_unforce: Option<unsafe extern "C" fn(index: u32) -> i32>,
    /// May be null: one group holding every variable.
    pub group_count: Option<unsafe extern "C" fn() -> u32>,
    /// May be null when `group_count` is.
    pub group_len: Option<unsafe extern "C" fn(group: u32) -> u32>,
    /// Every image cell the program writes must be listed (`in_image` = 1): rt-core
    /// publishes only those output and memory cells each cycle. May be null: then the
    /// whole output image is published every cycle.
    pub located_count: Option<unsafe extern "C" fn() -> u32>,
    /// Fills `out` for located variable `i`; returns 0, or -1 when out of range.
    pub located_at: Option<unsafe extern "C" fn(i: u32, out: *mut LocatedInfo) -> i32>,
    // Appended after the first release: present when `struct_size` covers them.
    /// How many RETAIN variables the program declares. May be null: none.
    pub retain_count: Option<unsafe extern "C" fn() -> u32>,
    /// The debug index of RETAIN variable `i` (its bytes are `var_size` at `var_addr`), or
    /// `u32::MAX` when out of range. Null with `retain_count`.
    pub retain_var: Option<unsafe extern "C" fn(i: u32) -> u32>,
    /// Restores RETAIN variable `i` from `len` bytes saved from `var_addr` (after `init`,
    /// before the first scan, nothing forced). Returns 0 or a negative error. Null with
    /// `retain_count`.
    pub retain_set: Option<unsafe extern "C" fn(i: u32, value: *const c_void, len: u32) -> i32>,
    // Appended after the RETAIN functions: present when `struct_size` covers it.
    /// Writes debug variable `index` once, as a program write (not a force), from `len`
    /// native-order bytes (a short value zero-padded). A forced variable keeps its forced
    /// value. Returns 0 or a negative error. May be null: rt-core refuses `SetVar` then.
    pub var_write: Option<unsafe extern "C" fn(index: u32, value: *const c_void, len: u32) -> i32>,
    // Appended after `var_write`: present when `struct_size` covers them. A program with two
    // or more tasks that has them gets one real-time thread per task (rt-core's `tasks`);
    // otherwise `run_tick` runs every due task on the scan thread.
    /// How many IEC tasks the program has (0 or null: `run_tick` only).
    pub task_count: Option<unsafe extern "C" fn() -> u32>,
    /// Fills `out` for task `task`; 0, or -1 when out of range.
    pub task_info: Option<unsafe extern "C" fn(task: u32, out: *mut TaskInfo) -> i32>,
    /// Called once on each task thread before its first `task_run` (thread-local state, such
    /// as a per-thread program clock, is set up here rather than on the first scan). 0 or < 0.
    pub task_thread_init: Option<unsafe extern "C" fn() -> i32>,
    /// Copies the image's inputs into the located inputs of task `task`'s programs. Called by
    /// rt-core while that task is not running. 0, or -1 when out of range.
    pub task_inputs: Option<unsafe extern "C" fn(task: u32) -> i32>,
    /// Runs task `task`'s programs once, with the program clock at `tick` base periods.
    /// Touches only that task's programs (and what they share through globals).
    pub task_run: Option<unsafe extern "C" fn(task: u32, tick: u64)>,
    /// Copies task `task`'s located outputs and memory into the image. Called by rt-core while
    /// that task is not running. 0, or -1 when out of range.
    pub task_outputs: Option<unsafe extern "C" fn(task: u32) -> i32>,
}

/// Bytes of a task name, NUL included.
pub const TASK_NAME_BYTES: usize = 32;

/// One IEC task as the program declares it (`oplc_task_info_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// NUL-terminated (truncated to fit).
    pub name: [u8; TASK_NAME_BYTES],
    /// 0: runs every base tick.
    pub interval_ns: u64,
    /// As declared; IEC 61131-3: 0 is the most urgent.
    pub priority: i32,
    pub reserved: u32,
}

impl TaskInfo {
    pub const fn empty() -> Self {
        TaskInfo { name: [0; TASK_NAME_BYTES], interval_ns: 0, priority: 0, reserved: 0 }
    }

    /// The name up to its NUL, when it is UTF-8.
    pub fn name_str(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..end]).unwrap_or("")
    }
}

/// `struct_size` of the first release's table (without the RETAIN functions): libraries
/// built then still load, without RETAIN.
pub const PROGRAM_ABI_BASE_SIZE: usize = 16 + 15 * 8;
/// `struct_size` of a table with the RETAIN functions but without `var_write`.
pub const PROGRAM_ABI_RETAIN_SIZE: usize = PROGRAM_ABI_BASE_SIZE + 3 * 8;
/// `struct_size` of a table with `var_write` but without the task functions.
pub const PROGRAM_ABI_WRITE_SIZE: usize = PROGRAM_ABI_RETAIN_SIZE + 8;

impl ProgramAbi {
    /// Whether a table of `struct_size` bytes has the RETAIN functions.
    pub const fn has_retain(struct_size: u32) -> bool {
        struct_size as usize >= PROGRAM_ABI_RETAIN_SIZE
    }

    /// Whether a table of `struct_size` bytes has `var_write`.
    pub const fn has_var_write(struct_size: u32) -> bool {
        struct_size as usize >= PROGRAM_ABI_WRITE_SIZE
    }

    /// Whether a table of `struct_size` bytes has the task functions.
    pub const fn has_tasks(struct_size: u32) -> bool {
        struct_size as usize >= core::mem::size_of::<ProgramAbi>()
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<LocatedInfo>() == 8);
    assert!(offset_of!(ProgramAbi, generator) == 8);
    assert!(offset_of!(ProgramAbi, bind_image) == 16);
    assert!(offset_of!(ProgramAbi, located_at) == 16 + 14 * 8);
    assert!(offset_of!(ProgramAbi, retain_count) == PROGRAM_ABI_BASE_SIZE);
    assert!(offset_of!(ProgramAbi, var_write) == PROGRAM_ABI_RETAIN_SIZE);
    assert!(offset_of!(ProgramAbi, task_count) == PROGRAM_ABI_WRITE_SIZE);
    assert!(size_of::<ProgramAbi>() == PROGRAM_ABI_WRITE_SIZE + 6 * 8);
    assert!(size_of::<TaskInfo>() == 48);
};

/// What `openplc-rt check <library>` prints when the library loaded and initialised in its
/// throwaway process; the builder requires it, so a library whose start-up code ends the
/// checker with status 0 (a raw exit system call) still fails the build.
pub const CHECK_OK: &str = "loads, program ABI";
