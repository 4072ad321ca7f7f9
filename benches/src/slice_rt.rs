//! A fresh rt-core for one slice of a latency bench: its own shared memory in the slice's
//! directory, at the bench's SCHED_FIFO priority and CPU, with a program loaded and running.
//! Dropping it stops rt-core (the client first, then the process).

use crate::Error;
use crate::process::{ChildGuard, wait_for};
use shared_abi::client::{ClientError, Reader, RtClient};
use shared_abi::layout::RT_FIFO;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct SliceRt {
    // Dropped first: the client lets go of the shared memory before rt-core is stopped.
    pub client: RtClient,
    _rt: ChildGuard,
}

impl SliceRt {
    /// Starts `rt_binary` on `dir/shm` (its log in `dir/rt.log`) and loads `program`.
    pub fn start(
        rt_binary: &Path,
        dir: &Path,
        cpu: Option<usize>,
        priority: i32,
        program: &Path,
    ) -> Result<SliceRt, Error> {
        let shm = dir.join("shm").to_string_lossy().into_owned();
        let cpu_arg = cpu.map_or("auto".to_string(), |c| c.to_string());
        let log = std::fs::File::create(dir.join("rt.log")).map_err(Error::io("rt.log"))?;
        let mut cmd = Command::new(rt_binary);
        cmd.args(["--shm", &shm, "run", "--cpu", &cpu_arg, "--priority", &priority.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let rt = ChildGuard::spawn("openplc-rt", &mut cmd)?;
        let mut client = wait_for("openplc-rt", Duration::from_secs(10), || RtClient::open(&shm).ok())?;
        client.load(&program.to_string_lossy(), true, Duration::from_secs(10)).map_err(unexpected("loading"))?;
        Ok(SliceRt { client, _rt: rt })
    }

    /// The CPU rt-core's scan thread runs on, which must be at SCHED_FIFO.
    pub fn scan_cpu(&self) -> Result<usize, Error> {
        let status = self.client.status();
        usize::try_from(status.scan_cpu).ok().filter(|_| status.rt_flags & RT_FIFO != 0).ok_or_else(|| {
            Error::Unexpected {
                what: "rt-core's scan thread",
                detail: "not pinned at SCHED_FIFO (run as root, as cyclictest needs too)".into(),
            }
        })
    }
}

/// A client error as the bench's error, naming what was being done.
pub fn unexpected(what: &'static str) -> impl FnOnce(ClientError) -> Error {
    move |e| Error::Unexpected { what, detail: e.to_string() }
}

/// A binary built beside this one (`target/release/…`).
pub fn beside_this_exe(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(Error::io("this executable's path"))?;
    let path = exe.with_file_name(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Unexpected {
            what: "binary",
            detail: format!("{} is missing (cargo build --release)", path.display()),
        })
    }
}
