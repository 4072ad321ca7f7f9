//! What several entries need: scratch directories and a tokio runtime.

use std::path::Path;

/// A fresh directory for one input's files, on tmpfs where there is one: entries that
/// write (an unpacked zip, `settings.json`, `plugins.conf` written with fsync) stay fast.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("openplc-fuzz-");
        b
    };
    let made = if shm.is_dir() { builder.tempdir_in(shm) } else { builder.tempdir() };
    match made {
        Ok(dir) => dir,
        // Not a finding in the code under test: the harness cannot run at all.
        Err(e) => panic!("fuzz harness: cannot make a scratch directory: {e}"),
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap_or_else(|e| panic!("fuzz harness: cannot start a tokio runtime: {e}"));
}

/// Runs `f` to completion on this thread's runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}
