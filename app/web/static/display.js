// Lobby display (综合屏): the latest call large, the last few calls, waiting per business type,
// a ticker line with today's opening hours and the branch's current notices (notices.js). Every new call and recall is announced (chime, then the browser's voice or the
// server's audio: sound.js), and a small status line says which voice speaks.
//
// "New" means an event with a seq above the last one this screen has seen. A snapshot (first
// connection, reconnection, a refreshed queue view) only redraws the lists, silently; a replayed
// call older than STALE_MS (server time) is listed but not announced.

import {
  $, h, bi, setBi, counterLabel, debugState, fetchBinary, loadBranch, rememberedSetting,
  requireToken, serverNow, startClock,
} from './common.js';
import { Live } from './live.js';
import { NoticeBoard } from './notices.js';
import { Announcer } from './sound.js';

const RECENT = 6;
const STALE_MS = 120_000;
const FLASH_MS = 8000;
const BRANCH_REFRESH_MS = 5 * 60_000; // a changed announcement setting, today's hours

const state = debugState();
state.announced = [];
state.lastSpoken = null;
state.played = []; // one record per rendition: sound.js's onPlayed
state.voice = null; // what speaks: sound.js's status()

const calls = new Map(); // seq -> call
let services = [];
let latestShownSeq = null;
let flashTimer = null;

const unlockButton = $('#sound-unlock');
const voiceStatus = $('#voice-status');

/** The status line: which voice speaks, for whoever sets up the TV (docs/ui.md). */
function showVoice(status) {
  state.voice = status;
  const data = document.body.dataset;
  data.voiceSource = status.source;
  data.voiceMode = status.mode;
  data.voiceName = status.voice || '';
  data.voiceLang = status.lang || '';
  const parts = [h('span', { class: 'voice-label' }, bi('播报', 'Voice'), ' ')];
  if (status.source === 'browser') {
    parts.push(h('b', { class: 'voice-name' }, status.voice), ` · ${status.lang}`);
  } else if (status.source === 'server') {
    parts.push(h('b', {}, bi('服务器音频', 'Server audio')));
    if (status.mode === 'auto') parts.push(' · ', bi('本机无中文语音', 'no Chinese voice in this browser'));
  } else if (status.source === 'default') {
    parts.push(h('b', {}, bi('浏览器默认语音', 'Browser default')), ' · ', bi('未找到中文语音', 'no Chinese voice found'));
  } else {
    parts.push(h('b', {}, bi('无', 'None')), ' · ', bi('浏览器不支持语音合成', 'no speech synthesis'));
  }
  if (status.preferred && !status.found) {
    parts.push(' · ', bi('未找到', 'not found:'), ` “${status.preferred}”`);
  }
  voiceStatus.replaceChildren(...parts);
  voiceStatus.title = voiceStatus.textContent;
}

const announcer = new Announcer({
  voiceSetting: rememberedSetting('voice'),
  fetchAudio: (url) => fetchBinary(url),
  onSpeak(item) {
    state.lastSpoken = item;
    document.body.dataset.lastSpoken = `${item.zh} ${item.en}`;
    document.body.dataset.lastSpokenSeq = String(item.seq);
  },
  onPlayed(record) {
    state.played.push(record);
    const data = document.body.dataset;
    data.playedCount = String(state.played.length);
    data.lastPlayedVia = record.via;
    if (record.via === 'server') {
      data.lastAudio = record.url;
      data.lastAudioDuration = String(record.duration);
    }
  },
  onStatus: showVoice,
  onNeedsGesture() {
    unlockButton.hidden = false;
  },
});

function unlock() {
  announcer.unlock();
  unlockButton.hidden = true;
}
unlockButton.addEventListener('click', unlock);
document.addEventListener('keydown', unlock, { once: true });
document.addEventListener('pointerdown', unlock, { once: true });

function toCall(seq, type, at, data) {
  return {
    seq,
    type,
    at,
    ticket: data.ticket || {},
    counter: data.counter || {},
    announcement: data.announcement || null,
  };
}

function announcementOf(call) {
  if (call.announcement && call.announcement.zh) return call.announcement;
  const label = counterLabel(call.counter);
  return {
    zh: `请${call.ticket.number}号到${label.zh}办理`,
    en: `Ticket ${call.ticket.number}, please go to ${label.en.toLowerCase()}`,
  };
}

/** The latest call per ticket, newest first. */
function orderedCalls() {
  const seen = new Set();
  const out = [];
  for (const call of [...calls.values()].sort((a, b) => b.seq - a.seq)) {
    const key = call.ticket.id || call.ticket.number;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(call);
  }
  return out;
}

function renderCalls() {
  const ordered = orderedCalls();
  const latest = ordered[0];
  const numberNode = $('#now-number');
  const counterNode = $('#now-counter');
  const textNode = $('#now-text');
  if (latest) {
    const label = counterLabel(latest.counter);
    const words = announcementOf(latest);
    numberNode.textContent = latest.ticket.number;
    setBi(counterNode, label.zh, label.en);
    textNode.replaceChildren(h('div', { class: 'zh' }, words.zh), h('div', { class: 'en' }, words.en));
    document.body.dataset.latestSeq = String(latest.seq);
    latestShownSeq = latest.seq;
  } else {
    numberNode.textContent = '—';
    counterNode.replaceChildren();
    textNode.replaceChildren(
      h('div', { class: 'zh' }, '欢迎光临，请取号等候'),
      h('div', { class: 'en' }, 'Welcome — please take a number'),
    );
  }
  const list = $('#recent-list');
  list.replaceChildren(
    ...ordered.slice(1, RECENT + 1).map((call) => {
      const label = counterLabel(call.counter);
      return h(
        'li',
        { dataset: { seq: call.seq } },
        h('span', { class: 'r-number' }, call.ticket.number),
        h('span', { class: 'r-arrow', 'aria-hidden': 'true' }, '→'),
        h('span', { class: 'r-counter' }, bi(label.zh, label.en)),
      );
    }),
  );
  // Keep the map small.
  const keep = new Set(ordered.slice(0, RECENT * 3).map((c) => c.seq));
  for (const seq of calls.keys()) if (!keep.has(seq)) calls.delete(seq);
}

function renderWaiting() {
  const tiles = $('#waiting-tiles');
  tiles.replaceChildren(
    ...services.map((svc) =>
      h(
        'div',
        { class: 'tile', dataset: { service: svc.service } },
        h('div', { class: 'tile-prefix' }, svc.prefix),
        h('div', { class: 'tile-name' }, svc.name),
        h(
          'div',
          { class: 'tile-count' },
          h('b', { class: 'waiting-count' }, String(svc.waiting)),
          bi(' 人等候', ' waiting'),
        ),
      ),
    ),
  );
  renderTicker();
}

// Said when the branch has no current notice.
const DEFAULT_SENTENCES = [
  '请留意叫号屏和语音提示 · Please watch the screen and listen for your number',
  '过号请到服务台重新排队 · Missed your number? Please ask at the service desk',
  '老弱病残孕及抱婴者请走爱心通道 · Priority care for elderly, disabled and pregnant customers and people with babies',
];

const board = new NoticeBoard({
  onChange: () => renderTicker(),
  refresh: () => state.live && state.live.refresh(),
});

let tickerText = '';
function renderTicker() {
  const lines = board.lines();
  const codes = lines.filter((line) => line.kind === 'notice').map((line) => line.code);
  state.notices = codes;
  document.body.dataset.notices = codes.join(' ');
  const parts = lines.map((line) => (line.en ? `${line.zh} · ${line.en}` : line.zh));
  if (!codes.length) parts.push(...DEFAULT_SENTENCES);
  const waiting = services
    .filter((svc) => svc.waiting > 0)
    .map((svc) => `${svc.prefix} ${svc.name}：${svc.waiting} 人等候 waiting`);
  if (waiting.length) parts.push(waiting.join(' · '));
  const text = parts.join('　　★　　');
  if (text === tickerText) return;
  tickerText = text;
  const track = $('#ticker');
  track.replaceChildren(h('span', {}, text), h('span', { 'aria-hidden': 'true' }, text));
  track.style.animationDuration = `${Math.max(30, Math.round(text.length / 6))}s`;
}

function flash() {
  const now = $('#now');
  now.classList.remove('flash');
  void now.offsetWidth; // restart the animation
  now.classList.add('flash');
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => now.classList.remove('flash'), FLASH_MS);
}

function onView(view) {
  services = view.services || [];
  board.fromView(view);
  // The view is the truth up to its newest call (it leaves out expired tickets and earlier
  // days); only calls newer than that, from the stream, are kept beside it.
  const recent = view.recent_calls || [];
  const newest = Math.max(0, ...recent.map((call) => call.seq));
  for (const seq of calls.keys()) if (seq <= newest || !recent.length) calls.delete(seq);
  for (const call of recent) {
    calls.set(call.seq, toCall(call.seq, call.type, call.at, call));
  }
  renderCalls();
  renderWaiting();
}

function forgetTicket(id) {
  for (const [seq, call] of calls) if (call.ticket.id === id) calls.delete(seq);
  renderCalls();
}

function onEvent(event) {
  board.fromEvent(event);
  if (event.type === 'ticket.expired') {
    // The day was closed out: the number is never shown again.
    forgetTicket(((event.data || {}).ticket || {}).id);
    return;
  }
  if (event.type !== 'ticket.called' && event.type !== 'ticket.recalled') return;
  const call = toCall(event.seq, event.type, event.at, event.data || {});
  if (!call.ticket.number) return;
  calls.set(call.seq, call);
  renderCalls();
  const age = serverNow().getTime() - Date.parse(event.at || '');
  if (Number.isFinite(age) && age > STALE_MS) return; // replayed from long ago: listed, not news
  const words = announcementOf(call);
  const item = {
    seq: call.seq,
    type: call.type,
    number: call.ticket.number,
    zh: words.zh,
    en: words.en,
    audio: (call.announcement && call.announcement.audio) || null,
    receivedAt: performance.now(),
  };
  state.announced.push(item);
  document.body.dataset.announcedCount = String(state.announced.length);
  if (latestShownSeq === call.seq) flash();
  announcer.announce(item);
}

if (requireToken()) {
  startClock($('#clock'));
  const settle = (branch) => {
    if (branch) announcer.configure(branch.announcement);
    board.setBranch(branch);
  };
  loadBranch().then(settle);
  setInterval(() => loadBranch().then(settle), BRANCH_REFRESH_MS);
  if (announcer.blocked) unlockButton.hidden = false;
  const live = new Live({ onView, onEvent });
  state.live = live;
  live.start();
}
