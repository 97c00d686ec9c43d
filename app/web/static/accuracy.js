// The dashboard's "today's wait estimates" (SPEC §11): per business type, how far the waits
// quoted at issue were from the waits the customers had, from today's daily report (mean
// absolute error, bias and the share inside the quoted range; docs/accuracy.md).

import { h, bi, clockDuration } from './common.js';

// actual - quoted: positive, the customers waited longer than they were told.
function bias(seconds) {
  if (Math.round(seconds) === 0) return h('span', {}, '0:00');
  const late = seconds > 0;
  return h(
    'span',
    { class: late ? 'sign short' : 'sign long' },
    `${late ? '+' : '−'}${clockDuration(Math.abs(seconds))} `,
    late ? bi('偏短', 'too short') : bi('偏长', 'too long'),
  );
}

function figure(value, show) {
  return value === null || value === undefined ? '—' : show(value);
}

/** Fill `tbody` with a row per business type of the daily report's `services`. */
export function renderAccuracy(tbody, services) {
  tbody.replaceChildren(
    ...services.map((svc) => h(
      'tr',
      { dataset: { service: svc.service } },
      h('td', {}, svc.name || svc.service),
      h('td', { class: 'num mae' }, figure(svc.estimate_mae_s, clockDuration)),
      h('td', { class: 'num bias' }, figure(svc.estimate_bias_s, bias)),
      h('td', { class: 'num in-range' }, figure(svc.estimate_in_range_pct, (v) => `${v.toFixed(1)}%`)),
    )),
  );
  tbody.dataset.state = 'loaded';
}
