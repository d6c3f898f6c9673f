// The worker: a BullMQ consumer whose processor runs the turn protocol, plus the
// reconciler loop and the cancel listener. The library never installs signal handlers;
// `agentq worker` does, and calls stop().
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { DelayedError, Worker, type Job, type Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import { cancelChannel, createTurnQueue, dispatchTurn } from '../queue/dispatch.js';
import { parseTurnJob, type TurnJobData } from '../queue/jobs.js';
import { reconcile } from '../queue/reconciler.js';
import { sweepOrphanedRuns } from '../runner/processTree.js';
import { runnerSettings } from '../runner/runClaude.js';
import { createStoreDb, type StoreDb } from '../store/db.js';
import { createPool } from '../store/pool.js';
import { claimTurn } from '../store/turns.js';
import { Attempt, type AttemptDeps } from './attempt.js';
import { LocalCache } from './localCache.js';

export interface WorkerOptions {
  /** Default: config.concurrency. */
  concurrency?: number;
  log?: Logger;
  /** Default: `<hostname>:<pid>:<random>`. */
  workerId?: string;
}

export interface TurnWorker {
  readonly workerId: string;
  /** Connects, reconciles once, and starts taking jobs. Idempotent. */
  start(): Promise<void>;
  /**
   * Stops taking jobs; running turns get `graceMs` (default AGENTQ_SHUTDOWN_GRACE_MS) to
   * finish, then are interrupted, checkpointed and handed back. Idempotent; a second call
   * with `graceMs: 0` cuts the grace short.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** One reconciler pass now (also runs periodically). */
  reconcileNow(): Promise<{ checked: number; dispatched: number; failed: number }>;
  /** Turns running in this worker right now. */
  running(): string[];
}

export function createWorker(config: Config, options: WorkerOptions = {}): TurnWorker {
  const workerId = options.workerId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const log = (options.log ?? createLogger(config)).child({ workerId });
  const attempts = new Map<string, Attempt>();
  const cache = new LocalCache(path.join(config.worker.runsRoot, '.cache'), config.worker.sessionCacheMaxBytes);
  let pool: pg.Pool | undefined;
  let db: StoreDb | undefined;
  let queueConn: Redis | undefined;
  let workerConn: Redis | undefined;
  let subscriber: Redis | undefined;
  let queue: Queue<TurnJobData> | undefined;
  let bull: Worker<TurnJobData> | undefined;
  let reconcileTimer: NodeJS.Timeout | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  let graceTimer: NodeJS.Timeout | undefined;

  const abortAll = (reason: string) => {
    for (const a of attempts.values()) a.abort(reason);
  };

  const processJob = async (job: Job<TurnJobData>, token?: string): Promise<string> => {
    const { turnId } = parseTurnJob(job.name, job.data);
    const deps: AttemptDeps = { config, db: db!, cache, runner: runnerSettings(config), log, workerId };
    const claimedAt = performance.now();
    const claim = await claimTurn(db!, { turnId, workerId, leaseMs: config.worker.leaseMs });
    switch (claim.kind) {
      case 'done':
      case 'not_head':
        return claim.kind;
      case 'later':
        await job.moveToDelayed(Math.max(Date.now(), claim.retryAt.getTime()) + 50, token);
        throw new DelayedError(claim.reason);
      case 'claimed':
        break;
    }
    const attempt = new Attempt(deps, claim.turn, claim.conversation, claim.fencingToken, claim.attempt, claimedAt);
    attempts.set(turnId, attempt);
    // Shutdown may have begun between the fetch and here: do not start a CLI then.
    if (stopping) attempt.abort('shutdown');
    let verdict;
    try {
      verdict = await attempt.run();
    } finally {
      attempts.delete(turnId);
    }
    switch (verdict.kind) {
      case 'committed':
        if (verdict.next) {
          // After the commit: if this add is lost, the reconciler dispatches it.
          await dispatchTurn(queue!, verdict.next).catch((err: unknown) => log.warn({ err, turnId: verdict.next!.id }, 'dispatch of the next turn failed'));
        }
        return verdict.status;
      case 'requeued':
        await job.moveToDelayed(verdict.runAt.getTime(), token);
        throw new DelayedError('requeued');
      case 'lease_lost':
        return 'lease_lost';
    }
  };

  const start = async () => {
    // Each running turn needs a connection now and then (heartbeat, checkpoint, hydrate), not all the time.
    pool = createPool(config.databaseUrl, Math.min(40, Math.max(4, (options.concurrency ?? config.concurrency) + 4)), (err) =>
      log.warn({ err: err.message }, 'Postgres connection error'),
    );
    db = createStoreDb(pool);
    queueConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    queue = createTurnQueue(config.queueName, queueConn);
    subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    await subscriber.subscribe(cancelChannel(config.queueName));
    subscriber.on('message', (_channel, turnId: string) => attempts.get(turnId)?.abort('cancelled'));
    const housekeeping = async () => {
      const swept = sweepOrphanedRuns();
      if (swept.length) log.warn({ pids: swept }, 'killed CLI processes left by a worker that died');
      await reconcile(db!, queue!, 1000, (turnId, err) => log.warn({ err, turnId }, 'could not dispatch a due turn')).catch((err: unknown) =>
        log.warn({ err }, 'reconcile failed'),
      );
    };
    await housekeeping();
    reconcileTimer = setInterval(() => void housekeeping(), config.worker.reconcileIntervalMs);
    workerConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    bull = new Worker<TurnJobData>(config.queueName, processJob, {
      connection: workerConn,
      concurrency: options.concurrency ?? config.concurrency,
      lockDuration: config.worker.jobLockMs,
      stalledInterval: config.worker.jobLockMs,
      // Postgres decides what runs; a stalled job is re-delivered as often as it takes.
      maxStalledCount: 1000,
    });
    bull.on('failed', (job, err) => log.error({ err, turnId: job?.data.turnId }, 'turn job failed'));
    bull.on('error', (err) => log.warn({ err }, 'worker error'));
    log.info({ queue: config.queueName, concurrency: options.concurrency ?? config.concurrency }, 'worker started');
  };

  const stop = async (graceMs: number) => {
    clearInterval(reconcileTimer);
    graceTimer = setTimeout(() => abortAll('shutdown'), graceMs);
    try {
      await bull?.close();
    } finally {
      clearTimeout(graceTimer);
      await queue?.close().catch(() => undefined);
      subscriber?.disconnect();
      queueConn?.disconnect();
      workerConn?.disconnect();
      await pool?.end().catch(() => undefined);
      log.info('worker stopped');
    }
  };

  return {
    workerId,
    start() {
      starting ??= start();
      return starting;
    },
    stop(opts = {}) {
      const graceMs = opts.graceMs ?? config.worker.shutdownGraceMs;
      if (stopping) {
        // A second stop with a shorter grace interrupts now.
        if (graceMs === 0) abortAll('shutdown');
        return stopping;
      }
      stopping = (starting ?? Promise.resolve()).then(() => stop(graceMs));
      return stopping;
    },
    reconcileNow() {
      if (!db || !queue) return Promise.reject(new Error('the worker is not started'));
      return reconcile(db, queue);
    },
    running() {
      return [...attempts.keys()];
    },
  };
}
