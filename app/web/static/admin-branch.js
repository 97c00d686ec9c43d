// The console's branch sections: the branch's settings and announcement wording; its weekly
// hours, special hours and holidays. The branch is one PUT of the whole body, so each form
// sends what it edits on top of what the server last said.

import { h, bi, api, localDate } from './common.js';
import {
  button, checkbox, field, hoursEditor, hoursSummary, input, number, numberInput, orNull,
  select, submit, submitting, text,
} from './admin-forms.js';

const BRANCH_FIELDS = [
  'name', 'timezone', 'hours', 'special_hours', 'holidays', 'issue_cutoff_min',
  'min_open_counters', 'requeue_after', 'announcement', 'day_starts_at', 'clerks_may_pick',
  'notify_ahead', 'online_join', 'sms_templates', 'service_level_pct', 'staffing_weeks',
];

async function putBranch(ctx, changes) {
  const current = ctx.data.branch;
  const body = Object.fromEntries(BRANCH_FIELDS.map((key) => [key, current[key]]));
  await api(ctx.branchPath, { method: 'PUT', body: { ...body, ...changes } });
  await ctx.refresh('branch');
}

function timezones() {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return h('datalist', { id: 'timezones' }, zones.map((zone) => h('option', { value: zone })));
}

// ---------------------------------------------------------------------------------------------
// 分行 Branch.

export function renderBranch(node, ctx) {
  const b = ctx.data.branch;
  const a = b.announcement || {};
  const form = h(
    'form',
    { class: 'admin-form', id: 'branch-form' },
    h('fieldset', {},
      h('legend', {}, bi('基本信息', 'The branch')),
      field('名称', 'Name', input('name', b.name, { required: true, maxlength: 100 })),
      field('时区', 'Timezone', input('timezone', b.timezone, { list: 'timezones', required: true }), 'Asia/Shanghai'),
      timezones(),
      field('营业日开始', 'Business day starts at', input('day_starts_at', b.day_starts_at, { type: 'time' }),
        bi('号码在此时刻重新开始', 'numbers restart at this time')),
      field('停止取号（闭厅前分钟）', 'Stop issuing, minutes before closing', numberInput('issue_cutoff_min', b.issue_cutoff_min, { max: 720 })),
      field('最少开放窗口', 'Minimum open counters', numberInput('min_open_counters', b.min_open_counters, { max: 1000 })),
      field('过号重排：再叫几位后轮到', 'A re-queued no-show is called after this many others', numberInput('requeue_after', b.requeue_after, { max: 50 })),
      h('label', { class: 'field check' }, checkbox('clerks_may_pick', b.clerks_may_pick),
        bi('窗口可选叫指定号码', 'Clerks may call a chosen ticket')),
    ),
    h('fieldset', {},
      h('legend', {}, bi('排班建议', 'Staffing plan')),
      field('服务水平（目标内叫号 %）', 'Service level (% called within target)',
        numberInput('service_level_pct', b.service_level_pct, { min: 1, max: 99 }),
        bi('1–99，默认 80', '1–99, default 80')),
      field('预测参考周数', 'Weeks of history for the forecast',
        numberInput('staffing_weeks', b.staffing_weeks, { min: 1, max: 52 }),
        bi('1–52，默认 8', '1–52, default 8')),
    ),
    h('fieldset', {},
      h('legend', {}, bi('手机', 'The customer\'s phone')),
      field('前面还有几人时提醒', 'Notify when this many are ahead', numberInput('notify_ahead', b.notify_ahead, { max: 100 }),
        bi('留空：不提醒', 'empty: no notice')),
      h('label', { class: 'field check' }, checkbox('online_join_enabled', Boolean(b.online_join && b.online_join.enabled)),
        bi('允许手机远程取号', 'Remote join from a phone')),
      field('每日远程取号上限', 'Remote joins a day', numberInput('online_join_daily_limit', (b.online_join && b.online_join.daily_limit) ?? 200, { min: 1, max: 100000 })),
    ),
    h('fieldset', {},
      h('legend', {}, bi('叫号播报', 'Announcement')),
      field('中文播报词', 'Chinese wording', input('ann_zh', a.zh, { maxlength: 200, placeholder: '请{number}号到{place}办理' }),
        bi('须含 {number} 与 {counter} 或 {place}', 'must contain {number} and {counter} or {place}')),
      field('英文播报词', 'English wording', input('ann_en', a.en, { maxlength: 200, placeholder: 'Number {number}, please go to counter {counter}' })),
      field('播报方式', 'How screens speak', select('ann_mode', [
        ['auto', '自动', 'auto'], ['browser', '浏览器语音', 'browser voice'], ['server', '服务器音频', 'server audio'],
      ], a.mode || 'auto')),
      field('重复次数', 'Repeat', numberInput('ann_repeat', a.repeat ?? 1, { min: 1, max: 3 })),
      field('语速', 'Rate', numberInput('ann_rate', a.rate ?? 1, { min: 0.5, max: 2, step: 0.05 })),
      field('首选语音', 'Preferred voice', input('ann_voice', a.voice, { maxlength: 100 })),
    ),
    submit('保存分行设置', 'Save the branch'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, 'branch', () => putBranch(ctx, {
      name: text(form, 'name'),
      timezone: text(form, 'timezone'),
      day_starts_at: text(form, 'day_starts_at') || '00:00',
      issue_cutoff_min: number(form, 'issue_cutoff_min') ?? 0,
      min_open_counters: number(form, 'min_open_counters') ?? 0,
      requeue_after: number(form, 'requeue_after') ?? 0,
      clerks_may_pick: form.elements.clerks_may_pick.checked,
      notify_ahead: number(form, 'notify_ahead'),
      service_level_pct: number(form, 'service_level_pct') ?? 80,
      staffing_weeks: number(form, 'staffing_weeks') ?? 8,
      online_join: {
        ...(b.online_join || {}),
        enabled: form.elements.online_join_enabled.checked,
        daily_limit: number(form, 'online_join_daily_limit') ?? 200,
      },
      announcement: {
        zh: orNull(text(form, 'ann_zh')),
        en: orNull(text(form, 'ann_en')),
        mode: text(form, 'ann_mode'),
        repeat: number(form, 'ann_repeat') ?? 1,
        rate: number(form, 'ann_rate') ?? 1,
        voice: orNull(text(form, 'ann_voice')),
      },
    }));
  });
  node.replaceChildren(h('h2', {}, bi('分行设置', 'Branch settings')), form);
}

// ---------------------------------------------------------------------------------------------
// 营业时间 Hours: weekly hours (up to two periods a day), special hours, holidays.

function specialRange(range, index) {
  const editor = hoursEditor(range.hours, `special${index}`);
  const card = h(
    'div',
    { class: 'special-range', dataset: { index: String(index) } },
    h('div', { class: 'range-dates' },
      field('从', 'From', input('from', range.from, { type: 'date', required: true })),
      field('到', 'To (included)', input('to', range.to, { type: 'date', required: true })),
      button('删除此时段', 'Remove', () => card.remove(), 'danger'),
    ),
    editor.node,
  );
  card.readRange = () => ({
    from: card.querySelector('[name=from]').value,
    to: card.querySelector('[name=to]').value,
    hours: editor.value(),
  });
  return card;
}

function holidayChip(date) {
  const chip = h('li', { class: 'chip', dataset: { date } }, date, ' ');
  chip.append(h('button', { type: 'button', class: 'chip-x', 'aria-label': `remove ${date}`, onclick: () => chip.remove() }, '×'));
  return chip;
}

export function renderHours(node, ctx) {
  const b = ctx.data.branch;
  const always = checkbox('always_open', b.hours === null);
  const weekly = hoursEditor(b.hours, 'weekly');
  weekly.node.hidden = always.checked;
  always.addEventListener('change', () => { weekly.node.hidden = always.checked; });

  const ranges = h('div', { class: 'special-list', id: 'special-list' },
    (b.special_hours || []).map((range, i) => specialRange(range, i)));
  let added = (b.special_hours || []).length;
  const addRange = button('添加特殊时段', 'Add special hours', () => {
    const today = localDate();
    ranges.append(specialRange({ from: today, to: today, hours: b.hours || {} }, added));
    added += 1;
  });

  const holidays = h('ul', { class: 'chips', id: 'holiday-list' }, (b.holidays || []).map(holidayChip));
  const newHoliday = input('new_holiday', '', { type: 'date', 'aria-label': 'holiday' });
  const addHoliday = button('添加节假日', 'Add holiday', () => {
    const date = newHoliday.value;
    if (date && !holidays.querySelector(`[data-date="${date}"]`)) holidays.append(holidayChip(date));
    newHoliday.value = '';
  });

  const form = h(
    'form',
    { class: 'admin-form', id: 'hours-form' },
    h('p', { class: 'muted' }, hoursSummary(b.hours)),
    h('fieldset', {},
      h('legend', {}, bi('每周营业时间', 'Weekly hours')),
      h('label', { class: 'field check' }, always, bi('全天开放（不限时间）', 'Always open (no hours)')),
      weekly.node,
    ),
    h('fieldset', {},
      h('legend', {}, bi('特殊营业时间', 'Special hours')),
      h('p', { class: 'field-hint' }, bi('日期范围内以此代替每周时间（夏令、冬令、特殊日）；未勾选的星期休息。',
        'Within the dates these replace the weekly hours (summer, winter, a special day); unticked weekdays are closed.')),
      ranges,
      addRange,
    ),
    h('fieldset', {},
      h('legend', {}, bi('节假日（闭厅）', 'Holidays (closed)')),
      holidays,
      h('div', { class: 'inline' }, newHoliday, addHoliday),
    ),
    submit('保存营业时间', 'Save the hours'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, 'hours', () => putBranch(ctx, {
      hours: always.checked ? null : weekly.value(),
      special_hours: [...ranges.children].map((card) => card.readRange()),
      holidays: [...holidays.children].map((chip) => chip.dataset.date),
    }));
  });
  node.replaceChildren(h('h2', {}, bi('营业时间', 'Opening hours')), form);
}
