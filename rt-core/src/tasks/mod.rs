//! IEC tasks on real-time threads of their own (a program with two or more tasks whose
//! adapter has the task functions: STruC++ programs).
//!
//! - One thread per task, SCHED_FIFO at [`fifo_priority`] (IEC priority 0 most urgent),
//!   pinned to the real-time CPU (or the CPU `--task-cpu NAME=CPU` gives it).
//! - The scan thread is the one dispatcher: it sleeps to absolute deadlines on the base tick
//!   grid (the GCD of the intervals) and, at each tick, collects the runs that ended and
//!   releases the tasks that are due (`engine::dispatch`). Every release time is a grid
//!   point, so each task's period is exact and no task drifts against another; a task still
//!   running when due again is an overrun of that task, counted and skipped, never queued.
//! - The loader thread starts the threads after a load (before the program is swapped in)
//!   and stops them before the library is unloaded.
//!
//! - [`slot`]: the hand-off between the dispatcher and one task thread.
//! - [`thread`]: the task thread's loop.

pub mod slot;
mod thread;

use crate::program::LoadedProgram;
use shared_abi::layout::SharedMemory;
use slot::{FAILED, READY, STARTING, TaskSlot};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a starting thread or an ending one may take.
const THREAD_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how task threads run.
#[derive(Clone, Debug, Default)]
pub struct TaskPolicy {
    /// The dispatcher's (scan thread's) SCHED_FIFO priority; tasks run below it. 0: tasks at
    /// normal priority.
    pub scan_priority: i32,
    /// The real-time CPU (the scan thread's), for every task without an entry in `task_cpus`.
    pub cpu: Option<usize>,
    /// Task name (case-insensitive) → CPU, for hosts with several isolated CPUs.
    pub task_cpus: Vec<(String, usize)>,
}

impl TaskPolicy {
    fn cpu_of(&self, name: &str) -> Option<usize> {
        self.task_cpus.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, c)| c).or(self.cpu)
    }
}

/// The SCHED_FIFO priority of a task of IEC priority `iec` under a dispatcher at `scan`:
/// `scan − 1 − iec`, clamped to 1 ..= scan − 1. With the default `--priority 49` that is
/// upstream's `49 − iec` shifted one down, so the dispatcher stays above every task and
/// everything stays below PREEMPT_RT's interrupt threads (50). 0 when `scan` ≤ 1 (no room).
pub fn fifo_priority(scan: i32, iec: i32) -> i32 {
    if scan <= 1 {
        return 0;
    }
    (scan - 1).saturating_sub(iec.max(0)).clamp(1, scan - 1)
}

/// Why the task threads could not start.
#[derive(Debug)]
pub enum StartError {
    Spawn(std::io::Error),
    /// The program's `task_thread_init` failed on a task thread.
    ThreadInit(String),
    /// A thread did not report within the timeout.
    Timeout(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Spawn(e) => write!(f, "cannot start a task thread: {e}"),
            StartError::ThreadInit(t) => write!(f, "task {t}: the program's per-thread set-up failed"),
            StartError::Timeout(t) => write!(f, "task {t}: its thread did not start"),
        }
    }
}

impl std::error::Error for StartError {}

/// The running task threads of one program.
pub struct TaskSet {
    slots: Vec<Arc<TaskSlot>>,
    handles: Vec<JoinHandle<()>>,
}

impl TaskSet {
    pub fn slot(&self, task: usize) -> Option<&TaskSlot> {
        self.slots.get(task).map(|s| &**s)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Task `task`'s SCHED_FIFO priority (0: normal) and CPU (-1: not pinned).
    pub fn placement(&self, task: usize) -> (i32, i32) {
        self.slots.get(task).map_or((0, -1), |s| (s.fifo.load(Ordering::Relaxed), s.cpu.load(Ordering::Relaxed)))
    }

    /// Ends every thread (after its current run) and waits for them; `false` when one did
    /// not end in time (it is still inside the program: the library must stay mapped).
    pub fn stop(mut self) -> bool {
        for s in &self.slots {
            s.exit();
        }
        let deadline = Instant::now() + THREAD_TIMEOUT;
        let mut all = true;
        for h in self.handles.drain(..) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                all = false;
            }
        }
        all
    }
}

/// Starts one thread per task of `program` (nothing when its tasks run on the scan thread)
/// and waits until each is set up. On the loader thread, before the program is swapped in.
pub fn start(shm: &'static SharedMemory, program: &mut LoadedProgram, policy: &TaskPolicy) -> Result<(), StartError> {
    let (Some(tasks), Some(caller)) = (program.tasks(), program.task_caller()) else { return Ok(()) };
    let mut set = TaskSet { slots: Vec::new(), handles: Vec::new() };
    for (index, desc) in tasks.descs().iter().enumerate() {
        let name = desc.info.name_str().to_string();
        let slot = Arc::new(TaskSlot::new());
        let plan = thread::ThreadPlan {
            index,
            cpu: policy.cpu_of(&name),
            fifo: fifo_priority(policy.scan_priority, desc.info.priority),
        };
        let for_thread = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name(format!("rt-task{index}"))
            .stack_size(crate::runtime::SCAN_STACK_BYTES)
            .spawn(move || thread::run(shm, for_thread, caller, plan));
        set.slots.push(slot);
        match spawned {
            Ok(h) => set.handles.push(h),
            Err(e) => {
                set.stop();
                return Err(StartError::Spawn(e));
            }
        }
    }
    let deadline = Instant::now() + THREAD_TIMEOUT;
    for (index, slot) in set.slots.iter().enumerate() {
        let name = || tasks.descs()[index].info.name_str().to_string();
        loop {
            match slot.ready.load(Ordering::Acquire) {
                READY => break,
                FAILED => {
                    let e = StartError::ThreadInit(name());
                    set.stop();
                    return Err(e);
                }
                STARTING if Instant::now() > deadline => {
                    let e = StartError::Timeout(name());
                    set.stop();
                    return Err(e);
                }
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }
    program.set_task_threads(set);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iec_priority_zero_is_the_highest_task_below_the_dispatcher() {
        assert_eq!(fifo_priority(49, 0), 48);
        assert_eq!(fifo_priority(49, 1), 47);
        assert_eq!(fifo_priority(49, 100), 1, "clamped at the bottom");
        assert_eq!(fifo_priority(49, -3), 48, "negative IEC priorities count as 0");
        assert_eq!(fifo_priority(10, 0), 9);
        assert_eq!(fifo_priority(1, 0), 0, "no room below the dispatcher");
    }
}
