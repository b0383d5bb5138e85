// Syntax highlighting for code blocks. highlight.js (vendored at a pinned version in web/vendor/highlight/, see
// web/README.md) finds the tokens; this module turns its token tree into <span class="hljs-…"> elements and text
// nodes. Its HTML output (`result.value`) is never used, so code text can never become markup. A half-streamed
// block highlights as far as it goes (`ignoreIllegals`), and the next frame redraws it whole.

import hljs from '../vendor/highlight/core.min.js';
import bash from '../vendor/highlight/languages/bash.min.js';
import c from '../vendor/highlight/languages/c.min.js';
import cpp from '../vendor/highlight/languages/cpp.min.js';
import css from '../vendor/highlight/languages/css.min.js';
import diff from '../vendor/highlight/languages/diff.min.js';
import go from '../vendor/highlight/languages/go.min.js';
import java from '../vendor/highlight/languages/java.min.js';
import javascript from '../vendor/highlight/languages/javascript.min.js';
import json from '../vendor/highlight/languages/json.min.js';
import markdown from '../vendor/highlight/languages/markdown.min.js';
import python from '../vendor/highlight/languages/python.min.js';
import rust from '../vendor/highlight/languages/rust.min.js';
import shell from '../vendor/highlight/languages/shell.min.js';
import sql from '../vendor/highlight/languages/sql.min.js';
import typescript from '../vendor/highlight/languages/typescript.min.js';
import xml from '../vendor/highlight/languages/xml.min.js';
import yaml from '../vendor/highlight/languages/yaml.min.js';

const LANGUAGES = { bash, c, cpp, css, diff, go, java, javascript, json, markdown, python, rust, shell, sql, typescript, xml, yaml };
for (const [name, grammar] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, grammar);

/** Longer code is shown plain: highlighting it on every streamed frame would cost more than it gives. */
const MAX_CHARS = 100000;

/**
 * Fills `code` (a <code> element) with `text`, highlighted when `lang` is a language we know (names and aliases:
 * js, ts, py, rs, sh, html, …). Returns whether it was highlighted.
 */
export function highlightInto(code, text, lang) {
  if (lang && text.length <= MAX_CHARS && hljs.getLanguage(lang)) {
    try {
      const root = hljs.highlight(text, { language: lang, ignoreIllegals: true })._emitter.rootNode;
      appendTokens(code, root.children);
      return true;
    } catch {
      while (code.firstChild) code.removeChild(code.firstChild);
    }
  }
  code.textContent = text;
  return false;
}

function appendTokens(parent, children) {
  for (const child of children) {
    if (typeof child === 'string') {
      parent.appendChild(document.createTextNode(child));
    } else {
      const span = document.createElement('span');
      const cls = scopeClass(child.scope);
      if (cls) span.className = cls;
      appendTokens(span, child.children || []);
      parent.appendChild(span);
    }
  }
}

/** highlight.js's own scope → class rule: `title.function` → `hljs-title function_`. */
function scopeClass(scope) {
  if (!scope || typeof scope !== 'string') return '';
  if (scope.startsWith('language:')) return '';
  const [first, ...rest] = scope.split('.');
  return [`hljs-${first}`, ...rest.map((x, i) => `${x}${'_'.repeat(i + 1)}`)].join(' ').replace(/[^\w -]/g, '');
}
