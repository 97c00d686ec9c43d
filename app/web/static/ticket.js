// The ticket on the customer's phone (/t/{code}, SPEC §9): number, business type, place and
// estimate, live; when called, the counter large (with vibration where the browser allows);
// "I have left" cancels; once served, the 1-5 rating (the phone as the evaluation keypad).
//
// Live by polling the public endpoint of this one ticket (never a branch-wide stream): every
// 5 s while the page is visible, at once when it becomes visible again, slower after a refusal.
// The code in the address is the key; it is never stored or sent anywhere else.

import { $, h, bi, api, ApiError, waitRange, debugState } from './common.js';

const POLL_MS = 5000;
const HIDDEN_POLL_MS = 30000;
const code = decodeURIComponent(window.location.pathname.split('/')[2] || '');
const path = `/public/tickets/${encodeURIComponent(code)}`;
const state = debugState();
state.vibrations = 0;
let ticket = null;
let timer = null;
let score = 0;

const STATES = {
  serving: ['正在办理', 'Being served'],
  done: ['办理完成，谢谢！', 'Done. Thank you!'],
  no_show: ['您已过号，请到服务台', 'You missed your call: please ask at the service desk'],
  cancelled: ['此号码已取消', 'This number was cancelled'],
  expired: ['此号码已过期', 'This number has expired'],
};

function message(zh, en) {
  const node = $('#p-message');
  if (!zh) {
    node.hidden = true;
    return;
  }
  node.replaceChildren(h('div', { class: 'zh' }, zh), h('div', { class: 'en' }, en));
  node.hidden = false;
}

function vibrate(pattern) {
  // Browsers allow it only after the user touched the page; otherwise it does nothing.
  try {
    if (navigator.vibrate && navigator.vibrate(pattern)) state.vibrations += 1;
  } catch {
    // Not supported.
  }
}

function waitText(t) {
  const wait = waitRange(t.estimated_wait_s, t.estimated_wait_range_s);
  return bi(wait.zh, wait.en);
}

function render(t) {
  const before = ticket;
  ticket = t;
  state.ticket = t;
  const phone = $('#phone');
  phone.dataset.status = t.status;
  phone.dataset.near = String(Boolean(t.near));
  document.body.dataset.status = t.status;
  $('#p-branch').textContent = t.branch.name;
  $('#p-number').textContent = t.number;
  $('#p-service').textContent = t.service.name;
  document.title = `${t.number} · ${t.branch.name}`;

  const waiting = t.status === 'waiting';
  const called = t.status === 'called';
  $('#p-waiting').hidden = !waiting;
  $('#p-near').hidden = !(waiting && t.near);
  $('#p-called').hidden = !called;
  if (waiting) {
    $('#p-position').textContent = t.position ?? '—';
    $('#p-ahead').replaceChildren(
      t.waiting_ahead === null ? '—' : bi(`${t.waiting_ahead} 人`, `${t.waiting_ahead}`),
    );
    $('#p-wait').replaceChildren(waitText(t));
  } else {
    $('#p-confirm').hidden = true;
  }
  if (called) {
    const counter = t.counter ? t.counter.name : '';
    $('#p-counter').replaceChildren(bi(`${counter} 号窗口`, `Counter ${counter}`));
    if (!before || before.status !== 'called') vibrate([400, 150, 400, 150, 400]);
  } else if (waiting && t.near && before && !before.near) {
    vibrate(300);
  }
  const words = STATES[t.status];
  const stateNode = $('#p-state');
  if (t.status === 'serving' && t.counter) {
    stateNode.replaceChildren(bi(`正在 ${t.counter.name} 号窗口办理`, `Being served at counter ${t.counter.name}`));
    stateNode.hidden = false;
  } else if (words) {
    stateNode.replaceChildren(bi(words[0], words[1]));
    stateNode.hidden = false;
  } else {
    stateNode.hidden = true;
  }
  $('#p-rate').hidden = !(t.status === 'done' && !state.rated);
  $('#p-updated').textContent = new Date().toLocaleTimeString();
}

function finished(t) {
  return ['cancelled', 'expired'].includes(t.status) || (t.status === 'done' && state.rated);
}

async function poll() {
  clearTimeout(timer);
  let next = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
  try {
    render(await api(path));
    message(null);
    if (finished(ticket)) return;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $('#phone').dataset.status = 'unknown';
      message('未找到此号码', 'No such ticket');
      return;
    }
    if (error instanceof ApiError && error.status === 429) {
      const retry = Number((error.problem && error.problem.retry_after_s) || 30);
      next = Math.max(next, retry * 1000);
    }
    if (error instanceof ApiError && error.status === 0) {
      message('网络不通，稍后自动重试', 'No connection; retrying');
    }
  }
  timer = setTimeout(poll, next);
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && ticket && !finished(ticket)) poll();
});

// "I have left": two taps, so that a pocket does not cancel a ticket.
$('#p-leave').addEventListener('click', () => { $('#p-confirm').hidden = false; });
$('#p-leave-no').addEventListener('click', () => { $('#p-confirm').hidden = true; });
$('#p-leave-yes').addEventListener('click', async () => {
  try {
    render(await api(`${path}/cancel`, { method: 'POST' }));
  } catch (error) {
    message('未能取消', error instanceof ApiError ? error.detail : String(error));
    poll();
  }
});

// The rating: five buttons, an optional comment, once.
const stars = $('#p-stars');
for (let i = 1; i <= 5; i += 1) {
  stars.append(
    h(
      'button',
      {
        type: 'button',
        class: 'p-star',
        role: 'radio',
        'aria-checked': 'false',
        'aria-label': `${i}`,
        dataset: { score: String(i) },
        onclick: () => {
          score = i;
          for (const star of stars.children) {
            const on = Number(star.dataset.score) <= i;
            star.classList.toggle('on', on);
            star.setAttribute('aria-checked', String(Number(star.dataset.score) === i));
          }
          $('#p-rate-send').disabled = false;
        },
      },
      '★',
    ),
  );
}
$('#p-rate-send').addEventListener('click', async () => {
  if (!score) return;
  const comment = $('#p-comment-text').value.trim();
  const payload = comment ? { score, comment } : { score };
  try {
    await api(`${path}/rating`, { method: 'POST', body: payload });
    state.rated = true;
  } catch (error) {
    const problem = error instanceof ApiError && error.problem;
    if (problem && String(problem.type).endsWith('/already-rated')) state.rated = true;
    else {
      message('评价未能提交', error instanceof ApiError ? error.detail : String(error));
      return;
    }
  }
  $('#p-rate').hidden = true;
  message('感谢您的评价！', 'Thank you for your rating!');
  document.body.dataset.rated = 'true';
});

poll();
