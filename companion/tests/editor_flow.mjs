// The OpenPLC Editor's (<= 4.1.4) conversation with a runtime, made the way the Editor
// makes it: Node's `https` module from the main process, self-signed certificates
// accepted, a fresh request per call, the JSON and multipart bodies it sends. Only Node
// built-ins. Exits non-zero with a message on the first deviation.
//
//   node editor_flow.mjs <port> <program.zip>

import https from 'node:https'
import { readFileSync } from 'node:fs'
import assert from 'node:assert/strict'

const [port, zipPath] = process.argv.slice(2)
const host = '127.0.0.1'
const TIMEOUT_MS = 5000 // the Editor's RUNTIME_CONNECTION_TIMEOUT_MS

function request({ method = 'GET', path, token, json, body, headers = {}, timeout = TIMEOUT_MS }) {
  return new Promise((resolve, reject) => {
    const h = { ...headers }
    if (token) h.Authorization = `Bearer ${token}`
    let payload = body
    if (json !== undefined) {
      payload = Buffer.from(JSON.stringify(json))
      h['Content-Type'] = 'application/json'
    }
    if (payload) h['Content-Length'] = String(payload.length)
    const req = https.request({ hostname: host, port, path, method, headers: h, rejectUnauthorized: false }, (res) => {
      let data = ''
      res.on('data', (c) => (data += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, data }))
    })
    req.setTimeout(timeout, () => {
      req.destroy()
      reject(new Error(`timeout on ${method} ${path}`))
    })
    req.on('error', reject)
    if (payload) req.write(payload)
    req.end()
  })
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const step = (m) => console.log(`editor-flow: ${m}`)

async function until(what, timeoutMs, fn) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(200)
  }
}

// 1. Connect: the users probe, read for its status code and the version header only.
let r = await request({ path: '/api/get-users-info' })
assert.equal(r.status, 404, `get-users-info on a fresh device: ${r.status} ${r.data}`)
assert.equal((r.headers['x-openplc-runtime-version'] || '').toLowerCase(), 'v4', 'version header must be exactly v4')
step('fresh device answers 404 with X-OpenPLC-Runtime-Version: v4')

// 2. Create the first user: no Authorization header, role "user", success only on 201.
r = await request({ method: 'POST', path: '/api/create-user', json: { username: 'engineer', password: 'correct horse', role: 'user' } })
assert.equal(r.status, 201, `create-user: ${r.status} ${r.data}`)
r = await request({ method: 'POST', path: '/api/create-user', json: { username: 'intruder', password: 'x', role: 'user' } })
assert.ok(r.status === 401 || r.status === 403, `a second unauthenticated create-user must be refused: ${r.status}`)
r = await request({ path: '/api/get-users-info' })
assert.equal(r.status, 200)
step('first user created (201); a second unauthenticated create is refused')

// 3. Login.
r = await request({ method: 'POST', path: '/api/login', json: { username: 'engineer', password: 'correct horse' }, timeout: 15000 })
assert.equal(r.status, 200, `login: ${r.status} ${r.data}`)
const token = JSON.parse(r.data).access_token
assert.ok(typeof token === 'string' && token.split('.').length === 3, 'access_token is a JWT')
step('login returns access_token')

// 4. Upload program.zip exactly as compressSourceFolder + the upload handler do.
const zip = readFileSync(zipPath)
const boundary = '----WebKitFormBoundary' + Math.random().toString(36).substring(2)
const multipart = Buffer.concat([
  Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="program.zip"\r\nContent-Type: application/zip\r\n\r\n`,
  ),
  zip,
  Buffer.from(`\r\n--${boundary}--\r\n`),
])
r = await request({
  method: 'POST',
  path: '/api/upload-file',
  token,
  body: multipart,
  headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
  timeout: 300000,
})
assert.equal(r.status, 200, `upload-file: ${r.status} ${r.data}`)
assert.equal(JSON.parse(r.data).CompilationStatus, 'COMPILING')
step('upload answered 200 at once')

// 5. Poll compilation-status every second (the Editor waits 1 s first) until SUCCESS.
await sleep(1000)
let seen = 0
const build = await until('SUCCESS', 120000, async () => {
  const s = await request({ path: '/api/compilation-status', token })
  assert.equal(s.status, 200)
  const body = JSON.parse(s.data)
  assert.ok(Array.isArray(body.logs), 'logs is an array')
  assert.ok(body.logs.length >= seen, 'logs are cumulative')
  seen = body.logs.length
  if (body.status === 'FAILED') throw new Error(`build failed:\n${body.logs.join('\n')}`)
  return body.status === 'SUCCESS' ? body : undefined
})
assert.equal(build.exit_code, 0)
assert.ok(build.logs.every((l) => /^\[(INFO|WARNING|ERROR)\] /.test(l)), 'every line carries a level prefix')
assert.ok(build.logs.some((l) => /Compiling .*\.c/.test(l)), `the compiler's lines are in logs:\n${build.logs.join('\n')}`)
step(`compilation SUCCESS with ${build.logs.length} log lines`)

// 6. The Editor <= 4.1.4 never calls start-plc after an upload: the runtime must run it.
const statusOf = async (q = '') => {
  const s = await request({ path: `/api/status${q}`, token })
  assert.equal(s.status, 200)
  return JSON.parse(s.data)
}
await until('STATUS:RUNNING', 10000, async () => (await statusOf()).status === 'STATUS:RUNNING')
const a = (await statusOf('?include_stats=true')).timing_stats
await sleep(500)
const b = (await statusOf('?include_stats=true')).timing_stats
for (const k of ['scan_count', 'scan_time_min', 'scan_time_max', 'scan_time_avg', 'cycle_time_min', 'cycle_time_max',
  'cycle_time_avg', 'cycle_latency_min', 'cycle_latency_max', 'cycle_latency_avg', 'overruns']) {
  assert.ok(k in b, `timing_stats.${k}`)
}
assert.ok(b.scan_count > a.scan_count, `scan_count advances: ${a.scan_count} -> ${b.scan_count}`)
step(`STATUS:RUNNING without start-plc; scan_count ${a.scan_count} -> ${b.scan_count}`)

// 7. Runtime logs: all, then incrementally from the last id + 1.
r = await request({ path: '/api/runtime-logs', token })
const all = JSON.parse(r.data)['runtime-logs']
assert.ok(Array.isArray(all) && all.length > 0, 'runtime-logs has entries')
for (const e of all) {
  assert.equal(typeof e.id, 'number')
  assert.ok(['DEBUG', 'INFO', 'WARNING', 'ERROR'].includes(e.level))
  assert.equal(typeof e.timestamp, 'string')
  assert.equal(typeof e.message, 'string')
}
const last = all[all.length - 1].id
r = await request({ path: `/api/runtime-logs?id=${last + 1}`, token })
const newer = JSON.parse(r.data)['runtime-logs']
assert.ok(newer.every((e) => e.id > last), 'only newer entries')

// 8. Stop and start.
r = await request({ path: '/api/stop-plc', token })
assert.equal(r.status, 200)
assert.equal(JSON.parse(r.data).status, 'STOP:OK')
await until('STATUS:STOPPED', 10000, async () => (await statusOf()).status === 'STATUS:STOPPED')
r = await request({ path: '/api/start-plc', token })
assert.equal(JSON.parse(r.data).status, 'START:OK')
await until('STATUS:RUNNING', 10000, async () => (await statusOf()).status === 'STATUS:RUNNING')
r = await request({ path: '/api/runtime-logs?id=' + (last + 1), token })
const after = JSON.parse(r.data)['runtime-logs']
assert.ok(after.length > newer.length, 'stop/start were logged')
assert.ok(after.every((e) => e.id > last))
step('stop and start work; runtime-logs ?id= returns only newer entries')

// 9. The silent re-login path: a bad token must be a 401.
r = await request({ path: '/api/status', token: token.slice(0, -2) + 'xx' })
assert.equal(r.status, 401)
console.log('editor-flow: OK')
