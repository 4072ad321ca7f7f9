//! IEC 61131-3 values as rt-core copies them out of a program's debug variables: the one
//! place that knows their byte layouts, for both Editor generations. Each consumer renders
//! the typed [`IecValue`] its own way (the REST monitor as JSON and IEC literals, OPC-UA as
//! Variants) and turns what its clients send into an [`IecValue`] before [`encode`] makes
//! program bytes of it.
//!
//! The bytes are the program's own layout, little-endian:
//!
//! | types | bytes |
//! |---|---|
//! | BOOL, SINT, USINT, BYTE | 1 |
//! | INT, UINT, WORD | 2 |
//! | DINT, UDINT, DWORD, REAL | 4 |
//! | LINT, ULINT, LWORD, LREAL | 8 |
//! | TIME, DATE, TOD, DT | MatIEC (Editor ≤ 4.1.4): 16, `{i64 tv_sec; i64 tv_nsec}`; STruC++ (Editor ≥ 4.2): 8, signed nanoseconds. Told apart by the variable's size |
//! | STRING | a length byte, then the characters (MatIEC and STruC++: 127 in all) |
//! | WSTRING | a length byte, then UTF-16LE units |
//!
//! DATE, TOD and DT count from 1970-01-01 UTC (a TOD is the time since midnight).

use std::fmt;

const NS_PER_SEC: i128 = 1_000_000_000;
/// Nanoseconds in a day (a DATE is a whole number of them, a TOD less than one).
pub const NS_PER_DAY: i128 = 86_400 * NS_PER_SEC;

/// The IEC base types a debug variable can hold.
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

impl IecType {
    /// The type named `name` (case-insensitive, surrounding blanks ignored; the long names
    /// `TIME_OF_DAY` and `DATE_AND_TIME` and the Editor's aliases `INT32` and `FLOAT` too).
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

    /// The IEC name.
    pub fn name(self) -> &'static str {
        match self {
            IecType::Bool => "BOOL",
            IecType::Sint => "SINT",
            IecType::Int => "INT",
            IecType::Dint => "DINT",
            IecType::Lint => "LINT",
            IecType::Usint => "USINT",
            IecType::Uint => "UINT",
            IecType::Udint => "UDINT",
            IecType::Ulint => "ULINT",
            IecType::Byte => "BYTE",
            IecType::Word => "WORD",
            IecType::Dword => "DWORD",
            IecType::Lword => "LWORD",
            IecType::Real => "REAL",
            IecType::Lreal => "LREAL",
            IecType::Time => "TIME",
            IecType::Date => "DATE",
            IecType::Tod => "TOD",
            IecType::Dt => "DT",
            IecType::String => "STRING",
            IecType::Wstring => "WSTRING",
        }
    }

    /// Bytes of a bit-string or number type (the same in both generations); `None` for the
    /// TIME family and the strings, whose size depends on the generator.
    pub fn width(self) -> Option<usize> {
        Some(match self {
            IecType::Bool | IecType::Sint | IecType::Usint | IecType::Byte => 1,
            IecType::Int | IecType::Uint | IecType::Word => 2,
            IecType::Dint | IecType::Udint | IecType::Dword | IecType::Real => 4,
            IecType::Lint | IecType::Ulint | IecType::Lword | IecType::Lreal => 8,
            _ => return None,
        })
    }

    /// Whether a program variable of `size` bytes can hold this type.
    pub fn fits_size(self, size: usize) -> bool {
        match self {
            IecType::Time | IecType::Date | IecType::Tod | IecType::Dt => size == 8 || size == 16,
            IecType::String => size >= 2,
            IecType::Wstring => size >= 3 && (size - 1).is_multiple_of(2),
            _ => self.width() == Some(size),
        }
    }

    /// The smallest size a variable of this type has (the width of a number; the STruC++
    /// layout of the TIME family; an empty one-character string).
    pub fn min_size(self) -> usize {
        match self {
            IecType::Time | IecType::Date | IecType::Tod | IecType::Dt => 8,
            IecType::String => 2,
            IecType::Wstring => 3,
            _ => self.width().unwrap_or(1),
        }
    }
}

impl fmt::Display for IecType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded value; which IEC type it is stays with the caller.
#[derive(Clone, Debug, PartialEq)]
pub enum IecValue {
    Bool(bool),
    /// SINT, INT, DINT, LINT.
    Signed(i64),
    /// USINT … ULINT and BYTE … LWORD.
    Unsigned(u64),
    Real(f32),
    Lreal(f64),
    /// TIME, nanoseconds.
    Duration(i128),
    /// DATE, TOD, DT: nanoseconds since 1970-01-01 00:00 UTC (a TOD: since midnight).
    Instant(i128),
    /// STRING, WSTRING.
    Text(String),
}

/// Why a value could not be made into a variable's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the value's type is not the variable's")]
    TypeMismatch,
    #[error("the value does not fit the variable")]
    OutOfRange,
}

fn le<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    raw.get(..N)?.try_into().ok()
}

/// Nanoseconds held by a TIME-family variable (told apart by its size).
fn time_ns(raw: &[u8]) -> Option<i128> {
    match raw.len() {
        16 => Some(i64::from_le_bytes(le(raw)?) as i128 * NS_PER_SEC + i64::from_le_bytes(le(&raw[8..])?) as i128),
        8 => Some(i64::from_le_bytes(le(raw)?) as i128),
        _ => None,
    }
}

/// Program bytes for `ns` nanoseconds in a TIME-family variable of `size` bytes.
fn time_bytes(ns: i128, size: usize) -> Result<Vec<u8>, EncodeError> {
    match size {
        16 => {
            let secs = i64::try_from(ns.div_euclid(NS_PER_SEC)).map_err(|_| EncodeError::OutOfRange)?;
            let nanos = ns.rem_euclid(NS_PER_SEC) as i64;
            let mut out = secs.to_le_bytes().to_vec();
            out.extend_from_slice(&nanos.to_le_bytes());
            Ok(out)
        }
        8 => Ok(i64::try_from(ns).map_err(|_| EncodeError::OutOfRange)?.to_le_bytes().to_vec()),
        _ => Err(EncodeError::OutOfRange),
    }
}

/// An IEC STRING's characters: UTF-8 as stored, or Latin-1 when the bytes are not UTF-8
/// (a STRING is bytes; programs hold ASCII or UTF-8, both of which come out as written).
pub fn string_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    }
}

/// The value of a variable's bytes, or `None` when they cannot be this type (a size the
/// type never has): the caller says so rather than show a made-up value. A string's length
/// byte beyond its buffer is cut to the buffer.
pub fn decode(ty: IecType, raw: &[u8]) -> Option<IecValue> {
    if !ty.fits_size(raw.len()) {
        return None;
    }
    Some(match ty {
        IecType::Bool => IecValue::Bool(raw[0] != 0),
        IecType::Sint => IecValue::Signed(raw[0] as i8 as i64),
        IecType::Int => IecValue::Signed(i16::from_le_bytes(le(raw)?) as i64),
        IecType::Dint => IecValue::Signed(i32::from_le_bytes(le(raw)?) as i64),
        IecType::Lint => IecValue::Signed(i64::from_le_bytes(le(raw)?)),
        IecType::Usint | IecType::Byte => IecValue::Unsigned(raw[0] as u64),
        IecType::Uint | IecType::Word => IecValue::Unsigned(u16::from_le_bytes(le(raw)?) as u64),
        IecType::Udint | IecType::Dword => IecValue::Unsigned(u32::from_le_bytes(le(raw)?) as u64),
        IecType::Ulint | IecType::Lword => IecValue::Unsigned(u64::from_le_bytes(le(raw)?)),
        IecType::Real => IecValue::Real(f32::from_le_bytes(le(raw)?)),
        IecType::Lreal => IecValue::Lreal(f64::from_le_bytes(le(raw)?)),
        IecType::Time => IecValue::Duration(time_ns(raw)?),
        IecType::Date | IecType::Tod | IecType::Dt => IecValue::Instant(time_ns(raw)?),
        IecType::String => {
            let len = (raw[0] as usize).min(raw.len() - 1);
            IecValue::Text(string_text(&raw[1..1 + len]))
        }
        IecType::Wstring => {
            let len = (raw[0] as usize).min((raw.len() - 1) / 2);
            let units: Vec<u16> =
                raw[1..1 + 2 * len].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            IecValue::Text(String::from_utf16_lossy(&units))
        }
    })
}

/// `size` program bytes holding `value` in a variable of type `ty`. A value of another
/// kind than the type's is `TypeMismatch`; one the variable cannot hold (a number beyond
/// the type's range, a DATE with a time of day, a TOD of 24 h or more, a text longer than
/// the buffer or 255 characters, a size the type never has) is `OutOfRange`.
pub fn encode(ty: IecType, size: usize, value: &IecValue) -> Result<Vec<u8>, EncodeError> {
    use EncodeError::{OutOfRange, TypeMismatch};
    if !ty.fits_size(size) {
        return Err(OutOfRange);
    }
    let signed = |v: i64, bits: u32| -> Result<Vec<u8>, EncodeError> {
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if !(min..=max).contains(&(v as i128)) {
            return Err(OutOfRange);
        }
        Ok(v.to_le_bytes()[..(bits / 8) as usize].to_vec())
    };
    let unsigned = |v: u64, bits: u32| -> Result<Vec<u8>, EncodeError> {
        if bits < 64 && v >> bits != 0 {
            return Err(OutOfRange);
        }
        Ok(v.to_le_bytes()[..(bits / 8) as usize].to_vec())
    };
    let bytes = match (ty, value) {
        (IecType::Bool, IecValue::Bool(b)) => vec![*b as u8],
        (IecType::Sint, IecValue::Signed(v)) => signed(*v, 8)?,
        (IecType::Int, IecValue::Signed(v)) => signed(*v, 16)?,
        (IecType::Dint, IecValue::Signed(v)) => signed(*v, 32)?,
        (IecType::Lint, IecValue::Signed(v)) => signed(*v, 64)?,
        (IecType::Usint | IecType::Byte, IecValue::Unsigned(v)) => unsigned(*v, 8)?,
        (IecType::Uint | IecType::Word, IecValue::Unsigned(v)) => unsigned(*v, 16)?,
        (IecType::Udint | IecType::Dword, IecValue::Unsigned(v)) => unsigned(*v, 32)?,
        (IecType::Ulint | IecType::Lword, IecValue::Unsigned(v)) => unsigned(*v, 64)?,
        (IecType::Real, IecValue::Real(v)) => v.to_le_bytes().to_vec(),
        (IecType::Lreal, IecValue::Lreal(v)) => v.to_le_bytes().to_vec(),
        (IecType::Time, IecValue::Duration(ns)) => time_bytes(*ns, size)?,
        (IecType::Date | IecType::Tod | IecType::Dt, IecValue::Instant(ns)) => {
            match ty {
                IecType::Date if ns.rem_euclid(NS_PER_DAY) != 0 => return Err(OutOfRange),
                IecType::Tod if !(0..NS_PER_DAY).contains(ns) => return Err(OutOfRange),
                _ => {}
            }
            time_bytes(*ns, size)?
        }
        (IecType::String, IecValue::Text(s)) => {
            let text = s.as_bytes();
            if text.len() > size - 1 || text.len() > u8::MAX as usize {
                return Err(OutOfRange);
            }
            let mut out = vec![0u8; size];
            out[0] = text.len() as u8;
            out[1..1 + text.len()].copy_from_slice(text);
            out
        }
        (IecType::Wstring, IecValue::Text(s)) => {
            let units: Vec<u16> = s.encode_utf16().collect();
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
    // `fits_size` fixed the scalar widths above; a mismatch would be a bug here, and
    // writing the wrong number of bytes is never an option.
    if bytes.len() != size {
        return Err(OutOfRange);
    }
    Ok(bytes)
}

/// A located point's raw image bits (`%IX`/`%QW`/`%MD` … hold raw bits at their width) read
/// as `ty`; `None` for a type with no fixed width.
pub fn from_bits(ty: IecType, bits: u64) -> Option<IecValue> {
    decode(ty, &bits.to_le_bytes()[..ty.width()?])
}

/// The raw image bits of `value` as `ty` (the inverse of [`from_bits`]).
pub fn to_bits(ty: IecType, value: &IecValue) -> Result<u64, EncodeError> {
    let width = ty.width().ok_or(EncodeError::TypeMismatch)?;
    let bytes = encode(ty, width, value)?;
    let mut word = [0u8; 8];
    word[..width].copy_from_slice(&bytes);
    Ok(u64::from_le_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ty: IecType, size: usize, value: IecValue) {
        let bytes = encode(ty, size, &value).unwrap_or_else(|e| panic!("{ty} {value:?}: {e}"));
        assert_eq!(bytes.len(), size);
        assert_eq!(decode(ty, &bytes), Some(value), "{ty}");
    }

    fn timespec(secs: i64, nanos: i64) -> Vec<u8> {
        let mut b = secs.to_le_bytes().to_vec();
        b.extend_from_slice(&nanos.to_le_bytes());
        b
    }

    #[test]
    fn every_type_round_trips_exactly_in_both_generations_layouts() {
        use IecValue::*;
        round_trip(IecType::Bool, 1, Bool(true));
        round_trip(IecType::Sint, 1, Signed(-128));
        round_trip(IecType::Usint, 1, Unsigned(255));
        round_trip(IecType::Int, 2, Signed(-31_000));
        round_trip(IecType::Uint, 2, Unsigned(65_535));
        round_trip(IecType::Word, 2, Unsigned(0xBEEF));
        round_trip(IecType::Dint, 4, Signed(i32::MIN as i64));
        round_trip(IecType::Udint, 4, Unsigned(u32::MAX as u64));
        round_trip(IecType::Lint, 8, Signed(i64::MIN + 1));
        round_trip(IecType::Ulint, 8, Unsigned(u64::MAX));
        round_trip(IecType::Lword, 8, Unsigned(0x0123_4567_89AB_CDEF));
        round_trip(IecType::Real, 4, Real(std::f32::consts::PI));
        round_trip(IecType::Lreal, 8, Lreal(-std::f64::consts::E));
        for size in [8, 16] {
            round_trip(IecType::Time, size, Duration(1_500_250_000));
            round_trip(IecType::Time, size, Duration(-90_061_500_000_000));
            round_trip(IecType::Dt, size, Instant(1_795_557_303_250_000_000));
            round_trip(IecType::Date, size, Instant(20_781 * NS_PER_DAY));
            round_trip(IecType::Tod, size, Instant(45_296_789_000_000));
        }
        round_trip(IecType::String, 127, Text("Grüße, 1 €".into()));
        round_trip(IecType::String, 127, Text(String::new()));
        round_trip(IecType::Wstring, 253, Text("Ωmega 𝄞 ü".into()));
    }

    #[test]
    fn known_bytes_decode_to_known_values() {
        assert_eq!(decode(IecType::Sint, &[0xFF]), Some(IecValue::Signed(-1)));
        assert_eq!(decode(IecType::Real, &1.5f32.to_le_bytes()), Some(IecValue::Real(1.5)));
        // MatIEC's {tv_sec, tv_nsec} and STruC++'s nanoseconds mean the same instant.
        assert_eq!(decode(IecType::Time, &timespec(90_061, 500_000_000)), Some(IecValue::Duration(90_061_500_000_000)));
        assert_eq!(
            decode(IecType::Time, &90_061_500_000_000i64.to_le_bytes()),
            Some(IecValue::Duration(90_061_500_000_000))
        );
        assert_eq!(decode(IecType::Time, &timespec(-2, 500_000_000)), Some(IecValue::Duration(-1_500_000_000)));
        let mut s = vec![0u8; 127];
        s[0] = 3;
        s[1..4].copy_from_slice(b"abc");
        assert_eq!(decode(IecType::String, &s), Some(IecValue::Text("abc".into())));
        s[0] = 200;
        assert!(matches!(decode(IecType::String, &s), Some(IecValue::Text(t)) if t.len() == 126), "cut to the buffer");
        s[0] = 1;
        s[1] = 0xE9;
        assert_eq!(decode(IecType::String, &s), Some(IecValue::Text("é".into())), "Latin-1 when not UTF-8");
        let mut w = vec![0u8; 253];
        w[0] = 2;
        w[1..5].copy_from_slice(&[0x41, 0, 0xAC, 0x20]);
        assert_eq!(decode(IecType::Wstring, &w), Some(IecValue::Text("A€".into())));
        assert_eq!(decode(IecType::Int, &[1, 2, 3]), None, "a wrong size is not a value");
        assert_eq!(decode(IecType::Dint, &[1, 2]), None);
        assert_eq!(decode(IecType::Time, &[0; 12]), None);
        assert_eq!(decode(IecType::Wstring, &[0; 4]), None, "half a UTF-16 unit");
    }

    #[test]
    fn values_of_another_kind_or_beyond_the_variable_are_refused() {
        use EncodeError::*;
        use IecValue::*;
        assert_eq!(encode(IecType::Int, 2, &Lreal(1.0)), Err(TypeMismatch));
        assert_eq!(encode(IecType::Int, 2, &Unsigned(1)), Err(TypeMismatch));
        assert_eq!(encode(IecType::Bool, 1, &Unsigned(1)), Err(TypeMismatch));
        assert_eq!(encode(IecType::Time, 8, &Instant(0)), Err(TypeMismatch));
        assert_eq!(encode(IecType::Sint, 1, &Signed(128)), Err(OutOfRange));
        assert_eq!(encode(IecType::Sint, 1, &Signed(-129)), Err(OutOfRange));
        assert_eq!(encode(IecType::Int, 2, &Signed(-32_768)), Ok((-32_768i16).to_le_bytes().to_vec()));
        assert_eq!(encode(IecType::Uint, 2, &Unsigned(65_536)), Err(OutOfRange));
        assert_eq!(encode(IecType::Int, 4, &Signed(1)), Err(OutOfRange), "a variable of another size");
        assert_eq!(encode(IecType::String, 127, &Text("x".repeat(127))), Err(OutOfRange));
        assert!(encode(IecType::String, 127, &Text("x".repeat(126))).is_ok());
        assert_eq!(encode(IecType::Wstring, 253, &Text("é".repeat(127))), Err(OutOfRange));
        // STruC++ holds nanoseconds in an i64: 300 years do not fit; MatIEC's seconds do.
        let far = 300 * 365 * NS_PER_DAY;
        assert_eq!(encode(IecType::Dt, 8, &Instant(far)), Err(OutOfRange));
        assert!(encode(IecType::Dt, 16, &Instant(far)).is_ok());
        assert_eq!(encode(IecType::Date, 8, &Instant(NS_PER_DAY + 1)), Err(OutOfRange), "a DATE is a day");
        assert_eq!(encode(IecType::Tod, 8, &Instant(NS_PER_DAY)), Err(OutOfRange), "a TOD is under 24 h");
        assert_eq!(encode(IecType::Tod, 8, &Instant(-1)), Err(OutOfRange));
    }

    #[test]
    fn image_bits_carry_numbers_at_their_width() {
        assert_eq!(to_bits(IecType::Int, &IecValue::Signed(-1)), Ok(0xFFFF));
        assert_eq!(from_bits(IecType::Int, 0xFFFF), Some(IecValue::Signed(-1)));
        assert_eq!(to_bits(IecType::Real, &IecValue::Real(2.5)), Ok(2.5f32.to_bits() as u64));
        assert_eq!(from_bits(IecType::Lreal, 0.25f64.to_bits()), Some(IecValue::Lreal(0.25)));
        assert_eq!(to_bits(IecType::Bool, &IecValue::Bool(true)), Ok(1));
        assert_eq!(to_bits(IecType::Time, &IecValue::Duration(1)), Err(EncodeError::TypeMismatch));
        assert_eq!(from_bits(IecType::String, 0), None);
    }

    #[test]
    fn type_names_parse_with_aliases() {
        assert_eq!(IecType::parse("int32"), Some(IecType::Dint));
        assert_eq!(IecType::parse(" Time_Of_Day "), Some(IecType::Tod));
        assert_eq!(IecType::parse("date_and_time"), Some(IecType::Dt));
        assert_eq!(IecType::parse("TON"), None);
        for name in ["BOOL", "SINT", "LWORD", "LREAL", "TIME", "DT", "WSTRING"] {
            assert_eq!(IecType::parse(name).map(IecType::name), Some(name));
        }
        assert_eq!(IecType::Wstring.min_size(), 3);
        assert!(IecType::Wstring.fits_size(IecType::Wstring.min_size()));
    }
}
