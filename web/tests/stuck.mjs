// Browser test of what a team sees when things go sideways (issue 18), with three people at once: Ada (owner),
// Ben (Can Respond) and Cy (View only).
//
// - Ben sends while Ada's answer streams; Stop sits on each answer, and stopping Ada's answer asks Ben first.
// - The worker paused (SIGSTOP): after the api's wait (RH_AI_WAIT_SECS) every viewer sees "the AI is unavailable,
//   still trying", Ben can still send, Ada's Stop ends her waiting answer at once, and when the worker resumes
//   Ben's answer arrives while Ada's stays stopped.
// - Deleting and revoking, several times over: a deletion always reads as deleted, a revocation as removed access.
// - The edge paused (SIGSTOP): the offline banner shows within a few seconds, and goes once it resumes.
// - Keyboard and screen readers: axe-core finds no serious or critical violation on the chat, settings, share and
//   team views; dialogs keep the focus inside, Escape closes them and the focus returns to their button; a walk
//   share → change permission → remove with the keyboard alone.
//
// Environment: what e2e.mjs needs, plus RH_WORKER_PID and RH_EDGE_PID (the private stack of run.sh sets them).

import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import {
  APP, CHROMIUM, T, apiCall, tid, shot, norm, waitUntil, isVisible, signIn, convItem, assistantMsgs, userMsgs,
  stepRunner, finish,
} from './lib.mjs';

const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const WORKER_PID = Number(process.env.RH_WORKER_PID);
const EDGE_PID = Number(process.env.RH_EDGE_PID);
if (!WORKER_PID || !EDGE_PID) {
  console.error('RH_WORKER_PID and RH_EDGE_PID must name the stack\'s worker and edge processes');
  process.exit(2);
}

const run = Math.random().toString(36).slice(2, 8);
const PASSWORD = 'stuck-password-' + run;
const ada = { name: `Ada Owner ${run}`, email: `ada-${run}@stuck.test` };
const ben = { name: `Ben Driver ${run}`, email: `ben-${run}@stuck.test` };
const cy = { name: `Cy Watcher ${run}`, email: `cy-${run}@stuck.test` };

async function setUpTeam() {
  await apiCall('POST', '/orgs', { org_name: `Stuck Org ${run}`, name: ada.name, email: ada.email, password: PASSWORD });
  const a = await apiCall('POST', '/auth/login', { email: ada.email, password: PASSWORD });
  Object.assign(ada, { id: a.user.id, token: a.token });
  for (const who of [ben, cy]) {
    await apiCall('POST', `/orgs/${a.user.org_id}/members`, { name: who.name, email: who.email, password: PASSWORD }, ada.token);
    const l = await apiCall('POST', '/auth/login', { email: who.email, password: PASSWORD });
    Object.assign(who, { id: l.user.id, token: l.token });
  }
}

/** A conversation of Ada's shared with Ben (respond) and Cy (view). */
async function sharedConversation(title, shares = [[ben, 'respond'], [cy, 'view']]) {
  const c = await apiCall('POST', '/conversations', { title }, ada.token);
  const list = shares.map(([who, permission]) => ({ user_id: who.id, permission }));
  await apiCall('POST', `/conversations/${c.id}/shares`, { shares: list }, ada.token);
  return c.id;
}

async function open(page, id, title) {
  await page.goto(`${APP}/#/c/${id}`);
  await waitUntil(`${title} open`, async () => norm(await page.locator(tid('chat-title')).textContent()) === title);
}

async function send(page, text) {
  await page.locator(tid('composer-input')).fill(text);
  await page.locator(tid('composer-input')).press('Enter');
}

const answer = (page, n) => page.locator(assistantMsgs).nth(n);
const status = (page, n) => answer(page, n).getAttribute('data-status');

/** Serious and critical axe-core violations on the page as it is now (axe injected on first use). */
async function axeViolations(page, what) {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  return found.map((f) => `${what}: ${f}`);
}

const focusedTestId = (page) => page.evaluate(() => document.activeElement?.dataset?.testid || document.activeElement?.tagName);

async function metric(name) {
  const body = await (await fetch(`${APP}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

let browser;
const pages = {};
const { step, results } = stepRunner(pages);

async function main() {
  console.log(`RelayHub stuck-states browser test against ${APP}`);
  await step('set up a team of three through the API', setUpTeam);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.RH_E2E_HEADFUL !== '1',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const newPage = async (who) => {
    // bypassCSP: the app's CSP allows no inline script, and axe-core is injected as one.
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, bypassCSP: true });
    const page = (pages[who] = await context.newPage());
    page.on('pageerror', (e) => errors.push(`${who}: ${e.message}`));
    return page;
  };
  const errors = [];
  const A = await newPage('ada');
  const B = await newPage('ben');
  const C = await newPage('cy');
  const title = `Launch ${run}`;
  let conv;

  await step('Ada, Ben and Cy open a shared conversation', async () => {
    conv = await sharedConversation(title);
    await signIn(A, ada, PASSWORD);
    await signIn(B, ben, PASSWORD);
    await signIn(C, cy, PASSWORD);
    for (const p of [A, B, C]) await open(p, conv, title);
  });

  await step('Ben sends while Ada\'s answer streams; stopping her answer is his deliberate act', async () => {
    await send(A, '/sim tokens=400 rate=20\nA long plan, please.');
    await waitUntil('Ada\'s answer streams at Ben', async () => (await status(B, 0)) === 'streaming');
    // Send stays Send, for everyone; Enter sends.
    if (!(await isVisible(B, tid('send-button')))) throw new Error('Ben has no Send while Ada\'s answer streams');
    await send(B, '/sim tokens=10 rate=50\nAnd the budget?');
    await waitUntil('Ben\'s question reaches Ada', async () => (await A.locator(userMsgs).count()) === 2);
    await waitUntil('Ben\'s answer completes while Ada\'s streams', async () => (await status(A, 1)) === 'complete' && (await status(A, 0)) === 'streaming');
    // Stop is on Ada's answer, named after her; Cy (view only) has none.
    const stop = answer(B, 0).locator(tid('stop-answer'));
    const label = norm(await stop.textContent());
    if (!label.includes(ada.name)) throw new Error(`Ben's Stop on Ada's answer reads ${JSON.stringify(label)}`);
    if (await isVisible(C, tid('stop-answer'))) throw new Error('Cy (view only) can stop');
    let asked = '';
    B.once('dialog', (d) => { asked = d.message(); d.dismiss(); });
    await stop.click();
    await waitUntil('Ben is asked to confirm', async () => asked.includes(ada.name));
    await shot(B, 'stuck-ben-sent-while-streaming');
    if ((await status(A, 0)) !== 'streaming') throw new Error('a dismissed Stop stopped Ada\'s answer');
    // Ada stops her own answer: no question asked.
    await answer(A, 0).locator(tid('stop-answer')).click();
    for (const p of [A, B, C]) await waitUntil('Ada\'s answer stopped', async () => (await status(p, 0)) === 'stopped');
  });

  await step('worker paused: the AI is shown unavailable, Stop works at once, sending stays possible', async () => {
    process.kill(WORKER_PID, 'SIGSTOP');
    try {
      await send(A, 'Anyone there?');
      await waitUntil('Ada\'s question has a waiting answer', async () => (await A.locator(assistantMsgs).count()) === 3);
      for (const p of [A, B, C]) {
        await waitUntil('the AI shown unavailable', async () => (await answer(p, 2).getAttribute('data-delayed')) === 'true', T);
        const text = norm(await answer(p, 2).locator(tid('message-status')).textContent());
        if (!/unavailable/i.test(text) || !/still trying/i.test(text)) throw new Error(`status reads ${JSON.stringify(text)}`);
      }
      await shot(C, 'stuck-ai-unavailable');
      await send(B, '/sim tokens=8 rate=50\nStill queued?');
      await waitUntil('Ben\'s question queued behind', async () => (await A.locator(assistantMsgs).count()) === 4);
      await waitUntil('the api counts answers waiting for a worker', async () => (await metric('relayhub_api_responses_waiting_for_worker')) >= 1);
      const clicked = Date.now();
      await answer(A, 2).locator(tid('stop-answer')).click();
      for (const p of [A, B, C]) await waitUntil('the waiting answer stopped', async () => (await status(p, 2)) === 'stopped', 5000);
      console.log(`        stop without a worker seen by all three after ${Date.now() - clicked} ms`);
    } finally {
      process.kill(WORKER_PID, 'SIGCONT');
    }
    await waitUntil('Ben\'s queued answer arrives once the worker is back', async () => (await status(B, 3)) === 'complete', 30000);
    if ((await status(A, 2)) !== 'stopped') throw new Error('the stopped answer came back to life');
    await shot(A, 'stuck-worker-back');
  });

  await step('deletion and revocation, repeated: each announced for what it is', async () => {
    for (let i = 0; i < 3; i++) {
      const t = `Doomed ${i} ${run}`;
      const id = await sharedConversation(t, [[ben, 'respond'], [cy, 'view']]);
      await open(B, id, t);
      await open(C, id, t);
      await apiCall('DELETE', `/conversations/${id}`, undefined, ada.token);
      for (const p of [B, C]) {
        await waitUntil(`deletion ${i} announced`, async () => norm(await p.locator(tid('access-notice')).textContent()) === `“${t}” was deleted.`);
      }
      const r = `Revoked ${i} ${run}`;
      const rid = await sharedConversation(r, [[ben, 'respond'], [cy, 'view']]);
      await open(B, rid, r);
      await apiCall('DELETE', `/conversations/${rid}/shares/${ben.id}`, undefined, ada.token);
      await waitUntil(`revocation ${i} announced`, async () => norm(await B.locator(tid('access-notice')).textContent()) === `Your access to “${r}” was removed.`);
    }
  });

  await step('edge paused: the offline banner shows within a few seconds, and goes when it is back', async () => {
    await A.locator(tid('offline-banner')).waitFor({ state: 'hidden', timeout: T });
    const paused = Date.now();
    process.kill(EDGE_PID, 'SIGSTOP');
    let took;
    try {
      await A.locator(tid('offline-banner')).waitFor({ state: 'visible', timeout: T });
      took = Date.now() - paused;
      await shot(A, 'stuck-edge-paused');
    } finally {
      process.kill(EDGE_PID, 'SIGCONT');
    }
    console.log(`        offline banner after ${took} ms`);
    if (took > 10000) throw new Error(`a dead edge went unnoticed for ${took} ms`);
    await A.locator(tid('offline-banner')).waitFor({ state: 'hidden', timeout: 30000 });
  });

  await step('axe: no serious or critical violation on the chat, settings, share and team views; Escape closes each', async () => {
    await open(A, conv, title);
    const found = await axeViolations(A, 'chat');
    await A.locator(tid('settings-button')).click();
    found.push(...(await axeViolations(A, 'settings')));
    await A.keyboard.press('Escape');
    await A.locator(tid('settings-panel')).waitFor({ state: 'hidden', timeout: T });
    for (const [button, panel, what] of [['share-button', 'share-panel', 'share'], ['team-button', 'team-panel', 'team']]) {
      await A.locator(tid(button)).focus();
      await A.keyboard.press('Enter');
      await A.locator(tid(panel)).waitFor({ state: 'visible', timeout: T });
      await A.waitForTimeout(300); // let the panel's lists load before auditing them
      found.push(...(await axeViolations(A, what)));
      // The focus stays in the dialog however often Tab is pressed.
      for (let i = 0; i < 12; i++) await A.keyboard.press('Tab');
      if (!(await A.evaluate((p) => document.querySelector(`[data-testid="${p}"]`).contains(document.activeElement), panel))) throw new Error(`Tab left the ${what} dialog`);
      await A.keyboard.press('Escape');
      await A.locator(tid(panel)).waitFor({ state: 'detached', timeout: T });
      if ((await focusedTestId(A)) !== button) throw new Error(`after closing ${what} the focus is on ${await focusedTestId(A)}`);
    }
    if (found.length) throw new Error(found.join('\n'));
  });

  await step('keyboard only: share with Cy, make her Can respond, remove her', async () => {
    const t = `Keyboard ${run}`;
    const id = (await apiCall('POST', '/conversations', { title: t }, ada.token)).id;
    await open(A, id, t);
    const shares = async () => (await apiCall('GET', `/conversations/${id}/shares`, undefined, ada.token)).shares || [];
    const cyHas = async () => (await shares()).find((s) => (s.user_id || s.id) === cy.id)?.permission;
    await A.locator(tid('share-button')).focus();
    await A.keyboard.press('Enter');
    await A.locator(tid('share-panel')).waitFor({ state: 'visible', timeout: T });
    await A.keyboard.type(cy.email);
    await A.locator(`${tid('share-result')}[data-user-id="${cy.id}"]`).waitFor({ state: 'visible', timeout: T });
    await A.keyboard.press('ArrowDown');
    if ((await focusedTestId(A)) !== 'share-result') throw new Error('ArrowDown did not reach the results');
    await A.keyboard.press('Enter'); // picks Cy; the focus moves to her permission
    await waitUntil('the focus on Cy\'s permission', async () => (await focusedTestId(A)) === 'share-picked-permission');
    const label = await A.evaluate(() => document.activeElement.getAttribute('aria-label'));
    if (!label.includes(cy.name)) throw new Error(`the permission is announced as ${JSON.stringify(label)}`);
    await A.keyboard.press('Tab'); // past "do not share"
    await A.keyboard.press('Tab');
    if ((await focusedTestId(A)) !== 'share-expiry') throw new Error(`Tab went to ${await focusedTestId(A)}, not "access ends"`);
    await A.keyboard.press('Tab'); // past "access ends" (until removed)
    if ((await focusedTestId(A)) !== 'share-submit') throw new Error(`Tab went to ${await focusedTestId(A)}, not Share`);
    await A.keyboard.press('Enter');
    await waitUntil('Cy can view', async () => (await cyHas()) === 'view');
    // From the search field, Tab reaches Cy's row in "People with access": change it with the arrow keys.
    await waitUntil('the focus back on the search', async () => (await focusedTestId(A)) === 'share-search');
    await A.locator(`${tid('share-access-row')}[data-user-id="${cy.id}"]`).waitFor({ state: 'visible', timeout: T });
    await A.keyboard.press('Tab'); // past "access ends" (Share is disabled: nobody picked)
    await A.keyboard.press('Tab');
    if ((await focusedTestId(A)) !== 'share-access-permission') throw new Error(`Tab went to ${await focusedTestId(A)}`);
    await A.keyboard.press('ArrowDown');
    await waitUntil('Cy can respond', async () => (await cyHas()) === 'respond');
    await waitUntil('the focus stays on Cy\'s permission', async () => (await focusedTestId(A)) === 'share-access-permission');
    await A.keyboard.press('Tab');
    const remove = await A.evaluate(() => document.activeElement.getAttribute('aria-label'));
    if (remove !== `Remove ${cy.name}`) throw new Error(`the focused button is ${JSON.stringify(remove)}`);
    await A.keyboard.press('Enter');
    await waitUntil('Cy has no access', async () => (await cyHas()) === undefined);
    await A.locator(`${tid('share-access-row')}[data-user-id="${cy.id}"]`).waitFor({ state: 'detached', timeout: T });
    await A.keyboard.press('Escape');
    await A.locator(tid('share-panel')).waitFor({ state: 'detached', timeout: T });
  });

  await step('two tabs share the session: a link opens signed in, refreshes do not race, sign-out ends both', async () => {
    const A2 = (pages.ada2 = await A.context().newPage());
    A2.on('pageerror', (e) => errors.push(`ada2: ${e.message}`));
    await open(A2, conv, title); // a conversation link in a new tab: no sign-in asked
    if (await isVisible(A2, tid('login-form'))) throw new Error('the new tab asked to sign in');
    // Both tabs renew at the same instant: one trades the refresh token, the other takes its result. Presenting
    // one refresh token twice would make the api revoke the session (theft detection).
    for (let round = 0; round < 10; round++) {
      const renewed = await Promise.all([A, A2, A, A2].map((p) => p.evaluate(() => window.__relayhub.refreshSession())));
      if (!renewed.every(Boolean)) throw new Error(`a refresh failed in round ${round}: ${JSON.stringify(renewed)}`);
    }
    const token = await A.evaluate(() => JSON.parse(localStorage.getItem('relayhub.session')).token);
    await apiCall('GET', '/me', undefined, token); // still signed in, with the token both tabs now use
    await send(A, 'Sent after the refresh');
    await waitUntil('the message went through', async () => (await A.locator(userMsgs).last().textContent()).includes('Sent after the refresh'));
    // Sign out in the new tab: the first one is signed out too, within a moment, and its token no longer works.
    // The tab empties the shared store first (the other tab signs out at once), then ends the session on the server.
    const loggedOut = A2.waitForResponse((r) => r.url().endsWith('/api/v1/auth/logout'), { timeout: T });
    await A2.locator(tid('logout')).click();
    await A.locator(tid('login-form')).waitFor({ state: 'visible', timeout: 5000 });
    if ((await loggedOut).status() !== 204 && (await loggedOut).status() !== 200) throw new Error(`logout answered ${(await loggedOut).status()}`);
    const said = norm(await A.locator(tid('login-error')).textContent());
    if (!/signed out in another tab/i.test(said)) throw new Error(`the first tab says ${JSON.stringify(said)}`);
    if (await isVisible(A, tid('composer-input'))) throw new Error('the first tab can still type a message');
    const refused = await fetch(`${APP}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    if (refused.status !== 401) throw new Error(`the signed-out token got ${refused.status}`);
    await shot(A, 'stuck-signed-out-in-other-tab');
    await A2.close();
    delete pages.ada2;
  });

  await step('no script errors in the pages', async () => {
    if (errors.length) throw new Error(errors.join('\n'));
  });
}

await finish('web-stuck', main, results, async () => { if (browser) await browser.close(); });
