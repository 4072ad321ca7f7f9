//! Strict decoding of Modbus request PDUs and encoding of replies (Modbus Application
//! Protocol v1.1b3, §6 and §7). Pure functions over byte slices: no I/O, no allocation
//! beyond the caller's reply buffer, and every length checked before it is used.
//!
//! The checks follow the specification's order: an unsupported function is exception 1;
//! a wrong quantity, a byte count that disagrees with it, a PDU of the wrong length, or a
//! coil value other than 0x0000/0xFF00 is exception 3; the address range (checked later,
//! against the map) is exception 2.

/// Modbus exception codes we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exception {
    IllegalFunction = 0x01,
    IllegalDataAddress = 0x02,
    IllegalDataValue = 0x03,
    ServerDeviceFailure = 0x04,
    ServerDeviceBusy = 0x06,
    GatewayTargetFailedToRespond = 0x0B,
}

/// Limits of §6: most items one request may carry.
pub const MAX_READ_BITS: u16 = 2000;
pub const MAX_READ_REGISTERS: u16 = 125;
pub const MAX_WRITE_BITS: u16 = 1968;
pub const MAX_WRITE_REGISTERS: u16 = 123;
pub const MAX_RW_WRITE_REGISTERS: u16 = 121;
/// Largest PDU (function code included).
pub const MAX_PDU: usize = 253;

/// A decoded request. Payloads borrow the received frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    ReadCoils {
        addr: u16,
        qty: u16,
    },
    ReadDiscreteInputs {
        addr: u16,
        qty: u16,
    },
    ReadHoldingRegisters {
        addr: u16,
        qty: u16,
    },
    ReadInputRegisters {
        addr: u16,
        qty: u16,
    },
    WriteSingleCoil {
        addr: u16,
        value: bool,
    },
    WriteSingleRegister {
        addr: u16,
        value: u16,
    },
    /// `bits`: packed, least significant bit first, exactly `ceil(qty/8)` bytes.
    WriteMultipleCoils {
        addr: u16,
        qty: u16,
        bits: &'a [u8],
    },
    /// `data`: big-endian registers, exactly `2*qty` bytes.
    WriteMultipleRegisters {
        addr: u16,
        qty: u16,
        data: &'a [u8],
    },
    ReadWriteMultipleRegisters {
        read_addr: u16,
        read_qty: u16,
        write_addr: u16,
        write_qty: u16,
        data: &'a [u8],
    },
}

impl Request<'_> {
    pub fn function_code(&self) -> u8 {
        match self {
            Request::ReadCoils { .. } => 0x01,
            Request::ReadDiscreteInputs { .. } => 0x02,
            Request::ReadHoldingRegisters { .. } => 0x03,
            Request::ReadInputRegisters { .. } => 0x04,
            Request::WriteSingleCoil { .. } => 0x05,
            Request::WriteSingleRegister { .. } => 0x06,
            Request::WriteMultipleCoils { .. } => 0x0F,
            Request::WriteMultipleRegisters { .. } => 0x10,
            Request::ReadWriteMultipleRegisters { .. } => 0x17,
        }
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Register `i` of a big-endian register payload.
pub fn register(data: &[u8], i: usize) -> u16 {
    be16(data, 2 * i)
}

/// Bit `i` of a packed coil payload.
pub fn bit(bits: &[u8], i: usize) -> bool {
    bits[i / 8] >> (i % 8) & 1 != 0
}

/// Decodes a request PDU (`pdu[0]` is the function code; `pdu` is not empty).
pub fn parse(pdu: &[u8]) -> Result<Request<'_>, Exception> {
    use Exception::IllegalDataValue as Bad;
    let fc = pdu[0];
    let fixed = |n: usize| if pdu.len() == n { Ok(()) } else { Err(Bad) };
    let qty_in = |q: u16, max: u16| if q >= 1 && q <= max { Ok(q) } else { Err(Bad) };
    match fc {
        0x01..=0x04 => {
            fixed(5)?;
            let (addr, qty) = (be16(pdu, 1), be16(pdu, 3));
            Ok(match fc {
                0x01 => Request::ReadCoils { addr, qty: qty_in(qty, MAX_READ_BITS)? },
                0x02 => Request::ReadDiscreteInputs { addr, qty: qty_in(qty, MAX_READ_BITS)? },
                0x03 => Request::ReadHoldingRegisters { addr, qty: qty_in(qty, MAX_READ_REGISTERS)? },
                _ => Request::ReadInputRegisters { addr, qty: qty_in(qty, MAX_READ_REGISTERS)? },
            })
        }
        0x05 => {
            fixed(5)?;
            let value = match be16(pdu, 3) {
                0xFF00 => true,
                0x0000 => false,
                _ => return Err(Bad),
            };
            Ok(Request::WriteSingleCoil { addr: be16(pdu, 1), value })
        }
        0x06 => {
            fixed(5)?;
            Ok(Request::WriteSingleRegister { addr: be16(pdu, 1), value: be16(pdu, 3) })
        }
        0x0F => {
            if pdu.len() < 6 {
                return Err(Bad);
            }
            let qty = qty_in(be16(pdu, 3), MAX_WRITE_BITS)?;
            let count = pdu[5] as usize;
            if count != (qty as usize).div_ceil(8) || pdu.len() != 6 + count {
                return Err(Bad);
            }
            Ok(Request::WriteMultipleCoils { addr: be16(pdu, 1), qty, bits: &pdu[6..] })
        }
        0x10 => {
            if pdu.len() < 6 {
                return Err(Bad);
            }
            let qty = qty_in(be16(pdu, 3), MAX_WRITE_REGISTERS)?;
            let count = pdu[5] as usize;
            if count != 2 * qty as usize || pdu.len() != 6 + count {
                return Err(Bad);
            }
            Ok(Request::WriteMultipleRegisters { addr: be16(pdu, 1), qty, data: &pdu[6..] })
        }
        0x17 => {
            if pdu.len() < 10 {
                return Err(Bad);
            }
            let read_qty = qty_in(be16(pdu, 3), MAX_READ_REGISTERS)?;
            let write_qty = qty_in(be16(pdu, 7), MAX_RW_WRITE_REGISTERS)?;
            let count = pdu[9] as usize;
            if count != 2 * write_qty as usize || pdu.len() != 10 + count {
                return Err(Bad);
            }
            Ok(Request::ReadWriteMultipleRegisters {
                read_addr: be16(pdu, 1),
                read_qty,
                write_addr: be16(pdu, 5),
                write_qty,
                data: &pdu[10..],
            })
        }
        _ => Err(Exception::IllegalFunction),
    }
}

/// Whether `[addr, addr + qty)` lies inside a table of `size` entries.
pub fn in_range(addr: u16, qty: u16, size: u32) -> bool {
    addr as u32 + qty as u32 <= size
}

/// Appends an exception reply PDU.
pub fn encode_exception(out: &mut Vec<u8>, fc: u8, e: Exception) {
    out.push(fc | 0x80);
    out.push(e as u8);
}

/// Appends a bit-read reply: function, byte count, packed bits (LSB first).
pub fn encode_bits(out: &mut Vec<u8>, fc: u8, qty: u16, mut get: impl FnMut(u32) -> bool) {
    let count = (qty as usize).div_ceil(8);
    out.push(fc);
    out.push(count as u8);
    let start = out.len();
    out.resize(start + count, 0);
    for i in 0..qty as u32 {
        if get(i) {
            out[start + (i / 8) as usize] |= 1 << (i % 8);
        }
    }
}

/// Appends a register-read reply: function, byte count, big-endian registers.
pub fn encode_registers(out: &mut Vec<u8>, fc: u8, qty: u16, mut get: impl FnMut(u32) -> u16) {
    out.push(fc);
    out.push((2 * qty) as u8);
    for i in 0..qty as u32 {
        out.extend_from_slice(&get(i).to_be_bytes());
    }
}

/// Appends the reply to a write: function, then two big-endian words (address and
/// value for FC 5/6, address and quantity for FC 15/16).
pub fn encode_echo(out: &mut Vec<u8>, fc: u8, a: u16, b: u16) {
    out.push(fc);
    out.extend_from_slice(&a.to_be_bytes());
    out.extend_from_slice(&b.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use Exception::*;

    #[test]
    fn reads_decode_and_quantities_are_checked() {
        assert_eq!(parse(&[1, 0, 5, 0, 10]), Ok(Request::ReadCoils { addr: 5, qty: 10 }));
        assert_eq!(parse(&[2, 0, 0, 0x07, 0xD0]), Ok(Request::ReadDiscreteInputs { addr: 0, qty: 2000 }));
        assert_eq!(parse(&[2, 0, 0, 0x07, 0xD1]), Err(IllegalDataValue));
        assert_eq!(parse(&[3, 0, 0, 0, 125]), Ok(Request::ReadHoldingRegisters { addr: 0, qty: 125 }));
        assert_eq!(parse(&[3, 0, 0, 0, 126]), Err(IllegalDataValue));
        assert_eq!(parse(&[4, 0, 0, 0, 0]), Err(IllegalDataValue));
        assert_eq!(parse(&[3, 0, 0, 0]), Err(IllegalDataValue), "short PDU");
        assert_eq!(parse(&[3, 0, 0, 0, 1, 9]), Err(IllegalDataValue), "long PDU");
    }

    #[test]
    fn single_writes() {
        assert_eq!(parse(&[5, 0, 3, 0xFF, 0]), Ok(Request::WriteSingleCoil { addr: 3, value: true }));
        assert_eq!(parse(&[5, 0, 3, 0, 0]), Ok(Request::WriteSingleCoil { addr: 3, value: false }));
        assert_eq!(parse(&[5, 0, 3, 0, 1]), Err(IllegalDataValue));
        assert_eq!(
            parse(&[6, 0x12, 0x34, 0xAB, 0xCD]),
            Ok(Request::WriteSingleRegister { addr: 0x1234, value: 0xABCD })
        );
    }

    #[test]
    fn multiple_writes_check_byte_counts() {
        let r = parse(&[0x0F, 0, 1, 0, 10, 2, 0xFF, 0x03]).unwrap();
        assert_eq!(r, Request::WriteMultipleCoils { addr: 1, qty: 10, bits: &[0xFF, 0x03] });
        assert_eq!(parse(&[0x0F, 0, 1, 0, 10, 1, 0xFF]), Err(IllegalDataValue), "count != ceil(qty/8)");
        assert_eq!(parse(&[0x0F, 0, 1, 0, 10, 2, 0xFF]), Err(IllegalDataValue), "fewer bytes than counted");
        assert_eq!(parse(&[0x0F, 0, 1, 0x07, 0xB1, 0]), Err(IllegalDataValue), "1969 coils");
        let r = parse(&[0x10, 0, 2, 0, 2, 4, 0, 1, 0, 2]).unwrap();
        assert_eq!(r, Request::WriteMultipleRegisters { addr: 2, qty: 2, data: &[0, 1, 0, 2] });
        assert_eq!(parse(&[0x10, 0, 2, 0, 2, 3, 0, 1, 0]), Err(IllegalDataValue));
        assert_eq!(parse(&[0x10, 0, 2, 0x80, 0x00, 0]), Err(IllegalDataValue), "quantity past 32767 never overflows");
        assert_eq!(parse(&[0x10, 0, 0, 0, 124, 248]), Err(IllegalDataValue));
        assert_eq!(parse(&[0x10, 0, 0]), Err(IllegalDataValue));
    }

    #[test]
    fn read_write_multiple() {
        let r = parse(&[0x17, 0, 1, 0, 2, 0, 3, 0, 1, 2, 0xAA, 0xBB]).unwrap();
        assert_eq!(
            r,
            Request::ReadWriteMultipleRegisters {
                read_addr: 1,
                read_qty: 2,
                write_addr: 3,
                write_qty: 1,
                data: &[0xAA, 0xBB]
            }
        );
        assert_eq!(parse(&[0x17, 0, 1, 0, 2, 0, 3, 0, 122, 244]), Err(IllegalDataValue));
    }

    #[test]
    fn unknown_functions_are_illegal() {
        for fc in [0u8, 7, 8, 0x11, 0x16, 0x2B, 0x41, 0x80, 0xFF] {
            assert_eq!(parse(&[fc, 0, 0, 0, 1]), Err(IllegalFunction), "fc {fc}");
        }
    }

    #[test]
    fn encoders() {
        let mut out = Vec::new();
        encode_bits(&mut out, 1, 10, |i| i % 3 == 0);
        assert_eq!(out, [1, 2, 0b0100_1001, 0b10]);
        out.clear();
        encode_registers(&mut out, 3, 2, |i| 0x0102 * (i as u16 + 1));
        assert_eq!(out, [3, 4, 1, 2, 2, 4]);
        out.clear();
        encode_exception(&mut out, 3, IllegalDataAddress);
        assert_eq!(out, [0x83, 2]);
        assert!(in_range(0, 10, 10) && !in_range(1, 10, 10) && !in_range(0xFFFF, 2, 65_536));
        assert!(bit(&[0b10], 1) && !bit(&[0b10], 0));
        assert_eq!(register(&[0, 0, 0x12, 0x34], 1), 0x1234);
    }

    #[test]
    fn never_panics_on_any_short_frame() {
        // Every PDU of up to 12 bytes over a small alphabet: parse must answer, not panic.
        let alphabet = [0u8, 1, 2, 0x7B, 0x7D, 0x80, 0xFF];
        let mut pdu = Vec::new();
        fn walk(pdu: &mut Vec<u8>, alphabet: &[u8], depth: usize) {
            if !pdu.is_empty() {
                let _ = parse(pdu);
            }
            if depth == 0 {
                return;
            }
            for &b in alphabet {
                pdu.push(b);
                walk(pdu, alphabet, depth - 1);
                pdu.pop();
            }
        }
        for fc in [1u8, 3, 5, 6, 0x0F, 0x10, 0x17] {
            pdu.clear();
            pdu.push(fc);
            walk(&mut pdu, &alphabet, 6);
        }
    }
}
