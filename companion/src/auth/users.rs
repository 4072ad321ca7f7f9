//! The user store: `users.json` in the data directory (mode 0600), replaced atomically on
//! every change.
//!
//! JSON rather than SQLite: a field engineer backs up or restores the runtime by copying
//! one directory, can read and diff this file with any editor, needs no database tool on
//! the device, and a power cut leaves the previous or the new file, never a half-written
//! database. Only password hashes (argon2id) are stored.

use super::changes::Changes;
use crate::fsutil::{SECRET_MODE, read_optional, write_atomic};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

/// Roles, from most to least privileged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including user management.
    Admin,
    /// Upload programs, start and stop the PLC, force variables.
    User,
    /// Read status, statistics and logs; watch variables.
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Viewer => "viewer",
        }
    }

    /// Whether this role includes everything `needed` may do.
    pub fn at_least(self, needed: Role) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            Role::Admin => 2,
            Role::User => 1,
            Role::Viewer => 0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: u32,
    pub username: String,
    pub role: Role,
    /// PHC string (`$argon2id$v=19$m=…`).
    pub password_hash: String,
    /// Bumped when the password changes: tokens carrying an older epoch are refused.
    #[serde(default)]
    pub token_epoch: u32,
    #[serde(default)]
    pub created: String,
}

impl User {
    /// What the API shows of a user.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({ "id": self.id, "username": self.username, "role": self.role.as_str() })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct UsersFile {
    version: u32,
    next_id: u32,
    users: Vec<User>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Username already exists")]
    Duplicate,
    #[error("User not found")]
    NotFound,
    #[error("The last admin cannot be removed or demoted")]
    LastAdmin,
    #[error("User already created!")]
    NotFirst,
    #[error("user store: {0}")]
    Io(#[from] io::Error),
}

pub struct UserStore {
    path: PathBuf,
    inner: Mutex<UsersFile>,
    changes: Changes,
}

pub const USERS_FILE: &str = "users.json";

impl UserStore {
    pub fn open(path: PathBuf) -> anyhow::Result<UserStore> {
        let file = match read_optional(&path)? {
            Some(bytes) => serde_json::from_slice::<UsersFile>(&bytes).map_err(|e| {
                anyhow::anyhow!("{}: {e} (restore it from a backup, or move it away to start over)", path.display())
            })?,
            None => UsersFile { version: 1, next_id: 1, users: Vec::new() },
        };
        Ok(UserStore { path, inner: Mutex::new(file), changes: Changes::default() })
    }

    /// Ticks after every change to a user.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UsersFile> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().users.is_empty()
    }

    pub fn get(&self, id: u32) -> Option<User> {
        self.lock().users.iter().find(|u| u.id == id).cloned()
    }

    pub fn by_name(&self, username: &str) -> Option<User> {
        self.lock().users.iter().find(|u| u.username == username).cloned()
    }

    pub fn list(&self) -> Vec<User> {
        self.lock().users.clone()
    }

    /// Adds a user. With `only_if_empty`, refuses unless the store is empty, checked under
    /// the same lock as the insert so two racing first-user requests cannot both win.
    pub fn create(
        &self,
        username: &str,
        role: Role,
        password_hash: String,
        only_if_empty: bool,
    ) -> Result<User, StoreError> {
        let mut file = self.lock();
        if only_if_empty && !file.users.is_empty() {
            return Err(StoreError::NotFirst);
        }
        if file.users.iter().any(|u| u.username == username) {
            return Err(StoreError::Duplicate);
        }
        let user = User {
            id: file.next_id,
            username: username.to_string(),
            role,
            password_hash,
            token_epoch: 0,
            created: crate::timefmt::iso8601(crate::timefmt::unix_now()),
        };
        let mut next = file.clone();
        next.next_id += 1;
        next.users.push(user.clone());
        self.persist(&next)?;
        *file = next;
        self.changes.bump();
        Ok(user)
    }

    /// Changes one user with `f`; refuses a change that leaves no admin.
    pub fn update(&self, id: u32, f: impl FnOnce(&mut User) -> Result<(), StoreError>) -> Result<User, StoreError> {
        let mut file = self.lock();
        let mut next = file.clone();
        let idx = next.users.iter().position(|u| u.id == id).ok_or(StoreError::NotFound)?;
        f(&mut next.users[idx])?;
        let name = next.users[idx].username.clone();
        if next.users.iter().filter(|u| u.username == name).count() > 1 {
            return Err(StoreError::Duplicate);
        }
        if !next.users.iter().any(|u| u.role == Role::Admin) {
            return Err(StoreError::LastAdmin);
        }
        self.persist(&next)?;
        let user = next.users[idx].clone();
        *file = next;
        self.changes.bump();
        Ok(user)
    }

    pub fn delete(&self, id: u32) -> Result<User, StoreError> {
        let mut file = self.lock();
        let mut next = file.clone();
        let idx = next.users.iter().position(|u| u.id == id).ok_or(StoreError::NotFound)?;
        let removed = next.users.remove(idx);
        if !next.users.iter().any(|u| u.role == Role::Admin) {
            return Err(StoreError::LastAdmin);
        }
        self.persist(&next)?;
        *file = next;
        self.changes.bump();
        Ok(removed)
    }

    fn persist(&self, file: &UsersFile) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(file).map_err(io::Error::other)?;
        write_atomic(&self.path, &bytes, SECRET_MODE)
    }
}

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Why a username is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("Invalid username: it is empty")]
    Empty,
    #[error("Invalid username: longer than {MAX_USERNAME_CHARS} characters")]
    TooLong,
    /// The code point and its position (in characters, from 1).
    #[error(
        "Invalid username: character {1} is U+{0:04X}, a control, formatting or invisible character (these can make \
         one name look like another)"
    )]
    Hidden(u32, usize),
}

/// A username the API accepts, trimmed: 1–64 characters, none of them a control,
/// formatting or invisible one ([`crate::text::is_hidden`]).
pub fn check_username(name: &str) -> Result<&str, UsernameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UsernameError::Empty);
    }
    if let Some((i, c)) = name.chars().enumerate().find(|(_, c)| crate::text::is_hidden(*c)) {
        return Err(UsernameError::Hidden(c as u32, i + 1));
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(UsernameError::TooLong);
    }
    Ok(name)
}

/// A password the API accepts: not empty, at most 1 KiB.
pub fn valid_password(pw: &str) -> bool {
    !pw.is_empty() && pw.len() <= 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = UserStore::open(dir.path().join(USERS_FILE)).unwrap();
        (dir, s)
    }

    #[test]
    fn first_user_only_once_and_survives_reopen() {
        let (dir, s) = store();
        let admin = s.create("admin", Role::Admin, "h".into(), true).unwrap();
        assert_eq!(admin.id, 1);
        assert!(matches!(s.create("eve", Role::Admin, "h".into(), true), Err(StoreError::NotFirst)));
        s.create("bob", Role::User, "h".into(), false).unwrap();
        assert!(matches!(s.create("bob", Role::User, "h".into(), false), Err(StoreError::Duplicate)));
        let again = UserStore::open(dir.path().join(USERS_FILE)).unwrap();
        assert_eq!(again.list().len(), 2);
        assert_eq!(again.by_name("bob").unwrap().role, Role::User);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(USERS_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn last_admin_is_guarded() {
        let (_dir, s) = store();
        let admin = s.create("admin", Role::Admin, "h".into(), true).unwrap();
        let bob = s.create("bob", Role::User, "h".into(), false).unwrap();
        assert!(matches!(
            s.update(admin.id, |u| {
                u.role = Role::User;
                Ok(())
            }),
            Err(StoreError::LastAdmin)
        ));
        assert!(matches!(s.delete(admin.id), Err(StoreError::LastAdmin)));
        assert_eq!(s.get(admin.id).unwrap().role, Role::Admin, "a refused change is not applied");
        s.update(bob.id, |u| {
            u.role = Role::Admin;
            Ok(())
        })
        .unwrap();
        s.delete(admin.id).unwrap();
        assert!(s.get(admin.id).is_none());
    }

    #[test]
    fn renames_cannot_collide() {
        let (_dir, s) = store();
        s.create("admin", Role::Admin, "h".into(), true).unwrap();
        let bob = s.create("bob", Role::User, "h".into(), false).unwrap();
        let r = s.update(bob.id, |u| {
            u.username = "admin".into();
            Ok(())
        });
        assert!(matches!(r, Err(StoreError::Duplicate)));
    }

    #[test]
    fn usernames_with_hidden_characters_are_refused() {
        assert_eq!(check_username("Jürgen Müller-Ødegård"), Ok("Jürgen Müller-Ødegård"));
        assert_eq!(check_username("操作员"), Ok("操作员"));
        assert_eq!(check_username("adm\u{202e}nim"), Err(UsernameError::Hidden(0x202E, 4)));
        for bad in ["\u{2066}x\u{2069}", "a\u{200b}b", "a\u{2028}b", "a\nb", "\u{feff}a", "a\u{fe0f}"] {
            assert!(matches!(check_username(bad), Err(UsernameError::Hidden(..))), "{bad:?}");
        }
        assert_eq!(check_username(&"x".repeat(64)), Ok(&*"x".repeat(64)));
        assert_eq!(check_username(&"x".repeat(65)), Err(UsernameError::TooLong));
        let msg = UsernameError::Hidden(0x202E, 4).to_string();
        assert!(msg.contains("U+202E") && msg.contains("character 4"), "{msg}");
    }

    #[test]
    fn roles_order() {
        assert!(Role::Admin.at_least(Role::User));
        assert!(Role::User.at_least(Role::Viewer));
        assert!(!Role::Viewer.at_least(Role::User));
        assert_eq!(Role::parse(" Admin "), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
        assert_eq!(check_username("  bob "), Ok("bob"));
        assert_eq!(check_username("   "), Err(UsernameError::Empty));
    }
}
