// Interests on the idle view: up to five tags a visitor types (Enter or a comma adds one; each
// has its own Remove button), and whether to talk to anyone when nobody shares them. Kept for
// the browser session (sessionStorage) and across Start over; sent with every request, with
// the page's language (<html lang>).
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
 * @returns {string}
 */
export function foundText(common) {
  const tags = Array.isArray(common) ? common.filter((t) => typeof t === 'string') : [];
  return tags.length > 0 ? `Stranger found — say hi! You both like: ${tags.join(', ')}` : 'Stranger found — say hi!';
}

/**
 * The page's language for the request: <html lang>, "en" when it says nothing.
 * @param {Document} doc
 */
export function pageLang(doc) {
  const lang = doc?.documentElement?.lang;
  return typeof lang === 'string' && lang.trim() !== '' ? lang.trim() : 'en';
}

/**
 * The interests block of the idle view.
 * @param {(tag: string, attrs: object, ...children: any[]) => HTMLElement} x
 */
export function renderInterests(x) {
  return x(
    'fieldset',
    { class: 'pc-interests', 'data-test': 'interests' },
    x('legend', { class: 'pc-interests-legend' }, 'Your interests (optional)'),
    x('ul', { class: 'pc-tags', 'data-test': 'interest-list', 'aria-label': 'Your interests' }),
    x(
      'div',
      { class: 'pc-tag-entry' },
      x('input', {
        type: 'text',
        class: 'pc-tag-input',
        id: 'pc-interest-input',
        'data-test': 'interest-input',
        'aria-label': 'Add an interest',
        'aria-describedby': 'pc-interest-hint',
        placeholder: 'e.g. music',
        maxlength: '64',
        autocomplete: 'off',
        enterkeyhint: 'done',
      }),
      x('button', { type: 'button', class: 'pc-btn pc-small', 'data-test': 'interest-add' }, 'Add'),
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
      ' Talk to a random stranger if nobody shares them',
    ),
  );
}

/**
 * Wires the interests block inside `el` (the chat root).
 * @param {HTMLElement} el
 * @param {Window} win
 * @returns {{ request(frame: object): object, tags(): string[] }}
 */
export function attachInterests(el, win) {
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
      for (const t of kept) {
        const tag = typeof t === 'string' ? normalizeTag(t) : null;
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
    return n === 0
      ? 'That is 5 — the most you can add.'
      : `Add up to ${n} more; we look for someone who shares one.`;
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
        remove.setAttribute('aria-label', `Remove ${tag}`);
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
        say(`An interest is 1 to ${MAX_TAG_CHARS} characters.`);
        return;
      }
      if (tags.includes(tag)) continue;
      if (tags.length >= MAX_INTERESTS) {
        say('That is 5 — the most you can add.');
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
    tags = tags.filter((t) => t !== tag);
    save();
    draw();
    say(`Removed ${tag}. ${left()}`);
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
  say(tags.length > 0 ? left() : 'Add up to 5; we look for someone who shares one.');

  return {
    tags: () => [...tags],
    /** `frame` (a request) with the interests, the fallback choice and the page's language. */
    request(frame) {
      // What is still typed in the box counts too, once the visitor starts.
      if (input.value.trim() !== '') addFrom(input.value);
      const out = { ...frame, lang: pageLang(doc) };
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
