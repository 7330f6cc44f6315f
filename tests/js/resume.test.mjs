// Unit tests of resuming a chat after a drop (assets/js/resume.js). Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  RESUME_GIVE_UP_MS,
  createResumer,
  isToken,
  resumeDelayMs,
  shouldResume,
  withResume,
} from '../../assets/js/resume.js';

const TOKEN = '0123456789abcdef0123456789ABCDEF';

test('only 32 hex digits are a token', () => {
  assert.ok(isToken(TOKEN));
  for (const bad of [null, undefined, '', 'abc', 'g'.repeat(32), '0'.repeat(33), 42]) {
    assert.equal(isToken(bad), false, String(bad));
  }
});

test('the resume URL keeps the visitor token and adds the resume one', () => {
  const url = withResume('ws://h:1/ws?visitor=v1', TOKEN);
  const u = new URL(url);
  assert.equal(u.searchParams.get('visitor'), 'v1');
  assert.equal(u.searchParams.get('resume'), TOKEN);
});

test('a drop without a close frame or a server restart is resumed; an end is not', () => {
  assert.ok(shouldResume({ code: 1006, byUs: false, token: TOKEN }));
  assert.ok(shouldResume({ code: 1012, byUs: false, token: TOKEN }));
  // The partner left or was lost, we ended it, the server stopped for good, no token.
  assert.equal(shouldResume({ code: 1000, byUs: false, token: TOKEN }), false);
  assert.equal(shouldResume({ code: 1001, byUs: false, token: TOKEN }), false);
  assert.equal(shouldResume({ code: 1006, byUs: true, token: TOKEN }), false);
  assert.equal(shouldResume({ code: 1006, byUs: false, token: null }), false);
});

test('a restart is resumed at once, a drop after a short delay, and the delays grow', () => {
  assert.equal(resumeDelayMs(0, 1012), 0);
  assert.ok(resumeDelayMs(0, 1006) > 0);
  for (let i = 1; i < 8; i++) assert.ok(resumeDelayMs(i, 1006) >= resumeDelayMs(i - 1, 1006));
  assert.ok(resumeDelayMs(1, 1012) > 0);
});

test('the resumer retries until the grace is surely over, then gives up', () => {
  let t = 1000;
  const r = createResumer({ now: () => t });
  assert.equal(r.dropped({ code: 1006, byUs: false }), null, 'no token yet');
  r.setToken(TOKEN);
  assert.equal(r.token, TOKEN);
  const first = r.dropped({ code: 1006, byUs: false });
  assert.ok(first > 0);
  assert.ok(r.active);
  let tries = 0;
  for (;;) {
    const delay = r.failed();
    if (delay === null) break;
    t += delay;
    tries += 1;
    assert.ok(tries < 100);
  }
  assert.ok(t - 1000 <= RESUME_GIVE_UP_MS, 'never past the give-up time');
  assert.ok(tries >= 4, `${tries} attempts`);
  assert.equal(r.active, false);
});

test('resumed takes the next token; reset forgets everything', () => {
  const r = createResumer({ now: () => 0 });
  r.setToken(TOKEN);
  assert.equal(r.dropped({ code: 1012, byUs: false }), 0);
  const next = 'f'.repeat(32);
  r.resumed(next);
  assert.equal(r.active, false);
  assert.equal(r.token, next);
  r.reset();
  assert.equal(r.token, null);
  r.setToken('junk');
  assert.equal(r.token, null);
});
