// Manager dashboard (值班看板): waiting and longest wait per business type, counters with their
// state and current ticket, active alerts (live), a chart of today's waits by hour from the daily
// report, today's report as JSON or CSV, and today beside this week and this month (the period
// report's totals) with their downloads, and how good today's wait estimates were (accuracy.js).

import {
  $, h, bi, api, ApiError, download, page, COUNTER_STATE, TICKET_STATUS, PRIORITY,
  clockDuration, counterLabel, formatTime, localDate, localHour, debugState, loadBranch,
  requireToken, startClock, showBanner,
} from './common.js';
import { Live } from './live.js';
import { waitChart } from './chart.js';
import { renderAccuracy } from './accuracy.js';

const REPORT_EVERY_MS = 60_000;

const state = debugState();
let branch = null;
let view = null;
let report = null;
let reportError = null;

const ALERT_KIND = {
  long_wait: { zh: '等候超时', en: 'Long wait' },
  queue_length: { zh: '排队过长', en: 'Queue too long' },
  too_few_counters: { zh: '开放窗口不足', en: 'Too few counters open' },
};

function banner(zh, en, detail) {
  showBanner('error', zh, en, detail);
}

function targets() {
  return new Map(((branch && branch.services) || []).map((s) => [s.code, s.target_wait_s]));
}

function renderServices() {
  const target = targets();
  $('#services').replaceChildren(
    ...(view.services || []).map((svc) => {
      const t = target.get(svc.service);
      const over = t && svc.waiting > 0 && svc.longest_wait_s > t;
      return h(
        'tr',
        { dataset: { service: svc.service }, class: over ? 'over' : null },
        h('td', {}, h('b', { class: 'prefix' }, svc.prefix), ' ', svc.name),
        h('td', { class: 'num waiting-count' }, String(svc.waiting)),
        h('td', { class: 'num longest' }, svc.waiting ? clockDuration(svc.longest_wait_s) : '—'),
        h('td', { class: 'num' }, svc.waiting ? `${Math.round(svc.estimated_wait_s / 60)} min` : '—'),
        h('td', { class: 'num muted' }, t ? `${Math.round(t / 60)} min` : '—'),
      );
    }),
  );
}

function renderCounters() {
  $('#counters').replaceChildren(
    ...(view.counters || []).map((c) => {
      const label = counterLabel(c);
      const st = COUNTER_STATE[c.state] || { zh: c.state, en: c.state };
      const current = c.current;
      const status = current && (TICKET_STATUS[current.status] || { zh: current.status, en: current.status });
      return h(
        'div',
        { class: 'counter-card', dataset: { counter: c.code, state: c.state } },
        h('div', { class: 'cc-head' }, h('span', { class: 'cc-name' }, bi(label.zh, label.en)),
          h('span', { class: 'state-badge', dataset: { state: c.state } }, bi(st.zh, st.en))),
        h('div', { class: 'cc-current' }, current ? current.number : '—'),
        h('div', { class: 'cc-meta' },
          current ? bi(status.zh, status.en) : bi('无顾客', 'idle'),
          current && current.priority !== 'normal'
            ? h('span', { class: `tag prio-${current.priority}` }, bi(PRIORITY[current.priority].zh, PRIORITY[current.priority].en))
            : null),
        h('div', { class: 'cc-staff' }, c.staff ? bi(`营业员 ${c.staff}`, 'clerk') : ''),
        h('div', { class: 'cc-services' }, c.services.join(' · ')),
      );
    }),
  );
}

function renderAlerts() {
  const alerts = view.alerts || [];
  $('#alert-count').textContent = String(alerts.length);
  $('#alert-count').dataset.count = String(alerts.length);
  const list = $('#alerts');
  if (!alerts.length) {
    list.replaceChildren(h('li', { class: 'none' }, bi('暂无告警', 'No active alerts')));
    return;
  }
  list.replaceChildren(
    ...alerts.map((a) => {
      const kind = ALERT_KIND[a.kind] || { zh: a.kind, en: a.kind };
      const where = [a.service ? `业务 ${a.service}` : null, a.counter ? `窗口 ${a.counter}` : null]
        .filter(Boolean)
        .join(' · ');
      return h(
        'li',
        { class: `alert kind-${a.kind}`, dataset: { kind: a.kind } },
        h('div', { class: 'alert-head' }, h('b', {}, bi(kind.zh, kind.en)), where ? ` ${where}` : '',
          h('time', {}, ` ${formatTime(new Date(a.since))} 起 since`)),
        h('div', { class: 'alert-detail' }, a.detail),
      );
    }),
  );
}

function renderChart() {
  const node = $('#chart');
  if (reportError) {
    node.replaceChildren(
      h('p', { class: 'chart-missing' }, bi('今日报表暂不可用', 'Today’s report is not available'),
        h('small', {}, ` (${reportError})`)),
    );
    node.dataset.state = 'missing';
    return;
  }
  if (!report) return;
  const target = [...targets().values()].sort((a, b) => a - b);
  const median = target.length ? target[Math.floor(target.length / 2)] : null;
  node.replaceChildren(
    waitChart(report.hours || [], { targetS: median, currentHour: localHour() }),
  );
  node.dataset.state = 'drawn';
}

function reportPath(format) {
  const day = localDate();
  const query = new URLSearchParams({ date: day });
  if (format) query.set('format', format);
  return `/branches/${encodeURIComponent(page.branch)}/reports/daily?${query}`;
}

function updateReportLinks() {
  $('#report-json').href = `/api/v1${reportPath(null)}`;
  $('#report-csv').href = `/api/v1${reportPath('csv')}`;
}

function setupReportLinks() {
  for (const [id, format] of [['#report-json', null], ['#report-csv', 'csv']]) {
    $(id).addEventListener('click', async (event) => {
      // The API wants a Bearer token, which a plain link cannot send.
      event.preventDefault();
      const day = localDate();
      try {
        await download(reportPath(format), `hallq-${page.branch}-${day}.${format || 'json'}`);
      } catch (error) {
        banner('报表下载失败', 'Could not download the report', error.detail || String(error));
      }
    });
  }
  updateReportLinks();
}

// -- today, this week, this month -------------------------------------------------------------

const PERIODS = ['today', 'week', 'month'];
let periods = {};

function periodRange(kind) {
  const today = localDate();
  const day = new Date(`${today}T00:00:00Z`);
  if (kind === 'month') day.setUTCDate(1);
  else if (kind === 'week') day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7)); // Monday
  return { from: day.toISOString().slice(0, 10), to: today };
}

function periodPath(kind, format) {
  const query = new URLSearchParams(periodRange(kind));
  if (format) query.set('format', format);
  return `/branches/${encodeURIComponent(page.branch)}/reports/period?${query}`;
}

const PERIOD_ROWS = [
  ['issued', '取号', 'Issued', (v) => String(v)],
  ['served', '办结', 'Served', (v) => String(v)],
  ['avg_wait_s', '平均等候', 'Avg wait', (v) => clockDuration(v)],
  ['p90_wait_s', '90% 等候', 'p90 wait', (v) => clockDuration(v)],
  ['within_target_pct', '达标率', 'Within target', (v) => `${v.toFixed(1)}%`],
  ['abandoned_pct', '弃号率', 'Abandoned', (v) => `${v.toFixed(1)}%`],
  ['satisfaction_pct', '满意率', 'Satisfied', (v) => `${v.toFixed(1)}%`],
];

function renderPeriods() {
  $('#periods').replaceChildren(
    ...PERIOD_ROWS.map(([key, zh, en, show]) => h(
      'tr',
      { dataset: { figure: key } },
      h('td', {}, bi(zh, en)),
      ...PERIODS.map((kind) => {
        const total = periods[kind];
        const value = total ? total[key] : undefined;
        return h('td', { class: 'num', dataset: { period: kind } },
          value === null || value === undefined ? '—' : show(value));
      }),
    )),
  );
}

function setupPeriodDownloads() {
  $('#period-downloads').replaceChildren(
    h('td', {}, bi('下载', 'Download')),
    ...PERIODS.map((kind) => h(
      'td',
      { class: 'num' },
      ...['csv', 'xlsx'].map((format) => h('a', {
        class: 'dl',
        href: `/api/v1${periodPath(kind, format)}`,
        dataset: { period: kind, format },
        onclick: async (event) => {
          event.preventDefault(); // the API wants a Bearer token, which a plain link cannot send
          const { from, to } = periodRange(kind);
          try {
            await download(periodPath(kind, format), `hallq-${page.branch}-${from}-${to}.${format}`);
          } catch (error) {
            banner('报表下载失败', 'Could not download the report', error.detail || String(error));
          }
        },
      }, format === 'csv' ? 'CSV' : 'Excel')),
    )),
  );
}

async function loadPeriods() {
  const loaded = {};
  await Promise.all(PERIODS.map(async (kind) => {
    try {
      loaded[kind] = (await api(periodPath(kind, null))).total;
    } catch {
      loaded[kind] = null; // shown as —; the chart's note says why the reports are missing
    }
  }));
  periods = loaded;
  state.periods = periods;
  renderPeriods();
  setupPeriodDownloads();
  $('#periods').dataset.state = 'loaded';
}

async function loadReport() {
  try {
    report = await api(reportPath(null));
    reportError = null;
    loadPeriods();
  } catch (error) {
    report = null;
    reportError = error instanceof ApiError ? error.detail : String(error);
  }
  state.report = report;
  renderChart();
  if (report) renderAccuracy($('#accuracy'), report.services || []);
}

if (requireToken()) {
  startClock($('#clock'));
  setupReportLinks();
  loadBranch().then((b) => {
    branch = b;
    updateReportLinks();
    if (view) renderServices();
    loadReport();
  });
  setInterval(loadReport, REPORT_EVERY_MS);
  const live = new Live({
    onView(next) {
      view = next;
      document.dispatchEvent(new CustomEvent('hallq:view', { detail: next })); // staffing.js
      renderServices();
      renderCounters();
      renderAlerts();
    },
  });
  state.live = live;
  live.start();
}
