// A small markdown renderer that builds DOM nodes only (createElement + text nodes): message and model text is
// never parsed as HTML, so `<img onerror=…>` in a message shows up as those characters. Supports what chat
// answers use: fenced code blocks, syntax-highlighted (also an unterminated one while a response is still
// streaming), tables (GitHub's pipe tables), inline code, headings, lists, block quotes, rules, bold, italic,
// strikethrough and links (http, https, mailto only).

import { highlightInto } from './highlight.js';

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_DELIMITER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

/** Renders markdown text into a DocumentFragment. */
export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  renderBlocks(String(text ?? '').replace(/\r\n?/g, '\n').split('\n'), frag, 0);
  return frag;
}

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || LIST_ITEM.test(line);
}

/** A pipe table starts with a header row followed by a delimiter row with as many cells (`| --- | :-: |`). */
function isTableStart(lines, i) {
  return i + 1 < lines.length && lines[i].includes('|') && TABLE_DELIMITER.test(lines[i + 1])
    && lines[i + 1].includes('-') && splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') { i++; continue; }

    let m = FENCE.exec(line);
    if (m) {
      const fence = m[1];
      const lang = (m[2] || '').toLowerCase().replace(/[^a-z0-9+#._-]/g, '').slice(0, 32);
      const body = [];
      i++;
      let closed = false;
      while (i < lines.length) {
        const l = lines[i];
        const t = l.trim();
        if (t.length >= fence.length && t[0] === fence[0] && /^(`+|~+)$/.test(t)) { closed = true; i++; break; }
        body.push(l);
        i++;
      }
      parent.appendChild(codeBlock(body.join('\n'), lang, closed));
      continue;
    }

    m = HEADING.exec(line);
    if (m) {
      const level = Math.min(6, m[1].length + 2); // keep headings modest inside a chat bubble
      const el = document.createElement('h' + level);
      renderInline(m[2], el);
      parent.appendChild(el);
      i++;
      continue;
    }

    if (RULE.test(line)) {
      parent.appendChild(document.createElement('hr'));
      i++;
      continue;
    }

    if (QUOTE.test(line) && depth < 8) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { inner.push(m[1]); i++; }
      const bq = document.createElement('blockquote');
      renderBlocks(inner, bq, depth + 1);
      parent.appendChild(bq);
      continue;
    }

    m = LIST_ITEM.exec(line);
    if (m) {
      i = renderList(lines, i, parent, depth);
      continue;
    }

    if (isTableStart(lines, i)) {
      i = renderTable(lines, i, parent);
      continue;
    }

    // Paragraph: until a blank line or the start of another block.
    const para = [];
    while (i < lines.length && lines[i].trim() !== '' && (para.length === 0 || (!isBlockStart(lines[i]) && !isTableStart(lines, i)))) {
      para.push(lines[i]);
      i++;
    }
    const p = document.createElement('p');
    para.forEach((l, k) => {
      if (k > 0) p.appendChild(document.createElement('br'));
      renderInline(l.trim(), p);
    });
    parent.appendChild(p);
  }
}

function renderList(lines, start, parent, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const baseIndent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = document.createElement(ordered ? 'ol' : 'ul');
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.start = n;
  }
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || m[1].length < baseIndent || /\d/.test(m[2]) !== ordered) break;
    if (m[1].length > baseIndent) break; // handled as nested by the item below
    const li = document.createElement('li');
    const strip = baseIndent + m[2].length + 1;
    const itemLines = [m[3]];
    i++;
    // Continuation lines and nested items (indented deeper than this item's marker).
    while (i < lines.length && lines[i].trim() !== '') {
      const l = lines[i];
      const n = LIST_ITEM.exec(l);
      if (n && n[1].length <= baseIndent) break;
      const lead = l.match(/^\s*/)[0].length;
      if (lead === 0 && isBlockStart(l)) break;
      itemLines.push(l.slice(Math.min(lead, strip)));
      i++;
    }
    if (itemLines.length === 1 || depth >= 8) {
      itemLines.forEach((l, k) => {
        if (k > 0) li.appendChild(document.createTextNode(' '));
        renderInline(l.trim(), li);
      });
    } else {
      renderBlocks(itemLines, li, depth + 1);
      // A first paragraph inside an item needs no <p> wrapper.
      if (li.firstChild && li.firstChild.nodeName === 'P') {
        const p = li.firstChild;
        while (p.firstChild) li.insertBefore(p.firstChild, p);
        li.removeChild(p);
      }
    }
    list.appendChild(li);
    // A blank line between items keeps the list going.
    if (i < lines.length && lines[i].trim() === '' && i + 1 < lines.length) {
      const next = LIST_ITEM.exec(lines[i + 1]);
      if (next && next[1].length === baseIndent && /\d/.test(next[2]) === ordered) i++;
    }
  }
  parent.appendChild(list);
  return i;
}

/** A row's cells: outer pipes dropped, split on pipes not escaped with a backslash (`\|` is a literal pipe). */
function splitRow(line) {
  let t = line.trim();
  if (t.startsWith('|')) t = t.slice(1);
  if (t.endsWith('|') && !t.endsWith('\\|')) t = t.slice(0, -1);
  return t.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, '|'));
}

/** Renders the table starting at `start` (header, delimiter, rows until a blank line or another block). */
function renderTable(lines, start, parent) {
  const head = splitRow(lines[start]);
  const align = splitRow(lines[start + 1]).map((d) => (d.startsWith(':') && d.endsWith(':') ? 'center' : d.endsWith(':') ? 'right' : d.startsWith(':') ? 'left' : ''));
  const table = document.createElement('table');
  const row = (cells, tag) => {
    const tr = document.createElement('tr');
    head.forEach((_, k) => {
      const cell = document.createElement(tag);
      if (align[k]) cell.className = `align-${align[k]}`;
      renderInline(cells[k] ?? '', cell);
      tr.appendChild(cell);
    });
    return tr;
  };
  const thead = document.createElement('thead');
  thead.appendChild(row(head, 'th'));
  table.appendChild(thead);
  const tbody = document.createElement('tbody');
  let i = start + 2;
  while (i < lines.length && lines[i].trim() !== '' && !isBlockStart(lines[i])) {
    tbody.appendChild(row(splitRow(lines[i]), 'td'));
    i++;
  }
  if (tbody.firstChild) table.appendChild(tbody);
  // Wide tables scroll sideways inside the message; focusable so the keyboard can scroll them too.
  const wrap = document.createElement('div');
  wrap.className = 'table-wrap';
  wrap.dataset.testid = 'md-table';
  wrap.tabIndex = 0;
  wrap.appendChild(table);
  parent.appendChild(wrap);
  return i;
}

function codeBlock(text, lang, closed) {
  const wrap = document.createElement('div');
  wrap.className = 'code-block';
  wrap.dataset.testid = 'code-block';
  const bar = document.createElement('div');
  bar.className = 'code-bar';
  const label = document.createElement('span');
  label.textContent = lang || 'code';
  bar.appendChild(label);
  if (closed) {
    const copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'code-copy';
    copy.textContent = 'Copy';
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(text);
        copy.textContent = 'Copied';
      } catch {
        copy.textContent = 'Copy failed';
      }
      setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
    });
    bar.appendChild(copy);
  }
  const pre = document.createElement('pre');
  pre.tabIndex = 0; // a long line scrolls sideways: the keyboard can scroll it too
  const code = document.createElement('code');
  if (lang) code.className = 'language-' + lang;
  if (highlightInto(code, text, lang)) code.dataset.highlighted = 'true';
  pre.appendChild(code);
  wrap.appendChild(bar);
  wrap.appendChild(pre);
  return wrap;
}

// Inline: `code`, **bold**, __bold__, ~~strike~~, *italic*, _italic_, [text](url), bare http(s) URLs.
const INLINE = new RegExp(
  [
    '(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)', // 1,2 code span
    '\\[([^\\]\\n]+)\\]\\(\\s*<?([^)\\s>]+)>?\\s*\\)', // 3,4 link
    '\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*', // 5 bold
    '__(?=\\S)([\\s\\S]*?\\S)__', // 6 bold
    '~~(?=\\S)([\\s\\S]*?\\S)~~', // 7 strike
    '\\*(?=[^\\s*])([^*]*?[^\\s*])\\*', // 8 italic (also one character)
    '(?<![A-Za-z0-9_])_(?=[^\\s_])([^_]*?[^\\s_])_(?![A-Za-z0-9_])', // 9 italic
    '(https?:\\/\\/[^\\s<>]*[^\\s<>.,;:!?)\\]\'"])', // 10 bare URL
  ].join('|'),
);

/** Appends the inline markdown of `text` to `parent` as nodes. */
export function renderInline(text, parent, depth = 0) {
  let rest = text;
  while (rest.length > 0) {
    const m = depth < 6 ? INLINE.exec(rest) : null;
    if (!m) {
      parent.appendChild(document.createTextNode(rest));
      return;
    }
    if (m.index > 0) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
    if (m[2] !== undefined) {
      const code = document.createElement('code');
      code.textContent = m[2].replace(/^ (.*) $/, '$1');
      parent.appendChild(code);
    } else if (m[3] !== undefined) {
      const href = safeHref(m[4]);
      if (href) {
        const a = document.createElement('a');
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer nofollow';
        renderInline(m[3], a, depth + 1);
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(m[0]));
      }
    } else if (m[5] !== undefined || m[6] !== undefined) {
      const el = document.createElement('strong');
      renderInline(m[5] ?? m[6], el, depth + 1);
      parent.appendChild(el);
    } else if (m[7] !== undefined) {
      const el = document.createElement('del');
      renderInline(m[7], el, depth + 1);
      parent.appendChild(el);
    } else if (m[8] !== undefined || m[9] !== undefined) {
      const el = document.createElement('em');
      renderInline(m[8] ?? m[9], el, depth + 1);
      parent.appendChild(el);
    } else if (m[10] !== undefined) {
      const href = safeHref(m[10]);
      if (href) {
        const a = document.createElement('a');
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer nofollow';
        a.textContent = m[10];
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(m[10]));
      }
    }
    rest = rest.slice(m.index + m[0].length);
  }
}

/** Only absolute http(s) and mailto links; anything else (javascript:, data:, relative tricks) is shown as text. */
export function safeHref(raw) {
  try {
    const u = new URL(raw);
    if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:') return u.href;
  } catch {
    /* not an absolute URL */
  }
  return null;
}
