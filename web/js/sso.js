// Single sign-on on the sign-in page: when the typed email's domain belongs to an organization with its own identity
// provider (`GET /auth/sso?email=`, which depends only on the domain), a "Sign in with …" button appears (and the
// password field goes when that organization turned passwords off). The button starts the sign-in
// (`POST /auth/sso/start`), keeps the browser key in this tab and goes to the provider's login page; the provider
// sends the browser back to `/?code=…&state=…`, where `completeSso` finishes it (`POST /auth/sso/callback`).

import { h, show } from './dom.js';
import { errorText } from './api.js';

const KEY = 'relayhub.sso.browser_key';

/**
 * The button for the login form: watches `emailInput`, hides `passwordLabel` where passwords are off, reports a
 * failure through `onError(text)`.
 */
export function ssoButton(api, emailInput, passwordLabel, onError) {
  let option = null;
  let asked = '';
  const button = h('button', { type: 'button', class: 'btn btn-block btn-sso', testid: 'sso-button', hidden: true });
  const password = passwordLabel.querySelector('input');
  const lookUp = async () => {
    const email = emailInput.value.trim();
    const domain = email.includes('@') ? email.split('@').pop() : '';
    if (domain === asked) return;
    asked = domain;
    option = null;
    if (domain.includes('.')) {
      try {
        option = (await api.get(`/auth/sso?email=${encodeURIComponent(email)}`))?.sso || null;
      } catch {
        option = null; // no button; the password still works or says why not
      }
    }
    if (asked !== domain) return; // the email changed meanwhile
    button.textContent = option ? `Sign in with ${option.display_name}` : '';
    show(button, !!option);
    const passwordsOff = !!option?.passwords_off;
    show(passwordLabel, !passwordsOff);
    password.required = !passwordsOff;
  };
  let timer = null;
  emailInput.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(lookUp, 300); });
  emailInput.addEventListener('change', lookUp);
  button.addEventListener('click', async () => {
    if (!option) return;
    button.disabled = true;
    try {
      const start = await api.post('/auth/sso/start', { org_id: option.org_id });
      sessionStorage.setItem(KEY, start.browser_key);
      location.assign(start.authorize_url);
    } catch (e) {
      onError(errorText(e));
      button.disabled = false;
    }
  });
  return button;
}

/** Whether this page load is the provider sending the browser back (`?code=…&state=…`, or `?error=…`). */
export function returningFromProvider() {
  const q = new URLSearchParams(location.search);
  return q.has('state') && (q.has('code') || q.has('error'));
}

/** Finishes a sign-in the provider sent the browser back from: the session's tokens (throws with why not). */
export async function completeSso(api) {
  const q = new URLSearchParams(location.search);
  const browserKey = sessionStorage.getItem(KEY) || '';
  sessionStorage.removeItem(KEY);
  history.replaceState(null, '', '/'); // the code leaves the address bar
  if (q.has('error')) throw new Error(`The identity provider did not sign you in: ${q.get('error_description') || q.get('error')}`);
  return api.post('/auth/sso/callback', { code: q.get('code'), state: q.get('state'), browser_key: browserKey });
}
