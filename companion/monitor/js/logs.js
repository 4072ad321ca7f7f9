// Logs: the runtime log's tail, followed live, filtered by level (that level and above).

import { $, localTime } from './format.js';

const KEEP = 2000;
const RANK = { DEBUG: 0, INFO: 1, WARNING: 2, ERROR: 3 };

export function logs() {
  const list = $('log-list');
  const level = $('log-level');
  const follow = $('log-follow');
  const entries = [];
  let visible = false;

  function shown(e) {
    return (RANK[e.level] ?? 1) >= (RANK[level.value] ?? 0);
  }

  function line(e) {
    const div = document.createElement('div');
    div.className = 'log-line';
    div.dataset.level = e.level;
    div.dataset.id = String(e.id);
    const t = document.createElement('span');
    t.className = 't';
    t.textContent = localTime(e.timestamp);
    const lv = document.createElement('span');
    lv.className = 'lv';
    lv.textContent = e.level;
    const m = document.createElement('span');
    m.className = 'm';
    m.textContent = e.message;
    div.append(t, lv, m);
    return div;
  }

  function render() {
    list.replaceChildren(...entries.filter(shown).map(line));
    if (follow.checked) list.scrollTop = list.scrollHeight;
  }

  level.addEventListener('change', render);
  follow.addEventListener('change', () => {
    if (follow.checked) list.scrollTop = list.scrollHeight;
  });
  // Scrolling up stops following; scrolling back to the end follows again.
  list.addEventListener('scroll', () => {
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    if (follow.checked !== atEnd) follow.checked = atEnd;
  });

  return {
    name: 'logs',
    enter() {
      visible = true;
      render();
    },
    leave() {
      visible = false;
    },
    session() {},
    logs(batch) {
      entries.push(...batch);
      const over = entries.length - KEEP;
      if (over > 0) entries.splice(0, over);
      if (!visible) return;
      const fresh = batch.filter(shown).map(line);
      if (over > 0) {
        render();
        return;
      }
      list.append(...fresh);
      if (follow.checked) list.scrollTop = list.scrollHeight;
    },
  };
}
