// Latency: the scan thread's wake-up latency histogram as a plot (1 µs buckets, counts on a
// log scale, p50/p99/p99.9 marked), live while shown, with a reset for the user role.
// rt-core runs one scan task; a runtime with several would list one plot per task here.

import { api, mayAct } from './api.js';
import { $, setText, num } from './format.js';
import { histogramChart } from './charts.js';

export function latency() {
  let chart = null;
  let last = null;
  const action = $('lat-action');

  function applyRole() {
    const b = $('lat-reset');
    b.classList.toggle('denied', !mayAct());
    b.title = mayAct() ? 'Zero the statistics and the histogram' : 'Resetting needs the user role';
    b.setAttribute('aria-disabled', String(!mayAct()));
  }

  $('lat-reset').addEventListener('click', async () => {
    setText(action, 'Resetting…');
    try {
      await api('/monitor/reset-stats', { method: 'POST', body: {} });
      setText(action, 'Statistics and histogram reset');
    } catch (e) {
      setText(action, `Reset refused: ${e.message}`);
    }
  });

  function draw(h) {
    if (!chart) chart = histogramChart($('lat-chart'));
    chart.update(h);
    setText($('lat-count'), num(h.count));
    setText($('lat-min'), num(h.min_us));
    setText($('lat-avg'), num(h.avg_us));
    setText($('lat-p50'), num(h.p50_us));
    setText($('lat-p99'), num(h.p99_us));
    setText($('lat-p999'), num(h.p999_us));
    setText($('lat-max'), num(h.max_us));
    setText($('lat-overflow'), num(h.overflow));
    $('lat-chart').dataset.points = String(chart.drawn());
  }

  return {
    name: 'latency',
    wantsHistogram: true,
    enter() {
      if (last) draw(last);
    },
    leave() {},
    session: applyRole,
    histogram(h, visible) {
      last = h;
      if (visible) draw(h);
    },
  };
}
