// Remote join (/join/{branch}, SPEC §9): the branch's business types open to remote join with
// their waits; one tap takes a `normal` ticket and opens its page (/t/{code}). The phone number
// is optional (for a text before the turn) and goes only to the issuing request.

import { $, h, bi, api, ApiError, page, waitRange, debugState } from './common.js';

const state = debugState();
const base = `/public/branches/${encodeURIComponent(page.branch)}`;
let chosen = null;

function message(zh, en) {
  const node = $('#j-message');
  node.replaceChildren(h('div', { class: 'zh' }, zh), h('div', { class: 'en' }, en || ''));
  node.hidden = !zh;
}

function render(info) {
  state.join = info;
  $('#branch-name').textContent = info.branch.name;
  document.title = `手机取号 Take a number · ${info.branch.name}`;
  $('#join').dataset.state = info.open ? 'open' : 'closed';
  const closed = $('#j-closed');
  closed.hidden = info.open;
  if (!info.open) {
    const when = info.opens_at ? new Date(info.opens_at).toLocaleString() : '—';
    closed.replaceChildren(bi(`现在不能取号，下次开始：${when}`, `Not open now; opens ${when}`));
  }
  $('#j-form').hidden = !info.open;
  const list = $('#j-services');
  list.replaceChildren(list.querySelector('legend'));
  for (const svc of info.services) {
    const wait = waitRange(svc.estimated_wait_s, svc.estimated_wait_range_s);
    list.append(
      h(
        'label',
        { class: 'j-service', dataset: { service: svc.code } },
        h('input', {
          type: 'radio',
          name: 'service',
          value: svc.code,
          onchange: () => { chosen = svc.code; $('#j-take').disabled = false; },
        }),
        h('span', { class: 'j-name' }, svc.name),
        h('span', { class: 'j-facts' },
          bi(`等候 ${svc.waiting} 人 · 预计${wait.zh}`, `${svc.waiting} waiting · ${wait.en}`)),
      ),
    );
  }
}

async function load() {
  try {
    render(await api(base));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $('#join').dataset.state = 'unavailable';
      message('本厅未开放手机取号', 'Remote join is not available here');
    } else {
      message('暂时无法连接', error instanceof ApiError ? error.detail : String(error));
    }
  }
}

$('#j-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!chosen) return;
  const phone = $('#j-phone').value.trim();
  const payload = phone ? { service: chosen, phone } : { service: chosen };
  $('#j-take').disabled = true;
  try {
    const ticket = await api(`${base}/tickets`, { method: 'POST', body: payload });
    state.joined = ticket;
    window.location.assign(`/t/${encodeURIComponent(ticket.code)}`);
  } catch (error) {
    message('取号失败', error instanceof ApiError ? error.detail : String(error));
    $('#j-take').disabled = false;
  }
});

load();
