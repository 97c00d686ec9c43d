// Counter screen (窗口屏): the small screen above one counter. The counter's name, the clerk
// signed in there, the ticket it calls or serves in large type, 暂停服务 when paused, and
// "please go to another counter" when closed. Live from the stream (live.js: counter.changed and
// the queue view it refreshes), recovering by itself when the server comes back. Silent: the
// lobby display speaks the calls.
//
// The clerk: a counter carries `staff` (a code). A name and a staff number (工号) are shown
// when the data carries them — a `staff` object on the counter, or a `staff` list in the
// branch's configuration — and the code otherwise.

import { $, h, bi, counterLabel, debugState, loadBranch, page, requireToken, serverNow, startClock } from './common.js';
import { Live } from './live.js';

const STALE_MS = 120_000;
const FLASH_MS = 8000;
const BRANCH_REFRESH_MS = 5 * 60_000; // renamed services or staff reach the screen

const state = debugState();
state.calls = []; // {type, number, seq}: calls and recalls to this counter, for the tests
state.counter = null;

let counter = null; // CounterView, or null before the first view
let found = null; // the last view had this counter: true / false; null before any view
let branch = null;
let flashTimer = null;

const body = document.body;
const screen = $('#window');

/** The clerk signed in here: {code, name, number}, whatever the data gives. */
export function clerkOf(counterView, branchConfig) {
  const staff = counterView && counterView.staff;
  if (!staff) return null;
  const clerk = typeof staff === 'object' ? { ...staff } : { code: String(staff) };
  const roster = branchConfig && Array.isArray(branchConfig.staff) ? branchConfig.staff : [];
  const known = roster.find((s) => s && (s.code === clerk.code || s.staff === clerk.code));
  if (known) {
    if (!clerk.name && known.name) clerk.name = known.name;
    if (!clerk.number && known.number) clerk.number = known.number;
  }
  return clerk;
}

function renderClerk() {
  const node = $('#w-clerk');
  const clerk = counter && counter.state !== 'closed' ? clerkOf(counter, branch) : null;
  body.dataset.clerk = clerk ? clerk.code : '';
  if (!clerk) {
    node.replaceChildren();
    return;
  }
  node.replaceChildren(
    h('span', { class: 'w-clerk-label' }, bi('服务人员', 'Clerk')),
    h('b', { class: 'w-clerk-name', id: 'w-clerk-name' }, clerk.name || clerk.code),
    clerk.number
      ? h('span', { class: 'w-clerk-number', id: 'w-clerk-number' }, bi('工号', 'No.'), ` ${clerk.number}`)
      : '',
  );
}

function renderServices() {
  const node = $('#w-services');
  const names = new Map(((branch && branch.services) || []).map((s) => [s.code || s.service, s.name]));
  const codes = (counter && counter.services) || [];
  node.textContent = codes.length ? `办理业务 Services: ${codes.map((c) => names.get(c) || c).join(' · ')}` : '';
}

function showSign(zh, en) {
  $('#w-current').hidden = true;
  $('#w-sign').hidden = false;
  $('#w-sign-zh').textContent = zh;
  $('#w-sign-en').textContent = en;
}

function showCurrent(labelZh, labelEn, number, inviteZh, inviteEn) {
  $('#w-sign').hidden = true;
  $('#w-current').hidden = false;
  $('#w-label').replaceChildren(bi(labelZh, labelEn));
  $('#w-number').textContent = number;
  const invite = $('#w-invite');
  invite.replaceChildren(
    inviteZh ? h('div', { class: 'zh' }, inviteZh) : '',
    inviteEn ? h('div', { class: 'en' }, inviteEn) : '',
  );
}

function render() {
  const st = found === false ? 'missing' : counter ? counter.state : 'unknown';
  const current = counter && counter.current;
  screen.dataset.state = st;
  screen.dataset.status = current ? current.status : 'none';
  body.dataset.state = st;
  body.dataset.number = current ? current.number : '';
  state.counter = counter;

  const title = $('#w-counter');
  if (counter) {
    const label = counterLabel(counter);
    title.replaceChildren(bi(label.zh, label.en));
  }
  renderClerk();
  renderServices();

  if (st === 'unknown') {
    showSign('', '');
  } else if (st === 'missing') {
    showSign('本窗口未设置', `Counter ${page.counter} is not set up in this branch`);
  } else if (st === 'closed') {
    showSign('请到其他窗口办理', 'Please go to another counter');
  } else if (st === 'paused') {
    showSign('暂停服务', 'Paused');
  } else if (current && current.status === 'serving') {
    showCurrent('正在办理', 'Now serving', current.number, '', '');
  } else if (current) {
    showCurrent(
      '正在叫号', 'Now calling', current.number,
      `请 ${current.number} 号到本窗口办理`, `Ticket ${current.number}, please come to this counter`,
    );
  } else {
    showCurrent('欢迎光临', 'Welcome', '—', '请留意叫号', 'Please wait for your number');
  }
  // A counter that is closing finishes its ticket, then closes: new customers go elsewhere.
  screen.classList.toggle('closing', st === 'closing');
  if (st === 'closing') {
    $('#w-invite').append(h('div', { class: 'w-closing', id: 'w-closing' }, bi('本窗口即将关闭', 'This counter is closing')));
  }
  if (st !== 'open' && st !== 'closing') stopFlash();
}

function stopFlash() {
  clearTimeout(flashTimer);
  $('#w-number').classList.remove('flash');
}

function flash() {
  const node = $('#w-number');
  node.classList.remove('flash');
  void node.offsetWidth; // restart the animation
  node.classList.add('flash');
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => node.classList.remove('flash'), FLASH_MS);
}

function onView(view) {
  const mine = (view.counters || []).find((c) => c.code === page.counter);
  found = Boolean(mine);
  counter = mine || null;
  render();
}

function onEvent(event) {
  const data = event.data || {};
  if (event.type === 'counter.changed') {
    if (data.counter && data.counter.code === page.counter) {
      found = true;
      counter = data.counter;
      render();
    }
    return;
  }
  if (event.type !== 'ticket.called' && event.type !== 'ticket.recalled') return;
  if (!data.counter || data.counter.code !== page.counter || !data.ticket) return;
  const ticket = data.ticket;
  if (counter) {
    // The counter.changed of a call may come after it (or, for a recall, not at all).
    counter = { ...counter, current: { ...ticket, status: 'called' } };
    render();
  }
  state.calls.push({ type: event.type, number: ticket.number, seq: event.seq });
  body.dataset.calls = String(state.calls.length);
  body.dataset.lastCall = `${event.type} ${ticket.number}`;
  const age = serverNow().getTime() - Date.parse(event.at || '');
  if (Number.isFinite(age) && age > STALE_MS) return; // replayed from long ago: not news
  flash();
}

if (requireToken()) {
  startClock($('#clock'));
  const settle = (config) => {
    if (!config) return;
    branch = config;
    render();
  };
  loadBranch().then(settle);
  setInterval(() => loadBranch().then(settle), BRANCH_REFRESH_MS);
  const live = new Live({ onView, onEvent });
  state.live = live;
  live.start();
}
