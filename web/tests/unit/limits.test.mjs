// Unit test of what the client tells a person who hit a limit (web/js/api.js `rateLimitText`): why, and when they
// can try again. `node --test web/tests/unit/`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rateLimitText, errorText, ApiError } from '../../js/api.js';

const NOW = new Date(2026, 11, 2, 14, 0, 0).getTime();

test('a refusal says why and when to try again', () => {
  const text = rateLimitText('this conversation has too many answers in progress; try again in 5 s', 5000, NOW);
  assert.equal(text, `This conversation has too many answers in progress. You can try again in 5 s (at ${new Date(NOW + 5000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}).`);
});

test('long waits read in minutes or hours', () => {
  assert.match(rateLimitText('too many sign-in attempts; try again in 600 s', 600_000, NOW), /^Too many sign-in attempts\. You can try again in 10 min \(at .+\)\.$/);
  assert.match(rateLimitText('you have started too many AI replies', 86_400_000, NOW), /try again in 24 h/);
});

test('a 429 from the api reads as a limit, other errors as their message', () => {
  assert.match(errorText(new ApiError(429, 'rate_limited', 'slow down', 2000)), /^Slow down\. You can try again in 2 s/);
  assert.equal(errorText(new ApiError(413, 'quota_exceeded', 'the quota is full')), 'the quota is full');
});
