// What a worker does now and then besides turns: kill CLI processes a dead worker left and
// remove its run directories, re-sync the schedules, dispatch turns that are due but not
// queued (the reconciler), and prune old turn events. Each step on its own: one failing
// (Redis or Postgres away) must not skip the others.
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { TurnJobData } from '../queue/jobs.js';
import { reconcile } from '../queue/reconciler.js';
import { sweepOrphanedRuns } from '../runner/processTree.js';
import { removeDeadRunDirs } from './runDirs.js';
import type { ScheduleRunner } from '../schedules/runtime.js';
import type { StoreDb } from '../store/db.js';
import { pruneTurnEvents } from '../store/retention.js';
import { expireAndQueue } from '../store/approvals.js';
import { dispatchTurn } from '../queue/dispatch.js';

/** Approvals past their time are answered deny: their turns run again (the gate denies those calls). */
async function expireApprovalsAndDispatch(db: StoreDb, queue: Queue<TurnJobData>, log: Logger): Promise<void> {
  try {
    const { expired, dispatch } = await expireAndQueue(db);
    if (expired.length > 0) log.info({ approvals: expired.map((a) => a.id) }, 'approvals expired: their calls are answered deny');
    // A lost add is repaired by the reconciler below (the turn is queued in Postgres).
    for (const due of dispatch) await dispatchTurn(queue, due).catch((err: unknown) => log.warn({ err, turnId: due.id }, 'dispatch after expiry failed'));
  } catch (err) {
    log.warn({ err }, 'expiring approvals failed');
  }
}

/** How often a worker deletes turn events past AGENTQ_EVENT_RETENTION_MS (and once at start). */
const PRUNE_EVERY_MS = 60 * 60 * 1000;

export interface HousekeepingDeps {
  config: Config;
  db: StoreDb;
  queue: Queue<TurnJobData>;
  schedules: () => ScheduleRunner | undefined;
  log: Logger;
}

/** One housekeeping pass per call; never rejects. */
export function createHousekeeping({ config, db, queue, schedules, log }: HousekeepingDeps): () => Promise<void> {
  let prunedAt = -Infinity;
  return async () => {
    const swept = sweepOrphanedRuns();
    if (swept.length) log.warn({ pids: swept }, 'killed CLI processes left by a worker that died');
    // Then what such a worker left on disk (its runs' config dirs hold tenants' sessions).
    const removed = await removeDeadRunDirs(config.worker.runsRoot);
    if (removed.length) log.info({ dirs: removed }, 'removed run directories left by a worker that died');
    await schedules()?.sync().catch((err: unknown) => log.warn({ err }, 'schedule sync failed'));
    await expireApprovalsAndDispatch(db, queue, log);
    await reconcile(db, queue, 1000, (turnId, err) => log.warn({ err, turnId }, 'could not dispatch a due turn')).catch((err: unknown) =>
      log.warn({ err }, 'reconcile failed'),
    );
    if (config.store.eventRetentionMs > 0 && performance.now() - prunedAt >= PRUNE_EVERY_MS) {
      prunedAt = performance.now();
      await pruneTurnEvents(db, { olderThanMs: config.store.eventRetentionMs })
        .then((n) => n > 0 && log.info({ deleted: n }, 'pruned turn events past AGENTQ_EVENT_RETENTION_MS'))
        .catch((err: unknown) => log.warn({ err }, 'pruning turn events failed'));
    }
  };
}
