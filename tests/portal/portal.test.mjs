// The webhooks portal in a real browser (docs/portal.md): headless Chromium (Debian's chromium
// package) driven by puppeteer-core against the real hookd and a real receiver on 127.0.0.1.
//
//   HOOKD_BIN=<build>/bin/hookd PORTAL_SCREENSHOTS=<dir> node tests/portal/portal.test.mjs
//
// CHROMIUM overrides the browser (default /usr/bin/chromium). Every wait is bounded; nothing
// leaves 127.0.0.1. Screenshots of each page at 1280 and 360 px go to PORTAL_SCREENSHOTS.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';

const hookdBin = process.env.HOOKD_BIN;
const shots = process.env.PORTAL_SCREENSHOTS || path.join(tmpdir(), 'hookd-portal-screenshots');
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const adminToken = 'hkd_portal-browser-test-admin-token-0123456789';
const WAIT = 15000;  // the bound of every wait below

let hookd;
let dataDir;
let base;
let browser;
const received = [];
let receiverServer;
let receiverUrl;
const dialogs = [];
const pageErrors = [];

// ---- the real processes

function startReceiver() {
  return new Promise((resolve) => {
    receiverServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        received.push({ path: req.url, headers: req.headers, body });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"received":true}');
      });
    });
    receiverServer.listen(0, '127.0.0.1', () => {
      receiverUrl = `http://127.0.0.1:${receiverServer.address().port}/hooks`;
      resolve();
    });
  });
}

function startHookd() {
  dataDir = mkdtempSync(path.join(tmpdir(), 'hookd-portal-'));
  hookd = spawn(hookdBin, ['--listen', '127.0.0.1:0', '--data-dir', path.join(dataDir, 'data'),
    '--shutdown-delay', '0s', '--allow-private-targets', '--retry-schedule', '1s,1s'], {
    env: { ...process.env, HOOKD_ADMIN_TOKEN: adminToken },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('hookd did not start listening')), WAIT);
    let buffered = '';
    let last = '';
    hookd.stderr.on('data', (chunk) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        last = line;
        try {
          const entry = JSON.parse(line);
          if (entry.event === 'listening') {
            clearTimeout(timer);
            base = entry.address.replace(/\/$/, '');
            resolve();
          }
        } catch { /* not a JSON line */ }
      }
    });
    hookd.on('exit', (code) => reject(new Error(`hookd exited with ${code}: ${last}`)));
  });
}

async function call(method, urlPath, body, token = adminToken) {
  const res = await fetch(base + urlPath, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(WAIT),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function until(what, fn, timeout = WAIT) {
  const end = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- the fixture: an organization with projects A and B, a token, a session for A

const ids = {};

before(async () => {
  assert.ok(hookdBin, 'HOOKD_BIN must name the hookd executable');
  mkdirSync(shots, { recursive: true });
  await startReceiver();
  await startHookd();
  const org = await call('POST', '/api/v1/organizations', { name: 'Acme' });
  ids.org = org.body._id;
  const a = await call('POST', `/api/v1/organizations/${ids.org}/projects`, { name: 'Shop', slug: 'shop' });
  const b = await call('POST', `/api/v1/organizations/${ids.org}/projects`, { name: 'Billing', slug: 'billing' });
  ids.a = a.body._id;
  ids.b = b.body._id;
  const hookB = await call('POST', `/api/v1/organizations/${ids.org}/projects/${ids.b}/settings/webhooks`,
    { name: 'Billing secret hook', url: 'https://example.com/b', events: ['*'] });
  assert.equal(hookB.status, 201);
  const writer = await call('POST', '/api/v1/tokens',
    { name: 'portal opener', organizations: [ids.org], scopes: ['webhooks:write'] });
  assert.equal(writer.status, 201);
  ids.writer = writer.body.token;
  const session = await call('POST', `/api/v1/organizations/${ids.org}/projects/${ids.a}/portal-sessions`, {}, ids.writer);
  assert.equal(session.status, 201, JSON.stringify(session.body));
  ids.session = session.body;

  // Chromium refuses to run as root with its sandbox on, and CI runs the tests as root in a
  // throwaway container: --no-sandbox there. The pages are hookd's own, on 127.0.0.1.
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    protocolTimeout: 60000,
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (hookd && hookd.exitCode === null) {
    hookd.kill('SIGTERM');
    await new Promise((r) => { hookd.once('exit', r); setTimeout(r, 10000); });
  }
  receiverServer?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function newPage(width = 1280) {
  const page = await browser.newPage();
  page.setDefaultTimeout(WAIT);
  await page.setViewport({ width, height: 900 });
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  // Nothing but hookd on 127.0.0.1 may be fetched.
  await page.setRequestInterception(true);
  page.on('request', (r) => (r.url().startsWith(base) || r.url().startsWith('data:') ? r.continue() : r.abort()));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

const text = (page, selector) => page.$eval(selector, (n) => n.textContent);
const heading = (page) => text(page, 'main h1');

// A locator waits for the element to be visible and still, and tries again when a re-render
// replaced it (the deliveries list redraws on refresh).
async function clickButton(page, label, scope = 'main') {
  await page.locator(`${scope} ::-p-text(${JSON.stringify(label)})`).setTimeout(WAIT).click();
}

// ---- the tests, in order (each uses what the previous made)

let page;
let hookId;

test('the session URL opens the portal signed in, and the address bar keeps no token', async () => {
  page = await newPage();
  await page.goto(ids.session.url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector('main h1');
  assert.equal(await heading(page), 'Webhooks');
  assert.ok(!page.url().includes('token'), page.url());
  assert.ok(!page.url().includes(ids.session.token));
  assert.equal(await page.evaluate(() => location.hash), '');
  await page.waitForSelector('main ::-p-text(No webhooks yet)');
  await shot(page, 'webhooks-empty-1280');
});

test('a create the API refuses shows its reasons in words, next to the fields', async () => {
  await clickButton(page, 'New webhook');
  await page.waitForSelector('form input[name=name]');
  // Keyboard focus moves to the form's first field.
  assert.equal(await page.evaluate(() => document.activeElement.name), 'name');
  await page.type('input[name=name]', 'x');
  await page.$eval('input[name=url]', (n) => { n.value = 'ftp://nowhere'; });
  await page.$eval('input[name=events]', (n) => { n.value = 'Bad Event'; });
  await clickButton(page, 'Create webhook');
  await page.waitForSelector('main .error');
  const error = await text(page, 'main .error');
  assert.match(error, /name/);
  assert.match(error, /url/);
  assert.match(error, /events\[0\]/);
  const fieldErrors = await page.$$eval('.field-error', (ns) => ns.map((n) => n.textContent));
  assert.ok(fieldErrors.length >= 3, fieldErrors.join(' | '));
  assert.equal(await page.$eval('input[name=name]', (n) => n.getAttribute('aria-invalid')), 'true');
  await shot(page, 'webhook-form-errors-1280');
});

const xssName = '<img src=x onerror=alert(1)>';

test('a webhook named like HTML is created and shown as text', async () => {
  await page.$eval('input[name=name]', (n) => { n.value = ''; });
  await page.type('input[name=name]', xssName);
  await page.$eval('input[name=url]', (n, u) => { n.value = u; }, receiverUrl);
  await page.$eval('input[name=events]', (n) => { n.value = 'order.*, webhook.ping'; });
  await clickButton(page, 'Create webhook');
  await until('the webhook page', async () => (await heading(page)) === xssName);
  assert.equal(await page.$$eval('main img', (ns) => ns.length), 0);
  const listed = await call('GET', `/api/v1/organizations/${ids.org}/projects/${ids.a}/settings/webhooks`);
  assert.equal(listed.body.length, 1);
  hookId = listed.body[0]._id;
  // The create response's secret is on the page at once.
  assert.match(await text(page, 'main code.secret'), /^whsec_/);
});

test('a test event reaches the receiver and its delivery shows with the attempt', async () => {
  const sent = Date.now();
  await clickButton(page, 'Send test event');
  await until('the receiver to get the ping', () => received.some((r) => r.body.includes('webhook.ping')));
  // The page offers its delivery, succeeded, with the attempt's status, latency and body.
  await until('the succeeded delivery', async () => {
    await clickButton(page, 'Refresh');
    await new Promise((r) => setTimeout(r, 300));
    return page.$('tr[data-delivery] .badge.succeeded');
  });
  // The page refreshes the list by itself 800 ms after a test; let that pass before expanding.
  await new Promise((r) => setTimeout(r, Math.max(0, sent + 1500 - Date.now())));
  await clickButton(page, 'Attempts (1)', 'tr[data-delivery]');
  await page.waitForSelector('li[data-attempt]');
  const attempt = await text(page, 'li[data-attempt]');
  assert.match(attempt, /HTTP 200/);
  assert.match(attempt, /\d+ ms/);
  assert.match(attempt, /\{"received":true\}/);
  await shot(page, 'webhook-1280');
});

test('redeliver sends it again and the attempts list grows', async () => {
  const before = received.length;
  await clickButton(page, 'Redeliver', 'tr[data-delivery]');
  await until('the second attempt at the receiver', () => received.length > before);
  await until('two attempts listed', async () => {
    await clickButton(page, 'Refresh');
    await new Promise((r) => setTimeout(r, 300));
    return page.$('main ::-p-text("Attempts (2)")');
  });
  const ids1 = new Set(received.filter((r) => r.body.includes('webhook.ping')).map((r) => r.headers['webhook-id']));
  assert.equal(ids1.size, 1, 'a redelivery keeps the webhook-id');
});

test('reveal, then rotate the secret', async () => {
  const first = await text(page, 'main code.secret');
  await clickButton(page, 'Rotate');
  await clickButton(page, 'Rotate secret');
  await until('a new secret', async () => {
    const now = await text(page, 'main code.secret');
    return now.startsWith('whsec_') && now !== first;
  });
  const shown = await text(page, 'main code.secret');
  const api = await call('GET', `/api/v1/organizations/${ids.org}/projects/${ids.a}/settings/webhooks/${hookId}/secret`);
  assert.equal(shown, api.body.secret);
});

test('Copy puts the secret on the clipboard', async () => {
  // A headless browser grants the clipboard only when told to; a user's browser asks or allows
  // it for a click on 127.0.0.1 and https origins.
  await browser.defaultBrowserContext().overridePermissions(base, ['clipboard-read', 'clipboard-write',
    'clipboard-sanitized-write']);
  await page.evaluate(() => navigator.clipboard.writeText('not the secret'));
  await clickButton(page, 'Copy');
  await page.waitForSelector('::-p-text(Secret copied.)');
  const shown = await text(page, 'main code.secret');
  assert.match(shown, /^whsec_/);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), shown);
});

test('recover a window and see how many went out again', async () => {
  await page.$eval('input[name=recover-since]', (n) => { n.value = '2020-01-01T00:00'; });
  await clickButton(page, 'Recover', 'form');
  await page.waitForSelector('main ::-p-text(failed deliveries go out again)');
});

test('health shows the hour minute by minute as a chart', async () => {
  // The deliveries above were attempted within the last minute or two: their minutes are drawn
  // as columns (green: succeeded), each with a title saying what it counts.
  await page.waitForSelector('main svg.chart rect[data-minute=succeeded]');
  const label = await page.$eval('main svg.chart', (n) => n.getAttribute('aria-label'));
  assert.match(label, /per minute: [1-9]\d* minutes with attempts; success rate/);
  const title = await page.$eval('main svg.chart rect[data-minute=succeeded] title', (n) => n.textContent);
  assert.match(title, /[1-9]\d* succeeded, \d+ failed/);
});

test('deactivate and activate', async () => {
  await clickButton(page, 'Deactivate');
  await until('inactive', async () => (await page.$('main .badge.inactive')) !== null);
  await clickButton(page, 'Activate');
  await until('active', async () => (await page.$('main .badge.active')) !== null);
  await shot(page, 'webhook-detail-1280');
});

test('deliveries filter by status and page ten at a time', async () => {
  const events = `/api/v1/organizations/${ids.org}/projects/${ids.a}/events`;
  for (let i = 0; i < 11; ++i) {
    const r = await call('POST', events, { type: 'order.created', data: { n: i } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
  }
  const rows = () => page.$$eval('tr[data-delivery]', (ns) => ns.length);
  await page.select('select[name=status]', 'failed');
  await clickButton(page, 'Show');
  await page.waitForSelector('main ::-p-text(No deliveries match.)');
  await page.select('select[name=status]', '');
  await clickButton(page, 'Show');
  await until('a full first page', async () => (await rows()) === 10);
  await until('an older page to offer', () => page.$eval('main ::-p-text("Older →")', (n) => !n.disabled));
  await clickButton(page, 'Older →');
  await until('the second page', async () => (await rows()) >= 1 && (await rows()) < 10);
  await clickButton(page, '← Newer');
  await until('the first page again', async () => (await rows()) === 10);
});

test('delete asks on the page first, and Cancel keeps the webhook', async () => {
  const made = await call('POST', `/api/v1/organizations/${ids.org}/projects/${ids.a}/settings/webhooks`,
    { name: 'Throwaway', url: receiverUrl, events: ['nothing.here'] });
  assert.equal(made.status, 201);
  await clickButton(page, '← All webhooks');
  await clickButton(page, 'Throwaway');
  await until('its page', async () => (await heading(page)) === 'Throwaway');
  await clickButton(page, 'Delete');
  await clickButton(page, 'Cancel', '.confirm');
  assert.equal(await page.$('.confirm'), null);
  assert.equal((await call('GET', `/api/v1/organizations/${ids.org}/projects/${ids.a}/settings/webhooks/${made.body._id}`)).status, 200);
  await clickButton(page, 'Delete');
  await clickButton(page, 'Delete webhook', '.confirm');
  await until('the list', async () => (await heading(page)) === 'Webhooks');
  await page.waitForSelector('main tbody tr');
  assert.ok(!(await text(page, 'main table')).includes('Throwaway'));
  assert.equal((await call('GET', `/api/v1/organizations/${ids.org}/projects/${ids.a}/settings/webhooks/${made.body._id}`)).status, 404);
  await shot(page, 'webhooks-1280');
});

test('an edit the API refuses says why; a valid one is saved', async () => {
  await clickButton(page, xssName);
  await until('the webhook page', async () => (await heading(page)) === xssName);
  await clickButton(page, 'Edit');
  await page.waitForSelector('form input[name=events]');
  await page.$eval('input[name=events]', (n) => { n.value = 'order.*, Not Valid'; });
  await clickButton(page, 'Save changes');
  await page.waitForSelector('main .error');
  assert.match(await text(page, 'main .error'), /events\[1\]/);
  assert.equal(await page.$eval('input[name=events]', (n) => n.getAttribute('aria-invalid')), 'true');
  await page.$eval('input[name=events]', (n) => { n.value = 'order.*, webhook.ping, invoice.paid'; });
  await clickButton(page, 'Save changes');
  await until('the webhook page', async () => (await heading(page)) === xssName);
  const saved = await call('GET', `/api/v1/organizations/${ids.org}/projects/${ids.a}/settings/webhooks/${hookId}`);
  assert.deepEqual(saved.body.events, ['order.*', 'webhook.ping', 'invoice.paid']);
  await clickButton(page, '← All webhooks');
});

test('at 360 px every page fits the screen', async () => {
  const narrow = await newPage(360);
  const session = await call('POST', `/api/v1/organizations/${ids.org}/projects/${ids.a}/portal-sessions`, {}, ids.writer);
  await narrow.goto(session.body.url, { waitUntil: 'domcontentloaded' });
  await narrow.waitForSelector('main tbody tr');
  const fits = () => narrow.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(await fits(), 'the list scrolls sideways at 360 px');
  await shot(narrow, 'webhooks-360');
  await clickButton(narrow, xssName);
  await narrow.waitForSelector('main svg.chart');
  await narrow.waitForSelector('tr[data-delivery]');
  assert.ok(await fits(), 'the webhook page scrolls sideways at 360 px');
  await shot(narrow, 'webhook-360');
  await clickButton(narrow, 'Edit');
  await narrow.waitForSelector('form input[name=name]');
  assert.ok(await fits(), 'the form scrolls sideways at 360 px');
  await shot(narrow, 'webhook-form-360');
  await narrow.close();
});

test('the keyboard alone reaches and uses every control, each with a label', async () => {
  const kb = await newPage();
  const session = await call('POST', `/api/v1/organizations/${ids.org}/projects/${ids.a}/portal-sessions`, {}, ids.writer);
  await kb.goto(session.body.url, { waitUntil: 'domcontentloaded' });
  await kb.waitForSelector('main tbody tr');
  // Tab until the webhook's link has focus, then open it with Enter.
  for (let i = 0; i < 10; ++i) {
    await kb.keyboard.press('Tab');
    if (await kb.evaluate((n) => document.activeElement?.textContent === n, xssName)) break;
  }
  assert.equal(await kb.evaluate(() => document.activeElement.textContent), xssName);
  await kb.keyboard.press('Enter');
  await until('the webhook page', async () => (await heading(kb)) === xssName);
  await kb.waitForSelector('tr[data-delivery]');
  const unlabelled = await kb.$$eval('input, select, textarea', (ns) =>
    ns.filter((n) => n.labels.length === 0 && !n.getAttribute('aria-label')).map((n) => n.outerHTML));
  assert.deepEqual(unlabelled, []);
  // Focus is visible: the focused control draws an outline.
  await kb.keyboard.press('Tab');
  const outline = await kb.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
  await kb.close();
});

test('a session of project A cannot read project B', async () => {
  const token = ids.session.token;
  const other = await call('GET', `/api/v1/organizations/${ids.org}/projects/${ids.b}/settings/webhooks`, undefined, token);
  assert.equal(other.status, 403);
  // Pointed at B, the page says so in words and shows nothing of B.
  const probe = await newPage();
  await probe.goto(`${base}/portal/#token=${token}&organization=${ids.org}&project=${ids.b}`,
    { waitUntil: 'domcontentloaded' });
  await probe.waitForSelector('main .error');
  assert.match(await text(probe, 'main .error'), /does not grant access to the project/);
  assert.ok(!(await probe.content()).includes('Billing secret hook'));
  await probe.close();
});

test('an expired session says so', async () => {
  const short = await call('POST', `/api/v1/organizations/${ids.org}/projects/${ids.a}/portal-sessions`,
    { expiresIn: 2 }, ids.writer);
  assert.equal(short.status, 201);
  const p = await newPage();
  await p.goto(short.body.url, { waitUntil: 'domcontentloaded' });
  await p.waitForSelector('main tbody tr');
  await new Promise((r) => setTimeout(r, 2500));
  await clickButton(p, xssName);
  await p.waitForSelector('#banner:not([hidden])');
  assert.match(await text(p, '#banner'), /session has expired/);
  await shot(p, 'session-expired-1280');
  await p.close();
});

test('no dialog fired and the page raised no error', () => {
  assert.deepEqual(dialogs, []);
  // The answers the tests asked for (400 validation, 401 expired, 403 another project) show in
  // the console as failed loads; nothing else may (a CSP violation or a script error would).
  const unexpected = pageErrors.filter((e) => !/status of 40[013] /.test(e));
  assert.deepEqual(unexpected, []);
});
