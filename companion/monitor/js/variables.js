// Variables: the running program's variables by name and IEC type (from the bundle it was
// built from, either Editor generation), searchable, with live values; pinned variables
// drawn as trends over the last minutes; force and release with the value typed as in the
// Editor. Forcing is greyed for a viewer, and the server refuses it anyway.

import { api, mayAct, ApiError } from './api.js';
import { $, setText, showValue, example, trendable, trendNumber, commonPrefix, clock } from './format.js';
import { trendChart } from './charts.js';

/** Rows shown at once (the server follows at most 256 variables per page, pins included). */
const MAX_ROWS = 200;
const MAX_PINS = 8;
const TREND_SECONDS = 300;

export function variables(ctx) {
  let vars = [];
  let byIndex = new Map();
  /** What every name starts with (`CONFIG0.RES0.INSTANCE0.`): shown once, not per row. */
  let prefix = '';
  let md5 = null;
  let programGen = -1;
  let visible = false;
  let shownRows = [];
  const rows = new Map();
  const values = new Map();
  const forced = new Map();
  let pins = [];
  const trends = new Map();
  let openForce = null;
  const search = $('var-search');
  const body = $('var-rows');
  const note = $('var-note');
  /** Why the names could not be loaded, and why the values are missing or old (per tick). */
  let loadError = '';
  let valuesNote = '';
  let hint = '';

  function showNote() {
    const text = loadError || hint || valuesNote;
    note.hidden = !text;
    setText(note, text);
  }

  const pinKey = () => `openplc-monitor-pins:${md5 || 'none'}`;

  function loadPins() {
    let names = [];
    try {
      names = JSON.parse(localStorage.getItem(pinKey()) || '[]');
    } catch (e) {
      names = [];
    }
    const byName = new Map(vars.map((v) => [v.name, v.index]));
    pins = (Array.isArray(names) ? names : []).map((n) => byName.get(n)).filter((i) => i !== undefined).slice(0, MAX_PINS);
  }

  function savePins() {
    localStorage.setItem(pinKey(), JSON.stringify(pins.map((i) => byIndex.get(i)?.name).filter(Boolean)));
  }

  async function load() {
    try {
      const r = await api('/variables');
      vars = r.variables || [];
      md5 = r.md5;
      byIndex = new Map(vars.map((v) => [v.index, v]));
      prefix = commonPrefix(vars.map((v) => v.name));
      loadError = '';
    } catch (e) {
      vars = [];
      byIndex = new Map();
      prefix = '';
      md5 = null;
      loadError = e instanceof ApiError ? e.message : String(e);
    }
    showNote();
    values.clear();
    for (const t of trends.values()) t.chart?.dispose();
    trends.clear();
    $('trends').replaceChildren();
    loadPins();
    render();
    renderTrends();
    ctx.watchChanged();
  }

  function matches(v, q) {
    return !q || v.name.toLowerCase().includes(q) || v.type.toLowerCase() === q;
  }

  const short = (name) => name.slice(prefix.length);

  function nameParts(full) {
    const name = short(full);
    const at = name.lastIndexOf('.');
    const frag = document.createDocumentFragment();
    if (at > 0) {
      const p = document.createElement('span');
      p.className = 'prefix';
      p.textContent = name.slice(0, at + 1);
      frag.append(p);
    }
    const b = document.createElement('b');
    b.textContent = at > 0 ? name.slice(at + 1) : name;
    frag.append(b);
    return frag;
  }

  function render() {
    const q = search.value.trim().toLowerCase();
    const hits = vars.filter((v) => matches(v, q));
    shownRows = hits.slice(0, MAX_ROWS);
    rows.clear();
    openForce = null;
    const tpl = $('tpl-var-row');
    const trs = shownRows.map((v) => {
      const tr = tpl.content.firstElementChild.cloneNode(true);
      tr.dataset.index = String(v.index);
      tr.dataset.name = v.name;
      const name = tr.querySelector('.name');
      name.append(nameParts(v.name));
      name.title = v.name;
      tr.querySelector('.type-inline').textContent = v.type;
      tr.querySelector('td.c-type').textContent = v.type;
      const pin = tr.querySelector('.pin');
      pin.disabled = !trendable(v.type);
      pin.addEventListener('click', () => togglePin(v.index));
      const force = tr.querySelector('.force-btn');
      force.addEventListener('click', () => toggleForce(v, tr));
      const row = { tr, value: tr.querySelector('.value'), pin, force };
      rows.set(v.index, row);
      paint(v.index, row);
      return tr;
    });
    body.replaceChildren(...trs);
    setText($('var-count'), vars.length ? `${hits.length} of ${vars.length}` : '');
    setText($('var-prefix'), prefix ? `in ${prefix.slice(0, -1)}` : '');
    const more = $('var-more');
    more.hidden = hits.length <= MAX_ROWS;
    setText(more, `Showing the first ${MAX_ROWS} of ${hits.length}: narrow the search to see the others.`);
    applyRole();
    ctx.watchChanged();
  }

  function paint(index, row) {
    const v = byIndex.get(index);
    const isForced = forced.has(index);
    const shownValue = isForced && !values.has(index) ? forced.get(index) : values.get(index);
    setText(row.value, showValue(v?.type, shownValue));
    if (row.tr.classList.contains('forced') !== isForced) {
      row.tr.classList.toggle('forced', isForced);
      setText(row.force, isForced ? 'Forced…' : 'Force…');
      row.force.setAttribute('aria-label', isForced ? `${v?.name} is forced: change or release` : `Force ${v?.name}`);
    }
    const pinned = pins.includes(index);
    row.pin.setAttribute('aria-pressed', String(pinned));
    setText(row.pin, pinned ? '★' : '☆');
    row.pin.title = pinned ? 'Unpin' : 'Pin as a trend';
  }

  function applyRole() {
    for (const el of body.querySelectorAll('.needs-user')) {
      el.classList.toggle('denied', !mayAct());
      el.title = mayAct() ? '' : 'Forcing needs the user role: the runtime refuses it for viewers';
      el.setAttribute('aria-disabled', String(!mayAct()));
    }
  }

  function togglePin(index) {
    const at = pins.indexOf(index);
    if (at >= 0) {
      pins.splice(at, 1);
    } else if (pins.length < MAX_PINS) {
      pins.push(index);
    } else {
      hint = `At most ${MAX_PINS} trends: unpin one first.`;
      showNote();
      return;
    }
    hint = '';
    showNote();
    savePins();
    const row = rows.get(index);
    if (row) paint(index, row);
    renderTrends();
    ctx.watchChanged();
  }

  function renderTrends() {
    $('trends-card').hidden = pins.length === 0;
    for (const [index, t] of trends) {
      if (!pins.includes(index)) {
        t.chart?.dispose();
        t.fig.remove();
        trends.delete(index);
      }
    }
    for (const index of pins) {
      if (trends.has(index)) continue;
      const v = byIndex.get(index);
      const fig = $('tpl-trend').content.firstElementChild.cloneNode(true);
      fig.dataset.index = String(index);
      fig.querySelector('.trend-name').textContent = short(v.name);
      fig.querySelector('.trend-name').title = v.name;
      fig.querySelector('.unpin').addEventListener('click', () => togglePin(index));
      $('trends').append(fig);
      const chart = trendChart(fig.querySelector('.chart'), { seconds: TREND_SECONDS, step: v.type.toUpperCase() === 'BOOL', clock });
      trends.set(index, { fig, chart, value: fig.querySelector('.trend-value') });
    }
  }

  function closeForce() {
    if (openForce) {
      openForce.formRow.remove();
      openForce.button.setAttribute('aria-expanded', 'false');
      openForce = null;
    }
  }

  function toggleForce(v, tr) {
    const wasThis = openForce && openForce.index === v.index;
    const button = tr.querySelector('.force-btn');
    closeForce();
    if (wasThis) {
      button.focus();
      return;
    }
    const formRow = $('tpl-force-row').content.firstElementChild.cloneNode(true);
    const form = formRow.querySelector('form');
    const input = form.querySelector('.force-input');
    const msg = form.querySelector('.force-msg');
    const label = form.querySelector('.force-label');
    const id = `force-${v.index}`;
    input.id = id;
    label.htmlFor = id;
    label.textContent = `Force ${short(v.name)} (${v.type}) to`;
    input.placeholder = example(v.type);
    const current = values.get(v.index);
    if (current !== undefined && current !== null) input.value = showValue(v.type, current).replace(/^'(.*)'$/, '$1');
    for (const el of form.querySelectorAll('.needs-user')) {
      el.classList.toggle('denied', !mayAct());
      el.title = mayAct() ? '' : 'Needs the user role: the runtime refuses it for viewers';
    }
    const say = (text, bad) => {
      msg.textContent = text;
      msg.classList.toggle('bad', bad);
    };
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      say('Forcing…', false);
      try {
        const r = await api('/monitor/force', { method: 'POST', body: { index: v.index, value: input.value } });
        say(`Forced to ${showValue(v.type, r.forced)}`, false);
      } catch (e) {
        say(e.message, true);
      }
    });
    form.querySelector('.release').addEventListener('click', async () => {
      say('Releasing…', false);
      try {
        await api('/monitor/release', { method: 'POST', body: { index: v.index } });
        say('Released', false);
      } catch (e) {
        say(e.message, true);
      }
    });
    form.querySelector('.cancel').addEventListener('click', () => {
      closeForce();
      button.focus();
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        closeForce();
        button.focus();
      }
    });
    tr.after(formRow);
    button.setAttribute('aria-expanded', 'true');
    openForce = { index: v.index, formRow, button };
    input.focus();
    input.select();
  }

  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(render, 150);
  });

  return {
    name: 'variables',
    enter() {
      visible = true;
      for (const t of trends.values()) t.chart.draw();
      ctx.watchChanged();
    },
    leave() {
      visible = false;
      ctx.watchChanged();
    },
    session() {
      applyRole();
    },
    /** The variables this view needs values of: the rows on screen and the pins. */
    wants() {
      const set = new Set(pins);
      if (visible) for (const v of shownRows) set.add(v.index);
      return [...set];
    },
    tick(t) {
      if (t.program_gen !== programGen) {
        programGen = t.program_gen;
        load();
        return;
      }
      for (const [i, v] of t.values) values.set(i, v);
      forced.clear();
      for (const [i, v] of t.forced) forced.set(i, v);
      if (visible) for (const [i, row] of rows) paint(i, row);
      const now = Date.now() / 1000;
      for (const [index, tr] of trends) {
        const v = byIndex.get(index);
        const val = values.get(index);
        tr.chart.push(now, trendNumber(v?.type, val));
        if (visible) {
          setText(tr.value, showValue(v?.type, val));
          tr.chart.draw();
          tr.fig.dataset.points = String(tr.chart.points());
        }
      }
      if ((t.values_note || '') !== valuesNote) {
        valuesNote = t.values_note || '';
        showNote();
      }
    },
  };
}
