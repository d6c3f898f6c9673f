// The conversation and turn routes of the HTTP API over a real Postgres and Redis, with a
// real worker running the fake CLI where a turn has to run.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import { SESSION_COOKIE } from '../src/api/auth.js';
import { apiCommand } from '../src/cli/apiCommand.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

const KEY_A = 'alpha-key-0123456789abcdef';
const KEY_B = 'beta-key-0123456789abcdef';
const KEYS = `${KEY_A}=alpha,${KEY_B}=beta`;
// Response bodies are checked field by field; typing each one would restate the route schemas.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

let t: TestAgentq;
let api: Api;

async function start(overrides: Record<string, string> = {}): Promise<void> {
  t = await createTestAgentq({ AGENTQ_API_KEYS: KEYS, AGENTQ_API_RATE_LIMIT: '0', ...overrides });
  api = await buildApi(t.config);
}

afterEach(async () => {
  await stopWorkers();
  await api?.close();
  await t?.cleanup();
});

interface Req {
  key?: string | null;
  body?: unknown;
  headers?: Record<string, string>;
}

async function call(method: 'GET' | 'POST' | 'DELETE' | 'PUT', url: string, r: Req = {}) {
  const headers: Record<string, string> = { ...(r.headers ?? {}) };
  const key = r.key === undefined ? KEY_A : r.key;
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const res = await api.app.inject({
    method,
    url,
    headers,
    ...(r.body !== undefined ? { payload: typeof r.body === 'string' ? r.body : JSON.stringify(r.body) } : {}),
    ...(r.body !== undefined && typeof r.body !== 'string' ? { headers: { ...headers, 'content-type': 'application/json' } } : {}),
  });
  let json: Json;
  try {
    json = res.body === '' ? undefined : JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, res };
}

const enqueue = (conversation: string, body: unknown, r: Req = {}) => call('POST', `/v1/conversations/${encodeURIComponent(conversation)}/turns`, { ...r, body });

const TABLES = ['conversations', 'turns', 'turn_events', 'sessions', 'session_chunks', 'workspaces'] as const;

async function rowCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of TABLES) {
    const r = await api.deps.client.db.$client.query<{ n: string }>(`select count(*) as n from ${table}`);
    out[table] = Number(r.rows[0]!.n);
  }
  return out;
}

async function jobTotal(): Promise<number> {
  const counts = await api.deps.client.queue.getJobCounts();
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

async function waitForStatus(turnId: string, status: string, timeoutMs = 20_000): Promise<Json> {
  let last: Json;
  await waitUntil(
    async () => {
      last = (await call('GET', `/v1/turns/${turnId}`)).json;
      return last?.status === status;
    },
    `turn ${turnId} ${status} (last: ${JSON.stringify(last?.status)})`,
    timeoutMs,
  );
  return last;
}

describe('auth', () => {
  beforeEach(() => start());

  const routes: [method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown][] = [
    ['POST', '/v1/conversations/c1/turns', { prompt: 'hi' }],
    ['GET', '/v1/conversations'],
    ['GET', '/v1/conversations/c1'],
    ['GET', '/v1/conversations/c1/transcript'],
    ['DELETE', '/v1/conversations/c1'],
    ['GET', '/v1/turns/00000000-0000-4000-8000-000000000000'],
    ['POST', '/v1/turns/00000000-0000-4000-8000-000000000000/cancel'],
    ['GET', '/v1/approvals'],
    ['GET', '/v1/approvals/00000000-0000-4000-8000-000000000000'],
    ['POST', '/v1/approvals/00000000-0000-4000-8000-000000000000', { decision: 'allow' }],
  ];

  it("the viewer's session cookie counts for reads and for approval decisions sent as JSON, never for other writes", async () => {
    const cookie = `${SESSION_COOKIE}=${encodeURIComponent(KEY_A)}`;
    const approval = '/v1/approvals/00000000-0000-4000-8000-000000000000';
    const inject = (method: 'GET' | 'POST', url: string, contentType?: string, payload?: string) =>
      api.app.inject({ method, url, headers: { cookie, ...(contentType ? { 'content-type': contentType } : {}) }, ...(payload !== undefined ? { payload } : {}) });
    expect((await inject('GET', '/v1/approvals')).statusCode).toBe(200);
    // Authenticated, then not found: the decision route takes the cookie with a JSON body.
    expect((await inject('POST', approval, 'application/json', JSON.stringify({ decision: 'allow' }))).statusCode).toBe(404);
    // What a cross-site form can send is refused before anything is read.
    expect((await inject('POST', approval, 'text/plain', '{"decision":"allow"}')).statusCode).toBe(401);
    expect((await inject('POST', approval, 'application/x-www-form-urlencoded', 'decision=allow')).statusCode).toBe(401);
    expect((await inject('POST', '/v1/conversations/c1/turns', 'application/json', JSON.stringify({ prompt: 'hi' }))).statusCode).toBe(401);
    expect((await inject('POST', '/v1/turns/00000000-0000-4000-8000-000000000000/cancel', 'application/json', '{}')).statusCode).toBe(401);
  });

  it('every route answers 401 without a key, with a wrong key, or with a malformed header, and stores nothing', async () => {
    const before = await rowCounts();
    for (const [method, url, body] of routes) {
      for (const headers of [{} as Record<string, string>, { authorization: `Bearer ${KEY_A}x` }, { authorization: KEY_A }, { authorization: `Basic ${KEY_A}` }]) {
        const res = await call(method, url, { key: null, headers, body });
        expect(res.status, `${method} ${url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.res.headers['content-type']).toContain('application/problem+json');
        expect(res.json).toMatchObject({ status: 401, title: 'Unauthorized' });
      }
    }
    expect(await rowCounts()).toEqual(before);
    expect(await jobTotal()).toBe(0);
  });

  it("another tenant's conversation and turns are 404, like missing ones, and its listing does not show them", async () => {
    const turn = (await enqueue('shared-name', { prompt: 'alpha only' })).json;
    const asB = { key: KEY_B };
    const missing = await call('GET', '/v1/conversations/no-such-thing', asB);
    const cases = [
      await call('GET', '/v1/conversations/shared-name', asB),
      await call('GET', '/v1/conversations/shared-name/transcript', asB),
      await call('DELETE', '/v1/conversations/shared-name', asB),
      await call('GET', `/v1/turns/${turn.turnId}`, asB),
      await call('POST', `/v1/turns/${turn.turnId}/cancel`, asB),
    ];
    for (const res of cases) {
      expect(res.status).toBe(404);
      expect(res.json.title).toBe(missing.json.title);
    }
    expect((await call('GET', '/v1/conversations', asB)).json).toEqual({ items: [], nextCursor: null });
    // Untouched for its owner.
    expect((await call('GET', `/v1/turns/${turn.turnId}`)).json.status).toBe('queued');
    // The same id under another tenant is another conversation.
    const other = (await enqueue('shared-name', { prompt: 'beta' }, asB)).json;
    expect(other.seq).toBe(1);
    expect((await call('GET', '/v1/conversations/shared-name', asB)).json).toMatchObject({ tenantId: 'beta', turns: [{ turnId: other.turnId }] });
    expect((await call('GET', '/v1/conversations/shared-name')).json).toMatchObject({ tenantId: 'alpha', turns: [{ turnId: turn.turnId }] });
  });
});

describe('turns over HTTP', () => {
  beforeEach(() => start());

  it('a turn enqueued over HTTP runs on a worker; the turn, the conversation and the transcript show it', async () => {
    const res = await enqueue('ticket-1', { prompt: 'hello over http', options: { maxTurns: 3 } });
    expect(res.status).toBe(202);
    expect(res.json).toMatchObject({ conversationId: 'ticket-1', seq: 1, status: 'queued', created: true });
    await startWorker(t.config);
    const done = await waitForStatus(res.json.turnId, 'succeeded');
    expect(done).toMatchObject({ turnId: res.json.turnId, conversationId: 'ticket-1', seq: 1, attempts: 1, error: null, cliVersions: { '1': 'fake-1' } });
    expect(done.sessionId).toEqual(expect.any(String));
    expect(typeof done.result).toBe('string');

    const conv = (await call('GET', '/v1/conversations/ticket-1')).json;
    expect(conv).toMatchObject({ conversationId: 'ticket-1', tenantId: 'alpha', sessionId: done.sessionId, turns: [{ turnId: res.json.turnId, status: 'succeeded', cliVersions: { '1': 'fake-1' } }] });

    const transcript = (await call('GET', '/v1/conversations/ticket-1/transcript?limit=500')).json;
    expect(transcript.nextCursor).toBeNull();
    const session = transcript.items.filter((i: Json) => i.kind === 'session');
    const events = transcript.items.filter((i: Json) => i.kind === 'event');
    expect(session.length).toBeGreaterThan(0);
    expect(session.map((i: Json) => i.line)).toEqual(session.map((_: unknown, n: number) => n));
    expect(session.every((i: Json) => i.sessionId === done.sessionId && typeof i.entry === 'object')).toBe(true);
    expect(JSON.stringify(session.find((i: Json) => i.entry.type === 'user'))).toContain('hello over http');
    expect(events.every((e: Json) => e.turnId === res.json.turnId && e.turnSeq === 1)).toBe(true);
    expect(events.map((e: Json) => e.type)).toContain('result');
    expect(events.find((e: Json) => e.type === 'result').event).toMatchObject({ type: 'result', session_id: done.sessionId });
    // Session entries come first, then events in (attempt, seq) order.
    expect(transcript.items.findIndex((i: Json) => i.kind === 'event')).toBe(session.length);
    expect(events.map((e: Json) => e.seq)).toEqual([...events.map((e: Json) => e.seq)].sort((a: number, b: number) => a - b));

    // Paged one item at a time, the transcript is the same list.
    const paged: Json[] = [];
    let cursor: string | null = null;
    do {
      const page: Json = (await call('GET', `/v1/conversations/ticket-1/transcript?limit=1${cursor ? `&cursor=${cursor}` : ''}`)).json;
      paged.push(...page.items);
      cursor = page.nextCursor;
      expect(paged.length).toBeLessThanOrEqual(transcript.items.length);
    } while (cursor);
    expect(paged).toEqual(transcript.items);
  });

  it('the same Idempotency-Key returns the same turn and stores nothing more', async () => {
    const headers = { 'idempotency-key': 'order-42' };
    const a = await enqueue('idem', { prompt: 'once' }, { headers });
    const before = await rowCounts();
    const b = await enqueue('idem', { prompt: 'once' }, { headers });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.json).toEqual({ ...a.json, created: false });
    expect(a.json.created).toBe(true);
    expect(await rowCounts()).toEqual(before);
    const c = await enqueue('idem', { prompt: 'another' }, { headers: { 'idempotency-key': 'order-43' } });
    expect(c.json).toMatchObject({ created: true, seq: 2 });
  });

  it('accepts every valid conversation id, up to 128 characters of the allowed charset, percent-encoded or not', async () => {
    const longest = `${'a:b@c.d_e-'.repeat(12)}12345678`;
    expect(longest).toHaveLength(128);
    const res = await enqueue(longest, { prompt: 'x' });
    expect(res.status).toBe(202);
    expect(res.json.conversationId).toBe(longest);
    const got = await call('GET', `/v1/conversations/${longest}`);
    expect(got.json.conversationId).toBe(longest);
    expect((await call('GET', `/v1/conversations/${encodeURIComponent(`${longest}x`)}`)).json.errors[0].field).toBe('params.id');
  });

  it('cancel: a queued turn is cancelled, then reported as already finished; the next turn is dispatched', async () => {
    const first = (await enqueue('cancel-me', { prompt: 'one' })).json;
    const second = (await enqueue('cancel-me', { prompt: 'two' })).json;
    const res = await call('POST', `/v1/turns/${first.turnId}/cancel`);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ turnId: first.turnId, outcome: 'cancelled' });
    expect((await call('POST', `/v1/turns/${first.turnId}/cancel`)).json.outcome).toBe('already_finished');
    expect((await call('GET', `/v1/turns/${first.turnId}`)).json.status).toBe('cancelled');
    expect(await api.deps.client.queue.getJob(second.turnId)).toBeDefined();
    expect((await call('POST', '/v1/turns/7b0e2d7c-9a9f-4d6e-8d3b-3f1f1f1f1f1f/cancel')).status).toBe(404);
  });

  it('DELETE is refused with 409 while a turn runs, works after it, and removes everything the conversation owned', async () => {
    const slow = (await enqueue('busy', { prompt: '#fake {"delayMs":2500}\nslow' })).json;
    await startWorker(t.config);
    await waitForStatus(slow.turnId, 'running');
    const refused = await call('DELETE', '/v1/conversations/busy');
    expect(refused.status).toBe(409);
    expect(refused.json.detail).toContain(slow.turnId);
    expect((await call('GET', '/v1/conversations/busy')).status).toBe(200);
    await waitForStatus(slow.turnId, 'succeeded');

    const convId = (await api.deps.client.db.$client.query<{ id: string }>("select id from conversations where external_id = 'busy'")).rows[0]!.id;
    const owned = async () => {
      const q = async (sql: string) => Number((await api.deps.client.db.$client.query<{ n: string }>(sql, [convId])).rows[0]!.n);
      return {
        turns: await q('select count(*) as n from turns where conversation_id = $1'),
        events: await q('select count(*) as n from turn_events e join turns t on t.id = e.turn_id where t.conversation_id = $1'),
        sessions: await q('select count(*) as n from sessions where conversation_id = $1'),
        chunks: await q('select count(*) as n from session_chunks where conversation_id = $1'),
        workspaces: await q('select count(*) as n from workspaces where conversation_id = $1'),
      };
    };
    const before = await owned();
    expect(before.turns).toBe(1);
    expect(before.events).toBeGreaterThan(0);
    expect(before.chunks).toBeGreaterThan(0);

    const deleted = await call('DELETE', '/v1/conversations/busy');
    expect(deleted.status).toBe(204);
    expect(deleted.res.body).toBe('');
    expect(await owned()).toEqual({ turns: 0, events: 0, sessions: 0, chunks: 0, workspaces: 0 });
    expect((await call('GET', '/v1/conversations/busy')).status).toBe(404);
    expect((await call('GET', `/v1/turns/${slow.turnId}`)).status).toBe(404);
    expect((await call('DELETE', '/v1/conversations/busy')).status).toBe(404);
  });

  it('DELETE of a conversation with queued turns removes their BullMQ jobs', async () => {
    const a = (await enqueue('queued-conv', { prompt: 'a', delayMs: 60_000 })).json;
    await enqueue('queued-conv', { prompt: 'b' });
    expect(await api.deps.client.queue.getJob(a.turnId)).toBeDefined();
    expect((await call('DELETE', '/v1/conversations/queued-conv')).status).toBe(204);
    expect(await api.deps.client.queue.getJob(a.turnId)).toBeUndefined();
    expect(await jobTotal()).toBe(0);
    expect((await rowCounts()).turns).toBe(0);
  });
});

describe('listing', () => {
  beforeEach(() => start());

  it('pages through the tenant\'s conversations in a stable order with a derived status and a status filter', async () => {
    const ids = ['c-a', 'c-b', 'c-c', 'c-d', 'c-e', 'c-f', 'c-g'];
    const turnOf: Record<string, string> = {};
    for (const id of [...ids].reverse()) turnOf[id] = (await enqueue(id, { prompt: `p ${id}` })).json.turnId;
    await enqueue('c-d', { prompt: 'second' });
    // Statuses as the worker would leave them (no worker runs here).
    const db = api.deps.client.db.$client;
    await db.query("update turns set status = 'running' where id = $1", [turnOf['c-b']]);
    await db.query("update turns set status = 'running' where id = $1", [turnOf['c-d']]);
    for (const id of ['c-a', 'c-f']) await db.query("update turns set status = 'succeeded' where id = $1", [turnOf[id]]);
    await db.query("update turns set status = 'failed' where id = $1", [turnOf['c-g']]);

    const pages: Json[] = [];
    let cursor: string | null = null;
    do {
      const res: Json = await call('GET', `/v1/conversations?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      pages.push(res.json);
      cursor = res.json.nextCursor;
    } while (cursor);
    expect(pages.map((p) => p.items.length)).toEqual([3, 3, 1]);
    const items = pages.flatMap((p) => p.items);
    expect(items.map((i: Json) => i.conversationId)).toEqual(ids);
    expect(Object.fromEntries(items.map((i: Json) => [i.conversationId, i.status]))).toEqual({
      'c-a': 'idle',
      'c-b': 'running',
      'c-c': 'queued',
      'c-d': 'running',
      'c-e': 'queued',
      'c-f': 'idle',
      'c-g': 'idle',
    });
    expect(items[0]).toEqual({ conversationId: 'c-a', sessionId: null, status: 'idle', turnsTotal: 0, costUsd: 0, updatedAt: expect.any(String) });

    const byStatus = async (status: string, limit = 50) =>
      (await call('GET', `/v1/conversations?status=${status}&limit=${limit}`)).json.items.map((i: Json) => i.conversationId);
    expect(await byStatus('running')).toEqual(['c-b', 'c-d']);
    expect(await byStatus('queued')).toEqual(['c-c', 'c-e']);
    expect(await byStatus('idle')).toEqual(['c-a', 'c-f', 'c-g']);
    // A filtered page continues after its cursor.
    const first = (await call('GET', '/v1/conversations?status=idle&limit=2')).json;
    expect(first.items.map((i: Json) => i.conversationId)).toEqual(['c-a', 'c-f']);
    const rest = (await call('GET', `/v1/conversations?status=idle&limit=2&cursor=${first.nextCursor}`)).json;
    expect(rest).toMatchObject({ items: [{ conversationId: 'c-g' }], nextCursor: null });

    // A turn waiting for a person holds the one queued behind it: the conversation waits for the person.
    const waiting = (await enqueue('c-h', { prompt: 'gated' })).json.turnId;
    await enqueue('c-h', { prompt: 'behind it' });
    await db.query("update turns set status = 'awaiting_approval', approval_rounds = 1 where id = $1", [waiting]);
    expect(await byStatus('awaiting_approval')).toEqual(['c-h']);
    expect(await byStatus('queued')).toEqual(['c-c', 'c-e']);
    expect((await call('GET', '/v1/conversations?limit=50')).json.items.find((i: Json) => i.conversationId === 'c-h').status).toBe('awaiting_approval');
  });

  it('the listing and transcript queries can run from indexes alone', async () => {
    await enqueue('plan', { prompt: 'x' });
    const client = await (api.deps.client.db.$client as pg.Pool).connect();
    try {
      await client.query('set enable_seqscan = off');
      const plans: string[] = [];
      const explain = async (sql: string, values: unknown[]) => {
        const r = await client.query<{ 'QUERY PLAN': string }>(`explain ${sql}`, values);
        plans.push(r.rows.map((row) => row['QUERY PLAN']).join('\n'));
      };
      const { deleteIdleConversation, listConversations, readCommittedSessionLines, readConversationEvents } = await import('../src/store/queries.js');
      // Capture the SQL drizzle sends by running each query on a recording executor.
      const { createStoreDb } = await import('../src/store/db.js');
      const seen: { text: string; values: unknown[] }[] = [];
      const recorder = createStoreDb({
        query: async (q: Json, v?: Json) => {
          const text: string = typeof q === 'string' ? q : q.text;
          seen.push({ text, values: (typeof q === 'string' ? v : (q.values ?? v)) ?? [] });
          // The session head says there are committed lines, so the chunk query runs too.
          return { rows: text.includes('committed_line_count from sessions') ? [{ committed_line_count: '10' }] : [], rowCount: 0, fields: [] };
        },
      } as Json);
      await listConversations(recorder, { tenantId: 'alpha', limit: 10, afterExternalId: 'a' });
      for (const status of ['running', 'queued', 'idle'] as const) await listConversations(recorder, { tenantId: 'alpha', limit: 10, status });
      await readConversationEvents(recorder, { conversationId: '00000000-0000-4000-8000-000000000000', limit: 10, after: { turnSeq: 1, attempt: 1, seq: 3 } });
      await readCommittedSessionLines(recorder, { conversationId: '00000000-0000-4000-8000-000000000000', sessionId: 's', fromLine: 3, limit: 5 });
      await deleteIdleConversation(recorder, 'alpha', 'plan').catch(() => undefined);
      expect(seen.length).toBeGreaterThanOrEqual(8);
      for (const q of seen.filter((x) => /^\s*(select|with)/i.test(x.text))) await explain(q.text, q.values);
      for (const plan of plans) expect(plan, plan).not.toMatch(/Seq Scan/);
    } finally {
      client.release();
    }
  });

  it('bad paging parameters are 400s naming the field', async () => {
    const cases: [string, string][] = [
      ['/v1/conversations?cursor=not-a-cursor', 'query.cursor'],
      ['/v1/conversations?cursor=%24%24', 'query.cursor'],
      [`/v1/conversations?cursor=${Buffer.from('{"c":1}').toString('base64url')}`, 'query.cursor'],
      ['/v1/conversations?cursor=', 'query.cursor'],
      ['/v1/conversations?limit=0', 'query.limit'],
      ['/v1/conversations?limit=501', 'query.limit'],
      ['/v1/conversations?limit=ten', 'query.limit'],
      ['/v1/conversations?status=busy', 'query.status'],
      ['/v1/conversations?stauts=idle', 'query.stauts'],
      ['/v1/conversations/c1/transcript?cursor=abc', 'query.cursor'],
      [`/v1/conversations/c1/transcript?cursor=${Buffer.from('{"c":"c1"}').toString('base64url')}`, 'query.cursor'],
      ['/v1/conversations/c1/transcript?limit=-1', 'query.limit'],
    ];
    for (const [url, field] of cases) {
      const res = await call('GET', url);
      expect(res.status, url).toBe(400);
      expect(res.json.errors.map((e: Json) => e.field), url).toContain(field);
    }
  });
});

describe('bad requests', () => {
  beforeEach(() => start({ AGENTQ_API_BODY_LIMIT_BYTES: '4096', AGENTQ_MAX_PROMPT_CHARS: '1000' }));

  it('bad payloads name their fields and store nothing', async () => {
    await enqueue('existing', { prompt: 'x' });
    const before = await rowCounts();
    const jobsBefore = await jobTotal();
    const cases: [conversation: string, body: unknown, fields: string[], headers?: Record<string, string>][] = [
      ['c1', {}, ['body.prompt']],
      ['c1', { prompt: 5 }, ['body.prompt']],
      ['c1', { prompt: '' }, ['body.prompt']],
      ['c1', { prompt: ' \n\t ' }, ['body.prompt']],
      ['c1', { prompt: 'x'.repeat(1001) }, ['body.prompt']],
      ['c1', { prompt: 'a\u0000b' }, ['body.prompt']],
      ['c1', { prompt: 'x', options: { maxTurns: 'many' } }, ['body.options.maxTurns']],
      ['c1', { prompt: 'x', options: { cwd: '/etc' } }, ['body.options.cwd']],
      ['c1', { prompt: 'x', priority: -1, delayMs: 1.5 }, ['body.priority', 'body.delayMs']],
      ['c1', { prompt: 'x', haltOnFailure: 'yes' }, ['body.haltOnFailure']],
      ['c1', { prompt: 'x', tenantId: 'beta' }, ['body.tenantId']],
      ['c1', { prompt: 'x', conversationId: 'other' }, ['body.conversationId']],
      ['c1', [{ prompt: 'x' }], ['body']],
      ['a..b', { prompt: 'x' }, ['params.id']],
      ['.hidden', { prompt: 'x' }, ['params.id']],
      ['a/b', { prompt: 'x' }, ['params.id']],
      ['a\\b', { prompt: 'x' }, ['params.id']],
      ['tab\there', { prompt: 'x' }, ['params.id']],
      ['x'.repeat(129), { prompt: 'x' }, ['params.id']],
      ['spa ce', { prompt: 'x' }, ['params.id']],
      ['c1', { prompt: 'x' }, ['headers.idempotency-key'], { 'idempotency-key': 'k'.repeat(201) }],
      ['existing', { prompt: 'x' }, ['headers.idempotency-key'], { 'idempotency-key': '' }],
    ];
    for (const [conversation, body, fields, headers] of cases) {
      const res = await enqueue(conversation, body, headers ? { headers } : {});
      const label = `${conversation} ${JSON.stringify(body).slice(0, 80)}`;
      expect(res.status, label).toBe(400);
      expect(res.res.headers['content-type'], label).toContain('application/problem+json');
      const named = res.json.errors.map((e: Json) => e.field);
      for (const f of fields) expect(named, `${label}: ${res.res.body}`).toContain(f);
      expect(res.json.detail, label).toEqual(expect.any(String));
    }
    expect(await rowCounts()).toEqual(before);
    expect(await jobTotal()).toBe(jobsBefore);
  });

  it('bodies too large are 413, non-JSON bodies 415, broken JSON 400; non-UUID turn ids 400; unknown routes 404; known paths with another method 405 naming the allowed ones', async () => {
    const before = await rowCounts();
    const big = await enqueue('c1', { prompt: 'x'.repeat(5000) });
    expect(big.status).toBe(413);
    expect(big.json).toMatchObject({ status: 413 });
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data; boundary=x']) {
      const res = await call('POST', '/v1/conversations/c1/turns', { body: 'prompt=x', headers: { 'content-type': type } });
      expect(res.status, type).toBe(415);
      expect(res.json.status).toBe(415);
    }
    const broken = await call('POST', '/v1/conversations/c1/turns', { body: '{"prompt": "x"', headers: { 'content-type': 'application/json' } });
    expect(broken.status).toBe(400);
    const noBody = await call('POST', '/v1/conversations/c1/turns');
    expect(noBody.status).toBe(400);
    expect(noBody.json.errors.map((e: Json) => e.field)).toContain('body');
    for (const url of ['/v1/turns/123', '/v1/turns/..%2F..%2Fetc', '/v1/turns/00000000-0000-4000-8000-00000000000g/cancel']) {
      const method = url.endsWith('/cancel') ? 'POST' : 'GET';
      const res = await call(method, url);
      expect(res.status, url).toBe(400);
      expect(res.json.errors.map((e: Json) => e.field)).toContain('params.id');
    }
    expect((await call('GET', '/v1/turns/6f1c1a52-4d8e-4b44-9a57-0d1a5e2b9c11')).status).toBe(404);
    expect((await call('GET', '/v1/nothing/here')).status).toBe(404);
    expect((await call('POST', '/v1/conversations/c1/nothing')).status).toBe(404);
    const put = await api.app.inject({ method: 'PUT', url: '/v1/conversations/c1', headers: { authorization: `Bearer ${KEY_A}` } });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('DELETE, GET, HEAD');
    expect(JSON.parse(put.body)).toMatchObject({ status: 405, title: 'Method Not Allowed' });
    const del = await api.app.inject({ method: 'DELETE', url: '/v1/turns/6f1c1a52-4d8e-4b44-9a57-0d1a5e2b9c11', headers: { authorization: `Bearer ${KEY_A}` } });
    expect(del.statusCode).toBe(405);
    expect(del.headers.allow).toBe('GET, HEAD');
    expect((await call('GET', '/v1/conversations/c1/turns')).status).toBe(405);
    expect(await rowCounts()).toEqual(before);
    expect(await jobTotal()).toBe(0);
  });

  it('/docs/json documents every conversation and turn route with its parameters and responses', async () => {
    const res = await api.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = JSON.parse(res.body);
    const expected: [string, string, string][] = [
      ['/v1/conversations/{id}/turns', 'post', '202'],
      ['/v1/conversations', 'get', '200'],
      ['/v1/conversations/{id}', 'get', '200'],
      ['/v1/conversations/{id}/transcript', 'get', '200'],
      ['/v1/conversations/{id}', 'delete', '204'],
      ['/v1/turns/{id}', 'get', '200'],
      ['/v1/turns/{id}/cancel', 'post', '200'],
    ];
    for (const [p, method, ok] of expected) {
      const op = doc.paths[p]?.[method];
      expect(op, `${method} ${p}`).toBeDefined();
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining([ok, '400', '401']));
    }
    const post = doc.paths['/v1/conversations/{id}/turns'].post;
    expect(post.parameters.map((p: Json) => p.name)).toEqual(expect.arrayContaining(['id', 'idempotency-key']));
    expect(JSON.stringify(post.requestBody)).toContain('prompt');
    expect(doc.paths['/v1/conversations'].get.parameters.map((p: Json) => p.name)).toEqual(expect.arrayContaining(['status', 'limit', 'cursor']));
  });
});

describe('rate limit', () => {
  beforeEach(() => start({ AGENTQ_API_RATE_LIMIT: '3' }));

  it('answers 429 past the limit of a key; other keys and /healthz are unaffected', async () => {
    for (let i = 0; i < 3; i++) expect((await call('GET', '/v1/conversations')).status).toBe(200);
    const limited = await call('GET', '/v1/conversations');
    expect(limited.status).toBe(429);
    expect(limited.json).toMatchObject({ status: 429, title: 'Too Many Requests' });
    expect((await enqueue('c1', { prompt: 'x' })).status).toBe(429);
    expect((await rowCounts()).turns).toBe(0);
    expect((await call('GET', '/v1/conversations', { key: KEY_B })).status).toBe(200);
    expect((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('agentq api', () => {
  beforeEach(() => start());

  it('apiCommand listens on a free port, answers real HTTP requests, and stops cleanly', async () => {
    const lines: string[] = [];
    const io = { env: {}, out: (s: string) => lines.push(s), err: (s: string) => lines.push(s) };
    let stop = () => {};
    const stopped = new Promise<void>((r) => (stop = r));
    const done = apiCommand(t.config, io, { port: '0' }, { stop: stopped });
    await waitUntil(() => lines.some((l) => l.includes('listening on')), 'the API to listen');
    const url = /listening on (http:\/\/\S+)/.exec(lines.join('\n'))![1]!;
    const post = await fetch(`${url}/v1/conversations/http-1/turns`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'over a socket' }),
    });
    expect(post.status).toBe(202);
    const list = await fetch(`${url}/v1/conversations`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(((await list.json()) as Json).items.map((i: Json) => i.conversationId)).toEqual(['http-1']);
    expect((await fetch(`${url}/v1/conversations`)).status).toBe(401);
    stop();
    expect(await done).toBe(0);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    expect(lines.at(-1)).toBe('agentq api stopped');
    expect(await apiCommand(t.config, io, { port: 'eighty' })).toBe(2);
  });

  it('`agentq api --port 0` as a process serves requests and exits 0 on SIGTERM', async () => {
    const env = { ...t.env, AGENTQ_API_KEYS: KEYS, AGENTQ_API_PORT: '1' };
    const script = "import { main } from './src/cli/main.ts'; process.exitCode = await main(process.argv);";
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, 'agentq', 'api', '--port', '0'], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitUntil(() => /listening on http/.test(stderr), `agentq api to listen (stderr: ${stderr})`, 30_000);
      const url = /listening on (http:\/\/\S+)/.exec(stderr)![1]!;
      const res = await fetch(`${url}/v1/conversations?limit=1`, { headers: { authorization: `Bearer ${KEY_B}` } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ items: [], nextCursor: null });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).toContain('agentq api stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

});
