// The turn protocol when things go wrong: Redis loses its data, Postgres is unreachable at
// commit time, the CLI fails in each of its ways, a stored session disappears. Real Redis
// (a private server where the test flushes it), real Postgres, in-process workers, the
// fake CLI.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import type { TurnWorker, WorkerOptions } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { captureLogger, scriptedFakeCli, startPrivateRedis, startTcpProxy } from './helpers/infra.js';
import { waitUntil } from './helpers/processes.js';
import * as workers from './helpers/workers.js';

/** Everything a test started, undone after it: its workers first, then the rest in reverse order. */
let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  const errors: unknown[] = [];
  await workers.stopWorkers().catch((err: unknown) => errors.push(err));
  for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => errors.push(err));
  cleanups = [];
  if (errors.length > 0) throw errors[0];
});

interface Harness {
  t: TestAgentq;
  client: AgentqClient;
  /** Starts an in-process worker (stopped after the test), by default on the harness config, 4 turns at once. */
  startWorker(options?: WorkerOptions & { config?: Config }): Promise<TurnWorker>;
  /** The fake CLI's invocation records. */
  cliLog(): FakeCliRecord[];
  /** The turn row, straight from Postgres. */
  turn(turnId: string): Promise<TurnDbRow>;
  conversationRow(externalId: string): Promise<{ id: string; session_id: string | null; lease_owner: string | null }>;
  events(turnId: string): Promise<{ attempt: number; seq: number; type: string; payload: string }[]>;
}

interface TurnDbRow {
  status: string;
  attempts: number;
  error: { class: string; message: string; retryable: boolean } | null;
  session_id_after: string | null;
  run_at: Date;
  finished_at: Date | null;
  now: Date;
}

async function harness(overrides: Record<string, string> = {}): Promise<Harness> {
  const t = await createTestAgentq({ AGENTQ_LOG_LEVEL: 'silent', ...overrides });
  cleanups.push(() => t.cleanup());
  // Dropping the database at cleanup ends connections the pool may still be closing.
  t.database.pool.on('error', () => undefined);
  const client = createClient(t.config);
  cleanups.push(() => client.close());
  const q = <R extends object>(text: string, params: unknown[]) => t.database.pool.query<R>(text, params);
  return {
    t,
    client,
    startWorker: ({ config = t.config, ...options } = {}) => workers.startWorker(config, { concurrency: 4, ...options }),
    cliLog: () => readFakeCliLog(t.logFile),
    async turn(turnId) {
      const r = await q<TurnDbRow>('select status, attempts, error, session_id_after, run_at, finished_at, now() as now from turns where id = $1', [turnId]);
      if (!r.rows[0]) throw new Error(`no turn ${turnId}`);
      return r.rows[0];
    },
    async conversationRow(externalId) {
      const r = await q<{ id: string; session_id: string | null; lease_owner: string | null }>(
        "select id, session_id, lease_owner from conversations where tenant_id = 'default' and external_id = $1",
        [externalId],
      );
      if (!r.rows[0]) throw new Error(`no conversation ${externalId}`);
      return r.rows[0];
    },
    async events(turnId) {
      const r = await q<{ attempt: number; seq: number; type: string; payload: string }>(
        'select attempt, seq, type, payload from turn_events where turn_id = $1 order by attempt, seq',
        [turnId],
      );
      return r.rows;
    },
  };
}

const starts = (h: Harness) => h.cliLog().filter((r) => r.event === 'start');

describe('Redis loses its data', () => {
  it('10 turns queued, Redis flushed with no worker running: the reconciler pass of start() dispatches them and all run once', async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.stop());
    // No periodic pass during this test: only start()'s own pass can repair the queue.
    const h = await harness({ REDIS_URL: redis.url, AGENTQ_RECONCILE_INTERVAL_MS: '600000' });
    const plan: [string, number][] = [
      ['conv-a', 4],
      ['conv-b', 3],
      ['conv-c', 2],
      ['conv-d', 1],
    ];
    const ids: { id: string; conv: string; prompt: string }[] = [];
    for (const [conv, n] of plan) {
      for (let i = 1; i <= n; i++) {
        const prompt = `${conv} turn ${i}`;
        ids.push({ id: (await h.client.enqueueTurn({ conversationId: conv, prompt })).turnId, conv, prompt });
      }
    }
    expect(ids).toHaveLength(10);
    // Only each conversation's head has a job.
    expect(await h.client.queue.getJobCounts('waiting', 'delayed', 'prioritized')).toEqual({ waiting: 4, delayed: 0, prioritized: 0 });

    await redis.flushAll();
    expect(await h.client.queue.getJobCounts('waiting', 'delayed', 'prioritized', 'active')).toEqual({ waiting: 0, delayed: 0, prioritized: 0, active: 0 });

    const worker = await h.startWorker();
    for (const { id } of ids) expect((await h.client.waitForTurn(id, 20_000)).status).toBe('succeeded');

    // Each turn ran exactly once, in order within its conversation, resuming the history.
    const runs = starts(h);
    expect(runs.map((r) => r.promptText).sort()).toEqual(ids.map((x) => x.prompt).sort());
    for (const [conv, n] of plan) {
      const mine = runs.filter((r) => r.promptText!.startsWith(`${conv} `));
      expect(mine.map((r) => r.promptText)).toEqual(Array.from({ length: n }, (_, i) => `${conv} turn ${i + 1}`));
      expect(mine.at(-1)!.history).toEqual(mine.slice(0, -1).map((r) => r.promptText));
    }
    for (const { id } of ids) expect((await h.turn(id)).attempts).toBe(1);
    // Nothing is left to repair.
    expect(await worker.reconcileNow()).toEqual({ checked: 0, dispatched: 0, failed: 0 });
  });

  it('Redis flushed while a worker runs (a turn active, others delayed): the periodic pass re-dispatches, each turn runs once', async () => {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.stop());
    const h = await harness({ REDIS_URL: redis.url, AGENTQ_RECONCILE_INTERVAL_MS: '200' });
    await h.startWorker();

    // x-1 is running when Redis is flushed; y-1 and z-1 are delayed jobs, lost in the flush.
    const x1 = await h.client.enqueueTurn({ conversationId: 'conv-x', prompt: '#fake {"delayMs":1200}\nx turn 1' });
    const x2 = await h.client.enqueueTurn({ conversationId: 'conv-x', prompt: 'x turn 2' });
    const y1 = await h.client.enqueueTurn({ conversationId: 'conv-y', prompt: 'y turn 1', delayMs: 3000 });
    const y2 = await h.client.enqueueTurn({ conversationId: 'conv-y', prompt: 'y turn 2' });
    const z1 = await h.client.enqueueTurn({ conversationId: 'conv-z', prompt: 'z turn 1', delayMs: 3000 });
    await waitUntil(async () => (await h.turn(x1.turnId)).status === 'running' && starts(h).length === 1, 'x turn 1 is running');
    expect(await (await h.client.queue.getJob(y1.turnId))?.getState()).toBe('delayed');

    await redis.flushAll();

    const all = [x1, x2, y1, y2, z1];
    for (const { turnId } of all) expect((await h.client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
    const runs = starts(h).map((r) => r.promptText);
    expect(runs.sort()).toEqual(['x turn 1', 'x turn 2', 'y turn 1', 'y turn 2', 'z turn 1']);
    for (const { turnId } of all) expect((await h.turn(turnId)).attempts).toBe(1);
  });
});

describe('Postgres unreachable at commit time', () => {
  it('the job stays active and nothing is committed while Postgres is away; the turn commits once when it is back', async () => {
    const h = await harness({ AGENTQ_LOG_LEVEL: 'warn' });
    const target = new URL(h.t.database.url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    cleanups.push(() => proxy.close());
    const viaProxy = new URL(h.t.database.url);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    const workerConfig = loadConfig({ ...h.t.env, DATABASE_URL: viaProxy.toString() });
    const captured = captureLogger('warn');
    await h.startWorker({ config: workerConfig, log: captured.log, concurrency: 1 });

    const first = await h.client.enqueueTurn({ conversationId: 'pg-outage', prompt: '#fake {"delayMs":1500}\nthe long turn' });
    const second = await h.client.enqueueTurn({ conversationId: 'pg-outage', prompt: 'the next turn' });
    await waitUntil(() => starts(h).length === 1, 'the CLI started the first turn');
    expect(proxy.accepted()).toBeGreaterThan(0);

    await proxy.cut();
    // The CLI finishes while Postgres is away, and the commit keeps failing.
    await waitUntil(() => h.cliLog().some((r) => r.event === 'end'), 'the CLI finished the first turn');
    await waitUntil(() => captured.matching('Postgres unreachable; retrying the write').length >= 2, 'the commit was retried twice');
    // The heartbeat fails, logs, and the attempt keeps going.
    await waitUntil(() => captured.matching('lease renewal failed').length >= 1, 'a heartbeat failed');

    // Not acknowledged, not committed.
    expect(await (await h.client.queue.getJob(first.turnId))?.getState()).toBe('active');
    const during = await h.turn(first.turnId);
    expect(during.status).toBe('running');
    expect(during.finished_at).toBeNull();
    const conv = await h.conversationRow('pg-outage');
    expect(conv.session_id).toBeNull();
    const committed = await h.t.database.pool.query<{ n: string }>(
      'select coalesce(sum(committed_line_count), 0) as n from sessions where conversation_id = $1',
      [conv.id],
    );
    expect(Number(committed.rows[0]!.n)).toBe(0);
    expect(starts(h)).toHaveLength(1);

    await proxy.restore();
    const done = await h.client.waitForTurn(first.turnId, 20_000);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(1);
    expect(done.error).toBeNull();
    await waitUntil(async () => (await h.client.queue.getJob(first.turnId)) === undefined, 'the job completed (and was removed)');

    // Events stored once: one attempt, seq 1..n without gaps or repeats, one result.
    const events = await h.events(first.turnId);
    expect(new Set(events.map((e) => e.attempt))).toEqual(new Set([1]));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === 'result')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'init')).toHaveLength(1);
    // The session stored once: committed in full, and the next turn resumes it with the
    // first prompt in its history exactly once.
    const session = await h.t.database.pool.query<{ line_count: string; committed_line_count: string }>(
      'select line_count, committed_line_count from sessions where conversation_id = $1',
      [conv.id],
    );
    expect(session.rows).toHaveLength(1);
    expect(session.rows[0]!.committed_line_count).toBe(session.rows[0]!.line_count);
    expect((await h.client.waitForTurn(second.turnId, 20_000)).status).toBe('succeeded');
    const next = starts(h)[1]!;
    expect(next.resumed).toBe(true);
    expect(next.sessionId).toBe(done.sessionIdAfter);
    expect(next.history).toEqual(['#fake {"delayMs":1500}\nthe long turn']);
    expect(starts(h)).toHaveLength(2);
  });
});

describe('each CLI outcome → its retry decision and stored status', () => {
  it('success, API 400, max turns and budget finish at once; the session is committed and a failed turn does not block the next', async () => {
    const h = await harness();
    await h.startWorker();
    const ok = await h.client.enqueueTurn({ conversationId: 'ok', prompt: 'all good' });
    const bad = await h.client.enqueueTurn({ conversationId: 'bad-request', prompt: '#fake {"apiError":{"status":400}}\nmalformed' });
    const afterBad = await h.client.enqueueTurn({ conversationId: 'bad-request', prompt: 'after the failure' });
    const maxTurns = await h.client.enqueueTurn({ conversationId: 'long-task', prompt: '#fake {"maxTurns":true}\nmany steps', options: { maxTurns: 2 } });
    const afterMax = await h.client.enqueueTurn({ conversationId: 'long-task', prompt: 'go on' });
    const budget = await h.client.enqueueTurn({ conversationId: 'pricey', prompt: '#fake {"budget":true}\nexpensive', options: { maxBudgetUsd: 0.01 } });

    const okDone = await h.client.waitForTurn(ok.turnId, 20_000);
    expect(okDone).toMatchObject({ status: 'succeeded', attempts: 1, error: null, result: 'fake reply to: all good' });

    const badDone = await h.client.waitForTurn(bad.turnId, 20_000);
    expect(badDone).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'api_error', retryable: false } });
    const afterBadDone = await h.client.waitForTurn(afterBad.turnId, 20_000);
    expect(afterBadDone).toMatchObject({ status: 'succeeded', attempts: 1 });

    const maxDone = await h.client.waitForTurn(maxTurns.turnId, 20_000);
    expect(maxDone).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'max_turns', retryable: false } });
    const afterMaxDone = await h.client.waitForTurn(afterMax.turnId, 20_000);
    expect(afterMaxDone.status).toBe('succeeded');

    const budgetDone = await h.client.waitForTurn(budget.turnId, 20_000);
    expect(budgetDone).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'budget_exceeded', retryable: false } });

    // Max turns: the session was committed and the next turn resumed it.
    const longTask = await h.conversationRow('long-task');
    expect(longTask.session_id).toBeTruthy();
    expect(maxDone.sessionIdAfter).toBe(longTask.session_id);
    const runs = starts(h);
    const firstMax = runs.find((r) => r.promptText === 'many steps')!;
    const goOn = runs.find((r) => r.promptText === 'go on')!;
    expect(firstMax.resumed).toBe(false);
    expect(goOn.resumed).toBe(true);
    expect(goOn.sessionId).toBe(longTask.session_id);
    expect(goOn.history).toEqual(['#fake {"maxTurns":true}\nmany steps']);
    // The failed API call's session was committed too, and the next turn resumed it.
    const afterBadRun = runs.find((r) => r.promptText === 'after the failure')!;
    expect(afterBadRun.resumed).toBe(true);
    expect(afterBadRun.history).toEqual(['#fake {"apiError":{"status":400}}\nmalformed']);
    expect((await h.conversationRow('pricey')).session_id).toBe(budgetDone.sessionIdAfter);
    // One CLI run per turn: nothing was retried.
    expect(runs).toHaveLength(6);
  });

  /**
   * The fake CLI scripted per invocation (one conversation at a time, so invocation order
   * is attempt order). Retries wait 0.5-1 s, long enough to see the requeued turn.
   */
  async function retryHarness(plan: (object | undefined)[], overrides: Record<string, string> = {}) {
    const probe = await harness();
    // The wrapper lives in the harness's temp root (removed by its cleanup).
    const cli = scriptedFakeCli(path.join(probe.t.root, 'cli'), plan);
    const config = loadConfig({
      ...probe.t.env,
      AGENTQ_CLAUDE_PATH: cli.path,
      AGENTQ_RETRY_BASE_MS: '1000',
      AGENTQ_RETRY_MAX_MS: '1000',
      AGENTQ_MAX_ATTEMPTS: '2',
      ...overrides,
    });
    await probe.startWorker({ config });
    return { h: probe, cli };
  }

  /** Waits for the retry decision: back in the queue after attempt 1, with the error kept. */
  async function expectRequeued(h: Harness, turnId: string, errorClass: string) {
    await waitUntil(async () => {
      const row = await h.turn(turnId);
      return row.status === 'queued' && row.attempts === 1;
    }, `turn requeued after attempt 1 (${errorClass})`);
    const row = await h.turn(turnId);
    expect(row.error).toMatchObject({ class: errorClass, retryable: true });
    expect(row.run_at.getTime()).toBeGreaterThan(row.now.getTime());
  }

  it('API 500 is retried and succeeds when a later attempt works; it fails as api_error once the attempts run out', async () => {
    const { h, cli } = await retryHarness([{ apiError: { status: 500 } }, undefined, { apiError: { status: 503 } }, { apiError: { status: 500 } }]);
    const flaky = await h.client.enqueueTurn({ conversationId: 'flaky', prompt: 'try me' });
    await expectRequeued(h, flaky.turnId, 'api_error');
    expect(await h.client.waitForTurn(flaky.turnId, 20_000)).toMatchObject({ status: 'succeeded', attempts: 2, error: null });
    // Both attempts' CLI versions are on the turn: the failed one's was stored with its hand-back.
    expect((await h.client.getTurn(flaky.turnId))?.cliVersions).toEqual({ '1': 'fake-1', '2': 'fake-1' });
    // The retry resumed the session the failed attempt checkpointed, with the continuation prompt.
    const [a1, a2] = starts(h);
    expect(a2!.resumed).toBe(true);
    expect(a2!.sessionId).toBe(a1!.sessionId);
    expect(a2!.promptText).toContain(h.t.config.worker.continuationPrompt);
    expect(a2!.promptText).toContain('try me');
    const flakyEvents = await h.events(flaky.turnId);
    expect(flakyEvents.filter((e) => e.type === 'result').map((e) => [e.attempt, (JSON.parse(e.payload) as { is_error: boolean }).is_error])).toEqual([
      [1, true],
      [2, false],
    ]);

    const down = await h.client.enqueueTurn({ conversationId: 'down', prompt: 'never works' });
    const downDone = await h.client.waitForTurn(down.turnId, 20_000);
    expect(downDone).toMatchObject({ status: 'failed', attempts: 2, error: { class: 'api_error', retryable: true } });
    expect((downDone.error as { message: string }).message).toContain('after 2 attempts');
    expect(cli.invocations()).toBe(4);
    // A turn that failed after its retries does not block the next one.
    const next = await h.client.enqueueTurn({ conversationId: 'down', prompt: 'and now?' });
    expect((await h.client.waitForTurn(next.turnId, 20_000)).status).toBe('succeeded');
  });

  it('a crash is retried: by default it continues the checkpointed attempt; with continueOnRetry false it reruns the prompt', async () => {
    const crash = { crash: { afterInit: true, exitCode: 3 } };
    const { h, cli } = await retryHarness([crash, undefined, crash, undefined, undefined]);
    const turn = await h.client.enqueueTurn({ conversationId: 'crashy', prompt: 'crash once' });
    await expectRequeued(h, turn.turnId, 'crashed');
    expect(await h.client.waitForTurn(turn.turnId, 20_000)).toMatchObject({ status: 'succeeded', attempts: 2, error: null });
    // Continued: the retry resumed the session holding the interrupted attempt's lines.
    const [c1, c2] = starts(h);
    expect(c1!.resumed).toBe(false);
    expect(c2!.resumed).toBe(true);
    expect(c2!.sessionId).toBe(c1!.sessionId);
    expect(c2!.history).toEqual(['crash once']);
    expect(c2!.promptText).toBe(`${h.t.config.worker.continuationPrompt}\n\ncrash once`);

    const rerun = await h.client.enqueueTurn({ conversationId: 'crashy-rerun', prompt: 'crash again', options: { continueOnRetry: false } });
    await expectRequeued(h, rerun.turnId, 'crashed');
    expect(await h.client.waitForTurn(rerun.turnId, 20_000)).toMatchObject({ status: 'succeeded', attempts: 2, error: null });
    // Rerun: the same session id, started over from the committed (empty) session.
    const [r1, r2] = starts(h).slice(2);
    expect(r2!.sessionId).toBe(r1!.sessionId);
    expect(r2!.resumed).toBe(false);
    expect(r2!.history).toEqual([]);
    expect(r2!.promptText).toBe('crash again');
    // The committed session holds the prompt once: the next turn sees it once.
    const next = await h.client.enqueueTurn({ conversationId: 'crashy-rerun', prompt: 'after' });
    expect((await h.client.waitForTurn(next.turnId, 20_000)).status).toBe('succeeded');
    expect(starts(h)[4]!.history).toEqual(['crash again']);
    expect(cli.invocations()).toBe(5);
  });

  it('a hung CLI times out (idle limit) and is retried', async () => {
    const { h, cli } = await retryHarness([{ hang: true }, undefined], { AGENTQ_CLI_IDLE_TIMEOUT_MS: '1500', AGENTQ_CLI_KILL_GRACE_MS: '500' });
    const turn = await h.client.enqueueTurn({ conversationId: 'stuck', prompt: 'hang once' });
    await expectRequeued(h, turn.turnId, 'timed_out');
    expect(await h.client.waitForTurn(turn.turnId, 20_000)).toMatchObject({ status: 'succeeded', attempts: 2, error: null });
    expect(cli.invocations()).toBe(2);
  });

  it('a missing CLI binary fails at once as cli_not_found, without retry', async () => {
    const h = await harness({ AGENTQ_CLAUDE_PATH: '/nonexistent', AGENTQ_MAX_ATTEMPTS: '5' });
    await h.startWorker();
    const a = await h.client.enqueueTurn({ conversationId: 'no-cli', prompt: 'hello' });
    const b = await h.client.enqueueTurn({ conversationId: 'no-cli', prompt: 'hello again' });
    const done = await h.client.waitForTurn(a.turnId, 20_000);
    expect(done).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'cli_not_found', retryable: false } });
    expect((done.error as { message: string }).message).toContain('/nonexistent');
    // The next turn is not blocked (it runs, and fails the same way).
    expect(await h.client.waitForTurn(b.turnId, 20_000)).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'cli_not_found' } });
  });
});

describe('a stored session that is missing', () => {
  async function loseSession(h: Harness, conv: string): Promise<string> {
    const row = await h.conversationRow(conv);
    expect(row.session_id).toBeTruthy();
    const r = await h.t.database.pool.query('delete from sessions where conversation_id = $1', [row.id]);
    expect(r.rowCount).toBeGreaterThan(0);
    return row.session_id!;
  }

  const sessionMissingEvents = async (h: Harness, turnId: string) =>
    (await h.events(turnId)).filter((e) => e.type === 'agentq').map((e) => JSON.parse(e.payload) as Record<string, unknown>).filter((p) => p.subtype === 'session_missing');

  it('policy fail (default): the turn fails as session_missing, recorded as an event, without running the CLI', async () => {
    const h = await harness();
    expect(h.t.config.worker.missingSessionPolicy).toBe('fail');
    await h.startWorker();
    const first = await h.client.enqueueTurn({ conversationId: 'lost', prompt: 'first question' });
    expect((await h.client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');
    const lostId = await loseSession(h, 'lost');

    const second = await h.client.enqueueTurn({ conversationId: 'lost', prompt: 'second question' });
    const done = await h.client.waitForTurn(second.turnId, 20_000);
    expect(done).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'session_missing', retryable: false } });
    expect(await sessionMissingEvents(h, second.turnId)).toEqual([expect.objectContaining({ policy: 'fail', sessionId: lostId })]);
    expect(starts(h)).toHaveLength(1);
    expect((await h.conversationRow('lost')).lease_owner).toBeNull();
  });

  it('policy fresh also applies when the CLI itself cannot find a stored session: a new session in the same attempt', async () => {
    const h = await harness({ AGENTQ_MISSING_SESSION_POLICY: 'fresh' });
    await h.startWorker();
    const first = await h.client.enqueueTurn({ conversationId: 'unreadable', prompt: 'first question' });
    const firstDone = await h.client.waitForTurn(first.turnId, 20_000);
    expect(firstDone.status).toBe('succeeded');
    const storedId = firstDone.sessionIdAfter!;

    // The store has the session; the scripted CLI answers "No conversation found" on resume.
    const second = await h.client.enqueueTurn({ conversationId: 'unreadable', prompt: '#fake {"resumeMissing":true}\nsecond question' });
    const done = await h.client.waitForTurn(second.turnId, 20_000);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 1, error: null });
    expect(await sessionMissingEvents(h, second.turnId)).toEqual([expect.objectContaining({ policy: 'fresh', sessionId: storedId, reportedBy: 'cli' })]);
    // The fake CLI logs a start only for a run that got going: turn 1, then the fresh run.
    const runs = starts(h);
    expect(runs).toHaveLength(2);
    expect(runs[1]!.resumed).toBe(false);
    expect(runs[1]!.sessionId).not.toBe(storedId);
    expect(runs[1]!.promptText).toContain('first question');
    expect(runs[1]!.promptText!.endsWith('second question')).toBe(true);
    expect(done.sessionIdAfter).toBe(runs[1]!.sessionId);
    expect((await h.conversationRow('unreadable')).session_id).toBe(runs[1]!.sessionId);
  });

  it('policy fail: a session the CLI cannot find fails the turn as session_not_found', async () => {
    const h = await harness();
    await h.startWorker();
    const first = await h.client.enqueueTurn({ conversationId: 'unreadable', prompt: 'first question' });
    expect((await h.client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');
    const second = await h.client.enqueueTurn({ conversationId: 'unreadable', prompt: '#fake {"resumeMissing":true}\nsecond question' });
    const done = await h.client.waitForTurn(second.turnId, 20_000);
    // The class comes only from the CLI's own "No conversation found" outcome.
    expect(done).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'session_not_found', retryable: false } });
    expect(starts(h)).toHaveLength(1);
  });

  it('policy fresh: the turn succeeds in a new session primed with a summary of the earlier turns', async () => {
    const h = await harness({ AGENTQ_MISSING_SESSION_POLICY: 'fresh' });
    await h.startWorker();
    const first = await h.client.enqueueTurn({ conversationId: 'lost', prompt: 'first question' });
    expect((await h.client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');
    const lostId = await loseSession(h, 'lost');

    const second = await h.client.enqueueTurn({ conversationId: 'lost', prompt: 'second question' });
    const done = await h.client.waitForTurn(second.turnId, 20_000);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 1, error: null });
    expect(await sessionMissingEvents(h, second.turnId)).toEqual([expect.objectContaining({ policy: 'fresh', sessionId: lostId })]);

    const run = starts(h)[1]!;
    expect(run.resumed).toBe(false);
    expect(run.sessionId).not.toBe(lostId);
    expect(run.promptText).toContain('first question');
    expect(run.promptText).toContain('fake reply to: first question');
    expect(run.promptText!.endsWith('second question')).toBe(true);
    const conv = await h.conversationRow('lost');
    expect(conv.session_id).toBe(run.sessionId);
    expect(done.sessionIdAfter).toBe(run.sessionId);

    // The turn after resumes the new session.
    const third = await h.client.enqueueTurn({ conversationId: 'lost', prompt: 'third question' });
    expect((await h.client.waitForTurn(third.turnId, 20_000)).status).toBe('succeeded');
    const run3 = starts(h)[2]!;
    expect(run3.resumed).toBe(true);
    expect(run3.sessionId).toBe(run.sessionId);
  });
});
