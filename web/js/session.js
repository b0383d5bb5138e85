// The signed-in session, shared by every tab of this origin: one localStorage entry holding the short-lived access
// token, the one-time refresh token, when the access token expires, and the user. A new tab (a conversation link
// opened beside) starts signed in; signing out in one tab ends the others at once (the `storage` event).
//
// Refresh tokens rotate and the api revokes the whole session when one is presented twice (theft detection), so
// tabs must never race a refresh: it runs under a Web Lock (`navigator.locks`) that all tabs share, and whoever
// gets the lock re-reads the session — if another tab rotated the token meanwhile, it takes that result instead of
// presenting its spent copy. That re-read goes to IndexedDB, written before the lock is released: localStorage
// reaches other tabs a moment later (each tab reads a cached copy), too late for this. Without Web Locks (a page not
// served from https or localhost) the re-read still narrows the window to one request's time.

const KEY = 'relayhub.session';
const LOCK = 'relayhub.refresh';

/** The stored session `{token, refresh_token, expires_at, user}`, or null. */
export function readSession() {
  try {
    const s = JSON.parse(localStorage.getItem(KEY) || 'null');
    return s && typeof s.token === 'string' ? s : null;
  } catch {
    return null;
  }
}

/** Stores `session` (null: signed out) for every tab; resolves once IndexedDB has it too. */
export function writeSession(session) {
  if (session) localStorage.setItem(KEY, JSON.stringify(session));
  else localStorage.removeItem(KEY);
  return idb('readwrite', (store) => (session ? store.put(session, KEY) : store.delete(KEY))).catch(() => {});
}

/** The session as the last tab to refresh left it (IndexedDB; localStorage where that fails). */
export async function readLatest() {
  try {
    const s = await idb('readonly', (store) => store.get(KEY));
    return s && typeof s.token === 'string' ? s : null;
  } catch {
    return readSession();
  }
}

let dbPromise = null;
/** Runs one request on the `session` store in a transaction; resolves with its result once committed. */
function idb(mode, op) {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const open = indexedDB.open('relayhub', 1);
      open.onupgradeneeded = () => open.result.createObjectStore('session');
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    dbPromise.catch(() => { dbPromise = null; });
  }
  return dbPromise.then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction('session', mode);
    const req = op(tx.objectStore('session'));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  }));
}

/** Runs `fn` holding the tabs' shared refresh lock (or without, where the browser has no Web Locks). */
export function withRefreshLock(fn) {
  if (navigator.locks?.request) return navigator.locks.request(LOCK, fn);
  return fn();
}

/** Calls `onChange(session | null)` when another tab changes the stored session. */
export function watchSession(onChange) {
  window.addEventListener('storage', (e) => {
    if (e.key === KEY || e.key === null) onChange(readSession());
  });
}
