// The message history view: draws the timeline of the conversation state (state.js), one element per item, kept
// by id. An item is redrawn only when its object changed (the reducer gives a changed item a new object), so a
// streaming answer redraws itself and nothing else.
//
// Scrolling: the view follows new text only while the person is at the bottom. Any scroll up, however small,
// stops following (nothing snaps back); then a "Jump to latest" button shows, saying "New text below" once more
// arrives, and following resumes at the bottom again.

import { h, setChildren, icon, timeEl } from '../dom.js';
import { renderMarkdown } from '../markdown.js';
import { timeline, stopOf, statusText } from './state.js';

export class MessageList {
  /**
   * @param {object} o
   * @param {string} o.meName  the signed-in person's name, for their own messages on the way
   * @param {(item: object) => void} o.onStop  Stop clicked on a running answer
   * @param {(before: string) => void} o.onLoadEarlier  "Load earlier messages" clicked
   */
  constructor({ meName, onStop, onLoadEarlier }) {
    this.meName = meName;
    this.onStop = onStop;
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
    for (const item of timeline(state)) {
      seen.add(item.id);
      let rec = this.records.get(item.id);
      if (!rec || rec.item.kind !== item.kind) {
        if (rec) rec.el.remove();
        rec = this.create(item);
        this.records.set(item.id, rec);
      }
      if (!rec.drawn || rec.item !== item || rec.permission !== state.permission) this.draw(rec, item, state);
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
    };
    const el = h('article', { class: `msg msg-${item.role}`, testid: 'message', dataset: { role: item.role, messageId: item.id } },
      h('header', { class: 'msg-head' }, parts.author, parts.meta, parts.time, parts.status, parts.stop), parts.body);
    const rec = { item, el, ...parts };
    if (parts.stop) parts.stop.addEventListener('click', () => this.onStop(rec.item));
    return rec;
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

function drawStop(button, stop) {
  button.hidden = !stop;
  if (!stop) return;
  button.querySelector('.stop-label').textContent = ` ${stop.label}`;
  button.setAttribute('aria-label', stop.ariaLabel);
  button.disabled = stop.disabled;
}
