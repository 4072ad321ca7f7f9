"""A remote OPC-UA server (Python asyncua) for the client tests.

usage: ua_server.py PORT [--standby]
Prints "ready" once listening (with --standby: "initialized" once its address space is
built, then it waits for a "listen" line before it listens: a restart of the remote server
without the seconds asyncua takes to initialise), then answers stdin commands one line each:
  set NODE TYPE JSON   -> "ok"
  get NODE             -> JSON value
"""

import asyncio
import json
import logging
import sys

from asyncua import Server, ua

NODES = {"Level": ua.VariantType.Int16, "Raw": ua.VariantType.UInt16, "Setpoint": ua.VariantType.Int32,
         "Lamp": ua.VariantType.Boolean, "Ratio": ua.VariantType.Double}


async def main(port, standby):
    logging.disable(logging.WARNING)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/test/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace("urn:test:remote")
    nodes = {}
    for name, kind in NODES.items():
        default = False if kind == ua.VariantType.Boolean else 0
        node = await server.nodes.objects.add_variable(ua.NodeId(name, idx), name, ua.Variant(default, kind))
        await node.set_writable()
        nodes[name] = node
    loop = asyncio.get_running_loop()
    if standby:
        print("initialized", flush=True)
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() != "listen":
            pass
    async with server:
        print("ready", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            parts = line.split(maxsplit=3)
            if parts[0] == "set":
                _, name, kind, value = parts
                await nodes[name].write_value(ua.Variant(json.loads(value), getattr(ua.VariantType, kind)))
                print("ok", flush=True)
            elif parts[0] == "get":
                print(json.dumps(await nodes[parts[1]].read_value()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), "--standby" in sys.argv[2:]))
