// Entry point of the pages served by pairchat itself: "/" and "/widget".
// Mounts the chat into the element marked [data-pairchat-mount] and talks to ws(s)://<this host>/ws.
import { mount } from './chat.js';
import { wsUrlFor } from './util.js';

const controller = mount({ wsUrl: wsUrlFor(window.location.href), root: document });
document.documentElement.classList.add('pc-js');
// For debugging from the console only; tests should use the data-test hooks.
window.pairchat = controller;
