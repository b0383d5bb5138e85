// The sharing panel (owner only): search teammates by name or email, pick one or several, choose View only or
// Can respond for each, Share; below, everyone with access, with a permission picker and Remove for each. Teams
// (`/conversations/{id}/teams`): pick one of the org's teams and a permission; each team shared with is listed
// with its permission and Remove. A person's permission is the higher of their own share and their teams'.

import { h, clear, setChildren, show, icon, trapFocus, arrowKeys } from './dom.js';
import { PERMISSION_LABEL } from './permissions.js';
import { listOf, errorText } from './api.js';

export class SharePanel {
  constructor(ctx, view) {
    this.ctx = ctx;
    this.view = view;
    this.picked = new Map(); // user_id → {user, permission}
    this.access = [];
    this.searchSeq = 0;
    this.searchTimer = null;
    this.refreshTimer = null;
    this.el = this.build();
  }

  build() {
    this.search = h('input', {
      type: 'search',
      class: 'share-search',
      testid: 'share-search',
      placeholder: 'Search teammates by name or email',
      'aria-label': 'Search teammates by name or email',
      autocomplete: 'off',
      oninput: () => this.scheduleSearch(),
      onkeydown: (e) => this.resultKeys(e),
    });
    // Arrow keys move from the search field through the results (buttons: Enter or Space picks one).
    this.resultKeys = arrowKeys(() => [...this.results.querySelectorAll('[data-testid="share-result"]')]);
    this.results = h('ul', { class: 'share-results', testid: 'share-results', 'aria-label': 'Teammates found', onkeydown: (e) => this.resultKeys(e) });
    this.pickedEl = h('ul', { class: 'share-picked', testid: 'share-picked' });
    this.submitBtn = h('button', {
      type: 'button',
      class: 'btn btn-primary',
      testid: 'share-submit',
      disabled: true,
      onclick: () => this.submit(),
    }, 'Share');
    // A share can end by itself, exactly like a revoke (the server ends it; nobody has to act).
    this.expirySelect = h('select', { class: 'share-expiry', testid: 'share-expiry', 'aria-label': 'Access ends' },
      ...[['', 'Until removed'], ['3600', 'For 1 hour'], ['86400', 'For 1 day'], ['604800', 'For 7 days']]
        .map(([value, text]) => h('option', { value, text })));
    this.accessEl = h('ul', { class: 'share-access', testid: 'share-access-list' });
    this.errorEl = h('div', { class: 'form-error', testid: 'share-error', role: 'alert', hidden: true });
    this.teamPick = h('select', { class: 'perm-select', testid: 'share-team-pick', 'aria-label': 'Team to share with' });
    this.teamPermission = permissionSelect('view', 'share-team-permission', 'the team', () => {});
    this.teamSubmit = h('button', { type: 'button', class: 'btn', testid: 'share-team-submit', onclick: () => this.shareTeam() }, 'Share with team');
    this.teamsEl = h('ul', { class: 'share-access', testid: 'share-team-list' });
    const title = this.view.conv?.title || 'this conversation';
    this.dialog = h('div', {
      class: 'dialog share-panel',
      testid: 'share-panel',
      role: 'dialog',
      'aria-modal': 'true',
      'aria-label': `Share ${title}`,
    },
    h('header', { class: 'dialog-head' },
      h('h2', { text: `Share “${title}”` }),
      h('button', { type: 'button', class: 'btn btn-ghost', testid: 'share-close', 'aria-label': 'Close', onclick: () => this.close() }, icon('close'))),
    h('p', { class: 'muted small', text: 'Only members of your organization can be found. Teammates see the conversation in their sidebar at once.' }),
    this.search,
    this.results,
    this.pickedEl,
    h('div', { class: 'dialog-actions' }, this.expirySelect, this.submitBtn),
    this.errorEl,
    h('h3', { text: 'People with access' }),
    this.accessEl,
    h('h3', { text: 'Teams' }),
    h('div', { class: 'person-row share-team-form' }, this.teamPick, this.teamPermission, this.teamSubmit),
    this.teamsEl);
    return h('div', {
      class: 'overlay',
      testid: 'share-overlay',
      onclick: (e) => {
        if (e.target === e.currentTarget) this.close();
      },
    }, this.dialog);
  }

  open() {
    document.body.appendChild(this.el);
    this.release = trapFocus(this.dialog, () => this.close());
    this.renderPicked();
    this.refresh();
    this.search.focus();
  }

  close() {
    clearTimeout(this.searchTimer);
    clearTimeout(this.refreshTimer);
    this.el.remove();
    this.release?.();
    this.ctx.onShareClosed(this);
  }

  get base() {
    return `/conversations/${this.view.id}/shares`;
  }

  showError(text) {
    this.errorEl.textContent = text || '';
    show(this.errorEl, !!text);
  }

  // ------------------------------------------------------------ search & pick

  scheduleSearch() {
    clearTimeout(this.searchTimer);
    this.searchTimer = setTimeout(() => this.runSearch(), 200);
  }

  async runSearch() {
    const q = this.search.value.trim();
    const mySeq = ++this.searchSeq;
    if (!q) {
      clear(this.results);
      return;
    }
    let users;
    try {
      users = listOf(await this.ctx.api.get(`/users?q=${encodeURIComponent(q)}`), 'users');
    } catch (e) {
      if (mySeq === this.searchSeq) this.showError(`Search failed: ${errorText(e)}`);
      return;
    }
    if (mySeq !== this.searchSeq) return; // a newer search is on its way
    this.showError('');
    clear(this.results);
    const withAccess = new Map(this.access.map((a) => [a.user_id, a.permission]));
    const shown = users.filter((u) => userId(u) !== this.ctx.me.id);
    if (shown.length === 0) {
      this.results.appendChild(h('li', { class: 'muted small', testid: 'share-no-results', text: 'No teammate matches.' }));
      return;
    }
    for (const u of shown) {
      const id = userId(u);
      const has = withAccess.get(id);
      const picked = this.picked.has(id);
      this.results.appendChild(h('li', {},
        h('button', {
          type: 'button',
          class: 'share-result',
          testid: 'share-result',
          dataset: { userId: id, email: u.email || '' },
          disabled: !!has || picked,
          onclick: () => this.pick(u),
        },
        h('span', { class: 'person-name', text: u.name || u.email }),
        h('span', { class: 'muted small', text: ` ${u.email || ''}` }),
        has ? h('span', { class: 'badge', text: PERMISSION_LABEL[has] || has }) : picked ? h('span', { class: 'badge', text: 'picked' }) : null)));
    }
  }

  pick(u) {
    const id = userId(u);
    if (!id || this.picked.has(id)) return;
    this.picked.set(id, { user: u, permission: 'view' });
    this.renderPicked();
    this.runSearch();
    // The picked button is gone from under the focus: continue on the new row's permission.
    this.pickedEl.querySelector(`[data-user-id="${id}"] select`)?.focus();
  }

  renderPicked() {
    clear(this.pickedEl);
    for (const [id, p] of this.picked) {
      const select = permissionSelect(p.permission, 'share-picked-permission', p.user.name || p.user.email, (v) => {
        p.permission = v;
      });
      this.pickedEl.appendChild(h('li', { class: 'person-row', testid: 'share-picked-row', dataset: { userId: id } },
        h('span', { class: 'person' }, h('span', { class: 'person-name', text: p.user.name || p.user.email }),
          h('span', { class: 'muted small', text: ` ${p.user.email || ''}` })),
        select,
        h('button', {
          type: 'button',
          class: 'btn btn-ghost',
          testid: 'share-unpick',
          'aria-label': `Do not share with ${p.user.name || p.user.email}`,
          onclick: () => {
            this.picked.delete(id);
            this.renderPicked();
            this.runSearch();
            this.search.focus();
          },
        }, icon('close'))));
    }
    this.submitBtn.disabled = this.picked.size === 0;
    this.submitBtn.textContent = this.picked.size > 1 ? `Share with ${this.picked.size} people` : 'Share';
  }

  async submit() {
    if (this.picked.size === 0) return;
    const secs = Number(this.expirySelect.value);
    const expires_at = secs ? new Date(Date.now() + secs * 1000).toISOString() : null;
    const shares = [...this.picked.entries()].map(([user_id, p]) => ({ user_id, permission: p.permission, expires_at }));
    const names = [...this.picked.values()].map((p) => p.user.name || p.user.email);
    this.submitBtn.disabled = true;
    try {
      await this.ctx.api.post(this.base, { shares });
      this.picked.clear();
      this.search.value = '';
      clear(this.results);
      this.renderPicked();
      this.showError('');
      this.search.focus(); // Share is disabled now, and a disabled button loses the focus
      this.ctx.toast(`Shared with ${names.join(', ')}`);
      await this.refresh();
    } catch (e) {
      this.submitBtn.disabled = false;
      this.showError(`Not shared: ${errorText(e)}`);
    }
  }

  // ------------------------------------------------------------ who has access

  /** Refreshes soon (participant events can come in bursts). */
  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), 150);
  }

  async refresh() {
    this.refreshTeams();
    let list;
    try {
      list = listOf(await this.ctx.api.get(this.base), 'shares');
    } catch (e) {
      this.showError(`Could not load who has access: ${errorText(e)}`);
      return;
    }
    this.access = list.map((s) => ({
      user_id: s.user_id || s.id || s.user?.id,
      name: s.name || s.user?.name,
      email: s.email || s.user?.email,
      permission: s.permission,
      expiresAt: s.expires_at || null,
    }));
    this.renderAccess();
  }

  renderAccess() {
    const me = this.ctx.me;
    const ownerId = this.view.conv?.owner_id || me.id;
    const rows = [];
    const owner = this.access.find((a) => a.user_id === ownerId);
    rows.push(h('li', { class: 'person-row', testid: 'share-access-row', dataset: { userId: ownerId, permission: 'owner' } },
      h('span', { class: 'person' },
        h('span', { class: 'person-name', text: ownerId === me.id ? `${me.name} (you)` : owner?.name || 'Owner' }),
        h('span', { class: 'muted small', text: ` ${ownerId === me.id ? me.email || '' : owner?.email || ''}` })),
      h('span', { class: 'badge badge-owner', text: 'Owner' })));
    for (const a of this.access) {
      if (a.user_id === ownerId || a.permission === 'owner') continue;
      const who = a.name || a.email || 'this person';
      const select = permissionSelect(a.permission, 'share-access-permission', who, (v) => this.change(a, v, select));
      rows.push(h('li', { class: 'person-row', testid: 'share-access-row', dataset: { userId: a.user_id, permission: a.permission, email: a.email || '' } },
        h('span', { class: 'person' }, h('span', { class: 'person-name', text: a.name || a.email || a.user_id }),
          h('span', { class: 'muted small', text: ` ${a.email || ''}` }),
          a.expiresAt
            ? h('span', { class: 'muted small share-until', testid: 'share-until', text: ` · until ${new Date(a.expiresAt).toLocaleString()}` })
            : null),
        select,
        h('button', {
          type: 'button',
          class: 'btn btn-ghost btn-danger-text',
          testid: 'share-remove',
          'aria-label': `Remove ${who}`,
          onclick: () => this.remove(a),
        }, 'Remove')));
    }
    // A re-render replaces the row that had the focus (after a change): the focus stays on the same control of the
    // same person, or goes to the search when that person is gone (never onto someone else's Remove).
    const focused = this.accessEl.contains(document.activeElement) ? document.activeElement : null;
    const was = focused && { user: focused.closest('[data-user-id]')?.dataset.userId, testid: focused.dataset.testid };
    setChildren(this.accessEl, rows);
    if (was) (this.accessEl.querySelector(`[data-user-id="${was.user}"] [data-testid="${was.testid}"]`) || this.search).focus();
    if (this.access.filter((a) => a.user_id !== ownerId).length === 0) {
      this.accessEl.appendChild(h('li', { class: 'muted small', testid: 'share-nobody', text: 'Not shared with anyone yet.' }));
    }
  }

  async change(a, permission, select) {
    const before = a.permission;
    try {
      await this.ctx.api.patch(`${this.base}/${a.user_id}`, { permission });
      a.permission = permission;
      this.ctx.toast(`${a.name || a.email} can now: ${PERMISSION_LABEL[permission]}`);
      await this.refresh();
    } catch (e) {
      select.value = before;
      this.showError(`Permission not changed: ${errorText(e)}`);
    }
  }

  async remove(a) {
    try {
      await this.ctx.api.del(`${this.base}/${a.user_id}`);
      this.ctx.toast(`${a.name || a.email} no longer has access`);
      await this.refresh();
    } catch (e) {
      this.showError(`Not removed: ${errorText(e)}`);
    }
  }

  // ------------------------------------------------------------ teams

  get teamsBase() {
    return `/conversations/${this.view.id}/teams`;
  }

  async refreshTeams() {
    try {
      const [orgTeams, shared] = await Promise.all([
        this.ctx.api.get(`/orgs/${this.ctx.me.org_id}/teams`),
        this.ctx.api.get(`/conversations/${this.view.id}/teams`),
      ]);
      this.renderTeams(listOf(orgTeams, 'teams'), listOf(shared, 'teams'));
    } catch (e) {
      this.showError(`Could not load teams: ${errorText(e)}`);
    }
  }

  renderTeams(orgTeams, shared) {
    const sharedIds = new Set(shared.map((t) => t.team_id));
    const free = orgTeams.filter((t) => !sharedIds.has(t.id));
    setChildren(this.teamPick, free.length
      ? free.map((t) => h('option', { value: t.id, text: `${t.name} (${t.members.length})` }))
      : [h('option', { value: '', text: orgTeams.length ? 'Shared with every team' : 'Your organization has no teams yet' })]);
    this.teamPick.disabled = this.teamPermission.disabled = this.teamSubmit.disabled = free.length === 0;
    setChildren(this.teamsEl, shared.map((t) => {
      const select = permissionSelect(t.permission, 'share-team-row-permission', t.name, (v) => this.shareTeam(t.team_id, v));
      return h('li', { class: 'person-row', testid: 'share-team-row', dataset: { teamId: t.team_id, permission: t.permission } },
        h('span', { class: 'person' }, h('span', { class: 'person-name', text: t.name }),
          h('span', { class: 'muted small', text: ` ${t.members} ${t.members === 1 ? 'person' : 'people'}` })),
        select,
        h('button', { type: 'button', class: 'btn btn-ghost btn-danger-text', testid: 'share-team-remove', 'aria-label': `Stop sharing with ${t.name}`, onclick: () => this.unshareTeam(t) }, 'Remove'));
    }));
  }

  async shareTeam(teamId = this.teamPick.value, permission = this.teamPermission.value) {
    if (!teamId) return;
    try {
      const r = await this.ctx.api.put(`${this.teamsBase}/${teamId}`, { permission });
      const team = listOf(r, 'teams').find((t) => t.team_id === teamId);
      this.ctx.toast(`Team ${team?.name || ''}: ${PERMISSION_LABEL[permission]}`);
      await this.refresh();
    } catch (e) {
      this.showError(`Not shared with the team: ${errorText(e)}`);
    }
  }

  async unshareTeam(t) {
    try {
      await this.ctx.api.del(`${this.teamsBase}/${t.team_id}`);
      this.ctx.toast(`Team ${t.name} no longer has access`);
      await this.refresh();
    } catch (e) {
      this.showError(`Not removed: ${errorText(e)}`);
    }
  }
}

function userId(u) {
  return u.id || u.user_id;
}

function permissionSelect(value, testid, who, onChange) {
  const select = h('select', { class: 'perm-select', testid, 'aria-label': `Permission of ${who}`, onchange: () => onChange(select.value) },
    h('option', { value: 'view', text: PERMISSION_LABEL.view }),
    h('option', { value: 'respond', text: PERMISSION_LABEL.respond }));
  select.value = value === 'respond' ? 'respond' : 'view';
  return select;
}
