// Retention of turn events (the stream-json transcript of each attempt).
import { sql } from 'drizzle-orm';
import type { Executor } from './db.js';

/** Rows deleted per statement: keeps each transaction and its locks short. */
const PRUNE_BATCH = 5000;

/**
 * Deletes turn events created more than `olderThanMs` ago (AGENTQ_EVENT_RETENTION_MS),
 * in batches; 0 keeps everything. Returns how many rows were deleted.
 * Index: turn_events_created_at_idx.
 */
export async function pruneTurnEvents(db: Executor, options: { olderThanMs: number; now?: Date }): Promise<number> {
  if (options.olderThanMs <= 0) return 0;
  const cutoff = new Date((options.now ?? new Date()).getTime() - options.olderThanMs);
  let total = 0;
  for (;;) {
    const res = await db.execute(sql`
      delete from turn_events where id in (
        select id from turn_events where created_at < ${cutoff.toISOString()}::timestamptz limit ${PRUNE_BATCH}
      )`);
    total += res.rowCount ?? 0;
    if ((res.rowCount ?? 0) < PRUNE_BATCH) return total;
  }
}
