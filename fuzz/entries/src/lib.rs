//! The fuzz targets' entry points, one per parser family that a stranger can feed: an
//! upload, a network peer, or the other process across the shared memory.
//!
//! Both `cargo fuzz` (the `fuzz/` crate, nightly) and the replay test (`tests/replay.rs`,
//! stable, part of `cargo test --workspace`) call these functions, so a corpus file or a
//! crash input runs through exactly the same code in both. Each entry takes the raw bytes,
//! calls the runtime's real public entry point, and asserts what must hold for every input
//! (cheap invariants: no panic, bounded output, round trips, replies that match their
//! requests). A panic is a finding.

pub mod bundle_files;
pub mod debug_pdu;
pub mod debug_values;
pub mod image_conf;
pub mod modbus_conf;
pub mod modbus_tcp;
pub mod monitor_input;
pub mod opcua_decode;
pub mod plugins_conf;
pub mod rest_bodies;
pub mod s7_request;
pub mod settings_json;
pub mod shm_messages;
mod support;
pub mod upload_zip;

/// A target's entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name (the `cargo fuzz` target, and its directory under `fuzz/seeds/`,
/// `fuzz/corpus/` and `fuzz/regressions/`) and its entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("upload_zip", upload_zip::run),
    ("bundle_files", bundle_files::run),
    ("debug_pdu", debug_pdu::run),
    ("debug_values", debug_values::run),
    ("modbus_conf", modbus_conf::run),
    ("modbus_tcp", modbus_tcp::run),
    ("s7_request", s7_request::run),
    ("opcua_decode", opcua_decode::run),
    ("plugins_conf", plugins_conf::run),
    ("settings_json", settings_json::run),
    ("image_conf", image_conf::run),
    ("rest_bodies", rest_bodies::run),
    ("shm_messages", shm_messages::run),
    ("monitor_input", monitor_input::run),
];
