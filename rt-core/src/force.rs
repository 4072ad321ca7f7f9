//! The value codec for `Force` and `SetVar`: a value as a client sends it (native or
//! big-endian, possibly short) turned into the program's native bytes for one variable,
//! from the size and kind the program reported at load. Pure, so it is tested alone.

use shared_abi::debug::{FORCE_VALUE_BYTES, ForcedValue};
use shared_abi::msg::CommandStatus;
use shared_abi::program::VarKind;

/// Turns `value` into the native bytes of variable `var` (`size` bytes of `kind`).
/// `BadVariable` when the variable does not exist (size 0), `BadValue` when the value does
/// not fit it.
pub fn encode(
    var: u32,
    size: u32,
    kind: VarKind,
    value: &[u8],
    big_endian: bool,
) -> Result<ForcedValue, CommandStatus> {
    let size = size as usize;
    if size == 0 {
        return Err(CommandStatus::BadVariable);
    }
    if size > FORCE_VALUE_BYTES {
        return Err(CommandStatus::BadValue);
    }
    let mut forced = ForcedValue { var, len: size as u32, bytes: [0; FORCE_VALUE_BYTES] };
    let out = &mut forced.bytes[..size];
    match kind {
        VarKind::Scalar => {
            if big_endian {
                // The Editor sends integers and reals big-endian at their natural width.
                if value.len() != size {
                    return Err(CommandStatus::BadValue);
                }
                for (o, v) in out.iter_mut().zip(value.iter().rev()) {
                    *o = *v;
                }
            } else {
                if value.len() > size {
                    return Err(CommandStatus::BadValue);
                }
                out[..value.len()].copy_from_slice(value);
            }
        }
        VarKind::Timespec => {
            // 8 bytes: i32 seconds + i32 nanoseconds (the Editor's TIME encoding);
            // 16 bytes: the native {i64, i64} layout.
            if size != 16 {
                return Err(CommandStatus::BadValue);
            }
            let (sec, nsec) = match value.len() {
                8 => {
                    let s: [u8; 4] = value[..4].try_into().map_err(|_| CommandStatus::BadValue)?;
                    let n: [u8; 4] = value[4..].try_into().map_err(|_| CommandStatus::BadValue)?;
                    if big_endian {
                        (i32::from_be_bytes(s) as i64, i32::from_be_bytes(n) as i64)
                    } else {
                        (i32::from_le_bytes(s) as i64, i32::from_le_bytes(n) as i64)
                    }
                }
                16 => {
                    let s: [u8; 8] = value[..8].try_into().map_err(|_| CommandStatus::BadValue)?;
                    let n: [u8; 8] = value[8..].try_into().map_err(|_| CommandStatus::BadValue)?;
                    if big_endian {
                        (i64::from_be_bytes(s), i64::from_be_bytes(n))
                    } else {
                        (i64::from_le_bytes(s), i64::from_le_bytes(n))
                    }
                }
                _ => return Err(CommandStatus::BadValue),
            };
            out[..8].copy_from_slice(&sec.to_ne_bytes());
            out[8..].copy_from_slice(&nsec.to_ne_bytes());
        }
        VarKind::String | VarKind::Opaque => {
            // Never byte-swapped; a short value is zero-padded.
            if value.len() > size {
                return Err(CommandStatus::BadValue);
            }
            out[..value.len()].copy_from_slice(value);
        }
    }
    Ok(forced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(f: &ForcedValue) -> &[u8] {
        f.value()
    }

    #[test]
    fn scalars_big_endian_are_swapped_at_their_width() {
        let f = encode(3, 4, VarKind::Scalar, &12.5f32.to_be_bytes(), true).unwrap();
        assert_eq!((f.var, bytes(&f)), (3, &12.5f32.to_le_bytes()[..]));
        assert_eq!(encode(3, 4, VarKind::Scalar, &[1, 2], true), Err(CommandStatus::BadValue), "not the width");
        assert_eq!(encode(3, 4, VarKind::Scalar, &[0; 5], true), Err(CommandStatus::BadValue));
    }

    #[test]
    fn scalars_native_may_be_short_and_are_zero_padded() {
        let f = encode(0, 2, VarKind::Scalar, &[7], false).unwrap();
        assert_eq!(bytes(&f), [7, 0]);
        assert_eq!(encode(0, 2, VarKind::Scalar, &[1, 2, 3], false), Err(CommandStatus::BadValue));
    }

    #[test]
    fn times_take_the_editors_8_bytes_or_the_native_16() {
        let mut editor = 3i32.to_be_bytes().to_vec();
        editor.extend_from_slice(&500_000_000i32.to_be_bytes());
        let f = encode(5, 16, VarKind::Timespec, &editor, true).unwrap();
        assert_eq!(&bytes(&f)[..8], 3i64.to_ne_bytes());
        assert_eq!(&bytes(&f)[8..], 500_000_000i64.to_ne_bytes());
        let mut native = (-1i64).to_le_bytes().to_vec();
        native.extend_from_slice(&7i64.to_le_bytes());
        let f = encode(5, 16, VarKind::Timespec, &native, false).unwrap();
        assert_eq!((&bytes(&f)[..8], &bytes(&f)[8..]), (&(-1i64).to_ne_bytes()[..], &7i64.to_ne_bytes()[..]));
        assert_eq!(encode(5, 16, VarKind::Timespec, &[0; 12], false), Err(CommandStatus::BadValue));
        assert_eq!(encode(5, 8, VarKind::Timespec, &[0; 8], false), Err(CommandStatus::BadValue), "not a timespec");
    }

    #[test]
    fn strings_are_never_swapped_and_must_fit() {
        let f = encode(6, 127, VarKind::String, b"\x03abc", true).unwrap();
        assert_eq!(&bytes(&f)[..5], b"\x03abc\0");
        assert_eq!(f.len, 127);
        assert_eq!(encode(6, 3, VarKind::String, b"\x03abc", false), Err(CommandStatus::BadValue));
    }

    #[test]
    fn missing_and_oversized_variables_are_refused() {
        assert_eq!(encode(99, 0, VarKind::Opaque, &[1], false), Err(CommandStatus::BadVariable));
        assert_eq!(encode(1, 300, VarKind::Opaque, &[1], false), Err(CommandStatus::BadValue));
    }
}
