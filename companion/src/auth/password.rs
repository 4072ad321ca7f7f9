//! Password hashing with argon2id on a small pool of its own threads.
//!
//! One hash costs ~19 MiB and tens of milliseconds of one core. The pool has
//! [`PasswordHasherPool::threads`] threads (half the CPUs, at least one) and at most
//! [`QUEUE`] hashes waiting; a hash asked beyond that is refused at once ([`Busy`]: the
//! API answers 503) rather than queued behind a burst, so a flood of logins neither
//! exhausts memory nor makes a legitimate login wait long. The PLC itself runs in another
//! process on its own CPU and is not affected either way.
//!
//! Memory: each hash allocates its 19 MiB block and frees it. With glibc's default
//! dynamic mmap threshold, a freed block that size raises the threshold and the next ones
//! come from (and stay in) each thread's malloc arena: the companion grew by a block per
//! thread that ever hashed. [`release_large_blocks_at_once`] fixes the threshold so large
//! blocks are mapped and unmapped every time; the dedicated threads keep the number of
//! arenas that hashing touches small as well.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
/// Hashes that may wait for a thread; more are refused at once.
pub const QUEUE: usize = 8;

/// The pool is full: try again in a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is busy; try again in a moment")]
pub struct Busy;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error(transparent)]
    Busy(#[from] Busy),
    #[error("argon2: {0}")]
    Failed(String),
}

type Job = Box<dyn FnOnce(&Argon2<'static>) + Send>;

#[derive(Clone)]
pub struct PasswordHasherPool {
    jobs: SyncSender<Job>,
    threads: usize,
    /// Verified against when a username does not exist, so both cases take as long.
    dummy: Arc<String>,
}

fn argon() -> Argon2<'static> {
    // The constants are valid (they are argon2's own defaults, which the fallback repeats).
    let params = Params::new(MEMORY_KIB, PASSES, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl PasswordHasherPool {
    pub fn new() -> PasswordHasherPool {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self::with_threads((cpus / 2).max(1))
    }

    pub fn with_threads(threads: usize) -> PasswordHasherPool {
        let threads = threads.max(1);
        // The channel holds the waiting jobs; each thread holds the one it runs.
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || worker(&rx));
            if let Err(e) = spawned {
                tracing::error!("cannot start a password hashing thread: {e}");
            }
        }
        // Hashing a constant cannot fail with valid parameters; if it ever did, unknown users
        // would be answered faster (said in the log), never let in.
        let dummy = hash_with(&argon(), "not a password of anyone").unwrap_or_else(|e| {
            tracing::error!("cannot hash the stand-in password: {e}");
            String::new()
        });
        PasswordHasherPool { jobs, threads, dummy: Arc::new(dummy) }
    }

    /// Hashes run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static) -> Result<T, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |argon| {
            let _ = tx.send(f(argon));
        });
        match self.jobs.try_send(job) {
            Ok(()) => rx.await.map_err(|_| Busy),
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    /// The PHC string of a fresh salted hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.run(move |argon| hash_with(argon, &password)).await?.map_err(HashError::Failed)
    }

    /// Whether `password` matches `stored` (a PHC string). `None` (no such user) is checked
    /// against a dummy hash and answers false, in the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, Busy> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.as_str().to_string());
        let ok = self
            .run(move |argon| {
                PasswordHash::new(&stored)
                    .is_ok_and(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
            })
            .await?;
        Ok(ok && known)
    }
}

impl Default for PasswordHasherPool {
    fn default() -> Self {
        Self::new()
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    let argon = argon();
    loop {
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job(&argon);
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&crate::fsutil::random_bytes::<16>()).map_err(|e| format!("salt: {e}"))?;
    let hash = argon.hash_password(password.as_bytes(), &salt).map_err(|e| e.to_string())?;
    Ok(hash.to_string())
}

/// Makes glibc map every allocation of 1 MiB or more on its own and unmap it when freed
/// (a fixed threshold also turns off the dynamic one that kept argon2's blocks in the
/// arenas). Called once at start-up.
pub fn release_large_blocks_at_once() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tuning parameters; it is called before
        // the runtime's threads start and touches no memory of ours.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
        if ok != 1 {
            tracing::warn!("could not set the allocator's mmap threshold");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let pool = PasswordHasherPool::with_threads(1);
        let a = pool.hash("secret".into()).await.unwrap();
        let b = pool.hash("secret".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert_eq!(pool.verify("secret".into(), Some(a.clone())).await, Ok(true));
        assert_eq!(pool.verify("Secret".into(), Some(a)).await, Ok(false));
        assert_eq!(pool.verify("not a password of anyone".into(), None).await, Ok(false));
        assert_eq!(pool.verify("x".into(), Some("garbage".into())).await, Ok(false));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = PasswordHasherPool::with_threads(1);
        let stored = pool.hash("secret".into()).await.unwrap();
        let attempts: Vec<_> = (0..QUEUE + 10)
            .map(|_| {
                let pool = pool.clone();
                let stored = stored.clone();
                tokio::spawn(async move { pool.verify("wrong".into(), Some(stored)).await })
            })
            .collect();
        let mut busy = 0;
        let mut evaluated = 0;
        for a in attempts {
            match a.await.unwrap() {
                Ok(false) => evaluated += 1,
                Err(Busy) => busy += 1,
                Ok(true) => panic!("a wrong password verified"),
            }
        }
        assert!(busy >= 5, "{busy} refused, {evaluated} evaluated");
        assert!(evaluated <= QUEUE + 1, "{evaluated} evaluated");
    }
}
