//! One task thread: set up once (pinned, SCHED_FIFO, stack pre-faulted, the program's
//! per-thread state), then forever: wait for a release, run the task once, hand the report
//! over. Nothing in the loop allocates or locks; its only system call is the futex wait.

use super::slot::{FAILED, READY, RunReport, TaskSlot};
use crate::guard;
use crate::program::tasks::TaskCaller;
use crate::sys;
use shared_abi::layout::SharedMemory;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// How the thread is set up.
pub struct ThreadPlan {
    pub index: usize,
    pub cpu: Option<usize>,
    /// 0: stay at normal priority.
    pub fifo: i32,
}

pub fn run(shm: &'static SharedMemory, slot: Arc<TaskSlot>, caller: TaskCaller, plan: ThreadPlan) {
    let stamp = &shm.tasks.in_program_since_ns[plan.index];
    guard::set_code(caller.code);
    guard::set_watch_stamp(stamp);
    if let Some(cpu) = plan.cpu
        && sys::set_affinity(&[cpu]).is_ok()
    {
        slot.cpu.store(cpu as i32, Ordering::Relaxed);
    }
    let _ = sys::set_timer_slack(1);
    // As the scan thread: the stack it runs program code on, faulted in before the first run.
    sys::prefault_stack(crate::runtime::SCAN_STACK_BYTES - (128 << 10));
    if plan.fifo > 0 && sys::set_fifo(plan.fifo).is_ok() {
        slot.fifo.store(plan.fifo, Ordering::Relaxed);
    }
    match caller.thread_init() {
        Ok(0) => {
            // Published once set up: from here on the thread is a task thread (the watchdog
            // may signal it; tests watch what it does).
            shm.tasks.tids[plan.index].store(sys::gettid(), Ordering::Release);
            slot.ready.store(READY, Ordering::Release);
        }
        _ => {
            slot.ready.store(FAILED, Ordering::Release);
            return;
        }
    }
    let task = plan.index as u32;
    while let Some((tick, release_ns)) = slot.wait_release() {
        let wake_ns = sys::now_ns();
        stamp.store(wake_ns.max(1), Ordering::Release);
        let result = caller.run(task, tick);
        stamp.store(0, Ordering::Release);
        let end_ns = sys::now_ns();
        slot.finish(RunReport { release_ns, wake_ns, end_ns, fault: result.err() });
    }
    // Before the thread's own teardown (which frees its thread-locals).
    shm.tasks.tids[plan.index].store(0, Ordering::Release);
}
