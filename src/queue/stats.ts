// The numbers an autoscaler needs, computed in one place for `agentq stats`,
// `GET /v1/stats` and the Prometheus gauges: the BullMQ queue depth (Redis), the queued
// and running turns with their priorities and the age of the oldest waiting one
// (Postgres, optionally for one tenant), and the workers seen recently (Redis heartbeats).
// The queue depth and the workers are global: BullMQ jobs carry only a turn id, and
// workers serve every tenant.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Config } from '../config.js';
import { WORKERS_SEEN_WINDOW_MS, workersSeen } from './heartbeat.js';

type Queryable = Pick<pg.Pool, 'query'>;

/** BullMQ job counts of the turn queue. Only head turns have jobs. */
export interface QueueDepth {
  /** waiting + prioritized: jobs due now that no worker has taken. What to scale on. */
  depth: number;
  waiting: number;
  prioritized: number;
  active: number;
  delayed: number;
  failed: number;
}

export interface TurnBacklog {
  /** Every queued turn: due, delayed, or behind an earlier turn of its conversation. */
  queued: number;
  /** Queued turns whose run_at has passed (some may wait behind a running turn of their conversation). */
  due: number;
  /** Queued turns whose run_at is still ahead (enqueued with a delay, or a retry's backoff). */
  delayed: number;
  running: number;
  /** Due queued turns per priority (0 = plain FIFO, 1 most urgent), ascending. */
  waitingByPriority: { priority: number; count: number }[];
  /** Seconds since the oldest due queued turn became due; null when none. */
  oldestWaitingAgeSeconds: number | null;
}

export interface WorkersSeen {
  /** Workers whose heartbeat is younger than windowSeconds. */
  seen: number;
  windowSeconds: number;
  ids: string[];
}

export interface AgentqStats {
  /** When the figures were read (ISO 8601). */
  at: string;
  queueName: string;
  /** The tenant the turn figures are limited to; null for all tenants. */
  tenant: string | null;
  /** Global (every tenant). */
  queue: QueueDepth;
  turns: TurnBacklog;
  /** Global (every tenant). */
  workers: WorkersSeen;
}

export async function queueDepth(queue: Pick<Queue, 'getJobCounts'>): Promise<QueueDepth> {
  const c = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
  const n = (state: string) => c[state] ?? 0;
  return {
    depth: n('waiting') + n('prioritized'),
    waiting: n('waiting'),
    prioritized: n('prioritized'),
    active: n('active'),
    delayed: n('delayed'),
    failed: n('failed'),
  };
}

/** One query over the index turns_due_run_at_idx (it holds the queued and running turns only, never history). */
export async function turnBacklog(db: Queryable, tenant?: string): Promise<TurnBacklog> {
  const scoped = tenant !== undefined;
  const r = await db.query<{ status: 'queued' | 'running'; priority: number; due: boolean; n: number; age: number | null }>(
    `select t.status, t.priority, (t.run_at <= now()) as due, count(*)::int as n,
            extract(epoch from now() - min(t.run_at))::float8 as age
       from turns t ${scoped ? 'join conversations c on c.id = t.conversation_id and c.tenant_id = $1' : ''}
      where t.status in ('queued', 'running')
      group by t.status, t.priority, (t.run_at <= now())`,
    scoped ? [tenant] : [],
  );
  const out: TurnBacklog = { queued: 0, due: 0, delayed: 0, running: 0, waitingByPriority: [], oldestWaitingAgeSeconds: null };
  const byPriority = new Map<number, number>();
  for (const row of r.rows) {
    if (row.status === 'running') {
      out.running += row.n;
      continue;
    }
    out.queued += row.n;
    if (!row.due) {
      out.delayed += row.n;
      continue;
    }
    out.due += row.n;
    byPriority.set(row.priority, (byPriority.get(row.priority) ?? 0) + row.n);
    const age = Math.max(0, row.age ?? 0);
    out.oldestWaitingAgeSeconds = Math.max(out.oldestWaitingAgeSeconds ?? 0, age);
  }
  out.waitingByPriority = [...byPriority].sort((a, b) => a[0] - b[0]).map(([priority, count]) => ({ priority, count }));
  return out;
}

export async function workerHeartbeats(redis: Redis, queue: Pick<Config, 'queueName' | 'queuePrefix'>): Promise<WorkersSeen> {
  const ids = await workersSeen(redis, queue);
  return { seen: ids.length, windowSeconds: WORKERS_SEEN_WINDOW_MS / 1000, ids };
}

export interface StatsSources {
  config: Pick<Config, 'queueName' | 'queuePrefix'>;
  db: Queryable;
  queue: Pick<Queue, 'getJobCounts'>;
  redis: Redis;
}

/** Every figure at once (the reads run in parallel). */
export async function collectStats(src: StatsSources, options: { tenant?: string } = {}): Promise<AgentqStats> {
  const [queue, turns, workers] = await Promise.all([queueDepth(src.queue), turnBacklog(src.db, options.tenant), workerHeartbeats(src.redis, src.config)]);
  return { at: new Date().toISOString(), queueName: src.config.queueName, tenant: options.tenant ?? null, queue, turns, workers };
}
