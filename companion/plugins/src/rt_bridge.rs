//! [`PluginPlc`] over a `Mutex<RtClient>` and an `Observer` of the same shared memory: the
//! implementation the tests use, and a reference for the companion's own.
//!
//! Reads go through the observer (lock-free seqlock copies); the mutex is held only for
//! the short calls that need the client lease (inputs, writes, commands, the watch list),
//! never while waiting for a scan.

use crate::plc::{PlcError, PluginPlc};
use shared_abi::client::{ClientError, Observer, Reader, RtClient};
use shared_abi::debug::{DebugValues, ProgramInfo};
use shared_abi::image::{IecAddress, InputImage};
use shared_abi::layout::{OutputSnapshot, PlcState};
use shared_abi::msg::{Command, LogLevel};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many log lines [`RtClientBridge::logs`] keeps.
const KEPT_LOG_LINES: usize = 2000;

/// How often waits look at the shared memory again.
const POLL: Duration = Duration::from_micros(250);

pub struct RtClientBridge {
    client: Mutex<RtClient>,
    observer: Observer,
    /// Serialises `debug_read`s: each one owns the watch list until it has its value.
    debug: Mutex<()>,
    logs: Mutex<VecDeque<(LogLevel, String)>>,
}

impl RtClientBridge {
    /// Takes the client lease of shared memory `name` (see `shared_abi::shm::shm_path`).
    pub fn open(name: &str) -> Result<Self, ClientError> {
        let client = RtClient::open(name)?;
        let observer = Observer::open(name)?;
        Ok(RtClientBridge {
            client: Mutex::new(client),
            observer,
            debug: Mutex::new(()),
            logs: Mutex::new(VecDeque::new()),
        })
    }

    /// Runs `f` with the client (loading a program, setting inputs in a test).
    pub fn with_client<R>(&self, f: impl FnOnce(&mut RtClient) -> R) -> R {
        f(&mut self.lock_client())
    }

    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// The log lines received so far (the most recent `KEPT_LOG_LINES`).
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    fn lock_client(&self) -> MutexGuard<'_, RtClient> {
        // A panic elsewhere while holding the client leaves it usable: every call on it is
        // a complete ring push or buffer publish.
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PluginPlc for RtClientBridge {
    fn read_outputs(&self, into: &mut OutputSnapshot) -> bool {
        self.observer.shm().outputs.read(into, 100_000).is_ok()
    }

    fn read_inputs(&self, into: &mut InputImage) {
        // Byte copy: no image-sized temporary on a caller's (possibly small) stack.
        bytemuck::bytes_of_mut(into).copy_from_slice(bytemuck::bytes_of(self.lock_client().inputs()));
    }

    fn update_inputs(&self, f: &mut dyn FnMut(&mut InputImage)) {
        self.lock_client().update_inputs(f);
    }

    fn write(&self, writes: &[(IecAddress, u64)]) -> Result<(), PlcError> {
        let mut client = self.lock_client();
        for &(addr, value) in writes {
            client.write(addr, value).map_err(|e| match e {
                ClientError::RingFull => PlcError::QueueFull,
                other => PlcError::Rejected(other.to_string()),
            })?;
        }
        Ok(())
    }

    fn wait_for_scan_after(&self, cycle: u64, timeout: Duration) -> Option<u64> {
        wait_for_published_scan(&self.observer, cycle, timeout)
    }

    fn state(&self) -> PlcState {
        self.observer.status().state
    }

    fn request_start(&self, _reason: &str) {
        // Queued only: the answer comes on the scan thread's next cycle.
        let _ = self.lock_client().send(Command::Start);
    }

    fn request_stop(&self, _reason: &str) {
        let _ = self.lock_client().send(Command::Stop);
    }

    fn program_info(&self) -> Option<ProgramInfo> {
        self.observer.program_info().ok().filter(|p| p.program_gen != 0)
    }

    fn debug_read(&self, var: u32, timeout: Duration) -> Option<Vec<u8>> {
        let _one_at_a_time = self.debug.lock().unwrap_or_else(|e| e.into_inner());
        let after = self.observer.status().heartbeat;
        let generation = self.lock_client().set_watch(&[var]);
        let start = Instant::now();
        loop {
            if let Ok(values) = self.observer.debug_values()
                && values.watch_generation == generation
                && values.cycle > after
            {
                return value_of(&values, var);
            }
            if start.elapsed() >= timeout || !self.observer.rt_alive() {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    fn debug_force(&self, var: u32, value: Option<&[u8]>) -> Result<(), PlcError> {
        let command = match value {
            Some(bytes) => {
                let value = heapless::Vec::from_slice(bytes)
                    .map_err(|_| PlcError::Rejected(format!("forced value of {} bytes is too long", bytes.len())))?;
                Command::Force { var, value, big_endian: false }
            }
            None => Command::Unforce { var },
        };
        self.lock_client().send(command).map(|_| ()).map_err(|e| match e {
            ClientError::RingFull => PlcError::QueueFull,
            other => PlcError::Rejected(other.to_string()),
        })
    }

    fn log(&self, level: LogLevel, text: &str) {
        match level {
            LogLevel::Debug => tracing::debug!(target: "plugins", "{text}"),
            LogLevel::Info => tracing::info!(target: "plugins", "{text}"),
            LogLevel::Warning => tracing::warn!(target: "plugins", "{text}"),
            LogLevel::Error => tracing::error!(target: "plugins", "{text}"),
        }
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if logs.len() == KEPT_LOG_LINES {
            logs.pop_front();
        }
        logs.push_back((level, text.to_string()));
    }
}

/// Waits until rt-core publishes outputs stamped with a cycle after `cycle`; returns that
/// stamp, or `None` after `timeout` or when rt-core is gone. For any [`PluginPlc`] that
/// reads the shared memory through an `Observer` (this bridge, the companion's).
pub fn wait_for_published_scan(observer: &Observer, cycle: u64, timeout: Duration) -> Option<u64> {
    let shm = observer.shm();
    let start = Instant::now();
    let mut seen_version = None;
    let mut snap: Box<OutputSnapshot> = bytemuck::zeroed_box();
    loop {
        let version = shm.outputs.version();
        if seen_version != Some(version)
            && version & 1 == 0
            && let Ok(v) = shm.outputs.read(&mut snap, 1000)
        {
            seen_version = Some(v);
            if snap.cycle > cycle {
                return Some(snap.cycle);
            }
        }
        if start.elapsed() >= timeout || !observer.rt_alive() {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

fn value_of(values: &DebugValues, var: u32) -> Option<Vec<u8>> {
    let n = (values.count as usize).min(values.entries.len());
    let entry = values.entries[..n].iter().find(|e| e.var == var && e.valid == 1)?;
    let start = entry.offset as usize;
    values.data.get(start..start + entry.size as usize).map(<[u8]>::to_vec)
}
