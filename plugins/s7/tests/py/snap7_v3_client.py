#!/usr/bin/env python3
"""The same server through python-snap7 3.x, a pure-Python S7 implementation (run with
its folder on PYTHONPATH): identity, a DB write and read back, an MK read, and the item
errors it names. Prints one JSON object. Usage: snap7_v3_client.py PORT"""
import json
import sys

import snap7

port = int(sys.argv[1])
assert snap7.__file__ and "py-snap7-3" in snap7.__file__, snap7.__file__
c = snap7.Client()
c.connect("127.0.0.1", 0, 2, port)
out = {"pdu": c.get_pdu_length()}
info = c.get_cpu_info()
out["as_name"] = info.ASName.decode()
out["module_type"] = info.ModuleTypeName.decode()
c.db_write(2, 8, bytearray([0xAB, 0xCD]))
out["db2"] = list(c.db_read(2, 0, 10))
out["mk"] = list(c.mb_read(0, 4))
for key, fn in (("err_past_end", lambda: c.db_read(3, 6, 4)), ("err_no_db", lambda: c.db_read(99, 0, 1))):
    try:
        fn()
        out[key] = None
    except Exception as e:
        out[key] = str(e)
c.disconnect()
print(json.dumps(out))
