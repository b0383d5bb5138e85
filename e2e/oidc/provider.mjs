// A real OpenID Connect provider (npm `oidc-provider`) for RelayHub's single sign-on tests, on a free port of
// 127.0.0.1. The tests and web/tests/run.sh start it; scripts/lib.sh `ensure_oidc_provider` installs the package
// (pinned by package-lock.json) into target/tools/oidc.
//
// Environment: RH_OIDC_MODULES (that node_modules directory), RH_OIDC_CLIENTS (JSON: [{client_id, client_secret,
// redirect_uris}]). Prints `listening oidc <issuer>` on stdout once it answers.
//
// People: the provider's own (development) login page accepts any login name and password; the login is the
// person's `sub` (oidc-provider makes it so) and their email, verified unless it starts with "unverified".
//
// Test controls:
// - `POST /__test/mode/<mode>`: how the token endpoint's ID tokens come out from now on, re-signed with the
//   provider's own key (so only RelayHub's checks can refuse them): `normal`, `wrong-audience`, `expired`,
//   `replay` (the last ID token issued, again), `foreign-key` (signed by a key not in the JWKS).
// - `POST /__test/email {login, email}`: from now on the person with that login has that email, as when the
//   provider's admin changes someone's email or gives an address to someone else (their `sub` stays the login).
import http from 'node:http';
import { generateKeyPairSync, sign } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.env.RH_OIDC_MODULES;
if (!modules) throw new Error('RH_OIDC_MODULES must name the node_modules directory holding oidc-provider');
const { default: Provider } = await import(pathToFileURL(join(modules, 'oidc-provider/lib/index.js')).href);

const keyPair = () => {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey;
};
const signingKey = keyPair();
const foreignKey = keyPair();
const jwk = { ...signingKey.export({ format: 'jwk' }), kid: 'relayhub-test', alg: 'RS256', use: 'sig' };

const clients = JSON.parse(process.env.RH_OIDC_CLIENTS || '[]').map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  redirect_uris: c.redirect_uris,
  grant_types: ['authorization_code'],
  response_types: ['code'],
}));

let mode = 'normal';
const emails = new Map(); // login → email, set by `POST /__test/email`
let lastIdToken = null;

const b64 = (buf) => Buffer.from(buf).toString('base64url');
function resign(idToken, change, key) {
  const [header, payload] = idToken.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  change(claims);
  const input = `${header}.${b64(JSON.stringify(claims))}`;
  return `${input}.${b64(sign('sha256', Buffer.from(input), key))}`;
}
function tamper(idToken) {
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'wrong-audience': return resign(idToken, (c) => { c.aud = 'some-other-client'; }, signingKey);
    case 'expired': return resign(idToken, (c) => { c.iat = now - 7200; c.exp = now - 3600; }, signingKey);
    case 'foreign-key': return resign(idToken, () => {}, foreignKey);
    case 'replay': return lastIdToken ?? idToken;
    default: return idToken;
  }
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: ['relayhub-test-provider-cookies'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The ID token carries the email (as Google's and Entra's do): RelayHub reads it there, not from userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const local = id.split('@')[0];
    const name = local.replace(/[-_.]+/g, ' ').replace(/\b\w/g, (ch) => ch.toUpperCase());
    const email = emails.get(id) ?? id;
    return {
      accountId: id,
      claims: async () => ({ sub: id, email, email_verified: !email.startsWith('unverified'), name }),
    };
  },
  // First-party clients: no consent page (the login page is the one people see).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['email', 'email_verified', 'name']);
    await grant.save();
    return grant;
  },
});

provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
    const issued = ctx.body.id_token;
    ctx.body = { ...ctx.body, id_token: tamper(issued) };
    if (mode !== 'replay') lastIdToken = issued;
  }
});

const app = provider.callback();
async function setEmail(req, res) {
  let body = '';
  for await (const chunk of req) body += chunk;
  try {
    const { login, email } = JSON.parse(body);
    if (typeof login !== 'string' || typeof email !== 'string') throw new Error('login and email must be strings');
    emails.set(login, email);
    res.writeHead(204).end();
  } catch (e) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(String(e.message));
  }
}
server.on('request', (req, res) => {
  const m = req.method === 'POST' && /^\/__test\/mode\/([a-z-]+)$/.exec(req.url);
  if (m) {
    mode = m[1];
    res.writeHead(204).end();
    return;
  }
  if (req.method === 'POST' && req.url === '/__test/email') {
    setEmail(req, res).catch(() => res.destroy());
    return;
  }
  app(req, res);
});
process.on('SIGTERM', () => process.exit(0));
console.log(`listening oidc ${issuer}`);
