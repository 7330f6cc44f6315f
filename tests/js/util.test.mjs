// Unit tests of the client's pure helpers (assets/js/util.js). Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  charCount,
  closeNotice,
  composerKeyAction,
  escapeAction,
  formatTime,
  formatWaited,
  isBlank,
  linkParts,
  onlineUrlFor,
  originOf,
  parseFrame,
  newVisitorToken,
  retryDelaySecs,
  retryReason,
  themeOf,
  withVisitor,
  wsUrlFor,
} from '../../assets/js/util.js';

test('whitespace-only messages are blank', () => {
  for (const s of ['', ' ', '\n\n', '\t \r\n', '\u00a0\u2003']) assert.equal(isBlank(s), true, JSON.stringify(s));
  for (const s of ['a', ' hi ', '\n.\n', '0']) assert.equal(isBlank(s), false, JSON.stringify(s));
  assert.equal(isBlank(undefined), true);
});

test('Enter and Ctrl+Enter send, Shift+Enter makes a new line', () => {
  assert.equal(composerKeyAction({ key: 'Enter' }), 'send');
  assert.equal(composerKeyAction({ key: 'Enter', ctrlKey: true }), 'send');
  assert.equal(composerKeyAction({ key: 'Enter', metaKey: true }), 'send');
  assert.equal(composerKeyAction({ key: 'Enter', shiftKey: true }), 'newline');
  assert.equal(composerKeyAction({ key: 'Enter', shiftKey: true, ctrlKey: true }), 'send');
  assert.equal(composerKeyAction({ key: 'Enter', isComposing: true }), null);
  assert.equal(composerKeyAction({ key: 'Enter', altKey: true }), null);
  assert.equal(composerKeyAction({ key: 'a' }), null);
});

test('Esc: confirm then end in chat, start in idle/closed, cancel while waiting', () => {
  assert.equal(escapeAction('chat', false), 'confirm');
  assert.equal(escapeAction('chat', true), 'end');
  assert.equal(escapeAction('idle', false), 'start');
  assert.equal(escapeAction('closed', false), 'start');
  assert.equal(escapeAction('waiting', false), 'cancel');
  assert.equal(escapeAction('connecting', false), 'cancel');
  assert.equal(escapeAction('retrying', false), 'cancel');
  assert.equal(escapeAction('elsewhere', false), null);
});

test('close notices', () => {
  assert.deepEqual(closeNotice({ code: 1000, reason: '', byUs: true }), { kind: 'left', id: 'left-by-you' });
  for (const reason of ['partner left', 'partner lost']) {
    assert.deepEqual(closeNotice({ code: 1000, reason, byUs: false }), {
      kind: 'disconnected',
      id: 'left-by-stranger',
    });
  }
  assert.deepEqual(closeNotice({ code: 1001, reason: '', byUs: false }), { kind: 'server', id: 'closed-server-restart' });
  assert.deepEqual(closeNotice({ code: 1006, reason: '', byUs: false }), { kind: 'lost', id: 'closed-connection-lost' });
  assert.equal(retryReason({ everOpened: false }), 'retry-no-connection');
  assert.equal(retryReason({ everOpened: true, code: 1001 }), 'retry-restarting');
  assert.equal(retryReason({ everOpened: true, code: 1006 }), 'retry-lost');
  assert.equal(retryReason({ everOpened: false, timedOut: true }), 'retry-timed-out');
});

test('retries back off to every 10 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 50].map(retryDelaySecs), [1, 2, 4, 8, 10, 10, 10]);
});

test('waiting times and message lengths', () => {
  assert.equal(formatWaited(0), '0:00');
  assert.equal(formatWaited(7_900), '0:07');
  assert.equal(formatWaited(75_000), '1:15');
  assert.equal(formatWaited(3_723_000), '1:02:03');
  assert.equal(charCount('héllo'), 5);
  assert.equal(charCount('😀😀'), 2, 'counted as the server counts: scalar values, not UTF-16 units');
});

test('links: http and https only, sentence punctuation left out, everything else text', () => {
  assert.deepEqual(linkParts('no links here'), [{ text: 'no links here' }]);
  assert.deepEqual(linkParts('see https://example.com/a?b=1&c=2.'), [
    { text: 'see ' },
    { text: 'https://example.com/a?b=1&c=2', href: 'https://example.com/a?b=1&c=2' },
    { text: '.' },
  ]);
  assert.deepEqual(linkParts('(http://x.example/wiki/A_(b)) ok'), [
    { text: '(' },
    { text: 'http://x.example/wiki/A_(b)', href: 'http://x.example/wiki/A_(b)' },
    { text: ') ok' },
  ]);
  for (const text of ['javascript:alert(1)', 'ftp://x.example/f', 'data:text/html,<b>x</b>', '<a href="https://x">x</a>y']) {
    const parts = linkParts(text);
    assert.ok(parts.every((p) => !p.href || p.href.startsWith('https://x')), text);
    assert.equal(parts.map((p) => p.text).join(''), text, 'no text is lost');
  }
  assert.deepEqual(linkParts(''), [{ text: '' }]);
});

test('the online endpoint and the theme option', () => {
  assert.equal(onlineUrlFor('wss://chat.example/ws'), 'https://chat.example/online');
  assert.equal(onlineUrlFor('ws://127.0.0.1:8080/ws'), 'http://127.0.0.1:8080/online');
  assert.equal(themeOf('Dark'), 'dark');
  assert.equal(themeOf('light'), 'light');
  for (const other of ['auto', '', null, undefined, 'purple']) assert.equal(themeOf(other), null);
});

test('WebSocket URL from a page or script URL', () => {
  assert.equal(wsUrlFor('https://chat.example.com/embed.js'), 'wss://chat.example.com/ws');
  assert.equal(wsUrlFor('http://127.0.0.1:8080/'), 'ws://127.0.0.1:8080/ws');
  assert.equal(wsUrlFor('https://h.example:8443/widget?x=1#y'), 'wss://h.example:8443/ws');
  assert.equal(originOf('https://h.example:8443/embed.js?v=2'), 'https://h.example:8443');
});

test('frames are parsed defensively', () => {
  assert.deepEqual(parseFrame('{"type":"online","count":3}'), { type: 'online', count: 3 });
  for (const bad of ['nope', '[1]', '{"count":3}', '{"type":5}', 'null', 42, null]) {
    assert.equal(parseFrame(bad), null, String(bad));
  }
});

test('times are short local times', () => {
  const t = formatTime(new Date(2024, 0, 2, 14, 5));
  assert.match(t, /\b0?2|14/);
  assert.match(t, /05/);
});

test('withVisitor adds a valid token to the WebSocket URL and drops anything else', () => {
  assert.equal(withVisitor('ws://h:1/ws', 'abc-DEF_09'), 'ws://h:1/ws?visitor=abc-DEF_09');
  assert.equal(withVisitor('wss://h/ws', ''), 'wss://h/ws');
  assert.equal(withVisitor('wss://h/ws', 'a b'), 'wss://h/ws');
  assert.equal(withVisitor('wss://h/ws', 'x'.repeat(65)), 'wss://h/ws');
  assert.equal(withVisitor('wss://h/ws', null), 'wss://h/ws');
});

test('newVisitorToken makes distinct tokens the server accepts', () => {
  const a = newVisitorToken();
  const b = newVisitorToken();
  assert.notEqual(a, b);
  assert.match(a, /^[A-Za-z0-9_-]{1,64}$/);
});
