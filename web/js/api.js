// REST client for /api/v1. The token lives in sessionStorage (per tab, gone when the tab closes).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'http_' + status;
  }
}

const TOKEN_KEY = 'relayhub.token';
const USER_KEY = 'relayhub.user';

export class Api {
  constructor(base = '/api/v1') {
    this.base = base;
    this.token = sessionStorage.getItem(TOKEN_KEY);
    this.onUnauthorized = () => {};
  }

  get storedUser() {
    try {
      return JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
    } catch {
      return null;
    }
  }

  setSession(token, user) {
    this.token = token;
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      sessionStorage.setItem(USER_KEY, JSON.stringify(user || null));
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(USER_KEY);
    }
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    return h;
  }

  /** Sends a request; returns parsed JSON (or null for an empty body); throws ApiError on a non-2xx status. */
  async request(method, path, body, { raw = false, form = null } = {}) {
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
    if (res.status === 401 && this.token && path !== '/auth/login') {
      this.onUnauthorized();
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

/** Lists in responses may be bare arrays or wrapped (`{conversations:[…]}`); accept both. */
export function listOf(value, key) {
  if (Array.isArray(value)) return value;
  if (value && Array.isArray(value[key])) return value[key];
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) if (Array.isArray(v)) return v;
  }
  return [];
}
