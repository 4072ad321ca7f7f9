//! A program's IEC tasks, read at load from the adapter's task functions: each task's name,
//! interval and priority, and the calls that run one task (`task_run`, on the task's own
//! thread) and move its located variables (`task_inputs` / `task_outputs`, on the scan
//! thread while the task is not running). A program with fewer than two tasks, or without
//! the functions, keeps running every task inside `run_tick` on the scan thread.

use super::LoadedProgram;
use crate::guard::{self, CodeRange, Fault};
use shared_abi::program::{ProgramAbi, TaskInfo};
use shared_abi::tasks::MAX_TASKS;

/// The task functions, checked non-null at load.
#[derive(Clone, Copy)]
struct TaskEntry {
    thread_init: unsafe extern "C" fn() -> i32,
    inputs: unsafe extern "C" fn(u32) -> i32,
    run: unsafe extern "C" fn(u32, u64),
    outputs: unsafe extern "C" fn(u32) -> i32,
}

/// One task as declared, and how often it is due on the base tick grid.
#[derive(Clone, Copy, Debug)]
pub struct TaskDesc {
    pub info: TaskInfo,
    /// Due on base ticks that are multiples of this (interval / base period, at least 1).
    pub divisor: u64,
}

/// The tasks of a program that runs them on threads of their own.
pub struct ProgramTasks {
    entry: TaskEntry,
    descs: Vec<TaskDesc>,
}

impl ProgramTasks {
    pub fn descs(&self) -> &[TaskDesc] {
        &self.descs
    }
}

/// What a task thread needs to call into the program: no access to anything else of it.
#[derive(Clone, Copy)]
pub struct TaskCaller {
    entry: TaskEntry,
    pub code: CodeRange,
}

// SAFETY: plain function pointers into a library that stays loaded while any task thread
// runs (the task threads are stopped before the library is unloaded: `LoadedProgram::unload`).
unsafe impl Send for TaskCaller {}

impl TaskCaller {
    /// Sets up the calling thread's state in the program (`task_thread_init`).
    pub fn thread_init(&self) -> Result<i32, Fault> {
        // SAFETY: checked table function of the loaded library.
        unsafe { guard::init(self.entry.thread_init) }
    }

    /// Runs task `task` once with the program clock at `tick` base periods.
    pub fn run(&self, task: u32, tick: u64) -> Result<(), Fault> {
        // SAFETY: checked table function of the loaded library; `task` is in range.
        unsafe { guard::task_run(self.entry.run, task, tick) }
    }
}

/// Why the task table was refused.
pub(super) enum Refusal {
    Fault(Fault),
    Bad(String),
}

/// Reads the task table: `None` when the program's tasks run on the scan thread.
pub(super) fn describe(abi: &ProgramAbi, period_ns: u64) -> Result<Option<ProgramTasks>, Refusal> {
    if !ProgramAbi::has_tasks(abi.struct_size) {
        return Ok(None);
    }
    let (Some(count), Some(info), Some(thread_init), Some(inputs), Some(run), Some(outputs)) =
        (abi.task_count, abi.task_info, abi.task_thread_init, abi.task_inputs, abi.task_run, abi.task_outputs)
    else {
        return Ok(None);
    };
    // SAFETY: a function of the checked table, called through the guard.
    let n = unsafe { guard::call_u32(count) }.map_err(Refusal::Fault)?;
    if n < 2 {
        return Ok(None);
    }
    if n as usize > MAX_TASKS {
        return Err(Refusal::Bad(format!(
            "the program has {n} tasks; at most {MAX_TASKS} run on threads of their own"
        )));
    }
    let mut descs = Vec::with_capacity(n as usize);
    for i in 0..n {
        // SAFETY: as above.
        let Some(t) = (unsafe { guard::task_info(info, i) }).map_err(Refusal::Fault)? else {
            return Err(Refusal::Bad(format!("task {i} of {n} has no description")));
        };
        if t.interval_ns != 0 && t.interval_ns % period_ns != 0 {
            return Err(Refusal::Bad(format!(
                "task {} has interval {} ns, not a multiple of the base tick {period_ns} ns",
                t.name_str(),
                t.interval_ns
            )));
        }
        descs.push(TaskDesc { info: t, divisor: (t.interval_ns / period_ns).max(1) });
    }
    Ok(Some(ProgramTasks { entry: TaskEntry { thread_init, inputs, run, outputs }, descs }))
}

impl LoadedProgram {
    /// The program's tasks when they run on threads of their own.
    pub fn tasks(&self) -> Option<&ProgramTasks> {
        self.tasks.as_ref()
    }

    /// For the task threads.
    pub fn task_caller(&self) -> Option<TaskCaller> {
        self.tasks.as_ref().map(|t| TaskCaller { entry: t.entry, code: self.code })
    }

    /// Copies the image's inputs into task `task`'s located inputs (the task is not running).
    pub fn task_inputs(&mut self, task: u32) -> Result<(), Fault> {
        let Some(t) = &self.tasks else { return Ok(()) };
        // SAFETY: checked table function; `task` is in range.
        unsafe { guard::index_call(t.entry.inputs, task) }.map(|_| ())
    }

    /// Copies task `task`'s located outputs into the image (the task is not running).
    pub fn task_outputs(&mut self, task: u32) -> Result<(), Fault> {
        let Some(t) = &self.tasks else { return Ok(()) };
        // SAFETY: checked table function; `task` is in range.
        unsafe { guard::index_call(t.entry.outputs, task) }.map(|_| ())
    }

    /// The threads running the tasks (set by the loader once they are up).
    pub fn task_threads(&self) -> Option<&crate::tasks::TaskSet> {
        self.threads.as_ref()
    }

    pub fn set_task_threads(&mut self, threads: crate::tasks::TaskSet) {
        self.threads = Some(threads);
    }
}
