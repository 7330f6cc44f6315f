// The interests' own rules on the page: a tag is normalised as the server does it, and the
// first line of a chat names what both like.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { translator } from '../../assets/js/i18n.js';
import { foundText, MAX_TAG_CHARS, normalizeTag } from '../../assets/js/interests.js';

// The two keys in the form the server compiles from locales/en/pairchat.ftl (src/i18n/compile.rs).
const en = translator({
  lang: 'en',
  messages: {
    found: 'Stranger found — say hi!',
    'found-common': ['Stranger found — say hi! You both like: ', { v: 'tags' }],
  },
});

test('a tag is trimmed, lower-cased, collapsed and composed (NFC)', () => {
  assert.equal(normalizeTag('  Music '), 'music');
  assert.equal(normalizeTag('Café \t Racer'), 'café racer');
  assert.equal(normalizeTag('Cafe\u0301'), 'caf\u00e9');
  assert.equal(normalizeTag('ГОРОД'), 'город');
  assert.equal(normalizeTag('a\u00a0\u3000b'), 'a b');
});

test('a tag is 1 to 32 characters without control characters', () => {
  assert.equal(normalizeTag(''), null);
  assert.equal(normalizeTag('   '), null);
  assert.equal(normalizeTag('a\u0000b'), null);
  const longest = 'я'.repeat(MAX_TAG_CHARS);
  assert.equal(normalizeTag(longest), longest);
  assert.equal(normalizeTag(`${longest}я`), null);
  // Counted in characters, not UTF-16 units: 32 emoji are fine.
  assert.equal(normalizeTag('😀'.repeat(32)), '😀'.repeat(32));
});

test('the first line of a chat names the interests both gave', () => {
  assert.equal(foundText(['music', 'go'], en), 'Stranger found — say hi! You both like: music, go');
  assert.equal(foundText([], en), 'Stranger found — say hi!');
  assert.equal(foundText(undefined, en), 'Stranger found — say hi!');
  assert.equal(foundText([1, 'go'], en), 'Stranger found — say hi! You both like: go');
});

