// Scheduled agents: schedules in Postgres, BullMQ job schedulers driving the ticks, the
// overlap policy, re-sync after Redis loses its data, the API routes and the CLI commands.
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import { main, type CliIo } from '../src/cli/main.js';
import { loadConfig, type Config } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createScheduleQueue, scheduleQueueName, syncSchedulers, type TickJobData } from '../src/schedules/scheduler.js';
import { createSchedule, removeSchedule, type ScheduleHandles, type ScheduleView } from '../src/schedules/service.js';
import { enqueuerFor, runTick } from '../src/schedules/tick.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { startPrivateRedis, type PrivateRedis } from './helpers/infra.js';
import { waitUntil } from './helpers/processes.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

const KEY = 'schedules-test-key-0001';
const OTHER_KEY = 'schedules-test-key-0002';
const EVERY_SECOND = '* * * * * *';

interface Harness {
  t: TestAgentq;
  config: Config;
  client: AgentqClient;
  redis: Redis;
  queue: Queue<TickJobData>;
  handles: ScheduleHandles;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  // Workers stop before the queues and databases go; then the rest, last registered first.
  await stopWorkers().catch((err: unknown) => console.error('cleanup failed', err));
  while (cleanups.length > 0) await cleanups.pop()!().catch((err: unknown) => console.error('cleanup failed', err));
});

async function harness(overrides: Record<string, string> = {}): Promise<Harness> {
  const t = await createTestAgentq({ AGENTQ_API_KEYS: `${KEY}=default,${OTHER_KEY}=other`, AGENTQ_API_RATE_LIMIT: '0', ...overrides });
  const config = t.config;
  const client = createClient(config);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const queue = createScheduleQueue(config.queueName, redis, config.queuePrefix);
  cleanups.push(async () => {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    redis.disconnect();
    await client.close();
    await t.cleanup();
  });
  return { t, config, client, redis, queue, handles: { db: client.db, queue, maxPromptChars: config.worker.maxPromptChars } };
}

async function turnsOf(h: Harness, conversationId: string, tenant = 'default') {
  return (await h.client.getConversation(conversationId, tenant))?.turns ?? [];
}

async function scheduleRow(h: Harness, id: string) {
  const r = await h.client.db.$client.query<{ last_fired_at: Date | null; last_skipped_at: Date | null; last_turn_id: string | null }>(
    'select last_fired_at, last_skipped_at, last_turn_id from schedules where id = $1',
    [id],
  );
  return r.rows[0];
}

async function countRows(h: Harness, table: string): Promise<number> {
  const r = await h.client.db.$client.query<{ n: string }>(`select count(*) as n from ${table}`);
  return Number(r.rows[0]!.n);
}

/** Holds for `ms` while checking `cond` every 50 ms: the way to show that something does not happen. */
async function holdsFor(ms: number, cond: () => Promise<boolean>, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!(await cond())) throw new Error(`stopped holding: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function captureIo(env: Record<string, string>): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { env, out: (s) => stdout.push(s), err: (s) => stderr.push(s), stdout, stderr };
}

describe('scheduled agents', () => {
  it('a schedule with an every-second cron fires and its turns run', async () => {
    const h = await harness();
    await startWorker(h.config);
    const s = await createSchedule(h.handles, { name: 'heartbeat', conversationId: 'sched-1', prompt: 'tick', cron: EVERY_SECOND });
    expect(s.nextRunAt).not.toBeNull();
    await waitUntil(async () => (await turnsOf(h, 'sched-1')).filter((x) => x.status === 'succeeded').length >= 2, 'two scheduled turns succeeded', 20_000);
    const rows = await h.client.db.$client.query<{ source: string; idempotency_key: string; prompt: string }>(
      'select source, idempotency_key, prompt from turns order by seq',
    );
    expect(rows.rows.every((r) => r.source === 'schedule' && r.prompt === 'tick')).toBe(true);
    expect(rows.rows.every((r) => new RegExp(`^schedule:${s.id}:\\d+000$`).test(r.idempotency_key))).toBe(true);
    const row = await scheduleRow(h, s.id);
    expect(row?.last_fired_at).not.toBeNull();
    expect(rows.rows.length).toBeGreaterThanOrEqual(2);
    expect(await h.queue.getJobScheduler(s.id)).toMatchObject({ pattern: EVERY_SECOND, tz: 'UTC' });
  });

  it('overlap skip enqueues nothing while a turn runs; overlap queue enqueues on every tick', async () => {
    const h = await harness();
    await startWorker(h.config);
    const slow = '#fake {"delayMs":5000}\nslow work';
    const skip = await createSchedule(h.handles, { name: 'skipper', conversationId: 'busy-skip', prompt: slow, cron: EVERY_SECOND });
    await createSchedule(h.handles, { name: 'queuer', conversationId: 'busy-queue', prompt: slow, cron: EVERY_SECOND, overlap: 'queue' });
    await waitUntil(async () => (await turnsOf(h, 'busy-skip'))[0]?.status === 'running', 'the first skip-turn runs', 15_000);
    const startedAt = Date.now();
    // While that turn runs, later ticks are skipped and recorded as such...
    await waitUntil(
      async () => ((await scheduleRow(h, skip.id))?.last_skipped_at?.getTime() ?? 0) > startedAt + 1000,
      'a tick was skipped well after the first turn started',
      10_000,
    );
    const skipTurns = await turnsOf(h, 'busy-skip');
    expect(skipTurns[0]!.status).toBe('running');
    expect(skipTurns).toHaveLength(1);
    // ...while the queue policy piles turns up behind its running one.
    await waitUntil(async () => (await turnsOf(h, 'busy-queue')).length >= 3, 'three queue-turns enqueued', 10_000);
    const queueTurns = await turnsOf(h, 'busy-queue');
    expect(queueTurns.filter((x) => x.status === 'running')).toHaveLength(1);
    expect(queueTurns.filter((x) => x.status === 'queued').length).toBeGreaterThanOrEqual(2);
  });

  it('bad cron, bad time zone and bad fields are field errors and store nothing', async () => {
    const h = await harness();
    const api: Api = await buildApi(h.config);
    cleanups.push(() => api.close());
    const post = (body: unknown, key = KEY) =>
      api.app.inject({ method: 'POST', url: '/v1/schedules', headers: { authorization: `Bearer ${key}` }, payload: body as object });
    const good = { name: 'daily', conversationId: 'conv-1', prompt: 'report', cron: '0 9 * * 1-5', timezone: 'Europe/Paris' };
    const cases: [object, string][] = [
      [{ ...good, cron: 'every day' }, 'body.cron'],
      [{ ...good, cron: '61 * * * *' }, 'body.cron'],
      [{ ...good, cron: '* * * *' }, 'body.cron'],
      [{ ...good, cron: '0 0 30 2 *' }, 'body.cron'],
      [{ ...good, timezone: 'Mars/Olympus' }, 'body.timezone'],
      [{ ...good, timezone: '+01:00' }, 'body.timezone'],
      [{ ...good, overlap: 'sometimes' }, 'body.overlap'],
      [{ ...good, name: '../etc' }, 'body.name'],
      [{ ...good, conversationId: '' }, 'body.conversationId'],
      [{ ...good, prompt: '' }, 'body.prompt'],
      [{ ...good, options: { maxTurns: -1 } }, 'body.options.maxTurns'],
      [{ ...good, options: { cwd: '/tmp' } }, 'body.options'],
      [{ ...good, extra: 1 }, 'body'],
      [{ name: 'x' }, 'body.conversationId'],
    ];
    for (const [body, field] of cases) {
      const res = await post(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      const problem = res.json<{ errors?: { field: string; message: string }[] }>();
      // An unknown key may be named itself (body.options.cwd) or by its parent (body.options).
      expect(problem.errors?.some((e) => e.field === field || e.field.startsWith(`${field}.`)), JSON.stringify(problem)).toBe(true);
    }
    const cronError = (await post({ ...good, cron: '61 * * * *' })).json<{ errors: { field: string; message: string }[] }>();
    expect(cronError.errors[0]!.message).toMatch(/cron expression.*59/);
    expect(await countRows(h, 'schedules')).toBe(0);
    expect(await h.queue.getJobSchedulersCount()).toBe(0);

    // The good one is stored, its name is then taken, and only its tenant sees it.
    const created = await post(good);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ name: 'daily', tenantId: 'default', conversationId: 'conv-1', cron: '0 9 * * 1-5', timezone: 'Europe/Paris', overlap: 'skip', enabled: true });
    expect(await h.queue.getJobScheduler(created.json<ScheduleView>().id)).toMatchObject({ pattern: '0 9 * * 1-5', tz: 'Europe/Paris' });
    expect((await post(good)).statusCode).toBe(409);
    expect((await post(good, OTHER_KEY)).statusCode).toBe(201);
    const get = (url: string, key = KEY) => api.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${key}` } });
    expect((await get('/v1/schedules')).json<{ items: ScheduleView[] }>().items.map((s) => [s.tenantId, s.name])).toEqual([['default', 'daily']]);
    expect((await get('/v1/schedules/daily')).json<ScheduleView>().nextRunAt).toMatch(/T0[78]:00:00\.000Z$/);
    expect((await get('/v1/schedules/nope')).statusCode).toBe(404);
    expect((await get('/v1/schedules/bad..name')).json<{ errors: { field: string }[] }>().errors[0]!.field).toBe('params.name');
    expect((await api.app.inject({ method: 'GET', url: '/v1/schedules' })).statusCode).toBe(401);
    const del = (url: string, key = KEY) => api.app.inject({ method: 'DELETE', url, headers: { authorization: `Bearer ${key}` } });
    expect((await del('/v1/schedules/daily')).statusCode).toBe(204);
    expect((await del('/v1/schedules/daily')).statusCode).toBe(404);
    expect((await get('/v1/schedules/daily', OTHER_KEY)).statusCode).toBe(200);
    expect(await countRows(h, 'schedules')).toBe(1);
    expect(await h.queue.getJobSchedulersCount()).toBe(1);
    const doc = (await api.app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, object> }>();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/schedules', '/v1/schedules/{name}']));
  });

  it('after FLUSHALL of Redis the next sync restores the scheduler and it fires again', async () => {
    let redisServer: PrivateRedis | undefined = await startPrivateRedis();
    cleanups.push(async () => {
      await redisServer?.stop();
      redisServer = undefined;
    });
    const h = await harness({ REDIS_URL: redisServer.url });
    await startWorker(h.config);
    const s = await createSchedule(h.handles, { name: 'survivor', conversationId: 'sched-flush', prompt: 'tick', cron: EVERY_SECOND });
    await waitUntil(async () => (await turnsOf(h, 'sched-flush')).some((x) => x.status === 'succeeded'), 'a turn before the flush', 15_000);
    await redisServer.flushAll();
    const flushedAt = Date.now();
    expect(await h.queue.getJobScheduler(s.id)).toBeUndefined();
    // The worker's housekeeping (every second here) rebuilds the scheduler from Postgres.
    await waitUntil(async () => (await h.queue.getJobScheduler(s.id)) !== undefined, 'the scheduler is back', 10_000);
    await waitUntil(
      async () => ((await scheduleRow(h, s.id))?.last_fired_at?.getTime() ?? 0) > flushedAt,
      'a tick after the flush enqueued a turn',
      15_000,
    );
    const lastTurn = (await scheduleRow(h, s.id))!.last_turn_id!;
    expect((await h.client.waitForTurn(lastTurn, 15_000)).status).toBe('succeeded');
  });

  it('after its keys are deleted the scheduler is restored and fires again; sync adds, updates and removes', async () => {
    const h = await harness();
    await startWorker(h.config);
    const s = await createSchedule(h.handles, { name: 'resilient', conversationId: 'sched-keys', prompt: 'tick', cron: EVERY_SECOND });
    await waitUntil(async () => (await scheduleRow(h, s.id))?.last_fired_at != null, 'a first tick', 15_000);
    const prefix = `bull:${scheduleQueueName(h.config.queueName)}:repeat`;
    const keys = await h.redis.keys(`${prefix}*`);
    expect(keys).toContain(prefix);
    await h.redis.del(...keys);
    const deletedAt = Date.now();
    await waitUntil(async () => (await h.queue.getJobScheduler(s.id)) !== undefined, 'the scheduler is back', 10_000);
    await waitUntil(async () => ((await scheduleRow(h, s.id))?.last_fired_at?.getTime() ?? 0) > deletedAt + 1000, 'a tick after the restore', 15_000);

    // One pass by hand: a changed cron is updated, a disabled row's scheduler and one without a row removed.
    await h.client.db.$client.query("update schedules set cron = '0 0 * * *', timezone = 'Asia/Tokyo' where id = $1", [s.id]);
    const ghost = await createSchedule(h.handles, { name: 'ghost', conversationId: 'sched-ghost', prompt: 'x', cron: '0 0 1 1 *' });
    await h.client.db.$client.query('delete from schedules where id = $1', [ghost.id]);
    const off = await createSchedule(h.handles, { name: 'off', conversationId: 'sched-off', prompt: 'x', cron: '0 0 1 1 *' });
    await h.client.db.$client.query('update schedules set enabled = false where id = $1', [off.id]);
    const pass = await syncSchedulers(h.client.db, h.queue);
    // The worker's housekeeping may have done part of it first; together they converge.
    expect(pass.added).toBe(0);
    expect(await h.queue.getJobScheduler(s.id)).toMatchObject({ pattern: '0 0 * * *', tz: 'Asia/Tokyo' });
    expect(await h.queue.getJobScheduler(ghost.id)).toBeUndefined();
    expect(await h.queue.getJobScheduler(off.id)).toBeUndefined();
    expect(await syncSchedulers(h.client.db, h.queue)).toEqual({ added: 0, updated: 0, removed: 0, unchanged: 1 });
  });

  it('two workers run one schedule: one turn per tick, and a tick delivered twice enqueues once', async () => {
    const h = await harness({ AGENTQ_RECONCILE_INTERVAL_MS: '300' });
    await Promise.all([startWorker(h.config), startWorker(h.config)]);
    const s = await createSchedule(h.handles, { name: 'shared', conversationId: 'sched-two', prompt: 'tick', cron: EVERY_SECOND, overlap: 'queue' });
    const startedAt = Date.now();
    await waitUntil(async () => (await turnsOf(h, 'sched-two')).length >= 4, 'four ticks', 20_000);
    const elapsedS = (Date.now() - startedAt) / 1000;
    const keys = (await h.client.db.$client.query<{ idempotency_key: string }>('select idempotency_key from turns')).rows.map((r) => r.idempotency_key);
    const ticks = keys.map((k) => Number(k.split(':').pop()));
    // Whole seconds, each once, no more of them than seconds went by (both workers sync every 300 ms).
    expect(ticks.every((ms) => ms % 1000 === 0)).toBe(true);
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(ticks.length).toBeLessThanOrEqual(Math.ceil(elapsedS) + 1);

    const enqueue = enqueuerFor(h.client.db, h.client.queue, h.config.worker.maxPromptChars);
    const tickAt = new Date(Math.floor(Date.now() / 1000) * 1000 + 3_600_000);
    const [a, b] = await Promise.all([runTick(h.client.db, enqueue, s.id, tickAt), runTick(h.client.db, enqueue, s.id, tickAt)]);
    expect([a.kind, b.kind].sort()).toEqual(['duplicate', 'enqueued']);
    expect(a.kind !== 'skipped' && a.kind !== 'gone' && b.kind !== 'skipped' && b.kind !== 'gone' && a.turnId === b.turnId).toBe(true);
  });

  it('removing a schedule stops its ticks', async () => {
    const h = await harness();
    await startWorker(h.config);
    const s = await createSchedule(h.handles, { name: 'brief', conversationId: 'sched-stop', prompt: 'tick', cron: EVERY_SECOND });
    await waitUntil(async () => (await turnsOf(h, 'sched-stop')).length >= 1, 'a first turn', 15_000);
    expect(await removeSchedule(h.handles, 'default', 'brief')).toMatchObject({ id: s.id });
    expect(await h.queue.getJobScheduler(s.id)).toBeUndefined();
    // Once the removal has returned, no tick enqueues: nothing more for well over two ticks.
    const count = (await turnsOf(h, 'sched-stop')).length;
    await holdsFor(2500, async () => (await turnsOf(h, 'sched-stop')).length === count, 'no turn after the removal');
    expect(await countRows(h, 'schedules')).toBe(0);
  });

  it('a removal and a tick do not race: a tick under way finishes before the removal returns (which reports its turn), a later one finds nothing', async () => {
    const h = await harness();
    const s = await createSchedule(h.handles, { name: 'edge', conversationId: 'sched-edge', prompt: 'tick', cron: '0 9 * * *' });
    const real = enqueuerFor(h.client.db, h.client.queue, h.config.worker.maxPromptChars);
    // The tick has locked the schedule's row and is enqueuing its turn when the removal starts.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let enqueuing = false;
    const tick = runTick(h.client.db, async (input) => {
      enqueuing = true;
      await held;
      return real(input);
    }, s.id, new Date('2026-12-04T09:00:00Z'));
    await waitUntil(() => enqueuing, 'the tick holds the row');
    let removed: Awaited<ReturnType<typeof removeSchedule>> | null = null;
    const removal = removeSchedule(h.handles, 'default', 'edge').then((r) => (removed = r));
    // The removal waits for the tick's row lock (seen by Postgres), not for a timer.
    await waitUntil(
      async () => (await h.client.db.$client.query("select 1 from pg_stat_activity where wait_event_type = 'Lock' and query ilike 'delete from \"schedules\"%'")).rowCount === 1,
      'the removal waits for the row',
    );
    expect(removed).toBeNull();
    release();
    const fired = await tick;
    await removal;
    expect(fired.kind).toBe('enqueued');
    // When the removal returns, the tick's turn exists, and the removal says which it is.
    const turns = await turnsOf(h, 'sched-edge');
    expect(turns).toHaveLength(1);
    expect(removed!).toMatchObject({ lastTurnId: turns[0]!.turnId, lastFiredAt: '2026-12-04T09:00:00.000Z' });
    // The next tick (or one re-delivered) finds no schedule and enqueues nothing.
    expect((await runTick(h.client.db, real, s.id, new Date('2026-12-05T09:00:00Z'))).kind).toBe('gone');
    expect(await turnsOf(h, 'sched-edge')).toHaveLength(1);
  });

  it('PATCH and `schedule update` change only the given fields; disabling stops the ticks, enabling starts them; bad changes store nothing', async () => {
    const h = await harness();
    const api: Api = await buildApi(h.config);
    cleanups.push(() => api.close());
    const patch = (name: string, body: unknown, key = KEY) =>
      api.app.inject({ method: 'PATCH', url: `/v1/schedules/${name}`, headers: { authorization: `Bearer ${key}` }, payload: body as object });
    const s = await createSchedule(h.handles, { name: 'pulse', conversationId: 'sched-upd', prompt: 'first', cron: '0 9 * * *', timezone: 'Europe/Paris' });
    const rowOf = async () =>
      (await h.client.db.$client.query<{ prompt: string; cron: string; timezone: string; enabled: boolean; overlap: string; updated_at: Date }>('select * from schedules where id = $1', [s.id])).rows[0]!;
    const before = await rowOf();

    // Bad changes: each names its field; the row and the scheduler are untouched.
    const cases: [object, string][] = [
      [{}, 'body'],
      [{ cron: '61 * * * *' }, 'body.cron'],
      [{ timezone: 'Mars/Olympus' }, 'body.timezone'],
      [{ name: 'renamed' }, 'body'],
      [{ enabled: 'no' }, 'body.enabled'],
      [{ overlap: 'sometimes' }, 'body.overlap'],
      [{ prompt: '' }, 'body.prompt'],
      [{ options: { maxTurns: 0 } }, 'body.options.maxTurns'],
    ];
    for (const [body, field] of cases) {
      const res = await patch('pulse', body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      const errors = res.json<{ errors?: { field: string }[] }>().errors ?? [];
      expect(errors.some((e) => e.field === field || e.field.startsWith(`${field}.`)), JSON.stringify(errors)).toBe(true);
    }
    expect(await rowOf()).toEqual(before);
    expect(await h.queue.getJobScheduler(s.id)).toMatchObject({ pattern: '0 9 * * *', tz: 'Europe/Paris' });
    expect((await patch('nope', { prompt: 'x' })).statusCode).toBe(404);
    expect((await patch('pulse', { prompt: 'x' }, OTHER_KEY)).statusCode).toBe(404);

    // One field changes; the others keep their stored values.
    const changed = await patch('pulse', { prompt: 'second', overlap: 'queue' });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ prompt: 'second', overlap: 'queue', cron: '0 9 * * *', timezone: 'Europe/Paris', conversationId: 'sched-upd', enabled: true });
    expect((await rowOf()).updated_at.getTime()).toBeGreaterThanOrEqual(before.updated_at.getTime());
    // A new cron replaces the scheduler's pattern.
    expect((await patch('pulse', { cron: EVERY_SECOND, timezone: 'UTC' })).json()).toMatchObject({ cron: EVERY_SECOND, timezone: 'UTC' });
    expect(await h.queue.getJobScheduler(s.id)).toMatchObject({ pattern: EVERY_SECOND, tz: 'UTC' });

    // Ticking with the changed prompt; then disabled: the scheduler goes and no turn follows.
    await startWorker(h.config);
    await waitUntil(async () => (await turnsOf(h, 'sched-upd')).length >= 1, 'a tick after the update', 15_000);
    const prompts = await h.client.db.$client.query<{ prompt: string }>('select prompt from turns');
    expect(prompts.rows.every((r) => r.prompt === 'second')).toBe(true);
    const off = await patch('pulse', { enabled: false });
    expect(off.json()).toMatchObject({ enabled: false, nextRunAt: null });
    expect(await h.queue.getJobScheduler(s.id)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 300));
    const count = (await turnsOf(h, 'sched-upd')).length;
    await holdsFor(2500, async () => (await turnsOf(h, 'sched-upd')).length === count, 'no turn while disabled');

    // The CLI: enable again (ticks resume), and its errors name flags.
    const run = async (...argv: string[]) => {
      const io = captureIo(h.t.env);
      const code = await main(['node', 'agentq', ...argv], io);
      return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
    };
    expect((await run('schedule', 'update', 'pulse', '--enable', '--disable')).code).toBe(2);
    const badTz = await run('schedule', 'update', 'pulse', '--tz', 'Nowhere/Land');
    expect(badTz.code).toBe(2);
    expect(badTz.err).toMatch(/--tz: /);
    expect((await run('schedule', 'update', 'pulse')).err).toMatch(/flags: must change at least one field/);
    expect((await run('schedule', 'update', 'missing', '--enable')).code).toBe(1);
    const on = await run('schedule', 'update', 'pulse', '--enable', '--prompt', 'third', '--json');
    expect(on.code).toBe(0);
    expect(JSON.parse(on.out)).toMatchObject({ enabled: true, prompt: 'third', cron: EVERY_SECOND });
    await waitUntil(
      async () => (await h.client.db.$client.query('select 1 from turns where prompt = $1', ['third'])).rowCount! > 0,
      'a tick after enabling again',
      15_000,
    );
    const doc = (await api.app.inject({ method: 'GET', url: '/docs/json' })).json<{ paths: Record<string, object> }>();
    expect(Object.keys(doc.paths['/v1/schedules/{name}']!)).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
  });

  it('agentq schedule add, list and remove', async () => {
    const h = await harness();
    const run = async (...argv: string[]) => {
      const io = captureIo(h.t.env);
      const code = await main(['node', 'agentq', ...argv], io);
      return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
    };
    const added = await run('schedule', 'add', 'nightly', '--conversation', 'ticket-9', '--cron', '0 2 * * *', '--tz', 'Europe/Paris', '--', 'summarize', 'the', 'day');
    expect(added).toMatchObject({ code: 0 });
    expect(added.out).toMatch(/^added default\/nightly "0 2 \* \* \*" Europe\/Paris → ticket-9 overlap=skip/);
    const json = await run('schedule', 'add', 'weekly', '--conversation', 'ticket-9', '--cron', '0 0 8 * * 1', '--overlap', 'queue', '--tenant', 'acme', '--prompt', 'weekly review', '--json');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({ name: 'weekly', tenantId: 'acme', overlap: 'queue', prompt: 'weekly review', cron: '0 0 8 * * 1' });

    const dup = await run('schedule', 'add', 'nightly', '--conversation', 'ticket-9', '--cron', '0 2 * * *', '--', 'again');
    expect(dup.code).toBe(1);
    expect(dup.err).toMatch(/already exists/);
    const badCron = await run('schedule', 'add', 'bad', '--conversation', 'ticket-9', '--cron', '0 25 * * *', '--tz', 'Nowhere/Land', '--', 'x');
    expect(badCron.code).toBe(2);
    expect(badCron.err).toMatch(/--cron: .*cron expression/);
    expect(badCron.err).toMatch(/--tz: /);
    const noPrompt = await run('schedule', 'add', 'bad', '--conversation', 'ticket-9', '--cron', '0 2 * * *');
    expect(noPrompt.code).toBe(2);
    expect(noPrompt.err).toMatch(/the prompt: must not be empty/);
    const both = await run('schedule', 'add', 'bad', '--conversation', 'ticket-9', '--cron', '0 2 * * *', '--prompt', 'a', '--', 'b');
    expect(both.code).toBe(2);
    const missingFlag = await run('schedule', 'add', 'bad', '--', 'x');
    expect(missingFlag.code).not.toBe(0);
    expect(missingFlag.err).toMatch(/--conversation/);

    const list = await run('schedule', 'list', '--json');
    expect(list.code).toBe(0);
    expect(JSON.parse(list.out).map((s: ScheduleView) => [s.tenantId, s.name, s.prompt])).toEqual([
      ['acme', 'weekly', 'weekly review'],
      ['default', 'nightly', 'summarize the day'],
    ]);
    expect((await run('schedule', 'list', '--tenant', 'acme')).out).toMatch(/^acme\/weekly /);
    expect(await h.queue.getJobSchedulersCount()).toBe(2);

    expect(await run('schedule', 'remove', 'nightly')).toMatchObject({ code: 0, out: 'removed default/nightly; no tick enqueues after this' });
    expect((await run('schedule', 'remove', 'nightly')).code).toBe(1);
    expect((await run('schedule', 'remove', 'weekly')).code).toBe(1);
    expect((await run('schedule', 'remove', 'weekly', '--tenant', 'acme')).code).toBe(0);
    expect(await run('schedule', 'list')).toMatchObject({ code: 0, out: 'no schedules' });
    expect(await h.queue.getJobSchedulersCount()).toBe(0);
    // The environment is read per command: a bad one is named, not a crash.
    const badEnv = captureIo({ ...h.t.env, REDIS_URL: 'nope' });
    expect(await main(['node', 'agentq', 'schedule', 'list'], badEnv)).toBe(2);
    expect(loadConfig(h.t.env).queueName).toBe(h.config.queueName);
  });
});
