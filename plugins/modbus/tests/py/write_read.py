#!/usr/bin/env python3
"""Writes one holding register with pymodbus' client, then reads it back.

Usage: write_read.py HOST PORT REGISTER VALUE. Prints "connected" once connected (the write
follows at once), then "read N" and "PASS" when N == VALUE, or exits 1.
"""
import sys

from pymodbus.client import ModbusTcpClient


def main():
    host, port, reg, value = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    c = ModbusTcpClient(host, port=port, timeout=30, retries=0)
    if not c.connect():
        print("FAIL connect", flush=True)
        sys.exit(1)
    print("connected", flush=True)
    w = c.write_register(reg, value)
    if w.isError():
        print(f"FAIL write: {w}", flush=True)
        sys.exit(1)
    r = c.read_holding_registers(reg, count=1)
    c.close()
    if r.isError():
        print(f"FAIL read: {r}", flush=True)
        sys.exit(1)
    print("read", r.registers[0], flush=True)
    if r.registers[0] != value:
        print("FAIL read back a different value", flush=True)
        sys.exit(1)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
