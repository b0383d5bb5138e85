// The chat view of one open conversation. Its state is the pure reducer in conversation/state.js: the history over
// HTTP, then the socket's frames and the person's own actions are dispatched to it, and the views (header, messages,
// composer, attachments) draw the result once per animation frame, however many deltas arrived meanwhile. This
// file does what needs the network: loading, subscribing, sending, stopping, renaming, settings and files.

import { h } from './dom.js';
import { canRespond } from './permissions.js';

/** Shown under the composer when the simulated AI serves: its answers can be steered from the first line. */
const SIM_HINT = 'Simulated AI: start a message with “/sim tokens=300 rate=40” for a longer answer streamed at 40 tokens a second.';

/** What a person is told when their permission changes while they look. */
const PERMISSION_NEWS = {
  view: 'You can now only view this conversation.',
  respond: 'You can now send messages here.',
  owner: 'You now own this conversation.',
};
import { ApiError, errorText, rateLimitText } from './api.js';
import { initialState, reduce, askerOf } from './conversation/state.js';
import { MessageList } from './conversation/messages.js';
import { ChatHeader } from './conversation/header.js';
import { Composer, AttachmentBar, VIEW_ONLY_TEXT, MAX_MESSAGE_CHARS } from './conversation/composer.js';

let localIds = 0;

export class ChatView {
  constructor(ctx, id) {
    this.ctx = ctx;
    this.id = id;
    this.state = initialState(id, ctx.me.id);
    this.destroyed = false;
    this.renderScheduled = false;
    this.header = new ChatHeader({
      rename: (title) => this.rename(title),
      changeModel: (model) => this.saveSettings({ model }, 'Model not changed'),
      saveSettings: (patch) => this.saveSettings(patch, 'Settings not changed'),
      share: () => ctx.openShare(this),
      leave: () => ctx.leaveConversation(this),
      remove: () => ctx.deleteConversation(this),
      exportAs: (format) => this.exportAs(format),
      copy: (choice) => this.copy(choice),
      models: () => ctx.getModels(),
      ownerName: () => ctx.ownerNameOf(id),
      toast: ctx.toast,
    });
    this.messages = new MessageList({
      meName: ctx.me.name,
      onStop: (item) => this.stop(item),
      onLoadEarlier: (before) => this.loadEarlier(before),
      onAttempt: (turn, id) => this.dispatch({ type: 'select_version', turn, id }),
      onRegenerate: (item) => this.regenerate(item),
      onEdit: (item, text) => this.edit(item, text),
    });
    this.composer = new Composer({
      id,
      send: () => this.send(),
      upload: (files) => this.upload(files),
      typing: (on) => this.typing(on),
    });
    this.attachments = new AttachmentBar((att) => this.download(att));
    this.el = h('section', { class: 'chat', testid: 'chat-view', dataset: { conversationId: id } },
      this.header.el, this.header.settingsPanel, this.header.copyPicker.el, this.attachments.el, this.messages.el, this.composer.el);
  }

  /** The conversation as the api describes it (title, owner, model, settings), once loaded. */
  get conv() {
    return this.state.conv;
  }

  get lastSeq() {
    return this.state.lastSeq;
  }

  // ---------------------------------------------------------------- state

  dispatch(action) {
    if (this.destroyed) return;
    const prev = this.state;
    const next = reduce(prev, action);
    if (next === prev) return;
    this.state = next;
    if (prev.permission && next.permission !== prev.permission && action.type !== 'loaded') {
      this.ctx.toast(PERMISSION_NEWS[next.permission] || `Your access is now: ${next.permission}`, 'info', `permission:${this.id}`);
    }
    const summary = {};
    if (next.permission !== prev.permission) summary.permission = next.permission;
    if (prev.conv && next.conv?.title !== prev.conv.title) summary.title = next.conv.title;
    if (prev.conv && next.conv?.model !== prev.conv.model) summary.model = next.conv.model;
    // The owner's sidebar marks shared conversations: the open one follows its participants live.
    if (next.participants !== prev.participants && next.permission === 'owner') {
      summary.shared_with = Object.keys(next.participants).filter((u) => u !== next.conv?.owner_id).length;
    }
    if (Object.keys(summary).length) this.ctx.onSummaryChange(this.id, summary);
    if (next.participants !== prev.participants && prev.loaded) this.ctx.onParticipantsChange(this);
    if (next.closed) {
      this.ctx.closeView(this, next.closed);
      return;
    }
    this.scheduleRender(next.conv !== prev.conv || next.permission !== prev.permission || next.settingsNote !== prev.settingsNote);
  }

  scheduleRender(headerToo) {
    this.headerDirty = this.headerDirty || headerToo;
    if (this.renderScheduled) return;
    this.renderScheduled = true;
    const run = () => {
      this.renderScheduled = false;
      if (this.destroyed) return;
      if (this.headerDirty) {
      this.header.render(this.state);
      document.title = `${this.state.conv?.title || 'Untitled conversation'} — RelayHub`;
    }
      this.headerDirty = false;
      this.composer.render(this.state);
      this.attachments.render(this.state);
      this.messages.render(this.state);
    };
    if (document.hidden) setTimeout(run, 50);
    else requestAnimationFrame(run);
  }

  /** The permission as the sidebar or the socket tells it. */
  setPermission(permission) {
    this.dispatch({ type: 'permission', permission });
  }

  setViewers(viewers) {
    this.header.setViewers(viewers, this.ctx.me.id);
  }

  // ---------------------------------------------------------------- loading

  async load() {
    const detail = await this.ctx.api.get(`/conversations/${this.id}`);
    if (this.destroyed) return;
    this.dispatch({ type: 'loaded', detail, now: Date.now() });
    // The history's signed grant spares the edge asking the api again; good for the first subscribe only.
    this.grant = detail.grant;
    this.subscribe();
    // Draw at once: the person is waiting for this, and the focus goes into it next.
    this.header.render(this.state);
    document.title = `${this.state.conv?.title || 'Untitled conversation'} — RelayHub`;
    this.composer.render(this.state);
    this.messages.render(this.state);
    this.messages.scrollToBottom();
    this.ctx.simulated().then((yes) => {
      if (yes && !this.destroyed) this.composer.setHint(SIM_HINT);
    });
  }

  /** History comes in pages, newest first: "Load earlier messages" fetches the page before. */
  async loadEarlier(before) {
    try {
      const page = await this.ctx.api.get(`/conversations/${this.id}?before=${encodeURIComponent(before)}`);
      this.dispatch({ type: 'earlier', page });
    } catch (err) {
      this.messages.earlierBtn.disabled = false;
      this.ctx.toast(errorText(err), 'error');
    }
  }

  /** Where the keyboard goes when the conversation opens: the composer, or the history for View only. */
  focusDefault() {
    (canRespond(this.state.permission) ? this.composer.input : this.messages.scroller).focus();
  }

  subscribe() {
    if (!this.state.loaded || this.destroyed) return;
    // compact: what we missed of a streaming response comes as one merged delta per run (`from_index..index`)
    // instead of hundreds of frames; the reducer's delta handling needs nothing else for it.
    const grant = this.grant;
    this.grant = undefined;
    this.ctx.socket.send({ type: 'subscribe', conversation_id: this.id, after_seq: this.state.lastSeq, compact: true, grant });
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
      case 'permission_changed':
        this.setPermission(f.permission);
        break;
      case 'event':
        this.dispatch({ type: 'event', seq: f.seq, event: f.event, now: Date.now() });
        break;
      case 'presence':
        this.setViewers(f.viewers || []);
        break;
      case 'access_revoked':
        this.dispatch({ type: 'closed', reason: f.reason });
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
        this.ctx.toast(canRespond(this.state.permission) ? f.message || 'Not allowed' : VIEW_ONLY_TEXT, 'error');
        break;
      case 'rate_limited':
        this.ctx.toast(rateLimitText(f.message, f.retry_after_ms), 'error', 'rate-limited');
        break;
      default:
        this.ctx.toast(f.message || f.code || 'Something went wrong', 'error');
    }
  }

  // ---------------------------------------------------------------- actions

  async send() {
    const text = this.composer.text;
    if (!text.trim()) return;
    if (!canRespond(this.state.permission)) {
      this.ctx.toast(VIEW_ONLY_TEXT, 'error');
      return;
    }
    if (text.length > MAX_MESSAGE_CHARS) {
      this.ctx.toast(`A message has at most ${MAX_MESSAGE_CHARS.toLocaleString()} characters; this one has ${text.length.toLocaleString()}.`, 'error', 'too-long');
      return;
    }
    this.composer.setText('');
    this.typing(false);
    const localId = ++localIds;
    this.messages.followNext();
    this.dispatch({ type: 'send', localId, text, now: Date.now() });
    try {
      const r = await this.ctx.api.post(`/conversations/${this.id}/messages`, { text });
      this.dispatch({ type: 'sent', localId, messageId: r?.message_id });
    } catch (e) {
      this.dispatch({ type: 'send_failed', localId });
      if (!this.composer.text) this.composer.setText(text);
      this.ctx.toast(e instanceof ApiError && e.status === 403 ? VIEW_ONLY_TEXT : `Not sent: ${errorText(e)}`, 'error');
    }
  }

  /** Another answer to the last message, for everyone; the new attempt arrives on the socket. */
  async regenerate(item) {
    try {
      this.messages.followNext();
      await this.ctx.api.post(`/conversations/${this.id}/regenerate`, { message_id: item.replyTo });
    } catch (e) {
      this.ctx.toast(`Could not regenerate: ${errorText(e)}`, 'error');
    }
  }

  /** My last message, edited: a new version with a new answer (both arrive on the socket). */
  async edit(item, text) {
    if (text.length > MAX_MESSAGE_CHARS) {
      this.ctx.toast(`A message has at most ${MAX_MESSAGE_CHARS.toLocaleString()} characters; this one has ${text.length.toLocaleString()}.`, 'error', 'too-long');
      return false;
    }
    try {
      this.messages.followNext();
      await this.ctx.api.post(`/conversations/${this.id}/messages`, { text, edit_of: item.id });
      return true;
    } catch (e) {
      this.ctx.toast(`Not edited: ${errorText(e)}`, 'error');
      return false;
    }
  }

  /** Stops one answer; someone else's only after a confirmation naming them. */
  async stop(item) {
    const { mine, name } = askerOf(this.state, item);
    if (!mine && !confirm(`Stop ${name ? name + '’s' : 'this'} answer for everyone? ${name || 'They'} will see it stopped by you.`)) return;
    this.dispatch({ type: 'stop_requested', id: item.id, on: true });
    // A placeholder from history does not know its response id: then every answer of the conversation stops.
    const body = String(item.id).startsWith('pending:') ? {} : { response_id: item.id };
    try {
      await this.ctx.api.post(`/conversations/${this.id}/stop`, body);
    } catch (e) {
      this.dispatch({ type: 'stop_requested', id: item.id, on: false });
      this.ctx.toast(`Could not stop: ${errorText(e)}`, 'error');
    }
  }

  async rename(title) {
    try {
      const r = await this.ctx.api.patch(`/conversations/${this.id}`, { title });
      this.dispatch({ type: 'renamed', title: r.title });
      return true;
    } catch (e) {
      this.ctx.toast(`Not renamed: ${errorText(e)}`, 'error');
      return false;
    }
  }

  /** PATCHes the model, temperature or system prompt; says `failure` when the api refuses. */
  async saveSettings(patch, failure) {
    try {
      const s = await this.ctx.api.patch(`/conversations/${this.id}/settings`, patch);
      const settings = 'model' in patch ? { model: patch.model } : { temperature: s.temperature, system_prompt: s.system_prompt };
      this.dispatch({ type: 'settings_saved', settings });
      return true;
    } catch (e) {
      this.ctx.toast(`${failure}: ${errorText(e)}`, 'error');
      return false;
    }
  }

  async upload(files) {
    for (const file of files) {
      this.composer.setUploading(file.name);
      const form = new FormData();
      form.append('file', file, file.name);
      try {
        const r = await this.ctx.api.request('POST', `/conversations/${this.id}/attachments`, undefined, { form });
        const a = r?.attachment || r;
        if (a && (a.id || a.attachment_id)) this.dispatch({ type: 'attached', attachment: a, now: Date.now() });
      } catch (e) {
        const why = e instanceof ApiError && e.status === 413 ? 'the file is too large' : errorText(e);
        this.ctx.toast(`${file.name} was not attached: ${why}`, 'error');
      }
    }
    this.composer.setUploading(null);
  }

  /** Tells the others that I am composing (repeated at most every 3 s while I type) or that I stopped. */
  typing(on) {
    if (!canRespond(this.state.permission)) return;
    const now = Date.now();
    if (on && this.typingSince && now - this.typingSince < 3000) return;
    if (!on && !this.typingSince) return;
    this.typingSince = on ? now : 0;
    this.ctx.socket.send({ type: 'typing', conversation_id: this.id, typing: on });
  }

  /** The finished history as a Markdown or JSON file. */
  async exportAs(format) {
    try {
      const res = await this.ctx.api.request('GET', `/conversations/${this.id}/export?format=${format}`, undefined, { raw: true });
      const name = `${(this.state.conv?.title || 'conversation').replace(/[^\p{L}\p{N} _-]+/gu, '').trim() || 'conversation'}.${format === 'json' ? 'json' : 'md'}`;
      this.saveBlob(await res.blob(), name, 'export-download-link');
    } catch (e) {
      this.ctx.toast(`Export failed: ${errorText(e)}`, 'error');
    }
  }

  /** Continue as a copy (the header's picker chose how far back and whether the files come along), then open it. */
  async copy({ upTo, attachments }) {
    try {
      const copy = await this.ctx.api.post(`/conversations/${this.id}/copy`, { ...(upTo ? { up_to: upTo } : {}), attachments });
      this.ctx.toast('Copied: this conversation is yours and shared with nobody.', 'info');
      location.hash = `#/c/${copy.id}`;
    } catch (e) {
      this.ctx.toast(`Could not copy: ${errorText(e)}`, 'error');
    }
  }

  saveBlob(blob, filename, testid) {
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: filename, hidden: true, testid });
    document.body.appendChild(a);
    a.click();
    setTimeout(() => {
      a.remove();
      URL.revokeObjectURL(url);
    }, 30000);
  }

  /** Attachments need the bearer token, so they are fetched and handed to the browser as a blob link. */
  async download(att) {
    try {
      const res = await this.ctx.api.request('GET', `/conversations/${this.id}/attachments/${att.id}`, undefined, { raw: true });
      this.saveBlob(await res.blob(), att.filename, 'attachment-download-link');
    } catch (e) {
      this.ctx.toast(`Download failed: ${errorText(e)}`, 'error');
    }
  }
}
