#!/usr/bin/env python3
"""A stand-in for upstream's OPC-UA server in benches/opcua: a Python asyncua server (what
upstream's plugin runs) exposing the same variables as the runtime's server under load, with
a loop that writes every value once per cycle as upstream's plugin copies PLC values into its
nodes. Upstream's runtime itself cannot be fetched here, so this measures the server stack
it is built on, without its PLC access, user manager or permission callbacks (each of which
only adds work): a generous stand-in.

    opcua-standin.py PORT NS_URI PREFIX VARS CYCLE_MS

Prints "ready" once listening; runs until killed or its standard input closes.
"""

import asyncio
import datetime
import logging
import sys

from asyncua import Server, ua


async def main(port, ns_uri, prefix, count, cycle_ms):
    logging.disable(logging.WARNING)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/standin")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(ns_uri)
    nodes = []
    for k in range(count):
        name = f"{prefix}{k}"
        nodes.append(await server.nodes.objects.add_variable(ua.NodeId(name, idx), name, ua.Variant(k, ua.VariantType.Int32)))
    loop = asyncio.get_running_loop()
    async with server:
        print("ready", flush=True)

        async def sync():
            n = 0
            while True:
                n += 1
                now = datetime.datetime.now(datetime.timezone.utc)
                for k, node in enumerate(nodes):
                    dv = ua.DataValue(ua.Variant(n + k, ua.VariantType.Int32), SourceTimestamp=now, ServerTimestamp=now)
                    await server.write_attribute_value(node.nodeid, dv)
                await asyncio.sleep(cycle_ms / 1000)

        task = asyncio.create_task(sync())
        await loop.run_in_executor(None, sys.stdin.read)
        task.cancel()


if __name__ == "__main__":
    port, ns_uri, prefix, count, cycle_ms = sys.argv[1:6]
    asyncio.run(main(int(port), ns_uri, prefix, int(count), int(cycle_ms)))
