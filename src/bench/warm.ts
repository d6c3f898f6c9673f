// Warm conversations: what a turn costs when its conversation's CLI process is kept
// running, against the same turn cold, in the same run. The REAL CLI (the pinned bundled
// one) answers from the mock Messages API in this process; one worker (concurrency 2)
// lives in this process too, on a throwaway database and a random queue.
//
// - warm_turn_overhead_p50_ms: two conversations, one with `options.warm` (its process is
//   kept) and one with `warm: false` (every turn spawns the CLI, which resumes the session
//   the worker keeps on disk or hydrates). After one unmeasured turn each, their turns
//   alternate one at a time. A turn's latency runs from just before enqueueTurn() to the
//   arrival of the BullMQ 'completed' event of its job (job id = turn id; the job
//   completes only after the commit). The mock's own time for that turn (the union of its
//   requests' receive → last byte written intervals in the turn's window) is subtracted.
//   Value: median over the warm turns; baseline: the same median over the cold turns.
// - warm_turn_protocol_p50_ms: the same latency minus the CLI's own `duration_ms` of the
//   turn (from its stored `result` event; it includes the mock's time): what agentq adds
//   around the CLI (enqueue, dispatch, claim, stdin write, event reading, commit, ack).
//   Baseline: the same for the cold turns (it then includes the CLI's start-up).
// - warm_cli_floor_p50_ms: the same CLI kept the same way but driven by a bare loop, no
//   agentq (./warmCliFloor.ts): per message, stdin write → its result line, minus the
//   mock's time. Half its messages run before the agentq turns and half after. A warm
//   turn cannot cost less than this; its baseline is the warm overhead of the same run.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { startMockModel } from '../mock/mockModel.js';
import { createClient } from '../queue/client.js';
import { migrate } from '../store/migrate.js';
import { createWorker } from '../worker/worker.js';
import { withDb } from './database.js';
import { cliFloorSamples, mockTime } from './warmCliFloor.js';
import { median, round, type BenchContext, type Benchmark, type Figure } from './harness.js';

const MEASURED_TURNS = 15;
const TURN_TIMEOUT_MS = 60_000;

async function run(ctx: BenchContext): Promise<Figure[]> {
  const base = loadConfig(process.env);
  const suffix = randomBytes(6).toString('hex');
  const dbName = `agentq_bench_warm_${suffix}`;
  const queueName = `bench-warm-${suffix}`;
  const adminUrl = base.databaseUrl;
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  const url = u.toString();
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-warm-'));
  const mock = await startMockModel();
  await withDb(adminUrl, (c) => c.query(`create database "${dbName}"`));
  const conn = new Redis(base.redisUrl, { maxRetriesPerRequest: null });
  // QueueEvents does not close a connection it was handed: ours to disconnect.
  const eventsConn = new Redis(base.redisUrl, { maxRetriesPerRequest: null });
  let events: QueueEvents | undefined;
  try {
    await migrate(url);
    const config = loadConfig({
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      DATABASE_URL: url,
      REDIS_URL: base.redisUrl,
      AGENTQ_QUEUE: queueName,
      AGENTQ_WORKSPACE_ROOT: path.join(root, 'workspaces'),
      AGENTQ_RUNS_ROOT: path.join(root, 'runs'),
      AGENTQ_LOG_LEVEL: 'warn',
      AGENTQ_SANDBOX: 'off',
      AGENTQ_CLAUDE_PATH: ctx.cli.path,
      // The real CLI against the mock, offline (shared/claude-cli/README.md).
      LANG: 'C.UTF-8',
      ANTHROPIC_BASE_URL: mock.url,
      ANTHROPIC_API_KEY: 'sk-test',
      CLAUDE_CODE_MAX_RETRIES: '0',
      DISABLE_TELEMETRY: '1',
      DISABLE_ERROR_REPORTING: '1',
      IS_SANDBOX: '1',
    });
    ctx.log(`CLI ${config.claudePath}`);
    events = new QueueEvents(queueName, { connection: eventsConn, blockingTimeout: 1000 });
    await events.waitUntilReady();
    // Arrival time of each job's 'completed' event (an event may arrive before its waiter).
    const arrived = new Map<string, number>();
    const waiters = new Map<string, (at: number) => void>();
    events.on('completed', ({ jobId }) => {
      const at = Date.now();
      const w = waiters.get(jobId);
      if (w) w(at);
      else arrived.set(jobId, at);
    });
    const completedAt = (jobId: string) =>
      new Promise<number>((resolve, reject) => {
        const early = arrived.get(jobId);
        if (early !== undefined) return resolve(early);
        const timer = setTimeout(() => reject(new Error(`turn ${jobId} did not complete within ${TURN_TIMEOUT_MS} ms`)), TURN_TIMEOUT_MS);
        waiters.set(jobId, (at) => {
          clearTimeout(timer);
          waiters.delete(jobId);
          resolve(at);
        });
      });
    const client = createClient(config);
    // Its logs go to stderr: stdout holds the figures (--json).
    const worker = createWorker(config, { concurrency: 2, log: createLogger(config, 'agentq', pino.destination(2)) });
    await worker.start();
    const events_ = new pg.Pool({ connectionString: url, max: 1 });
    const cliMs = async (turnId: string): Promise<number> => {
      const r = await events_.query<{ payload: string }>("select payload from turn_events where turn_id = $1 and type = 'result' order by seq desc limit 1", [turnId]);
      return Number((JSON.parse(r.rows[0]?.payload ?? '{}') as { duration_ms?: number }).duration_ms ?? Number.NaN);
    };
    const turn = async (conversationId: string, prompt: string, warm: boolean): Promise<{ latency: number; model: number; cli: number }> => {
      const t0 = Date.now();
      const { turnId } = await client.enqueueTurn({ conversationId, prompt, options: { warm: warm ? { idleMs: 600_000 } : false } });
      const t1 = await completedAt(turnId);
      const status = (await client.getTurn(turnId))?.status;
      if (status !== 'succeeded') throw new Error(`turn ${turnId} ended ${status}`);
      return { latency: t1 - t0, model: mockTime(mock, t0, t1), cli: await cliMs(turnId) };
    };
    const floor: number[] = [];
    const measureFloor = async (half: number) =>
      floor.push(...(await cliFloorSamples(config, mock, path.join(root, `floor-${half}`), Math.ceil(MEASURED_TURNS / 2))));
    try {
      await measureFloor(1);
      await turn('bench-warm', 'first warm turn', true);
      await turn('bench-cold', 'first cold turn', false);
      const warm: number[] = [];
      const cold: number[] = [];
      const warmRaw: number[] = [];
      const coldRaw: number[] = [];
      const warmProtocol: number[] = [];
      const coldProtocol: number[] = [];
      const warmCli: number[] = [];
      for (let i = 0; i < MEASURED_TURNS; i++) {
        // Alternate which goes first, so a drifting load hits both.
        const order = i % 2 === 0 ? (['warm', 'cold'] as const) : (['cold', 'warm'] as const);
        for (const kind of order) {
          const r = await turn(kind === 'warm' ? 'bench-warm' : 'bench-cold', `turn ${i + 1}`, kind === 'warm');
          (kind === 'warm' ? warm : cold).push(r.latency - r.model);
          (kind === 'warm' ? warmRaw : coldRaw).push(r.latency);
          (kind === 'warm' ? warmProtocol : coldProtocol).push(r.latency - r.cli);
          if (kind === 'warm') warmCli.push(r.cli - r.model);
        }
      }
      await measureFloor(2);
      ctx.log(`the CLI alone (bare loop, no agentq): per message ${floor.map((v) => round(v, 0)).join(' ')}`);
      ctx.log(`warm turn latency p50 ${round(median(warmRaw), 1)} ms, cold ${round(median(coldRaw), 1)} ms (mock time included)`);
      ctx.log(`warm overhead ${warm.map((v) => round(v, 0)).join(' ')}`);
      ctx.log(`cold overhead ${cold.map((v) => round(v, 0)).join(' ')}`);
      const warmP50 = median(warm);
      const coldP50 = median(cold);
      ctx.log(`ratio warm/cold ${round(warmP50 / coldP50, 3)}`);
      ctx.log(`warm turns: the CLI's own duration_ms minus the mock's time, p50 ${round(median(warmCli), 1)} ms`);
      return [
        { bench: 'warm_turn_overhead_p50_ms', value: round(warmP50, 1), unit: 'ms', baseline: round(coldP50, 1), target: '≤ 10 ms (baseline: the same turn cold)' },
        {
          bench: 'warm_turn_protocol_p50_ms',
          value: round(median(warmProtocol), 1),
          unit: 'ms',
          baseline: round(median(coldProtocol), 1),
          target: 'none (latency minus the CLI\'s own duration_ms)',
        },
        {
          bench: 'warm_cli_floor_p50_ms',
          value: round(median(floor), 1),
          unit: 'ms',
          baseline: round(warmP50, 1),
          target: 'none (the CLI alone per message, minus the mock; baseline: warm_turn_overhead_p50_ms)',
        },
        { bench: 'warm_turn_latency_p50_ms', value: round(median(warmRaw), 1), unit: 'ms', baseline: round(median(coldRaw), 1), target: 'none (mock time included)' },
      ];
    } finally {
      await worker.stop({ graceMs: 0 });
      await client.close();
      await events_.end();
    }
  } finally {
    await events?.close().catch(() => undefined);
    eventsConn.disconnect();
    const q = new Queue(queueName, { connection: conn });
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
    conn.disconnect();
    await withDb(adminUrl, (c) => c.query(`drop database if exists "${dbName}" with (force)`)).catch(() => undefined);
    await mock.close();
    rmSync(root, { recursive: true, force: true });
  }
}

export const warmBench: Benchmark = {
  name: 'warm',
  description: 'warm conversations: a turn on a kept CLI process vs the same turn cold (real CLI, mock model)',
  realCli: true,
  run,
};
