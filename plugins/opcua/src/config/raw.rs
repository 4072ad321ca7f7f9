//! `conf/opcua.json` exactly as the Editor writes it, every generation: MatIEC-era files
//! address variables by flat `index` (with an `initial_value` we ignore), STruC++-era files
//! by `arr`/`elem`, and the newest add `format_version`, per-leaf `size` and a profile's
//! `anonymous_role`. Unknown keys are ignored (a newer Editor may add some); `limits` and
//! `time_mapping` are ours.

use serde::Deserialize;

#[derive(Deserialize)]
pub struct Entry {
    #[allow(dead_code)]
    pub name: String,
    pub protocol: String,
    pub config: RawConfig,
}

#[derive(Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub format_version: Option<i64>,
    pub server: RawServer,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub users: Vec<RawUser>,
    #[serde(default)]
    pub cycle_time_ms: Option<u64>,
    pub address_space: RawAddressSpace,
    #[serde(default)]
    pub limits: super::Limits,
    #[serde(default)]
    pub time_mapping: Option<String>,
}

#[derive(Deserialize)]
pub struct RawServer {
    pub name: String,
    pub application_uri: String,
    pub product_uri: String,
    pub endpoint_url: String,
    pub security_profiles: Vec<RawProfile>,
}

#[derive(Deserialize)]
pub struct RawProfile {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub security_policy: String,
    pub security_mode: String,
    #[serde(default)]
    pub auth_methods: Vec<String>,
    #[serde(default)]
    pub anonymous_role: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
pub struct RawSecurity {
    #[serde(default)]
    pub server_certificate_strategy: Option<String>,
    #[serde(default)]
    pub server_certificate_custom: Option<String>,
    #[serde(default)]
    pub server_private_key_custom: Option<String>,
    #[serde(default)]
    pub trusted_client_certificates: Vec<RawTrusted>,
}

#[derive(Deserialize)]
pub struct RawTrusted {
    pub id: String,
    pub pem: String,
}

#[derive(Deserialize)]
pub struct RawUser {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub certificate_id: Option<String>,
    pub role: String,
}

#[derive(Deserialize)]
pub struct RawAddressSpace {
    pub namespace_uri: String,
    #[serde(default)]
    pub variables: Vec<RawVariable>,
    #[serde(default)]
    pub structures: Vec<RawStructure>,
    #[serde(default)]
    pub arrays: Vec<RawArray>,
}

/// Where a leaf is: a flat `index` (MatIEC) or `arr`/`elem` (STruC++); all null for a
/// structure field that has fields of its own.
#[derive(Deserialize, Default, Clone, Copy)]
pub struct RawAddress {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub arr: Option<u32>,
    #[serde(default)]
    pub elem: Option<u32>,
    #[serde(default)]
    pub size: Option<u32>,
}

#[derive(Deserialize, Default)]
pub struct RawPermissions {
    #[serde(default)]
    pub viewer: Option<String>,
    #[serde(default)]
    pub operator: Option<String>,
    #[serde(default)]
    pub engineer: Option<String>,
}

#[derive(Deserialize)]
pub struct RawVariable {
    pub node_id: String,
    pub browse_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub datatype: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub address: RawAddress,
    #[serde(default)]
    pub permissions: RawPermissions,
}

#[derive(Deserialize)]
pub struct RawStructure {
    pub node_id: String,
    pub browse_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub fields: Vec<RawField>,
}

#[derive(Deserialize)]
pub struct RawField {
    pub name: String,
    #[serde(default)]
    pub datatype: Option<String>,
    #[serde(flatten)]
    pub address: RawAddress,
    #[serde(default)]
    pub permissions: RawPermissions,
    #[serde(default)]
    pub fields: Option<Vec<RawField>>,
}

#[derive(Deserialize)]
pub struct RawArray {
    pub node_id: String,
    pub browse_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub datatype: String,
    pub length: u32,
    #[serde(flatten)]
    pub address: RawAddress,
    #[serde(default)]
    pub permissions: RawPermissions,
}
