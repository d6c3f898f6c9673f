// `agentq stats --json`, GET /v1/stats and the autoscaling gauges on /metrics, checked
// against Redis and Postgres read directly, for a prepared state: a running turn, queued
// turns with priorities (two tenants), a delayed turn, and one live worker.
import { afterEach, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import { main } from '../src/cli/main.js';
import { workersKey } from '../src/queue/heartbeat.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';

const KEY_A = 'alpha-key-0123456789abcdef';
const KEYS = `${KEY_A}=alpha,beta-key-0123456789abcdef=beta`;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let t: TestAgentq | undefined;
let api: Api | undefined;
let worker: TurnWorker | undefined;
afterEach(async () => {
  await worker?.stop({ graceMs: 0 });
  await api?.close();
  await t?.cleanup();
  worker = api = t = undefined;
});

async function cli(argv: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'agentq', ...argv], { env, out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

function sample(text: string, name: string, labels: string = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

describe('stats', () => {
  it('the CLI, the API and the gauges report what Redis and Postgres hold', async () => {
    t = await createTestAgentq({ AGENTQ_API_KEYS: KEYS, AGENTQ_API_RATE_LIMIT: '0', AGENTQ_LOG_LEVEL: 'silent' });
    api = await buildApi(t.config);
    const client = api.deps.client;
    // One worker, one slot, busy with a long turn: everything else stays queued.
    const busy = await client.enqueueTurn({ conversationId: 'busy', tenantId: 'alpha', prompt: '#fake {"delayMs":60000}\nlong' });
    worker = createWorker(t.config, { concurrency: 1 });
    await worker.start();
    await waitUntil(async () => (await client.getTurn(busy.turnId))!.status === 'running', 'the long turn to run', 15_000);
    // Behind the running turn of the same conversation: queued and due, but without a job.
    await client.enqueueTurn({ conversationId: 'busy', tenantId: 'alpha', prompt: 'after' });
    await client.enqueueTurn({ conversationId: 'urgent', tenantId: 'alpha', prompt: 'p1', priority: 1 });
    await client.enqueueTurn({ conversationId: 'normal', tenantId: 'alpha', prompt: 'p2', priority: 2 });
    await client.enqueueTurn({ conversationId: 'fifo', tenantId: 'alpha', prompt: 'p0' });
    await client.enqueueTurn({ conversationId: 'later', tenantId: 'alpha', prompt: 'tomorrow', delayMs: 3_600_000 });
    await client.enqueueTurn({ conversationId: 'other', tenantId: 'beta', prompt: 'theirs', priority: 1 });

    // The truth, read directly.
    const pool = t.database.pool;
    const counts = async (tenant?: string) =>
      (
        await pool.query<{ status: string; priority: number; due: boolean; n: number }>(
          `select t.status, t.priority, t.run_at <= now() as due, count(*)::int as n from turns t join conversations c on c.id = t.conversation_id
            where t.status in ('queued','running') and ($1::text is null or c.tenant_id = $1) group by 1, 2, 3`,
          [tenant ?? null] as (string | null)[],
        )
      ).rows;
    const jobCounts = await client.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
    const workerIds = await client.redis.zrange(workersKey(t.config), '0', '-1');
    expect(workerIds).toEqual([worker.workerId]);
    const all = await counts();
    const alpha = await counts('alpha');
    const sum = (rows: typeof all, f: (r: (typeof all)[number]) => boolean) => rows.filter(f).reduce((a, r) => a + r.n, 0);

    const { code, out } = await cli(['stats', '--json'], t.env);
    expect(code).toBe(0);
    const s: Json = JSON.parse(out);
    expect(s.tenant).toBeNull();
    expect(s.queue).toEqual({
      depth: jobCounts.waiting! + jobCounts.prioritized!,
      waiting: jobCounts.waiting,
      prioritized: jobCounts.prioritized,
      active: jobCounts.active,
      delayed: jobCounts.delayed,
      failed: jobCounts.failed,
    });
    // The figures themselves, for this state: p1 (two tenants) and p2 prioritized, p0 waiting, one active, one delayed.
    expect(s.queue).toMatchObject({ depth: 4, waiting: 1, prioritized: 3, active: 1, delayed: 1 });
    expect(s.turns).toMatchObject({
      running: sum(all, (r) => r.status === 'running'),
      queued: sum(all, (r) => r.status === 'queued'),
      due: sum(all, (r) => r.status === 'queued' && r.due),
      delayed: sum(all, (r) => r.status === 'queued' && !r.due),
    });
    expect(s.turns).toMatchObject({ running: 1, queued: 6, due: 5, delayed: 1 });
    expect(s.turns.waitingByPriority).toEqual([
      { priority: 0, count: 2 },
      { priority: 1, count: 2 },
      { priority: 2, count: 1 },
    ]);
    expect(s.turns.oldestWaitingAgeSeconds).toBeGreaterThan(0);
    expect(s.turns.oldestWaitingAgeSeconds).toBeLessThan(60);
    expect(s.workers).toEqual({ seen: 1, windowSeconds: 30, ids: [worker.workerId] });

    const text = await cli(['stats'], t.env);
    expect(text.out).toContain('depth (due jobs not taken)  4');

    // The API: the caller's tenant's turns, the global queue and workers.
    const res = await api.app.inject({ method: 'GET', url: '/v1/stats', headers: { authorization: `Bearer ${KEY_A}` } });
    expect(res.statusCode).toBe(200);
    const a: Json = res.json();
    expect(a.tenant).toBe('alpha');
    expect(a.queue).toEqual(s.queue);
    expect(a.workers).toEqual(s.workers);
    expect(a.turns).toMatchObject({ running: 1, queued: sum(alpha, (r) => r.status === 'queued'), due: 4, delayed: 1 });
    expect(a.turns.waitingByPriority).toEqual([
      { priority: 0, count: 2 },
      { priority: 1, count: 1 },
      { priority: 2, count: 1 },
    ]);
    expect((await api.app.inject({ method: 'GET', url: '/v1/stats' })).statusCode).toBe(401);
    const scoped = await cli(['stats', '--json', '--tenant', 'beta'], t.env);
    expect(JSON.parse(scoped.out).turns).toMatchObject({ running: 0, queued: 1, due: 1, waitingByPriority: [{ priority: 1, count: 1 }] });
    const bad = await cli(['stats', '--tenant', 'no such/tenant'], t.env);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--tenant');

    // The gauges.
    const m = (await api.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(sample(m, 'agentq_queue_jobs', 'state="prioritized"')).toBe(3);
    expect(sample(m, 'agentq_turns_current', 'status="running"')).toBe(1);
    expect(sample(m, 'agentq_turns_current', 'status="queued"')).toBe(6);
    expect(sample(m, 'agentq_turns_waiting', 'priority="0"')).toBe(2);
    expect(sample(m, 'agentq_turns_waiting', 'priority="1"')).toBe(2);
    expect(sample(m, 'agentq_turns_waiting', 'priority="2"')).toBe(1);
    expect(sample(m, 'agentq_workers_seen')).toBe(1);
    expect(sample(m, 'agentq_turns_oldest_due_age_seconds')).toBeGreaterThan(0);

    // A stopped worker removes itself.
    await worker.stop({ graceMs: 0 });
    worker = undefined;
    expect(JSON.parse((await cli(['stats', '--json'], t.env)).out).workers.seen).toBe(0);
  }, 60_000);
});
