// What the real-CLI turn benchmarks share: a throwaway database and queue, the mock
// Messages API as a process of its own (reporting the span of each request it answers),
// one worker (in this process) running the pinned or chosen
// CLI unsandboxed against it, and the arrival time of each job's BullMQ 'completed' event
// (job id = turn id; a job completes only after its commit).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig, type Config } from '../config.js';
import { createLogger } from '../logger.js';
import { createClient, type AgentqClient } from '../queue/client.js';
import { migrate } from '../store/migrate.js';
import type { ObserveAttempt } from '../worker/observer.js';
import { createWorker } from '../worker/worker.js';
import { databaseUrl, withDb } from './database.js';
import { spawnModeOverride, type BenchContext } from './harness.js';

const TURN_TIMEOUT_MS = 60_000;

export interface RealCliRig {
  config: Config;
  /** The database's URL (for the benchmark's own reads). */
  url: string;
  /** The requests the mock (a process of its own) answered, with their spans. */
  mock: MockLog;
  client: AgentqClient;
  /** A scratch directory, removed at the end. */
  root: string;
  /** When the job of `turnId` completed (Date.now() at the event's arrival). */
  completedAt(turnId: string): Promise<number>;
}

export interface RigOptions {
  /** Short name in the database, queue and directory names. */
  name: string;
  concurrency: number;
  /** The worker's log lines (JSON), besides stderr at `warn`. */
  onLogLine?: (line: string) => void;
  /** Passed to the worker (src/worker/observer.ts). */
  observeAttempt?: ObserveAttempt;
}

/** A request the mock answered: Date.now() when its body had arrived and when its response was written. */
export interface MockSpan {
  time: number;
  finishedAt?: number | undefined;
}

/** What a benchmark reads of the mock: the requests it answered (an in-process MockModel is one). */
export interface MockLog {
  readonly requests: readonly MockSpan[];
}

/**
 * The mock model as a child process (`--spans`: it prints each answered request's span on
 * stdout, after its URL); resolves once it prints its URL.
 */
async function startMockProcess(): Promise<MockLog & { url: string; close(): Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../mock/main.js', import.meta.url)), '--spans'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const requests: MockSpan[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
        const text = out.slice(0, nl);
        out = out.slice(nl + 1);
        let line: ({ url?: string } & Partial<MockSpan>) | null;
        try {
          line = JSON.parse(text) as ({ url?: string } & Partial<MockSpan>) | null;
        } catch {
          continue; // not one of its JSON lines: nothing to record
        }
        if (typeof line !== 'object' || line === null) continue;
        if (typeof line.url === 'string') resolve(line.url);
        else if (typeof line.time === 'number') requests.push({ time: line.time, finishedAt: line.finishedAt });
      }
    });
    child.once('exit', (code) => reject(new Error(`the mock model process exited (${code}) before it listened`)));
  });
  return {
    url,
    requests,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs `fn` with a rig, and removes everything it made afterwards. */
export async function withRealCliRig<T>(ctx: BenchContext, opts: RigOptions, fn: (rig: RealCliRig) => Promise<T>): Promise<T> {
  const base = loadConfig(process.env);
  const suffix = randomBytes(6).toString('hex');
  const dbName = `agentq_bench_${opts.name}_${suffix}`;
  const queueName = `bench-${opts.name}-${suffix}`;
  const url = databaseUrl(base.databaseUrl, dbName);
  const root = mkdtempSync(path.join(os.tmpdir(), `agentq-bench-${opts.name}-`));
  // A process of its own, as a real model is not in the worker's process: the worker's
  // event loop then does not delay the CLI's model replies.
  const mock = await startMockProcess();
  await withDb(base.databaseUrl, (c) => c.query(`create database "${dbName}"`));
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
      AGENTQ_LOG_LEVEL: opts.onLogLine ? 'info' : 'warn',
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
      ...spawnModeOverride(),
    });
    ctx.log(`CLI ${config.claudePath}`);
    events = new QueueEvents(queueName, { connection: eventsConn, blockingTimeout: 1000 });
    await events.waitUntilReady();
    // An event may arrive before its waiter.
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
    const sink = opts.onLogLine
      ? { write: (s: string) => { for (const line of s.split('\n')) if (line) opts.onLogLine!(line); } }
      : pino.destination(2);
    const worker = createWorker(config, {
      concurrency: opts.concurrency,
      log: createLogger(config, 'agentq', sink),
      ...(opts.observeAttempt ? { observeAttempt: opts.observeAttempt } : {}),
    });
    await worker.start();
    try {
      return await fn({ config, url, mock, client, root, completedAt });
    } finally {
      await worker.stop({ graceMs: 0 });
      await client.close();
    }
  } finally {
    await events?.close().catch(() => undefined);
    eventsConn.disconnect();
    const q = new Queue(queueName, { connection: conn });
    await q.obliterate({ force: true }).catch(() => undefined);
    await q.close();
    conn.disconnect();
    await withDb(base.databaseUrl, (c) => c.query(`drop database if exists "${dbName}" with (force)`)).catch(() => undefined);
    await mock.close();
    rmSync(root, { recursive: true, force: true });
  }
}
