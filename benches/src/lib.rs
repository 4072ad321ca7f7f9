//! What the benchmark binaries share: the programs they run, child processes that are always
//! stopped, cyclictest, 1 µs latency histograms, and the rt-core-against-cyclictest comparison
//! with its bootstrap intervals.
//!
//! The binaries (`src/bin/`) are `latency` (rt-core alone against cyclictest alone, idle),
//! `full-load` (a real companion and rt-core under HTTPS, debugger and Modbus load, rt-core
//! against cyclictest on the same CPU in the same windows), `deploy` (upload to RUNNING, step
//! by step) and `build-program`.

pub mod compare;
pub mod cyclictest;
pub mod error;
pub mod histogram;
pub mod https;
pub mod process;
pub mod programs;
pub mod slice_rt;

pub use error::Error;
pub use programs::{all_points_program, demo_program, repo_root, strucpp_demo_program, strucpp_tasks_program};
