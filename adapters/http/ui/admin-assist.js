// The admin dashboard's view of one session it assists: the history, live frames over
// the WebSocket with the admin's token (resumed from the last seq after a drop), messages
// sent as support, and the release. Loaded before admin.js, which attaches it with the
// dashboard's own API gate and status line.
'use strict';

const ChatboxAssist = (() => {
  const $ = (id) => document.getElementById(id);
  const { element: el } = Chatbox;

  /**
   * Wires the view to the dashboard: `call` (the admin API gate, throwing `Limited` on a
   * 429), `messageOf` (a failed reply's text), `setStatus` (the page's status line) and
   * `refresh` (of the table and metrics). Returns `takeOver(id, name)`.
   */
  function attach({ call, Limited, messageOf, setStatus, refresh }) {

    const assist = {
      id: null,
      socket: null,
      lastSeq: 0,
      attempt: 0,
      timer: null,
      entries: new Map(), // message_id / client id -> {element, content, text}
      seqs: new Set(),
    };
    const LABELS = { user: 'User', ai: 'Assistant', admin: 'Support (you)', system: '' };
    const assistList = $('assist-messages');

    const setAssistStatus = (state, text) => Chatbox.setStatus($('assist-status'), state, text);

    function assistEntry(key, role, seq) {
      let entry = assist.entries.get(key);
      if (!entry) {
        const element = el('li', 'message');
        element.dataset.role = role;
        element.dataset.messageId = key;
        const content = el('div', 'content');
        element.append(el('span', 'who', LABELS[role] ?? role), content);
        entry = { element, content, text: '' };
        assist.entries.set(key, entry);
        assistList.append(element);
        assistList.scrollTop = assistList.scrollHeight;
      }
      if (seq) {
        entry.element.dataset.seq = String(seq);
        assist.seqs.add(seq);
        assist.lastSeq = Math.max(assist.lastSeq, seq);
      }
      return entry;
    }

    function renderEntry(entry) {
      const role = entry.element.dataset.role;
      if (role === 'ai' || role === 'admin') Chatbox.renderMarkdown(entry.content, entry.text);
      else entry.content.textContent = entry.text;
    }

    function assistNote(text) {
      const element = el('li', 'message', text);
      element.dataset.role = 'system';
      assistList.append(element);
      assistList.scrollTop = assistList.scrollHeight;
    }

    function senderRole(sender, type) {
      if (sender === 'admin') return 'admin';
      if (sender === 'ai' || type === 'ai_response' || type === 'assistant') return 'ai';
      if (sender === 'system') return 'system';
      return 'user';
    }

    /** A stored message (history, replay or live), shown once. */
    function storedMessage(message, type) {
      if (message.seq && assist.seqs.has(message.seq)) return;
      const key = message.message_id || message.client_message_id || `seq-${message.seq}`;
      const pending = message.client_message_id && assist.entries.get(message.client_message_id);
      const entry = pending || assistEntry(key, senderRole(message.sender, type), message.seq);
      if (pending && message.seq) assistEntry(message.client_message_id, 'admin', message.seq);
      let text = message.content ?? '';
      if (message.type === 'file_upload' || message.type === 'voice_message' || type === 'file_upload' || type === 'voice_message') {
        text = `${text ? `${text}\n\n` : ''}📎 ${message.metadata?.filename || message.file_id || 'file'}`;
      }
      entry.text = text;
      renderEntry(entry);
    }

    function onAssistFrame(frame) {
      switch (frame.type) {
        case 'connection_status':
          if (frame.metadata?.state === 'ended') {
            setAssistStatus('ended', 'The session has ended.');
            assistNote('The session has ended.');
          } else if (frame.metadata?.state === 'help_requested') {
            assistNote('The user asked for a person.');
          } else {
            assist.attempt = 0;
            setAssistStatus('connected', 'Connected: you answer instead of the model.');
          }
          break;
        case 'user_message':
        case 'user':
        case 'file_upload':
        case 'voice_message':
          storedMessage(frame, frame.type);
          break;
        case 'loading': {
          const entry = assistEntry(frame.message_id, 'ai', 0);
          entry.text = '';
          entry.element.dataset.streaming = 'true';
          renderEntry(entry);
          break;
        }
        case 'ai_response':
        case 'assistant': {
          if (frame.metadata?.streaming === 'true') {
            const entry = assistEntry(frame.message_id, 'ai', 0);
            entry.text += frame.content ?? '';
            if (frame.metadata?.done === 'true') {
              entry.element.dataset.streaming = 'false';
              if (frame.seq) assistEntry(frame.message_id, 'ai', frame.seq);
            } else entry.element.dataset.streaming = 'true';
            renderEntry(entry);
          } else storedMessage(frame, frame.type);
          break;
        }
        case 'message_ack': {
          const entry = assist.entries.get(frame.client_message_id);
          if (entry) {
            entry.element.dataset.pending = 'false';
            entry.element.dataset.messageId = frame.message_id;
            assist.entries.set(frame.message_id, entry);
            assistEntry(frame.message_id, 'admin', frame.seq);
          }
          break;
        }
        case 'admin_join':
          assistNote(`${frame.metadata?.admin_name || 'An admin'} joined.`);
          break;
        case 'admin_leave':
          assistNote(`${frame.metadata?.admin_name || 'The admin'} left.`);
          break;
        case 'typing_indicator':
          if (frame.metadata?.typing === 'true') setAssistStatus('connected', 'The user is typing…');
          else setAssistStatus('connected', 'Connected: you answer instead of the model.');
          break;
        case 'error': {
          const error = frame.error || {};
          if (error.code === 'CONFLICT') setAssistStatus('ended', 'You no longer assist this session.');
          else if (error.code === 'TOO_MANY_REQUESTS') setAssistStatus('limited', `Too many messages: wait ${Math.ceil((error.retry_after || 1000) / 1000)} s.`);
          else assistNote(error.message || 'Something went wrong.');
          break;
        }
        default:
          break;
      }
    }

    function connectAssist() {
      assist.timer = null;
      if (!assist.id) return;
      setAssistStatus(assist.attempt ? 'offline' : 'connecting', assist.attempt ? 'Reconnecting…' : 'Connecting…');
      const ws = new WebSocket(
        Chatbox.socketUrl({ session_id: assist.id, last_seq: String(assist.lastSeq) }),
        ['chatbox.v1', `bearer.${Chatbox.token()}`],
      );
      assist.socket = ws;
      ws.addEventListener('message', (event) => {
        if (assist.socket !== ws) return;
        let frame;
        try { frame = JSON.parse(event.data); } catch { return; }
        if (frame && typeof frame.type === 'string') onAssistFrame(frame);
      });
      ws.addEventListener('close', (event) => {
        if (assist.socket !== ws) return;
        assist.socket = null;
        if (!assist.id) return;
        if (event.code === 1008) {
          setAssistStatus('expired', 'The admin token has expired.');
          return;
        }
        assist.attempt += 1;
        setAssistStatus('offline', 'Offline: reconnecting…');
        const ceiling = Math.min(30000, 500 * 2 ** Math.min(assist.attempt - 1, 6));
        assist.timer = setTimeout(connectAssist, Math.random() * ceiling);
      });
    }

    function closeAssist() {
      const socket = assist.socket;
      assist.id = null;
      assist.socket = null;
      clearTimeout(assist.timer);
      if (socket) socket.close(1000);
      $('assist').hidden = true;
    }

    async function takeOver(id, name) {
      if (assist.id && assist.id !== id) {
        setStatus('error', 'Release the session you assist before taking over another.');
        return;
      }
      try {
        const reply = await call('POST', `/admin/takeover/${encodeURIComponent(id)}`);
        if (reply.status !== 200) {
          setStatus('error', messageOf(reply, 'Taking over'));
          return;
        }
        assist.id = id;
        assist.lastSeq = 0;
        assist.attempt = 0;
        assist.entries.clear();
        assist.seqs.clear();
        assistList.replaceChildren();
        $('assist-title').textContent = `Assisting: ${name || 'New Chat'}`;
        $('assist').dataset.sessionId = id;
        $('assist').hidden = false;
        setAssistStatus('connecting', 'Loading the history…');
        const history = await call('GET', `/admin/sessions/${encodeURIComponent(id)}?limit=1000`);
        if (history.status === 200 && history.body) {
          if (history.body.name) $('assist-title').textContent = `Assisting: ${history.body.name} (${history.body.user_id || ''})`;
          for (const message of history.body.messages || []) storedMessage(message, message.type);
        } else {
          assistNote(messageOf(history, 'Loading the history'));
        }
        if (assist.id === id) connectAssist();
        $('assist-prompt').focus();
        setStatus('ready', `You assist the session ${name || id}.`);
      } catch (error) {
        if (!(error instanceof Limited)) setStatus('offline', `Cannot reach the service: ${error.message}`);
      }
    }

    $('assist-composer').addEventListener('submit', (event) => {
      event.preventDefault();
      const content = $('assist-prompt').value.trim();
      if (!content || !assist.socket || assist.socket.readyState !== WebSocket.OPEN) {
        if (content) setAssistStatus('offline', 'Not connected: the message was not sent.');
        return;
      }
      const clientId = Chatbox.randomId();
      const entry = assistEntry(clientId, 'admin', 0);
      entry.element.dataset.pending = 'true';
      entry.text = content;
      renderEntry(entry);
      assist.socket.send(JSON.stringify({
        type: 'user_message', content, sender: 'admin', session_id: assist.id, client_message_id: clientId,
      }));
      $('assist-prompt').value = '';
      $('assist-prompt').focus();
    });

    $('assist-prompt').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $('assist-composer').requestSubmit();
      }
    });

    $('release').addEventListener('click', async () => {
      const id = assist.id;
      if (!id) return;
      try {
        const reply = await call('POST', `/admin/release/${encodeURIComponent(id)}`);
        if (reply.status !== 200) {
          setStatus('error', messageOf(reply, 'Releasing'));
          return;
        }
        closeAssist();
        setStatus('ready', 'Released: the model answers the user again.');
        refresh({ metrics: false });
      } catch (error) {
        if (!(error instanceof Limited)) setStatus('offline', `Cannot reach the service: ${error.message}`);
      }
    });

    return { takeOver };
  }

  return { attach };
})();
