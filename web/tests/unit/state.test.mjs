// Unit tests of the conversation reducer (web/js/conversation/state.js), with node's own test runner:
// `node --test web/tests/unit/` (web/tests/run.sh runs them; so does `scripts/test`, through e2e's web_client.rs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  initialState, reduce, timeline, stopOf, statusText, askerOf, settingsSummary, UNAVAILABLE_TEXT, attemptOf, lastTurn, copyPoints,
} from '../../js/conversation/state.js';

const ME = 'u-ada';
const BEN = 'u-ben';
const NOW = Date.parse('2026-12-02T12:00:00Z');

function detail(extra = {}) {
  return {
    id: 'c1', title: 'Launch', owner_id: ME, owner_name: 'Ada', model: 'sim-1', permission: 'owner', seq: 10,
    participants: [{ user_id: BEN, name: 'Ben', email: 'ben@x', permission: 'respond' }],
    messages: [], attachments: [], ...extra,
  };
}

const loadedState = (extra) => reduce(initialState('c1', ME), { type: 'loaded', detail: detail(extra), now: NOW });
let seq = 10;
const ev = (state, event) => reduce(state, { type: 'event', seq: ++seq, event, now: NOW });
const texts = (s) => timeline(s).map((i) => `${i.kind}:${i.role || ''}:${i.status || ''}:${i.text}`);

test('history loads in seq order; an unanswered recent question gets a pending answer', () => {
  const s = loadedState({
    messages: [
      { id: 'm2', role: 'assistant', text: 'Hi', reply_to: 'm1', seq: 3, created_at: '2026-12-02T11:00:01Z' },
      { id: 'm1', role: 'user', text: 'Hello', author_id: BEN, author_name: 'Ben', seq: 2, created_at: '2026-12-02T11:00:00Z' },
      { id: 'm3', role: 'user', text: 'Again?', author_id: ME, author_name: 'Ada', seq: 5, created_at: new Date(NOW - 20000).toISOString() },
    ],
  });
  assert.equal(s.lastSeq, 10);
  assert.equal(s.permission, 'owner');
  assert.deepEqual(texts(s), ['message:user:complete:Hello', 'message:assistant:complete:Hi', 'message:user:complete:Again?', 'message:assistant:pending:']);
  const pending = timeline(s)[3];
  assert.equal(pending.id, 'pending:m3');
  assert.equal(pending.delayed, true, 'older than the AI wait: shown unavailable');
  assert.equal(statusText(pending), UNAVAILABLE_TEXT);
});

test('an old unanswered question gets no placeholder', () => {
  const s = loadedState({ messages: [{ id: 'm1', role: 'user', text: 'x', author_id: ME, seq: 1, created_at: new Date(NOW - 600000).toISOString() }] });
  assert.equal(timeline(s).length, 1);
});

test('a streamed answer: deltas in index order, replays and duplicates ignored, then the full text', () => {
  let s = loadedState();
  s = ev(s, { type: 'message.created', message_id: 'q1', response_id: 'r1', author_id: BEN, author_name: 'Ben', text: 'Plan?' });
  s = ev(s, { type: 'response.started', response_id: 'r1', message_id: 'q1', attempt: 1, model: 'sim-1' });
  s = ev(s, { type: 'response.delta', response_id: 'r1', attempt: 1, index: 0, text: 'One ' });
  const replayed = reduce(s, { type: 'event', seq: s.lastSeq, event: { type: 'response.delta', response_id: 'r1', attempt: 1, index: 1, text: 'DUP ' }, now: NOW });
  assert.equal(replayed, s, 'a frame at or below lastSeq changes nothing');
  s = ev(s, { type: 'response.delta', response_id: 'r1', attempt: 1, index: 0, text: 'One ' });
  s = ev(s, { type: 'response.delta', response_id: 'r1', attempt: 1, index: 1, text: 'two' });
  assert.equal(s.items.r1.text, 'One two');
  assert.equal(s.items.r1.status, 'streaming');
  s = ev(s, { type: 'response.completed', response_id: 'r1', text: 'One two.', model: 'sim-1' });
  assert.deepEqual(texts(s), ['message:user:complete:Plan?', 'message:assistant:complete:One two.']);
});

test('a retry after a worker crash drops the partial text; a late event of the old attempt is ignored', () => {
  let s = loadedState();
  s = ev(s, { type: 'message.created', message_id: 'q1', response_id: 'r1', author_id: ME, text: 'x' });
  s = ev(s, { type: 'response.started', response_id: 'r1', attempt: 1 });
  s = ev(s, { type: 'response.delta', response_id: 'r1', attempt: 1, index: 0, text: 'half' });
  s = ev(s, { type: 'response.started', response_id: 'r1', attempt: 2 });
  assert.equal(s.items.r1.text, '');
  s = ev(s, { type: 'response.delta', response_id: 'r1', attempt: 1, index: 1, text: 'late' });
  s = ev(s, { type: 'response.delta', response_id: 'r1', attempt: 2, index: 0, text: 'fresh' });
  assert.equal(s.items.r1.text, 'fresh');
  assert.equal(s.items.r1.attempt, 2);
});

test('a history placeholder is taken over by its response, in place', () => {
  let s = loadedState({ messages: [{ id: 'm1', role: 'user', text: 'q', author_id: ME, seq: 1, created_at: new Date(NOW - 1000).toISOString() }] });
  s = ev(s, { type: 'response.started', response_id: 'r9', message_id: 'm1', attempt: 1 });
  assert.deepEqual(s.order, ['m1', 'r9']);
  assert.equal(s.items['pending:m1'], undefined);
  assert.equal(s.items.r9.replyTo, 'm1');
});

test('response.delayed marks only a pending answer; started clears it', () => {
  let s = loadedState();
  s = ev(s, { type: 'message.created', message_id: 'q1', response_id: 'r1', author_id: ME, text: 'x' });
  s = ev(s, { type: 'response.delayed', response_id: 'r1' });
  assert.equal(s.items.r1.delayed, true);
  s = ev(s, { type: 'response.started', response_id: 'r1', attempt: 1 });
  assert.equal(s.items.r1.delayed, false);
});

test('own message on its way: replaced by the real one, whichever of reply and event comes first', () => {
  let s = loadedState();
  s = reduce(s, { type: 'send', localId: 1, text: 'hello', now: NOW });
  assert.deepEqual(texts(s), ['sending:::hello']);
  assert.equal(statusText(timeline(s)[0]), 'sending…');
  // event first, matched by author and text
  const a = ev(s, { type: 'message.created', message_id: 'q1', response_id: 'r1', author_id: ME, text: 'hello' });
  assert.deepEqual(texts(a), ['message:user:complete:hello', 'message:assistant:pending:']);
  assert.equal(reduce(a, { type: 'sent', localId: 1, messageId: 'q1' }), a);
  // reply first, then the event matched by id
  let b = reduce(s, { type: 'sent', localId: 1, messageId: 'q1' });
  assert.equal(b.items['local:1'].messageId, 'q1');
  b = ev(b, { type: 'message.created', message_id: 'q1', author_id: ME, text: 'hello' });
  assert.deepEqual(texts(b), ['message:user:complete:hello']);
  // failure: gone
  assert.deepEqual(texts(reduce(s, { type: 'send_failed', localId: 1 })), []);
});

test('stop: named after whose answer it is, only for those who may respond, disabled once asked', () => {
  let s = loadedState();
  s = ev(s, { type: 'message.created', message_id: 'q1', response_id: 'r1', author_id: BEN, author_name: 'Ben', text: 'x' });
  const stop = stopOf(s, s.items.r1);
  assert.equal(stop.label, 'Stop Ben’s answer');
  assert.equal(stop.ariaLabel, 'Stop Ben’s answer (for everyone)');
  assert.deepEqual(askerOf(s, s.items.r1), { mine: false, name: 'Ben' });
  s = reduce(s, { type: 'stop_requested', id: 'r1', on: true });
  assert.equal(stopOf(s, s.items.r1).disabled, true);
  assert.equal(stopOf(reduce(s, { type: 'permission', permission: 'view' }), s.items.r1), null);
  s = ev(s, { type: 'response.stopped', response_id: 'r1', text: '', stopped_by: ME });
  assert.equal(stopOf(s, s.items.r1), null);
  assert.equal(statusText(s.items.r1), 'stopped by you');
});

test('a title from the first message is the title for everyone, not a rename by its author', () => {
  let s = loadedState();
  s = ev(s, { type: 'conversation.renamed', title: 'Plan the launch', renamed_by: BEN, renamed_by_name: 'Ben', from_first_message: true });
  assert.equal(s.conv.title, 'Plan the launch');
  assert.deepEqual(timeline(s).map((i) => i.text), []);
  s = ev(s, { type: 'conversation.renamed', title: 'Launch', renamed_by: BEN, renamed_by_name: 'Ben' });
  assert.deepEqual(timeline(s).map((i) => i.text), ['Renamed to “Launch” by Ben']);
});

test('rename, settings and attachments become system lines; the header data follows', () => {
  let s = loadedState();
  s = ev(s, { type: 'conversation.renamed', title: 'Final', renamed_by: ME });
  s = ev(s, { type: 'settings.changed', settings: { model: 'sim-1', temperature: 0.7, system_prompt: 'Be brief' }, changed: ['temperature', 'system_prompt'], changed_by: BEN, changed_by_name: 'Ben' });
  s = ev(s, { type: 'attachment.added', attachment_id: 'a1', filename: 'n.txt', size: 3, uploaded_by: BEN });
  s = ev(s, { type: 'attachment.added', attachment_id: 'a1', filename: 'n.txt', size: 3, uploaded_by: BEN });
  assert.equal(s.conv.title, 'Final');
  assert.equal(settingsSummary(s.conv), 'Temperature 0.7 · System prompt set');
  assert.equal(s.settingsNote, 'Settings (temperature, system prompt) changed by Ben');
  assert.deepEqual(timeline(s).map((i) => i.text), ['Renamed to “Final” by you', 'Settings (temperature, system prompt) changed by Ben', 'Ben attached n.txt']);
  assert.equal(s.attachments.length, 1);
  s = ev(s, { type: 'settings.changed', settings: { model: 'sim-2' }, changed: ['model'], changed_by: ME });
  assert.equal(s.settingsNote, 'Model changed to sim-2 by you');
});

test('permission changes, revocation and deletion', () => {
  let s = reduce(initialState('c1', BEN), { type: 'loaded', detail: detail({ permission: 'view' }), now: NOW });
  s = ev(s, { type: 'participant.changed', user_id: BEN, name: 'Ben', permission: 'respond' });
  assert.equal(s.permission, 'respond');
  assert.equal(s.participants[BEN].permission, 'respond');
  const other = ev(s, { type: 'participant.removed', user_id: 'u-cy' });
  assert.equal(other.closed, null);
  const revoked = ev(s, { type: 'participant.removed', user_id: BEN });
  assert.equal(revoked.closed, 'revoked');
  assert.equal(ev(revoked, { type: 'conversation.deleted' }), revoked, 'a closed conversation takes nothing more');
  assert.equal(ev(s, { type: 'conversation.deleted' }).closed, 'deleted');
  assert.equal(reduce(s, { type: 'closed', reason: 'deleted' }).closed, 'deleted');
});

test('earlier pages go on top; the reducer never changes the state it was given', () => {
  const s = loadedState({ has_more: true, next_before: 'cur1', messages: [{ id: 'm5', role: 'user', text: 'late', author_id: ME, seq: 5, created_at: '2026-12-01T00:00:00Z' }] });
  const frozen = JSON.stringify(s);
  const t = reduce(s, { type: 'earlier', page: { has_more: false, messages: [{ id: 'm2', role: 'user', text: 'early', author_id: ME, seq: 2 }, { id: 'm5', role: 'user', text: 'dup', seq: 5 }] } });
  assert.deepEqual(t.order, ['m2', 'm5']);
  assert.equal(t.earlier, null);
  assert.equal(s.earlier, 'cur1');
  assert.equal(JSON.stringify(s), frozen);
  assert.equal(t.items.m5, s.items.m5, 'an unchanged item keeps its identity (views skip it)');
});

// ------------------------------------------------------------------ versions of the last turn (edit, regenerate)

const row = (id, role, seqNo, extra = {}) => ({ id, role, text: id.toUpperCase(), seq: seqNo, created_at: '2026-12-02T11:00:00Z', ...extra });

test('a regenerate live: the new attempt shows at once as 2 of 2, and 1 of 2 is one click away', () => {
  let s = loadedState({ messages: [row('q1', 'user', 1, { author_id: BEN, author_name: 'Ben' }), row('a1', 'assistant', 2, { reply_to: 'q1' })] });
  assert.deepEqual(lastTurn(s), { regenerate: 'a1', edit: null, messageId: 'q1' }, "Ada may regenerate, not edit Ben's message");
  s = ev(s, { type: 'response.requested', response_id: 'a2', message_id: 'q1', requested_by: BEN, requested_by_name: 'Ben' });
  assert.deepEqual(texts(s), ['message:user:complete:Q1', 'message:assistant:pending:']);
  assert.deepEqual(lastTurn(s).regenerate, null, 'nothing changes the turn while an answer runs');
  s = ev(s, { type: 'response.started', response_id: 'a2', message_id: 'q1', attempt: 1, model: 'sim-1' });
  s = ev(s, { type: 'response.completed', response_id: 'a2', attempt: 1, text: 'Second try', model: 'sim-1' });
  const shown = timeline(s)[1];
  assert.equal(shown.id, 'a2');
  assert.deepEqual(attemptOf(s, shown), { turn: 'q1', index: 2, count: 2, prev: 'a1', next: null });
  s = reduce(s, { type: 'select_version', turn: 'q1', id: 'a1' });
  assert.deepEqual(texts(s), ['message:user:complete:Q1', 'message:assistant:complete:A1']);
  assert.deepEqual(attemptOf(s, timeline(s)[1]), { turn: 'q1', index: 1, count: 2, prev: null, next: 'a2' });
  assert.equal(lastTurn(s).regenerate, 'a1', 'an older answer to the last message may be regenerated too');
});

test('an edit is a new attempt of the turn with its own message; history keeps both in order', () => {
  const hist = [
    row('q1', 'user', 1, { author_id: ME, author_name: 'Ada' }),
    row('a1', 'assistant', 2, { reply_to: 'q1' }),
    row('a2', 'assistant', 4, { reply_to: 'q1' }),
    row('q2', 'user', 6, { author_id: ME, author_name: 'Ada', edit_of: 'q1' }),
    row('a3', 'assistant', 7, { reply_to: 'q2' }),
  ];
  let s = loadedState({ messages: hist });
  assert.deepEqual(texts(s), ['message:user:complete:Q2', 'message:assistant:complete:A3']);
  assert.deepEqual(attemptOf(s, timeline(s)[1]), { turn: 'q1', index: 3, count: 3, prev: 'a2', next: null });
  assert.deepEqual(lastTurn(s), { regenerate: 'a3', edit: 'q2', messageId: 'q2' });
  s = reduce(s, { type: 'select_version', turn: 'q1', id: 'a2' });
  assert.deepEqual(texts(s), ['message:user:complete:Q1', 'message:assistant:complete:A2'], 'the older attempt shows its own question');
  assert.deepEqual(lastTurn(s).edit, null, 'editing is from the newest attempt');
  // Another edit arrives live: the newest shows again for every viewer.
  s = ev(s, { type: 'message.created', message_id: 'q3', response_id: 'a4', author_id: ME, author_name: 'Ada', text: 'Q3', edit_of: 'q2' });
  assert.deepEqual(texts(s), ['message:user:complete:Q3', 'message:assistant:pending:']);
  assert.equal(attemptOf(s, timeline(s)[1]).count, 4);
  // A later turn is a turn of its own.
  s = ev(s, { type: 'response.completed', response_id: 'a4', attempt: 1, text: 'A4', model: 'sim-1' });
  s = ev(s, { type: 'message.created', message_id: 'q4', response_id: 'a5', author_id: BEN, author_name: 'Ben', text: 'Next' });
  assert.equal(attemptOf(s, s.items.a5), null);
  assert.deepEqual(texts(s).slice(0, 2), ['message:user:complete:Q3', 'message:assistant:complete:A4']);
});

test('View only never gets edit or regenerate; copy points follow the attempts shown', () => {
  let s = loadedState({ permission: 'view', messages: [row('q1', 'user', 1, { author_id: ME }), row('a1', 'assistant', 2, { reply_to: 'q1' }), row('a2', 'assistant', 3, { reply_to: 'q1' })] });
  assert.deepEqual(lastTurn(s), { regenerate: null, edit: null, messageId: null });
  assert.deepEqual(copyPoints(s), [{ id: 'a2', label: '1. Q1' }]);
  s = reduce(s, { type: 'select_version', turn: 'q1', id: 'a1' });
  assert.deepEqual(copyPoints(s).map((p) => p.id), ['a1']);
  s = ev(s, { type: 'message.created', message_id: 'q2', response_id: 'a3', author_id: BEN, author_name: 'Ben', text: '/sim tokens=5\nAnd   then?' });
  s = ev(s, { type: 'response.completed', response_id: 'a3', attempt: 1, text: 'Done', model: 'sim-1' });
  assert.deepEqual(copyPoints(s)[1], { id: 'a3', label: '2. And then?' });
});

test('a failed answer loaded from history (a reload, a late joiner) shows its reason', () => {
  const s = loadedState({
    messages: [
      { id: 'm1', role: 'user', text: 'Hello', author_id: BEN, author_name: 'Ben', seq: 2, created_at: '2026-12-02T11:00:00Z' },
      { id: 'r1', role: 'assistant', text: 'Half', status: 'failed', error: 'provider timed out', reply_to: 'm1', seq: 3, created_at: '2026-12-02T11:00:01Z' },
    ],
  });
  const answer = timeline(s)[1];
  assert.equal(answer.status, 'failed');
  assert.equal(statusText(answer), 'failed: provider timed out');
});
