// The Conversations page: the user's sessions (paginated), each opened in the chat page,
// ended, or shared by a link; with `?shared=<token>` it shows that shared conversation
// read-only instead, without any token.
//
// Everything a user or a model wrote is rendered with textContent, or as Markdown through
// Chatbox.renderMarkdown (sanitized); never as raw HTML.
'use strict';

(() => {
  const SESSION_KEY = 'chatbox.session';
  const PAGE_SIZE = 20;
  const $ = (id) => document.getElementById(id);
  const statusLine = $('status');
  const list = $('sessions');
  const links = new Map(); // session id -> share URL created on this page
  let offset = 0;
  let loading = false;

  const setStatus = (state, text) => Chatbox.setStatus(statusLine, state, text);
  const { element: el, button, localTime } = Chatbox;

  /** The message of a failed API reply, for the status line. */
  function failure(reply, what) {
    if (reply.status === 401) return { state: 'expired', text: 'Your sign-in is missing or has expired: open this page again with a new token.' };
    if (reply.status === 429) return { state: 'limited', text: `Too many requests: try again in ${reply.retryAfter || 1} s.` };
    const message = reply.body?.message || reply.body?.error || `HTTP ${reply.status}`;
    return { state: 'error', text: `${what} failed: ${message}` };
  }

  function showFailure(reply, what) {
    const { state, text } = failure(reply, what);
    setStatus(state, text);
  }

  function shareUrl(token) {
    return `${window.location.origin}${Chatbox.prefix}/ui/sessions?shared=${encodeURIComponent(token)}`;
  }

  // ---------------------------------------------------------------------------------------
  // The list

  function row(session) {
    const id = session.id || session.session_id;
    const name = session.name || 'New Chat';
    const item = el('li', 'card session');
    item.dataset.sessionId = id;
    item.dataset.state = session.is_active ? 'active' : 'ended';

    const head = el('div', 'card-head');
    const link = el('a', 'session-name', name);
    link.href = `${Chatbox.prefix}/ui/?session=${encodeURIComponent(id)}`;
    const badge = el('span', `badge ${session.is_active ? 'badge-active' : 'badge-ended'} state`, session.is_active ? 'active' : 'ended');
    head.append(link, badge);

    const facts = el('p', 'facts muted');
    const time = el('time', '', localTime(session.last_activity));
    if (session.last_activity) time.dateTime = session.last_activity;
    const count = Number(session.message_count) || 0;
    facts.append('Last activity ', time, ` · ${count} ${count === 1 ? 'message' : 'messages'}`);

    const actions = el('div', 'actions');
    if (session.is_active) {
      actions.append(button('End', `End the conversation ${name}`, () => endSession(id, name)));
    }
    const shareBox = el('div', 'share');
    actions.append(button('Share link', `Create a share link for ${name}`, () => createShare(id, name, shareBox)));
    item.append(head, facts, actions, shareBox);
    if (links.has(id)) showShare(id, name, shareBox, links.get(id));
    return item;
  }

  async function load() {
    if (loading) return;
    if (!Chatbox.token()) {
      setStatus('expired', 'No token: open this page with ?token=… or from the app.');
      $('list-view').hidden = true;
      return;
    }
    loading = true;
    setStatus('loading', 'Loading…');
    try {
      const reply = await Chatbox.api('GET', `/sessions?limit=${PAGE_SIZE}&offset=${offset}`);
      if (reply.status !== 200 || !reply.body) {
        showFailure(reply, 'Loading the conversations');
        return;
      }
      const sessions = Array.isArray(reply.body.sessions) ? reply.body.sessions : [];
      if (!sessions.length && offset > 0) {
        // The last page emptied (e.g. sessions went away): back to the previous one.
        offset = Math.max(0, offset - PAGE_SIZE);
        loading = false;
        await load();
        return;
      }
      list.replaceChildren(...sessions.map(row));
      $('list-view').hidden = false;
      $('empty').hidden = sessions.length > 0;
      const more = reply.body.truncated === true;
      $('pager').hidden = offset === 0 && !more;
      $('prev').disabled = offset === 0;
      $('next').disabled = !more;
      $('page-info').textContent = sessions.length
        ? `${offset + 1}–${offset + sessions.length}`
        : '';
      setStatus('ready', sessions.length ? `${sessions.length} conversation${sessions.length === 1 ? '' : 's'} shown` : 'No conversations');
    } catch (error) {
      setStatus('offline', `Cannot reach the service: ${error.message}`);
    } finally {
      loading = false;
    }
  }

  async function endSession(id, name) {
    if (!window.confirm(`End the conversation “${name}”? It will take no new messages.`)) return;
    setStatus('loading', 'Ending…');
    try {
      const reply = await Chatbox.api('POST', `/sessions/${encodeURIComponent(id)}/end`);
      if (reply.status !== 200) {
        showFailure(reply, 'Ending the conversation');
        return;
      }
      if (sessionStorage.getItem(SESSION_KEY) === id) sessionStorage.removeItem(SESSION_KEY);
      await load();
    } catch (error) {
      setStatus('offline', `Cannot reach the service: ${error.message}`);
    }
  }

  async function createShare(id, name, box) {
    setStatus('loading', 'Creating a share link…');
    try {
      const reply = await Chatbox.api('POST', `/sessions/${encodeURIComponent(id)}/share`);
      if (reply.status !== 200 || !reply.body?.share_token) {
        showFailure(reply, 'Creating the link');
        return;
      }
      const url = shareUrl(reply.body.share_token);
      links.set(id, { url, expires: reply.body.expires_at });
      showShare(id, name, box, links.get(id));
      setStatus('ready', 'Share link created.');
    } catch (error) {
      setStatus('offline', `Cannot reach the service: ${error.message}`);
    }
  }

  function showShare(id, name, box, link) {
    const inputId = `share-${id}`;
    const label = el('label', '', 'Share link');
    label.htmlFor = inputId;
    const input = el('input', 'share-url');
    input.id = inputId;
    input.type = 'text';
    input.readOnly = true;
    input.value = link.url;
    input.addEventListener('focus', () => input.select());
    const copy = button('Copy', `Copy the share link of ${name}`, async () => {
      try {
        await navigator.clipboard.writeText(link.url);
        copy.textContent = 'Copied';
      } catch {
        input.select();
        copy.textContent = 'Select and copy';
      }
    });
    const revoke = button('Revoke', `Revoke the share link of ${name}`, () => revokeShare(id, box));
    const note = el('p', 'muted small', link.expires ? `Valid until ${localTime(link.expires)}` : '');
    box.replaceChildren(label, input, copy, revoke, note);
  }

  async function revokeShare(id, box) {
    setStatus('loading', 'Revoking the link…');
    try {
      const reply = await Chatbox.api('DELETE', `/sessions/${encodeURIComponent(id)}/share`);
      if (reply.status !== 204 && reply.status !== 200) {
        showFailure(reply, 'Revoking the link');
        return;
      }
      links.delete(id);
      box.replaceChildren(el('p', 'muted small', 'Link revoked: it no longer works.'));
      setStatus('ready', 'Share link revoked.');
    } catch (error) {
      setStatus('offline', `Cannot reach the service: ${error.message}`);
    }
  }

  // ---------------------------------------------------------------------------------------
  // A shared conversation, read-only

  const LABELS = { user: 'User', ai: 'Assistant', admin: 'Support', system: 'System' };

  function messageItem(message) {
    const role = ['user', 'ai', 'admin', 'system'].includes(message.sender) ? message.sender : 'user';
    const item = el('li', 'message');
    item.dataset.role = role;
    if (message.seq) item.dataset.seq = String(message.seq);
    const who = el('span', 'who', LABELS[role]);
    if (message.timestamp) {
      const time = el('time', '', ` · ${localTime(message.timestamp)}`);
      time.dateTime = message.timestamp;
      who.append(time);
    }
    const content = el('div', 'content');
    let text = message.content ?? '';
    if (message.type === 'file_upload' || message.type === 'voice_message') {
      const file = message.metadata?.filename || message.file_id || 'file';
      text = `${text ? `${text}\n\n` : ''}📎 ${file}`;
    }
    if (role === 'ai' || role === 'admin') Chatbox.renderMarkdown(content, text);
    else content.textContent = text;
    item.append(who, content);
    return item;
  }

  async function loadShared(token) {
    $('nav').hidden = true;
    $('title').textContent = 'Shared conversation';
    document.title = 'Shared conversation – Chatbox';
    setStatus('loading', 'Loading…');
    try {
      const response = await fetch(`${Chatbox.prefix}/shared/${encodeURIComponent(token)}`, {
        credentials: 'omit', cache: 'no-store',
      });
      let body = null;
      try { body = await response.json(); } catch { body = null; }
      if (response.status === 404) {
        setStatus('not-found', 'This shared link was not found: it may have expired or been revoked.');
        return;
      }
      if (response.status !== 200 || !body) {
        const retry = Number(response.headers.get('Retry-After')) || 0;
        showFailure({ status: response.status, body, retryAfter: retry }, 'Loading the conversation');
        return;
      }
      $('shared-title').textContent = body.name || 'Conversation';
      const messages = Array.isArray(body.messages) ? body.messages : [];
      $('messages').replaceChildren(...messages.map(messageItem));
      if (!messages.length) $('messages').append(el('li', 'notice', 'This conversation has no messages.'));
      $('shared-view').hidden = false;
      setStatus('ready', body.has_more ? 'Read-only (the first messages are shown).' : 'Read-only');
    } catch (error) {
      setStatus('offline', `Cannot reach the service: ${error.message}`);
    }
  }

  // ---------------------------------------------------------------------------------------

  const shared = new URL(window.location.href).searchParams.get('shared');
  if (shared) {
    loadShared(shared);
    return;
  }
  $('new-chat').addEventListener('click', () => sessionStorage.removeItem(SESSION_KEY));
  $('refresh').addEventListener('click', () => load());
  $('prev').addEventListener('click', () => { offset = Math.max(0, offset - PAGE_SIZE); load(); });
  $('next').addEventListener('click', () => { offset += PAGE_SIZE; load(); });
  Chatbox.onToken(() => load());
  load();
})();
