// Debugger load: N socket.io-client sessions, each polling V variables every I ms with
// 0x44 the way the Editor does (a poll is skipped while the previous one is in flight),
// for S seconds. Prints one JSON summary line: replies, errors, reply latency percentiles.
//
//   node load.js URL TOKEN CLIENTS VARS INTERVAL_MS SECONDS VAR_COUNT
'use strict';

const { io } = require('socket.io-client');

const [url, token, clients, vars, intervalMs, seconds, varCount] = process.argv.slice(2);
const N = parseInt(clients, 10);
const V = parseInt(vars, 10);
const I = parseInt(intervalMs, 10);
const S = parseFloat(seconds);
const COUNT = parseInt(varCount, 10);

function request(k) {
  // Each client polls its own slice of the program's variables, sorted as the Editor sends.
  const indices = [];
  for (let j = 0; j < V; j++) indices.push((k * 7 + j) % COUNT);
  indices.sort((a, b) => a - b);
  const b = Buffer.alloc(3 + 2 * V);
  b.writeUInt8(0x44, 0);
  b.writeUInt16BE(V, 1);
  indices.forEach((ix, i) => b.writeUInt16BE(ix, 3 + 2 * i));
  return Array.from(b, (x) => x.toString(16).toUpperCase().padStart(2, '0')).join(' ');
}

function session(k) {
  return new Promise((resolve) => {
    const stats = { replies: 0, errors: 0, skipped: 0, latencies: [], firstError: null };
    // As the Editor: the runtime's self-signed certificate is accepted (wss).
    const socket = io(url + '/api/debug', {
      transports: ['websocket'],
      auth: { token },
      reconnection: false,
      timeout: 5000,
      rejectUnauthorized: false,
    });
    const hex = request(k);
    let inFlight = false;
    let sentAt = 0n;
    let timer = null;
    let stopAt = 0;
    socket.on('connect_error', (e) => {
      stats.errors++;
      stats.firstError = stats.firstError || e.message;
      resolve(stats);
    });
    socket.on('debug_response', (r) => {
      const ms = Number(process.hrtime.bigint() - sentAt) / 1e6;
      inFlight = false;
      if (r.success && r.data.startsWith('44 7E')) {
        stats.replies++;
        stats.latencies.push(ms);
      } else {
        stats.errors++;
        stats.firstError = stats.firstError || JSON.stringify(r);
      }
    });
    socket.on('connected', () => {
      stopAt = Date.now() + S * 1000;
      timer = setInterval(() => {
        if (Date.now() >= stopAt) {
          clearInterval(timer);
          setTimeout(() => {
            socket.disconnect();
            resolve(stats);
          }, 200);
          return;
        }
        if (inFlight) {
          stats.skipped++;
          return;
        }
        inFlight = true;
        sentAt = process.hrtime.bigint();
        socket.emit('debug_command', { command: hex });
      }, I);
    });
  });
}

function pct(sorted, f) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(f * sorted.length) - 1));
  return sorted[i];
}

(async () => {
  const started = Date.now();
  const all = await Promise.all(Array.from({ length: N }, (_, k) => session(k)));
  const elapsed = (Date.now() - started) / 1000;
  const lat = all.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const replies = all.reduce((n, s) => n + s.replies, 0);
  const out = {
    clients: N,
    vars: V,
    interval_ms: I,
    seconds: S,
    elapsed_s: elapsed,
    replies,
    errors: all.reduce((n, s) => n + s.errors, 0),
    skipped: all.reduce((n, s) => n + s.skipped, 0),
    replies_per_s: replies / S,
    latency_ms: { p50: pct(lat, 0.5), p99: pct(lat, 0.99), max: lat.length ? lat[lat.length - 1] : null },
    first_error: all.map((s) => s.firstError).find((e) => e) || null,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
})();
