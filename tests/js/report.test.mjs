// Unit tests for assets/js/report.js: run with `node --test tests/js/`.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { translator } from '../../assets/js/i18n.js';
import { REASONS, bannedNotice, reportUrlFor } from '../../assets/js/report.js';

// The two messages as the server compiles them from locales/en/pairchat.ftl (src/i18n/compile.rs).
const tr = translator({
  lang: 'en',
  messages: {
    'banned-until': ['You are banned from this chat until ', { v: 'until' }, '.'],
    'banned-reason': ['Reason: ', { v: 'reason' }],
  },
});

test('reports go to /report on the chat server, over https behind wss', () => {
  assert.equal(reportUrlFor('ws://127.0.0.1:8080/ws?visitor=x'), 'http://127.0.0.1:8080/report');
  assert.equal(reportUrlFor('wss://chat.example/ws'), 'https://chat.example/report');
});

test('the reasons are the protocol reasons, in order', () => {
  assert.deepEqual(
    REASONS,
    ['spam', 'harassment', 'sexual', 'under_age', 'other'],
  );
});

test('a ban says until when and why, and the appeal when there is one', () => {
  const fmt = (d) => d.toISOString();
  const frame = { error: 'banned', reason: 'Spamming links', until_ms: 0, appeal: ' mail us ' };
  assert.deepEqual(bannedNotice(frame, tr, fmt), {
    lines: ['You are banned from this chat until 1970-01-01T00:00:00.000Z.', 'Reason: Spamming links'],
    appeal: 'mail us',
  });
  assert.equal(bannedNotice({ until: 'soon' }, tr, fmt).appeal, null);
  assert.match(bannedNotice({ until: 'soon', until_ms: 'x' }, tr, fmt).lines[0], /until soon\./);
});
