// The turn protocol's input boundary: a bad enqueue payload is refused with field-level
// errors before anything is stored, and a bad BullMQ job fails at once without retry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TurnInputError } from '../src/errors.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { TURN_JOB } from '../src/queue/jobs.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { captureLogger } from './helpers/infra.js';
import { waitUntil } from './helpers/processes.js';

const MAX_PROMPT_CHARS = 100;

let t: TestAgentq;
let client: AgentqClient;

beforeAll(async () => {
  t = await createTestAgentq({ AGENTQ_MAX_PROMPT_CHARS: String(MAX_PROMPT_CHARS) });
  t.database.pool.on('error', () => undefined);
  client = createClient(t.config);
});
afterAll(async () => {
  await client?.close();
  await t?.cleanup();
});

async function rowCounts(): Promise<{ conversations: number; turns: number; jobs: number }> {
  const r = await t.database.pool.query<{ c: string; t: string }>(
    'select (select count(*) from conversations) as c, (select count(*) from turns) as t',
  );
  const jobs = await client.queue.getJobCountByTypes('waiting', 'delayed', 'prioritized', 'active', 'completed', 'failed');
  return { conversations: Number(r.rows[0]!.c), turns: Number(r.rows[0]!.t), jobs };
}

/** Enqueues `payload` and returns the TurnInputError it must be refused with. */
async function refused(payload: unknown): Promise<TurnInputError> {
  let caught: unknown;
  try {
    await client.enqueueTurn(payload as Parameters<AgentqClient['enqueueTurn']>[0]);
  } catch (err) {
    caught = err;
  }
  expect(caught, `payload ${JSON.stringify(payload)} was accepted`).toBeInstanceOf(TurnInputError);
  return caught as TurnInputError;
}

const ok = { conversationId: 'ticket-1', prompt: 'hello' };

describe('enqueue payloads are validated before anything is stored', () => {
  const cases: { name: string; payload: unknown; fields: string[] }[] = [
    // Wrong types.
    { name: 'prompt is a number', payload: { ...ok, prompt: 42 }, fields: ['prompt'] },
    { name: 'conversationId is a number', payload: { ...ok, conversationId: 7 }, fields: ['conversationId'] },
    { name: 'tenantId is an object', payload: { ...ok, tenantId: { a: 1 } }, fields: ['tenantId'] },
    { name: 'options is a string', payload: { ...ok, options: 'fast' }, fields: ['options'] },
    { name: 'options.maxTurns is a string', payload: { ...ok, options: { maxTurns: '3' } }, fields: ['options.maxTurns'] },
    { name: 'idempotencyKey is a number', payload: { ...ok, idempotencyKey: 1 }, fields: ['idempotencyKey'] },
    { name: 'source is unknown', payload: { ...ok, source: 'cron' }, fields: ['source'] },
    { name: 'the payload is not an object', payload: 'hello', fields: ['(root)'] },
    { name: 'prompt is missing', payload: { conversationId: 'c' }, fields: ['prompt'] },
    { name: 'prompt is empty', payload: { ...ok, prompt: '' }, fields: ['prompt'] },
    // Size.
    { name: 'an oversized prompt', payload: { ...ok, prompt: 'x'.repeat(MAX_PROMPT_CHARS + 1) }, fields: ['prompt'] },
    { name: 'a NUL in the prompt', payload: { ...ok, prompt: 'a\0b' }, fields: ['prompt'] },
    // Conversation ids that could escape a directory or break a file name.
    { name: 'conversationId with /', payload: { ...ok, conversationId: 'a/b' }, fields: ['conversationId'] },
    { name: 'conversationId with \\', payload: { ...ok, conversationId: 'a\\b' }, fields: ['conversationId'] },
    { name: 'conversationId ..', payload: { ...ok, conversationId: '..' }, fields: ['conversationId'] },
    { name: 'conversationId with ..', payload: { ...ok, conversationId: 'a..b' }, fields: ['conversationId'] },
    { name: 'conversationId ../etc', payload: { ...ok, conversationId: '../etc' }, fields: ['conversationId'] },
    { name: 'conversationId starting with .', payload: { ...ok, conversationId: '.hidden' }, fields: ['conversationId'] },
    { name: 'conversationId with NUL', payload: { ...ok, conversationId: 'a\0b' }, fields: ['conversationId'] },
    { name: 'conversationId with a newline', payload: { ...ok, conversationId: 'a\nb' }, fields: ['conversationId'] },
    { name: 'conversationId with DEL', payload: { ...ok, conversationId: 'a\x7fb' }, fields: ['conversationId'] },
    { name: 'conversationId with ESC', payload: { ...ok, conversationId: 'a\x1b[2Jb' }, fields: ['conversationId'] },
    { name: 'conversationId with a space', payload: { ...ok, conversationId: 'a b' }, fields: ['conversationId'] },
    { name: 'conversationId too long', payload: { ...ok, conversationId: 'a'.repeat(129) }, fields: ['conversationId'] },
    { name: 'empty conversationId', payload: { ...ok, conversationId: '' }, fields: ['conversationId'] },
    // Tenant ids, same rules.
    { name: 'tenantId with /', payload: { ...ok, tenantId: 'acme/x' }, fields: ['tenantId'] },
    { name: 'tenantId ..', payload: { ...ok, tenantId: '..' }, fields: ['tenantId'] },
    { name: 'tenantId with NUL', payload: { ...ok, tenantId: 'acme\0' }, fields: ['tenantId'] },
    { name: 'tenantId with a tab', payload: { ...ok, tenantId: 'ac\tme' }, fields: ['tenantId'] },
    { name: 'tenantId too long', payload: { ...ok, tenantId: 't'.repeat(65) }, fields: ['tenantId'] },
    // Options.
    { name: 'an unknown options key', payload: { ...ok, options: { maxTurns: 2, dangerouslyRunAnything: true } }, fields: ['options'] },
    { name: 'a runner-only option (cwd)', payload: { ...ok, options: { cwd: '/etc' } }, fields: ['options'] },
    { name: 'a bad permissionMode', payload: { ...ok, options: { permissionMode: 'yolo' } }, fields: ['options.permissionMode'] },
    { name: 'an unknown top-level key', payload: { ...ok, turnId: 'x' }, fields: ['(root)'] },
    // Scheduling.
    { name: 'a negative delay', payload: { ...ok, delayMs: -1 }, fields: ['delayMs'] },
    { name: 'a fractional delay', payload: { ...ok, delayMs: 1.5 }, fields: ['delayMs'] },
    { name: 'a delay over a year', payload: { ...ok, delayMs: 400 * 24 * 3600 * 1000 }, fields: ['delayMs'] },
    { name: 'a negative priority', payload: { ...ok, priority: -1 }, fields: ['priority'] },
    { name: 'a fractional priority', payload: { ...ok, priority: 0.5 }, fields: ['priority'] },
    { name: 'a string priority', payload: { ...ok, priority: 'high' }, fields: ['priority'] },
    { name: 'a priority past BullMQ range', payload: { ...ok, priority: 2_097_152 }, fields: ['priority'] },
    { name: 'an idempotency key with a newline', payload: { ...ok, idempotencyKey: 'k\n1' }, fields: ['idempotencyKey'] },
  ];

  it.each(cases)('$name → TurnInputError naming $fields, nothing stored', async ({ payload, fields }) => {
    const err = await refused(payload);
    expect(err.fields).toEqual(fields);
    for (const f of fields) expect(err.message).toContain(f);
    expect(await rowCounts()).toEqual({ conversations: 0, turns: 0, jobs: 0 });
  });

  it('names every bad field of one payload at once', async () => {
    const err = await refused({ conversationId: 'a/b', tenantId: '..', prompt: 5, priority: -2, delayMs: -5, options: { nope: 1 } });
    expect([...err.fields].sort()).toEqual(['conversationId', 'delayMs', 'options', 'priority', 'prompt', 'tenantId']);
    expect(await rowCounts()).toEqual({ conversations: 0, turns: 0, jobs: 0 });
  });

  it('the limits themselves are accepted', async () => {
    const r = await client.enqueueTurn({
      conversationId: 'a'.repeat(128),
      tenantId: 't'.repeat(64),
      prompt: 'x'.repeat(MAX_PROMPT_CHARS),
      priority: 2_097_151,
      delayMs: 60_000,
      options: { maxTurns: 1, permissionMode: 'bypassPermissions' },
    });
    expect(r.created).toBe(true);
    const counts = await rowCounts();
    expect(counts.conversations).toBe(1);
    expect(counts.turns).toBe(1);
    await t.database.pool.query('delete from conversations');
    await client.queue.obliterate({ force: true });
  });
});

describe('a job with a bad payload added straight to the queue', () => {
  let worker: TurnWorker;
  const captured = captureLogger('warn');

  beforeAll(async () => {
    worker = createWorker(t.config, { concurrency: 2, log: captured.log });
    await worker.start();
  });
  afterAll(async () => {
    await worker?.stop({ graceMs: 0 });
  });

  const bad: { name: string; jobName: string; data: unknown; reason: RegExp }[] = [
    { name: 'a turnId that is not a uuid', jobName: TURN_JOB, data: { turnId: '../../etc/passwd' }, reason: /invalid turn job: turnId/ },
    { name: 'no turnId', jobName: TURN_JOB, data: {}, reason: /invalid turn job: turnId/ },
    { name: 'an extra field', jobName: TURN_JOB, data: { turnId: '00000000-0000-4000-8000-000000000000', prompt: 'x' }, reason: /invalid turn job/ },
    { name: 'an unknown job name', jobName: 'rm-rf', data: { turnId: '00000000-0000-4000-8000-000000000000' }, reason: /unknown job name/ },
  ];

  it.each(bad)('$name fails at once, without retry, and stores nothing', async ({ jobName, data, reason }) => {
    // Generous retry options: an UnrecoverableError must override them.
    const job = await client.queue.add(jobName as typeof TURN_JOB, data as { turnId: string }, {
      attempts: 5,
      backoff: { type: 'fixed', delay: 10 },
      removeOnFail: false,
    });
    await waitUntil(async () => (await job.getState()) === 'failed', 'the job failed', 10_000);
    const failed = (await client.queue.getJob(job.id!))!;
    expect(failed.failedReason).toMatch(reason);
    expect(failed.attemptsMade).toBe(1);
    expect(await failed.getState()).toBe('failed');
    // Failed loudly: logged as an error.
    await waitUntil(() => captured.matching('turn job failed').some((r) => (r.err as { message?: string }).message?.match(reason)), 'the failure was logged');
    const r = await t.database.pool.query<{ c: string; t: string }>('select (select count(*) from conversations) as c, (select count(*) from turns) as t');
    expect(r.rows[0]).toEqual({ c: '0', t: '0' });
  });
});
