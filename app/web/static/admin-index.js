// The console's index (/admin): the branches the token configures (an admin: all of them, a
// manager: their own), with links to each one's pages; an admin creates a branch here and goes
// on to its console.

import { $, h, bi, api, ApiError, requireToken, startClock } from './common.js';
import { banner, checkedCode, field, input, submit, submitting, text } from './admin-forms.js';

const PAGES = [
  ['admin', '设置', 'Console'],
  ['dashboard', '看板', 'Dashboard'],
  ['desk', '导办台', 'Desk'],
  ['display', '叫号屏', 'Display'],
  ['kiosk', '取号机', 'Kiosk'],
];

function branchRow(branch) {
  const code = encodeURIComponent(branch.code);
  return h(
    'tr',
    { dataset: { code: branch.code } },
    h('td', {}, h('a', { href: `/admin/${code}` }, branch.code)),
    h('td', {}, branch.name),
    h('td', {}, branch.timezone),
    h('td', { class: 'page-links' }, PAGES.map(([kind, zh, en]) => h('a', { href: `/${kind}/${code}` }, bi(zh, en)))),
  );
}

function createForm() {
  const form = $('#create-branch');
  form.replaceChildren(
    field('代码', 'Code', input('code', '', { required: true, maxlength: 32, placeholder: 'sz02' }),
      bi('用于网址，字母、数字、- 或 _', 'used in addresses: letters, digits, - or _')),
    field('名称', 'Name', input('name', '', { required: true, maxlength: 100, placeholder: '深圳福田营业厅' })),
    field('时区', 'Timezone', input('timezone', 'Asia/Shanghai', { required: true, maxlength: 64 })),
    submit('创建分行', 'Create the branch'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submitting(form, 'branch-create', async () => {
      const code = checkedCode(text(form, 'code'), '代码', 'code');
      const existing = await api('/branches');
      if (existing.some((b) => b.code === text(form, 'code'))) {
        throw new ApiError(409, `分行 ${text(form, 'code')} 已存在 · branch ${text(form, 'code')} exists already`);
      }
      await api(`/branches/${code}`, {
        method: 'PUT',
        body: { name: text(form, 'name'), timezone: text(form, 'timezone') },
      });
      window.location.assign(`/admin/${code}`);
    });
  });
}

async function start() {
  startClock($('#clock'));
  if (!requireToken()) return;
  try {
    const branches = await api('/branches');
    $('#branches').replaceChildren(...branches.map(branchRow));
    let admin = false;
    try {
      admin = (await api('/tokens/self')).role === 'admin';
    } catch (error) {
      admin = error instanceof ApiError && error.status === 404; // the environment's admin token
    }
    $('#create-panel').hidden = !admin;
    if (admin) createForm();
    document.body.dataset.ready = 'true';
  } catch (error) {
    banner('error', '无法读取分行', 'Cannot list the branches', error instanceof ApiError ? error.detail : String(error));
  }
}

start();
