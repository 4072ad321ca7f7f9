// The two kinds of plot, on the vendored uPlot (a global from its IIFE build): the latency
// histogram (bars on a log scale with the percentiles marked) and a trend of one variable.
// Each chart follows its container's size.

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function axisColours() {
  return { stroke: css('--muted'), grid: { stroke: css('--line'), width: 1 }, ticks: { stroke: css('--line'), width: 1 } };
}

function sized(el, make) {
  const rect = () => ({ width: Math.max(200, Math.floor(el.clientWidth)), height: Math.max(80, Math.floor(el.clientHeight)) });
  const plot = make(rect());
  const observer = new ResizeObserver(() => {
    const r = rect();
    if (r.width !== plot.width || r.height !== plot.height) plot.setSize(r);
  });
  observer.observe(el);
  return { plot, dispose: () => { observer.disconnect(); plot.destroy(); } };
}

/** The latency histogram in `el`: `update(h)` takes the server's histogram message. */
export function histogramChart(el) {
  let marks = {};
  const colours = axisColours();
  const { plot } = sized(el, ({ width, height }) => new uPlot({
    width,
    height,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: {
      x: { time: false },
      // From 0.5, so that a bucket of one wake-up still shows as a bar.
      y: { distr: 3, log: 10, range: (u, min, max) => [0.5, Math.pow(10, Math.ceil(Math.log10(Math.max(10, max) * 1.5)))] },
    },
    axes: [
      { ...colours, label: 'wake-up latency, µs', labelSize: 20, size: 40 },
      { ...colours, label: 'wake-ups', labelSize: 20, size: 60 },
    ],
    series: [
      {},
      {
        label: 'wake-ups',
        stroke: css('--accent'),
        fill: css('--accent') + '99',
        width: 1,
        paths: uPlot.paths.bars({ size: [1, Infinity, 1], align: 0 }),
        points: { show: false },
      },
    ],
    hooks: {
      // The percentiles as vertical lines over the bars.
      draw: [(u) => {
        const ctx = u.ctx;
        const { top, height } = u.bbox;
        for (const [key, colour, label] of [['p50', '--p50', 'p50'], ['p99', '--p99', 'p99'], ['p999', '--p999', 'p99.9']]) {
          const us = marks[key];
          if (us === null || us === undefined) continue;
          const x = Math.round(u.valToPos(us + 0.5, 'x', true));
          ctx.save();
          ctx.strokeStyle = css(colour);
          ctx.fillStyle = css(colour);
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
          const row = key === 'p50' ? 1 : key === 'p99' ? 2 : 3;
          const w = ctx.measureText(label).width;
          const right = u.bbox.left + u.bbox.width;
          const lx = x + 4 * devicePixelRatio + w > right ? x - 4 * devicePixelRatio - w : x + 4 * devicePixelRatio;
          ctx.fillText(label, lx, top + 14 * devicePixelRatio * row);
          ctx.restore();
        }
      }],
    },
  }, [[0], [null]], el));

  return {
    plot,
    /** Draws a histogram message: sparse `[µs, count]` buckets and the percentiles. */
    update(h) {
      marks = { p50: h.p50_us, p99: h.p99_us, p999: h.p999_us };
      const pairs = h.buckets || [];
      const last = pairs.length ? pairs[pairs.length - 1][0] : 0;
      // Up to the last filled bucket, a little past p99.9, at least 20 µs.
      const width = Math.min(h.bucket_count || 1000, Math.max(20, last + 2, (h.p999_us || 0) + 5));
      const xs = new Array(width);
      const ys = new Array(width).fill(null);
      // Bucket i holds wake-ups i to i+1 µs late: its bar is centred on i + 0.5.
      for (let i = 0; i < width; i += 1) xs[i] = i + 0.5;
      for (const [us, n] of pairs) if (us < width && n > 0) ys[us] = n;
      plot.setData([xs, ys]);
    },
    /** Points drawn (filled buckets), for the tests. */
    drawn() {
      return (plot.data[1] || []).filter((v) => v !== null && v > 0).length;
    },
  };
}

/** A trend of one variable over the last `seconds`: `push(t, v)` adds a point. */
export function trendChart(el, { seconds = 300, step = false, clock = null } = {}) {
  const xs = [];
  const ys = [];
  const colours = axisColours();
  const { plot, dispose } = sized(el, ({ width, height }) => new uPlot({
    width,
    height,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { auto: true, range: (u, min, max) => (min === max ? [min - 1, max + 1] : uPlot.rangeNum(min, max, 0.1, true)) } },
    axes: [
      {
        ...colours,
        size: 30,
        space: 70,
        // Whole seconds at least: labels of a trend a few seconds long do not repeat.
        incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600],
        values: clock ? (u, splits) => splits.map((t) => clock(new Date(t * 1000))) : undefined,
      },
      { ...colours, size: 56 },
    ],
    series: [
      {},
      {
        stroke: css('--accent'),
        width: 1.5,
        points: { show: false },
        paths: step ? uPlot.paths.stepped({ align: 1 }) : undefined,
      },
    ],
  }, [xs, ys], el));
  let dirty = false;
  return {
    push(t, v) {
      xs.push(t);
      ys.push(v);
      const oldest = t - seconds;
      let drop = 0;
      while (drop < xs.length && xs[drop] < oldest) drop += 1;
      if (drop) {
        xs.splice(0, drop);
        ys.splice(0, drop);
      }
      dirty = true;
    },
    /** Redraws if points were added (called once per tick while visible). */
    draw() {
      if (dirty) {
        plot.setData([xs, ys]);
        dirty = false;
      }
    },
    points() {
      return xs.length;
    },
    dispose,
  };
}
