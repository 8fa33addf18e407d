// The webhooks portal (docs/portal.md): one project's webhooks, secrets, deliveries and health,
// through the same /api/v1 routes any client uses, with the portal session token the page was
// opened with. Every string from the API reaches the page through textContent or an attribute,
// never as HTML.

// ---- the session: read from the URL fragment once, then kept in memory only

const session = { token: '', organization: '', project: '', expired: false };

function readSession() {
  const params = new URLSearchParams(location.hash.slice(1));
  session.token = params.get('token') || '';
  session.organization = params.get('organization') || '';
  session.project = params.get('project') || '';
  // The address bar (and so the history) keeps no token once the page has it.
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
}

const projectPath = () =>
  `/api/v1/organizations/${encodeURIComponent(session.organization)}` +
  `/projects/${encodeURIComponent(session.project)}`;
const webhooksPath = () => `${projectPath()}/settings/webhooks`;
const webhookPath = (id) => `${webhooksPath()}/${encodeURIComponent(id)}`;

// ---- small DOM helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

function labelled(text, control, hint) {
  if (!control.id) control.id = nextId('f');
  const label = el('label', { for: control.id }, text, hint ? el('span', { class: 'hint', text: ` ${hint}` }) : null);
  return [label, control];
}

function say(text) {
  const status = document.getElementById('status');
  status.textContent = '';
  // A fresh node so that screen readers announce a repeated message too.
  requestAnimationFrame(() => { status.textContent = text; });
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { status.textContent = ''; }, 6000);
}

function formatTime(text) {
  if (!text) return '—';
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? text : d.toLocaleString();
}

function badge(text, kind = text) {
  return el('span', { class: `badge ${kind}`, text });
}

// ---- the API

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body) {
  if (session.expired) throw new ApiError(401, { title: 'Session expired', detail: expiredText });
  const headers = { Authorization: `Bearer ${session.token}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { title: 'Network error', detail: `hookd could not be reached (${e.message}).` });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { detail: text }; }
  }
  if (!res.ok) {
    const problem = data && typeof data === 'object' ? data : {};
    if (res.status === 401) sessionEnded(problem.detail);
    throw new ApiError(res.status, problem);
  }
  return data;
}

const expiredText = 'Your portal session has expired. Ask for a new portal link to go on.';

function sessionEnded(detail) {
  session.expired = true;
  const banner = document.getElementById('banner');
  banner.textContent = '';
  banner.append(el('span', { text: expiredText }), detail ? el('span', { class: 'hint', text: ` (${detail})` }) : null);
  banner.hidden = false;
  document.getElementById('session').textContent = 'Session expired';
}

// A problem+json in words: its detail, and each field at fault.
function errorBox(error) {
  const problem = error instanceof ApiError ? error.problem : { detail: String(error.message || error) };
  const heading = problem.title ? `${problem.title}: ` : '';
  const box = el('div', { class: 'error', role: 'alert', tabindex: '-1' }, el('strong', { text: heading }), problem.detail || '');
  if (Array.isArray(problem.errors) && problem.errors.length) {
    box.append(el('ul', {}, problem.errors.map((e) => el('li', {}, el('code', { text: e.field }), ` ${e.message}`))));
  }
  return box;
}

// Runs an action from a button: disables it meanwhile and shows a failure next to `where`.
async function act(button, where, fn) {
  where.querySelectorAll(':scope > .error').forEach((n) => n.remove());
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    where.prepend(errorBox(e));
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- views

const main = () => document.getElementById('main');

function show(title, ...content) {
  const root = main();
  root.textContent = '';
  const heading = el('h1', { tabindex: '-1', text: title });
  root.append(heading, ...content);
  heading.focus();
  return root;
}

// An inline confirmation (no browser dialog): resolves true when the user confirms.
function confirmInline(container, question, yesText) {
  return new Promise((resolve) => {
    container.querySelectorAll('.confirm').forEach((n) => n.remove());
    const done = (answer) => { box.remove(); resolve(answer); };
    const yes = el('button', { type: 'button', class: 'danger', text: yesText, onclick: () => done(true) });
    const no = el('button', { type: 'button', text: 'Cancel', onclick: () => done(false) });
    const box = el('div', { class: 'confirm', role: 'group', 'aria-label': question },
      el('p', { text: question }), el('div', { class: 'actions' }, yes, no));
    container.append(box);
    no.focus();
  });
}

async function showWebhooks() {
  const root = show('Webhooks');
  const newButton = el('button', { type: 'button', class: 'primary', text: 'New webhook', onclick: () => showForm(null) });
  root.append(el('div', { class: 'actions' }, newButton));
  const area = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
  root.append(area);
  try {
    const hooks = await api('GET', webhooksPath());
    area.textContent = '';
    if (!hooks.length) {
      area.append(el('p', { text: 'No webhooks yet. Create one to receive events.' }));
      return;
    }
    const rows = hooks.map((h) => el('tr', {},
      el('td', {}, el('button', { type: 'button', class: 'link', text: h.name, onclick: () => showWebhook(h._id) })),
      el('td', { class: 'url wide', text: h.url }),
      el('td', {}, h.active ? badge('active') : badge('inactive'),
        h.disabledReason ? el('div', { class: 'hint', text: `disabled: ${h.disabledReason}` }) : null),
      el('td', { class: 'wide' }, el('code', { text: h.events.join(', ') }))));
    area.append(el('div', { class: 'table-wrap' }, el('table', {},
      el('caption', { class: 'muted', text: `${hooks.length} webhook${hooks.length === 1 ? '' : 's'}` }),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Name' }), el('th', { scope: 'col', class: 'wide', text: 'URL' }),
        el('th', { scope: 'col', text: 'State' }), el('th', { scope: 'col', class: 'wide', text: 'Events' }))),
      el('tbody', {}, rows))));
  } catch (e) {
    area.textContent = '';
    area.append(errorBox(e));
  }
}

// Headers as "Name: value" lines, both ways.
function headersToText(headers) {
  return Object.entries(headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}
function textToHeaders(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const colon = line.indexOf(':');
    if (colon < 0) out[line.trim()] = '';
    else out[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return out;
}

function showForm(hook) {
  const editing = Boolean(hook);
  const root = show(editing ? `Edit ${hook.name}` : 'New webhook');
  const name = el('input', { type: 'text', name: 'name', autocomplete: 'off', required: true, value: hook ? hook.name : '' });
  const url = el('input', { type: 'url', name: 'url', autocomplete: 'off', required: true, value: hook ? hook.url : '', placeholder: 'https://example.com/webhooks' });
  const events = el('input', { type: 'text', name: 'events', autocomplete: 'off', value: hook ? hook.events.join(', ') : '*' });
  const headers = el('textarea', { name: 'headers', rows: '3' });
  headers.value = hook ? headersToText(hook.headers) : '';
  const active = el('input', { type: 'checkbox', name: 'active', id: nextId('f') });
  active.checked = hook ? hook.active : true;
  const fields = { name, url, events, headers, active };
  const form = el('form', { novalidate: true },
    labelled('Name', name, '(2 to 100 characters)'),
    labelled('Endpoint URL', url, '(http or https)'),
    labelled('Events', events, '(comma-separated, e.g. order.created, invoice.*, or * for all)'),
    labelled('Custom headers', headers, '(one "Name: value" per line)'),
    el('div', { class: 'check' }, active, el('label', { for: active.id, text: 'Active' })));
  const save = el('button', { type: 'submit', class: 'primary', text: editing ? 'Save changes' : 'Create webhook' });
  const cancel = el('button', { type: 'button', text: 'Cancel', onclick: () => (editing ? showWebhook(hook._id) : showWebhooks()) });
  form.append(el('div', { class: 'actions' }, save, cancel));
  root.append(form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    form.querySelectorAll('.field-error').forEach((n) => n.remove());
    Object.values(fields).forEach((f) => f.removeAttribute('aria-invalid'));
    const body = {
      name: name.value,
      url: url.value.trim(),
      events: events.value.split(',').map((s) => s.trim()).filter(Boolean),
      headers: textToHeaders(headers.value),
      active: active.checked,
    };
    root.querySelectorAll(':scope > .error').forEach((n) => n.remove());
    save.disabled = true;
    try {
      const saved = await (editing
        ? api('PATCH', webhookPath(hook._id), body)
        : api('POST', webhooksPath(), body));
      say(editing ? 'Webhook saved.' : 'Webhook created.');
      showWebhook(saved._id, saved.secret);
      return;
    } catch (e) {
      form.before(errorBox(e));
      // Each field the API named gets its message next to it too.
      const errors = e instanceof ApiError && Array.isArray(e.problem.errors) ? e.problem.errors : [];
      for (const fe of errors) {
        const control = fields[String(fe.field).split(/[.[]/)[0]];
        if (!control) continue;
        const message = el('p', { class: 'field-error', id: nextId('e'), text: `${fe.field}: ${fe.message}` });
        control.setAttribute('aria-invalid', 'true');
        control.setAttribute('aria-describedby', message.id);
        (control.type === 'checkbox' ? control.parentElement : control).after(message);
      }
      (form.querySelector('[aria-invalid=true]') || root.querySelector(':scope > .error')).focus?.();
    } finally {
      save.disabled = false;
    }
  });
  name.focus();
}

async function showWebhook(id, newSecret) {
  const root = show('Webhook');
  let hook;
  try {
    hook = await api('GET', webhookPath(id));
  } catch (e) {
    root.append(errorBox(e), el('button', { type: 'button', text: 'Back to webhooks', onclick: showWebhooks }));
    return;
  }
  root.querySelector('h1').textContent = hook.name;
  const back = el('button', { type: 'button', text: '← All webhooks', onclick: showWebhooks });
  const edit = el('button', { type: 'button', text: 'Edit', onclick: () => showForm(hook) });
  const toggle = el('button', { type: 'button', text: hook.active ? 'Deactivate' : 'Activate' });
  const remove = el('button', { type: 'button', class: 'danger', text: 'Delete' });
  const actions = el('div', { class: 'actions' }, back, edit, toggle, remove);
  const summary = el('div', { class: 'panel' },
    el('dl', { class: 'grid' },
      el('div', {}, el('dt', { text: 'URL' }), el('dd', { class: 'url', text: hook.url })),
      el('div', {}, el('dt', { text: 'State' }), el('dd', {}, hook.active ? badge('active') : badge('inactive'))),
      hook.disabledReason ? el('div', {}, el('dt', { text: 'Disabled because' }),
        el('dd', { text: `${hook.disabledReason}${hook.disabledAt ? ` (${formatTime(hook.disabledAt)})` : ''}` })) : null,
      el('div', {}, el('dt', { text: 'Events' }), el('dd', {}, el('code', { text: hook.events.join(', ') }))),
      el('div', {}, el('dt', { text: 'Created' }), el('dd', { text: formatTime(hook.createdAt) }))));
  root.append(actions, summary);

  toggle.addEventListener('click', () => act(toggle, actions, async () => {
    await api('PATCH', webhookPath(id), { active: !hook.active });
    say(hook.active ? 'Webhook deactivated.' : 'Webhook activated.');
    showWebhook(id);
  }));
  remove.addEventListener('click', async () => {
    if (!(await confirmInline(actions, `Delete the webhook "${hook.name}"? Its pending deliveries are dropped.`, 'Delete webhook'))) {
      remove.focus();
      return;
    }
    await act(remove, actions, async () => {
      await api('DELETE', webhookPath(id));
      say('Webhook deleted.');
      showWebhooks();
    });
  });

  root.append(secretSection(hook, newSecret), testSection(hook), healthSection(hook),
    deliveriesSection(hook), recoverSection(hook));
}

function secretSection(hook, newSecret) {
  const section = el('section', { 'aria-labelledby': nextId('h') });
  const heading = el('h2', { id: section.getAttribute('aria-labelledby'), text: 'Signing secret' });
  const value = el('code', { class: 'secret', text: '••••••••••••••••' });
  const reveal = el('button', { type: 'button', text: 'Reveal' });
  const copy = el('button', { type: 'button', text: 'Copy', disabled: true });
  const rotate = el('button', { type: 'button', text: 'Rotate' });
  const actions = el('div', { class: 'actions' }, reveal, copy, rotate);
  section.append(heading, el('p', { class: 'hint', text: 'Receivers verify each delivery\'s signature with this secret.' }), value, actions);
  let secret = newSecret || '';
  const showSecret = (s) => {
    secret = s;
    value.textContent = s;
    copy.disabled = false;
    reveal.textContent = 'Hide';
  };
  if (newSecret) showSecret(newSecret);
  reveal.addEventListener('click', () => act(reveal, section, async () => {
    if (reveal.textContent === 'Hide') {
      value.textContent = '••••••••••••••••';
      reveal.textContent = 'Reveal';
      return;
    }
    const got = await api('GET', `${webhookPath(hook._id)}/secret`);
    showSecret(got.secret);
  }));
  copy.addEventListener('click', () => act(copy, section, async () => {
    await navigator.clipboard.writeText(secret);
    say('Secret copied.');
  }));
  rotate.addEventListener('click', async () => {
    if (!(await confirmInline(section, 'Rotate the secret? The old one keeps signing during the grace period.', 'Rotate secret'))) {
      rotate.focus();
      return;
    }
    await act(rotate, section, async () => {
      const got = await api('POST', `${webhookPath(hook._id)}/secret/rotate`, {});
      showSecret(got.secret);
      say('Secret rotated: the new secret is shown.');
    });
  });
  return section;
}

function testSection(hook) {
  const section = el('section', {});
  const send = el('button', { type: 'button', text: 'Send test event' });
  const result = el('p', { class: 'hint' });
  section.append(el('h2', { text: 'Test' }),
    el('p', { class: 'hint', text: 'Sends a webhook.ping event to this webhook alone, active or not.' }),
    el('div', { class: 'actions' }, send), result);
  send.addEventListener('click', () => act(send, section, async () => {
    const delivery = await api('POST', `${webhookPath(hook._id)}/test`);
    result.textContent = `Test delivery ${delivery._id} is ${delivery.status}.`;
    say('Test event sent.');
    // Give the dispatcher a moment, then show the fresh delivery.
    setTimeout(() => section.parentElement?.querySelector('[data-refresh-deliveries]')?.click(), 800);
  }));
  return section;
}

// The last hour, minute by minute, as a small inline SVG built node by node: one column per
// minute, its attempts stacked (succeeded below, failed above, scaled to the busiest minute), and
// the minute's median latency as a line over them. `minutes1h` lists only the minutes that had
// attempts, oldest first (docs/delivery.md, "Endpoint health").
function healthChart(h) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  const W = 360, H = 120, left = 36, top = 8, plotH = 84, colW = (W - left) / 60;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const rate = h.successRate1h;
  const p50 = h.latencyP50Ms1h;
  const p99 = h.latencyP99Ms1h;
  const desc = `Last hour, per minute: ${h.minutes1h.length} minutes with attempts; success rate ` +
    `${rate === null ? 'no attempts' : `${Math.round(rate * 100)} %`}, ` +
    `median latency ${p50 === null ? 'none' : `${p50} ms`}, 99th percentile ${p99 === null ? 'none' : `${p99} ms`}.`;
  svg.setAttribute('aria-label', desc);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add('rect', { x: left, y: top, width: W - left, height: plotH, fill: '#f6f8fa', stroke: '#d0d7de' });
  const now = Math.floor(Date.now() / 60000);
  const maxAttempts = Math.max(1, ...h.minutes1h.map((m) => m.successes + m.failures));
  const maxLatency = Math.max(1, ...h.minutes1h.map((m) => m.latencyP50Ms || 0));
  const points = [];
  for (const m of h.minutes1h) {
    const age = now - Math.floor(Date.parse(m.at) / 60000);  // 0: this minute
    if (age < 0 || age > 59) continue;
    const x = left + (59 - age) * colW;
    const okH = (m.successes / maxAttempts) * plotH;
    const badH = (m.failures / maxAttempts) * plotH;
    const bar = (y, height, fill, kind) => {
      const r = add('rect', { x: x + 0.5, y, width: Math.max(1, colW - 1), height, fill, 'data-minute': kind });
      const title = document.createElementNS(NS, 'title');
      title.textContent = `${formatTime(m.at)}: ${m.successes} succeeded, ${m.failures} failed` +
        (m.latencyP50Ms === null ? '' : `, median ${m.latencyP50Ms} ms`);
      r.append(title);
    };
    if (okH > 0) bar(top + plotH - okH, okH, '#1a7f37', 'succeeded');
    if (badH > 0) bar(top + plotH - okH - badH, badH, '#b42318', 'failed');
    if (m.latencyP50Ms !== null) {
      points.push(`${x + colW / 2},${top + plotH - (m.latencyP50Ms / maxLatency) * plotH}`);
    }
  }
  if (points.length > 1) {
    add('polyline', { points: points.join(' '), fill: 'none', stroke: '#0a58ca', 'stroke-width': 1.5 });
  }
  add('text', { x: 0, y: top + 10, 'font-size': 10 }, String(maxAttempts));
  add('text', { x: 0, y: top + plotH, 'font-size': 10 }, '0');
  add('text', { x: left, y: H - 4, 'font-size': 10 }, '60 min ago');
  add('text', { x: W, y: H - 4, 'font-size': 10, 'text-anchor': 'end' }, 'now');
  return svg;
}

// The hour in figures, beside the chart.
function healthFigures(h) {
  const rate = h.successRate1h;
  return el('p', { class: 'muted' },
    `Success ${rate === null ? 'n/a (no attempts)' : `${Math.round(rate * 100)} %`} · ` +
    `median ${h.latencyP50Ms1h === null ? 'n/a' : `${h.latencyP50Ms1h} ms`} · ` +
    `p99 ${h.latencyP99Ms1h === null ? 'n/a' : `${h.latencyP99Ms1h} ms`} · ` +
    'bars: attempts per minute (green succeeded, red failed); line: median latency');
}

function healthSection(hook) {
  const section = el('section', { 'data-health': true }, el('h2', { text: 'Health (last hour)' }));
  const body = el('div', {}, el('p', { class: 'muted', text: 'Loading…' }));
  section.append(body);
  // Loaded again whenever the deliveries below are (they change it).
  section.addEventListener('reload-health', () => loadHealth(hook, body));
  loadHealth(hook, body);
  return section;
}

function loadHealth(hook, body) {
  api('GET', `${webhookPath(hook._id)}/health`).then((h) => {
    body.textContent = '';
    body.append(
      el('p', {}, 'State: ', badge(h.state)),
      healthChart(h),
      healthFigures(h),
      el('dl', { class: 'grid' },
        el('div', {}, el('dt', { text: 'Pending' }), el('dd', { text: h.pending })),
        el('div', {}, el('dt', { text: 'Paused' }), el('dd', { text: h.paused })),
        el('div', {}, el('dt', { text: 'Failures in a row' }), el('dd', { text: h.consecutiveFailures })),
        el('div', {}, el('dt', { text: 'Last success' }), el('dd', { text: formatTime(h.lastSuccessAt) })),
        el('div', {}, el('dt', { text: 'Last failure' }), el('dd', { text: formatTime(h.lastFailureAt) }))));
  }).catch((e) => { body.textContent = ''; body.append(errorBox(e)); });
}

// datetime-local (local time) to RFC 3339 UTC; '' stays ''.
function toRfc3339(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString();
}

function deliveriesSection(hook) {
  const section = el('section', {}, el('h2', { text: 'Deliveries' }));
  const status = el('select', { name: 'status' },
    ['', 'pending', 'paused', 'succeeded', 'failed'].map((s) => el('option', { value: s, text: s || 'any status' })));
  const since = el('input', { type: 'datetime-local', name: 'since' });
  const until = el('input', { type: 'datetime-local', name: 'until' });
  const apply = el('button', { type: 'submit', text: 'Show' });
  const filters = el('form', { class: 'filters', novalidate: true },
    el('div', {}, ...labelled('Status', status)),
    el('div', {}, ...labelled('Since', since)),
    el('div', {}, ...labelled('Until', until)),
    el('div', {}, apply));
  const list = el('div', {});
  const newer = el('button', { type: 'button', text: '← Newer', disabled: true });
  const older = el('button', { type: 'button', text: 'Older →', disabled: true });
  const refresh = el('button', { type: 'button', text: 'Refresh', 'data-refresh-deliveries': true });
  section.append(filters, el('div', { class: 'actions' }, refresh), list, el('div', { class: 'actions' }, newer, older));

  const cursors = [];  // the `after` of each page shown before this one
  let current = '';
  let next = null;
  async function load(after) {
    const q = new URLSearchParams({ limit: '10' });
    if (status.value) q.set('status', status.value);
    if (since.value) q.set('since', toRfc3339(since.value));
    if (until.value) q.set('until', toRfc3339(until.value));
    if (after) q.set('after', after);
    await act(null, section, async () => {
      const page = await api('GET', `${webhookPath(hook._id)}/deliveries?${q}`);
      current = after || '';
      next = page.next;
      list.textContent = '';
      if (!page.data.length) list.append(el('p', { text: 'No deliveries match.' }));
      else list.append(deliveryTable(hook, page.data));
      older.disabled = !next;
      newer.disabled = cursors.length === 0;
      section.parentElement?.querySelector('[data-health]')?.dispatchEvent(new Event('reload-health'));
    });
  }
  filters.addEventListener('submit', (e) => { e.preventDefault(); cursors.length = 0; load(''); });
  refresh.addEventListener('click', () => load(current));
  older.addEventListener('click', () => { cursors.push(current); load(next); });
  newer.addEventListener('click', () => load(cursors.pop() || ''));
  load('');
  return section;
}

function deliveryTable(hook, deliveries) {
  const tbody = el('tbody', {});
  for (const d of deliveries) {
    const details = el('tr', { hidden: true }, el('td', { colspan: '5' }));
    const toggle = el('button', { type: 'button', class: 'link', 'aria-expanded': 'false', text: `Attempts (${d.attempts})` });
    const redeliver = el('button', { type: 'button', text: 'Redeliver' });
    const row = el('tr', { 'data-delivery': d._id },
      el('td', {}, el('code', { text: d.type })),
      el('td', {}, badge(d.status), d.reason ? el('div', { class: 'hint', text: d.reason }) : null),
      el('td', { class: 'wide', text: formatTime(d.createdAt) }),
      el('td', {}, toggle),
      el('td', {}, redeliver));
    toggle.addEventListener('click', async () => {
      const open = toggle.getAttribute('aria-expanded') === 'true';
      toggle.setAttribute('aria-expanded', String(!open));
      details.hidden = open;
      if (open) return;
      const cell = details.firstChild;
      cell.textContent = 'Loading…';
      try {
        const full = await api('GET', `${webhookPath(hook._id)}/deliveries/${encodeURIComponent(d._id)}`);
        cell.textContent = '';
        cell.append(attemptsList(full));
      } catch (e) {
        cell.textContent = '';
        cell.append(errorBox(e));
      }
    });
    redeliver.addEventListener('click', () => act(redeliver, row.firstChild, async () => {
      const again = await api('POST', `${webhookPath(hook._id)}/deliveries/${encodeURIComponent(d._id)}/redeliver`);
      row.children[1].textContent = '';
      row.children[1].append(badge(again.status));
      say('Delivery sent again.');
    }));
    tbody.append(row, details);
  }
  return el('div', { class: 'table-wrap' }, el('table', { class: 'deliveries' },
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Event' }), el('th', { scope: 'col', text: 'Status' }),
      el('th', { scope: 'col', class: 'wide', text: 'Created' }), el('th', { scope: 'col', text: 'Attempts' }),
      el('th', { scope: 'col', text: 'Action' }))),
    tbody));
}

function attemptsList(delivery) {
  if (!delivery.attempts.length) return el('p', { text: 'No attempt yet.' });
  return el('ol', { class: 'attempts' }, delivery.attempts.map((a) => el('li', { 'data-attempt': true },
    el('div', {},
      badge(a.statusCode === null ? 'no response' : `HTTP ${a.statusCode}`, a.statusCode !== null && a.statusCode < 300 ? 'ok' : 'failed'),
      ` ${a.durationMs} ms · ${formatTime(a.at)}`),
    a.error ? el('div', { class: 'field-error', text: a.error }) : null,
    a.response ? el('pre', { 'aria-label': 'Response body', text: a.response }) : el('div', { class: 'hint', text: 'Empty response body.' }))));
}

function recoverSection(hook) {
  const section = el('section', {}, el('h2', { text: 'Recover failed deliveries' }),
    el('p', { class: 'hint', text: 'Sends again every failed delivery of this webhook created in the window.' }));
  const since = el('input', { type: 'datetime-local', name: 'recover-since', required: true });
  const until = el('input', { type: 'datetime-local', name: 'recover-until' });
  const go = el('button', { type: 'submit', text: 'Recover' });
  const result = el('p', {});
  const form = el('form', { class: 'filters', novalidate: true },
    el('div', {}, ...labelled('Since', since)), el('div', {}, ...labelled('Until', until, '(optional)')), el('div', {}, go));
  section.append(form, result);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    act(go, section, async () => {
      const body = { since: toRfc3339(since.value) };
      if (until.value) body.until = toRfc3339(until.value);
      const r = await api('POST', `${webhookPath(hook._id)}/recover`, body);
      result.textContent = `${r.deliveries} failed deliver${r.deliveries === 1 ? 'y goes' : 'ies go'} out again.`;
    });
  });
  return section;
}

// ---- start

function start() {
  readSession();
  const label = document.getElementById('session');
  if (!session.token || !session.organization || !session.project) {
    show('No portal session',
      el('p', { text: 'Open the portal with the link a portal session gives (POST …/portal-sessions, or hookctl portal open ORG PROJECT).' }));
    return;
  }
  label.textContent = `Project ${session.project}`;
  showWebhooks();
}

start();
