// Service desk (导办台 / 值班经理, SPEC §6): find a ticket by number, show it with its history,
// change its priority, cancel it, re-queue a no-show, call it to a counter, print it again; the
// waiting list in calling order; issue a ticket on a customer's behalf (the greeter's tablet).
// Live from the stream: after events the waiting list and the shown ticket are read again. Every
// refusal shows the problem+json `detail` the API returned.

import {
  $, $$, h, bi, api, ApiError, page, PRIORITY, TICKET_STATUS, COUNTER_STATE, CHANNEL,
  clockDuration, counterLabel, formatTime, formatDateTime, waitMinutes, serverNow,
  debugState, idempotencyKey, issueTicket, loadBranch, requireToken, startClock, showBanner,
} from './common.js';
import { Live } from './live.js';
import { receipt, printReceipt } from './receipt.js';

const WAITING_LIMIT = 200; // the API's largest page
const CONFIRM_MS = 5000;
const branchPath = `/branches/${encodeURIComponent(page.branch)}`;

const state = debugState();
let branch = null;
let view = null;
let ticket = null; // the ticket shown (GET /tickets/{id}, with its history)
let waiting = { tickets: [], total: 0 };
let busy = false;
let issuePriority = 'normal';
let confirmTimer = null;

// ---------------------------------------------------------------------------------------------
// Messages.

const banner = showBanner;

function refused(action, error) {
  const detail = error instanceof ApiError ? error.detail : String(error);
  banner('error', '操作未完成', 'Refused', detail);
  state.lastAction = { action, ok: false, detail };
}

function done(action, zh, en) {
  banner('ok', zh, en);
  state.lastAction = { action, ok: true };
}

// ---------------------------------------------------------------------------------------------
// Names.

function service(code) {
  const fromView = view && (view.services || []).find((s) => s.service === code);
  if (fromView) return { code, name: fromView.name, prefix: fromView.prefix };
  const fromBranch = branch && (branch.services || []).find((s) => s.code === code);
  if (fromBranch) return { code, name: fromBranch.name, prefix: fromBranch.prefix };
  return { code, name: code, prefix: '' };
}

function counterName(code) {
  const known = view && (view.counters || []).find((c) => c.code === code);
  const name = counterLabel(known || { code });
  return name.zh === name.en ? name.zh : bi(name.zh, name.en);
}

function counterText(code) {
  const name = counterLabel({ code });
  return name.zh === name.en ? name.zh : `${name.zh} ${name.en}`;
}

function label(table, key) {
  const entry = table[key] || { zh: key, en: key };
  return bi(entry.zh, entry.en);
}

function tag(kind, content) {
  return h('span', { class: `tag ${kind}` }, content);
}

// ---------------------------------------------------------------------------------------------
// The ticket shown: its card, its tools and its history.

const EVENT = {
  'ticket.issued': ['取号', 'Issued'],
  'ticket.called': ['叫号', 'Called'],
  'ticket.recalled': ['重呼', 'Recalled'],
  'ticket.serving': ['开始办理', 'Service started'],
  'ticket.completed': ['办结', 'Completed'],
  'ticket.no_show': ['过号', 'No-show'],
  'ticket.cancelled': ['取消', 'Cancelled'],
  'ticket.transferred': ['转移', 'Transferred'],
  'ticket.requeued': ['重新排队', 'Re-queued'],
  'ticket.rated': ['评价', 'Rated'],
  'ticket.expired': ['日结过期', 'Expired at close-out'],
  'ticket.prioritised': ['改优先级', 'Priority changed'],
  'ticket.near': ['即将轮到', 'Turn near'],
};

function prio(key) {
  const p = PRIORITY[key] || { zh: key, en: key };
  return `${p.zh} ${p.en}`;
}

/** What an entry of the history says beyond its type. */
function eventFacts(entry) {
  const data = entry.data || {};
  switch (entry.type) {
    case 'ticket.issued': {
      const channel = CHANNEL[data.ticket && data.ticket.channel];
      const p = data.ticket && data.ticket.priority;
      return [channel ? `${channel.zh} ${channel.en}` : null, p && p !== 'normal' ? prio(p) : null];
    }
    case 'ticket.called':
      return [
        data.picked ? '导办台选叫 picked at the desk' : null,
        typeof data.wait_s === 'number' ? `等候 waited ${clockDuration(data.wait_s)}` : null,
      ];
    case 'ticket.recalled':
      return [data.recall_count ? `×${data.recall_count}` : null];
    case 'ticket.completed':
      return [typeof data.service_s === 'number' ? `办理 took ${clockDuration(data.service_s)}` : null];
    case 'ticket.transferred': {
      const from = data.from || {};
      const to = data.to || {};
      return [
        `${service(from.service).name} → ${service(to.service).name}`,
        to.counter ? counterText(to.counter) : null,
        to.position === 'back' ? '排队尾 to the back' : '排队首 to the front',
      ];
    }
    case 'ticket.requeued':
      return [typeof data.requeue_after === 'number' ? `${data.requeue_after} 位之后 after ${data.requeue_after}` : null];
    case 'ticket.rated':
      return [typeof data.score === 'number' ? `${'★'.repeat(data.score)} ${data.score}/5` : null];
    case 'ticket.expired': {
      const previous = TICKET_STATUS[data.previous_status];
      return [previous ? `原为 was ${previous.zh} ${previous.en}` : null];
    }
    case 'ticket.prioritised':
      return [`${prio(data.from)} → ${prio(data.to)}`];
    case 'ticket.near':
      return [typeof data.waiting_ahead === 'number' ? `前面 ${data.waiting_ahead} 人 ${data.waiting_ahead} ahead` : null];
    default:
      return [];
  }
}

function historyRow(entry) {
  const [zh, en] = EVENT[entry.type] || [entry.type, ''];
  const counter = entry.counter || (entry.data && entry.data.counter && entry.data.counter.code);
  const facts = eventFacts(entry).filter(Boolean);
  return h(
    'tr',
    { dataset: { type: entry.type, seq: entry.seq } },
    h('td', { class: 'h-time' }, h('time', { datetime: entry.at }, formatTime(new Date(entry.at), true))),
    h(
      'td',
      { class: 'h-what' },
      h('strong', {}, bi(zh, en)),
      facts.length ? h('span', { class: 'h-facts' }, facts.join(' · ')) : null,
    ),
    h('td', { class: 'h-counter' }, counter ? counterName(counter) : '—'),
    h('td', { class: 'h-staff' }, entry.staff || '—'),
    h('td', { class: 'h-note' }, entry.note || ''),
  );
}

function fact(name, zh, en, value, id) {
  return h('div', { class: 'fact', dataset: { fact: name } }, h('dt', {}, bi(zh, en)), h('dd', { id }, value));
}

function renderTicket() {
  const card = $('#ticket-card');
  const tools = $('#ticket-tools');
  const history = $('#history-block');
  state.ticket = ticket;
  if (!ticket) {
    card.dataset.status = 'none';
    delete card.dataset.id;
    delete card.dataset.lastEvent;
    delete card.dataset.number;
    delete card.dataset.priority;
    card.replaceChildren(
      h('p', { class: 'placeholder muted' },
        bi('输入号码查找，或在等候队列中点选。', 'Enter a number, or pick a ticket from the waiting list.')),
    );
    tools.hidden = true;
    history.hidden = true;
    renderWaiting();
    return;
  }
  const t = ticket;
  const svc = service(t.service);
  if (card.dataset.id !== t.id) delete card.dataset.lastEvent; // news about another ticket
  card.dataset.id = t.id;
  card.dataset.status = t.status;
  card.dataset.number = t.number;
  card.dataset.priority = t.priority;
  const wait = waitMinutes(t.estimated_wait_s);
  const position = t.status === 'waiting' && t.position
    ? bi(`第 ${t.position} 位 · 前面 ${t.waiting_ahead} 人`, `#${t.position} · ${t.waiting_ahead} ahead`)
    : '—';
  card.replaceChildren(
    h(
      'div',
      { class: 'tc-head' },
      h('div', { class: 'tc-number', id: 'tc-number' }, t.number),
      h(
        'div',
        { class: 'tc-tags' },
        tag(`status status-${t.status}`, label(TICKET_STATUS, t.status)),
        t.priority !== 'normal' ? tag(`prio prio-${t.priority}`, label(PRIORITY, t.priority)) : null,
      ),
    ),
    h('div', { class: 'tc-service' }, svc.prefix ? h('b', { class: 'prefix' }, svc.prefix) : null, ' ', svc.name),
    h(
      'dl',
      { class: 'tc-facts' },
      fact('position', '位置', 'Position', position, 'tc-position'),
      fact('estimate', '预计等候', 'Estimated wait',
        t.status === 'waiting' ? bi(wait.zh, wait.en) : '—', 'tc-estimate'),
      fact('counter', '窗口', 'Counter', t.counter ? counterName(t.counter) : '—', 'tc-counter'),
      fact('issued', '取号时间', 'Issued',
        [formatDateTime(new Date(t.issued_at)), t.channel && CHANNEL[t.channel]
          ? h('small', { class: 'muted' }, ` · ${CHANNEL[t.channel].zh} ${CHANNEL[t.channel].en}`) : null],
        'tc-issued'),
      t.recall_count ? fact('recalls', '重呼', 'Recalls', String(t.recall_count), 'tc-recalls') : null,
      t.phone ? fact('phone', '手机', 'Phone', t.phone, 'tc-phone') : null,
    ),
  );
  tools.hidden = false;
  history.hidden = false;
  const entries = t.history || [];
  $('#history').replaceChildren(
    ...(entries.length
      ? entries.map(historyRow)
      : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, bi('暂无记录', 'Nothing recorded')))]),
  );
  const select = $('#priority-select');
  if (select.dataset.ticket !== `${t.id}:${t.priority}`) {
    // A new ticket, or its class changed: start from the class it has.
    select.value = t.priority;
    select.dataset.ticket = `${t.id}:${t.priority}`;
  }
  renderCounterChoice();
  renderTools();
  renderWaiting();
}

function renderCounterChoice() {
  const select = $('#call-counter');
  const counters = (view && view.counters) || [];
  const chosen = select.value;
  const open = counters.filter((c) => c.state === 'open');
  const serves = open.filter((c) => ticket && (c.services || []).includes(ticket.service));
  const options = counters.map((c) => {
    const name = counterLabel(c);
    const st = COUNTER_STATE[c.state] || { zh: c.state, en: c.state };
    const current = c.current ? ` · ${c.current.number}` : '';
    return h(
      'option',
      { value: c.code, disabled: c.state !== 'open' },
      `${name.zh} ${name.en} · ${st.zh} ${st.en}${current}`,
    );
  });
  if (!open.length) options.unshift(h('option', { value: '' }, '— 没有开放的窗口 No counter is open —'));
  select.replaceChildren(...options);
  const keep = open.find((c) => c.code === chosen);
  const pick = keep || serves[0] || open[0];
  select.value = pick ? pick.code : '';
}

function renderTools() {
  const status = ticket ? ticket.status : null;
  const waitingNow = status === 'waiting';
  const select = $('#priority-select');
  select.disabled = busy || !waitingNow;
  $('#priority-reason').disabled = busy || !waitingNow;
  $('#priority-btn').disabled = busy || !waitingNow || select.value === ticket.priority;
  $('#call-counter').disabled = busy || !waitingNow;
  $('#call-btn').disabled = busy || !waitingNow || !$('#call-counter').value;
  $('#cancel-btn').disabled = busy || !waitingNow;
  $('#requeue-btn').disabled = busy || status !== 'no_show';
  $('#print-btn').disabled = busy || !ticket;
  if (!waitingNow) resetConfirm();
}

// ---------------------------------------------------------------------------------------------
// The waiting list (calling order per business type) and the issue buttons.

function waitedFor(t) {
  return clockDuration((serverNow() - new Date(t.issued_at)) / 1000);
}

/** How many wait for a business type: the queue view's count, else what the list holds. */
function n(count, tickets) {
  return count ? count.waiting : tickets.length;
}

function renderWaiting() {
  const list = $('#waiting-list');
  const total = $('#waiting-total');
  total.textContent = String(waiting.total);
  total.dataset.count = String(waiting.total);
  const groups = new Map();
  for (const svc of (view && view.services) || []) groups.set(svc.service, []);
  for (const t of waiting.tickets) {
    if (!groups.has(t.service)) groups.set(t.service, []);
    groups.get(t.service).push(t);
  }
  const filter = $('#waiting-filter').value;
  const blocks = [];
  for (const [code, tickets] of groups) {
    if (filter && code !== filter) continue;
    if (!tickets.length) continue;
    const svc = service(code);
    const count = view && (view.services || []).find((s) => s.service === code);
    blocks.push(
      h(
        'div',
        { class: 'wl-group', dataset: { service: code } },
        h(
          'h3',
          {},
          svc.prefix ? h('b', { class: 'prefix' }, svc.prefix) : null,
          ` ${svc.name} `,
          h('span', { class: 'muted' }, bi(`${n(count, tickets)} 人`, `${n(count, tickets)} waiting`)),
        ),
        h(
          'ol',
          { class: 'wl-rows' },
          ...tickets.map((t) =>
            h(
              'li',
              {},
              h(
                'button',
                {
                  type: 'button',
                  class: `wl-row${ticket && ticket.id === t.id ? ' selected' : ''}`,
                  dataset: { id: t.id, number: t.number, position: t.position ?? '' },
                  'aria-pressed': String(Boolean(ticket && ticket.id === t.id)),
                  onclick: () => select(t.id),
                },
                h('span', { class: 'wl-pos' }, t.position ?? '·'),
                h('span', { class: 'wl-number' }, t.number),
                t.priority !== 'normal' ? tag(`prio prio-${t.priority}`, label(PRIORITY, t.priority)) : h('span'),
                h('span', { class: 'wl-waited', dataset: { issued: t.issued_at } }, waitedFor(t)),
              ),
            ),
          ),
        ),
      ),
    );
  }
  if (!blocks.length) blocks.push(h('p', { class: 'muted none' }, bi('没有等候的顾客', 'Nobody is waiting')));
  if (waiting.total > waiting.tickets.length) {
    const more = waiting.total - waiting.tickets.length;
    blocks.push(h('p', { class: 'muted more' }, bi(`另有 ${more} 张未列出`, `${more} more not listed`)));
  }
  list.replaceChildren(...blocks);
}

function renderFilter() {
  const select = $('#waiting-filter');
  const chosen = select.value;
  const services = (view && view.services) || [];
  const key = services.map((s) => `${s.service}:${s.name}`).join('|');
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  select.replaceChildren(
    h('option', { value: '' }, '全部业务 All services'),
    ...services.map((s) => h('option', { value: s.service }, `${s.prefix} ${s.name}`)),
  );
  select.value = services.some((s) => s.service === chosen) ? chosen : '';
}

function renderIssueButtons() {
  const grid = $('#issue-services');
  const services = (view && view.services) || [];
  const key = services.map((s) => `${s.service}:${s.name}`).join('|');
  if (grid.dataset.key !== key) {
    grid.dataset.key = key;
    grid.replaceChildren(
      ...services.map((svc) =>
        h(
          'button',
          { type: 'button', class: 'issue-btn', dataset: { service: svc.service }, onclick: () => issue(svc.service) },
          h('span', { class: 'svc-prefix' }, svc.prefix),
          h('span', { class: 'svc-name' }, svc.name),
          h('span', { class: 'svc-waiting' }),
        ),
      ),
    );
  }
  for (const svc of services) {
    const node = grid.querySelector(`[data-service="${CSS.escape(svc.service)}"] .svc-waiting`);
    if (node) node.replaceChildren(bi(`等候 ${svc.waiting} 人`, `${svc.waiting} waiting`));
  }
  for (const button of $$('.issue-btn', grid)) button.disabled = busy;
}

// ---------------------------------------------------------------------------------------------
// Reading: each read is tagged, and only the newest answer is drawn (answers may cross).

let ticketRead = 0;
let waitingRead = 0;

async function loadTicket(id) {
  const mine = ++ticketRead;
  const detail = await api(`/tickets/${encodeURIComponent(id)}`);
  if (mine !== ticketRead) return;
  ticket = detail;
  renderTicket();
}

async function loadWaiting() {
  const mine = ++waitingRead;
  const query = new URLSearchParams({ status: 'waiting', limit: String(WAITING_LIMIT) });
  const filter = $('#waiting-filter').value;
  if (filter) query.set('service', filter);
  const found = await api(`${branchPath}/tickets?${query}`);
  if (mine !== waitingRead) return;
  waiting = { tickets: found.tickets || [], total: found.total ?? (found.tickets || []).length };
  renderWaiting();
}

/** After news: the waiting list and the shown ticket again; quiet unless the server says no. */
async function reload() {
  const reads = [loadWaiting()];
  if (ticket) reads.push(loadTicket(ticket.id));
  const results = await Promise.allSettled(reads);
  for (const result of results) {
    const error = result.reason;
    if (result.status === 'rejected' && error instanceof ApiError && error.status === 404 && ticket) {
      ticket = null;
      renderTicket();
    }
  }
}

let reloading = null;
let reloadAgain = false;
function scheduleReload() {
  if (reloading) {
    reloadAgain = true;
    return;
  }
  reloading = reload().finally(() => {
    reloading = null;
    if (reloadAgain) {
      reloadAgain = false;
      scheduleReload();
    }
  });
}

async function select(id) {
  resetConfirm();
  try {
    await loadTicket(id);
    $('#find-number').value = ticket.number;
  } catch (error) {
    refused('select', error);
  }
}

async function find(event) {
  event.preventDefault();
  const number = $('#find-number').value.trim().toUpperCase();
  const date = $('#find-date').value;
  $('#find-number').value = number;
  if (!number) return;
  const query = new URLSearchParams({ number });
  if (date) query.set('date', date);
  resetConfirm();
  try {
    const found = await api(`${branchPath}/tickets?${query}`);
    const tickets = (found && found.tickets) || [];
    if (!tickets.length) {
      ticketRead += 1;
      ticket = null;
      renderTicket();
      const day = date || '今天';
      banner('info', `没有找到 ${number}（${day}）`, `No ticket ${number} ${date ? `on ${date}` : 'today'}`);
      state.lastAction = { action: 'find', ok: false };
      return;
    }
    $('#banner').hidden = true;
    const first = tickets[0];
    if (Array.isArray(first.history)) {
      ticketRead += 1;
      ticket = first;
      renderTicket();
    } else {
      await loadTicket(first.id);
    }
    state.lastAction = { action: 'find', ok: true };
  } catch (error) {
    refused('find', error);
  }
}

// ---------------------------------------------------------------------------------------------
// Acting on the shown ticket.

function setBusy(value) {
  busy = value;
  document.body.classList.toggle('busy', value);
  if (ticket) renderTools();
  for (const button of $$('.issue-btn')) button.disabled = value;
}

async function act(action, request, success) {
  if (busy) return;
  setBusy(true);
  const id = ticket && ticket.id;
  try {
    await request();
    success();
  } catch (error) {
    refused(action, error);
  } finally {
    setBusy(false);
    if (id) {
      try {
        await loadTicket(id);
      } catch {
        /* the next refresh will say */
      }
    }
    if (state.live) state.live.scheduleRefresh(0);
  }
}

function changePriority(event) {
  event.preventDefault();
  if (!ticket) return;
  const to = $('#priority-select').value;
  const reason = $('#priority-reason').value.trim();
  if (!reason) {
    banner('error', '请填写改优先级的原因', 'Give the reason for the change', '原因会记入办理记录 The reason is kept in the ticket’s history.');
    state.lastAction = { action: 'priority', ok: false };
    $('#priority-reason').focus();
    return;
  }
  const { number } = ticket;
  act(
    'priority',
    () => api(`/tickets/${encodeURIComponent(ticket.id)}/priority`, { method: 'POST', body: { priority: to, reason } }),
    () => {
      $('#priority-reason').value = '';
      const p = PRIORITY[to] || { zh: to, en: to };
      done('priority', `${number} 已改为${p.zh}`, `${number} is now ${p.en}`);
    },
  );
}

function callToCounter(event) {
  event.preventDefault();
  if (!ticket) return;
  const counter = $('#call-counter').value;
  if (!counter) return;
  const { number } = ticket;
  act(
    'call',
    () => api(`${branchPath}/counters/${encodeURIComponent(counter)}/call`, { method: 'POST', body: { ticket: ticket.id } }),
    () => {
      const name = counterLabel((view.counters || []).find((c) => c.code === counter) || { code: counter });
      done('call', `已叫 ${number} 到${name.zh}`, `${number} called to ${name.en}`);
    },
  );
}

function resetConfirm() {
  clearTimeout(confirmTimer);
  const button = $('#cancel-btn');
  if (button.dataset.confirm) {
    delete button.dataset.confirm;
    button.replaceChildren(bi('取消号码', 'Cancel ticket'));
  }
}

function cancel() {
  if (!ticket) return;
  const button = $('#cancel-btn');
  if (!button.dataset.confirm) {
    // Two taps: a finger slipping on a tablet must not cancel a customer's number.
    button.dataset.confirm = 'yes';
    button.replaceChildren(bi(`确认取消 ${ticket.number}？`, 'Tap again to confirm'));
    confirmTimer = setTimeout(resetConfirm, CONFIRM_MS);
    return;
  }
  resetConfirm();
  const { number } = ticket;
  act(
    'cancel',
    () => api(`/tickets/${encodeURIComponent(ticket.id)}/cancel`, { method: 'POST' }),
    () => done('cancel', `${number} 已取消`, `${number} cancelled`),
  );
}

function requeue() {
  if (!ticket) return;
  const { number } = ticket;
  act(
    'requeue',
    () => api(`/tickets/${encodeURIComponent(ticket.id)}/requeue`, { method: 'POST' }),
    () => done('requeue', `${number} 已重新排队`, `${number} is waiting again`),
  );
}

function print(t, reprint) {
  const configured = branch && (branch.services || []).find((s) => s.code === t.service);
  $('#receipt').replaceChildren(
    receipt(t, {
      branchName: branch ? branch.name : page.branch,
      serviceName: service(t.service).name,
      guide: (configured && configured.guide) || null, // as the kiosk prints it
      reprint,
    }),
  );
  printReceipt();
}

function printAgain() {
  if (!ticket) return;
  print(ticket, true);
  done('print', `${ticket.number} 已补打`, `${ticket.number} printed again`);
}

// ---------------------------------------------------------------------------------------------
// Issuing on a customer's behalf: channel "staff", then the ticket is shown and printed.

function setIssuePriority(value) {
  issuePriority = value;
  for (const button of $$('#issue-priority [data-priority]')) {
    button.setAttribute('aria-checked', String(button.dataset.priority === value));
  }
}

async function issue(code) {
  if (busy) return;
  setBusy(true);
  const key = idempotencyKey();
  state.lastIdempotencyKey = key;
  const payload = { service: code, priority: issuePriority, channel: 'staff' };
  const phone = $('#issue-phone').value.trim();
  if (phone) payload.phone = phone;
  let issued = null;
  try {
    issued = await issueTicket(payload, key);
    state.lastIssued = issued;
    setIssuePriority('normal');
    $('#issue-phone').value = '';
    print(issued, false);
    done('issue', `已取号 ${issued.number}`, `Ticket ${issued.number} issued`);
  } catch (error) {
    refused('issue', error);
  } finally {
    setBusy(false);
  }
  if (issued) {
    $('#find-number').value = issued.number;
    $('#find-date').value = '';
    try {
      await loadTicket(issued.id);
    } catch {
      /* shown on the next refresh */
    }
    if (state.live) state.live.scheduleRefresh(0);
  }
}

// ---------------------------------------------------------------------------------------------

$('#find-form').addEventListener('submit', find);
$('#find-number').addEventListener('input', (event) => {
  const input = event.target;
  const upper = input.value.toUpperCase();
  if (upper !== input.value) input.value = upper;
});
$('#priority-form').addEventListener('submit', changePriority);
$('#priority-select').addEventListener('change', () => ticket && renderTools());
$('#call-form').addEventListener('submit', callToCounter);
$('#call-counter').addEventListener('change', () => ticket && renderTools());
$('#cancel-btn').addEventListener('click', cancel);
$('#requeue-btn').addEventListener('click', requeue);
$('#print-btn').addEventListener('click', printAgain);
$('#waiting-filter').addEventListener('change', () => {
  renderWaiting();
  loadWaiting().catch((error) => refused('waiting', error));
});
for (const button of $$('#issue-priority [data-priority]')) {
  button.addEventListener('click', () => setIssuePriority(button.dataset.priority));
}

if (requireToken()) {
  startClock($('#clock'));
  loadBranch().then((b) => {
    branch = b;
    renderWaiting();
  });
  const live = new Live({
    onView(next) {
      view = next;
      renderFilter();
      renderIssueButtons();
      if (ticket) {
        renderCounterChoice();
        renderTools();
      }
      scheduleReload();
    },
    onEvent(event) {
      const about = event.data && event.data.ticket;
      if (ticket && about && about.id === ticket.id) {
        // Someone else acted on the ticket shown: say so where it is.
        $('#ticket-card').dataset.lastEvent = event.type;
      }
    },
  });
  state.live = live;
  live.start();
  // Waited times move with the clock.
  setInterval(() => {
    for (const node of $$('.wl-waited')) {
      node.textContent = waitedFor({ issued_at: node.dataset.issued });
    }
  }, 15000);
}
