#!/usr/bin/env python3
"""Drives our Modbus server with pymodbus' client through every table.

Expects the test program running (%QW0 = 2 * %IW0, %QX0.0 = %IX0.0, %MW0 counts scans)
with %IW0 = 21 and %IX0.0 = 1 already set, and the Editor's default map plus 64 %MX bits.
Prints "ok <check>" per check and "PASS" at the end; exits 1 at the first failure.
"""
import sys
import time

from pymodbus.client import ModbusTcpClient

HR_MW, HR_MD, HR_ML, COIL_MX = 1024, 2048, 4096, 8192


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = ModbusTcpClient(host, port=port, timeout=5, retries=0)
    if not c.connect():
        fail("connect")

    def ok(name, cond, detail=""):
        if not cond:
            fail(f"{name} {detail}")
        print("ok", name, flush=True)

    def regs(addr, n=1):
        r = c.read_holding_registers(addr, count=n)
        if r.isError():
            fail(f"read HR {addr}: {r}")
        return r.registers

    def coils(addr, n=1):
        r = c.read_coils(addr, count=n)
        if r.isError():
            fail(f"read coils {addr}: {r}")
        return r.bits[:n]

    def no_error(r, what):
        if r.isError():
            fail(f"{what}: {r}")

    ir = c.read_input_registers(0, count=2)
    ok("input register %IW0", not ir.isError() and ir.registers[0] == 21, str(ir))
    di = c.read_discrete_inputs(0, count=8)
    ok("discrete input %IX0.0", not di.isError() and di.bits[0] is True, str(di))
    ok("holding %QW0 follows the program (2 * %IW0)", regs(0) == [42], str(regs(0)))
    ok("coil %QX0.0 follows the program (= %IX0.0)", coils(0) == [True])

    a = regs(HR_MW)[0]
    time.sleep(0.05)
    b = regs(HR_MW)[0]
    ok("%MW0 counts scans", a != b, f"{a} {b}")

    no_error(c.write_register(HR_MW + 5, 1234), "FC6 %MW5")
    ok("FC6 %MW5 read back", regs(HR_MW + 5) == [1234])
    no_error(c.write_registers(3, [7, 8, 9]), "FC16 %QW3..5")
    ok("FC16 %QW3..5 read back", regs(3, 3) == [7, 8, 9])

    no_error(c.write_coil(5, True), "FC5 %QX0.5")
    ok("FC5 %QX0.5 read back", coils(5) == [True])
    pattern = [i % 3 == 0 for i in range(16)]
    no_error(c.write_coils(16, pattern), "FC15 %QX2.0..%QX3.7")
    ok("FC15 %QX2.0..%QX3.7 read back", coils(16, 16) == pattern)

    no_error(c.write_coil(COIL_MX + 3, True), "FC5 %MX0.3")
    ok("FC5 %MX0.3 read back", coils(COIL_MX + 3) == [True])
    mx = [True, False, True, True, False, False, True, False]
    no_error(c.write_coils(COIL_MX + 8, mx), "FC15 %MX1.*")
    ok("FC15 %MX1.* read back", coils(COIL_MX + 8, 8) == mx)

    md3 = HR_MD + 2 * 3
    words = c.convert_to_registers(0x12345678, c.DATATYPE.UINT32, word_order="big")
    no_error(c.write_registers(md3, words), "FC16 %MD3")
    back = c.convert_from_registers(regs(md3, 2), c.DATATYPE.UINT32, word_order="big")
    ok("FC16 %MD3 read back as a big-endian UINT32", back == 0x12345678, hex(back))
    no_error(c.write_register(md3 + 1, 0xAAAA), "FC6 low word of %MD3")
    ok("partial %MD3 write keeps the high word", regs(md3, 2) == [0x1234, 0xAAAA], str(regs(md3, 2)))

    ml2 = HR_ML + 4 * 2
    words = c.convert_to_registers(0x1122334455667788, c.DATATYPE.UINT64, word_order="big")
    no_error(c.write_registers(ml2, words), "FC16 %ML2")
    back = c.convert_from_registers(regs(ml2, 4), c.DATATYPE.UINT64, word_order="big")
    ok("FC16 %ML2 read back as a big-endian UINT64", back == 0x1122334455667788, hex(back))

    r = c.readwrite_registers(read_address=HR_MW + 16, read_count=3, write_address=HR_MW + 16, values=[1, 2, 3])
    ok("FC23 reads what it wrote", not r.isError() and r.registers == [1, 2, 3], str(r))

    for what, r in [
        ("HR past the end", c.read_holding_registers(8191, count=2)),
        ("coils past %MX7.7", c.read_coils(COIL_MX + 64, count=1)),
        ("IR past %IW1023", c.read_input_registers(1024, count=1)),
        ("DI past %IX1023.7", c.read_discrete_inputs(8191, count=2)),
        ("write HR past the end", c.write_register(8192, 1)),
    ]:
        ok(f"exception 2 for {what}", r.isError() and getattr(r, "exception_code", None) == 2, str(r))

    c.close()
    print("PASS", flush=True)


def fail(msg):
    print("FAIL", msg, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
