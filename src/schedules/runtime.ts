// The schedule machinery inside every worker process: a small BullMQ worker that runs
// ticks, and the sync that rebuilds the job schedulers from Postgres (on start and in each
// housekeeping pass, so a restart or a Redis that lost its data heals by itself).
import { Worker, type Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TurnJobData } from '../queue/jobs.js';
import type { StoreDb } from '../store/db.js';
import { createScheduleQueue, scheduleQueueName, syncSchedulers, type SyncResult, type TickJobData } from './scheduler.js';
import { enqueuerFor, processTick, type TickOutcome } from './tick.js';

export interface ScheduleRunner {
  /** Connects, syncs once and starts taking ticks. */
  start(): Promise<void>;
  /** One sync pass; resolves to undefined (after logging) when Redis or Postgres failed. */
  sync(): Promise<SyncResult | undefined>;
  stop(): Promise<void>;
}

/** Ticks are short (one transaction); a few at once is plenty. */
const TICK_CONCURRENCY = 4;

export function createScheduleRunner(config: Config, deps: { db: StoreDb; turnQueue: Queue<TurnJobData>; log: Logger }): ScheduleRunner {
  const log = deps.log.child({ component: 'schedules' });
  let queueConn: Redis | undefined;
  let workerConn: Redis | undefined;
  let queue: Queue<TickJobData> | undefined;
  let bull: Worker<TickJobData, TickOutcome> | undefined;
  let syncing: Promise<SyncResult | undefined> | undefined;

  const sync = () => {
    if (!queue) return Promise.resolve(undefined);
    // One pass at a time per process; a slow pass is not stacked on by the timer.
    syncing ??= syncSchedulers(deps.db, queue)
      .then((r) => {
        if (r.added + r.updated + r.removed > 0) log.info(r, 'schedules synced to Redis');
        return r;
      })
      .catch((err: unknown) => {
        log.warn({ err }, 'schedule sync failed; the next housekeeping pass retries');
        return undefined;
      })
      .finally(() => {
        syncing = undefined;
      });
    return syncing;
  };

  return {
    async start() {
      queueConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
      queue = createScheduleQueue(config.queueName, queueConn, config.queuePrefix);
      const enqueue = enqueuerFor(deps.db, deps.turnQueue, config.worker.maxPromptChars);
      workerConn = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
      bull = new Worker<TickJobData, TickOutcome>(scheduleQueueName(config.queueName), (job) => processTick(deps.db, enqueue, job), {
        connection: workerConn,
        prefix: config.queuePrefix,
        concurrency: TICK_CONCURRENCY,
      });
      bull.on('completed', (job, outcome) => log.debug({ scheduleId: job.data.scheduleId, outcome }, 'schedule tick'));
      bull.on('failed', (job, err) => log.error({ err, scheduleId: job?.data.scheduleId }, 'schedule tick failed'));
      bull.on('error', (err) => log.warn({ err }, 'schedule worker error'));
      await sync();
    },
    sync,
    async stop() {
      await bull?.close();
      await syncing;
      await queue?.close().catch(() => undefined);
      queueConn?.disconnect();
      workerConn?.disconnect();
    },
  };
}
