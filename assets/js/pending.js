// The visitor's own messages that wait for the server's answer, in the order they were sent,
// and which message each answer is about. No DOM, no I/O (chat.js shows the messages and
// their status; an entry is whatever it gives, with the message's `text`).
//
// The server answers every message frame exactly once (src/chat/session.rs, relay_message and
// relay; src/chat/link/held.rs): with its receipt (the sender's copy, {"type":"message",
// "from":"me"} with the same text), or with an error. When they are written:
// - A receipt: at once while the partner is connected on this process; once the partner's
//   process took it when the partner is on another one (src/cluster/relay.rs, a few ms);
//   after `partner_back` while the partner is away (held, then drained in order). Each of
//   these keeps send order, and a message sent after an away partner is back goes behind
//   what was held, so receipts come in the order the messages were sent.
// - `undelivered`: held for a partner who did not come back (one per held message, in order,
//   as the chat ends), or not taken by the partner's process in time (in order with the
//   receipts), or the partner's connection closing as it was sent (at once, when nothing
//   older waits on this link). Two exceptions: a message to a process taken for dead is
//   refused at once, but so, after the relay timeout, is every older one in transit to it,
//   so which is marked first makes no difference; and a message past the server's hold
//   (--outbox-frames, 256 by default) is refused at once, ahead of those held before it,
//   which the page's own cap (MAX_PENDING) keeps from happening on a default server.
// - Any other refusal (rate_limited, empty_message, message_too_long, …): at once, as the
//   server reads the frame, before it reads the next one, but ahead of the receipts still
//   held for an away partner or in transit to another process. So refusals DO overtake
//   earlier messages' receipts: the oldest waiting message is the wrong guess for them.
//
// Hence, with no id on the wire to go by:
// - a receipt is matched by its text, to the oldest waiting message with that text (FIFO
//   whenever nothing went wrong; and if a refusal was ever put on the wrong message, the next
//   receipts still find their own instead of shifting every later one by one);
// - an `undelivered` goes to the oldest waiting message (they come in send order);
// - another refusal goes to the newest, the frame the server had just read. That is wrong
//   only when the visitor sent another message within the round trip, and rare anyway: the
//   page checks emptiness and length itself, and a person seldom outruns the rate limit.
//
// Messages that were waiting when the socket dropped are "unconfirmed": their answer may have
// gone with the socket, or (held for an away partner) come after the resume. They are matched
// by text, after the waiting ones, and an `undelivered` goes to them only once none waits: one
// whose receipt went with the old socket never gets an answer, and must not be marked failed
// for a waiting message's `undelivered`.

/**
 * How many messages may wait for their receipt at once; Send waits for a receipt past it.
 * Far more than a person types while a partner is away (the server holds the chat for 15 s,
 * and takes 5 messages a second, 10 at once), so it never gets in the way of a conversation;
 * far fewer than the server holds for an away partner (--outbox-frames, 256), so the page
 * never sends one the server would refuse for want of room, out of order; and it bounds the
 * "Sending…" lines a visitor can pile up against a partner who never comes back.
 */
export const MAX_PENDING = 20;

/** Error codes that refuse the message frame just sent (other errors say nothing of one). */
export const MESSAGE_REFUSALS = Object.freeze([
  'rate_limited',
  'empty_message',
  'message_too_long',
  'not_paired',
  'bad_json',
  'bad_frame',
]);

/** Whether an error frame's code refuses a message (other than `undelivered`). */
export function refusesMessage(code) {
  return MESSAGE_REFUSALS.includes(code);
}

/**
 * One chat's messages that wait for an answer, and those whose answer a drop may have lost.
 * @template {{ text: string }} T
 * @param {number} [limit] how many may wait at once
 */
export function createPending(limit = MAX_PENDING) {
  /** @type {T[]} oldest first */
  let waiting = [];
  /** @type {T[]} oldest first */
  let unconfirmed = [];

  /** Takes the first entry of `list` with this text out of it, or null. */
  const takeByText = (list, text) => {
    const i = list.findIndex((m) => m.text === text);
    return i < 0 ? null : list.splice(i, 1)[0];
  };

  return {
    /** How many wait for their receipt. */
    get size() {
      return waiting.length;
    },
    /** Whether no more may be sent until one is answered. */
    get full() {
      return waiting.length >= limit;
    },
    /** A message sent (its entry, with its `text`); false, and not kept, when full. */
    sent(entry) {
      if (waiting.length >= limit) return false;
      waiting.push(entry);
      return true;
    },
    /**
     * A receipt for `text`: the entry it delivers (taken out), or null when it is none we
     * wait for. The waiting ones first: of two equal texts, a receipt after a resume may be
     * either's, and the other's receipt, if it comes, then finds the unconfirmed one.
     */
    receipt(text) {
      return takeByText(waiting, text) ?? takeByText(unconfirmed, text);
    },
    /** A refusal of the message just sent: the newest waiting entry (taken out), or null. */
    refused() {
      return waiting.pop() ?? null;
    },
    /** `undelivered`: the oldest waiting entry, else the oldest unconfirmed (taken out). */
    undelivered() {
      return waiting.shift() ?? unconfirmed.shift() ?? null;
    },
    /**
     * The socket dropped: every waiting entry becomes unconfirmed (returned, to be shown so).
     * At most `limit` are remembered; older ones just stay unconfirmed on screen.
     */
    dropped() {
      const moved = waiting;
      waiting = [];
      unconfirmed = unconfirmed.concat(moved).slice(-limit);
      return moved;
    },
    /** The chat ended: the entries still waiting (taken out; none will be answered now). */
    ended() {
      const left = waiting;
      waiting = [];
      return left;
    },
    /** A new chat: nothing of the last one is waited for. */
    clear() {
      waiting = [];
      unconfirmed = [];
    },
  };
}
