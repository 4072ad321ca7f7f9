#!/usr/bin/env python3
"""Reads holding register 0 with pymodbus' client from a given source address.

Usage: read_from.py HOST PORT SOURCE_IP. Prints "value N" and "PASS", or exits 1.
"""
import sys

from pymodbus.client import ModbusTcpClient


def main():
    host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = ModbusTcpClient(host, port=port, source_address=(source, 0), timeout=5, retries=0)
    if not c.connect():
        print("FAIL connect", flush=True)
        sys.exit(1)
    r = c.read_holding_registers(0, count=1)
    c.close()
    if r.isError():
        print(f"FAIL read: {r}", flush=True)
        sys.exit(1)
    print("value", r.registers[0], flush=True)
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
