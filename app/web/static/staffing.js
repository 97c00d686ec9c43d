// The dashboard's staffing block (SPEC §11, docs/staffing.md): today's plan hour by hour beside
// the counters open now, and a what-if ("with 4 counters at 10:00"). The plan comes from
// GET …/staffing (refreshed every few minutes: past hours gain what was open); the counters open
// now from the dashboard's live queue view, which dashboard.js passes on as `hallq:view`.

import { $, h, bi, api, ApiError, page, localHour, debugState } from './common.js';

const PLAN_EVERY_MS = 5 * 60_000;
// Serving counters, as the plan counts them (a paused counter does not serve).
const SERVING = new Set(['open', 'closing']);

const state = debugState();
const base = `/branches/${encodeURIComponent(page.branch)}/staffing`;
let plan = null;
let openNow = null;

function pct(value) {
  return value === null || value === undefined ? '—' : `${value.toFixed(1)}%`;
}

function expected(hour) {
  const total = Object.values(hour.arrivals).reduce((sum, n) => sum + n, 0);
  return hour.recommended_counters === null ? '—' : total.toFixed(1);
}

function currentRow() {
  if (!plan) return null;
  const label = `${String(localHour()).padStart(2, '0')}:00`;
  return plan.hours.find((hour) => hour.hour === label) || null;
}

function renderNow() {
  $('#staffing-open-now').textContent = openNow === null ? '—' : String(openNow);
  const now = currentRow();
  const recommended = now ? now.recommended_counters : null;
  $('#staffing-recommended-now').textContent = recommended === null ? '—' : String(recommended);
  const short = openNow !== null && recommended !== null && openNow < recommended;
  $('#staffing-now').dataset.short = String(short);
}

function hourRow(hour, current) {
  const open = hour === current ? openNow : hour.open_counters;
  const short = open !== null && hour.recommended_counters !== null && open < hour.recommended_counters;
  const warning = hour.reachable ? null : h('span', {
    class: 'unreachable',
    title: hour.short_services.length
      ? `${hour.short_services.join(', ')}: 即使全部窗口开放也达不到 · short even with every counter`
      : '即使全部窗口开放也达不到 · not reached even with every counter',
  }, ' ⚠');
  return h(
    'tr',
    { dataset: { hour: hour.hour, short: String(short) }, class: hour === current ? 'now' : null },
    h('td', {}, hour.hour),
    h('td', { class: 'num' }, expected(hour)),
    h('td', { class: 'num recommended', title: hour.counter_codes.join(' · ') },
      hour.recommended_counters === null ? '—' : String(hour.recommended_counters)),
    h('td', { class: 'num open' }, open === null || open === undefined ? '—' : String(open)),
    h('td', { class: 'num' }, pct(hour.expected_within_target_pct), warning),
  );
}

function renderPlan() {
  const node = $('#staffing');
  const current = currentRow();
  $('#staffing-basis').replaceChildren(plan.based_on.days
    ? bi(`服务水平 ${plan.service_level_pct}% · 参考 ${plan.based_on.days} 天`,
      `service level ${plan.service_level_pct}%, from ${plan.based_on.days} days`)
    : bi('暂无历史数据，无法预测', 'No history yet: nothing to forecast from'));
  $('#staffing-hours').replaceChildren(...plan.hours.map((hour) => hourRow(hour, current)));
  const hours = $('#whatif-hour');
  const chosen = hours.value;
  hours.replaceChildren(...plan.hours.map((hour) => h('option', { value: hour.hour }, hour.hour)));
  hours.value = plan.hours.some((hour) => hour.hour === chosen) ? chosen : (current || plan.hours[0] || {}).hour || '';
  $('#whatif-counters').max = String(plan.branch_counters);
  node.dataset.state = plan.hours.length ? 'loaded' : 'closed';
  renderNow();
  const row = current && $(`#staffing-hours tr[data-hour="${current.hour}"]`);
  if (row) row.scrollIntoView({ block: 'nearest' });
}

async function loadPlan() {
  try {
    plan = await api(base);
    state.staffing = plan;
    renderPlan();
  } catch (error) {
    $('#staffing').dataset.state = 'missing';
    $('#staffing-basis').replaceChildren(bi('排班建议暂不可用', 'The staffing plan is not available'),
      h('small', {}, ` (${error instanceof ApiError ? error.detail : String(error)})`));
  }
}

async function whatIf(event) {
  event.preventDefault();
  const answer = $('#whatif-answer');
  const query = new URLSearchParams({ hour: $('#whatif-hour').value, counters: $('#whatif-counters').value });
  answer.dataset.state = 'asking';
  try {
    const result = await api(`${base}/what-if?${query}`);
    answer.dataset.state = 'answered';
    answer.replaceChildren(result.expected_within_target_pct === null
      ? bi('无预测（无历史或无人到达）', 'nothing forecast (no history, or nobody expected)')
      : bi(`预计 ${pct(result.expected_within_target_pct)} 目标内叫号（建议 ${result.recommended_counters} 个）`,
        `${pct(result.expected_within_target_pct)} expected within target (${result.recommended_counters} recommended)`));
  } catch (error) {
    answer.dataset.state = 'refused';
    answer.replaceChildren(error instanceof ApiError ? error.detail : String(error));
  }
}

document.addEventListener('hallq:view', (event) => {
  openNow = (event.detail.counters || []).filter((c) => SERVING.has(c.state)).length;
  if (plan) renderPlan();
  else renderNow();
});
$('#whatif').addEventListener('submit', whatIf);
loadPlan();
setInterval(loadPlan, PLAN_EVERY_MS);
