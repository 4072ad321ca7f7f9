//! The server's configuration: `conf/opcua.json` read, checked and resolved into what the
//! server runs. Anything that cannot be served as written is an error naming the place;
//! anything adjusted (a cycle time clamped, a deprecated profile skipped, an anonymous role
//! lowered to viewer) is a warning to log once.

pub mod client;
mod raw;

use crate::iec::{IecType, TimeMapping};
use raw::{RawAddress, RawField, RawPermissions};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// File names the Editor writes.
pub const SERVER_FILE: &str = "opcua.json";
pub const CLIENT_FILE: &str = "opcua_client.json";

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    Json { path: PathBuf, source: serde_path_to_error::Error<serde_json::Error> },
    #[error("{file}: {message}")]
    Invalid { file: &'static str, message: String },
}

pub(crate) fn invalid(file: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { file, message: message.into() }
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read(path).map_err(|source| ConfigError::Io { path: path.into(), source })?;
    let mut de = serde_json::Deserializer::from_slice(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|source| ConfigError::Json { path: path.into(), source })
}

/// Our limits (an optional `"limits"` object beside `cycle_time_ms`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_sessions: usize,
    /// TCP connections at once, and from one source address.
    pub max_connections: usize,
    pub max_connections_per_source: usize,
    pub max_subscriptions_per_session: usize,
    pub max_monitored_items_per_subscription: usize,
    /// Bytes in one message, and chunks it may arrive in.
    pub max_message_size: usize,
    pub max_chunk_count: usize,
    /// Nodes in one Read, Write, Browse or monitored-item call.
    pub max_nodes_per_request: usize,
    /// Seconds a new connection has to say Hello.
    pub hello_timeout_s: u32,
    /// How long a read waits for a scan before answering BadTimeout.
    pub read_timeout_ms: u64,
    /// A subscription whose client stops asking for publish responses is dropped after
    /// this long (with its queued notifications).
    pub subscription_lifetime_ms: u64,
    /// Longest session timeout a client may ask for: a client silent that long loses its
    /// session and everything it monitored.
    pub session_timeout_ms: u64,
    /// Password checks that may fail for one user name in a minute before it is locked
    /// for a minute (doubling up to 15).
    pub max_failed_logins: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 32,
            max_connections: 64,
            max_connections_per_source: 8,
            max_subscriptions_per_session: 10,
            max_monitored_items_per_subscription: 1000,
            max_message_size: 4 << 20,
            max_chunk_count: 128,
            max_nodes_per_request: 1000,
            hello_timeout_s: 5,
            read_timeout_ms: 2000,
            subscription_lifetime_ms: 60_000,
            session_timeout_ms: 60_000,
            max_failed_logins: 5,
        }
    }
}

/// A supported security policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    None,
    Basic256Sha256,
    Aes128Sha256RsaOaep,
    Aes256Sha256RsaPss,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    None,
    Sign,
    SignAndEncrypt,
}

/// One endpoint the server offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub policy: Policy,
    pub mode: Mode,
    pub anonymous: bool,
    pub username: bool,
    pub certificate: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Operator,
    Engineer,
}

impl Role {
    fn parse(text: &str) -> Option<Role> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "engineer" => Some(Role::Engineer),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
}

/// Per-role access to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permissions {
    pub viewer: Access,
    pub operator: Access,
    pub engineer: Access,
}

impl Permissions {
    pub fn of(&self, role: Role) -> Access {
        match role {
            Role::Viewer => self.viewer,
            Role::Operator => self.operator,
            Role::Engineer => self.engineer,
        }
    }

    pub fn any_write(&self) -> bool {
        self.viewer.write || self.operator.write || self.engineer.write
    }
}

/// A user that may sign in.
#[derive(Clone, Debug)]
pub enum UserKind {
    Password { username: String, hash: crate::server::auth::PasswordHash },
    Certificate { certificate_id: String },
}

#[derive(Clone, Debug)]
pub struct User {
    pub kind: UserKind,
    pub role: Role,
}

/// A client certificate the configuration trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedCert {
    pub id: String,
    pub pem: String,
}

/// Where the server's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// Made once and kept in the data directory.
    Generated,
    /// The configuration's PEM certificate and key.
    Custom { cert_pem: String, key_pem: String },
}

/// A debug variable as the configuration addresses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VarRef {
    /// MatIEC: the flat debug index.
    Flat(u32),
    /// STruC++: (debug array, element).
    Leaf { arr: u32, elem: u32 },
}

impl VarRef {
    /// The `k`-th element of an array starting here.
    pub fn offset(self, k: u32) -> Option<VarRef> {
        match self {
            VarRef::Flat(i) => i.checked_add(k).map(VarRef::Flat),
            VarRef::Leaf { arr, elem } => elem.checked_add(k).map(|elem| VarRef::Leaf { arr, elem }),
        }
    }
}

impl std::fmt::Display for VarRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarRef::Flat(i) => write!(f, "index {i}"),
            VarRef::Leaf { arr, elem } => write!(f, "(arr {arr}, elem {elem})"),
        }
    }
}

/// A node of the address space the configuration asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeDef {
    Variable {
        node_id: String,
        browse_name: String,
        display_name: String,
        description: String,
        ty: IecType,
        at: VarRef,
        size: Option<u32>,
        permissions: Permissions,
    },
    Array {
        node_id: String,
        browse_name: String,
        display_name: String,
        ty: IecType,
        length: u32,
        at: VarRef,
        size: Option<u32>,
        permissions: Permissions,
    },
    Object {
        node_id: String,
        browse_name: String,
        display_name: String,
        description: String,
        children: Vec<NodeDef>,
    },
}

/// Where the server listens and what it calls itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The configured URL, as written.
    pub url: String,
    pub host: String,
    pub port: u16,
    /// The endpoint's path (`/openplc/opcua`).
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Option<Endpoint> {
        let rest = url.trim().strip_prefix("opc.tcp://").or_else(|| url.trim().strip_prefix("OPC.TCP://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']')?;
            let port = v6[end + 1..].strip_prefix(':');
            (&v6[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => 4840,
        };
        if host.is_empty() {
            return None;
        }
        let path = path.trim_end_matches('/');
        Some(Endpoint {
            url: url.trim().to_string(),
            host: host.to_string(),
            port,
            path: if path.is_empty() { "/".into() } else { path.into() },
        })
    }
}

/// What the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    pub application_uri: String,
    pub product_uri: String,
    pub endpoint: Endpoint,
    pub profiles: Vec<Profile>,
    pub certificate: CertificateSource,
    pub trusted: Vec<TrustedCert>,
    pub users: Vec<User>,
    pub cycle_time_ms: u64,
    pub namespace_uri: String,
    pub nodes: Vec<NodeDef>,
    pub limits: Limits,
    pub time_mapping: TimeMapping,
    /// Adjustments made while reading the file.
    pub warnings: Vec<String>,
}

const F: &str = SERVER_FILE;

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let entries: Vec<raw::Entry> = read_json(path)?;
        let mut entries = entries.into_iter();
        let entry = entries.next().ok_or_else(|| invalid(F, "the file lists no server"))?;
        let mut warnings = Vec::new();
        if entries.next().is_some() {
            warnings.push("only the first server of the file is used".to_string());
        }
        if entry.protocol != "OPC-UA" {
            return Err(invalid(F, format!("protocol is {:?}, expected \"OPC-UA\"", entry.protocol)));
        }
        resolve(entry.config, warnings)
    }
}

fn resolve(c: raw::RawConfig, mut warnings: Vec<String>) -> Result<ServerConfig, ConfigError> {
    if let Some(v) = c.format_version
        && v > 2
    {
        warnings.push(format!("format_version {v} is newer than this runtime knows (2); reading it as 2"));
    }
    let endpoint = Endpoint::parse(&c.server.endpoint_url).ok_or_else(|| {
        invalid(F, format!("server.endpoint_url {:?} is not opc.tcp://host:port/path", c.server.endpoint_url))
    })?;
    let profiles = profiles(&c.server.security_profiles, &mut warnings)?;
    let certificate = match c.security.server_certificate_strategy.as_deref().unwrap_or("auto_self_signed") {
        "auto_self_signed" => CertificateSource::Generated,
        "custom" => match (&c.security.server_certificate_custom, &c.security.server_private_key_custom) {
            (Some(cert), Some(key)) if !cert.trim().is_empty() && !key.trim().is_empty() => {
                CertificateSource::Custom { cert_pem: cert.clone(), key_pem: key.clone() }
            }
            _ => {
                return Err(invalid(
                    F,
                    "security.server_certificate_strategy is \"custom\" but the certificate or key is missing",
                ));
            }
        },
        other => {
            return Err(invalid(
                F,
                format!("security.server_certificate_strategy {other:?} is not auto_self_signed or custom"),
            ));
        }
    };
    let trusted: Vec<TrustedCert> =
        c.security.trusted_client_certificates.into_iter().map(|t| TrustedCert { id: t.id, pem: t.pem }).collect();
    let users = users(c.users, &trusted, &mut warnings)?;
    let cycle_time_ms = match c.cycle_time_ms.unwrap_or(100) {
        n @ 10..=10_000 => n,
        n => {
            let clamped = n.clamp(10, 10_000);
            warnings.push(format!("cycle_time_ms {n} is outside 10..10000; using {clamped}"));
            clamped
        }
    };
    let time_mapping = match c.time_mapping.as_deref() {
        None | Some("duration") => TimeMapping::Duration,
        Some("int64_ms") => TimeMapping::Int64Ms,
        Some(other) => return Err(invalid(F, format!("time_mapping {other:?} is not \"duration\" or \"int64_ms\""))),
    };
    let nodes = address_space(&c.address_space)?;
    check_unique(&nodes)?;
    if c.limits.max_connections == 0 || c.limits.max_connections_per_source == 0 || c.limits.max_sessions == 0 {
        return Err(invalid(F, "limits: connection and session limits must be at least 1"));
    }
    Ok(ServerConfig {
        name: c.server.name,
        application_uri: c.server.application_uri,
        product_uri: c.server.product_uri,
        endpoint,
        profiles,
        certificate,
        trusted,
        users,
        cycle_time_ms,
        namespace_uri: c.address_space.namespace_uri.clone(),
        nodes,
        limits: c.limits,
        time_mapping,
        warnings,
    })
}

fn profiles(raw: &[raw::RawProfile], warnings: &mut Vec<String>) -> Result<Vec<Profile>, ConfigError> {
    let mut out = Vec::new();
    for p in raw.iter().filter(|p| p.enabled) {
        let policy = match p.security_policy.as_str() {
            "None" => Policy::None,
            "Basic256Sha256" => Policy::Basic256Sha256,
            "Aes128_Sha256_RsaOaep" | "Aes128Sha256RsaOaep" => Policy::Aes128Sha256RsaOaep,
            "Aes256_Sha256_RsaPss" | "Aes256Sha256RsaPss" => Policy::Aes256Sha256RsaPss,
            "Basic128Rsa15" | "Basic256" => {
                warnings.push(format!(
                    "security profile {:?}: {} is deprecated (SHA-1) and not offered",
                    p.name, p.security_policy
                ));
                continue;
            }
            other => {
                return Err(invalid(F, format!("security profile {:?}: unknown security_policy {other:?}", p.name)));
            }
        };
        let mode = match p.security_mode.as_str() {
            "None" => Mode::None,
            "Sign" => Mode::Sign,
            "SignAndEncrypt" => Mode::SignAndEncrypt,
            other => return Err(invalid(F, format!("security profile {:?}: unknown security_mode {other:?}", p.name))),
        };
        if (policy == Policy::None) != (mode == Mode::None) {
            return Err(invalid(
                F,
                format!(
                    "security profile {:?}: policy {} goes with mode None only, and mode None with policy None only",
                    p.name, p.security_policy
                ),
            ));
        }
        let mut profile =
            Profile { name: p.name.clone(), policy, mode, anonymous: false, username: false, certificate: false };
        for m in &p.auth_methods {
            match m.as_str() {
                "Anonymous" => profile.anonymous = true,
                "Username" => profile.username = true,
                "Certificate" => profile.certificate = true,
                other => {
                    return Err(invalid(F, format!("security profile {:?}: unknown auth method {other:?}", p.name)));
                }
            }
        }
        match p.anonymous_role.as_deref().map(Role::parse) {
            Some(Some(Role::Operator | Role::Engineer)) => warnings.push(format!(
                "security profile {:?}: anonymous_role {:?} ignored: an anonymous session is never more than a viewer",
                p.name,
                p.anonymous_role.as_deref().unwrap_or_default()
            )),
            Some(None) if !p.anonymous_role.as_deref().unwrap_or_default().is_empty() => {
                return Err(invalid(F, format!("security profile {:?}: unknown anonymous_role", p.name)));
            }
            _ => {}
        }
        if !(profile.anonymous || profile.username || profile.certificate) {
            return Err(invalid(F, format!("security profile {:?} allows no authentication method", p.name)));
        }
        out.push(profile);
    }
    if out.is_empty() {
        return Err(invalid(F, "no enabled security profile can be offered"));
    }
    Ok(out)
}

fn users(
    raw: Vec<raw::RawUser>,
    trusted: &[TrustedCert],
    warnings: &mut Vec<String>,
) -> Result<Vec<User>, ConfigError> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, u) in raw.into_iter().enumerate() {
        let role = Role::parse(&u.role).ok_or_else(|| invalid(F, format!("users[{i}]: unknown role {:?}", u.role)))?;
        let kind = match u.kind.as_str() {
            "password" => {
                let username = u
                    .username
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| invalid(F, format!("users[{i}]: a password user needs a username")))?;
                let Some(hash) = u.password_hash.filter(|h| !h.is_empty()) else {
                    warnings.push(format!("user {username:?} has no password hash and cannot sign in"));
                    continue;
                };
                let hash = crate::server::auth::PasswordHash::parse(&hash)
                    .map_err(|e| invalid(F, format!("user {username:?}: password_hash: {e}")))?;
                if !names.insert(username.clone()) {
                    return Err(invalid(F, format!("user {username:?} is listed twice")));
                }
                UserKind::Password { username, hash }
            }
            "certificate" => {
                let id = u
                    .certificate_id
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| invalid(F, format!("users[{i}]: a certificate user needs a certificate_id")))?;
                if !trusted.iter().any(|t| t.id == id) {
                    return Err(invalid(
                        F,
                        format!("users[{i}]: certificate_id {id:?} is not among trusted_client_certificates"),
                    ));
                }
                UserKind::Certificate { certificate_id: id }
            }
            other => return Err(invalid(F, format!("users[{i}]: unknown type {other:?}"))),
        };
        out.push(User { kind, role });
    }
    Ok(out)
}

fn access(text: Option<&str>, default: Access, at: &str) -> Result<Access, ConfigError> {
    match text.map(str::trim) {
        None | Some("") => Ok(default),
        Some("r") => Ok(Access { read: true, write: false }),
        Some("w") => Ok(Access { read: false, write: true }),
        Some("rw") => Ok(Access { read: true, write: true }),
        Some(other) => Err(invalid(F, format!("{at}: permission {other:?} is not r, w or rw"))),
    }
}

fn permissions(p: &RawPermissions, at: &str) -> Result<Permissions, ConfigError> {
    let r = Access { read: true, write: false };
    Ok(Permissions {
        viewer: access(p.viewer.as_deref(), r, at)?,
        operator: access(p.operator.as_deref(), r, at)?,
        engineer: access(p.engineer.as_deref(), Access { read: true, write: true }, at)?,
    })
}

fn var_ref(a: &RawAddress, at: &str) -> Result<VarRef, ConfigError> {
    match (a.index, a.arr, a.elem) {
        (Some(i), None, None) => Ok(VarRef::Flat(i)),
        (None, Some(arr), Some(elem)) => Ok(VarRef::Leaf { arr, elem }),
        (None, None, None) => Err(invalid(F, format!("{at}: no index (or arr/elem)"))),
        _ => Err(invalid(F, format!("{at}: give either index or arr and elem"))),
    }
}

fn base_type(name: &str, at: &str) -> Result<IecType, ConfigError> {
    IecType::parse(name).ok_or_else(|| invalid(F, format!("{at}: datatype {name:?} is not an IEC base type")))
}

fn nonempty(text: Option<&String>, fallback: &str) -> String {
    text.filter(|t| !t.is_empty()).cloned().unwrap_or_else(|| fallback.to_string())
}

fn address_space(a: &raw::RawAddressSpace) -> Result<Vec<NodeDef>, ConfigError> {
    let mut nodes = Vec::new();
    for v in &a.variables {
        let at = format!("variable {:?}", v.node_id);
        nodes.push(NodeDef::Variable {
            node_id: v.node_id.clone(),
            browse_name: v.browse_name.clone(),
            display_name: nonempty(v.display_name.as_ref(), &v.browse_name),
            description: v.description.clone().unwrap_or_default(),
            ty: base_type(&v.datatype, &at)?,
            at: var_ref(&v.address, &at)?,
            size: v.address.size,
            permissions: permissions(&v.permissions, &at)?,
        });
    }
    for s in &a.structures {
        let children = s.fields.iter().map(|f| field(f, &s.node_id)).collect::<Result<Vec<_>, _>>()?;
        nodes.push(NodeDef::Object {
            node_id: s.node_id.clone(),
            browse_name: s.browse_name.clone(),
            display_name: nonempty(s.display_name.as_ref(), &s.browse_name),
            description: s.description.clone().unwrap_or_default(),
            children,
        });
    }
    for r in &a.arrays {
        let at = format!("array {:?}", r.node_id);
        if r.length == 0 || r.length > 65_536 {
            return Err(invalid(F, format!("{at}: length {} is not 1..65536", r.length)));
        }
        let start = var_ref(&r.address, &at)?;
        if start.offset(r.length - 1).is_none() {
            return Err(invalid(F, format!("{at}: its elements run past the last index")));
        }
        nodes.push(NodeDef::Array {
            node_id: r.node_id.clone(),
            browse_name: r.browse_name.clone(),
            display_name: nonempty(r.display_name.as_ref(), &r.browse_name),
            ty: base_type(&r.datatype, &at)?,
            length: r.length,
            at: start,
            size: r.address.size,
            permissions: permissions(&r.permissions, &at)?,
        });
    }
    Ok(nodes)
}

fn field(f: &RawField, parent: &str) -> Result<NodeDef, ConfigError> {
    let node_id = format!("{parent}.{}", f.name);
    let at = format!("field {node_id:?}");
    match &f.fields {
        Some(children) if !children.is_empty() => Ok(NodeDef::Object {
            node_id: node_id.clone(),
            browse_name: f.name.clone(),
            display_name: f.name.clone(),
            description: String::new(),
            children: children.iter().map(|c| field(c, &node_id)).collect::<Result<_, _>>()?,
        }),
        _ => Ok(NodeDef::Variable {
            browse_name: f.name.clone(),
            display_name: f.name.clone(),
            description: String::new(),
            ty: base_type(f.datatype.as_deref().unwrap_or(""), &at)?,
            at: var_ref(&f.address, &at)?,
            size: f.address.size,
            permissions: permissions(&f.permissions, &at)?,
            node_id,
        }),
    }
}

/// Every node id and every variable once (two nodes on one variable would fight over it).
fn check_unique(nodes: &[NodeDef]) -> Result<(), ConfigError> {
    fn walk<'a>(n: &'a NodeDef, ids: &mut HashSet<&'a str>, refs: &mut HashSet<VarRef>) -> Result<(), ConfigError> {
        let id = match n {
            NodeDef::Variable { node_id, .. } | NodeDef::Array { node_id, .. } | NodeDef::Object { node_id, .. } => {
                node_id
            }
        };
        if !ids.insert(id) {
            return Err(invalid(F, format!("node_id {id:?} is used twice")));
        }
        let mut claim = |r: VarRef| {
            if refs.insert(r) {
                Ok(())
            } else {
                Err(invalid(F, format!("{r} is mapped by two nodes (the second is {id:?})")))
            }
        };
        match n {
            NodeDef::Variable { at, .. } => claim(*at)?,
            NodeDef::Array { at, length, .. } => {
                for k in 0..*length {
                    claim(at.offset(k).unwrap_or(*at))?;
                }
            }
            NodeDef::Object { children, .. } => {
                for c in children {
                    walk(c, ids, refs)?;
                }
            }
        }
        Ok(())
    }
    let (mut ids, mut refs) = (HashSet::new(), HashSet::new());
    for n in nodes {
        walk(n, &mut ids, &mut refs)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
