// Unit tests of the client state machine (assets/js/state.js). Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  EVENTS,
  INITIAL_STATE,
  STATES,
  TRANSITIONS,
  createMachine,
  nextState,
} from '../../assets/js/state.js';

// The table, written out independently of the module.
const ALLOWED = [
  ['idle', 'open', 'connecting'],
  ['closed', 'open', 'connecting'],
  ['connecting', 'request', 'waiting'],
  ['waiting', 'response', 'chat'],
  ['connecting', 'close', 'idle'],
  ['waiting', 'close', 'idle'],
  ['chat', 'close', 'closed'],
  ['connecting', 'fail', 'retrying'],
  ['waiting', 'fail', 'retrying'],
  ['retrying', 'open', 'connecting'],
  ['retrying', 'request', 'waiting'],
  ['retrying', 'close', 'idle'],
];

const allowed = (state, event) => ALLOWED.find(([s, e]) => s === state && e === event);

/** A machine put in `state` and a list collecting its warnings. */
function machineIn(state) {
  const warnings = [];
  const changes = [];
  const m = createMachine({
    initial: state,
    warn: (...args) => warnings.push(args.join(' ')),
    onChange: (to, from, event) => changes.push([from, event, to]),
  });
  return { m, warnings, changes };
}

test('starts idle and knows its states and events', () => {
  assert.equal(INITIAL_STATE, 'idle');
  assert.equal(createMachine({ warn() {} }).state, 'idle');
  assert.deepEqual([...STATES].sort(), ['chat', 'closed', 'connecting', 'idle', 'retrying', 'waiting']);
  assert.deepEqual([...EVENTS].sort(), ['close', 'fail', 'open', 'request', 'response']);
});

test('the table holds exactly the allowed transitions', () => {
  const fromTable = [];
  for (const [state, row] of Object.entries(TRANSITIONS)) {
    for (const [event, to] of Object.entries(row)) fromTable.push([state, event, to]);
  }
  const key = (t) => t.join(' ');
  assert.deepEqual(fromTable.map(key).sort(), ALLOWED.map(key).sort());
  assert.ok(Object.isFrozen(TRANSITIONS));
  for (const row of Object.values(TRANSITIONS)) assert.ok(Object.isFrozen(row));
});

for (const [from, event, to] of ALLOWED) {
  test(`${from} --${event}--> ${to}`, () => {
    assert.equal(nextState(from, event), to);
    const { m, warnings, changes } = machineIn(from);
    assert.equal(m.can(event), true);
    assert.equal(m.send(event), true);
    assert.equal(m.state, to);
    assert.deepEqual(changes, [[from, event, to]]);
    assert.deepEqual(warnings, []);
  });
}

test('every event that does not fit its state is ignored and warned about', () => {
  let misfits = 0;
  for (const state of STATES) {
    for (const event of EVENTS) {
      if (allowed(state, event)) continue;
      misfits += 1;
      assert.equal(nextState(state, event), null, `${state} + ${event}`);
      const { m, warnings, changes } = machineIn(state);
      assert.equal(m.can(event), false);
      assert.equal(m.send(event), false, `${state} + ${event} must be refused`);
      assert.equal(m.state, state, `${state} + ${event} must not move`);
      assert.deepEqual(changes, []);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], new RegExp(`"${event}".*"${state}"`));
    }
  }
  assert.equal(misfits, STATES.length * EVENTS.length - ALLOWED.length);
});

test('unknown events and states are misfits too', () => {
  assert.equal(nextState('idle', 'teleport'), null);
  assert.equal(nextState('nowhere', 'open'), null);
  assert.equal(nextState('idle', 'toString'), null); // no prototype lookups
  assert.equal(nextState('__proto__', 'open'), null);
  const { m, warnings } = machineIn('chat');
  assert.equal(m.send('teleport'), false);
  assert.equal(m.state, 'chat');
  assert.equal(warnings.length, 1);
});

test('the default logger is console.warn', () => {
  const original = console.warn;
  const seen = [];
  console.warn = (...args) => seen.push(args.join(' '));
  try {
    const m = createMachine();
    assert.equal(m.send('response'), false);
  } finally {
    console.warn = original;
  }
  assert.equal(seen.length, 1);
  assert.match(seen[0], /ignored event "response" in state "idle"/);
});

test('an unknown initial state is refused', () => {
  assert.throws(() => createMachine({ initial: 'dancing' }), /unknown initial state/);
});

test('a whole visit: two conversations, a cancelled wait and a failed connection', () => {
  const { m, warnings, changes } = machineIn('idle');
  const walk = ['open', 'request', 'response', 'close', 'open', 'request', 'close', 'open', 'close'];
  for (const event of walk) assert.equal(m.send(event), true, event);
  assert.deepEqual(
    changes.map(([, , to]) => to),
    ['connecting', 'waiting', 'chat', 'closed', 'connecting', 'waiting', 'idle', 'connecting', 'idle'],
  );
  assert.deepEqual(warnings, []);
  // A late server frame after the end changes nothing.
  assert.equal(m.send('response'), false);
  assert.equal(m.state, 'idle');
});

test('a server that goes away: the visitor who still wants a chat retries until it is back', () => {
  const { m, warnings, changes } = machineIn('idle');
  // Cannot connect, retries, connects; waits, loses the server, retries; pairing unavailable
  // on an open socket, asks again on it; paired; then a retry cancelled.
  const walk = ['open', 'fail', 'open', 'request', 'fail', 'open', 'request', 'fail', 'request', 'response', 'close', 'open', 'fail', 'close'];
  for (const event of walk) assert.equal(m.send(event), true, event);
  assert.deepEqual(
    changes.map(([, , to]) => to),
    ['connecting', 'retrying', 'connecting', 'waiting', 'retrying', 'connecting', 'waiting', 'retrying', 'waiting', 'chat', 'closed', 'connecting', 'retrying', 'idle'],
  );
  assert.deepEqual(warnings, []);
  // A chat is never "retried": a lost chat ends.
  assert.equal(nextState('chat', 'fail'), null);
});
