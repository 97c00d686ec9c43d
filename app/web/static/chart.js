// Waits through the day as an inline SVG: one bar per hour for the average wait of the tickets
// first called in that hour, a line for the longest wait, the issued count under each hour and a
// dashed line at the target wait. Drawn from the daily report's `hours`.

const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (text !== null) node.textContent = text;
  return node;
}

function niceStep(max) {
  const raw = max / 4;
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 5, 10]) if (raw <= m * power) return m * power;
  return 10 * power;
}

/**
 * hours: [{hour, issued, called, avg_wait_s, max_wait_s}]
 * options: {targetS, currentHour, from, to}
 */
export function waitChart(hours, { targetS = null, currentHour = null, from = 8, to = 18 } = {}) {
  const byHour = new Map();
  for (const row of hours || []) {
    const hour = Number.parseInt(row.hour, 10);
    if (Number.isInteger(hour)) byHour.set(hour, row);
  }
  // Show the usual day, widened to any hour with activity.
  let first = from;
  let last = to;
  for (const [hour, row] of byHour) {
    if (row.issued || row.called) {
      first = Math.min(first, hour);
      last = Math.max(last, hour);
    }
  }
  if (currentHour !== null) {
    first = Math.min(first, currentHour);
    last = Math.max(last, currentHour);
  }
  const span = [];
  for (let hour = first; hour <= last; hour += 1) span.push(hour);

  const W = 880;
  const H = 400;
  const left = 56;
  const right = 12;
  const top = 40;
  const bottom = 64;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  const minutes = (s) => (s === null || s === undefined ? null : s / 60);
  let maxMin = targetS ? targetS / 60 : 5;
  for (const hour of span) {
    const row = byHour.get(hour);
    if (!row) continue;
    maxMin = Math.max(maxMin, minutes(row.max_wait_s) || 0, minutes(row.avg_wait_s) || 0);
  }
  const step = niceStep(maxMin * 1.1);
  const yMax = Math.ceil((maxMin * 1.1) / step) * step || 5;
  const y = (m) => top + plotH - (m / yMax) * plotH;
  const band = plotW / span.length;

  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'wait-chart',
    role: 'img',
    'aria-label': '今日每小时等候时间 Waits through the day',
    preserveAspectRatio: 'xMidYMid meet',
  });
  // Grid and y labels.
  for (let m = 0; m <= yMax + 1e-9; m += step) {
    root.append(svg('line', { x1: left, x2: W - right, y1: y(m), y2: y(m), class: 'grid' }));
    root.append(svg('text', { x: left - 10, y: y(m) + 7, 'text-anchor': 'end', class: 'axis' }, `${Math.round(m)}`));
  }
  root.append(svg('text', { x: 4, y: top - 16, class: 'axis unit' }, '分钟 min'));
  // Bars, labels.
  const points = [];
  span.forEach((hour, i) => {
    const row = byHour.get(hour) || {};
    const x = left + i * band;
    const avg = minutes(row.avg_wait_s);
    if (hour === currentHour) {
      root.append(svg('rect', { x, y: top, width: band, height: plotH, class: 'now-band' }));
    }
    if (avg !== null) {
      const barY = y(avg);
      root.append(svg('rect', {
        x: x + band * 0.2,
        y: barY,
        width: band * 0.6,
        height: Math.max(1, top + plotH - barY),
        class: 'bar avg',
        'data-hour': hour,
      }));
    }
    const max = minutes(row.max_wait_s);
    if (max !== null) points.push([x + band / 2, y(max)]);
    root.append(svg('text', { x: x + band / 2, y: H - bottom + 28, 'text-anchor': 'middle', class: 'axis' }, span.length > 14 ? String(hour) : `${String(hour).padStart(2, '0')}时`));
    root.append(svg('text', { x: x + band / 2, y: H - bottom + 54, 'text-anchor': 'middle', class: 'axis issued' }, row.issued ? `${row.issued}张` : ''));
  });
  if (points.length) {
    root.append(svg('polyline', { points: points.map((p) => p.join(',')).join(' '), class: 'line max' }));
    for (const [px, py] of points) root.append(svg('circle', { cx: px, cy: py, r: 6, class: 'dot max' }));
  }
  if (targetS) {
    const ty = y(targetS / 60);
    root.append(svg('line', { x1: left, x2: W - right, y1: ty, y2: ty, class: 'target' }));
    root.append(svg('text', { x: W - right - 6, y: ty - 8, 'text-anchor': 'end', class: 'axis target-label' }, `目标 target ${Math.round(targetS / 60)} min`));
  }
  root.append(svg('line', { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: 'baseline' }));
  return root;
}
