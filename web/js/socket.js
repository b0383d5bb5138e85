// The live connection to the edge. One socket per tab; it reconnects by itself with capped exponential backoff
// and jitter, and tells the app when it is (re)opened so the app can resubscribe from the last `seq` it saw.

// A dead edge (paused, or its network gone) never closes the socket: only a missing answer tells. Pinging every
// few seconds with a short timeout shows the offline banner within PING_EVERY_MS + PONG_TIMEOUT_MS (≤ 6 s); a
// ping is a few bytes, so this costs nothing worth saving.
const PING_EVERY_MS = 3000;
const PONG_TIMEOUT_MS = 3000;

export class RealtimeSocket {
  /**
   * @param {object} o
   * @param {() => Promise<string>} o.url  the full ws URL (with token) for the next attempt
   * @param {(frame: object) => void} o.onFrame
   * @param {() => void} o.onOpen
   * @param {(status: 'connecting'|'online'|'offline') => void} o.onStatus
   * @param {(failures: number) => void} o.onFailure  called after each attempt that never opened
   */
  constructor({ url, onFrame, onOpen, onStatus, onFailure }) {
    this.urlFn = url;
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onStatus = onStatus;
    this.onFailure = onFailure || (() => {});
    this.ws = null;
    this.stopped = true;
    this.attempts = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.status = 'connecting';
    this.onBrowserOnline = () => this.reconnectNow();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onBrowserOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onBrowserOnline);
    clearTimeout(this.retryTimer);
    this.clearTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if the socket is open; returns whether it was sent. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Drops the connection as a network failure would (used by tests and by the liveness check). */
  /**
   * Gives up on the current socket at once. Used when it went silent (no pong) or the network is gone: then the
   * close handshake cannot complete and the browser would report the close only much later, so waiting for
   * `onclose` would leave the page showing "online" on a dead socket. The old socket is detached first, so
   * nothing it still delivers or reports is acted on.
   */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.clearTimers();
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(4000, 'dropped');
    } catch {
      /* already closing */
    }
    this.scheduleRetry(true);
  }

  reconnectNow() {
    if (this.stopped || this.isOpen) return;
    clearTimeout(this.retryTimer);
    this.attempts = 0;
    this.connect();
  }

  setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.onStatus(s);
  }

  clearTimers() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  async connect() {
    if (this.stopped) return;
    if (this.ws) {
      this.ws.onclose = null;
      try { this.ws.close(); } catch { /* already closed */ }
      this.ws = null;
    }
    let url;
    try {
      url = await this.urlFn();
    } catch {
      this.scheduleRetry(false);
      return;
    }
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleRetry(false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempts = 0;
      this.setStatus('online');
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
      this.onOpen();
    };
    ws.onmessage = (e) => {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame && typeof frame === 'object') this.onFrame(frame);
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      this.scheduleRetry(opened);
    };
  }

  ping() {
    // A ping still unanswered keeps its deadline: a new ping must not push it back (or a silent socket that gets
    // a ping every PING_EVERY_MS would never time out).
    if (this.pongTimer) return;
    if (!this.send({ type: 'ping' })) return;
    // Any frame counts as proof of life; a silent socket is half-open and gets replaced.
    this.pongTimer = setTimeout(() => this.drop(), PONG_TIMEOUT_MS);
  }

  scheduleRetry(hadOpened) {
    if (this.stopped) return;
    this.setStatus('offline');
    if (!hadOpened) this.onFailure(this.attempts + 1);
    const base = Math.min(10000, 400 * 2 ** this.attempts);
    const delay = hadOpened && this.attempts === 0 ? 150 : base * (0.5 + Math.random() * 0.5);
    this.attempts++;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
