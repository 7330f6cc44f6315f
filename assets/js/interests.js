// Interests on the idle view: up to five tags a visitor types (Enter or a comma adds one; each
// has its own Remove button), and whether to talk to anyone when nobody shares them. Kept for
// the browser session (sessionStorage) and across Start over; sent with every request, with
// the chat's language (the translator's). Every word comes from the catalogues (i18n.js).
//
// Test hooks (inside the chat root):
//   interests            the fieldset
//   interest-input       the text box;  interest-add  its Add button
//   interest-list        the tags (<ul>); interest  one tag (<li>, data-tag="music")
//     interest-remove      its Remove button (aria-label "Remove music")
//   interest-hint        the line under the box (how many more, or why one was refused)
//   interest-fallback    the checkbox "Talk to a random stranger if nobody shares them"

/** As many as the server takes, and as long. */
export const MAX_INTERESTS = 5;
export const MAX_TAG_CHARS = 32;

const STORE_TAGS = 'pairchat.interests';
const STORE_FALLBACK = 'pairchat.fallback';

/**
 * A tag as the server keeps it: NFC, lower case, trimmed, inner whitespace one space; null when
 * it is empty, too long or holds a control character.
 * @param {string} raw
 * @returns {string | null}
 */
export function normalizeTag(raw) {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/.test(raw)) return null;
  const tag = raw.normalize('NFC').toLowerCase().trim().split(/\s+/u).join(' ').normalize('NFC');
  const chars = [...tag].length;
  return chars >= 1 && chars <= MAX_TAG_CHARS ? tag : null;
}

/**
 * The first system line of a chat: with the interests both gave, when there are any.
 * @param {unknown} common  the response's `common`
 * @param {{ t(id: string, args?: object): string }} tr  the translator (i18n.js)
 * @returns {string}
 */
export function foundText(common, tr) {
  const tags = Array.isArray(common) ? common.filter((k) => typeof k === 'string') : [];
  return tags.length > 0 ? tr.t('found-common', { tags: tags.join(', ') }) : tr.t('found');
}

/**
 * The interests block of the idle view.
 * @param {(tag: string, attrs: object, ...children: any[]) => HTMLElement} x
 * @param {(id: string, args?: object) => string} t  the translator's t
 */
export function renderInterests(x, t) {
  return x(
    'fieldset',
    { class: 'pc-interests', 'data-test': 'interests' },
    x('legend', { class: 'pc-interests-legend' }, t('interests-legend')),
    x('ul', { class: 'pc-tags', 'data-test': 'interest-list', 'aria-label': t('interests-list-label') }),
    x(
      'div',
      { class: 'pc-tag-entry' },
      x('input', {
        type: 'text',
        class: 'pc-tag-input',
        id: 'pc-interest-input',
        'data-test': 'interest-input',
        'aria-label': t('interests-input-label'),
        'aria-describedby': 'pc-interest-hint',
        placeholder: t('interests-input-placeholder'),
        maxlength: '64',
        autocomplete: 'off',
        enterkeyhint: 'done',
      }),
      x('button', { type: 'button', class: 'pc-btn pc-small', 'data-test': 'interest-add' }, t('interests-add')),
    ),
    x(
      'p',
      { class: 'pc-interest-hint', id: 'pc-interest-hint', 'data-test': 'interest-hint', 'aria-live': 'polite' },
      '',
    ),
    x(
      'label',
      { class: 'pc-fallback' },
      x('input', { type: 'checkbox', 'data-test': 'interest-fallback', checked: true }),
      ' ',
      t('interests-fallback'),
    ),
  );
}

/**
 * Wires the interests block inside `el` (the chat root).
 * @param {HTMLElement} el
 * @param {Window} win
 * @param {{ lang: string, t(id: string, args?: object): string }} tr  the translator (i18n.js)
 * @returns {{ request(frame: object): object, tags(): string[] }}
 */
export function attachInterests(el, win, tr) {
  const t = tr.t;
  const doc = el.ownerDocument;
  const $ = (name) => el.querySelector(`[data-test="${name}"]`);
  const list = $('interest-list');
  const input = $('interest-input');
  const add = $('interest-add');
  const hint = $('interest-hint');
  const fallback = $('interest-fallback');
  const store = storage(win);

  let tags = [];
  try {
    const kept = JSON.parse(store.get(STORE_TAGS) ?? '[]');
    if (Array.isArray(kept)) {
      for (const k of kept) {
        const tag = typeof k === 'string' ? normalizeTag(k) : null;
        if (tag && !tags.includes(tag) && tags.length < MAX_INTERESTS) tags.push(tag);
      }
    }
  } catch {
    tags = [];
  }
  fallback.checked = store.get(STORE_FALLBACK) !== 'false';

  function save() {
    store.set(STORE_TAGS, JSON.stringify(tags));
    store.set(STORE_FALLBACK, fallback.checked ? 'true' : 'false');
  }

  function say(text) {
    hint.textContent = text;
  }

  function left() {
    const n = MAX_INTERESTS - tags.length;
    return n === 0 ? t('interests-hint-full', { max: MAX_INTERESTS }) : t('interests-hint-left', { count: n });
  }

  function draw() {
    list.replaceChildren(
      ...tags.map((tag) => {
        const li = doc.createElement('li');
        li.className = 'pc-tag';
        li.dataset.test = 'interest';
        li.dataset.tag = tag;
        const name = doc.createElement('span');
        name.textContent = tag;
        const remove = doc.createElement('button');
        remove.type = 'button';
        remove.className = 'pc-tag-remove';
        remove.dataset.test = 'interest-remove';
        remove.setAttribute('aria-label', t('interests-remove-label', { tag }));
        remove.textContent = '×';
        remove.addEventListener('click', () => removeTag(tag));
        li.append(name, remove);
        return li;
      }),
    );
    list.hidden = tags.length === 0;
    const full = tags.length >= MAX_INTERESTS;
    input.disabled = full;
    add.disabled = full;
    fallback.closest('label').hidden = tags.length === 0;
  }

  function addFrom(text) {
    const parts = text.split(',').filter((p) => p.trim() !== '');
    if (parts.length === 0) return;
    for (const part of parts) {
      const tag = normalizeTag(part);
      if (tag === null) {
        say(t('interests-hint-bad', { max: MAX_TAG_CHARS }));
        return;
      }
      if (tags.includes(tag)) continue;
      if (tags.length >= MAX_INTERESTS) {
        say(t('interests-hint-full', { max: MAX_INTERESTS }));
        break;
      }
      tags.push(tag);
    }
    input.value = '';
    save();
    draw();
    say(left());
  }

  function removeTag(tag) {
    tags = tags.filter((k) => k !== tag);
    save();
    draw();
    say(t('interests-removed', { tag, rest: left() }));
    // Keyboard users stay in the block: on the next tag's Remove, or the box.
    const next = list.querySelector('[data-test=interest-remove]');
    (next ?? input).focus();
  }

  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ',') {
      ev.preventDefault();
      // Not the chat's own Enter/Esc handling: this box is ours.
      ev.stopPropagation();
      addFrom(input.value);
    } else if (ev.key === 'Backspace' && input.value === '' && tags.length > 0) {
      removeTag(tags[tags.length - 1]);
    } else if (ev.key === 'Escape' && input.value !== '') {
      // Clears the box; with nothing in it, Esc starts a chat as anywhere on the idle view.
      ev.stopPropagation();
      input.value = '';
    }
  });
  add.addEventListener('click', () => {
    addFrom(input.value);
    input.focus();
  });
  fallback.addEventListener('change', save);
  draw();
  say(tags.length > 0 ? left() : t('interests-hint-start', { max: MAX_INTERESTS }));

  return {
    tags: () => [...tags],
    /** `frame` (a request) with the interests, the fallback choice and the page's language. */
    request(frame) {
      // What is still typed in the box counts too, once the visitor starts.
      if (input.value.trim() !== '') addFrom(input.value);
      const out = { ...frame, lang: tr.lang };
      if (tags.length > 0) {
        out.interests = [...tags];
        out.fallback = fallback.checked;
      }
      return out;
    },
  };
}

/** sessionStorage, or nothing where it cannot be used (a sandboxed iframe, privacy modes). */
function storage(win) {
  let s = null;
  try {
    s = win.sessionStorage;
  } catch {
    s = null;
  }
  return {
    get(key) {
      try {
        return s ? s.getItem(key) : null;
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        if (s) s.setItem(key, value);
      } catch {
        /* full or refused: kept for this page only */
      }
    },
  };
}
