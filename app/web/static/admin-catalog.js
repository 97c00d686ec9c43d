// The console's catalog sections: business types (with their guide), counters with their
// ordered profile (reordered with buttons, never by typing codes), and staff. Each is a table
// and one editor form; the editor creates (a new code) or updates (a row's Edit).

import { h, bi, COUNTER_STATE } from './common.js';
import {
  button, editorActions, field, input, number, numberInput, onSave, orNull, select, table, text,
  textArea,
} from './admin-forms.js';

const GUIDE_MAX = 500;

function editorTitle(editing, zh, en) {
  return h('legend', {}, editing ? bi(`编辑${zh} ${editing}`, `Edit ${en} ${editing}`) : bi(`新增${zh}`, `New ${en}`));
}

function codeField(value, editing) {
  return field('代码', 'Code', input('code', value, { required: true, maxlength: 32, readonly: editing ? true : null }),
    editing ? null : bi('字母、数字、- 或 _', 'letters, digits, - or _'));
}

function minutes(seconds) {
  return seconds === null || seconds === undefined ? '' : String(Math.round((seconds / 60) * 100) / 100);
}

function secondsFrom(form, name) {
  const value = number(form, name);
  return value === null ? null : Math.round(value * 60);
}

// ---------------------------------------------------------------------------------------------
// 业务类型 Business types.

function typeEditor(ctx, service, node) {
  const s = service || {};
  const form = h(
    'form',
    { class: 'admin-form', id: 'type-form' },
    h('fieldset', {},
      editorTitle(service && service.code, '业务类型', 'business type'),
      codeField(s.code, Boolean(service)),
      field('名称', 'Name', input('name', s.name, { required: true, maxlength: 100 })),
      field('号码前缀', 'Number prefix', input('prefix', s.prefix, { required: true, maxlength: 3 }), bi('1–3 个大写字母', '1-3 capital letters')),
      field('目标等候（分钟）', 'Target wait, minutes', numberInput('target_min', minutes(s.target_wait_s ?? 600), { min: 0, step: 'any' })),
      field('最长等候（分钟，防久等；空＝不设）', 'Starvation guard, minutes (empty: none)',
        numberInput('max_min', minutes(service ? s.max_wait_s : 1800), { min: 0, step: 'any' })),
      field('每窗口排队告警人数', 'Queue alert per open counter', numberInput('queue_alert', s.queue_alert_per_counter ?? 10, { min: 1, max: 1000 })),
      field('办理须知（中文）', 'Guide, Chinese', textArea('guide_zh', s.guide?.zh, { maxlength: GUIDE_MAX + 100 }),
        bi(`取号后显示并打印在号票上，最多 ${GUIDE_MAX} 字`, `shown after the press and printed on the ticket, at most ${GUIDE_MAX} characters`)),
      field('办理须知（英文）', 'Guide, English', textArea('guide_en', s.guide?.en, { maxlength: GUIDE_MAX + 100 })),
    ),
    editorActions('保存业务类型', 'Save the business type', service, () => renderTypes(node, ctx)),
  );
  onSave(form, ctx, {
    action: 'type',
    collection: 'services',
    refresh: 'branch',
    body: () => {
      const [guideZh, guideEn] = [text(form, 'guide_zh'), text(form, 'guide_en')];
      return {
        name: text(form, 'name'),
        prefix: text(form, 'prefix'),
        target_wait_s: secondsFrom(form, 'target_min') ?? 600,
        max_wait_s: secondsFrom(form, 'max_min'),
        queue_alert_per_counter: number(form, 'queue_alert') ?? 10,
        // An English guide alone goes to the API, which says a Chinese one is needed.
        guide: guideZh || guideEn ? { zh: guideZh || null, en: orNull(guideEn) } : null,
      };
    },
  });
  return form;
}

export function renderTypes(node, ctx) {
  const services = ctx.data.branch.services || [];
  const servedBy = (code) => (ctx.data.counters || []).filter((c) => c.services.includes(code)).map((c) => c.name);
  node.replaceChildren(
    h('h2', {}, bi('业务类型', 'Business types')),
    table('types-table', [
      ['代码', 'Code', (s) => s.code],
      ['前缀', 'Prefix', (s) => s.prefix],
      ['名称', 'Name', (s) => s.name],
      ['目标（分）', 'Target, min', (s) => minutes(s.target_wait_s)],
      ['防久等（分）', 'Guard, min', (s) => minutes(s.max_wait_s) || '—'],
      ['办理窗口', 'Counters', (s) => servedBy(s.code).join('、') || h('span', { class: 'warn-text' }, bi('无窗口办理', 'no counter'))],
      ['办理须知', 'Guide', (s) => (s.guide ? s.guide.zh.slice(0, 40) : '—')],
    ], services, (service) => {
      node.querySelector('#type-form').replaceWith(typeEditor(ctx, service, node));
      node.querySelector('#type-form').scrollIntoView({ block: 'nearest' });
    }),
    typeEditor(ctx, null, node),
  );
}

// ---------------------------------------------------------------------------------------------
// 窗口 Counters: name and the ordered profile (its own types first, fallbacks after).

function profileEditor(ctx, chosen) {
  const services = ctx.data.branch.services || [];
  const nameOf = (code) => services.find((s) => s.code === code)?.name ?? code;
  const list = h('ol', { class: 'profile', id: 'profile-list' });
  const adder = h('select', { name: 'add_type', 'aria-label': 'business type' });
  const order = [...chosen];

  function draw() {
    list.replaceChildren(...order.map((code, i) => h(
      'li',
      { dataset: { service: code } },
      h('span', { class: 'profile-name' }, `${nameOf(code)} (${code})`),
      i === 0 ? h('span', { class: 'tag' }, bi('主办', 'own')) : h('span', { class: 'tag muted' }, bi('兼办', 'fallback')),
      button('上移', 'Up', () => { [order[i - 1], order[i]] = [order[i], order[i - 1]]; draw(); }, '', { disabled: i === 0 ? true : null, 'data-move': 'up' }),
      button('下移', 'Down', () => { [order[i + 1], order[i]] = [order[i], order[i + 1]]; draw(); }, '', { disabled: i === order.length - 1 ? true : null, 'data-move': 'down' }),
      button('移除', 'Remove', () => { order.splice(i, 1); draw(); }, 'danger', { 'data-move': 'remove' }),
    )));
    const rest = services.filter((s) => !order.includes(s.code));
    adder.replaceChildren(...rest.map((s) => h('option', { value: s.code }, `${s.name} (${s.code})`)));
    adder.disabled = rest.length === 0;
  }
  draw();
  const add = button('加入', 'Add', () => {
    if (adder.value) { order.push(adder.value); draw(); }
  }, '', { id: 'profile-add' });
  return { node: h('div', { class: 'profile-editor' }, list, h('div', { class: 'inline' }, adder, add)), order };
}

function counterEditor(ctx, counter, node) {
  const c = counter || {};
  const profile = profileEditor(ctx, c.services || []);
  const form = h(
    'form',
    { class: 'admin-form', id: 'counter-form' },
    h('fieldset', {},
      editorTitle(counter && counter.code, '窗口', 'counter'),
      codeField(c.code, Boolean(counter)),
      field('名称', 'Name', input('name', c.name, { required: true, maxlength: 100 }), bi('如 "3"（播报为 3号窗口）', 'e.g. "3" (announced as counter 3)')),
      h('div', { class: 'field' }, h('span', { class: 'field-label' }, bi('办理业务（按优先顺序）', 'Business types, in order of preference')), profile.node),
    ),
    editorActions('保存窗口', 'Save the counter', counter, () => renderCounters(node, ctx)),
  );
  onSave(form, ctx, {
    action: 'counter',
    collection: 'counters',
    refresh: 'counters',
    body: () => ({ name: text(form, 'name'), services: profile.order }),
  });
  return form;
}

export function renderCounters(node, ctx) {
  const services = ctx.data.branch.services || [];
  const nameOf = (code) => services.find((s) => s.code === code)?.name ?? code;
  node.replaceChildren(
    h('h2', {}, bi('窗口', 'Counters')),
    table('counters-table', [
      ['代码', 'Code', (c) => c.code],
      ['名称', 'Name', (c) => c.name],
      ['办理业务（顺序）', 'Profile, in order', (c) => c.services.map(nameOf).join(' → ')],
      ['状态', 'State', (c) => bi(COUNTER_STATE[c.state]?.zh ?? c.state, COUNTER_STATE[c.state]?.en ?? '')],
      ['窗口屏', 'Screen', (c) => h('a', { href: `/window/${encodeURIComponent(ctx.data.branch.code)}/${encodeURIComponent(c.code)}` }, '/window')],
    ], ctx.data.counters || [], (counter) => {
      node.querySelector('#counter-form').replaceWith(counterEditor(ctx, counter, node));
      node.querySelector('#counter-form').scrollIntoView({ block: 'nearest' });
    }),
    counterEditor(ctx, null, node),
  );
}

// ---------------------------------------------------------------------------------------------
// 员工 Staff: name, role, staff number (工号).

const ROLES = [['clerk', '窗口人员', 'clerk'], ['manager', '值班经理', 'manager']];

function staffEditor(ctx, person, node) {
  const p = person || {};
  const form = h(
    'form',
    { class: 'admin-form', id: 'staff-form' },
    h('fieldset', {},
      editorTitle(person && person.code, '员工', 'staff member'),
      codeField(p.code, Boolean(person)),
      field('姓名', 'Name', input('name', p.name, { required: true, maxlength: 100 })),
      field('工号', 'Staff number', input('number', p.number, { maxlength: 32 }), bi('显示在窗口屏上，可空', 'shown on the counter screen; optional')),
      field('角色', 'Role', select('role', ROLES, p.role || 'clerk')),
    ),
    editorActions('保存员工', 'Save the staff member', person, () => renderStaff(node, ctx)),
  );
  onSave(form, ctx, {
    action: 'staff',
    collection: 'staff',
    refresh: 'staff',
    body: () => ({ name: text(form, 'name'), role: text(form, 'role'), number: orNull(text(form, 'number')) }),
  });
  return form;
}

export function renderStaff(node, ctx) {
  node.replaceChildren(
    h('h2', {}, bi('员工', 'Staff')),
    table('staff-table', [
      ['代码', 'Code', (p) => p.code],
      ['姓名', 'Name', (p) => p.name],
      ['工号', 'Number', (p) => p.number ?? '—'],
      ['角色', 'Role', (p) => (ROLES.find(([code]) => code === p.role) || [p.role, p.role])[1]],
    ], ctx.data.staff || [], (person) => {
      node.querySelector('#staff-form').replaceWith(staffEditor(ctx, person, node));
    }),
    staffEditor(ctx, null, node),
  );
}
