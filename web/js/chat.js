// The chat view of one open conversation: history over HTTP, then live events from the socket, applied in `seq`
// order. Every event frame carries the stream position `seq`; a frame at or below the last one applied is a
// replay of something already shown and is ignored, so a resubscribe after a reconnect (with `after_seq` = the
// last `seq` seen) leaves nothing missing and nothing doubled.

import { h, clear, setChildren, show, icon, canRespond, PERMISSION_LABEL, formatSize, formatTime } from './dom.js';
import { renderMarkdown } from './markdown.js';
import { ApiError, listOf } from './api.js';

const VIEW_ONLY_TEXT = 'View only — you can watch but not send';
/** A user message from history with no answer yet is treated as still waiting for one for this long. */
const PENDING_WINDOW_MS = 120000;
/**
 * The api's default `--ai-wait-secs`: a question from history unanswered for longer is shown as "AI unavailable"
 * (live, the api's `response.delayed` event says it; that event is not in the history a reload starts from).
 */
const AI_WAIT_MS = 15000;
const UNAVAILABLE_TEXT = 'The AI is unavailable — still trying…';

let localIds = 0;

export class ChatView {
  constructor(ctx, id) {
    this.ctx = ctx;
    this.id = id;
    this.conv = null;
    this.permission = null;
    this.lastSeq = 0;
    this.loaded = false;
    this.destroyed = false;
    this.entries = new Map(); // message / response id → entry
    this.pendingSends = [];
    this.attachments = new Map();
    this.participants = new Map(); // user_id → {name, email, permission}
    this.viewers = [];
    this.renderQueued = new Set();
    this.renderScheduled = false;
    this.el = this.build();
  }

  // ---------------------------------------------------------------- DOM

  build() {
    this.titleEl = h('h1', { class: 'chat-title', testid: 'chat-title', text: 'Loading…' });
    this.permBadge = h('span', { class: 'badge', testid: 'permission-badge', hidden: true });
    // Renaming (owner): the title becomes a field; Enter saves, Escape cancels.
    this.renameInput = h('input', {
      type: 'text', maxlength: '200', class: 'rename-input', testid: 'rename-input', 'aria-label': 'Title',
      onkeydown: (e) => {
        if (e.key === 'Escape') this.endRename(true);
      },
    });
    this.renameForm = h('form', {
      class: 'rename-form',
      testid: 'rename-form',
      hidden: true,
      onsubmit: (e) => {
        e.preventDefault();
        this.rename(this.renameInput.value);
      },
    }, this.renameInput,
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'rename-save', text: 'Save' }),
    h('button', { type: 'button', class: 'btn btn-ghost', text: 'Cancel', onclick: () => this.endRename(true) }));
    this.renameBtn = h('button', {
      type: 'button',
      class: 'btn btn-ghost',
      testid: 'rename-button',
      hidden: true,
      title: 'Rename this conversation',
      onclick: () => this.startRename(),
    }, icon('pencil'), h('span', { class: 'btn-label', text: 'Rename' }));
    this.ownerEl = h('span', { class: 'chat-owner', testid: 'chat-owner' });
    this.modelSelect = h('select', {
      class: 'model-select',
      testid: 'model-select',
      'aria-label': 'Model',
      hidden: true,
      onchange: () => this.changeModel(this.modelSelect.value),
    });
    this.modelLabel = h('span', { class: 'model-label', testid: 'model-label' });
    this.settingsNote = h('span', { class: 'settings-note', testid: 'settings-note', hidden: true });
    // Temperature and system prompt: shown to everyone when set, editable by Can Respond and the owner.
    this.settingsSummary = h('span', { class: 'settings-summary', testid: 'settings-summary', hidden: true });
    this.settingsBtn = h('button', {
      type: 'button',
      class: 'btn btn-ghost',
      testid: 'settings-button',
      hidden: true,
      title: 'Temperature and system prompt',
      'aria-expanded': 'false',
      onclick: () => this.toggleSettings(),
    }, icon('sliders'), h('span', { class: 'btn-label', text: 'Settings' }));
    this.temperatureInput = h('input', {
      type: 'number', min: '0', max: '2', step: '0.1', placeholder: 'model default',
      class: 'settings-temperature', testid: 'settings-temperature', 'aria-label': 'Temperature',
    });
    this.systemPromptInput = h('textarea', {
      rows: 3, maxlength: '16000', placeholder: 'None',
      class: 'settings-system-prompt', testid: 'settings-system-prompt', 'aria-label': 'System prompt',
    });
    this.settingsPanel = h('form', {
      class: 'settings-panel',
      testid: 'settings-panel',
      hidden: true,
      'aria-label': 'Temperature and system prompt',
      onkeydown: (e) => {
        if (e.key === 'Escape') {
          this.toggleSettings(false);
          this.settingsBtn.focus();
        }
      },
      onsubmit: (e) => {
        e.preventDefault();
        this.saveSettings();
      },
    },
    h('label', { class: 'settings-field' }, h('span', { text: 'Temperature (0–2)' }), this.temperatureInput),
    h('label', { class: 'settings-field settings-field-wide' }, h('span', { text: 'System prompt' }), this.systemPromptInput),
    h('div', { class: 'settings-buttons' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'settings-save', text: 'Save' }),
      h('button', { type: 'button', class: 'btn btn-ghost', testid: 'settings-cancel', text: 'Cancel', onclick: () => this.toggleSettings(false) })));
    this.presenceEl = h('div', { class: 'presence', testid: 'presence', 'aria-live': 'polite' });
    this.shareBtn = h('button', {
      type: 'button',
      class: 'btn btn-primary',
      testid: 'share-button',
      hidden: true,
      title: 'Share this conversation',
      onclick: () => this.ctx.openShare(this),
    }, icon('share'), h('span', { class: 'btn-label', text: 'Share' }));
    this.leaveBtn = h('button', {
      type: 'button',
      class: 'btn btn-ghost',
      testid: 'leave-button',
      hidden: true,
      title: 'Leave this conversation (it leaves your sidebar)',
      onclick: () => this.ctx.leaveConversation(this),
    }, icon('close'), h('span', { class: 'btn-label', text: 'Leave' }));
    this.deleteBtn = h('button', {
      type: 'button',
      class: 'btn btn-ghost',
      testid: 'delete-button',
      hidden: true,
      title: 'Delete this conversation for everyone',
      onclick: () => this.ctx.deleteConversation(this),
    }, icon('trash'), h('span', { class: 'btn-label', text: 'Delete' }));

    this.attachmentsEl = h('div', { class: 'attachments', testid: 'attachments', hidden: true });
    // Focusable, so the history scrolls with the keyboard (arrows, Page Up/Down) like any page.
    this.messagesEl = h('div', { class: 'messages', testid: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: '0' });

    this.viewOnlyEl = h('div', { class: 'view-only-notice', testid: 'view-only-notice', role: 'status', hidden: true },
      icon('eye'), h('span', { text: VIEW_ONLY_TEXT }));
    this.input = h('textarea', {
      class: 'composer-input',
      testid: 'composer-input',
      rows: 2,
      placeholder: 'Message the AI…',
      title: 'Enter sends, Shift+Enter starts a new line',
      'aria-label': 'Message',
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          // Sending while another answer streams is fine: the server answers each question in turn.
          this.send();
        }
      },
    });
    this.fileInput = h('input', {
      type: 'file',
      multiple: true,
      hidden: true,
      testid: 'attach-input',
      onchange: () => this.uploadFiles(),
    });
    this.attachBtn = h('button', {
      type: 'button',
      class: 'btn btn-ghost attach-button',
      testid: 'attach-button',
      title: 'Attach a file',
      'aria-label': 'Attach a file',
      onclick: () => this.fileInput.click(),
    }, icon('attach'));
    this.sendBtn = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'send-button', text: 'Send' });
    this.composer = h('form', {
      class: 'composer',
      testid: 'composer',
      hidden: true,
      onsubmit: (e) => {
        e.preventDefault();
        this.send();
      },
    }, this.attachBtn, this.fileInput, this.input, this.sendBtn);
    this.uploadStatus = h('div', { class: 'upload-status', testid: 'upload-status', hidden: true });

    return h('section', { class: 'chat', testid: 'chat-view', dataset: { conversationId: this.id } },
      h('header', { class: 'chat-header' },
        h('div', { class: 'chat-heading' },
          h('div', { class: 'chat-title-row' }, this.titleEl, this.renameForm, this.permBadge),
          h('div', { class: 'chat-sub' },
            this.ownerEl,
            h('span', { class: 'model' }, h('span', { class: 'muted', text: 'Model ' }), this.modelSelect, this.modelLabel),
            this.settingsSummary,
            this.settingsNote),
          this.presenceEl),
        h('div', { class: 'chat-actions' }, this.settingsBtn, this.renameBtn, this.shareBtn, this.leaveBtn, this.deleteBtn)),
      this.settingsPanel,
      this.attachmentsEl,
      this.messagesEl,
      h('footer', { class: 'chat-footer' }, this.viewOnlyEl, this.composer, this.uploadStatus));
  }

  // ---------------------------------------------------------------- loading

  async load() {
    const detail = await this.ctx.api.get(`/conversations/${this.id}`);
    if (this.destroyed) return;
    this.applyDetail(detail);
    this.loaded = true;
    this.subscribe();
  }

  /** Replaces everything shown with a fresh HTTP snapshot (first load, or after `cannot_recover`). */
  applyDetail(detail) {
    this.conv = detail;
    this.lastSeq = Number(detail.seq) || 0;
    this.participants.clear();
    if (detail.owner_id) {
      this.participants.set(detail.owner_id, { name: detail.owner_name || this.ctx.ownerNameOf(this.id), permission: 'owner' });
    }
    for (const p of listOf(detail.participants, 'participants')) {
      this.participants.set(p.user_id, { name: p.name, email: p.email, permission: p.permission });
    }
    this.attachments.clear();
    clear(this.attachmentsEl);
    for (const a of listOf(detail.attachments, 'attachments')) this.addAttachment(a);

    this.entries.clear();
    clear(this.messagesEl);
    for (const el of this.pendingSends.map((p) => p.el)) el.remove();
    this.pendingSends = [];
    const messages = listOf(detail.messages, 'messages').slice().sort((a, b) => (a.seq || 0) - (b.seq || 0));
    const answered = new Set(messages.filter((m) => m.role === 'assistant').map((m) => m.reply_to));
    for (const m of messages) this.addEntry(entryOf(m));
    this.showEarlier(detail.has_more ? detail.next_before : null);
    // A recent question with no answer in history: its response has not started yet (queued). Show it as pending
    // so Stop is offered after a reload too; the response's events replace the placeholder.
    const last = messages[messages.length - 1];
    if (last && last.role === 'user' && !answered.has(last.id)) {
      const age = Date.now() - new Date(last.created_at).getTime();
      if (Number.isFinite(age) && age < PENDING_WINDOW_MS) {
        this.addEntry({
          id: `pending:${last.id}`, role: 'assistant', text: '', status: 'pending', replyTo: last.id, attempt: 0, nextIndex: 0, delayed: age > AI_WAIT_MS,
        });
      }
    }
    this.setPermission(detail.permission, { quiet: true });
    this.renderHeader();
    this.scrollToBottom(true);
  }

  /** History comes in pages, newest first: a "Load earlier messages" control above them fetches the page before. */
  showEarlier(before) {
    if (before === null || before === undefined) return;
    const button = h('button', { type: 'button', class: 'load-earlier', testid: 'load-earlier', text: 'Load earlier messages' });
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const page = await this.ctx.api.get(`/conversations/${this.id}?before=${encodeURIComponent(before)}`);
        if (this.destroyed || !button.isConnected) return;
        const first = button.nextSibling;
        button.remove();
        for (const m of listOf(page.messages, 'messages')) this.messagesEl.insertBefore(this.addEntry(entryOf(m)).el, first);
        this.showEarlier(page.has_more ? page.next_before : null);
      } catch (err) {
        button.disabled = false;
        this.ctx.toast(errorText(err), 'error');
      }
    });
    this.messagesEl.prepend(button);
  }

  /** Where the keyboard goes when the conversation opens: the composer, or the history for View only. */
  focusDefault() {
    (canRespond(this.permission) ? this.input : this.messagesEl).focus();
  }

  subscribe() {
    if (!this.loaded || this.destroyed) return;
    // compact: what we missed of a streaming response comes as one merged delta per run (`from_index..index`)
    // instead of hundreds of frames; the delta handling below needs nothing else for it.
    this.ctx.socket.send({ type: 'subscribe', conversation_id: this.id, after_seq: this.lastSeq, compact: true });
  }

  destroy() {
    this.destroyed = true;
    this.ctx.socket.send({ type: 'unsubscribe', conversation_id: this.id });
    this.el.remove();
  }

  // ---------------------------------------------------------------- frames

  handleFrame(f) {
    switch (f.type) {
      case 'subscribed':
        if (f.permission) this.setPermission(f.permission);
        break;
      case 'event': {
        const seq = Number(f.seq);
        if (!Number.isFinite(seq) || seq <= this.lastSeq) return; // replayed: already applied
        this.lastSeq = seq;
        if (f.event) this.applyEvent(f.event, seq);
        break;
      }
      case 'presence':
        this.setViewers(f.viewers || []);
        break;
      case 'permission_changed':
        this.setPermission(f.permission);
        break;
      case 'access_revoked':
        this.ctx.closeView(this, f.reason === 'deleted' ? 'deleted' : 'revoked');
        break;
      default:
        break;
    }
  }

  handleError(f) {
    switch (f.code) {
      case 'cannot_recover':
        // The broker no longer has what we missed: reload history over HTTP and subscribe again from there.
        this.ctx.toast('Reloading the conversation…');
        this.load().catch((e) => this.ctx.toast(errorText(e), 'error'));
        break;
      case 'lagged':
        this.subscribe();
        break;
      case 'unavailable':
        // The edge could not subscribe or catch us up (a broker or api hiccup): again from our last seq, soon.
        setTimeout(() => this.subscribe(), 1000);
        break;
      case 'not_found':
        this.ctx.closeView(this, 'not_found');
        break;
      case 'forbidden':
        this.ctx.toast(canRespond(this.permission) ? f.message || 'Not allowed' : VIEW_ONLY_TEXT, 'error');
        break;
      default:
        this.ctx.toast(f.message || f.code || 'Something went wrong', 'error');
    }
  }

  applyEvent(ev, seq) {
    const at = ev.ts_us ? Math.floor(ev.ts_us / 1000) : Date.now();
    switch (ev.type) {
      case 'message.created': {
        this.resolvePendingSend(ev);
        if (!this.entries.has(ev.message_id)) {
          this.addEntry({
            id: ev.message_id,
            role: 'user',
            text: ev.text || '',
            status: 'complete',
            authorId: ev.author_id,
            authorName: ev.author_name,
            at,
          });
        }
        if (ev.response_id && !this.entries.has(ev.response_id)) {
          this.addEntry({ id: ev.response_id, role: 'assistant', text: '', status: 'pending', replyTo: ev.message_id, attempt: 0, nextIndex: 0, at });
        }
        break;
      }
      case 'response.started': {
        const e = this.ensureResponse(ev.response_id, ev.message_id, at);
        const attempt = Number(ev.attempt) || 1;
        if (attempt < e.attempt) break; // a late event of an attempt already replaced
        if (attempt > e.attempt) {
          if (attempt > 1) {
            // A retry after a worker crash: the earlier attempt's partial text is void.
            e.text = '';
            e.nextIndex = 0;
          }
          e.attempt = attempt;
        }
        e.status = 'streaming';
        e.delayed = false;
        e.model = ev.model || e.model;
        this.queueRender(e);
        break;
      }
      case 'response.delta': {
        const e = this.ensureResponse(ev.response_id, null, at);
        const attempt = Number(ev.attempt) || 1;
        if (attempt < e.attempt) break;
        if (attempt > e.attempt) {
          e.attempt = attempt;
          e.text = '';
          e.nextIndex = 0;
        }
        const index = Number(ev.index) || 0;
        if (index < e.nextIndex) break;
        e.text += ev.text || '';
        e.nextIndex = index + 1;
        if (e.status === 'pending') e.status = 'streaming';
        this.queueRender(e);
        break;
      }
      case 'response.delayed': {
        const e = this.ensureResponse(ev.response_id, null, at, true);
        if (e.status === 'pending') {
          e.delayed = true;
          this.queueRender(e);
        }
        break;
      }
      case 'response.completed':
      case 'response.failed':
      case 'response.stopped': {
        const e = this.ensureResponse(ev.response_id, null, at, true);
        e.text = ev.text ?? e.text;
        e.status = ev.type === 'response.completed' ? 'complete' : ev.type === 'response.failed' ? 'failed' : 'stopped';
        if (ev.model) e.model = ev.model;
        if (ev.error) e.error = ev.error;
        if (ev.stopped_by) e.stoppedBy = this.nameOf(ev.stopped_by);
        this.queueRender(e);
        break;
      }
      case 'conversation.renamed': {
        this.conv.title = ev.title;
        const who = ev.renamed_by === this.ctx.me.id ? 'you' : ev.renamed_by_name || 'the owner';
        this.addSystemLine(`Renamed to “${ev.title}” by ${who}`, at);
        this.renderHeader();
        this.ctx.onSummaryChange(this.id, { title: ev.title });
        break;
      }
      case 'settings.changed': {
        const s = ev.settings || {};
        const before = this.conv.model;
        Object.assign(this.conv, { model: s.model ?? this.conv.model, temperature: s.temperature, system_prompt: s.system_prompt });
        const who = ev.changed_by === this.ctx.me.id ? 'you' : ev.changed_by_name || 'someone';
        const changed = ev.changed || [];
        const text = changed.includes('model') || s.model !== before
          ? `Model changed to ${this.conv.model} by ${who}`
          : `Settings (${changed.map((f) => f.replace('_', ' ')).join(', ') || 'settings'}) changed by ${who}`;
        this.settingsNote.textContent = text;
        show(this.settingsNote, true);
        this.addSystemLine(text, at);
        this.renderHeader();
        this.ctx.onSummaryChange(this.id, { model: this.conv.model });
        break;
      }
      case 'attachment.added':
        this.addAttachment({
          id: ev.attachment_id,
          filename: ev.filename,
          content_type: ev.content_type,
          size: ev.size,
          uploaded_by: ev.uploaded_by,
        }, true);
        break;
      case 'participant.added':
      case 'participant.changed': {
        const p = this.participants.get(ev.user_id) || {};
        this.participants.set(ev.user_id, { ...p, name: ev.name ?? p.name, email: ev.email ?? p.email, permission: ev.permission });
        if (ev.user_id === this.ctx.me.id && ev.permission) this.setPermission(ev.permission);
        this.ctx.onParticipantsChange(this);
        break;
      }
      case 'participant.removed':
        this.participants.delete(ev.user_id);
        if (ev.user_id === this.ctx.me.id) {
          this.ctx.closeView(this, 'revoked');
          return;
        }
        this.ctx.onParticipantsChange(this);
        break;
      case 'conversation.deleted':
        this.ctx.closeView(this, 'deleted');
        return;
      default:
        break;
    }
    this.updateControls();
  }

  /** The entry of a response; reuses the placeholder of the question it answers, or creates one at the end. */
  ensureResponse(responseId, messageId, at, isEnd = false) {
    let e = this.entries.get(responseId);
    if (e) return e;
    let placeholder = null;
    for (const x of this.entries.values()) {
      if (x.role === 'assistant' && String(x.id).startsWith('pending:') && (!messageId || x.replyTo === messageId)) {
        placeholder = x;
        break;
      }
    }
    if (placeholder && (messageId || isEnd)) {
      this.entries.delete(placeholder.id);
      placeholder.id = responseId;
      placeholder.el.dataset.messageId = responseId;
      this.entries.set(responseId, placeholder);
      return placeholder;
    }
    return this.addEntry({ id: responseId, role: 'assistant', text: '', status: 'pending', replyTo: messageId, attempt: 0, nextIndex: 0, at });
  }

  // ---------------------------------------------------------------- messages

  addEntry(entry) {
    const body = h('div', { class: 'msg-body markdown', testid: 'message-text' });
    const author = h('span', { class: 'msg-author', testid: 'message-author' });
    const status = h('span', { class: 'msg-status', testid: 'message-status' });
    const meta = h('span', { class: 'msg-meta-extra' });
    // Stop sits on the answer it stops, never where Send is: stopping someone else's answer is a deliberate act.
    const stopBtn = entry.role === 'assistant'
      ? h('button', { type: 'button', class: 'btn btn-ghost btn-small msg-stop', testid: 'stop-answer', hidden: true, onclick: () => this.stop(entry) }, icon('stop'), h('span', { class: 'stop-label' }))
      : null;
    const el = h('article', {
      class: `msg msg-${entry.role}`,
      testid: 'message',
      dataset: { role: entry.role, messageId: entry.id },
    }, h('header', { class: 'msg-head' }, author, meta, status, stopBtn), body);
    Object.assign(entry, { el, body, author, status: entry.status, statusEl: status, meta, stopBtn });
    this.entries.set(entry.id, entry);
    const stick = this.nearBottom();
    this.messagesEl.appendChild(el);
    this.renderEntry(entry);
    if (stick) this.scrollToBottom();
    return entry;
  }

  renderEntry(e) {
    const el = e.el;
    el.dataset.status = e.status;
    if (e.role === 'user') {
      const mine = e.authorId && e.authorId === this.ctx.me.id;
      e.author.textContent = mine ? `${e.authorName || 'You'} (you)` : e.authorName || 'Someone';
      el.classList.toggle('msg-mine', !!mine);
    } else {
      e.author.textContent = 'AI';
      e.meta.textContent = e.model ? ` · ${e.model}` : '';
    }
    if (e.at) el.title = formatTime(e.at);
    el.dataset.delayed = String(!!(e.delayed && e.status === 'pending'));
    const statusText = {
      pending: e.delayed ? UNAVAILABLE_TEXT : 'waiting for the AI…',
      streaming: 'streaming…',
      failed: `failed${e.error ? ': ' + e.error : ''}`,
      stopped: `stopped${e.stoppedBy ? ' by ' + e.stoppedBy : ''}`,
      sending: 'sending…',
    }[e.status] || '';
    e.statusEl.textContent = statusText;
    if (e.stopBtn) this.renderStop(e);
    setChildren(e.body, renderMarkdown(e.text));
    if (e.status === 'streaming' || e.status === 'pending') {
      // The cursor goes at the end of the last paragraph, where the next words will appear.
      const last = e.body.lastElementChild;
      const host = last && (last.nodeName === 'P' || /^H\d$/.test(last.nodeName)) ? last
        : last && (last.nodeName === 'UL' || last.nodeName === 'OL') && last.lastElementChild ? last.lastElementChild : e.body;
      host.appendChild(h('span', { class: 'cursor', 'aria-hidden': 'true' }));
    }
  }

  /** Renders changed entries once per animation frame, however many deltas arrived meanwhile. */
  queueRender(e) {
    this.renderQueued.add(e);
    if (this.renderScheduled) return;
    this.renderScheduled = true;
    const run = () => {
      this.renderScheduled = false;
      const stick = this.nearBottom();
      for (const x of this.renderQueued) this.renderEntry(x);
      this.renderQueued.clear();
      if (stick) this.scrollToBottom();
    };
    if (document.hidden) setTimeout(run, 50);
    else requestAnimationFrame(run);
  }

  addSystemLine(text, at) {
    const stick = this.nearBottom();
    this.messagesEl.appendChild(h('div', { class: 'system-line', testid: 'system-note', title: formatTime(at), text }));
    if (stick) this.scrollToBottom();
  }

  nearBottom() {
    const m = this.messagesEl;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 120;
  }

  scrollToBottom() {
    this.messagesEl.scrollTop = this.messagesEl.scrollHeight;
  }

  /** Who asked for an answer: `{ mine, name }`. */
  askerOf(e) {
    const q = e.replyTo ? this.entries.get(e.replyTo) : null;
    if (!q) return { mine: false, name: null };
    return { mine: !!q.authorId && q.authorId === this.ctx.me.id, name: q.authorName || null };
  }

  /** The Stop button of one running answer: for Can Respond and the owner, named after whose answer it stops. */
  renderStop(e) {
    const running = e.status === 'pending' || e.status === 'streaming';
    show(e.stopBtn, running && canRespond(this.permission));
    if (!running) return;
    const { mine, name } = this.askerOf(e);
    const label = mine ? 'Stop' : `Stop ${name ? name + '’s' : 'this'} answer`;
    e.stopBtn.querySelector('.stop-label').textContent = ` ${label}`;
    e.stopBtn.setAttribute('aria-label', mine ? 'Stop your answer' : `${label} (for everyone)`);
    e.stopBtn.disabled = !!e.stopRequested;
  }

  // ---------------------------------------------------------------- permission & header

  setPermission(p, { quiet = false } = {}) {
    if (!p) return;
    const before = this.permission;
    this.permission = p;
    if (this.conv) this.conv.permission = p;
    this.updateControls();
    this.renderHeader();
    if (before && before !== p && !quiet) {
      this.ctx.toast(`Your access is now: ${PERMISSION_LABEL[p] || p}`);
    }
    if (before !== p) this.ctx.onSummaryChange(this.id, { permission: p });
  }

  renderHeader() {
    if (!this.conv) return;
    this.titleEl.textContent = this.conv.title || 'Untitled conversation';
    const owner = this.participants.get(this.conv.owner_id);
    const mine = this.conv.owner_id === this.ctx.me.id || this.permission === 'owner';
    this.ownerEl.textContent = mine ? '' : `Shared by ${this.conv.owner_name || owner?.name || this.ctx.ownerNameOf(this.id) || 'a teammate'}`;
    show(this.ownerEl, !mine);
    this.permBadge.textContent = PERMISSION_LABEL[this.permission] || '';
    this.permBadge.dataset.permission = this.permission || '';
    this.permBadge.className = `badge badge-${this.permission}`;
    show(this.permBadge, !!this.permission && !mine);
    this.modelLabel.textContent = this.conv.model || '';
    const parts = [];
    if (this.conv.temperature != null) parts.push(`Temperature ${Number(this.conv.temperature.toFixed(2))}`);
    if (this.conv.system_prompt) parts.push('System prompt set');
    this.settingsSummary.textContent = parts.join(' · ');
    this.settingsSummary.title = this.conv.system_prompt || '';
    show(this.settingsSummary, parts.length > 0);
    if (!this.settingsDirty()) this.fillSettings();
    if (canRespond(this.permission)) this.fillModels();
  }

  async fillModels() {
    const models = await this.ctx.getModels();
    if (this.destroyed) return;
    const current = this.conv.model;
    const ids = models.includes(current) || !current ? models : [current, ...models];
    const existing = [...this.modelSelect.options].map((o) => o.value);
    if (existing.join('\n') !== ids.join('\n')) {
      clear(this.modelSelect);
      for (const m of ids) this.modelSelect.appendChild(h('option', { value: m, text: m }));
    }
    this.modelSelect.value = current;
  }

  updateControls() {
    const respond = canRespond(this.permission);
    const owner = this.permission === 'owner';
    show(this.viewOnlyEl, !!this.permission && !respond);
    show(this.composer, respond);
    show(this.modelSelect, respond);
    show(this.modelLabel, !respond);
    show(this.settingsBtn, respond);
    if (!respond) this.toggleSettings(false);
    show(this.shareBtn, owner);
    show(this.renameBtn, owner && this.renameForm.hidden);
    if (!owner) this.endRename();
    show(this.deleteBtn, owner);
    show(this.leaveBtn, !!this.permission && !owner);
    for (const e of this.entries.values()) if (e.stopBtn) this.renderStop(e);
  }

  setViewers(viewers) {
    const seen = new Map();
    for (const v of viewers) if (v && v.user_id && !seen.has(v.user_id)) seen.set(v.user_id, v.name);
    this.viewers = [...seen.entries()];
    if (this.viewers.length === 0) {
      this.presenceEl.textContent = '';
      return;
    }
    const names = this.viewers.map(([id, name]) => (id === this.ctx.me.id ? `${name || 'You'} (you)` : name || 'Someone'));
    setChildren(this.presenceEl, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), `Watching now: ${names.join(', ')}`);
  }

  nameOf(userId) {
    if (userId === this.ctx.me.id) return 'you';
    return this.participants.get(userId)?.name || 'someone';
  }

  // ---------------------------------------------------------------- actions

  async send() {
    const text = this.input.value;
    if (!text.trim()) return;
    if (!canRespond(this.permission)) {
      this.ctx.toast(VIEW_ONLY_TEXT, 'error');
      return;
    }
    this.input.value = '';
    const el = h('article', { class: 'msg msg-user msg-mine msg-sending', testid: 'message-sending', dataset: { status: 'sending' } },
      h('header', { class: 'msg-head' }, h('span', { class: 'msg-author', text: `${this.ctx.me.name || 'You'} (you)` }), h('span', { class: 'msg-status', text: 'sending…' })),
      h('div', { class: 'msg-body markdown' }, renderMarkdown(text)));
    const pending = { localId: ++localIds, text, messageId: null, el };
    this.pendingSends.push(pending);
    this.messagesEl.appendChild(el);
    this.scrollToBottom();
    try {
      const r = await this.ctx.api.post(`/conversations/${this.id}/messages`, { text });
      pending.messageId = r?.message_id || null;
      if (pending.messageId && this.entries.has(pending.messageId)) this.dropPending(pending);
    } catch (e) {
      this.dropPending(pending);
      if (!this.input.value) this.input.value = text;
      this.ctx.toast(e instanceof ApiError && e.status === 403 ? VIEW_ONLY_TEXT : `Not sent: ${errorText(e)}`, 'error');
    }
  }

  resolvePendingSend(ev) {
    const p = this.pendingSends.find((x) => x.messageId === ev.message_id)
      || (ev.author_id === this.ctx.me.id ? this.pendingSends.find((x) => !x.messageId && x.text === ev.text) : null);
    if (p) this.dropPending(p);
  }

  dropPending(p) {
    p.el.remove();
    this.pendingSends = this.pendingSends.filter((x) => x !== p);
  }

  /** Stops one answer; someone else's only after a confirmation naming them. */
  async stop(entry) {
    const { mine, name } = this.askerOf(entry);
    if (!mine && !confirm(`Stop ${name ? name + '’s' : 'this'} answer for everyone? ${name || 'They'} will see it stopped by you.`)) return;
    entry.stopRequested = true;
    this.renderStop(entry);
    // A placeholder from history does not know its response id: then every answer of the conversation stops.
    const body = String(entry.id).startsWith('pending:') ? {} : { response_id: entry.id };
    try {
      await this.ctx.api.post(`/conversations/${this.id}/stop`, body);
    } catch (e) {
      entry.stopRequested = false;
      this.renderStop(entry);
      this.ctx.toast(`Could not stop: ${errorText(e)}`, 'error');
    }
  }

  async changeModel(model) {
    const before = this.conv.model;
    if (!model || model === before) return;
    try {
      await this.ctx.api.patch(`/conversations/${this.id}/settings`, { model });
      this.conv.model = model;
    } catch (e) {
      this.modelSelect.value = before;
      this.ctx.toast(`Model not changed: ${errorText(e)}`, 'error');
    }
  }

  // ---------------------------------------------------------------- rename

  startRename() {
    this.renameInput.value = this.conv?.title || '';
    show(this.titleEl, false);
    show(this.renameForm, true);
    show(this.renameBtn, false);
    this.renameInput.focus();
    this.renameInput.select();
  }

  endRename(refocus = false) {
    if (this.renameForm.hidden) return;
    show(this.renameForm, false);
    show(this.titleEl, true);
    show(this.renameBtn, this.permission === 'owner');
    if (refocus && !this.renameBtn.hidden) this.renameBtn.focus();
  }

  async rename(title) {
    const t = title.trim();
    if (!t) {
      this.ctx.toast('A title cannot be blank', 'error');
      return;
    }
    try {
      const r = await this.ctx.api.patch(`/conversations/${this.id}`, { title: t });
      this.conv.title = r.title;
      this.endRename();
      this.renderHeader();
      this.ctx.onSummaryChange(this.id, { title: r.title });
    } catch (e) {
      this.ctx.toast(`Not renamed: ${errorText(e)}`, 'error');
    }
  }

  // ---------------------------------------------------------------- settings

  toggleSettings(open = this.settingsPanel.hidden) {
    if (open) this.fillSettings();
    show(this.settingsPanel, open);
    this.settingsBtn.setAttribute('aria-expanded', String(open));
    if (open) this.temperatureInput.focus();
  }

  /** The form's values as the conversation has them (not while someone is editing it). */
  fillSettings() {
    if (!this.conv) return;
    this.temperatureInput.value = this.conv.temperature == null ? '' : String(Number(this.conv.temperature.toFixed(2)));
    this.systemPromptInput.value = this.conv.system_prompt || '';
  }

  /** The fields that differ from the conversation's settings, as the PATCH body wants them. */
  settingsPatch() {
    const patch = {};
    const t = this.temperatureInput.value.trim();
    const temperature = t === '' ? null : Number(t);
    const current = this.conv.temperature == null ? null : Number(this.conv.temperature.toFixed(2));
    if (temperature !== current) patch.temperature = temperature;
    const prompt = this.systemPromptInput.value.trim() === '' ? null : this.systemPromptInput.value;
    if (prompt !== (this.conv.system_prompt || null)) patch.system_prompt = prompt;
    return patch;
  }

  settingsDirty() {
    return !!this.conv && !this.settingsPanel.hidden && Object.keys(this.settingsPatch()).length > 0;
  }

  async saveSettings() {
    const patch = this.settingsPatch();
    if ('temperature' in patch && patch.temperature !== null && !(patch.temperature >= 0 && patch.temperature <= 2)) {
      this.ctx.toast('Temperature must be between 0 and 2', 'error');
      return;
    }
    if (Object.keys(patch).length === 0) {
      this.toggleSettings(false);
      return;
    }
    try {
      const s = await this.ctx.api.patch(`/conversations/${this.id}/settings`, patch);
      Object.assign(this.conv, { temperature: s.temperature, system_prompt: s.system_prompt });
      this.toggleSettings(false);
      this.renderHeader();
    } catch (e) {
      this.ctx.toast(`Settings not changed: ${errorText(e)}`, 'error');
    }
  }

  async uploadFiles() {
    const files = [...(this.fileInput.files || [])];
    this.fileInput.value = '';
    for (const file of files) {
      this.uploadStatus.textContent = `Uploading ${file.name}…`;
      show(this.uploadStatus, true);
      const form = new FormData();
      form.append('file', file, file.name);
      try {
        const r = await this.ctx.api.request('POST', `/conversations/${this.id}/attachments`, undefined, { form });
        const a = r?.attachment || r;
        if (a && (a.id || a.attachment_id)) this.addAttachment(a, true);
      } catch (e) {
        const why = e instanceof ApiError && e.status === 413 ? 'the file is too large' : errorText(e);
        this.ctx.toast(`${file.name} was not attached: ${why}`, 'error');
      }
    }
    show(this.uploadStatus, false);
  }

  addAttachment(a, live = false) {
    const id = a.id || a.attachment_id;
    if (!id || this.attachments.has(id)) return;
    const att = { id, filename: a.filename || 'file', size: a.size, contentType: a.content_type, uploadedBy: a.uploaded_by };
    this.attachments.set(id, att);
    const who = att.uploadedBy ? this.nameOf(att.uploadedBy) : '';
    const btn = h('button', {
      type: 'button',
      class: 'attachment',
      testid: 'attachment',
      dataset: { attachmentId: id, filename: att.filename },
      title: `Download ${att.filename}${who ? ' (added by ' + who + ')' : ''}`,
      onclick: () => this.download(att),
    }, icon('file'), h('span', { class: 'attachment-name', text: att.filename }),
    h('span', { class: 'muted', text: ` ${formatSize(att.size)}` }));
    this.attachmentsEl.appendChild(btn);
    show(this.attachmentsEl, true);
    if (live) this.addSystemLine(`${who === 'you' ? 'You' : who || 'Someone'} attached ${att.filename}`, Date.now());
  }

  /** Attachments need the bearer token, so they are fetched and handed to the browser as a blob link. */
  async download(att) {
    try {
      const res = await this.ctx.api.request('GET', `/conversations/${this.id}/attachments/${att.id}`, undefined, { raw: true });
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: att.filename, hidden: true, testid: 'attachment-download-link' });
      document.body.appendChild(a);
      a.click();
      setTimeout(() => {
        a.remove();
        URL.revokeObjectURL(url);
      }, 30000);
    } catch (e) {
      this.ctx.toast(`Download failed: ${errorText(e)}`, 'error');
    }
  }
}

export function errorText(e) {
  if (e instanceof ApiError) return e.message || e.code;
  return String(e?.message || e);
}

/** A history row as a chat entry. */
function entryOf(m) {
  if (m.role === 'assistant') {
    return { id: m.id, role: 'assistant', text: m.text || '', status: m.status || 'complete', model: m.model, replyTo: m.reply_to, attempt: 1, nextIndex: 0, at: m.created_at };
  }
  return { id: m.id, role: 'user', text: m.text || '', status: 'complete', authorId: m.author_id, authorName: m.author_name, at: m.created_at };
}
