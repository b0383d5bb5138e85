// The team panel (org admins): everyone in the organization, and a form to add a teammate with a first password
// (`POST /orgs/{id}/members`). Teammates then sign in and find conversations shared with them in their sidebar.
// Also the org's retention (`GET`/`PUT /orgs/{id}/retention`): erase conversations not updated for N days.

import { h, setChildren, show, icon, trapFocus } from './dom.js';
import { listOf, errorText } from './api.js';

/** What `GET /users` returns at most: the list says so when it is full. */
const MEMBERS_SHOWN = 20;

export class TeamPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.el = this.build();
  }

  build() {
    this.name = h('input', { type: 'text', testid: 'team-name', required: true, maxlength: '100', autocomplete: 'off', placeholder: 'Full name' });
    this.email = h('input', { type: 'email', testid: 'team-email', required: true, autocomplete: 'off', placeholder: 'name@company.com' });
    this.password = h('input', { type: 'text', testid: 'team-password', required: true, minlength: '8', autocomplete: 'off', placeholder: 'at least 8 characters' });
    this.errorEl = h('div', { class: 'form-error', testid: 'team-error', role: 'alert', hidden: true });
    this.doneEl = h('div', { class: 'form-ok', testid: 'team-added', role: 'status', hidden: true });
    this.submitBtn = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'team-add', text: 'Add teammate' });
    this.members = h('ul', { class: 'team-members', testid: 'team-members' });
    this.filter = h('input', {
      type: 'search', class: 'share-search', testid: 'team-search', placeholder: 'Find a member by name or email',
      'aria-label': 'Find a member', autocomplete: 'off',
      oninput: () => {
        clearTimeout(this.filterTimer);
        this.filterTimer = setTimeout(() => this.refresh(), 200);
      },
    });
    this.more = h('p', { class: 'muted small', testid: 'team-more', hidden: true, text: `Showing the first ${MEMBERS_SHOWN}; find others by name or email.` });
    this.retention = h('input', { type: 'number', min: '1', max: '36500', testid: 'retention-days', placeholder: 'off', 'aria-label': 'Days' });
    this.retentionMsg = h('span', { class: 'muted small', testid: 'retention-status', role: 'status' });
    const org = this.ctx.me.org_name || 'your organization';
    const dialog = this.dialog = h('div', { class: 'dialog team-panel', testid: 'team-panel', role: 'dialog', 'aria-modal': 'true', 'aria-label': `Team of ${org}` },
      h('header', { class: 'dialog-head' },
        h('h2', { text: `Team — ${org}` }),
        h('button', { type: 'button', class: 'btn btn-ghost', testid: 'team-close', 'aria-label': 'Close', onclick: () => this.close() }, icon('close'))),
      h('form', {
        class: 'team-form',
        testid: 'team-form',
        onsubmit: (e) => {
          e.preventDefault();
          this.add();
        },
      },
      h('label', {}, 'Name', this.name),
      h('label', {}, 'Email', this.email),
      h('label', {}, 'First password', this.password),
      h('div', { class: 'dialog-actions' }, this.submitBtn)),
      h('p', { class: 'muted small', text: 'Give them the password; they sign in with their email.' }),
      this.errorEl,
      this.doneEl,
      h('h3', { text: 'Members' }),
      this.filter,
      this.members,
      this.more,
      h('h3', { text: 'Retention' }),
      h('form', {
        class: 'team-form', testid: 'retention-form',
        onsubmit: (e) => {
          e.preventDefault();
          this.saveRetention();
        },
      },
      h('label', {}, 'Erase conversations not updated for this many days (empty: keep them)', this.retention),
      h('div', { class: 'dialog-actions' }, this.retentionMsg, h('button', { type: 'submit', class: 'btn', testid: 'retention-save', text: 'Save' }))));
    return h('div', {
      class: 'overlay',
      testid: 'team-overlay',
      onclick: (e) => {
        if (e.target === e.currentTarget) this.close();
      },
    }, dialog);
  }

  open() {
    document.body.appendChild(this.el);
    this.release = trapFocus(this.dialog, () => this.close());
    this.refresh();
    this.loadRetention();
    this.name.focus();
  }

  close() {
    clearTimeout(this.filterTimer);
    this.el.remove();
    this.release?.();
    this.ctx.onTeamClosed(this);
  }

  async refresh() {
    try {
      const users = listOf(await this.ctx.api.get(`/users?q=${encodeURIComponent(this.filter.value.trim())}`), 'users');
      show(this.more, users.length >= MEMBERS_SHOWN);
      setChildren(this.members, users.map((u) => h('li', { testid: 'team-member', dataset: { userId: u.id } },
        h('span', { class: 'team-member-name', text: u.name }), h('span', { class: 'muted small', text: ` ${u.email}` }))));
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  async add() {
    show(this.errorEl, false);
    show(this.doneEl, false);
    this.submitBtn.disabled = true;
    const name = this.name.value.trim();
    try {
      await this.ctx.api.post(`/orgs/${this.ctx.me.org_id}/members`, { name, email: this.email.value.trim(), password: this.password.value });
      this.doneEl.textContent = `${name} was added. They can sign in now.`;
      show(this.doneEl, true);
      for (const input of [this.name, this.email, this.password]) input.value = '';
      this.refresh();
    } catch (e) {
      this.showError(errorText(e));
    } finally {
      this.submitBtn.disabled = false;
    }
  }

  retentionPath() { return `/orgs/${this.ctx.me.org_id}/retention`; }

  async loadRetention() {
    try {
      const r = await this.ctx.api.get(this.retentionPath());
      this.retention.value = r.retention_days ?? '';
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  async saveRetention() {
    const text = this.retention.value.trim();
    try {
      const r = await this.ctx.api.put(this.retentionPath(), { retention_days: text === '' ? null : Number(text) });
      this.retentionMsg.textContent = r.retention_days ? `Saved: erased after ${r.retention_days} days without updates.` : 'Saved: conversations are kept.';
    } catch (e) {
      this.retentionMsg.textContent = errorText(e);
    }
  }

  showError(text) {
    this.errorEl.textContent = text;
    show(this.errorEl, true);
  }
}
