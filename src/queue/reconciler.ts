// The reconciler: Postgres says which turns are due; make sure each has a BullMQ job.
// Runs in every worker, on start and periodically; running it in many at once is safe
// because a job id is the turn id and adding an existing id is a no-op. It repairs a
// flushed or restarted Redis, a producer that died between insert and add, and a job
// BullMQ gave up on while Postgres still has the turn pending.
import type { Queue } from 'bullmq';
import type { StoreDb } from '../store/db.js';
import { pendingHeads } from '../store/turns.js';
import { dispatchTurn, turnJobId } from './dispatch.js';
import type { TurnJobData } from './jobs.js';

/** BullMQ states in which a job will still run; anything else needs a new job. */
const LIVE_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

export async function reconcile(
  db: StoreDb,
  queue: Queue<TurnJobData>,
  limit = 1000,
  onError: (turnId: string, err: unknown) => void = () => undefined,
): Promise<{ checked: number; dispatched: number; failed: number }> {
  const heads = await pendingHeads(db, limit);
  let dispatched = 0;
  let failed = 0;
  for (const head of heads) {
    // One head that cannot be dispatched must not hold back the others.
    try {
      if (await reconcileHead(queue, head)) dispatched++;
    } catch (err) {
      failed++;
      onError(head.id, err);
    }
  }
  return { checked: heads.length, dispatched, failed };
}

async function reconcileHead(
  queue: Queue<TurnJobData>,
  head: { id: string; runAt: Date; priority: number; leaseExpiresAt: Date | null; approvalRounds: number },
): Promise<boolean> {
  const job = await queue.getJob(turnJobId(head));
  if (job) {
    const state = await job.getState();
    if (LIVE_STATES.has(state)) return false;
    // A completed or failed job of a turn Postgres still has pending: replace it.
    await job.remove().catch(() => undefined);
  }
  // A running turn whose worker lives keeps its lease; the new job waits it out.
  const notBefore = head.leaseExpiresAt && head.leaseExpiresAt > head.runAt ? head.leaseExpiresAt : head.runAt;
  await dispatchTurn(queue, { id: head.id, runAt: notBefore, priority: head.priority, approvalRounds: head.approvalRounds });
  return true;
}
