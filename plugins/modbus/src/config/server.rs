//! `conf/modbus_slave.json`: the Modbus TCP server's address, map and our optional limits.

use super::{ConfigError, err, in_file, parse_json, read_file};
use crate::map::{AddressMap, IMAGE_BITS, IMAGE_WORDS, MAX_BITS, MAX_WORDS, WordOrder};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Defaults of our additions to `network_configuration`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 32;
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 16;
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
    /// Connections served at once. At the cap, a newcomer takes the place of the
    /// longest-idle connection of the heaviest source (see `server::admission`).
    pub max_connections: usize,
    /// Connections one source (an IPv4 address, an IPv6 /64) holds at once. At this cap, a
    /// newcomer takes the place of its source's longest-idle connection.
    pub max_connections_per_source: usize,
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
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
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
    max_connections_per_source: Option<usize>,
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
        if let Some(n) = net.max_connections_per_source {
            if n == 0 {
                return Err(err("network_configuration.max_connections_per_source", "must be at least 1"));
            }
            cfg.max_connections_per_source = n;
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
        assert_eq!(c.max_connections_per_source, DEFAULT_MAX_CONNECTIONS_PER_SOURCE);
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
        let e = ServerConfig::from_json(r#"{"network_configuration":{"max_connections_per_source":0}}"#).unwrap_err();
        assert_eq!(e.path, "network_configuration.max_connections_per_source");
        let c = ServerConfig::from_json(r#"{"network_configuration":{"max_connections_per_source":3}}"#).unwrap();
        assert_eq!(c.max_connections_per_source, 3);
        let e = ServerConfig::from_json("[1,").unwrap_err();
        assert!(!e.message.is_empty());
    }
}
