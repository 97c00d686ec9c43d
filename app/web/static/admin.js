// The manager's console of one branch (SPEC §7): the branch, its hours, business types,
// counters and their profiles, staff, notices and devices. Every change is one request to the
// public API; a refusal shows the problem's `detail`. No stream: the devices' list is read
// again every 15 s while it is shown.

import { $, $$, api, ApiError, page, debugState, requireToken, setTimeZone, startClock } from './common.js';
import { banner } from './admin-forms.js';
import { renderBranch, renderHours } from './admin-branch.js';
import { renderCounters, renderStaff, renderTypes } from './admin-catalog.js';
import { renderNotices } from './admin-notices.js';
import { renderDevices } from './admin-devices.js';

const DEVICES_REFRESH_MS = 15000;
const branchPath = `/branches/${encodeURIComponent(page.branch)}`;
const state = debugState();

// What each section shows, and the data it is drawn from.
const SECTIONS = {
  branch: { render: renderBranch, uses: ['branch'] },
  hours: { render: renderHours, uses: ['branch'] },
  types: { render: renderTypes, uses: ['branch', 'counters'] },
  counters: { render: renderCounters, uses: ['branch', 'counters'] },
  staff: { render: renderStaff, uses: ['staff'] },
  notices: { render: renderNotices, uses: ['branch', 'notices'] },
  devices: { render: renderDevices, uses: ['tokens', 'staff', 'counters', 'branch'] },
};

const LOADERS = {
  branch: () => api(branchPath),
  staff: () => api(`${branchPath}/staff`),
  counters: () => api(`${branchPath}/counters`),
  notices: () => api(`${branchPath}/notices`),
  tokens: () => api(`/tokens?branch=${encodeURIComponent(page.branch)}`),
};

const ctx = {
  branchPath,
  data: {},
  isAdmin: false,
  /** Read `keys` again and redraw the sections drawn from them. */
  async refresh(...keys) {
    await load(keys);
    for (const [name, section] of Object.entries(SECTIONS)) {
      if (section.uses.some((key) => keys.includes(key))) draw(name);
    }
  },
};
state.console = ctx;

async function load(keys) {
  const values = await Promise.all(keys.map((key) => LOADERS[key]()));
  keys.forEach((key, i) => { ctx.data[key] = values[i]; });
  if (keys.includes('branch')) {
    setTimeZone(ctx.data.branch.timezone);
    $('#branch-name').textContent = ctx.data.branch.name;
    document.title = `管理控制台 Console · ${ctx.data.branch.name}`;
  }
}

function draw(name) {
  const node = $(`#tab-${name}`);
  SECTIONS[name].render(node, ctx);
}

// ---------------------------------------------------------------------------------------------
// Tabs: one section at a time, kept in the address (#types) so a reload stays there.

function showTab(name) {
  const tab = SECTIONS[name] ? name : 'branch';
  for (const panel of $$('.tab-panel')) panel.hidden = panel.dataset.tab !== tab;
  for (const button of $$('.tab')) button.setAttribute('aria-current', String(button.dataset.tab === tab));
  if (window.location.hash !== `#${tab}`) window.history.replaceState(null, '', `#${tab}`);
  state.tab = tab;
}

async function whoAmI() {
  try {
    const self = await api('/tokens/self');
    return self.role === 'admin';
  } catch (error) {
    // The environment's admin token has no row of its own (404).
    return error instanceof ApiError && error.status === 404;
  }
}

async function start() {
  startClock($('#clock'));
  for (const button of $$('.tab')) button.addEventListener('click', () => showTab(button.dataset.tab));
  showTab(window.location.hash.slice(1));
  if (!requireToken()) return;
  try {
    ctx.isAdmin = await whoAmI();
    await load(Object.keys(LOADERS));
  } catch (error) {
    banner('error', '无法读取分行设置', 'Cannot read the branch', error instanceof ApiError ? error.detail : String(error));
    return;
  }
  for (const name of Object.keys(SECTIONS)) draw(name);
  document.body.dataset.ready = 'true';
  setInterval(() => {
    // Not while the manager types in it (a label): the redraw would take the text away.
    const typing = $('#tab-devices').contains(document.activeElement);
    if (state.tab === 'devices' && !document.hidden && !typing) ctx.refresh('tokens').catch(() => {});
  }, DEVICES_REFRESH_MS);
}

start();
