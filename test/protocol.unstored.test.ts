// The turn protocol when what a run wrote cannot be stored, every time: the attempt must
// end (and the turn fail after AGENTQ_MAX_ATTEMPTS) instead of looping, calling the model
// on each loop, and logging the failed query's parameters. And the backstop: a turn
// claimed past AGENTQ_MAX_ATTEMPTS without an outcome is not run again. Real Postgres and
// Redis, in-process workers, the fake CLI.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { decodeChunk } from '../src/store/chunks.js';
import type { ChunkCodec } from '../src/store/schema.js';
import { runDirPrefix } from '../src/worker/runDirs.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog } from './helpers/fakeCliLog.js';
import { captureLogger, type CapturedLog } from './helpers/infra.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await stopWorkers().catch(() => undefined);
  for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  cleanups = [];
});

async function setup(overrides: Record<string, string>): Promise<{ t: TestAgentq; client: AgentqClient; log: CapturedLog; start: () => Promise<void> }> {
  const t = await createTestAgentq({ AGENTQ_RETRY_BASE_MS: '100', AGENTQ_RETRY_MAX_MS: '100', ...overrides });
  cleanups.push(() => t.cleanup());
  t.database.pool.on('error', () => undefined);
  const client = createClient(t.config);
  cleanups.push(() => client.close());
  const log = captureLogger('debug');
  const start = async () => {
    await startWorker(loadConfig(t.env), { log: log.log });
  };
  return { t, client, log, start };
}

const cliStarts = (t: TestAgentq) => readFakeCliLog(t.logFile).filter((r) => r.event === 'start');

describe('what a run wrote is refused by Postgres every time', () => {
  it('the turn fails after AGENTQ_MAX_ATTEMPTS, the CLI ran that often, nothing of the run is stored, and no query parameter reaches the log or the turn', async () => {
    const { t, client, log, start } = await setup({ AGENTQ_MAX_ATTEMPTS: '2' });
    const poison = `POISON${Date.now()}`;
    // Postgres refuses, as for a NUL in text, every event that carries the reply: a data
    // exception the worker cannot retry its way out of.
    await t.database.pool.query(`
      create function refuse_poison() returns trigger language plpgsql as $$
      begin
        if new.payload like '%${poison}%' then raise exception 'refused by the test' using errcode = '22023'; end if;
        return new;
      end $$;
      create trigger refuse_poison before insert on turn_events for each row execute function refuse_poison();`);
    await start();
    const { turnId } = await client.enqueueTurn({ conversationId: 'poisoned', prompt: `#fake ${JSON.stringify({ reply: `say ${poison}` })}\nhello` });
    const done = await client.waitForTurn(turnId, 30_000);
    expect(done).toMatchObject({ status: 'failed', attempts: 2, error: { class: 'worker_error' } });
    expect(JSON.stringify(done.error)).not.toContain(poison);
    expect((done.error as { message: string }).message).toContain('after 2 attempts');
    // One CLI run per attempt, no more.
    expect(cliStarts(t)).toHaveLength(2);
    // Each attempt ended without what its run wrote, and said so.
    const events = await t.database.pool.query<{ attempt: number; payload: string }>('select attempt, payload from turn_events where turn_id = $1 order by attempt, seq', [turnId]);
    expect(events.rows.filter((e) => e.payload.includes('"run_not_stored"')).map((e) => e.attempt)).toEqual([1, 2]);
    expect(events.rows.some((e) => e.payload.includes(poison))).toBe(false);
    const conv = await client.getConversation('poisoned');
    expect(conv?.sessionId).toBeNull();
    const committed = await t.database.pool.query<{ n: string }>('select count(*) as n from session_chunks where committed');
    expect(Number(committed.rows[0]!.n)).toBe(0);
    // The failures were logged, without the parameters of the failed query.
    const logged = log.records().map((r) => JSON.stringify(r));
    expect(logged.some((l) => l.includes('refused by the test'))).toBe(true);
    expect(logged.filter((l) => l.includes(poison))).toEqual([]);
    // The next turn of the conversation runs.
    const next = await client.enqueueTurn({ conversationId: 'poisoned', prompt: 'and now?' });
    expect((await client.waitForTurn(next.turnId, 30_000)).status).toBe('succeeded');
  });
});

describe('a session file that the agent turns into a link', () => {
  it('found only at the commit, after the last checkpoint: the turn does not succeed on it, fails after AGENTQ_MAX_ATTEMPTS, stores nothing of the target, and the conversation keeps its session', async () => {
    // No checkpoint while the CLI runs: the commit is the first to see the link.
    const { t, client, start } = await setup({ AGENTQ_MAX_ATTEMPTS: '2', AGENTQ_CHECKPOINT_INTERVAL_MS: '600000' });
    const secret = path.join(t.root, 'host-secret.txt');
    writeFileSync(secret, `${JSON.stringify({ type: 'user', secret: 'HOST-SECRET' })}\n`.repeat(50));
    await start();
    const first = await client.enqueueTurn({ conversationId: 'relinked', prompt: 'the first turn' });
    expect((await client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');
    const sessionBefore = (await client.getConversation('relinked'))!.sessionId;
    expect(sessionBefore).toBeTruthy();

    const bad = await client.enqueueTurn({ conversationId: 'relinked', prompt: `#fake ${JSON.stringify({ plant: { sessionFileLink: secret } })}\nthe second turn` });
    const done = await client.waitForTurn(bad.turnId, 30_000);
    expect(done).toMatchObject({ status: 'failed', attempts: 2, error: { class: 'session_not_saved', retryable: true } });
    expect((done.error as { message: string }).message).toMatch(/symlink/);
    expect(cliStarts(t)).toHaveLength(3);
    const conv = await client.getConversation('relinked');
    expect(conv!.sessionId).toBe(sessionBefore);
    const events = await t.database.pool.query<{ payload: string }>('select payload from turn_events where turn_id = $1', [bad.turnId]);
    expect(events.rows.filter((e) => e.payload.includes('"session_not_saved"'))).toHaveLength(2);
    // Nothing of the link's target, and nothing of the failed turn, is in the stored session.
    const chunks = await t.database.pool.query<{ codec: ChunkCodec; data: Buffer; committed: boolean }>('select codec, data, committed from session_chunks');
    const stored = (await Promise.all(chunks.rows.map((c) => decodeChunk(c.data, c.codec)))).map((b) => b.toString()).join('');
    expect(stored).not.toContain('HOST-SECRET');
    expect(stored).not.toContain('the second turn');
    expect(chunks.rows.every((c) => c.committed)).toBe(true);
    // The next turn resumes the session as it was.
    const next = await client.enqueueTurn({ conversationId: 'relinked', prompt: 'the third turn' });
    expect((await client.waitForTurn(next.turnId, 20_000)).status).toBe('succeeded');
    const last = cliStarts(t).at(-1)!;
    expect(last.sessionId).toBe(sessionBefore);
    expect(last.history).toEqual(['the first turn']);
  });
});

describe('a session file whose stored bytes the agent rewrites', () => {
  it('the commit sees the stored tail differ: the turn does not succeed on it, fails after AGENTQ_MAX_ATTEMPTS, stores none of it, and the conversation keeps its session', async () => {
    const { t, client, log } = await setup({ AGENTQ_MAX_ATTEMPTS: '2', AGENTQ_CHECKPOINT_INTERVAL_MS: '600000' });
    let target = '';
    const rewrites: number[] = [];
    // Once the attempt's disk is ready and before its CLI starts, the stored part of the
    // session file changes in place, length kept: as an agent could do during its run.
    const rewrite = (turnId: string, attempt: number) => {
      const runsRoot = t.config.worker.runsRoot;
      const runDir = readdirSync(runsRoot).find((d) => d.startsWith(runDirPrefix(turnId, attempt)))!;
      const projects = path.join(runsRoot, runDir, 'config', 'projects');
      const [project] = readdirSync(projects);
      const file = path.join(projects, project!, readdirSync(path.join(projects, project!)).find((f) => f.endsWith('.jsonl'))!);
      const text = readFileSync(file, 'utf8');
      expect(text).toContain('the first turn');
      writeFileSync(file, text.replaceAll('the first turn', 'THE FIRST TURN'));
      rewrites.push(attempt);
    };
    await startWorker(loadConfig(t.env), {
      log: log.log,
      observeAttempt: (info) => ({
        phase: (phase) => {
          if (phase === 'prepare' && info.turnId === target) rewrite(info.turnId, info.attempt);
        },
      }),
    });
    const first = await client.enqueueTurn({ conversationId: 'rewritten', prompt: 'the first turn' });
    expect((await client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');
    const sessionBefore = (await client.getConversation('rewritten'))!.sessionId;

    const bad = await client.enqueueTurn({ conversationId: 'rewritten', prompt: '#fake {"delayMs":50}\nthe second turn' });
    target = bad.turnId;
    const done = await client.waitForTurn(bad.turnId, 30_000);
    expect(rewrites).toEqual([1, 2]);
    expect(done).toMatchObject({ status: 'failed', attempts: 2, error: { class: 'session_not_saved', retryable: true } });
    expect((done.error as { message: string }).message).toMatch(/differ from the stored ones/);
    expect((await client.getConversation('rewritten'))!.sessionId).toBe(sessionBefore);
    const chunks = await t.database.pool.query<{ codec: ChunkCodec; data: Buffer }>('select codec, data from session_chunks');
    const stored = (await Promise.all(chunks.rows.map((c) => decodeChunk(c.data, c.codec)))).map((b) => b.toString()).join('');
    expect(stored).toContain('the first turn');
    expect(stored).not.toContain('THE FIRST TURN');
    expect(stored).not.toContain('the second turn');
    // The next turn resumes the session as it was stored.
    target = '';
    const next = await client.enqueueTurn({ conversationId: 'rewritten', prompt: 'the third turn' });
    expect((await client.waitForTurn(next.turnId, 20_000)).status).toBe('succeeded');
    const last = cliStarts(t).at(-1)!;
    expect(last.sessionId).toBe(sessionBefore);
    expect(last.history).toEqual(['the first turn']);
  });
});

describe('a turn claimed past AGENTQ_MAX_ATTEMPTS', () => {
  it('fails as attempts_exhausted without running the CLI; attempts handed back by a stopping worker do not count', async () => {
    const { t, client, start } = await setup({ AGENTQ_MAX_ATTEMPTS: '2' });
    const dead = await client.enqueueTurn({ conversationId: 'crashes-workers', prompt: 'kills every worker that runs it' });
    const drained = await client.enqueueTurn({ conversationId: 'drained-twice', prompt: 'handed back on deploys' });
    // As if two attempts were claimed and their workers died (dead), or one died and one
    // was drained by a stopping worker (drained).
    await t.database.pool.query('update turns set attempts = 2 where id = any($1::uuid[])', [[dead.turnId, drained.turnId]]);
    await t.database.pool.query("insert into turn_events (turn_id, attempt, seq, type, payload) values ($1, 2, 1, 'agentq', $2)", [
      drained.turnId,
      JSON.stringify({ type: 'agentq', subtype: 'handed_back', reason: 'shutdown' }),
    ]);
    await start();
    const deadDone = await client.waitForTurn(dead.turnId, 20_000);
    expect(deadDone).toMatchObject({ status: 'failed', attempts: 3, error: { class: 'attempts_exhausted', retryable: false } });
    expect((await client.waitForTurn(drained.turnId, 20_000)).status).toBe('succeeded');
    // Only the drained one ran.
    const prompts = cliStarts(t).map((r) => r.prompt);
    expect(prompts).toEqual(['handed back on deploys']);
  });
});
