// Shared by the console's browser tests (user.mjs, admin*.mjs): launching
// Debian's chromium through playwright-core (installed in console/ by npm ci),
// screenshots, checks and a small REST client.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(new URL('../../console/package.json', import.meta.url));
const { chromium } = require('playwright-core');

/** env reads a required environment variable. */
export function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`${name} is not set`);
  return v;
}

/** step logs what the test does next (the Go test shows these lines). */
export function step(msg) {
  console.log(`${new Date().toISOString().slice(11, 23)} ${msg}`);
}

/** check throws when cond is false. */
export function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

/** launch starts headless chromium and a page that records console errors and page errors. */
export async function launch({ width = 1280, height = 900 } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    headless: true,
  });
  const context = await browser.newContext({ viewport: { width, height }, colorScheme: 'light' });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { browser, context, page, errors };
}

/** shooter returns a function that saves a screenshot of page as dir/name.png. */
export function shooter(dir) {
  mkdirSync(dir, { recursive: true });
  return async (page, name, opts = {}) => {
    const path = join(dir, name + '.png');
    await page.screenshot({ path, fullPage: true, ...opts });
    step(`screenshot ${path}`);
  };
}

/** rest calls the REST API with an API key. */
export function rest(base, key) {
  return async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : {};
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return data;
  };
}

/** signIn opens the console and signs in with key; it returns the document's response. */
export async function signIn(page, base, key) {
  const resp = await page.goto(base + '/console/');
  check(resp && resp.ok(), 'GET /console/ answered ' + resp?.status());
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  return resp;
}

/** checkAccessible checks the page's landmarks and that every form control has a name. */
export async function checkAccessible(page, what) {
  for (const role of ['main', 'banner', 'navigation']) {
    check((await page.getByRole(role).count()) >= 1, `${what}: no ${role} landmark`);
  }
  const unnamed = await page.locator('input, select, textarea, button').evaluateAll((els) =>
    els
      .filter((el) => el.offsetParent !== null || el.type === 'checkbox')
      .filter((el) => {
        const labelled = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
        return el.tagName === 'BUTTON' ? !(el.textContent.trim() || el.getAttribute('aria-label')) : !labelled;
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
  check(unnamed.length === 0, `${what}: controls without a label: ${unnamed.join(' | ')}`);
}

/** checkFits checks that the page needs no horizontal scrolling at its current width. */
export async function checkFits(page, what) {
  const { sw, cw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
  check(sw <= cw + 1, `${what}: ${sw} px wide in a ${cw} px viewport`);
}
