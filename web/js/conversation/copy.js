// "Continue as a copy": a small form under the header that asks how far back to copy (all of it, or up to one of
// the answers shown) and whether the files come along. Native radios, select and checkbox, so it works from the
// keyboard as any form does; Escape or Cancel closes it and gives the focus back to the Copy button.

import { h, setChildren, show } from '../dom.js';

export class CopyPicker {
  /** @param {(choice: {upTo: string|null, attachments: boolean}) => Promise<void>} onCopy */
  constructor(onCopy) {
    this.onCopy = onCopy;
    this.opener = null;
    this.allRadio = h('input', { type: 'radio', name: 'copy-range', value: 'all', testid: 'copy-all', checked: true });
    this.upToRadio = h('input', { type: 'radio', name: 'copy-range', value: 'up-to', testid: 'copy-up-to' });
    this.pointSelect = h('select', {
      class: 'copy-point', testid: 'copy-point', 'aria-label': 'Last answer to copy',
      onchange: () => { this.upToRadio.checked = true; },
    });
    this.filesBox = h('input', { type: 'checkbox', testid: 'copy-attachments' });
    this.filesLabel = h('label', { class: 'copy-files' }, this.filesBox, ' With the attached files');
    this.upToLabel = h('label', { class: 'copy-choice' }, this.upToRadio, ' Up to the answer ', this.pointSelect);
    this.el = h('form', {
      class: 'settings-panel copy-panel', testid: 'copy-panel', hidden: true, 'aria-label': 'Continue as a copy',
      onkeydown: (e) => { if (e.key === 'Escape') this.close(); },
      onsubmit: async (e) => {
        e.preventDefault();
        const upTo = this.upToRadio.checked ? this.pointSelect.value || null : null;
        await this.onCopy({ upTo, attachments: this.filesBox.checked });
        this.close(false);
      },
    },
    h('fieldset', { class: 'copy-range' },
      h('legend', { text: 'How far back' }),
      h('label', { class: 'copy-choice' }, this.allRadio, ' All of it'),
      this.upToLabel),
    this.filesLabel,
    h('div', { class: 'settings-buttons' },
      h('button', { type: 'submit', class: 'btn btn-primary', testid: 'copy-confirm', text: 'Copy' }),
      h('button', { type: 'button', class: 'btn btn-ghost', testid: 'copy-cancel', text: 'Cancel', onclick: () => this.close() })));
  }

  get open() {
    return !this.el.hidden;
  }

  /**
   * Shows the form for `points` (`{id, label}` of the answers a copy may end at) and focuses its first choice.
   * @param {HTMLElement} opener  gets the focus back when the form closes
   */
  show(points, hasFiles, opener) {
    this.opener = opener;
    setChildren(this.pointSelect, ...points.map((p) => h('option', { value: p.id, text: p.label })));
    if (points.length) this.pointSelect.value = points[points.length - 1].id;
    show(this.upToLabel, points.length > 1);
    this.allRadio.checked = true;
    this.filesBox.checked = false;
    show(this.filesLabel, hasFiles);
    show(this.el, true);
    opener?.setAttribute('aria-expanded', 'true');
    this.allRadio.focus();
  }

  close(refocus = true) {
    if (this.el.hidden) return;
    show(this.el, false);
    this.opener?.setAttribute('aria-expanded', 'false');
    if (refocus) this.opener?.focus();
  }
}
