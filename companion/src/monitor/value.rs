//! A value typed by a person, as in the Editor's force dialog (`TRUE`, `-12`, `16#FF`,
//! `3.5`, `T#1s500ms`, text), turned into the native bytes rt-core's `Force` takes for one
//! variable of a given IEC type, size and kind. Pure (fuzzed through `fuzz/entries`).

use shared_abi::program::VarKind;

/// Why a typed value cannot be forced into a variable. The text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{text:?} is not a {iec_type} value{hint}")]
    Syntax { text: String, iec_type: String, hint: &'static str },
    #[error("{text} is outside the range of {iec_type} ({min} to {max})")]
    Range { text: String, iec_type: String, min: String, max: String },
    #[error("the text is {len} bytes long; this {iec_type} holds at most {max}")]
    TooLong { len: usize, iec_type: String, max: usize },
    #[error("values of type {0} cannot be forced from the monitor (use the Editor)")]
    Unsupported(String),
    #[error("the program reports {size} bytes of kind {kind:?} for this {iec_type}: not a layout the monitor knows")]
    Layout { iec_type: String, size: usize, kind: VarKind },
}

/// Longest text accepted for any value (a STRING holds at most 254 bytes).
pub const MAX_TEXT: usize = 1024;

/// Encodes `text` for a variable of `iec_type` that the program stores in `size` bytes of
/// `kind` (as a watched sample reports them). Little-endian (the `Force` command's
/// `big_endian: false`); exactly `size` bytes except for strings, which rt-core pads.
pub fn encode(iec_type: &str, kind: VarKind, size: usize, text: &str) -> Result<Vec<u8>, ValueError> {
    let ty = iec_type.trim().to_ascii_uppercase();
    let t = text.trim();
    if text.len() > MAX_TEXT {
        return Err(ValueError::TooLong { len: text.len(), iec_type: ty, max: MAX_TEXT });
    }
    let layout = || ValueError::Layout { iec_type: ty.clone(), size, kind };
    let int = |bits: u32, signed: bool| -> Result<Vec<u8>, ValueError> {
        let bytes = (bits / 8) as usize;
        if kind != VarKind::Scalar || size != bytes {
            return Err(layout());
        }
        let v = integer(&ty, t, bits, signed)?;
        Ok(v.to_le_bytes()[..bytes].to_vec())
    };
    match ty.as_str() {
        "BOOL" => {
            if kind != VarKind::Scalar || size == 0 || size > 8 {
                return Err(layout());
            }
            let b = match strip_type(t, &["BOOL"]).to_ascii_uppercase().as_str() {
                "TRUE" | "1" => 1u8,
                "FALSE" | "0" => 0u8,
                _ => return Err(syntax(t, &ty, " (TRUE or FALSE)")),
            };
            let mut out = vec![0u8; size];
            out[0] = b;
            Ok(out)
        }
        "SINT" => int(8, true),
        "INT" => int(16, true),
        "DINT" => int(32, true),
        "LINT" => int(64, true),
        "USINT" | "BYTE" => int(8, false),
        "UINT" | "WORD" => int(16, false),
        "UDINT" | "DWORD" => int(32, false),
        "ULINT" | "LWORD" => int(64, false),
        "REAL" | "LREAL" => {
            let wide = ty == "LREAL";
            if kind != VarKind::Scalar || size != if wide { 8 } else { 4 } {
                return Err(layout());
            }
            let body = strip_type(t, &[ty.as_str()]).replace('_', "");
            let v: f64 = body.parse().map_err(|_| syntax(t, &ty, " (a number such as 1.5 or -2e3)"))?;
            if !v.is_finite() || (!wide && v.abs() > f32::MAX as f64) {
                return Err(ValueError::Range {
                    text: t.into(),
                    iec_type: ty.clone(),
                    min: if wide { "-1.8e308" } else { "-3.4e38" }.into(),
                    max: if wide { "1.8e308" } else { "3.4e38" }.into(),
                });
            }
            Ok(if wide { v.to_le_bytes().to_vec() } else { (v as f32).to_le_bytes().to_vec() })
        }
        "TIME" => {
            let ns = duration_ns(t).ok_or_else(|| syntax(t, &ty, " (such as T#1s500ms or T#-250ms)"))?;
            match (kind, size) {
                // MatIEC: {i64 seconds; i64 nanoseconds}.
                (VarKind::Timespec, 16) => {
                    let (sec, nsec) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
                    let mut out = (sec as i64).to_le_bytes().to_vec();
                    out.extend_from_slice(&(nsec as i64).to_le_bytes());
                    Ok(out)
                }
                // STruC++: signed 64-bit nanoseconds.
                (VarKind::Scalar, 8) => {
                    let v = i64::try_from(ns).map_err(|_| ValueError::Range {
                        text: t.into(),
                        iec_type: ty.clone(),
                        min: "T#-106751d".into(),
                        max: "T#106751d".into(),
                    })?;
                    Ok(v.to_le_bytes().to_vec())
                }
                _ => Err(layout()),
            }
        }
        "STRING" | "WSTRING" => {
            if kind != VarKind::String || size < 2 {
                return Err(layout());
            }
            let body = unquote(strip_type(t, &[ty.as_str()]), text);
            if ty == "STRING" {
                let max = (size - 1).min(255);
                if body.len() > max {
                    return Err(ValueError::TooLong { len: body.len(), iec_type: ty, max });
                }
                let mut out = vec![body.len() as u8];
                out.extend_from_slice(body.as_bytes());
                Ok(out)
            } else {
                let units: Vec<u16> = body.encode_utf16().collect();
                let max = ((size - 1) / 2).min(255);
                if units.len() > max {
                    return Err(ValueError::TooLong { len: units.len() * 2, iec_type: ty, max: max * 2 });
                }
                let mut out = vec![units.len() as u8];
                for u in units {
                    out.extend_from_slice(&u.to_le_bytes());
                }
                Ok(out)
            }
        }
        _ => Err(ValueError::Unsupported(ty)),
    }
}

fn syntax(text: &str, iec_type: &str, hint: &'static str) -> ValueError {
    ValueError::Syntax { text: text.chars().take(64).collect(), iec_type: iec_type.into(), hint }
}

/// `INT#5` → `5` (the typed-literal prefix, when it names the type or a listed alias).
fn strip_type<'a>(t: &'a str, names: &[&str]) -> &'a str {
    if let Some((prefix, rest)) = t.split_once('#')
        && names.iter().any(|n| prefix.trim().eq_ignore_ascii_case(n))
    {
        return rest.trim();
    }
    t
}

/// A string typed with or without IEC quotes (`'text'`, `"text"`); without quotes the text
/// is taken as typed, leading and trailing spaces included.
fn unquote<'a>(trimmed: &'a str, raw: &'a str) -> &'a str {
    for q in ['\'', '"'] {
        if trimmed.len() >= 2 && trimmed.starts_with(q) && trimmed.ends_with(q) {
            return &trimmed[1..trimmed.len() - 1];
        }
    }
    if trimmed.len() == raw.trim().len() && !raw.contains('#') { raw } else { trimmed }
}

/// An IEC integer literal (`-12`, `1_000`, `16#FF`, `2#1010`, `8#17`, `INT#5`) in range
/// for `bits` (signed or not), as two's complement in a u64.
fn integer(ty: &str, t: &str, bits: u32, signed: bool) -> Result<u64, ValueError> {
    let body = strip_type(t, &[ty]);
    let (negative, digits) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body.strip_prefix('+').unwrap_or(body)),
    };
    let (radix, digits) = match digits.split_once('#') {
        Some(("16", d)) => (16, d),
        Some(("8", d)) => (8, d),
        Some(("2", d)) => (2, d),
        Some(_) => return Err(syntax(t, ty, " (16#, 8# or 2# for another base)")),
        None => (10, digits),
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(syntax(t, ty, ""));
    }
    let magnitude = u128::from_str_radix(&digits, radix).map_err(|_| syntax(t, ty, ""))?;
    let (min, max): (i128, i128) =
        if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
    let range =
        || ValueError::Range { text: t.into(), iec_type: ty.into(), min: min.to_string(), max: max.to_string() };
    let magnitude = i128::try_from(magnitude).map_err(|_| range())?;
    let value = if negative { -magnitude } else { magnitude };
    // A based literal of a signed type may also spell its bit pattern (INT 16#FFFF = -1).
    let value = if signed && radix != 10 && !negative && value > max && value < (1i128 << bits) {
        value - (1i128 << bits)
    } else {
        value
    };
    if value < min || value > max {
        return Err(range());
    }
    Ok(value as i64 as u64)
}

/// An IEC duration in nanoseconds: `T#1d2h3m4s5ms6us7ns`, `TIME#-1.5s`, `t#500ms`, `250ms`
/// (parts in descending order, each at most once; a fraction only on the last part).
pub fn duration_ns(text: &str) -> Option<i128> {
    let t = text.trim();
    let body = match t.split_once('#') {
        Some((p, rest)) if p.eq_ignore_ascii_case("T") || p.eq_ignore_ascii_case("TIME") => rest,
        Some(_) => return None,
        None => t,
    };
    let body = body.replace('_', "").to_ascii_lowercase();
    let (negative, mut rest) = match body.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, body.as_str()),
    };
    const UNITS: [(&str, i128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("ms", 1_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    // Order of the units in a literal (ms after s, though it is matched before m).
    let rank = |u: &str| ["d", "h", "m", "s", "ms", "us", "ns"].iter().position(|x| *x == u);
    let mut total: i128 = 0;
    let mut last_rank: Option<usize> = None;
    let mut had_fraction = false;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        if had_fraction {
            return None;
        }
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let (num, tail) = rest.split_at(num_len);
        let (unit, scale) = UNITS.iter().find(|(u, _)| tail.starts_with(u)).copied()?;
        let r = rank(unit)?;
        if last_rank.is_some_and(|l| r <= l) {
            return None;
        }
        last_rank = Some(r);
        rest = &tail[unit.len()..];
        let part = match num.split_once('.') {
            None => num.parse::<i128>().ok()?.checked_mul(scale)?,
            Some((whole, frac)) => {
                if frac.is_empty() || frac.len() > 9 || frac.contains('.') {
                    return None;
                }
                had_fraction = true;
                let whole: i128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
                let frac_value: i128 = frac.parse().ok()?;
                let denom = 10i128.pow(frac.len() as u32);
                whole.checked_mul(scale)?.checked_add(frac_value.checked_mul(scale)? / denom)?
            }
        };
        total = total.checked_add(part)?;
        // Beyond ±292 years is no TIME any program holds.
        if total > i64::MAX as i128 * 2 {
            return None;
        }
    }
    Some(if negative { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ty: &str, kind: VarKind, size: usize, text: &str) -> Result<Vec<u8>, ValueError> {
        encode(ty, kind, size, text)
    }

    #[test]
    fn booleans_and_integers_as_the_editor_types_them() {
        assert_eq!(enc("BOOL", VarKind::Scalar, 1, "true"), Ok(vec![1]));
        assert_eq!(enc("BOOL", VarKind::Scalar, 1, " FALSE "), Ok(vec![0]));
        assert_eq!(enc("BOOL", VarKind::Scalar, 1, "BOOL#1"), Ok(vec![1]));
        assert!(matches!(enc("BOOL", VarKind::Scalar, 1, "yes"), Err(ValueError::Syntax { .. })));
        assert_eq!(enc("UINT", VarKind::Scalar, 2, "4242"), Ok(4242u16.to_le_bytes().to_vec()));
        assert_eq!(enc("UINT", VarKind::Scalar, 2, "16#FFFF"), Ok(vec![0xFF, 0xFF]));
        assert_eq!(enc("INT", VarKind::Scalar, 2, "-32768"), Ok((-32768i16).to_le_bytes().to_vec()));
        assert_eq!(enc("INT", VarKind::Scalar, 2, "16#FFFF"), Ok((-1i16).to_le_bytes().to_vec()));
        assert_eq!(enc("DINT", VarKind::Scalar, 4, "1_000_000"), Ok(1_000_000i32.to_le_bytes().to_vec()));
        assert_eq!(enc("LINT", VarKind::Scalar, 8, "-9223372036854775808"), Ok(i64::MIN.to_le_bytes().to_vec()));
        assert_eq!(enc("ULINT", VarKind::Scalar, 8, "18446744073709551615"), Ok(u64::MAX.to_le_bytes().to_vec()));
        assert_eq!(enc("BYTE", VarKind::Scalar, 1, "2#1010_0101"), Ok(vec![0xA5]));
        assert_eq!(enc("SINT", VarKind::Scalar, 1, "SINT#-5"), Ok(vec![0xFB]));
        assert!(matches!(enc("UINT", VarKind::Scalar, 2, "65536"), Err(ValueError::Range { .. })));
        assert!(matches!(enc("UINT", VarKind::Scalar, 2, "-1"), Err(ValueError::Range { .. })));
        assert!(matches!(enc("SINT", VarKind::Scalar, 1, "128"), Err(ValueError::Range { .. })));
        assert!(matches!(enc("INT", VarKind::Scalar, 2, "1.5"), Err(ValueError::Syntax { .. })));
        assert!(matches!(enc("INT", VarKind::Scalar, 2, "--1"), Err(ValueError::Syntax { .. })));
        assert!(matches!(enc("INT", VarKind::Scalar, 2, ""), Err(ValueError::Syntax { .. })));
        assert!(matches!(enc("UINT", VarKind::Scalar, 4, "1"), Err(ValueError::Layout { .. })), "size mismatch");
    }

    #[test]
    fn reals_times_and_strings() {
        assert_eq!(enc("REAL", VarKind::Scalar, 4, "1.5"), Ok(1.5f32.to_le_bytes().to_vec()));
        assert_eq!(enc("LREAL", VarKind::Scalar, 8, "-2e3"), Ok((-2000f64).to_le_bytes().to_vec()));
        assert!(matches!(enc("REAL", VarKind::Scalar, 4, "1e39"), Err(ValueError::Range { .. })));
        assert!(matches!(enc("REAL", VarKind::Scalar, 4, "NaN"), Err(ValueError::Range { .. })));
        let matiec = enc("TIME", VarKind::Timespec, 16, "T#1s500ms").unwrap();
        assert_eq!(&matiec[..8], &1i64.to_le_bytes());
        assert_eq!(&matiec[8..], &500_000_000i64.to_le_bytes());
        let negative = enc("TIME", VarKind::Timespec, 16, "T#-250ms").unwrap();
        assert_eq!(&negative[..8], &(-1i64).to_le_bytes(), "normalised: -1 s + 0.75 s");
        assert_eq!(&negative[8..], &750_000_000i64.to_le_bytes());
        assert_eq!(enc("TIME", VarKind::Scalar, 8, "t#2m"), Ok(120_000_000_000i64.to_le_bytes().to_vec()));
        assert_eq!(enc("STRING", VarKind::String, 127, "'hello'"), Ok(b"\x05hello".to_vec()));
        assert_eq!(enc("STRING", VarKind::String, 127, "plain text"), Ok(b"\x0aplain text".to_vec()));
        assert!(matches!(enc("STRING", VarKind::String, 4, "long"), Err(ValueError::TooLong { max: 3, .. })));
        assert_eq!(enc("WSTRING", VarKind::String, 9, "hé"), Ok(vec![2, b'h', 0, 0xE9, 0]));
        assert!(matches!(enc("DT", VarKind::Timespec, 16, "DT#2026-01-01-00:00:00"), Err(ValueError::Unsupported(_))));
        assert!(matches!(enc("MY_STRUCT", VarKind::Opaque, 12, "1"), Err(ValueError::Unsupported(_))));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns("T#1d2h3m4s5ms6us7ns"), Some(93_784_005_006_007));
        assert_eq!(duration_ns("TIME#1.5s"), Some(1_500_000_000));
        assert_eq!(duration_ns("500ms"), Some(500_000_000));
        assert_eq!(duration_ns("T#-1m"), Some(-60_000_000_000));
        assert_eq!(duration_ns("T#1m30s"), Some(90_000_000_000));
        assert_eq!(duration_ns("T#"), None);
        assert_eq!(duration_ns("T#5"), None, "a unit is needed");
        assert_eq!(duration_ns("T#1s1m"), None, "parts in order");
        assert_eq!(duration_ns("T#1.5s2ms"), None, "a fraction only last");
        assert_eq!(duration_ns("X#1s"), None);
        assert_eq!(duration_ns("T#99999999999999999999999d"), None, "no overflow");
    }
}
