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
import { safeErrorMessage } from '../errors.js';
import { startWorkerLive, type WorkerLive } from '../live/workerLive.js';
import { createLogger } from '../logger.js';
import { cancelChannel, createTurnQueue, dispatchTurn } from '../queue/dispatch.js';
import { parseTurnJob, type TurnJobData } from '../queue/jobs.js';
import { reconcile } from '../queue/reconciler.js';
import { sweepOrphanedRuns } from '../runner/processTree.js';
import { runnerSettings, type RunnerSettings } from '../runner/runClaude.js';
import { credentialsPresent } from '../runner/apiCredentials.js';
import { runCgroupHost } from '../runner/runLimits.js';
import { resolveSandbox } from '../sandbox/resolve.js';
import { createStoreDb, type StoreDb } from '../store/db.js';
import { createPool } from '../store/pool.js';
import { pruneTurnEvents } from '../store/retention.js';
import { claimTurn, type ClaimResult } from '../store/turns.js';
import { Attempt, type AttemptDeps } from './attempt.js';
import { LocalCache } from './localCache.js';
import { createScheduleRunner, type ScheduleRunner } from '../schedules/runtime.js';
import type { ObserveAttempt, WarmObserver } from './observer.js';
import { WarmHandoff } from './warmHandoff.js';
import { WarmPool } from './warmPool.js';
import { warmIdleMsFor, warmOptionsKey } from './warmPolicy.js';
import { WorkerLifetime, type LifetimeEnd } from './lifetime.js';
import { forgetWorker, heartbeat, HEARTBEAT_INTERVAL_MS } from '../queue/heartbeat.js';

export interface WorkerOptions {
  /** Default: config.concurrency. */
  concurrency?: number;
  log?: Logger;
  /** Default: `<hostname>:<pid>:<random>`. */
  workerId?: string;
  /** Gives each claimed attempt an observer (metrics, traces; see src/metrics). Default: none. */
  observeAttempt?: ObserveAttempt;
  /** Stop on its own after this many claimed turns ended (committed or handed back). Default: no limit. */
  maxTurns?: number;
  /** Stop on its own after this long with no turn running (from start, and after each turn). Default: never. */
  idleExitMs?: number;
  /** Told about warm conversations (metrics). Default: none. */
  observeWarm?: WarmObserver;
}

/** How one claimed turn ended in this worker: its committed status, or why it was not committed here. */
export type TurnEnding = 'succeeded' | 'failed' | 'cancelled' | 'requeued' | 'lease_lost' | 'error';

/** Why and how a worker stopped. */
export interface WorkerEnd {
  reason: 'stopped' | LifetimeEnd;
  /** Every turn this worker claimed, in the order their attempts ended. */
  turns: { turnId: string; ending: TurnEnding }[];
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
  /** Settles once the worker has stopped, by stop() or on its own (maxTurns, idleExitMs), all connections closed. */
  readonly finished: Promise<WorkerEnd>;
}

/** How often a worker deletes turn events past AGENTQ_EVENT_RETENTION_MS (and once at start). */
const PRUNE_EVERY_MS = 60 * 60 * 1000;

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
  let live: WorkerLive | undefined;
  let queue: Queue<TurnJobData> | undefined;
  let bull: Worker<TurnJobData> | undefined;
  let reconcileTimer: NodeJS.Timeout | undefined;
  /** Scheduled agents: ticks run here, and housekeeping re-syncs the job schedulers from Postgres. */
  let schedules: ScheduleRunner | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  /** Set by start(): how CLI runs are started (sandboxed or not). */
  let runner: RunnerSettings | undefined;
  /** With AGENTQ_MODEL=mock: the built-in mock model this worker's runs talk to. */
  let mock: { close(): Promise<void> } | undefined;
  /** Conversations kept warm here; none in a worker with a lifetime (--once, maxTurns, idleExitMs). */
  let warmPool: WarmPool | undefined;
  let handoff: WarmHandoff | undefined;
  let handoffConn: Redis | undefined;
  /** Turns taken over from another worker's request (no BullMQ job here): stop() waits for them. */
  const handoffRuns = new Set<Promise<void>>();
  const warmObserver = options.observeWarm;

  const abortAll = (reason: string) => {
    for (const a of attempts.values()) a.abort(reason);
  };
  const endings: WorkerEnd['turns'] = [];
  let endReason: WorkerEnd['reason'] = 'stopped';
  let heartbeatTimer: NodeJS.Timeout | undefined;
  // The last allowed claim closes the BullMQ worker at once (it fetches nothing more; a
  // closing worker's ack does not fetch the next job); the end of the last attempt stops.
  const lifetime = new WorkerLifetime(options, {
    onLastClaim: () => void bull?.close(),
    onDone: (end) => {
      endReason = end;
      log.info({ end, turns: endings.length }, end === 'idle' ? 'idle: stopping' : 'turn limit reached: stopping');
      void api.stop();
    },
  });

  const processJob = async (job: Job<TurnJobData>, token?: string): Promise<string> => {
    const { turnId } = parseTurnJob(job.name, job.data);
    if (!lifetime.reserve()) {
      // Every turn this worker may run is taken: leave the job to other workers, untouched.
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError('this worker has taken its last turn');
    }
    let reserved = true;
    try {
      return await runJob(job, turnId, token, () => {
        reserved = false;
        lifetime.claimedTurn();
      });
    } finally {
      if (reserved) lifetime.release();
    }
  };

  const runJob = async (job: Job<TurnJobData>, turnId: string, token: string | undefined, claimed: () => void): Promise<string> => {
    const claimedAt = performance.now();
    let claim = await claimTurn(db!, { turnId, workerId, leaseMs: config.worker.leaseMs });
    if (claim.kind === 'warm') {
      // Another worker keeps the conversation's CLI running: it takes the turn, or we take
      // the lease over (it is dead, frozen or busy) and run the turn cold.
      const answer = handoff
        ? await handoff.ask(claim.owner, turnId, claim.conversationId, config.worker.warmHandoffTimeoutMs)
        : 'no_answer';
      warmObserver?.handoff?.(answer);
      if (answer === 'accepted') {
        // Its commit comes before this job completes: a later delivery finds the turn done.
        await job.moveToDelayed(Date.now() + config.worker.warmHandoffDelayMs, token);
        throw new DelayedError(`handed to ${claim.owner}, which keeps the conversation warm`);
      }
      log.info({ turnId, owner: claim.owner, answer }, 'the warm owner did not take the turn: taking the conversation over');
      claim = await claimTurn(db!, { turnId, workerId, leaseMs: config.worker.leaseMs, stealWarmFrom: claim.owner });
    }
    switch (claim.kind) {
      case 'done':
      case 'not_head':
        return claim.kind;
      case 'later':
      case 'warm':
        await job.moveToDelayed(Math.max(Date.now(), claim.kind === 'warm' ? Date.now() + config.worker.warmHandoffDelayMs : claim.retryAt.getTime()) + 50, token);
        throw new DelayedError(claim.kind === 'warm' ? 'the conversation is warm elsewhere' : claim.reason);
      case 'claimed':
        break;
    }
    const ran = await runClaimed(claim, claimedAt, claimed);
    if (ran.kind === 'requeued') {
      await job.moveToDelayed(ran.runAt.getTime(), token);
      throw new DelayedError('requeued');
    }
    return ran.status;
  };

  /** Runs a claimed turn to its verdict: commit (and dispatch the next turn), hand back, or lease lost. */
  const runClaimed = async (
    claim: Extract<ClaimResult, { kind: 'claimed' }>,
    claimedAt: number,
    claimed: () => void,
  ): Promise<{ kind: 'done'; status: string } | { kind: 'requeued'; runAt: Date }> => {
    const turnId = claim.turn.id;
    const deps: AttemptDeps = { config, db: db!, cache, runner: runner!, log, workerId, live: live?.publisher, warmPool };
    const turnOptions = (claim.turn.options ?? {}) as Record<string, unknown>;
    const optionsKey = warmOptionsKey(turnOptions);
    // A process kept here is used only if it is still current (claimed from our own warm lease).
    const handle = await warmPool?.take(claim.conversation.id, claim.warmToken, optionsKey);
    const keepIdleMs = warmPool && !stopping ? warmIdleMsFor(turnOptions, config) : undefined;
    if (handle || keepIdleMs !== undefined) warmObserver?.turn?.(handle ? 'hit' : 'miss');
    const observer = options.observeAttempt?.({
      turnId,
      conversationId: claim.conversation.externalId,
      tenantId: claim.conversation.tenantId,
      attempt: claim.attempt,
      claimMs: performance.now() - claimedAt,
    });
    const warm = handle || keepIdleMs !== undefined ? { handle, keepIdleMs, optionsKey } : undefined;
    const settled = warm ? warmPool?.begin(claim.conversation.id) : undefined;
    const attempt = new Attempt({ deps: { ...deps, observer }, claim, claimedAt, warm });
    claimed();
    attempts.set(turnId, attempt);
    // Shutdown may have begun between the fetch and here: do not start a CLI then.
    if (stopping) attempt.abort('shutdown');
    let verdict;
    try {
      verdict = await attempt.run();
    } finally {
      settled?.();
      attempts.delete(turnId);
      observer?.ended?.(verdict, performance.now() - claimedAt);
      endings.push({ turnId, ending: verdict === undefined ? 'error' : verdict.kind === 'committed' ? (verdict.status as TurnEnding) : verdict.kind });
      lifetime.attemptEnded();
    }
    switch (verdict.kind) {
      case 'committed':
        // SSE readers of the turn stop here (src/live/feed.ts).
        live?.publisher.finished(turnId, verdict.status);
        if (verdict.next) {
          // After the commit: if this add is lost, the reconciler dispatches it.
          await dispatchTurn(queue!, verdict.next).catch((err: unknown) => log.warn({ err, turnId: verdict.next!.id }, 'dispatch of the next turn failed'));
        }
        return { kind: 'done', status: verdict.status };
      case 'requeued':
        return { kind: 'requeued', runAt: verdict.runAt };
      case 'lease_lost':
        return { kind: 'done', status: 'lease_lost' };
    }
  };

  /**
   * Another worker fetched a turn of a conversation kept warm here and asks us to run it.
   * Taken only if its process is here and idle and this worker is not stopping; the turn is
   * claimed as any other (fencing included). Its job stays with the asking worker, delayed:
   * a requeue here is picked up when that job comes due.
   */
  const acceptHandoff = (turnId: string, conversationId: string): boolean => {
    if (stopping || !warmPool?.hasIdle(conversationId) || !lifetime.reserve()) return false;
    const run = (async () => {
      let reserved = true;
      try {
        const claimedAt = performance.now();
        const claim = await claimTurn(db!, { turnId, workerId, leaseMs: config.worker.leaseMs });
        if (claim.kind !== 'claimed') return;
        await runClaimed(claim, claimedAt, () => {
          reserved = false;
          lifetime.claimedTurn();
        });
      } catch (err) {
        log.warn({ err, turnId }, 'a handed-over warm turn failed; its job runs it again');
      } finally {
        if (reserved) lifetime.release();
      }
    })();
    handoffRuns.add(run);
    void run.finally(() => handoffRuns.delete(run));
    return true;
  };

  const start = async () => {
    // First: with AGENTQ_SANDBOX=bwrap a worker that cannot isolate runs does not start at all.
    // Likewise with AGENTQ_RUN_* limits that this machine's cgroups cannot enforce.
    runner = runnerSettings(config, await resolveSandbox(config, log), runCgroupHost(config, log));
    if (config.model === 'mock') {
      // Imported only when asked for: a worker of the real API never loads the mock.
      const { startMockModel, mockCliEnv } = await import('../mock/mockModel.js');
      const model = await startMockModel();
      mock = model;
      runner = { ...runner, env: mockCliEnv(runner.env, model.url) };
      log.info({ url: model.url }, 'AGENTQ_MODEL=mock: CLI runs talk to the built-in mock model (offline, no key, no cost)');
    } else {
      const credentials = credentialsPresent(config);
      if (!credentials.ok) log.warn(credentials.detail);
    }
    // Each running turn needs a connection now and then (heartbeat, checkpoint, hydrate), not all the time.
    pool = createPool(config.databaseUrl, Math.min(40, Math.max(4, (options.concurrency ?? config.concurrency) + 4)), (err) =>
      log.warn({ err: safeErrorMessage(err) }, 'Postgres connection error'),
    );
    db = createStoreDb(pool);
    queueConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    queue = createTurnQueue(config.queueName, queueConn, config.queuePrefix);
    subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    subscriber.on('message', (_channel, turnId: string) => attempts.get(turnId)?.abort('cancelled'));
    // A worker with a lifetime ends soon anyway: it keeps nothing warm.
    if (options.maxTurns === undefined && options.idleExitMs === undefined) {
      warmPool = new WarmPool({
        db,
        log,
        leaseMs: config.worker.leaseMs,
        max: config.worker.warmMax,
        killGraceMs: config.cli.killGraceMs,
        onSize: (n) => warmObserver?.size?.(n),
        onReleased: (reason) => warmObserver?.released?.(reason),
      });
    }
    handoffConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    // The cancel listener, the live channels and the warm handoff channel are up before the first turn can be taken.
    [, live, handoff] = await Promise.all([
      subscriber.subscribe(cancelChannel(config.queueName, config.queuePrefix)),
      startWorkerLive(config, log, (turnId) => attempts.get(turnId)),
      WarmHandoff.start(config, workerId, handoffConn, queueConn, acceptHandoff, log),
    ]);
    let prunedAt = -Infinity;
    // Each step on its own: one failing (Redis or Postgres away) must not skip the others.
    const housekeeping = async () => {
      const swept = sweepOrphanedRuns();
      if (swept.length) log.warn({ pids: swept }, 'killed CLI processes left by a worker that died');
      await schedules?.sync().catch((err: unknown) => log.warn({ err }, 'schedule sync failed'));
      await reconcile(db!, queue!, 1000, (turnId, err) => log.warn({ err, turnId }, 'could not dispatch a due turn')).catch((err: unknown) =>
        log.warn({ err }, 'reconcile failed'),
      );
      if (config.store.eventRetentionMs > 0 && performance.now() - prunedAt >= PRUNE_EVERY_MS) {
        prunedAt = performance.now();
        await pruneTurnEvents(db!, { olderThanMs: config.store.eventRetentionMs })
          .then((n) => n > 0 && log.info({ deleted: n }, 'pruned turn events past AGENTQ_EVENT_RETENTION_MS'))
          .catch((err: unknown) => log.warn({ err }, 'pruning turn events failed'));
      }
    };
    // The idle clock of an ephemeral worker starts when it starts taking jobs.
    lifetime.started();
    workerConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    bull = new Worker<TurnJobData>(config.queueName, processJob, {
      connection: workerConn,
      prefix: config.queuePrefix,
      // Never more jobs in hand than turns left to run (maxTurns): none is fetched only to be handed back.
      concurrency: Math.min(options.concurrency ?? config.concurrency, options.maxTurns ?? Infinity),
      lockDuration: config.worker.jobLockMs,
      stalledInterval: config.worker.jobLockMs,
      // Postgres decides what runs; a stalled job is re-delivered as often as it takes.
      maxStalledCount: 1000,
    });
    bull.on('failed', (job, err) => log.error({ err, turnId: job?.data.turnId }, 'turn job failed'));
    bull.on('error', (err) => log.warn({ err }, 'worker error'));
    // The BullMQ worker is fetching now; what the first turn does not need runs alongside
    // (cold start of ephemeral workers): the housekeeping pass (orphan sweep, reconcile,
    // prune), the schedule runner and the first heartbeat. start() still resolves only
    // after all of them, so a started worker has reconciled once.
    schedules = createScheduleRunner(config, { db, turnQueue: queue, log });
    // Workers seen recently, for `agentq stats` and autoscalers (src/queue/heartbeat.ts).
    const beat = () => heartbeat(queueConn!, config, workerId).catch((err: unknown) => log.warn({ err }, 'worker heartbeat failed'));
    await Promise.all([housekeeping(), schedules.start(), beat()]);
    reconcileTimer = setInterval(() => void housekeeping(), config.worker.reconcileIntervalMs);
    heartbeatTimer = setInterval(() => void beat(), HEARTBEAT_INTERVAL_MS);
    log.info({ queue: config.queueName, concurrency: options.concurrency ?? config.concurrency }, 'worker started');
  };

  const stop = async (graceMs: number) => {
    clearInterval(reconcileTimer);
    clearInterval(heartbeatTimer);
    lifetime.dispose();
    graceTimer = setTimeout(() => abortAll('shutdown'), graceMs);
    try {
      await bull?.close();
      // Turns taken over from other workers have no job here: wait for them as for jobs.
      while (handoffRuns.size > 0) await Promise.allSettled([...handoffRuns]);
    } finally {
      clearTimeout(graceTimer);
      // Every turn is committed or handed back: let the warm processes go, releasing their leases.
      await warmPool?.close().catch((err: unknown) => log.warn({ err }, 'closing warm conversations failed'));
      handoff?.close();
      await schedules?.stop().catch(() => undefined);
      if (queueConn) await forgetWorker(queueConn, config, workerId).catch(() => undefined);
      await queue?.close().catch(() => undefined);
      subscriber?.disconnect();
      queueConn?.disconnect();
      live?.close();
      workerConn?.disconnect();
      await pool?.end().catch(() => undefined);
      await mock?.close().catch(() => undefined);
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
      void stopping.then(
        () => settle({ reason: endReason, turns: [...endings] }),
        () => settle({ reason: endReason, turns: [...endings] }),
      );
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
  return api;
}
