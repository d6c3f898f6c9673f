// The transcript viewer: one static page (no build step, no framework) that reads the
// /v1 API with the session cookie. Conversations → turns → the turn's events, which come
// from the turn's event stream, so a running turn fills in live. Every value from the API
// is put into the page with textContent, never as HTML. Above them, the tenant's pending
// approvals (approvalsPanel.ts).
import { approvalsPanelScript } from './approvalsPanel.js';

export const viewerHtml = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>agentq viewer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #f6f6f8; }
  [hidden] { display: none !important; }
  header { background: #20232a; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
  header a { color: #9cdcfe; }
  main { display: grid; grid-template-columns: 260px 320px 1fr; grid-template-rows: auto minmax(0, 1fr); height: calc(100vh - 40px); }
  section { overflow: auto; border-right: 1px solid #ddd; padding: 8px; }
  h2 { font-size: 13px; text-transform: uppercase; color: #666; margin: 4px 0 8px; }
  .item { padding: 6px 8px; border-radius: 6px; cursor: pointer; margin-bottom: 4px; background: #fff; border: 1px solid #e3e3e8; }
  .item.selected { border-color: #0a84ff; background: #eaf3ff; }
  .status { font-size: 11px; padding: 1px 6px; border-radius: 8px; background: #ddd; margin-left: 6px; }
  .status.running, .status.queued { background: #ffe9a8; }
  .status.succeeded, .status.idle { background: #c9f2d0; }
  .status.failed, .status.cancelled { background: #ffd1d1; }
  .status.denied { background: #ffe0b2; }
  .event { background: #fff; border: 1px solid #e3e3e8; border-radius: 6px; padding: 6px 8px; margin-bottom: 6px; white-space: pre-wrap; word-break: break-word; }
  .event .kind { font-size: 11px; color: #666; display: block; margin-bottom: 2px; }
  .event.assistant { border-left: 3px solid #0a84ff; }
  .event.tool { border-left: 3px solid #bf5af2; font-family: ui-monospace, monospace; font-size: 12px; }
  .event.result { border-left: 3px solid #30d158; }
  .event.prompt { border-left: 3px solid #8e8e93; }
  .event.denied { border-left: 3px solid #ff9f0a; background: #fff6e5; }
  nav a { margin-left: 12px; }
  .muted { color: #888; }
  form { padding: 32px; }
  input { font: inherit; padding: 6px; width: 320px; }
  #approvals-panel { grid-column: 1 / -1; max-height: 40vh; border-right: 0; border-bottom: 1px solid #ddd; }
  .approval { cursor: default; }
  .approval pre { margin: 4px 0; white-space: pre-wrap; word-break: break-word; font-size: 12px; }
  .approval fieldset { margin: 4px 0; border: 1px solid #e3e3e8; border-radius: 6px; }
  .approval label { display: block; }
  .approval input[type=radio], .approval input[type=checkbox] { width: auto; }
</style>
</head>
<body>
<header><strong>agentq</strong><span id="live" class="muted"></span><span style="flex:1"></span><nav id="nav" hidden><a href="/admin/queues">queues</a> <a href="/docs">API docs</a> <a href="#" id="logout">log out</a></nav></header>
<div id="login" hidden>
  <form id="login-form">
    <p>Paste an API key (it is kept in an HttpOnly session cookie).</p>
    <input id="key" type="password" autocomplete="off" placeholder="API key" aria-label="API key">
    <button type="submit">Open</button>
    <p id="login-error" class="muted"></p>
  </form>
</div>
<main id="app" hidden>
  <section id="approvals-panel"><h2>Pending approvals</h2><p id="approvals-note" class="muted" role="status"></p><div id="approvals" data-testid="approvals"></div></section>
  <section><h2>Conversations</h2><div id="conversations" data-testid="conversations"></div></section>
  <section><h2>Turns</h2><div id="turns" data-testid="turns"></div></section>
  <section><h2>Transcript</h2><div id="transcript" data-testid="transcript"></div></section>
</main>
<script>
const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
let selectedConversation = null, selectedTurn = null, source = null, refreshTimer = null;

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  if (r.status === 401) { showLogin(); throw new Error('unauthorized'); }
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

// Logged out: the key form and nothing else (no links into pages that would refuse).
function showLogin() { $('app').hidden = true; $('nav').hidden = true; $('login').hidden = false; }

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/admin/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key: $('key').value }) });
  if (r.status === 204) { $('login').hidden = true; start(); } else { $('login-error').textContent = 'That key was refused.'; }
});
$('logout').addEventListener('click', async (e) => { e.preventDefault(); await fetch('/admin/logout', { method: 'POST' }); location.reload(); });

function select(container, node) {
  for (const c of container.children) c.classList.remove('selected');
  node.classList.add('selected');
}

async function loadConversations() {
  const page = await api('/v1/conversations?limit=200');
  const list = $('conversations');
  list.replaceChildren();
  for (const c of page.items) {
    const item = el('div', 'item');
    item.dataset.conversation = c.conversationId;
    item.append(el('span', '', c.conversationId), el('span', 'status ' + c.status, c.status));
    if (c.conversationId === selectedConversation) item.classList.add('selected');
    item.addEventListener('click', () => { select(list, item); openConversation(c.conversationId); });
    list.append(item);
  }
  if (page.items.length === 0) list.append(el('p', 'muted', 'No conversations yet.'));
}

async function openConversation(id) {
  selectedConversation = id;
  const conv = await api('/v1/conversations/' + encodeURIComponent(id));
  const list = $('turns');
  list.replaceChildren();
  for (const t of conv.turns) {
    const item = el('div', 'item');
    item.dataset.turn = t.turnId;
    item.append(el('span', '', '#' + t.seq), el('span', 'status ' + t.status, t.status));
    if (t.costUsd) item.append(el('span', 'muted', ' $' + Number(t.costUsd).toFixed(4)));
    if (t.permissionDenials) item.append(el('span', 'status denied', t.permissionDenials.everyToolCall ? 'every tool refused' : t.permissionDenials.count + ' refused'));
    if (t.turnId === selectedTurn) item.classList.add('selected');
    item.addEventListener('click', () => { select(list, item); openTurn(t.turnId); });
    list.append(item);
  }
}

function describe(type, data) {
  if (type === 'assistant' && data.message && Array.isArray(data.message.content)) {
    return data.message.content.map((b) => b.type === 'text' ? { cls: 'assistant', kind: 'assistant', text: b.text }
      : b.type === 'tool_use' ? { cls: 'tool', kind: 'tool call: ' + b.name, text: JSON.stringify(b.input, null, 2) }
      : { cls: '', kind: b.type, text: '' });
  }
  if (type === 'user' && data.message && Array.isArray(data.message.content)) {
    return data.message.content.filter((b) => b.type === 'tool_result').map((b) => ({ cls: 'tool', kind: 'tool result',
      text: typeof b.content === 'string' ? b.content : JSON.stringify(b.content) }));
  }
  if (type === 'result') return [{ cls: 'result', kind: 'result (' + (data.subtype || '') + ')', text: (data.result || '') + (data.total_cost_usd !== undefined ? '\n$' + data.total_cost_usd : '') }];
  if (type === 'init' || type === 'system') return [{ cls: '', kind: 'session start', text: data.session_id ? 'session ' + data.session_id + (data.model ? ' · ' + data.model : '') : '' }];
  return [{ cls: '', kind: type + (data.subtype ? '/' + data.subtype : ''), text: '' }];
}

function openTurn(turnId) {
  selectedTurn = turnId;
  if (source) source.close();
  const box = $('transcript');
  box.replaceChildren();
  // The turn's prompt first: the stream has what the CLI said, not what it was asked.
  const prompt = el('div', 'event prompt');
  prompt.dataset.type = 'prompt';
  box.append(prompt);
  api('/v1/turns/' + encodeURIComponent(turnId)).then((t) => prompt.append(el('span', 'kind', 'prompt'), document.createTextNode(t.prompt))).catch(() => {});
  const seen = new Set();
  $('live').textContent = 'streaming…';
  source = new EventSource('/v1/turns/' + encodeURIComponent(turnId) + '/events');
  const onEvent = (ev) => {
    if (ev.lastEventId && seen.has(ev.lastEventId)) return;
    if (ev.lastEventId) seen.add(ev.lastEventId);
    let data = {};
    try { data = JSON.parse(ev.data); } catch { data = { raw: ev.data }; }
    for (const d of describe(ev.type, data)) {
      const node = el('div', 'event ' + d.cls);
      node.dataset.type = ev.type;
      node.append(el('span', 'kind', d.kind), document.createTextNode(d.text));
      box.append(node);
    }
  };
  // The types the worker stores (the runner's event kinds, or the CLI's own type for others).
  for (const type of ['init', 'api_retry', 'assistant', 'user', 'result', 'agentq', 'system', 'message']) source.addEventListener(type, onEvent);
  // The server's last message once the turn is committed: do not let the browser reconnect and replay.
  source.addEventListener('end', (ev) => {
    source.close();
    let status = '';
    try { status = JSON.parse(ev.data).status; } catch {}
    const node = el('div', 'event', 'turn ' + status);
    node.dataset.type = 'end';
    box.append(node);
    api('/v1/turns/' + encodeURIComponent(turnId)).then((t) => {
      const d = t.permissionDenials;
      if (!d) return;
      const note = el('div', 'event denied', (d.everyToolCall ? 'Every tool call was refused' : d.count + ' tool call(s) were refused') + ' by the CLI\'s permissions: ' + d.tools.join(', ') +
        '. Allow them with the turn option permissionMode (e.g. acceptEdits) or allowedTools.');
      note.dataset.type = 'denied';
      box.append(note);
    }).catch(() => {});
    $('live').textContent = '';
    loadConversations().catch(() => {});
    if (selectedConversation) openConversation(selectedConversation);
  });
  source.onerror = () => { $('live').textContent = ''; };
}

${approvalsPanelScript}

async function start() {
  try {
    await loadConversations();
    $('login').hidden = true;
    $('app').hidden = false;
    $('nav').hidden = false;
    loadApprovals().catch(() => {});
    clearInterval(refreshTimer);
    refreshTimer = setInterval(() => { loadConversations().catch(() => {}); loadApprovals().catch(() => {}); if (selectedConversation) openConversation(selectedConversation).catch(() => {}); }, 3000);
  } catch (err) { if (String(err.message) !== 'unauthorized') console.error(err); }
}
start();
</script>
</body>
</html>
`;
