// Browser test of single sign-on (issue 15) through a real OpenID Connect provider (e2e/oidc/provider.mjs, npm
// oidc-provider): an org admin sets the org's provider through the API; a new person types their work email on the
// sign-in page, clicks "Sign in with …", signs in on the provider's own login page (consenting if it asks) and comes
// back signed in to that org, named as the provider names them. Then someone whose provider account has an email of
// another domain comes back to the sign-in page with a message saying why, and no account is made.
//
// Environment: what e2e.mjs needs, plus RH_OIDC_ISSUER (the provider, which must send people back to RH_APP_URL/)
// and RH_OIDC_CLIENT_ID / RH_OIDC_CLIENT_SECRET (the client registered there). The api serving RH_APP_URL needs
// RH_PUBLIC_URL = RH_APP_URL and RH_SSO_ALLOWED_ISSUERS covering the issuer (run.sh's private stack and
// e2e/tests/e2e/web_client.rs set both).

import { chromium } from 'playwright-core';
import { APP, CHROMIUM, T, apiCall, tid, shot, norm, waitUntil, stepRunner, finish } from './lib.mjs';

const ISSUER = (process.env.RH_OIDC_ISSUER || '').replace(/\/+$/, '');
const CLIENT_ID = process.env.RH_OIDC_CLIENT_ID;
const CLIENT_SECRET = process.env.RH_OIDC_CLIENT_SECRET;
if (!ISSUER || !CLIENT_ID || !CLIENT_SECRET) {
  console.error('RH_OIDC_ISSUER, RH_OIDC_CLIENT_ID and RH_OIDC_CLIENT_SECRET must name the provider and its client');
  process.exit(2);
}

const run = Math.random().toString(36).slice(2, 8);
const DOMAIN = `sso-${run}.test`;
const PASSWORD = 'sso-password-' + run;
const LOGIN_NAME = 'Acme Login';
const admin = { name: `Ines Admin ${run}`, email: `ines-${run}@${DOMAIN}` };
// provider.mjs names a person after their login's local part, each word capitalized.
const titled = (local) => local.replace(/[-_.]+/g, ' ').replace(/\b\w/g, (ch) => ch.toUpperCase());
const nia = { email: `nia.okafor-${run}@${DOMAIN}` };
nia.name = titled(nia.email.split('@')[0]);
const outsider = `mallory-${run}@elsewhere-${run}.test`;

async function setUpOrgWithProvider() {
  await apiCall('POST', '/orgs', { org_name: `SSO Org ${run}`, name: admin.name, email: admin.email, password: PASSWORD });
  const a = await apiCall('POST', '/auth/login', { email: admin.email, password: PASSWORD });
  Object.assign(admin, { token: a.token, orgId: a.user.org_id });
  const config = {
    issuer: ISSUER, client_id: CLIENT_ID, client_secret: CLIENT_SECRET,
    display_name: LOGIN_NAME, email_domains: [DOMAIN], passwords_off: false,
  };
  const set = await apiCall('PUT', `/orgs/${admin.orgId}/sso`, config, admin.token);
  if (set.redirect_uri !== `${APP}/`) throw new Error(`the provider must send people back to ${APP}/, not ${set.redirect_uri}`);
}

/** The org's directory as its admin sees it, searched for `q`. */
async function directory(q) {
  const r = await apiCall('GET', `/users?q=${encodeURIComponent(q)}`, undefined, admin.token);
  return Array.isArray(r) ? r : r.users || [];
}

/** Types `email` on RelayHub's sign-in page and clicks "Sign in with …": ends on the provider's login page. */
async function toProvider(page, email, shotName) {
  await page.goto(`${APP}/`);
  await page.locator(tid('login-email')).fill(email);
  const button = page.locator(tid('sso-button'));
  await button.waitFor({ state: 'visible', timeout: T });
  await waitUntil('the button names the provider', async () => norm(await button.textContent()) === `Sign in with ${LOGIN_NAME}`);
  if (shotName) await shot(page, shotName);
  await button.click();
  await page.waitForURL((url) => url.href.startsWith(`${ISSUER}/`), { timeout: T });
  await page.locator('input[name="login"]').waitFor({ state: 'visible', timeout: T });
}

/** Signs in on the provider's own login form, and consents if it asks: ends back at RelayHub. */
async function atProvider(page, login, shotName) {
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any-password');
  if (shotName) await shot(page, shotName);
  await page.locator('button[type="submit"]').click();
  let consented = false;
  await waitUntil('back at RelayHub (consenting if the provider asks)', async () => {
    if (page.url().startsWith(`${APP}/`)) return true;
    const consent = page.locator('button[type="submit"]');
    if (!consented && !(await page.locator('input[name="login"]').count()) && (await consent.count())) {
      consented = true;
      await consent.click();
    }
    return false;
  });
}

let browser;
const pages = {};
const { step, results } = stepRunner(pages);

async function main() {
  console.log(`RelayHub SSO browser test against ${APP} with the provider at ${ISSUER}`);
  await step('an org admin sets up the org\'s provider through the API', setUpOrgWithProvider);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.RH_E2E_HEADFUL !== '1',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const N = (pages.nia = await (await browser.newContext({ viewport: { width: 1280, height: 820 } })).newPage());
  const consoleErrors = [];
  N.on('pageerror', (e) => consoleErrors.push(`nia: ${e.message}`));

  await step('a new person\'s work email shows "Sign in with Acme Login", which opens the provider\'s login page', async () => {
    await toProvider(N, nia.email, 'sso-button');
  });

  await step('they sign in there and come back signed in to the org, named as the provider names them', async () => {
    await atProvider(N, nia.email, 'sso-provider-login');
    await N.locator(tid('sidebar')).waitFor({ state: 'visible', timeout: T });
    await waitUntil(`${nia.name} shown as signed in`, async () => norm(await N.locator(tid('current-user')).textContent()) === nia.name);
    if (/[?&](code|state)=/.test(N.url())) throw new Error(`the code stayed in the address bar: ${N.url()}`);
    await shot(N, 'sso-signed-in');
    const found = await directory('okafor');
    const them = found.find((u) => u.email === nia.email);
    if (!them || them.name !== nia.name) throw new Error(`not in the org's directory as ${nia.name}: ${JSON.stringify(found)}`);
  });

  await step('an email of another domain at the provider comes back to the sign-in page with why, and joins nothing', async () => {
    // Another browser: the provider's session for Nia stays in hers.
    const M = (pages.mallory = await (await browser.newContext({ viewport: { width: 1280, height: 820 } })).newPage());
    M.on('pageerror', (e) => consoleErrors.push(`mallory: ${e.message}`));
    await toProvider(M, `someone-${run}@${DOMAIN}`);
    await atProvider(M, outsider);
    const error = M.locator(tid('login-error'));
    await error.waitFor({ state: 'visible', timeout: T });
    const text = norm(await error.textContent());
    if (!/single sign-on failed/i.test(text) || !/domain is not one of the organization's/.test(text)) {
      throw new Error(`unclear refusal: ${text}`);
    }
    if (await M.locator(tid('sidebar')).count()) throw new Error('signed in anyway');
    await shot(M, 'sso-refused-other-domain');
    const found = await directory('mallory');
    if (found.length) throw new Error(`an account was made: ${JSON.stringify(found)}`);
  });

  await step('no errors in the pages', async () => {
    if (consoleErrors.length) throw new Error(consoleErrors.join('\n'));
  });
}

await finish('sso', main, results, async () => browser?.close());
