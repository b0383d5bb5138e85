// Shared by the browser tests (e2e.mjs, stuck.mjs): the app's URL and artifacts, API calls, waiting, selectors and
// the step runner that screenshots every page on a failure.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const APP = (process.env.RH_APP_URL || '').replace(/\/+$/, '');
export const ARTIFACTS = path.resolve(process.env.RH_ARTIFACTS_DIR || path.join(here, '../../target/web-artifacts'));
export const CHROMIUM = process.env.RH_CHROMIUM || '/usr/bin/chromium';
export const T = 20000; // default wait for anything a user would see

if (!APP) {
  console.error('RH_APP_URL is not set (the api base URL serving the web client, e.g. http://127.0.0.1:8080)');
  process.exit(2);
}
fs.mkdirSync(ARTIFACTS, { recursive: true });

export async function apiCall(method, p, body, token) {
  const res = await fetch(`${APP}/api/v1${p}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  if (!res.ok) throw new Error(`${method} ${p} → ${res.status}: ${text.slice(0, 300)}`);
  return json;
}

export const tid = (id) => `[data-testid="${id}"]`;
let shotNo = 0;

/** A screenshot named `<n>-<name>.png`. */
export async function shot(page, name) {
  shotNo += 1;
  const file = path.join(ARTIFACTS, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

export function norm(s) {
  return String(s || '').replace(/\s+/g, ' ').trim();
}

export async function waitUntil(what, fn, timeout = T) {
  const start = Date.now();
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() - start > timeout) throw new Error(`timed out after ${timeout} ms waiting for: ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function isVisible(page, selector) {
  return page.locator(selector).first().isVisible();
}

export async function signIn(page, who, password) {
  await page.goto(`${APP}/`);
  await page.locator(tid('login-email')).fill(who.email);
  await page.locator(tid('login-password')).fill(password);
  await page.locator(tid('login-submit')).click();
  await page.locator(tid('sidebar')).waitFor({ state: 'visible', timeout: T });
  await waitUntil(`${who.name} shown as signed in`, async () => norm(await page.locator(tid('current-user')).textContent()) === who.name);
}

export function convItem(id) {
  return `${tid('conversation-item')}[data-conversation-id="${id}"]`;
}

export const assistantMsgs = `${tid('messages')} ${tid('message')}[data-role="assistant"]`;
export const userMsgs = `${tid('messages')} ${tid('message')}[data-role="user"]`;

/** Runs named steps; after the first failure the rest are skipped, and every page in `pages` is screenshotted. */
export function stepRunner(pages) {
  const results = [];
  let failed = false;
  async function step(name, fn) {
    if (failed) {
      results.push({ name, status: 'skipped' });
      console.log(`- skip  ${name}`);
      return;
    }
    const started = Date.now();
    try {
      await fn();
      results.push({ name, status: 'passed' });
      console.log(`✔ pass  ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed = true;
      results.push({ name, status: 'failed', error: e });
      console.log(`✘ FAIL  ${name}\n        ${String(e?.stack || e).split('\n').slice(0, 6).join('\n        ')}`);
      for (const [who, page] of Object.entries(pages)) {
        try { await shot(page, `FAILED-${who}`); } catch { /* page gone */ }
      }
    }
  }
  return { step, results };
}

/** Runs `main`, closes the browser, prints the summary and exits with the result. */
export async function finish(name, main, results, closeBrowser) {
  let crashed = null;
  try {
    await main();
  } catch (e) {
    crashed = e;
    console.log(`✘ the test itself failed: ${e?.stack || e}`);
  } finally {
    await closeBrowser().catch(() => {});
  }
  const passed = results.filter((r) => r.status === 'passed').length;
  const failedN = results.filter((r) => r.status === 'failed').length + (crashed ? 1 : 0);
  const skipped = results.filter((r) => r.status === 'skipped').length;
  console.log(`\nscreenshots: ${ARTIFACTS}`);
  console.log(`${name}: ${passed} passed, ${failedN} failed, ${skipped} skipped`);
  process.exit(failedN > 0 ? 1 : 0);
}
