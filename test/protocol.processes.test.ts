// The turn protocol across real OS processes: `agentq worker` processes (bin/agentq.js)
// on real Redis and Postgres, running the fake CLI, killed, frozen, drained and
// cancelled. What each run saw is read from the fake CLI's log (pid, parent, prompt,
// history, start and end times); what was committed is read from Postgres.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { ownerTag } from '../src/runner/ownedDirs.js';
import { countHandBacks } from '../src/store/turns.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { isAlive, waitUntil } from './helpers/processes.js';
import {
  killProcessesWithEnv,
  killWorkerProcesses,
  processesWithEnv,
  startWorkerProcess,
  type WorkerProcess,
} from './helpers/workerProcess.js';

/** A run's first record: these fields are always there. */
interface StartRec extends FakeCliRecord {
  event: 'start';
  pid: number;
  ppid: number;
  prompt: string;
  history: string[];
  sessionId: string;
  resumed: boolean;
  startedAt: number;
}
interface EndRec extends FakeCliRecord {
  event: 'end';
  pid: number;
  exitCode: number;
  endedAt: number;
}

let t: TestAgentq;
let client: AgentqClient;
let workers: WorkerProcess[] = [];

const GRACE_MS = 500;

beforeEach(async () => {
  t = await createTestAgentq({ AGENTQ_SHUTDOWN_GRACE_MS: String(GRACE_MS), AGENTQ_LOG_LEVEL: 'info' });
  mkdirSync(path.join(t.root, 'logs'));
  client = createClient(t.config);
  workers = [];
});

afterEach(async (ctx: TestContext) => {
  // Leak guard: when a test ends, no fake CLI of it may still run (a test that orphans
  // one on purpose waits for it to end).
  const leftoverClis = processesWithEnv('FAKE_CLAUDE_LOG', t.logFile);
  if (ctx.task.result?.state === 'fail') {
    for (const w of workers) {
      console.error(`--- worker ${w.name} (pid ${w.pid}) stderr:\n${w.stderr()}\n--- stdout (tail):\n${w.stdout().split('\n').slice(-40).join('\n')}`);
    }
    console.error(`--- fake CLI log:\n${existsSync(t.logFile) ? readFileSync(t.logFile, 'utf8') : '(none)'}`);
  }
  await killWorkerProcesses();
  await killProcessesWithEnv('FAKE_CLAUDE_LOG', t.logFile);
  await client.close();
  await t.cleanup();
  expect(leftoverClis, 'fake CLI processes still running at the end of the test').toEqual([]);
});

async function startWorkers(n: number, concurrency: number, extraEnv: Record<string, string> = {}): Promise<WorkerProcess[]> {
  const started = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      startWorkerProcess({ ...t.env, ...extraEnv }, { name: `w${workers.length + i}`, dir: path.join(t.root, 'logs'), concurrency }),
    ),
  );
  workers.push(...started);
  return started;
}

const records = (): FakeCliRecord[] => readFakeCliLog(t.logFile);
const starts = (): StartRec[] => records().filter((r): r is StartRec => r.event === 'start');
const endOf = (pid: number): EndRec | undefined => records().find((r): r is EndRec => r.event === 'end' && r.pid === pid);

async function waitForStart(pred: (r: StartRec) => boolean, what: string, timeoutMs = 15_000): Promise<StartRec> {
  let found: StartRec | undefined;
  await waitUntil(() => (found = starts().find(pred)) !== undefined, what, timeoutMs);
  return found!;
}

async function rows<T>(text: string, values: unknown[] = []): Promise<T[]> {
  return (await t.database.pool.query(text, values)).rows as T[];
}

interface ConvRow {
  id: string;
  session_id: string | null;
  turns_total: number;
  lease_owner: string | null;
  fencing_token: string;
}
async function conversation(externalId: string): Promise<ConvRow> {
  const [row] = await rows<ConvRow>('select id, session_id, turns_total, lease_owner, fencing_token from conversations where external_id = $1', [externalId]);
  if (!row) throw new Error(`no conversation ${externalId}`);
  return row;
}

async function storedLineCount(conversationId: string): Promise<number> {
  const r = await rows<{ n: string }>('select coalesce(sum(line_count), 0) as n from sessions where conversation_id = $1', [conversationId]);
  return Number(r[0]!.n);
}

/** Everything a commit or a stray write could change, for before/after comparisons. */
async function snapshot(conversationId: string): Promise<unknown> {
  return {
    conversation: await rows(
      `select session_id, turns_total, lease_owner, lease_expires_at, fencing_token, cost_usd, input_tokens, output_tokens, updated_at
         from conversations where id = $1`,
      [conversationId],
    ),
    turns: await rows(
      `select id, seq, status, attempts, session_id_after, run_session_id, result, error, finished_at, run_at
         from turns where conversation_id = $1 order by seq`,
      [conversationId],
    ),
    sessions: await rows(
      `select session_id, line_count, byte_count, committed_line_count, committed_byte_count, tail_sha256, updated_at
         from sessions where conversation_id = $1 order by session_id`,
      [conversationId],
    ),
    chunks: await rows(
      `select session_id, first_line, line_count, byte_offset, byte_len, attempt, committed, md5(data) as md5
         from session_chunks where conversation_id = $1 order by session_id, first_line`,
      [conversationId],
    ),
    events: await rows(
      `select e.turn_id, e.attempt, e.seq, e.type, md5(e.payload) as md5
         from turn_events e join turns t on t.id = e.turn_id where t.conversation_id = $1 order by 1, 2, 3`,
      [conversationId],
    ),
    workspace: await rows('select sha256, updated_at from workspaces where conversation_id = $1', [conversationId]),
  };
}

interface SessionEntry {
  type: string;
  uuid?: string;
  parentUuid?: string | null;
  message?: { content?: unknown };
}

/**
 * The conversation's committed session as Postgres holds it: the chunk log must be one
 * gapless, fully committed run of lines; returns the parsed lines (hydrated byte-exact).
 */
async function committedSession(conv: ConvRow): Promise<SessionEntry[]> {
  const sessionId = conv.session_id;
  expect(sessionId, 'conversation session_id').toBeTruthy();
  const [head] = await rows<{ line_count: string; byte_count: string; committed_line_count: string; committed_byte_count: string }>(
    'select line_count, byte_count, committed_line_count, committed_byte_count from sessions where conversation_id = $1 and session_id = $2',
    [conv.id, sessionId],
  );
  expect(head).toBeDefined();
  expect(head!.committed_line_count).toBe(head!.line_count);
  expect(head!.committed_byte_count).toBe(head!.byte_count);
  const chunks = await rows<{ first_line: string; line_count: number; byte_offset: string; byte_len: number; committed: boolean }>(
    'select first_line, line_count, byte_offset, byte_len, committed from session_chunks where conversation_id = $1 and session_id = $2 order by first_line',
    [conv.id, sessionId],
  );
  let line = 0;
  let offset = 0;
  for (const c of chunks) {
    expect([Number(c.first_line), Number(c.byte_offset), c.committed]).toEqual([line, offset, true]);
    line += c.line_count;
    offset += c.byte_len;
  }
  expect([line, offset]).toEqual([Number(head!.line_count), Number(head!.byte_count)]);

  const cwd = path.join(t.root, 'inspect', conv.id);
  mkdirSync(cwd, { recursive: true });
  const h = await hydrateSession(t.database.db, { conversationId: conv.id, sessionId: sessionId!, cwd, configDir: path.join(cwd, '.config') });
  const entries = readFileSync(h.path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SessionEntry);
  // No line twice: every uuid is unique and each message chains to the one before it.
  const uuids = entries.flatMap((e) => (e.uuid ? [e.uuid] : []));
  expect(new Set(uuids).size).toBe(uuids.length);
  let previous: string | null = null;
  for (const e of entries) {
    if (!e.uuid) continue;
    expect(e.parentUuid ?? null).toBe(previous);
    previous = e.uuid;
  }
  return entries;
}

const userPrompts = (entries: SessionEntry[]): unknown[] => entries.filter((e) => e.type === 'user').map((e) => e.message?.content);
const assistantTexts = (entries: SessionEntry[]): string[] =>
  entries
    .filter((e) => e.type === 'assistant')
    .map((e) => ((e.message?.content ?? []) as { text?: string }[]).map((b) => b.text ?? '').join(''));

/** The worker that started a CLI run (it names itself in the run's environment; the CLI's parent is its spawn helper). */
function ownerOf(run: StartRec): WorkerProcess {
  const owner = workers.find((w) => w.pid === run.workerPid);
  if (!owner) throw new Error(`no worker process (${run.workerPid}) started CLI pid ${run.pid}`);
  // A worker that stays starts its runs through its spawn helper (AGENTQ_CLI_SPAWN=auto).
  if (run.ppid === owner.pid) throw new Error(`CLI pid ${run.pid} was spawned by its worker itself, not through the spawn helper`);
  return owner;
}

describe('the turn protocol across worker processes', () => {
  it('runs 20 turns of one conversation strictly in seq order, never two at once, across 3 worker processes', async () => {
    await startWorkers(3, 4);
    const prompts = Array.from({ length: 20 }, (_, i) => `#fake {"delayMs":40}\nstep ${i + 1}`);
    // All at once: seq is assigned under the conversation's row lock, in whatever order the inserts win it.
    const enqueued = await Promise.all(prompts.map((prompt) => client.enqueueTurn({ conversationId: 'order-1', prompt })));
    const promptBySeq = new Map(enqueued.map((e, i) => [e.seq, prompts[i]!]));
    expect([...promptBySeq.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    for (const e of enqueued) expect((await client.waitForTurn(e.turnId, 40_000)).status).toBe('succeeded');

    const runs = starts().sort((a, b) => a.startedAt - b.startedAt);
    // One CLI run per turn (no retries, no duplicate runs), started in seq order.
    expect(runs.map((r) => r.prompt)).toEqual(Array.from({ length: 20 }, (_, i) => promptBySeq.get(i + 1)));
    for (let i = 0; i < runs.length; i++) {
      const end = endOf(runs[i]!.pid);
      expect(end, `end of run ${i + 1}`).toBeDefined();
      // Never two at once: each run starts after the previous one ended.
      if (i > 0) expect(runs[i]!.startedAt).toBeGreaterThanOrEqual(endOf(runs[i - 1]!.pid)!.endedAt);
      // Each run resumed the whole history: the prompts of every earlier turn, in order.
      expect(runs[i]!.history).toEqual(runs.slice(0, i).map((r) => r.prompt));
    }
    // Which worker runs which turn is up to BullMQ (runs do hop between the processes, but
    // are often sticky for a while), so it is not asserted: exclusivity must hold either way.
    const conv = await conversation('order-1');
    expect(conv.turns_total).toBe(20);
    expect(await rows('select seq, attempts from turns where conversation_id = $1 and attempts <> 1', [conv.id])).toEqual([]);
    expect(userPrompts(await committedSession(conv))).toEqual(runs.map((r) => r.prompt));
  });

  it('a worker SIGKILLed mid-turn: another worker continues the turn from its checkpoint and commits it exactly once', async () => {
    await startWorkers(2, 2);
    const prompt = '#fake {"delayMs":5000}\nlong task';
    const { turnId } = await client.enqueueTurn({ conversationId: 'kill-1', prompt });
    const first = await waitForStart((r) => r.prompt === prompt, 'the first attempt to start');
    const victim = ownerOf(first);
    const survivor = workers.find((w) => w !== victim)!;
    const conv0 = await conversation('kill-1');
    // Kill only once the turn runs in Postgres and the attempt's first lines are checkpointed.
    await waitUntil(
      async () => (await client.getTurn(turnId))?.status === 'running' && (await storedLineCount(conv0.id)) > 0,
      'the first attempt to checkpoint session lines',
    );
    // The attempt's run directory (its config dir, holding the session) is named after its worker.
    const victimDirs = () => readdirSync(t.config.worker.runsRoot).filter((n) => n.endsWith(`.${ownerTag(victim.pid)}`));
    expect(victimDirs()).toHaveLength(1);
    expect(await victim.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    // The CLI runs in its own process group and session, so it outlives a SIGKILLed worker;
    // the surviving worker's housekeeping (every AGENTQ_RECONCILE_INTERVAL_MS) kills it
    // because its parent is gone, long before its own 5 s end, and removes the directory.
    await waitUntil(() => !isAlive(first.pid), 'the surviving worker to sweep the orphaned CLI', 4000);
    await waitUntil(() => victimDirs().length === 0, "the surviving worker to remove the killed worker's run directory", 4000);
    expect(endOf(first.pid)).toBeUndefined();

    const done = await client.waitForTurn(turnId, 20_000);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    const runs = starts().filter((r) => r.prompt.endsWith('long task'));
    expect(runs).toHaveLength(done.attempts);
    const retry = runs.at(-1)!;
    expect(retry.workerPid).toBe(survivor.pid);
    // The retry hydrated the killed attempt's checkpointed lines and continued the same session.
    expect(retry.resumed).toBe(true);
    expect(retry.sessionId).toBe(first.sessionId);
    expect(retry.history).toEqual([prompt]);
    expect(retry.prompt.startsWith(t.config.worker.continuationPrompt)).toBe(true);
    expect(retry.prompt).toBe(`${t.config.worker.continuationPrompt}\n\n${prompt}`);

    const conv = await conversation('kill-1');
    expect(conv.session_id).toBe(first.sessionId);
    expect(conv.turns_total).toBe(1);
    expect(conv.lease_owner).toBeNull();
    const entries = await committedSession(conv);
    // The original prompt once (checkpointed by the killed attempt), then the continuation.
    expect(userPrompts(entries)).toEqual([prompt, retry.prompt]);
    expect(assistantTexts(entries)).toEqual([`fake reply to: ${retry.prompt}`]);

  });

  // Two CLI behaviours: the pinned CLI keeps the session id on resume; with one that
  // moves to a new id (older CLIs, forks), the frozen worker's session file still
  // continues the stored bytes of the old session, so only the fencing token stands
  // between it and a second commit.
  it.each([
    { cli: 'keeps its session id on resume', script: undefined },
    { cli: 'moves to a new session id on resume', script: '{"newSessionIdOnResume":true}' },
  ])('a stalled job re-delivered while the first worker lives does not commit twice: the frozen worker writes nothing after it wakes (CLI $cli)', async ({ script }) => {
    await startWorkers(2, 2, script ? { FAKE_CLAUDE_SCRIPT: script } : {});
    // Long enough that the frozen worker's lease (3 s) and job lock (2 s) expire, short
    // enough that its CLI (not frozen: its own process) finishes while the worker sleeps.
    const prompt = '#fake {"delayMs":3000}\nfrozen task';
    const { turnId } = await client.enqueueTurn({ conversationId: 'stall-1', prompt });
    const first = await waitForStart((r) => r.prompt === prompt, 'the first attempt to start');
    const frozen = ownerOf(first);
    const other = workers.find((w) => w !== frozen)!;
    const conv0 = await conversation('stall-1');
    await waitUntil(async () => (await storedLineCount(conv0.id)) > 0, 'the first attempt to checkpoint session lines');
    frozen.signal('SIGSTOP');

    const done = await client.waitForTurn(turnId, 20_000);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(2);
    const retry = starts().find((r) => r.prompt.endsWith('frozen task') && r.pid !== first.pid)!;
    expect(retry.workerPid).toBe(other.pid);
    expect(retry.history).toEqual([prompt]);
    expect(retry.sessionId === first.sessionId).toBe(script === undefined);
    // The frozen worker's CLI finished meanwhile: on waking, that worker holds a successful
    // outcome it would commit if its stale fencing token were not refused.
    await waitUntil(() => endOf(first.pid) !== undefined, 'the frozen worker\'s CLI to finish its run', 10_000);
    const committed = await snapshot(conv0.id);

    frozen.signal('SIGCONT');
    // It wakes, finds its lease gone, stops without writing; then drain it: the exit proves it is done.
    await waitUntil(() => /lease lost/.test(frozen.stdout()), 'the woken worker to notice it lost the lease', 10_000);
    expect(await frozen.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(await snapshot(conv0.id)).toEqual(committed);

    const conv = await conversation('stall-1');
    expect(conv.session_id).toBe(retry.sessionId);
    expect(conv.turns_total).toBe(1);
    expect(conv.lease_owner).toBeNull();
    const turn = await rows<{ status: string; attempts: number }>('select status, attempts from turns where id = $1', [turnId]);
    expect(turn).toEqual([{ status: 'succeeded', attempts: 2 }]);
    // The frozen attempt's result never reached Postgres: only the attempt that committed has one.
    expect(await rows('select attempt from turn_events where turn_id = $1 and type = $2 order by attempt', [turnId, 'result'])).toEqual([{ attempt: 2 }]);
    const entries = await committedSession(conv);
    expect(userPrompts(entries)).toEqual([prompt, retry.prompt]);
    expect(assistantTexts(entries)).toEqual([`fake reply to: ${retry.prompt}`]);
  });

  it('SIGTERM drains: the worker interrupts its long turn after the grace period, hands it back, exits 0, and another worker continues it', async () => {
    await startWorkers(2, 2);
    const prompt = '#fake {"delayMs":30000}\ndrained task';
    const { turnId } = await client.enqueueTurn({ conversationId: 'drain-1', prompt });
    const first = await waitForStart((r) => r.prompt === prompt, 'the first attempt to start');
    const draining = ownerOf(first);
    const other = workers.find((w) => w !== draining)!;
    const conv0 = await conversation('drain-1');
    await waitUntil(async () => (await storedLineCount(conv0.id)) > 0, 'the first attempt to checkpoint session lines');

    const sentAt = Date.now();
    expect(await draining.stop('SIGTERM', 10_000)).toEqual({ code: 0, signal: null });
    const tookMs = Date.now() - sentAt;
    // It gave the turn its grace period, then interrupted it instead of waiting 30 s.
    expect(tookMs).toBeGreaterThanOrEqual(GRACE_MS);
    expect(tookMs).toBeLessThan(8000);
    expect(isAlive(first.pid)).toBe(false);
    expect(endOf(first.pid)).toBeUndefined();
    // Handed back, not abandoned: the lease is released at once (an abandoned lease would
    // still name the stopped worker until it expires).
    expect((await conversation('drain-1')).lease_owner).not.toBe(draining.workerId);

    const done = await client.waitForTurn(turnId, 20_000);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(2);
    expect(done.error).toBeNull();
    // The drained attempt says so: it does not count against AGENTQ_MAX_ATTEMPTS.
    expect(await countHandBacks(client.db, turnId)).toBe(1);
    const retry = starts().find((r) => r.prompt.endsWith('drained task') && r.pid !== first.pid)!;
    expect(retry.workerPid).toBe(other.pid);
    expect(retry.sessionId).toBe(first.sessionId);
    expect(retry.history).toEqual([prompt]);
    expect(retry.prompt).toBe(`${t.config.worker.continuationPrompt}\n\n${prompt}`);
    const conv = await conversation('drain-1');
    expect(conv.turns_total).toBe(1);
    const entries = await committedSession(conv);
    expect(userPrompts(entries)).toEqual([prompt, retry.prompt]);
    expect(assistantTexts(entries)).toEqual([`fake reply to: ${retry.prompt}`]);
  });

  it('a queued turn that is cancelled never runs, and the turns after it still run', async () => {
    await startWorkers(2, 2);
    const p1 = '#fake {"delayMs":1500}\nfirst';
    const p2 = 'second (cancelled)';
    const p3 = 'third';
    const t1 = await client.enqueueTurn({ conversationId: 'cancel-q', prompt: p1 });
    const t2 = await client.enqueueTurn({ conversationId: 'cancel-q', prompt: p2 });
    const t3 = await client.enqueueTurn({ conversationId: 'cancel-q', prompt: p3 });
    await waitForStart((r) => r.prompt === p1, 'turn 1 to start');
    expect(await client.cancelTurn(t2.turnId)).toBe('cancelled');
    // Only a conversation's head turn has a job: turn 3 waits for turn 1's commit.
    expect(await client.queue.getJob(t3.turnId)).toBeUndefined();

    expect((await client.waitForTurn(t3.turnId, 20_000)).status).toBe('succeeded');
    expect((await client.waitForTurn(t1.turnId, 1000)).status).toBe('succeeded');
    const cancelled = await client.waitForTurn(t2.turnId, 1000);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.attempts).toBe(0);
    const runs = starts();
    expect(runs.map((r) => r.prompt)).toEqual([p1, p3]);
    expect(runs[1]!.history).toEqual([p1]);
    // Turn 3 ran as soon as turn 1 was done, not after some lease or retry delay.
    expect(runs[1]!.startedAt - endOf(runs[0]!.pid)!.endedAt).toBeLessThan(2000);
    expect((await conversation('cancel-q')).turns_total).toBe(2);

    // Cancelling the head itself (queued, not due for a minute) lets the next turn run now.
    const h1 = await client.enqueueTurn({ conversationId: 'cancel-h', prompt: 'not due yet (cancelled)', delayMs: 60_000 });
    const h2 = await client.enqueueTurn({ conversationId: 'cancel-h', prompt: 'behind the cancelled head' });
    expect(await client.cancelTurn(h1.turnId)).toBe('cancelled');
    expect((await client.waitForTurn(h2.turnId, 10_000)).status).toBe('succeeded');
    expect((await client.getTurn(h1.turnId))?.status).toBe('cancelled');
    expect(starts().map((r) => r.prompt)).toEqual([p1, p3, 'behind the cancelled head']);
  });

  it('a running turn cancelled with cancelTurn is interrupted within 2 s, ends cancelled with its partial session committed, and the next turn resumes it', async () => {
    await startWorkers(2, 2);
    const p1 = '#fake {"hang":true}\nhanging task';
    const { turnId } = await client.enqueueTurn({ conversationId: 'cancel-r', prompt: p1 });
    const first = await waitForStart((r) => r.prompt === p1, 'the hanging turn to start');
    await waitUntil(async () => (await client.getTurn(turnId))?.status === 'running', 'the turn to be running');

    const requestedAt = Date.now();
    expect(await client.cancelTurn(turnId)).toBe('cancel_requested');
    const done = await client.waitForTurn(turnId, 2000);
    expect(Date.now() - requestedAt).toBeLessThan(2000);
    expect(done.status).toBe('cancelled');
    expect(done.attempts).toBe(1);
    await waitUntil(() => !isAlive(first.pid), 'the cancelled CLI to be gone', 2000);

    // The partial session is committed and the conversation points at it.
    const conv = await conversation('cancel-r');
    expect(conv.session_id).toBe(first.sessionId);
    expect(conv.lease_owner).toBeNull();
    expect(userPrompts(await committedSession(conv))).toEqual([p1]);

    const p2 = 'after the cancel';
    const next = await client.enqueueTurn({ conversationId: 'cancel-r', prompt: p2 });
    expect((await client.waitForTurn(next.turnId, 20_000)).status).toBe('succeeded');
    const run2 = starts().find((r) => r.prompt === p2)!;
    expect(run2.resumed).toBe(true);
    expect(run2.sessionId).toBe(first.sessionId);
    expect(run2.history).toEqual([p1]);
    expect(starts()).toHaveLength(2);
  });
});
