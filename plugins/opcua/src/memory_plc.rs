//! [`MemoryPlc`] (feature `model`): [`DebugVars`] of a PLC in memory, for tests of what a
//! real program cannot easily hold (one variable of every IEC type, exotic sizes). A
//! thread runs "scans" at a fixed period in rt-core's order: queued writes applied at the
//! scan start, then the program (a closure), then the values published. A sample waits for
//! a scan that began after it was asked for, as the port's sampler does. The process image
//! is port's `MemoryImage`.

use crate::plc::{DebugVars, PlcError, ProgramLayout, RawValue, Scan};
use async_trait::async_trait;
use shared_abi::layout::PlcState;
use shared_abi::program::VarKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// One debug variable of the pretend program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemVar {
    pub kind: VarKind,
    pub bytes: Vec<u8>,
}

impl MemVar {
    pub fn scalar(bytes: &[u8]) -> MemVar {
        MemVar { kind: VarKind::Scalar, bytes: bytes.to_vec() }
    }
}

/// What the pretend program sees each scan.
pub struct ScanContext<'a> {
    pub vars: &'a mut [MemVar],
    /// The scan number (1 for the first).
    pub cycle: u64,
}

type Program = Box<dyn FnMut(&mut ScanContext<'_>) + Send>;

struct State {
    vars: Vec<MemVar>,
    pending_vars: Vec<(u32, Vec<u8>)>,
    program: Option<Program>,
    plc_state: PlcState,
    layout: ProgramLayout,
    /// The values published by the last scan.
    published: Arc<Vec<MemVar>>,
}

struct Inner {
    state: Mutex<State>,
    /// Scans completed; every waiter watches it.
    cycle: watch::Sender<u64>,
    samples: AtomicU64,
}

/// A PLC in memory. Dropping the last handle stops its scan thread.
#[derive(Clone)]
pub struct MemoryPlc {
    inner: Arc<Inner>,
}

impl MemoryPlc {
    /// A running PLC with these debug variables (one debug array), scanning every `period`.
    pub fn new(vars: Vec<MemVar>, period: Duration) -> MemoryPlc {
        let layout = ProgramLayout {
            program_gen: 1,
            md5: Some("0123456789abcdef0123456789abcdef".into()),
            var_count: vars.len() as u32,
            group_len: vec![vars.len() as u32],
        };
        let published = Arc::new(vars.clone());
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                vars,
                pending_vars: Vec::new(),
                program: None,
                plc_state: PlcState::Running,
                layout,
                published,
            }),
            cycle: watch::channel(0).0,
            samples: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new().name("memory-plc".into()).spawn(move || scan_loop(weak, period)).ok();
        MemoryPlc { inner }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the program run every scan.
    pub fn set_program(&self, program: impl FnMut(&mut ScanContext<'_>) + Send + 'static) {
        self.lock().program = Some(Box::new(program));
    }

    /// Splits the flat list into STruC++-style debug arrays.
    pub fn set_groups(&self, group_len: Vec<u32>) {
        self.lock().layout.group_len = group_len;
    }

    /// Running scans or not (a stopped PLC answers no sample).
    pub fn set_state(&self, state: PlcState) {
        self.lock().plc_state = state;
    }

    /// A variable's current bytes (what the program holds now).
    pub fn var(&self, index: u32) -> Option<MemVar> {
        self.lock().vars.get(index as usize).cloned()
    }

    /// Sets a variable directly, as the program would.
    pub fn set_var(&self, index: u32, bytes: &[u8]) {
        if let Some(v) = self.lock().vars.get_mut(index as usize) {
            v.bytes = bytes.to_vec();
        }
    }

    /// Scans completed.
    pub fn cycle(&self) -> u64 {
        *self.inner.cycle.borrow()
    }

    /// `sample` calls so far (a test checks subscriptions share samples).
    pub fn sample_calls(&self) -> u64 {
        self.inner.samples.load(Ordering::Relaxed)
    }

    async fn wait_for_scan_after(&self, cycle: u64, timeout: Duration) -> Result<u64, PlcError> {
        let mut rx = self.inner.cycle.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|&c| c > cycle)).await;
        match waited {
            Ok(Ok(c)) => Ok(*c),
            Ok(Err(_)) => Err(PlcError::Unavailable("the PLC is gone".into())),
            Err(_) => Err(PlcError::Timeout),
        }
    }
}

fn scan_loop(inner: Weak<Inner>, period: Duration) {
    let mut next = std::time::Instant::now();
    loop {
        next += period;
        if let Some(wait) = next.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = std::time::Instant::now();
        }
        let Some(inner) = inner.upgrade() else { return };
        let mut st = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.plc_state != PlcState::Running {
            continue;
        }
        let st = &mut *st;
        for (var, bytes) in std::mem::take(&mut st.pending_vars) {
            if let Some(v) = st.vars.get_mut(var as usize) {
                v.bytes = bytes;
            }
        }
        let cycle = *inner.cycle.borrow() + 1;
        if let Some(program) = st.program.as_mut() {
            program(&mut ScanContext { vars: &mut st.vars, cycle });
        }
        st.published = Arc::new(st.vars.clone());
        inner.cycle.send_replace(cycle);
    }
}

#[async_trait]
impl DebugVars for MemoryPlc {
    fn program(&self) -> Option<ProgramLayout> {
        Some(self.lock().layout.clone())
    }

    async fn sample(&self, vars: &[u32], timeout: Duration) -> Result<Scan, PlcError> {
        self.inner.samples.fetch_add(1, Ordering::Relaxed);
        if vars.len() > crate::MAX_SAMPLE_VARS {
            return Err(PlcError::Rejected(format!("{} variables in one sample", vars.len())));
        }
        let asked_at = self.cycle();
        let cycle = self.wait_for_scan_after(asked_at, timeout).await?;
        let (published, program_gen) = {
            let st = self.lock();
            (st.published.clone(), st.layout.program_gen)
        };
        let values = vars
            .iter()
            .map(|&v| published.get(v as usize).map(|m| RawValue { kind: m.kind, bytes: m.bytes.clone() }))
            .collect();
        Ok(Scan { cycle, program_gen, values })
    }

    async fn write_var(&self, var: u32, value: &[u8], timeout: Duration) -> Result<(), PlcError> {
        let asked_at = {
            let mut st = self.lock();
            let size = st.vars.get(var as usize).map(|v| v.bytes.len());
            match size {
                None => return Err(PlcError::Rejected(format!("no variable {var}"))),
                Some(n) if n != value.len() => {
                    return Err(PlcError::Rejected(format!("variable {var} has {n} bytes, not {}", value.len())));
                }
                Some(_) => {}
            }
            st.pending_vars.push((var, value.to_vec()));
            self.cycle()
        };
        self.wait_for_scan_after(asked_at, timeout).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_come_from_a_later_scan_and_writes_apply_at_a_scan_start() {
        let plc =
            MemoryPlc::new(vec![MemVar::scalar(&0u32.to_le_bytes()), MemVar::scalar(&[0])], Duration::from_millis(2));
        plc.set_program(|s| {
            let n = u32::from_le_bytes(s.vars[0].bytes[..4].try_into().unwrap_or([0; 4])) + 1;
            s.vars[0].bytes = n.to_le_bytes().to_vec();
        });
        let before = plc.cycle();
        let scan = plc.sample(&[0, 1, 7], Duration::from_secs(5)).await.unwrap();
        assert!(scan.cycle > before);
        assert_eq!(scan.values.len(), 3);
        assert!(scan.values[2].is_none());
        plc.write_var(1, &[1], Duration::from_secs(5)).await.unwrap();
        assert_eq!(plc.var(1).unwrap().bytes, [1]);
        assert!(matches!(plc.write_var(1, &[1, 2], Duration::from_secs(1)).await, Err(PlcError::Rejected(_))));
        plc.set_state(PlcState::Stopped);
        assert_eq!(plc.sample(&[0], Duration::from_millis(50)).await, Err(PlcError::Timeout));
    }
}
