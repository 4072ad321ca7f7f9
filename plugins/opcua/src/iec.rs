//! IEC 61131-3 values as rt-core copies them out of a program's debug variables, and as
//! OPC-UA carries them: one type per IEC type, exact in both directions.
//!
//! The bytes are the program's own layout, little-endian: scalars at their IEC width, the
//! TIME family as MatIEC's 16-byte `{i64 tv_sec; i64 tv_nsec}` or STruC++'s 8-byte signed
//! nanoseconds (told apart by the variable's size), STRING as a length byte and the
//! characters, WSTRING as a length byte and UTF-16LE units. (The companion's REST monitor
//! decodes the same layouts to JSON in `companion/src/variables.rs`.)

use opcua::types::{DataTypeId, DateTime, StatusCode, UAString, Variant};

/// Ticks (100 ns) from the OPC-UA epoch (1601-01-01) to the Unix epoch.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;
const NS_PER_DAY: i128 = 86_400_000_000_000;

/// The IEC base types the Editor lets a user expose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IecType {
    Bool,
    Sint,
    Int,
    Dint,
    Lint,
    Usint,
    Uint,
    Udint,
    Ulint,
    Byte,
    Word,
    Dword,
    Lword,
    Real,
    Lreal,
    Time,
    Date,
    Tod,
    Dt,
    String,
    Wstring,
}

/// How TIME appears over OPC-UA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeMapping {
    /// `Duration` (a Double of milliseconds), the OPC-UA type for an interval.
    #[default]
    Duration,
    /// `Int64` milliseconds, as upstream's asyncua plugin serves it.
    Int64Ms,
}

impl IecType {
    /// The type named `name` in a configuration (case-insensitive; the Editor's aliases
    /// `INT32`, `FLOAT`, `TIME_OF_DAY`, `DATE_AND_TIME` included).
    pub fn parse(name: &str) -> Option<IecType> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "BOOL" => IecType::Bool,
            "SINT" => IecType::Sint,
            "INT" => IecType::Int,
            "DINT" | "INT32" => IecType::Dint,
            "LINT" => IecType::Lint,
            "USINT" => IecType::Usint,
            "UINT" => IecType::Uint,
            "UDINT" => IecType::Udint,
            "ULINT" => IecType::Ulint,
            "BYTE" => IecType::Byte,
            "WORD" => IecType::Word,
            "DWORD" => IecType::Dword,
            "LWORD" => IecType::Lword,
            "REAL" | "FLOAT" => IecType::Real,
            "LREAL" => IecType::Lreal,
            "TIME" => IecType::Time,
            "DATE" => IecType::Date,
            "TOD" | "TIME_OF_DAY" => IecType::Tod,
            "DT" | "DATE_AND_TIME" => IecType::Dt,
            "STRING" => IecType::String,
            "WSTRING" => IecType::Wstring,
            _ => return None,
        })
    }

    /// The OPC-UA data type of a node holding this type.
    pub fn data_type(self, time: TimeMapping) -> DataTypeId {
        match self {
            IecType::Bool => DataTypeId::Boolean,
            IecType::Sint => DataTypeId::SByte,
            IecType::Usint | IecType::Byte => DataTypeId::Byte,
            IecType::Int => DataTypeId::Int16,
            IecType::Uint | IecType::Word => DataTypeId::UInt16,
            IecType::Dint => DataTypeId::Int32,
            IecType::Udint | IecType::Dword => DataTypeId::UInt32,
            IecType::Lint => DataTypeId::Int64,
            IecType::Ulint | IecType::Lword => DataTypeId::UInt64,
            IecType::Real => DataTypeId::Float,
            IecType::Lreal => DataTypeId::Double,
            IecType::Time => match time {
                TimeMapping::Duration => DataTypeId::Duration,
                TimeMapping::Int64Ms => DataTypeId::Int64,
            },
            IecType::Date | IecType::Tod | IecType::Dt => DataTypeId::DateTime,
            IecType::String | IecType::Wstring => DataTypeId::String,
        }
    }

    /// Whether a program variable of `size` bytes can hold this type.
    pub fn fits_size(self, size: usize) -> bool {
        match self {
            IecType::Bool | IecType::Sint | IecType::Usint | IecType::Byte => size == 1,
            IecType::Int | IecType::Uint | IecType::Word => size == 2,
            IecType::Dint | IecType::Udint | IecType::Dword | IecType::Real => size == 4,
            IecType::Lint | IecType::Ulint | IecType::Lword | IecType::Lreal => size == 8,
            IecType::Time | IecType::Date | IecType::Tod | IecType::Dt => size == 8 || size == 16,
            IecType::String => size >= 2,
            IecType::Wstring => size >= 3 && (size - 1).is_multiple_of(2),
        }
    }

    /// The value a node shows before the first sample (every client sees a typed value).
    pub fn zero(self, time: TimeMapping) -> Variant {
        let zeros = [0u8; 16];
        let size = match self {
            IecType::Time | IecType::Date | IecType::Tod | IecType::Dt => 8,
            IecType::String | IecType::Wstring => 3,
            _ => (1..=8).find(|&n| self.fits_size(n)).unwrap_or(1),
        };
        decode(self, time, &zeros[..size]).unwrap_or(Variant::Empty)
    }
}

/// Why a value could not be turned into program bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the value's type is not the variable's")]
    TypeMismatch,
    #[error("the value does not fit the variable")]
    OutOfRange,
}

impl EncodeError {
    pub fn status(self) -> StatusCode {
        match self {
            EncodeError::TypeMismatch => StatusCode::BadTypeMismatch,
            EncodeError::OutOfRange => StatusCode::BadOutOfRange,
        }
    }
}

fn le<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    raw.get(..N)?.try_into().ok()
}

/// Nanoseconds held by a TIME-family variable of this size.
fn time_ns(raw: &[u8]) -> Option<i128> {
    match raw.len() {
        16 => Some(i64::from_le_bytes(le(raw)?) as i128 * 1_000_000_000 + i64::from_le_bytes(le(&raw[8..])?) as i128),
        8 => Some(i64::from_le_bytes(le(raw)?) as i128),
        _ => None,
    }
}

/// Program bytes for `ns` nanoseconds in a TIME-family variable of `size` bytes.
fn time_bytes(ns: i128, size: usize) -> Result<Vec<u8>, EncodeError> {
    match size {
        16 => {
            let secs = i64::try_from(ns.div_euclid(1_000_000_000)).map_err(|_| EncodeError::OutOfRange)?;
            let nanos = ns.rem_euclid(1_000_000_000) as i64;
            let mut out = secs.to_le_bytes().to_vec();
            out.extend_from_slice(&nanos.to_le_bytes());
            Ok(out)
        }
        8 => Ok(i64::try_from(ns).map_err(|_| EncodeError::OutOfRange)?.to_le_bytes().to_vec()),
        _ => Err(EncodeError::OutOfRange),
    }
}

fn date_time(ns_since_unix: i128) -> Option<Variant> {
    let ticks = i64::try_from(ns_since_unix.div_euclid(100)).ok()?.checked_add(UNIX_EPOCH_TICKS)?;
    if !(0..=DateTime::endtimes_ticks()).contains(&ticks) {
        return None;
    }
    Some(Variant::from(DateTime::from(ticks)))
}

fn date_time_ns(dt: &DateTime) -> i128 {
    (dt.ticks() as i128 - UNIX_EPOCH_TICKS as i128) * 100
}

/// Latin-1 for bytes that are not UTF-8 (an IEC STRING is bytes; most programs hold ASCII
/// or UTF-8, both of which come out as written).
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// The OPC-UA value of a variable's bytes, or `None` when the bytes cannot be this type
/// (wrong size): the caller reports that rather than a made-up value.
pub fn decode(ty: IecType, time: TimeMapping, raw: &[u8]) -> Option<Variant> {
    if !ty.fits_size(raw.len()) {
        return None;
    }
    Some(match ty {
        IecType::Bool => Variant::Boolean(raw[0] != 0),
        IecType::Sint => Variant::SByte(raw[0] as i8),
        IecType::Usint | IecType::Byte => Variant::Byte(raw[0]),
        IecType::Int => Variant::Int16(i16::from_le_bytes(le(raw)?)),
        IecType::Uint | IecType::Word => Variant::UInt16(u16::from_le_bytes(le(raw)?)),
        IecType::Dint => Variant::Int32(i32::from_le_bytes(le(raw)?)),
        IecType::Udint | IecType::Dword => Variant::UInt32(u32::from_le_bytes(le(raw)?)),
        IecType::Lint => Variant::Int64(i64::from_le_bytes(le(raw)?)),
        IecType::Ulint | IecType::Lword => Variant::UInt64(u64::from_le_bytes(le(raw)?)),
        IecType::Real => Variant::Float(f32::from_le_bytes(le(raw)?)),
        IecType::Lreal => Variant::Double(f64::from_le_bytes(le(raw)?)),
        IecType::Time => {
            let ns = time_ns(raw)?;
            match time {
                TimeMapping::Duration => Variant::Double(ns as f64 / 1e6),
                TimeMapping::Int64Ms => Variant::Int64(i64::try_from(ns.div_euclid(1_000_000)).ok()?),
            }
        }
        IecType::Date | IecType::Dt => date_time(time_ns(raw)?)?,
        // A time of day is shown on 1970-01-01 (its date part carries nothing).
        IecType::Tod => date_time(time_ns(raw)?)?,
        IecType::String => {
            let len = (raw[0] as usize).min(raw.len() - 1);
            Variant::String(UAString::from(text_of(&raw[1..1 + len])))
        }
        IecType::Wstring => {
            let len = (raw[0] as usize).min((raw.len() - 1) / 2);
            let units: Vec<u16> =
                raw[1..1 + 2 * len].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            Variant::String(UAString::from(String::from_utf16_lossy(&units)))
        }
    })
}

/// Program bytes (`size` of them) for an OPC-UA value written to a variable of type `ty`.
/// Only the node's own data type is accepted (the server checked the variant type, this
/// checks it again for callers that did not); values it cannot hold are `OutOfRange`.
pub fn encode(ty: IecType, time: TimeMapping, size: usize, value: &Variant) -> Result<Vec<u8>, EncodeError> {
    use EncodeError::{OutOfRange, TypeMismatch};
    if !ty.fits_size(size) {
        return Err(OutOfRange);
    }
    let bytes = match (ty, value) {
        (IecType::Bool, Variant::Boolean(b)) => vec![*b as u8],
        (IecType::Sint, Variant::SByte(v)) => v.to_le_bytes().to_vec(),
        (IecType::Usint | IecType::Byte, Variant::Byte(v)) => vec![*v],
        (IecType::Int, Variant::Int16(v)) => v.to_le_bytes().to_vec(),
        (IecType::Uint | IecType::Word, Variant::UInt16(v)) => v.to_le_bytes().to_vec(),
        (IecType::Dint, Variant::Int32(v)) => v.to_le_bytes().to_vec(),
        (IecType::Udint | IecType::Dword, Variant::UInt32(v)) => v.to_le_bytes().to_vec(),
        (IecType::Lint, Variant::Int64(v)) => v.to_le_bytes().to_vec(),
        (IecType::Ulint | IecType::Lword, Variant::UInt64(v)) => v.to_le_bytes().to_vec(),
        (IecType::Real, Variant::Float(v)) => v.to_le_bytes().to_vec(),
        (IecType::Lreal, Variant::Double(v)) => v.to_le_bytes().to_vec(),
        (IecType::Time, Variant::Double(ms)) if time == TimeMapping::Duration => {
            let ns = ms * 1e6;
            if !ns.is_finite() || ns.abs() >= 9.2e18 {
                return Err(OutOfRange);
            }
            time_bytes(ns.round() as i128, size)?
        }
        (IecType::Time, Variant::Int64(ms)) if time == TimeMapping::Int64Ms => {
            time_bytes(*ms as i128 * 1_000_000, size)?
        }
        (IecType::Date | IecType::Tod | IecType::Dt, Variant::DateTime(dt)) => {
            let ns = date_time_ns(dt);
            match ty {
                IecType::Date if ns.rem_euclid(NS_PER_DAY) != 0 => return Err(OutOfRange),
                IecType::Tod if !(0..NS_PER_DAY).contains(&ns) => return Err(OutOfRange),
                _ => {}
            }
            time_bytes(ns, size)?
        }
        (IecType::String, Variant::String(s)) => {
            let text = s.as_ref().as_bytes();
            if text.len() > size - 1 || text.len() > u8::MAX as usize {
                return Err(OutOfRange);
            }
            let mut out = vec![0u8; size];
            out[0] = text.len() as u8;
            out[1..1 + text.len()].copy_from_slice(text);
            out
        }
        (IecType::Wstring, Variant::String(s)) => {
            let units: Vec<u16> = s.as_ref().encode_utf16().collect();
            if units.len() > (size - 1) / 2 || units.len() > u8::MAX as usize {
                return Err(OutOfRange);
            }
            let mut out = vec![0u8; size];
            out[0] = units.len() as u8;
            for (i, u) in units.iter().enumerate() {
                out[1 + 2 * i..3 + 2 * i].copy_from_slice(&u.to_le_bytes());
            }
            out
        }
        _ => return Err(TypeMismatch),
    };
    if bytes.len() != size {
        // A scalar whose program size differs from its IEC width (cannot happen after
        // `fits_size`, kept as a guard against writing the wrong number of bytes).
        return Err(OutOfRange);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: TimeMapping = TimeMapping::Duration;

    fn round_trip(ty: IecType, size: usize, value: Variant) {
        let bytes = encode(ty, D, size, &value).unwrap_or_else(|e| panic!("{ty:?} {value:?}: {e}"));
        assert_eq!(bytes.len(), size);
        assert_eq!(decode(ty, D, &bytes), Some(value), "{ty:?}");
    }

    #[test]
    fn every_type_round_trips_exactly() {
        round_trip(IecType::Bool, 1, Variant::Boolean(true));
        round_trip(IecType::Sint, 1, Variant::SByte(-128));
        round_trip(IecType::Usint, 1, Variant::Byte(255));
        round_trip(IecType::Int, 2, Variant::Int16(-31_000));
        round_trip(IecType::Uint, 2, Variant::UInt16(65_535));
        round_trip(IecType::Word, 2, Variant::UInt16(0xBEEF));
        round_trip(IecType::Dint, 4, Variant::Int32(i32::MIN));
        round_trip(IecType::Udint, 4, Variant::UInt32(u32::MAX));
        round_trip(IecType::Lint, 8, Variant::Int64(i64::MIN + 1));
        round_trip(IecType::Ulint, 8, Variant::UInt64(u64::MAX));
        round_trip(IecType::Lword, 8, Variant::UInt64(0x0123_4567_89AB_CDEF));
        round_trip(IecType::Real, 4, Variant::Float(std::f32::consts::PI));
        round_trip(IecType::Real, 4, Variant::Float(-1.0e-38));
        round_trip(IecType::Lreal, 8, Variant::Double(-std::f64::consts::E));
        round_trip(IecType::Time, 8, Variant::Double(1500.25));
        round_trip(IecType::Time, 16, Variant::Double(-90_061_500.0));
        round_trip(IecType::String, 127, Variant::String("Grüße, 1 €".into()));
        round_trip(IecType::String, 127, Variant::String("".into()));
        round_trip(IecType::Wstring, 253, Variant::String("Ωmega 𝄞 ü".into()));
        let dt = DateTime::from(UNIX_EPOCH_TICKS + 17_955_573_032_500_000);
        round_trip(IecType::Dt, 8, Variant::from(dt));
        round_trip(IecType::Dt, 16, Variant::from(dt));
        round_trip(IecType::Date, 16, Variant::from(DateTime::ymd(2026, 11, 24)));
        round_trip(IecType::Tod, 8, Variant::from(DateTime::from(UNIX_EPOCH_TICKS + 452_967_890_000)));
    }

    #[test]
    fn known_bytes_decode_to_known_values() {
        assert_eq!(decode(IecType::Real, D, &1.5f32.to_le_bytes()), Some(Variant::Float(1.5)));
        let mut timespec = 90_061i64.to_le_bytes().to_vec();
        timespec.extend_from_slice(&500_000_000i64.to_le_bytes());
        assert_eq!(decode(IecType::Time, D, &timespec), Some(Variant::Double(90_061_500.0)));
        assert_eq!(decode(IecType::Time, TimeMapping::Int64Ms, &timespec), Some(Variant::Int64(90_061_500)));
        let mut s = vec![0u8; 127];
        s[0] = 3;
        s[1..4].copy_from_slice(b"abc");
        assert_eq!(decode(IecType::String, D, &s), Some(Variant::String("abc".into())));
        // A length byte beyond the buffer is cut to the buffer, never read past it.
        s[0] = 200;
        assert_eq!(decode(IecType::String, D, &s).map(|v| matches!(v, Variant::String(_))), Some(true));
        s[0] = 1;
        s[1] = 0xE9;
        assert_eq!(decode(IecType::String, D, &s), Some(Variant::String("é".into())), "Latin-1 when not UTF-8");
        let dt = 1_795_557_303_250_000_000i64;
        let expected = DateTime::parse_from_rfc3339("2026-11-24T21:55:03.250Z").unwrap();
        assert_eq!(decode(IecType::Dt, D, &dt.to_le_bytes()), Some(Variant::from(expected)));
        assert_eq!(decode(IecType::Int, D, &[1, 2, 3]), None, "a wrong size is not a value");
    }

    #[test]
    fn wrong_types_and_out_of_range_values_are_refused() {
        assert_eq!(encode(IecType::Int, D, 2, &Variant::Int32(5)), Err(EncodeError::TypeMismatch));
        assert_eq!(encode(IecType::Real, D, 4, &Variant::Double(1.0)), Err(EncodeError::TypeMismatch));
        assert_eq!(encode(IecType::Bool, D, 1, &Variant::Byte(1)), Err(EncodeError::TypeMismatch));
        let long = "x".repeat(127);
        assert_eq!(
            encode(IecType::String, D, 127, &Variant::String(long.as_str().into())),
            Err(EncodeError::OutOfRange)
        );
        assert!(encode(IecType::String, D, 127, &Variant::String("x".repeat(126).as_str().into())).is_ok());
        let wide = "é".repeat(127);
        assert_eq!(
            encode(IecType::Wstring, D, 253, &Variant::String(wide.as_str().into())),
            Err(EncodeError::OutOfRange)
        );
        assert_eq!(encode(IecType::Time, D, 8, &Variant::Double(f64::NAN)), Err(EncodeError::OutOfRange));
        assert_eq!(encode(IecType::Time, D, 8, &Variant::Double(1e300)), Err(EncodeError::OutOfRange));
        // STruC++ holds nanoseconds in an i64: year 9000 does not fit.
        assert_eq!(encode(IecType::Dt, D, 8, &Variant::from(DateTime::ymd(9000, 1, 1))), Err(EncodeError::OutOfRange));
        assert_eq!(
            encode(IecType::Date, D, 8, &Variant::from(DateTime::ymd_hms(2026, 1, 1, 10, 0, 0))),
            Err(EncodeError::OutOfRange),
            "a DATE is a day"
        );
        assert_eq!(
            encode(IecType::Tod, D, 8, &Variant::from(DateTime::ymd(1970, 1, 2))),
            Err(EncodeError::OutOfRange),
            "a TIME_OF_DAY is under 24 h"
        );
        assert_eq!(
            encode(IecType::Int, D, 4, &Variant::Int16(1)),
            Err(EncodeError::OutOfRange),
            "a variable of another size"
        );
    }

    #[test]
    fn type_names_and_data_types() {
        assert_eq!(IecType::parse("int32"), Some(IecType::Dint));
        assert_eq!(IecType::parse(" Time_Of_Day "), Some(IecType::Tod));
        assert_eq!(IecType::parse("TON"), None);
        assert_eq!(IecType::Time.data_type(D), DataTypeId::Duration);
        assert_eq!(IecType::Time.data_type(TimeMapping::Int64Ms), DataTypeId::Int64);
        assert_eq!(IecType::Wstring.data_type(D), DataTypeId::String);
        assert_eq!(IecType::Real.zero(D), Variant::Float(0.0));
        assert_eq!(IecType::Wstring.zero(D), Variant::String("".into()));
    }
}
