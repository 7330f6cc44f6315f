// pairchat client: builds the chat DOM (render) and drives it over one WebSocket (mount).
// Shared by the page "/", the iframe page "/widget" (both via page.js) and embed.js (Shadow DOM).
//
// mount({ wsUrl, root, container?, keyTarget? }) → controller
//   root       Document, ShadowRoot or Element; all lookups are made inside it.
//   container  where the chat DOM is appended (default: root's [data-pairchat-mount], else root
//              itself, or document.body for a Document).
//   keyTarget  where Esc is listened for (default: root — the whole document on the page, only
//              the widget's own shadow root in an embed so the host page's Esc is left alone).
//
// Test hooks (all inside the chat root; select with [data-test="NAME"]):
//   pairchat            the chat root; data-state="idle|connecting|waiting|chat|closed",
//                       data-sending="true" while a message waits for its receipt
//   online              online counter wrapper (hidden until the server has sent a count)
//   online-count        the number alone
//   view-idle           idle view: welcome, how it works, "Chat history is not saved"
//   notice              idle view notice (e.g. could not connect); hidden when empty
//   start               "Start a chat" button
//   view-connecting     "Connecting to server…";  cancel-connecting  its Cancel button
//   view-waiting        "Waiting for a stranger…"; cancel             its Cancel button
//   transcript          scroll box around the message list (visible in chat and closed)
//   messages            the message list, <ol role="log">
//   message             one message <li>, data-from="me|guest"; inside it:
//     message-label       "You" / "Stranger"
//     message-time        local time (<time datetime=ISO>)
//     message-text        the text (textContent; line breaks kept by CSS)
//   system-line         a system <li>, data-kind="found|left|disconnected|server|lost|error"
//   view-chat           composer view (visible only in chat)
//   typing              "Stranger is typing…" (hidden unless the partner is typing)
//   input               the message <textarea>
//   send                Send button ("Sending…" and disabled while a message waits for receipt)
//   end                 End conversation button (text "Really?" and data-confirm="true" after
//                       a first Esc)
//   view-closed         "This conversation is over";  start-over  its button
//   status              visually hidden role=status announcer for screen readers

import { createMachine } from './state.js';
import {
  closeNotice,
  composerKeyAction,
  escapeAction,
  formatTime,
  idleNotice,
  isBlank,
  parseFrame,
  newVisitorToken,
  withVisitor,
} from './util.js';

const VISITOR_KEY = 'pairchat.visitor';

/** This browser session's visitor token: kept in sessionStorage when it can be. */
function visitorToken() {
  try {
    let token = window.sessionStorage.getItem(VISITOR_KEY);
    if (!token) {
      token = newVisitorToken();
      window.sessionStorage.setItem(VISITOR_KEY, token);
    }
    return token;
  } catch {
    // Storage refused (e.g. a third-party frame with storage blocked): one token per page.
    visitorToken.fallback ??= newVisitorToken();
    return visitorToken.fallback;
  }
}

const TYPING_IDLE_MS = 1500;
const CONNECT_TIMEOUT_MS = 15000;
const BLINK_MS = 1000;
const BLINK_TITLE = '*** New message ***';
const END_LABEL = 'End conversation';
const CONFIRM_LABEL = 'Really?';
const SEND_LABEL = 'Send';
const SENDING_LABEL = 'Sending…';

/** Builds an element: h(doc, 'p', { class: 'x', 'data-test': 'y' }, 'text', child, …). */
function h(doc, tag, attrs = {}, ...children) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? doc.createTextNode(child) : child);
  }
  return node;
}

/**
 * The chat DOM, in its idle state. Everything a visitor sees of the chat comes from here, so the
 * page, the iframe widget and the Shadow DOM embed show the same thing.
 * @param {Document} doc
 * @returns {HTMLElement}
 */
export function render(doc) {
  const x = (tag, attrs, ...children) => h(doc, tag, attrs, ...children);
  const spinner = () => x('span', { class: 'pc-spinner', 'aria-hidden': 'true' });

  return x(
    'div',
    { class: 'pc', 'data-test': 'pairchat', 'data-state': 'idle' },
    x(
      'div',
      { class: 'pc-bar' },
      x('span', { class: 'pc-brand' }, 'pairchat'),
      x(
        'span',
        { class: 'pc-online', 'data-test': 'online', hidden: true },
        x('span', { class: 'pc-dot', 'aria-hidden': 'true' }),
        x('span', { 'data-test': 'online-count' }, '0'),
        ' online',
      ),
    ),
    x('p', { class: 'pc-sr-only', role: 'status', 'data-test': 'status' }),

    x(
      'section',
      { class: 'pc-view pc-idle', 'data-test': 'view-idle', 'aria-label': 'Welcome' },
      x('h2', { class: 'pc-title' }, 'Talk to a random stranger'),
      x(
        'p',
        {},
        'pairchat pairs you with one other visitor, picked at random, for a private text chat. ',
        'No account, no names.',
      ),
      x('h3', { class: 'pc-subtitle' }, 'How it works'),
      x(
        'ol',
        { class: 'pc-steps' },
        x('li', {}, 'Press ', x('strong', {}, 'Start a chat'), ' (or Esc).'),
        x('li', {}, 'Wait a moment while we find a stranger.'),
        x(
          'li',
          {},
          'Say hi. Enter sends, Shift+Enter starts a new line. ',
          'Press ',
          x('strong', {}, 'End conversation'),
          ' (or Esc twice) when you are done.',
        ),
      ),
      x(
        'p',
        { class: 'pc-note' },
        x('strong', {}, 'Chat history is not saved.'),
        ' Messages are gone when the conversation ends. Be kind, and keep personal details to yourself.',
      ),
      x('p', { class: 'pc-notice', 'data-test': 'notice', hidden: true }),
      x('button', { type: 'button', class: 'pc-btn pc-primary', 'data-test': 'start' }, 'Start a chat'),
    ),

    x(
      'section',
      { class: 'pc-view pc-center', 'data-test': 'view-connecting', 'aria-label': 'Connecting', hidden: true },
      x('p', { class: 'pc-wait' }, spinner(), 'Connecting to server…'),
      x('button', { type: 'button', class: 'pc-btn', 'data-test': 'cancel-connecting' }, 'Cancel'),
    ),

    x(
      'section',
      { class: 'pc-view pc-center', 'data-test': 'view-waiting', 'aria-label': 'Waiting', hidden: true },
      x('p', { class: 'pc-wait' }, spinner(), 'Waiting for a stranger…'),
      x('button', { type: 'button', class: 'pc-btn', 'data-test': 'cancel' }, 'Cancel'),
    ),

    x(
      'div',
      { class: 'pc-transcript', 'data-test': 'transcript', hidden: true },
      x('ol', {
        class: 'pc-messages',
        'data-test': 'messages',
        role: 'log',
        'aria-live': 'polite',
        'aria-label': 'Conversation',
      }),
    ),

    x(
      'section',
      { class: 'pc-view pc-chat', 'data-test': 'view-chat', 'aria-label': 'Your message', hidden: true },
      x('p', { class: 'pc-typing', 'data-test': 'typing', hidden: true }, 'Stranger is typing…'),
      x(
        'form',
        { class: 'pc-composer', 'data-test': 'composer' },
        x('textarea', {
          class: 'pc-input',
          'data-test': 'input',
          rows: '2',
          'aria-label': 'Message',
          placeholder: 'Type a message — Enter sends, Shift+Enter for a new line',
          autocomplete: 'off',
        }),
        x(
          'div',
          { class: 'pc-actions' },
          x('button', { type: 'submit', class: 'pc-btn pc-primary', 'data-test': 'send' }, SEND_LABEL),
          x('button', { type: 'button', class: 'pc-btn pc-danger', 'data-test': 'end' }, END_LABEL),
        ),
      ),
    ),

    x(
      'section',
      { class: 'pc-view pc-closed', 'data-test': 'view-closed', 'aria-label': 'Conversation over', hidden: true },
      x('p', { class: 'pc-over', tabindex: '-1', 'data-test': 'closed-text' }, 'This conversation is over.'),
      x('button', { type: 'button', class: 'pc-btn pc-primary', 'data-test': 'start-over' }, 'Start over'),
    ),
  );
}

const VIEW_OF_STATE = {
  idle: 'view-idle',
  connecting: 'view-connecting',
  waiting: 'view-waiting',
  chat: 'view-chat',
  closed: 'view-closed',
};

/**
 * Renders the chat into `root` and runs it.
 * @param {{ wsUrl: string, root: Document | ShadowRoot | Element, container?: Element,
 *           keyTarget?: EventTarget, WebSocket?: typeof WebSocket }} options
 */
export function mount(options) {
  const { wsUrl, root } = options;
  if (!wsUrl || !root) throw new Error('pairchat: mount needs { wsUrl, root }');
  const isDocument = root.nodeType === 9;
  const doc = isDocument ? root : root.ownerDocument;
  const win = doc.defaultView;
  const WS = options.WebSocket ?? win.WebSocket;
  const container =
    options.container ??
    root.querySelector('[data-pairchat-mount]') ??
    (isDocument ? root.body : root);
  const keyTarget = options.keyTarget ?? root;

  const el = render(doc);
  container.append(el);
  const $ = (name) => el.querySelector(`[data-test="${name}"]`);
  const ui = {
    online: $('online'),
    onlineCount: $('online-count'),
    status: $('status'),
    notice: $('notice'),
    start: $('start'),
    cancelConnecting: $('cancel-connecting'),
    cancel: $('cancel'),
    transcript: $('transcript'),
    messages: $('messages'),
    typing: $('typing'),
    composer: $('composer'),
    input: $('input'),
    send: $('send'),
    end: $('end'),
    closedText: $('closed-text'),
    startOver: $('start-over'),
  };

  /** The live connection: { ws, everOpened } or null. */
  let conn = null;
  /** Text of the message sent and not yet receipted, or null. */
  let pending = null;
  let typingSent = false;
  let typingTimer = null;
  let confirming = false;
  let blinkTimer = null;
  let titleBeforeBlink = '';
  const cleanups = [];
  const listen = (target, type, fn, opts) => {
    target.addEventListener(type, fn, opts);
    cleanups.push(() => target.removeEventListener(type, fn, opts));
  };

  const machine = createMachine({ onChange: (to) => onStateChange(to) });

  // ---- view updates ----------------------------------------------------------------------

  function focusIsOurs() {
    const active = doc.activeElement;
    if (!active || active === doc.body || active === doc.documentElement) return true;
    if (el.contains(active)) return true;
    // In a shadow root the document only sees the host element.
    return !isDocument && root.activeElement != null && el.contains(root.activeElement);
  }

  function onStateChange(to) {
    const hadFocus = focusIsOurs();
    el.dataset.state = to;
    for (const [state, view] of Object.entries(VIEW_OF_STATE)) $(view).hidden = state !== to;
    ui.transcript.hidden = !(to === 'chat' || to === 'closed');
    if (to !== 'chat') {
      setTyping(false);
      resetConfirm();
      clearPending(false);
      stopTypingTimer();
    }
    announce(
      {
        connecting: 'Connecting to server…',
        waiting: 'Waiting for a stranger…',
        closed: 'This conversation is over.',
      }[to] ?? '',
    );
    const target = {
      idle: ui.start,
      connecting: ui.cancelConnecting,
      waiting: ui.cancel,
      chat: ui.input,
      closed: ui.closedText,
    }[to];
    // A chat start always takes focus to the message box; other changes only keep focus that
    // already was in the widget (never pull it away from the host page).
    if (target && (to === 'chat' || hadFocus)) target.focus();
    if (to === 'chat') scrollToEnd();
  }

  function announce(text) {
    ui.status.textContent = text;
  }

  function setNotice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  function nearBottom() {
    const t = ui.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 48;
  }

  function scrollToEnd() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  function append(item) {
    const stick = nearBottom();
    ui.messages.append(item);
    if (stick) scrollToEnd();
  }

  function addMessage(from, text) {
    const now = new Date();
    const mine = from === 'me';
    append(
      h(
        doc,
        'li',
        { class: `pc-msg ${mine ? 'pc-me' : 'pc-guest'}`, 'data-test': 'message', 'data-from': mine ? 'me' : 'guest' },
        h(
          doc,
          'div',
          { class: 'pc-meta' },
          h(doc, 'span', { class: 'pc-label', 'data-test': 'message-label' }, mine ? 'You' : 'Stranger'),
          ' ',
          h(doc, 'time', { class: 'pc-time', 'data-test': 'message-time', datetime: now.toISOString() }, formatTime(now)),
        ),
        // textContent via a text node: the message is never parsed as HTML.
        h(doc, 'div', { class: 'pc-text', 'data-test': 'message-text' }, String(text)),
      ),
    );
  }

  function addSystem(kind, text) {
    append(h(doc, 'li', { class: `pc-system pc-${kind}`, 'data-test': 'system-line', 'data-kind': kind }, text));
  }

  function setTyping(on) {
    ui.typing.hidden = !on;
  }

  function setSending(on) {
    ui.send.disabled = on;
    ui.send.textContent = on ? SENDING_LABEL : SEND_LABEL;
    if (on) el.dataset.sending = 'true';
    else delete el.dataset.sending;
  }

  function clearPending(restore) {
    if (pending !== null && restore && ui.input.value === '') ui.input.value = pending;
    pending = null;
    setSending(false);
  }

  function resetConfirm() {
    if (!confirming) return;
    confirming = false;
    ui.end.textContent = END_LABEL;
    delete ui.end.dataset.confirm;
  }

  function askConfirm() {
    confirming = true;
    ui.end.textContent = CONFIRM_LABEL;
    ui.end.dataset.confirm = 'true';
  }

  // ---- title blinking -------------------------------------------------------------------

  function pageHasAttention() {
    return doc.visibilityState === 'visible' && doc.hasFocus();
  }

  function callAttention() {
    if (pageHasAttention()) return;
    if (win.parent && win.parent !== win) {
      // In the iframe widget our own title is not shown: tell the embedding page (no content).
      try {
        win.parent.postMessage({ source: 'pairchat', type: 'attention' }, '*');
      } catch {
        /* ignore */
      }
    }
    if (blinkTimer !== null) return;
    titleBeforeBlink = doc.title;
    let on = true;
    doc.title = BLINK_TITLE;
    blinkTimer = win.setInterval(() => {
      on = !on;
      doc.title = on ? BLINK_TITLE : titleBeforeBlink;
    }, BLINK_MS);
  }

  function stopBlinking() {
    if (blinkTimer === null) return;
    win.clearInterval(blinkTimer);
    blinkTimer = null;
    doc.title = titleBeforeBlink;
  }

  listen(win, 'focus', stopBlinking);
  listen(doc, 'visibilitychange', () => {
    if (pageHasAttention()) stopBlinking();
  });

  // ---- connection -----------------------------------------------------------------------

  function sendFrame(frame) {
    if (!conn || conn.ws.readyState !== 1) return false;
    conn.ws.send(JSON.stringify(frame));
    return true;
  }

  function start() {
    if (!machine.can('open')) {
      console.warn(`pairchat: cannot start a chat in state "${machine.state}"`);
      return;
    }
    ui.messages.replaceChildren();
    setNotice('');
    stopBlinking();
    machine.send('open');
    const c = { ws: null, everOpened: false };
    conn = c;
    try {
      c.ws = new WS(withVisitor(wsUrl, visitorToken()));
    } catch (err) {
      console.warn('pairchat: cannot open WebSocket', err);
      conn = null;
      finish({ code: 1006, reason: '', byUs: false, everOpened: false });
      return;
    }
    c.ws.addEventListener('open', () => {
      if (conn !== c) return;
      c.everOpened = true;
      c.ws.send(JSON.stringify({ type: 'request' }));
      machine.send('request');
    });
    c.ws.addEventListener('message', (ev) => {
      if (conn !== c) return;
      onFrame(ev.data);
    });
    c.ws.addEventListener('close', (ev) => {
      if (conn !== c) return;
      finish({ code: ev.code, reason: ev.reason, byUs: false, everOpened: c.everOpened });
    });
    // A socket refused before it opens (e.g. by a CSP) may fire "error" and never "close".
    c.ws.addEventListener('error', () => {
      win.setTimeout(() => {
        if (conn === c && c.ws.readyState === 3) {
          finish({ code: 1006, reason: '', byUs: false, everOpened: c.everOpened });
        }
      }, 250);
    });
    // Nor wait forever for a server that never answers.
    win.setTimeout(() => {
      if (conn === c && !c.everOpened) {
        console.warn('pairchat: no connection after', CONNECT_TIMEOUT_MS, 'ms');
        finish({ code: 1006, reason: '', byUs: true, everOpened: false, timedOut: true });
      }
    }, CONNECT_TIMEOUT_MS);
  }

  /** Ends the current connection (ours or theirs) and moves to idle or closed. */
  function finish({ code, reason, byUs, everOpened, timedOut = false }) {
    const c = conn;
    conn = null;
    if (c && c.ws && byUs) {
      try {
        c.ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    stopTypingTimer();
    typingSent = false;
    const state = machine.state;
    if (state === 'chat') {
      const n = closeNotice({ code, reason, byUs });
      addSystem(n.kind, n.text);
    } else if (state === 'connecting' || state === 'waiting') {
      setNotice(
        timedOut
          ? 'The server did not answer. Please try again.'
          : idleNotice({ code, byUs, everOpened: everOpened ?? c?.everOpened ?? false }),
      );
    }
    machine.send('close');
  }

  function endChat() {
    if (machine.state !== 'chat') return;
    finish({ code: 1000, reason: '', byUs: true });
  }

  function cancel() {
    if (machine.state !== 'connecting' && machine.state !== 'waiting') return;
    finish({ code: 1000, reason: '', byUs: true });
  }

  function onFrame(data) {
    const f = parseFrame(data);
    if (!f) {
      console.warn('pairchat: ignored a frame that is not a JSON object with a type', data);
      return;
    }
    switch (f.type) {
      case 'waiting':
        break; // we are already in "waiting" once the request is sent
      case 'response':
        if (machine.send('response')) {
          addSystem('found', 'Stranger found — say hi!');
          callAttention();
        }
        break;
      case 'message': {
        if (machine.state !== 'chat' || typeof f.message !== 'string') {
          console.warn(`pairchat: ignored message frame in state "${machine.state}"`);
          break;
        }
        if (f.from === 'me') {
          addMessage('me', f.message);
          clearPending(false);
        } else {
          setTyping(false);
          addMessage('guest', f.message);
          callAttention();
        }
        break;
      }
      case 'typing':
        if (machine.state === 'chat') setTyping(f.typing === true);
        break;
      case 'online':
        if (Number.isFinite(f.count) && f.count >= 0) {
          ui.onlineCount.textContent = String(Math.floor(f.count));
          ui.online.hidden = false;
        }
        break;
      case 'error': {
        const text = typeof f.detail === 'string' && f.detail ? f.detail : `Error: ${f.error}`;
        console.warn('pairchat: server error', f.error, f.detail);
        if (machine.state === 'chat') {
          clearPending(true);
          addSystem('error', text);
        } else {
          setNotice(text);
        }
        break;
      }
      default:
        console.warn(`pairchat: ignored unknown frame type "${f.type}"`);
    }
  }

  // ---- composing ------------------------------------------------------------------------

  function stopTypingTimer() {
    if (typingTimer !== null) win.clearTimeout(typingTimer);
    typingTimer = null;
  }

  function typingOff() {
    stopTypingTimer();
    if (typingSent) sendFrame({ type: 'typing', typing: false });
    typingSent = false;
  }

  function onInput() {
    if (machine.state !== 'chat') return;
    if (isBlank(ui.input.value)) {
      typingOff();
      return;
    }
    if (!typingSent) typingSent = sendFrame({ type: 'typing', typing: true });
    stopTypingTimer();
    typingTimer = win.setTimeout(typingOff, TYPING_IDLE_MS);
  }

  function sendMessage() {
    if (machine.state !== 'chat' || pending !== null) return;
    const text = ui.input.value;
    if (isBlank(text)) return;
    typingOff();
    if (!sendFrame({ type: 'message', message: text })) return;
    pending = text;
    ui.input.value = '';
    setSending(true);
    resetConfirm();
    ui.input.focus();
  }

  // ---- wiring ---------------------------------------------------------------------------

  listen(ui.start, 'click', start);
  listen(ui.startOver, 'click', start);
  listen(ui.cancel, 'click', cancel);
  listen(ui.cancelConnecting, 'click', cancel);
  listen(ui.end, 'click', endChat);
  listen(ui.composer, 'submit', (ev) => {
    ev.preventDefault();
    sendMessage();
  });
  listen(ui.input, 'input', onInput);
  listen(ui.input, 'keydown', (ev) => {
    if (composerKeyAction(ev) === 'send') {
      ev.preventDefault();
      sendMessage();
    }
  });
  listen(keyTarget, 'keydown', (ev) => {
    if (ev.key !== 'Escape') {
      if (confirming && !['Shift', 'Control', 'Alt', 'Meta'].includes(ev.key)) resetConfirm();
      return;
    }
    if (ev.defaultPrevented || ev.isComposing) return;
    const action = escapeAction(machine.state, confirming);
    if (!action) return;
    ev.preventDefault();
    if (action === 'confirm') askConfirm();
    else if (action === 'end') endChat();
    else if (action === 'cancel') cancel();
    else if (action === 'start') start();
  });

  return {
    /** The current state name. */
    get state() {
      return machine.state;
    },
    element: el,
    start,
    cancel,
    end: endChat,
    /** Closes the socket, removes listeners and the chat DOM. */
    destroy() {
      const c = conn;
      conn = null;
      if (c?.ws) c.ws.close(1000);
      stopTypingTimer();
      stopBlinking();
      for (const undo of cleanups.splice(0)) undo();
      el.remove();
    },
  };
}
