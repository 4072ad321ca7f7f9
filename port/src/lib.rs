//! The one way to reach rt-core. Every consumer in the companion (REST handlers, the
//! supervisor, the debugger, the plugin host, Modbus, the REST variable monitor, and the
//! protocol servers to come) holds an `Arc<`[`PlcPort`]`>` and nothing else; only the
//! control tool (`openplc-rt status|load|…`) and rt-core's own tests use the low-level
//! `shared_abi::client` types directly.
//!
//! A port holds the client lease (`RtClient`: the only producer of commands and image
//! writes, the only writer of inputs and the watch list) and a read-only `Observer` of the
//! same shared memory. The companion makes it [`PlcPort::detached`] and its supervisor
//! [`PlcPort::attach`]es rt-core once it runs (again after a restart); tools and tests
//! [`PlcPort::open`] one directly.
//!
//! # Contract
//!
//! | calls | may wait for rt-core | holds the lease | notes |
//! |---|---|---|---|
//! | `cycle`, `period_ns`, `state`, `incarnation` | no | no | atomic loads; 0 / `None` while detached |
//! | `rt_alive`, `status` | no | no | a `flock` probe (a system call) |
//! | `program_info`, `stats`, `histogram`, `load_result`, `retain_saved`, `forces` | no | no | seqlock copies |
//! | `outputs` | no | no | one shared copy per published scan |
//! | `inputs`, `update_inputs`, `write`, `send`, `drain` | no | for the call | never while waiting |
//! | `wait_*`, `command`, `force`, `unforce`, `load` (+ `_blocking`) | yes, up to `timeout` | only to send | fail fast, see below |
//! | `sample` (+ `_blocking`), [`Sampler`] | yes, up to `timeout` | no | the shared watch list |
//!
//! Every wait ends as soon as its condition holds, or with a typed [`PortError`]:
//! `RtGone` when rt-core died, `RtReplaced` when another rt-core took over the shared
//! memory (it never answers what its predecessor had taken, such as a load that killed
//! it), `Timeout` otherwise. Async forms suit tokio tasks and are woken within tens of
//! microseconds of each change rt-core publishes (a cycle's writes applied, a cycle
//! ended); `_blocking` forms suit plugin threads and tools, never a tokio worker.
//!
//! Writes are all or nothing and return a [`WriteTicket`]: their place in rt-core's write
//! ring. rt-core applies them at the start of the next cycle (at most
//! [`MAX_WRITES_PER_CYCLE`] per cycle, in order, from every caller together) and says so
//! before that cycle's scan, which is when `wait_applied` returns. The bounds
//! rt-core keeps per cycle are shared-abi's: [`MAX_WRITES_PER_CYCLE`],
//! [`MAX_COMMANDS_PER_CYCLE`], and `WriteRing::CAPACITY` writes queued at most.
//!
//! Protocol servers that only need the process image (Modbus, S7, the OPC-UA client) take
//! an `Arc<dyn `[`ImagePort`]`>`: that slice of the port as a trait, so their protocol code
//! can be unit-tested and fuzzed against [`MemoryImage`] (feature `model`) while production
//! passes the `PlcPort`.
//!
//! The debug variables' watch list belongs to the port's [`Sampler`]: every reader leases
//! its variables there, so the Editor's debugger, plugins and the REST monitor share one
//! list in rt-core.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use openplc_port::{LogSink, PlcPort};
//! use shared_abi::image::IecAddress;
//! use std::time::Duration;
//! let port = PlcPort::open("openplc-rt", LogSink::discard())?;
//! let mw3 = IecAddress::parse("%MW3").map_err(|e| e.to_string())?;
//! let ticket = port.write(&[(mw3, 42)])?;
//! port.wait_applied(ticket, Duration::from_secs(1)).await?;
//! assert_eq!(port.outputs().image.int_memory[3], 42);
//! let values = port.sample(&[0, 1], port.cycle(), Duration::from_secs(2)).await?;
//! # let _ = values; Ok(()) }
//! ```

mod commands;
mod error;
mod image;
mod log;
mod port;
mod sampler;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
mod ticker;
mod wait;

pub use commands::force_command;
pub use error::{Incarnation, PortError};
#[cfg(any(test, feature = "model"))]
pub use image::MemoryImage;
pub use image::{ImagePort, PortFuture};
pub use log::LogSink;
pub use port::{CommandTicket, LoadKind, PlcPort, WriteTicket};
pub use sampler::{Lease, Sample, SampleError, Sampler, Snapshot, Value};
pub use shared_abi::client::Status;
pub use shared_abi::layout::WriteRing;
pub use shared_abi::msg::{MAX_COMMANDS_PER_CYCLE, MAX_WRITES_PER_CYCLE};
