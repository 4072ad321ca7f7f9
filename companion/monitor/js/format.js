// Small helpers shared by the views: element lookup, number and value formatting.

export const $ = (id) => document.getElementById(id);

/** Sets an element's text only when it changed (no needless layout work). */
export function setText(el, text) {
  const t = String(text);
  if (el.textContent !== t) el.textContent = t;
}

const grouped = new Intl.NumberFormat('en-US');

/** A count or whole µs figure; `—` when there is none. */
export function num(v) {
  return v === null || v === undefined || Number.isNaN(v) ? '—' : grouped.format(v);
}

/** A duration in seconds as `3 d 4 h`, `12 min`, `45 s`. */
export function since(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${s} s`;
}

const pad = (n) => String(n).padStart(2, '0');

/** An ISO time as local `YYYY-MM-DD hh:mm:ss` (unambiguous in every locale). */
export function localTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}`;
}

/** `hh:mm:ss` of a date. */
export function clock(d) {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** The longest `A.B.` prefix every name shares (`CONFIG0.RES0.INSTANCE0.`), or ''. */
export function commonPrefix(names) {
  if (names.length < 2) return '';
  let prefix = names[0];
  for (const n of names) {
    while (!n.startsWith(prefix)) prefix = prefix.slice(0, -1);
    if (!prefix) return '';
  }
  const dot = prefix.lastIndexOf('.');
  return dot >= 0 ? prefix.slice(0, dot + 1) : '';
}

const INT_TYPES = new Set(['SINT', 'INT', 'DINT', 'LINT', 'USINT', 'UINT', 'UDINT', 'ULINT', 'BYTE', 'WORD', 'DWORD', 'LWORD']);
const BIT_STRINGS = new Set(['BYTE', 'WORD', 'DWORD', 'LWORD']);

/** A value from the server (already decoded by IEC type) as the page shows it. */
export function showValue(type, v) {
  if (v === null || v === undefined) return '—';
  const t = (type || '').toUpperCase();
  if (typeof v === 'boolean') return v ? 'TRUE' : 'FALSE';
  if (typeof v === 'number') {
    if (BIT_STRINGS.has(t)) return `16#${v.toString(16).toUpperCase()}`;
    if (t === 'REAL' || t === 'LREAL') return Number.isInteger(v) ? v.toFixed(1) : String(Number(v.toPrecision(t === 'REAL' ? 7 : 15)));
    return String(v);
  }
  if (t === 'STRING' || t === 'WSTRING') return `'${v}'`;
  return String(v);
}

/** What the force box suggests typing for a type. */
export function example(type) {
  const t = (type || '').toUpperCase();
  if (t === 'BOOL') return 'TRUE or FALSE';
  if (INT_TYPES.has(t)) return BIT_STRINGS.has(t) ? 'e.g. 16#FF or 255' : 'e.g. 42';
  if (t === 'REAL' || t === 'LREAL') return 'e.g. 3.5';
  if (t === 'TIME') return 'e.g. T#1s500ms';
  if (t === 'STRING' || t === 'WSTRING') return 'text';
  return 'value';
}

/** Whether a type can be drawn as a trend, and the number to draw for a value. */
export function trendable(type) {
  const t = (type || '').toUpperCase();
  return t === 'BOOL' || t === 'TIME' || t === 'REAL' || t === 'LREAL' || INT_TYPES.has(t);
}

export function trendNumber(type, v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return v;
  if ((type || '').toUpperCase() === 'TIME' && typeof v === 'string') return timeMs(v);
  return null;
}

/** `T#1d2h3m4s5ms6us7ns` (as the server writes TIME) in milliseconds. */
export function timeMs(text) {
  const m = /^T#(-?)(.*)$/i.exec(text.trim());
  if (!m) return null;
  const scale = { d: 86400000, h: 3600000, m: 60000, s: 1000, ms: 1, us: 1e-3, ns: 1e-6 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|us|ns|d|h|m|s)/gy;
  let part;
  let seen = 0;
  while ((part = re.exec(m[2])) !== null) {
    total += parseFloat(part[1]) * scale[part[2]];
    seen = re.lastIndex;
  }
  if (seen !== m[2].length) return null;
  return m[1] ? -total : total;
}
