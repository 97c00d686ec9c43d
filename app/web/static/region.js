// The region report (/region, an admin token): one row per branch over a range of business
// days from GET /api/v1/reports/branches, sortable by any column, each branch linking to its
// dashboard; the same as CSV or xlsx.

import { $, $$, h, bi, api, ApiError, download, localDate, requireToken, showBanner, startClock, debugState } from './common.js';

const state = debugState();

// [key, zh, en, kind]: how each column is shown.
const COLUMNS = [
  ['branch', '营业厅', 'Branch', 'text'],
  ['name', '名称', 'Name', 'text'],
  ['issued', '取号', 'Issued', 'int'],
  ['served', '办结', 'Served', 'int'],
  ['avg_wait_s', '平均等候', 'Avg wait', 'min'],
  ['p90_wait_s', '90% 等候', 'p90 wait', 'min'],
  ['within_target_pct', '达标率', 'Within target', 'pct'],
  ['abandoned_pct', '弃号率', 'Abandoned', 'pct'],
  ['rating_avg', '平均评分', 'Rating', 'rating'],
  ['satisfaction_pct', '满意率', 'Satisfied', 'pct'],
];

let rows = [];
let sortKey = 'branch';
let sortDescending = false;

function shown(value, kind) {
  if (value === null || value === undefined) return '—';
  if (kind === 'min') return `${(value / 60).toFixed(1)} min`;
  if (kind === 'pct') return `${value.toFixed(1)}%`;
  if (kind === 'rating') return value.toFixed(2);
  return String(value);
}

function compare(a, b) {
  const x = a[sortKey];
  const y = b[sortKey];
  // Missing figures sort last either way.
  if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
  if (y === null || y === undefined) return -1;
  const order = typeof x === 'string' ? x.localeCompare(y) : x - y;
  return sortDescending ? -order : order;
}

function render() {
  $('#region-head').replaceChildren(
    ...COLUMNS.map(([key, zh, en]) => h(
      'th',
      {
        dataset: { key },
        'aria-sort': key === sortKey ? (sortDescending ? 'descending' : 'ascending') : null,
        onclick: () => {
          sortDescending = key === sortKey ? !sortDescending : key !== 'branch' && key !== 'name';
          sortKey = key;
          render();
        },
      },
      bi(zh, en),
    )),
  );
  const sorted = [...rows].sort(compare);
  $('#region-rows').replaceChildren(
    ...sorted.map((row) => h(
      'tr',
      { dataset: { branch: row.branch } },
      ...COLUMNS.map(([key, , , kind]) => {
        if (key === 'branch') {
          return h('td', { class: 'text' }, h('a', { href: `/dashboard/${encodeURIComponent(row.branch)}` }, row.branch));
        }
        return h('td', { class: kind === 'text' ? 'text' : null, dataset: { key } }, shown(row[key], kind));
      }),
    )),
  );
  state.order = sorted.map((row) => row.branch);
}

function range() {
  const form = $('#range');
  return { from: form.elements.from.value, to: form.elements.to.value };
}

function path(format) {
  const query = new URLSearchParams(range());
  if (format) query.set('format', format);
  return `/reports/branches?${query}`;
}

async function load() {
  try {
    const report = await api(path(null));
    rows = report.branches;
    $('#banner').hidden = true;
    render();
    document.body.dataset.ready = 'true';
  } catch (error) {
    showBanner('error', '无法读取报表', 'Cannot read the report', error instanceof ApiError ? error.detail : String(error));
  }
}

function preset(kind) {
  const today = localDate();
  const day = new Date(`${today}T00:00:00Z`);
  if (kind === 'month') day.setUTCDate(1);
  else day.setUTCDate(day.getUTCDate() - ((day.getUTCDay() + 6) % 7)); // back to Monday
  const form = $('#range');
  form.elements.from.value = day.toISOString().slice(0, 10);
  form.elements.to.value = today;
}

function start() {
  startClock($('#clock'));
  if (!requireToken()) return;
  preset('month');
  $('#range').addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  for (const button of $$('[data-preset]')) {
    button.addEventListener('click', () => {
      preset(button.dataset.preset);
      load();
    });
  }
  for (const format of ['csv', 'xlsx']) {
    $(`#download-${format}`).addEventListener('click', async (event) => {
      event.preventDefault(); // the API wants a Bearer token, which a plain link cannot send
      const { from, to } = range();
      try {
        await download(path(format), `hallq-branches-${from}-${to}.${format}`);
      } catch (error) {
        showBanner('error', '下载失败', 'Could not download', error.detail || String(error));
      }
    });
  }
  load();
}

start();
