// Drives the S7 server with nodes7 (the pure-JavaScript S7 client of Node-RED flows) and
// prints what it read as one JSON object: reads of DB, PE, PA and MK items in one
// optimised batch, then a write. Usage: node nodes7_client.js PORT
const NodeS7 = require('nodes7');
const port = parseInt(process.argv[2], 10);
const conn = new NodeS7({ silent: true });
const tags = ['DB2,INT0', 'DB2,WORD2', 'DB3,DINT0', 'DB1,X0.2', 'I0.7', 'IB1', 'QB0', 'MW0'];
const fail = (what, err) => { console.log(JSON.stringify({ error: what + ': ' + err })); process.exit(1); };
setTimeout(() => fail('timeout', 'no answer in 20 s'), 20000).unref();
conn.initiateConnection({ port, host: '127.0.0.1', rack: 0, slot: 2, timeout: 5000 }, (err) => {
  if (typeof err !== 'undefined') return fail('connect', err);
  conn.addItems(tags);
  conn.readAllItems((bad, values) => {
    if (bad) return fail('read', JSON.stringify(values));
    conn.writeItems('DB2,INT10', 4321, (werr) => {
      if (werr) return fail('write', werr);
      console.log(JSON.stringify({ values }));
      conn.dropConnection(() => process.exit(0));
    });
  });
});
