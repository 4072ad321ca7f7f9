//! Access tokens: HS256 JWTs signed with a per-install 256-bit secret
//! (`secrets/jwt.key`, mode 0600), valid for 15 minutes as upstream's (the Editor logs in
//! again when one expires). Logged-out tokens are listed in `secrets/revoked.json` until they
//! would have expired, so a restart does not bring them back; a password change bumps the
//! user's epoch, which retires every older token of that user at once.

use super::changes::Changes;
use crate::fsutil::{SECRET_MODE, ensure_dir, hex, random_bytes, read_optional, write_atomic};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user id, as a string (as Flask-JWT-Extended does).
    pub sub: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub fresh: bool,
    /// The user's token epoch when issued.
    pub epoch: u32,
}

impl Claims {
    pub fn user_id(&self) -> Option<u32> {
        self.sub.parse().ok()
    }
}

/// Why a token was refused. Every variant is answered with 401.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Missing,
    Expired,
    Invalid,
    Revoked,
}

impl TokenError {
    /// The body message, worded like Flask-JWT-Extended's so the Editor recognises it.
    pub fn message(self) -> &'static str {
        match self {
            TokenError::Missing => "Missing Authorization Header",
            TokenError::Expired => "Token has expired",
            TokenError::Invalid => "Invalid token",
            TokenError::Revoked => "Token has been revoked",
        }
    }
}

pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// The same checks without the expiry (for sessions checked again after a change).
    validation_any_age: Validation,
    revoked: Mutex<Revoked>,
    lifetime: Duration,
    changes: Changes,
}

struct Revoked {
    path: PathBuf,
    /// jti → expiry (Unix seconds).
    entries: HashMap<String, u64>,
}

#[derive(Serialize, Deserialize, Default)]
struct RevokedFile {
    revoked: Vec<RevokedEntry>,
}

#[derive(Serialize, Deserialize)]
struct RevokedEntry {
    jti: String,
    exp: u64,
}

impl TokenService {
    /// Loads (or creates) the signing secret and the revocation list in `secrets_dir`;
    /// a revocation ticks `changes`.
    pub fn open(secrets_dir: &Path, changes: Changes) -> anyhow::Result<TokenService> {
        ensure_dir(secrets_dir, 0o700)?;
        let key_path = secrets_dir.join("jwt.key");
        let secret = match read_optional(&key_path)? {
            Some(text) if parse_hex(&text).is_some_and(|k| k.len() == 32) => parse_hex(&text).unwrap_or_default(),
            _ => {
                let fresh = random_bytes::<32>();
                write_atomic(&key_path, format!("{}\n", hex(&fresh)).as_bytes(), SECRET_MODE)?;
                fresh.to_vec()
            }
        };
        let revoked_path = secrets_dir.join("revoked.json");
        let now = crate::timefmt::unix_now();
        let entries = match read_optional(&revoked_path)? {
            Some(bytes) => serde_json::from_slice::<RevokedFile>(&bytes)
                .unwrap_or_default()
                .revoked
                .into_iter()
                .filter(|e| e.exp > now)
                .map(|e| (e.jti, e.exp))
                .collect(),
            None => HashMap::new(),
        };
        Ok(Self::from_secret(&secret, Revoked { path: revoked_path, entries }, TOKEN_LIFETIME, changes))
    }

    fn from_secret(secret: &[u8], revoked: Revoked, lifetime: Duration, changes: Changes) -> TokenService {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "nbf"]);
        let mut validation_any_age = validation.clone();
        validation_any_age.validate_exp = false;
        TokenService {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            validation_any_age,
            revoked: Mutex::new(revoked),
            lifetime,
            changes,
        }
    }

    /// A fresh access token for user `id` at token epoch `epoch`.
    pub fn issue(&self, id: u32, epoch: u32) -> anyhow::Result<String> {
        let now = crate::timefmt::unix_now();
        let claims = Claims {
            sub: id.to_string(),
            iat: now,
            nbf: now,
            exp: now + self.lifetime.as_secs(),
            jti: hex(&random_bytes::<16>()),
            kind: "access".into(),
            fresh: false,
            epoch,
        };
        Ok(encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// Checks signature, expiry and the revocation list.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_with(token, &self.validation)
    }

    /// Checks signature and the revocation list, not the expiry: for a session that was
    /// accepted while the token was fresh and is checked again after a change.
    pub fn verify_any_age(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_with(token, &self.validation_any_age)
    }

    fn verify_with(&self, token: &str, validation: &Validation) -> Result<Claims, TokenError> {
        let data = decode::<Claims>(token, &self.decoding, validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        let claims = data.claims;
        if claims.kind != "access" {
            return Err(TokenError::Invalid);
        }
        let revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if revoked.entries.contains_key(&claims.jti) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Puts a token on the persistent revocation list.
    pub fn revoke(&self, claims: &Claims) -> std::io::Result<()> {
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::timefmt::unix_now();
        revoked.entries.retain(|_, exp| *exp > now);
        revoked.entries.insert(claims.jti.clone(), claims.exp);
        let file = RevokedFile {
            revoked: revoked.entries.iter().map(|(jti, exp)| RevokedEntry { jti: jti.clone(), exp: *exp }).collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        // Persisted or not, the token is refused from now on (it is in the list in memory).
        let written = write_atomic(&revoked.path, &bytes, SECRET_MODE);
        drop(revoked);
        self.changes.bump();
        written
    }
}

fn parse_hex(text: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(text).ok()?.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_verify_revoke_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let svc = TokenService::open(dir.path(), Changes::default()).unwrap();
        let t = svc.issue(7, 3).unwrap();
        let claims = svc.verify(&t).unwrap();
        assert_eq!((claims.user_id(), claims.epoch), (Some(7), 3));
        assert_eq!(claims.exp - claims.iat, 900);
        let changes = svc.changes.subscribe();
        svc.revoke(&claims).unwrap();
        assert!(changes.has_changed().unwrap(), "a revocation is announced");
        assert_eq!(svc.verify(&t), Err(TokenError::Revoked));
        assert_eq!(svc.verify_any_age(&t), Err(TokenError::Revoked));
        let restarted = TokenService::open(dir.path(), Changes::default()).unwrap();
        assert_eq!(restarted.verify(&t), Err(TokenError::Revoked), "revocation survives a restart");
        let other = restarted.issue(7, 3).unwrap();
        assert!(restarted.verify(&other).is_ok(), "same secret after restart");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("jwt.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn foreign_expired_and_garbage_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let svc = TokenService::open(dir.path(), Changes::default()).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = TokenService::open(other_dir.path(), Changes::default()).unwrap();
        assert_eq!(svc.verify(&other.issue(1, 0).unwrap()), Err(TokenError::Invalid));
        assert_eq!(svc.verify("not.a.jwt"), Err(TokenError::Invalid));
        let secret = parse_hex(&std::fs::read(dir.path().join("jwt.key")).unwrap()).unwrap();
        let short = TokenService::from_secret(
            &secret,
            Revoked { path: dir.path().join("r.json"), entries: HashMap::new() },
            Duration::from_secs(0),
            Changes::default(),
        );
        let expired = short.issue(1, 0).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(svc.verify(&expired), Err(TokenError::Expired));
        assert_eq!(svc.verify_any_age(&expired).map(|c| c.user_id()), Ok(Some(1)), "expiry is not checked again");
        assert_eq!(svc.verify_any_age(&other.issue(1, 0).unwrap()), Err(TokenError::Invalid), "the signature is");
    }
}
