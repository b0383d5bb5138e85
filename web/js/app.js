// RelayHub web client: login, sidebar, routing (#/c/<id>), the socket and its frames, toasts.

import { Api, ApiError, listOf, errorText, rateLimitText } from './api.js';
import { RealtimeSocket } from './socket.js';
import { ChatView } from './chat.js';
import { titleProblem } from './conversation/header.js';
import { SharePanel } from './share.js';
import { TeamPanel } from './team.js';
import { ssoButton, returningFromProvider, completeSso } from './sso.js';
import { h, setChildren, show, icon } from './dom.js';
import { PERMISSION_LABEL } from './permissions.js';

const root = document.getElementById('app');
const api = new Api();
/** Conversations per sidebar page; older ones come with "Show older conversations". */
const SIDEBAR_PAGE = 100;

const state = {
  me: null,
  socket: null,
  convs: new Map(), // id → ConversationSummary
  view: null,
  share: null,
  team: null,
  models: null,
  config: null,
  shell: null,
  sidebarLoadedOnce: false,
  sidebarNext: null, // next_before of the last sidebar page loaded: older conversations exist
};

// ==================================================================== login

function renderLogin(message) {
  const email = h('input', { type: 'email', name: 'email', testid: 'login-email', autocomplete: 'username', required: true, placeholder: 'you@company.com' });
  const password = h('input', { type: 'password', name: 'password', testid: 'login-password', autocomplete: 'current-password', required: true });
  renderAuthPage({
    id: 'login',
    intro: 'Team AI chat, shared live.',
    fields: [['Email', email], ['Password', password]],
    submitText: 'Sign in',
    message,
    submit: () => signIn(email.value.trim(), password.value),
    failure: (err) => (err instanceof ApiError && (err.status === 401 || err.status === 400) ? 'Wrong email or password.' : errorText(err)),
    other: ['New to RelayHub? ', 'signup-link', 'Create an organization', renderSignUp],
    // "Sign in with …" when the email's domain has its organization's provider (sso.js).
    extra: ([, passwordLabel], say) => ssoButton(api, email, passwordLabel, say),
  });
}

/** Sign-up: a new organization with you as its admin (`POST /orgs`), then signed in. */
function renderSignUp() {
  const field = (attrs) => h('input', { required: true, ...attrs });
  const org = field({ type: 'text', testid: 'signup-org', maxlength: '100', placeholder: 'Acme Inc.' });
  const name = field({ type: 'text', testid: 'signup-name', maxlength: '100', autocomplete: 'name' });
  const email = field({ type: 'email', testid: 'signup-email', autocomplete: 'username', placeholder: 'you@company.com' });
  const password = field({ type: 'password', testid: 'signup-password', minlength: '8', autocomplete: 'new-password', placeholder: 'at least 8 characters' });
  renderAuthPage({
    id: 'signup',
    intro: 'Create your organization; you will be its admin and can add your teammates.',
    fields: [['Organization', org], ['Your name', name], ['Email', email], ['Password', password]],
    submitText: 'Create organization',
    submit: async () => {
      const e = email.value.trim();
      await api.post('/orgs', { org_name: org.value.trim(), name: name.value.trim(), email: e, password: password.value });
      await signIn(e, password.value);
    },
    // Sign-up answers alike whether or not the email has an account (no one can probe emails); with a taken one the
    // sign-in after it fails like a wrong password.
    failure: (err) => (err instanceof ApiError && err.status === 401 ? 'Could not sign you in: if this email already has an account, sign in with its password instead.' : errorText(err)),
    other: ['Already have an account? ', 'login-link', 'Sign in', () => renderLogin()],
  });
}

/**
 * Joining by invite (`#invite=<secret>`, a fragment so the secret reaches no server log): what the invite is for,
 * then a name and password (and the email, for an open invite); signed in on success. A used, expired, revoked or
 * mistyped invite shows why on the sign-in page.
 */
async function renderJoin(token) {
  history.replaceState(null, '', location.pathname); // the secret leaves the address bar
  let invite;
  try {
    invite = await api.post('/invites/lookup', { token });
  } catch (e) {
    renderLogin(`This invite cannot be used: ${errorText(e)}`);
    return;
  }
  const name = h('input', { type: 'text', required: true, testid: 'join-name', maxlength: '100', autocomplete: 'name' });
  const email = h('input', { type: 'email', required: true, testid: 'join-email', autocomplete: 'username', value: invite.email || '', readonly: !!invite.email });
  const password = h('input', { type: 'password', required: true, testid: 'join-password', minlength: '8', autocomplete: 'new-password', placeholder: 'at least 8 characters' });
  renderAuthPage({
    id: 'join',
    intro: `You are invited to join ${invite.org_name}. Choose your name and password.`,
    fields: [['Your name', name], ['Email', email], ['Password', password]],
    submitText: `Join ${invite.org_name}`,
    submit: async () => {
      const r = await api.post('/invites/accept', { token, name: name.value.trim(), password: password.value, email: invite.email ? null : email.value.trim() });
      api.setSession(r);
      await startApp(r.user);
    },
    failure: errorText,
    other: ['Already have an account? ', 'login-link', 'Sign in', () => renderLogin()],
  });
}

async function signIn(email, password) {
  const r = await api.post('/auth/login', { email, password });
  api.setSession(r);
  await startApp(r.user);
}

/**
 * The signed-out page: a card with `fields` ([label, input]), a submit button running `submit`, an error line
 * saying `failure(err)` when it throws, and a link to the other page (`other`: [text, testid, link text, render]);
 * `extra(labels, say)` may add an element below the button (`say(text)` shows it on the error line).
 * Test ids: `<id>-form`, `<id>-error`, `<id>-submit`.
 */
function renderAuthPage({ id, intro, fields, submitText, message, submit, failure, other, extra }) {
  teardown();
  const error = h('div', { class: 'form-error', testid: `${id}-error`, role: 'alert', hidden: !message, text: message || '' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary btn-block', testid: `${id}-submit`, text: submitText });
  const [otherText, otherId, otherLink, otherPage] = other;
  const labels = fields.map(([label, input]) => h('label', {}, label, input));
  const say = (text) => { error.textContent = text; show(error, true); };
  const form = h('form', {
    class: 'login-card',
    testid: `${id}-form`,
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      show(error, false);
      try {
        await submit();
      } catch (err) {
        error.textContent = failure(err);
        show(error, true);
        button.disabled = false;
      }
    },
  },
  h('div', { class: 'brand brand-large' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true', text: '◆' }), ' RelayHub'),
  h('p', { class: 'muted', text: intro }),
  ...labels,
  error,
  button,
  ...(extra ? [extra(labels, say)] : []),
  h('p', { class: 'muted small login-switch' }, otherText,
    h('a', { href: '#', testid: otherId, onclick: (e) => { e.preventDefault(); otherPage(); } }, otherLink)));
  setChildren(root, h('div', { class: 'login-page' }, form));
  fields[0][1].focus();
}

// ==================================================================== shell

async function startApp(user) {
  teardown();
  state.me = normalizeUser(user);
  try {
    const me = await api.get('/me');
    state.me = normalizeUser(me?.user || me || user);
    api.setUser(state.me);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return; // onUnauthorized already showed the login
    // /me unavailable: go on with what login returned.
  }
  buildShell();
  startSocket();
  await loadSidebar();
  route();
}

function normalizeUser(u) {
  if (!u) return { id: null, name: '', email: '' };
  return { ...u, id: u.id || u.user_id };
}

function teardown() {
  if (state.share) state.share.close();
  if (state.team) state.team.close();
  if (state.view) state.view.destroy();
  state.view = null;
  if (state.socket) state.socket.stop();
  state.socket = null;
  state.convs.clear();
  state.models = null;
  state.shell = null;
  state.sidebarLoadedOnce = false;
  state.sidebarNext = null;
}

function buildShell() {
  const s = {};
  s.toggle = h('button', {
    type: 'button',
    class: 'btn btn-ghost sidebar-toggle',
    testid: 'sidebar-toggle',
    'aria-label': 'Show conversations',
    'aria-expanded': 'false',
    onclick: () => setSidebarOpen(!s.root.classList.contains('sidebar-open')),
  }, icon('menu'));
  s.banner = h('div', { class: 'offline-banner', testid: 'offline-banner', role: 'status', hidden: true },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), ' Offline — reconnecting…');
  s.newTitle = h('input', { type: 'text', dir: 'auto', testid: 'new-conversation-title', placeholder: 'Title (optional)', 'aria-label': 'Title' });
  const closeNewForm = () => {
    show(s.newForm, false);
    s.newButton.focus();
  };
  s.newForm = h('form', {
    class: 'new-form',
    testid: 'new-conversation-form',
    hidden: true,
    onkeydown: (e) => {
      if (e.key === 'Escape') closeNewForm();
    },
    onsubmit: (e) => {
      e.preventDefault();
      const title = s.newTitle.value.trim();
      const why = title ? titleProblem(title) : null;
      if (why) toast(why, 'error', 'title');
      else createConversation(title);
    },
  }, s.newTitle,
  h('div', { class: 'row' },
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'new-conversation-create', text: 'Create' }),
    h('button', {
      type: 'button',
      class: 'btn btn-ghost',
      text: 'Cancel',
      onclick: closeNewForm,
    })));
  s.ownList = h('ul', { class: 'conv-list', testid: 'sidebar-own' });
  s.sharedList = h('ul', { class: 'conv-list', testid: 'sidebar-shared' });
  s.sharedHead = h('h2', { class: 'sidebar-head', text: 'Shared with me' });
  s.more = h('button', {
    type: 'button',
    class: 'btn btn-ghost btn-block',
    testid: 'sidebar-more',
    hidden: true,
    text: 'Show older conversations',
    onclick: () => loadSidebar(true),
  });
  s.newButton = h('button', {
    type: 'button',
    class: 'btn btn-primary btn-block',
    testid: 'new-conversation',
    onclick: () => {
      show(s.newForm, s.newForm.hidden);
      if (!s.newForm.hidden) s.newTitle.focus();
    },
  }, '+ New conversation');
  s.searchInput = h('input', {
    type: 'search', class: 'sidebar-search', testid: 'search-input', placeholder: 'Search conversations',
    'aria-label': 'Search the conversations you can see', autocomplete: 'off',
  });
  s.searchForm = h('form', {
    role: 'search', testid: 'search-form',
    onsubmit: (e) => {
      e.preventDefault();
      runSearch(s.searchInput.value.trim());
    },
  }, s.searchInput);
  s.sidebar = h('aside', {
    class: 'sidebar',
    testid: 'sidebar',
    'aria-label': 'Conversations',
    // On a phone the sidebar is a drawer: Escape closes it, back to its button.
    onkeydown: (e) => {
      if (e.key === 'Escape' && s.root.classList.contains('sidebar-open')) {
        setSidebarOpen(false);
        s.toggle.focus();
      }
    },
  },
    s.newButton,
    s.newForm,
    s.searchForm,
    h('h2', { class: 'sidebar-head', text: 'My conversations' }),
    s.ownList,
    s.sharedHead,
    s.sharedList,
    s.more);
  s.main = h('main', { class: 'main', testid: 'main' });
  s.toasts = h('div', { class: 'toasts', testid: 'toasts', 'aria-live': 'polite' });
  s.root = h('div', { class: 'shell' },
    h('header', { class: 'topbar' },
      s.toggle,
      h('div', { class: 'brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true', text: '◆' }), ' RelayHub'),
      h('div', { class: 'spacer' }),
      state.me.role === 'admin'
        ? h('button', { type: 'button', class: 'btn btn-ghost', testid: 'team-button', title: 'Your organization: add teammates', onclick: openTeam, text: 'Team' })
        : null,
      h('span', { class: 'current-user', testid: 'current-user', text: state.me.name || state.me.email || '' }),
      h('button', { type: 'button', class: 'btn btn-ghost', testid: 'logout', onclick: logout, text: 'Sign out' })),
    s.banner,
    h('div', { class: 'layout' },
      s.sidebar,
      h('div', { class: 'backdrop', onclick: () => setSidebarOpen(false) }),
      s.main),
    s.toasts);
  state.shell = s;
  setChildren(root, s.root);
  showEmpty();
}

function setSidebarOpen(open) {
  const s = state.shell;
  if (!s) return;
  s.root.classList.toggle('sidebar-open', open);
  s.toggle.setAttribute('aria-expanded', String(open));
}

/**
 * The main area with no conversation open: why (`notice`), the unsent `draft` of a conversation that just closed
 * (kept readable so it can be copied), and where to start.
 */
function showEmpty(notice, draft) {
  const s = state.shell;
  if (!s) return;
  document.title = 'RelayHub';
  setChildren(s.main, h('div', { class: 'empty' },
    notice ? h('div', { class: 'access-notice', testid: 'access-notice', role: 'alert', text: notice }) : null,
    draft ? keptDraft(draft) : null,
    startHere()));
}

function keptDraft(draft) {
  const text = h('textarea', { class: 'kept-draft-text', testid: 'kept-draft-text', readonly: true, rows: 4, dir: 'auto', 'aria-label': 'Your unsent message' });
  text.value = draft;
  const copy = h('button', {
    type: 'button', class: 'btn btn-ghost', testid: 'kept-draft-copy', text: 'Copy',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(draft);
        copy.textContent = 'Copied';
      } catch {
        text.select(); // the clipboard is not ours here: selected, Ctrl+C copies it
      }
    },
  });
  return h('div', { class: 'kept-draft', testid: 'kept-draft' }, h('p', { class: 'small', text: 'Your unsent message was kept:' }), text, copy);
}

/** What to do next: pick or start a conversation; in a new organization, the admin is pointed at Team. */
function startHere() {
  const none = state.sidebarLoadedOnce && state.convs.size === 0;
  if (none && state.me?.role === 'admin') {
    return h('div', { class: 'first-use', testid: 'first-use' },
      h('p', { text: 'Welcome! Start a conversation with the AI, then share it: your teammates watch the answer stream in live.' }),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'btn btn-primary', testid: 'first-use-team', onclick: openTeam, text: 'Add teammates' }),
        h('button', { type: 'button', class: 'btn btn-ghost', testid: 'first-use-new', onclick: () => state.shell?.newButton.click(), text: 'New conversation' })));
  }
  if (none) return h('p', { class: 'muted', testid: 'empty-state', text: 'Nothing here yet: start a new conversation, or wait for a teammate to share one with you.' });
  return h('p', { class: 'muted', testid: 'empty-state', text: 'Pick a conversation in the sidebar, or start a new one.' });
}

async function logout() {
  teardown();
  await api.logout();
  location.hash = '';
  renderLogin();
}

/** Shows a toast; one with the `key` of a toast still shown replaces it (five quick changes: one toast, the last). */
export function toast(text, kind = 'info', key = null) {
  const s = state.shell;
  if (!s) return;
  if (key) for (const old of s.toasts.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)) old.remove();
  const t = h('div', { class: `toast toast-${kind}`, testid: 'toast', role: kind === 'error' ? 'alert' : 'status', dataset: key ? { key } : null, text });
  s.toasts.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 7000 : 4000);
}

// ==================================================================== sidebar

/** Loads the sidebar's first page, or with `older` the next, older one (the api pages newest first). */
async function loadSidebar(older = false) {
  if (older && !state.sidebarNext) return;
  const before = older ? `&before=${encodeURIComponent(state.sidebarNext)}` : '';
  let page;
  try {
    page = await api.get(`/conversations?limit=${SIDEBAR_PAGE}${before}`);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) toast(`Could not load conversations: ${errorText(e)}`, 'error');
    return;
  }
  if (!older) state.convs.clear();
  for (const c of listOf(page, 'conversations')) if (!state.convs.has(c.id)) state.convs.set(c.id, c);
  state.sidebarNext = page?.next_before || null;
  state.sidebarLoadedOnce = true;
  renderSidebar();
}

function renderSidebar() {
  const s = state.shell;
  if (!s) return;
  const all = [...state.convs.values()].sort((a, b) => String(b.updated_at || b.created_at || '').localeCompare(String(a.updated_at || a.created_at || '')));
  const own = all.filter((c) => !isShared(c));
  const shared = all.filter(isShared);
  const current = state.view?.id;
  const item = (c) => {
    const sharedC = isShared(c);
    return h('li', {},
      h('a', {
        href: `#/c/${c.id}`,
        class: `conv-item${c.id === current ? ' active' : ''}`,
        testid: 'conversation-item',
        dataset: { conversationId: c.id, permission: c.permission || '', shared: String(sharedC) },
        'aria-current': c.id === current ? 'page' : null,
        onclick: () => setSidebarOpen(false),
      },
      h('span', { class: 'conv-title', testid: 'conversation-title', dir: 'auto', text: c.title || 'Untitled conversation' }),
      c.responding ? h('span', { class: 'responding-marker', testid: 'responding-marker', role: 'status', text: 'responding…' }) : null,
      sharedC
        ? h('span', { class: 'conv-meta' },
          h('span', { class: `badge badge-${c.permission}`, testid: 'shared-badge', text: PERMISSION_LABEL[c.permission] || c.permission }),
          h('span', { class: 'muted small', text: ` from ${c.owner_name || 'a teammate'}` }))
        : c.shared_with > 0
          ? h('span', { class: 'conv-meta' }, h('span', {
            class: 'badge badge-shared', testid: 'owner-shared-badge', dataset: { sharedWith: String(c.shared_with) },
            text: `Shared with ${c.shared_with}`, title: `Shared with ${c.shared_with} ${c.shared_with === 1 ? 'person' : 'people'}`,
          }))
          : null));
  };
  setChildren(s.ownList, own.length ? own.map(item) : h('li', { class: 'muted small empty-list', text: 'No conversations yet.' }));
  setChildren(s.sharedList, shared.length ? shared.map(item) : h('li', { class: 'muted small empty-list', text: 'Nothing shared with you yet.' }));
  show(s.more, !!state.sidebarNext);
}

function isShared(c) {
  if (typeof c.shared === 'boolean') return c.shared;
  return c.permission !== 'owner' && c.owner_id !== state.me?.id;
}

function handleSidebarFrame(f) {
  const id = f.conversation_id;
  if (f.action === 'activity') {
    // "responding…": an answer started or every answer ended (the list after a reload says the same).
    const c = state.convs.get(id);
    if (c && c.responding !== !!f.responding) {
      c.responding = !!f.responding;
      renderSidebar();
    }
    return;
  }
  if (f.action === 'removed' || f.action === 'deleted') {
    const c = state.convs.get(id);
    state.convs.delete(id);
    renderSidebar();
    if (state.view && state.view.id === id) closeView(state.view, f.action === 'deleted' ? 'deleted' : 'revoked', c);
  } else if (f.conversation) {
    state.convs.set(id, { ...(state.convs.get(id) || {}), ...f.conversation });
    renderSidebar();
    if (f.action === 'changed' && state.view && state.view.id === id && f.conversation.permission) {
      state.view.setPermission(f.conversation.permission);
    }
  } else {
    loadSidebar();
  }
}

/**
 * Search (GET /search): the matches in the main area, best first, each a link to its conversation; the matched
 * words are marked (the api puts them between [[ and ]]; drawn as DOM nodes, never HTML).
 */
async function runSearch(q, offset = 0) {
  const s = state.shell;
  if (!s || !q) return;
  let page;
  try {
    page = await api.get(`/search?q=${encodeURIComponent(q)}&limit=20&offset=${offset}`);
  } catch (e) {
    toast(`Search failed: ${errorText(e)}`, 'error');
    return;
  }
  if (state.view) {
    state.view.destroy();
    state.view = null;
    if (location.hash) history.replaceState(null, '', location.pathname + location.search);
    renderSidebar();
  }
  const marked = (snippet) => String(snippet || '').split(/(\[\[.*?\]\])/).map((part) =>
    part.startsWith('[[') && part.endsWith(']]') ? h('mark', { text: part.slice(2, -2) }) : part);
  const results = page.results || [];
  setChildren(s.main, h('section', { class: 'search-view', testid: 'search-view' },
    h('h1', { text: `Search: ${q}` }),
    results.length
      ? h('ul', { class: 'search-results', testid: 'search-results' }, ...results.map((r) => h('li', { testid: 'search-result' },
        h('a', { href: `#/c/${r.conversation_id}`, dir: 'auto', text: r.title || 'Untitled conversation' }),
        h('div', { class: 'muted small', dir: 'auto' }, r.message_id ? '' : 'Title: ', ...marked(r.snippet)))))
      : h('p', { class: 'muted', testid: 'search-empty', text: 'Nothing found in the conversations you can see.' }),
    page.next_offset != null
      ? h('button', { type: 'button', class: 'btn btn-ghost', testid: 'search-more', text: 'More results', onclick: () => runSearch(q, page.next_offset) })
      : null));
}

async function createConversation(title) {
  const s = state.shell;
  try {
    const r = await api.post('/conversations', title ? { title } : {});
    const c = r?.conversation || r;
    if (c?.id) {
      state.convs.set(c.id, {
        id: c.id,
        title: c.title || title || 'Untitled conversation',
        owner_id: state.me.id,
        owner_name: state.me.name,
        permission: 'owner',
        shared: false,
        model: c.model,
        created_at: c.created_at || new Date().toISOString(),
        updated_at: c.updated_at || new Date().toISOString(),
      });
      renderSidebar();
      s.newTitle.value = '';
      show(s.newForm, false);
      location.hash = `#/c/${c.id}`;
    }
  } catch (e) {
    toast(`Could not create the conversation: ${errorText(e)}`, 'error');
  }
}

// ==================================================================== chat view

function route() {
  if (!state.shell) return;
  const m = /^#\/c\/([0-9a-fA-F-]{36})$/.exec(location.hash);
  const id = m ? m[1].toLowerCase() : null;
  if (!id) {
    if (state.view) {
      state.view.destroy();
      state.view = null;
      renderSidebar();
    }
    if (!state.shell.main.querySelector('[data-testid="access-notice"]')) showEmpty();
    return;
  }
  if (state.view && state.view.id === id) return;
  openConversation(id);
}

async function openConversation(id) {
  if (state.share) state.share.close();
  if (state.view) state.view.destroy();
  const view = new ChatView(ctx, id);
  state.view = view;
  setChildren(state.shell.main, view.el);
  renderSidebar();
  try {
    await view.load();
    // The focus was on the sidebar link (now re-rendered): continue where the person will type or read.
    if (state.view === view && (!document.activeElement || document.activeElement === document.body || !document.activeElement.isConnected)) view.focusDefault();
  } catch (e) {
    if (state.view !== view) return;
    if (e instanceof ApiError && (e.status === 404 || e.status === 403)) closeView(view, 'not_found');
    else if (!(e instanceof ApiError && e.status === 401)) closeView(view, 'error', null, errorText(e));
  }
}

/** Ends the open chat view and says why (revoked, deleted, not found). */
function closeView(view, reason, summary, detail) {
  if (state.view !== view) return;
  // Leaving is a revocation the person asked for; its socket frames usually arrive before the HTTP reply.
  if (view.leaving && reason === 'revoked') reason = 'left';
  const title = view.conv?.title || summary?.title || state.convs.get(view.id)?.title || 'this conversation';
  const draft = reason === 'left' ? '' : view.composer.text.trim() ? view.composer.text : '';
  sessionStorage.removeItem(view.composer.draftKey); // shown once below; the conversation is gone for this person
  if (state.share) state.share.close();
  view.destroy();
  state.view = null;
  if (reason === 'revoked' || reason === 'deleted' || reason === 'not_found' || reason === 'left') {
    state.convs.delete(view.id);
  }
  renderSidebar();
  const notice = {
    revoked: `Your access to “${title}” was removed.`,
    deleted: `“${title}” was deleted.`,
    left: `You left “${title}”.`,
    not_found: 'This conversation does not exist or is not shared with you.',
    error: `Could not open the conversation: ${detail || 'unknown error'}`,
  }[reason];
  history.replaceState(null, '', location.pathname + location.search);
  showEmpty(notice, draft);
}

const ctx = {
  api,
  get me() {
    return state.me;
  },
  get socket() {
    return state.socket || { send: () => false };
  },
  toast,
  closeView,
  /** The model ids the workers serve (the api's default when none answers). */
  async getModels() {
    return (await modelInfo()).map((m) => m.id);
  },
  /** Whether a worker serves the simulated provider (then the composer says how to steer it). */
  async simulated() {
    return (await modelInfo()).some((m) => m.provider === 'simulated');
  },
  ownerNameOf(id) {
    return state.convs.get(id)?.owner_name;
  },
  onSummaryChange(id, patch) {
    const c = state.convs.get(id);
    if (!c) return;
    Object.assign(c, patch);
    renderSidebar();
  },
  onParticipantsChange(view) {
    if (state.share && state.share.view === view) state.share.refreshSoon();
  },
  openShare(view) {
    if (state.share) state.share.close();
    state.share = new SharePanel(ctx, view);
    state.share.open();
  },
  onShareClosed(panel) {
    if (state.share === panel) state.share = null;
  },
  onTeamClosed(panel) {
    if (state.team === panel) state.team = null;
  },
  async leaveConversation(view) {
    const title = view.conv?.title || 'this conversation';
    if (!confirm(`Leave “${title}”? It leaves your sidebar; the owner can share it with you again.`)) return;
    view.leaving = true;
    try {
      await api.del(`/conversations/${view.id}/shares/${state.me.id}`);
      closeView(view, 'left');
    } catch (e) {
      view.leaving = false;
      toast(`Could not leave: ${errorText(e)}`, 'error');
    }
  },
  async deleteConversation(view) {
    const title = view.conv?.title || 'this conversation';
    if (!confirm(`Delete “${title}”? Its messages, responses and files will be erased for everyone it is shared with. This cannot be undone.`)) return;
    try {
      await api.del(`/conversations/${view.id}`);
      closeView(view, 'deleted');
    } catch (e) {
      toast(`Not deleted: ${errorText(e)}`, 'error');
    }
  },
};

/** `[{id, provider}]` from `GET /models`, asked once per sign-in. */
function modelInfo() {
  if (!state.models) {
    state.models = api.get('/models')
      .then((r) => listOf(r, 'models').map((m) => (typeof m === 'string' ? { id: m } : m)).filter((m) => m?.id))
      .catch(() => {
        state.models = null;
        return [];
      });
  }
  return state.models;
}

function openTeam() {
  if (state.team) state.team.close();
  state.team = new TeamPanel(ctx);
  state.team.open();
}

// ==================================================================== socket

async function wsUrl() {
  if (!state.config) {
    try {
      state.config = (await api.get('/config')) || {};
    } catch {
      state.config = {};
    }
  }
  let url = state.config.ws_url;
  if (!url) url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  else if (url.startsWith('/')) url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${url}`;
  // A one-time ticket, never the token: URLs end up in proxy logs.
  const { ticket } = await api.post('/auth/ticket');
  return `${url}${url.includes('?') ? '&' : '?'}ticket=${encodeURIComponent(ticket)}`;
}

function startSocket() {
  let everOpened = false;
  const socket = new RealtimeSocket({
    url: wsUrl,
    onStatus: (status) => {
      const s = state.shell;
      if (!s) return;
      const offline = status === 'offline';
      show(s.banner, offline);
      s.root.classList.toggle('is-offline', offline);
      // Who is watching is unknown while we are away; the edge sends presence again after the resubscribe.
      if (offline && state.view) state.view.setViewers([]);
    },
    onOpen: () => {
      // Anything that happened while we were away: sidebar changes are not replayed, so reload the list; the
      // open conversation resumes from its last seq.
      if (everOpened) loadSidebar();
      everOpened = true;
      if (state.view) state.view.subscribe();
    },
    onFailure: (n) => {
      // The edge refuses a bad or expired token at the upgrade; the browser only sees a failed socket, so ask
      // the api whether the session is still good (a 401 there signs out).
      if (n % 3 === 0) api.get('/me').catch(() => {});
    },
    onFrame: handleFrame,
  });
  state.socket = socket;
  socket.start();
}

function handleFrame(f) {
  switch (f.type) {
    case 'sidebar':
      handleSidebarFrame(f);
      return;
    case 'pong':
    case 'message_accepted':
    case 'authenticated':
      return;
    case 'error':
      if (f.code === 'unauthorized') {
        api.onUnauthorized();
        return;
      }
      if (state.view && f.ref === state.view.id) state.view.handleError(f);
      // Past the socket's command rate (the edge's limit): say why and when, whatever the frame was for.
      else if (f.code === 'rate_limited') toast(rateLimitText(f.message, f.retry_after_ms), 'error', 'rate-limited');
      else if (f.code !== 'not_found') console.warn('relayhub: socket error', f);
      return;
    case 'access_revoked':
      if (state.view && state.view.id === f.conversation_id) state.view.handleFrame(f);
      else if (state.convs.delete(f.conversation_id)) renderSidebar();
      return;
    default:
      if (state.view && f.conversation_id === state.view.id) state.view.handleFrame(f);
  }
}

// ==================================================================== boot

// A silent refresh: the open socket re-authenticates with the new token instead of closing at the old one's expiry.
api.onRefreshed = (token) => state.socket?.send({ type: 'auth', token });

api.onUnauthorized = () => {
  api.setSession(null);
  renderLogin('Your session has ended. Please sign in again.');
};

// Tabs share the session (session.js): signing out in one ends the others; signing in in one starts the others.
api.onSessionChanged = (stored) => {
  if (stored) {
    startApp(stored.user).catch((e) => renderLogin(errorText(e)));
  } else {
    teardown();
    renderLogin('You signed out in another tab.');
  }
};

window.addEventListener('hashchange', route);

// A handle for tests and for debugging from the console; holds no secrets.
window.__relayhub = {
  dropConnection: () => state.socket?.drop(),
  /** Renews the tokens now (as the timer would): resolves whether the session is still good. */
  refreshSession: () => api.refresh(),
  get status() {
    return state.socket?.status;
  },
  get lastSeq() {
    return state.view?.lastSeq ?? null;
  },
};

const invited = new URLSearchParams(location.hash.slice(1)).get('invite');
if (returningFromProvider()) {
  completeSso(api)
    .then(async (r) => { await api.setSession(r); await startApp(r.user); })
    .catch((e) => renderLogin(`Single sign-on failed: ${errorText(e)}`));
} else if (invited) {
  renderJoin(invited);
} else if (api.token) {
  startApp(api.storedUser).catch((e) => renderLogin(errorText(e)));
} else {
  renderLogin();
}
