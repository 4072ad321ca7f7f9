// Overview: the PLC's state with start and stop, the program, the cycle figures (live),
// plugins and protocol servers, the runtime.

import { api, mayAct } from './api.js';
import { $, setText, num, since, localTime } from './format.js';

const PLUGINS_EVERY_MS = 5000;

export function overview() {
  let pluginsTimer = null;
  let uptimeBase = null;
  let programGen = -1;
  const action = $('ov-action');

  async function command(path, verb) {
    setText(action, `${verb}…`);
    for (const b of [$('ov-start'), $('ov-stop')]) b.disabled = true;
    try {
      const r = await api(path);
      setText(action, `${verb}: ${r.status}`);
    } catch (e) {
      setText(action, `${verb} refused: ${e.message}`);
    } finally {
      for (const b of [$('ov-start'), $('ov-stop')]) b.disabled = false;
      applyRole();
    }
  }

  function applyRole() {
    for (const b of [$('ov-start'), $('ov-stop')]) {
      b.classList.toggle('denied', !mayAct());
      b.title = mayAct() ? '' : 'Starting and stopping need the user role';
      b.setAttribute('aria-disabled', String(!mayAct()));
    }
  }

  // Greyed for a viewer but still sent: the server decides, and its refusal is shown.
  $('ov-start').addEventListener('click', () => command('/start-plc', 'Start'));
  $('ov-stop').addEventListener('click', () => command('/stop-plc', 'Stop'));

  async function loadProgram() {
    try {
      const o = await api('/monitor/overview');
      const p = o.program;
      setText($('ov-generator'), p ? p.generator : 'no program loaded');
      setText($('ov-md5'), p && p.md5 ? p.md5 : '—');
      $('ov-md5').title = p && p.md5 ? p.md5 : '';
      setText($('ov-uploaded'), p && p.uploaded ? localTime(p.uploaded) : '—');
      setText($('ov-period'), p ? num(p.period_us) : '—');
      setText($('ov-varcount'), p ? num(p.variables) : '—');
      setText($('ov-version'), o.runtime.version);
      setText($('ov-api'), o.runtime.api);
      uptimeBase = { at: Date.now(), s: o.runtime.uptime_s };
    } catch (e) {
      setText($('ov-generator'), e.message);
    }
  }

  async function loadPlugins() {
    const body = $('ov-plugins');
    try {
      const p = await api('/plugins');
      const rows = [];
      for (const pl of p.plugins || []) rows.push([pl.name, pl.state, pl.reason || '']);
      for (const [name, st] of Object.entries(p.protocols || {})) {
        rows.push([name, st.state, st.state === 'failed' ? st.error || '' : describeProtocol(st.status)]);
      }
      body.replaceChildren(...(rows.length ? rows.map(row) : [emptyRow('No plugins or protocol servers configured')]));
    } catch (e) {
      body.replaceChildren(emptyRow(e.message));
    }
  }

  return {
    name: 'overview',
    enter() {
      loadProgram();
      loadPlugins();
      pluginsTimer = setInterval(loadPlugins, PLUGINS_EVERY_MS);
    },
    leave() {
      clearInterval(pluginsTimer);
    },
    session: applyRole,
    tick(t, visible) {
      const state = t.status || 'UNKNOWN';
      const big = $('ov-state');
      big.dataset.state = state;
      setText(big, state);
      if (t.program_gen !== programGen) {
        programGen = t.program_gen;
        if (visible) loadProgram();
      }
      if (!visible) return;
      const s = t.stats || {};
      setText($('ov-scans'), num(s.scan_count));
      setText($('ov-overruns'), num(s.overruns));
      for (const [id, key] of [['scan', 'scan_time'], ['cycle', 'cycle_time'], ['lat', 'cycle_latency']]) {
        setText($(`ov-${id}-min`), num(s[`${key}_min`]));
        setText($(`ov-${id}-avg`), num(s[`${key}_avg`]));
        setText($(`ov-${id}-max`), num(s[`${key}_max`]));
      }
      if (uptimeBase) setText($('ov-uptime'), since(uptimeBase.s + (Date.now() - uptimeBase.at) / 1000));
    },
  };
}

function row([name, state, details]) {
  const li = document.createElement('li');
  const a = document.createElement('span');
  a.className = 'pl-name';
  a.textContent = name;
  const tag = document.createElement('span');
  tag.className = 'state-tag';
  tag.dataset.state = String(state).toLowerCase();
  tag.textContent = state;
  const c = document.createElement('span');
  c.className = 'pl-details';
  c.textContent = details;
  li.append(a, tag, c);
  return li;
}

function emptyRow(text) {
  const li = document.createElement('li');
  li.className = 'muted';
  li.textContent = text;
  return li;
}

const COUNTS = ['connections', 'clients', 'sessions', 'requests', 'exceptions', 'errors'];

/** A protocol server's status in one line: where it listens and its main counters (a
 *  counter of trouble only when it is not zero), for each part (server, master, …). */
function describeProtocol(status) {
  if (!status || typeof status !== 'object') return '';
  const parts = [];
  const describe = (label, o) => {
    const bits = [];
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === 'string' && /addr|endpoint|url|listen/i.test(k)) bits.unshift(`on ${v}`);
      else if (typeof v === 'number' && COUNTS.includes(k)) bits.push(`${v} ${k}`);
      else if (typeof v === 'number' && v > 0 && /error|refused|timeout|malformed|busy/i.test(k)) bits.push(`${v} ${k.replace(/_/g, ' ')}`);
      else if (Array.isArray(v) && v.length) bits.push(`${v.length} ${k}`);
    }
    if (bits.length) parts.push(label ? `${label} ${bits.join(', ')}` : bits.join(', '));
  };
  describe('', status);
  for (const [k, v] of Object.entries(status)) {
    if (v && typeof v === 'object' && !Array.isArray(v)) describe(k, v);
  }
  return parts.join('; ');
}
