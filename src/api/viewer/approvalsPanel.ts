// The viewer's "Pending approvals" panel (script only; page.ts has its markup and includes
// this in its script, after $, el, api and showLogin). Lists the tenant's pending approvals
// with the tool's input as text, never as HTML (it is the model's), and decides them with
// POST /v1/approvals/:id. An AskUserQuestion call shows its questions as choices and Allow
// sends the chosen labels as its answers.
export const approvalsPanelScript = String.raw`
const approvalNodes = new Map();
const noApprovals = el('p', 'muted', 'No pending approvals.');
let approvalsLoad = 0;

const when = (iso) => new Date(iso).toLocaleString();
const askedQuestions = (a) => a.toolName === 'AskUserQuestion' && a.input && Array.isArray(a.input.questions) ? a.input.questions : null;

async function loadApprovals() {
  const mine = ++approvalsLoad;
  const page = await api('/v1/approvals?status=pending');
  if (mine !== approvalsLoad) return;
  const ids = page.approvals.map((a) => a.approvalId);
  for (const id of [...approvalNodes.keys()]) if (!ids.includes(id)) approvalNodes.delete(id);
  for (const a of page.approvals) if (!approvalNodes.has(a.approvalId)) approvalNodes.set(a.approvalId, approvalItem(a));
  const shown = ids.length ? ids.map((id) => approvalNodes.get(id)) : [noApprovals];
  // Only what changed is moved: an item that stays where it is is never taken out of the
  // page, so a message being typed keeps its text and its focus, and a chosen answer stays.
  const list = $('approvals');
  for (const child of [...list.children]) if (!shown.includes(child)) child.remove();
  shown.forEach((node, i) => { if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null); });
}

function approvalItem(a) {
  const item = el('div', 'item approval');
  item.dataset.approval = a.approvalId;
  item.dataset.tool = a.toolName;
  const head = el('div');
  head.append(el('strong', '', a.toolName), el('span', 'muted', ' requested ' + when(a.requestedAt) + ' · ' + (a.expiresAt ? 'expires ' + when(a.expiresAt) : 'does not expire')));
  item.append(head);
  const questions = askedQuestions(a);
  if (questions) questions.forEach((q, i) => item.append(questionField(a.approvalId, q, i)));
  else item.append(el('pre', 'input', JSON.stringify(a.input, null, 2)));
  const allow = el('button', 'allow', 'Allow');
  const message = el('input', 'deny-message');
  message.placeholder = 'message for the agent (optional)';
  message.setAttribute('aria-label', 'Deny message');
  const deny = el('button', 'deny', 'Deny');
  allow.addEventListener('click', () => {
    if (!questions) return decide(a, item, { decision: 'allow' });
    const answers = chosenAnswers(item);
    if (answers) return decide(a, item, { decision: 'allow', answers });
    $('approvals-note').textContent = 'Choose an answer to each question first.';
  });
  deny.addEventListener('click', () => decide(a, item, message.value ? { decision: 'deny', message: message.value } : { decision: 'deny' }));
  const actions = el('div', 'actions');
  actions.append(allow, ' ', message, ' ', deny);
  item.append(actions);
  return item;
}

// One question: its options as radio buttons (checkboxes when several may be chosen).
function questionField(approvalId, q, i) {
  const box = el('fieldset', 'question');
  box.dataset.question = String(q.question);
  box.append(el('legend', '', (q.header ? q.header + ': ' : '') + q.question));
  for (const o of Array.isArray(q.options) ? q.options : []) {
    const choice = el('input');
    choice.type = q.multiSelect ? 'checkbox' : 'radio';
    choice.name = approvalId + '-' + i;
    choice.value = String(o.label);
    const label = el('label', 'option');
    label.append(choice, ' ' + o.label);
    if (o.description) label.append(el('span', 'muted', ' — ' + o.description));
    box.append(label);
  }
  return box;
}

// The answers by question text (several labels comma-joined); null while a question has none.
function chosenAnswers(item) {
  const answers = {};
  for (const box of item.querySelectorAll('fieldset.question')) {
    const chosen = [...box.querySelectorAll('input:checked')].map((c) => c.value);
    if (chosen.length === 0) return null;
    answers[box.dataset.question] = chosen.join(', ');
  }
  return answers;
}

async function decide(a, item, body) {
  const buttons = item.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  let note;
  try {
    const r = await fetch('/v1/approvals/' + encodeURIComponent(a.approvalId), {
      method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    if (r.status === 401) { showLogin(); return; }
    note = r.ok ? (await r.json()).status : r.status === 409 ? 'already decided' : r.status === 404 ? 'no longer exists' : 'not decided (' + r.status + ')';
  } catch (err) {
    note = 'not decided (' + err.message + ')';
  }
  $('approvals-note').textContent = a.toolName + ': ' + note;
  for (const b of buttons) b.disabled = false;
  await loadApprovals().catch(() => {});
}
`;
