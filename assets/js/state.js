// The client state machine of pairchat: one table, no DOM, no I/O.
//
//   idle ──open──▶ connecting ──request──▶ waiting ──response──▶ chat
//    ▲                 │  │                 │  │                  │
//    └─────close───────┘  └──fail──┐ ┌─fail─┘  └─close─▶ idle    close
//    ▲                             ▼ ▼                            ▼
//    └────────close─────────── retrying                         closed
//                              │      │                           │
//            connecting ◀─open─┘      └─request─▶ waiting         │
//   connecting ◀──────────────────open────────────────────────────┘
//
// "open"     the visitor asked for a chat (or a retry is due); a new WebSocket is being opened.
// "request"  the socket is open and {"type":"request"} has been sent.
// "response" the server paired us ({"type":"response"}).
// "fail"     the visitor still wants a chat but the server could not be reached or could not
//            pair (error "unavailable"): a retry is scheduled, with backoff.
// "close"    the socket closed (either side) or the visitor cancelled/ended.
//
// An event that does not fit the current state is ignored and logged with console.warn.

/** Every state the client can be in. */
export const STATES = Object.freeze(['idle', 'connecting', 'waiting', 'retrying', 'chat', 'closed']);

/** Every event the machine understands. */
export const EVENTS = Object.freeze(['open', 'request', 'response', 'fail', 'close']);

/** The whole transition table: TRANSITIONS[state][event] is the next state. */
export const TRANSITIONS = Object.freeze({
  idle: Object.freeze({ open: 'connecting' }),
  connecting: Object.freeze({ request: 'waiting', fail: 'retrying', close: 'idle' }),
  waiting: Object.freeze({ response: 'chat', fail: 'retrying', close: 'idle' }),
  retrying: Object.freeze({ open: 'connecting', request: 'waiting', close: 'idle' }),
  chat: Object.freeze({ close: 'closed' }),
  closed: Object.freeze({ open: 'connecting' }),
});

export const INITIAL_STATE = 'idle';

/**
 * The state that `event` leads to from `state`, or null when the event does not fit.
 * @param {string} state
 * @param {string} event
 * @returns {string | null}
 */
export function nextState(state, event) {
  const row = Object.prototype.hasOwnProperty.call(TRANSITIONS, state) ? TRANSITIONS[state] : null;
  if (!row || !Object.prototype.hasOwnProperty.call(row, event)) return null;
  return row[event];
}

/**
 * A small stateful wrapper around the table.
 * @param {{ initial?: string, onChange?: (to: string, from: string, event: string) => void,
 *           warn?: (...args: unknown[]) => void }} [options]
 */
export function createMachine(options = {}) {
  const warn = options.warn ?? ((...args) => console.warn(...args));
  const onChange = options.onChange ?? (() => {});
  let state = options.initial ?? INITIAL_STATE;
  if (!STATES.includes(state)) throw new Error(`unknown initial state ${JSON.stringify(state)}`);

  return {
    get state() {
      return state;
    },
    /** Whether `event` would be accepted now. */
    can(event) {
      return nextState(state, event) !== null;
    },
    /**
     * Applies `event`. Returns true when it changed the state, false when it was ignored.
     * @param {string} event
     */
    send(event) {
      const to = nextState(state, event);
      if (to === null) {
        warn(`pairchat: ignored event "${event}" in state "${state}"`);
        return false;
      }
      const from = state;
      state = to;
      onChange(to, from, event);
      return true;
    },
  };
}
