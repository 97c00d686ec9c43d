// The printed ticket (取号凭条) for the 80 mm receipt printer, shared by the kiosk and the service
// desk: number, business type, priority, how many wait ahead, the estimated wait, the time, the
// branch and the business type's guide (documents to bring, where to wait; SPEC §7). receipt.css prints only the page's `.receipt-host`, 72 mm wide on an 80 mm page.

import { h, bi, PRIORITY, waitRange, formatDateTime, serverNow } from './common.js';

/**
 * The ticket as an `<article id="ticket">`, for a `.receipt-host` on the page.
 * `serviceName` names the business type (its code when unknown); `reprint` marks a copy printed
 * again at the service desk (补打), with the time of the copy; `guide` is the type's `{zh, en?}`.
 */
export function receipt(ticket, { branchName, serviceName, guide = null, reprint = false }) {
  const prio = PRIORITY[ticket.priority] || PRIORITY.normal;
  const waiting = ticket.status === undefined || ticket.status === 'waiting';
  const ahead = waiting && ticket.waiting_ahead !== null && ticket.waiting_ahead !== undefined
    ? ticket.waiting_ahead
    : null;
  const wait = waiting
    ? waitRange(ticket.estimated_wait_s, ticket.estimated_wait_range_s)
    : { zh: '—', en: '—' };
  return h(
    'article',
    { class: 'ticket', id: 'ticket', 'aria-live': 'polite', dataset: { number: ticket.number } },
    h('div', { class: 't-branch', id: 't-branch' }, branchName || ''),
    h('div', { class: 't-label' }, bi('您的号码', 'Your number')),
    h('div', { class: 't-number', id: 't-number' }, ticket.number),
    h('div', { class: 't-service', id: 't-service' }, serviceName || ticket.service),
    h('div', { class: 't-priority', id: 't-priority' },
      ticket.priority && ticket.priority !== 'normal' ? bi(prio.zh, prio.en) : null),
    h(
      'dl',
      { class: 't-facts' },
      h('dt', {}, bi('前面等候', 'Waiting ahead')),
      h('dd', { id: 't-ahead' }, ahead === null ? '—' : bi(`${ahead} 人`, `${ahead}`)),
      h('dt', {}, bi('预计等候', 'Estimated wait')),
      h('dd', { id: 't-wait' }, bi(wait.zh, wait.en)),
      h('dt', {}, bi('取号时间', 'Issued')),
      h('dd', { id: 't-time' }, formatDateTime(new Date(ticket.issued_at))),
    ),
    guideBlock(guide),
    qrBlock(ticket.code),
    reprint
      ? h('div', { class: 't-reprint', id: 't-reprint' },
        bi(`补打 ${formatDateTime(serverNow())}`, 'Reprinted copy'))
      : null,
    h(
      'p',
      { class: 't-hint' },
      h('span', { class: 'zh' }, '请留意叫号屏和语音提示，过号请到服务台。'),
      ' ',
      h('span', { class: 'en' }, 'Please watch the screen for your number; if you miss it, ask at the service desk.'),
    ),
  );
}

/** The business type's guide, Chinese first; line breaks kept (receipt.css). */
function guideBlock(guide) {
  if (!guide || !guide.zh) return null;
  return h(
    'div',
    { class: 't-guide', id: 't-guide' },
    h('div', { class: 'zh' }, guide.zh),
    guide.en ? h('div', { class: 'en' }, guide.en) : null,
  );
}

/** The QR code of the ticket's phone page (SPEC §9), drawn by the server as SVG. */
function qrBlock(code) {
  if (!code) return null;
  return h(
    'div',
    { class: 't-qr', id: 't-qr' },
    h('img', {
      src: `/t/${encodeURIComponent(code)}/qr.svg`,
      alt: '扫码在手机上查看排队 Scan to follow your turn on your phone',
      id: 't-qr-img',
    }),
    h('div', { class: 't-qr-hint' },
      h('span', { class: 'zh' }, '扫码用手机查看排队、叫号'),
      ' ',
      h('span', { class: 'en' }, 'Scan: follow your turn on your phone')),
  );
}

/** Print once the ticket is drawn (and its QR code loaded, at most 3 s): the browser's print
 * dialog, or none under --kiosk-printing. */
export function printReceipt() {
  const images = [...document.querySelectorAll('.receipt-host img')];
  const loaded = images.map((img) => (img.complete ? null : new Promise((resolve) => {
    img.addEventListener('load', resolve, { once: true });
    img.addEventListener('error', resolve, { once: true });
    setTimeout(resolve, 3000);
  })));
  Promise.all(loaded).then(() => requestAnimationFrame(() => setTimeout(() => window.print(), 50)));
}
