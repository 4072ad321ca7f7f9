//! The debugger (`openplc-debugger`) wired to the companion: it reaches rt-core through the
//! companion's port, authenticates with the companion's tokens and roles, and its audit lines
//! go to the runtime log.

use crate::auth::Auth;
use crate::auth::users::Role;
use crate::settings::EditorCompat;
use openplc_debugger::{Authenticator, Config, Debugger, Family, Identity};
use openplc_port::PlcPort;
use std::sync::Arc;

/// The companion's users and tokens, as the debugger sees them.
struct CompanionAuth(Arc<Auth>);

impl CompanionAuth {
    fn identity(session: crate::auth::Session) -> Identity {
        // Escaped: a name stored before names were checked must not act in log lines.
        let name = crate::text::escape_hidden(&session.user.username, &[]).into_owned();
        Identity { name, may_force: session.user.role.at_least(Role::User) }
    }
}

impl Authenticator for CompanionAuth {
    fn verify(&self, token: &str) -> Result<Identity, String> {
        self.0.authenticate_token(token).map(Self::identity).map_err(|e| e.message().to_string())
    }

    /// Revocation, deletion, demotion and a password change take effect on a connected
    /// socket; the expiry does not: the Editor never refreshes the socket's token, and a
    /// long debug session must not break when it expires (reference §3.1).
    fn recheck(&self, token: &str) -> Result<Identity, String> {
        self.0.recheck_token(token).map(Self::identity).map_err(|e| e.message().to_string())
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.0.changes())
    }
}

/// The debugger for this companion.
pub fn debugger(port: Arc<PlcPort>, auth: Arc<Auth>, compat: EditorCompat) -> Arc<Debugger> {
    let default_family = match compat {
        EditorCompat::Current => Family::ArrayElement,
        _ => Family::FlatIndex,
    };
    Debugger::new(port, Arc::new(CompanionAuth(auth)), Config { default_family, ..Config::default() })
}
