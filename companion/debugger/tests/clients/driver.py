"""Drives the debugger with python-socketio. Same line protocol as driver.js: one JSON
request per line on stdin, one JSON answer per line on stdout; values are encoded and
decoded following the OpenPLC Editor's rules.

It uses the asyncio client: python-socketio's threaded client reads and writes one TLS
socket from two threads, which loses connections over wss at random."""

import asyncio
import json
import struct
import sys

import socketio

NS = "/api/debug"
# Self-signed runtime certificates are accepted, as the Editor does.
sio = socketio.AsyncClient(reconnection=False, ssl_verify=False)
replies = asyncio.Queue()
connected = asyncio.Queue()


@sio.on("debug_response", namespace=NS)
async def on_reply(data):
    await replies.put(data)


@sio.on("connected", namespace=NS)
async def on_connected(data):
    await connected.put(data)


async def connect(url, token):
    auth = {"token": token} if token is not None else None
    try:
        await sio.connect(url, namespaces=[NS], transports=["websocket"], auth=auth, wait_timeout=5)
    except socketio.exceptions.ConnectionError as e:
        return {"ok": False, "error": str(e)}
    try:
        data = await asyncio.wait_for(connected.get(), timeout=5)
    except asyncio.TimeoutError:
        return {"ok": False, "error": "timeout waiting for connected"}
    return {"ok": data.get("status") == "ok"}


async def command(hexstr):
    await sio.emit("debug_command", {"command": hexstr}, namespace=NS)
    try:
        return await asyncio.wait_for(replies.get(), timeout=5)
    except asyncio.TimeoutError:
        return {"success": False, "error": "Request timeout"}


async def pipeline(hexes):
    for h in hexes:
        await sio.emit("debug_command", {"command": h}, namespace=NS)
    got = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while len(got) < len(hexes) and loop.time() < deadline:
        try:
            got.append(await asyncio.wait_for(replies.get(), timeout=0.5))
        except asyncio.TimeoutError:
            pass
    # Linger: a duplicate reply would show up as extras.
    await asyncio.sleep(0.3)
    return {"replies": got, "extra": replies.qsize()}


SIZES = {"BOOL": 1, "SINT": 1, "USINT": 1, "BYTE": 1, "INT": 2, "UINT": 2, "WORD": 2, "DINT": 4, "UDINT": 4,
         "DWORD": 4, "REAL": 4, "TIME": 8, "DATE": 8, "TOD": 8, "LINT": 8, "ULINT": 8, "LWORD": 8, "LREAL": 8,
         "DT": 8, "STRING": 127}


def fmt_time(sec, nsec):
    total = sec * 1_000_000_000 + nsec
    neg = total < 0
    total = abs(total)
    parts = []
    for n, u in ((86_400_000_000_000, "d"), (3_600_000_000_000, "h"), (60_000_000_000, "m"),
                 (1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us"), (1, "ns")):
        q, total = divmod(total, n)
        if q > 0:
            parts.append(f"{q}{u}")
    if not parts:
        return "0s"
    s = "".join(parts[:2])
    return "-" + s if neg else s


def decode(b, off, t):
    if t == "BOOL":
        return "TRUE" if b[off] != 0 else "FALSE"
    fmts = {"SINT": "<b", "USINT": "<B", "BYTE": "<B", "INT": "<h", "UINT": "<H", "WORD": "<H", "DINT": "<i",
            "UDINT": "<I", "DWORD": "<I", "LINT": "<q", "ULINT": "<Q", "LWORD": "<Q", "DT": "<Q"}
    if t in fmts:
        return str(struct.unpack_from(fmts[t], b, off)[0])
    if t == "REAL":
        return "%.6f" % struct.unpack_from("<f", b, off)[0]
    if t == "LREAL":
        return "%.12f" % struct.unpack_from("<d", b, off)[0]
    if t in ("TIME", "DATE", "TOD"):
        s, n = struct.unpack_from("<ii", b, off)
        return fmt_time(s, n)
    if t == "STRING":
        n = min(b[off], 126)
        return '"' + b[off + 1:off + 1 + n].decode("utf-8", "replace") + '"'
    return "???"


async def poll(indices, types):
    req = struct.pack(">BH", 0x44, len(indices)) + b"".join(struct.pack(">H", i) for i in indices)
    reply = await command(" ".join("%02X" % x for x in req))
    if not reply.get("success"):
        return {"success": False, "error": reply.get("error")}
    b = bytes(int(x, 16) for x in reply["data"].split(" "))
    if b[0] != 0x44:
        return {"success": False, "error": "Function code mismatch"}
    if b[1] != 0x7E:
        return {"success": False, "error": "status 0x%x" % b[1]}
    last, tick, size = struct.unpack_from(">HIH", b, 2)
    data = b[10:10 + size]
    values = {}
    off = 0
    for ix, t in zip(indices, types):
        if off >= len(data):
            break
        values[str(ix)] = decode(data, off, t)
        off += SIZES.get(t, 4)
        if ix == last:
            break
    return {"success": True, "tick": tick, "lastIndex": last, "size": size, "consumed": off, "values": values}


def encode(t, value):
    ints = {"SINT": ">b", "USINT": ">B", "BYTE": ">B", "INT": ">h", "UINT": ">H", "WORD": ">H", "DINT": ">i",
            "UDINT": ">I", "DWORD": ">I", "LINT": ">q", "ULINT": ">Q", "LWORD": ">Q"}
    if t == "BOOL":
        return bytes([1 if str(value).upper() in ("TRUE", "1") else 0])
    if t == "REAL":
        return struct.pack(">f", float(value))
    if t == "LREAL":
        return struct.pack(">d", float(value))
    if t == "STRING":
        return bytes([len(value)]) + value.encode("ascii")
    return struct.pack(ints[t], int(value))


async def set_var(index, force, value=b""):
    length = len(value) if force else 1
    req = struct.pack(">BHBH", 0x42, index, 1 if force else 0, length) + (value if force else b"\x00")
    reply = await command(" ".join("%02X" % x for x in req))
    if not reply.get("success"):
        return {"success": False, "error": reply.get("error")}
    b = bytes(int(x, 16) for x in reply["data"].split(" "))
    if b[0] == 0x42 and b[1] == 0x7E:
        return {"success": True}
    return {"success": False, "error": "status 0x%x" % b[1]}


async def handle(req):
    op = req["op"]
    if op == "connect":
        return await connect(req["url"], req.get("token"))
    if op == "cmd":
        return {"reply": await command(req["hex"])}
    if op == "pipeline":
        return await pipeline(req["hexes"])
    if op == "md5":
        reply = await command("45 DE AD 00 00")
        if not reply.get("success"):
            return {"success": False, "error": reply.get("error")}
        b = bytes(int(x, 16) for x in reply["data"].split(" "))
        if b[0] != 0x45 or b[1] != 0x7E:
            return {"success": False, "error": "status 0x%x" % b[1]}
        return {"success": True, "md5": b[2:].decode("utf-8").strip()}
    if op == "poll":
        return await poll(req["indices"], req["types"])
    if op == "force":
        return await set_var(req["index"], True, encode(req["type"], req["value"]))
    if op == "release":
        return await set_var(req["index"], False)
    if op == "close":
        if sio.connected:
            await sio.disconnect()
        return {"ok": True}
    return {"error": "unknown op " + op}


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        req = json.loads(line)
        print(json.dumps(await handle(req)), flush=True)
        if req["op"] == "close":
            break
    if sio.connected:
        await sio.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
