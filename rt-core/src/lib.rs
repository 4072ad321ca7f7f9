//! rt-core: the real-time process of the OpenPLC runtime.
//!
//! - [`runtime`]: `openplc-rt run`: real-time set-up and the threads.
//! - [`engine`]: one scan cycle's work (commands, inputs, program, outputs, debug, stats).
//! - [`extents`]: which parts of the output image a program can change.
//! - [`program`]: loading a program library and calling it.
//! - [`loader`]: the thread that loads and frees programs off the scan thread.
//! - [`watchdog`]: aborts a program that overstays its scan.
//! - [`guard`]: the crash guard around every call into program code.
//! - [`sys`]: the real-time syscalls.
//! - [`ctl`]: the control tool's commands.

pub mod ctl;
pub mod engine;
pub mod extents;
pub mod guard;
pub mod loader;
pub mod program;
pub mod runtime;
pub mod sys;
pub mod watchdog;
