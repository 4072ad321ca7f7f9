//! The process image as protocol servers see it (Modbus, S7, the OPC-UA client): one
//! consistent snapshot of what the last scan published, the inputs the companion publishes,
//! and all-or-nothing writes applied at a scan start.
//!
//! [`ImagePort`] is that slice of the port as a trait. [`PlcPort`] is its one production
//! implementation; [`MemoryImage`] (feature `model`) stands in for rt-core where a real one
//! cannot run: protocol unit tests and fuzz targets, which must be deterministic and fast.
//! A protocol crate takes an `Arc<dyn ImagePort>` and never reaches rt-core another way.

use crate::error::PortError;
use crate::port::{PlcPort, WriteTicket};
use shared_abi::image::{IecAddress, InputImage};
use shared_abi::layout::{OutputSnapshot, PlcState};
use shared_abi::sizes::ImageSizes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A wait of an [`ImagePort`].
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PortError>> + Send + 'a>>;

/// The process image, for protocol servers. Same contract as the [`PlcPort`] methods of
/// the same names: reads never wait for rt-core, waits end at once when rt-core is gone.
pub trait ImagePort: Send + Sync + 'static {
    /// rt-core's loop counter (0 while detached).
    fn cycle(&self) -> u64;
    /// The PLC's state (`None` while detached).
    fn state(&self) -> Option<PlcState>;
    /// The outputs and memory of the last published scan (one copy per scan, shared).
    /// Only the tables inside its `sizes` are copied; past them it reads zero.
    fn outputs(&self) -> Arc<OutputSnapshot>;
    /// The running program's table sizes (as last published; all zero before a program):
    /// a protocol maps only the points inside them.
    fn sizes(&self) -> ImageSizes {
        self.outputs().sizes
    }
    /// Lets `f` read the inputs as last published; false (and `f` not called) while detached.
    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) -> bool;
    /// Changes inputs with `f` and publishes them for the next scan.
    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) -> Result<(), PortError>;
    /// Queues writes to `%Q`/`%M` points, all or nothing.
    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError>;
    /// Waits until the writes of `ticket` are applied (at the start of a cycle, before its
    /// scan); returns that loop cycle: outputs stamped with it or later show them.
    fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> PortFuture<'_, u64>;
    /// Waits until the loop counter passes `cycle`.
    fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> PortFuture<'_, u64>;
}

impl dyn ImagePort {
    /// `f` over the inputs as last published; `None` while detached.
    pub fn inputs<R>(&self, f: impl FnOnce(&InputImage) -> R) -> Option<R> {
        let mut f = Some(f);
        let mut out = None;
        self.read_inputs(&mut |img| out = f.take().map(|f| f(img)));
        out
    }
}

impl ImagePort for PlcPort {
    fn cycle(&self) -> u64 {
        PlcPort::cycle(self)
    }

    fn state(&self) -> Option<PlcState> {
        PlcPort::state(self)
    }

    fn outputs(&self) -> Arc<OutputSnapshot> {
        PlcPort::outputs(self)
    }

    fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) -> bool {
        self.inputs(|img| f(img)).is_some()
    }

    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) -> Result<(), PortError> {
        PlcPort::update_inputs(self, |img| f(img))
    }

    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError> {
        PlcPort::write(self, writes)
    }

    fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> PortFuture<'_, u64> {
        Box::pin(PlcPort::wait_applied(self, ticket, timeout))
    }

    fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> PortFuture<'_, u64> {
        Box::pin(PlcPort::wait_cycle_after(self, cycle, timeout))
    }
}

#[cfg(any(test, feature = "model"))]
pub use model::MemoryImage;

#[cfg(any(test, feature = "model"))]
mod model {
    use super::*;
    use crate::error::Incarnation;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

    const DETACHED: u32 = u32::MAX;

    /// An image in memory with rt-core's rules for writes (inputs refused, values checked
    /// against their width), applied at once: every ticket is already applied. `refuse`
    /// makes writes fail as a full queue does; `stall` queues them but never applies them.
    /// The PLC state is RUNNING until [`MemoryImage::set_state`] changes it (a protocol that
    /// reports it, such as S7's CPU state, is tested with STOP too).
    pub struct MemoryImage {
        cycle: AtomicU64,
        outputs: Mutex<Arc<OutputSnapshot>>,
        inputs: Mutex<Box<InputImage>>,
        pub refuse: AtomicBool,
        pub stall: AtomicBool,
        /// `PlcState as u32`; `u32::MAX` stands for detached (`None`).
        state: AtomicU32,
    }

    impl MemoryImage {
        /// An image with the given contents, in state RUNNING.
        pub fn new(outputs: Box<OutputSnapshot>, inputs: Box<InputImage>) -> MemoryImage {
            MemoryImage {
                cycle: AtomicU64::new(1),
                outputs: Mutex::new(Arc::from(outputs)),
                inputs: Mutex::new(inputs),
                refuse: AtomicBool::new(false),
                stall: AtomicBool::new(false),
                state: AtomicU32::new(PlcState::Running as u32),
            }
        }

        /// What [`ImagePort::state`] answers from now on (`None`: as while detached). Only
        /// the state changes: the image and the rules for writes stay as they are.
        pub fn set_state(&self, state: Option<PlcState>) {
            self.state.store(state.map_or(DETACHED, |s| s as u32), Ordering::Release);
        }

        /// An all-zero image, every table 1024 elements long.
        pub fn zeroed() -> MemoryImage {
            let mut outputs: Box<OutputSnapshot> = bytemuck::zeroed_box();
            outputs.sizes = ImageSizes::LEGACY;
            MemoryImage::new(outputs, bytemuck::zeroed_box())
        }

        /// Replaces the published outputs (a scan published new ones).
        pub fn publish(&self, outputs: Box<OutputSnapshot>) {
            *self.outputs.lock().unwrap_or_else(|p| p.into_inner()) = Arc::from(outputs);
            self.cycle.fetch_add(1, Ordering::AcqRel);
        }

        /// A copy of the inputs as last published.
        pub fn inputs(&self) -> Box<InputImage> {
            let mut copy: Box<InputImage> = bytemuck::zeroed_box();
            let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
            bytemuck::bytes_of_mut(&mut *copy).copy_from_slice(bytemuck::bytes_of(&**inputs));
            copy
        }

        fn ticket(&self, applied_by: u64) -> WriteTicket {
            WriteTicket { applied_by, position: 0, incarnation: Incarnation { pid: 0, boot_ns: 0 } }
        }
    }

    impl ImagePort for MemoryImage {
        fn cycle(&self) -> u64 {
            self.cycle.load(Ordering::Acquire)
        }

        fn state(&self) -> Option<PlcState> {
            match self.state.load(Ordering::Acquire) {
                DETACHED => None,
                s => Some(PlcState::from_u32(s)),
            }
        }

        fn outputs(&self) -> Arc<OutputSnapshot> {
            self.outputs.lock().unwrap_or_else(|p| p.into_inner()).clone()
        }

        fn read_inputs(&self, f: &mut dyn FnMut(&InputImage)) -> bool {
            f(&self.inputs.lock().unwrap_or_else(|p| p.into_inner()));
            true
        }

        fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) -> Result<(), PortError> {
            f(&mut self.inputs.lock().unwrap_or_else(|p| p.into_inner()));
            Ok(())
        }

        fn write(&self, writes: &[(IecAddress, u64)]) -> Result<WriteTicket, PortError> {
            crate::port::check_writes(writes)?;
            let sizes = self.sizes();
            if let Some(&(addr, _)) = writes.iter().find(|(addr, _)| !sizes.contains(*addr)) {
                return Err(PortError::OutsideImage(addr));
            }
            if self.refuse.load(Ordering::Acquire) {
                return Err(PortError::WriteQueueFull);
            }
            let now = self.cycle.load(Ordering::Acquire);
            if self.stall.load(Ordering::Acquire) {
                return Ok(self.ticket(now + 1));
            }
            let mut outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
            // Copy on write, of the stamp and the tables inside the sizes only (as rt-core's
            // readers copy them).
            let mut next: Arc<OutputSnapshot> = bytemuck::allocation::zeroed_arc();
            if let Some(n) = Arc::get_mut(&mut next) {
                let head = OutputSnapshot::HEAD_BYTES;
                bytemuck::bytes_of_mut(n)[..head].copy_from_slice(&bytemuck::bytes_of(&**outputs)[..head]);
                n.image.copy_within_sizes(&outputs.image, &sizes);
                for &(addr, value) in writes {
                    n.image.set(addr, value);
                }
            }
            *outputs = next;
            // Applied by cycle `now`, and the counter has already passed it.
            self.cycle.store(now + 1, Ordering::Release);
            Ok(self.ticket(now))
        }

        fn wait_applied(&self, ticket: WriteTicket, timeout: Duration) -> PortFuture<'_, u64> {
            Box::pin(async move {
                if self.cycle() > ticket.applied_by {
                    Ok(ticket.applied_by)
                } else {
                    tokio::time::sleep(timeout).await;
                    Err(PortError::Timeout { what: "image writes", after: timeout })
                }
            })
        }

        fn wait_cycle_after(&self, cycle: u64, timeout: Duration) -> PortFuture<'_, u64> {
            Box::pin(async move {
                let now = self.cycle();
                if now > cycle {
                    Ok(now)
                } else {
                    tokio::time::sleep(timeout).await;
                    Err(PortError::Timeout { what: "a scan cycle", after: timeout })
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_image_reports_the_state_it_is_given() {
        let image = MemoryImage::zeroed();
        assert_eq!(ImagePort::state(&image), Some(PlcState::Running), "running by default");
        image.set_state(Some(PlcState::Stopped));
        assert_eq!(ImagePort::state(&image), Some(PlcState::Stopped));
        image.set_state(None);
        assert_eq!(ImagePort::state(&image), None, "as while detached");
    }
}
