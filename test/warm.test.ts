// Warm conversations with the fake CLI: a kept CLI process answers turn after turn, the
// committed session is the same as for cold turns, a dead warm worker loses nothing, an
// idle conversation is let go, and ordering holds with turns queued behind each other.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { InputRequester } from '../src/live/inputs.js';
import { createWorkerMetrics } from '../src/metrics/workerMetrics.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { isAlive, waitUntil } from './helpers/processes.js';
import { killProcessesWithEnv, killWorkerProcesses, startWorkerProcess } from './helpers/workerProcess.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

let t: TestAgentq;
let client: AgentqClient;

const starts = (): FakeCliRecord[] => readFakeCliLog(t.logFile).filter((r) => r.event === 'start');
const pids = () => new Set(starts().map((r) => r.pid));

beforeEach(async () => {
  t = await createTestAgentq({ AGENTQ_WARM_IDLE_MS: '20000' });
  client = createClient(t.config);
});
afterEach(async () => {
  await stopWorkers();
  await killWorkerProcesses();
  await killProcessesWithEnv('FAKE_CLAUDE_LOG', t.logFile);
  await client.close();
  await t.cleanup();
});

async function lease(conversation: string) {
  const r = await t.database.pool.query<{ lease_owner: string | null; lease_warm: boolean; fencing_token: string }>(
    'select lease_owner, lease_warm, fencing_token from conversations where external_id = $1',
    [conversation],
  );
  return r.rows[0];
}

async function run(conversation: string, prompt: string, options?: Record<string, unknown>) {
  const { turnId } = await client.enqueueTurn({ conversationId: conversation, prompt, ...(options ? { options } : {}) });
  const done = await client.waitForTurn(turnId, 20_000);
  expect(done.status, `${prompt}: ${JSON.stringify(done.error)}`).toBe('succeeded');
  return turnId;
}

describe('warm conversations (fake CLI)', () => {
  it('a conversation of 20 quick turns runs on one CLI process, and its committed session resumes cold with all of them', async () => {
    const w = await startWorker(t.config);
    const prompts = Array.from({ length: 20 }, (_, i) => `quick ${i + 1}`);
    for (const p of prompts) await run('chat-20', p);
    const s = starts();
    expect(s.map((r) => r.promptText)).toEqual(prompts);
    expect(pids().size).toBe(1);
    expect(s.map((r) => r.turn)).toEqual(prompts.map((_, i) => i + 1));
    // Between turns the lease stays with the worker, marked warm.
    expect(await lease('chat-20')).toMatchObject({ lease_owner: w.workerId, lease_warm: true });
    // Each turn's events carry its own result; the cost is per turn, not the process's running sum.
    const costs = await t.database.pool.query<{ cost_usd: string }>(
      'select t.cost_usd from turns t join conversations c on c.id = t.conversation_id where c.external_id = $1 order by seq',
      ['chat-20'],
    );
    expect(costs.rows.map((r) => Number(r.cost_usd))).toEqual(prompts.map(() => 0.0001));

    // Shutdown lets the process go and releases the lease, after every commit.
    const [pid] = [...pids()];
    await w.stop();
    expect(isAlive(pid!)).toBe(false);
    expect(await lease('chat-20')).toMatchObject({ lease_owner: null, lease_warm: false });

    // A cold turn hydrated from Postgres sees every warm turn's prompt: they were all committed.
    await startWorker(t.config);
    await run('chat-20', 'cold again', { warm: false });
    const last = starts().at(-1)!;
    expect(last.resumed).toBe(true);
    expect(last.history).toEqual(prompts);
    expect(pids().size).toBe(2);
  });

  it('killing the warm worker between turns loses nothing: the next turn runs cold on another worker at once', async () => {
    // A long lease: the takeover must not wait for it to expire.
    const env = { ...t.env, AGENTQ_LEASE_MS: '20000' };
    const dir = path.join(t.root, 'procs');
    mkdirSync(dir, { recursive: true });
    const a = await startWorkerProcess(env, { name: 'warm-a', dir, concurrency: 1 });
    await run('chat-kill', 'one');
    await run('chat-kill', 'two');
    expect(pids().size).toBe(1);
    expect(await lease('chat-kill')).toMatchObject({ lease_owner: a.workerId, lease_warm: true });
    a.signal('SIGKILL');
    await a.exited;
    await startWorker(t.config);
    const started = Date.now();
    const turnId = await run('chat-kill', 'three');
    expect(Date.now() - started).toBeLessThan(10_000);
    const s = starts();
    expect(s).toHaveLength(3);
    expect(s[2]!.pid).not.toBe(s[0]!.pid);
    expect(s[2]!.resumed).toBe(true);
    expect(s[2]!.history).toEqual(['one', 'two']);
    const turn = await client.getTurn(turnId);
    expect(turn?.attempts).toBe(1);
  });

  it('an idle conversation is let go after its idleMs: process ended, lease released, gauge back to 0', async () => {
    const metrics = createWorkerMetrics();
    await startWorker(t.config, { observeWarm: metrics.observeWarm });
    const gauge = async () => (await metrics.registry.getSingleMetric('agentq_warm_conversations')!.get()).values[0]?.value;
    await run('chat-idle', 'hello', { warm: { idleMs: 600 } });
    const [pid] = [...pids()];
    // The turn's status is committed before its process is handed to the pool (after the commit).
    await waitUntil(async () => (await gauge()) === 1, 'the process to be kept', 5_000);
    await waitUntil(async () => (await lease('chat-idle'))?.lease_owner === null, 'the warm lease to be released', 10_000);
    await waitUntil(() => !isAlive(pid!), 'the warm CLI to exit', 10_000);
    expect(await lease('chat-idle')).toMatchObject({ lease_warm: false });
    expect(await gauge()).toBe(0);
    const released = await metrics.registry.getSingleMetric('agentq_warm_released_total')!.get();
    expect(released.values.find((v) => v.labels.reason === 'idle')?.value).toBe(1);
  });

  it('ordering holds when turns arrive faster than they complete, across two workers, on one process', async () => {
    await startWorker(t.config);
    await startWorker(t.config);
    await run('chat-burst', 'first');
    const ids: string[] = [];
    const prompts = Array.from({ length: 10 }, (_, i) => `#fake {"delayMs":30}\nburst ${i + 1}`);
    for (const p of prompts) ids.push((await client.enqueueTurn({ conversationId: 'chat-burst', prompt: p })).turnId);
    for (const id of ids) expect((await client.waitForTurn(id, 30_000)).status).toBe('succeeded');
    const s = starts();
    expect(s.map((r) => r.promptText)).toEqual(['first', ...prompts.map((_, i) => `burst ${i + 1}`)]);
    // Every turn saw exactly the turns before it.
    s.forEach((r, i) => expect(r.history?.length).toBe(i));
    // Whichever worker fetched a job, the turn ran on the one kept process.
    expect(pids().size).toBe(1);
  });

  it('a turn fetched by another worker while the warm one is busy with another conversation is handed over and does not wait', async () => {
    const metricsA = createWorkerMetrics();
    const metricsB = createWorkerMetrics();
    const a = await startWorker(t.config, { concurrency: 1, observeWarm: metricsA.observeWarm });
    await run('chat-x', 'one');
    const [pid] = [...pids()];
    // A's only slot is taken by a slow turn of another conversation.
    const slow = await client.enqueueTurn({ conversationId: 'chat-slow', prompt: '#fake {"delayMs":4000}\nslow', options: { warm: false } });
    await waitUntil(() => a.running().includes(slow.turnId), 'the slow turn to run on A', 10_000);
    await startWorker(t.config, { concurrency: 1, observeWarm: metricsB.observeWarm });
    const started = Date.now();
    await run('chat-x', 'two');
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await client.getTurn(slow.turnId))?.status).toBe('running');
    const x = starts().filter((r) => r.promptText === 'one' || r.promptText === 'two');
    expect(x.map((r) => r.pid)).toEqual([pid, pid]);
    const handoffs = await metricsB.registry.getSingleMetric('agentq_warm_handoffs_total')!.get();
    expect(handoffs.values.find((v) => v.labels.answer === 'accepted')?.value).toBe(1);
    const hits = await metricsA.registry.getSingleMetric('agentq_warm_turns_total')!.get();
    expect(hits.values.find((v) => v.labels.result === 'hit')?.value).toBe(1);
    expect((await client.waitForTurn(slow.turnId, 20_000)).status).toBe('succeeded');
  });

  it('a warm worker that does not answer (frozen) loses the conversation to a worker that runs the turn cold', async () => {
    const env = { ...t.env, AGENTQ_LEASE_MS: '20000' };
    const dir = path.join(t.root, 'procs');
    mkdirSync(dir, { recursive: true });
    const a = await startWorkerProcess(env, { name: 'warm-frozen', dir, concurrency: 1 });
    await run('chat-frozen', 'one');
    a.signal('SIGSTOP');
    try {
      const metrics = createWorkerMetrics();
      await startWorker(t.config, { observeWarm: metrics.observeWarm });
      const started = Date.now();
      await run('chat-frozen', 'two');
      expect(Date.now() - started).toBeLessThan(10_000);
      const s = starts();
      expect(s[1]!.pid).not.toBe(s[0]!.pid);
      expect(s[1]!.history).toEqual(['one']);
      const handoffs = await metrics.registry.getSingleMetric('agentq_warm_handoffs_total')!.get();
      expect(handoffs.values.find((v) => v.labels.answer === 'no_answer')?.value).toBe(1);
    } finally {
      a.signal('SIGCONT');
    }
    // Woken up, the old owner finds its warm lease gone and closes its CLI; it writes nothing.
    const oldPid = starts()[0]!.pid;
    await waitUntil(() => !isAlive(oldPid), 'the frozen worker to close its stale CLI', 15_000);
    await run('chat-frozen', 'three');
    expect(starts().at(-1)!.history).toEqual(['one', 'two']);
  });

  it('a kept CLI that dies between turns is let go (lease released) and the next turn runs cold with the whole history', async () => {
    const metrics = createWorkerMetrics();
    await startWorker(t.config, { observeWarm: metrics.observeWarm });
    await run('chat-crash', 'one');
    await run('chat-crash', 'two');
    const [pid] = [...pids()];
    process.kill(pid!, 'SIGKILL');
    await waitUntil(async () => (await lease('chat-crash'))?.lease_owner === null, 'the warm lease to be released', 10_000);
    await run('chat-crash', 'three');
    const last = starts().at(-1)!;
    expect(last.pid).not.toBe(pid);
    expect(last.history).toEqual(['one', 'two']);
    const released = await metrics.registry.getSingleMetric('agentq_warm_released_total')!.get();
    expect(released.values.find((v) => v.labels.reason === 'cli_exited')?.value).toBe(1);
  });

  it('over AGENTQ_WARM_MAX the least recently used conversation is let go', async () => {
    // Its own setup: a cap of 2.
    await client.close();
    await t.cleanup();
    t = await createTestAgentq({ AGENTQ_WARM_IDLE_MS: '20000', AGENTQ_WARM_MAX: '2' });
    client = createClient(t.config);
    const metrics = createWorkerMetrics();
    await startWorker(t.config, { observeWarm: metrics.observeWarm });
    const gauge = async () => (await metrics.registry.getSingleMetric('agentq_warm_conversations')!.get()).values[0]?.value;
    await run('lru-a', 'a1');
    await run('lru-b', 'b1');
    await run('lru-a', 'a2');
    expect(await gauge()).toBe(2);
    await run('lru-c', 'c1');
    // b was used least recently: it goes, a and c stay.
    await waitUntil(async () => (await lease('lru-b'))?.lease_owner === null, 'b to be let go', 10_000);
    expect(await lease('lru-a')).toMatchObject({ lease_warm: true });
    expect(await lease('lru-c')).toMatchObject({ lease_warm: true });
    expect(await gauge()).toBe(2);
    const byConversation = (c: string) => new Set(starts().filter((r) => r.promptText?.startsWith(c)).map((r) => r.pid));
    expect(byConversation('a').size).toBe(1);
  });

  it('mid-run input goes through the same stdin; a turn that took it lets its CLI finish and is not kept', async () => {
    await startWorker(t.config);
    const { turnId } = await client.enqueueTurn({
      conversationId: 'chat-input',
      prompt: '#fake {"delayMs":1500}\nfirst question',
      options: { streamInput: true },
    });
    const conn = new Redis(t.config.redisUrl, { maxRetriesPerRequest: null });
    const requester = new InputRequester(t.config.redisUrl, t.config, conn, pino({ level: 'silent' }));
    try {
      await waitUntil(async () => starts().length === 1, 'the CLI to start', 15_000);
      expect(await requester.deliver(turnId, 'and a follow-up', 3000)).toEqual({ outcome: 'delivered' });
    } finally {
      requester.close();
      conn.disconnect();
    }
    expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
    const results = await t.database.pool.query("select 1 from turn_events where turn_id = $1 and type = 'result'", [turnId]);
    expect(results.rowCount).toBe(2);
    expect(await lease('chat-input')).toMatchObject({ lease_owner: null, lease_warm: false });
    await run('chat-input', 'next');
    const s = starts();
    expect(s.map((r) => r.promptText)).toEqual(['first question', 'and a follow-up', 'next']);
    expect(s[2]!.pid).not.toBe(s[0]!.pid);
    // The follow-up the CLI answered after the first result was committed with the turn.
    expect(s[2]!.history).toEqual([expect.stringContaining('first question'), 'and a follow-up']);
  });

  it('a turn with other CLI options than the kept process runs on a new process', async () => {
    await startWorker(t.config);
    await run('chat-opts', 'one');
    await run('chat-opts', 'two', { model: 'claude-other' });
    expect(pids().size).toBe(2);
    await run('chat-opts', 'three', { model: 'claude-other' });
    expect(pids().size).toBe(2);
  });
});
