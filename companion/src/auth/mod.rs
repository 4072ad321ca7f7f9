//! Users, passwords, tokens and login throttling.

pub mod changes;
pub mod password;
pub mod throttle;
pub mod tokens;
pub mod users;

use self::password::PasswordHasherPool;
use self::throttle::LoginThrottle;
use self::tokens::{Claims, TokenError, TokenService};
use self::users::{User, UserStore};
use std::path::Path;

pub struct Auth {
    pub users: UserStore,
    pub hasher: PasswordHasherPool,
    pub tokens: TokenService,
    pub throttle: LoginThrottle,
}

/// A request's verified identity.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub claims: Claims,
}

impl Auth {
    pub fn open(data_dir: &Path) -> anyhow::Result<Auth> {
        let users = UserStore::open(data_dir.join(users::USERS_FILE))?;
        let tokens = TokenService::open(&data_dir.join("secrets"), users.changes().clone())?;
        Ok(Auth { users, hasher: PasswordHasherPool::new(), tokens, throttle: LoginThrottle::new() })
    }

    /// Ticks whenever a user or a token changes: sessions opened earlier check again.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.users.changes().subscribe()
    }

    /// Checks an `Authorization` header value: a valid, unrevoked token of a user that
    /// still exists and has not changed its password since.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Session, TokenError> {
        self.authenticate_token(bearer(authorization).ok_or(TokenError::Missing)?)
    }

    /// Checks a bare token (the debugger's Socket.IO handshake carries one).
    pub fn authenticate_token(&self, token: &str) -> Result<Session, TokenError> {
        self.session(self.tokens.verify(token)?)
    }

    /// Checks again the token of a session accepted earlier: revoked (logged out), user
    /// deleted or password changed since refuse it; the user's current role and name
    /// come back. The expiry is not checked again: the Editor never renews the token of
    /// its debugger socket, and a long debug session must outlive it.
    pub fn recheck_token(&self, token: &str) -> Result<Session, TokenError> {
        self.session(self.tokens.verify_any_age(token)?)
    }

    fn session(&self, claims: Claims) -> Result<Session, TokenError> {
        let user = claims.user_id().and_then(|id| self.users.get(id)).ok_or(TokenError::Invalid)?;
        if user.token_epoch != claims.epoch {
            return Err(TokenError::Revoked);
        }
        Ok(Session { user, claims })
    }
}

/// The token of a `Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer   abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn password_change_retires_old_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open(dir.path()).unwrap();
        let u = auth.users.create("a", users::Role::Admin, "h".into(), true).unwrap();
        let t = auth.tokens.issue(u.id, u.token_epoch).unwrap();
        let header = format!("Bearer {t}");
        assert!(auth.authenticate(Some(&header)).is_ok());
        auth.users
            .update(u.id, |u| {
                u.token_epoch += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(auth.authenticate(Some(&header)).unwrap_err(), TokenError::Revoked);
        auth.users.create("b", users::Role::Admin, "h".into(), false).unwrap();
        auth.users.delete(u.id).unwrap();
        assert_eq!(auth.authenticate(Some(&header)).unwrap_err(), TokenError::Invalid, "deleted user");
    }
}
