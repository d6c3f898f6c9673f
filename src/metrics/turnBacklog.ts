// Turn counts from Postgres (the system of record) and the workers seen recently (Redis
// heartbeats), read when Prometheus scrapes the API. The figures are those of
// `agentq stats` (src/queue/stats.ts): only queued and running turns are counted, from
// the index turns_due_run_at_idx, so the cost is bounded by the backlog, whereas
// counting every succeeded turn would grow with history. Terminal totals come from the
// workers' agentq_turns_total counters instead.
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { turnBacklog, workerHeartbeats, type TurnBacklog } from '../queue/stats.js';
import { collectErrorsCounter, withTimeout } from './collectHelpers.js';

type Queryable = Pick<pg.Pool, 'query'>;

/** The gauges of one scrape share one read: prom-client collects each gauge separately. */
const SHARED_READ_MS = 1000;

/**
 * Registers `agentq_turns_current{status}`, `agentq_turns_waiting{priority}` and
 * `agentq_turns_oldest_due_age_seconds` (all tenants).
 */
export function registerTurnBacklog(registry: Registry, db: Queryable, options: { log?: Logger; timeoutMs?: number } = {}): void {
  const timeoutMs = options.timeoutMs ?? 2000;
  const scrapeErrors = collectErrorsCounter(registry);
  let last: { at: number; read: Promise<TurnBacklog> } | undefined;
  const read = () => {
    const now = performance.now();
    if (!last || now - last.at > SHARED_READ_MS) {
      const entry = { at: now, read: withTimeout(turnBacklog(db), timeoutMs, 'counting turns') };
      last = entry;
      // A failed read is not reused by a later scrape.
      entry.read.catch(() => {
        if (last === entry) last = undefined;
      });
    }
    return last.read;
  };
  const failed = (err: unknown) => {
    scrapeErrors.inc({ source: 'postgres' });
    options.log?.warn({ err }, 'metrics: could not read turn counts from Postgres');
  };
  new Gauge({
    name: 'agentq_turns_current',
    help: 'Turns queued (waiting for their turn, delayed or due) and running now, from Postgres on scrape.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const b = await read();
        this.set({ status: 'queued' }, b.queued);
        this.set({ status: 'running' }, b.running);
      } catch (err) {
        failed(err);
      }
    },
  });
  new Gauge({
    name: 'agentq_turns_waiting',
    help: 'Queued turns that are due (run_at passed), by priority (0 = FIFO, 1 most urgent), from Postgres on scrape. Absent priorities have no waiting turn.',
    labelNames: ['priority'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const b = await read();
        for (const p of b.waitingByPriority) this.set({ priority: String(p.priority) }, p.count);
      } catch (err) {
        failed(err);
      }
    },
  });
  new Gauge({
    name: 'agentq_turns_oldest_due_age_seconds',
    help: 'How long the oldest queued turn that is due (run_at passed) has waited; 0 when none. A growing value means workers are missing or saturated.',
    registers: [registry],
    async collect() {
      this.reset();
      try {
        this.set((await read()).oldestWaitingAgeSeconds ?? 0);
      } catch (err) {
        failed(err);
      }
    },
  });
}

/** Registers `agentq_workers_seen`: workers whose heartbeat is recent (src/queue/heartbeat.ts). */
export function registerWorkersSeen(
  registry: Registry,
  redis: Redis,
  queue: Pick<Config, 'queueName' | 'queuePrefix'>,
  options: { log?: Logger; timeoutMs?: number } = {},
): void {
  const scrapeErrors = collectErrorsCounter(registry);
  new Gauge({
    name: 'agentq_workers_seen',
    help: 'Workers that sent a heartbeat within the last 30 s (each worker refreshes it every 10 s), from Redis on scrape.',
    registers: [registry],
    async collect() {
      this.reset();
      try {
        this.set((await withTimeout(workerHeartbeats(redis, queue), options.timeoutMs ?? 2000, 'reading worker heartbeats')).seen);
      } catch (err) {
        scrapeErrors.inc({ source: 'redis' });
        options.log?.warn({ err }, 'metrics: could not read the worker heartbeats');
      }
    },
  });
}
