//! How the S7 server reaches the PLC: one small trait, so the companion implements it
//! over its one port to rt-core in a few lines, and [`MemoryImage`], an in-memory image
//! for tests and the fuzzer.

use shared_abi::image::{Area, IecAddress, InputImage, OutputImage};
use shared_abi::layout::PlcState;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Why a write was not applied. Nothing of the batch was applied in any case but
/// [`WriteError::Timeout`], where it may still be applied later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The batch can never be queued (too many points, an input address).
    #[error("write refused: {0}")]
    Rejected(String),
    /// Queued, but not applied within the timeout (or the queue stayed full that long).
    #[error("not applied within the write timeout")]
    Timeout,
    /// rt-core (or the way to it) is gone.
    #[error("PLC unavailable: {0}")]
    Unavailable(String),
}

/// A write in flight; resolves once rt-core has applied the whole batch at the start of a
/// scan, or with why not.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'a>>;

/// The PLC as the S7 server sees it.
pub trait S7Image: Send + Sync + 'static {
    /// Calls `f` once with the input image and the outputs and memory of one published
    /// scan: every item of one S7 read request comes from this one view.
    fn read(&self, f: &mut dyn FnMut(&InputImage, &OutputImage));

    /// Writes `%Q`/`%M` cells (never inputs), all or nothing, applied by rt-core at the
    /// start of one scan. Resolves once applied, or with an error after at most
    /// `timeout` (an implementation may retry a full queue until then).
    fn write<'a>(&'a self, writes: &'a [(IecAddress, u64)], timeout: Duration) -> WriteFuture<'a>;

    /// The PLC's state (S7 CPU state RUN when `Running`, STOP otherwise).
    fn state(&self) -> PlcState;
}

/// An image in memory: writes apply at once (as if a scan started right then), the
/// state is whatever the test sets. Counts the write batches it applied.
pub struct MemoryImage {
    cells: Mutex<Cells>,
    state: AtomicU32,
    batches: AtomicU64,
    fail: Mutex<Option<WriteError>>,
}

struct Cells {
    inputs: Box<InputImage>,
    outputs: Box<OutputImage>,
}

impl Default for MemoryImage {
    fn default() -> Self {
        MemoryImage {
            cells: Mutex::new(Cells {
                inputs: bytemuck::zeroed_box::<InputImage>(),
                outputs: bytemuck::zeroed_box::<OutputImage>(),
            }),
            state: AtomicU32::new(PlcState::Running as u32),
            batches: AtomicU64::new(0),
            fail: Mutex::new(None),
        }
    }
}

impl MemoryImage {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Cells> {
        // Every method leaves the cells consistent before anything can panic.
        self.cells.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets any cell, inputs included (what a driver or a program would do).
    pub fn set(&self, addr: IecAddress, value: u64) {
        let mut c = self.lock();
        match addr.area() {
            Area::Input => c.inputs.set(addr, value),
            Area::Output | Area::Memory => c.outputs.set(addr, value),
        };
    }

    pub fn get(&self, addr: IecAddress) -> u64 {
        let c = self.lock();
        match addr.area() {
            Area::Input => c.inputs.get(addr),
            Area::Output | Area::Memory => c.outputs.get(addr),
        }
        .unwrap_or(0)
    }

    pub fn set_state(&self, state: PlcState) {
        self.state.store(state as u32, Ordering::Relaxed);
    }

    /// Write batches applied so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Makes every later write fail with `e` (or succeed again with `None`).
    pub fn fail_writes(&self, e: Option<WriteError>) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

impl S7Image for MemoryImage {
    fn read(&self, f: &mut dyn FnMut(&InputImage, &OutputImage)) {
        let c = self.lock();
        f(&c.inputs, &c.outputs)
    }

    fn write<'a>(&'a self, writes: &'a [(IecAddress, u64)], _timeout: Duration) -> WriteFuture<'a> {
        let result = (|| {
            if let Some(e) = self.fail.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return Err(e);
            }
            if let Some((a, _)) = writes.iter().find(|(a, v)| a.area() == Area::Input || a.check_value(*v).is_err()) {
                return Err(WriteError::Rejected(format!("{a} cannot take this write")));
            }
            let mut c = self.lock();
            for &(a, v) in writes {
                c.outputs.set(a, v);
            }
            self.batches.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })();
        Box::pin(std::future::ready(result))
    }

    fn state(&self) -> PlcState {
        PlcState::from_u32(self.state.load(Ordering::Relaxed))
    }
}
