// The chat page: one conversation over the service's WebSocket.
//
// - Answers render as they stream (Markdown, sanitized, re-rendered at most once a frame).
// - Every message is keyed by its `message_id` and, once stored, its `seq`: a frame seen
//   twice (a resume, another tab's echo) changes nothing, so a reload or a dropped network
//   in the middle of an answer shows the whole answer once.
// - A dropped socket reconnects with exponential backoff and jitter and resumes from the
//   highest `seq` seen; a message typed meanwhile waits and is sent with its
//   `client_message_id`, so a retry is stored once.
// - The session id lives in sessionStorage (and may come from `?session=`), so a reload
//   stays in the conversation; "New chat" starts another.
'use strict';

(() => {
  const SESSION_KEY = 'chatbox.session';
  const $ = (id) => document.getElementById(id);
  const list = $('messages');
  const statusLine = $('status');
  const prompt = $('prompt');
  const stopButton = $('stop');
  const modelSelect = $('model');
  const helpButton = $('help');
  const shareButton = $('share');
  const sharePanel = $('share-panel');
  const shareUrl = $('share-url');

  // `?session=` opens a conversation (`?session_id=` too, and `?new=1` starts one, as in
  // the earlier client's links); `?share_token=` is the earlier client's shared view.
  const address = new URL(window.location.href);
  const shareToken = address.searchParams.get('share_token');
  if (shareToken) {
    window.location.replace(`${Chatbox.prefix}/ui/sessions?shared=${encodeURIComponent(shareToken)}`);
    return;
  }
  const opened = address.searchParams.get('session') || address.searchParams.get('session_id');
  if (opened) sessionStorage.setItem(SESSION_KEY, opened);
  else if (address.searchParams.get('new') === '1') sessionStorage.removeItem(SESSION_KEY);

  let socket = null;
  let sessionId = sessionStorage.getItem(SESSION_KEY);
  let lastSeq = 0;
  let attempt = 0;
  let reconnectTimer = null;
  let final = false; // ended or token expired: no reconnecting
  const messages = new Map(); // message_id (or client id) -> {element, text, seq}
  const seenSeqs = new Set();
  const outbox = []; // frames typed while offline, sent on reconnect
  const answering = new Set(); // message_ids of answers streaming

  const setStatus = (state, text) => Chatbox.setStatus(statusLine, state, text);

  function remember(session) {
    if (!session || session === sessionId) return;
    sessionId = session;
    sessionStorage.setItem(SESSION_KEY, session);
  }

  function showSession() {
    if (sessionId) list.dataset.sessionId = sessionId;
  }

  function scrollDown() {
    const main = list.parentElement;
    if (main.scrollHeight - main.scrollTop - main.clientHeight < 200) main.scrollTop = main.scrollHeight;
  }

  const LABELS = { user: 'You', ai: 'Assistant', admin: 'Support', system: '' };

  /** The message element keyed `key`, made (in seq order when known) if new. */
  function messageElement(key, role, seq) {
    let entry = messages.get(key);
    if (!entry) {
      const element = document.createElement('li');
      element.className = 'message';
      element.dataset.role = role;
      element.dataset.messageId = key;
      const who = document.createElement('span');
      who.className = 'who';
      who.textContent = LABELS[role] ?? role;
      const content = document.createElement('div');
      content.className = 'content';
      element.append(who, content);
      entry = { element, content, text: '', frame: 0 };
      messages.set(key, entry);
      placeBySeq(element, seq);
    }
    if (seq) setSeq(entry, seq);
    return entry;
  }

  function setSeq(entry, seq) {
    // A stored message means the session exists: it can be shared.
    shareButton.disabled = false;
    entry.element.dataset.seq = String(seq);
    seenSeqs.add(seq);
    lastSeq = Math.max(lastSeq, seq);
  }

  /** Inserts `element` before the first message with a greater seq (else at the end). */
  function placeBySeq(element, seq) {
    if (seq) {
      for (const other of list.children) {
        const otherSeq = Number(other.dataset.seq || 0);
        if (otherSeq > seq) {
          list.insertBefore(element, other);
          return;
        }
      }
    }
    list.append(element);
    scrollDown();
  }

  function render(entry, markdown) {
    if (markdown) Chatbox.renderMarkdown(entry.content, entry.text);
    else entry.content.textContent = entry.text;
  }

  /** Re-renders a streaming answer at most once per animation frame. */
  function renderSoon(entry) {
    if (entry.frame) return;
    entry.frame = requestAnimationFrame(() => {
      entry.frame = 0;
      render(entry, true);
      scrollDown();
    });
  }

  function systemNote(text) {
    const element = document.createElement('li');
    element.className = 'message';
    element.dataset.role = 'system';
    element.textContent = text;
    list.append(element);
    scrollDown();
  }

  function updateStop() {
    stopButton.disabled = answering.size === 0 || !socket || socket.readyState !== WebSocket.OPEN;
  }

  function roleOf(frame) {
    if (frame.sender === 'admin') return 'admin';
    if (frame.sender === 'ai' || frame.type === 'ai_response' || frame.type === 'assistant') return 'ai';
    if (frame.sender === 'system') return 'system';
    return 'user';
  }

  /** A whole stored message (a replay or another socket's echo), shown once. */
  function storedMessage(frame) {
    if (frame.seq && seenSeqs.has(frame.seq) && messages.has(frame.message_id)) return;
    const key = frame.message_id || frame.client_message_id || `seq-${frame.seq}`;
    const pending = frame.client_message_id && messages.get(frame.client_message_id);
    const entry = pending || messageElement(key, roleOf(frame), frame.seq);
    if (frame.seq) setSeq(entry, frame.seq);
    entry.text = frame.content ?? '';
    const role = entry.element.dataset.role;
    if (role === 'ai') entry.element.dataset.streaming = 'false';
    render(entry, role !== 'user');
    if (frame.type === 'file_upload' || frame.type === 'voice_message') {
      showAttachment(entry, {
        name: frame.metadata?.filename || frame.file_id || 'file',
        url: frame.file_url,
        size: Number(frame.metadata?.size) || 0,
        type: frame.metadata?.type || '',
      });
    }
  }

  // Attachments: the name, and for a file this server keeps (P/files/…) a link that
  // fetches it with the token in `Authorization` and saves it from a blob: URL (the token
  // never goes into a URL). A picture of this server's is also shown, from a blob: URL
  // of the same fetch (the page's CSP allows `img-src blob:`), up to PREVIEW_MAX_BYTES.
  const FILES_PATH = `${Chatbox.prefix}/files/`;
  const PREVIEW_MAX_BYTES = 5 * 1024 * 1024;
  const PREVIEW_TYPES = ['image/png', 'image/jpeg'];
  const attachError = $('attach-error');
  const attachStatus = $('attach-status');

  function ownFileUrl(url) {
    if (typeof url !== 'string' || !url) return null;
    try {
      const parsed = new URL(url, window.location.origin);
      if (parsed.origin !== window.location.origin || !parsed.pathname.startsWith(FILES_PATH)) return null;
      return parsed.pathname + parsed.search;
    } catch {
      return null;
    }
  }

  function sizeText(bytes) {
    if (!bytes) return '';
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 102.4) / 10} KB`;
    return `${Math.round(bytes / (1024 * 102.4)) / 10} MB`;
  }

  function showError(text) {
    attachError.textContent = text;
  }

  /** The `error` of a refusal's JSON body, or `fallback`. */
  async function refusalText(response, fallback) {
    try {
      const body = await response.json();
      if (body && typeof body.error === 'string' && body.error) return body.error;
    } catch {
      // not JSON
    }
    return `${fallback} (HTTP ${response.status}).`;
  }

  async function download(url, name, link) {
    showError('');
    link.setAttribute('aria-busy', 'true');
    try {
      const response = await fetch(url, {
        headers: { Authorization: `Bearer ${Chatbox.token() ?? ''}` }, credentials: 'omit', cache: 'no-store',
      });
      if (!response.ok) {
        showError(await refusalText(response, `${name} could not be downloaded`));
        return;
      }
      const blobUrl = URL.createObjectURL(await response.blob());
      const save = document.createElement('a');
      save.href = blobUrl;
      save.download = name;
      save.rel = 'noopener';
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
    } catch {
      showError(`${name} could not be downloaded: the service is not reachable.`);
    } finally {
      link.removeAttribute('aria-busy');
    }
  }

  /** Appends the attachment `file` ({name, url, size, type}) to a message's content. */
  function showAttachment(entry, file) {
    const line = Chatbox.element('p', 'attachment');
    line.dataset.fileType = file.type;
    line.append('📎 ');
    const url = ownFileUrl(file.url);
    if (url) {
      const link = Chatbox.element('a', 'attachment-link', file.name);
      link.href = url;
      link.download = file.name;
      link.setAttribute('aria-label', `Download ${file.name}`);
      link.addEventListener('click', (event) => {
        event.preventDefault();
        download(url, file.name, link);
      });
      line.append(link);
    } else {
      line.append(Chatbox.element('span', 'attachment-name', file.name));
    }
    const size = sizeText(file.size);
    if (size) line.append(' ', Chatbox.element('span', 'attachment-size', `(${size})`));
    entry.content.append(line);
    if (url && PREVIEW_TYPES.includes(file.type) && Number(file.size) <= PREVIEW_MAX_BYTES) {
      preview(entry, url, file.name);
    }
  }

  /** Shows the picture at `url` (this server's) under its attachment line. */
  async function preview(entry, url, name) {
    try {
      const response = await fetch(url, {
        headers: { Authorization: `Bearer ${Chatbox.token() ?? ''}` }, credentials: 'omit',
      });
      if (!response.ok) return;
      const picture = document.createElement('img');
      picture.className = 'attachment-preview';
      picture.alt = name;
      picture.src = URL.createObjectURL(await response.blob());
      entry.content.append(picture);
    } catch {
      // The link still downloads it.
    }
  }

  function onAnswerChunk(frame) {
    const entry = messageElement(frame.message_id, 'ai', 0);
    const done = frame.metadata?.done === 'true';
    if (!done) {
      entry.element.dataset.streaming = 'true';
      answering.add(frame.message_id);
      entry.text += frame.content ?? '';
      renderSoon(entry);
    } else {
      if (frame.content) entry.text += frame.content;
      if (entry.frame) cancelAnimationFrame(entry.frame);
      entry.frame = 0;
      render(entry, true);
      entry.element.dataset.streaming = 'false';
      entry.element.dataset.finishReason = frame.metadata?.finish_reason ?? '';
      if (frame.seq) setSeq(entry, frame.seq);
      answering.delete(frame.message_id);
      if (frame.metadata?.finish_reason === 'cancelled') systemNote('Stopped.');
    }
    updateStop();
  }

  function onStatus(frame) {
    remember(frame.session_id);
    showSession();
    if (Array.isArray(frame.models) && frame.models.length) {
      modelSelect.replaceChildren(...frame.models.map((model) => new Option(model.name || model.id, model.id)));
      modelSelect.disabled = false;
    }
    if (frame.model_id) modelSelect.value = frame.model_id;
    const state = frame.metadata?.state;
    if (state === 'ended') {
      final = true;
      setStatus('ended', 'This conversation has ended. Start a new chat to go on.');
    } else if (state === 'help_requested') {
      systemNote('A person has been asked to join.');
    } else {
      attempt = 0;
      setStatus('connected', 'Connected');
      helpButton.disabled = false;
      flushOutbox();
    }
  }

  function onError(frame) {
    const error = frame.error || {};
    switch (error.code) {
      case 'TOO_MANY_REQUESTS': {
        const seconds = Math.max(1, Math.ceil((error.retry_after || 1000) / 1000));
        setStatus('limited', `Too many messages: wait ${seconds} s.`);
        setTimeout(() => { if (statusLine.dataset.state === 'limited') setStatus('connected', 'Connected'); }, seconds * 1000);
        break;
      }
      case 'TOKEN_EXPIRED':
        final = true;
        setStatus('expired', 'Your sign-in has expired. Reload the page with a new token.');
        break;
      case 'SESSION_ENDED':
        final = true;
        setStatus('ended', 'This conversation has ended. Start a new chat to go on.');
        break;
      default:
        systemNote(error.message || 'Something went wrong.');
    }
  }

  function onFrame(frame) {
    switch (frame.type) {
      case 'connection_status': onStatus(frame); break;
      case 'loading': {
        // A catch-up after a resume re-sends the answer so far: start it afresh.
        const entry = messageElement(frame.message_id, 'ai', 0);
        entry.text = '';
        entry.element.dataset.streaming = 'true';
        answering.add(frame.message_id);
        render(entry, true);
        updateStop();
        break;
      }
      case 'ai_response':
      case 'assistant':
        if (frame.metadata?.streaming === 'true' || answering.has(frame.message_id)) onAnswerChunk(frame);
        else storedMessage(frame);
        break;
      case 'message_ack': {
        const entry = messages.get(frame.client_message_id);
        if (entry) {
          messages.delete(frame.client_message_id);
          entry.element.dataset.messageId = frame.message_id;
          entry.element.dataset.pending = 'false';
          messages.set(frame.message_id, entry);
          setSeq(entry, frame.seq);
        }
        break;
      }
      case 'user_message':
      case 'user':
      case 'file_upload':
      case 'voice_message':
        storedMessage(frame);
        break;
      case 'admin_join':
        systemNote(`${frame.metadata?.admin_name || 'A person'} joined the conversation.`);
        break;
      case 'admin_leave':
        systemNote(`${frame.metadata?.admin_name || 'The person'} left; the assistant answers again.`);
        break;
      case 'typing_indicator':
        $('typing').hidden = frame.metadata?.typing !== 'true';
        break;
      case 'notification':
        if (frame.content) systemNote(frame.content);
        break;
      case 'error': onError(frame); break;
      default: break;
    }
  }

  function connect() {
    reconnectTimer = null;
    const token = Chatbox.token();
    if (!token) {
      final = true;
      setStatus('expired', 'No token: open this page with ?token=… or from the app.');
      return;
    }
    setStatus(attempt ? 'offline' : 'connecting', attempt ? 'Reconnecting…' : 'Connecting…');
    const query = {};
    if (sessionId) {
      query.session_id = sessionId;
      query.last_seq = String(lastSeq);
    }
    // The answers in progress are caught up from the server's copy.
    const ws = new WebSocket(Chatbox.socketUrl(query), ['chatbox.v1', `bearer.${token}`]);
    socket = ws;
    ws.addEventListener('message', (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame && typeof frame.type === 'string') onFrame(frame);
    });
    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      helpButton.disabled = true;
      updateStop();
      if (event.code === 1008) {
        final = true;
        setStatus('expired', 'Your sign-in has expired. Reload the page with a new token.');
      }
      if (!final) scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    attempt += 1;
    setStatus('offline', 'Offline: reconnecting…');
    // Exponential, capped at 30 s, with full jitter so clients do not return together.
    const ceiling = Math.min(30000, 500 * 2 ** Math.min(attempt - 1, 6));
    const wait = Math.random() * ceiling;
    reconnectTimer = setTimeout(connect, wait);
  }

  window.addEventListener('online', () => {
    if (!socket && !final) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      connect();
    }
  });
  window.addEventListener('offline', () => {
    if (socket) socket.close();
  });

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN && statusLine.dataset.state !== 'connecting') {
      socket.send(JSON.stringify(frame));
    } else {
      outbox.push(frame);
    }
  }

  function flushOutbox() {
    while (outbox.length && socket && socket.readyState === WebSocket.OPEN) {
      const frame = outbox.shift();
      if (frame.session_id === undefined && sessionId) frame.session_id = sessionId;
      socket.send(JSON.stringify(frame));
    }
  }

  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const content = prompt.value.trim();
    if (!content || final) return;
    const clientId = Chatbox.randomId();
    const entry = messageElement(clientId, 'user', 0);
    entry.element.dataset.pending = 'true';
    entry.text = content;
    render(entry, false);
    send({ type: 'user_message', content, session_id: sessionId ?? undefined, model_id: modelSelect.value || undefined, client_message_id: clientId });
    stopTyping();
    prompt.value = '';
    prompt.focus();
  });

  // Attach: the chosen file goes to P/uploads (multipart, the token in Authorization);
  // once stored, a `file_upload` frame with the typed text as its caption goes the way of
  // any message (the outbox when offline), so the conversation holds it once.
  const attachButton = $('attach');
  const attachInput = $('attach-file');

  attachButton.addEventListener('click', () => {
    if (!final) attachInput.click();
  });

  attachInput.addEventListener('change', async () => {
    const file = attachInput.files?.[0];
    attachInput.value = '';
    if (!file || final) return;
    showError('');
    attachButton.disabled = true;
    attachButton.setAttribute('aria-busy', 'true');
    attachStatus.textContent = `Uploading ${file.name}…`;
    let uploaded = null;
    try {
      const form = new FormData();
      form.append('file', file, file.name);
      const response = await fetch(`${Chatbox.prefix}/uploads`, {
        method: 'POST', body: form, headers: { Authorization: `Bearer ${Chatbox.token() ?? ''}` },
        credentials: 'omit', cache: 'no-store',
      });
      if (response.status === 201) uploaded = await response.json();
      else showError(await refusalText(response, `${file.name} could not be uploaded`));
    } catch {
      showError(`${file.name} could not be uploaded: the service is not reachable.`);
    } finally {
      attachStatus.textContent = '';
      attachButton.disabled = false;
      attachButton.removeAttribute('aria-busy');
    }
    if (!uploaded?.file_id) return;
    const caption = prompt.value.trim();
    const clientId = Chatbox.randomId();
    const entry = messageElement(clientId, 'user', 0);
    entry.element.dataset.pending = 'true';
    entry.text = caption;
    render(entry, false);
    showAttachment(entry, { name: uploaded.name || file.name, url: uploaded.file_url, size: uploaded.size, type: uploaded.type });
    send({
      type: 'file_upload', session_id: sessionId ?? undefined, file_id: uploaded.file_id,
      content: caption, client_message_id: clientId,
    });
    stopTyping();
    prompt.value = '';
    prompt.focus();
  });

  prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $('composer').requestSubmit();
    }
  });

  stopButton.addEventListener('click', () => {
    send({ type: 'stop', session_id: sessionId ?? undefined });
  });

  modelSelect.addEventListener('change', () => {
    send({ type: 'model_select', model_id: modelSelect.value, session_id: sessionId ?? undefined });
  });

  helpButton.addEventListener('click', () => {
    send({ type: 'help_request', session_id: sessionId ?? undefined });
  });

  // Typing: "true" at most every 3 s while keys are pressed, "false" after 4 s without.
  const TYPING_REPEAT_MS = 3000;
  const TYPING_IDLE_MS = 4000;
  let typingSentAt = 0;
  let typingIdle = null;

  function sendTyping(typing) {
    if (!sessionId || !socket || socket.readyState !== WebSocket.OPEN || shareButton.disabled) return;
    socket.send(JSON.stringify({ type: 'typing_indicator', session_id: sessionId, metadata: { typing: String(typing) } }));
  }

  prompt.addEventListener('input', () => {
    const now = Date.now();
    if (now - typingSentAt >= TYPING_REPEAT_MS) {
      typingSentAt = now;
      sendTyping(true);
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(() => {
      typingSentAt = 0;
      sendTyping(false);
    }, TYPING_IDLE_MS);
  });

  /** A message sent ends the typing it followed. */
  function stopTyping() {
    if (typingSentAt) {
      clearTimeout(typingIdle);
      typingSentAt = 0;
      sendTyping(false);
    }
  }

  // Share links: a read-only link to this conversation, replaced when made again.
  async function shareCall(method) {
    if (!sessionId) return null;
    const reply = await Chatbox.api(method, `/sessions/${encodeURIComponent(sessionId)}/share`);
    if (reply.status === 429) {
      setStatus('limited', `Too many requests: wait ${reply.retryAfter || 1} s.`);
      return null;
    }
    return reply;
  }

  shareButton.addEventListener('click', async () => {
    try {
      const reply = await shareCall('POST');
      if (!reply) return;
      if (reply.status !== 200 || !reply.body?.share_token) {
        systemNote(reply.body?.error || 'The share link could not be made.');
        return;
      }
      shareUrl.value = `${window.location.origin}${Chatbox.prefix}/ui/sessions?shared=${encodeURIComponent(reply.body.share_token)}`;
      sharePanel.hidden = false;
      shareUrl.focus();
      shareUrl.select();
    } catch {
      systemNote('The share link could not be made: the service is not reachable.');
    }
  });

  $('share-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(shareUrl.value);
      $('share-copy').textContent = 'Copied';
    } catch {
      shareUrl.select();
      $('share-copy').textContent = 'Press Ctrl+C';
    }
  });

  $('share-revoke').addEventListener('click', async () => {
    try {
      const reply = await shareCall('DELETE');
      if (!reply) return;
      if (reply.status !== 204) {
        systemNote(reply.body?.error || 'The share link could not be revoked.');
        return;
      }
      shareUrl.value = '';
      sharePanel.hidden = true;
      $('share-copy').textContent = 'Copy';
      systemNote('The share link no longer works.');
      shareButton.focus();
    } catch {
      systemNote('The share link could not be revoked: the service is not reachable.');
    }
  });

  $('new-chat').addEventListener('click', () => {
    sessionStorage.removeItem(SESSION_KEY);
    window.location.reload();
  });

  Chatbox.onToken(() => { if (!socket) { final = false; connect(); } });
  connect();
})();
