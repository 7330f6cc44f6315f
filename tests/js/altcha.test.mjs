// Unit tests of the challenge solver (assets/js/altcha.js). Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { payloadOf, solve } from '../../assets/js/altcha.js';

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

function challengeFor(number, maxnumber) {
  const salt = 'abcdef012345-1000?expires=1999999999&';
  return { algorithm: 'SHA-256', challenge: sha256(salt + number), maxnumber, salt, signature: 'sig' };
}

test('finds the number, with progress on the way', async () => {
  const challenge = challengeFor(1234, 5000);
  const seen = [];
  assert.equal(await solve(challenge, { onProgress: (f) => seen.push(f) }), 1234);
  assert.ok(seen.length >= 2, 'progress was reported');
  assert.ok(seen.every((f, i) => f > 0 && f < 1 && (i === 0 || f > seen[i - 1])), `${seen}`);
});

test('the number may be 0 or maxnumber itself', async () => {
  assert.equal(await solve(challengeFor(0, 700)), 0);
  assert.equal(await solve(challengeFor(700, 700)), 700);
});

test('gives null past maxnumber, or when cancelled, and refuses other algorithms', async () => {
  assert.equal(await solve(challengeFor(900, 800)), null);
  assert.equal(await solve(challengeFor(900, 5000), { isCancelled: () => true }), null);
  await assert.rejects(solve({ ...challengeFor(1, 10), algorithm: 'SHA-1' }));
});

test('the payload is the base64 JSON ALTCHA verifiers read', () => {
  const challenge = challengeFor(5, 10);
  const decoded = JSON.parse(Buffer.from(payloadOf(challenge, 5, 42), 'base64').toString());
  assert.deepEqual(decoded, {
    algorithm: 'SHA-256',
    challenge: challenge.challenge,
    number: 5,
    salt: challenge.salt,
    signature: 'sig',
    took: 42,
  });
});
