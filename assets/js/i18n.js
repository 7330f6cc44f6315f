// The chat's words in the visitor's language. The server compiles locales/<lang>/pairchat.ftl
// (Project Fluent) into { lang, messages } (src/i18n/compile.rs says the form) and gives it to
// the page: written into "/" and "/widget" as <script type="application/json" id="pairchat-i18n">,
// fetched from /i18n/<lang>.json by embed.js. This module only fills in variables and picks
// plural forms (Intl.PluralRules), as Fluent would; `cargo test i18n` checks that it agrees.
//
// To show a new string: add its key to the three catalogues (README, "Languages"), then
// t(<key>, { variable: value }) for text, or tn(...) where a variable is an element.

/**
 * @param {{ lang?: string, messages?: Record<string, unknown> } | null | undefined} catalogue
 */
export function translator(catalogue) {
  const lang = typeof catalogue?.lang === 'string' && catalogue.lang ? catalogue.lang : 'en';
  const messages = catalogue?.messages && typeof catalogue.messages === 'object' ? catalogue.messages : {};
  let plural;
  let number;
  try {
    plural = new Intl.PluralRules(lang);
    number = new Intl.NumberFormat(lang);
  } catch {
    plural = new Intl.PluralRules('en');
    number = new Intl.NumberFormat('en');
  }
  const warned = new Set();

  function pick(select, value) {
    const cases = select.c ?? {};
    if (typeof value === 'number') {
      for (const key of Object.keys(cases)) if (key !== '' && Number(key) === value) return cases[key];
      const category = plural.select(value);
      if (category in cases) return cases[category];
    } else if (typeof value === 'string' && Object.hasOwn(cases, value)) {
      return cases[value];
    }
    return cases[select.d];
  }

  /** Appends the parts of `pattern` to `out`: strings, and { name, value } for variables. */
  function walk(pattern, args, out) {
    if (typeof pattern === 'string') {
      out.push(pattern);
      return;
    }
    if (!Array.isArray(pattern)) return;
    for (const element of pattern) {
      if (typeof element === 'string') out.push(element);
      else if (element && typeof element.v === 'string') out.push({ name: element.v, value: args[element.v] });
      else if (element && typeof element.s === 'string') walk(pick(element, args[element.s]), args, out);
    }
  }

  /** The parts of a message; its id alone (and a warning) when the catalogue has none. */
  function parts(id, args = {}) {
    if (!Object.hasOwn(messages, id)) {
      if (!warned.has(id)) console.warn(`pairchat: no text "${id}" in the "${lang}" catalogue`);
      warned.add(id);
      return [id];
    }
    const out = [];
    walk(messages[id], args, out);
    return out;
  }

  function text(value) {
    if (typeof value === 'number') return number.format(value);
    if (value === undefined || value === null) return '';
    return String(value.textContent ?? value);
  }

  return {
    lang,
    /** Whether the catalogue has `id` (e.g. an error code's own text). */
    has: (id) => Object.hasOwn(messages, id),
    /** A message as text: for online-count and { count: 3 }, "3 человека в сети". */
    t(id, args = {}) {
      return parts(id, args)
        .map((p) => (typeof p === 'string' ? p : text(p.value)))
        .join('');
    },
    /**
     * A message as children for an element builder: strings, numbers formatted, and a variable
     * whose value is a DOM node in place. `wrap[name](text)` makes a variable's node instead
     * (e.g. the online count's number in its own element).
     */
    tn(id, args = {}, wrap = {}) {
      return parts(id, args).map((p) => {
        if (typeof p === 'string') return p;
        if (typeof wrap[p.name] === 'function') return wrap[p.name](text(p.value));
        if (p.value && typeof p.value === 'object' && 'nodeType' in p.value) return p.value;
        return text(p.value);
      });
    },
    /** Numbers the visitor's way for this language (counters). */
    number: (n) => number.format(n),
  };
}
