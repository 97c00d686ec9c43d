// Shared by the pages: the page's context, its token, the API client, small DOM and
// formatting helpers. Plain ES modules, no dependencies, no build step.

const body = document.body;

export const page = Object.freeze({
  kind: body.dataset.page,
  branch: body.dataset.branch,
  counter: body.dataset.counter || null,
});

// ---------------------------------------------------------------------------------------------
// Settings a screen is opened with once (`?token=`, the display's `?voice=`): taken from the URL,
// kept in local storage (`hallq.<name>.<page>.<branch>`) and removed from the address bar, so a
// token is not left in history, bookmarks or screenshots. Never logged.

function storageKey(name) {
  // The console's pages share one token (`hallq.token.console`) across its branches.
  const scope = body.dataset.tokenScope;
  if (name === 'token' && scope) return `hallq.token.${scope}`;
  return `hallq.${name}.${page.kind}.${page.branch}`;
}

/** The value of ?<name>= (removed from the address bar), '' when empty, null when absent. */
function takeFromUrl(name) {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get(name);
  if (fromUrl === null) return null;
  url.searchParams.delete(name);
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
  return fromUrl.trim();
}

function readStored(name) {
  try {
    return window.localStorage.getItem(storageKey(name));
  } catch {
    return null;
  }
}

function store(name, value) {
  try {
    if (value === null) window.localStorage.removeItem(storageKey(name));
    else window.localStorage.setItem(storageKey(name), value);
  } catch {
    // Private mode or storage disabled: the setting lives as long as the page.
  }
}

/** A setting remembered from `?<name>=value`; `?<name>=` (empty) forgets it. */
export function rememberedSetting(name) {
  const fromUrl = takeFromUrl(name);
  if (fromUrl === null) return readStored(name);
  store(name, fromUrl || null);
  return fromUrl || null;
}

// Token: from ?token= or from local storage. An empty ?token= does not forget the stored one.
let token = takeFromUrl('token') || null;
if (token) store('token', token);
else token = readStored('token');

export function getToken() {
  return token;
}

// ---------------------------------------------------------------------------------------------
// DOM helpers.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** h('div', {class: 'x', dataset: {a: 1}, onclick: fn}, child, 'text', ...) */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Chinese first, English beside it. */
export function bi(zh, en, tag = 'span') {
  const frag = document.createDocumentFragment();
  frag.append(h(tag, { class: 'zh' }, zh), ' ', h(tag, { class: 'en' }, en));
  return frag;
}

/** The page's #banner: kind ok, info or error; the problem's `detail` below the headline. */
export function showBanner(kind, zh, en, detail = '') {
  const node = $('#banner');
  node.className = `banner ${kind}`;
  node.dataset.kind = kind;
  node.replaceChildren(h('strong', {}, bi(zh, en)));
  if (detail) node.append(h('span', { class: 'detail' }, detail));
  node.hidden = false;
}

export function setBi(node, zh, en) {
  node.replaceChildren(bi(zh, en));
}

// ---------------------------------------------------------------------------------------------
// Formatting.

export const PRIORITY = {
  normal: { zh: '普通', en: 'Standard' },
  special: { zh: '爱心通道', en: 'Priority care' },
  vip: { zh: 'VIP 贵宾', en: 'VIP' },
};

export const COUNTER_STATE = {
  closed: { zh: '未开放', en: 'Closed' },
  open: { zh: '服务中', en: 'Open' },
  paused: { zh: '暂停服务', en: 'Paused' },
  closing: { zh: '即将关闭', en: 'Closing' },
};

export const TICKET_STATUS = {
  waiting: { zh: '等候中', en: 'Waiting' },
  called: { zh: '已叫号', en: 'Called' },
  serving: { zh: '办理中', en: 'Serving' },
  done: { zh: '已办结', en: 'Done' },
  no_show: { zh: '过号', en: 'No-show' },
  cancelled: { zh: '已取消', en: 'Cancelled' },
  expired: { zh: '已过期', en: 'Expired' },
};

export const CHANNEL = {
  kiosk: { zh: '取号机', en: 'kiosk' },
  staff: { zh: '导办台', en: 'service desk' },
  online: { zh: '线上', en: 'online' },
  appointment: { zh: '预约', en: 'appointment' },
};

/** `3` -> 3号窗口 / Counter 3; a named counter keeps its name. */
export function counterLabel(counter) {
  const name = String((counter && (counter.name || counter.code)) ?? '');
  if (/^\d+$/.test(name)) return { zh: `${name}号窗口`, en: `Counter ${name}` };
  return { zh: name, en: name };
}

/** An estimate for customers: about N minutes, never a false precision. */
export function waitMinutes(seconds) {
  if (seconds === null || seconds === undefined) return { zh: '—', en: '—' };
  const minutes = Math.round(seconds / 60);
  if (minutes < 1) return { zh: '即将叫号', en: 'very soon' };
  return { zh: `约 ${minutes} 分钟`, en: `about ${minutes} min` };
}

/**
 * The quoted range for customers, in whole minutes (docs/estimate.md, "On the ticket"): the low
 * end rounded down and the high end up, so the words never promise less than the range. The
 * whole range under a minute: 即将叫号; the low end under a minute: "5 分钟内"; otherwise
 * "约 8–15 分钟". Without a range (an older server), the median as `waitMinutes` says it.
 */
export function waitRange(median, range) {
  if (!Array.isArray(range) || range.length !== 2) return waitMinutes(median);
  const low = Math.floor(range[0] / 60);
  const high = Math.ceil(range[1] / 60);
  if (range[1] < 60) return { zh: '即将叫号', en: 'very soon' };
  if (low < 1) return { zh: `${high} 分钟内`, en: `within ${high} min` };
  if (low === high) return { zh: `约 ${low} 分钟`, en: `about ${low} min` };
  return { zh: `约 ${low}–${high} 分钟`, en: `about ${low}–${high} min` };
}

/** A duration for staff: 4:05, 1:02:03. */
export function clockDuration(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

let timeZone;
export function setTimeZone(tz) {
  try {
    new Intl.DateTimeFormat('zh-CN', { timeZone: tz });
    timeZone = tz;
  } catch {
    timeZone = undefined;
  }
}

export function formatTime(date, withSeconds = false) {
  return new Intl.DateTimeFormat('zh-CN', {
    timeZone,
    hour: '2-digit',
    minute: '2-digit',
    second: withSeconds ? '2-digit' : undefined,
    hourCycle: 'h23',
  }).format(date);
}

export function formatDateTime(date) {
  return new Intl.DateTimeFormat('zh-CN', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).format(date);
}

/** Today's date (YYYY-MM-DD) in the branch's timezone. */
export function localDate(date = serverNow()) {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).formatToParts(date);
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get('year')}-${get('month')}-${get('day')}`;
}

/** The current hour (0-23) in the branch's timezone. */
export function localHour(date = serverNow()) {
  const hour = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', hourCycle: 'h23' })
    .format(date);
  return Number.parseInt(hour, 10);
}

// The server's clock, from the Date header of API responses: a screen's own clock may be wrong.
let clockOffsetMs = 0;
export function serverNow() {
  return new Date(Date.now() + clockOffsetMs);
}

export function startClock(node) {
  const tick = () => {
    node.textContent = formatTime(serverNow(), true);
  };
  tick();
  setInterval(tick, 1000);
}

// ---------------------------------------------------------------------------------------------
// API client: JSON in and out; errors are problem+json, shown by their `detail`.

export class ApiError extends Error {
  constructor(status, detail, problem = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.problem = problem;
  }
}

export const OFFLINE_DETAIL = '无法连接服务器 · Cannot reach the server';

export async function api(path, { method = 'GET', body: payload, headers = {}, timeoutMs = 10000 } = {}) {
  const sent = { Accept: 'application/json, application/problem+json', ...headers };
  if (token) sent.Authorization = `Bearer ${token}`;
  if (payload !== undefined) sent['Content-Type'] = 'application/json';
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers: sent,
      body: payload === undefined ? undefined : JSON.stringify(payload),
      signal: abort.signal,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, OFFLINE_DETAIL);
  } finally {
    clearTimeout(timer);
  }
  const date = response.headers.get('date');
  if (date && !Number.isNaN(Date.parse(date))) clockOffsetMs = Date.parse(date) - Date.now();
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  let data = null;
  if (type.includes('json')) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = (data && typeof data.detail === 'string' && data.detail) ||
      `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, detail, data);
    if (response.status === 401 || response.status === 403) askForToken(detail);
    throw error;
  }
  return data;
}

/** A binary resource of this server's API (the announcement's audio), with the token, as an
 * ArrayBuffer. Only paths under /api/v1/ on this origin: the token goes nowhere else. */
export async function fetchBinary(path, { timeoutMs = 15000 } = {}) {
  const url = new URL(path, window.location.origin);
  if (url.origin !== window.location.origin || !url.pathname.startsWith('/api/v1/')) {
    throw new ApiError(0, `not an API path: ${path}`);
  }
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const response = await fetch(url.pathname + url.search, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: 'default', // the server's headers say how long an announcement's audio keeps
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal: abort.signal,
    });
    if (!response.ok) throw new ApiError(response.status, `${response.status} ${response.statusText}`);
    return await response.arrayBuffer();
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(0, OFFLINE_DETAIL);
  } finally {
    clearTimeout(timer);
  }
}

/** Fetch with the token and save the result as a file (links cannot carry a Bearer header). */
export async function download(path, filename) {
  const response = await fetch(`/api/v1${path}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    cache: 'no-store',
    credentials: 'omit',
  });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      detail = (await response.json()).detail || detail;
    } catch {
      /* not JSON */
    }
    throw new ApiError(response.status, detail);
  }
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------------------------------------
// Issuing a ticket (the kiosk, the service desk): one Idempotency-Key per press; a lost request or
// a server briefly down (503) is retried with the same key, so one press never makes two numbers.

export function idempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    try {
      return window.crypto.randomUUID(); // secure contexts only (https, localhost)
    } catch {
      /* fall through */
    }
  }
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const ISSUE_ATTEMPTS = 3;

export async function issueTicket(payload, key) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api(`/branches/${encodeURIComponent(page.branch)}/tickets`, {
        method: 'POST',
        body: payload,
        headers: { 'Idempotency-Key': key },
      });
    } catch (error) {
      // Only a lost request or a server that is briefly down is worth the same key again.
      const retry = error instanceof ApiError && (error.status === 0 || error.status === 503);
      if (!retry || attempt >= ISSUE_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 700 * attempt));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Asking for a token: when there is none, or the API refuses the one we have.

let prompting = false;

export function askForToken(reason) {
  if (prompting) return;
  prompting = true;
  const input = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    placeholder: 'hq.xxxx.xxxx',
    'aria-label': '访问令牌 Access token',
  });
  const form = h(
    'form',
    { class: 'token-form' },
    h('h2', {}, bi('请输入访问令牌', 'Enter this screen’s access token')),
    reason ? h('p', { class: 'token-reason' }, reason) : null,
    input,
    h('button', { type: 'submit', class: 'btn primary' }, bi('保存', 'Save')),
    h(
      'p',
      { class: 'hint' },
      bi('令牌由管理员发放，也可用 ?token= 打开本页。', 'Tokens come from your administrator; you may also open this page with ?token=.'),
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    token = value;
    store('token', value);
    window.location.reload();
  });
  document.body.append(h('div', { class: 'token-overlay', id: 'token-overlay' }, form));
  input.focus();
}

export function requireToken() {
  if (!token) {
    askForToken('');
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Connection state, shown in the header and on <body data-connection>.

const CONNECTION = {
  connecting: { zh: '连接中', en: 'Connecting' },
  live: { zh: '实时', en: 'Live' },
  polling: { zh: '已连接', en: 'Connected' },
  offline: { zh: '重新连接中', en: 'Reconnecting' },
};

export function showConnection(state) {
  body.dataset.connection = state;
  const node = $('#conn');
  if (node) {
    const label = CONNECTION[state] || CONNECTION.offline;
    node.replaceChildren(h('i', { class: 'dot' }), bi(label.zh, label.en));
  }
}

/** Branch name and timezone for the header; retried while the server is unreachable. */
export async function loadBranch() {
  for (let delay = 2000; ; delay = Math.min(delay * 2, 30000)) {
    try {
      const branch = await api(`/branches/${encodeURIComponent(page.branch)}`);
      setTimeZone(branch.timezone);
      const node = $('#branch-name');
      if (node) node.textContent = branch.name;
      return branch;
    } catch (error) {
      if (error.status !== 0 && error.status < 500) return null;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

export function debugState() {
  window.hallq = window.hallq || {};
  return window.hallq;
}
