// Clerk console (窗口) for one counter: sign in, the current ticket, Next and the other actions
// with keyboard shortcuts, and the queues this counter serves, live. A refused action shows the
// problem+json `detail` the API returned. A token with a staff code also sees its own tally of
// today (served, average service time, time signed in), which only that clerk (or a manager)
// may read.

import {
  $, $$, h, bi, setBi, api, ApiError, page, PRIORITY, COUNTER_STATE, TICKET_STATUS,
  clockDuration, counterLabel, formatTime, debugState, loadBranch, requireToken, startClock, showBanner,
} from './common.js';
import { Live } from './live.js';

const state = debugState();
const base = `/branches/${encodeURIComponent(page.branch)}/counters/${encodeURIComponent(page.counter)}`;

let counter = null; // CounterOut
let ticket = null; // TicketOut of the current ticket, when an action returned it
let view = null;
let branch = null;
let busy = false;

// ---------------------------------------------------------------------------------------------
// Messages.

const banner = showBanner;

function clearBanner() {
  const node = $('#banner');
  node.hidden = true;
  node.replaceChildren();
}

// ---------------------------------------------------------------------------------------------
// Drawing.

function serviceName(code) {
  const svc = view && (view.services || []).find((s) => s.service === code);
  return svc ? svc.name : code;
}

function render() {
  const st = counter ? counter.state : 'unknown';
  document.body.dataset.state = st;
  const badge = $('#state');
  badge.dataset.state = st;
  const label = COUNTER_STATE[st];
  if (label) setBi(badge, label.zh, label.en);
  if (counter) {
    $('#counter-name').textContent = counter.name;
    const staff = $('#staff');
    if (counter.staff) setBi(staff, `营业员 ${counter.staff}`, 'clerk');
    else staff.replaceChildren();
  }

  const current = counter && counter.current;
  const card = $('#current');
  card.dataset.status = current ? current.status : 'none';
  $('#cur-number').textContent = current ? current.number : '—';
  const meta = $('#cur-meta');
  if (current) {
    const status = TICKET_STATUS[current.status] || { zh: current.status, en: current.status };
    const prio = PRIORITY[current.priority] || PRIORITY.normal;
    const detail = ticket && ticket.id === current.id ? ticket : null;
    meta.replaceChildren(
      h('div', { class: 'cur-service' }, serviceName(current.service)),
      h(
        'div',
        { class: 'cur-tags' },
        h('span', { class: `tag status-${current.status}` }, bi(status.zh, status.en)),
        current.priority !== 'normal'
          ? h('span', { class: `tag prio-${current.priority}` }, bi(prio.zh, prio.en))
          : null,
        detail && detail.recall_count
          ? h('span', { class: 'tag' }, bi(`已重呼 ${detail.recall_count} 次`, `recalled ×${detail.recall_count}`))
          : null,
        detail && detail.called_at
          ? h('span', { class: 'tag' }, bi(`叫号 ${formatTime(new Date(detail.called_at))}`, 'called'))
          : null,
      ),
    );
  } else {
    meta.replaceChildren(bi('暂无顾客', 'No customer'));
  }

  const has = Boolean(current);
  const called = has && current.status === 'called';
  const enabled = {
    open: st === 'closed' || st === 'closing',
    next: st === 'open',
    recall: called,
    start: called,
    complete: has,
    'no-show': called,
    transfer: has,
    pause: st === 'open',
    resume: st === 'paused',
    close: st === 'open' || st === 'paused',
  };
  for (const button of $$('#actions [data-action]')) {
    const action = button.dataset.action;
    button.disabled = busy || !enabled[action];
  }
  $('[data-action="pause"]').hidden = st === 'paused';
  $('[data-action="resume"]').hidden = st !== 'paused';
  renderQueue();
}

function renderQueue() {
  const body = $('#queue');
  if (!view || !counter) {
    body.replaceChildren();
    return;
  }
  const targets = new Map(((branch && branch.services) || []).map((s) => [s.code, s.target_wait_s]));
  const rows = counter.services
    .map((code) => (view.services || []).find((s) => s.service === code))
    .filter(Boolean)
    .map((svc, index) => {
      const over = targets.has(svc.service) && svc.waiting > 0 && svc.longest_wait_s > targets.get(svc.service);
      return h(
        'tr',
        { dataset: { service: svc.service }, class: over ? 'over' : null },
        h('td', {}, h('b', { class: 'prefix' }, svc.prefix), ' ', svc.name,
          index === 0 ? h('small', { class: 'own' }, bi(' 本窗口', ' own')) : null),
        h('td', { class: 'num waiting-count' }, String(svc.waiting)),
        h('td', { class: 'num' }, svc.waiting ? clockDuration(svc.longest_wait_s) : '—'),
      );
    });
  body.replaceChildren(...rows);

  const recent = (view.recent_calls || [])
    .filter((call) => call.counter && call.counter.code === page.counter)
    .slice(0, 5);
  $('#recent').replaceChildren(
    ...recent.map((call) =>
      h(
        'li',
        {},
        h('b', {}, call.ticket.number),
        ' ',
        call.type === 'ticket.recalled' ? bi('重呼', 'recall') : bi('叫号', 'call'),
        ' ',
        h('time', {}, formatTime(new Date(call.at))),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// The clerk's own tally of today.

const TALLY_EVERY_MS = 60_000;
let myStaff = null;

async function loadTally() {
  if (!myStaff) return;
  try {
    const tally = await api(`/branches/${encodeURIComponent(page.branch)}/reports/staff/${encodeURIComponent(myStaff)}`);
    $('#tally-served').textContent = String(tally.served);
    $('#tally-service').textContent = tally.avg_service_s === null ? '—' : clockDuration(tally.avg_service_s);
    $('#tally-signed-in').textContent = clockDuration(tally.signed_in_s);
    $('#tally').hidden = false;
    $('#tally').dataset.served = String(tally.served);
    state.tally = tally;
  } catch {
    // The tally is a convenience: the console works without it.
  }
}

async function startTally() {
  try {
    myStaff = (await api('/tokens/self')).staff || null;
  } catch {
    myStaff = null; // the environment's admin token has no row, and no staff code
  }
  await loadTally();
  setInterval(loadTally, TALLY_EVERY_MS);
}

// ---------------------------------------------------------------------------------------------
// Actions.

const DONE = {
  open: ['已签到，窗口开放', 'Signed in: the counter is open'],
  pause: ['已暂停服务', 'Paused'],
  resume: ['已恢复服务', 'Resumed'],
  close: ['已签退', 'Signed out'],
  recall: ['已重呼', 'Recalled'],
  start: ['开始办理', 'Service started'],
  complete: ['已办结', 'Completed'],
  'no-show': ['已标记过号', 'Marked as no-show'],
  transfer: ['已转移', 'Transferred'],
};

async function run(action, payload) {
  if (busy) return;
  busy = true;
  render();
  try {
    const result = await api(`${base}/${action}`, { method: 'POST', body: payload });
    if (result === null) {
      // 204 from next: nobody waits for this counter.
      counter = await api(base);
      ticket = null;
      banner('info', '暂无等候顾客', 'Nobody is waiting for this counter');
    } else {
      counter = result.counter;
      ticket = result.ticket;
      if (action === 'next') {
        clearBanner();
      } else {
        const [zh, en] = DONE[action] || ['完成', 'Done'];
        banner('ok', zh, en);
      }
    }
    state.lastAction = { action, ok: true };
  } catch (error) {
    const detail = error instanceof ApiError ? error.detail : String(error);
    banner('error', '操作失败', 'Action refused', detail);
    state.lastAction = { action, ok: false, detail };
  } finally {
    busy = false;
    render();
    if (state.live) state.live.scheduleRefresh(0);
    if (action === 'next' || action === 'complete') loadTally();
  }
}

function openTransfer() {
  if (!view || !counter) return;
  const serviceSelect = $('#transfer-service');
  serviceSelect.replaceChildren(
    h('option', { value: '' }, '— 不改业务 keep the service —'),
    ...(view.services || []).map((svc) => h('option', { value: svc.service }, `${svc.prefix} ${svc.name}`)),
  );
  const counterSelect = $('#transfer-counter');
  counterSelect.replaceChildren(
    h('option', { value: '' }, '— 不指定窗口 any counter —'),
    ...(view.counters || [])
      .filter((c) => c.code !== page.counter)
      .map((c) => {
        const label = counterLabel(c);
        return h('option', { value: c.code }, `${label.zh} ${label.en}`);
      }),
  );
  $('#transfer-dialog').showModal();
  serviceSelect.focus();
}

$('#transfer-dialog').addEventListener('close', () => {
  const dialog = $('#transfer-dialog');
  if (dialog.returnValue !== 'ok') return;
  const form = $('#transfer-form');
  const service = form.elements.service.value;
  const target = form.elements.counter.value;
  const position = form.elements.position.value || 'front';
  if (!service && !target) {
    banner('error', '请选择业务或窗口', 'Choose a service or a counter to transfer to');
    return;
  }
  const payload = { position };
  if (service) payload.service = service;
  if (target) payload.counter = target;
  run('transfer', payload);
});

for (const button of $$('#actions [data-action]')) {
  button.addEventListener('click', () => {
    const action = button.dataset.action;
    if (action === 'transfer') openTransfer();
    else run(action);
  });
}

document.addEventListener('keydown', (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  const target = event.target;
  if (target && target.closest && target.closest('input, select, textarea, dialog, .token-overlay')) return;
  if ($('#transfer-dialog').open) return;
  const key = event.key.toLowerCase();
  const button = $$('#actions [data-action]').find(
    (b) => b.dataset.key === key && !b.hidden && !b.disabled,
  );
  if (!button) return;
  event.preventDefault();
  button.click();
});

// ---------------------------------------------------------------------------------------------

if (requireToken()) {
  startClock($('#clock'));
  render();
  loadBranch().then((b) => {
    branch = b;
    render();
  });
  const live = new Live({
    onView(next) {
      view = next;
      const mine = (next.counters || []).find((c) => c.code === page.counter);
      if (mine) {
        counter = mine;
        if (ticket && (!mine.current || mine.current.id !== ticket.id)) ticket = null;
      }
      render();
    },
  });
  state.live = live;
  live.start();
  startTally();
  api(base)
    .then((c) => {
      counter = c;
      render();
    })
    .catch((error) => {
      if (error instanceof ApiError && error.status === 404) {
        banner('error', '没有这个窗口', 'No such counter', error.detail);
      }
    });
}
