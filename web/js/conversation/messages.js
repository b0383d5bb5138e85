// The message history view: draws the timeline of the conversation state (state.js), one element per item, kept
// by id. An item is redrawn only when its object changed (the reducer gives a changed item a new object), so a
// streaming answer redraws itself and nothing else.
//
// A turn with several attempts (regenerated answers, edited questions) shows one at a time, with "‹ 1 of 2 ›" on its
// answer; the last turn offers Regenerate on its answer and Edit on its message (when it is yours), both only while
// no answer runs. Editing happens in place: a text field replaces the message until it is saved or cancelled.
//
// Scrolling: the view follows new text only while the person is at the bottom. Any scroll up, however small,
// stops following (nothing snaps back); then a "Jump to latest" button shows, saying "New text below" once more
// arrives, and following resumes at the bottom again.

import { h, setChildren, icon, timeEl, show, clear } from '../dom.js';
import { renderMarkdown } from '../markdown.js';
import { timeline, stopOf, statusText, attempts, attemptOf, lastTurn } from './state.js';

export class MessageList {
  /**
   * @param {object} o
   * @param {string} o.meName  the signed-in person's name, for their own messages on the way
   * @param {(item: object) => void} o.onStop  Stop clicked on a running answer
   * @param {(before: string) => void} o.onLoadEarlier  "Load earlier messages" clicked
   * @param {(turn: string, id: string) => void} o.onAttempt  another attempt of a turn chosen
   * @param {(item: object) => void} o.onRegenerate  Regenerate clicked on the last answer
   * @param {(item: object, text: string) => Promise<boolean>} o.onEdit  an edit of the last message saved
   */
  constructor({ meName, onStop, onLoadEarlier, onAttempt, onRegenerate, onEdit }) {
    this.meName = meName;
    this.onStop = onStop;
    this.onAttempt = onAttempt;
    this.onRegenerate = onRegenerate;
    this.onEdit = onEdit;
    this.editing = null; // { id, text } while a message is being edited
    this.records = new Map(); // item id → { item, permission, el, parts }
    // Focusable, so the history scrolls with the keyboard (arrows, Page Up/Down) like any page.
    this.scroller = h('div', {
      class: 'messages', testid: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': 'Messages', tabindex: '0',
      onscroll: () => this.onScroll(),
    });
    this.following = true;
    this.jumpBtn = h('button', {
      type: 'button', class: 'btn jump-latest', testid: 'jump-latest', hidden: true,
      onclick: () => {
        this.scrollToBottom();
        this.scroller.focus();
      },
    }, icon('down'), h('span', { class: 'jump-label', text: 'Jump to latest' }));
    this.el = h('div', { class: 'messages-wrap' }, this.scroller, this.jumpBtn);
    this.earlierBtn = h('button', {
      type: 'button', class: 'load-earlier', testid: 'load-earlier', text: 'Load earlier messages',
      onclick: () => {
        this.earlierBtn.disabled = true;
        onLoadEarlier(this.earlierBefore);
      },
    });
    this.earlierBefore = null;
  }

  render(state) {
    this.lastState = state;
    const stick = this.follow || this.following;
    this.follow = false;
    const before = this.scroller.scrollHeight;
    this.earlierBefore = state.earlier;
    let prev = null;
    if (state.earlier != null) {
      this.earlierBtn.disabled = false;
      if (this.scroller.firstChild !== this.earlierBtn) this.scroller.prepend(this.earlierBtn);
      prev = this.earlierBtn;
    } else {
      this.earlierBtn.remove();
    }
    const seen = new Set();
    const turns = attempts(state);
    const last = lastTurn(state);
    if (this.editing && this.editing.id !== last.edit) this.editing = null;
    for (const item of timeline(state)) {
      seen.add(item.id);
      let rec = this.records.get(item.id);
      if (!rec || rec.item.kind !== item.kind) {
        if (rec) rec.el.remove();
        rec = this.create(item);
        this.records.set(item.id, rec);
      }
      // What depends on other items (attempts, the last turn's actions, editing) redraws when it changes.
      const extra = item.kind === 'message' ? decorOf(state, item, turns, last, this.editing) : null;
      const key = JSON.stringify(extra);
      if (!rec.drawn || rec.item !== item || rec.permission !== state.permission || rec.key !== key) {
        rec.key = key;
        rec.extra = extra;
        this.draw(rec, item, state);
      }
      const at = prev ? prev.nextSibling : this.scroller.firstChild;
      if (at !== rec.el) this.scroller.insertBefore(rec.el, at);
      prev = rec.el;
    }
    for (const [id, rec] of this.records) {
      if (!seen.has(id)) {
        rec.el.remove();
        this.records.delete(id);
      }
    }
    if (stick) this.scrollToBottom();
    else if (this.scroller.scrollHeight > before) this.showJump(true);
  }

  /** The person scrolled (or we did): follow new text only from the very bottom. */
  onScroll() {
    this.following = this.distanceFromBottom() < 4;
    if (this.following) this.showJump(false);
    else if (this.distanceFromBottom() > this.scroller.clientHeight / 2) this.showJump(false, true);
  }

  /** Shows the jump button: `fresh` says new text arrived below; hides it when neither is true. */
  showJump(fresh, far = false) {
    if (this.following) {
      this.jumpBtn.hidden = true;
      this.jumpBtn.classList.remove('has-new');
      return;
    }
    const isNew = fresh || this.jumpBtn.classList.contains('has-new');
    this.jumpBtn.classList.toggle('has-new', isNew);
    this.jumpBtn.querySelector('.jump-label').textContent = isNew ? 'New text below' : 'Jump to latest';
    this.jumpBtn.hidden = !(isNew || far || !this.jumpBtn.hidden);
  }

  create(item) {
    if (item.kind === 'system') return { item, el: h('div', { class: 'system-line', testid: 'system-note' }) };
    if (item.kind === 'sending') {
      const el = h('article', { class: 'msg msg-user msg-mine msg-sending', testid: 'message-sending', dataset: { status: 'sending' } },
        h('header', { class: 'msg-head' }, h('span', { class: 'msg-author', text: `${this.meName || 'You'} (you)` }), h('span', { class: 'msg-status', text: statusText(item) })),
        h('div', { class: 'msg-body markdown', dir: 'auto' }));
      return { item, el, body: el.lastChild };
    }
    const parts = {
      // dir="auto": a message in Arabic or Hebrew is laid out right to left (by its first strong character).
      body: h('div', { class: 'msg-body markdown', testid: 'message-text', dir: 'auto' }),
      author: h('span', { class: 'msg-author', testid: 'message-author' }),
      status: h('span', { class: 'msg-status', testid: 'message-status' }),
      meta: h('span', { class: 'msg-meta-extra' }),
      time: h('span', { class: 'msg-time-slot' }),
      // Stop sits on the answer it stops, never where Send is: stopping someone else's answer is a deliberate act.
      stop: item.role === 'assistant'
        ? h('button', { type: 'button', class: 'btn btn-ghost btn-small msg-stop', testid: 'stop-answer', hidden: true }, icon('stop'), h('span', { class: 'stop-label' }))
        : null,
      attempts: h('span', { class: 'msg-attempts', testid: 'attempts', role: 'group', 'aria-label': 'Attempts', hidden: true }),
      action: item.role === 'assistant'
        ? h('button', { type: 'button', class: 'btn btn-ghost btn-small msg-action', testid: 'regenerate', title: 'Another answer to this message (for everyone)', hidden: true }, icon('redo'), h('span', { text: ' Regenerate' }))
        : h('button', { type: 'button', class: 'btn btn-ghost btn-small msg-action', testid: 'edit-message', title: 'Edit your message and get a new answer', hidden: true }, icon('pencil'), h('span', { text: ' Edit' })),
      editor: h('div', { class: 'msg-editor', hidden: true }),
    };
    const el = h('article', { class: `msg msg-${item.role}`, testid: 'message', dataset: { role: item.role, messageId: item.id } },
      h('header', { class: 'msg-head' }, parts.author, parts.meta, parts.time, parts.status, parts.attempts, parts.action, parts.stop), parts.body, parts.editor);
    const rec = { item, el, ...parts };
    if (parts.stop) parts.stop.addEventListener('click', () => this.onStop(rec.item));
    parts.action.addEventListener('click', () => (item.role === 'assistant' ? this.onRegenerate(rec.item) : this.startEdit(rec.item)));
    return rec;
  }

  startEdit(item) {
    this.editing = { id: item.id, text: item.text };
    this.redraw(item.id);
    this.records.get(item.id)?.editor.querySelector('textarea')?.focus();
  }

  endEdit(focusId) {
    const id = this.editing?.id;
    this.editing = null;
    if (id) this.redraw(id);
    if (focusId) this.records.get(focusId)?.action.focus();
  }

  /** Draws one record again (its decoration changed outside the state). */
  redraw(id) {
    const rec = this.records.get(id);
    if (rec && this.lastState) {
      rec.key = null;
      this.render(this.lastState);
    }
  }

  /** The in-place editor of the last message: Save (or Ctrl/⌘+Enter) sends the edit, Escape cancels. */
  drawEditor(rec, item) {
    const input = h('textarea', {
      class: 'msg-edit-input', testid: 'edit-input', rows: 3, dir: 'auto', 'aria-label': 'Edit your message',
      oninput: () => { if (this.editing) this.editing.text = input.value; },
      onkeydown: (e) => {
        if (e.key === 'Escape') this.endEdit(item.id);
        else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) save();
      },
    });
    input.value = this.editing.text;
    const save = async () => {
      const text = input.value;
      if (!text.trim() || text === item.text) return;
      if (await this.onEdit(item, text)) this.endEdit();
    };
    setChildren(rec.editor, input, h('div', { class: 'msg-edit-buttons' },
      h('button', { type: 'button', class: 'btn btn-primary btn-small', testid: 'edit-save', text: 'Save and answer again', onclick: save }),
      h('button', { type: 'button', class: 'btn btn-ghost btn-small', testid: 'edit-cancel', text: 'Cancel', onclick: () => this.endEdit(item.id) })));
  }

  /** "‹ 2 of 3 ›": buttons to the neighbouring attempts of the turn. */
  drawAttempts(rec, attempt) {
    show(rec.attempts, !!attempt);
    if (!attempt) return clear(rec.attempts);
    const go = (id, label, text) => h('button', {
      type: 'button', class: 'btn btn-ghost btn-small', text, 'aria-label': label, disabled: !id,
      onclick: () => id && this.onAttempt(attempt.turn, id),
    });
    setChildren(rec.attempts, go(attempt.prev, 'Previous attempt', '‹'),
      h('span', { class: 'msg-attempt-count', testid: 'attempt-count', text: `${attempt.index} of ${attempt.count}` }),
      go(attempt.next, 'Next attempt', '›'));
  }

  draw(rec, item, state) {
    rec.item = item;
    rec.permission = state.permission;
    rec.drawn = true;
    if (item.kind === 'system') {
      setChildren(rec.el, h('span', { dir: 'auto', text: item.text }), timeEl(item.at) ? ' · ' : null, timeEl(item.at));
      return;
    }
    if (item.kind === 'sending') {
      setChildren(rec.body, renderMarkdown(item.text));
      return;
    }
    const el = rec.el;
    el.dataset.status = item.status;
    if (item.role === 'user') {
      const mine = !!item.authorId && item.authorId === state.me;
      rec.author.textContent = mine ? `${item.authorName || 'You'} (you)` : item.authorName || 'Someone';
      el.classList.toggle('msg-mine', mine);
    } else {
      rec.author.textContent = 'AI';
      rec.meta.textContent = item.model ? ` · ${item.model}` : '';
    }
    setChildren(rec.time, timeEl(item.at));
    el.dataset.delayed = String(!!(item.delayed && item.status === 'pending'));
    rec.status.textContent = statusText(item);
    if (rec.stop) drawStop(rec.stop, stopOf(state, item));
    const extra = rec.extra || {};
    this.drawAttempts(rec, extra.attempt);
    show(rec.action, !!extra.action && !extra.editing);
    show(rec.editor, !!extra.editing);
    show(rec.body, !extra.editing);
    if (extra.editing) this.drawEditor(rec, item);
    else clear(rec.editor);
    setChildren(rec.body, renderMarkdown(item.text));
    if (item.status === 'streaming' || item.status === 'pending') {
      // The cursor goes at the end of the last paragraph, where the next words will appear.
      const last = rec.body.lastElementChild;
      const host = last && (last.nodeName === 'P' || /^H\d$/.test(last.nodeName)) ? last
        : last && (last.nodeName === 'UL' || last.nodeName === 'OL') && last.lastElementChild ? last.lastElementChild : rec.body;
      host.appendChild(h('span', { class: 'cursor', 'aria-hidden': 'true' }));
    }
  }

  /** The next render scrolls to the end whatever the position (the person just sent something). */
  followNext() {
    this.follow = true;
  }

  distanceFromBottom() {
    const m = this.scroller;
    return m.scrollHeight - m.scrollTop - m.clientHeight;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.following = true;
    this.showJump(false);
  }
}

/** What a message shows besides its own item: its attempts, its action (Regenerate / Edit), the editor. */
function decorOf(state, item, turns, last, editing) {
  const action = item.role === 'assistant' ? last.regenerate === item.id : last.edit === item.id;
  return { attempt: attemptOf(state, item, turns), action, editing: action && editing?.id === item.id };
}

function drawStop(button, stop) {
  button.hidden = !stop;
  if (!stop) return;
  button.querySelector('.stop-label').textContent = ` ${stop.label}`;
  button.setAttribute('aria-label', stop.ariaLabel);
  button.disabled = stop.disabled;
}
