//! The two files the Editor writes (editor reference §4.1, §4.2), read exactly as it
//! writes them, with upstream's defaults where it leaves fields out:
//!
//! - `conf/modbus_slave.json`: the TCP server. Both `buffer_mapping` shapes upstream
//!   reads (segmented, and the legacy `max_*` one) are accepted, and upstream's top-level
//!   `word_order`. Our additions, all optional, sit in `network_configuration`:
//!   `max_connections`, `idle_timeout_ms`, `frame_timeout_ms`, `write_timeout_ms` and
//!   `unit_id` (answer only this unit id; by default any, as upstream).
//! - `conf/modbus_master.json`: an array of remote devices, TCP or RTU.
//!
//! Errors name the field by its JSON path (`[1].config.io_points[0].iec_location: …`).

use crate::map::{AddressMap, IMAGE_BITS, IMAGE_WORDS, MAX_BITS, MAX_WORDS, WordOrder};
use serde::Deserialize;
use shared_abi::image::{BITS_PER_BYTE, IecAddress, TABLE_CAPACITY, Width};
use std::fmt;
use std::path::Path;
use std::time::Duration;

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

fn parse_json<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json appends " at line L column C": keep it, it helps find the spot.
        err(if path.is_empty() { ".".to_string() } else { path }, inner.to_string())
    })
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.display().to_string()),
        path: ".".into(),
        message: format!("cannot read: {e}"),
    })
}

fn in_file<T>(path: &Path, r: Result<T, ConfigError>) -> Result<T, ConfigError> {
    r.map_err(|mut e| {
        e.file = Some(path.display().to_string());
        e
    })
}

// ---------------------------------------------------------------- server (slave) ----

/// Defaults of our additions to `network_configuration`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_FRAME_TIMEOUT_MS: u64 = 2_000;
pub const DEFAULT_WRITE_TIMEOUT_MS: u64 = 2_000;

/// The Modbus TCP server, from `conf/modbus_slave.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    pub map: AddressMap,
    /// Answer only this unit id (others get exception 0x0B); `None` answers any.
    pub unit_id: Option<u8>,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Once a frame has begun, the rest of it must arrive (and a reply must be taken)
    /// within this; a half frame followed by silence is closed when it runs out.
    pub frame_timeout: Duration,
    /// How long a write waits for rt-core to apply it before the reply says it failed.
    pub write_timeout: Duration,
    /// Things in the file that were adjusted rather than refused (counts fitted to the
    /// image), for the host to log.
    pub warnings: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 502,
            map: AddressMap::default(),
            unit_id: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            frame_timeout: Duration::from_millis(DEFAULT_FRAME_TIMEOUT_MS),
            write_timeout: Duration::from_millis(DEFAULT_WRITE_TIMEOUT_MS),
            warnings: Vec::new(),
        }
    }
}

#[derive(Deserialize, Default)]
struct RawSlave {
    network_configuration: Option<RawNetwork>,
    buffer_mapping: Option<RawBufferMapping>,
    word_order: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawNetwork {
    host: Option<String>,
    port: Option<u16>,
    max_connections: Option<usize>,
    idle_timeout_ms: Option<u64>,
    frame_timeout_ms: Option<u64>,
    write_timeout_ms: Option<u64>,
    unit_id: Option<u8>,
}

#[derive(Deserialize, Default)]
struct RawBufferMapping {
    holding_registers: Option<RawHolding>,
    coils: Option<RawCoils>,
    discrete_inputs: Option<RawDiscrete>,
    input_registers: Option<RawInputRegisters>,
    // The legacy shape.
    max_coils: Option<u32>,
    max_discrete_inputs: Option<u32>,
    max_holding_registers: Option<u32>,
    max_input_registers: Option<u32>,
}

#[derive(Deserialize, Default)]
struct RawHolding {
    qw_count: Option<u32>,
    mw_count: Option<u32>,
    md_count: Option<u32>,
    ml_count: Option<u32>,
}

#[derive(Deserialize, Default)]
struct RawCoils {
    qx_bits: Option<u32>,
    mx_bits: Option<u32>,
}

#[derive(Deserialize, Default)]
struct RawDiscrete {
    ix_bits: Option<u32>,
}

#[derive(Deserialize, Default)]
struct RawInputRegisters {
    iw_count: Option<u32>,
}

impl ServerConfig {
    /// Parses the text of `modbus_slave.json`.
    pub fn from_json(text: &str) -> Result<ServerConfig, ConfigError> {
        let raw: RawSlave = parse_json(text)?;
        let net = raw.network_configuration.unwrap_or_default();
        let mut cfg = ServerConfig::default();
        if let Some(host) = net.host {
            if host.trim().is_empty() {
                return Err(err("network_configuration.host", "must not be empty"));
            }
            cfg.host = host.trim().to_string();
        }
        if let Some(port) = net.port {
            cfg.port = port;
        }
        if let Some(n) = net.max_connections {
            if n == 0 {
                return Err(err("network_configuration.max_connections", "must be at least 1"));
            }
            cfg.max_connections = n;
        }
        let ms = |v: Option<u64>, default: Duration, field: &str| -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(0) => Err(err(format!("network_configuration.{field}"), "must be at least 1 ms")),
                Some(ms) => Ok(Duration::from_millis(ms)),
            }
        };
        cfg.idle_timeout = ms(net.idle_timeout_ms, cfg.idle_timeout, "idle_timeout_ms")?;
        cfg.frame_timeout = ms(net.frame_timeout_ms, cfg.frame_timeout, "frame_timeout_ms")?;
        cfg.write_timeout = ms(net.write_timeout_ms, cfg.write_timeout, "write_timeout_ms")?;
        cfg.unit_id = net.unit_id;

        let bm = raw.buffer_mapping.unwrap_or_default();
        let mut map = AddressMap::default();
        let segmented = bm.holding_registers.is_some();
        if segmented {
            let hr = bm.holding_registers.unwrap_or_default();
            let co = bm.coils.unwrap_or_default();
            let di = bm.discrete_inputs.unwrap_or_default();
            let ir = bm.input_registers.unwrap_or_default();
            map.qw_count = hr.qw_count.unwrap_or(map.qw_count);
            map.mw_count = hr.mw_count.unwrap_or(map.mw_count);
            map.md_count = hr.md_count.unwrap_or(map.md_count);
            map.ml_count = hr.ml_count.unwrap_or(map.ml_count);
            map.qx_bits = co.qx_bits.unwrap_or(map.qx_bits);
            map.mx_bits = co.mx_bits.unwrap_or(map.mx_bits);
            map.ix_bits = di.ix_bits.unwrap_or(map.ix_bits);
            map.iw_count = ir.iw_count.unwrap_or(map.iw_count);
            map.word_order = match raw.word_order.as_deref() {
                None | Some("high_word_first") => WordOrder::HighWordFirst,
                Some("low_word_first") => WordOrder::LowWordFirst,
                Some(other) => {
                    return Err(err(
                        "word_order",
                        format!("{other:?} is not a word order (use \"high_word_first\" or \"low_word_first\")"),
                    ));
                }
            };
        } else {
            // Upstream's legacy shape (and no buffer_mapping at all): no memory areas, and
            // the word order it never had a choice of.
            map.qw_count = bm.max_holding_registers.unwrap_or(IMAGE_WORDS);
            map.mw_count = 0;
            map.md_count = 0;
            map.ml_count = 0;
            map.qx_bits = bm.max_coils.unwrap_or(IMAGE_BITS);
            map.mx_bits = 0;
            map.ix_bits = bm.max_discrete_inputs.unwrap_or(IMAGE_BITS);
            map.iw_count = bm.max_input_registers.unwrap_or(IMAGE_WORDS);
        }
        // Fit each segment to its image table, as upstream does, and say so.
        let mut fit = |value: &mut u32, limit: u32, name: &str| {
            if *value > limit {
                cfg.warnings.push(format!(
                    "buffer_mapping: {name} {} exceeds what an image table holds; only {limit} are exposed, \
                     addresses past them answer Illegal Data Address",
                    *value
                ));
                *value = limit;
            }
        };
        let section = |s: &'static str, legacy: &'static str| if segmented { s } else { legacy };
        fit(&mut map.qw_count, MAX_WORDS, section("holding_registers.qw_count", "max_holding_registers"));
        fit(&mut map.mw_count, MAX_WORDS, "holding_registers.mw_count");
        fit(&mut map.md_count, MAX_WORDS, "holding_registers.md_count");
        fit(&mut map.ml_count, MAX_WORDS, "holding_registers.ml_count");
        fit(&mut map.qx_bits, MAX_BITS, section("coils.qx_bits", "max_coils"));
        fit(&mut map.mx_bits, MAX_BITS, "coils.mx_bits");
        fit(&mut map.ix_bits, MAX_BITS, section("discrete_inputs.ix_bits", "max_discrete_inputs"));
        fit(&mut map.iw_count, MAX_WORDS, section("input_registers.iw_count", "max_input_registers"));
        cfg.map = map;
        Ok(cfg)
    }

    /// Reads `modbus_slave.json`.
    pub fn load(path: &Path) -> Result<ServerConfig, ConfigError> {
        let text = read_file(path)?;
        in_file(path, Self::from_json(&text))
    }
}

// ---------------------------------------------------------------- master ----

/// Serial line parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Serial line settings of an RTU device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialSettings {
    pub path: String,
    pub baud_rate: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
}

/// How a device is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Tcp { host: String, port: u16 },
    Rtu(SerialSettings),
}

impl Link {
    /// Devices with the same key share one connection (a gateway, a serial bus).
    pub fn key(&self) -> String {
        match self {
            Link::Tcp { host, port } => format!("tcp://{}:{port}", host.to_ascii_lowercase()),
            Link::Rtu(s) => format!("rtu://{}", s.path),
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Tcp { host, port } => write!(f, "{host}:{port}"),
            Link::Rtu(s) => {
                let p = match s.parity {
                    Parity::None => 'N',
                    Parity::Even => 'E',
                    Parity::Odd => 'O',
                };
                write!(f, "{} {} {}{}{}", s.path, s.baud_rate, s.data_bits, p, s.stop_bits)
            }
        }
    }
}

/// The Modbus functions an I/O point can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    ReadCoils = 1,
    ReadDiscreteInputs = 2,
    ReadHoldingRegisters = 3,
    ReadInputRegisters = 4,
    WriteSingleCoil = 5,
    WriteSingleRegister = 6,
    WriteMultipleCoils = 15,
    WriteMultipleRegisters = 16,
}

impl Function {
    fn from_code(fc: u64) -> Option<Function> {
        Some(match fc {
            1 => Function::ReadCoils,
            2 => Function::ReadDiscreteInputs,
            3 => Function::ReadHoldingRegisters,
            4 => Function::ReadInputRegisters,
            5 => Function::WriteSingleCoil,
            6 => Function::WriteSingleRegister,
            15 => Function::WriteMultipleCoils,
            16 => Function::WriteMultipleRegisters,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// Reads from the device into the image (as opposed to writes from the image).
    pub fn is_read(self) -> bool {
        matches!(self, Function::ReadCoils | Function::ReadDiscreteInputs)
            || matches!(self, Function::ReadHoldingRegisters | Function::ReadInputRegisters)
    }

    /// Works on bits (coils, discrete inputs) rather than registers.
    pub fn is_bits(self) -> bool {
        matches!(
            self,
            Function::ReadCoils
                | Function::ReadDiscreteInputs
                | Function::WriteSingleCoil
                | Function::WriteMultipleCoils
        )
    }

    /// Most items one request of this function carries (Modbus application protocol §6).
    fn max_items(self) -> u32 {
        match self {
            Function::ReadCoils | Function::ReadDiscreteInputs => 2000,
            Function::ReadHoldingRegisters | Function::ReadInputRegisters => 125,
            Function::WriteMultipleCoils => 1968,
            Function::WriteMultipleRegisters => 123,
            // One request per item.
            Function::WriteSingleCoil | Function::WriteSingleRegister => u32::MAX,
        }
    }
}

/// Registers one image element takes on the wire.
pub fn registers_per_element(width: Width) -> u32 {
    match width {
        Width::Bit | Width::Byte | Width::Word => 1,
        Width::DWord => 2,
        Width::LWord => 4,
    }
}

/// One polled or written block of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoPoint {
    pub function: Function,
    /// First coil / register on the device.
    pub offset: u16,
    /// First image point.
    pub location: IecAddress,
    /// Image elements (bits for coil functions).
    pub len: u16,
    pub period: Duration,
}

impl IoPoint {
    /// Coils or registers one poll moves on the wire.
    pub fn wire_count(&self) -> u32 {
        if self.function.is_bits() {
            self.len as u32
        } else {
            self.len as u32 * registers_per_element(self.location.width())
        }
    }
}

/// One remote device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    pub name: String,
    pub link: Link,
    pub slave_id: u8,
    pub timeout: Duration,
    pub points: Vec<IoPoint>,
}

/// The Modbus master, from `conf/modbus_master.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MasterConfig {
    pub devices: Vec<DeviceConfig>,
    /// Adjustments made rather than refusals, for the host to log.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct RawDevice {
    name: Option<String>,
    protocol: Option<String>,
    #[serde(default)]
    config: RawDeviceConfig,
}

#[derive(Deserialize, Default)]
struct RawDeviceConfig {
    #[serde(rename = "type")]
    _kind: Option<String>,
    transport: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    serial_port: Option<String>,
    baud_rate: Option<u32>,
    parity: Option<String>,
    stop_bits: Option<u8>,
    data_bits: Option<u8>,
    timeout_ms: Option<u64>,
    slave_id: Option<u8>,
    /// Older runtimes read one cycle time per device; points without their own use it.
    cycle_time_ms: Option<u64>,
    #[serde(default)]
    io_points: Vec<RawPoint>,
}

#[derive(Deserialize)]
struct RawPoint {
    fc: u64,
    offset: serde_json::Value,
    iec_location: String,
    len: Option<u64>,
    cycle_time_ms: Option<u64>,
}

const DEFAULT_CYCLE_MS: u64 = 1000;
const DEFAULT_TIMEOUT_MS: u64 = 1000;

fn parse_offset(v: &serde_json::Value) -> Result<u16, String> {
    let n = match v {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a register number"))?,
        serde_json::Value::String(s) => {
            let t = s.trim();
            let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => t.parse::<u64>(),
            };
            parsed.map_err(|_| format!("{s:?} is neither hex (0x1A2B) nor decimal"))?
        }
        other => return Err(format!("expected a string such as \"0x0000\", found {other}")),
    };
    u16::try_from(n).map_err(|_| format!("{n} is past the last Modbus address 65535"))
}

fn parse_point(raw: &RawPoint, device_cycle: Option<u64>, path: &str) -> Result<IoPoint, ConfigError> {
    let function = Function::from_code(raw.fc).ok_or_else(|| {
        err(format!("{path}.fc"), format!("function code {} is not supported (use 1, 2, 3, 4, 5, 6, 15 or 16)", raw.fc))
    })?;
    let offset = parse_offset(&raw.offset).map_err(|m| err(format!("{path}.offset"), m))?;
    let location = IecAddress::parse(&raw.iec_location)
        .map_err(|e| err(format!("{path}.iec_location"), format!("{:?}: {e}", raw.iec_location)))?;
    let loc_path = format!("{path}.iec_location");
    if function.is_bits() != (location.width() == Width::Bit) {
        let want = if function.is_bits() { "a bit location (%IX/%QX/%MX n.b)" } else { "a byte/word location" };
        return Err(err(loc_path, format!("function {} needs {want}, not {}", function.code(), raw.iec_location)));
    }
    let len = raw.len.unwrap_or(1);
    if len == 0 {
        return Err(err(format!("{path}.len"), "must be at least 1"));
    }
    let len = u16::try_from(len).map_err(|_| err(format!("{path}.len"), format!("{len} is too large")))?;
    let point = IoPoint { function, offset, location, len, period: Duration::ZERO };
    let wire = point.wire_count();
    if wire > function.max_items() {
        return Err(err(
            format!("{path}.len"),
            format!(
                "{wire} items exceed what one function {} request carries ({})",
                function.code(),
                function.max_items()
            ),
        ));
    }
    if offset as u32 + wire > 65_536 {
        return Err(err(format!("{path}.len"), format!("offset {offset} + {wire} runs past Modbus address 65535")));
    }
    let (first, room) = if location.width() == Width::Bit {
        (location.index() as u32 * BITS_PER_BYTE as u32 + location.bit() as u32, MAX_BITS)
    } else {
        (location.index() as u32, TABLE_CAPACITY as u32)
    };
    if first + len as u32 > room {
        return Err(err(loc_path, format!("{} + {len} elements run past the end of the image", raw.iec_location)));
    }
    let cycle = raw.cycle_time_ms.or(device_cycle).unwrap_or(DEFAULT_CYCLE_MS);
    if cycle == 0 {
        return Err(err(format!("{path}.cycle_time_ms"), "must be at least 1 ms"));
    }
    Ok(IoPoint { period: Duration::from_millis(cycle), ..point })
}

fn parse_parity(text: &str) -> Option<Parity> {
    match text.trim().chars().next()?.to_ascii_uppercase() {
        'N' => Some(Parity::None),
        'E' => Some(Parity::Even),
        'O' => Some(Parity::Odd),
        _ => None,
    }
}

impl MasterConfig {
    /// Parses the text of `modbus_master.json`.
    pub fn from_json(text: &str) -> Result<MasterConfig, ConfigError> {
        let raw: Vec<RawDevice> = parse_json(text)?;
        let mut cfg = MasterConfig::default();
        for (i, dev) in raw.iter().enumerate() {
            let path = format!("[{i}]");
            let name = dev.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| format!("device {i}"));
            if let Some(p) = &dev.protocol
                && !p.eq_ignore_ascii_case("MODBUS")
            {
                return Err(err(format!("{path}.protocol"), format!("{p:?} is not \"MODBUS\"")));
            }
            let c = &dev.config;
            let cpath = format!("{path}.config");
            let transport = c.transport.as_deref().unwrap_or("tcp").trim().to_ascii_lowercase();
            let link = match transport.as_str() {
                "tcp" => {
                    let host = c.host.clone().unwrap_or_else(|| "127.0.0.1".into()).trim().to_string();
                    if host.is_empty() {
                        return Err(err(format!("{cpath}.host"), "must not be empty"));
                    }
                    let port = c.port.unwrap_or(502);
                    if port == 0 {
                        return Err(err(format!("{cpath}.port"), "must not be 0"));
                    }
                    Link::Tcp { host, port }
                }
                "rtu" => {
                    let path_ = c.serial_port.clone().unwrap_or_default().trim().to_string();
                    if path_.is_empty() {
                        return Err(err(format!("{cpath}.serial_port"), "an RTU device needs a serial port"));
                    }
                    let parity = match &c.parity {
                        None => Parity::None,
                        Some(p) => parse_parity(p)
                            .ok_or_else(|| err(format!("{cpath}.parity"), format!("{p:?} is not N, E or O")))?,
                    };
                    let stop_bits = c.stop_bits.unwrap_or(1);
                    if !(1..=2).contains(&stop_bits) {
                        return Err(err(format!("{cpath}.stop_bits"), format!("{stop_bits} is not 1 or 2")));
                    }
                    let data_bits = c.data_bits.unwrap_or(8);
                    if !(5..=8).contains(&data_bits) {
                        return Err(err(format!("{cpath}.data_bits"), format!("{data_bits} is not 5 to 8")));
                    }
                    let baud_rate = c.baud_rate.unwrap_or(9600);
                    if baud_rate == 0 {
                        return Err(err(format!("{cpath}.baud_rate"), "must not be 0"));
                    }
                    Link::Rtu(SerialSettings { path: path_, baud_rate, parity, stop_bits, data_bits })
                }
                other => {
                    return Err(err(format!("{cpath}.transport"), format!("{other:?} is not \"tcp\" or \"rtu\"")));
                }
            };
            let timeout_ms = c.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if timeout_ms == 0 {
                return Err(err(format!("{cpath}.timeout_ms"), "must be at least 1 ms"));
            }
            let points = c
                .io_points
                .iter()
                .enumerate()
                .map(|(j, p)| parse_point(p, c.cycle_time_ms, &format!("{cpath}.io_points[{j}]")))
                .collect::<Result<Vec<_>, _>>()?;
            if points.is_empty() {
                cfg.warnings.push(format!("device {name:?} has no io_points; it is not polled"));
            }
            cfg.devices.push(DeviceConfig {
                name,
                link,
                slave_id: c.slave_id.unwrap_or(1),
                timeout: Duration::from_millis(timeout_ms),
                points,
            });
        }
        // Devices on one serial port must agree on its settings; the first one's win.
        for i in 0..cfg.devices.len() {
            for j in 0..i {
                let (a, b) = (&cfg.devices[j], &cfg.devices[i]);
                if let (Link::Rtu(sa), Link::Rtu(sb)) = (&a.link, &b.link)
                    && sa.path == sb.path
                    && sa != sb
                {
                    cfg.warnings.push(format!(
                        "devices {:?} and {:?} share {} with different line settings; {:?}'s are used",
                        a.name, b.name, sa.path, a.name
                    ));
                    break;
                }
            }
        }
        Ok(cfg)
    }

    /// Reads `modbus_master.json`.
    pub fn load(path: &Path) -> Result<MasterConfig, ConfigError> {
        let text = read_file(path)?;
        in_file(path, Self::from_json(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDITOR_SLAVE: &str = r#"{
  "network_configuration": {
    "host": "0.0.0.0",
    "port": 5020
  },
  "buffer_mapping": {
    "holding_registers": {
      "qw_count": 100,
      "mw_count": 50,
      "md_count": 10,
      "ml_count": 5
    },
    "coils": {
      "qx_bits": 64,
      "mx_bits": 16
    },
    "discrete_inputs": {
      "ix_bits": 32
    },
    "input_registers": {
      "iw_count": 8
    }
  }
}"#;

    #[test]
    fn reads_the_editors_slave_file() {
        let c = ServerConfig::from_json(EDITOR_SLAVE).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 5020));
        let m = c.map;
        assert_eq!((m.qw_count, m.mw_count, m.md_count, m.ml_count), (100, 50, 10, 5));
        assert_eq!((m.qx_bits, m.mx_bits, m.ix_bits, m.iw_count), (64, 16, 32, 8));
        assert_eq!(m.word_order, WordOrder::HighWordFirst);
        assert_eq!(c.unit_id, None);
        assert_eq!(c.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn slave_defaults_and_legacy_shape() {
        let c = ServerConfig::from_json("{}").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 502));
        assert_eq!((c.map.qw_count, c.map.mw_count, c.map.qx_bits), (1024, 0, 8192), "legacy: no memory");
        let c = ServerConfig::from_json(
            r#"{"buffer_mapping":{"max_coils":10,"max_discrete_inputs":20,"max_holding_registers":30,"max_input_registers":40}}"#,
        )
        .unwrap();
        assert_eq!((c.map.qx_bits, c.map.ix_bits, c.map.qw_count, c.map.iw_count), (10, 20, 30, 40));
        assert_eq!(c.map.holding_registers(), 30);
        let c = ServerConfig::from_json(r#"{"buffer_mapping":{"holding_registers":{}}}"#).unwrap();
        assert_eq!(c.map, AddressMap::default());
        let c = ServerConfig::from_json(r#"{"buffer_mapping":{"holding_registers":{}},"word_order":"low_word_first"}"#)
            .unwrap();
        assert_eq!(c.map.word_order, WordOrder::LowWordFirst);
    }

    #[test]
    fn oversized_segments_are_fitted_with_a_warning() {
        let c = ServerConfig::from_json(
            r#"{"buffer_mapping":{"holding_registers":{"qw_count":70000},"coils":{"qx_bits":600000}}}"#,
        )
        .unwrap();
        assert_eq!((c.map.qw_count, c.map.qx_bits), (65_536, 524_288), "a table's room");
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("holding_registers.qw_count 70000"));
        // 5000 registers fit a table: whether they answer is the running program's size.
        let c = ServerConfig::from_json(r#"{"buffer_mapping":{"holding_registers":{"qw_count":5000}}}"#).unwrap();
        assert_eq!((c.map.qw_count, c.warnings.len()), (5000, 0));
    }

    #[test]
    fn slave_errors_name_the_field() {
        let e = ServerConfig::from_json(r#"{"network_configuration":{"port":70000}}"#).unwrap_err();
        assert_eq!(e.path, "network_configuration.port");
        let e = ServerConfig::from_json(r#"{"buffer_mapping":{"holding_registers":{"qw_count":"many"}}}"#).unwrap_err();
        assert_eq!(e.path, "buffer_mapping.holding_registers.qw_count");
        let e = ServerConfig::from_json(r#"{"buffer_mapping":{"holding_registers":{}},"word_order":"middle"}"#)
            .unwrap_err();
        assert_eq!(e.path, "word_order");
        let e = ServerConfig::from_json(r#"{"network_configuration":{"max_connections":0}}"#).unwrap_err();
        assert!(e.to_string().contains("network_configuration.max_connections: must be at least 1"), "{e}");
        let e = ServerConfig::from_json("[1,").unwrap_err();
        assert!(!e.message.is_empty());
    }

    const EDITOR_MASTER: &str = r#"[
  {
    "name": "remote_io",
    "protocol": "MODBUS",
    "config": {
      "type": "SLAVE",
      "transport": "tcp",
      "host": "192.0.2.10",
      "port": 502,
      "timeout_ms": 1000,
      "slave_id": 1,
      "io_points": [
        { "fc": 1, "offset": "0x0000", "iec_location": "%IX0.0", "len": 8, "cycle_time_ms": 100 },
        { "fc": 3, "offset": "0x000A", "iec_location": "%IW0", "len": 4, "cycle_time_ms": 200 },
        { "fc": 15, "offset": "0x0010", "iec_location": "%QX0.0", "len": 8, "cycle_time_ms": 100 },
        { "fc": 6, "offset": "0x0020", "iec_location": "%QW0", "len": 1, "cycle_time_ms": 500 }
      ]
    }
  },
  {
    "name": "drive",
    "protocol": "MODBUS",
    "config": {
      "type": "SLAVE",
      "transport": "rtu",
      "serial_port": "/dev/ttyUSB0",
      "baud_rate": 19200,
      "parity": "E",
      "stop_bits": 1,
      "data_bits": 8,
      "timeout_ms": 300,
      "slave_id": 7,
      "io_points": [
        { "fc": 4, "offset": "0x0000", "iec_location": "%IW10", "len": 2, "cycle_time_ms": 50 }
      ]
    }
  }
]"#;

    #[test]
    fn reads_the_editors_master_file() {
        let c = MasterConfig::from_json(EDITOR_MASTER).unwrap();
        assert_eq!(c.devices.len(), 2);
        let d = &c.devices[0];
        assert_eq!(d.link, Link::Tcp { host: "192.0.2.10".into(), port: 502 });
        assert_eq!((d.slave_id, d.timeout), (1, Duration::from_millis(1000)));
        assert_eq!(d.points.len(), 4);
        assert_eq!(d.points[1].function, Function::ReadHoldingRegisters);
        assert_eq!(d.points[1].offset, 10);
        assert_eq!(d.points[1].location, IecAddress::parse("%IW0").unwrap());
        assert_eq!(d.points[1].period, Duration::from_millis(200));
        assert_eq!(d.points[2].offset, 16);
        let r = &c.devices[1];
        assert_eq!(
            r.link,
            Link::Rtu(SerialSettings {
                path: "/dev/ttyUSB0".into(),
                baud_rate: 19200,
                parity: Parity::Even,
                stop_bits: 1,
                data_bits: 8
            })
        );
        assert_eq!(r.slave_id, 7);
    }

    #[test]
    fn master_defaults() {
        let c = MasterConfig::from_json(
            r#"[{"name":"d","config":{"io_points":[{"fc":4,"offset":"0x0001","iec_location":"%IW0","len":1}]}}]"#,
        )
        .unwrap();
        let d = &c.devices[0];
        assert_eq!(d.link, Link::Tcp { host: "127.0.0.1".into(), port: 502 });
        assert_eq!((d.slave_id, d.timeout, d.points[0].period), (1, Duration::from_secs(1), Duration::from_secs(1)));
    }

    #[test]
    fn two_devices_on_one_endpoint_are_fine() {
        let c = MasterConfig::from_json(
            r#"[{"name":"a","config":{"host":"h","port":1502,"slave_id":1,"io_points":[]}},
                {"name":"b","config":{"host":"h","port":1502,"slave_id":2,"io_points":[]}},
                {"name":"b","config":{"host":"h","port":1502,"slave_id":2,"io_points":[]}}]"#,
        )
        .unwrap();
        assert_eq!(c.devices.len(), 3);
        assert_eq!(c.devices[0].link.key(), c.devices[1].link.key());
    }

    #[test]
    fn master_errors_name_the_field() {
        let cases = [
            (
                r#"[{"config":{"io_points":[{"fc":7,"offset":"0","iec_location":"%IW0","len":1}]}}]"#,
                "[0].config.io_points[0].fc",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0xZZ","iec_location":"%IW0","len":1}]}}]"#,
                "[0].config.io_points[0].offset",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0","iec_location":"%IW65536","len":1}]}}]"#,
                "[0].config.io_points[0].iec_location",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0","iec_location":"%IX0.0","len":1}]}}]"#,
                "[0].config.io_points[0].iec_location",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0","iec_location":"%IW65532","len":5}]}}]"#,
                "[0].config.io_points[0].iec_location",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0","iec_location":"%IW0","len":126}]}}]"#,
                "[0].config.io_points[0].len",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0xFFFF","iec_location":"%IW0","len":2}]}}]"#,
                "[0].config.io_points[0].len",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0","iec_location":"%IW0","len":1,"cycle_time_ms":0}]}}]"#,
                "[0].config.io_points[0].cycle_time_ms",
            ),
            (
                r#"[{"config":{"io_points":[{"fc":3,"offset":"0","iec_location":"%IW0","len":0}]}}]"#,
                "[0].config.io_points[0].len",
            ),
            (r#"[{},{"config":{"transport":"rtu"}}]"#, "[1].config.serial_port"),
            (r#"[{"config":{"transport":"udp"}}]"#, "[0].config.transport"),
            (r#"[{"config":{"transport":"rtu","serial_port":"/dev/x","parity":"Q"}}]"#, "[0].config.parity"),
            (r#"[{"config":{"slave_id":300}}]"#, "[0].config.slave_id"),
            (r#"[{"protocol":"OPC-UA"}]"#, "[0].protocol"),
            (r#"{"devices":[]}"#, "."),
        ];
        for (text, path) in cases {
            let e = MasterConfig::from_json(text).unwrap_err();
            assert_eq!(e.path, path, "{text}: {e}");
        }
    }

    #[test]
    fn offsets_in_every_spelling() {
        assert_eq!(parse_offset(&serde_json::json!("0x00FF")), Ok(255));
        assert_eq!(parse_offset(&serde_json::json!("0X10")), Ok(16));
        assert_eq!(parse_offset(&serde_json::json!("42")), Ok(42));
        assert_eq!(parse_offset(&serde_json::json!(7)), Ok(7));
        assert!(parse_offset(&serde_json::json!("0x10000")).is_err());
        assert!(parse_offset(&serde_json::json!(-1)).is_err());
    }
}
