// Entry point of the pages served by pairchat itself: "/" and "/widget".
// Mounts the chat into the element marked [data-pairchat-mount] and talks to ws(s)://<this host>/ws.
// The chat's words are the catalogue the server wrote into the page (#pairchat-i18n), in the
// language it chose (?lang=, the language switch's cookie, else Accept-Language).
// `?theme=light|dark` (for the iframe widget) overrides the visitor's colour-scheme setting.
import { mount } from './chat.js';
import { themeOf, wsUrlFor } from './util.js';

function catalogue() {
  try {
    return JSON.parse(document.getElementById('pairchat-i18n')?.textContent ?? 'null');
  } catch (err) {
    console.warn('pairchat: the page has no readable catalogue', err);
    return null;
  }
}

const theme = themeOf(new URLSearchParams(window.location.search).get('theme'));
if (theme) document.documentElement.dataset.theme = theme;
const controller = mount({ wsUrl: wsUrlFor(window.location.href), root: document, theme, i18n: catalogue() });
document.documentElement.classList.add('pc-js');
// For debugging from the console only; tests should use the data-test hooks.
window.pairchat = controller;
