// The Web Worker that solves a challenge off the page's thread (see altcha.js). The page posts
// {challenge}; the worker answers {type: "progress", fraction} now and then, then
// {type: "solved", payload} or {type: "error", message}.
import { payloadOf, solve } from './altcha.js';

/** Progress is posted at most this often. */
const PROGRESS_MS = 100;

self.addEventListener('message', async (event) => {
  const challenge = event.data?.challenge;
  const began = Date.now();
  let posted = 0;
  try {
    const number = await solve(challenge, {
      onProgress: (fraction) => {
        if (Date.now() - posted < PROGRESS_MS) return;
        posted = Date.now();
        self.postMessage({ type: 'progress', fraction });
      },
    });
    if (number === null) throw new Error('no number solves this challenge');
    self.postMessage({ type: 'solved', payload: payloadOf(challenge, number, Date.now() - began) });
  } catch (err) {
    self.postMessage({ type: 'error', message: String(err?.message ?? err) });
  }
});
