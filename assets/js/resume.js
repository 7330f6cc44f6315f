// Resuming a chat after the connection dropped: when, how soon, and when to give up. No DOM,
// no I/O (chat.js opens the sockets and shows the lines).
//
// The server gives each visitor a token with "response" (and the next one with "resumed").
// When the socket of a chat closes abnormally (no close frame: 1006; or the server restarting:
// 1012), the page connects again to /ws?resume=<token> by itself: at once after 1012, else
// after a short, growing delay, until the server answers "resumed" or "resume_failed", or
// the server's grace (15 s by default) has surely run out.

/** Close codes after which a chat is resumed: no close frame, or a server restart. */
export const RESUME_CODES = Object.freeze([1006, 1012]);
/** Delays between attempts, in ms; the last repeats. */
export const RESUME_DELAYS_MS = Object.freeze([250, 500, 1000, 2000, 4000]);
/** After this long without success the chat is given up (the server's grace is 15 s). */
export const RESUME_GIVE_UP_MS = 20000;

/** Whether `text` looks like a resume token (32 hex digits). */
export function isToken(text) {
  return typeof text === 'string' && /^[0-9a-f]{32}$/i.test(text);
}

/** The socket URL that resumes the chat of `token`. */
export function withResume(wsUrl, token) {
  const u = new URL(wsUrl);
  u.searchParams.set('resume', token);
  return u.toString();
}

/**
 * Whether a close of the chat's socket calls for a resume.
 * @param {{ code: number, byUs: boolean, token: string | null }} close
 */
export function shouldResume({ code, byUs, token }) {
  return !byUs && isToken(token) && RESUME_CODES.includes(code);
}

/**
 * The delay before attempt `attempt` (0 for the first), in ms: none for the first after a
 * server restart (1012: another process is there at once), growing after that.
 */
export function resumeDelayMs(attempt, code) {
  if (attempt === 0 && code === 1012) return 0;
  return RESUME_DELAYS_MS[Math.min(attempt, RESUME_DELAYS_MS.length - 1)];
}

/**
 * One chat's resuming: its token, and the attempts after a drop.
 * @param {{ now?: () => number }} [options]
 */
export function createResumer(options = {}) {
  const now = options.now ?? (() => Date.now());
  let token = null;
  let since = null;
  let attempt = 0;
  let code = 0;
  return {
    get token() {
      return token;
    },
    /** Whether a resume is under way (a drop was seen and not yet resolved). */
    get active() {
      return since !== null;
    },
    /** The server's token ("response", "resumed"); anything else forgets it. */
    setToken(t) {
      token = isToken(t) ? t : null;
    },
    /**
     * The chat's socket closed: the delay before the first attempt, or null when this close
     * does not call for a resume.
     */
    dropped(close) {
      if (!shouldResume({ ...close, token })) return null;
      since = now();
      attempt = 0;
      code = close.code;
      return resumeDelayMs(attempt, code);
    },
    /** An attempt failed to reach the server: the delay before the next, or null to give up. */
    failed() {
      if (since === null) return null;
      attempt += 1;
      const delay = resumeDelayMs(attempt, code);
      if (now() + delay - since > RESUME_GIVE_UP_MS) {
        since = null;
        return null;
      }
      return delay;
    },
    /** "resumed": the chat goes on with the next token. */
    resumed(next) {
      since = null;
      attempt = 0;
      token = isToken(next) ? next : null;
    },
    /** The chat is over (ended, given up, or "resume_failed"): nothing more to resume. */
    reset() {
      since = null;
      attempt = 0;
      token = null;
    },
  };
}
