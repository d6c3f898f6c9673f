// What a worker holds while it runs, opened in start() and closed in stop(): how CLI runs
// are started (sandbox, limits, the mock model), the Postgres pool, the Redis connections
// (queue, cancel listener, warm handoff, BullMQ's own), the live channels and the pool of
// warm conversations.
import type { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { safeErrorMessage } from '../errors.js';
import type { InputTarget } from '../live/inputs.js';
import { startWorkerLive, type WorkerLive } from '../live/workerLive.js';
import { cancelChannel, createTurnQueue } from '../queue/dispatch.js';
import { forgetWorker } from '../queue/heartbeat.js';
import type { TurnJobData } from '../queue/jobs.js';
import { credentialsPresent } from '../runner/apiCredentials.js';
import { ConfigSeed } from '../runner/configSeed.js';
import { runnerSettings, type RunnerSettings } from '../runner/runClaude.js';
import { runCgroupHost } from '../runner/runLimits.js';
import { startSpawnHelper } from '../runner/spawnHelper.js';
import { resolveSandbox } from '../sandbox/resolve.js';
import type { ScheduleRunner } from '../schedules/runtime.js';
import { createStoreDb, type StoreDb } from '../store/db.js';
import { createPool } from '../store/pool.js';
import type { WarmObserver } from './observer.js';
import { WarmHandoff } from './warmHandoff.js';
import { WarmPool } from './warmPool.js';

export interface WorkerResources {
  /** How CLI runs are started (sandboxed or not, limits, the mock model's address). */
  runner: RunnerSettings;
  /** With AGENTQ_MODEL=mock: the built-in mock model this worker's runs talk to. */
  mock: { close(): Promise<void> } | undefined;
  pool: pg.Pool;
  db: StoreDb;
  queueConn: Redis;
  queue: Queue<TurnJobData>;
  subscriber: Redis;
  handoffConn: Redis;
  live: WorkerLive;
  handoff: WarmHandoff;
  /** Conversations kept warm here; none in a worker with a lifetime (--once, maxTurns, idleExitMs). */
  warmPool: WarmPool | undefined;
  /** Set once the worker takes jobs. */
  workerConn?: Redis;
  bull?: Worker<TurnJobData>;
  /** Scheduled agents: ticks run here, and housekeeping re-syncs the job schedulers from Postgres. */
  schedules?: ScheduleRunner;
}

export interface OpenOptions {
  log: Logger;
  workerId: string;
  concurrency: number;
  /** Keep conversations warm (a worker without a lifetime). */
  keepsWarm: boolean;
  warmObserver: WarmObserver | undefined;
  /** The running attempt of a turn, for mid-run input. */
  lookup: (turnId: string) => InputTarget | undefined;
  /** A cancel request for a turn arrived. */
  onCancel: (turnId: string) => void;
  /** Another worker asks this one to run a turn of a conversation kept warm here. */
  acceptHandoff: (turnId: string, conversationId: string) => boolean;
}

/**
 * Opens everything a worker needs before its first turn. With AGENTQ_SANDBOX=bwrap a
 * worker that cannot isolate runs does not start at all; likewise with AGENTQ_RUN_*
 * limits that this machine's cgroups cannot enforce.
 */
export async function openResources(config: Config, o: OpenOptions): Promise<WorkerResources> {
  const { log } = o;
  // A worker that stays starts its runs through the spawn helper, started now so its Node
  // start overlaps the worker's connecting and probing; one with a lifetime spawns them
  // itself, as its few turns would wait for the helper's start on the same cores
  // (docs/runner.md).
  const spawn = config.cli.spawn === 'auto' ? (o.keepsWarm ? 'helper' : 'direct') : config.cli.spawn;
  if (spawn === 'helper') startSpawnHelper();
  // The CLI state file runs start from: made in the background by a worker that stays (a
  // worker with a lifetime runs a few turns, likely before it is made, on the same cores).
  let runner: RunnerSettings = {
    ...runnerSettings(config, await resolveSandbox(config, log), runCgroupHost(config, log)),
    configSeed: o.keepsWarm ? new ConfigSeed(config.worker.runsRoot) : undefined,
    spawn,
  };
  let mock: WorkerResources['mock'];
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
  const pool = createPool(config.databaseUrl, Math.min(40, Math.max(4, o.concurrency + 4)), (err) =>
    log.warn({ err: safeErrorMessage(err) }, 'Postgres connection error'),
  );
  const db = createStoreDb(pool);
  const queueConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const queue = createTurnQueue(config.queueName, queueConn, config.queuePrefix);
  const subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  subscriber.on('message', (_channel, turnId: string) => o.onCancel(turnId));
  const warmPool = o.keepsWarm
    ? new WarmPool({
        db,
        log,
        leaseMs: config.worker.leaseMs,
        max: config.worker.warmMax,
        killGraceMs: config.cli.killGraceMs,
        onSize: (n) => o.warmObserver?.size?.(n),
        onReleased: (reason) => o.warmObserver?.released?.(reason),
      })
    : undefined;
  const handoffConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  // The cancel listener, the live channels and the warm handoff channel are up before the first turn can be taken.
  const [, live, handoff] = await Promise.all([
    subscriber.subscribe(cancelChannel(config.queueName, config.queuePrefix)),
    startWorkerLive(config, log, o.lookup),
    WarmHandoff.start(config, o.workerId, handoffConn, queueConn, o.acceptHandoff, log),
  ]);
  // Turns before it is made run without it, as they did before.
  runner.configSeed?.start(runner, log);
  return { runner, mock, pool, db, queueConn, queue, subscriber, handoffConn, live, handoff, warmPool };
}

/**
 * Closes what openResources opened, once every turn is committed or handed back: the warm
 * processes go (releasing their leases), then the schedule runner, the worker's heartbeat
 * key, and every connection.
 */
export async function closeResources(r: WorkerResources, config: Config, workerId: string, log: Logger): Promise<void> {
  await r.warmPool?.close().catch((err: unknown) => log.warn({ err }, 'closing warm conversations failed'));
  r.handoff.close();
  await r.schedules?.stop().catch(() => undefined);
  await forgetWorker(r.queueConn, config, workerId).catch(() => undefined);
  await r.queue.close().catch(() => undefined);
  r.subscriber.disconnect();
  r.queueConn.disconnect();
  r.live.close();
  r.workerConn?.disconnect();
  await r.pool.end().catch(() => undefined);
  await r.mock?.close().catch(() => undefined);
  await r.runner.configSeed?.close();
}
