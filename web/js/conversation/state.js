// The state of one open conversation as a pure reducer: `reduce(state, action)` returns a new state and never
// changes the old one, touches the DOM, the network or the clock (actions carry `now`). chat.js dispatches the
// HTTP snapshot, socket frames and the person's own actions; the views render what comes out. Unchanged parts keep
// their identity, so a view redraws only the items whose object changed.
//
// Every event frame carries the stream position `seq`; one at or below the last applied is a replay of something
// already shown and is ignored, so a resubscribe (with `after_seq` = the last `seq` seen) doubles nothing.

import { canRespond } from '../permissions.js';

/** A user message from history with no answer yet is treated as still waiting for one for this long. */
export const PENDING_WINDOW_MS = 120000;
/**
 * The api's default `--ai-wait-secs`: a question from history unanswered for longer is shown as "AI unavailable"
 * (live, the api's `response.delayed` event says it; that event is not in the history a reload starts from).
 */
export const AI_WAIT_MS = 15000;
export const UNAVAILABLE_TEXT = 'The AI is unavailable — still trying…';

/**
 * `items` maps an id to one line of the timeline, `order` lists the ids top to bottom. An item is
 * `{kind: 'message', role: 'user'|'assistant', …}`, `{kind: 'system', text}` (renamed, settings, attached) or
 * `{kind: 'sending', text, messageId}` (own message on its way). `closed`: 'deleted' | 'revoked' once it ended.
 */
export function initialState(id, me) {
  return {
    id, me, loaded: false, lastSeq: 0, conv: null, permission: null, participants: {}, attachments: [],
    order: [], items: {}, earlier: null, settingsNote: '', closed: null, systemCount: 0,
    // The attempt shown per turn with several (turn id → answer id); none: the newest.
    selected: {},
  };
}

export function reduce(state, action) {
  if (state.closed) return state;
  switch (action.type) {
    case 'loaded': return loaded(state, action.detail, action.now);
    case 'earlier': return earlier(state, action.page);
    case 'event': {
      const seq = Number(action.seq);
      if (!Number.isFinite(seq) || seq <= state.lastSeq) return state; // replayed: already applied
      const next = { ...state, lastSeq: seq };
      return action.event ? applyEvent(next, action.event, action.now) : next;
    }
    case 'permission': return withPermission(state, action.permission);
    case 'closed': return { ...state, closed: action.reason === 'deleted' ? 'deleted' : 'revoked' };
    case 'send': return append(state, { kind: 'sending', id: `local:${action.localId}`, text: action.text, messageId: null, at: action.now });
    case 'sent': {
      const id = `local:${action.localId}`;
      const s = state.items[id];
      if (!s) return state;
      // The socket may have brought the message before the HTTP reply: then the placeholder goes now.
      return action.messageId && state.items[action.messageId] ? remove(state, id) : put(state, { ...s, messageId: action.messageId || null });
    }
    case 'send_failed': return remove(state, `local:${action.localId}`);
    case 'stop_requested': {
      const e = state.items[action.id];
      return e ? put(state, { ...e, stopRequested: !!action.on }) : state;
    }
    case 'select_version': return { ...state, selected: { ...state.selected, [action.turn]: action.id } };
    case 'renamed': return { ...state, conv: { ...state.conv, title: action.title } };
    case 'settings_saved': return { ...state, conv: { ...state.conv, ...action.settings } };
    case 'attached': return addAttachment(state, action.attachment, action.now);
    default: return state;
  }
}

// ------------------------------------------------------------------ snapshot

function loaded(state, detail, now) {
  const participants = {};
  if (detail.owner_id) participants[detail.owner_id] = { name: detail.owner_name, permission: 'owner' };
  for (const p of listOf(detail.participants)) participants[p.user_id] = { name: p.name, email: p.email, permission: p.permission };
  let s = {
    ...initialState(state.id, state.me),
    loaded: true,
    conv: detail,
    lastSeq: Number(detail.seq) || 0,
    participants,
    attachments: listOf(detail.attachments).map(attachmentOf).filter((a) => a.id),
    earlier: detail.has_more ? detail.next_before ?? null : null,
  };
  const messages = listOf(detail.messages).slice().sort((a, b) => (a.seq || 0) - (b.seq || 0));
  for (const m of messages) s = append(s, entryOf(m));
  // A recent question with no answer in history: its response has not started yet (queued). Show it as pending so
  // Stop is offered after a reload too; the response's events take the placeholder over.
  const answered = new Set(messages.filter((m) => m.role === 'assistant').map((m) => m.reply_to));
  const last = messages[messages.length - 1];
  if (last && last.role === 'user' && !answered.has(last.id)) {
    const age = now - new Date(last.created_at).getTime();
    if (Number.isFinite(age) && age < PENDING_WINDOW_MS) {
      s = append(s, { ...answerOf(`pending:${last.id}`, last.id, null), delayed: age > AI_WAIT_MS });
    }
  }
  return withPermission(s, detail.permission);
}

/** An older page of history goes on top (pages come newest first). */
function earlier(state, page) {
  const older = listOf(page.messages).slice().sort((a, b) => (a.seq || 0) - (b.seq || 0)).map(entryOf).filter((e) => !state.items[e.id]);
  const items = { ...state.items };
  for (const e of older) items[e.id] = e;
  return { ...state, items, order: [...older.map((e) => e.id), ...state.order], earlier: page.has_more ? page.next_before ?? null : null };
}

// ------------------------------------------------------------------ events

function applyEvent(state, ev, now) {
  const at = ev.ts_us ? Math.floor(ev.ts_us / 1000) : now;
  switch (ev.type) {
    case 'message.created': {
      let s = resolveSending(state, ev);
      if (!s.items[ev.message_id]) {
        s = append(s, { kind: 'message', id: ev.message_id, role: 'user', text: ev.text || '', status: 'complete', authorId: ev.author_id, authorName: ev.author_name, editOf: ev.edit_of || null, at });
      }
      if (ev.response_id && !s.items[ev.response_id]) s = append(s, answerOf(ev.response_id, ev.message_id, at));
      // An edit's new attempt shows at once, for every viewer.
      return ev.edit_of ? showNewest(s, ev.message_id) : s;
    }
    case 'response.requested': {
      // A regenerate: another answer to the message, shown at once instead of the earlier ones.
      const [s] = ensureResponse(state, ev.response_id, ev.message_id, at);
      return showNewest(s, ev.message_id);
    }
    case 'response.started': {
      const [s, e] = ensureResponse(state, ev.response_id, ev.message_id, at);
      const attempt = Number(ev.attempt) || 1;
      if (attempt < e.attempt) return s; // a late event of an attempt already replaced
      // A retry after a worker crash: the earlier attempt's partial text is void.
      const reset = attempt > e.attempt && attempt > 1 ? { text: '', nextIndex: 0 } : {};
      return put(s, { ...e, ...reset, attempt: Math.max(attempt, e.attempt), status: 'streaming', delayed: false, model: ev.model || e.model });
    }
    case 'response.delta': {
      const [s, e0] = ensureResponse(state, ev.response_id, null, at);
      const attempt = Number(ev.attempt) || 1;
      if (attempt < e0.attempt) return s;
      const e = attempt > e0.attempt ? { ...e0, attempt, text: '', nextIndex: 0 } : e0;
      const index = Number(ev.index) || 0;
      if (index < e.nextIndex) return e === e0 ? s : put(s, e);
      return put(s, { ...e, text: e.text + (ev.text || ''), nextIndex: index + 1, status: e.status === 'pending' ? 'streaming' : e.status });
    }
    case 'response.delayed': {
      const [s, e] = ensureResponse(state, ev.response_id, null, at, true);
      return e.status === 'pending' ? put(s, { ...e, delayed: true }) : s;
    }
    case 'response.completed':
    case 'response.failed':
    case 'response.stopped': {
      const [s, e] = ensureResponse(state, ev.response_id, null, at, true);
      const status = { 'response.completed': 'complete', 'response.failed': 'failed', 'response.stopped': 'stopped' }[ev.type];
      return put(s, {
        ...e, text: ev.text ?? e.text, status, model: ev.model || e.model, error: ev.error || e.error,
        stoppedBy: ev.stopped_by ? nameOf(s, ev.stopped_by) : e.stoppedBy,
      });
    }
    case 'conversation.renamed': {
      // A title from the first message is no one's rename: the title changes without a line.
      if (ev.from_first_message) return { ...state, conv: { ...state.conv, title: ev.title } };
      const who = ev.renamed_by === state.me ? 'you' : ev.renamed_by_name || 'the owner';
      return systemLine({ ...state, conv: { ...state.conv, title: ev.title } }, `Renamed to “${ev.title}” by ${who}`, at);
    }
    case 'settings.changed': {
      const set = ev.settings || {};
      const before = state.conv?.model;
      const conv = { ...state.conv, model: set.model ?? before, temperature: set.temperature, system_prompt: set.system_prompt };
      const who = ev.changed_by === state.me ? 'you' : ev.changed_by_name || 'someone';
      const changed = ev.changed || [];
      const text = changed.includes('model') || set.model !== before
        ? `Model changed to ${conv.model} by ${who}`
        : `Settings (${changed.map((f) => f.replace('_', ' ')).join(', ') || 'settings'}) changed by ${who}`;
      return systemLine({ ...state, conv, settingsNote: text }, text, at);
    }
    case 'attachment.added':
      return addAttachment(state, { id: ev.attachment_id, filename: ev.filename, content_type: ev.content_type, size: ev.size, uploaded_by: ev.uploaded_by }, at);
    case 'participant.added':
    case 'participant.changed': {
      const p = state.participants[ev.user_id] || {};
      const s = { ...state, participants: { ...state.participants, [ev.user_id]: { ...p, name: ev.name ?? p.name, email: ev.email ?? p.email, permission: ev.permission } } };
      return ev.user_id === state.me && ev.permission ? withPermission(s, ev.permission) : s;
    }
    case 'participant.removed': {
      const participants = { ...state.participants };
      delete participants[ev.user_id];
      return { ...state, participants, closed: ev.user_id === state.me ? 'revoked' : null };
    }
    case 'conversation.deleted':
      return { ...state, closed: 'deleted' };
    default:
      return state;
  }
}

/** The own message on its way that this `message.created` confirms goes: the real one replaces it. */
function resolveSending(state, ev) {
  const sending = state.order.map((id) => state.items[id]).filter((x) => x.kind === 'sending');
  const p = sending.find((x) => x.messageId === ev.message_id)
    || (ev.author_id === state.me ? sending.find((x) => !x.messageId && x.text === ev.text) : null);
  return p ? remove(state, p.id) : state;
}

/**
 * The answer `responseId`: `[state, item]`. It takes over the placeholder of the question it answers (a question
 * from history whose answer had not started); an end event without `messageId` takes the first placeholder.
 */
function ensureResponse(state, responseId, messageId, at, isEnd = false) {
  const e = state.items[responseId];
  if (e) return [state, e];
  const placeholder = state.order.map((id) => state.items[id])
    .find((x) => x.kind === 'message' && x.role === 'assistant' && String(x.id).startsWith('pending:') && (!messageId || x.replyTo === messageId));
  if (placeholder && (messageId || isEnd)) {
    const moved = { ...placeholder, id: responseId };
    const items = { ...state.items, [responseId]: moved };
    delete items[placeholder.id];
    return [{ ...state, items, order: state.order.map((id) => (id === placeholder.id ? responseId : id)) }, moved];
  }
  const fresh = answerOf(responseId, messageId, at);
  return [append(state, fresh), fresh];
}

function addAttachment(state, a, at) {
  const att = attachmentOf(a);
  if (!att.id || state.attachments.some((x) => x.id === att.id)) return state;
  const who = att.uploadedBy ? nameOf(state, att.uploadedBy) : '';
  const s = { ...state, attachments: [...state.attachments, att] };
  return systemLine(s, `${who === 'you' ? 'You' : who || 'Someone'} attached ${att.filename}`, at);
}

function withPermission(state, permission) {
  if (!permission || permission === state.permission) return state;
  return { ...state, permission, conv: state.conv ? { ...state.conv, permission } : state.conv };
}

// ------------------------------------------------------------------ helpers

function append(state, item) {
  return { ...state, items: { ...state.items, [item.id]: item }, order: [...state.order, item.id] };
}

function put(state, item) {
  return { ...state, items: { ...state.items, [item.id]: item } };
}

function remove(state, id) {
  if (!state.items[id]) return state;
  const items = { ...state.items };
  delete items[id];
  return { ...state, items, order: state.order.filter((x) => x !== id) };
}

function systemLine(state, text, at) {
  const n = state.systemCount + 1;
  return append({ ...state, systemCount: n }, { kind: 'system', id: `system:${n}`, text, at });
}

function answerOf(id, replyTo, at) {
  return { kind: 'message', id, role: 'assistant', text: '', status: 'pending', replyTo, attempt: 0, nextIndex: 0, at };
}

/** A history row as a timeline item. */
export function entryOf(m) {
  if (m.role === 'assistant') {
    return { kind: 'message', id: m.id, role: 'assistant', text: m.text || '', status: m.status || 'complete', model: m.model, error: m.error || undefined, replyTo: m.reply_to, attempt: 1, nextIndex: 0, at: m.created_at };
  }
  return { kind: 'message', id: m.id, role: 'user', text: m.text || '', status: 'complete', authorId: m.author_id, authorName: m.author_name, editOf: m.edit_of || null, at: m.created_at };
}

/** Forgets the attempt chosen on the turn of message `messageId`, so its newest shows. */
function showNewest(state, messageId) {
  const turn = turnOf(state, state.items[messageId]);
  if (!(turn in state.selected)) return state;
  const selected = { ...state.selected };
  delete selected[turn];
  return { ...state, selected };
}

function attachmentOf(a) {
  return { id: a.id || a.attachment_id, filename: a.filename || 'file', size: a.size, contentType: a.content_type, uploadedBy: a.uploaded_by };
}

/** Lists in responses may be bare arrays or wrapped (`{messages: […]}`). */
function listOf(v) {
  if (Array.isArray(v)) return v;
  if (v && typeof v === 'object') for (const x of Object.values(v)) if (Array.isArray(x)) return x;
  return [];
}

// ------------------------------------------------------------------ selectors (what the views show)

/**
 * The items shown, top to bottom: of a turn with several attempts only the chosen one (its answer and the
 * message version it answers).
 */
export function timeline(state) {
  const turns = attempts(state);
  return state.order.map((id) => state.items[id]).filter((item) => {
    if (item.kind !== 'message') return true;
    const list = turns.get(turnOf(state, item));
    if (!list || list.length < 2) return true;
    const shown = state.items[chosen(state, turnOf(state, item), list)];
    return item.role === 'assistant' ? item.id === shown.id : item.id === shown.replyTo;
  });
}

/**
 * A turn: a message, the versions that edit it (`editOf`, followed back to the first), and the answers to each.
 * Its id is its first message's (an answer whose message is not loaded is a turn of its own).
 */
export function turnOf(state, item) {
  if (!item) return null;
  let m = item.role === 'assistant' ? state.items[item.replyTo] : item;
  if (!m) return item.id;
  for (let hops = 0; m.editOf && state.items[m.editOf] && hops < 1000; hops++) m = state.items[m.editOf];
  return m.id;
}

/** Every turn's answers (its attempts), in order: turn id → answer ids. */
export function attempts(state) {
  const turns = new Map();
  for (const id of state.order) {
    const item = state.items[id];
    if (item.kind !== 'message' || item.role !== 'assistant') continue;
    const turn = turnOf(state, item);
    if (!turns.has(turn)) turns.set(turn, []);
    turns.get(turn).push(id);
  }
  return turns;
}

function chosen(state, turn, list) {
  const pick = state.selected[turn];
  return list.includes(pick) ? pick : list[list.length - 1];
}

/** "‹ 2 of 3 ›" of an answer whose turn has several attempts: `{ turn, index, count, prev, next }`, or null. */
export function attemptOf(state, item, turns = attempts(state)) {
  if (item.kind !== 'message' || item.role !== 'assistant') return null;
  const turn = turnOf(state, item);
  const list = turns.get(turn) || [];
  const i = list.indexOf(item.id);
  if (list.length < 2 || i < 0) return null;
  return { turn, index: i + 1, count: list.length, prev: list[i - 1] || null, next: list[i + 1] || null };
}

/**
 * What may change the last turn now (Can respond or owner, no answer running): `regenerate`, the id of the answer
 * shown on the last turn (Regenerate sits on it); `edit`, the id of the last message when it is mine. Both null
 * otherwise.
 */
export function lastTurn(state) {
  const none = { regenerate: null, edit: null, messageId: null };
  if (!canRespond(state.permission)) return none;
  const items = state.order.map((id) => state.items[id]);
  if (items.some((x) => x.kind === 'sending' || (x.kind === 'message' && x.role === 'assistant' && isRunning(x)))) return none;
  const last = items.filter((x) => x.kind === 'message' && x.role === 'user').pop();
  if (!last) return none;
  const list = attempts(state).get(turnOf(state, last)) || [];
  const shown = list.length ? state.items[chosen(state, turnOf(state, last), list)] : null;
  return {
    regenerate: shown && shown.replyTo === last.id ? shown.id : null,
    edit: last.authorId === state.me && (!shown || shown.replyTo === last.id) ? last.id : null,
    messageId: last.id,
  };
}

/** Where a copy may end (the `up_to` of `POST …/copy`): each finished answer shown, `{ id, label }`. */
export function copyPoints(state) {
  const points = [];
  let question = '';
  for (const item of timeline(state)) {
    if (item.kind !== 'message') continue;
    if (item.role === 'user') question = item.text;
    else if (['complete', 'failed', 'stopped'].includes(item.status)) {
      // The simulated AI's steering line says nothing about the question.
      const q = question.replace(/^\/sim[^\n]*\n/, '').replace(/\s+/g, ' ').trim();
      points.push({ id: item.id, label: `${points.length + 1}. ${q.length > 60 ? q.slice(0, 59) + '…' : q || 'Answer'}` });
    }
  }
  return points;
}

export function nameOf(state, userId) {
  if (userId === state.me) return 'you';
  return state.participants[userId]?.name || 'someone';
}

/** Who asked for an answer: `{ mine, name }`. */
export function askerOf(state, item) {
  const q = item.replyTo ? state.items[item.replyTo] : null;
  if (!q) return { mine: false, name: null };
  return { mine: !!q.authorId && q.authorId === state.me, name: q.authorName || null };
}

export function isRunning(item) {
  return item.status === 'pending' || item.status === 'streaming';
}

/** The Stop of one running answer (for Can respond and the owner), named after whose answer it stops; or null. */
export function stopOf(state, item) {
  if (item.role !== 'assistant' || !isRunning(item) || !canRespond(state.permission)) return null;
  const { mine, name } = askerOf(state, item);
  const label = mine ? 'Stop' : `Stop ${name ? name + '’s' : 'this'} answer`;
  return { label, ariaLabel: mine ? 'Stop your answer' : `${label} (for everyone)`, disabled: !!item.stopRequested, mine, name };
}

export function statusText(item) {
  return {
    pending: item.delayed ? UNAVAILABLE_TEXT : 'waiting for the AI…',
    streaming: 'streaming…',
    failed: `failed${item.error ? ': ' + item.error : ''}`,
    stopped: `stopped${item.stoppedBy ? ' by ' + item.stoppedBy : ''}`,
    sending: 'sending…',
  }[item.kind === 'sending' ? 'sending' : item.status] || '';
}

/** "Temperature 0.7 · System prompt set", or ''. */
export function settingsSummary(conv) {
  const parts = [];
  if (conv?.temperature != null) parts.push(`Temperature ${Number(conv.temperature.toFixed(2))}`);
  if (conv?.system_prompt) parts.push('System prompt set');
  return parts.join(' · ');
}
