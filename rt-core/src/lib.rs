//! rt-core: the real-time engine of the OpenPLC runtime (the `openplc-rt` binary's `run`;
//! its control tool lives in the binary's own module tree, outside this library).
//!
//! - [`runtime`]: `openplc-rt run`: real-time set-up and the threads.
//! - [`engine`]: one scan cycle's work (commands, inputs, program, outputs, debug, stats).
//! - [`force`]: turning a forced or written value into the program's native bytes.
//! - [`extents`]: which parts of the output image a program can change.
//! - [`program`]: loading a program library and calling it.
//! - [`queue`]: the wait-free queues between the scan and loader threads.
//! - [`loader`]: the thread that loads and unloads programs off the scan thread.
//! - [`watchdog`]: aborts a program that overstays its scan.
//! - [`guard`]: the crash guard around every call into program code, on every thread.
//! - [`restart`]: restarting in place (same pid) after a fault that may have left a lock held.
//! - [`privilege`]: `--user`: giving up root, keeping what real time needs.
//! - [`sys`]: the real-time syscalls.
//! - [`tasks`]: IEC tasks on real-time threads of their own, released by the scan thread.

pub mod engine;
pub mod extents;
pub mod force;
pub mod guard;
pub mod loader;
pub mod privilege;
pub mod program;
pub mod queue;
pub mod residency;
pub mod restart;
pub mod runtime;
pub mod sys;
pub mod tasks;
pub mod watchdog;
