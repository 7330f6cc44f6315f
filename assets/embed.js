/*
 * pairchat embed: put the chat on any site.
 *
 *   <div id="pairchat"></div>
 *   <script src="https://HOST/embed.js" data-target="#pairchat" data-theme="auto" data-lang="auto"></script>
 *
 * data-theme: "light" or "dark" to match the host page; "auto" (the default) follows the
 * visitor's device setting.
 * data-lang: "en", "ru" or "zh" to match the host page; "auto" (the default) follows the
 * visitor's browser (its Accept-Language). The chat's words come from https://HOST/i18n/<lang>.json.
 * The chat is mounted in a Shadow DOM attached to the target (so neither side's CSS leaks into
 * the other), styled by https://HOST/assets/css/chat.css loaded inside the shadow root, and talks
 * to wss://HOST/ws (ws:// when embed.js itself came over http). HOST is taken from this script's
 * own src. The widget's size is the target's: give it a height (default 32em), e.g.
 *   #pairchat { height: 480px; }
 *
 * This is a classic script (document.currentScript is null in modules); it loads the chat module
 * with a dynamic import(), which is a CORS request: HOST serves /assets/ with
 * Access-Control-Allow-Origin.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.src) {
    console.warn('pairchat: embed.js must be loaded with a plain <script src="…/embed.js">');
    return;
  }
  var base = new URL(script.src, document.baseURI);
  var origin = base.origin;
  var wsUrl = (base.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + base.host + '/ws';
  var selector = script.getAttribute('data-target') || '#pairchat';
  var theme = script.getAttribute('data-theme');
  var lang = String(script.getAttribute('data-lang') || 'auto').trim().toLowerCase();
  if (['en', 'ru', 'zh'].indexOf(lang) < 0) lang = 'auto';
  // The catalogue, asked for at once (with the module and the stylesheet).
  var catalogue = fetch(origin + '/i18n/' + lang + '.json', { credentials: 'omit' }).then(function (r) {
    if (!r.ok) throw new Error('HTTP ' + r.status + ' for the catalogue');
    return r.json();
  });
  catalogue.catch(function () {}); // reported by fail(), once the target exists

  function fail(shadow, err, messages) {
    console.warn('pairchat: the chat could not be loaded', err);
    var p = document.createElement('p');
    var said = messages && messages['embed-failed'];
    // Without a catalogue (the server is unreachable) there are no words but these.
    p.textContent = typeof said === 'string' ? said : 'The chat could not be loaded. Please try again later.';
    shadow.append(p);
  }

  function attach(target) {
    try {
      return target.attachShadow({ mode: 'open' });
    } catch (err) {
      // Not every element can host a shadow root (or it already has one): use a child div.
      var holder = document.createElement('div');
      target.append(holder);
      return holder.attachShadow({ mode: 'open' });
    }
  }

  function start() {
    var target = document.querySelector(selector);
    if (!target) {
      console.warn('pairchat: no element matches data-target ' + JSON.stringify(selector));
      return;
    }
    if (target.hasAttribute('data-pairchat-embedded')) return; // the script was included twice
    target.setAttribute('data-pairchat-embedded', '');
    var shadow = attach(target);

    var link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = origin + '/assets/css/chat.css';
    var mountPoint = document.createElement('div');
    mountPoint.className = 'pc-host';
    shadow.append(link, mountPoint);

    // Mount once the stylesheet is in (no flash of unstyled chat), but never wait forever.
    var cssReady = new Promise(function (resolve) {
      link.addEventListener('load', resolve);
      link.addEventListener('error', resolve);
      setTimeout(resolve, 5000);
    });
    var messages = null;
    Promise.all([
      import(origin + '/assets/js/chat.js'),
      catalogue.then(function (c) {
        messages = c && c.messages;
        return c;
      }),
      cssReady,
    ])
      .then(function (loaded) {
        var controller = loaded[0].mount({
          wsUrl: wsUrl,
          root: shadow,
          container: mountPoint,
          theme: theme,
          i18n: loaded[1],
        });
        target.pairchat = controller;
      })
      .catch(function (err) {
        fail(shadow, err, messages);
      });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
