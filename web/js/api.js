// REST client for /api/v1. The session (a short-lived access token and a one-time refresh token) is shared by all
// tabs through session.js. The client refreshes silently before the access token expires (and once on a 401), one
// refresh at a time across tabs: a refresh token presented twice ends the session (theft detection).

import { readSession, readLatest, writeSession, withRefreshLock, watchSession } from './session.js';

export class ApiError extends Error {
  constructor(status, code, message, retryAfterMs = null) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'http_' + status;
    /** With `rate_limited` (429): how long until trying again may work. */
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * What to tell a person who hit a limit (a 429 over REST, or a `rate_limited` frame on the socket): why, from the
 * server's message, and when they can try again, as a wait and a time of day.
 */
export function rateLimitText(message, retryAfterMs, now = Date.now()) {
  const why = String(message || 'Too many requests').replace(/;?\s*try again in [^;]*$/i, '').trim();
  const secs = Math.max(1, Math.ceil((Number(retryAfterMs) || 1000) / 1000));
  const wait = secs < 90 ? `${secs} s` : secs < 5400 ? `${Math.round(secs / 60)} min` : `${Math.round(secs / 3600)} h`;
  const at = new Date(now + secs * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return `${why.charAt(0).toUpperCase()}${why.slice(1)}. You can try again in ${wait} (at ${at}).`;
}

const NO_RETRY = new Set(['/auth/login', '/auth/refresh', '/auth/logout']);

export class Api {
  constructor(base = '/api/v1') {
    this.base = base;
    this.token = null;
    this.refreshToken = null;
    this.onUnauthorized = () => {};
    /** Called with each new access token (the socket re-authenticates with it). */
    this.onRefreshed = () => {};
    /** Another tab signed out (null) or in as someone else (the stored session). */
    this.onSessionChanged = () => {};
    this.refreshing = null;
    this.refreshTimer = null;
    this.adopt(readSession());
    watchSession((stored) => this.sessionChangedElsewhere(stored));
  }

  get storedUser() {
    return readSession()?.user || null;
  }

  /**
   * Stores a login or refresh reply (`{token, refresh_token, expires_in, user}`), or clears the session (null), for
   * every tab; resolves once all tabs can read it.
   */
  setSession(tokens) {
    const session = tokens?.token
      ? { token: tokens.token, refresh_token: tokens.refresh_token || null, expires_at: Date.now() + (tokens.expires_in || 0) * 1000, user: tokens.user || this.storedUser }
      : null;
    this.adopt(session);
    return writeSession(session);
  }

  /** Uses `session` (as stored) in this tab, renewing it at 80 % of its lifetime so it never expires while awake. */
  adopt(session) {
    clearTimeout(this.refreshTimer);
    this.token = session?.token || null;
    this.refreshToken = session?.refresh_token || null;
    this.userId = session?.user?.id || session?.user?.user_id || null;
    if (!this.token) return;
    const ms = Math.max(1000, ((session.expires_at || 0) - Date.now()) * 0.8);
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), ms);
  }

  /** Keeps the user's profile with the session (only over the tokens this tab holds: never over newer ones). */
  setUser(user) {
    const s = readSession();
    if (s && s.token === this.token) writeSession({ ...s, user: user || null });
  }

  /** Another tab refreshed (take its tokens), signed out, or signed in (maybe as someone else). */
  sessionChangedElsewhere(stored) {
    const was = this.userId;
    const had = !!this.token;
    this.adopt(stored);
    if (had && stored && this.userId === was) this.onRefreshed(stored.token);
    else if (had || stored) this.onSessionChanged(stored);
  }

  /** Trades the refresh token for new tokens; one at a time, across tabs. Resolves true when renewed, false when the session ended. */
  refresh() {
    if (!this.refreshing) {
      const held = this.refreshToken;
      this.refreshing = withRefreshLock(async () => {
        // Another tab may have rotated the token while we waited for the lock: then ours is spent; take theirs.
        const stored = await readLatest();
        if (stored?.refresh_token && stored.refresh_token !== held) {
          this.adopt(stored);
          this.onRefreshed(stored.token);
          return true;
        }
        if (!held) return false;
        try {
          const r = await this.request('POST', '/auth/refresh', { refresh_token: held });
          await this.setSession(r); // before the lock goes: the next tab in line must see the new token
          this.onRefreshed(r.token);
          return true;
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) {
            await this.setSession(null);
            this.onUnauthorized();
            return false;
          }
          throw e;
        }
      }).finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /**
   * Forgets the session in every tab at once (they see the store emptied), then ends it on the server: its tokens
   * stop working everywhere. In this order, other tabs say they were signed out here, not that it "ended".
   */
  async logout() {
    const token = this.token;
    this.setSession(null);
    if (!token) return;
    try {
      await fetch(`${this.base}/auth/logout`, { method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: '{}' });
    } catch {
      /* signed out here anyway; the access token expires within minutes */
    }
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  /** Sends a request; returns parsed JSON (or null for an empty body); throws ApiError on a non-2xx status. */
  async request(method, path, body, { raw = false, form = null, retried = false } = {}) {
    const init = { method, headers: this.headers() };
    if (form) {
      init.body = form; // the browser sets the multipart boundary
    } else if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(this.base + path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection.');
    }
    if (res.status === 401 && this.token && !NO_RETRY.has(path)) {
      // An expired access token: renew it once and retry; a session that ended signs out (in refresh()).
      if (!retried && this.refreshToken && (await this.refresh())) {
        return this.request(method, path, body, { raw, form, retried: true });
      }
      if (this.token) this.onUnauthorized();
    }
    if (!res.ok) {
      let code, message, retryAfterMs = null;
      try {
        const j = await res.json();
        code = j?.error?.code;
        message = j?.error?.message;
        retryAfterMs = j?.error?.retry_after_ms ?? null;
      } catch {
        /* not JSON */
      }
      const header = Number(res.headers.get('Retry-After'));
      if (retryAfterMs == null && header > 0) retryAfterMs = header * 1000;
      throw new ApiError(res.status, code, message || res.statusText, retryAfterMs);
    }
    if (raw) return res;
    const text = await res.text();
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  get(path) { return this.request('GET', path); }
  post(path, body) { return this.request('POST', path, body ?? {}); }
  put(path, body) { return this.request('PUT', path, body ?? {}); }
  patch(path, body) { return this.request('PATCH', path, body); }
  del(path) { return this.request('DELETE', path); }
}

/** What to tell a person about a failed request. */
export function errorText(e) {
  if (e instanceof ApiError && e.code === 'rate_limited') return rateLimitText(e.message, e.retryAfterMs);
  if (e instanceof ApiError) return e.message || e.code;
  return String(e?.message || e);
}

/** Lists in responses may be bare arrays or wrapped (`{conversations:[…]}`); accept both. */
export function listOf(value, key) {
  if (Array.isArray(value)) return value;
  if (value && Array.isArray(value[key])) return value[key];
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) if (Array.isArray(v)) return v;
  }
  return [];
}
