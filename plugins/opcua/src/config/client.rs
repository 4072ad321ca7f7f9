//! `conf/opcua_client.json`, the Editor's newest OPC-UA client configuration (runtime
//! plugin `opcua_client`, format_version 1): per remote server an endpoint, security,
//! credentials and node mappings. The Editor maps a remote node onto a debug leaf
//! (`arr`/`elem`, with the compiler's `size`); we also accept a flat `index` (MatIEC) and,
//! our addition, an `iec_location` (`%IW3`, `%QX0.1`, `%MD2`) for located points.

use super::{ConfigError, invalid, read_json};
use crate::config::VarRef;
use crate::iec::IecType;
use serde::Deserialize;
use shared_abi::image::{Area, IecAddress, Width};
use std::collections::HashSet;
use std::path::Path;

const F: &str = super::CLIENT_FILE;

#[derive(Deserialize)]
struct Entry {
    #[allow(dead_code)]
    name: String,
    protocol: String,
    config: RawClient,
}

#[derive(Deserialize)]
struct RawClient {
    #[serde(default)]
    format_version: Option<i64>,
    servers: Vec<RawRemote>,
}

#[derive(Deserialize)]
struct RawRemote {
    name: String,
    endpoint_url: String,
    #[serde(default)]
    security: RawSecurity,
    #[serde(default)]
    session_timeout_ms: Option<u64>,
    #[serde(default)]
    reconnect: Option<bool>,
    mappings: Vec<RawMapping>,
}

#[derive(Deserialize, Default)]
struct RawSecurity {
    #[serde(default)]
    security_policy: Option<String>,
    #[serde(default)]
    security_mode: Option<String>,
    #[serde(default)]
    auth_mode: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    client_cert_pem: Option<String>,
    #[serde(default)]
    client_key_pem: Option<String>,
    #[serde(default)]
    server_cert_pem: Option<String>,
}

#[derive(Deserialize)]
struct RawMapping {
    remote_node_id: String,
    #[serde(default)]
    arr: Option<u32>,
    #[serde(default)]
    elem: Option<u32>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    iec_location: Option<String>,
    datatype: String,
    #[serde(default)]
    size: Option<u32>,
    direction: String,
    #[serde(default)]
    cycle_time_ms: Option<u64>,
}

/// Where a mapping's value lives in the PLC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Local {
    /// A debug variable, written with SetVar and read by sampling.
    Var(VarRef),
    /// A located point of the image.
    Point(IecAddress),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    RemoteToPlc,
    PlcToRemote,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub remote_node_id: String,
    pub local: Local,
    pub ty: IecType,
    pub size: Option<u32>,
    pub direction: Direction,
    pub cycle_time_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    Username { username: String, password: String },
    Certificate,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Remote {
    pub name: String,
    pub endpoint_url: String,
    pub policy: super::Policy,
    pub mode: super::Mode,
    pub auth: Auth,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    pub server_cert_pem: Option<String>,
    pub session_timeout_ms: u64,
    pub reconnect: bool,
    pub mappings: Vec<Mapping>,
}

#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    pub servers: Vec<Remote>,
    pub warnings: Vec<String>,
}

fn fits_width(ty: IecType, width: Width) -> bool {
    use IecType::*;
    match width {
        Width::Bit => ty == Bool,
        Width::Byte => matches!(ty, Byte | Sint | Usint | Bool),
        Width::Word => matches!(ty, Int | Uint | Word),
        Width::DWord => matches!(ty, Dint | Udint | Dword | Real),
        Width::LWord => matches!(ty, Lint | Ulint | Lword | Lreal),
    }
}

impl ClientConfig {
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let entries: Vec<Entry> = read_json(path)?;
        let mut warnings = Vec::new();
        let entry = entries.into_iter().next().ok_or_else(|| invalid(F, "the file lists no client"))?;
        if entry.protocol != "OPC-UA-Client" {
            return Err(invalid(F, format!("protocol is {:?}, expected \"OPC-UA-Client\"", entry.protocol)));
        }
        if let Some(v) = entry.config.format_version
            && v > 1
        {
            warnings.push(format!("format_version {v} is newer than this runtime knows (1); reading it as 1"));
        }
        let mut names = HashSet::new();
        let mut servers = Vec::new();
        for r in entry.config.servers {
            if !names.insert(r.name.clone()) {
                return Err(invalid(F, format!("server {:?} is listed twice", r.name)));
            }
            servers.push(remote(r)?);
        }
        // A PLC location fed by two remote nodes would flip between them.
        let mut fed = HashSet::new();
        for s in &servers {
            for m in s.mappings.iter().filter(|m| m.direction == Direction::RemoteToPlc) {
                if !fed.insert(m.local) {
                    return Err(invalid(
                        F,
                        format!("{:?} is written by two remote nodes (one on {:?})", m.local, s.name),
                    ));
                }
            }
        }
        Ok(ClientConfig { servers, warnings })
    }
}

fn remote(r: RawRemote) -> Result<Remote, ConfigError> {
    let at = format!("server {:?}", r.name);
    if crate::config::Endpoint::parse(&r.endpoint_url).is_none() {
        return Err(invalid(F, format!("{at}: endpoint_url {:?} is not opc.tcp://host:port/path", r.endpoint_url)));
    }
    let s = r.security;
    let policy = match s.security_policy.as_deref().unwrap_or("None") {
        "None" => super::Policy::None,
        "Basic256Sha256" => super::Policy::Basic256Sha256,
        "Aes128_Sha256_RsaOaep" => super::Policy::Aes128Sha256RsaOaep,
        "Aes256_Sha256_RsaPss" => super::Policy::Aes256Sha256RsaPss,
        other => return Err(invalid(F, format!("{at}: unknown security_policy {other:?}"))),
    };
    let mode = match s.security_mode.as_deref().unwrap_or("None") {
        "None" => super::Mode::None,
        "Sign" => super::Mode::Sign,
        "SignAndEncrypt" => super::Mode::SignAndEncrypt,
        other => return Err(invalid(F, format!("{at}: unknown security_mode {other:?}"))),
    };
    if (policy == super::Policy::None) != (mode == super::Mode::None) {
        return Err(invalid(F, format!("{at}: security policy None goes with mode None only")));
    }
    let auth = match s.auth_mode.as_deref().unwrap_or("anonymous") {
        "anonymous" => Auth::Anonymous,
        "username" => Auth::Username {
            username: s
                .username
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| invalid(F, format!("{at}: auth_mode username needs a username")))?,
            password: s.password.clone().unwrap_or_default(),
        },
        "certificate" => {
            if s.client_cert_pem.is_none() || s.client_key_pem.is_none() {
                return Err(invalid(
                    F,
                    format!("{at}: auth_mode certificate needs client_cert_pem and client_key_pem"),
                ));
            }
            Auth::Certificate
        }
        other => return Err(invalid(F, format!("{at}: unknown auth_mode {other:?}"))),
    };
    let mut mappings = Vec::new();
    for (i, m) in r.mappings.into_iter().enumerate() {
        let at = format!("{at}, mappings[{i}] ({:?})", m.remote_node_id);
        if m.remote_node_id.trim().is_empty() {
            return Err(invalid(F, format!("{at}: empty remote_node_id")));
        }
        let ty = IecType::parse(&m.datatype)
            .ok_or_else(|| invalid(F, format!("{at}: datatype {:?} is not an IEC base type", m.datatype)))?;
        let local = match (m.iec_location.as_deref(), m.index, m.arr, m.elem) {
            (Some(loc), None, None, None) => {
                let addr =
                    IecAddress::parse(loc).map_err(|e| invalid(F, format!("{at}: iec_location {loc:?}: {e}")))?;
                if !fits_width(ty, addr.width()) {
                    return Err(invalid(F, format!("{at}: {:?} does not fit {loc}", m.datatype)));
                }
                Local::Point(addr)
            }
            (None, Some(i), None, None) => Local::Var(VarRef::Flat(i)),
            (None, None, Some(arr), Some(elem)) => Local::Var(VarRef::Leaf { arr, elem }),
            _ => return Err(invalid(F, format!("{at}: give one of arr/elem, index or iec_location"))),
        };
        let direction = match m.direction.as_str() {
            "remote_to_plc" => Direction::RemoteToPlc,
            "plc_to_remote" => Direction::PlcToRemote,
            other => {
                return Err(invalid(F, format!("{at}: direction {other:?} is not remote_to_plc or plc_to_remote")));
            }
        };
        if let Local::Point(addr) = local
            && direction == Direction::RemoteToPlc
            && addr.area() != Area::Input
            && !matches!(addr.area(), Area::Output | Area::Memory)
        {
            return Err(invalid(F, format!("{at}: cannot write {addr}")));
        }
        if m.size == Some(0) {
            return Err(invalid(F, format!("{at}: size 0")));
        }
        mappings.push(Mapping {
            remote_node_id: m.remote_node_id,
            local,
            ty,
            size: m.size,
            direction,
            cycle_time_ms: m.cycle_time_ms.unwrap_or(100).clamp(10, 60_000),
        });
    }
    if mappings.is_empty() {
        return Err(invalid(F, format!("{at}: no mappings")));
    }
    Ok(Remote {
        name: r.name,
        endpoint_url: r.endpoint_url,
        policy,
        mode,
        auth,
        client_cert_pem: s.client_cert_pem,
        client_key_pem: s.client_key_pem,
        server_cert_pem: s.server_cert_pem,
        session_timeout_ms: r.session_timeout_ms.unwrap_or(60_000).clamp(1_000, 3_600_000),
        reconnect: r.reconnect.unwrap_or(true),
        mappings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As upstream's template and the Editor's generator write it.
    pub(crate) const EDITOR: &str = r#"[{"name":"opcua_client","protocol":"OPC-UA-Client","config":{"format_version":1,"servers":[
      {"name":"RemotePLC_A","endpoint_url":"opc.tcp://192.0.2.50:4840/freeopcua/server/",
       "security":{"security_policy":"Basic256Sha256","security_mode":"SignAndEncrypt","auth_mode":"username","username":"operator","password":"changeme",
                   "client_cert_pem":null,"client_key_pem":null,"server_cert_pem":null},
       "session_timeout_ms":60000,"reconnect":true,
       "mappings":[
         {"remote_node_id":"ns=2;i=5","arr":0,"elem":3,"datatype":"INT","size":2,"direction":"remote_to_plc","cycle_time_ms":100},
         {"remote_node_id":"ns=2;s=Setpoint","arr":0,"elem":7,"datatype":"REAL","size":4,"direction":"plc_to_remote","cycle_time_ms":200},
         {"remote_node_id":"ns=2;s=Level","iec_location":"%IW3","datatype":"UINT","direction":"remote_to_plc"}]}]}}]"#;

    fn load(text: &str) -> Result<ClientConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::CLIENT_FILE);
        std::fs::write(&path, text).unwrap();
        ClientConfig::load(&path)
    }

    #[test]
    fn the_editor_format_is_read() {
        let c = load(EDITOR).unwrap();
        let s = &c.servers[0];
        assert_eq!((s.policy, s.mode), (super::super::Policy::Basic256Sha256, super::super::Mode::SignAndEncrypt));
        assert_eq!(s.auth, Auth::Username { username: "operator".into(), password: "changeme".into() });
        assert_eq!(s.mappings.len(), 3);
        assert_eq!(s.mappings[0].local, Local::Var(VarRef::Leaf { arr: 0, elem: 3 }));
        assert_eq!((s.mappings[1].direction, s.mappings[1].ty), (Direction::PlcToRemote, IecType::Real));
        assert_eq!(s.mappings[2].local, Local::Point(IecAddress::parse("%IW3").unwrap()));
    }

    #[test]
    fn mistakes_are_errors_that_say_where() {
        let cases = [
            (EDITOR.replace("\"INT\"", "\"TON\""), "not an IEC base type"),
            (EDITOR.replace("\"remote_to_plc\",\"cycle_time_ms\":100", "\"both\",\"cycle_time_ms\":100"), "direction"),
            (EDITOR.replace("\"%IW3\",\"datatype\":\"UINT\"", "\"%IW3\",\"datatype\":\"REAL\""), "does not fit"),
            (EDITOR.replace("\"username\":\"operator\"", "\"username\":null"), "needs a username"),
            (EDITOR.replace("opc.tcp://192", "http://192"), "endpoint_url"),
            (EDITOR.replace("\"%IW3\"", "\"%IW3\",\"arr\":1"), "give one of"),
            (EDITOR.replace("\"OPC-UA-Client\"", "\"OPC-UA\""), "protocol"),
            (
                EDITOR.replace(
                    "\"arr\":0,\"elem\":7,\"datatype\":\"REAL\",\"size\":4,\"direction\":\"plc_to_remote\"",
                    "\"arr\":0,\"elem\":3,\"datatype\":\"REAL\",\"size\":4,\"direction\":\"remote_to_plc\"",
                ),
                "written by two",
            ),
        ];
        for (text, expected) in cases {
            let err = load(&text).expect_err(expected).to_string();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }
}
