// End-to-end test of the RelayHub web client in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core). Two browser contexts are two teammates of a fresh org that the test creates through the API:
// A shares a conversation with B as View Only, B's sidebar shows it live, A sends a message and B watches the
// answer stream in (partial text, then the full text), B drops its socket mid-stream and resumes with nothing
// missing or doubled, A upgrades B to Can Respond and B's composer appears (B then sends, attaches a file and
// switches the model, and A sees all of it), A removes B and the conversation leaves B's sidebar. Finally a phone-
// sized viewport. Every step leaves a screenshot in RH_ARTIFACTS_DIR (default target/web-artifacts).
//
// Environment: RH_APP_URL (required: the api base URL that serves the web client, e.g. http://127.0.0.1:8080),
// RH_ARTIFACTS_DIR, RH_CHROMIUM (default /usr/bin/chromium), RH_E2E_HEADFUL=1 to watch.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import {
  APP, ARTIFACTS, CHROMIUM, T, apiCall, tid, shot, norm, waitUntil, isVisible, signIn as signInWith, convItem,
  assistantMsgs, userMsgs, stepRunner, finish,
} from './lib.mjs';

const run = Math.random().toString(36).slice(2, 8);
const PASSWORD = 'e2e-password-' + run;
const alice = { name: `Alice Owner ${run}`, email: `alice-${run}@e2e.test` };
const bob = { name: `Bob Viewer ${run}`, email: `bob-${run}@e2e.test` };

// ------------------------------------------------------------------ API set-up (a fresh org per run)

async function setUpOrg() {
  await apiCall('POST', '/orgs', { org_name: `E2E Org ${run}`, name: alice.name, email: alice.email, password: PASSWORD });
  const a = await apiCall('POST', '/auth/login', { email: alice.email, password: PASSWORD });
  alice.id = a.user.id;
  alice.token = a.token;
  const orgId = a.user.org_id;
  if (!orgId) throw new Error(`login did not return user.org_id: ${JSON.stringify(a)}`);
  await apiCall('POST', `/orgs/${orgId}/members`, { name: bob.name, email: bob.email, password: PASSWORD }, a.token);
  const b = await apiCall('POST', '/auth/login', { email: bob.email, password: PASSWORD });
  bob.id = b.user.id;
}

// ------------------------------------------------------------------ helpers

function listOfShares(v) {
  return Array.isArray(v) ? v : v?.shares || [];
}

const signIn = (page, who) => signInWith(page, who, PASSWORD);

async function assistantTexts(page) {
  return page.locator(`${assistantMsgs} ${tid('message-text')}`).allTextContents();
}

// ------------------------------------------------------------------ the scenario

let browser;
const pages = {};
const { step, results } = stepRunner(pages);

async function main() {
  console.log(`RelayHub web e2e against ${APP}; screenshots in ${ARTIFACTS}`);
  for (const f of fs.readdirSync(ARTIFACTS)) if (f.endsWith('.png')) fs.rmSync(path.join(ARTIFACTS, f));

  await step('set up a fresh org with two teammates through the API', setUpOrg);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.RH_E2E_HEADFUL !== '1',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  const ctxB = await browser.newContext({ viewport: { width: 1280, height: 820 } });
  const A = (pages.A = await ctxA.newPage());
  const B = (pages.B = await ctxB.newPage());
  const consoleErrors = [];
  for (const [who, p] of [['A', A], ['B', B]]) {
    p.on('pageerror', (e) => consoleErrors.push(`${who}: ${e.message}`));
  }
  let convId;
  const title = `Launch plan ${run}`;

  await step('A and B sign in', async () => {
    await signIn(A, alice);
    await signIn(B, bob);
    await shot(A, 'a-signed-in');
    await shot(B, 'b-signed-in');
  });

  await step('markdown renders code blocks and formatting, never HTML or script links', async () => {
    const report = await A.evaluate(async () => {
      const { renderMarkdown } = await import('/js/markdown.js');
      const box = document.createElement('div');
      box.appendChild(renderMarkdown([
        '# Title <script>window.__xss=2</script>',
        'Some **bold**, *italic*, `a<b>` and [ok](https://example.com/x?a=1) [bad](javascript:window.__xss=3)',
        '<img src=x onerror="window.__xss=4"> <iframe src="https://example.com"></iframe>',
        '- one\n- two with `code`',
        '1. first\n2. second',
        '> quoted <b>not bold</b>',
        '```html\n<script>window.__xss=5</script>\n```',
        '```js\nstill streaming <b>',
      ].join('\n\n')));
      document.body.appendChild(box);
      const out = {
        dangerous: box.querySelectorAll('script, img, iframe, object, embed, style, b').length,
        hrefs: [...box.querySelectorAll('a')].map((a) => a.getAttribute('href')),
        codeBlocks: [...box.querySelectorAll('pre code')].map((c) => c.textContent),
        strong: box.querySelectorAll('strong').length,
        em: box.querySelectorAll('em').length,
        lis: box.querySelectorAll('li').length,
        h: box.querySelectorAll('h3').length,
        quote: box.querySelectorAll('blockquote').length,
        text: box.textContent,
        onattrs: [...box.querySelectorAll('*')].some((el) => [...el.attributes].some((a) => a.name.startsWith('on'))),
      };
      box.remove();
      return out;
    });
    if (report.dangerous !== 0 || report.onattrs) throw new Error(`markup got through: ${JSON.stringify(report)}`);
    if (report.hrefs[0] !== 'https://example.com/x?a=1' || !report.hrefs.every((u) => /^(https?:|mailto:)/.test(u))) throw new Error(`links: ${JSON.stringify(report.hrefs)}`);
    if (report.codeBlocks.length !== 2 || report.codeBlocks[0] !== '<script>window.__xss=5</script>' || report.codeBlocks[1] !== 'still streaming <b>') {
      throw new Error(`code blocks: ${JSON.stringify(report.codeBlocks)}`);
    }
    if (report.strong !== 1 || report.em !== 1 || report.lis !== 4 || report.h !== 1 || report.quote !== 1) throw new Error(`formatting: ${JSON.stringify(report)}`);
    if (!report.text.includes('<img src=x onerror="window.__xss=4">')) throw new Error('raw HTML was not kept as text');
    if (await A.evaluate(() => window.__xss !== undefined)) throw new Error('injected script ran');
  });

  await step('markdown tables and highlighted code (also a half-streamed fence) are nodes only', async () => {
    const report = await A.evaluate(async () => {
      const { renderMarkdown } = await import('/js/markdown.js');
      const box = document.createElement('div');
      const js = 'const x = "<img src=x onerror=window.__xss=6>"; // <b>not bold</b>\nfunction f() { return 1; }';
      box.appendChild(renderMarkdown([
        'A table:',
        '| Name | Qty | Note |\n|:-----|----:|:----:|\n| <b>apple</b> | 3 | [x](javascript:alert(1)) |\n| **pear** | 10 | a \\| b |',
        '```js\n' + js + '\n```',
        '```html\n<script>window.__xss=7</script><div onclick="x()">hi</div>\n```',
        '```python\ndef half(',
      ].join('\n\n')));
      document.body.appendChild(box);
      const code = [...box.querySelectorAll('pre code')];
      const out = {
        dangerous: box.querySelectorAll('script, img, iframe, b, div[onclick]').length,
        onattrs: [...box.querySelectorAll('*')].some((el) => [...el.attributes].some((a) => a.name.startsWith('on'))),
        links: box.querySelectorAll('a').length,
        head: [...box.querySelectorAll('table th')].map((c) => [c.textContent, c.className]),
        cells: [...box.querySelectorAll('table tbody tr')].map((r) => [...r.children].map((c) => c.textContent)),
        strongInCell: box.querySelectorAll('td strong').length,
        codeText: code.map((c) => c.textContent),
        highlighted: code.map((c) => c.dataset.highlighted === 'true'),
        keywords: code.map((c) => c.querySelectorAll('.hljs-keyword, .hljs-tag, .hljs-name').length),
      };
      box.remove();
      return { ...out, js };
    });
    if (report.dangerous !== 0 || report.onattrs || report.links !== 0) throw new Error(`markup got through: ${JSON.stringify(report)}`);
    if (JSON.stringify(report.head) !== JSON.stringify([['Name', 'align-left'], ['Qty', 'align-right'], ['Note', 'align-center']])) throw new Error(`table head: ${JSON.stringify(report.head)}`);
    if (JSON.stringify(report.cells) !== JSON.stringify([['<b>apple</b>', '3', '[x](javascript:alert(1))'], ['pear', '10', 'a | b']]) || report.strongInCell !== 1) {
      throw new Error(`table cells: ${JSON.stringify(report.cells)}`);
    }
    if (report.codeText[0] !== report.js || report.codeText[1] !== '<script>window.__xss=7</script><div onclick="x()">hi</div>' || report.codeText[2] !== 'def half(') {
      throw new Error(`code text changed: ${JSON.stringify(report.codeText)}`);
    }
    if (!report.highlighted.every(Boolean) || !report.keywords.every((n) => n > 0)) throw new Error(`not highlighted: ${JSON.stringify(report)}`);
    if (await A.evaluate(() => window.__xss !== undefined)) throw new Error('injected script ran');
  });

  await step('A creates a conversation', async () => {
    await A.locator(tid('new-conversation')).click();
    await A.locator(tid('new-conversation-title')).fill(title);
    await A.locator(tid('new-conversation-create')).click();
    await waitUntil('chat title', async () => norm(await A.locator(tid('chat-title')).textContent()) === title);
    convId = await A.locator(tid('chat-view')).getAttribute('data-conversation-id');
    if (!convId) throw new Error('no conversation id on the chat view');
    await A.locator(convItem(convId)).waitFor({ state: 'visible', timeout: T });
    await A.locator(tid('composer-input')).waitFor({ state: 'visible', timeout: T });
    await shot(A, 'a-new-conversation');
  });

  await step("A shares it with B as View Only from the sharing panel", async () => {
    // B's page must not reload to see it: mark the document and check the mark later.
    await B.evaluate(() => { window.__noReload = true; });
    await A.locator(tid('share-button')).click();
    await A.locator(tid('share-panel')).waitFor({ state: 'visible', timeout: T });
    await A.locator(tid('share-search')).fill(bob.name.split(' ')[0] + ' ' + bob.name.split(' ')[1]);
    const result = A.locator(`${tid('share-result')}[data-user-id="${bob.id}"]`);
    await result.waitFor({ state: 'visible', timeout: T });
    await result.click();
    const picked = A.locator(`${tid('share-picked-row')}[data-user-id="${bob.id}"]`);
    await picked.waitFor({ state: 'visible', timeout: T });
    await picked.locator(tid('share-picked-permission')).selectOption('view');
    await shot(A, 'a-share-panel-picked');
    await A.locator(tid('share-submit')).click();
    await A.locator(`${tid('share-access-row')}[data-user-id="${bob.id}"][data-permission="view"]`).waitFor({ state: 'visible', timeout: T });
    await shot(A, 'a-shared-view-only');
    await A.locator(tid('share-close')).click();
    await A.locator(tid('share-panel')).waitFor({ state: 'detached', timeout: T });
    // A's own sidebar marks it shared, live, and after a reload (from GET /conversations).
    await waitUntil('A\'s sidebar says shared with 1', async () => norm(await A.locator(`${convItem(convId)} ${tid('owner-shared-badge')}`).textContent()) === 'Shared with 1');
  });

  await step("B's sidebar shows the conversation without a reload, marked View only", async () => {
    const item = B.locator(convItem(convId));
    await item.waitFor({ state: 'visible', timeout: T });
    if ((await item.getAttribute('data-permission')) !== 'view') throw new Error('sidebar item is not marked view');
    const badge = norm(await item.locator(tid('shared-badge')).textContent());
    if (!/view only/i.test(badge)) throw new Error(`shared badge says ${JSON.stringify(badge)}`);
    if (!(await B.evaluate(() => window.__noReload === true))) throw new Error("B's page was reloaded");
    await shot(B, 'b-sidebar-shows-shared');
  });

  await step('B opens it: View only notice, no composer, stop, attach or model picker', async () => {
    await B.locator(convItem(convId)).click();
    await waitUntil('B sees the title', async () => norm(await B.locator(tid('chat-title')).textContent()) === title);
    await B.locator(tid('view-only-notice')).waitFor({ state: 'visible', timeout: T });
    const notice = norm(await B.locator(tid('view-only-notice')).textContent());
    if (!/view only/i.test(notice) || !/cannot send|can watch/i.test(notice)) throw new Error(`notice: ${notice}`);
    for (const id of ['composer', 'composer-input', 'send-button', 'stop-answer', 'attach-button', 'model-select', 'settings-button', 'share-button']) {
      if (await isVisible(B, tid(id))) throw new Error(`B (view only) can see ${id}`);
    }
    await B.locator(tid('model-label')).waitFor({ state: 'visible', timeout: T });
    await shot(B, 'b-view-only');
  });

  let firstFinal;
  await step('A sends a message; B sees it and watches the answer stream in, token by token', async () => {
    const text = '/sim tokens=60 rate=20\nWhat should the **launch plan** cover? <img src=x onerror="window.__xss=1"> `code`';
    await A.locator(tid('composer-input')).fill(text);
    await A.locator(tid('send-button')).click();
    // B sees the message itself, rendered as text (no HTML from a message ever becomes markup).
    const bUser = B.locator(userMsgs).first();
    await bUser.waitFor({ state: 'visible', timeout: T });
    await waitUntil("A's message text at B", async () => norm(await bUser.locator(tid('message-text')).textContent()).includes('<img src=x onerror="window.__xss=1">'));
    if ((await B.locator(`${tid('messages')} img`).count()) > 0) throw new Error('an <img> from message text was rendered');
    if ((await bUser.locator('strong').count()) !== 1) throw new Error('markdown **bold** not rendered');
    // Partial text while streaming …
    const bAnswer = B.locator(assistantMsgs).first();
    const partial = await waitUntil('B sees partial answer text while streaming', async () => {
      if ((await bAnswer.getAttribute('data-status')) !== 'streaming') return null;
      const t = norm(await bAnswer.locator(tid('message-text')).textContent());
      return t.length > 0 ? t : null;
    });
    await shot(B, 'b-answer-streaming');
    // The sidebar of both marks the conversation as responding while the answer streams (issue 14).
    for (const [who, P] of [['A', A], ['B', B]]) {
      await P.locator(`${convItem(convId)} ${tid('responding-marker')}`).waitFor({ state: 'visible', timeout: T }).catch(() => {
        throw new Error(`${who}'s sidebar has no responding marker while the answer streams`);
      });
    }
    await shot(B, 'b-sidebar-responding-marker');
    // … A (who may respond) has Stop on the answer while it streams, and Send stays where it is.
    if (!(await isVisible(A, `${assistantMsgs} ${tid('stop-answer')}`))) throw new Error('A has no Stop on the streaming answer');
    if (!(await isVisible(A, tid('send-button')))) throw new Error('Send is gone while an answer streams');
    if (await isVisible(B, tid('stop-answer'))) throw new Error('B (view only) has a Stop button');
    await shot(A, 'a-answer-streaming-with-stop');
    // … then the completed text.
    await waitUntil('B sees the answer complete', async () => (await bAnswer.getAttribute('data-status')) === 'complete', 60000);
    const final = norm(await bAnswer.locator(tid('message-text')).textContent());
    if (final.length <= partial.length) throw new Error(`final text (${final.length}) not longer than partial (${partial.length})`);
    const head = partial.slice(0, Math.min(20, partial.length));
    if (!final.startsWith(head)) throw new Error(`final text does not start with the partial text: ${JSON.stringify(head)} vs ${JSON.stringify(final.slice(0, 40))}`);
    await waitUntil('A sees the same completed answer', async () => {
      const a = A.locator(assistantMsgs).first();
      return (await a.getAttribute('data-status')) === 'complete' && norm(await a.locator(tid('message-text')).textContent()) === final;
    });
    if (await B.evaluate(() => window.__xss === 1)) throw new Error('injected script ran');
    firstFinal = final;
    await B.locator(`${convItem(convId)} ${tid('responding-marker')}`).waitFor({ state: 'detached', timeout: T });
    await waitUntil('B sees who is watching now (A and B)', async () => {
      const presence = norm(await B.locator(tid('presence')).textContent());
      return /watching now/i.test(presence) && presence.includes(alice.name) && presence.includes(`${bob.name} (you)`);
    });
    await shot(B, 'b-answer-complete');
  });

  await step('B loses its connection mid-stream, says so, and resumes with nothing missing or doubled', async () => {
    await B.evaluate(() => {
      const banner = document.querySelector('[data-testid="offline-banner"]');
      window.__bannerSeen = false;
      new MutationObserver(() => { if (!banner.hidden) window.__bannerSeen = true; }).observe(banner, { attributes: true });
    });
    await A.locator(tid('composer-input')).fill('/sim tokens=60 rate=20\nAnd the risks?');
    await A.locator(tid('send-button')).click();
    const bAnswer = B.locator(assistantMsgs).nth(1);
    await waitUntil('B sees the second answer streaming', async () =>
      (await bAnswer.getAttribute('data-status')) === 'streaming' && norm(await bAnswer.locator(tid('message-text')).textContent()).length > 0);
    // Cut B off from the network for a while (events keep flowing meanwhile), then let it come back.
    await ctxB.setOffline(true);
    await B.evaluate(() => window.__relayhub.dropConnection());
    await B.locator(tid('offline-banner')).waitFor({ state: 'visible', timeout: T });
    await shot(B, 'b-offline-banner');
    await new Promise((r) => setTimeout(r, 1200));
    await ctxB.setOffline(false);
    await B.locator(tid('offline-banner')).waitFor({ state: 'hidden', timeout: T });
    await waitUntil('A sees the second answer complete', async () => (await A.locator(assistantMsgs).nth(1).getAttribute('data-status')) === 'complete', 60000);
    const aFinal = norm(await A.locator(assistantMsgs).nth(1).locator(tid('message-text')).textContent());
    await waitUntil('B has the same second answer, complete', async () =>
      (await bAnswer.getAttribute('data-status')) === 'complete' && norm(await bAnswer.locator(tid('message-text')).textContent()) === aFinal, 30000);
    const aTexts = (await assistantTexts(A)).map(norm);
    const bTexts = (await assistantTexts(B)).map(norm);
    if (JSON.stringify(aTexts) !== JSON.stringify(bTexts)) throw new Error(`answers differ: A=${aTexts.length} B=${bTexts.length}`);
    if (bTexts[0] !== firstFinal) throw new Error('the first answer changed');
    if ((await B.locator(userMsgs).count()) !== 2) throw new Error(`B shows ${await B.locator(userMsgs).count()} user messages, expected 2`);
    if ((await B.locator(assistantMsgs).count()) !== 2) throw new Error(`B shows ${await B.locator(assistantMsgs).count()} answers, expected 2`);
    await shot(B, 'b-resumed-after-reconnect');
  });

  await step('A upgrades B to Can Respond; B gets the composer live', async () => {
    await A.locator(tid('share-button')).click();
    const row = A.locator(`${tid('share-access-row')}[data-user-id="${bob.id}"]`);
    await row.waitFor({ state: 'visible', timeout: T });
    await row.locator(tid('share-access-permission')).selectOption('respond');
    await A.locator(`${tid('share-access-row')}[data-user-id="${bob.id}"][data-permission="respond"]`).waitFor({ state: 'visible', timeout: T });
    await shot(A, 'a-upgraded-b');
    await A.locator(tid('share-close')).click();
    await B.locator(tid('composer-input')).waitFor({ state: 'visible', timeout: T });
    await B.locator(tid('view-only-notice')).waitFor({ state: 'hidden', timeout: T });
    await B.locator(tid('model-select')).waitFor({ state: 'visible', timeout: T });
    await waitUntil("B's sidebar item says respond", async () => (await B.locator(convItem(convId)).getAttribute('data-permission')) === 'respond');
    if (!(await B.evaluate(() => window.__noReload === true))) throw new Error("B's page was reloaded");
    await shot(B, 'b-can-respond');
  });

  await step('B takes part: sends a message, attaches a file, changes the model and settings; A sees it all', async () => {
    await B.locator(tid('composer-input')).fill('/sim tokens=6 rate=50\nHello from Bob');
    await B.locator(tid('send-button')).click();
    await waitUntil("A sees B's message", async () => {
      const texts = (await A.locator(`${userMsgs} ${tid('message-text')}`).allTextContents()).map(norm);
      return texts.includes('/sim tokens=6 rate=50 Hello from Bob') || texts.some((t) => t.endsWith('Hello from Bob'));
    });
    await waitUntil('the reply to B completes at A', async () => (await A.locator(assistantMsgs).nth(2).getAttribute('data-status')) === 'complete', 30000);

    await B.locator(tid('attach-input')).setInputFiles({ name: `notes-${run}.txt`, mimeType: 'text/plain', buffer: Buffer.from(`launch notes ${run}\n`) });
    const att = A.locator(`${tid('attachment')}[data-filename="notes-${run}.txt"]`);
    await att.waitFor({ state: 'visible', timeout: T });
    const [download] = await Promise.all([A.waitForEvent('download', { timeout: T }), att.click()]);
    const file = await download.path();
    const content = fs.readFileSync(file, 'utf8');
    if (content !== `launch notes ${run}\n`) throw new Error(`downloaded attachment has ${JSON.stringify(content)}`);

    const options = await B.locator(`${tid('model-select')} option`).evaluateAll((os) => os.map((o) => o.value));
    const current = await B.locator(tid('model-select')).inputValue();
    const other = options.find((o) => o !== current);
    if (other) {
      await B.locator(tid('model-select')).selectOption(other);
      await waitUntil('A sees the new model in the header', async () => (await A.locator(tid('model-select')).inputValue()) === other);
      await waitUntil('A sees who changed it', async () => norm(await A.locator(tid('settings-note')).textContent()).includes(bob.name));
    } else {
      console.log('        note: only one model is served; model change not exercised');
    }

    // Temperature and system prompt: B sets them; A's header shows them (and the prompt itself on hover).
    await B.locator(tid('settings-button')).click();
    await B.locator(tid('settings-panel')).waitFor({ state: 'visible', timeout: T });
    await B.locator(tid('settings-temperature')).fill('0.7');
    await B.locator(tid('settings-system-prompt')).fill(`Answer briefly, run ${run}.`);
    await B.locator(tid('settings-save')).click();
    await B.locator(tid('settings-panel')).waitFor({ state: 'hidden', timeout: T });
    await waitUntil('A sees the temperature and the system prompt', async () => {
      const summary = norm(await A.locator(tid('settings-summary')).textContent());
      return summary.includes('Temperature 0.7') && summary.includes('System prompt set');
    });
    const prompt = await A.locator(tid('settings-summary')).getAttribute('title');
    if (prompt !== `Answer briefly, run ${run}.`) throw new Error(`A's header has the prompt ${JSON.stringify(prompt)}`);
    await waitUntil('A sees that B changed the settings', async () => norm(await A.locator(tid('settings-note')).textContent()).includes(bob.name));
    await shot(A, 'a-sees-b-message-attachment-model');
  });

  await step('A reloads mid-stream: the answer resumes with Stop offered; Stop ends it for everyone', async () => {
    const before = await A.locator(assistantMsgs).count();
    await A.locator(tid('composer-input')).fill('/sim tokens=400 rate=20\nA long answer, please.');
    await A.locator(tid('send-button')).click();
    await waitUntil('A sees the long answer streaming', async () =>
      (await A.locator(assistantMsgs).nth(before).getAttribute('data-status')) === 'streaming');
    await A.reload();
    await waitUntil('A is back in the conversation', async () => norm(await A.locator(tid('chat-title')).textContent()) === title);
    await A.locator(`${convItem(convId)} ${tid('owner-shared-badge')}[data-shared-with="1"]`).waitFor({ state: 'visible', timeout: T });
    const answer = A.locator(assistantMsgs).nth(before);
    await waitUntil('the answer streams on after the reload', async () =>
      (await answer.getAttribute('data-status')) === 'streaming' && norm(await answer.locator(tid('message-text')).textContent()).length > 0);
    await answer.locator(tid('stop-answer')).waitFor({ state: 'visible', timeout: T });
    await shot(A, 'a-after-reload-streaming-with-stop');
    await answer.locator(tid('stop-answer')).click();
    await waitUntil('A sees the answer stopped', async () => (await answer.getAttribute('data-status')) === 'stopped');
    await waitUntil('B sees the answer stopped', async () => (await B.locator(assistantMsgs).nth(before).getAttribute('data-status')) === 'stopped');
    await A.locator(tid('send-button')).waitFor({ state: 'visible', timeout: T });
    if (await isVisible(A, tid('stop-answer'))) throw new Error('Stop still shown after the answer stopped');
    await shot(B, 'b-sees-stopped');
  });

  await step('A renames the conversation; B sees the new title in the header and the sidebar at once', async () => {
    if (await isVisible(B, tid('rename-button'))) throw new Error('B (not the owner) can rename');
    const renamed = `Launch plan, final ${run}`;
    const renameTo = async (t) => {
      await A.locator(tid('rename-button')).click();
      await A.locator(tid('rename-input')).fill(t);
      await A.locator(tid('rename-input')).press('Enter');
      await waitUntil(`A's header says ${t}`, async () => norm(await A.locator(tid('chat-title')).textContent()) === t);
    };
    await renameTo(renamed);
    await waitUntil("B's header follows", async () => norm(await B.locator(tid('chat-title')).textContent()) === renamed);
    await waitUntil("B's sidebar follows", async () => norm(await B.locator(`${convItem(convId)} ${tid('conversation-title')}`).textContent()) === renamed);
    await shot(B, 'b-sees-rename');
    await renameTo(title);
    await waitUntil("B's header is back", async () => norm(await B.locator(tid('chat-title')).textContent()) === title);
  });

  await step('who is typing: B composes, A sees it; B clears the draft, it goes', async () => {
    await B.locator(tid('composer-input')).fill('I am about to ask');
    await waitUntil("A sees B typing", async () => norm(await A.locator(tid('typing')).textContent().catch(() => '')).includes(`${bob.name} is typing`));
    await shot(A, 'a-sees-b-typing');
    await B.locator(tid('composer-input')).fill('');
    await A.locator(tid('typing')).waitFor({ state: 'detached', timeout: T });
  });

  await step('search finds the conversation by a word of its messages; a result opens it', async () => {
    await A.locator(tid('search-input')).fill('launch plan');
    await A.locator(tid('search-input')).press('Enter');
    const hit = A.locator(`${tid('search-result')} a[href="#/c/${convId}"]`).first();
    await hit.waitFor({ state: 'visible', timeout: T });
    if ((await A.locator(`${tid('search-results')} mark`).count()) === 0) throw new Error('no matched words marked');
    await shot(A, 'a-search-results');
    await hit.click();
    await A.locator(tid('chat-view')).waitFor({ state: 'visible', timeout: T });
  });

  await step('A posts a table and code; B sees them rendered, the code highlighted', async () => {
    const text = [
      '/sim tokens=5 rate=50',
      'Budget by quarter:',
      '',
      '| Quarter | Spend | Owner |',
      '|---|---:|---|',
      '| Q1 | 1,200 | **Alice** |',
      '| Q2 | 3,400 | Bob |',
      '',
      '```python',
      'def total(rows):',
      '    # sum the spend column',
      '    return sum(r["spend"] for r in rows)',
      '```',
    ].join('\n');
    await A.locator(tid('composer-input')).fill(text);
    await A.locator(tid('send-button')).click();
    const msg = B.locator(userMsgs).last();
    await waitUntil('B sees the table', async () => (await msg.locator(`${tid('md-table')} tbody tr`).count()) === 2);
    await waitUntil('B sees highlighted code', async () => (await msg.locator('pre code .hljs-keyword').count()) > 0);
    const cells = await msg.locator(`${tid('md-table')} td`).allTextContents();
    if (cells.join('|') !== 'Q1|1,200|Alice|Q2|3,400|Bob') throw new Error(`cells: ${JSON.stringify(cells)}`);
    await msg.scrollIntoViewIfNeeded();
    await shot(B, 'b-sees-table-and-highlighted-code');
  });

  await step('right-to-left text is laid out right to left; messages and system lines carry their time', async () => {
    await A.locator(tid('composer-input')).fill('مرحبا بالفريق، ما هي الخطة؟');
    await A.locator(tid('send-button')).click();
    const msg = B.locator(userMsgs).last();
    await waitUntil('B sees the Arabic message', async () => norm(await msg.locator(tid('message-text')).textContent()).startsWith('مرحبا'));
    const dir = await msg.locator(tid('message-text')).evaluate((el) => getComputedStyle(el).direction);
    if (dir !== 'rtl') throw new Error(`the Arabic message is laid out ${dir}`);
    const time = msg.locator(tid('message-time'));
    if (!/\d{1,2}[:.]\d{2}/.test(await time.textContent())) throw new Error(`message time reads ${await time.textContent()}`);
    const at = Date.parse(await time.getAttribute('datetime'));
    if (!(Math.abs(Date.now() - at) < 120000)) throw new Error(`message time is ${await time.getAttribute('datetime')}`);
    const note = B.locator(tid('system-note')).last();
    if ((await note.locator(tid('message-time')).count()) !== 1) throw new Error('a system line has no time');
    await shot(B, 'b-sees-rtl-and-times');
  });

  await step('scrolling: a small scroll up while text streams stays put, a cue says new text is below and jumps there', async () => {
    if (!(await A.title()).startsWith(title)) throw new Error(`the tab title is ${JSON.stringify(await A.title())}`);
    const hint = norm(await A.locator(tid('composer-hint')).textContent());
    if (!hint.includes('/sim tokens=')) throw new Error(`the composer hint reads ${JSON.stringify(hint)}`);
    // The message limit shows before Send, and a message over it is not sent.
    await A.locator(tid('composer-input')).fill('x'.repeat(32001));
    await waitUntil('the counter shows', async () => /32,001 \/ 32,000/.test(norm(await A.locator(tid('composer-count')).textContent())));
    const sent = await A.locator(userMsgs).count();
    await A.locator(tid('composer-input')).press('Enter');
    await waitUntil('too long is refused', async () => (await A.locator(tid('toast')).allTextContents()).some((t) => /at most 32,000/.test(t)));
    if ((await A.locator(userMsgs).count()) !== sent) throw new Error('a too-long message was sent');
    await A.locator(tid('composer-input')).fill('/sim tokens=300 rate=25\nA long one to scroll by.');
    await A.locator(tid('composer-input')).press('Enter');
    const answer = B.locator(assistantMsgs).last();
    await waitUntil('B sees it stream', async () => (await answer.getAttribute('data-status')) === 'streaming');
    const scroller = B.locator(tid('messages'));
    const at = await scroller.evaluate((el) => { el.scrollTop = el.scrollHeight - el.clientHeight - 60; return el.scrollTop; });
    await waitUntil('B is told new text is below', async () => norm(await B.locator(tid('jump-latest')).textContent()) === 'New text below');
    const now = await scroller.evaluate((el) => el.scrollTop);
    if (Math.abs(now - at) > 1) throw new Error(`a 60 px scroll up snapped from ${at} to ${now}`);
    await shot(B, 'b-new-text-below');
    await B.locator(tid('jump-latest')).click();
    await waitUntil('B is at the latest text, following again', async () => (await scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight)) < 4
      && !(await isVisible(B, tid('jump-latest'))));
    await A.locator(assistantMsgs).last().locator(tid('stop-answer')).click();
    await waitUntil('the long answer stopped', async () => (await answer.getAttribute('data-status')) === 'stopped');
  });

  await step('A regenerates the last answer; B watches the new attempt and switches to "1 of 2"; A edits the question', async () => {
    await A.locator(tid('composer-input')).fill('/sim tokens=12 rate=200\nWhat is the plan?');
    await A.locator(tid('composer-input')).press('Enter');
    const answer = B.locator(assistantMsgs).last();
    await waitUntil('the answer is complete', async () => (await A.locator(assistantMsgs).last().getAttribute('data-status')) === 'complete');
    const first = norm(await A.locator(assistantMsgs).last().locator(tid('message-text')).textContent());
    // B (Can respond) may regenerate, but editing A's message is A's alone.
    await waitUntil('B is offered Regenerate', async () => B.locator(assistantMsgs).last().locator(tid('regenerate')).isVisible());
    if (await B.locator(`${userMsgs} ${tid('edit-message')}:visible`).count()) throw new Error("B is offered to edit A's message");
    await A.locator(assistantMsgs).last().locator(tid('regenerate')).click();
    await waitUntil('B sees attempt 2 of 2 stream in and end', async () => norm(await answer.locator(tid('attempt-count')).textContent()) === '2 of 2'
      && (await answer.getAttribute('data-status')) === 'complete');
    await B.locator(assistantMsgs).last().getByRole('button', { name: 'Previous attempt' }).click();
    await waitUntil('B sees attempt 1 of 2', async () => norm(await B.locator(assistantMsgs).last().locator(tid('attempt-count')).textContent()) === '1 of 2');
    const older = norm(await B.locator(assistantMsgs).last().locator(tid('message-text')).textContent());
    if (older !== first) throw new Error(`attempt 1 reads ${JSON.stringify(older.slice(0, 80))}, not the first answer`);
    await B.locator(assistantMsgs).last().scrollIntoViewIfNeeded();
    await shot(B, 'b-sees-attempt-1-of-2');
    // A edits the question in place: B sees the new version and its answer as attempt 3 of 3.
    await A.locator(userMsgs).last().locator(tid('edit-message')).click();
    await A.locator(tid('edit-input')).fill('/sim tokens=12 rate=200\nWhat is the plan, exactly?');
    await A.locator(tid('edit-save')).click();
    await waitUntil('B sees the edited question and its answer, 3 of 3', async () => norm(await B.locator(userMsgs).last().locator(tid('message-text')).textContent()).endsWith('What is the plan, exactly?')
      && norm(await B.locator(assistantMsgs).last().locator(tid('attempt-count')).textContent()) === '3 of 3'
      && (await B.locator(assistantMsgs).last().getAttribute('data-status')) === 'complete');
    await shot(B, 'b-sees-edited-question-attempt-3-of-3');
  });

  await step('export as Markdown; B continues the conversation as a copy of their own', async () => {
    const [download] = await Promise.all([A.waitForEvent('download', { timeout: T }), A.locator(tid('export-markdown')).click()]);
    const md = await (await import('node:fs/promises')).readFile(await download.path(), 'utf8');
    if (!md.startsWith(`# ${title}`) || !md.includes('Hello from Bob')) throw new Error(`export: ${md.slice(0, 200)}`);
    // B (Can respond) copies up to the first answer, from the keyboard: the picker opens on "All of it", Escape
    // closes it; then "Up to the answer" with the first one chosen.
    await B.locator(tid('copy-button')).click();
    await waitUntil('the copy picker has the focus', async () => B.evaluate(() => document.activeElement?.dataset.testid === 'copy-all'));
    await B.keyboard.press('Escape');
    await waitUntil('Escape closes it, back on Copy', async () => !(await isVisible(B, tid('copy-panel')))
      && (await B.evaluate(() => document.activeElement?.dataset.testid)) === 'copy-button');
    await B.keyboard.press('Enter');
    await waitUntil('the copy picker is open again', async () => isVisible(B, tid('copy-panel')));
    await B.keyboard.press('ArrowDown'); // the radio group: "Up to the answer"
    await B.keyboard.press('Tab');
    const points = await B.locator(`${tid('copy-point')} option`).allTextContents();
    await B.locator(tid('copy-point')).selectOption({ index: 0 });
    await shot(B, 'b-copy-picker');
    await B.locator(tid('copy-confirm')).click();
    await waitUntil('B is in the copy', async () => {
      const id = /#\/c\/([0-9a-f-]{36})/.exec(B.url())?.[1];
      return id && id !== convId ? id : null;
    });
    await waitUntil("the copy's title", async () => norm(await B.locator(tid('chat-title')).textContent()) === `Copy of ${title}`);
    await waitUntil('the copied first turn', async () => (await B.locator(userMsgs).count()) === 1 && (await B.locator(assistantMsgs).count()) === 1);
    if (points.length < 3) throw new Error(`the picker offered ${JSON.stringify(points)}`);
    if (await isVisible(B, tid('permission-badge'))) throw new Error('the copy is not B\'s own');
    await shot(B, 'b-continued-as-copy');
    await B.evaluate((id) => { location.hash = `#/c/${id}`; }, convId);
    await waitUntil('B is back in the conversation', async () => (await B.locator(tid('chat-view')).getAttribute('data-conversation-id')) === convId);
  });

  await step('A removes B; the conversation leaves B\'s sidebar and B\'s view closes', async () => {
    // B has a message typed but not sent: it stays readable after the access ends, to copy.
    await B.locator(tid('composer-input')).fill(`My unsent thoughts ${run}`);
    await A.locator(tid('share-button')).click();
    const row = A.locator(`${tid('share-access-row')}[data-user-id="${bob.id}"]`);
    await row.waitFor({ state: 'visible', timeout: T });
    await row.locator(tid('share-remove')).click();
    await row.waitFor({ state: 'detached', timeout: T });
    await shot(A, 'a-removed-b');
    await A.locator(tid('share-close')).click();
    await B.locator(convItem(convId)).waitFor({ state: 'detached', timeout: T });
    await A.locator(`${convItem(convId)} ${tid('owner-shared-badge')}`).waitFor({ state: 'detached', timeout: T });
    await B.locator(tid('access-notice')).waitFor({ state: 'visible', timeout: T });
    if (await isVisible(B, tid('chat-view'))) throw new Error('B still sees the chat');
    if (!(await B.evaluate(() => window.__noReload === true))) throw new Error("B's page was reloaded");
    if ((await B.locator(tid('kept-draft-text')).inputValue()) !== `My unsent thoughts ${run}`) throw new Error('B\'s draft is gone');
    await shot(B, 'b-access-removed');
  });

  await step('A shares with an end: the panel says until when', async () => {
    await A.locator(tid('share-button')).click();
    await A.locator(tid('share-search')).fill(bob.name.split(' ')[0]);
    await A.locator(tid('share-result')).first().click();
    await A.locator(tid('share-expiry')).selectOption('3600');
    await A.locator(tid('share-submit')).click();
    const row = A.locator(`${tid('share-access-row')}[data-user-id="${bob.id}"]`);
    await row.locator(tid('share-until')).waitFor({ state: 'visible', timeout: T });
    await shot(A, 'a-expiring-share');
    await A.locator(tid('share-close')).click();
  });

  await step('narrow (phone) screen: sidebar behind a button, chat readable', async () => {
    const ctxP = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const P = (pages.phone = await ctxP.newPage());
    await signIn(P, alice);
    const box = await P.locator(tid('sidebar')).boundingBox();
    if (box && box.x + box.width > 5) throw new Error('sidebar is not collapsed on a phone screen');
    await P.locator(tid('sidebar-toggle')).click();
    await P.locator(convItem(convId)).waitFor({ state: 'visible', timeout: T });
    await waitUntil('sidebar slid in', async () => ((await P.locator(tid('sidebar')).boundingBox())?.x ?? -1) >= 0);
    await shot(P, 'phone-sidebar-open');
    await P.locator(convItem(convId)).click();
    await waitUntil('chat title on phone', async () => norm(await P.locator(tid('chat-title')).textContent()) === title);
    await waitUntil('sidebar closed again', async () => {
      const b = await P.locator(tid('sidebar')).boundingBox();
      return b && b.x + b.width <= 5;
    });
    await P.locator(tid('composer-input')).waitFor({ state: 'visible', timeout: T });
    const overflow = await P.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    if (overflow) throw new Error('the page scrolls sideways on a phone screen');
    await shot(P, 'phone-chat');
    await ctxP.close();
    delete pages.phone;
  });

  await step('a long sidebar comes 100 at a time; older conversations on demand', async () => {
    // 100 more of A's conversations through the API (the oldest of A's now falls beyond the first page).
    for (let i = 0; i < 100; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => apiCall('POST', '/conversations', { title: `Bulk ${i + j} ${run}` }, alice.token)));
    }
    await A.reload();
    const items = A.locator(`${tid('sidebar-own')} ${tid('conversation-item')}`);
    await waitUntil('A sees the first page', async () => (await items.count()) === 100);
    await A.locator(tid('sidebar-more')).waitFor({ state: 'visible', timeout: T });
    const total = (await apiCall('GET', '/conversations', undefined, alice.token)).conversations.filter((c) => c.permission === 'owner').length;
    await A.locator(tid('sidebar-more')).click();
    await waitUntil('A sees all of them', async () => (await items.count()) === total);
    await A.locator(tid('sidebar-more')).waitFor({ state: 'hidden', timeout: T });
  });

  await step('a new organization signs up in the browser; its admin adds a teammate, who signs in', async () => {
    const ctxS = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    const S = (pages.signup = await ctxS.newPage());
    S.on('pageerror', (e) => consoleErrors.push(`signup: ${e.message}`));
    const dana = { name: `Dana Founder ${run}`, email: `dana-${run}@e2e.test` };
    const signUp = async (org, password = PASSWORD) => {
      await S.locator(tid('signup-link')).click();
      for (const [field, value] of [['org', org], ['name', dana.name], ['email', dana.email], ['password', password]]) {
        await S.locator(tid(`signup-${field}`)).fill(value);
      }
      await S.locator(tid('signup-submit')).click();
    };
    await S.goto(`${APP}/`);
    await signUp(`Startup ${run}`);
    await waitUntil('Dana is signed in', async () => norm(await S.locator(tid('current-user')).textContent()) === dana.name);
    // Signing up again with the same email (another password) creates nothing and cannot sign in.
    await S.locator(tid('logout')).click();
    await signUp(`Again ${run}`, `${PASSWORD}-other`);
    await waitUntil('the duplicate is refused', async () => /already has an account/.test(norm(await S.locator(tid('signup-error')).textContent())));
    await S.locator(tid('login-link')).click();
    await signIn(S, dana);

    const erin = { name: `Erin Teammate ${run}`, email: `erin-${run}@e2e.test` };
    // A new organization's empty workspace points its admin at adding teammates.
    await S.locator(tid('first-use')).waitFor({ state: 'visible', timeout: T });
    await shot(S, 'signup-first-use');
    await S.locator(tid('first-use-team')).click();
    await S.locator(tid('team-panel')).waitFor({ state: 'visible', timeout: T });
    await S.locator(tid('team-name')).fill(erin.name);
    await S.locator(tid('team-email')).fill(erin.email);
    await S.locator(tid('team-password')).fill(PASSWORD);
    await S.locator(tid('team-add')).click();
    await S.locator(tid('team-added')).waitFor({ state: 'visible', timeout: T });
    await waitUntil('Erin is listed as a member', async () => (await S.locator(tid('team-member')).allTextContents()).some((t) => t.includes(erin.name)));
    await S.locator(tid('team-search')).fill('erin-');
    await waitUntil('the search finds only Erin', async () => {
      const names = await S.locator(tid('team-member')).allTextContents();
      return names.length === 1 && names[0].includes(erin.name);
    });
    await shot(S, 'signup-admin-added-teammate');
    await S.locator(tid('team-close')).click();

    // Erin signs in; she is not an admin, so she has no Team button. Bob (another org) is not her teammate.
    const ctxE = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    const E = (pages.erin = await ctxE.newPage());
    E.on('pageerror', (e) => consoleErrors.push(`erin: ${e.message}`));
    await signIn(E, erin);
    if (await isVisible(E, tid('team-button'))) throw new Error('a member sees the Team button');
    const erinLogin = await apiCall('POST', '/auth/login', { email: erin.email, password: PASSWORD });
    const found = await apiCall('GET', `/users?q=${encodeURIComponent(bob.email)}`, undefined, erinLogin.token);
    if ((found.users || []).length !== 0) throw new Error('another org\'s member is visible to Erin');

    // Dana shares a conversation with Erin; Erin leaves it: it leaves her sidebar and her view closes.
    const danaToken = (await apiCall('POST', '/auth/login', { email: dana.email, password: PASSWORD })).token;
    const kickoff = await apiCall('POST', '/conversations', { title: `Kickoff ${run}` }, danaToken);
    await apiCall('POST', `/conversations/${kickoff.id}/shares`, { shares: [{ user_id: erinLogin.user.id, permission: 'view' }] }, danaToken);
    await E.locator(convItem(kickoff.id)).click();
    await E.locator(tid('leave-button')).waitFor({ state: 'visible', timeout: T });
    E.once('dialog', (d) => d.accept());
    await E.locator(tid('leave-button')).click();
    await E.locator(convItem(kickoff.id)).waitFor({ state: 'detached', timeout: T });
    await waitUntil('Erin is told she left', async () => /You left/.test(norm(await E.locator(tid('access-notice')).textContent())));
    const shares = await apiCall('GET', `/conversations/${kickoff.id}/shares`, undefined, danaToken);
    if (listOfShares(shares).length !== 0) throw new Error(`Erin still has access: ${JSON.stringify(shares)}`);
  });

  await step('the admin invites a teammate by link, who joins in the browser; a team share reaches them live', async () => {
    const S = pages.signup;
    const dana = { email: `dana-${run}@e2e.test` };
    const finn = { name: `Finn Invited ${run}`, email: `finn-${run}@e2e.test` };
    const danaToken = (await apiCall('POST', '/auth/login', { email: dana.email, password: PASSWORD })).token;
    await S.locator(tid('team-button')).click();
    await S.locator(tid('team-panel')).waitFor({ state: 'visible', timeout: T });
    await S.locator(tid('invite-emails')).fill(finn.email);
    await S.locator(tid('invite-create')).click();
    const link = await S.locator(tid('invite-url')).inputValue({ timeout: T });
    await waitUntil('the invite is listed as pending', async () => (await S.locator(`${tid('invite-row')}[data-status="pending"]`).count()) === 1);
    await S.locator(tid('team-close')).click();

    const ctxF = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    const F = (pages.finn = await ctxF.newPage());
    F.on('pageerror', (e) => consoleErrors.push(`finn: ${e.message}`));
    await F.goto(link);
    await F.locator(tid('join-form')).waitFor({ state: 'visible', timeout: T });
    if ((await F.locator(tid('join-email')).inputValue()) !== finn.email) throw new Error('the invite names Finn\'s email');
    await F.locator(tid('join-name')).fill(finn.name);
    await F.locator(tid('join-password')).fill(PASSWORD);
    await shot(F, 'invite-join-page');
    await F.locator(tid('join-submit')).click();
    await waitUntil('Finn is signed in', async () => norm(await F.locator(tid('current-user')).textContent()) === finn.name);
    if (F.url().includes('invite=')) throw new Error('the invite secret stays in the address bar');
    // The link worked once.
    const F2 = await ctxF.newPage();
    await F2.goto(link);
    await waitUntil('a used link is refused', async () => /already used/.test(norm(await F2.locator(tid('login-error')).textContent())));
    await F2.close();

    // Dana makes a team with Finn in the Team panel, then shares a conversation with it from the share panel.
    await S.locator(tid('team-button')).click();
    await S.locator(tid('teams-name')).fill(`Crew ${run}`);
    await S.locator(tid('teams-create')).click();
    const row = S.locator(`${tid('teams-row')}`).filter({ hasText: `Crew ${run}` });
    await row.waitFor({ state: 'visible', timeout: T });
    await row.locator(tid('teams-member-pick')).selectOption({ label: `${finn.name} (${finn.email})` });
    await waitUntil('Finn is in the team', async () => (await row.locator(tid('teams-member')).allTextContents()).some((t) => t.includes(finn.name)));
    await shot(S, 'team-panel-invites-and-teams');
    await S.locator(tid('team-close')).click();

    const plan = await apiCall('POST', '/conversations', { title: `Crew plan ${run}` }, danaToken);
    await S.goto(`${APP}/#/c/${plan.id}`);
    await S.locator(tid('share-button')).click();
    await S.locator(tid('share-panel')).waitFor({ state: 'visible', timeout: T });
    await S.locator(tid('share-team-pick')).selectOption({ label: `Crew ${run} (1)` });
    await S.locator(tid('share-team-submit')).click();
    await S.locator(tid('share-team-row')).waitFor({ state: 'visible', timeout: T });
    await F.locator(convItem(plan.id)).waitFor({ state: 'visible', timeout: T });
    await shot(S, 'share-panel-team');
    await shot(F, 'team-share-in-sidebar');
    await S.locator(tid('share-close')).click();

    // Finn leaves the team: the conversation leaves his sidebar, live.
    await S.locator(tid('team-button')).click();
    const member = S.locator(`${tid('teams-row')}`).filter({ hasText: `Crew ${run}` }).locator(tid('teams-member')).filter({ hasText: finn.name });
    await member.locator(tid('teams-member-remove')).click();
    await F.locator(convItem(plan.id)).waitFor({ state: 'detached', timeout: T });
    await S.locator(tid('team-close')).click();
  });

  await step('too many answers at once in one conversation: A is told why and when to try again', async () => {
    // The test stack allows 3 answers in progress per conversation (e2e/tests/e2e/web_client.rs).
    await A.locator(tid('new-conversation')).click();
    await A.locator(tid('new-conversation-title')).fill(`Busy ${run}`);
    await A.locator(tid('new-conversation-create')).click();
    await waitUntil('the busy conversation open', async () => norm(await A.locator(tid('chat-title')).textContent()) === `Busy ${run}`);
    const busyId = await A.locator(tid('chat-view')).getAttribute('data-conversation-id');
    for (let i = 1; i <= 3; i += 1) {
      await A.locator(tid('composer-input')).fill(`/sim tokens=600 rate=10\nLong answer ${i}`);
      await A.locator(tid('send-button')).click();
      await waitUntil(`answer ${i} streaming`, async () => (await A.locator(`${assistantMsgs}[data-status="streaming"]`).count()) === i, 30000);
    }
    await A.locator(tid('composer-input')).fill('One more, please.');
    await A.locator(tid('send-button')).click();
    const told = await waitUntil('A is told why and when', async () =>
      (await A.locator(tid('toast')).allTextContents()).find((t) => /too many answers in progress\. You can try again in 5 s \(at \d/.test(t)));
    if (!/^Not sent: This conversation/.test(told)) throw new Error(`the toast reads ${JSON.stringify(told)}`);
    if (norm(await A.locator(tid('composer-input')).inputValue()) !== 'One more, please.') throw new Error('the refused message left the composer');
    await shot(A, 'a-told-to-wait-for-answers-in-progress');
    const login = await apiCall('POST', '/auth/login', { email: alice.email, password: PASSWORD });
    await apiCall('POST', `/conversations/${busyId}/stop`, {}, login.token);
  });

  await step('the admin resets a member\'s password and removes her; the owner\'s sidebar count follows live', async () => {
    const S = pages.signup;
    const erin = { name: `Erin Teammate ${run}`, email: `erin-${run}@e2e.test` };
    const finn = { email: `finn-${run}@e2e.test` };
    const dana = { email: `dana-${run}@e2e.test` };
    const danaToken = (await apiCall('POST', '/auth/login', { email: dana.email, password: PASSWORD })).token;
    const erinId = (await apiCall('POST', '/auth/login', { email: erin.email, password: PASSWORD })).user.id;
    const finnId = (await apiCall('POST', '/auth/login', { email: finn.email, password: PASSWORD })).user.id;
    // A conversation of Dana's, shared with Erin and Finn, that Dana does not have open: its row counts live.
    const handover = await apiCall('POST', '/conversations', { title: `Handover ${run}` }, danaToken);
    await apiCall('POST', `/conversations/${handover.id}/shares`, { shares: [{ user_id: erinId, permission: 'view' }, { user_id: finnId, permission: 'view' }] }, danaToken);
    const badge = S.locator(`${convItem(handover.id)} ${tid('owner-shared-badge')}`);
    await waitUntil('Dana\'s row says shared with 2', async () => (await badge.count()) === 1 && (await badge.getAttribute('data-shared-with')) === '2');

    await S.locator(tid('team-button')).click();
    await S.locator(tid('team-panel')).waitFor({ state: 'visible', timeout: T });
    const row = S.locator(`${tid('team-member')}[data-user-id="${erinId}"]`);
    await row.waitFor({ state: 'visible', timeout: T });
    const newPassword = `${PASSWORD}-reset`;
    await row.locator(tid('member-reset')).click();
    await row.locator(tid('member-new-password')).fill(newPassword);
    S.once('dialog', (d) => d.accept());
    await row.locator(tid('member-reset-submit')).click();
    await waitUntil('the reset is confirmed', async () => /password was changed/.test(norm(await S.locator(tid('team-added')).textContent())));
    await apiCall('POST', '/auth/login', { email: erin.email, password: newPassword });
    if (await apiCall('POST', '/auth/login', { email: erin.email, password: PASSWORD }).then(() => true, () => false)) {
      throw new Error('the old password still works');
    }

    // Dismissing the confirm removes nobody.
    S.once('dialog', (d) => d.dismiss());
    await row.locator(tid('member-remove')).click();
    await shot(S, 'team-panel-member-actions');
    if ((await row.count()) !== 1) throw new Error('a dismissed confirm removed Erin');
    S.once('dialog', (d) => d.accept());
    await row.locator(tid('member-remove')).click();
    await row.waitFor({ state: 'detached', timeout: T });
    await waitUntil('Dana\'s row says shared with 1', async () => (await badge.getAttribute('data-shared-with')) === '1');
    if (await apiCall('POST', '/auth/login', { email: erin.email, password: newPassword }).then(() => true, () => false)) {
      throw new Error('a removed member signs in');
    }
    await S.locator(tid('team-close')).click();
  });

  await step('no script errors in the pages', async () => {
    if (consoleErrors.length) throw new Error(consoleErrors.join('\n'));
  });
}

await finish('web-e2e', main, results, async () => { if (browser) await browser.close(); });
