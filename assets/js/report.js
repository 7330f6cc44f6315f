// The Report form and what the page says about reports and bans (their words: the catalogue's
// report-* and banned-* keys, through the chat's translator `tr`, see i18n.js).
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

import { LINK_REL, linkParts } from './util.js';

export const MAX_NOTE_CHARS = 500;

/** The protocol's reasons, in the form's order; each is labelled by report-reason-<reason>. */
export const REASONS = Object.freeze(['spam', 'harassment', 'sexual', 'under_age', 'other']);

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
export function bannedNotice(frame, tr, formatDate = (d) => d.toLocaleString(tr.lang)) {
  const untilMs = Number(frame?.until_ms);
  const until = Number.isFinite(untilMs) ? formatDate(new Date(untilMs)) : String(frame?.until ?? '');
  const lines = [tr.t('banned-until', { until })];
  if (typeof frame?.reason === 'string' && frame.reason) lines.push(tr.t('banned-reason', { reason: frame.reason }));
  const appeal = typeof frame?.appeal === 'string' && frame.appeal.trim() ? frame.appeal.trim() : null;
  return { lines, appeal };
}

/** The form, built with the chat's element builder `x(tag, attrs, ...children)`. */
export function renderReportDialog(x, tr) {
  const { t } = tr;
  return x(
    'dialog',
    { class: 'pc-report', 'data-test': 'report-dialog', 'aria-labelledby': 'pc-report-title' },
    x(
      'form',
      { method: 'dialog', class: 'pc-report-form', 'data-test': 'report-form', novalidate: true },
      x('h2', { class: 'pc-report-title', id: 'pc-report-title' }, t('report-title')),
      x(
        'fieldset',
        { class: 'pc-reasons' },
        x('legend', {}, t('report-reason')),
        ...REASONS.map((value) =>
          x(
            'label',
            { class: 'pc-choice' },
            x('input', { type: 'radio', name: 'reason', value, 'data-test': 'report-reason' }),
            t(`report-reason-${value}`),
          ),
        ),
      ),
      x('label', { class: 'pc-note-label', for: 'pc-report-note' }, t('report-note', { max: MAX_NOTE_CHARS })),
      x('textarea', {
        class: 'pc-report-note',
        id: 'pc-report-note',
        'data-test': 'report-note',
        rows: '3',
        maxlength: String(MAX_NOTE_CHARS),
      }),
      x('p', { class: 'pc-evidence', 'data-test': 'report-evidence' }, t('report-evidence-live')),
      x('p', { class: 'pc-notice', 'data-test': 'report-error', role: 'alert', hidden: true }),
      x(
        'div',
        { class: 'pc-row' },
        x('button', { type: 'submit', class: 'pc-btn pc-danger', 'data-test': 'report-send' }, t('report-send')),
        x('button', { type: 'button', class: 'pc-btn', 'data-test': 'report-cancel' }, t('cancel-button')),
      ),
    ),
  );
}

/**
 * Runs the Report form and the ban notice inside a mounted chat. `deps`: the chat's `ui`
 * elements, `tr` (its translator), `doc`, `win`, `reportUrl`, `state()` (the chat's state), `sendFrame(frame)`,
 * `announce(text)`, `focus(el)`, `setNotice(text)`, `stop()` (end the chat or the connection,
 * as the visitor would), `onOpen()` (the form opened), `listen(target, type, fn)`.
 */
export function createReports(deps) {
  const { ui, doc, win, state, tr } = deps;
  const { t } = tr;
  /** The last chat's sealed evidence (from "ended"), while it may still be reported. */
  let later = null;
  /** Which report the open form makes: 'live' (over the socket) or 'later' (POST /report). */
  let mode = null;

  function updateButtons() {
    ui.reportLater.hidden = !(state() === 'closed' && later);
  }

  function open(which) {
    if (which === 'live' && state() !== 'chat') return;
    if (which === 'later' && !(state() === 'closed' && later)) return;
    mode = which;
    ui.reportForm.reset();
    ui.reportError.hidden = true;
    ui.reportEvidence.textContent = t(which === 'live' ? 'report-evidence-live' : 'report-evidence-later');
    deps.onOpen();
    ui.reportDialog.showModal();
    ui.reportDialog.querySelector('input[name=reason]')?.focus();
  }

  function showError(text) {
    ui.reportError.textContent = text;
    ui.reportError.hidden = false;
  }

  async function submit() {
    const reason = ui.reportForm.querySelector('input[name=reason]:checked')?.value;
    if (!reason) {
      showError(t('report-no-reason'));
      return;
    }
    const note = ui.reportNote.value.trim().slice(0, MAX_NOTE_CHARS);
    if (mode === 'live') {
      if (state() === 'chat' && deps.sendFrame({ type: 'report', reason, note })) ui.reportDialog.close();
      else showError(t('report-failed'));
      return;
    }
    const token = later;
    if (!token) return;
    const send = ui.reportForm.querySelector('[data-test=report-send]');
    send.disabled = true;
    try {
      // text/plain: a simple request, so an embed on another site needs no preflight.
      const res = await win.fetch(deps.reportUrl, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: JSON.stringify({ report: token, reason, note }),
      });
      const answer = await res.json().catch(() => ({}));
      if (res.ok || answer.error === 'already_reported') {
        later = null;
        ui.reportDialog.close();
        ui.reportDone.hidden = false;
        updateButtons();
        deps.announce(t('report-sent'));
        deps.focus(ui.startOver);
      } else {
        const own = typeof answer.error === 'string' && tr.has(`error-${answer.error}`);
        showError(own ? t(`error-${answer.error}`) : t('report-failed'));
      }
    } catch (err) {
      console.warn('pairchat: report not sent', err);
      showError(t('report-failed'));
    } finally {
      send.disabled = false;
    }
  }

  deps.listen(ui.report, 'click', () => open('live'));
  deps.listen(ui.reportLater, 'click', () => open('later'));
  deps.listen(ui.reportCancel, 'click', () => ui.reportDialog.close());
  deps.listen(ui.reportForm, 'submit', (ev) => {
    ev.preventDefault();
    submit();
  });

  return {
    /** Whether the form is open (Esc is then the form's). */
    isOpen: () => ui.reportDialog.open,
    /** The chat moved to `to`. */
    onState(to) {
      // A form for a chat that has ended has nothing left to report over.
      if (to !== 'chat' && mode === 'live' && ui.reportDialog.open) ui.reportDialog.close();
      if (to === 'connecting') {
        later = null;
        ui.reportDone.hidden = true;
      }
      updateButtons();
    },
    /** The chat ended ("ended"): `token` is what reports it afterwards (none after "reported"). */
    ended(token) {
      later = typeof token === 'string' && token ? token : null;
    },
    /** A banned visitor: no chat; the idle view says until when, why, and how to appeal. */
    banned(frame) {
      deps.stop();
      const { lines, appeal } = bannedNotice(frame, tr);
      deps.setNotice(lines.join(' '));
      if (appeal) {
        ui.notice.append(doc.createTextNode(` ${t('banned-appeal')} `));
        for (const part of linkParts(appeal)) {
          if (part.href) {
            const a = doc.createElement('a');
            Object.assign(a, { href: part.href, rel: LINK_REL, target: '_blank', className: 'pc-link' });
            a.textContent = part.text;
            ui.notice.append(a);
          } else {
            ui.notice.append(doc.createTextNode(part.text));
          }
        }
      }
      deps.announce(ui.notice.textContent);
    },
  };
}
