//! The debugger (`openplc-debugger`) wired to the companion: it reaches rt-core through the
//! companion's port (whose log sink is the runtime log), and authenticates with the
//! companion's tokens and roles.

use crate::auth::Auth;
use crate::auth::users::Role;
use crate::settings::EditorCompat;
use openplc_debugger::{Config, Debugger, Family, Identity};
use openplc_port::PlcPort;
use std::sync::Arc;

/// The debugger for this companion.
pub fn debugger(port: Arc<PlcPort>, auth: Arc<Auth>, compat: EditorCompat) -> Arc<Debugger> {
    // Checked at connect only: the Editor never refreshes the socket's token, and a long
    // debug session must not break when it expires (reference §3.1).
    let authenticate = move |token: &str| -> Result<Identity, String> {
        let session = auth.authenticate_token(token).map_err(|e| e.message().to_string())?;
        Ok(Identity { name: session.user.username.clone(), may_force: session.user.role.at_least(Role::User) })
    };
    let default_family = match compat {
        EditorCompat::Current => Family::ArrayElement,
        _ => Family::FlatIndex,
    };
    Debugger::new(port, Arc::new(authenticate), Config { default_family, ..Config::default() })
}
