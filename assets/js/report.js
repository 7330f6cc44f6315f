// The Report form and what the page says about reports and bans: every string of them is here.
// In a chat the report goes over the WebSocket ({"type":"report"}) and ends the chat; on the
// closed view right after a chat it is POSTed to /report with the sealed evidence the chat's
// "ended" frame gave us (any server process can open it).
//
// Test hooks (inside the chat root):
//   report              "Report" button in the chat view
//   report-later        "Report" button on the closed view (when the last chat can be reported)
//   report-done         "Thanks — your report was sent." on the closed view
//   report-dialog       the form (<dialog>): report-reason (radios, value=the reason),
//                       report-note, report-evidence (what goes to moderators), report-error,
//                       report-send, report-cancel

export const MAX_NOTE_CHARS = 500;

export const REASONS = Object.freeze([
  ['spam', 'Spam or advertising'],
  ['harassment', 'Harassment or hate'],
  ['sexual', 'Sexual content'],
  ['under_age', 'Under age'],
  ['other', 'Something else'],
]);

export const TEXT = Object.freeze({
  button: 'Report',
  title: 'Report this stranger',
  reason: 'Why?',
  note: `Anything to add? (optional, up to ${MAX_NOTE_CHARS} characters)`,
  evidenceLive:
    'The last messages of this chat (up to 20, yours and the stranger’s) go to the moderators with your report. Reporting ends this chat.',
  evidenceLater:
    'The last messages of this chat (up to 20, yours and the stranger’s) go to the moderators with your report.',
  send: 'Send report',
  cancel: 'Cancel',
  noReason: 'Choose a reason.',
  failed: 'The report could not be sent. Please try again.',
  sent: 'Thanks — your report was sent to the moderators.',
  reportedAndLeft: 'You reported the stranger and left the chat.',
  bannedUntil: (until) => `You are banned from this chat until ${until}.`,
  bannedReason: (reason) => `Reason: ${reason}`,
  appeal: 'To appeal: ',
});

/** Where reports made after a chat go: /report on the chat's server. */
export function reportUrlFor(wsUrl) {
  const u = new URL(String(wsUrl));
  const scheme = u.protocol === 'wss:' ? 'https:' : 'http:';
  return `${scheme}//${u.host}/report`;
}

/**
 * What a banned visitor is shown, from the server's `banned` error frame: the lines of text and
 * the appeal (text or a link), or null without one.
 */
export function bannedNotice(frame, formatDate = (d) => d.toLocaleString()) {
  const untilMs = Number(frame?.until_ms);
  const until = Number.isFinite(untilMs) ? formatDate(new Date(untilMs)) : String(frame?.until ?? '');
  const lines = [TEXT.bannedUntil(until)];
  if (typeof frame?.reason === 'string' && frame.reason) lines.push(TEXT.bannedReason(frame.reason));
  const appeal = typeof frame?.appeal === 'string' && frame.appeal.trim() ? frame.appeal.trim() : null;
  return { lines, appeal };
}

/** The form, built with the chat's element builder `x(tag, attrs, ...children)`. */
export function renderReportDialog(x) {
  return x(
    'dialog',
    { class: 'pc-report', 'data-test': 'report-dialog', 'aria-labelledby': 'pc-report-title' },
    x(
      'form',
      { method: 'dialog', class: 'pc-report-form', 'data-test': 'report-form', novalidate: true },
      x('h2', { class: 'pc-report-title', id: 'pc-report-title' }, TEXT.title),
      x(
        'fieldset',
        { class: 'pc-reasons' },
        x('legend', {}, TEXT.reason),
        ...REASONS.map(([value, label]) =>
          x(
            'label',
            { class: 'pc-choice' },
            x('input', { type: 'radio', name: 'reason', value, 'data-test': 'report-reason' }),
            label,
          ),
        ),
      ),
      x('label', { class: 'pc-note-label', for: 'pc-report-note' }, TEXT.note),
      x('textarea', {
        class: 'pc-report-note',
        id: 'pc-report-note',
        'data-test': 'report-note',
        rows: '3',
        maxlength: String(MAX_NOTE_CHARS),
      }),
      x('p', { class: 'pc-evidence', 'data-test': 'report-evidence' }, TEXT.evidenceLive),
      x('p', { class: 'pc-notice', 'data-test': 'report-error', role: 'alert', hidden: true }),
      x(
        'div',
        { class: 'pc-row' },
        x('button', { type: 'submit', class: 'pc-btn pc-danger', 'data-test': 'report-send' }, TEXT.send),
        x('button', { type: 'button', class: 'pc-btn', 'data-test': 'report-cancel' }, TEXT.cancel),
      ),
    ),
  );
}
