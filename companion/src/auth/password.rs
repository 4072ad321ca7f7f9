//! Password hashing with argon2id, a bounded number at a time.
//!
//! One hash costs ~19 MiB and tens of milliseconds of one core. Hashes run on the blocking
//! pool behind a semaphore (half the CPUs, at least one), so a burst of logins queues
//! instead of exhausting memory or starving the rest of the machine; the PLC itself runs in
//! another process on its own CPU and is not affected either way.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;

#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    argon: Argon2<'static>,
    /// Verified against when a username does not exist, so both cases take as long.
    dummy: Arc<String>,
}

impl PasswordHasherPool {
    pub fn new() -> PasswordHasherPool {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self::with_permits((cpus / 2).max(1))
    }

    pub fn with_permits(permits: usize) -> PasswordHasherPool {
        let params = Params::new(MEMORY_KIB, PASSES, 1, None).expect("constant argon2 parameters are valid");
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = hash_with(&argon, "not a password of anyone").expect("hashing a constant works");
        PasswordHasherPool { permits: Arc::new(Semaphore::new(permits)), argon, dummy: Arc::new(dummy) }
    }

    /// The PHC string of a fresh salted hash of `password`.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || hash_with(&argon, &password)).await?
    }

    /// Whether `password` matches `stored` (a PHC string). `None` (no such user) is checked
    /// against a dummy hash and answers false, in the same time.
    pub async fn verify(&self, password: String, stored: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else { return false };
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy.as_str().to_string());
        let argon = self.argon.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored).is_ok_and(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

impl Default for PasswordHasherPool {
    fn default() -> Self {
        Self::new()
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt =
        SaltString::encode_b64(&crate::fsutil::random_bytes::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = argon.hash_password(password.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let pool = PasswordHasherPool::with_permits(1);
        let a = pool.hash("secret".into()).await.unwrap();
        let b = pool.hash("secret".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(pool.verify("secret".into(), Some(a.clone())).await);
        assert!(!pool.verify("Secret".into(), Some(a)).await);
        assert!(!pool.verify("not a password of anyone".into(), None).await);
        assert!(!pool.verify("x".into(), Some("garbage".into())).await);
    }
}
