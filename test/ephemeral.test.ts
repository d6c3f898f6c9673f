// Ephemeral workers as real OS processes (`node bin/agentq.js worker --once ...`), the
// fake CLI, real Postgres and Redis: a conversation carried by one short-lived process per
// turn, each on an empty disk; a --once worker killed mid-turn; --idle-exit-ms;
// --max-turns-per-process; the --once exit codes.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ONCE_EXIT } from '../src/cli/workerCommand.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { waitUntil } from './helpers/processes.js';
import { killProcessesWithEnv, killWorkerProcesses, startWorkerProcess, type WorkerProcess } from './helpers/workerProcess.js';


let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await killWorkerProcesses();
  for (const fn of cleanups.reverse()) await fn().catch(() => undefined);
  cleanups = [];
});

async function setup(): Promise<{ t: TestAgentq; client: AgentqClient; log: () => FakeCliRecord[] }> {
  const t = await createTestAgentq();
  cleanups.push(() => t.cleanup());
  cleanups.push(() => killProcessesWithEnv('FAKE_CLAUDE_LOG', t.logFile));
  const client = createClient(t.config);
  cleanups.push(() => client.close());
  const log = () =>
    readFakeCliLog(t.logFile)
  return { t, client, log };
}

/** A worker process on a disk of its own (fresh workspace and runs roots under `name`). */
function spawnWorker(t: TestAgentq, name: string, args: string[]): Promise<WorkerProcess> {
  const env = { ...t.env, AGENTQ_WORKSPACE_ROOT: path.join(t.root, name, 'workspaces'), AGENTQ_RUNS_ROOT: path.join(t.root, name, 'runs') };
  return startWorkerProcess(env, { name, dir: t.root, concurrency: 1, args, waitReady: false });
}

async function exitOf(w: WorkerProcess, timeoutMs = 30_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const exit = await Promise.race([
      w.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${w.name} did not exit within ${timeoutMs} ms:\n${w.stderr()}`)), timeoutMs);
      }),
    ]);
    return exit.code;
  } finally {
    clearTimeout(timer);
  }
}

describe('agentq worker --once', () => {
  it('ten --once processes, one after another on empty disks, carry one conversation through ten turns', async () => {
    const { t, client, log } = await setup();
    const prompts = Array.from({ length: 10 }, (_, i) => `step ${i + 1}`);
    const turnIds: string[] = [];
    for (const prompt of prompts) turnIds.push((await client.enqueueTurn({ conversationId: 'relay-1', prompt })).turnId);
    for (let i = 0; i < 10; i++) {
      const w = await spawnWorker(t, `once-${i}`, ['--once', '--wait-ms', '15000']);
      const code = await exitOf(w);
      expect(code, w.stderr()).toBe(ONCE_EXIT.succeeded);
      expect(w.stderr()).toContain(`turn ${turnIds[i]} succeeded`);
      // Exactly this turn ran, and it is committed before the process exited.
      const view = await client.getConversation('relay-1');
      expect(view!.turns.map((x) => x.status)).toEqual(prompts.map((_, k) => (k <= i ? 'succeeded' : 'queued')));
    }
    const runs = log().filter((r) => r.event === 'start');
    expect(runs).toHaveLength(10);
    const sessionId = runs[0]!.sessionId;
    for (const [i, r] of runs.entries()) {
      // Each run saw every earlier prompt, hydrated from Postgres onto an empty disk.
      expect(r.history).toEqual(prompts.slice(0, i));
      expect(r.promptText).toBe(prompts[i]);
      expect(r.sessionId).toBe(sessionId);
      expect(r.resumed).toBe(i > 0);
      expect(r.cwd).toContain(path.join(t.root, `once-${i}`, 'workspaces'));
      // A worker with a lifetime spawns its run itself (AGENTQ_CLI_SPAWN=auto): no helper to wait for.
      expect(r.ppid).toBe(r.workerPid);
    }
    const view = await client.getConversation('relay-1');
    expect(view!.sessionId).toBe(sessionId);
    expect(view!.turns.every((x) => x.attempts === 1)).toBe(true);
  }, 120_000);

  it('a --once worker killed mid-turn leaves the turn to the next --once worker, which continues it', async () => {
    const { t, client, log } = await setup();
    const first = await client.enqueueTurn({ conversationId: 'killed-1', prompt: 'warm up' });
    const w0 = await spawnWorker(t, 'k-0', ['--once']);
    expect(await exitOf(w0), w0.stderr()).toBe(0);
    expect((await client.getTurn(first.turnId))!.status).toBe('succeeded');

    const slow = await client.enqueueTurn({ conversationId: 'killed-1', prompt: '#fake {"delayMs":2500,"linesBeforeDelay":true}\nlong job' });
    const a = await spawnWorker(t, 'k-a', ['--once']);
    await waitUntil(() => log().some((r) => r.event === 'start' && r.promptText === 'long job'), 'the slow turn to start', 15_000);
    a.signal('SIGKILL');
    await a.exited;
    expect((await client.getTurn(slow.turnId))!.status).toBe('running');
    // The killed worker's CLI outlives it; it can no longer commit anything.
    const b = await spawnWorker(t, 'k-b', ['--once', '--wait-ms', '30000']);
    expect(await exitOf(b, 45_000), b.stderr()).toBe(ONCE_EXIT.succeeded);
    const done = await client.getTurn(slow.turnId);
    expect(done!.status).toBe('succeeded');
    expect(done!.attempts).toBe(2);
    // The second attempt resumed the same session.
    const runs = log().filter((r) => r.event === 'start');
    expect(new Set(runs.map((r) => r.sessionId)).size).toBe(1);
    expect(runs.at(-1)!.resumed).toBe(true);
  }, 90_000);

  it('exits 5 when no turn appears within --wait-ms, 3 when the turn fails, 75 when it is handed back for a retry', async () => {
    const { t, client } = await setup();
    const started = performance.now();
    const idle = await spawnWorker(t, 'none', ['--once', '--wait-ms', '800']);
    expect(await exitOf(idle)).toBe(ONCE_EXIT.noTurn);
    expect(performance.now() - started).toBeGreaterThanOrEqual(800);
    expect(idle.stderr()).toContain('no turn to run within --wait-ms 800');
    // Once at start: the fake CLI is no version agentq was tested with.
    expect(idle.stderr().match(/warning: the claude CLI at .* is fake-1 \(Claude Code\): version not recognised/g)).toHaveLength(1);

    const bad = await client.enqueueTurn({ conversationId: 'fails-1', prompt: '#fake {"apiError":{"status":400}}\nmalformed' });
    const f = await spawnWorker(t, 'fail', ['--once']);
    expect(await exitOf(f)).toBe(ONCE_EXIT.failed);
    expect(f.stderr()).toContain(`turn ${bad.turnId} FAILED`);
    expect((await client.getTurn(bad.turnId))!.status).toBe('failed');

    const flaky = await client.enqueueTurn({ conversationId: 'flaky-1', prompt: '#fake {"apiError":{"status":503}}\nbusy' });
    const r = await spawnWorker(t, 'retry', ['--once']);
    expect(await exitOf(r)).toBe(ONCE_EXIT.handedBack);
    expect(r.stderr()).toContain('handed back to the queue');
    const back = await client.getTurn(flaky.turnId);
    // Handed back before the exit: queued again for a later attempt, its job delayed in BullMQ.
    expect(back!.status).toBe('queued');
    expect(back!.attempts).toBe(1);
    expect(await client.queue.getJobState(flaky.turnId)).toBe('delayed');
  }, 60_000);

  it('refuses bad flags by name', async () => {
    const { t } = await setup();
    for (const [args, message] of [
      [['--once', '--wait-ms', 'soon'], '--wait-ms must be a whole number'],
      [['--once', '--max-turns-per-process', '2'], '--once takes one turn'],
      [['--wait-ms', '100'], '--wait-ms goes with --once'],
      [['--idle-exit-ms', '0'], '--idle-exit-ms must be a whole number from 1'],
      [['--once', '--concurrency', '4'], '--once runs one turn'],
    ] as const) {
      const w = await spawnWorker(t, `bad-${args.join('')}`, [...args]);
      expect(await exitOf(w)).toBe(2);
      expect(w.stderr()).toContain(message);
    }
  }, 60_000);
});

describe('agentq worker --idle-exit-ms and --max-turns-per-process', () => {
  it('--idle-exit-ms exits 0 when idle, and not while a turn runs', async () => {
    const { t, client } = await setup();
    const t0 = performance.now();
    const idle = await spawnWorker(t, 'idle', ['--idle-exit-ms', '1000']);
    expect(await exitOf(idle)).toBe(0);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(idle.stderr()).toContain('exiting: idle after 0 turn(s)');

    // The turn runs 3 s, three times the idle limit: the worker waits for its commit, then idles 1 s.
    const slow = await client.enqueueTurn({ conversationId: 'idle-1', prompt: '#fake {"delayMs":3000}\nslow' });
    const busy = await spawnWorker(t, 'busy', ['--idle-exit-ms', '1000']);
    let committedAt: number | undefined;
    await waitUntil(
      async () => {
        if ((await client.getTurn(slow.turnId))!.status === 'succeeded') committedAt = performance.now();
        if (busy.exit() !== undefined && committedAt === undefined) throw new Error(`exited before the turn committed:\n${busy.stderr()}`);
        return committedAt !== undefined;
      },
      'the slow turn to commit',
      20_000,
    );
    expect(busy.exit()).toBeUndefined();
    expect(await exitOf(busy)).toBe(0);
    // It idled after the commit (~1 s) before leaving.
    expect(performance.now() - committedAt!).toBeGreaterThanOrEqual(700);
    expect(busy.stderr()).toContain('exiting: idle after 1 turn(s)');
  }, 60_000);

  it('--max-turns-per-process 2 runs exactly two turns, then exits 0 leaving the rest queued', async () => {
    const { t, client, log } = await setup();
    const ids: string[] = [];
    for (const c of ['m-1', 'm-2', 'm-3', 'm-4']) ids.push((await client.enqueueTurn({ conversationId: c, prompt: `#fake {"delayMs":300}\nwork ${c}` })).turnId);
    // Concurrency 4 but a limit of 2: never more than two turns claimed.
    const w = await spawnWorker(t, 'burst', ['--max-turns-per-process', '2', '--concurrency', '4']);
    expect(await exitOf(w)).toBe(0);
    expect(w.stderr()).toContain('turn limit reached after 2 turn(s)');
    const statuses = await Promise.all(ids.map(async (id) => (await client.getTurn(id))!.status));
    expect(statuses.filter((s) => s === 'succeeded')).toHaveLength(2);
    expect(statuses.filter((s) => s === 'queued')).toHaveLength(2);
    expect(log().filter((r) => r.event === 'start')).toHaveLength(2);
    // The others are still in BullMQ for the next worker, untouched (attempts 0).
    for (const [i, id] of ids.entries()) {
      if (statuses[i] !== 'queued') continue;
      expect((await client.getTurn(id))!.attempts).toBe(0);
      expect(['waiting', 'prioritized', 'delayed']).toContain(await client.queue.getJobState(id));
    }
  }, 60_000);
});
