//! The scan thread makes no system call but its absolute-deadline sleep (and, dispatching a
//! program whose tasks run on threads, the futex wake of a release; the task threads only
//! the futex wait for it): strace attached to
//! that one thread of a real `openplc-rt` over a few thousand 1 ms cycles, while a client
//! sends commands, image writes, forces, variable writes, inputs and watch lists and swaps
//! the program (the loader thread does the loading: not traced). `strace` comes from
//! scripts/test-deps.

mod support;

use shared_abi::client::Reader;
use shared_abi::image::IecAddress;
use shared_abi::msg::Command;
use std::collections::BTreeMap;
use std::process::{Command as Process, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::{Runtime, build_fixture, wait_for};

const T: Duration = Duration::from_secs(10);

fn traced_by(tid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
        .or_else(|_| std::fs::read_to_string(format!("/proc/{tid}/status")))
        .unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("TracerPid:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// `strace -c`'s table: system call → calls.
fn summary(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 || cols[0].starts_with('%') || cols[0].starts_with('-') {
            continue;
        }
        let name = cols[cols.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(n) = cols[3].parse() {
            calls.insert(name.to_string(), n);
        }
    }
    calls
}

#[test]
fn the_scan_thread_only_ever_sleeps() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let dir = rt.dir.path();
    let first = build_fixture(dir, "a.so", &["PERIOD_NS=1000000ULL", "WITH_RETAIN"]);
    let second = build_fixture(dir, "b.so", &["PERIOD_NS=1000000ULL", "COUNTER_STEP=3", "WITH_RETAIN"]);
    c.load_sized(
        first.to_str().unwrap(),
        true,
        false,
        shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false },
        T,
    )
    .unwrap();
    let tid = c.shm().header.scan_tid.load(Ordering::Acquire);
    let log = dir.join("strace.txt");
    let mut strace = Process::new("strace")
        .args(["-qq", "-c", "-o"])
        .arg(&log)
        .args(["-p", &tid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace must be installed (scripts/test-deps installs it)");
    wait_for("strace to attach to the scan thread", T, || (traced_by(tid) != 0).then_some(()));

    let start = c.status().heartbeat;
    let force = |var, v: &[u8]| Command::Force { var, value: heapless::Vec::from_slice(v).unwrap(), big_endian: false };
    let mut round = 0u64;
    while c.status().heartbeat < start + 3000 {
        round += 1;
        c.update_inputs(|i| i.int_input[0] = round as u16);
        c.write(IecAddress::parse("%MW7").unwrap(), round).unwrap();
        let command = match round % 8 {
            0 => force(1, &[1]),
            1 => force(6, b"\x03abc"),
            2 => Command::Unforce { var: 1 },
            3 => Command::SetVar { var: 0, value: heapless::Vec::from_slice(&[5, 0]).unwrap(), big_endian: false },
            4 => Command::Stop,
            5 => Command::Start,
            6 => Command::UnforceAll,
            _ => Command::ResetStats,
        };
        let _ = c.command(command, T).unwrap();
        c.set_watch(&[0, 1, 3, (round % 7) as u32]);
        if round == 100 {
            c.load_sized(
                second.to_str().unwrap(),
                true,
                false,
                shared_abi::sizes::ImageRequest { configured: shared_abi::sizes::ImageSizes::LEGACY, square: false },
                T,
            )
            .expect("a swap under strace");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: SIGINT to our own child: strace detaches, writes its summary and ends by the
    // same signal.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    strace.wait().unwrap();
    assert_eq!(traced_by(tid), 0, "strace detached");
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!("{text}");
    let calls = summary(&text);
    let sleeps = calls.get("clock_nanosleep").copied().unwrap_or(0);
    assert!(sleeps >= 2500, "the scan thread slept once per cycle: {text}");
    for (name, n) in &calls {
        // The sleep strace interrupted to attach resumes as restart_syscall, once.
        let allowed = name == "clock_nanosleep" || (name == "restart_syscall" && *n <= 2);
        assert!(allowed, "the scan thread called {name} {n} times:\n{text}");
    }
    assert!(rt.log().contains("loaded") && c.status().program_gen >= 2, "the swap happened");
}

/// Starts `strace -c` on `tids`, writing its summary to `log`; waits until it is attached.
fn trace(tids: &[u32], log: &std::path::Path) -> std::process::Child {
    let mut cmd = Process::new("strace");
    cmd.args(["-qq", "-c", "-o"]).arg(log);
    for tid in tids {
        cmd.args(["-p", &tid.to_string()]);
    }
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("strace must be installed");
    for &tid in tids {
        wait_for("strace to attach", T, || (traced_by(tid) != 0).then_some(()));
    }
    child
}

fn finish(mut strace: std::process::Child, log: &std::path::Path) -> (String, BTreeMap<String, u64>) {
    // SAFETY: SIGINT to our own child: strace detaches and writes its summary.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    strace.wait().unwrap();
    let text = std::fs::read_to_string(log).unwrap();
    let calls = summary(&text);
    (text, calls)
}

#[test]
fn task_threads_only_wait_for_their_release_and_the_dispatcher_only_sleeps_and_wakes() {
    let rt = Runtime::start(&[]);
    let mut c = rt.client();
    let dir = rt.dir.path();
    let lib = build_fixture(
        dir,
        "tasks.so",
        &["PERIOD_NS=1000000ULL", "WITH_TASKS", "SLOW_EVERY=5", "SLOW_BUSY_NS=2000000LL"],
    );
    c.load(lib.to_str().unwrap(), true, T).unwrap();
    let tids: Vec<u32> = (0..2).map(|i| c.shm().tasks.tids[i].load(Ordering::Acquire)).collect();
    assert!(tids.iter().all(|&t| t != 0), "both task threads are up: {tids:?}");
    let scan = c.shm().header.scan_tid.load(Ordering::Acquire);
    let (task_log, scan_log) = (dir.join("tasks.txt"), dir.join("scan.txt"));
    let tasks_trace = trace(&tids, &task_log);
    let scan_trace = trace(&[scan], &scan_log);

    let start = c.status().heartbeat;
    let mut round = 0u64;
    while c.status().heartbeat < start + 2000 {
        round += 1;
        let command = match round % 5 {
            0 => Command::Stop,
            1 => Command::Start,
            2 => Command::ResetStats,
            3 => Command::Force { var: 1, value: heapless::Vec::from_slice(&[1]).unwrap(), big_endian: false },
            _ => Command::UnforceAll,
        };
        let _ = c.command(command, T).unwrap();
        c.set_watch(&[0, 1, (round % 7) as u32]);
        std::thread::sleep(Duration::from_millis(20));
    }
    let runs = c.task_records().unwrap().tasks[0].stats.scan_count;
    let (text, calls) = finish(tasks_trace, &task_log);
    eprintln!("task threads:\n{text}");
    assert!(calls.get("futex").copied().unwrap_or(0) >= 100, "the task threads waited for releases: {text}");
    for (name, n) in &calls {
        let allowed = name == "futex" || (name == "restart_syscall" && *n <= 2);
        assert!(allowed, "a task thread called {name} {n} times:\n{text}");
    }
    let (text, calls) = finish(scan_trace, &scan_log);
    eprintln!("dispatcher:\n{text}");
    assert!(calls.get("clock_nanosleep").copied().unwrap_or(0) >= 1500, "{text}");
    for (name, n) in &calls {
        let allowed = name == "clock_nanosleep" || name == "futex" || (name == "restart_syscall" && *n <= 2);
        assert!(allowed, "the dispatcher called {name} {n} times:\n{text}");
    }
    assert!(runs > 0, "FAST ran");
}
