// Drives the debugger with socket.io-client 4.x, the library (and the options) the OpenPLC
// Editor uses. Reads one JSON request per line on stdin, writes one JSON answer per line.
//
// Ops: connect {url, token, query?}, cmd {hex}, pipeline {hexes}, md5, poll {indices, types},
//      force {index, type, value}, release {index}, state (whether the socket is connected), close.
// Requests are encoded and replies decoded following the Editor's rules (big-endian
// forced values, little-endian reads, TIME as i32 seconds + i32 nanoseconds, STRING as
// 127 bytes); the code is ours.
'use strict';

const { io } = require('socket.io-client');
const readline = require('readline');

let socket = null;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).toUpperCase().padStart(2, '0')).join(' ');
}

function fromHex(text) {
  return Buffer.from(text.split(' ').map((t) => parseInt(t, 16)));
}

function connect(url, token, viaQuery) {
  return new Promise((resolve) => {
    // As the Editor: self-signed runtime certificates are accepted.
    const opts = { transports: ['websocket'], reconnection: false, timeout: 5000, rejectUnauthorized: false };
    if (token !== null && token !== undefined) {
      if (viaQuery) opts.query = { token };
      else opts.auth = { token };
    }
    socket = io(url + '/api/debug', opts);
    const timer = setTimeout(() => resolve({ ok: false, error: 'timeout waiting for connected' }), 5000);
    socket.on('connect_error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, error: e.message });
    });
    socket.on('connected', (data) => {
      clearTimeout(timer);
      resolve(data && data.status === 'ok' ? { ok: true } : { ok: false, error: 'bad status' });
    });
  });
}

// One command, one one-shot listener: how the Editor matches replies.
function command(hex) {
  return new Promise((resolve) => {
    // With reconnection off, a disconnected socket would only buffer the command.
    if (!socket || !socket.connected) return resolve({ success: false, error: 'not connected' });
    const timer = setTimeout(() => {
      socket.off('debug_response', handler);
      resolve({ success: false, error: 'Request timeout' });
    }, 5000);
    const handler = (reply) => {
      clearTimeout(timer);
      socket.off('debug_response', handler);
      resolve(reply);
    };
    socket.on('debug_response', handler);
    socket.emit('debug_command', { command: hex });
  });
}

function pipeline(hexes) {
  return new Promise((resolve) => {
    const replies = [];
    const handler = (reply) => replies.push(reply);
    socket.on('debug_response', handler);
    for (const h of hexes) socket.emit('debug_command', { command: h });
    const started = Date.now();
    const check = () => {
      if (replies.length >= hexes.length || Date.now() - started > 30000) {
        // Linger: a duplicate reply would show up as extras.
        setTimeout(() => {
          socket.off('debug_response', handler);
          resolve({ replies: replies.slice(0, hexes.length), extra: Math.max(0, replies.length - hexes.length) });
        }, 300);
      } else {
        setTimeout(check, 5);
      }
    };
    check();
  });
}

const SIZES = { BOOL: 1, SINT: 1, USINT: 1, BYTE: 1, INT: 2, UINT: 2, WORD: 2, DINT: 4, UDINT: 4, DWORD: 4, REAL: 4,
  TIME: 8, DATE: 8, TOD: 8, LINT: 8, ULINT: 8, LWORD: 8, LREAL: 8, DT: 8, STRING: 127 };

function formatTime(sec, nsec) {
  let total = BigInt(sec) * 1000000000n + BigInt(nsec);
  const neg = total < 0n;
  if (neg) total = -total;
  const units = [[86400000000000n, 'd'], [3600000000000n, 'h'], [60000000000n, 'm'], [1000000000n, 's'],
    [1000000n, 'ms'], [1000n, 'us'], [1n, 'ns']];
  const parts = [];
  for (const [n, u] of units) {
    const q = total / n;
    total %= n;
    if (q > 0n) parts.push(q.toString() + u);
  }
  if (parts.length === 0) return '0s';
  const s = parts.slice(0, 2).join('');
  return neg ? '-' + s : s;
}

function decode(buf, off, type) {
  switch (type) {
    case 'BOOL': return buf.readUInt8(off) !== 0 ? 'TRUE' : 'FALSE';
    case 'SINT': return String(buf.readInt8(off));
    case 'USINT': case 'BYTE': return String(buf.readUInt8(off));
    case 'INT': return String(buf.readInt16LE(off));
    case 'UINT': case 'WORD': return String(buf.readUInt16LE(off));
    case 'DINT': return String(buf.readInt32LE(off));
    case 'UDINT': case 'DWORD': return String(buf.readUInt32LE(off));
    case 'REAL': return buf.readFloatLE(off).toFixed(6);
    case 'LREAL': return buf.readDoubleLE(off).toFixed(12);
    case 'LINT': return buf.readBigInt64LE(off).toString();
    case 'ULINT': case 'LWORD': case 'DT': return buf.readBigUInt64LE(off).toString();
    case 'TIME': case 'DATE': case 'TOD': return formatTime(buf.readInt32LE(off), buf.readInt32LE(off + 4));
    case 'STRING': {
      const len = Math.min(buf.readUInt8(off), 126);
      return '"' + buf.subarray(off + 1, off + 1 + len).toString('utf8') + '"';
    }
    default: return '???';
  }
}

// 0x44 for `indices`, parsed and decoded as the Editor's poll loop does.
async function poll(indices, types) {
  const req = Buffer.alloc(3 + 2 * indices.length);
  req.writeUInt8(0x44, 0);
  req.writeUInt16BE(indices.length, 1);
  indices.forEach((ix, i) => req.writeUInt16BE(ix, 3 + 2 * i));
  const reply = await command(toHex(req));
  if (!reply.success) return { success: false, error: reply.error };
  const b = fromHex(reply.data);
  if (b.readUInt8(0) !== 0x44) return { success: false, error: 'Function code mismatch' };
  const status = b.readUInt8(1);
  if (status !== 0x7e) return { success: false, error: 'status 0x' + status.toString(16) };
  const lastIndex = b.readUInt16BE(2);
  const tick = b.readUInt32BE(4);
  const size = b.readUInt16BE(8);
  const data = b.subarray(10, 10 + size);
  if (data.length !== size) return { success: false, error: 'incomplete data' };
  const values = {};
  let off = 0;
  for (let i = 0; i < indices.length; i++) {
    if (off >= data.length) break;
    const t = types[i];
    values[indices[i]] = decode(data, off, t);
    off += SIZES[t] || 4;
    if (indices[i] === lastIndex) break;
  }
  return { success: true, tick, lastIndex, size, consumed: off, values };
}

function encodeValue(type, value) {
  const ints = { SINT: [1, true], USINT: [1, false], BYTE: [1, false], INT: [2, true], UINT: [2, false], WORD: [2, false],
    DINT: [4, true], UDINT: [4, false], DWORD: [4, false], LINT: [8, true], ULINT: [8, false], LWORD: [8, false] };
  if (type === 'BOOL') return Buffer.from([value === 'TRUE' || value === true || value === '1' ? 1 : 0]);
  if (type === 'REAL') { const b = Buffer.alloc(4); b.writeFloatBE(parseFloat(value)); return b; }
  if (type === 'LREAL') { const b = Buffer.alloc(8); b.writeDoubleBE(parseFloat(value)); return b; }
  if (type === 'STRING') return Buffer.concat([Buffer.from([value.length]), Buffer.from(value, 'ascii')]);
  const [size, signed] = ints[type];
  let v = BigInt(value);
  if (signed && v < 0n) v += 1n << BigInt(size * 8);
  const b = Buffer.alloc(size);
  for (let i = size - 1; i >= 0; i--) { b[i] = Number(v & 0xffn); v >>= 8n; }
  return b;
}

async function set(index, force, valueBuffer) {
  const len = force ? valueBuffer.length : 1;
  const req = Buffer.alloc(6 + len);
  req.writeUInt8(0x42, 0);
  req.writeUInt16BE(index, 1);
  req.writeUInt8(force ? 1 : 0, 3);
  req.writeUInt16BE(len, 4);
  if (force) valueBuffer.copy(req, 6);
  const reply = await command(toHex(req));
  if (!reply.success) return { success: false, error: reply.error };
  const b = fromHex(reply.data);
  return b[0] === 0x42 && b[1] === 0x7e ? { success: true } : { success: false, error: 'status 0x' + b[1].toString(16) };
}

async function handle(req) {
  switch (req.op) {
    case 'connect': return connect(req.url, req.token, req.query);
    case 'cmd': return { reply: await command(req.hex) };
    case 'pipeline': return pipeline(req.hexes);
    case 'md5': {
      const reply = await command('45 DE AD 00 00');
      if (!reply.success) return { success: false, error: reply.error };
      const b = fromHex(reply.data);
      if (b[0] !== 0x45 || b[1] !== 0x7e) return { success: false, error: 'status 0x' + b[1].toString(16) };
      return { success: true, md5: b.subarray(2).toString('utf-8').trim() };
    }
    case 'poll': return poll(req.indices, req.types);
    case 'force': return set(req.index, true, encodeValue(req.type, req.value));
    case 'release': return set(req.index, false);
    case 'state': return { connected: !!(socket && socket.connected) };
    case 'close':
      if (socket) socket.disconnect();
      return { ok: true };
    default: return { error: 'unknown op ' + req.op };
  }
}

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    const req = JSON.parse(line);
    out(await handle(req));
    if (req.op === 'close') process.exit(0);
  });
});
rl.on('close', () => chain.then(() => process.exit(0)));
