// A second independent client stack (node-opcua) against the server: browse, read, write
// (as the engineer) and subscribe. Prints one JSON object; the Rust test judges it.
// usage: node ua_node.js URL NAMESPACE_URI
"use strict";
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, DataType,
  TimestampsToReturn, ClientSubscription, ClientMonitoredItem, UserTokenType,
} = require("node-opcua-client");

async function main() {
  const [url, nsUri] = process.argv.slice(2);
  const client = OPCUAClient.create({
    applicationName: "node-opcua test client",
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 2, initialDelay: 200, maxDelay: 1000 },
  });
  const out = {};
  await client.connect(url);
  const session = await client.createSession({ type: UserTokenType.UserName, userName: "eng", password: "eng-pass" });
  try {
    const nsArray = (await session.read({ nodeId: "ns=0;i=2255", attributeId: AttributeIds.Value })).value.value;
    const ns = nsArray.indexOf(nsUri);
    out.namespace = ns;

    const browsed = await session.browse("ns=0;i=85");
    out.browse = browsed.references.filter((r) => r.browseName.namespaceIndex === ns).map((r) => r.browseName.name).sort();

    const ids = ["PLC.INT", "PLC.REAL", "PLC.STRING", "PLC.WSTRING", "PLC.TIME", "PLC.Levels"];
    const values = await session.read(ids.map((s) => ({ nodeId: `ns=${ns};s=${s}`, attributeId: AttributeIds.Value })));
    out.read = {};
    ids.forEach((s, i) => {
      const v = values[i].value;
      out.read[s] = [DataType[v.dataType], v.value instanceof Int16Array ? Array.from(v.value) : v.value];
    });

    const status = await session.write({
      nodeId: `ns=${ns};s=PLC.Setpoint`, attributeId: AttributeIds.Value,
      value: { value: { dataType: DataType.Int32, value: -4321 } },
    });
    out.write = status.name;
    out.read_back = (await session.read({ nodeId: `ns=${ns};s=PLC.Setpoint`, attributeId: AttributeIds.Value })).value.value;

    const sub = ClientSubscription.create(session, {
      requestedPublishingInterval: 100, requestedLifetimeCount: 100, requestedMaxKeepAliveCount: 10,
      maxNotificationsPerPublish: 100, publishingEnabled: true, priority: 1,
    });
    const seen = [];
    const item = ClientMonitoredItem.create(sub,
      { nodeId: `ns=${ns};s=PLC.Counter`, attributeId: AttributeIds.Value },
      { samplingInterval: 100, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Both);
    item.on("changed", (dv) => seen.push(dv.value.value));
    await new Promise((r) => setTimeout(r, 2000));
    await sub.terminate();
    out.subscription = seen;
  } finally {
    await session.close();
    await client.disconnect();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
  process.exit(1);
});
