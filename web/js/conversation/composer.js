// The chat footer (the composer for those who may respond, a View only notice for the others) and the bar of the
// conversation's attachments.

import { h, clear, show, icon, formatSize } from '../dom.js';
import { canRespond } from '../permissions.js';
import { nameOf } from './state.js';

export const VIEW_ONLY_TEXT = 'View only — you can watch but not send';
/** The api's longest message; a counter shows from COUNT_FROM on, so nobody learns it only after Send. */
export const MAX_MESSAGE_CHARS = 32000;
const COUNT_FROM = 30000;

export class Composer {
  /**
   * @param {object} o  `id` (the conversation: its unsent draft is kept per tab while you look elsewhere), `send()`,
   *   `upload(files)`, `typing(on)` (composing: on while there is text, off on blur, clearing and sending)
   */
  constructor({ id, send, upload, typing = () => {} }) {
    this.draftKey = `relayhub.draft.${id}`;
    this.viewOnlyEl = h('div', { class: 'view-only-notice', testid: 'view-only-notice', role: 'status', hidden: true },
      icon('eye'), h('span', { text: VIEW_ONLY_TEXT }));
    this.input = h('textarea', {
      class: 'composer-input', testid: 'composer-input', rows: 2, dir: 'auto', placeholder: 'Message the AI…',
      title: 'Enter sends, Shift+Enter starts a new line', 'aria-label': 'Message',
      oninput: () => {
        this.changed();
        typing(this.input.value.trim() !== '');
      },
      onblur: () => typing(false),
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          // Sending while another answer streams is fine: the server answers each question in turn.
          send();
        }
      },
    });
    this.fileInput = h('input', {
      type: 'file', multiple: true, hidden: true, testid: 'attach-input',
      onchange: () => {
        const files = [...(this.fileInput.files || [])];
        this.fileInput.value = '';
        upload(files);
      },
    });
    const attachBtn = h('button', {
      type: 'button', class: 'btn btn-ghost attach-button', testid: 'attach-button', title: 'Attach a file',
      'aria-label': 'Attach a file', onclick: () => this.fileInput.click(),
    }, icon('attach'));
    this.form = h('form', {
      class: 'composer', testid: 'composer', hidden: true,
      onsubmit: (e) => {
        e.preventDefault();
        send();
      },
    }, attachBtn, this.fileInput, this.input, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'send-button', text: 'Send' }));
    this.uploadStatus = h('div', { class: 'upload-status', testid: 'upload-status', hidden: true });
    this.hint = h('div', { class: 'composer-hint muted small', testid: 'composer-hint', hidden: true });
    this.count = h('div', { class: 'composer-count small', testid: 'composer-count', 'aria-live': 'polite', hidden: true });
    this.el = h('footer', { class: 'chat-footer' }, this.viewOnlyEl, this.form, h('div', { class: 'composer-notes' }, this.hint, this.count), this.uploadStatus);
    this.setText(sessionStorage.getItem(this.draftKey) || '');
  }

  get text() {
    return this.input.value;
  }

  /** Replaces the draft (and what is kept of it). */
  setText(text) {
    this.input.value = text;
    this.changed();
  }

  changed() {
    const n = this.input.value.length;
    if (n) sessionStorage.setItem(this.draftKey, this.input.value);
    else sessionStorage.removeItem(this.draftKey);
    this.count.hidden = n < COUNT_FROM;
    this.count.textContent = `${n.toLocaleString()} / ${MAX_MESSAGE_CHARS.toLocaleString()} characters`;
    this.count.classList.toggle('over', n > MAX_MESSAGE_CHARS);
  }

  /** A line under the composer (e.g. how to steer the simulated AI); '' hides it. */
  setHint(text) {
    this.hint.textContent = text;
    this.hint.hidden = !text;
  }

  render(state) {
    const respond = canRespond(state.permission);
    show(this.viewOnlyEl, !!state.permission && !respond);
    show(this.form, respond);
  }

  /** "Uploading x…" while a file goes up; null hides it. */
  setUploading(name) {
    this.uploadStatus.textContent = name ? `Uploading ${name}…` : '';
    show(this.uploadStatus, !!name);
  }
}

export class AttachmentBar {
  /** @param {(att: object) => void} download */
  constructor(download) {
    this.download = download;
    this.drawn = null;
    this.el = h('div', { class: 'attachments', testid: 'attachments', hidden: true });
  }

  render(state) {
    if (state.attachments === this.drawn) return;
    this.drawn = state.attachments;
    clear(this.el);
    for (const att of state.attachments) {
      const who = att.uploadedBy ? nameOf(state, att.uploadedBy) : '';
      this.el.appendChild(h('button', {
        type: 'button', class: 'attachment', testid: 'attachment', dataset: { attachmentId: att.id, filename: att.filename },
        title: `Download ${att.filename}${who ? ' (added by ' + who + ')' : ''}`,
        onclick: () => this.download(att),
      }, icon('file'), h('span', { class: 'attachment-name', text: att.filename }),
      h('span', { class: 'muted', text: ` ${formatSize(att.size)}` })));
    }
    show(this.el, state.attachments.length > 0);
  }
}
