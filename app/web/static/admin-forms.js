// The console's building blocks: labelled fields, a form that sends one API request and shows
// the problem's `detail` when refused, the weekly-hours editor, and wall time in the branch's
// timezone (notices are instants; a manager types the hall's local time).

import { h, bi, api, ApiError, debugState, showBanner } from './common.js';

const state = debugState();

// ---------------------------------------------------------------------------------------------
// Messages: one banner at the top of the page; `state.lastAction` for the browser tests.

export const banner = showBanner;

export function refused(action, error) {
  const detail = error instanceof ApiError ? error.detail : String(error);
  banner('error', '未保存', 'Refused', detail);
  state.lastAction = { action, ok: false, detail };
}

export function saved(action, zh = '已保存', en = 'Saved') {
  banner('ok', zh, en);
  state.lastAction = { action, ok: true };
}

/** Run `work` for a form's submit: its buttons wait meanwhile; a refusal shows its detail. */
export async function submitting(form, action, work) {
  const buttons = [...form.querySelectorAll('button')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await work();
    saved(action);
    return true;
  } catch (error) {
    refused(action, error);
    return false;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// ---------------------------------------------------------------------------------------------
// Fields.

export function field(zh, en, input, hint = null) {
  return h(
    'label',
    { class: 'field' },
    h('span', { class: 'field-label' }, bi(zh, en)),
    input,
    hint ? h('span', { class: 'field-hint' }, hint) : null,
  );
}

export function input(name, value, attrs = {}) {
  return h('input', { name, value: value ?? '', autocomplete: 'off', ...attrs });
}

export function numberInput(name, value, { min = 0, max = 100000, step = 1 } = {}) {
  return input(name, value === null || value === undefined ? '' : String(value), {
    type: 'number', min, max, step, inputmode: 'numeric',
  });
}

export function textArea(name, value, { maxlength = 500, rows = 3 } = {}) {
  const node = h('textarea', { name, rows, maxlength });
  node.value = value ?? '';
  return node;
}

export function select(name, options, value) {
  const node = h(
    'select',
    { name },
    options.map(([code, zh, en]) => h('option', { value: code }, en ? `${zh} ${en}` : zh)),
  );
  node.value = value ?? '';
  return node;
}

export function checkbox(name, checked) {
  const node = h('input', { type: 'checkbox', name });
  node.checked = Boolean(checked);
  return node;
}

export function button(zh, en, onclick, kind = '', attrs = {}) {
  return h('button', { type: 'button', class: `btn small ${kind}`, onclick, ...attrs }, bi(zh, en));
}

export function submit(zh, en) {
  return h('button', { type: 'submit', class: 'btn primary' }, bi(zh, en));
}

/** The text of a field ('' when empty), trimmed. */
export function text(form, name) {
  return (form.elements[name]?.value ?? '').trim();
}

/** A number, or null when the field is empty. A bad number goes to the API, which says why. */
export function number(form, name) {
  const value = text(form, name);
  return value === '' ? null : Number(value);
}

export function orNull(value) {
  return value === '' ? null : value;
}

// ---------------------------------------------------------------------------------------------
// Weekly hours: a row per day, open or closed, one or two periods ("09:00"-"12:00", "13:00"-...).

export const WEEKDAYS = [
  ['mon', '周一', 'Mon'], ['tue', '周二', 'Tue'], ['wed', '周三', 'Wed'], ['thu', '周四', 'Thu'],
  ['fri', '周五', 'Fri'], ['sat', '周六', 'Sat'], ['sun', '周日', 'Sun'],
];

function timeInput(label, value) {
  return h('input', { type: 'time', value: value || '', 'aria-label': label, step: 60 });
}

/** An editor of `{"mon": [["09:00","12:00"], ...], ...}`; `value()` reads it back. */
export function hoursEditor(hours, prefix) {
  const rows = WEEKDAYS.map(([day, zh, en]) => {
    const periods = (hours && hours[day]) || [];
    const open = checkbox(`${prefix}-${day}-open`, periods.length > 0);
    const times = [0, 1].flatMap((i) => [
      timeInput(`${day} ${i + 1} from`, periods[i]?.[0]),
      timeInput(`${day} ${i + 1} to`, periods[i]?.[1]),
    ]);
    times.forEach((node, i) => { node.name = `${prefix}-${day}-${i}`; });
    const row = h(
      'div',
      { class: 'hours-row', dataset: { day } },
      h('label', { class: 'hours-day' }, open, bi(zh, en)),
      h('span', { class: 'period' }, times[0], '–', times[1]),
      h('span', { class: 'period second' }, times[2], '–', times[3],
        h('span', { class: 'field-hint' }, bi('（午休后，可空）', 'after lunch, optional'))),
    );
    return { day, open, times, row };
  });
  const node = h('div', { class: 'hours-editor' }, rows.map((r) => r.row));
  function value() {
    const result = {};
    for (const { day, open, times } of rows) {
      if (!open.checked) continue;
      const periods = [];
      for (const i of [0, 2]) {
        const [from, to] = [times[i].value, times[i + 1].value];
        if (from || to) periods.push([from, to]);
      }
      result[day] = periods;
    }
    return result;
  }
  return { node, value };
}

/** "周一 09:00–12:00, 13:00–17:00 · 周六 …" */
export function hoursSummary(hours) {
  if (!hours) return '全天开放 Always open';
  const days = WEEKDAYS.filter(([day]) => (hours[day] || []).length > 0).map(
    ([day, zh]) => `${zh} ${hours[day].map(([a, b]) => `${a}–${b}`).join(', ')}`,
  );
  return days.length ? days.join(' · ') : '全周休息 Closed all week';
}

// ---------------------------------------------------------------------------------------------
// Wall time in the branch's timezone <-> instants (notices' `from` and `to`).

function offsetMs(instantMs, timeZone) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(instantMs));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return wall - Math.floor(instantMs / 1000) * 1000;
}

/** "2026-12-04T09:00" in `timeZone` -> ISO instant; '' -> null. */
export function wallToInstant(wall, timeZone) {
  if (!wall) return null;
  const [date, time] = wall.split('T');
  const [y, m, d] = date.split('-').map(Number);
  const [hh, mm] = time.split(':').map(Number);
  const asUtc = Date.UTC(y, m - 1, d, hh, mm);
  // Two steps settle the offset, also across a change of the clocks.
  let instant = asUtc - offsetMs(asUtc, timeZone);
  instant = asUtc - offsetMs(instant, timeZone);
  return new Date(instant).toISOString();
}

/** ISO instant -> "2026-12-04T09:00" in `timeZone` (for a datetime-local input); null -> ''. */
export function instantToWall(iso, timeZone) {
  if (!iso) return '';
  const ms = Date.parse(iso);
  const wall = new Date(ms + offsetMs(ms, timeZone));
  return wall.toISOString().slice(0, 16);
}

// ---------------------------------------------------------------------------------------------
// Codes name things in the API's paths: checked here first, with the API's own rule, so that a
// slash or a space never turns into another path.

const CODE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;

export function checkedCode(value, zh, en) {
  if (!CODE.test(value)) {
    throw new ApiError(422, `${zh} ${en}: 1-32 characters: letters, digits, '-' or '_', starting with a letter or digit (got ${JSON.stringify(value)})`);
  }
  return encodeURIComponent(value);
}

/** A table of `rows`: `columns` are [zh, en, (row) => cell], plus an edit button per row. */
export function table(id, columns, rows, onEdit) {
  return h(
    'table',
    { class: 'admin-table', id },
    h('thead', {}, h('tr', {}, columns.map(([zh, en]) => h('th', {}, bi(zh, en))), h('th', {}))),
    h('tbody', {}, rows.map((row) => h(
      'tr',
      { dataset: { code: row.code } },
      columns.map(([, , cell]) => h('td', {}, cell(row))),
      h('td', { class: 'row-actions' }, button('编辑', 'Edit', () => onEdit(row), '', { 'data-edit': row.code })),
    ))),
  );
}

/** A button that asks once more before `action` (deleting, revoking): no browser dialog. */
export function confirmButton(zh, en, action, attrs = {}) {
  let armed = null;
  const node = button(zh, en, async () => {
    if (!armed) {
      node.replaceChildren(bi('确认？', 'Sure?'));
      armed = setTimeout(() => { armed = null; node.replaceChildren(bi(zh, en)); }, 5000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    node.disabled = true;
    await action();
    node.disabled = false;
  }, 'danger', attrs);
  return node;
}

/** An editor's buttons: save, and cancel while an existing entry is edited. */
export function editorActions(zh, en, editing, cancel) {
  return h('div', { class: 'form-actions' },
    submit(zh, en), editing ? button('取消', 'Cancel', cancel) : null);
}

/** An editor's submit: PUT `body()` to `{branch}/{collection}/{code}`, then read `refresh`
 * again (which redraws the section). */
export function onSave(form, ctx, { action, collection, body, refresh }) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, action, async () => {
      const code = checkedCode(text(form, 'code'), '代码', 'code');
      await api(`${ctx.branchPath}/${collection}/${code}`, { method: 'PUT', body: body() });
      await ctx.refresh(refresh);
    });
  });
}
