// What every Chatbox page shares: the path prefix, the token (taken from the address bar
// into sessionStorage at once, or handed over by an embedding page), calls to the HTTP
// API with it, and Markdown rendered through DOMPurify so that neither a model nor a
// user can inject markup, script or a `javascript:` link.
//
// The token never goes into a URL the page requests, into localStorage or a cookie: the
// API gets it in `Authorization`, the WebSocket in `Sec-WebSocket-Protocol`.
'use strict';

const Chatbox = (() => {
  const TOKEN_KEY = 'chatbox.token';
  const prefix = document.querySelector('meta[name="chatbox-prefix"]')?.content ?? '/chat';

  // A `?token=` leaves the address bar (and the history) before anything else runs.
  (function takeTokenFromAddress() {
    const url = new URL(window.location.href);
    const token = url.searchParams.get('token');
    if (token !== null) {
      url.searchParams.delete('token');
      window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
    }
  })();

  const token = () => sessionStorage.getItem(TOKEN_KEY);

  // An embedding page (an iframe's parent) may hand the token over; only from an origin
  // listed in <meta name="chatbox-embedders"> (space separated), never from any other.
  // Both message shapes are read: `chatbox-token`, and `token` (the earlier web client's,
  // which its embedding pages send in answer to `request_token`).
  const embedders = (document.querySelector('meta[name="chatbox-embedders"]')?.content ?? '')
    .split(/\s+/).filter(Boolean);
  const tokenListeners = [];
  window.addEventListener('message', (event) => {
    if (!embedders.includes(event.origin)) return;
    const data = event.data;
    const shape = data && (data.type === 'chatbox-token' || data.type === 'token');
    if (shape && typeof data.token === 'string' && data.token) {
      sessionStorage.setItem(TOKEN_KEY, data.token);
      tokenListeners.forEach((listener) => listener());
    }
  });

  // Framed without a token: ask the embedding page, as the earlier client did, but only
  // the origins allowed to answer (the question carries nothing, the answer a secret).
  if (!token() && window.parent !== window) {
    for (const origin of embedders) window.parent.postMessage({ type: 'request_token' }, origin);
  }

  /** The WebSocket URL of this service, with `query` (never the token). */
  function socketUrl(query) {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const search = new URLSearchParams(query).toString();
    return `${scheme}//${window.location.host}${prefix}/ws${search ? `?${search}` : ''}`;
  }

  /** A call to the HTTP API with the token; resolves to {status, body}. */
  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token() ?? ''}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(`${prefix}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store',
    });
    const text = await response.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
    return { status: response.status, body: parsed, retryAfter: Number(response.headers.get('Retry-After')) || 0 };
  }

  // Links open in a new tab without access to this one; DOMPurify already drops any
  // URL scheme but http(s), mailto and the like.
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A' && node.hasAttribute('href')) {
      node.setAttribute('target', '_blank');
      node.setAttribute('rel', 'noopener noreferrer nofollow');
    }
  });

  /** `markdown` as sanitized HTML. */
  function markdownToHtml(markdown) {
    const html = marked.parse(markdown, { gfm: true, breaks: true, async: false });
    return DOMPurify.sanitize(html, {
      USE_PROFILES: { html: true },
      FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'img'],
      FORBID_ATTR: ['style'],
    });
  }

  /** Renders `markdown` into `element`, with a copy button on each code block. */
  function renderMarkdown(element, markdown) {
    element.innerHTML = markdownToHtml(markdown);
    for (const pre of element.querySelectorAll('pre')) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'copy';
      button.textContent = 'Copy';
      button.setAttribute('aria-label', 'Copy the code');
      button.addEventListener('click', async () => {
        const code = pre.querySelector('code')?.textContent ?? pre.textContent;
        try {
          await navigator.clipboard.writeText(code);
          button.textContent = 'Copied';
        } catch {
          button.textContent = 'Copy failed';
        }
      });
      pre.append(button);
    }
  }

  /** Shows `text` in a status line, with `state` as its data-state (for styles and tests). */
  function setStatus(line, state, text) {
    line.dataset.state = state;
    line.textContent = text;
  }

  /** A new `tag` element with a class and text (as text: never parsed as markup). */
  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  /** A button showing `text`, labelled `label` for assistive technology, doing `handler`. */
  function button(text, label, handler) {
    const made = element('button', '', text);
    made.type = 'button';
    if (label) made.setAttribute('aria-label', label);
    made.addEventListener('click', handler);
    return made;
  }

  /** An API time as local date and time ('—' when absent). */
  function localTime(value) {
    if (!value) return '—';
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
  }

  /** A random id for a client_message_id. */
  function randomId() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  return {
    prefix, token, onToken: (listener) => tokenListeners.push(listener), socketUrl, api, renderMarkdown, randomId,
    setStatus, element, button, localTime,
  };
})();
