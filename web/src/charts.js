// Chart.js helpers: every chart is a <canvas> in a card, drawn from API data, with the metric's
// definition one click away.
import Chart from 'chart.js/auto';

const PALETTE = ['#2563eb', '#16a34a', '#dc2626', '#9333ea', '#ea580c', '#0891b2', '#ca8a04'];
const live = new Set();

/** Destroys the charts of the previous page. */
export function resetCharts() {
  for (const chart of live) chart.destroy();
  live.clear();
}

function draw(canvas, config) {
  const chart = new Chart(canvas, {
    ...config,
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      plugins: { legend: { position: 'bottom' } },
      ...config.options,
    },
  });
  canvas.dataset.points = String(config.data.datasets.reduce((n, d) => n + d.data.filter((v) => v !== null && v !== undefined).length, 0));
  live.add(chart);
  return chart;
}

/** A line or bar chart over days: `series` is [{ label, values, type? }]. */
export function timeChart(canvas, { days, series, type = 'line', yLabel, stacked = false }) {
  return draw(canvas, {
    type,
    data: {
      labels: days,
      datasets: series.map((s, i) => ({
        type: s.type ?? type,
        label: s.label,
        data: s.values,
        borderColor: PALETTE[i % PALETTE.length],
        backgroundColor: PALETTE[i % PALETTE.length] + (type === 'bar' || s.type === 'bar' ? 'cc' : '33'),
        spanGaps: true,
        tension: 0.25,
        pointRadius: 0,
      })),
    },
    options: {
      scales: {
        x: { stacked, ticks: { maxTicksLimit: 10 } },
        y: { stacked, beginAtZero: true, title: { display: Boolean(yLabel), text: yLabel } },
      },
    },
  });
}

/** A horizontal bar chart of named values (0–1 components, repositories, …). */
export function barChart(canvas, { labels, values, label, max }) {
  return draw(canvas, {
    type: 'bar',
    data: { labels, datasets: [{ label, data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    options: { indexAxis: 'y', plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, max } } },
  });
}

/** Every day from `from` to `to` (YYYY-MM-DD), for charts where a missing row means zeros. */
export function daysBetween(from, to) {
  const out = [];
  for (let d = new Date(`${from}T00:00:00Z`); d <= new Date(`${to}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

/** Values of `field` of `rows` on each of `days` (missing → `fill`). */
export function byDay(days, rows, field, fill = 0, map = (v) => v) {
  const index = new Map(rows.map((r) => [r.day, r]));
  return days.map((d) => {
    const v = index.get(d)?.[field];
    return v === undefined || v === null ? fill : map(v);
  });
}
