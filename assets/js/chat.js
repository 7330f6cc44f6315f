// pairchat client: builds the chat DOM (render) and drives it over one WebSocket (mount).
// Shared by the page "/", the iframe page "/widget" (both via page.js) and embed.js (Shadow DOM).
//
// mount({ wsUrl, root, i18n, container?, keyTarget?, theme? }) → controller
//   i18n       the catalogue of the visitor's language, { lang, messages } (see i18n.js): every
//              word the chat shows comes from it.
//   root       Document, ShadowRoot or Element; all lookups are made inside it.
//   container  where the chat DOM is appended (default: root's [data-pairchat-mount], else root
//              itself, or document.body for a Document).
//   keyTarget  where Esc is listened for (default: root — the whole document on the page, only
//              the widget's own shadow root in an embed so the host page's Esc is left alone).
//   theme      'light' or 'dark' to override the visitor's colour-scheme setting (else auto).
//
// Test hooks (all inside the chat root; select with [data-test="NAME"]):
//   pairchat            the chat root; data-state="idle|connecting|waiting|retrying|chat|closed",
//                       data-sending="true" while a message of ours waits for its receipt,
//                       data-attention="true" while something new waits for a visitor whose
//                       focus is elsewhere (shown as the badge), data-theme="light|dark" if set
//   online              online counter wrapper (hidden until a count is known, and offline)
//   online-count        the number alone (inside the catalogue's sentence, e.g. "3 online")
//   badge               "New chat" / "New message" badge in the bar (with data-attention)
//   view-idle           idle view: welcome, how it works, "Chat history is not saved"
//   notice              idle view notice (e.g. could not connect); hidden when empty
//   start               "Start a chat" button
//   view-connecting     "Connecting to server…";  cancel-connecting  its Cancel button
//   view-waiting        "Waiting for a stranger…"; cancel             its Cancel button
//     waiting-text        the line that takes focus;  waited       how long, e.g. "0:07"
//     alone               "You're the only one here right now — still looking" (else hidden)
//     check               the check a busy address must pass (a proof-of-work challenge the
//                         browser solves in the background), hidden unless asked for; inside:
//                         check-progress (<progress>, 0–1) and check-percent ("42 %")
//   view-retrying       the server is away or cannot pair: retry-reason why, retry-countdown
//                       "Reconnecting… (retrying in N s)", retry-now, cancel-retrying
//   transcript          scroll box around the message list (visible in chat and closed, and
//                       while a previous chat's transcript is kept until the next one starts)
//   new-below           "New message ↓" pill, shown when a message arrives while scrolled up
//   messages            the message list, an <ol> of <li> inside a <div role="log">
//   message             one message, data-from="me|guest", data-status="pending|
//                       delivered|failed|unconfirmed" for your own (several may be pending
//                       at once: pending.js); inside it:
//     message-label       "You" / "Stranger"
//     message-time        local time (<time datetime=ISO>)
//     message-status      "Sending…" / "Not delivered" / "Not confirmed" for your own messages
//     message-text        the text (text nodes, and <a> for http(s) links; dir="auto")
//   system-line         a system line, data-kind="found|left|disconnected|server|lost|error"
//   view-chat           composer view (visible only in chat)
//   typing              "Stranger is typing…" (hidden unless the partner is typing)
//   input               the message <textarea> (grows with its text)
//   counter             characters used / allowed, shown near the limit; data-over="true" past it
//   send                Send button ("Sending…" and disabled while MAX_PENDING messages wait
//                       for their receipts: see pending.js)
//   end                 End button, left of the box: a first click, tap or Esc makes it "Really?"
//                       (data-confirm="true"), the second ends the chat
//   view-closed         "This conversation is over";  start-over  its "New chat" button
//   report, report-later, report-done, report-dialog …   the Report form: see report.js
//   status              visually hidden role=status announcer for screen readers

import { payloadOf, solve } from './altcha.js';
import { attachInterests, foundText, renderInterests } from './interests.js';
import { createMachine } from './state.js';
import { createResumer, withResume } from './resume.js';
import { createPending, refusesMessage } from './pending.js';
import {
  charCount,
  closeNotice,
  composerKeyAction,
  escapeAction,
  formatTime,
  formatWaited,
  isBlank,
  LINK_REL,
  linkParts,
  onlineUrlFor,
  parseFrame,
  newVisitorToken,
  retryDelaySecs,
  retryReason,
  themeOf,
  withVisitor,
} from './util.js';
import { translator } from './i18n.js';
import { createReports, renderReportDialog, reportUrlFor } from './report.js';

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
/** Typing frames go out at most this often; changes in between are coalesced into one. */
const TYPING_GAP_MS = 1000;
const CONNECT_TIMEOUT_MS = 15000;
/** How often the idle page asks GET /online for a fresh count. */
const ONLINE_POLL_MS = 5000;
const BLINK_MS = 1000;
/** The server's default --max-message-chars, until GET /online says the server's own; the
 * counter shows from COUNTER_FROM of it. */
const DEFAULT_MAX_MESSAGE_CHARS = 2000;
const COUNTER_FROM = 0.8;
/** Where the challenge solver's worker is, beside this module. */
const WORKER_URL = new URL('./altcha-worker.js', import.meta.url);
/** After sending {"type":"leave"}, how long the server has to answer "ended" and close. */
const LEAVE_TIMEOUT_MS = 3000;

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
 * page, the iframe widget and the Shadow DOM embed show the same thing; its words come from `tr`.
 * @param {Document} doc
 * @param {ReturnType<typeof translator>} tr
 * @returns {HTMLElement}
 */
export function render(doc, tr) {
  const x = (tag, attrs, ...children) => h(doc, tag, attrs, ...children);
  const { t, tn } = tr;
  const spinner = () => x('span', { class: 'pc-spinner', 'aria-hidden': 'true' });
  // Keyboard hints are for keyboards: hidden on touch screens.
  const keys = (...children) => x('span', { class: 'pc-keys' }, ...children);

  return x(
    'div',
    // lang: the chat's own words are in its catalogue's language, whatever the host page's.
    { class: 'pc', 'data-test': 'pairchat', 'data-state': 'idle', lang: tr.lang },
    x(
      'div',
      { class: 'pc-bar' },
      x('span', { class: 'pc-brand' }, t('brand')),
      x('span', { class: 'pc-badge', 'data-test': 'badge', hidden: true }),
      x(
        'span',
        { class: 'pc-online', 'data-test': 'online', hidden: true },
        x('span', { class: 'pc-dot', 'aria-hidden': 'true' }),
        x('span', { class: 'pc-online-text' }),
      ),
    ),
    x('p', { class: 'pc-sr-only', role: 'status', 'data-test': 'status' }),

    x(
      'section',
      { class: 'pc-view pc-idle', 'data-test': 'view-idle', 'aria-label': t('idle-label') },
      x('h2', { class: 'pc-title' }, t('idle-title')),
      x('p', {}, t('idle-intro')),
      x('h3', { class: 'pc-subtitle' }, t('idle-how')),
      x(
        'ol',
        { class: 'pc-steps' },
        x(
          'li',
          {},
          ...tn('idle-step-start', {
            start: x('strong', {}, t('idle-start-button')),
            keys: keys(t('idle-step-start-keys')),
          }),
        ),
        x('li', {}, t('idle-step-wait')),
        x(
          'li',
          {},
          ...tn('idle-step-talk', {
            keysSend: keys(t('idle-step-talk-keys-send')),
            end: x('strong', {}, t('end-button')),
            keysEnd: keys(t('idle-step-talk-keys-end')),
          }),
        ),
      ),
      x('p', { class: 'pc-note' }, ...tn('idle-note', { saved: x('strong', {}, t('idle-note-saved')) })),
      renderInterests(x, t),
      x('p', { class: 'pc-notice', 'data-test': 'notice', hidden: true }),
      // Sticky at the bottom of the idle view, so a short widget never hides it below the fold.
      x(
        'div',
        { class: 'pc-idle-actions' },
        x('button', { type: 'button', class: 'pc-btn pc-primary', 'data-test': 'start' }, t('idle-start-button')),
      ),
    ),

    x(
      'section',
      { class: 'pc-view pc-center', 'data-test': 'view-connecting', 'aria-label': t('connecting-label'), hidden: true },
      x('p', { class: 'pc-wait', tabindex: '-1', 'data-test': 'connecting-text' }, spinner(), t('connecting')),
      x('button', { type: 'button', class: 'pc-btn', 'data-test': 'cancel-connecting' }, t('cancel-button')),
    ),

    x(
      'section',
      { class: 'pc-view pc-center', 'data-test': 'view-waiting', 'aria-label': t('waiting-label'), hidden: true },
      x(
        'p',
        { class: 'pc-wait', tabindex: '-1', 'data-test': 'waiting-text' },
        spinner(),
        t('waiting'),
        ' ',
        x('span', { class: 'pc-waited', 'data-test': 'waited' }, '0:00'),
      ),
      x('p', { class: 'pc-alone', 'data-test': 'alone', hidden: true }, t('waiting-alone')),
      x(
        'div',
        { class: 'pc-check', 'data-test': 'check', hidden: true },
        x('p', { class: 'pc-check-text', id: 'pc-check-text' }, t('check-text')),
        x(
          'div',
          { class: 'pc-check-bar' },
          x('progress', {
            class: 'pc-progress',
            'data-test': 'check-progress',
            max: '1',
            value: '0',
            'aria-labelledby': 'pc-check-text',
          }),
          x('span', { class: 'pc-check-percent', 'data-test': 'check-percent', 'aria-hidden': 'true' }, t('check-percent', { percent: 0 })),
        ),
      ),
      x('button', { type: 'button', class: 'pc-btn', 'data-test': 'cancel' }, t('cancel-button')),
    ),

    x(
      'section',
      { class: 'pc-view pc-center', 'data-test': 'view-retrying', 'aria-label': t('retrying-label'), hidden: true },
      x(
        'p',
        { class: 'pc-retry', tabindex: '-1', 'data-test': 'retry-text' },
        x('span', { class: 'pc-retry-reason', 'data-test': 'retry-reason' }),
        ' ',
        x('span', { 'data-test': 'retry-countdown' }),
      ),
      x(
        'div',
        { class: 'pc-row' },
        x('button', { type: 'button', class: 'pc-btn pc-primary', 'data-test': 'retry-now' }, t('retry-now-button')),
        x('button', { type: 'button', class: 'pc-btn', 'data-test': 'cancel-retrying' }, t('cancel-button')),
      ),
    ),

    x(
      'div',
      { class: 'pc-transcript', 'data-test': 'transcript', hidden: true },
      // The live region wraps the list: role=log on the <ol> itself would replace its list role
      // and leave its items outside any list (axe: listitem). role=list keeps the semantics
      // where list-style: none drops them (Safari).
      x(
        'div',
        { class: 'pc-log', role: 'log', 'aria-live': 'polite', 'aria-label': t('transcript-label') },
        x('ol', { class: 'pc-messages', 'data-test': 'messages', role: 'list' }),
      ),
      x('button', { type: 'button', class: 'pc-btn pc-pill', 'data-test': 'new-below', hidden: true }, t('new-below')),
    ),

    x(
      'section',
      { class: 'pc-view pc-chat', 'data-test': 'view-chat', 'aria-label': t('chat-label'), hidden: true },
      x(
        'div',
        { class: 'pc-chat-head' },
        // Always takes its line (only its text is hidden), so it never shrinks the transcript.
        x('p', { class: 'pc-typing', 'data-test': 'typing', hidden: true }, t('typing')),
        x('button', { type: 'button', class: 'pc-btn pc-small', 'data-test': 'report' }, t('report-button')),
      ),
      x(
        'form',
        { class: 'pc-composer', 'data-test': 'composer' },
        x('button', { type: 'button', class: 'pc-btn pc-danger pc-end', 'data-test': 'end' }, t('end-button')),
        x(
          'div',
          { class: 'pc-field' },
          x('textarea', {
            class: 'pc-input',
            'data-test': 'input',
            rows: '1',
            'aria-label': t('message-input-label'),
            'aria-describedby': 'pc-counter',
            placeholder: t('message-input-placeholder'),
            autocomplete: 'off',
            enterkeyhint: 'send',
          }),
          x('span', { class: 'pc-counter', id: 'pc-counter', 'data-test': 'counter', 'aria-live': 'polite', hidden: true }),
        ),
        x('button', { type: 'submit', class: 'pc-btn pc-primary pc-send', 'data-test': 'send' }, t('send-button')),
      ),
    ),

    x(
      'section',
      { class: 'pc-view pc-closed', 'data-test': 'view-closed', 'aria-label': t('closed-label'), hidden: true },
      x('p', { class: 'pc-over', 'data-test': 'closed-text' }, t('closed')),
      x('button', { type: 'button', class: 'pc-btn pc-primary', 'data-test': 'start-over' }, t('new-chat-button')),
      x('button', { type: 'button', class: 'pc-btn', 'data-test': 'report-later', hidden: true }, t('report-button')),
      x('p', { class: 'pc-report-done', 'data-test': 'report-done', hidden: true }, t('report-sent')),
    ),
    renderReportDialog(x, tr),
  );
}

const VIEW_OF_STATE = {
  idle: 'view-idle',
  connecting: 'view-connecting',
  waiting: 'view-waiting',
  retrying: 'view-retrying',
  chat: 'view-chat',
  closed: 'view-closed',
};

/**
 * Renders the chat into `root` and runs it.
 * @param {{ wsUrl: string, root: Document | ShadowRoot | Element, container?: Element,
 *           keyTarget?: EventTarget, theme?: string, WebSocket?: typeof WebSocket }} options
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
  const onlineUrl = onlineUrlFor(wsUrl);
  const tr = translator(options.i18n);
  const { t, tn } = tr;

  const el = render(doc, tr);
  const theme = themeOf(options.theme);
  if (theme) el.dataset.theme = theme;
  container.append(el);
  const $ = (name) => el.querySelector(`[data-test="${name}"]`);
  const ui = {
    online: $('online'),
    onlineText: el.querySelector('.pc-online-text'),
    badge: $('badge'),
    status: $('status'),
    notice: $('notice'),
    start: $('start'),
    connectingText: $('connecting-text'),
    cancelConnecting: $('cancel-connecting'),
    waitingText: $('waiting-text'),
    waited: $('waited'),
    alone: $('alone'),
    check: $('check'),
    checkProgress: $('check-progress'),
    checkPercent: $('check-percent'),
    cancel: $('cancel'),
    retryText: $('retry-text'),
    retryReason: $('retry-reason'),
    retryCountdown: $('retry-countdown'),
    retryNow: $('retry-now'),
    cancelRetrying: $('cancel-retrying'),
    transcript: $('transcript'),
    messages: $('messages'),
    newBelow: $('new-below'),
    typing: $('typing'),
    composer: $('composer'),
    input: $('input'),
    counter: $('counter'),
    send: $('send'),
    end: $('end'),
    startOver: $('start-over'),
    report: $('report'),
    reportLater: $('report-later'),
    reportDone: $('report-done'),
    reportDialog: $('report-dialog'),
    reportForm: $('report-form'),
    reportNote: $('report-note'),
    reportEvidence: $('report-evidence'),
    reportError: $('report-error'),
    reportCancel: $('report-cancel'),
  };
  const interests = attachInterests(el, win, tr);

  /** The live connection: { ws, everOpened } or null. */
  let conn = null;
  /** Our messages not yet receipted, { text, li } each, and those a drop left unconfirmed. */
  const pending = createPending();
  /** What the partner was last told about our typing, when, and a coalesced change to send. */
  let typingSent = false;
  let typingSentAt = -Infinity;
  let typingFlushTimer = null;
  let typingTimer = null;
  let confirming = false;
  let blinkTimer = null;
  let titleBeforeBlink = '';
  let onlineCount = null;
  let onlineTimer = null;
  /** The longest message the server takes, in characters (from GET /online). */
  let maxChars = DEFAULT_MAX_MESSAGE_CHARS;
  let waitingSince = 0;
  let waitedTimer = null;
  let retryAttempt = 0;
  let retryAt = 0;
  let retryTimer = null;
  /** The chat's resume token and the attempts after a drop (see resume.js). */
  const resumer = createResumer();
  let resumeTimer = null;
  /** The challenge being solved: { stop() }, or null. */
  let solver = null;
  let destroyed = false;
  const cleanups = [];
  const listen = (target, type, fn, opts) => {
    target.addEventListener(type, fn, opts);
    cleanups.push(() => target.removeEventListener(type, fn, opts));
  };

  const machine = createMachine({ onChange: (to) => onStateChange(to) });

  // ---- view updates ----------------------------------------------------------------------

  /** Whether the visitor's focus is in the chat (or, on the chat's own page, nowhere else). */
  function focusIsOurs() {
    const active = doc.activeElement;
    if (isDocument && (!active || active === doc.body || active === doc.documentElement)) return true;
    if (active && el.contains(active)) return true;
    // In a shadow root the document only sees the host element.
    return !isDocument && root.activeElement != null && el.contains(root.activeElement);
  }

  function focus(target) {
    // In an embed the host page must not scroll under the visitor.
    target.focus({ preventScroll: !isDocument });
  }

  function onStateChange(to) {
    const hadFocus = focusIsOurs();
    el.dataset.state = to;
    for (const [state, view] of Object.entries(VIEW_OF_STATE)) $(view).hidden = state !== to;
    showTranscript();
    reports.onState(to);
    if (to !== 'chat') {
      setTyping(false);
      resetConfirm();
      failPending();
      stopTypingTimers();
      ui.newBelow.hidden = true;
    }
    if (to !== 'retrying') stopRetryTimer();
    if (to !== 'waiting') stopCheck();
    if (to === 'waiting') startWaitedTimer();
    else stopWaitedTimer();
    if (to === 'idle' || to === 'closed') pollOnline();
    else stopOnlinePoll();
    if (to === 'retrying') setOnline(null);
    const said = { connecting: 'connecting', waiting: 'waiting', closed: 'closed' }[to];
    announce(said ? t(said) : '');
    // Never a button that the next Enter would press by mistake (Cancel after Start).
    const target = {
      idle: ui.start,
      connecting: ui.connectingText,
      waiting: ui.waitingText,
      retrying: ui.retryText,
      chat: ui.input,
      closed: ui.startOver,
    }[to];
    // Focus only moves when it is already in the chat: never away from the host page.
    if (target && hadFocus) focus(target);
    else if (to === 'chat' && !hadFocus) flagAttention(t('badge-new-chat'));
    if (to === 'chat') scrollToEnd();
  }

  function showTranscript() {
    const s = machine.state;
    const kept = ui.messages.childElementCount > 0 && s !== 'idle';
    ui.transcript.hidden = !(s === 'chat' || s === 'closed' || kept);
    el.toggleAttribute('data-kept', kept && s !== 'chat' && s !== 'closed');
  }

  function announce(text) {
    ui.status.textContent = text;
  }

  function setNotice(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  /** Shows the online count, or hides it (`null`: unknown, e.g. while offline). */
  function setOnline(count) {
    onlineCount = count;
    if (count !== null) {
      const number = (text) => h(doc, 'span', { 'data-test': 'online-count' }, text);
      ui.onlineText.replaceChildren(...tn('online-count', { count }, { count: number }));
    }
    ui.online.hidden = count === null;
    updateAlone();
  }

  // ---- the online count while idle --------------------------------------------------------

  function stopOnlinePoll() {
    if (onlineTimer !== null) win.clearTimeout(onlineTimer);
    onlineTimer = null;
  }

  function pollOnline() {
    stopOnlinePoll();
    const asked = machine.state;
    const again = () => {
      if (machine.state === asked && !destroyed) onlineTimer = win.setTimeout(pollOnline, ONLINE_POLL_MS);
    };
    win
      .fetch(onlineUrl, { cache: 'no-store', credentials: 'omit' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((body) => {
        if (Number.isInteger(body?.max_message_chars) && body.max_message_chars > 0) {
          maxChars = body.max_message_chars;
        }
        if (machine.state !== asked || !Number.isFinite(body?.online)) return;
        setOnline(Math.max(0, Math.floor(body.online)));
      })
      .catch(() => {
        if (machine.state === asked) setOnline(null); // the server is away: no stale count
      })
      .finally(again);
  }

  // ---- waiting -----------------------------------------------------------------------------

  function renderWaited() {
    ui.waited.textContent = formatWaited(Date.now() - waitingSince);
  }

  function startWaitedTimer() {
    stopWaitedTimer();
    renderWaited();
    updateAlone();
    waitedTimer = win.setInterval(renderWaited, 1000);
  }

  function stopWaitedTimer() {
    if (waitedTimer !== null) win.clearInterval(waitedTimer);
    waitedTimer = null;
  }

  function updateAlone() {
    ui.alone.hidden = !(machine.state === 'waiting' && onlineCount !== null && onlineCount <= 1);
  }

  // ---- the check (a proof-of-work challenge) ---------------------------------------------------

  function setCheckProgress(fraction) {
    const clamped = Math.max(0, Math.min(1, Number(fraction) || 0));
    const percent = Math.floor(clamped * 100);
    ui.checkProgress.value = clamped;
    ui.checkPercent.textContent = t('check-percent', { percent });
  }

  function stopCheck() {
    solver?.stop();
    solver = null;
    ui.check.hidden = true;
  }

  /**
   * The server asks for a solved challenge before it pairs us: solve it in the background,
   * showing how far along, then ask again with the solution on the same socket.
   */
  function startCheck(challenge) {
    stopCheck();
    ui.check.hidden = false;
    setCheckProgress(0);
    announce(t('check-text'));
    const c = conn;
    const current = { stop: () => {} };
    solver = current;
    const mine = () => solver === current && conn === c && machine.state === 'waiting';
    current.stop = runSolver(challenge, {
      onProgress: (fraction) => {
        if (mine()) setCheckProgress(fraction);
      },
      onSolved: (payload) => {
        if (!mine()) return;
        solver = null;
        setCheckProgress(1);
        announce(t('check-done'));
        sendFrame(interests.request({ type: 'request', altcha: payload }));
      },
      onError: (message) => {
        if (!mine()) return;
        console.warn('pairchat: cannot solve the challenge', message);
        cancel();
        setNotice(t('check-failed'));
      },
    });
  }

  /** Runs the solver in a Web Worker, or on this thread where no worker starts; returns stop. */
  function runSolver(challenge, { onProgress, onSolved, onError }) {
    const began = Date.now();
    let cancelled = false;
    const here = () => {
      solve(challenge, { onProgress, isCancelled: () => cancelled }).then(
        (n) => {
          if (cancelled) return;
          if (n === null) onError('no number solves the challenge');
          else onSolved(payloadOf(challenge, n, Date.now() - began));
        },
        (err) => {
          if (!cancelled) onError(String(err?.message ?? err));
        },
      );
    };
    let worker = null;
    try {
      // A chat embedded on another site may not start a worker from the chat's origin.
      worker = new win.Worker(WORKER_URL, { type: 'module' });
    } catch {
      here();
      return () => {
        cancelled = true;
      };
    }
    worker.addEventListener('message', (ev) => {
      const m = ev.data ?? {};
      if (m.type === 'progress') return onProgress(m.fraction);
      worker.terminate();
      if (m.type === 'solved') onSolved(m.payload);
      else onError(m.message);
    });
    // The worker did not load (or broke): solve here instead.
    worker.addEventListener('error', (ev) => {
      ev.preventDefault();
      worker.terminate();
      if (!cancelled) here();
    });
    worker.postMessage({ challenge });
    return () => {
      cancelled = true;
      worker.terminate();
    };
  }

  // ---- retrying ----------------------------------------------------------------------------

  function stopRetryTimer() {
    if (retryTimer !== null) win.clearInterval(retryTimer);
    retryTimer = null;
  }

  function renderRetry() {
    const secs = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
    ui.retryCountdown.textContent = t('retry-countdown', { secs });
  }

  /** The visitor still wants a chat and the server cannot give one now: try again later. */
  function scheduleRetry(reason) {
    const delay = retryDelaySecs(retryAttempt) * 1000;
    retryAttempt += 1;
    retryAt = Date.now() + delay;
    ui.retryReason.textContent = reason;
    if (machine.state !== 'retrying') machine.send('fail');
    stopRetryTimer();
    renderRetry();
    announce(`${reason} ${ui.retryCountdown.textContent}`);
    retryTimer = win.setInterval(() => {
      if (Date.now() >= retryAt) retryNow();
      else renderRetry();
    }, 250);
  }

  function retryNow() {
    stopRetryTimer();
    if (machine.state !== 'retrying') return;
    // After "unavailable" the socket is still open and back to idle: ask on it again.
    if (conn && conn.ws.readyState === 1) {
      sendFrame(interests.request({ type: 'request' }));
      machine.send('request');
    } else {
      connect();
    }
  }

  // ---- the transcript ------------------------------------------------------------------------

  function nearBottom() {
    const t = ui.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 48;
  }

  function scrollToEnd() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
    ui.newBelow.hidden = true;
  }

  /**
   * Adds an item. A visitor reading at the bottom follows the conversation, but a long message
   * is shown from its start (sender and all); one who scrolled up stays put and gets the pill.
   */
  function append(item, { force = false } = {}) {
    const stick = force || nearBottom();
    ui.messages.append(item);
    showTranscript();
    if (!stick) {
      if (item.dataset.from === 'guest') ui.newBelow.hidden = false;
      return;
    }
    const t = ui.transcript;
    // A message taller than the view is shown from its start (its sender and first line).
    const top = item.getBoundingClientRect().top - t.getBoundingClientRect().top + t.scrollTop - 8;
    if (item.offsetHeight > t.clientHeight - 16) t.scrollTop = top;
    else scrollToEnd();
    ui.newBelow.hidden = true;
  }

  /** The message text as DOM nodes: text, and http(s) links as <a> (never parsed as HTML). */
  function messageText(text) {
    // Written by a person in any language and direction: lang unknown, direction from the text.
    const div = h(doc, 'div', { class: 'pc-text', 'data-test': 'message-text', dir: 'auto', lang: '' });
    for (const part of linkParts(String(text))) {
      if (!part.href) {
        div.append(doc.createTextNode(part.text));
        continue;
      }
      div.append(h(doc, 'a', { href: part.href, rel: LINK_REL, target: '_blank', class: 'pc-link' }, part.text));
    }
    return div;
  }

  function addMessage(from, text, status) {
    const now = new Date();
    const mine = from === 'me';
    const li = h(
      doc,
      'li',
      {
        class: `pc-msg ${mine ? 'pc-me' : 'pc-guest'}`,
        'data-test': 'message',
        'data-from': mine ? 'me' : 'guest',
        'data-status': mine ? status : null,
      },
      h(
        doc,
        'div',
        { class: 'pc-meta' },
        h(doc, 'span', { class: 'pc-label', 'data-test': 'message-label' }, t(mine ? 'from-me' : 'from-stranger')),
        ' ',
        h(doc, 'time', { class: 'pc-time', 'data-test': 'message-time', datetime: now.toISOString() }, formatTime(now, tr.lang)),
        mine ? h(doc, 'span', { class: 'pc-status', 'data-test': 'message-status' }, status === 'pending' ? t('sending') : '') : null,
      ),
      messageText(text),
    );
    append(li, { force: mine });
    return li;
  }

  function addSystem(kind, text) {
    append(h(doc, 'li', { class: `pc-system pc-${kind}`, 'data-test': 'system-line', 'data-kind': kind }, text));
  }

  function setTyping(on) {
    const stick = nearBottom();
    ui.typing.hidden = !on;
    if (stick) scrollToEnd();
  }

  /** Send waits (disabled, "Sending…") only while the queue is full; data-sending: any waits. */
  function showSending() {
    const full = pending.full;
    ui.send.disabled = full;
    ui.send.textContent = t(full ? 'sending' : 'send-button');
    if (pending.size > 0) el.dataset.sending = 'true';
    else delete el.dataset.sending;
  }

  function setStatus(li, status, label) {
    li.dataset.status = status;
    const s = li.querySelector('[data-test=message-status]');
    if (s) s.textContent = label;
  }

  /**
   * The server receipted our message `text` (pending.js says which one it is, also one left
   * unconfirmed by a drop): it is delivered. False when we waited for no such message.
   */
  function delivered(text) {
    const m = pending.receipt(text);
    if (m) setStatus(m.li, 'delivered', '');
    showSending();
    return m !== null;
  }

  /** The server refused our message: it goes back in the box (if empty) and leaves the log. */
  function refusePending() {
    const m = pending.refused();
    if (!m) return;
    if (ui.input.value === '') {
      ui.input.value = m.text;
      onComposerChange();
    }
    m.li.remove();
    showSending();
  }

  /** `undelivered`: one of our messages never reached the partner (pending.js says which). */
  function undelivered() {
    const m = pending.undelivered();
    if (m) setStatus(m.li, 'failed', t('not-delivered'));
    showSending();
  }

  /** The chat ended with messages unreceipted: say so on each. */
  function failPending() {
    for (const m of pending.ended()) setStatus(m.li, 'failed', t('not-delivered'));
    showSending();
  }

  function resetConfirm() {
    if (!confirming) return;
    confirming = false;
    ui.end.textContent = t('end-button');
    delete ui.end.dataset.confirm;
  }

  function askConfirm() {
    confirming = true;
    ui.end.textContent = t('end-confirm');
    ui.end.dataset.confirm = 'true';
  }

  // ---- attention: title blinking, the badge, the iframe's parent -----------------------

  function pageHasAttention() {
    return doc.visibilityState === 'visible' && doc.hasFocus();
  }

  /** Marks the widget until the visitor comes back to it (focus elsewhere on the page). */
  function flagAttention(text) {
    ui.badge.textContent = text;
    ui.badge.hidden = false;
    el.dataset.attention = 'true';
  }

  function clearAttention() {
    ui.badge.hidden = true;
    delete el.dataset.attention;
  }

  function callAttention(text) {
    if (!focusIsOurs()) flagAttention(text);
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
    const blinkTitle = t('blink-title');
    doc.title = blinkTitle;
    blinkTimer = win.setInterval(() => {
      on = !on;
      doc.title = on ? blinkTitle : titleBeforeBlink;
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
  listen(el, 'focusin', clearAttention);
  listen(el, 'pointerdown', clearAttention);

  // ---- connection -----------------------------------------------------------------------

  function sendFrame(frame) {
    if (!conn || conn.ws.readyState !== 1) return false;
    conn.ws.send(JSON.stringify(frame));
    return true;
  }

  function start() {
    if (!machine.can('open') || machine.state === 'retrying') {
      console.warn(`pairchat: cannot start a chat in state "${machine.state}"`);
      return;
    }
    setNotice('');
    stopBlinking();
    retryAttempt = 0;
    waitingSince = Date.now();
    connect();
  }

  /** Opens a socket and asks for a partner once it is open (from idle, closed or retrying). */
  function connect() {
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
      c.ws.send(JSON.stringify(interests.request({ type: 'request' })));
      machine.send('request');
    });
    c.ws.addEventListener('message', (ev) => {
      if (conn !== c) return;
      onFrame(ev.data);
    });
    c.ws.addEventListener('close', (ev) => {
      if (conn !== c) return;
      // After our "leave" the server closes; the ending is still ours.
      finish({ code: ev.code, reason: ev.reason, byUs: c.leaving === true, everOpened: c.everOpened });
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
        finish({ code: 1006, reason: '', byUs: false, everOpened: false, timedOut: true });
      }
    }, CONNECT_TIMEOUT_MS);
  }

  /**
   * The current connection ended (ours or theirs). A chat moves to closed; a visitor who asked
   * for a chat and did not cancel retries by itself; otherwise back to idle.
   */
  function finish({ code, reason, byUs, everOpened, timedOut = false }) {
    const c = conn;
    conn = null;
    if (machine.state === 'chat' && !byUs && dropped(c, code)) return;
    stopResuming();
    // Ours, or one that never answered: never left open behind us.
    if (c && c.ws && c.ws.readyState < 2) {
      try {
        c.ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    stopTypingTimers();
    typingSent = false;
    const state = machine.state;
    if (state === 'chat') {
      const n =
        code === 1000 && reason === 'reported' ? { kind: 'left', id: 'report-left' } : closeNotice({ code, reason, byUs });
      addSystem(n.kind, t(n.id));
      machine.send('close');
    } else if (!byUs && (state === 'connecting' || state === 'waiting')) {
      scheduleRetry(t(retryReason({ code, everOpened: everOpened ?? c?.everOpened ?? false, timedOut })));
    } else if (!byUs && state === 'retrying') {
      // The socket kept open after "unavailable" went away: the retry opens a new one.
    } else {
      machine.send('close');
    }
  }

  /**
   * The chat's socket closed without an end (no close frame, or the server restarting), or an
   * attempt to resume failed: try (again) to resume, keeping the chat on screen. Returns false
   * when the chat is over instead.
   */
  function dropped(c, code) {
    if (c && c.ws && c.ws.readyState < 2) {
      try {
        c.ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    const attempt = c?.resuming === true;
    const delay = attempt ? resumer.failed() : resumer.dropped({ code, byUs: false });
    if (delay === null) {
      resumer.reset();
      return false;
    }
    if (!attempt) {
      stopTypingTimers();
      typingSent = false;
      setTyping(false);
      // Their receipts may have gone with the socket: not waited for any more.
      for (const m of pending.dropped()) setStatus(m.li, 'unconfirmed', t('not-confirmed'));
      showSending();
      addSystem('reconnecting', t('resume-reconnecting'));
    }
    resumeTimer = win.setTimeout(reconnect, delay);
    return true;
  }

  /** Opens a socket that takes the chat up again (/ws?resume=). */
  function reconnect() {
    resumeTimer = null;
    if (destroyed || machine.state !== 'chat') return;
    const c = { ws: null, everOpened: false, resuming: true };
    conn = c;
    try {
      c.ws = new WS(withResume(withVisitor(wsUrl, visitorToken()), resumer.token));
    } catch (err) {
      console.warn('pairchat: cannot open WebSocket', err);
      finish({ code: 1006, reason: '', byUs: false });
      return;
    }
    c.ws.addEventListener('open', () => {
      if (conn === c) c.everOpened = true;
    });
    c.ws.addEventListener('message', (ev) => {
      if (conn === c) onFrame(ev.data);
    });
    c.ws.addEventListener('close', (ev) => {
      if (conn === c) finish({ code: ev.code, reason: ev.reason, byUs: c.leaving === true });
    });
    c.ws.addEventListener('error', () => {
      win.setTimeout(() => {
        if (conn === c && c.ws.readyState === 3) finish({ code: 1006, reason: '', byUs: false });
      }, 250);
    });
    win.setTimeout(() => {
      if (conn === c && !c.everOpened) finish({ code: 1006, reason: '', byUs: false });
    }, CONNECT_TIMEOUT_MS);
  }

  function stopResuming() {
    if (resumeTimer !== null) win.clearTimeout(resumeTimer);
    resumeTimer = null;
  }

  /**
   * Ends the chat by asking the server ({"type":"leave"}): it answers "ended" (with what we need
   * to report the stranger afterwards) and closes. A browser drops frames that arrive after
   * the page itself called close(), so the server closes, not us; without an answer in time we
   * close anyway.
   */
  function endChat() {
    if (machine.state !== 'chat') return;
    const c = conn;
    if (!c || c.leaving || !sendFrame({ type: 'leave' })) {
      finish({ code: 1000, reason: '', byUs: true });
      return;
    }
    c.leaving = true;
    resetConfirm();
    win.setTimeout(() => {
      if (conn === c) finish({ code: 1000, reason: '', byUs: true });
    }, LEAVE_TIMEOUT_MS);
  }

  function cancel() {
    if (!['connecting', 'waiting', 'retrying'].includes(machine.state)) return;
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
        retryAttempt = 0; // the server is back and pairing works
        stopCheck();
        break;
      case 'response':
        if (machine.state !== 'waiting') {
          console.warn(`pairchat: ignored response in state "${machine.state}"`);
          break;
        }
        retryAttempt = 0;
        // A new chat: the last one's transcript and any half-typed draft go.
        ui.messages.replaceChildren();
        ui.input.value = '';
        onComposerChange();
        resumer.setToken(f.resume);
        pending.clear();
        machine.send('response');
        addSystem('found', foundText(f.common, tr));
        callAttention(t('badge-new-chat'));
        break;
      case 'message': {
        if (machine.state !== 'chat' || typeof f.message !== 'string') {
          console.warn(`pairchat: ignored message frame in state "${machine.state}"`);
          break;
        }
        if (f.from === 'me') {
          // A receipt (also of one sent just before a drop: it did arrive); one of a message
          // we no longer wait for is still ours, shown as delivered.
          if (!delivered(f.message)) addMessage('me', f.message, 'delivered');
        } else {
          setTyping(false);
          addMessage('guest', f.message);
          callAttention(t('badge-new-message'));
        }
        break;
      }
      case 'typing':
        if (machine.state === 'chat') setTyping(f.typing === true);
        break;
      case 'resumed':
        if (machine.state !== 'chat' || !conn?.resuming) break;
        conn.resuming = false;
        resumer.resumed(f.resume);
        addSystem('reconnected', t('resume-reconnected'));
        break;
      case 'partner_away':
        if (machine.state !== 'chat') break;
        setTyping(false);
        addSystem('away', t('resume-partner-away'));
        break;
      case 'partner_back':
        if (machine.state === 'chat') addSystem('back', t('resume-partner-back'));
        break;
      case 'online':
        if (Number.isFinite(f.count) && f.count >= 0) setOnline(Math.floor(f.count));
        break;
      case 'ended':
        reports.ended(f.report);
        break;
      case 'reported':
        reports.ended(null);
        break;
      case 'error': {
        if (f.error === 'banned') {
          reports.banned(f);
          break;
        }
        const asked = f.error === 'challenge_required' || f.error === 'challenge_failed';
        if (asked && f.challenge && machine.state === 'waiting') {
          startCheck(f.challenge);
          break;
        }
        const text = errorText(f);
        console.warn('pairchat: server error', f.error, f.detail);
        if (f.error === 'resume_failed' && conn?.resuming) {
          // The chat is over on the server's side: close as a lost connection.
          conn.resuming = false;
          resumer.reset();
          finish({ code: 1000, reason: 'partner lost', byUs: false });
          break;
        }
        if (f.error === 'undelivered' && machine.state === 'chat') {
          undelivered();
          break;
        }
        if (machine.state === 'chat') {
          // Only a refusal of a message takes one back (a `bad_report` leaves them be).
          if (refusesMessage(f.error)) refusePending();
          addSystem('error', text);
        } else if (f.error === 'unavailable' && (machine.state === 'waiting' || machine.state === 'connecting')) {
          // The server put us back to idle: say so where the visitor looks, and ask again later.
          scheduleRetry(text);
        } else if (machine.state === 'idle' || machine.state === 'closed') {
          setNotice(text);
        } else {
          ui.retryReason.textContent = text;
        }
        break;
      }
      default:
        console.warn(`pairchat: ignored unknown frame type "${f.type}"`);
    }
  }

  /** An error frame in the visitor's language: its code's own text, else a general one. */
  function errorText(f) {
    const code = typeof f.error === 'string' ? f.error : '';
    return tr.has(`error-${code}`) ? t(`error-${code}`) : t('error-other', { code });
  }

  // ---- reports and bans ---------------------------------------------------------------------

  const reports = createReports({
    el,
    doc,
    win,
    ui,
    tr,
    reportUrl: reportUrlFor(wsUrl),
    state: () => machine.state,
    sendFrame,
    announce,
    focus,
    setNotice,
    stop: () => (machine.state === 'chat' ? endChat() : finish({ code: 1000, reason: '', byUs: true })),
    onOpen: resetConfirm,
    listen,
  });

  // ---- composing ------------------------------------------------------------------------

  function stopTypingTimers() {
    if (typingTimer !== null) win.clearTimeout(typingTimer);
    if (typingFlushTimer !== null) win.clearTimeout(typingFlushTimer);
    typingTimer = null;
    typingFlushTimer = null;
  }

  /**
   * Tells the partner whether we are typing, at most once per TYPING_GAP_MS: a change within
   * the gap is sent when it ends, and only if it is still a change. Typing frames are cheap
   * hints; they must never use up the budget that messages need.
   */
  function setTypingState(on) {
    if (typingFlushTimer !== null) win.clearTimeout(typingFlushTimer);
    typingFlushTimer = null;
    const flush = () => {
      typingFlushTimer = null;
      if (machine.state !== 'chat' || on === typingSent) return;
      if (sendFrame({ type: 'typing', typing: on })) {
        typingSent = on;
        typingSentAt = Date.now();
      }
    };
    if (on === typingSent) return;
    const wait = typingSentAt + TYPING_GAP_MS - Date.now();
    if (wait <= 0) flush();
    else typingFlushTimer = win.setTimeout(flush, wait);
  }

  function onInput() {
    onComposerChange();
    if (machine.state !== 'chat') return;
    if (isBlank(ui.input.value)) {
      if (typingTimer !== null) win.clearTimeout(typingTimer);
      typingTimer = null;
      setTypingState(false);
      return;
    }
    setTypingState(true);
    if (typingTimer !== null) win.clearTimeout(typingTimer);
    typingTimer = win.setTimeout(() => setTypingState(false), TYPING_IDLE_MS);
  }

  /** Grows the box with its text (up to the CSS max-height) and updates the counter. */
  function onComposerChange() {
    const input = ui.input;
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight + (input.offsetHeight - input.clientHeight)}px`;
    const used = charCount(input.value);
    const over = used > maxChars;
    ui.counter.hidden = used < maxChars * COUNTER_FROM;
    ui.counter.textContent = t('counter', { used, max: maxChars });
    ui.counter.toggleAttribute('data-over', over);
    if (over) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }

  function sendMessage() {
    // Any number up to the cap may wait (a partner who is away gets them all when back).
    if (machine.state !== 'chat' || pending.full) return;
    const text = ui.input.value;
    if (isBlank(text) || charCount(text) > maxChars) return;
    if (!sendFrame({ type: 'message', message: text })) return;
    // The partner's page clears "typing" when the message arrives: no typing frame needed.
    if (typingTimer !== null) win.clearTimeout(typingTimer);
    typingTimer = null;
    if (typingFlushTimer !== null) win.clearTimeout(typingFlushTimer);
    typingFlushTimer = null;
    typingSent = false;
    // Shown at once, as pending, until the server's receipt.
    pending.sent({ text, li: addMessage('me', text, 'pending') });
    ui.input.value = '';
    onComposerChange();
    showSending();
    resetConfirm();
    ui.input.focus();
  }

  /** End, like Esc: the first press asks "Really?", the second ends. */
  function onEnd() {
    if (machine.state !== 'chat') return;
    if (confirming) endChat();
    else askConfirm();
  }

  // ---- wiring ---------------------------------------------------------------------------

  listen(ui.start, 'click', start);
  listen(ui.startOver, 'click', start);
  listen(ui.cancel, 'click', cancel);
  listen(ui.cancelConnecting, 'click', cancel);
  listen(ui.cancelRetrying, 'click', cancel);
  listen(ui.retryNow, 'click', retryNow);
  listen(ui.end, 'click', onEnd);
  listen(ui.newBelow, 'click', () => {
    scrollToEnd();
    ui.input.focus();
  });
  listen(ui.transcript, 'scroll', () => {
    if (nearBottom()) ui.newBelow.hidden = true;
  });
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
    // Esc in the Report form closes the form (the dialog's own), nothing else.
    if (reports.isOpen()) return;
    const action = escapeAction(machine.state, confirming);
    if (!action) return;
    ev.preventDefault();
    if (action === 'confirm') askConfirm();
    else if (action === 'end') endChat();
    else if (action === 'cancel') cancel();
    else if (action === 'start') start();
  });
  pollOnline();

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
      destroyed = true;
      stopResuming();
      const c = conn;
      conn = null;
      if (c?.ws) c.ws.close(1000);
      stopTypingTimers();
      stopBlinking();
      stopOnlinePoll();
      stopWaitedTimer();
      stopRetryTimer();
      stopCheck();
      for (const undo of cleanups.splice(0)) undo();
      el.remove();
    },
  };
}
