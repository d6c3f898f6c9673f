// AGENTQ_QUEUE_PREFIX: every Redis key and channel of a deployment sits under it, so a
// hash tag (`{agentq}`) keeps all of a queue's keys in one Redis Cluster slot.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, REDIS_URL, type TestAgentq } from './helpers/agentq.js';

const PREFIX = `{aq-${Math.random().toString(36).slice(2, 8)}}`;
let t: TestAgentq;
let client: AgentqClient;
let worker: TurnWorker;
let redis: Redis;

beforeAll(async () => {
  t = await createTestAgentq({ AGENTQ_QUEUE_PREFIX: PREFIX });
  client = createClient(t.config);
  worker = createWorker(t.config, { concurrency: 1 });
  await worker.start();
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
});

afterAll(async () => {
  await worker?.stop({ graceMs: 0 });
  await client?.close();
  for (const name of [t.config.queueName, `${t.config.queueName}-schedules`]) {
    const q = new Queue(name, { connection: redis, prefix: PREFIX });
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
  }
  await redis?.quit();
  await t?.cleanup();
});

describe('AGENTQ_QUEUE_PREFIX', () => {
  it('runs turns, cancels and keeps every key of the queue under the prefix', async () => {
    const first = await client.enqueueTurn({ conversationId: 'prefixed', prompt: 'hello' });
    expect((await client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');

    // Cancellation travels on the prefixed channel: a running turn stops.
    const slow = await client.enqueueTurn({ conversationId: 'prefixed', prompt: '#fake {"delayMs":20000}\nslow' });
    await expect.poll(async () => (await client.getTurn(slow.turnId))?.status, { timeout: 10_000 }).toBe('running');
    expect(await client.cancelTurn(slow.turnId)).toBe('cancel_requested');
    expect((await client.waitForTurn(slow.turnId, 10_000)).status).toBe('cancelled');

    const prefixed = await redis.keys(`${PREFIX}:${t.config.queueName}*`);
    expect(prefixed.length).toBeGreaterThan(0);
    expect(await redis.keys(`bull:${t.config.queueName}*`)).toEqual([]);
  });

  it('refuses a prefix Redis keys should not carry, naming the variable', () => {
    expect(() => loadConfig({ ...t.env, AGENTQ_QUEUE_PREFIX: 'a b' })).toThrow(/AGENTQ_QUEUE_PREFIX: must be 1-64 characters/);
  });
});
