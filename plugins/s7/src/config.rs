//! `conf/s7comm.json`, read exactly as the Editor writes it (editor reference §4.3,
//! `src/utils/s7comm/generate-s7comm-config.ts`), with upstream's defaults where it leaves
//! fields out and the Editor's ranges (`S7CommServerSettingsSchema`) enforced.
//!
//! Our additions, all optional, sit in `server`: `rack` and `slot` (the only rack/slot a
//! client may connect to; by default rack 0, slots 0 to 2: an S7-300 CPU sits in slot 2,
//! an S7-1200/1500 answers on 0 and 1), `max_clients_per_source` (16) and
//! `write_timeout_ms` (2000).
//!
//! Errors name the field by its JSON path (`data_blocks[1].mapping.type: …`).

use serde::Deserialize;
use shared_abi::image::{Area, TABLE_CAPACITY, Width};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The file the Editor writes; its presence enables the plugin.
pub const FILE: &str = "s7comm.json";

pub const DEFAULT_PORT: u16 = 102;
pub const DEFAULT_MAX_CLIENTS: usize = 32;
pub const DEFAULT_MAX_CLIENTS_PER_SOURCE: usize = 16;
pub const DEFAULT_SEND_TIMEOUT_MS: u64 = 3000;
pub const DEFAULT_RECV_TIMEOUT_MS: u64 = 3000;
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_PDU_SIZE: u16 = 480;
/// The PDU sizes the Editor allows; also the floor we negotiate down to.
pub const MIN_PDU_SIZE: u16 = 240;
pub const MAX_PDU_SIZE: u16 = 960;
/// Data blocks one configuration may declare.
pub const MAX_DATA_BLOCKS: usize = 1024;
/// Largest data block or system area (the Editor's limit).
pub const MAX_AREA_BYTES: u32 = 65_536;

/// A configuration that cannot be used, with the JSON path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, when the configuration came from one.
    pub file: Option<String>,
    /// JSON path of the offending field (`.` for the whole document).
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}: ")?;
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { file: None, path: path.into(), message: message.into() }
}

/// The image table an area is mapped onto (`mapping.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellType {
    BoolInput,
    BoolOutput,
    BoolMemory,
    ByteInput,
    ByteOutput,
    IntInput,
    IntOutput,
    IntMemory,
    DintInput,
    DintOutput,
    DintMemory,
    LintInput,
    LintOutput,
    LintMemory,
}

const CELL_TYPES: [(&str, CellType); 14] = [
    ("bool_input", CellType::BoolInput),
    ("bool_output", CellType::BoolOutput),
    ("bool_memory", CellType::BoolMemory),
    ("byte_input", CellType::ByteInput),
    ("byte_output", CellType::ByteOutput),
    ("int_input", CellType::IntInput),
    ("int_output", CellType::IntOutput),
    ("int_memory", CellType::IntMemory),
    ("dint_input", CellType::DintInput),
    ("dint_output", CellType::DintOutput),
    ("dint_memory", CellType::DintMemory),
    ("lint_input", CellType::LintInput),
    ("lint_output", CellType::LintOutput),
    ("lint_memory", CellType::LintMemory),
];

impl CellType {
    pub fn parse(name: &str) -> Option<CellType> {
        CELL_TYPES.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
    }

    pub fn name(self) -> &'static str {
        CELL_TYPES.iter().find(|(_, t)| *t == self).map(|&(n, _)| n).unwrap_or("?")
    }

    pub fn area(self) -> Area {
        use CellType::*;
        match self {
            BoolInput | ByteInput | IntInput | DintInput | LintInput => Area::Input,
            BoolOutput | ByteOutput | IntOutput | DintOutput | LintOutput => Area::Output,
            BoolMemory | IntMemory | DintMemory | LintMemory => Area::Memory,
        }
    }

    /// The IEC width of one cell (`Bit` for the bool tables, whose S7 element is the
    /// eight bits of one `%IXn`/`%QXn`/`%MXn` byte address).
    pub fn width(self) -> Width {
        use CellType::*;
        match self {
            BoolInput | BoolOutput | BoolMemory => Width::Bit,
            ByteInput | ByteOutput => Width::Byte,
            IntInput | IntOutput | IntMemory => Width::Word,
            DintInput | DintOutput | DintMemory => Width::DWord,
            LintInput | LintOutput | LintMemory => Width::LWord,
        }
    }

    /// S7 bytes one image element takes: 1 for bool (8 bits) and byte, 2/4/8 for
    /// int/dint/lint.
    pub fn element_bytes(self) -> usize {
        match self.width() {
            Width::Bit | Width::Byte => 1,
            Width::Word => 2,
            Width::DWord => 4,
            Width::LWord => 8,
        }
    }

    /// S7 clients may write it (inputs belong to whoever drives them).
    pub fn writable(self) -> bool {
        self.area() != Area::Input
    }
}

impl fmt::Display for CellType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An S7 byte range (a data block or a system area) laid over consecutive image cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub cell: CellType,
    /// First image element (`start_buffer`).
    pub start: u16,
    /// Bytes S7 clients see, already cut to what the image holds from `start` on.
    pub size: u32,
}

impl Region {
    /// Image elements the region touches.
    pub fn elements(&self) -> usize {
        (self.size as usize).div_ceil(self.cell.element_bytes())
    }
}

/// One `data_blocks` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataBlock {
    pub number: u16,
    pub description: String,
    pub region: Region,
    /// Accepted as written; bit access works on every block either way (see the README).
    pub bit_addressing: bool,
}

/// What the SZL identity lists report (`plc_identity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub module_type: String,
    pub serial_number: String,
    pub copyright: String,
    pub module_name: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            name: "OpenPLC Runtime".into(),
            module_type: "CPU 315-2 PN/DP".into(),
            serial_number: "S C-XXXXXXXXX".into(),
            copyright: "OpenPLC Project".into(),
            module_name: "OpenPLC".into(),
        }
    }
}

/// What to log (`logging`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logging {
    pub connections: bool,
    pub data_access: bool,
    pub errors: bool,
}

impl Default for Logging {
    fn default() -> Self {
        Logging { connections: true, data_access: false, errors: true }
    }
}

/// Which rack/slot a client may address in its called TSAP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub rack: u8,
    /// `None`: slots 0, 1 and 2.
    pub slot: Option<u8>,
}

impl Placement {
    pub fn accepts(&self, rack: u8, slot: u8) -> bool {
        rack == self.rack && self.slot.map_or(slot <= 2, |s| s == slot)
    }
}

/// The whole server configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct S7Config {
    /// `server.enabled`: false leaves the server off although the file is there.
    pub enabled: bool,
    pub bind_address: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub max_clients: usize,
    pub max_clients_per_source: usize,
    /// Replies must be taken by the client within this.
    pub send_timeout: Duration,
    /// A started frame (and the connection request after TCP connect) must be complete
    /// within this.
    pub recv_timeout: Duration,
    /// A connection with no request for this long is closed.
    pub ping_timeout: Duration,
    /// How long a write waits for rt-core to apply it before its items fail.
    pub write_timeout: Duration,
    /// The most we negotiate (the client's proposal can only lower it).
    pub pdu_size: u16,
    pub placement: Placement,
    pub identity: Identity,
    /// Sorted by number.
    pub data_blocks: Vec<DataBlock>,
    /// `system_areas`: PE (inputs), PA (outputs), MK (markers), when enabled.
    pub pe: Option<Region>,
    pub pa: Option<Region>,
    pub mk: Option<Region>,
    pub logging: Logging,
    /// Things that were adjusted rather than refused, for the host to log once.
    pub warnings: Vec<String>,
}

impl Default for S7Config {
    fn default() -> Self {
        S7Config {
            enabled: true,
            bind_address: "0.0.0.0".into(),
            port: DEFAULT_PORT,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_source: DEFAULT_MAX_CLIENTS_PER_SOURCE,
            send_timeout: Duration::from_millis(DEFAULT_SEND_TIMEOUT_MS),
            recv_timeout: Duration::from_millis(DEFAULT_RECV_TIMEOUT_MS),
            ping_timeout: Duration::from_millis(DEFAULT_PING_TIMEOUT_MS),
            write_timeout: Duration::from_millis(DEFAULT_WRITE_TIMEOUT_MS),
            pdu_size: DEFAULT_PDU_SIZE,
            placement: Placement { rack: 0, slot: None },
            identity: Identity::default(),
            data_blocks: Vec::new(),
            pe: None,
            pa: None,
            mk: None,
            logging: Logging::default(),
            warnings: Vec::new(),
        }
    }
}

// ------------------------------------------------------------------ raw JSON shape ----

#[derive(Deserialize, Default)]
struct RawConfig {
    server: Option<RawServer>,
    plc_identity: Option<RawIdentity>,
    data_blocks: Option<Vec<RawDataBlock>>,
    system_areas: Option<RawSystemAreas>,
    logging: Option<RawLogging>,
}

#[derive(Deserialize, Default)]
struct RawServer {
    enabled: Option<bool>,
    bind_address: Option<String>,
    port: Option<u16>,
    max_clients: Option<u64>,
    /// Accepted for the Editor's sake; this server waits on events, not on an interval.
    #[allow(dead_code)]
    work_interval_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    recv_timeout_ms: Option<u64>,
    ping_timeout_ms: Option<u64>,
    pdu_size: Option<u64>,
    rack: Option<u8>,
    slot: Option<u8>,
    max_clients_per_source: Option<u64>,
    write_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
struct RawIdentity {
    name: Option<String>,
    module_type: Option<String>,
    serial_number: Option<String>,
    copyright: Option<String>,
    module_name: Option<String>,
}

#[derive(Deserialize)]
struct RawMapping {
    #[serde(rename = "type")]
    kind: String,
    start_buffer: Option<u64>,
    bit_addressing: Option<bool>,
}

#[derive(Deserialize)]
struct RawDataBlock {
    db_number: u64,
    description: Option<String>,
    size_bytes: u64,
    mapping: RawMapping,
}

#[derive(Deserialize, Default)]
struct RawSystemArea {
    enabled: Option<bool>,
    size_bytes: Option<u64>,
    mapping: Option<RawMapping>,
}

#[derive(Deserialize, Default)]
struct RawSystemAreas {
    pe_area: Option<RawSystemArea>,
    pa_area: Option<RawSystemArea>,
    mk_area: Option<RawSystemArea>,
}

#[derive(Deserialize, Default)]
struct RawLogging {
    log_connections: Option<bool>,
    log_data_access: Option<bool>,
    log_errors: Option<bool>,
}

fn parse_json<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        err(if path.is_empty() || path == "?" { ".".to_string() } else { path }, inner.to_string())
    })
}

fn in_range(path: &str, value: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    if (lo..=hi).contains(&value) { Ok(value) } else { Err(err(path, format!("{value} is outside {lo}..={hi}"))) }
}

impl S7Config {
    /// Parses the text of `s7comm.json`.
    pub fn from_json(text: &str) -> Result<S7Config, ConfigError> {
        let raw: RawConfig = parse_json(text)?;
        let mut cfg = S7Config::default();
        let server = raw.server.unwrap_or_default();
        cfg.enabled = server.enabled.unwrap_or(true);
        if let Some(host) = server.bind_address {
            if host.trim().is_empty() {
                return Err(err("server.bind_address", "must not be empty"));
            }
            cfg.bind_address = host.trim().to_string();
        }
        if let Some(port) = server.port {
            cfg.port = port;
        }
        if let Some(n) = server.max_clients {
            cfg.max_clients = in_range("server.max_clients", n, 1, 1024)? as usize;
        }
        cfg.max_clients_per_source = match server.max_clients_per_source {
            Some(n) => in_range("server.max_clients_per_source", n, 1, 1024)? as usize,
            None => DEFAULT_MAX_CLIENTS_PER_SOURCE,
        };
        let ms = |v: Option<u64>, default: u64, field: &str, lo: u64, hi: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(match v {
                None => default,
                Some(ms) => in_range(&format!("server.{field}"), ms, lo, hi)?,
            }))
        };
        cfg.send_timeout = ms(server.send_timeout_ms, DEFAULT_SEND_TIMEOUT_MS, "send_timeout_ms", 100, 60_000)?;
        cfg.recv_timeout = ms(server.recv_timeout_ms, DEFAULT_RECV_TIMEOUT_MS, "recv_timeout_ms", 100, 60_000)?;
        cfg.ping_timeout = ms(server.ping_timeout_ms, DEFAULT_PING_TIMEOUT_MS, "ping_timeout_ms", 1000, 300_000)?;
        cfg.write_timeout = ms(server.write_timeout_ms, DEFAULT_WRITE_TIMEOUT_MS, "write_timeout_ms", 10, 60_000)?;
        if let Some(pdu) = server.pdu_size {
            cfg.pdu_size = in_range("server.pdu_size", pdu, MIN_PDU_SIZE as u64, MAX_PDU_SIZE as u64)? as u16;
        }
        if let Some(rack) = server.rack {
            cfg.placement.rack = in_range("server.rack", rack as u64, 0, 7)? as u8;
        }
        if let Some(slot) = server.slot {
            cfg.placement.slot = Some(in_range("server.slot", slot as u64, 0, 31)? as u8);
        }

        let id = raw.plc_identity.unwrap_or_default();
        let mut ident = Identity::default();
        for (value, slot, field) in [
            (id.name, &mut ident.name, "name"),
            (id.module_type, &mut ident.module_type, "module_type"),
            (id.serial_number, &mut ident.serial_number, "serial_number"),
            (id.copyright, &mut ident.copyright, "copyright"),
            (id.module_name, &mut ident.module_name, "module_name"),
        ] {
            if let Some(v) = value {
                if v.chars().count() > 64 {
                    return Err(err(format!("plc_identity.{field}"), "longer than 64 characters"));
                }
                *slot = v;
            }
        }
        cfg.identity = ident;

        for (i, db) in raw.data_blocks.unwrap_or_default().into_iter().enumerate() {
            let at = format!("data_blocks[{i}]");
            let number = in_range(&format!("{at}.db_number"), db.db_number, 1, 65_535)? as u16;
            let region = region(&at, db.size_bytes, &db.mapping, &mut cfg.warnings)?;
            cfg.data_blocks.push(DataBlock {
                number,
                description: db.description.unwrap_or_default(),
                region,
                bit_addressing: db.mapping.bit_addressing.unwrap_or(false),
            });
        }
        if cfg.data_blocks.len() > MAX_DATA_BLOCKS {
            return Err(err("data_blocks", format!("more than {MAX_DATA_BLOCKS} data blocks")));
        }
        cfg.data_blocks.sort_by_key(|d| d.number);
        if let Some(w) = cfg.data_blocks.windows(2).find(|w| w[0].number == w[1].number) {
            return Err(err("data_blocks", format!("DB{} is declared twice", w[0].number)));
        }

        let areas = raw.system_areas.unwrap_or_default();
        cfg.pe = system_area("system_areas.pe_area", areas.pe_area, CellType::BoolInput, &mut cfg.warnings)?;
        cfg.pa = system_area("system_areas.pa_area", areas.pa_area, CellType::BoolOutput, &mut cfg.warnings)?;
        cfg.mk = system_area("system_areas.mk_area", areas.mk_area, CellType::BoolMemory, &mut cfg.warnings)?;

        let log = raw.logging.unwrap_or_default();
        cfg.logging = Logging {
            connections: log.log_connections.unwrap_or(true),
            data_access: log.log_data_access.unwrap_or(false),
            errors: log.log_errors.unwrap_or(true),
        };
        Ok(cfg)
    }

    /// Reads `s7comm.json`.
    pub fn load(path: &Path) -> Result<S7Config, ConfigError> {
        let in_file = |mut e: ConfigError| {
            e.file = Some(path.display().to_string());
            e
        };
        let text = std::fs::read_to_string(path).map_err(|e| in_file(err(".", format!("cannot read: {e}"))))?;
        Self::from_json(&text).map_err(in_file)
    }
}

/// A region from `size_bytes` and a mapping, cut to the image (with a warning) when the
/// cells it names run past the last one.
fn region(at: &str, size: u64, mapping: &RawMapping, warnings: &mut Vec<String>) -> Result<Region, ConfigError> {
    let size = in_range(&format!("{at}.size_bytes"), size, 1, MAX_AREA_BYTES as u64)? as u32;
    let cell = CellType::parse(&mapping.kind).ok_or_else(|| {
        let names: Vec<&str> = CELL_TYPES.iter().map(|(n, _)| *n).collect();
        err(format!("{at}.mapping.type"), format!("{:?} is not one of {}", mapping.kind, names.join(", ")))
    })?;
    let start = in_range(
        &format!("{at}.mapping.start_buffer"),
        mapping.start_buffer.unwrap_or(0),
        0,
        TABLE_CAPACITY as u64 - 1,
    )? as u16;
    let reach = ((TABLE_CAPACITY - start as usize) * cell.element_bytes()) as u32;
    let mut r = Region { cell, start, size };
    if size > reach {
        warnings.push(format!(
            "{at}: {size} bytes of {cell} from element {start} run past the image; only {reach} bytes are served, \
             addresses past them answer 'address out of range'"
        ));
        r.size = reach;
    }
    Ok(r)
}

fn system_area(
    at: &str,
    raw: Option<RawSystemArea>,
    default_cell: CellType,
    warnings: &mut Vec<String>,
) -> Result<Option<Region>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if !raw.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let mapping = raw.mapping.unwrap_or(RawMapping {
        kind: default_cell.name().to_string(),
        start_buffer: Some(0),
        bit_addressing: None,
    });
    region(at, raw.size_bytes.unwrap_or(128), &mapping, warnings).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDITOR_DEFAULT: &str = r#"{
  "server": {
    "enabled": true,
    "bind_address": "0.0.0.0",
    "port": 102,
    "max_clients": 32,
    "work_interval_ms": 100,
    "send_timeout_ms": 3000,
    "recv_timeout_ms": 3000,
    "ping_timeout_ms": 10000,
    "pdu_size": 480
  },
  "data_blocks": [
    { "db_number": 10, "description": "Analog", "size_bytes": 256, "mapping": { "type": "int_input", "start_buffer": 0 } },
    { "db_number": 1, "description": "Bits", "size_bytes": 128, "mapping": { "type": "bool_output", "start_buffer": 0, "bit_addressing": true } }
  ],
  "plc_identity": {
    "name": "OpenPLC Runtime",
    "module_type": "CPU 315-2 PN/DP",
    "serial_number": "S C-OPENPLC01",
    "copyright": "OpenPLC Project",
    "module_name": "OpenPLC"
  },
  "system_areas": {
    "pe_area": { "enabled": true, "size_bytes": 128, "mapping": { "type": "bool_input", "start_buffer": 0 } },
    "pa_area": { "enabled": false, "size_bytes": 128 },
    "mk_area": { "enabled": true, "size_bytes": 64 }
  },
  "logging": { "log_connections": true, "log_data_access": false, "log_errors": true }
}"#;

    #[test]
    fn reads_what_the_editor_writes() {
        let cfg = S7Config::from_json(EDITOR_DEFAULT).unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.port, 102);
        assert_eq!(cfg.pdu_size, 480);
        assert_eq!(cfg.identity.serial_number, "S C-OPENPLC01");
        // Sorted by number, bit_addressing kept.
        assert_eq!(cfg.data_blocks.iter().map(|d| d.number).collect::<Vec<_>>(), [1, 10]);
        assert!(cfg.data_blocks[0].bit_addressing);
        assert_eq!(cfg.data_blocks[1].region, Region { cell: CellType::IntInput, start: 0, size: 256 });
        assert_eq!(cfg.pe, Some(Region { cell: CellType::BoolInput, start: 0, size: 128 }));
        assert_eq!(cfg.pa, None, "a disabled area is not served");
        // No mapping: markers are %MX bytes.
        assert_eq!(cfg.mk, Some(Region { cell: CellType::BoolMemory, start: 0, size: 64 }));
        assert!(cfg.warnings.is_empty());
    }

    #[test]
    fn an_empty_object_is_upstreams_defaults() {
        let cfg = S7Config::from_json("{}").unwrap();
        assert_eq!(cfg, S7Config::default());
    }

    #[test]
    fn a_disabled_server_is_read_as_disabled() {
        let cfg = S7Config::from_json(r#"{"server": {"enabled": false}}"#).unwrap();
        assert!(!cfg.enabled);
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |json: &str, path: &str, needle: &str| {
            let e = S7Config::from_json(json).unwrap_err();
            assert_eq!(e.path, path, "{e}");
            assert!(e.message.contains(needle), "{e}");
        };
        bad(r#"{"server": {"pdu_size": 1000}}"#, "server.pdu_size", "240..=960");
        bad(r#"{"server": {"max_clients": 0}}"#, "server.max_clients", "1..=1024");
        bad(r#"{"server": {"recv_timeout_ms": 5}}"#, "server.recv_timeout_ms", "100..=60000");
        bad(r#"{"server": {"port": "x"}}"#, "server.port", "invalid type");
        bad(
            r#"{"data_blocks": [{"db_number": 1, "size_bytes": 4, "mapping": {"type": "real_memory"}}]}"#,
            "data_blocks[0].mapping.type",
            "\"real_memory\" is not one of bool_input",
        );
        bad(
            r#"{"data_blocks": [{"db_number": 0, "size_bytes": 4, "mapping": {"type": "int_memory"}}]}"#,
            "data_blocks[0].db_number",
            "1..=65535",
        );
        bad(
            r#"{"data_blocks": [{"db_number": 1, "size_bytes": 0, "mapping": {"type": "int_memory"}}]}"#,
            "data_blocks[0].size_bytes",
            "1..=65536",
        );
        bad(
            r#"{"data_blocks": [{"db_number": 1, "size_bytes": 4, "mapping": {"type": "int_memory", "start_buffer": 65536}}]}"#,
            "data_blocks[0].mapping.start_buffer",
            "0..=65535",
        );
        bad(
            r#"{"data_blocks": [{"db_number": 1, "size_bytes": 4, "mapping": {"type": "int_memory"}},
                               {"db_number": 1, "size_bytes": 4, "mapping": {"type": "int_memory"}}]}"#,
            "data_blocks",
            "DB1 is declared twice",
        );
        bad(r#"{"data_blocks": [{"db_number": 1}]}"#, "data_blocks[0]", "missing field");
        bad(r#"{"plc_identity": {"name": 5}}"#, "plc_identity.name", "invalid type");
        bad("{", ".", "EOF");
    }

    #[test]
    fn a_region_past_the_image_is_cut_with_a_warning() {
        let cfg = S7Config::from_json(
            r#"{"data_blocks": [{"db_number": 3, "size_bytes": 100, "mapping": {"type": "lint_memory", "start_buffer": 65532}}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.data_blocks[0].region.size, 32, "4 LINTs of 8 bytes remain from element 65532");
        assert!(cfg.warnings[0].contains("only 32 bytes are served"), "{:?}", cfg.warnings);
    }

    #[test]
    fn rack_and_slot_narrow_what_a_client_may_address() {
        let any = S7Config::default().placement;
        assert!(any.accepts(0, 1) && any.accepts(0, 2) && any.accepts(0, 0));
        assert!(!any.accepts(0, 3) && !any.accepts(1, 2));
        let cfg = S7Config::from_json(r#"{"server": {"rack": 1, "slot": 3}}"#).unwrap();
        assert!(cfg.placement.accepts(1, 3) && !cfg.placement.accepts(0, 2));
    }
}
