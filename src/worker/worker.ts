// The worker: a BullMQ consumer whose processor runs the turn protocol (./turnJobs.ts),
// plus the housekeeping loop (./housekeeping.ts: reconciler, orphan sweep, pruning), the
// schedule runner and the cancel listener. The library never installs signal handlers;
// `agentq worker` does, and calls stop().
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import { heartbeat, HEARTBEAT_INTERVAL_MS } from '../queue/heartbeat.js';
import type { TurnJobData } from '../queue/jobs.js';
import { reconcile } from '../queue/reconciler.js';
import { createScheduleRunner } from '../schedules/runtime.js';
import { AfterTurns } from './afterTurns.js';
import type { Attempt } from './attempt.js';
import { createHousekeeping } from './housekeeping.js';
import { WorkerLifetime } from './lifetime.js';
import { LocalCache } from './localCache.js';
import { closeResources, openResources, type WorkerResources } from './resources.js';
import { TurnJobs } from './turnJobs.js';
import type { TurnWorker, WorkerEnd, WorkerOptions } from './workerTypes.js';

export type { TurnEnding, TurnWorker, WorkerEnd, WorkerOptions } from './workerTypes.js';

export function createWorker(config: Config, options: WorkerOptions = {}): TurnWorker {
  const workerId = options.workerId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const log = (options.log ?? createLogger(config)).child({ workerId });
  const concurrency = options.concurrency ?? config.concurrency;
  const attempts = new Map<string, Attempt>();
  const cache = new LocalCache(path.join(config.worker.runsRoot, '.cache'), config.worker.sessionCacheMaxBytes);
  const afterTurns = new AfterTurns(log);
  const endings: WorkerEnd['turns'] = [];
  let endReason: WorkerEnd['reason'] = 'stopped';
  let resources: WorkerResources | undefined;
  let jobs: TurnJobs | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  const timers: NodeJS.Timeout[] = [];

  const abortAll = (reason: string) => {
    for (const a of attempts.values()) a.abort(reason);
  };
  // The last allowed claim closes the BullMQ worker at once (it fetches nothing more; a
  // closing worker's ack does not fetch the next job); the end of the last attempt stops.
  const lifetime = new WorkerLifetime(options, {
    onLastClaim: () => void resources?.bull?.close(),
    onDone: (end) => {
      endReason = end;
      log.info({ end, turns: endings.length }, end === 'idle' ? 'idle: stopping' : 'turn limit reached: stopping');
      void api.stop();
    },
  });

  const start = async () => {
    const r = await openResources(config, {
      log,
      workerId,
      concurrency,
      // A worker with a lifetime ends soon anyway: it keeps nothing warm.
      keepsWarm: options.maxTurns === undefined && options.idleExitMs === undefined,
      warmObserver: options.observeWarm,
      lookup: (turnId) => attempts.get(turnId),
      onCancel: (turnId) => attempts.get(turnId)?.abort('cancelled'),
      acceptHandoff: (turnId, conversationId) => jobs?.acceptHandoff(turnId, conversationId) ?? false,
    });
    resources = r;
    jobs = new TurnJobs({ config, log, workerId, options, resources: r, cache, afterTurns, lifetime, attempts, endings, stopping: () => stopping !== undefined });
    // The idle clock of an ephemeral worker starts when it starts taking jobs.
    lifetime.started();
    r.workerConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    r.bull = new Worker<TurnJobData>(config.queueName, jobs.process, {
      connection: r.workerConn,
      prefix: config.queuePrefix,
      // Never more jobs in hand than turns left to run (maxTurns): none is fetched only to be handed back.
      concurrency: Math.min(concurrency, options.maxTurns ?? Infinity),
      lockDuration: config.worker.jobLockMs,
      stalledInterval: config.worker.jobLockMs,
      // Postgres decides what runs; a stalled job is re-delivered as often as it takes.
      maxStalledCount: 1000,
    });
    r.bull.on('failed', (job, err) => log.error({ err, turnId: job?.data.turnId }, 'turn job failed'));
    r.bull.on('error', (err) => log.warn({ err }, 'worker error'));
    // The BullMQ worker is fetching now; what the first turn does not need runs alongside
    // (cold start of ephemeral workers): the housekeeping pass (orphan sweep, reconcile,
    // prune), the schedule runner and the first heartbeat. start() still resolves only
    // after all of them, so a started worker has reconciled once.
    r.schedules = createScheduleRunner(config, { db: r.db, turnQueue: r.queue, log });
    const housekeeping = createHousekeeping({ config, db: r.db, queue: r.queue, schedules: () => r.schedules, log });
    // Workers seen recently, for `agentq stats` and autoscalers (src/queue/heartbeat.ts).
    const beat = () => heartbeat(r.queueConn, config, workerId).catch((err: unknown) => log.warn({ err }, 'worker heartbeat failed'));
    await Promise.all([housekeeping(), r.schedules.start(), beat()]);
    timers.push(setInterval(() => void housekeeping(), config.worker.reconcileIntervalMs), setInterval(() => void beat(), HEARTBEAT_INTERVAL_MS));
    log.info({ queue: config.queueName, concurrency }, 'worker started');
  };

  const stop = async (graceMs: number) => {
    for (const t of timers) clearInterval(t);
    lifetime.dispose();
    const graceTimer = setTimeout(() => abortAll('shutdown'), graceMs);
    try {
      await resources?.bull?.close();
      // Turns taken over from other workers have no job here: wait for them as for jobs.
      while (jobs && jobs.handoffRuns.size > 0) await Promise.allSettled([...jobs.handoffRuns]);
    } finally {
      clearTimeout(graceTimer);
      // What the last commits left to do on this machine's disk.
      await afterTurns.idle();
      // Every turn is committed or handed back.
      if (resources) await closeResources(resources, config, workerId, log);
      log.info('worker stopped');
    }
  };

  let settle: (end: WorkerEnd) => void = () => undefined;
  const finished = new Promise<WorkerEnd>((resolve) => (settle = resolve));
  const api: TurnWorker = {
    workerId,
    finished,
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
      const ended = () => settle({ reason: endReason, turns: [...endings] });
      void stopping.then(ended, ended);
      return stopping;
    },
    reconcileNow() {
      if (!resources) return Promise.reject(new Error('the worker is not started'));
      return reconcile(resources.db, resources.queue);
    },
    running() {
      return [...attempts.keys()];
    },
  };
  return api;
}
