// The admin dashboard: metrics over a period, the sessions with every filter, sort and
// page the admin API offers, a user's sessions, and taking a session over (history, live
// frames over the WebSocket, messages sent as support, release).
//
// The admin routes are rate limited per admin (20 a minute by default): an automatic
// refresh makes one table and one metrics request every 15 s (8 a minute), only while the
// tab is visible and not paused; a 429 stops every request until its Retry-After has
// passed. Everything a user or a model wrote is rendered with textContent, or as Markdown
// through Chatbox.renderMarkdown (sanitized).
'use strict';

(() => {
  const REFRESH_MS = 15000;
  const $ = (id) => document.getElementById(id);
  const statusLine = $('status');
  const tbody = $('sessions');

  const view = {
    sortBy: 'start_time',
    sortOrder: 'desc',
    offset: 0,
    filters: {},
    user: null, // user id whose sessions are shown (the users route), or null
  };
  let paused = false;
  let refreshTimer = null;
  let lastRefresh = 0;
  let backoffUntil = 0;
  let refreshing = false;
  let queued = null; // a refresh asked for while one runs

  const setStatus = (state, text) => Chatbox.setStatus(statusLine, state, text);
  const { element: el, button, localTime } = Chatbox;

  function duration(seconds) {
    const s = Math.max(0, Math.round(Number(seconds) || 0));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  // ---------------------------------------------------------------------------------------
  // Calls, within the rate limit

  class Limited extends Error {}

  /** An admin API call; a 429 starts the back-off and throws `Limited`. */
  async function call(method, path, body) {
    const wait = backoffUntil - Date.now();
    if (wait > 0) {
      setStatus('limited', `Rate limited: waiting ${Math.ceil(wait / 1000)} s before asking again.`);
      throw new Limited();
    }
    const reply = await Chatbox.api(method, path, body);
    if (reply.status === 429) {
      const seconds = Math.max(1, reply.retryAfter || Math.ceil((reply.body?.retry_after_ms || 1000) / 1000));
      backoffUntil = Date.now() + seconds * 1000;
      setStatus('limited', `Too many requests: the dashboard waits ${seconds} s (Retry-After).`);
      scheduleRefresh(seconds * 1000 + 250);
      throw new Limited();
    }
    if (reply.status === 401) {
      setStatus('expired', 'The admin token is missing or has expired: open this page again with ?token=….');
      stopRefreshing();
      throw new Limited();
    }
    if (reply.status === 403) {
      setStatus('error', 'This token has no admin role.');
      stopRefreshing();
      throw new Limited();
    }
    return reply;
  }

  function messageOf(reply, what) {
    return `${what} failed: ${reply.body?.message || reply.body?.error || `HTTP ${reply.status}`}`;
  }

  // ---------------------------------------------------------------------------------------
  // Metrics

  const METRICS = [
    ['total_sessions', 'Sessions'],
    ['active_sessions', 'Active'],
    ['help_requested_sessions', 'Help requested'],
    ['admin_assisted_sessions', 'Admin assisted'],
    ['total_messages', 'Messages'],
    ['total_tokens', 'Tokens'],
    ['avg_response_time_ms', 'Average response', 'ms'],
    ['max_response_time_ms', 'Slowest response', 'ms'],
    ['connected_sockets', 'Connected sockets (now)'],
    ['live_sessions', 'Live sessions (now)'],
  ];

  function rangeQuery() {
    const range = $('range').value;
    if (range === 'custom') {
      const from = $('range-from').value;
      const to = $('range-to').value;
      const query = new URLSearchParams();
      if (from) query.set('start_time', new Date(from).toISOString());
      if (to) query.set('end_time', new Date(to).toISOString());
      return query;
    }
    const end = new Date();
    const start = new Date(end.getTime() - Number(range) * 1000);
    return new URLSearchParams({ start_time: start.toISOString(), end_time: end.toISOString() });
  }

  async function loadMetrics() {
    const reply = await call('GET', `/admin/metrics?${rangeQuery()}`);
    if (reply.status !== 200 || !reply.body) {
      setStatus('error', messageOf(reply, 'Loading the metrics'));
      return false;
    }
    const cards = METRICS.map(([key, label, unit]) => {
      const card = el('div', 'metric');
      card.dataset.metric = key;
      const value = Number(reply.body[key] ?? 0);
      card.append(el('dt', '', label), el('dd', '', `${value.toLocaleString()}${unit ? ` ${unit}` : ''}`));
      return card;
    });
    $('metrics').replaceChildren(...cards);
    return true;
  }

  // ---------------------------------------------------------------------------------------
  // Sessions table

  function tableQuery() {
    const query = new URLSearchParams();
    if (!view.user) {
      for (const [key, value] of Object.entries(view.filters)) if (value) query.set(key, value);
    }
    query.set('limit', $('f-limit').value);
    query.set('offset', String(view.offset));
    query.set('sort_by', view.sortBy);
    query.set('sort_order', view.sortOrder);
    return query;
  }

  function row(session) {
    const id = session.id || session.session_id;
    const tr = document.createElement('tr');
    tr.dataset.sessionId = id;
    if (session.help_requested) tr.classList.add('help');

    const nameCell = el('td', 'name');
    nameCell.append(el('span', 'session-name', session.name || 'New Chat'));
    if (session.help_requested) nameCell.append(' ', el('span', 'badge badge-help', 'needs help'));
    nameCell.append(el('span', 'muted small id', id));

    const userCell = el('td');
    userCell.append(button(session.user_id, `Show the sessions of ${session.user_id}`, () => showUser(session.user_id)));
    userCell.firstChild.className = 'link';

    const stateCell = el('td');
    stateCell.append(el('span', `badge ${session.is_active ? 'badge-active' : 'badge-ended'}`, session.is_active ? 'active' : 'ended'));
    if (session.admin_assisted) {
      stateCell.append(' ', el('span', 'badge', session.assisting_admin_name ? `assisted by ${session.assisting_admin_name}` : 'assisted'));
    }

    // The buttons sit in a box of their own: a flex cell would stop being a table cell.
    const actions = el('td');
    const box = el('div', 'actions');
    actions.append(box);
    if (session.is_active) {
      box.append(button('Take over', `Take over the session ${session.name || id}`, () => takeOver(id, session.name)));
    }
    tr.append(
      nameCell, userCell, stateCell,
      el('td', '', localTime(session.start_time)),
      el('td', '', localTime(session.last_activity)),
      el('td', '', session.end_time ? localTime(session.end_time) : '—'),
      el('td', 'num', duration(session.duration)),
      el('td', 'num', String(session.message_count ?? 0)),
      el('td', 'num', String(session.total_tokens ?? 0)),
      actions,
    );
    return tr;
  }

  async function loadTable() {
    const path = view.user
      ? `/admin/users/${encodeURIComponent(view.user)}/sessions?${tableQuery()}`
      : `/admin/sessions?${tableQuery()}`;
    const reply = await call('GET', path);
    if (reply.status !== 200 || !reply.body) {
      setStatus('error', messageOf(reply, 'Loading the sessions'));
      return false;
    }
    const sessions = Array.isArray(reply.body.sessions) ? reply.body.sessions : [];
    tbody.replaceChildren(...sessions.map(row));
    if (!sessions.length) {
      const tr = document.createElement('tr');
      const td = el('td', 'empty', 'No sessions match.');
      td.colSpan = 10;
      tr.append(td);
      tbody.append(tr);
    }
    const total = Number(reply.body.total ?? NaN);
    const limit = Number($('f-limit').value);
    const shown = sessions.length ? `${view.offset + 1}–${view.offset + sessions.length}` : '0';
    $('page-info').textContent = Number.isFinite(total) ? `${shown} of ${total}` : shown;
    $('prev').disabled = view.offset === 0;
    $('next').disabled = Number.isFinite(total) ? view.offset + sessions.length >= total : sessions.length < limit;
    $('sessions-title').textContent = view.user ? `Sessions of ${view.user}` : 'Sessions';
    $('table-caption').textContent = $('sessions-title').textContent;
    $('back-to-all').hidden = !view.user;
    $('filters').hidden = Boolean(view.user);
    const waiting = sessions.filter((s) => s.help_requested && s.is_active).length;
    $('table-note').textContent = waiting ? `${waiting} active session${waiting === 1 ? '' : 's'} on this page asked for a person.` : '';
    return true;
  }

  function showSort() {
    for (const th of document.querySelectorAll('th[data-sort]')) {
      if (th.dataset.sort === view.sortBy) th.setAttribute('aria-sort', view.sortOrder === 'asc' ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Refreshing

  async function refresh({ table = true, metrics = true } = {}) {
    if (refreshing) {
      queued = { table: table || Boolean(queued?.table), metrics: metrics || Boolean(queued?.metrics) };
      return;
    }
    if (!Chatbox.token()) {
      setStatus('expired', 'No token: open this page with ?token=<admin token>.');
      return;
    }
    refreshing = true;
    lastRefresh = Date.now();
    setStatus('loading', 'Refreshing…');
    try {
      let ok = true;
      if (table) ok = (await loadTable()) && ok;
      if (metrics) ok = (await loadMetrics()) && ok;
      if (ok) setStatus('ready', `Updated ${new Date().toLocaleTimeString()}${paused ? ' (auto-refresh paused)' : ''}`);
    } catch (error) {
      if (!(error instanceof Limited)) setStatus('offline', `Cannot reach the service: ${error.message}`);
    } finally {
      refreshing = false;
      scheduleRefresh();
      if (queued && backoffUntil <= Date.now()) {
        const next = queued;
        queued = null;
        refresh(next);
      }
    }
  }

  function scheduleRefresh(delay = REFRESH_MS) {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    if (paused || statusLine.dataset.state === 'expired') return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      if (document.visibilityState === 'visible') refresh();
      // A hidden tab asks nothing; it refreshes when it is shown again.
    }, Math.max(delay, backoffUntil - Date.now()));
  }

  function stopRefreshing() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
  }

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || paused) return;
    if (Date.now() - lastRefresh >= REFRESH_MS && !refreshTimer) refresh();
    else if (!refreshTimer) scheduleRefresh(REFRESH_MS - (Date.now() - lastRefresh));
  });

  $('auto-refresh').addEventListener('click', (event) => {
    paused = !paused;
    event.currentTarget.setAttribute('aria-pressed', String(!paused));
    event.currentTarget.textContent = paused ? 'Auto-refresh paused' : 'Auto-refresh (15 s)';
    if (paused) stopRefreshing();
    else scheduleRefresh(Math.max(0, REFRESH_MS - (Date.now() - lastRefresh)));
  });

  $('refresh-now').addEventListener('click', () => refresh());

  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    view.filters = {};
    for (const key of ['user_id', 'status', 'help_requested', 'admin_assisted', 'start_time_from', 'start_time_to']) {
      const value = String(data.get(key) ?? '').trim();
      if (value) view.filters[key] = value;
    }
    view.offset = 0;
    refresh({ metrics: false });
  });
  $('filters').addEventListener('reset', () => {
    view.filters = {};
    view.offset = 0;
    setTimeout(() => refresh({ metrics: false }), 0);
  });

  for (const th of document.querySelectorAll('th[data-sort]')) {
    th.querySelector('button').addEventListener('click', () => {
      if (view.sortBy === th.dataset.sort) view.sortOrder = view.sortOrder === 'asc' ? 'desc' : 'asc';
      else {
        view.sortBy = th.dataset.sort;
        view.sortOrder = th.dataset.sort === 'user_id' ? 'asc' : 'desc';
      }
      view.offset = 0;
      showSort();
      refresh({ metrics: false });
    });
  }

  $('prev').addEventListener('click', () => {
    view.offset = Math.max(0, view.offset - Number($('f-limit').value));
    refresh({ metrics: false });
  });
  $('next').addEventListener('click', () => {
    view.offset += Number($('f-limit').value);
    refresh({ metrics: false });
  });

  function showUser(user) {
    view.user = user;
    view.offset = 0;
    refresh({ metrics: false });
  }
  $('back-to-all').addEventListener('click', () => {
    view.user = null;
    view.offset = 0;
    refresh({ metrics: false });
  });

  $('range').addEventListener('change', () => {
    const custom = $('range').value === 'custom';
    $('custom-range').hidden = !custom;
    if (!custom) refresh({ table: false });
  });
  $('range-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const from = $('range-from').value;
    const to = $('range-to').value;
    if (from && to && new Date(to) < new Date(from)) {
      setStatus('error', 'The end of the period is before its start.');
      return;
    }
    refresh({ table: false });
  });

  const { takeOver } = ChatboxAssist.attach({ call, Limited, messageOf, setStatus, refresh });

  // ---------------------------------------------------------------------------------------

  Chatbox.onToken(() => refresh());
  showSort();
  refresh();
})();
