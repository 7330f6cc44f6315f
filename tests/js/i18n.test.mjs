// Unit tests of the client's translator (assets/js/i18n.js). Run: node --test tests/js/
// The catalogues below are in the form the server compiles from locales/*/pairchat.ftl
// (src/i18n/compile.rs); `cargo test i18n` checks that compiled form against Fluent itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { translator } from '../../assets/js/i18n.js';

const ru = translator({
  lang: 'ru',
  messages: {
    'online-count': [
      {
        s: 'count',
        c: {
          one: [{ v: 'count' }, ' человек в сети'],
          few: [{ v: 'count' }, ' человека в сети'],
          many: [{ v: 'count' }, ' человек в сети'],
        },
        d: 'many',
      },
    ],
    exact: [{ s: 'n', c: { 0: 'никого', other: [{ v: 'n' }, ' шт.'] }, d: 'other' }],
    kind: [{ s: 'who', c: { me: 'вы', other: 'собеседник' }, d: 'other' }],
    plain: 'Отправить',
    step: ['Нажмите «', { v: 'start' }, '»', { v: 'keys' }, '.'],
  },
});

test('Russian numbers pick one, few or many', () => {
  const said = [1, 2, 4, 5, 11, 12, 21, 22, 25, 101, 111].map((count) => ru.t('online-count', { count }));
  assert.deepEqual(said, [
    '1 человек в сети',
    '2 человека в сети',
    '4 человека в сети',
    '5 человек в сети',
    '11 человек в сети',
    '12 человек в сети',
    '21 человек в сети',
    '22 человека в сети',
    '25 человек в сети',
    '101 человек в сети',
    '111 человек в сети',
  ]);
  // Numbers are written the Russian way.
  assert.equal(ru.t('online-count', { count: 12345 }).replace(/\s/g, ' '), '12 345 человек в сети');
});

test('an exact number beats the plural category; strings pick their variant or the default', () => {
  assert.equal(ru.t('exact', { n: 0 }), 'никого');
  assert.equal(ru.t('exact', { n: 3 }), '3 шт.');
  assert.equal(ru.t('kind', { who: 'me' }), 'вы');
  assert.equal(ru.t('kind', { who: 'someone' }), 'собеседник');
  assert.equal(ru.t('plain'), 'Отправить');
});

test('elements and wrapped variables take their place in the sentence', () => {
  const strong = { nodeType: 1, textContent: 'Начать чат' };
  const keys = { nodeType: 1, textContent: ' (или Esc)' };
  assert.deepEqual(ru.tn('step', { start: strong, keys }), ['Нажмите «', strong, '»', keys, '.']);
  const wrapped = ru.tn('online-count', { count: 3 }, { count: (text) => ({ wrapped: text }) });
  assert.deepEqual(wrapped, [{ wrapped: '3' }, ' человека в сети']);
});

test('a missing key shows itself, and no catalogue at all is English with no words', () => {
  assert.equal(ru.t('no-such-key'), 'no-such-key');
  assert.equal(ru.has('plain'), true);
  assert.equal(ru.has('no-such-key'), false);
  const none = translator(undefined);
  assert.equal(none.lang, 'en');
  assert.equal(none.t('send-button'), 'send-button');
});
