// REST client for /api/v1. The session lives in sessionStorage (per tab, gone when the tab closes): a short-lived
// access token and a one-time refresh token. The client refreshes silently before the access token expires (and
// once on a 401), one refresh at a time: a refresh token presented twice ends the session (theft detection).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'http_' + status;
  }
}

const TOKEN_KEY = 'relayhub.token';
const USER_KEY = 'relayhub.user';
const REFRESH_KEY = 'relayhub.refresh';
const NO_RETRY = new Set(['/auth/login', '/auth/refresh', '/auth/logout']);

export class Api {
  constructor(base = '/api/v1') {
    this.base = base;
    this.token = sessionStorage.getItem(TOKEN_KEY);
    this.refreshToken = sessionStorage.getItem(REFRESH_KEY);
    this.onUnauthorized = () => {};
    /** Called with each new access token (the socket re-authenticates with it). */
    this.onRefreshed = () => {};
    this.refreshing = null;
    this.refreshTimer = null;
  }

  get storedUser() {
    try {
      return JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
    } catch {
      return null;
    }
  }

  /** Stores a login or refresh reply (`{token, refresh_token, expires_in, user}`), or clears the session (null). */
  setSession(tokens) {
    clearTimeout(this.refreshTimer);
    this.token = tokens?.token || null;
    this.refreshToken = tokens?.refresh_token || null;
    if (this.token) {
      sessionStorage.setItem(TOKEN_KEY, this.token);
      sessionStorage.setItem(REFRESH_KEY, this.refreshToken || '');
      if (tokens.user) this.setUser(tokens.user);
      // Renew at 80 % of the lifetime, so requests and the socket never see it expire while the tab is awake.
      const ms = Math.max(1, (tokens.expires_in || 0) * 800);
      this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), ms);
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(REFRESH_KEY);
      sessionStorage.removeItem(USER_KEY);
    }
  }

  setUser(user) {
    sessionStorage.setItem(USER_KEY, JSON.stringify(user || null));
  }

  /** Trades the refresh token for new tokens; one at a time. Resolves true when renewed, false when the session ended. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        if (!this.refreshToken) return false;
        try {
          const r = await this.request('POST', '/auth/refresh', { refresh_token: this.refreshToken });
          this.setSession(r);
          this.onRefreshed(r.token);
          return true;
        } catch (e) {
          if (e instanceof ApiError && e.status === 401) {
            this.setSession(null);
            this.onUnauthorized();
            return false;
          }
          throw e;
        }
      })().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /** Ends the session on the server (its tokens stop working everywhere), then forgets it here. */
  async logout() {
    try {
      if (this.token) await this.request('POST', '/auth/logout', {});
    } catch {
      /* signed out here anyway; the access token expires within minutes */
    }
    this.setSession(null);
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
      let code, message;
      try {
        const j = await res.json();
        code = j?.error?.code;
        message = j?.error?.message;
      } catch {
        /* not JSON */
      }
      throw new ApiError(res.status, code, message || res.statusText);
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
