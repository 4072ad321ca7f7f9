"""Drives the OPC-UA server with Python asyncua (a client no one here wrote).

Each subcommand prints one JSON object on stdout; the Rust test decides what is right.

  certs DIR                      make two client certificates (trusted/, stranger/)
  read URL NS NODE...            values as [VariantType, value] (anonymous)
  browse URL NS                  the browse names under Objects in our namespace, recursively
  subscribe URL NS NODE SECONDS  data-change notifications of NODE for SECONDS
  write URL NS USER PASS NODE TYPE JSON   write (USER "-" = anonymous); status name
  secure URL NS JSON             secure channels, one after the other in this process: JSON is a
                                 list of [CERTDIR, USER, PASS, NODE, POLICY, MODE]; a list of results
"""

import asyncio
import datetime
import json
import sys

from asyncua import Client, ua

APP_URI = "urn:openplc:test:client"


def show(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.isoformat()
    if isinstance(v, list):
        return [show(x) for x in v]
    if isinstance(v, float):
        return repr(v)
    return v


def make_certs(directory):
    import os
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    for who in ("trusted", "stranger"):
        d = os.path.join(directory, who)
        os.makedirs(d, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test client {who}")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(APP_URI), x509.DNSName("localhost")]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=True, key_encipherment=True,
                    data_encipherment=True, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        with open(os.path.join(d, "cert.der"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.DER))
        with open(os.path.join(d, "cert.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(os.path.join(d, "key.pem"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))
    return {"ok": True}


def client(url, user=None, password=None):
    c = Client(url, timeout=10)
    c.application_uri = APP_URI
    if user and user != "-":
        c.set_user(user)
        c.set_password(password)
    return c


async def ns_index(c, uri):
    return await c.get_namespace_index(uri)


async def read(url, uri, nodes):
    """All NODEs in one Read request (one scan)."""
    async with client(url) as c:
        ns = await ns_index(c, uri)
        dvs = await c.read_attributes([c.get_node(f"ns={ns};s={n}") for n in nodes])
        out = {}
        for n, dv in zip(nodes, dvs):
            if dv.StatusCode_.is_good():
                out[n] = [dv.Value.VariantType.name, show(dv.Value.Value)]
            else:
                out[n] = ["error", dv.StatusCode_.name]
        return out


async def browse(url, uri):
    async with client(url) as c:
        ns = await ns_index(c, uri)
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
                    dt = await child.read_data_type()
                    entry["data_type"] = dt.to_string()
                    entry["value_rank"] = await child.read_value_rank()
                found[path] = entry
                if cls == ua.NodeClass.Object:
                    await walk(child, path + "/")

        await walk(c.nodes.objects, "")
        return found


class Handler:
    def __init__(self):
        self.values = []

    def datachange_notification(self, node, val, data):
        self.values.append([asyncio.get_event_loop().time(), show(val)])


async def subscribe(url, uri, node, seconds):
    async with client(url) as c:
        ns = await ns_index(c, uri)
        h = Handler()
        sub = await c.create_subscription(100, h)
        await sub.subscribe_data_change(c.get_node(f"ns={ns};s={node}"))
        await asyncio.sleep(seconds)
        await sub.delete()
        return {"notifications": len(h.values), "values": [v for _, v in h.values]}


def variant(kind, value):
    t = getattr(ua.VariantType, kind)
    if t == ua.VariantType.DateTime:
        value = datetime.datetime.fromisoformat(value)
    return ua.Variant(value, t)


async def write(url, uri, user, password, node, kind, value):
    try:
        async with client(url, user, password) as c:
            ns = await ns_index(c, uri)
            n = c.get_node(f"ns={ns};s={node}")
            try:
                await n.write_value(ua.DataValue(variant(kind, json.loads(value))))
                return {"status": "Good"}
            except ua.UaStatusCodeError as e:
                return {"status": type(e).__name__}
    except Exception as e:  # a refused session
        return {"status": "session refused", "error": f"{type(e).__name__}: {e}"}


async def secure(url, uri, certdir, user, password, node, policy="Basic256Sha256", mode="SignAndEncrypt"):
    c = client(url, user, password)
    try:
        await c.set_security_string(f"{policy},{mode},{certdir}/cert.der,{certdir}/key.pem")
        async with c:
            ns = await ns_index(c, uri)
            dv = await c.get_node(f"ns={ns};s={node}").read_data_value()
            policy = c.security_policy.URI
            return {"ok": True, "value": show(dv.Value.Value), "policy": policy}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


async def main(argv):
    cmd = argv[0]
    if cmd == "certs":
        return make_certs(argv[1])
    if cmd == "read":
        return await read(argv[1], argv[2], argv[3:])
    if cmd == "browse":
        return await browse(argv[1], argv[2])
    if cmd == "subscribe":
        return await subscribe(argv[1], argv[2], argv[3], float(argv[4]))
    if cmd == "write":
        return await write(*argv[1:8])
    if cmd == "secure":
        return [await secure(argv[1], argv[2], *attempt) for attempt in json.loads(argv[3])]
    raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:]))))
