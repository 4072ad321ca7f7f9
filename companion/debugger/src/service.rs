//! One debug command in, one reply out: the protocol applied to the PLC through its
//! [`PlcPort`] (values from the port's shared watch list, forces as commands).
//! Transport-free (the Socket.IO side is `crate::socketio`).

use crate::protocol::{self, Addr, Family, ListReply, Rejected, Request};
use crate::values;
use openplc_port::{PlcPort, SampleError, Value};
use shared_abi::debug::{Generator, ProgramInfo};
use shared_abi::msg::{CommandStatus, LogLevel};
use std::sync::Arc;
use std::time::Duration;

/// The least a force or release waits for rt-core's answer (longer for a slow period).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Who a session belongs to, as the companion's authentication says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    /// Whether the user's role allows forcing and releasing variables.
    pub may_force: bool,
}

/// Checks the JWT a client presents when it connects, and again whenever the users or
/// tokens change.
pub trait Authenticator: Send + Sync + 'static {
    /// The user the token belongs to, or why it is refused (shown to the client).
    fn verify(&self, token: &str) -> Result<Identity, String>;

    /// The token of a connected client, checked again after [`Authenticator::changes`]
    /// ticked: the user's current rights, or why the token no longer counts (revoked,
    /// user deleted, password changed); the client is then disconnected. Implementations
    /// should not check the expiry again (the Editor never renews its socket's token).
    fn recheck(&self, token: &str) -> Result<Identity, String> {
        self.verify(token)
    }

    /// Ticks whenever users or tokens change; `None`: rights never change.
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

impl<F> Authenticator for F
where
    F: Fn(&str) -> Result<Identity, String> + Send + Sync + 'static,
{
    fn verify(&self, token: &str) -> Result<Identity, String> {
        self(token)
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The family spoken while no program is loaded, and for programs of another generator
    /// than MatIEC or STruC++. The companion sets it from its Editor-compatibility setting:
    /// legacy (Editor ≤ 4.1.4) → [`Family::FlatIndex`].
    pub default_family: Family,
    /// Longest a read waits for fresh values before answering `success:false` (the Editor
    /// gives up after 5 s).
    pub read_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { default_family: Family::FlatIndex, read_timeout: Duration::from_secs(2) }
    }
}

/// The answer to one `debug_command`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A PDU (which may carry an error status): `{success:true, data}`.
    Pdu(Vec<u8>),
    /// The command could not be carried out at all: `{success:false, error}`.
    Error(String),
}

impl Reply {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Reply::Pdu(b) => serde_json::json!({ "success": true, "data": protocol::encode_hex(b) }),
            Reply::Error(e) => serde_json::json!({ "success": false, "error": e }),
        }
    }
}

/// Per-connection state.
#[derive(Clone, Debug)]
pub struct Session {
    pub identity: Identity,
    /// How this client encodes forced numbers (flat family; set by its 0x45 probe). The
    /// Editor always sends them big-endian.
    pub forces_big_endian: bool,
    /// For log lines: where the client connects from.
    pub peer: String,
}

impl Session {
    pub fn new(identity: Identity, peer: impl Into<String>) -> Self {
        Session { identity, forces_big_endian: true, peer: peer.into() }
    }
}

const NO_PROGRAM: &str = "No PLC program loaded";
const RT_DOWN: &str = "The PLC runtime (openplc-rt) is not running";

/// The debugger: shared by every connection.
pub struct Debugger {
    port: Arc<PlcPort>,
    auth: Arc<dyn Authenticator>,
    config: Config,
}

impl Debugger {
    pub fn new(port: Arc<PlcPort>, auth: Arc<dyn Authenticator>, config: Config) -> Arc<Debugger> {
        Arc::new(Debugger { port, auth, config })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn port(&self) -> &Arc<PlcPort> {
        &self.port
    }

    pub fn authenticate(&self, token: &str) -> Result<Identity, String> {
        self.auth.verify(token)
    }

    /// See [`Authenticator::recheck`].
    pub fn reauthenticate(&self, token: &str) -> Result<Identity, String> {
        self.auth.recheck(token)
    }

    /// A line for the runtime log (audit of who did what).
    pub fn log(&self, level: LogLevel, message: &str) {
        self.port.log(level, message)
    }

    /// See [`Authenticator::changes`].
    pub fn auth_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.auth.changes()
    }

    /// Variables currently in the shared watch list.
    pub fn watched(&self) -> usize {
        self.port.sampler().watched()
    }

    /// The stamp a command gets when it arrives: its values come from the first scan that
    /// begins after it.
    pub fn arrival(&self) -> u64 {
        self.port.arrival()
    }

    /// The family spoken for `info`'s program.
    pub fn family(&self, info: &ProgramInfo) -> Family {
        match Generator::from_u32(info.generator) {
            Generator::Matiec if info.program_gen != 0 => Family::FlatIndex,
            Generator::Strucpp if info.program_gen != 0 => Family::ArrayElement,
            _ => self.config.default_family,
        }
    }

    /// Answers one command: `command` is the hex text, `arrival` the loop counter when it
    /// arrived (reads return values taken in a later scan).
    pub async fn handle(&self, session: &mut Session, command: &str, arrival: u64) -> Reply {
        let pdu = match protocol::decode_hex(command) {
            Ok(p) => p,
            Err(e) => return Reply::Error(format!("Malformed command: {e}")),
        };
        // License codes never reach the PLC (upstream's webserver answers them itself), so
        // they are answered with or without rt-core or a program.
        if let Ok(Request::License { fc }) = protocol::parse(Family::ArrayElement, &pdu) {
            return Reply::Pdu(protocol::license_not_supported(fc));
        }
        if !self.port.rt_alive() {
            return Reply::Error(RT_DOWN.into());
        }
        // A program swapped in while a read waited changes what the indices mean: start over.
        for _ in 0..3 {
            // No program: a zeroed record (`program_gen` 0).
            let info = self.port.program_info().unwrap_or_else(bytemuck::Zeroable::zeroed);
            let family = self.family(&info);
            let request = match protocol::parse(family, &pdu) {
                Ok(r) => r,
                Err(Rejected::Empty) => return Reply::Error("Empty command".into()),
                Err(Rejected::Reply(r)) => return Reply::Pdu(r),
            };
            if info.program_gen == 0 {
                return match family {
                    Family::FlatIndex => Reply::Error(NO_PROGRAM.into()),
                    Family::ArrayElement => Reply::Pdu(protocol::status(request.function_code(), protocol::NOT_LOADED)),
                };
            }
            let outcome = match request {
                Request::Info => Some(self.info(family, &info)),
                Request::Md5 { probe } => Some(self.md5(session, family, &info, probe)),
                Request::Set { addr, force, value } => Some(self.set(session, family, &info, addr, force, value).await),
                Request::Range { array, start, end } => self.range(family, &info, array, start, end, arrival).await,
                Request::List(addrs) => self.list(family, &info, &addrs, arrival).await,
                Request::License { fc } => Some(Reply::Pdu(protocol::license_not_supported(fc))),
            };
            if let Some(reply) = outcome {
                return reply;
            }
        }
        Reply::Error("The PLC program changed while the request was served; try again".into())
    }

    fn info(&self, family: Family, info: &ProgramInfo) -> Reply {
        Reply::Pdu(match family {
            Family::FlatIndex => protocol::info_flat(info.var_count),
            Family::ArrayElement => {
                let n = (info.group_count as usize).min(info.group_len.len());
                protocol::info_pairs(&info.group_len[..n])
            }
        })
    }

    fn md5(&self, session: &mut Session, family: Family, info: &ProgramInfo, probe: [u8; 2]) -> Reply {
        let md5 = info.md5_str();
        match family {
            Family::FlatIndex => {
                let Some(big_endian) = protocol::probe_says_big_endian(probe) else {
                    return Reply::Pdu(protocol::status(protocol::FC_MD5, protocol::OUT_OF_BOUNDS));
                };
                session.forces_big_endian = big_endian;
                match md5 {
                    Some(m) => Reply::Pdu(protocol::md5_flat(m.as_bytes())),
                    None => Reply::Error("The loaded program has no MD5".into()),
                }
            }
            Family::ArrayElement => match md5 {
                Some(m) => Reply::Pdu(protocol::md5_pairs(m.as_bytes())),
                None => Reply::Pdu(protocol::status(protocol::FC_MD5, protocol::NOT_LOADED)),
            },
        }
    }

    fn flat_var(info: &ProgramInfo, addr: Addr) -> Option<u32> {
        match addr {
            Addr::Flat(i) => (u32::from(i) < info.var_count).then_some(u32::from(i)),
            Addr::Pair { array, element } => info.flat_index(array.into(), element.into()),
        }
    }

    async fn set(
        &self,
        session: &Session,
        family: Family,
        info: &ProgramInfo,
        addr: Addr,
        force: bool,
        value: Vec<u8>,
    ) -> Reply {
        let Some(var) = Self::flat_var(info, addr) else {
            return Reply::Pdu(protocol::status(protocol::FC_SET, protocol::OUT_OF_BOUNDS));
        };
        let who = &session.identity.name;
        let what = describe(addr, var);
        if !session.identity.may_force {
            self.port.log(
                LogLevel::Warning,
                &format!(
                    "debugger: user '{who}' may not force; refused to {} {what}",
                    if force { "force" } else { "release" }
                ),
            );
            return Reply::Error(format!("Forbidden: user '{who}' may monitor but not force or release variables"));
        }
        // The flat family's Editor sends numbers big-endian; the pair family's sends the
        // target's own order (it swaps by the 0x45 sentinel).
        let big_endian = family == Family::FlatIndex && session.forces_big_endian;
        let timeout = self.port.command_timeout(COMMAND_TIMEOUT);
        let result = if force {
            self.port.force(var, &value, big_endian, timeout).await
        } else {
            self.port.unforce(var, timeout).await
        };
        let action = if force {
            format!(
                "forced {what} to [{}]{}",
                protocol::encode_hex(&value),
                if big_endian { " (big-endian)" } else { "" }
            )
        } else {
            format!("released {what}")
        };
        match result {
            Ok(CommandStatus::Ok) => {
                self.port.log(LogLevel::Info, &format!("debugger: user '{who}' {action}"));
                Reply::Pdu(protocol::status(protocol::FC_SET, protocol::SUCCESS))
            }
            Ok(status) => {
                self.port.log(
                    LogLevel::Warning,
                    &format!("debugger: user '{who}' could not have {action}: {}", status.as_str()),
                );
                match status {
                    CommandStatus::BadVariable => {
                        Reply::Pdu(protocol::status(protocol::FC_SET, protocol::OUT_OF_BOUNDS))
                    }
                    CommandStatus::BadValue | CommandStatus::TooManyForces => {
                        Reply::Pdu(protocol::status(protocol::FC_SET, protocol::OUT_OF_MEMORY))
                    }
                    CommandStatus::NoProgram => match family {
                        Family::FlatIndex => Reply::Error(NO_PROGRAM.into()),
                        Family::ArrayElement => Reply::Pdu(protocol::status(protocol::FC_SET, protocol::NOT_LOADED)),
                    },
                    other => Reply::Error(format!("The PLC runtime refused: {}", other.as_str())),
                }
            }
            Err(e) => {
                self.port.log(LogLevel::Warning, &format!("debugger: user '{who}' could not have {action}: {e}"));
                Reply::Error(format!("The PLC runtime did not answer: {e}"))
            }
        }
    }

    async fn range(
        &self,
        family: Family,
        info: &ProgramInfo,
        array: u8,
        start: u16,
        end: u16,
        arrival: u64,
    ) -> Option<Reply> {
        let out_of_bounds = Some(Reply::Pdu(protocol::status(protocol::FC_GET, protocol::OUT_OF_BOUNDS)));
        // At most a list's worth per request: `last` tells the client where it stopped.
        let items: Vec<(u16, u32)> = match family {
            Family::FlatIndex => {
                if u32::from(end) >= info.var_count {
                    return out_of_bounds;
                }
                (start..=end).take(protocol::FLAT_LIST_MAX).map(|i| (i, u32::from(i))).collect()
            }
            Family::ArrayElement => {
                let len = info.group_len.get(array as usize).copied().unwrap_or(0);
                if u32::from(array) >= info.group_count || u32::from(end) >= len {
                    return out_of_bounds;
                }
                (start..=end)
                    .take(protocol::FLAT_LIST_MAX)
                    .filter_map(|e| Some((e, info.flat_index(array.into(), e.into())?)))
                    .collect()
            }
        };
        let items: Vec<(u16, Option<u32>)> = items.into_iter().map(|(m, v)| (m, Some(v))).collect();
        self.read(protocol::FC_GET, info, &items, start, arrival).await
    }

    async fn list(&self, family: Family, info: &ProgramInfo, addrs: &[Addr], arrival: u64) -> Option<Reply> {
        let mut items = Vec::with_capacity(addrs.len());
        for (pos, &addr) in addrs.iter().enumerate() {
            let var = Self::flat_var(info, addr);
            match (family, addr, var) {
                // Flat: any unknown index fails the whole request, as upstream.
                (Family::FlatIndex, Addr::Flat(i), Some(v)) => items.push((i, Some(v))),
                (Family::FlatIndex, _, _) => {
                    return Some(Reply::Pdu(protocol::status(protocol::FC_GET_LIST, protocol::OUT_OF_BOUNDS)));
                }
                // Pairs: `last` is the position in the request; unknown pairs are skipped.
                (Family::ArrayElement, _, v) => items.push((pos as u16, v)),
            }
        }
        self.read(protocol::FC_GET_LIST, info, &items, 0, arrival).await
    }

    /// Waits for values of `items` taken after `arrival` and builds the reply. `None`: the
    /// program changed meanwhile.
    async fn read(
        &self,
        fc: u8,
        info: &ProgramInfo,
        items: &[(u16, Option<u32>)],
        initial_last: u16,
        arrival: u64,
    ) -> Option<Reply> {
        let vars = self.frame_prefix(items);
        let lease = match self.port.sampler().lease(&vars) {
            Ok(l) => l,
            // Too many variables watched at once: the Editor halves its batch on 0x82.
            Err(_) => return Some(Reply::Pdu(protocol::status(fc, protocol::OUT_OF_MEMORY))),
        };
        let sample = match lease.wait(info.program_gen, arrival, self.config.read_timeout).await {
            Ok(s) => s,
            Err(SampleError::ProgramChanged) => return None,
            Err(SampleError::NoRoom) => return Some(Reply::Pdu(protocol::status(fc, protocol::OUT_OF_MEMORY))),
            Err(e) => return Some(Reply::Error(e.to_string())),
        };
        drop(lease);
        let mut reply = ListReply::new(fc, sample.tick as u32, initial_last);
        let mut scratch = [0u8; values::WIRE_TIMESPEC];
        for &(marker, var) in items {
            let Some(var) = var else {
                reply.skip(marker);
                continue;
            };
            match sample.get(var) {
                Some(Value::Bytes { kind, raw }) => {
                    if !reply.push(marker, values::to_wire(kind, raw, &mut scratch)) {
                        break;
                    }
                }
                Some(Value::Missing) => reply.skip(marker),
                // Not leased (past the frame when the request started): the frame ends here.
                Some(Value::NoRoom) | None => break,
            }
        }
        Some(Reply::Pdu(reply.finish()))
    }

    /// The variables of `items` that can fit one frame, by the sizes last seen; unknown
    /// sizes count as fitting.
    fn frame_prefix(&self, items: &[(u16, Option<u32>)]) -> Vec<u32> {
        let latest = self.port.sampler().latest();
        let mut used = protocol::LIST_HEADER;
        let mut vars = Vec::with_capacity(items.len());
        for &(_, var) in items {
            let Some(var) = var else { continue };
            if let Some(Value::Bytes { kind, raw }) = latest.as_ref().and_then(|s| s.get(var)) {
                used += values::wire_len(kind, raw.len());
                if used > protocol::MAX_FRAME {
                    break;
                }
            }
            vars.push(var);
        }
        vars
    }
}

fn describe(addr: Addr, var: u32) -> String {
    match addr {
        Addr::Flat(_) => format!("debug variable {var}"),
        Addr::Pair { array, element } => format!("debug variable ({array}, {element}) (index {var})"),
    }
}
