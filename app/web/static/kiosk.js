// Kiosk (取号机): one large button per business type with its waiting count and estimated wait,
// a priority choice, then the ticket, printed on the 80 mm receipt printer (browser print dialog;
// run the kiosk's Chromium with --kiosk-printing to print without a dialog).
//
// Each button press gets its own Idempotency-Key; a retry after a network failure sends the same
// key, so a flaky connection never prints two numbers for one press.

import {
  $, $$, h, bi, api, ApiError, page, waitRange, debugState, idempotencyKey, issueTicket,
  loadBranch, requireToken, startClock,
} from './common.js';
import { Live } from './live.js';
import { NoticeBoard, renderNotices } from './notices.js';
import { receipt, printReceipt } from './receipt.js';

const RETURN_AFTER_S = 30;
// How often the kiosk asks whether its manager set it out of service (or back).
const SERVICE_CHECK_MS = 5000;

const state = debugState();
let branch = null;
let services = [];
let priority = 'normal';
let busy = false;
let countdownTimer = null;

function setPriority(value) {
  priority = value;
  for (const button of $$('#priority [data-priority]')) {
    button.setAttribute('aria-checked', String(button.dataset.priority === value));
  }
  document.body.dataset.priority = value;
}

for (const button of $$('#priority [data-priority]')) {
  button.addEventListener('click', () => setPriority(button.dataset.priority));
}

function showMessage(zh, en) {
  const node = $('#message');
  if (!zh) {
    node.hidden = true;
    node.replaceChildren();
    return;
  }
  node.replaceChildren(h('div', { class: 'zh' }, zh), h('div', { class: 'en' }, en));
  node.hidden = false;
}

function serviceFacts(svc) {
  const wait = waitRange(svc.estimated_wait_s, svc.estimated_wait_range_s);
  return [
    h('span', { class: 'svc-waiting' }, bi(`等候 ${svc.waiting} 人`, `${svc.waiting} waiting`)),
    h('span', { class: 'svc-wait' }, bi(`预计${wait.zh}`, `est. ${wait.en}`)),
  ];
}

let drawnCodes = '';
function renderServices() {
  const grid = $('#services');
  const codes = services.map((svc) => `${svc.service}:${svc.name}`).join('|');
  if (codes === drawnCodes) {
    // Same buttons: only the figures change, so a finger already on a button keeps it.
    for (const svc of services) {
      const facts = grid.querySelector(`[data-service="${CSS.escape(svc.service)}"] .svc-facts`);
      if (facts) facts.replaceChildren(...serviceFacts(svc));
    }
    return;
  }
  drawnCodes = codes;
  grid.replaceChildren(
    ...services.map((svc) =>
      h(
        'button',
        {
          type: 'button',
          class: 'service-btn',
          dataset: { service: svc.service },
          disabled: busy,
          onclick: () => issue(svc.service),
        },
        h('span', { class: 'svc-prefix' }, svc.prefix),
        h('span', { class: 'svc-name' }, svc.name),
        h('span', { class: 'svc-facts' }, ...serviceFacts(svc)),
      ),
    ),
  );
}

function setBusy(value) {
  busy = value;
  document.body.classList.toggle('busy', value);
  for (const button of $$('.service-btn')) button.disabled = value;
}

async function issue(service) {
  if (busy) return;
  setBusy(true);
  showMessage(null);
  const key = idempotencyKey();
  state.lastIdempotencyKey = key;
  try {
    const payload = { service, priority, channel: 'kiosk' };
    const phone = $('#phone').value.replace(/[\s-]/g, '');
    if (phone) payload.phone = phone; // only with the SMS relay on; the API says if it is wrong
    const ticket = await issueTicket(payload, key);
    $('#phone').value = '';
    state.lastTicket = ticket;
    showTicket(ticket);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && isOutOfService(error)) {
      setOutOfService(true);
      return;
    }
    const detail = error instanceof ApiError ? error.detail : String(error);
    showMessage(`取号失败：${detail}`, 'Sorry, no ticket could be issued. Please ask our staff.');
  } finally {
    setBusy(false);
  }
}

// Out of service (暂停使用): set by the manager (PATCH /api/v1/tokens/{id}); the kiosk learns it
// from a refused issue at once, and from its own token's state every few seconds, also when it
// is put back in service.
function isOutOfService(error) {
  return Boolean(error.problem && String(error.problem.type).endsWith('/kiosk-out-of-service'));
}

function setOutOfService(value) {
  $('#out-of-service').hidden = !value;
  document.body.dataset.outOfService = String(value);
  state.outOfService = value;
}

async function checkService() {
  try {
    const own = await api('/tokens/self');
    setOutOfService(Boolean(own.out_of_service));
  } catch {
    // Offline or refused: the connection indicator and the token prompt say so.
  }
}

// The guide comes with the branch's configuration, read again after each ticket so that a
// manager's change reaches the kiosk without a reload.
let branchLoading = null;
function refreshBranch() {
  if (branchLoading) return;
  branchLoading = loadBranch()
    .then((b) => {
      if (b) branch = b;
      state.branch = branch;
      // A phone number is asked for only when texts are sent (HALLQ_SMS_URL).
      $('#phone-field').hidden = !(branch && branch.sms);
      if (branch) notices.setBranch(branch);
    })
    .finally(() => { branchLoading = null; });
}

function guideOf(code) {
  const svc = branch && (branch.services || []).find((s) => s.code === code);
  return svc ? svc.guide : null;
}

function showTicket(ticket) {
  const svc = services.find((s) => s.service === ticket.service);
  $('#receipt').replaceChildren(
    receipt(ticket, {
      branchName: branch ? branch.name : page.branch,
      serviceName: svc && svc.name,
      guide: guideOf(ticket.service),
    }),
  );
  $('#choose').hidden = true;
  $('#ticket-view').hidden = false;
  document.body.dataset.view = 'ticket';
  setPriority('normal');
  printReceipt();
  startCountdown();
}

function startCountdown() {
  let left = RETURN_AFTER_S;
  const node = $('#countdown');
  clearInterval(countdownTimer);
  node.textContent = `(${left})`;
  countdownTimer = setInterval(() => {
    left -= 1;
    node.textContent = `(${left})`;
    if (left <= 0) backToStart();
  }, 1000);
}

function backToStart() {
  clearInterval(countdownTimer);
  $('#ticket-view').hidden = true;
  $('#choose').hidden = false;
  document.body.dataset.view = 'choose';
  refreshBranch();
}

$('#done').addEventListener('click', backToStart);
$('#print-again').addEventListener('click', () => window.print());

// Today's hours and the current notices, in a strip under the bar.
const notices = new NoticeBoard({
  onChange: (board) => renderNotices($('#notices'), board.lines()),
  refresh: () => state.live && state.live.refresh(),
});

if (requireToken()) {
  document.body.dataset.view = 'choose';
  startClock($('#clock'));
  refreshBranch();
  const live = new Live({
    pollMs: 5000,
    onView(view) {
      services = view.services || [];
      renderServices();
      notices.fromView(view);
    },
  });
  state.live = live;
  live.start();
  checkService();
  setInterval(checkService, SERVICE_CHECK_MS);
}
