// Pure helpers of the pairchat client (no DOM access), kept apart so Node can test them.

/** True when `text` has nothing but whitespace (such messages are never sent). */
export function isBlank(text) {
  return typeof text !== 'string' || text.trim() === '';
}

/**
 * What a key press in the message box does: 'send', 'newline' or null (let the browser have it).
 * Enter and Ctrl/Cmd+Enter send; Shift+Enter adds a line; an IME composition keeps its Enter.
 * @param {{ key: string, shiftKey?: boolean, ctrlKey?: boolean, metaKey?: boolean,
 *           altKey?: boolean, isComposing?: boolean }} ev
 */
export function composerKeyAction(ev) {
  if (ev.key !== 'Enter' || ev.isComposing) return null;
  if (ev.shiftKey && !ev.ctrlKey && !ev.metaKey) return 'newline';
  if (ev.altKey) return null;
  return 'send';
}

/**
 * What Escape does in `state`. `confirming` is true after a first Esc in chat ("Really?").
 * Returns 'confirm' (ask "Really?"), 'end', 'cancel', 'start' or null.
 */
export function escapeAction(state, confirming) {
  switch (state) {
    case 'chat':
      return confirming ? 'end' : 'confirm';
    case 'connecting':
    case 'waiting':
    case 'retrying':
      return 'cancel';
    case 'idle':
    case 'closed':
      return 'start';
    default:
      return null;
  }
}

/** The rel of every link the chat shows (messages, the appeal). */
export const LINK_REL = 'noopener noreferrer nofollow ugc';

/**
 * The system line shown when the socket closes while chatting, from the close frame: its kind
 * and the id of its text in the catalogue (i18n.js). `byUs` is true when this visitor ended the
 * conversation.
 */
export function closeNotice({ code, reason, byUs }) {
  if (byUs) return { kind: 'left', id: 'left-by-you' };
  if (code === 1000 && (reason === 'partner left' || reason === 'partner lost')) {
    return { kind: 'disconnected', id: 'left-by-stranger' };
  }
  if (code === 1001) return { kind: 'server', id: 'closed-server-restart' };
  if (code === 1000) return { kind: 'disconnected', id: 'left-by-stranger' };
  return { kind: 'lost', id: 'closed-connection-lost' };
}

/**
 * Why a visitor who asked for a chat is retrying, after a connection that never reached a chat
 * closed: the id of its text in the catalogue.
 */
export function retryReason({ code, everOpened, timedOut = false }) {
  if (timedOut) return 'retry-timed-out';
  if (!everOpened) return 'retry-no-connection';
  if (code === 1001) return 'retry-restarting';
  return 'retry-lost';
}

/** Seconds to wait before retry number `attempt` (0-based): 1, 2, 4, 8, then every 10. */
export function retryDelaySecs(attempt) {
  return Math.min(10, 2 ** Math.max(0, Math.min(attempt, 4)));
}

/** How long someone has waited, e.g. "0:07", "12:30", "1:02:03". */
export function formatWaited(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const p = (n) => String(n).padStart(2, '0');
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h > 0 ? `${h}:${p(m)}:${p(s)}` : `${m}:${p(s)}`;
}

/** The characters of a message as the server counts them (Unicode scalar values). */
export function charCount(text) {
  let n = 0;
  for (const _ of String(text)) n += 1;
  return n;
}

const LINK_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?'"\]}>»”’]$/;

/**
 * A message's text cut into plain runs and http(s) links, for building DOM nodes (never HTML):
 * `[{ text }, { text, href }, …]`. Punctuation that ends a sentence is not part of a link, nor
 * is a closing parenthesis without its opening one.
 * @param {string} text
 */
export function linkParts(text) {
  const parts = [];
  let last = 0;
  for (const match of String(text).matchAll(LINK_RE)) {
    let url = match[0];
    for (;;) {
      if (TRAILING_PUNCTUATION.test(url)) url = url.slice(0, -1);
      else if (url.endsWith(')') && url.split('(').length < url.split(')').length) url = url.slice(0, -1);
      else break;
    }
    let href = null;
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
    } catch {
      /* not a URL after all: left as text */
    }
    if (!href) continue;
    if (match.index > last) parts.push({ text: text.slice(last, match.index) });
    parts.push({ text: url, href });
    last = match.index + url.length;
  }
  if (last < text.length || parts.length === 0) parts.push({ text: text.slice(last) });
  return parts;
}

/**
 * The WebSocket URL of a server given any URL on it (page location or script src):
 * http → ws, https → wss, path /ws.
 * @param {string | URL} url
 */
export function wsUrlFor(url) {
  const u = new URL(String(url));
  const scheme = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${u.host}/ws`;
}

/** The online-count endpoint of the server that `wsUrl` (ws(s)://host/ws) belongs to. */
export function onlineUrlFor(wsUrl) {
  const u = new URL(String(wsUrl));
  const scheme = u.protocol === 'wss:' ? 'https:' : 'http:';
  return `${scheme}//${u.host}/online`;
}

/** The theme a site owner asked for: 'light', 'dark', or null for the visitor's own setting. */
export function themeOf(value) {
  const v = String(value ?? '').trim().toLowerCase();
  return v === 'light' || v === 'dark' ? v : null;
}

/**
 * The WebSocket URL with this browser session's visitor token, so that the server knows a new
 * connection is the same visitor starting over (and does not pair it straight back with the
 * stranger it just left). Tokens are 1–64 of [A-Za-z0-9_-]; anything else is left out.
 * @param {string} wsUrl
 * @param {string | null | undefined} token
 */
export function withVisitor(wsUrl, token) {
  if (!token || !/^[A-Za-z0-9_-]{1,64}$/.test(token)) return wsUrl;
  const u = new URL(wsUrl);
  u.searchParams.set('visitor', token);
  return u.toString();
}

/** A new random visitor token (128 bits, URL-safe). */
export function newVisitorToken() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The origin ("https://host:port") of a URL, e.g. of embed.js's own src. */
export function originOf(url) {
  return new URL(String(url)).origin;
}

/** Local wall-clock time of a message, e.g. "14:05", written the way of `locale` (the page's language). */
export function formatTime(date, locale = []) {
  try {
    return date.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });
  } catch {
    const p = (n) => String(n).padStart(2, '0');
    return `${p(date.getHours())}:${p(date.getMinutes())}`;
  }
}

/**
 * Parses one server frame. Returns the object or null when it is not a JSON object with a
 * string "type".
 */
export function parseFrame(data) {
  if (typeof data !== 'string') return null;
  let obj;
  try {
    obj = JSON.parse(data);
  } catch {
    return null;
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj) || typeof obj.type !== 'string') return null;
  return obj;
}
