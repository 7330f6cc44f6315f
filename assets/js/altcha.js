// Solves an ALTCHA proof-of-work challenge, as the server sends it with the errors
// "challenge_required" and "challenge_failed": find the number n (0 ≤ n ≤ maxnumber) whose
// SHA-256(salt + n), in hex, is the challenge. The answer goes back as the base64 JSON payload
// ALTCHA's verifiers read: {algorithm, challenge, number, salt, signature, took}.
// Runs in the Web Worker altcha-worker.js, or on the page where a worker cannot start (an embed
// on another site may not start a worker from the chat's origin). SHA-256 comes from
// crypto.subtle, which browsers offer on https pages (and on http://localhost) only.

/** Hashes tried at once: crypto.subtle answers asynchronously, so they are asked in batches. */
const BATCH = 500;

/** Lower-case hex of an ArrayBuffer. */
function hex(buffer) {
  let out = '';
  for (const byte of new Uint8Array(buffer)) out += byte.toString(16).padStart(2, '0');
  return out;
}

/**
 * The number that solves `challenge`, or null when none does up to its maxnumber.
 * @param {{algorithm: string, challenge: string, maxnumber: number, salt: string}} challenge
 * @param {{ onProgress?: (fraction: number) => void, isCancelled?: () => boolean,
 *           subtle?: SubtleCrypto }} [options]
 * @returns {Promise<number | null>}
 */
export async function solve(challenge, options = {}) {
  const subtle = options.subtle ?? globalThis.crypto?.subtle;
  if (!subtle) throw new Error('no crypto.subtle here (the page is not https)');
  if (challenge?.algorithm !== 'SHA-256') throw new Error(`unsupported algorithm ${challenge?.algorithm}`);
  const max = Number(challenge.maxnumber);
  const target = String(challenge.challenge);
  const encoder = new TextEncoder();
  for (let start = 0; start <= max; start += BATCH) {
    if (options.isCancelled?.()) return null;
    const end = Math.min(max, start + BATCH - 1);
    const tries = [];
    for (let n = start; n <= end; n += 1) tries.push(subtle.digest('SHA-256', encoder.encode(challenge.salt + n)));
    const hashes = await Promise.all(tries);
    const found = hashes.findIndex((h) => hex(h) === target);
    if (found >= 0) return start + found;
    options.onProgress?.((end + 1) / (max + 1));
  }
  return null;
}

/**
 * The payload of a solution, as the server's `request` frame takes it in "altcha".
 * @param {{algorithm: string, challenge: string, salt: string, signature: string}} challenge
 * @param {number} number
 * @param {number} took milliseconds spent
 */
export function payloadOf(challenge, number, took) {
  const { algorithm, salt, signature } = challenge;
  return btoa(JSON.stringify({ algorithm, challenge: challenge.challenge, number, salt, signature, took }));
}
