"""One OPC-UA session against the runtime's server, with Python asyncua (a client no one
here wrote): what an HMI does first. Prints one JSON object; the Rust test decides what is
right (companion/tests/opcua_e2e.rs).

    opcua_session.py URL SPEC_JSON

SPEC: {"ns": namespace URI, "nodes": [node ids to read in one request], "counter": node id,
       "text": node id of a STRING, "interval_ms": publishing interval, "seconds": how long
       to subscribe, "engineer", "operator", "viewer": [user, password] each}

Steps: browse Objects (our namespace, recursively, with data types), read every node in
one Read, subscribe to the counter, write the counter as engineer / operator / viewer /
anonymous / a wrong password and with a wrong type, write a too-long text, read the
counter back.
"""

import asyncio
import datetime
import json
import sys

from asyncua import Client, ua


def show(v):
    if isinstance(v, datetime.datetime):
        return v.isoformat()
    if isinstance(v, list):
        return [show(x) for x in v]
    return v


def client(url, user=None, password=None):
    c = Client(url, timeout=10)
    c.application_uri = "urn:openplc:test:e2e-client"
    if user:
        c.set_user(user)
        c.set_password(password)
    return c


async def browse(c, ns):
    found = {}

    async def walk(node, prefix):
        for child in await node.get_children():
            name = await child.read_browse_name()
            if name.NamespaceIndex != ns:
                continue
            path = f"{prefix}{name.Name}"
            cls = await child.read_node_class()
            entry = {"class": cls.name, "node_id": child.nodeid.to_string()}
            if cls == ua.NodeClass.Variable:
                entry["data_type"] = (await child.read_data_type()).to_string()
                entry["value_rank"] = await child.read_value_rank()
            found[path] = entry
            if cls == ua.NodeClass.Object:
                await walk(child, path + "/")

    await walk(c.nodes.objects, "")
    return found


async def read(c, ns, nodes):
    dvs = await c.read_attributes([c.get_node(f"ns={ns};s={n}") for n in nodes])
    out = {}
    for n, dv in zip(nodes, dvs):
        if dv.StatusCode_.is_good():
            out[n] = [dv.Value.VariantType.name, show(dv.Value.Value)]
        else:
            out[n] = ["error", dv.StatusCode_.name]
    return out


class Changes:
    def __init__(self):
        self.seen = []

    def datachange_notification(self, node, val, data):
        self.seen.append([asyncio.get_running_loop().time(), show(val)])


async def write(url, ns_uri, who, node, variant):
    user, password = who if who else (None, None)
    try:
        async with client(url, user, password) as c:
            ns = await c.get_namespace_index(ns_uri)
            try:
                await c.get_node(f"ns={ns};s={node}").write_value(ua.DataValue(variant))
                return "Good"
            except ua.UaStatusCodeError as e:
                return type(e).__name__
    except Exception as e:  # a refused session
        return f"session refused: {type(e).__name__}: {e}"


async def main(url, spec):
    out = {}
    async with client(url) as c:
        ns = await c.get_namespace_index(spec["ns"])
        out["browse"] = await browse(c, ns)
        out["read"] = await read(c, ns, spec["nodes"])
        changes = Changes()
        sub = await c.create_subscription(spec["interval_ms"], changes)
        await sub.subscribe_data_change(c.get_node(f"ns={ns};s={spec['counter']}"))
        await asyncio.sleep(spec["seconds"])
        await sub.delete()
        out["notifications"] = changes.seen
    counter, text = spec["counter"], spec["text"]
    u16 = lambda v: ua.Variant(v, ua.VariantType.UInt16)
    out["writes"] = {
        "engineer": await write(url, spec["ns"], spec["engineer"], counter, u16(40000)),
        "operator": await write(url, spec["ns"], spec["operator"], counter, u16(7)),
        "viewer": await write(url, spec["ns"], spec["viewer"], counter, u16(7)),
        "wrong_password": await write(url, spec["ns"], [spec["engineer"][0], "wrong"], counter, u16(7)),
        "anonymous": await write(url, spec["ns"], None, counter, u16(7)),
        "wrong_type": await write(url, spec["ns"], spec["engineer"], counter, ua.Variant(5, ua.VariantType.Int32)),
        "too_long": await write(url, spec["ns"], spec["engineer"], text, ua.Variant("x" * 127, ua.VariantType.String)),
    }
    async with client(url) as c:
        ns = await c.get_namespace_index(spec["ns"])
        out["read_back"] = await read(c, ns, [counter, text])
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))))
