// The turn protocol in one process: producer, worker, commit before ack.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { reconcile } from '../src/queue/reconciler.js';
import { workspaceDirName } from '../src/store/ids.js';
import { persistSession } from '../src/store/persist.js';
import { getSessionHead } from '../src/store/sessions.js';
import { runDirPrefix } from '../src/worker/runDirs.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

let t: TestAgentq;
let client: AgentqClient;

const log = (): FakeCliRecord[] => readFakeCliLog(t.logFile);

beforeEach(async () => {
  t = await createTestAgentq();
  client = createClient(t.config);
});
afterEach(async () => {
  await stopWorkers();
  await client.close();
  await t.cleanup();
});

describe('the turn protocol', () => {
  it('runs a conversation turn by turn, new session first, then resumes with the whole history', async () => {
    await startWorker(t.config);
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
    // Each turn records the CLI version that ran its attempt (from the CLI's init event).
    expect(view?.turns.map((x) => x.cliVersions)).toEqual([{ '1': 'fake-1' }, { '1': 'fake-1' }, { '1': 'fake-1' }]);
  });

  it('a starting worker prunes turn events older than AGENTQ_EVENT_RETENTION_MS and keeps newer ones', async () => {
    await startWorker(t.config);
    const old = await client.enqueueTurn({ conversationId: 'ticket-old', prompt: 'long ago' });
    const recent = await client.enqueueTurn({ conversationId: 'ticket-new', prompt: 'today' });
    for (const id of [old.turnId, recent.turnId]) expect((await client.waitForTurn(id, 20_000)).status).toBe('succeeded');
    const count = async (turnId: string) =>
      (await t.database.pool.query<{ n: number }>('select count(*)::int as n from turn_events where turn_id = $1', [turnId])).rows[0]!.n;
    expect(await count(old.turnId)).toBeGreaterThan(0);
    // Default retention is 30 days: age one turn's events past it.
    await t.database.pool.query("update turn_events set created_at = now() - interval '31 days' where turn_id = $1", [old.turnId]);
    const kept = await count(recent.turnId);
    await startWorker(t.config);
    await expect.poll(() => count(old.turnId), { timeout: 10_000 }).toBe(0);
    expect(await count(recent.turnId)).toBe(kept);
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
    await startWorker(t.config);
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

  it('a commit that finds the session head moved since the attempt read it stores the rest under the lock, in the same attempt', async () => {
    // No checkpoint during the run: the commit reads the file from the head hydrated before it.
    await startWorker({ ...t.config, worker: { ...t.config.worker, checkpointIntervalMs: 600_000 } });
    const first = await client.enqueueTurn({ conversationId: 'moved-head', prompt: 'one' });
    expect((await client.waitForTurn(first.turnId, 20_000)).status).toBe('succeeded');
    const second = await client.enqueueTurn({ conversationId: 'moved-head', prompt: '#fake {"delayMs":1500,"linesBeforeDelay":true}\ntwo' });
    const sessionId = (await client.getConversation('moved-head'))!.sessionId!;
    // While the CLI waits, its new lines are stored as if by a write of this attempt whose
    // answer the worker never got: the head moves past where the worker knows it.
    const runDir = () => readdirSync(t.config.worker.runsRoot).find((d) => d.startsWith(runDirPrefix(second.turnId, 1)));
    await expect.poll(runDir, { timeout: 10_000 }).toBeDefined();
    const configDir = path.join(t.config.worker.runsRoot, runDir()!, 'config');
    const projects = path.join(configDir, 'projects');
    const sessionFile = () => {
      if (!existsSync(projects)) return undefined;
      const dir = readdirSync(projects).find((d) => existsSync(path.join(projects, d, `${sessionId}.jsonl`)));
      return dir === undefined ? undefined : path.join(projects, dir, `${sessionId}.jsonl`);
    };
    await expect.poll(() => log().filter((r) => r.event === 'start').length, { timeout: 10_000 }).toBe(2);
    const file = sessionFile()!;
    const conversationId = (await t.database.pool.query<{ id: string }>("select id from conversations where external_id = 'moved-head'")).rows[0]!.id;
    const headBefore = await getSessionHead(t.database.db, conversationId, sessionId);
    const stored = await persistSession(t.database.db, { conversationId, sessionId, filePath: file, root: configDir, attempt: 1, maxLineBytes: 1 << 20 });
    expect(stored.linesAdded).toBeGreaterThan(0);
    const done = await client.waitForTurn(second.turnId, 20_000);
    expect([done.status, done.attempts]).toEqual(['succeeded', 1]);
    const head = (await getSessionHead(t.database.db, conversationId, sessionId))!;
    expect(head.committedLineCount).toBe(head.lineCount);
    expect(head.lineCount).toBeGreaterThanOrEqual(headBefore!.lineCount + stored.linesAdded);
    // The next turn resumes the whole history.
    const third = await client.enqueueTurn({ conversationId: 'moved-head', prompt: 'three' });
    expect((await client.waitForTurn(third.turnId, 20_000)).status).toBe('succeeded');
    const starts = log().filter((r) => r.event === 'start');
    expect(starts).toHaveLength(3);
    expect(starts[2]!.history).toEqual(['one', expect.stringMatching(/\ntwo$/)]);
  });

  describe('what a worker keeps between turns', () => {
    const sessionOf = async (conversation: string) => {
      const r = await client.db.$client.query<{ id: string; session_id: string }>(
        'select id, session_id from conversations where external_id = $1',
        [conversation],
      );
      return r.rows[0]!;
    };

    it('the next turn on the same worker resumes the kept session file without reading the stored chunks', async () => {
      await startWorker(t.config, { concurrency: 1 });
      const one = await client.enqueueTurn({ conversationId: 'warm', prompt: 'one' });
      expect((await client.waitForTurn(one.turnId, 20_000)).status).toBe('succeeded');
      // Without the kept file this turn could not hydrate: the chunks are gone (the head remains).
      const conv = await sessionOf('warm');
      await client.db.$client.query('delete from session_chunks where conversation_id = $1', [conv.id]);
      const two = await client.enqueueTurn({ conversationId: 'warm', prompt: 'two' });
      expect((await client.waitForTurn(two.turnId, 20_000)).status).toBe('succeeded');
      expect(log().filter((r) => r.event === 'start').at(-1)?.history).toEqual(['one']);
    });

    it('a kept session file that differs from the committed head is not used', async () => {
      await startWorker(t.config, { concurrency: 1 });
      const one = await client.enqueueTurn({ conversationId: 'warm-bad', prompt: 'one' });
      expect((await client.waitForTurn(one.turnId, 20_000)).status).toBe('succeeded');
      const conv = await sessionOf('warm-bad');
      const kept = path.join(t.config.worker.runsRoot, '.cache', 'sessions', `${conv.id}.${conv.session_id}.jsonl`);
      // The worker keeps the file after the commit the turn's status comes from: wait for it.
      const deadline = Date.now() + 10_000;
      while (!existsSync(kept) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const bytes = readFileSync(kept);
      // Same length, different content: a user line that says something else.
      writeFileSync(kept, Buffer.from(bytes.toString('latin1').replace('"one"', '"0ne"'), 'latin1'));
      expect(readFileSync(kept).length).toBe(bytes.length);
      const two = await client.enqueueTurn({ conversationId: 'warm-bad', prompt: 'two' });
      expect((await client.waitForTurn(two.turnId, 20_000)).status).toBe('succeeded');
      expect(log().filter((r) => r.event === 'start').at(-1)?.history).toEqual(['one']);
    });

    it('the workspace is left as committed on the same worker, and restored when the stored archive changed', async () => {
      await startWorker(t.config, { concurrency: 1 });
      const one = await client.enqueueTurn({ conversationId: 'warm-ws', prompt: 'one' });
      expect((await client.waitForTurn(one.turnId, 20_000)).status).toBe('succeeded');
      const conv = await sessionOf('warm-ws');
      const dir = path.join(t.config.workspaceRoot, workspaceDirName('warm-ws'));
      // node_modules is excluded from archives: it survives only if the directory is kept.
      mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
      writeFileSync(path.join(dir, 'node_modules', 'kept.txt'), 'x');
      const two = await client.enqueueTurn({ conversationId: 'warm-ws', prompt: 'two' });
      expect((await client.waitForTurn(two.turnId, 20_000)).status).toBe('succeeded');
      expect(existsSync(path.join(dir, 'node_modules', 'kept.txt'))).toBe(true);
      // Another worker committed a different archive: this one must restore it.
      await client.db.$client.query("update workspaces set sha256 = 'changed-elsewhere' where conversation_id = $1", [conv.id]);
      const three = await client.enqueueTurn({ conversationId: 'warm-ws', prompt: 'three' });
      expect((await client.waitForTurn(three.turnId, 20_000)).status).toBe('succeeded');
      expect(existsSync(path.join(dir, 'node_modules', 'kept.txt'))).toBe(false);
    });
  });
});
