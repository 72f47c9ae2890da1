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
  const low = await lowContrast(page);
  check(low.length === 0, `${what}: text under WCAG AA contrast (4.5:1, 3:1 when large): ${low.join(' | ')}`);
}

/**
 * lowContrast lists visible text whose colour against its background (the
 * first opaque background up the tree) is under WCAG 2 AA: 4.5:1, or 3:1 for
 * large text (24 px, or 18.66 px bold). Disabled controls are exempt, as WCAG has them.
 */
export async function lowContrast(page) {
  return page.evaluate(() => {
    const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
      const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || !el || el.closest('[hidden], :disabled, .visually-hidden, option')) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || st.display === 'none') continue;
      const [l1, l2] = [lum(rgb(st.color).slice(0, 3)), lum(background(el))].sort((a, b) => b - a);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`"${n.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
    }
    return [...new Set(out)].slice(0, 10);
  });
}

/** checkFits checks that the page needs no horizontal scrolling at its current width. */
export async function checkFits(page, what) {
  const { sw, cw } = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
  check(sw <= cw + 1, `${what}: ${sw} px wide in a ${cw} px viewport`);
}
