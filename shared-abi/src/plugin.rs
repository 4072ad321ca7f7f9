//! The OpenPLC v4 native plugin ABI: `plugin_runtime_args_t`, the struct a plugin's
//! `init(void *args)` receives (and a Python plugin's `init(capsule)`, wrapped in a
//! `PyCapsule` named [`ARGS_CAPSULE_NAME`]).
//!
//! The layout is upstream's v4.1.4 field order, so a plugin built against upstream's
//! headers loads unchanged, followed by the three fields upstream appended later
//! (`request_plc_start`, `set_switch_position`, `get_plc_state`). Appending costs a 4.1.4
//! plugin nothing: it never reads past `base_tick_ns`, and one that copies the struct by
//! value copies [`ARGS_SIZE_V4_1_4`] bytes of a larger struct.
//!
//! The C declaration is in `include/openplc_abi.h`; `tests/c_header.rs` compares every
//! field offset with what the C compiler computes.

use core::ffi::{c_char, c_int, c_uint, c_ulonglong};

use crate::image::{Area, Width};

/// The name of the `PyCapsule` a Python plugin's `init` receives.
pub const ARGS_CAPSULE_NAME: &core::ffi::CStr = c"openplc_runtime_args";

/// Bytes of `plugin_specific_config_file_path`, NUL included.
pub const CONFIG_PATH_BYTES: usize = 256;

/// `sizeof(plugin_runtime_args_t)` of a plugin built against upstream v4.1.4 (64-bit).
pub const ARGS_SIZE_V4_1_4: usize = 528;

/// Debug thunk status bytes, as the debug protocol uses them.
pub const DEBUG_STATUS_OK: u8 = 0x7E;
pub const DEBUG_STATUS_OUT_OF_BOUNDS: u8 = 0x81;
pub const DEBUG_STATUS_OUT_OF_MEMORY: u8 = 0x82;

/// `get_plc_state` answers.
pub const PLUGIN_PLC_STOPPED: c_int = 0;
pub const PLUGIN_PLC_RUNNING: c_int = 1;
pub const PLUGIN_PLC_ERROR: c_int = 2;

/// `set_switch_position` arguments.
pub const PLUGIN_SWITCH_STOP: c_int = 0;
pub const PLUGIN_SWITCH_RUN: c_int = 1;

/// A printf-style logging function (`void (*)(const char *fmt, ...)`).
pub type LogFn = unsafe extern "C" fn(fmt: *const c_char, ...);

/// The table a plugin reads `%IX`/`%QX`/`%MX` through: `uint8_t *(*)[8]`, one row of 8
/// cell pointers per byte address.
pub type BoolTable = *mut [*mut u8; 8];

/// `plugin_runtime_args_t`. Every function pointer is filled in by the host; `Option` only
/// makes a zeroed value representable.
#[repr(C)]
pub struct PluginRuntimeArgs {
    pub bool_input: BoolTable,
    pub bool_output: BoolTable,
    pub byte_input: *mut *mut u8,
    pub byte_output: *mut *mut u8,
    pub int_input: *mut *mut u16,
    pub int_output: *mut *mut u16,
    pub dint_input: *mut *mut u32,
    pub dint_output: *mut *mut u32,
    pub lint_input: *mut *mut u64,
    pub lint_output: *mut *mut u64,
    pub int_memory: *mut *mut u16,
    pub dint_memory: *mut *mut u32,
    pub lint_memory: *mut *mut u64,
    pub bool_memory: BoolTable,

    pub image_lock: Option<unsafe extern "C" fn()>,
    pub image_unlock: Option<unsafe extern "C" fn()>,

    pub debug_array_count: Option<unsafe extern "C" fn() -> u8>,
    pub debug_elem_count: Option<unsafe extern "C" fn(arr: u8) -> u16>,
    pub debug_size: Option<unsafe extern "C" fn(arr: u8, elem: u16) -> u16>,
    pub debug_read: Option<unsafe extern "C" fn(arr: u8, elem: u16, dest: *mut u8) -> u16>,
    pub debug_set: Option<unsafe extern "C" fn(arr: u8, elem: u16, forcing: bool, bytes: *const u8, len: u16) -> u8>,
    pub debug_write: Option<unsafe extern "C" fn(arr: u8, elem: u16, bytes: *const u8, len: u16) -> u8>,

    pub plugin_specific_config_file_path: [c_char; CONFIG_PATH_BYTES],
    pub buffer_size: c_int,
    pub bits_per_buffer: c_int,

    pub log_info: Option<LogFn>,
    pub log_debug: Option<LogFn>,
    pub log_warn: Option<LogFn>,
    pub log_error: Option<LogFn>,

    pub journal_write_bool: Option<unsafe extern "C" fn(kind: c_int, index: c_int, bit: c_int, value: c_int) -> c_int>,
    pub journal_write_byte: Option<unsafe extern "C" fn(kind: c_int, index: c_int, value: c_int) -> c_int>,
    pub journal_write_int: Option<unsafe extern "C" fn(kind: c_int, index: c_int, value: c_int) -> c_int>,
    pub journal_write_dint: Option<unsafe extern "C" fn(kind: c_int, index: c_int, value: c_uint) -> c_int>,
    pub journal_write_lint: Option<unsafe extern "C" fn(kind: c_int, index: c_int, value: c_ulonglong) -> c_int>,

    pub request_plc_stop: Option<unsafe extern "C" fn(reason: *const c_char)>,
    pub base_tick_ns: c_ulonglong,

    // Appended by upstream after v4.1.4.
    pub request_plc_start: Option<unsafe extern "C" fn(reason: *const c_char)>,
    pub set_switch_position: Option<unsafe extern "C" fn(position: c_int)>,
    pub get_plc_state: Option<unsafe extern "C" fn() -> c_int>,
}

const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(offset_of!(PluginRuntimeArgs, bool_memory) == 13 * 8);
    assert!(offset_of!(PluginRuntimeArgs, image_lock) == 112);
    assert!(offset_of!(PluginRuntimeArgs, image_unlock) == 120);
    assert!(offset_of!(PluginRuntimeArgs, debug_array_count) == 128);
    assert!(offset_of!(PluginRuntimeArgs, debug_write) == 168);
    assert!(offset_of!(PluginRuntimeArgs, plugin_specific_config_file_path) == 176);
    assert!(offset_of!(PluginRuntimeArgs, buffer_size) == 432);
    assert!(offset_of!(PluginRuntimeArgs, bits_per_buffer) == 436);
    assert!(offset_of!(PluginRuntimeArgs, log_info) == 440);
    assert!(offset_of!(PluginRuntimeArgs, log_error) == 464);
    assert!(offset_of!(PluginRuntimeArgs, journal_write_bool) == 472);
    assert!(offset_of!(PluginRuntimeArgs, journal_write_lint) == 504);
    assert!(offset_of!(PluginRuntimeArgs, request_plc_stop) == 512);
    assert!(offset_of!(PluginRuntimeArgs, base_tick_ns) == 520);
    assert!(offset_of!(PluginRuntimeArgs, request_plc_start) == ARGS_SIZE_V4_1_4);
    assert!(offset_of!(PluginRuntimeArgs, set_switch_position) == 536);
    assert!(offset_of!(PluginRuntimeArgs, get_plc_state) == 544);
    assert!(size_of::<PluginRuntimeArgs>() == 552);
    assert!(align_of::<PluginRuntimeArgs>() == 8);
};

/// The journal's buffer type codes (the `type` argument of `journal_write_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum JournalType {
    BoolInput = 0,
    BoolOutput = 1,
    BoolMemory = 2,
    ByteInput = 3,
    ByteOutput = 4,
    IntInput = 5,
    IntOutput = 6,
    IntMemory = 7,
    DintInput = 8,
    DintOutput = 9,
    DintMemory = 10,
    LintInput = 11,
    LintOutput = 12,
    LintMemory = 13,
}

impl JournalType {
    pub const fn from_code(code: c_int) -> Option<Self> {
        Some(match code {
            0 => Self::BoolInput,
            1 => Self::BoolOutput,
            2 => Self::BoolMemory,
            3 => Self::ByteInput,
            4 => Self::ByteOutput,
            5 => Self::IntInput,
            6 => Self::IntOutput,
            7 => Self::IntMemory,
            8 => Self::DintInput,
            9 => Self::DintOutput,
            10 => Self::DintMemory,
            11 => Self::LintInput,
            12 => Self::LintOutput,
            13 => Self::LintMemory,
            _ => return None,
        })
    }

    /// The image area and element width this code writes.
    pub const fn location(self) -> (Area, Width) {
        match self {
            Self::BoolInput => (Area::Input, Width::Bit),
            Self::BoolOutput => (Area::Output, Width::Bit),
            Self::BoolMemory => (Area::Memory, Width::Bit),
            Self::ByteInput => (Area::Input, Width::Byte),
            Self::ByteOutput => (Area::Output, Width::Byte),
            Self::IntInput => (Area::Input, Width::Word),
            Self::IntOutput => (Area::Output, Width::Word),
            Self::IntMemory => (Area::Memory, Width::Word),
            Self::DintInput => (Area::Input, Width::DWord),
            Self::DintOutput => (Area::Output, Width::DWord),
            Self::DintMemory => (Area::Memory, Width::DWord),
            Self::LintInput => (Area::Input, Width::LWord),
            Self::LintOutput => (Area::Output, Width::LWord),
            Self::LintMemory => (Area::Memory, Width::LWord),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_journal_code_maps_to_an_existing_area() {
        for code in 0..14 {
            let t = JournalType::from_code(code).unwrap();
            assert_eq!(t as c_int, code);
            let (area, width) = t.location();
            assert!(crate::image::IecAddress::new(area, width, 0, 0).is_ok(), "{t:?}");
        }
        assert_eq!(JournalType::from_code(14), None);
        assert_eq!(JournalType::from_code(-1), None);
    }
}
