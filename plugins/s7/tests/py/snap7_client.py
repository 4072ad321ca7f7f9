#!/usr/bin/env python3
"""Drives the S7 server with python-snap7 2.x (the Snap7 C library in its wheel) and
prints what it saw as one JSON object. The Rust test that starts the server sets the
image before and checks it after.

Usage: snap7_client.py PORT RACK SLOT COMMAND
  tour   connect, identity, reads and writes of every area, multi-item, errors
  state  connect and print the CPU state only
  watch  read DB2.DBW0 until it changes (the image is being updated meanwhile)
  refuse try to connect (expected to fail)
"""
import json
import sys
import time
from ctypes import c_uint8, cast, POINTER

import snap7
import snap7.error
from snap7.type import Area, WordLen, S7DataItem

port, rack, slot, command = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {}


def error_of(fn):
    try:
        fn()
    except Exception as e:  # snap7 raises RuntimeError with the library's text (bytes)
        text = e.args[0] if e.args else e
        return text.decode() if isinstance(text, bytes) else str(text)
    return None


c = snap7.client.Client()
if command == "refuse":
    out["error"] = error_of(lambda: c.connect("127.0.0.1", rack, slot, port))
    print(json.dumps(out))
    sys.exit(0)

c.connect("127.0.0.1", rack, slot, port)
out["connected"] = c.get_connected()
out["pdu"] = c.get_pdu_length()

if command == "state":
    out["state"] = c.get_cpu_state()
elif command == "watch":
    first = c.db_read(2, 0, 2)
    deadline = time.time() + 10
    changed = None
    while time.time() < deadline:
        now = c.db_read(2, 0, 2)
        if now != first:
            changed = [int.from_bytes(first, "big"), int.from_bytes(now, "big")]
            break
        time.sleep(0.005)
    out["changed"] = changed
elif command == "tour":
    info = c.get_cpu_info()
    out["cpu_info"] = {k: getattr(info, k).decode() for k in ("ModuleTypeName", "SerialNumber", "ASName", "Copyright", "ModuleName")}
    order = c.get_order_code()
    out["order_code"] = order.OrderCode.decode().strip()
    out["version"] = [order.V1, order.V2, order.V3]
    out["cp_pdu"] = c.get_cp_info().MaxPduLength
    out["state"] = c.get_cpu_state()
    # Data blocks: DB2 is int_memory from %MW0, DB3 dint_output, DB1 bool_output.
    out["db2"] = list(c.db_read(2, 0, 6))
    out["db3"] = list(c.db_read(3, 0, 4))
    c.db_write(2, 6, bytearray([0x12, 0x34, 0x56]))
    c.db_write(1, 0, bytearray([0b10100101]))
    # A block larger than one PDU: snap7 splits it into several requests.
    out["db4_len"] = len(c.db_read(4, 0, 1000))
    # PE, PA, MK.
    out["pe"] = list(c.read_area(Area.PE, 0, 0, 2))
    out["pa_before"] = list(c.read_area(Area.PA, 0, 0, 1))
    c.write_area(Area.PA, 0, 1, bytearray([0xF0]))
    out["mk"] = list(c.read_area(Area.MK, 0, 0, 4))
    c.write_area(Area.MK, 0, 4, bytearray([0xCA, 0xFE]))
    # Bits, through snap7's multi-var calls with the BIT word length.
    def bit_item(area, db, byte, bit, buf):
        it = S7DataItem()
        it.Area, it.WordLen, it.DBNumber = area, WordLen.Bit, db
        it.Start, it.Amount = byte * 8 + bit, 1
        it.pData = cast(buf, POINTER(c_uint8))
        return it
    one = (c_uint8 * 1)(1)
    c.write_multi_vars([bit_item(Area.DB, 1, 1, 6, one), bit_item(Area.PA, 0, 2, 3, one)])
    # Multi-item read: good items, a missing block, a range past a block's end.
    bufs = [(c_uint8 * 4)() for _ in range(5)]
    items = (S7DataItem * 5)()
    specs = [(Area.DB, 2, 0, 2, WordLen.Byte), (Area.PE, 0, 0, 1, WordLen.Bit), (Area.MK, 0, 0, 2, WordLen.Byte),
             (Area.DB, 99, 0, 1, WordLen.Byte), (Area.DB, 3, 6, 4, WordLen.Byte)]
    for it, b, (area, db, start, amount, wl) in zip(items, bufs, specs):
        it.Area, it.WordLen, it.DBNumber, it.Start, it.Amount = area, wl, db, start, amount
        it.pData = cast(b, POINTER(c_uint8))
    c.read_multi_vars(items)
    out["multi"] = [{"result": it.Result, "data": list(b)[: it.Amount]} for it, b in zip(items, bufs)]
    bit_buf = (c_uint8 * 1)()
    c.read_multi_vars((S7DataItem * 1)(bit_item(Area.DB, 1, 0, 2, bit_buf)))
    out["bit_db1_0_2"] = bit_buf[0]
    # What a client sees past a mapping, on a missing block, writing an input, stopping the PLC.
    out["err_past_end"] = error_of(lambda: c.db_read(3, 6, 4))
    out["err_no_db"] = error_of(lambda: c.db_read(99, 0, 1))
    out["err_write_input"] = error_of(lambda: c.write_area(Area.PE, 0, 0, bytearray([1])))
    # plc_stop returns snap7's code rather than raising.
    out["err_stop"] = snap7.error.error_text(c.plc_stop(), context="client").decode()
    out["still_connected"] = c.get_connected() and len(c.db_read(2, 0, 2)) == 2

c.disconnect()
print(json.dumps(out))
