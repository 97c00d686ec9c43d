// The console's devices (SPEC §7): every token of the branch with when it was last seen; rename,
// put a kiosk out of service, revoke; create a token and show its secret, pairing link and QR
// code once (the server keeps only a hash, so they cannot be shown again).

import { h, bi, api, formatDateTime } from './common.js';
import {
  button, checkbox, confirmButton, field, input, refused, saved, select, submit, submitting, text,
} from './admin-forms.js';

const ROLE = {
  kiosk: ['取号机', 'kiosk'],
  display: ['显示屏', 'display'],
  clerk: ['窗口人员', 'clerk'],
  manager: ['值班经理', 'manager'],
  admin: ['管理员', 'admin'],
  monitor: ['监控', 'monitor'],
};

async function patchToken(ctx, id, body, action) {
  try {
    await api(`/tokens/${encodeURIComponent(id)}`, { method: 'PATCH', body });
    saved(action);
  } catch (error) {
    refused(action, error);
  }
  await ctx.refresh('tokens');
}

async function revoke(ctx, id) {
  try {
    await api(`/tokens/${encodeURIComponent(id)}`, { method: 'DELETE' });
    saved('device-revoke', '已吊销', 'Revoked');
  } catch (error) {
    refused('device-revoke', error);
  }
  await ctx.refresh('tokens');
}

function deviceRow(ctx, device) {
  const label = input('label', device.label, { maxlength: 100, 'aria-label': 'label' });
  const outOfService = device.role === 'kiosk' ? checkbox('out_of_service', device.out_of_service) : null;
  if (outOfService) {
    outOfService.addEventListener('change', () => patchToken(ctx, device.id, { out_of_service: outOfService.checked }, 'device-service'));
  }
  const seen = device.last_seen_at ? formatDateTime(new Date(device.last_seen_at)) : '—';
  return h(
    'tr',
    { dataset: { id: device.id, role: device.role, online: String(device.online) } },
    h('td', {}, bi(...(ROLE[device.role] || [device.role, '']))),
    h('td', {}, h('div', { class: 'label-cell' }, label,
      button('改名', 'Rename', () => patchToken(ctx, device.id, { label: label.value.trim() }, 'device-label'), '', { 'data-rename': device.id }))),
    h('td', {}, device.staff ?? '—'),
    h('td', {}, h('span', { class: `online ${device.online ? 'yes' : 'no'}` },
      device.online ? bi('在线', 'online') : bi('离线', 'offline')), h('div', { class: 'muted small' }, seen)),
    h('td', {}, outOfService ? h('label', { class: 'check' }, outOfService, bi('暂停使用', 'Out of service')) : '—'),
    h('td', { class: 'row-actions' }, confirmButton('吊销', 'Revoke', () => revoke(ctx, device.id), { 'data-revoke': device.id })),
  );
}

function pairingPanel(ctx, created, node) {
  const link = created.pairing;
  const svg = link ? `data:image/svg+xml;charset=utf-8,${encodeURIComponent(link.qr_svg)}` : null;
  return h(
    'div',
    { class: 'pairing', id: 'pairing' },
    h('h3', {}, bi('新设备令牌（仅显示这一次）', 'New device token (shown this once)')),
    h('p', {}, bi('令牌', 'Token'), ' ', h('code', { id: 'new-token' }, created.token)),
    link ? h('p', {}, bi('配对链接：在设备上打开或扫码', 'Pairing link: open it on the device, or scan'), h('br'),
      h('a', { id: 'pairing-link', href: link.url, target: '_blank', rel: 'noreferrer' }, link.url)) : h('p', { class: 'muted' },
      bi('此类令牌没有设备页面链接：在页面上输入令牌。', 'No device page for this token: enter it on the page.')),
    svg ? h('img', { id: 'pairing-qr', src: svg, alt: 'QR', width: 220, height: 220 }) : null,
    button('完成', 'Done', () => { ctx.created = null; node.querySelector('#pairing').remove(); }),
  );
}

function createForm(ctx, node) {
  const roles = ['kiosk', 'display', 'clerk', ...(ctx.isAdmin ? ['manager'] : [])];
  const staff = [['', '—', ''], ...(ctx.data.staff || []).map((p) => [p.code, `${p.name} (${p.code})`, ''])];
  const counters = [['', '—', ''], ...(ctx.data.counters || []).map((c) => [c.code, `${c.name} (${c.code})`, ''])];
  const form = h(
    'form',
    { class: 'admin-form', id: 'device-form' },
    h('fieldset', {},
      h('legend', {}, bi('新增设备', 'New device')),
      field('类型', 'Kind', select('role', roles.map((r) => [r, ...ROLE[r]]), 'kiosk')),
      field('名称', 'Label', input('label', '', { maxlength: 100, placeholder: '大厅取号机 1' })),
      field('员工（窗口人员、经理）', 'Staff member (clerk, manager)', select('staff', staff, '')),
      field('窗口（可空）', 'Counter (optional)', select('counter', counters, ''),
        bi('窗口人员：打开该窗口的控制台；显示屏：作为该窗口的窗口屏', 'clerk: opens that counter’s console; display: the counter screen above it')),
    ),
    submit('创建令牌', 'Create the token'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, 'device-create', async () => {
      const role = text(form, 'role');
      const body = { role, branch: ctx.data.branch.code, label: text(form, 'label') || null };
      if (text(form, 'staff')) body.staff = text(form, 'staff');
      if (text(form, 'counter')) body.counter = text(form, 'counter');
      ctx.created = await api('/tokens', { method: 'POST', body });
      await ctx.refresh('tokens');
    });
  });
  return form;
}

export function renderDevices(node, ctx) {
  const devices = (ctx.data.tokens || []).filter((t) => t.branch === ctx.data.branch.code);
  node.replaceChildren(
    h('h2', {}, bi('设备与令牌', 'Devices and tokens')),
    ctx.created ? pairingPanel(ctx, ctx.created, node) : '',
    h('table', { class: 'admin-table', id: 'devices-table' },
      h('thead', {}, h('tr', {},
        ...[['类型', 'Kind'], ['名称', 'Label'], ['员工', 'Staff'], ['在线', 'Seen'], ['取号', 'Issuing'], ['', '']]
          .map(([zh, en]) => h('th', {}, zh ? bi(zh, en) : '')))),
      h('tbody', {}, devices.map((device) => deviceRow(ctx, device)))),
    createForm(ctx, node),
  );
}
