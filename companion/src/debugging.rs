//! The debugger (`openplc-debugger`) wired to the companion: its PLC backend is the
//! companion's bridge to rt-core, its authentication the companion's tokens and roles, its
//! audit lines go to the runtime log.

use crate::auth::Auth;
use crate::auth::users::Role;
use crate::logs::{Level, LogHub};
use crate::plc::{PlcBridge, PlcError};
use crate::settings::EditorCompat;
use openplc_debugger::{Authenticator, Backend, BackendError, Config, Debugger, Family, Identity};
use shared_abi::client::Reader;
use shared_abi::debug::{DebugValues, ProgramInfo};
use shared_abi::msg::{Command, CommandStatus, LogLevel};
use std::sync::Arc;

/// Attempts at a seqlock read before reporting a torn read (its writer died mid-write).
const READ_ATTEMPTS: u32 = 10_000;

struct BridgeBackend {
    plc: Arc<PlcBridge>,
    logs: Arc<LogHub>,
}

fn backend_error(e: PlcError) -> BackendError {
    BackendError(e.to_string())
}

impl Backend for BridgeBackend {
    fn heartbeat(&self) -> u64 {
        self.plc.heartbeat()
    }

    fn rt_alive(&self) -> bool {
        self.plc.observer().map(|o| o.rt_alive()).unwrap_or(false)
    }

    fn program_info(&self) -> Result<ProgramInfo, BackendError> {
        let obs = self.plc.observer().map_err(backend_error)?;
        obs.program_info().map_err(|e| BackendError(e.to_string()))
    }

    fn set_watch(&self, vars: &[u32]) -> Result<u32, BackendError> {
        self.plc.with_client_blocking(|c| c.set_watch(vars)).map_err(backend_error)
    }

    fn debug_values(&self, out: &mut DebugValues) -> Result<(), BackendError> {
        let obs = self.plc.observer().map_err(backend_error)?;
        obs.shm().debug.read(out, READ_ATTEMPTS).map(|_| ()).map_err(|_| BackendError("torn debug values".into()))
    }

    fn force(&self, var: u32, value: &[u8], big_endian: bool) -> Result<CommandStatus, BackendError> {
        let value = heapless::Vec::from_slice(value).map_err(|_| BackendError("forced value too large".into()))?;
        self.plc.command_blocking(Command::Force { var, value, big_endian }).map_err(backend_error)
    }

    fn unforce(&self, var: u32) -> Result<CommandStatus, BackendError> {
        self.plc.command_blocking(Command::Unforce { var }).map_err(backend_error)
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warning => Level::Warning,
            LogLevel::Error => Level::Error,
        };
        self.logs.log(level, message.to_string());
    }
}

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
pub fn debugger(plc: Arc<PlcBridge>, logs: Arc<LogHub>, auth: Arc<Auth>, compat: EditorCompat) -> Arc<Debugger> {
    let backend = Arc::new(BridgeBackend { plc, logs });
    let default_family = match compat {
        EditorCompat::Current => Family::ArrayElement,
        _ => Family::FlatIndex,
    };
    Debugger::new(backend, Arc::new(CompanionAuth(auth)), Config { default_family, ..Config::default() })
}
