// The console's notices (SPEC §7): the lobby ticker's and the kiosk's lines, each with an
// optional window of time (typed as the hall's local time) and an order.

import { h, bi, api, formatDateTime } from './common.js';
import {
  confirmButton, editorActions, field, input, instantToWall, number, numberInput, onSave, orNull,
  refused, saved, table, text, textArea, wallToInstant,
} from './admin-forms.js';

function when(iso) {
  return iso ? formatDateTime(new Date(iso)) : '—';
}

function noticeEditor(ctx, notice, node) {
  const n = notice || {};
  const tz = ctx.data.branch.timezone;
  const form = h(
    'form',
    { class: 'admin-form', id: 'notice-form' },
    h('fieldset', {},
      h('legend', {}, notice ? bi(`编辑公告 ${notice.code}`, `Edit notice ${notice.code}`) : bi('新增公告', 'New notice')),
      field('代码', 'Code', input('code', n.code, { required: true, maxlength: 32, readonly: notice ? true : null })),
      field('中文', 'Chinese', textArea('text_zh', n.text?.zh, { maxlength: 300, rows: 2 })),
      field('英文', 'English', textArea('text_en', n.text?.en, { maxlength: 300, rows: 2 })),
      field('开始（当地时间，可空）', 'From, local time (optional)', input('from', instantToWall(n.from, tz), { type: 'datetime-local' })),
      field('结束（可空）', 'Until (optional)', input('to', instantToWall(n.to, tz), { type: 'datetime-local' })),
      field('顺序', 'Order', numberInput('order', n.order ?? 0, { min: -1000000, max: 1000000 })),
    ),
    editorActions('保存公告', 'Save the notice', notice, () => renderNotices(node, ctx)),
  );
  onSave(form, ctx, {
    action: 'notice',
    collection: 'notices',
    refresh: 'notices',
    body: () => ({
      text: { zh: text(form, 'text_zh'), en: orNull(text(form, 'text_en')) },
      from: wallToInstant(text(form, 'from'), tz),
      to: wallToInstant(text(form, 'to'), tz),
      order: number(form, 'order') ?? 0,
    }),
  });
  return form;
}

async function deleteNotice(ctx, code) {
  try {
    await api(`${ctx.branchPath}/notices/${encodeURIComponent(code)}`, { method: 'DELETE' });
    saved('notice-delete', '已删除', 'Deleted');
    await ctx.refresh('notices');
  } catch (error) {
    refused('notice-delete', error);
  }
}

export function renderNotices(node, ctx) {
  const notices = ctx.data.notices || [];
  const listing = table('notices-table', [
    ['代码', 'Code', (n) => n.code],
    ['内容', 'Text', (n) => [n.text.zh, n.text.en ? h('span', { class: 'en' }, ` ${n.text.en}`) : null]],
    ['开始', 'From', (n) => when(n.from)],
    ['结束', 'Until', (n) => when(n.to)],
    ['顺序', 'Order', (n) => String(n.order)],
    ['当前显示', 'Shown now', (n) => (n.current ? bi('是', 'yes') : bi('否', 'no'))],
  ], notices, (notice) => {
    node.querySelector('#notice-form').replaceWith(noticeEditor(ctx, notice, node));
  });
  listing.querySelectorAll('tbody tr').forEach((row) => {
    row.querySelector('.row-actions').append(
      confirmButton('删除', 'Delete', () => deleteNotice(ctx, row.dataset.code), { 'data-delete': row.dataset.code }));
  });
  node.replaceChildren(
    h('h2', {}, bi('公告', 'Notices')),
    h('p', { class: 'field-hint' }, bi('显示在叫号屏滚动条与取号机上，并附当日营业时间。',
      'Shown on the lobby display’s ticker and on the kiosk, beside today’s hours.')),
    listing,
    noticeEditor(ctx, null, node),
  );
}
