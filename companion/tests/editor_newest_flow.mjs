// The newest OpenPLC Editor's (>= 4.2, toward 4.3) conversation with a runtime, made the way
// its shared REST client makes it (src/backend/editor/runtime/runtime-api-client.ts, with its
// token authority, and the main process's EtherCAT and debug handlers), read from the Editor's
// sources. That client is TypeScript inside the Electron app, published to no registry, and
// the fetchable snapshot of the Editor's repository predates it, so this is a client written
// from its code paths (not a copy): Node's `https`, self-signed certificates accepted, a fresh
// request per call, 200 as the only success, bodies validated against the shapes the Editor
// accepts (anything else is the Editor's "unreadable" failure), a re-login and one retry on
// 401/403 (uploads: on the status code only), start-plc retried on COMMAND:BUSY, the snapshot
// parts of an upload, and the license function codes over socket.io-client. Exits non-zero
// with a message on the first deviation.
//
//   NODE_PATH=<socket.io-client> node editor_newest_flow.mjs <port> <program.zip> <snapshot file>

import https from 'node:https'
import { readFileSync } from 'node:fs'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

// socket.io-client from NODE_PATH (an ES import does not look there).
const { io } = createRequire(import.meta.url)('socket.io-client')

const [port, zipPath, snapshotPath] = process.argv.slice(2)
const host = '127.0.0.1'
const TIMEOUT_MS = 5000
const step = (m) => console.log(`editor-newest: ${m}`)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const json = (raw) => {
  try {
    return JSON.parse(raw)
  } catch {
    return null
  }
}
const isString = (v) => typeof v === 'string'
const optional = (v, check) => v === undefined || check(v)

function request({ method = 'GET', path, token, body, headers = {}, timeout = TIMEOUT_MS }) {
  return new Promise((resolve, reject) => {
    const h = { ...headers }
    if (token) h.Authorization = `Bearer ${token}`
    if (body) h['Content-Length'] = String(body.length)
    const req = https.request({ hostname: host, port, path, method, headers: h, rejectUnauthorized: false }, (res) => {
      let data = ''
      res.on('data', (c) => (data += c.toString()))
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, data, headers: res.headers }))
    })
    req.setTimeout(timeout, () => {
      req.destroy()
      reject(new Error('Connection timeout'))
    })
    req.on('error', reject)
    if (body) req.write(body)
    req.end()
  })
}

// One signed-in session: the token authority (log in again and retry once when the
// predicate says the token expired).
class Session {
  constructor(username, password) {
    this.credentials = { username, password }
    this.token = null
  }
  async login() {
    const body = Buffer.from(JSON.stringify(this.credentials))
    const r = await request({
      method: 'POST',
      path: '/api/login',
      body,
      headers: { 'Content-Type': 'application/json' },
      timeout: 15000,
    })
    const parsed = json(r.data)
    if (r.statusCode !== 200 || !parsed || !isString(parsed.access_token)) throw new Error(`login: ${r.data}`)
    this.token = parsed.access_token
  }
  async withAuth(call, expired) {
    const first = await call(this.token)
    if (!expired(first)) return first
    await this.login()
    return call(this.token)
  }
  // The GET helper: 200 -> parse; anything else is the raw body as the error; re-login on
  // 401/403 or a body that speaks of tokens, expiry or authorisation.
  async get(path, parser) {
    const tokenExpired = (r) =>
      !r.success && (r.statusCode === 401 || r.statusCode === 403 || /unauthorized|token|expired/i.test(r.error))
    const result = await this.withAuth(async (token) => {
      const r = await request({ path, token })
      if (r.statusCode === 200) return { success: true, data: parser ? parser(r.data) : undefined }
      return { success: false, error: r.data, statusCode: r.statusCode }
    }, tokenExpired)
    return result.success ? result : { success: false, error: result.error }
  }
  // PUT/DELETE/POST mutations: any 2xx is success; retried on 401 only.
  async mutate(method, path, payload) {
    const body = payload === undefined ? undefined : Buffer.from(JSON.stringify(payload))
    return this.withAuth(
      async (token) => {
        const r = await request({
          method,
          path,
          token,
          body,
          headers: body ? { 'Content-Type': 'application/json' } : {},
        })
        return r.statusCode >= 200 && r.statusCode < 300
          ? { success: true, data: r.data }
          : { success: false, error: r.data, statusCode: r.statusCode }
      },
      (r) => !r.success && r.statusCode === 401,
    )
  }
  // start-plc, stop-plc and status answer 200 with the outcome in `status`; every field
  // optional, an unreadable body reads as "no status".
  async statusCommand(path) {
    const r = await this.get(path, (data) => {
      const body = json(data)
      if (!body || typeof body !== 'object') return {}
      return {
        ...(isString(body.status) ? { status: body.status } : {}),
        ...(isString(body.switchPosition) ? { switchPosition: body.switchPosition } : {}),
        ...(body.timing_stats !== undefined ? { timingStats: body.timing_stats } : {}),
      }
    })
    if (!r.success) return r
    return { success: true, status: (r.data.status ?? '').trim(), ...r.data }
  }
  async setPlcState(action) {
    const r = await this.statusCommand(action === 'run' ? '/api/start-plc' : '/api/stop-plc')
    if (!r.success) return { success: false, error: r.error }
    if (r.status.includes('ERROR_SWITCH_STOP')) return { success: false, refusedBySwitch: true }
    return { success: true, state: action }
  }
  async getProjectSnapshotInfo() {
    const r = await this.get('/api/project-snapshot/info', (data) => {
      const b = json(data)
      const ok =
        b &&
        typeof b.present === 'boolean' &&
        ['projectName', 'editorVersion', 'uploadedBy', 'timestamp'].every((k) => optional(b[k], isString)) &&
        ['sizeBytes', 'formatVersion'].every((k) => optional(b[k], (v) => typeof v === 'number')) &&
        optional(b.libraries, (l) => Array.isArray(l) && l.every((e) => isString(e.name)))
      return ok ? b : null
    })
    if (!r.success) return { success: false, error: r.error }
    if (!r.data) return { success: false, error: 'The device sent an unreadable snapshot description' }
    return { success: true, info: r.data }
  }
  async retrieveProjectSnapshot() {
    const r = await this.get('/api/project-snapshot', (data) => {
      const b = json(data)
      return b && isString(b.projectName) && isString(b.contentBase64) ? b : null
    })
    if (!r.success) {
      const lower = r.error.toLowerCase()
      if (lower.includes('admin privileges required')) {
        return { success: false, error: 'This account is not an administrator on that device.' }
      }
      if (lower.includes('no project is stored')) return { success: false, error: 'That device is not storing a project.' }
      return { success: false, error: r.error }
    }
    if (!r.data) return { success: false, error: 'The device sent an unreadable project archive' }
    return { success: true, archive: Buffer.from(r.data.contentBase64, 'base64'), projectName: r.data.projectName }
  }
  // The multipart upload: `file`, then `snapshot` and `snapshot_metadata` together or not
  // at all; `?clean=1` for a clean build; retried on 401/403 by status code only.
  async upload(zip, snapshot, metadata, cleanBuild) {
    const boundary = '----WebKitFormBoundary' + Math.random().toString(36).substring(2)
    const parts = [
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="program.zip"\r\n` +
          `Content-Type: application/zip\r\n\r\n`,
      ),
      zip,
    ]
    if (snapshot !== undefined && metadata !== undefined) {
      parts.push(
        Buffer.from(
          `\r\n--${boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="project.zip"\r\n` +
            `Content-Type: application/zip\r\n\r\n`,
        ),
        snapshot,
        Buffer.from(
          `\r\n--${boundary}\r\nContent-Disposition: form-data; name="snapshot_metadata"\r\n` +
            `Content-Type: application/json\r\n\r\n${metadata}`,
        ),
      )
    }
    parts.push(Buffer.from(`\r\n--${boundary}--\r\n`))
    const body = Buffer.concat(parts)
    const path = cleanBuild ? '/api/upload-file?clean=1' : '/api/upload-file'
    return this.withAuth(
      async (token) => {
        const r = await request({
          method: 'POST',
          path,
          token,
          body,
          headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` },
          timeout: 300000,
        })
        return r.statusCode === 200
          ? { success: true, data: r.data }
          : { success: false, error: r.data, statusCode: r.statusCode }
      },
      (r) => !r.success && (r.statusCode === 401 || r.statusCode === 403),
    )
  }
}

// Both timing-stats shapes become tasks: `tasks[]` as is, a flat record one task "plc".
function toTasks(ts) {
  if (!ts || typeof ts !== 'object') return []
  if (Array.isArray(ts.tasks)) return ts.tasks
  const { plugin_stats: _, ...flat } = ts
  return [{ name: 'plc', ...flat }]
}

// --- connect and sign in -------------------------------------------------------------
let r = await request({ path: '/api/get-users-info' })
assert.equal(r.statusCode, 404, `fresh device: ${r.statusCode}`)
r = await request({
  method: 'POST',
  path: '/api/create-user',
  body: Buffer.from(JSON.stringify({ username: 'engineer', password: 'correct horse' })),
  headers: { 'Content-Type': 'application/json' },
})
assert.equal(r.statusCode, 201, `first user: ${r.data}`)
const admin = new Session('engineer', 'correct horse')
await admin.login()
const added = await admin.mutate('POST', '/api/create-user', {
  username: 'operator',
  password: 'operator pass',
  role: 'user',
})
assert.ok(added.success, `admin adds an operator: ${added.error}`)
const operator = new Session('operator', 'operator pass')
await operator.login()
step('signed in as an admin and as an operator')

// --- the version gate and the capabilities ---------------------------------------------
r = await request({ path: '/api/capabilities' })
const caps = json(r.data)
assert.ok(caps && isString(caps.runtimeVersion) && isString(caps.minEditorVersion), r.data)
const [maj, min] = caps.runtimeVersion.replace(/^v/, '').split('.').map(Number)
assert.ok(maj > 4 || (maj === 4 && min >= 1), `runtime ${caps.runtimeVersion} passes the >= 4.1.0 gate`)
assert.equal(caps.projectSnapshot, true, 'the device keeps project snapshots')
step(`capabilities: runtime ${caps.runtimeVersion}, projectSnapshot`)

// --- build and upload with the project snapshot, then the Editor's own start -------------
const zip = readFileSync(zipPath)
const snapshot = readFileSync(snapshotPath)
const metadata = JSON.stringify({
  formatVersion: 1,
  projectName: 'Newest Editor Project',
  editorVersion: '4.3.2',
  uploadedBy: 'engineer',
  timestamp: '2026-12-04T12:00:00.000Z',
  libraries: [{ name: 'Standard', version: '1.0.0', hash: 'f00d' }],
})
const up = await admin.upload(zip, snapshot, metadata, true)
assert.ok(up.success, `upload: ${up.error}`)
const accepted = json(up.data)
assert.equal(accepted.UploadFileFail, '')
assert.equal(accepted.ProjectSnapshotWarning, '', 'the snapshot was kept')
await sleep(1000)
const deadline = Date.now() + 120000
for (;;) {
  const s = await admin.get('/api/compilation-status', (d) => json(d))
  assert.ok(s.success && s.data && Array.isArray(s.data.logs), `compilation-status: ${s.error}`)
  if (s.data.status === 'SUCCESS') break
  if (s.data.status === 'FAILED') throw new Error(`build failed:\n${s.data.logs.join('\n')}`)
  assert.ok(Date.now() < deadline, 'build timed out')
  await sleep(1000)
}
// start-plc-after-build: retry on COMMAND:BUSY every 150 ms for 5 s.
let started
for (const end = Date.now() + 5000; ; ) {
  started = await admin.statusCommand('/api/start-plc')
  assert.ok(started.success, `start-plc: ${started.error}`)
  if (started.status !== 'COMMAND:BUSY' || Date.now() > end) break
  await sleep(150)
}
assert.ok(['START:OK', 'START:ERROR_ALREADY_RUNNING'].includes(started.status), `start-plc said ${started.status}`)
let status = await admin.statusCommand('/api/status')
assert.equal(status.status, 'STATUS:RUNNING')
assert.equal(status.switchPosition, 'run')
step(`uploaded with a snapshot, built, ${started.status}; status RUNNING, switch run`)

// --- the project, fetched back by a second engineer ------------------------------------
const info = await operator.getProjectSnapshotInfo()
assert.ok(info.success, `snapshot info: ${info.error}`)
assert.equal(info.info.present, true)
assert.equal(info.info.projectName, 'Newest Editor Project')
assert.equal(info.info.sizeBytes, snapshot.length)
assert.deepEqual(info.info.libraries, [{ name: 'Standard', version: '1.0.0', hash: 'f00d' }])
const refused = await operator.retrieveProjectSnapshot()
assert.deepEqual(refused, { success: false, error: 'This account is not an administrator on that device.' })
const fetched = await admin.retrieveProjectSnapshot()
assert.ok(fetched.success, `retrieve: ${fetched.error}`)
assert.equal(fetched.projectName, 'Newest Editor Project')
assert.ok(fetched.archive.equals(snapshot), 'the archive comes back byte for byte')
step('snapshot described to the operator, refused to it, handed back to the admin')

// --- statistics: per task ----------------------------------------------------------------
status = await admin.statusCommand('/api/status?include_stats=true')
const tasks = toTasks(status.timingStats)
assert.ok(tasks.length >= 1, JSON.stringify(status.timingStats))
for (const t of tasks) {
  assert.ok(isString(t.name) && typeof t.scan_count === 'number' && typeof t.overruns === 'number', JSON.stringify(t))
  for (const k of ['scan_time', 'cycle_time', 'cycle_latency']) {
    for (const s of ['min', 'max', 'avg']) {
      const v = t[`${k}_${s}`]
      assert.ok(v === null || typeof v === 'number', `${k}_${s}: ${v}`)
    }
  }
}
step(`timing stats: tasks ${tasks.map((t) => t.name).join(', ')}`)

// --- the run/stop switch -------------------------------------------------------------------
const moved = await admin.mutate('POST', '/api/switch', { position: 'stop' })
assert.ok(moved.success, `switch: ${moved.error}`)
for (const end = Date.now() + 10000; ; ) {
  status = await admin.statusCommand('/api/status')
  if (status.status === 'STATUS:STOPPED') break
  assert.ok(Date.now() < end, `the switch stops the PLC: ${status.status}`)
  await sleep(100)
}
assert.equal(status.switchPosition, 'stop')
assert.deepEqual(await admin.setPlcState('run'), { success: false, refusedBySwitch: true })
assert.ok((await admin.mutate('POST', '/api/switch', { position: 'run' })).success)
assert.deepEqual(await admin.setPlcState('run'), { success: true, state: 'run' })
step('the switch at STOP refuses the start (refusedBySwitch); back at RUN it starts')

// --- EtherCAT: the status handler's shape check --------------------------------------------
const ecat = await admin.get('/api/discovery/ethercat/status', (data) => {
  const parsed = json(data)
  if (!parsed || typeof parsed.available !== 'boolean' || !isString(parsed.message)) {
    throw new Error('EtherCAT status response did not match expected shape')
  }
  return parsed
})
assert.ok(ecat.success, ecat.error)
assert.deepEqual(ecat.data, { available: false, message: 'No EtherCAT master on this runtime' })
step('EtherCAT: not available, with the reason')

// --- the license function codes on the debug channel ---------------------------------------
const socket = io(`https://${host}:${port}/api/debug`, {
  transports: ['websocket'],
  auth: { token: admin.token },
  rejectUnauthorized: false,
  reconnection: false,
  timeout: TIMEOUT_MS,
})
await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('debug connect timeout')), TIMEOUT_MS)
  socket.on('connect_error', reject)
  socket.on('connected', (d) => {
    clearTimeout(t)
    d.status === 'ok' ? resolve() : reject(new Error('Connection failed: invalid status'))
  })
})
const debugCommand = (hex) =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('Request timeout')), TIMEOUT_MS)
    const handler = (response) => {
      clearTimeout(t)
      socket.off('debug_response', handler)
      resolve(response)
    }
    socket.on('debug_response', handler)
    socket.emit('debug_command', { command: hex })
  })
const LIC_UNSUPPORTED = 0x85
for (const [hex, fc] of [
  ['48', 0x48],
  ['49 00 02 AB CD', 0x49],
  ['4A', 0x4a],
]) {
  const response = await debugCommand(hex)
  assert.equal(response.success, true, JSON.stringify(response))
  const bytes = response.data.split(/\s+/).map((b) => parseInt(b, 16))
  assert.ok(bytes.length >= 2 && bytes[0] === fc, `${hex}: function code echoed (${response.data})`)
  assert.equal(bytes[1], LIC_UNSUPPORTED, `${hex}: LIC_UNSUPPORTED, the "not supported" outcome (${response.data})`)
}
socket.disconnect()
step('license codes 0x48-0x4A: LIC_UNSUPPORTED')

console.log('editor-newest: OK')
