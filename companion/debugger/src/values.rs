//! Watched values as rt-core copies them (the program's native bytes) → the bytes the
//! Editor decodes.
//!
//! Only one kind needs converting: MatIEC's `IEC_TIMESPEC` (TIME, DATE, TOD, DT) is
//! `{long tv_sec; long tv_nsec;}`, 16 bytes on 64-bit Linux, while every Editor reads these
//! types as 8 bytes, i32 seconds then i32 nanoseconds, little-endian. Sending the 16 bytes
//! (as upstream does) shifts every later value of the same reply. STruC++ programs report
//! their 8-byte nanosecond TIME as a plain scalar, which goes out as it comes.

use shared_abi::program::VarKind;

/// Bytes a MatIEC timespec takes on the debug wire.
pub const WIRE_TIMESPEC: usize = 8;

/// Bytes a value of `kind` and program size `size` takes on the wire.
pub fn wire_len(kind: VarKind, size: usize) -> usize {
    match kind {
        VarKind::Timespec if size == 16 => WIRE_TIMESPEC,
        _ => size,
    }
}

/// The wire form of one value: `raw` itself, or the converted timespec in `scratch`.
pub fn to_wire<'a>(kind: VarKind, raw: &'a [u8], scratch: &'a mut [u8; WIRE_TIMESPEC]) -> &'a [u8] {
    match (kind, <&[u8; 16]>::try_from(raw)) {
        (VarKind::Timespec, Ok(ts)) => {
            *scratch = timespec_to_wire(ts);
            &scratch[..]
        }
        // A timespec that is already 8 bytes (a 32-bit target) has the Editor's layout.
        _ => raw,
    }
}

/// `{i64 sec; i64 nsec}` (native order) → `i32 sec, i32 nsec` little-endian.
///
/// Nanoseconds are first normalised into `0..1e9` (carrying into the seconds, so
/// `{1, -1}` becomes `{0, 999999999}`); seconds beyond the i32 range (±68 years) saturate,
/// to `{i32::MAX, 999999999}` above and `{i32::MIN, 0}` below, rather than wrap into a
/// value of the other sign.
pub fn timespec_to_wire(raw: &[u8; 16]) -> [u8; WIRE_TIMESPEC] {
    let (s, n) = raw.split_at(8);
    let sec = i64::from_ne_bytes(s.try_into().unwrap_or([0; 8]));
    let nsec = i64::from_ne_bytes(n.try_into().unwrap_or([0; 8]));
    let (sec, nsec) = normalise(sec as i128, nsec as i128);
    let (sec, nsec) = if sec > i32::MAX as i128 {
        (i32::MAX, 999_999_999)
    } else if sec < i32::MIN as i128 {
        (i32::MIN, 0)
    } else {
        (sec as i32, nsec as i32)
    };
    let mut out = [0u8; WIRE_TIMESPEC];
    out[..4].copy_from_slice(&sec.to_le_bytes());
    out[4..].copy_from_slice(&nsec.to_le_bytes());
    out
}

fn normalise(sec: i128, nsec: i128) -> (i128, i128) {
    const NS: i128 = 1_000_000_000;
    (sec + nsec.div_euclid(NS), nsec.rem_euclid(NS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(sec: i64, nsec: i64) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&sec.to_ne_bytes());
        b[8..].copy_from_slice(&nsec.to_ne_bytes());
        b
    }

    fn wire(sec: i64, nsec: i64) -> (i32, i32) {
        let w = timespec_to_wire(&ts(sec, nsec));
        (i32::from_le_bytes(w[..4].try_into().unwrap()), i32::from_le_bytes(w[4..].try_into().unwrap()))
    }

    #[test]
    fn timespec_goes_out_as_eight_bytes() {
        assert_eq!(wire(0, 500_000_000), (0, 500_000_000), "T#500ms");
        assert_eq!(wire(86_399, 999_000_000), (86_399, 999_000_000));
        let w = timespec_to_wire(&ts(2, 250_000_000));
        assert_eq!(w, [2, 0, 0, 0, 0x80, 0xB2, 0xE6, 0x0E]);
        assert_eq!(wire_len(VarKind::Timespec, 16), 8);
        assert_eq!(wire_len(VarKind::Scalar, 8), 8);
        assert_eq!(wire_len(VarKind::String, 127), 127);
    }

    #[test]
    fn negative_and_unnormalised_times() {
        assert_eq!(wire(-1, 0), (-1, 0));
        assert_eq!(wire(1, -1), (0, 999_999_999));
        assert_eq!(wire(0, 2_500_000_000), (2, 500_000_000));
        assert_eq!(wire(-2, 500_000_000), (-2, 500_000_000), "-1.5 s as MatIEC keeps it");
    }

    #[test]
    fn out_of_range_seconds_saturate() {
        assert_eq!(wire(i32::MAX as i64 + 1, 0), (i32::MAX, 999_999_999));
        assert_eq!(wire(i64::MAX, i64::MAX), (i32::MAX, 999_999_999));
        assert_eq!(wire(i32::MIN as i64 - 1, 5), (i32::MIN, 0));
        assert_eq!(wire(i64::MIN, i64::MIN), (i32::MIN, 0));
        assert_eq!(wire(i32::MAX as i64, 0), (i32::MAX, 0));
    }

    #[test]
    fn other_kinds_pass_through() {
        let mut scratch = [0u8; 8];
        let raw = [1u8, 2, 3, 4];
        assert_eq!(to_wire(VarKind::Scalar, &raw, &mut scratch), &raw);
        let raw8 = [9u8; 8];
        assert_eq!(to_wire(VarKind::Timespec, &raw8, &mut scratch), &raw8, "already the wire layout");
        let t = ts(3, 7);
        assert_eq!(to_wire(VarKind::Timespec, &t, &mut scratch), &[3, 0, 0, 0, 7, 0, 0, 0]);
    }
}
