// The team panel (org admins): invite teammates by link (`POST /orgs/{id}/invites`: one link per email, or one
// open link; listed with their status, pending ones can be revoked), everyone in the organization, and a form to
// add a teammate with a first password (`POST /orgs/{id}/members`). Teammates then sign in and find conversations shared with them in their sidebar.
// Each member's row can reset their password (`PUT /orgs/{id}/members/{user}/password`) or remove them
// (`DELETE /orgs/{id}/members/{user}`), each after a confirm: both sign the member out everywhere at once.
// Teams (`/orgs/{id}/teams`): create one, add and remove its members; owners then share with a team at once.
// Also the org's retention (`GET`/`PUT /orgs/{id}/retention`): erase conversations not updated for N days.

import { h, setChildren, show, icon, trapFocus } from './dom.js';
import { listOf, errorText } from './api.js';

/** What `GET /users` returns at most: the list says so when it is full. */
const MEMBERS_SHOWN = 20;

/** One of the panel's forms: its labelled fields (`[label, input]`), then its actions; submitting calls `submit`. */
function panelForm(testid, submit, fields, ...actions) {
  return h('form', {
    class: 'team-form',
    testid,
    onsubmit: (e) => {
      e.preventDefault();
      submit();
    },
  },
  ...fields.map(([label, input]) => h('label', {}, label, input)),
  h('div', { class: 'dialog-actions' }, ...actions));
}

/** A person's row: the name (styled by `nameClass`), the email, then `rest`. */
function personRow(testid, userId, nameClass, name, email, ...rest) {
  return h('li', { class: 'person-row', testid, dataset: { userId } },
    h('span', { class: nameClass, text: name }), h('span', { class: 'muted small', text: ` ${email}` }), ...rest);
}

/** A button that takes something away (red text), named `label` for screen readers. */
function removeButton(testid, label, onclick, text) {
  return h('button', { type: 'button', class: 'btn btn-ghost btn-danger-text', testid, 'aria-label': label, onclick }, text);
}

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
    this.inviteEmails = h('textarea', { testid: 'invite-emails', rows: '2', placeholder: 'name@company.com, other@company.com (empty: one link for anyone)', 'aria-label': 'Emails to invite' });
    this.inviteLinks = h('ul', { class: 'invite-links', testid: 'invite-links', 'aria-live': 'polite' });
    this.invitesEl = h('ul', { class: 'team-list', testid: 'invites-list' });
    this.teamName = h('input', { type: 'text', testid: 'teams-name', required: true, maxlength: '80', autocomplete: 'off', placeholder: 'e.g. Design', 'aria-label': 'New team name' });
    this.teamsEl = h('ul', { class: 'team-list', testid: 'teams-list' });
    this.retention = h('input', { type: 'number', min: '1', max: '36500', testid: 'retention-days', placeholder: 'off', 'aria-label': 'Days' });
    this.retentionMsg = h('span', { class: 'muted small', testid: 'retention-status', role: 'status' });
    const org = this.ctx.me.org_name || 'your organization';
    const dialog = this.dialog = h('div', { class: 'dialog team-panel', testid: 'team-panel', role: 'dialog', 'aria-modal': 'true', 'aria-label': `Team of ${org}` },
      h('header', { class: 'dialog-head' },
        h('h2', { text: `Team — ${org}` }),
        h('button', { type: 'button', class: 'btn btn-ghost', testid: 'team-close', 'aria-label': 'Close', onclick: () => this.close() }, icon('close'))),
      panelForm('team-form', () => this.add(), [['Name', this.name], ['Email', this.email], ['First password', this.password]],
        this.submitBtn),
      h('p', { class: 'muted small', text: 'Give them the password; they sign in with their email.' }),
      this.errorEl,
      this.doneEl,
      h('h3', { text: 'Invite by link' }),
      panelForm('invite-form', () => this.invite(), [['Emails (one link each; a link works once, for a week)', this.inviteEmails]],
        h('button', { type: 'submit', class: 'btn', testid: 'invite-create', text: 'Create invite links' })),
      this.inviteLinks,
      this.invitesEl,
      h('h3', { text: 'Members' }),
      this.filter,
      this.members,
      this.more,
      h('h3', { text: 'Teams' }),
      panelForm('teams-form', () => this.createTeam(), [['New team', this.teamName]],
        h('button', { type: 'submit', class: 'btn', testid: 'teams-create', text: 'Create team' })),
      this.teamsEl,
      h('h3', { text: 'Retention' }),
      panelForm('retention-form', () => this.saveRetention(), [['Erase conversations not updated for this many days (empty: keep them)', this.retention]],
        this.retentionMsg, h('button', { type: 'submit', class: 'btn', testid: 'retention-save', text: 'Save' })));
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
    this.refreshInvites();
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
      this.users = users;
      this.refreshTeams();
      setChildren(this.members, users.map((u) => this.memberRow(u)));
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  memberRow(u) {
    const mine = u.id === this.ctx.me.id;
    const row = personRow('team-member', u.id, 'team-member-name', u.name, u.email);
    if (mine) return row;
    const password = h('input', {
      type: 'text', testid: 'member-new-password', required: true, minlength: '8', autocomplete: 'off',
      placeholder: 'new password, at least 8 characters', 'aria-label': `New password for ${u.name}`,
    });
    const form = h('form', {
      class: 'member-reset', testid: 'member-reset-form', hidden: true,
      onsubmit: (e) => { e.preventDefault(); this.resetPassword(u, password.value); },
    }, password, h('button', { type: 'submit', class: 'btn', testid: 'member-reset-submit', text: 'Set password' }));
    row.append(
      h('span', { class: 'member-actions' },
        h('button', {
          type: 'button', class: 'btn btn-ghost', testid: 'member-reset', 'aria-label': `Reset password for ${u.name}`,
          onclick: () => { show(form, form.hidden); if (!form.hidden) password.focus(); },
        }, 'Reset password'),
        removeButton('member-remove', `Remove ${u.name}`, () => this.removeMember(u), 'Remove')),
      form);
    return row;
  }

  membersPath(u) { return `/orgs/${this.ctx.me.org_id}/members/${u.id}`; }

  async resetPassword(u, password) {
    if (!confirm(`Set a new password for ${u.name}? They are signed out everywhere and sign in with the new one; tell them yourself.`)) return;
    await this.memberChange(`${u.name}’s password was changed; they were signed out.`,
      () => this.ctx.api.put(`${this.membersPath(u)}/password`, { password }));
  }

  async removeMember(u) {
    if (!confirm(`Remove ${u.name} from the organization? They are signed out at once, cannot sign in again, and leave every team and every conversation shared with them. Their messages stay.`)) return;
    await this.memberChange(`${u.name} was removed.`, () => this.ctx.api.del(this.membersPath(u)));
  }

  async memberChange(done, call) {
    show(this.errorEl, false);
    show(this.doneEl, false);
    try {
      await call();
      this.doneEl.textContent = done;
      show(this.doneEl, true);
      this.refresh();
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

  invitesPath() { return `/orgs/${this.ctx.me.org_id}/invites`; }

  async invite() {
    const emails = this.inviteEmails.value.split(/[\s,;]+/).map((e) => e.trim()).filter(Boolean);
    try {
      const r = await this.ctx.api.post(this.invitesPath(), { emails });
      this.inviteEmails.value = '';
      setChildren(this.inviteLinks, listOf(r, 'invites').map((i) => {
        const link = `${location.origin}${location.pathname}#invite=${encodeURIComponent(i.token)}`;
        return h('li', { testid: 'invite-link', dataset: { email: i.email || '' } },
          h('span', { class: 'muted small', text: `${i.email || 'Anyone'}: ` }),
          h('input', { type: 'text', readonly: true, value: link, class: 'invite-url', testid: 'invite-url', 'aria-label': `Invite link for ${i.email || 'anyone'}`, onfocus: (e) => e.target.select() }));
      }));
      this.refreshInvites();
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  async refreshInvites() {
    try {
      const invites = listOf(await this.ctx.api.get(this.invitesPath()), 'invites');
      setChildren(this.invitesEl, invites.map((i) => h('li', { class: 'person-row', testid: 'invite-row', dataset: { status: i.status, email: i.email || '' } },
        h('span', { class: 'person-name', text: i.email || 'Anyone with the link' }),
        h('span', { class: 'badge', text: i.status }),
        i.status === 'pending'
          ? removeButton('invite-revoke', `Revoke the invite for ${i.email || 'anyone'}`, () => this.revokeInvite(i), 'Revoke')
          : null)));
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  async revokeInvite(i) {
    try {
      await this.ctx.api.del(`${this.invitesPath()}/${i.id}`);
      this.refreshInvites();
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  teamsPath() { return `/orgs/${this.ctx.me.org_id}/teams`; }

  async refreshTeams() {
    try {
      this.renderTeams(listOf(await this.ctx.api.get(this.teamsPath()), 'teams'));
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  renderTeams(teams) {
    setChildren(this.teamsEl, teams.map((t) => {
      const inTeam = new Set(t.members.map((m) => m.user_id));
      const candidates = (this.users || []).filter((u) => !inTeam.has(u.id));
      const pick = h('select', { class: 'perm-select', testid: 'teams-member-pick', 'aria-label': `Add to ${t.name}` },
        h('option', { value: '', text: 'Add a member…' }),
        ...candidates.map((u) => h('option', { value: u.id, text: `${u.name} (${u.email})` })));
      pick.onchange = () => this.teamChange(t, 'POST', `${this.teamsPath()}/${t.id}/members`, { user_ids: [pick.value] });
      return h('li', { class: 'team-row', testid: 'teams-row', dataset: { teamId: t.id } },
        h('div', { class: 'person-row' }, h('strong', { class: 'person-name', text: t.name }),
          h('span', { class: 'muted small', text: ` ${t.members.length} ${t.members.length === 1 ? 'member' : 'members'}` }), pick),
        h('ul', { class: 'team-row-members' }, ...t.members.map((m) => personRow('teams-member', m.user_id, 'person-name', m.name, m.email,
          removeButton('teams-member-remove', `Remove ${m.name} from ${t.name}`,
            () => this.teamChange(t, 'DELETE', `${this.teamsPath()}/${t.id}/members/${m.user_id}`), 'Remove')))));
    }));
  }

  async createTeam() {
    try {
      await this.ctx.api.post(this.teamsPath(), { name: this.teamName.value.trim() });
      this.teamName.value = '';
      this.refreshTeams();
    } catch (e) {
      this.showError(errorText(e));
    }
  }

  async teamChange(team, method, path, body) {
    try {
      await (method === 'POST' ? this.ctx.api.post(path, body) : this.ctx.api.del(path));
      this.refreshTeams();
    } catch (e) {
      this.showError(`${team.name}: ${errorText(e)}`);
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
