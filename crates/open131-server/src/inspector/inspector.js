// The inspector's page script (crates/open131-server/src/inspector.rs): asks
// for the admin token once (kept in this tab's session storage), then reads
// /admin/v1/inspect every two seconds and the chosen project's view with it
// (and the opened session's postings and requests).
// Everything shown is built as DOM text (never HTML from the server).
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const tokenKey = 'open131-admin-token';
  let token = sessionStorage.getItem(tokenKey) || '';
  let chosen = null;
  let timer = null;
  let openSession = null;
  // Requests whose bodies are unfolded, kept across the live redraws.
  const unfolded = new Set();

  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const money = (minor, currency) => `${(minor / 100).toFixed(2)} ${String(currency || '').toUpperCase()}`;
  const table = (node, head, rows) => {
    node.replaceChildren();
    const tr = el('tr');
    head.forEach((h) => tr.appendChild(el('th', h)));
    node.appendChild(tr);
    rows.forEach((cells) => {
      const row = el('tr');
      cells.forEach((c, i) => {
        const cell = c instanceof Node ? c : el('td', c);
        if (head[i]) cell.dataset.label = head[i];
        row.appendChild(cell);
      });
      node.appendChild(row);
    });
  };
  const td = (child, cls) => { const t = el('td', undefined, cls); t.appendChild(child); return t; };
  const stateCell = (state) => el('td', state, `state-${state}`);

  async function call(path, options = {}) {
    const response = await fetch(path, {
      ...options, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error(body?.error?.description || `HTTP ${response.status}`), { status: response.status });
    return body;
  }

  // "90s", "30m", "2h", "1d" → seconds.
  const seconds = (text) => {
    const m = /^\s*(\d+)\s*(s|m|h|d)?\s*$/.exec(text);
    if (!m) return null;
    return Number(m[1]) * ({ s: 1, m: 60, h: 3600, d: 86400 }[m[2] || 's']);
  };

  function showProjects(overview) {
    const list = $('projects');
    list.replaceChildren();
    overview.projects.forEach((p) => {
      const b = el('button', p.id, `project${p.id === chosen ? ' on' : ''}`);
      b.type = 'button';
      b.dataset.project = p.id;
      b.addEventListener('click', () => { chosen = p.id; closeSession(); refresh(); });
      list.appendChild(b);
    });
    $('registries').textContent = `${overview.backend} · registries: ` + overview.registries
      .map((r) => `${r.name} ${r.entries === null ? 'not loaded' : `${r.entries} entries`}`).join(', ');
    const p = overview.projects.find((x) => x.id === chosen);
    $('project').classList.toggle('hidden', !p);
    if (!p) return;
    $('project-title').textContent = `Project ${p.id}`;
    const s = p.settings;
    $('settings').textContent = `webhook ${s.webhook_url || 'none'} · KYC ${s.kyc_mode} · auto-confirm ${s.auto_confirm}`
      + ` · capture ${s.capture} · webhook faults ${s.webhook_faults} · ${p.keys} key(s)`;
    $('clock-now').textContent = p.clock.now;
    $('clock-offset').textContent = p.clock.offset_s ? `(${p.clock.offset_s} s ahead)` : '(real time)';
    table($('wallets'), ['Book', 'Currency', 'Available', 'Reserved', 'Held'], p.wallets.map((w) => [
      w.book, w.currency, money(w.available, w.currency), money(w.reserved, w.currency), money(w.held, w.currency)]));
  }

  // A request of the log: its line, and its masked bodies folded below it.
  function requestCells(r) {
    const bodies = el('details', undefined, 'bodies');
    bodies.open = unfolded.has(r.seq);
    bodies.addEventListener('toggle', () => { if (bodies.open) unfolded.add(r.seq); else unfolded.delete(r.seq); });
    bodies.appendChild(el('summary', `${r.method} ${r.path}`));
    bodies.appendChild(el('div', 'Request', 'muted'));
    bodies.appendChild(el('pre', JSON.stringify(r.request, null, 2)));
    bodies.appendChild(el('div', 'Response', 'muted'));
    bodies.appendChild(el('pre', JSON.stringify(r.response, null, 2)));
    const status = el('td', String(r.status), r.status < 400 ? 'state-ok' : 'state-error');
    return [r.at, td(bodies, 'wrap'), status, `${(r.duration_us / 1000).toFixed(1)} ms`, r.request_id];
  }

  function showSession(detail) {
    $('session-box').classList.remove('hidden');
    const s = detail.session;
    $('session-title').textContent = `Session ${s.id} · ${s.state}`;
    table($('postings'), ['At', 'Book', 'Account', 'Movement', 'Amount'], detail.postings.map((p) => [
      p.at, p.book, p.account, p.movement, money(p.amount, p.currency)]));
    table($('session-requests'), ['At', 'Request', 'Status', 'Took', 'Request id'], detail.requests.map(requestCells));
  }

  function showProject(view) {
    ['sessions-box', 'checks-box', 'webhooks-box', 'requests-box'].forEach((id) => $(id).classList.remove('hidden'));
    table($('requests'), ['At', 'Request', 'Status', 'Took', 'Request id'], view.requests.map(requestCells));
    table($('sessions'), ['Session', 'State', 'Operations', 'Timeline'], view.sessions.map((s) => {
      const ops = el('ul', undefined, 'timeline');
      s.operations.forEach((o) => ops.appendChild(el('li', `${o.kind} ${o.id}: ${o.state}, ${money(o.amount, o.currency)}`)));
      const line = el('ul', undefined, 'timeline');
      s.timeline.forEach((t) => line.appendChild(el('li', `${t.at} ${t.what}`)));
      const open = el('button', s.id, 'link session-open');
      open.type = 'button';
      open.addEventListener('click', () => { openSession = s.id; refresh(); });
      return [td(open), stateCell(s.state), td(ops, 'wrap'), td(line, 'wrap')];
    }));
    table($('checks'), ['Check', 'State', 'Created', 'Finished'], view.checks.map((c) => [
      String(c.id), stateCell(c.state), c.created_at, c.finished_at || '—']));
    table($('webhooks'), ['Id', 'Type', 'Session', 'State', 'Attempts', ''], view.webhooks.map((w) => {
      const tries = el('ul', undefined, 'timeline');
      w.attempts.forEach((a) => tries.appendChild(el('li', `#${a.attempt} ${a.at} ${a.status === null ? 'no response' : `HTTP ${a.status}`}`
        + `${a.error ? ` ${a.error}` : ''}${a.injected ? ` [injected: ${a.injected}]` : ''}`)));
      const resend = el('button', 'Resend', 'small resend');
      resend.type = 'button';
      resend.addEventListener('click', async () => {
        resend.disabled = true;
        try { await call(`/admin/v1/inspect/${encodeURIComponent(chosen)}/webhooks/${w.id}/resend`, { method: 'POST' }); } catch (e) { resend.textContent = e.message; }
        refresh();
      });
      return [String(w.id), w.type, w.subject, stateCell(w.state), td(tries, 'wrap'), td(resend)];
    }));
  }

  async function refresh() {
    try {
      const overview = await call('/admin/v1/inspect');
      if (!chosen && overview.projects.length) chosen = overview.projects[0].id;
      showProjects(overview);
      if (chosen) showProject(await call(`/admin/v1/inspect/${encodeURIComponent(chosen)}`));
      if (chosen && openSession) {
        showSession(await call(`/admin/v1/inspect/${encodeURIComponent(chosen)}/sessions/${encodeURIComponent(openSession)}`));
      }
      $('live').textContent = `live · updated ${new Date().toLocaleTimeString()}`;
      $('live').dataset.updates = String(Number($('live').dataset.updates || 0) + 1);
    } catch (e) {
      if (e.status === 401) { logout('That token was refused.'); return; }
      $('live').textContent = `disconnected: ${e.message}`;
    }
  }

  function closeSession() {
    openSession = null;
    $('session-box').classList.add('hidden');
  }

  function logout(why) {
    sessionStorage.removeItem(tokenKey);
    token = '';
    clearInterval(timer);
    $('app').classList.add('hidden');
    $('login').classList.remove('hidden');
    $('login-error').textContent = why || '';
  }

  function connect() {
    $('login').classList.add('hidden');
    $('app').classList.remove('hidden');
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, 2000);
  }

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem(tokenKey, token);
    connect();
  });
  $('clock-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const by = seconds($('clock-step').value);
    if (by === null || !chosen) { $('clock-offset').textContent = 'give a step like 90s, 30m, 2h or 1d'; return; }
    try { await call('/admin/v1/clock', { method: 'POST', body: JSON.stringify({ project: chosen, advance_s: by }) }); } catch (e) { $('clock-offset').textContent = e.message; }
    refresh();
  });
  // A report from /admin/v1/reports, fetched with the token and saved as a file.
  async function download(button) {
    const day = $('report-day').value || $('clock-now').textContent.slice(0, 10);
    const { kind, format, register } = button.dataset;
    const query = kind === 'act' ? `month=${day.slice(0, 7)}&register=${register}` : `date=${day}&format=${format}`;
    const path = `/admin/v1/reports/${encodeURIComponent(chosen)}/${kind}?${query}`;
    try {
      const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
      if (!response.ok) throw new Error((await response.json().catch(() => ({})))?.error?.description || `HTTP ${response.status}`);
      const blob = await response.blob();
      const name = (/filename="([^"]+)"/.exec(response.headers.get('Content-Disposition') || '') || [])[1] || 'report';
      const link = el('a');
      link.href = URL.createObjectURL(blob);
      link.download = name;
      link.click();
      URL.revokeObjectURL(link.href);
      $('report-status').textContent = `downloaded ${name} (${blob.size} bytes)`;
    } catch (e) {
      $('report-status').textContent = `no report: ${e.message}`;
    }
  }
  document.querySelectorAll('button.report').forEach((b) => b.addEventListener('click', () => download(b)));
  $('session-close').addEventListener('click', closeSession);
  if (token) connect();
})();
