//! IEC 61131-3 values as OPC-UA carries them: one built-in type per IEC type, exact in both
//! directions. The byte layouts of both Editor generations are `iec_values`' (shared with
//! the REST monitor); this module maps its typed values to and from Variants.

use iec_values::IecValue;
pub use iec_values::{EncodeError, IecType};
use opcua::types::{DataTypeId, DateTime, StatusCode, UAString, Variant};

/// Ticks (100 ns) from the OPC-UA epoch (1601-01-01) to the Unix epoch.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

/// How TIME appears over OPC-UA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeMapping {
    /// `Duration` (a Double of milliseconds), the OPC-UA type for an interval.
    #[default]
    Duration,
    /// `Int64` milliseconds, as upstream's asyncua plugin serves it.
    Int64Ms,
}

/// The OPC-UA data type of a node holding `ty`.
pub fn data_type(ty: IecType, time: TimeMapping) -> DataTypeId {
    match ty {
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

/// The value a node of `ty` shows before the first sample (every client sees a typed value).
pub fn zero(ty: IecType, time: TimeMapping) -> Variant {
    decode(ty, time, &[0u8; 16][..ty.min_size()]).unwrap_or(Variant::Empty)
}

/// The StatusCode a refused write gets.
pub fn status(e: EncodeError) -> StatusCode {
    match e {
        EncodeError::TypeMismatch => StatusCode::BadTypeMismatch,
        EncodeError::OutOfRange => StatusCode::BadOutOfRange,
    }
}

fn date_time(ns_since_unix: i128) -> Option<Variant> {
    let ticks = i64::try_from(ns_since_unix.div_euclid(100)).ok()?.checked_add(UNIX_EPOCH_TICKS)?;
    if !(0..=DateTime::endtimes_ticks()).contains(&ticks) {
        return None;
    }
    Some(Variant::from(DateTime::from(ticks)))
}

/// The Variant of a decoded value of type `ty` (`None`: a DATE/DT outside OPC-UA's range).
pub fn to_variant(ty: IecType, time: TimeMapping, value: IecValue) -> Option<Variant> {
    Some(match (ty, value) {
        (_, IecValue::Bool(b)) => Variant::Boolean(b),
        (IecType::Sint, IecValue::Signed(v)) => Variant::SByte(i8::try_from(v).ok()?),
        (IecType::Int, IecValue::Signed(v)) => Variant::Int16(i16::try_from(v).ok()?),
        (IecType::Dint, IecValue::Signed(v)) => Variant::Int32(i32::try_from(v).ok()?),
        (_, IecValue::Signed(v)) => Variant::Int64(v),
        (IecType::Usint | IecType::Byte, IecValue::Unsigned(v)) => Variant::Byte(u8::try_from(v).ok()?),
        (IecType::Uint | IecType::Word, IecValue::Unsigned(v)) => Variant::UInt16(u16::try_from(v).ok()?),
        (IecType::Udint | IecType::Dword, IecValue::Unsigned(v)) => Variant::UInt32(u32::try_from(v).ok()?),
        (_, IecValue::Unsigned(v)) => Variant::UInt64(v),
        (_, IecValue::Real(v)) => Variant::Float(v),
        (_, IecValue::Lreal(v)) => Variant::Double(v),
        (_, IecValue::Duration(ns)) => match time {
            TimeMapping::Duration => Variant::Double(ns as f64 / 1e6),
            TimeMapping::Int64Ms => Variant::Int64(i64::try_from(ns.div_euclid(1_000_000)).ok()?),
        },
        // A time of day shows on 1970-01-01 (its date part carries nothing).
        (_, IecValue::Instant(ns)) => date_time(ns)?,
        (_, IecValue::Text(s)) => Variant::String(UAString::from(s)),
    })
}

/// The value a client wrote, if it carries `ty`'s own OPC-UA type (OPC-UA requires the
/// node's data type; UaExpert and the SDKs send it).
pub fn from_variant(ty: IecType, time: TimeMapping, value: &Variant) -> Result<IecValue, EncodeError> {
    use IecType as T;
    Ok(match (ty, value) {
        (T::Bool, Variant::Boolean(b)) => IecValue::Bool(*b),
        (T::Sint, Variant::SByte(v)) => IecValue::Signed(*v as i64),
        (T::Int, Variant::Int16(v)) => IecValue::Signed(*v as i64),
        (T::Dint, Variant::Int32(v)) => IecValue::Signed(*v as i64),
        (T::Lint, Variant::Int64(v)) => IecValue::Signed(*v),
        (T::Usint | T::Byte, Variant::Byte(v)) => IecValue::Unsigned(*v as u64),
        (T::Uint | T::Word, Variant::UInt16(v)) => IecValue::Unsigned(*v as u64),
        (T::Udint | T::Dword, Variant::UInt32(v)) => IecValue::Unsigned(*v as u64),
        (T::Ulint | T::Lword, Variant::UInt64(v)) => IecValue::Unsigned(*v),
        (T::Real, Variant::Float(v)) => IecValue::Real(*v),
        (T::Lreal, Variant::Double(v)) => IecValue::Lreal(*v),
        (T::Time, Variant::Double(ms)) if time == TimeMapping::Duration => {
            let ns = (ms * 1e6).round();
            // Beyond ~3e29 ns no layout holds it anyway; the bound keeps the cast exact.
            if !ns.is_finite() || ns.abs() >= 1e30 {
                return Err(EncodeError::OutOfRange);
            }
            IecValue::Duration(ns as i128)
        }
        (T::Time, Variant::Int64(ms)) if time == TimeMapping::Int64Ms => IecValue::Duration(*ms as i128 * 1_000_000),
        (T::Date | T::Tod | T::Dt, Variant::DateTime(dt)) => {
            IecValue::Instant((dt.ticks() as i128 - UNIX_EPOCH_TICKS as i128) * 100)
        }
        (T::String | T::Wstring, Variant::String(s)) => IecValue::Text(s.as_ref().to_owned()),
        _ => return Err(EncodeError::TypeMismatch),
    })
}

/// The OPC-UA value of a variable's bytes, or `None` when the bytes cannot be this type
/// (wrong size): the caller reports that rather than a made-up value.
pub fn decode(ty: IecType, time: TimeMapping, raw: &[u8]) -> Option<Variant> {
    to_variant(ty, time, iec_values::decode(ty, raw)?)
}

/// Program bytes (`size` of them) for an OPC-UA value written to a variable of type `ty`.
pub fn encode(ty: IecType, time: TimeMapping, size: usize, value: &Variant) -> Result<Vec<u8>, EncodeError> {
    iec_values::encode(ty, size, &from_variant(ty, time, value)?)
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
    fn every_type_has_its_own_variant_both_ways() {
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
        round_trip(IecType::Real, 4, Variant::Float(-1.0e-38));
        round_trip(IecType::Lreal, 8, Variant::Double(-std::f64::consts::E));
        round_trip(IecType::Time, 8, Variant::Double(1500.25));
        round_trip(IecType::Time, 16, Variant::Double(-90_061_500.0));
        round_trip(IecType::String, 127, Variant::String("Grüße, 1 €".into()));
        round_trip(IecType::Wstring, 253, Variant::String("Ωmega 𝄞 ü".into()));
        let dt = DateTime::from(UNIX_EPOCH_TICKS + 17_955_573_032_500_000);
        round_trip(IecType::Dt, 8, Variant::from(dt));
        round_trip(IecType::Dt, 16, Variant::from(dt));
        round_trip(IecType::Date, 16, Variant::from(DateTime::ymd(2026, 11, 24)));
        round_trip(IecType::Tod, 8, Variant::from(DateTime::from(UNIX_EPOCH_TICKS + 452_967_890_000)));
    }

    #[test]
    fn time_follows_the_mapping_and_dates_the_utc_epoch() {
        let mut timespec = 90_061i64.to_le_bytes().to_vec();
        timespec.extend_from_slice(&500_000_000i64.to_le_bytes());
        assert_eq!(decode(IecType::Time, D, &timespec), Some(Variant::Double(90_061_500.0)));
        assert_eq!(decode(IecType::Time, TimeMapping::Int64Ms, &timespec), Some(Variant::Int64(90_061_500)));
        assert_eq!(
            encode(IecType::Time, TimeMapping::Int64Ms, 8, &Variant::Int64(1500)),
            Ok(1_500_000_000i64.to_le_bytes().to_vec())
        );
        let dt = 1_795_557_303_250_000_000i64;
        let expected = DateTime::parse_from_rfc3339("2026-11-24T21:55:03.250Z").unwrap();
        assert_eq!(decode(IecType::Dt, D, &dt.to_le_bytes()), Some(Variant::from(expected)));
    }

    #[test]
    fn a_write_must_carry_the_nodes_type_and_fit() {
        assert_eq!(encode(IecType::Int, D, 2, &Variant::Int32(5)), Err(EncodeError::TypeMismatch));
        assert_eq!(encode(IecType::Real, D, 4, &Variant::Double(1.0)), Err(EncodeError::TypeMismatch));
        assert_eq!(encode(IecType::Bool, D, 1, &Variant::Byte(1)), Err(EncodeError::TypeMismatch));
        assert_eq!(
            encode(IecType::Time, TimeMapping::Int64Ms, 8, &Variant::Double(1.0)),
            Err(EncodeError::TypeMismatch)
        );
        assert_eq!(encode(IecType::Time, D, 8, &Variant::Double(f64::NAN)), Err(EncodeError::OutOfRange));
        assert_eq!(encode(IecType::Time, D, 8, &Variant::Double(1e300)), Err(EncodeError::OutOfRange));
        assert_eq!(encode(IecType::Dt, D, 8, &Variant::from(DateTime::ymd(9000, 1, 1))), Err(EncodeError::OutOfRange));
        assert_eq!(
            encode(IecType::Date, D, 8, &Variant::from(DateTime::ymd_hms(2026, 1, 1, 10, 0, 0))),
            Err(EncodeError::OutOfRange)
        );
        let long = "x".repeat(127);
        assert_eq!(
            encode(IecType::String, D, 127, &Variant::String(long.as_str().into())),
            Err(EncodeError::OutOfRange)
        );
        assert_eq!(status(EncodeError::OutOfRange), StatusCode::BadOutOfRange);
    }

    #[test]
    fn data_types_and_initial_values() {
        assert_eq!(data_type(IecType::Time, D), DataTypeId::Duration);
        assert_eq!(data_type(IecType::Time, TimeMapping::Int64Ms), DataTypeId::Int64);
        assert_eq!(data_type(IecType::Wstring, D), DataTypeId::String);
        assert_eq!(zero(IecType::Real, D), Variant::Float(0.0));
        assert_eq!(zero(IecType::Wstring, D), Variant::String("".into()));
        assert_eq!(zero(IecType::Dt, D), Variant::from(DateTime::from(UNIX_EPOCH_TICKS)));
    }
}
