// The live routes over a real Postgres, Redis, worker (fake CLI streaming its reply
// slowly) and a listening API read by a real HTTP client: GET /v1/turns/:id/events
// (stored first, then live; Last-Event-ID; the end) and POST /v1/turns/:id/input.
import http from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, sseConnectionName, type Api } from '../src/api/server.js';
import { loadConfig } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, REDIS_URL, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { waitUntil } from './helpers/processes.js';

const KEY_A = 'live-alpha-0123456789abcdef';
const KEY_B = 'live-beta-0123456789abcdef';

let t: TestAgentq;
let api: Api;
let base: string;
let client: AgentqClient;
let worker: TurnWorker;
let redis: Redis;
const open: Sse[] = [];

beforeAll(async () => {
  t = await createTestAgentq({
    AGENTQ_API_KEYS: `${KEY_A}=alpha,${KEY_B}=beta`,
    AGENTQ_API_RATE_LIMIT: '0',
    AGENTQ_CHECKPOINT_INTERVAL_MS: '250',
  });
  client = createClient(t.config);
  redis = new Redis(REDIS_URL);
  api = await buildApi(t.config);
  base = await api.app.listen({ host: '127.0.0.1', port: 0 });
  worker = createWorker(t.config, { concurrency: 2 });
  await worker.start();
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(async () => {
  await worker?.stop({ graceMs: 0 });
  await api?.close();
  await client?.close();
  const keys = await redis.keys(`bull:${t.config.queueName}:agentq:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  await t?.cleanup();
});

// ---- a small SSE client over fetch ---------------------------------------------------

interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

interface Sse {
  messages: SseMessage[];
  /** 'eof' when the server ended the stream, 'aborted' after close(). */
  done: Promise<'eof' | 'aborted'>;
  response: Promise<Response>;
  close(): void;
}

function parseBlock(block: string): SseMessage | undefined {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  return data.length === 0 && id === undefined ? undefined : { id, event, data: data.join('\n') };
}

function openSse(turnId: string, opts: { key?: string; lastEventId?: string; onMessage?: (m: SseMessage) => void } = {}): Sse {
  const controller = new AbortController();
  const messages: SseMessage[] = [];
  const headers: Record<string, string> = { authorization: `Bearer ${opts.key ?? KEY_A}`, accept: 'text/event-stream' };
  if (opts.lastEventId !== undefined) headers['last-event-id'] = opts.lastEventId;
  const response = fetch(`${base}/v1/turns/${turnId}/events`, { headers, signal: controller.signal });
  const done = (async (): Promise<'eof' | 'aborted'> => {
    const res = await response;
    if (!res.body) return 'eof';
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done: eof } = await reader.read();
        if (eof) return 'eof';
        buf += value;
        for (let i = buf.indexOf('\n\n'); i !== -1; i = buf.indexOf('\n\n')) {
          const m = parseBlock(buf.slice(0, i));
          buf = buf.slice(i + 2);
          if (m) {
            messages.push(m);
            opts.onMessage?.(m);
          }
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return 'aborted';
      throw err;
    }
  })();
  done.catch(() => undefined);
  const sse = { messages, done, response, close: () => controller.abort() };
  open.push(sse);
  return sse;
}

// ---- helpers ---------------------------------------------------------------------------

interface StoredEvent {
  id: string;
  event: string;
  data: string;
}

async function storedEvents(turnId: string): Promise<StoredEvent[]> {
  const r = await t.database.pool.query<{ attempt: number; seq: number; type: string; payload: string }>(
    'select attempt, seq, type, payload from turn_events where turn_id = $1 order by attempt, seq',
    [turnId],
  );
  return r.rows.map((e) => ({ id: `${e.attempt}-${e.seq}`, event: e.type, data: e.payload }));
}

async function isStored(turnId: string, id: string): Promise<boolean> {
  const [attempt, seq] = id.split('-').map(Number);
  const r = await t.database.pool.query('select 1 from turn_events where turn_id = $1 and attempt = $2 and seq = $3', [turnId, attempt, seq]);
  return r.rowCount === 1;
}

async function turnStatus(turnId: string): Promise<string> {
  const r = await t.database.pool.query<{ status: string }>('select status from turns where id = $1', [turnId]);
  return r.rows[0]!.status;
}

const withIds = (ms: SseMessage[]): StoredEvent[] => ms.filter((m) => m.id !== undefined).map((m) => ({ id: m.id!, event: m.event, data: m.data }));

/** A reply streamed as partial messages, one every `delayMs`: about a dozen events over ~12 × delayMs. */
function slowPrompt(text: string, delayMs: number): string {
  return `#fake ${JSON.stringify({ partialDelayMs: delayMs, reply: `${text} `.repeat(12).slice(0, 120) })}\n${text}`;
}

async function enqueueSlow(conversationId: string, delayMs = 200, tenantId = 'alpha') {
  return client.enqueueTurn({ conversationId, tenantId, prompt: slowPrompt(conversationId, delayMs), options: { includePartialMessages: true } });
}

interface ProblemBody {
  detail?: string;
  errors?: { field: string; message: string }[];
  [k: string]: unknown;
}

async function post(path: string, body: unknown, key = KEY_A): Promise<{ status: number; json: ProblemBody }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as ProblemBody };
}

const fakeLog = (): FakeCliRecord[] => readFakeCliLog(t.logFile);

async function sseReaderConnections(): Promise<number> {
  const list = String(await redis.client('LIST'));
  return list.split('\n').filter((l) => l.includes(`name=${sseConnectionName(t.config.queueName)} `)).length;
}

// ---- tests -----------------------------------------------------------------------------

describe('GET /v1/turns/:id/events', () => {
  it('replays what is stored, then follows live across checkpoints, and ends after the result', async () => {
    const turn = await enqueueSlow('replay-live');
    // Connect once some events are checkpointed and more are still to come.
    await waitUntil(async () => (await storedEvents(turn.turnId)).length >= 3, 'a first checkpoint of the turn', 15_000);
    const storedAtConnect = (await storedEvents(turn.turnId)).length;
    // For each event received: was it already in Postgres at that moment?
    const storedWhenReceived: Promise<boolean>[] = [];
    const sse = openSse(turn.turnId, {
      onMessage: (m) => {
        if (m.id) storedWhenReceived.push(isStored(turn.turnId, m.id));
      },
    });
    const res = await sse.response;
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(res.headers.get('x-accel-buffering')).toBe('no');

    expect(await sse.done).toBe('eof');
    expect(await turnStatus(turn.turnId)).toBe('succeeded');
    const stored = await storedEvents(turn.turnId);
    // The turn went on after the connection: part of the feed was live.
    expect(stored.length).toBeGreaterThan(storedAtConnect + 3);
    // Some arrived before their checkpoint: they came through the live stream, not Postgres.
    expect((await Promise.all(storedWhenReceived)).filter((s) => !s).length).toBeGreaterThan(0);
    expect(withIds(sse.messages)).toEqual(stored);
    // The last event is the result, then the end of the feed with the turn's status.
    expect(sse.messages.at(-2)?.event).toBe('result');
    expect(sse.messages.at(-1)).toEqual({ id: undefined, event: 'end', data: JSON.stringify({ status: 'succeeded' }) });

    // A finished turn: everything from Postgres at once, then the end.
    const again = openSse(turn.turnId);
    expect(await again.done).toBe('eof');
    expect(withIds(again.messages)).toEqual(stored);
    expect(again.messages.at(-1)?.event).toBe('end');
    // Every stream read through the API's one shared reader, which holds nothing for them now.
    expect(await sseReaderConnections()).toBe(1);
    await waitUntil(() => api.deps.streams.pending === 0, 'the shared reader has no open reads');
  });

  it('a disconnect mid-run and a reconnect with Last-Event-ID lose nothing and repeat nothing', async () => {
    const turn = await enqueueSlow('reconnect', 250);
    // Connected before the worker has produced anything (the turn may still be queued).
    const first = openSse(turn.turnId);
    await waitUntil(() => first.messages.length >= 4, 'four live events on the first connection', 15_000);
    first.close();
    expect(await first.done).toBe('aborted');
    const seen = withIds(first.messages);
    const lastId = seen.at(-1)!.id;
    // The server stops reading for the client when it goes.
    await waitUntil(() => api.deps.streams.pending === 0, 'no read left open after the disconnect');
    // Events go on meanwhile; reconnect while the turn still runs.
    await waitUntil(async () => (await storedEvents(turn.turnId)).length >= seen.length + 2, 'more events while disconnected', 15_000);
    expect(await turnStatus(turn.turnId)).toBe('running');

    const second = openSse(turn.turnId, { lastEventId: lastId });
    expect(await second.done).toBe('eof');
    const union = [...seen, ...withIds(second.messages)];
    expect(new Set(union.map((e) => e.id)).size).toBe(union.length);
    expect(union).toEqual(await storedEvents(turn.turnId));
    expect(withIds(second.messages)[0]!.id).not.toBe(lastId);
    expect(second.messages.at(-2)?.event).toBe('result');
    expect(second.messages.at(-1)?.event).toBe('end');
  });

  it('twelve streams of four running turns, opened at different moments, all read through one Redis connection and each gets every event once', async () => {
    const turns = await Promise.all(['many-1', 'many-2', 'many-3', 'many-4'].map((c) => enqueueSlow(c, 150)));
    const streams: { turnId: string; sse: Sse }[] = [];
    for (const [i, turn] of turns.entries()) {
      streams.push({ turnId: turn.turnId, sse: openSse(turn.turnId) });
      // The others join while the first ones are blocked in the shared read.
      if (i === 1) await waitUntil(() => streams[0]!.sse.messages.length >= 2, 'a first live event', 15_000);
      streams.push({ turnId: turn.turnId, sse: openSse(turn.turnId) }, { turnId: turn.turnId, sse: openSse(turn.turnId) });
    }
    await waitUntil(() => api.deps.streams.pending >= 4, 'the streams are waiting in the shared reader', 15_000).catch(() => undefined);
    expect(await sseReaderConnections()).toBe(1);
    for (const { turnId, sse } of streams) {
      expect(await sse.done).toBe('eof');
      expect(withIds(sse.messages)).toEqual(await storedEvents(turnId));
      expect(sse.messages.at(-1)?.event).toBe('end');
    }
    expect(await sseReaderConnections()).toBe(1);
    await waitUntil(() => api.deps.streams.pending === 0, 'no read left open');
  });

  it('an event too large for the live stream leaves a hole that Postgres fills, in order', async () => {
    const prompt = `#fake ${JSON.stringify({ partialDelayMs: 150, oversizedLineBytes: 100_000, reply: 'y'.repeat(100) })}\nbig`;
    const turn = await client.enqueueTurn({ conversationId: 'oversized', tenantId: 'alpha', prompt, options: { includePartialMessages: true } });
    const sse = openSse(turn.turnId);
    expect(await sse.done).toBe('eof');
    const stored = await storedEvents(turn.turnId);
    expect(stored.some((e) => e.data.length >= 100_000)).toBe(true);
    expect(withIds(sse.messages)).toEqual(stored);
  });

  it('a Last-Event-ID after the last event of a finished turn gives just the end', async () => {
    const turn = await client.enqueueTurn({ conversationId: 'finished', tenantId: 'alpha', prompt: 'quick' });
    expect((await client.waitForTurn(turn.turnId, 15_000)).status).toBe('succeeded');
    const stored = await storedEvents(turn.turnId);
    const sse = openSse(turn.turnId, { lastEventId: stored.at(-1)!.id });
    expect(await sse.done).toBe('eof');
    expect(sse.messages).toEqual([{ id: undefined, event: 'end', data: JSON.stringify({ status: 'succeeded' }) }]);
  });

  it("another tenant's turn is a 404 before any streaming; a bad Last-Event-ID is a 400", async () => {
    const turn = await client.enqueueTurn({ conversationId: 'private', tenantId: 'alpha', prompt: 'mine' });
    for (const url of [`/v1/turns/${turn.turnId}/events`, '/v1/turns/00000000-0000-4000-8000-000000000000/events']) {
      const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${KEY_B}` } });
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    const noKey = await fetch(`${base}/v1/turns/${turn.turnId}/events`);
    expect(noKey.status).toBe(401);
    const bad = await fetch(`${base}/v1/turns/${turn.turnId}/events`, { headers: { authorization: `Bearer ${KEY_A}`, 'last-event-id': 'nope' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as ProblemBody).errors).toEqual([expect.objectContaining({ field: 'headers.last-event-id' })]);
    const input = await post(`/v1/turns/${turn.turnId}/input`, { text: 'hi' }, KEY_B);
    expect(input.status).toBe(404);
    await client.waitForTurn(turn.turnId, 15_000);
  });
});

describe('keep-alive', () => {
  it('an open stream with nothing to send gets a `: ping` comment every AGENTQ_API_SSE_PING_MS', async () => {
    const other = await buildApi(loadConfig({ ...t.env, AGENTQ_API_SSE_PING_MS: '200' }));
    try {
      const url = await other.app.listen({ host: '127.0.0.1', port: 0 });
      const turn = await client.enqueueTurn({ conversationId: 'quiet', tenantId: 'alpha', prompt: 'later', delayMs: 3_600_000 });
      // node:http rather than fetch: fetch opens a spare connection that keeps the server's close waiting for 4 s.
      const req = http.get(`${url}/v1/turns/${turn.turnId}/events`, { headers: { authorization: `Bearer ${KEY_A}` }, agent: false });
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => req.once('response', resolve).once('error', reject));
      expect(res.statusCode).toBe(200);
      let text = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no three pings in 10 s: ${JSON.stringify(text)}`)), 10_000);
        res.on('data', (d: Buffer) => {
          text += d.toString();
          if ((text.match(/^: ping$/gm) ?? []).length >= 3) {
            clearTimeout(timer);
            resolve();
          }
        });
        res.once('end', () => reject(new Error(`the stream ended: ${text}`)));
      });
      // Nothing but pings: the turn has no events yet.
      expect(text.replace(/^: ping\n\n?/gm, '').trim()).toBe('');
      req.destroy();
      await client.cancelTurn(turn.turnId);
    } finally {
      await other.close();
    }
  });
});

describe('shutdown', () => {
  it('closing the API ends its open event streams', async () => {
    const other = await buildApi(t.config);
    const url = await other.app.listen({ host: '127.0.0.1', port: 0 });
    const turn = await client.enqueueTurn({ conversationId: 'far-future', tenantId: 'alpha', prompt: 'later', delayMs: 3_600_000 });
    // This API's reader connects on its first read: one more connection of that name, then one less after the close.
    const before = await sseReaderConnections();
    const res = await fetch(`${url}/v1/turns/${turn.turnId}/events`, { headers: { authorization: `Bearer ${KEY_A}` } });
    expect(res.status).toBe(200);
    const body = res.text();
    await waitUntil(() => other.deps.streams.pending === 1, 'the reader is following the live stream');
    // Its connection may still be being made (the read is queued on it until it is ready).
    await waitUntil(async () => (await sseReaderConnections()) === before + 1, "the API's reader connection is made");
    const closing = Date.now();
    await other.close();
    // Neither the stream nor its socket held the shutdown (a client's idle keep-alive would, for seconds).
    expect(Date.now() - closing).toBeLessThan(3000);
    await body;
    await waitUntil(async () => (await sseReaderConnections()) === before, "the closed API's reader connection is gone");
    await client.cancelTurn(turn.turnId);
  });
});

describe('POST /v1/turns/:id/input', () => {
  it('a message sent mid-run reaches the CLI, is recorded, and the feed ends after the last result', async () => {
    const turn = await client.enqueueTurn({
      conversationId: 'interactive',
      tenantId: 'alpha',
      prompt: '#fake {"delayMs":1500}\nfirst question',
      options: { streamInput: true },
    });
    const sse = openSse(turn.turnId);
    // The CLI is running once it printed system/init.
    await waitUntil(() => sse.messages.some((m) => m.event === 'init'), 'the CLI started', 15_000);
    const sent = await post(`/v1/turns/${turn.turnId}/input`, { text: 'and a follow-up' });
    expect(sent).toEqual({ status: 202, json: { turnId: turn.turnId, delivered: true } });

    expect(await sse.done).toBe('eof');
    expect((await client.waitForTurn(turn.turnId, 15_000)).status).toBe('succeeded');
    // The fake CLI ran the message as its second turn on the same process.
    const starts = fakeLog().filter((r) => r.event === 'start' && (r.promptText === 'first question' || r.promptText === 'and a follow-up'));
    expect(starts.map((r) => [r.promptText, r.turn])).toEqual([
      ['first question', 1],
      ['and a follow-up', 2],
    ]);
    const stored = await storedEvents(turn.turnId);
    const inputs = stored.filter((e) => e.event === 'agentq').map((e) => JSON.parse(e.data) as { subtype: string; text: string });
    expect(inputs).toEqual([{ type: 'agentq', subtype: 'user_input', text: 'and a follow-up' }]);
    expect(stored.filter((e) => e.event === 'result')).toHaveLength(2);
    expect(withIds(sse.messages)).toEqual(stored);
    expect(sse.messages.at(-2)?.event).toBe('result');
    expect(JSON.parse(sse.messages.at(-2)!.data).result).toBe('fake reply to: and a follow-up');

    // Finished now: 409.
    const late = await post(`/v1/turns/${turn.turnId}/input`, { text: 'too late' });
    expect(late.status).toBe(409);
    expect(late.json.detail).toMatch(/succeeded/);
  });

  it('409 for a queued turn and for a running turn without streamInput; 400 for bad text', async () => {
    const queued = await client.enqueueTurn({ conversationId: 'later', tenantId: 'alpha', prompt: 'later', delayMs: 3_600_000, options: { streamInput: true } });
    const q = await post(`/v1/turns/${queued.turnId}/input`, { text: 'hello' });
    expect(q.status).toBe(409);
    expect(q.json.detail).toMatch(/queued/);

    const plain = await client.enqueueTurn({ conversationId: 'plain', tenantId: 'alpha', prompt: '#fake {"delayMs":1500}\nplain' });
    await waitUntil(async () => (await turnStatus(plain.turnId)) === 'running', 'the plain turn runs', 15_000);
    const p = await post(`/v1/turns/${plain.turnId}/input`, { text: 'hello' });
    expect(p.status).toBe(409);
    expect(p.json.detail).toMatch(/streamInput/);

    for (const body of [{}, { text: '' }, { text: 'a\0b' }, { text: 5 }, { text: 'x', extra: 1 }]) {
      const r = await post(`/v1/turns/${queued.turnId}/input`, body);
      expect(r.status).toBe(400);
      expect(r.json.errors?.[0]?.field).toMatch(/^body/);
    }
    await client.waitForTurn(plain.turnId, 15_000);
    expect((await storedEvents(plain.turnId)).some((e) => e.event === 'agentq')).toBe(false);
    await client.cancelTurn(queued.turnId);
  });
});
