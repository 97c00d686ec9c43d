// The branch's notices (SPEC §7: hours, closures, service commitments, the complaint hotline)
// and today's opening hours, for the lobby display's ticker and the kiosk.
//
// The queue view carries the current notices and `notices_change_at`, the moment a notice next
// starts or ends by itself (no event is raised then): the board reads the view again at that
// moment. A change made by the manager arrives as `notices.changed`, with the new list.

import { h, localDate, serverNow } from './common.js';

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MAX_WAIT_MS = 6 * 3600_000; // a far-off change is looked at again on the way
const AFTER_CHANGE_MS = 1000; // read the view a moment after the change, by the server's clock

/** Today's opening periods from the branch's configuration: null when always open, [] when
 * closed, undefined when the branch is not known yet. */
export function hoursToday(branch, day = localDate()) {
  if (!branch) return undefined;
  if ((branch.holidays || []).includes(day)) return [];
  const special = (branch.special_hours || []).find((range) => range.from <= day && day <= range.to);
  const hours = special ? special.hours : branch.hours;
  if (!hours) return null;
  return hours[WEEKDAYS[new Date(`${day}T00:00:00Z`).getUTCDay()]] || [];
}

/** Today's opening hours as {zh, en}, or null when unknown or always open. */
export function hoursLine(branch) {
  const periods = hoursToday(branch);
  if (!periods) return null;
  if (!periods.length) return { kind: 'hours', zh: '今日休息', en: 'Closed today' };
  const spans = periods.map(([from, to]) => `${from}–${to}`).join('、');
  return { kind: 'hours', zh: `今日营业时间 ${spans}`, en: `Open today ${spans.replaceAll('、', ', ')}` };
}

/** The current notices and today's hours, as lines {kind, code?, zh, en}. */
export class NoticeBoard {
  /** `onChange(board)`: the lines changed; `refresh()`: read the queue view again. */
  constructor({ onChange = () => {}, refresh = () => {} } = {}) {
    this.onChange = onChange;
    this.refresh = refresh;
    this.notices = [];
    this.branch = null;
    this.timer = null;
  }

  setBranch(branch) {
    if (!branch) return;
    this.branch = branch;
    this.onChange(this);
  }

  fromView(view) {
    this.notices = view.notices || [];
    this.wakeAt(view.notices_change_at);
    this.onChange(this);
  }

  fromEvent(event) {
    if (event.type !== 'notices.changed') return;
    this.notices = (event.data && event.data.notices) || [];
    this.onChange(this);
  }

  wakeAt(instant) {
    clearTimeout(this.timer);
    const at = Date.parse(instant || '');
    if (!Number.isFinite(at)) return;
    const delay = Math.min(MAX_WAIT_MS, Math.max(0, at - serverNow().getTime()) + AFTER_CHANGE_MS);
    this.timer = setTimeout(() => this.refresh(), delay);
  }

  lines() {
    const lines = this.notices.map((notice) => ({
      kind: 'notice',
      code: notice.code,
      zh: notice.text.zh,
      en: notice.text.en || '',
    }));
    const hours = hoursLine(this.branch);
    return hours ? [hours, ...lines] : lines;
  }
}

/** Draw `lines` into `node`, one bilingual line each (hidden when there are none). */
export function renderNotices(node, lines) {
  node.replaceChildren(
    ...lines.map((line) =>
      h(
        'p',
        { class: `notice notice-${line.kind}`, dataset: line.code ? { notice: line.code } : {} },
        h('span', { class: 'zh' }, line.zh),
        line.en ? [' ', h('span', { class: 'en' }, line.en)] : null,
      ),
    ),
  );
  node.hidden = !lines.length;
}
