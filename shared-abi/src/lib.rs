//! The fixed shared-memory layout between rt-core and the companion, and the program ABI.
//!
//! Everything here is `#[repr(C)]`, sized at compile time and free of pointers, so two
//! processes built from the same sources agree on it byte for byte:
//!
//! - [`image`]: the OpenPLC process image (room for 65 536 elements per table).
//! - [`sizes`]: how long each table is for the program loaded (`image.conf`, located variables).
//! - [`seqlock`], [`triple`], [`ring`]: the lock-free building blocks, one writer each.
//! - [`msg`]: commands, image writes, events and log lines (postcard in fixed slots).
//! - [`stats`]: scan statistics and the 1 µs latency histogram.
//! - [`tasks`]: per-task statistics and histograms of a program whose tasks run on threads.
//! - [`debug`]: the watch list, watched values and program information.
//! - [`layout`]: the file itself, its header, and who writes which region.
//! - [`migrate`]: the online-change plan a client stages and the swap report rt-core writes.
//! - [`program`]: the C ABI every program library exports (see `include/openplc_abi.h`).
//! - [`shm`] (feature `std`): opening the file as rt-core, as the client, or as an observer.
//! - [`client`] (feature `std`): the typed API the companion and the control tool drive rt-core with.
#![cfg_attr(not(feature = "std"), no_std)]

#[cfg(feature = "std")]
pub mod client;
pub mod debug;
pub mod image;
pub mod layout;
pub mod migrate;
pub mod msg;
mod pad;
pub mod plugin;
pub mod program;
pub mod retain;
pub mod ring;
pub mod seqlock;
#[cfg(feature = "std")]
pub mod shm;
pub mod sizes;
pub mod stats;
pub mod tasks;
pub mod triple;

pub use pad::CachePadded;
