// The chat header: title (the owner renames it in place), who shared it, the permission badge, the model (a picker
// for those who may respond), temperature and system prompt (summary for everyone, a Settings panel for those who
// may respond), who is watching, and Share / Leave / Delete. It renders the conversation state (state.js) and
// hands what the person does to `actions`.

import { h, clear, setChildren, show, icon } from '../dom.js';
import { canRespond, PERMISSION_LABEL } from '../permissions.js';
import { settingsSummary, copyPoints } from './state.js';
import { CopyPicker } from './copy.js';

export class ChatHeader {
  /**
   * @param {object} actions  `rename(title)` → Promise<boolean>, `changeModel(model)`, `saveSettings(patch)` →
   *   Promise<boolean>, `share()`, `leave()`, `remove()`, `exportAs(format)`, `copy({upTo, attachments})`,
   *   `models()` → Promise<string[]>,
   *   `ownerName()`, `toast(text, kind)`
   */
  constructor(actions) {
    this.actions = actions;
    this.state = null;
    this.build();
  }

  build() {
    const a = this.actions;
    this.titleEl = h('h1', { class: 'chat-title', testid: 'chat-title', dir: 'auto', text: 'Loading…' });
    this.permBadge = h('span', { class: 'badge', testid: 'permission-badge', hidden: true });
    // Renaming (owner): the title becomes a field; Enter saves, Escape cancels.
    this.renameInput = h('input', {
      type: 'text', dir: 'auto', class: 'rename-input', testid: 'rename-input', 'aria-label': 'Title',
      onkeydown: (e) => { if (e.key === 'Escape') this.endRename(true); },
    });
    this.renameForm = h('form', {
      class: 'rename-form', testid: 'rename-form', hidden: true,
      // Clicking or tabbing away cancels, as Escape does; the form's own buttons keep it open.
      onfocusout: (e) => { if (!this.renameForm.contains(e.relatedTarget)) this.endRename(); },
      onsubmit: async (e) => {
        e.preventDefault();
        const t = this.renameInput.value.trim();
        const why = titleProblem(t);
        if (why) a.toast(why, 'error', 'title');
        else if (await a.rename(t)) this.endRename();
      },
    }, this.renameInput,
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'rename-save', text: 'Save' }),
    h('button', { type: 'button', class: 'btn btn-ghost', text: 'Cancel', onclick: () => this.endRename(true) }));
    this.renameBtn = button('rename-button', 'pencil', 'Rename', 'Rename this conversation', () => this.startRename());
    this.ownerEl = h('span', { class: 'chat-owner', testid: 'chat-owner' });
    this.modelSelect = h('select', {
      class: 'model-select', testid: 'model-select', 'aria-label': 'Model', hidden: true,
      onchange: () => this.changeModel(),
    });
    this.modelLabel = h('span', { class: 'model-label', testid: 'model-label' });
    this.settingsNote = h('span', { class: 'settings-note', testid: 'settings-note', hidden: true });
    this.settingsSummary = h('span', { class: 'settings-summary', testid: 'settings-summary', hidden: true });
    this.settingsBtn = button('settings-button', 'sliders', 'Settings', 'Temperature and system prompt', () => this.toggleSettings());
    this.settingsBtn.setAttribute('aria-expanded', 'false');
    this.buildSettings();
    this.presenceEl = h('div', { class: 'presence', testid: 'presence', 'aria-live': 'polite' });
    this.shareBtn = button('share-button', 'share', 'Share', 'Share this conversation', a.share, 'btn btn-primary');
    this.leaveBtn = button('leave-button', 'close', 'Leave', 'Leave this conversation (it leaves your sidebar)', a.leave);
    this.deleteBtn = button('delete-button', 'trash', 'Delete', 'Delete this conversation for everyone', a.remove);
    // Anyone who can see it may export it or continue it as a copy of their own.
    this.exportMdBtn = button('export-markdown', 'download', 'Markdown', 'Export as Markdown', () => a.exportAs('markdown'));
    this.exportJsonBtn = button('export-json', 'download', 'JSON', 'Export as JSON', () => a.exportAs('json'));
    this.copyBtn = button('copy-button', 'copy', 'Copy', 'Continue as a copy of your own', () => this.toggleCopy());
    this.copyBtn.setAttribute('aria-expanded', 'false');
    this.copyPicker = new CopyPicker((choice) => a.copy(choice));
    this.el = h('header', { class: 'chat-header' },
      h('div', { class: 'chat-heading' },
        h('div', { class: 'chat-title-row' }, this.titleEl, this.renameForm, this.permBadge),
        h('div', { class: 'chat-sub' },
          this.ownerEl,
          h('span', { class: 'model' }, h('span', { class: 'muted', text: 'Model ' }), this.modelSelect, this.modelLabel),
          this.settingsSummary,
          this.settingsNote),
        this.presenceEl),
      h('div', { class: 'chat-actions' }, this.settingsBtn, this.renameBtn, this.shareBtn, this.copyBtn, this.exportMdBtn,
        this.exportJsonBtn, this.leaveBtn, this.deleteBtn));
  }

  /** Temperature and system prompt: shown to everyone when set, editable by Can respond and the owner. */
  buildSettings() {
    this.temperatureInput = h('input', {
      type: 'number', min: '0', max: '2', step: '0.1', placeholder: 'model default',
      class: 'settings-temperature', testid: 'settings-temperature', 'aria-label': 'Temperature',
    });
    this.systemPromptInput = h('textarea', {
      rows: 3, maxlength: '16000', placeholder: 'None', dir: 'auto',
      class: 'settings-system-prompt', testid: 'settings-system-prompt', 'aria-label': 'System prompt',
    });
    this.settingsPanel = h('form', {
      class: 'settings-panel', testid: 'settings-panel', hidden: true, 'aria-label': 'Temperature and system prompt',
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
  }

  render(state) {
    const prev = this.state;
    this.state = state;
    const { conv, permission } = state;
    if (!conv) return;
    const respond = canRespond(permission);
    const owner = permission === 'owner';
    this.titleEl.textContent = conv.title || 'Untitled conversation';
    const mine = conv.owner_id === state.me || owner;
    this.ownerEl.textContent = mine ? '' : `Shared by ${conv.owner_name || state.participants[conv.owner_id]?.name || this.actions.ownerName() || 'a teammate'}`;
    show(this.ownerEl, !mine);
    this.permBadge.textContent = PERMISSION_LABEL[permission] || '';
    this.permBadge.dataset.permission = permission || '';
    this.permBadge.className = `badge badge-${permission}`;
    show(this.permBadge, !!permission && !mine);
    this.modelLabel.textContent = conv.model || '';
    const summary = settingsSummary(conv);
    this.settingsSummary.textContent = summary;
    this.settingsSummary.title = conv.system_prompt || '';
    show(this.settingsSummary, summary !== '');
    this.settingsNote.textContent = state.settingsNote;
    show(this.settingsNote, state.settingsNote !== '');
    show(this.modelSelect, respond);
    show(this.modelLabel, !respond);
    show(this.settingsBtn, respond);
    if (!respond) this.toggleSettings(false);
    show(this.shareBtn, owner);
    show(this.renameBtn, owner && this.renameForm.hidden);
    if (!owner) this.endRename();
    show(this.deleteBtn, owner);
    show(this.leaveBtn, !!permission && !owner);
    for (const b of [this.copyBtn, this.exportMdBtn, this.exportJsonBtn]) show(b, !!permission);
    if (!permission) this.copyPicker.close(false);
    if (!this.settingsDirty(prev?.conv)) this.fillSettings();
    if (respond) this.fillModels();
  }

  async fillModels() {
    const models = await this.actions.models();
    const current = this.state.conv.model;
    const ids = models.includes(current) || !current ? models : [current, ...models];
    const existing = [...this.modelSelect.options].map((o) => o.value);
    if (existing.join('\n') !== ids.join('\n')) {
      clear(this.modelSelect);
      for (const m of ids) this.modelSelect.appendChild(h('option', { value: m, text: m }));
    }
    this.modelSelect.value = current;
  }

  async changeModel() {
    const model = this.modelSelect.value;
    const before = this.state.conv.model;
    if (!model || model === before) return;
    if (!(await this.actions.changeModel(model))) this.modelSelect.value = before;
  }

  setViewers(viewers, me) {
    const seen = new Map();
    for (const v of viewers) if (v && v.user_id && !seen.has(v.user_id)) seen.set(v.user_id, v);
    if (seen.size === 0) {
      this.presenceEl.textContent = '';
      return;
    }
    const names = [...seen].map(([id, v]) => (id === me ? `${v.name || 'You'} (you)` : v.name || 'Someone'));
    // Who is composing right now (the server never marks View Only people); not yourself.
    const typing = [...seen].filter(([id, v]) => v.typing && id !== me).map(([, v]) => v.name || 'Someone');
    setChildren(this.presenceEl, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), `Watching now: ${names.join(', ')}`,
      typing.length
        ? h('span', { class: 'typing', testid: 'typing', text: ` · ${typing.join(', ')} ${typing.length === 1 ? 'is' : 'are'} typing…` })
        : null);
  }

  // ---------------------------------------------------------------- rename

  startRename() {
    this.renameInput.value = this.state?.conv?.title || '';
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
    show(this.renameBtn, this.state?.permission === 'owner');
    if (refocus && !this.renameBtn.hidden) this.renameBtn.focus();
  }

  // ---------------------------------------------------------------- settings

  toggleSettings(open = this.settingsPanel.hidden) {
    if (open) this.fillSettings();
    show(this.settingsPanel, open);
    this.settingsBtn.setAttribute('aria-expanded', String(open));
    if (open) this.temperatureInput.focus();
  }

  /** The form's values as the conversation has them. */
  fillSettings() {
    const conv = this.state?.conv;
    if (!conv) return;
    this.temperatureInput.value = conv.temperature == null ? '' : String(Number(conv.temperature.toFixed(2)));
    this.systemPromptInput.value = conv.system_prompt || '';
  }

  /** The fields that differ from `conv`'s settings, as the PATCH body wants them. */
  settingsPatch(conv = this.state.conv) {
    const patch = {};
    const t = this.temperatureInput.value.trim();
    const temperature = t === '' ? null : Number(t);
    const current = conv.temperature == null ? null : Number(conv.temperature.toFixed(2));
    if (temperature !== current) patch.temperature = temperature;
    const prompt = this.systemPromptInput.value.trim() === '' ? null : this.systemPromptInput.value;
    if (prompt !== (conv.system_prompt || null)) patch.system_prompt = prompt;
    return patch;
  }

  /** Opens (or closes) the "how far back" form of a copy. */
  toggleCopy() {
    if (this.copyPicker.open) return this.copyPicker.close();
    const state = this.state;
    this.copyPicker.show(copyPoints(state), (state.attachments || []).length > 0, this.copyBtn);
  }

  /** Whether someone is editing the open panel (its values differ from what the conversation had). */
  settingsDirty(conv) {
    return !!conv && !this.settingsPanel.hidden && Object.keys(this.settingsPatch(conv)).length > 0;
  }

  async saveSettings() {
    const patch = this.settingsPatch();
    if ('temperature' in patch && patch.temperature !== null && !(patch.temperature >= 0 && patch.temperature <= 2)) {
      this.actions.toast('Temperature must be between 0 and 2', 'error');
      return;
    }
    if (Object.keys(patch).length === 0 || (await this.actions.saveSettings(patch))) this.toggleSettings(false);
  }
}

export const MAX_TITLE_CHARS = 200;

/** Why `title` (trimmed) cannot be a title, or null. */
export function titleProblem(title) {
  if (!title) return 'A title cannot be blank';
  const n = [...title].length;
  return n > MAX_TITLE_CHARS ? `A title has at most ${MAX_TITLE_CHARS} characters; this one has ${n}.` : null;
}

function button(testid, iconName, label, title, onclick, cls = 'btn btn-ghost') {
  return h('button', { type: 'button', class: cls, testid, hidden: true, title, onclick: () => onclick() },
    icon(iconName), h('span', { class: 'btn-label', text: label }));
}
