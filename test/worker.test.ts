// The turn protocol in one process: producer, worker, commit before ack.
import { readFileSync, existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { reconcile } from '../src/queue/reconciler.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';

let t: TestAgentq;
let client: AgentqClient;
let workers: TurnWorker[] = [];

type Rec = { event: string; prompt?: string; promptText?: string; history?: string[]; sessionId?: string; resumed?: boolean; startedAt?: number; endedAt?: number; pid: number };
const log = (): Rec[] =>
  existsSync(t.logFile)
    ? readFileSync(t.logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Rec)
    : [];

beforeEach(async () => {
  t = await createTestAgentq();
  client = createClient(t.config);
  workers = [];
});
afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop({ graceMs: 0 })));
  await client.close();
  await t.cleanup();
});

async function startWorker(concurrency = 2): Promise<TurnWorker> {
  const w = createWorker(t.config, { concurrency });
  workers.push(w);
  await w.start();
  return w;
}

describe('the turn protocol', () => {
  it('runs a conversation turn by turn, new session first, then resumes with the whole history', async () => {
    await startWorker();
    const ids = [];
    for (const p of ['one', 'two', 'three']) ids.push((await client.enqueueTurn({ conversationId: 'ticket-1', prompt: p })).turnId);
    for (const id of ids) expect((await client.waitForTurn(id, 20_000)).status).toBe('succeeded');
    const view = await client.getConversation('ticket-1');
    expect(view?.turns.map((x) => [x.seq, x.status])).toEqual([
      [1, 'succeeded'],
      [2, 'succeeded'],
      [3, 'succeeded'],
    ]);
    const starts = log().filter((r) => r.event === 'start');
    expect(starts.map((r) => r.promptText ?? r.prompt)).toEqual(['one', 'two', 'three']);
    expect(starts[0]!.resumed).toBe(false);
    expect(starts[2]!.resumed).toBe(true);
    expect(starts[2]!.history).toEqual(['one', 'two']);
    expect(view?.sessionId).toBe(starts[0]!.sessionId);
    expect(view?.turns[2]!.sessionIdBefore).toBe(view?.sessionId);
  });

  it('the same idempotency key returns the same turn and creates nothing', async () => {
    const a = await client.enqueueTurn({ conversationId: 'c', prompt: 'x', idempotencyKey: 'k1' });
    const b = await client.enqueueTurn({ conversationId: 'c', prompt: 'x', idempotencyKey: 'k1' });
    expect(b.turnId).toBe(a.turnId);
    expect(b.created).toBe(false);
    expect((await client.getConversation('c'))?.turns).toHaveLength(1);
  });

  it('a conversation that halts on failure cancels the turns queued behind a failed one', async () => {
    const failing = await client.enqueueTurn({
      conversationId: 'halting',
      prompt: '#fake {"apiError":{"status":400}}\nfails',
      haltOnFailure: true,
    });
    const second = await client.enqueueTurn({ conversationId: 'halting', prompt: 'second' });
    const third = await client.enqueueTurn({ conversationId: 'halting', prompt: 'third' });
    await startWorker();
    expect((await client.waitForTurn(failing.turnId, 20_000)).status).toBe('failed');
    for (const t of [second, third]) {
      const done = await client.waitForTurn(t.turnId, 5000);
      expect(done.status).toBe('cancelled');
      expect(done.error).toMatchObject({ class: 'conversation_halted' });
      expect(done.attempts).toBe(0);
    }
    expect(log().filter((r) => r.event === 'start').map((r) => r.promptText)).toEqual(['fails']);
  });

  it('the reconciler dispatches every due head even when one of them cannot be dispatched', async () => {
    const a = await client.enqueueTurn({ conversationId: 'r-a', prompt: 'a' });
    const b = await client.enqueueTurn({ conversationId: 'r-b', prompt: 'b' });
    await client.queue.obliterate({ force: true });
    // A priority BullMQ refuses makes this head's dispatch throw.
    await client.db.$client.query('update turns set priority = 3000000 where id = $1', [a.turnId]);
    const failures: string[] = [];
    const r = await reconcile(client.db, client.queue, 1000, (id) => failures.push(id));
    expect(r).toEqual({ checked: 2, dispatched: 1, failed: 1 });
    expect(failures).toEqual([a.turnId]);
    expect(await client.queue.getJob(b.turnId)).toBeDefined();
  });
});
