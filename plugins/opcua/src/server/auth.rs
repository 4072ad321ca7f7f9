//! Who may sign in and what each role may do to each node.
//!
//! Passwords are the Editor's `pbkdf2:sha256:<rounds>$<salt>$<hash>` (PBKDF2-HMAC-SHA256,
//! base64), compared in constant time. 600 000 rounds is ~0.3 s of CPU, so the work is
//! bounded: one check at a time (others wait, a queue beyond a few is refused at once), a
//! user name with too many failures is locked for a minute (doubling up to 15), an unknown
//! user name costs nothing, and a password that already passed is recognised again from a
//! keyed digest kept in memory (a reconnecting client signs in at once, even while an
//! attacker has that name locked). Anonymous sessions are viewers, whatever the file says.

use crate::config::{Permissions, Profile, Role, TrustedCert, User, UserKind};
use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use opcua::crypto::{Thumbprint, X509};
use opcua::server::address_space::AccessLevel;
use opcua::server::authenticator::{AuthManager, Password, UserToken, user_pass_security_policy_id};
use opcua::server::{ANONYMOUS_USER_TOKEN_ID, ServerEndpoint};
use opcua::types::{Error, NodeId, StatusCode, UAString, UserTokenPolicy, UserTokenType};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Who may do what to each variable node of our namespace (its index is known once the
/// server registered the namespace).
#[derive(Default)]
pub struct PermissionTable {
    namespace: std::sync::OnceLock<u16>,
    by_id: HashMap<String, Permissions>,
}

impl PermissionTable {
    pub fn new(by_id: HashMap<String, Permissions>) -> PermissionTable {
        PermissionTable { namespace: std::sync::OnceLock::new(), by_id }
    }

    pub fn set_namespace(&self, index: u16) {
        let _ = self.namespace.set(index);
    }

    pub fn get(&self, node_id: &NodeId) -> Option<&Permissions> {
        if Some(&node_id.namespace) != self.namespace.get() {
            return None;
        }
        match &node_id.identifier {
            opcua::types::Identifier::String(s) => self.by_id.get(s.as_ref()),
            _ => None,
        }
    }
}

/// Marker ids put in an endpoint's user token set (what the profile allows).
pub const TOKEN_USERNAME: &str = "openplc_username";
pub const TOKEN_X509: &str = "openplc_x509";

/// PBKDF2 rounds a configuration may ask for (more would let a file burn CPU per login).
const MAX_ROUNDS: u32 = 5_000_000;
/// Password checks waiting for the one running before new ones are refused outright.
const MAX_WAITING_CHECKS: usize = 4;
const LOCK_BASE: Duration = Duration::from_secs(60);
const LOCK_MAX: Duration = Duration::from_secs(15 * 60);
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A password hash as the Editor writes it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    rounds: u32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasswordHash(pbkdf2-sha256, {} rounds)", self.rounds)
    }
}

impl PasswordHash {
    pub fn parse(text: &str) -> Result<PasswordHash, String> {
        let bad = || "expected pbkdf2:sha256:<rounds>$<base64 salt>$<base64 hash>".to_string();
        let (method, rest) = text.split_once('$').ok_or_else(bad)?;
        let (salt, hash) = rest.split_once('$').ok_or_else(bad)?;
        let rounds = method.strip_prefix("pbkdf2:sha256:").ok_or_else(bad)?;
        let rounds: u32 = rounds.parse().map_err(|_| bad())?;
        if rounds == 0 || rounds > MAX_ROUNDS {
            return Err(format!("{rounds} rounds is outside 1..{MAX_ROUNDS}"));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode(salt).map_err(|e| format!("salt: {e}"))?;
        let hash: [u8; 32] = b64
            .decode(hash)
            .map_err(|e| format!("hash: {e}"))?
            .try_into()
            .map_err(|_| "the hash is not 32 bytes".to_string())?;
        Ok(PasswordHash { rounds, salt, hash })
    }

    /// Makes a hash in the Editor's format (tests, tools).
    pub fn create(password: &str, salt: &[u8], rounds: u32) -> String {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut out);
        let b64 = base64::engine::general_purpose::STANDARD;
        format!("pbkdf2:sha256:{rounds}${}${}", b64.encode(salt), b64.encode(out))
    }

    /// The expensive check (call it off the async workers).
    pub fn verify(&self, password: &str) -> bool {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &self.salt, self.rounds, &mut out);
        out.ct_eq(&self.hash).into()
    }
}

#[derive(Default)]
struct Failures {
    count: u32,
    window_start: Option<Instant>,
    locked_until: Option<Instant>,
    lockouts: u32,
}

struct PasswordUser {
    hash: PasswordHash,
    role: Role,
}

struct Throttle {
    failures: HashMap<String, Failures>,
    /// Keyed digests of passwords that passed, per user.
    passed: HashMap<String, [u8; 32]>,
}

/// The server's [`AuthManager`].
pub struct Authenticator {
    password_users: HashMap<String, PasswordUser>,
    cert_users: HashMap<Vec<u8>, Role>,
    /// Endpoint (path, policy, mode) → whether anonymous sessions are allowed there.
    profiles: Vec<Profile>,
    permissions: Arc<PermissionTable>,
    throttle: Mutex<Throttle>,
    digest_key: [u8; 32],
    checks: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    max_failures: u32,
}

impl Authenticator {
    /// `permissions`: every variable node of our namespace and who may do what to it.
    pub fn new(
        users: &[User],
        trusted: &[TrustedCert],
        profiles: &[Profile],
        permissions: Arc<PermissionTable>,
        max_failures: u32,
    ) -> Result<Authenticator, String> {
        let mut password_users = HashMap::new();
        let mut cert_users = HashMap::new();
        for u in users {
            match &u.kind {
                UserKind::Password { username, hash } => {
                    password_users.insert(username.clone(), PasswordUser { hash: hash.clone(), role: u.role });
                }
                UserKind::Certificate { certificate_id } => {
                    let pem = trusted
                        .iter()
                        .find(|t| &t.id == certificate_id)
                        .ok_or_else(|| format!("certificate {certificate_id:?} is not trusted"))?;
                    let cert = X509::from_pem(pem.pem.as_bytes())
                        .map_err(|e| format!("certificate {certificate_id:?} is not a PEM certificate: {e}"))?;
                    cert_users.insert(cert.thumbprint().value().to_vec(), u.role);
                }
            }
        }
        let mut digest_key = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut digest_key);
        Ok(Authenticator {
            password_users,
            cert_users,
            profiles: profiles.to_vec(),
            permissions,
            throttle: Mutex::new(Throttle { failures: HashMap::new(), passed: HashMap::new() }),
            digest_key,
            checks: tokio::sync::Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            max_failures: max_failures.max(1),
        })
    }

    fn throttle(&self) -> MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.digest_key).unwrap_or_else(|_| unreachable!());
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The role behind a session's user token (anonymous: viewer; unknown: none).
    pub fn role(&self, token: &UserToken) -> Option<Role> {
        if token.is_anonymous() {
            return Some(Role::Viewer);
        }
        if let Some(name) = token.0.strip_prefix("user:") {
            return self.password_users.get(name).map(|u| u.role);
        }
        if let Some(hex) = token.0.strip_prefix("cert:") {
            return self.cert_users.iter().find(|(t, _)| hex_of(t) == hex).map(|(_, r)| *r);
        }
        None
    }

    fn profile_of(&self, endpoint: &ServerEndpoint) -> Option<&Profile> {
        self.profiles.iter().find(|p| endpoint.user_token_ids.contains(&format!("profile:{}", p.name)))
    }

    fn fail(&self, username: &str) {
        let now = Instant::now();
        let mut t = self.throttle();
        let f = t.failures.entry(username.to_string()).or_default();
        if f.window_start.is_none_or(|s| now.duration_since(s) > FAILURE_WINDOW) {
            f.window_start = Some(now);
            f.count = 0;
        }
        f.count += 1;
        if f.count >= self.max_failures {
            let lock = LOCK_BASE.saturating_mul(1 << f.lockouts.min(4)).min(LOCK_MAX);
            f.locked_until = Some(now + lock);
            f.lockouts += 1;
            f.count = 0;
            tracing::warn!("OPC-UA: user {username:?} locked for {} s after failed sign-ins", lock.as_secs());
        }
    }

    async fn check_password(&self, username: &str, password: &str) -> Result<Role, Error> {
        let rejected = || Error::new(StatusCode::BadUserAccessDenied, "wrong user name or password");
        let user = self.password_users.get(username).ok_or_else(rejected)?;
        let digest = self.digest(username, password);
        {
            let t = self.throttle();
            if let Some(known) = t.passed.get(username)
                && bool::from(known.ct_eq(&digest))
            {
                return Ok(user.role);
            }
            if let Some(until) = t.failures.get(username).and_then(|f| f.locked_until)
                && until > Instant::now()
            {
                return Err(Error::new(StatusCode::BadUserAccessDenied, "too many failed sign-ins; try later"));
            }
        }
        // One check runs at a time; a few may wait for it, more are refused at once.
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_CHECKS {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(StatusCode::BadTooManyOperations, "the server is busy checking passwords"));
        }
        let permit = self.checks.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| rejected())?;
        let hash = user.hash.clone();
        let password_owned = password.to_string();
        let ok = tokio::task::spawn_blocking(move || hash.verify(&password_owned)).await.unwrap_or(false);
        if ok {
            let mut t = self.throttle();
            t.passed.insert(username.to_string(), digest);
            t.failures.remove(username);
            Ok(user.role)
        } else {
            self.fail(username);
            Err(rejected())
        }
    }
}

#[async_trait]
impl AuthManager for Authenticator {
    async fn authenticate_anonymous_token(&self, endpoint: &ServerEndpoint) -> Result<(), Error> {
        if self.profile_of(endpoint).is_some_and(|p| p.anonymous) {
            Ok(())
        } else {
            Err(Error::new(StatusCode::BadIdentityTokenRejected, "anonymous sessions are not allowed on this endpoint"))
        }
    }

    async fn authenticate_username_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &Password,
    ) -> Result<UserToken, Error> {
        if !self.profile_of(endpoint).is_some_and(|p| p.username) {
            return Err(Error::new(
                StatusCode::BadIdentityTokenRejected,
                "user names are not accepted on this endpoint",
            ));
        }
        self.check_password(username, password.get()).await?;
        Ok(UserToken(format!("user:{username}")))
    }

    async fn authenticate_x509_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        signing_thumbprint: &Thumbprint,
    ) -> Result<UserToken, Error> {
        if !self.profile_of(endpoint).is_some_and(|p| p.certificate) {
            return Err(Error::new(
                StatusCode::BadIdentityTokenRejected,
                "certificates are not accepted on this endpoint",
            ));
        }
        if self.cert_users.contains_key(signing_thumbprint.value()) {
            Ok(UserToken(format!("cert:{}", hex_of(signing_thumbprint.value()))))
        } else {
            Err(Error::new(StatusCode::BadIdentityTokenRejected, "no user has this certificate"))
        }
    }

    fn effective_user_access_level(&self, token: &UserToken, level: AccessLevel, node_id: &NodeId) -> AccessLevel {
        let Some(perms) = self.permissions.get(node_id) else {
            return level;
        };
        let Some(role) = self.role(token) else {
            return AccessLevel::empty();
        };
        let access = perms.of(role);
        let mut out = AccessLevel::empty();
        if access.read {
            out |= AccessLevel::CURRENT_READ;
        }
        if access.write {
            out |= AccessLevel::CURRENT_WRITE;
        }
        out & level
    }

    fn user_token_policies(&self, endpoint: &ServerEndpoint) -> Vec<UserTokenPolicy> {
        let Some(profile) = self.profile_of(endpoint) else { return Vec::new() };
        let mut out = Vec::new();
        if profile.anonymous {
            out.push(UserTokenPolicy {
                policy_id: UAString::from("anonymous"),
                token_type: UserTokenType::Anonymous,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        if profile.username {
            out.push(UserTokenPolicy {
                policy_id: user_pass_security_policy_id(endpoint),
                token_type: UserTokenType::UserName,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        if profile.certificate {
            out.push(UserTokenPolicy {
                policy_id: UAString::from("x509"),
                token_type: UserTokenType::Certificate,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        out
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user token ids of the endpoint serving `profile` (the anonymous id, when allowed,
/// is the server's own; the rest are our markers).
pub fn endpoint_token_ids(profile: &Profile) -> Vec<String> {
    let mut ids = vec![format!("profile:{}", profile.name)];
    if profile.anonymous {
        ids.push(ANONYMOUS_USER_TOKEN_ID.to_string());
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Access, Mode, Policy};

    fn profile(anonymous: bool) -> Profile {
        Profile {
            name: "p".into(),
            policy: Policy::None,
            mode: Mode::None,
            anonymous,
            username: true,
            certificate: false,
        }
    }

    fn endpoint(p: &Profile) -> ServerEndpoint {
        ServerEndpoint::new_none("/", &endpoint_token_ids(p))
    }

    fn auth(rounds: u32) -> Authenticator {
        let users = vec![User {
            kind: UserKind::Password {
                username: "eng".into(),
                hash: PasswordHash::parse(&PasswordHash::create("secret", b"0123456789abcdef", rounds)).unwrap(),
            },
            role: Role::Engineer,
        }];
        let r = Access { read: true, write: false };
        let rw = Access { read: true, write: true };
        let perms = PermissionTable::new(HashMap::from([(
            "X".to_string(),
            Permissions { viewer: r, operator: rw, engineer: rw },
        )]));
        perms.set_namespace(2);
        Authenticator::new(&users, &[], &[profile(true)], Arc::new(perms), 3).unwrap()
    }

    #[test]
    fn the_editor_hash_format_verifies() {
        // Made with Python: hashlib.pbkdf2_hmac("sha256", b"openplc", b"salt-salt-salt16", 600000)
        let editor = "pbkdf2:sha256:600000$c2FsdC1zYWx0LXNhbHQxNg==$GVphoC88PkoKhr361N6v3g7DdQSkH0M5h5VuTOtnsD8=";
        assert_eq!(PasswordHash::create("openplc", b"salt-salt-salt16", 600_000), editor);
        let h = PasswordHash::parse(editor).unwrap();
        assert!(h.verify("openplc"));
        assert!(!h.verify("openplC"));
        assert!(PasswordHash::parse("pbkdf2:sha256:0$AA==$AA==").is_err());
        assert!(PasswordHash::parse("pbkdf2:sha1:1000$AA==$AA==").is_err());
        assert!(PasswordHash::parse("pbkdf2:sha256:1000$AA==$AA==").unwrap_err().contains("32 bytes"));
    }

    #[tokio::test]
    async fn failures_lock_a_name_but_not_its_known_password() {
        let a = auth(1000);
        let ep = endpoint(&profile(true));
        let good = Password::new("secret".into());
        let bad = Password::new("guess".into());
        assert_eq!(a.authenticate_username_identity_token(&ep, "eng", &good).await.unwrap().0, "user:eng");
        for _ in 0..3 {
            assert!(a.authenticate_username_identity_token(&ep, "eng", &bad).await.is_err());
        }
        let locked = a.authenticate_username_identity_token(&ep, "eng", &bad).await.unwrap_err();
        assert!(format!("{locked}").contains("too many"), "{locked}");
        // The password that passed before still does, without a new PBKDF2 run.
        assert!(a.authenticate_username_identity_token(&ep, "eng", &good).await.is_ok());
        assert!(a.authenticate_username_identity_token(&ep, "nobody", &good).await.is_err());
    }

    #[tokio::test]
    async fn anonymous_is_a_viewer_and_only_where_allowed() {
        let a = auth(1000);
        assert!(a.authenticate_anonymous_token(&endpoint(&profile(true))).await.is_ok());
        let mut closed = profile(false);
        closed.name = "closed".into();
        assert!(a.authenticate_anonymous_token(&endpoint(&closed)).await.is_err(), "an endpoint of no profile");
        let anon = UserToken(ANONYMOUS_USER_TOKEN_ID.into());
        let node = NodeId::new(2, "X");
        let all = AccessLevel::CURRENT_READ | AccessLevel::CURRENT_WRITE;
        assert_eq!(a.effective_user_access_level(&anon, all, &node).bits(), AccessLevel::CURRENT_READ.bits());
        let eng = UserToken("user:eng".into());
        assert_eq!(a.effective_user_access_level(&eng, all, &node).bits(), all.bits());
        assert_eq!(a.effective_user_access_level(&UserToken("user:ghost".into()), all, &node).bits(), 0);
    }
}
