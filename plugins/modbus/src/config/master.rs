//! `conf/modbus_master.json`: the remote devices the master polls, TCP or RTU, and their
//! I/O points.

use super::{ConfigError, err, in_file, parse_json, read_file};
use crate::map::MAX_BITS;
use serde::Deserialize;
use shared_abi::image::{BITS_PER_BYTE, IecAddress, TABLE_CAPACITY, Width};
use std::fmt;
use std::path::Path;
use std::time::Duration;

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
