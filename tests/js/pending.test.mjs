// Unit tests of the queue of our messages waiting for their receipts (assets/js/pending.js).
// Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MAX_PENDING, createPending, refusesMessage } from '../../assets/js/pending.js';

const texts = (entries) => entries.map((m) => m.text);

test('several messages wait at once and their receipts deliver them in order', () => {
  const q = createPending();
  for (const text of ['one', 'two', 'three']) assert.ok(q.sent({ text }));
  assert.equal(q.size, 3);
  assert.equal(q.full, false);
  assert.equal(q.receipt('one').text, 'one');
  assert.equal(q.receipt('two').text, 'two');
  assert.equal(q.size, 1);
  assert.equal(q.receipt('three').text, 'three');
  assert.equal(q.size, 0);
  assert.equal(q.receipt('three'), null, 'answered once');
});

test('of two equal texts the older is delivered first', () => {
  const q = createPending();
  const first = { text: 'ok' };
  const second = { text: 'ok' };
  q.sent(first);
  q.sent(second);
  assert.equal(q.receipt('ok'), first);
  assert.equal(q.receipt('ok'), second);
});

test('the queue is capped: past the cap nothing is kept until a receipt frees a place', () => {
  assert.ok(MAX_PENDING >= 10 && MAX_PENDING <= 50, `${MAX_PENDING}`);
  const q = createPending(3);
  for (const text of ['a', 'b', 'c']) assert.ok(q.sent({ text }));
  assert.ok(q.full);
  assert.equal(q.sent({ text: 'd' }), false);
  assert.equal(q.size, 3);
  q.receipt('a');
  assert.equal(q.full, false);
  assert.ok(q.sent({ text: 'd' }));
  assert.deepEqual(texts(q.ended()), ['b', 'c', 'd']);
});

test('a refusal overtakes held receipts: it takes the newest, and the held ones still arrive', () => {
  // Partner away: "held 1" and "held 2" wait on the server; "too fast" is refused at once.
  const q = createPending();
  for (const text of ['held 1', 'held 2', 'too fast']) q.sent({ text });
  assert.equal(q.refused().text, 'too fast');
  assert.equal(q.receipt('held 1').text, 'held 1');
  assert.equal(q.receipt('held 2').text, 'held 2');
  assert.equal(q.refused(), null);
});

test('a refusal put on the wrong message does not shift the later receipts', () => {
  // "b" was refused but "c" was sent within the round trip: the newest ("c") is taken back.
  const q = createPending();
  for (const text of ['a', 'b', 'c']) q.sent({ text });
  assert.equal(q.refused().text, 'c');
  // The receipts of a and c (the server's truth) still find a; c's finds nothing left to
  // deliver (chat.js then shows it as delivered), and b is left waiting, not marked delivered.
  assert.equal(q.receipt('a').text, 'a');
  assert.equal(q.receipt('c'), null);
  assert.deepEqual(texts(q.ended()), ['b']);
});

test('undelivered goes to the oldest waiting message, in send order', () => {
  const q = createPending();
  for (const text of ['a', 'b', 'c']) q.sent({ text });
  assert.equal(q.undelivered().text, 'a');
  assert.equal(q.undelivered().text, 'b');
  assert.equal(q.receipt('c').text, 'c');
  assert.equal(q.undelivered(), null);
});

test('a drop makes every waiting message unconfirmed; a receipt after the resume finds it', () => {
  const q = createPending();
  for (const text of ['before 1', 'before 2']) q.sent({ text });
  assert.deepEqual(texts(q.dropped()), ['before 1', 'before 2']);
  assert.equal(q.size, 0, 'not waited for any more');
  assert.equal(q.full, false);
  q.sent({ text: 'after' });
  assert.equal(q.receipt('before 2').text, 'before 2');
  assert.equal(q.receipt('after').text, 'after');
  assert.equal(q.receipt('nobody sent this'), null);
  // Undelivered: the waiting ones first, then what the drop left unconfirmed.
  q.sent({ text: 'later' });
  assert.equal(q.undelivered().text, 'later');
  assert.equal(q.undelivered().text, 'before 1');
  assert.equal(q.undelivered(), null);
});

test('a receipt prefers a waiting message to an unconfirmed one of the same text', () => {
  const q = createPending();
  const old = { text: 'hi' };
  q.sent(old);
  q.dropped();
  const now = { text: 'hi' };
  q.sent(now);
  // Whichever the first receipt is for, the second (if any) finds the other.
  assert.equal(q.receipt('hi'), now);
  assert.equal(q.receipt('hi'), old);
});

test('unconfirmed messages are remembered up to the cap; the chat end and a new chat', () => {
  const q = createPending(2);
  for (const round of [1, 2]) {
    q.sent({ text: `r${round}a` });
    q.sent({ text: `r${round}b` });
    q.dropped();
  }
  assert.equal(q.receipt('r1a'), null, 'the oldest is forgotten');
  assert.equal(q.receipt('r2a').text, 'r2a');
  q.sent({ text: 'x' });
  assert.deepEqual(texts(q.ended()), ['x']);
  assert.deepEqual(q.ended(), []);
  q.clear();
  assert.equal(q.receipt('r2b'), null, 'a new chat waits for nothing of the last');
});

test('only a refusal of a message frame takes one back', () => {
  for (const code of ['rate_limited', 'empty_message', 'message_too_long', 'not_paired']) {
    assert.ok(refusesMessage(code), code);
  }
  for (const code of ['undelivered', 'bad_report', 'unavailable', 'banned', 'resume_failed', '']) {
    assert.equal(refusesMessage(code), false, code);
  }
});
