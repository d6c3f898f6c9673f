// The BullMQ side of schedules: one job scheduler per enabled schedule (its id the
// schedule's id) on a queue of its own, `<AGENTQ_QUEUE>-schedules`. Redis only drives the
// ticks; everything a tick needs is read from Postgres, so a lost scheduler is rebuilt by
// syncSchedulers from the rows.
import { Queue, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { StoreDb } from '../store/db.js';
import { scheduleSpecs, type ScheduleRow } from './store.js';

export const TICK_JOB = 'schedule-tick';

export const tickJobSchema = z.strictObject({ scheduleId: z.uuid() });
export type TickJobData = z.infer<typeof tickJobSchema>;

export type ScheduleSpec = Pick<ScheduleRow, 'id' | 'cron' | 'timezone' | 'enabled'>;

/** The queue the ticks go through, next to the turn queue. */
export function scheduleQueueName(turnQueueName: string): string {
  return `${turnQueueName}-schedules`;
}

export function createScheduleQueue(turnQueueName: string, connection: Redis, prefix: string): Queue<TickJobData> {
  return new Queue<TickJobData>(scheduleQueueName(turnQueueName), { connection, prefix });
}

/** Parses a tick at the worker boundary; a bad payload fails at once, no retry. */
export function parseTickJob(name: string, data: unknown): TickJobData {
  if (name !== TICK_JOB) throw new UnrecoverableError(`unknown schedule job name ${JSON.stringify(name)}`);
  const parsed = tickJobSchema.safeParse(data);
  if (!parsed.success) throw new UnrecoverableError(`invalid schedule tick: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/**
 * Every tick job: completed ones go at once (the schedule row records the last tick), a
 * failed one (Postgres down) is retried; the turn's idempotency key makes a retry safe.
 */
const TICK_OPTIONS = {
  removeOnComplete: true,
  removeOnFail: { count: 100 },
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
} as const;

/** Creates or replaces the schedule's job scheduler (BullMQ computes the next tick from now). */
export async function upsertScheduler(queue: Queue<TickJobData>, spec: ScheduleSpec): Promise<void> {
  await queue.upsertJobScheduler(spec.id, { pattern: spec.cron, tz: spec.timezone }, { name: TICK_JOB, data: { scheduleId: spec.id }, opts: TICK_OPTIONS });
}

export async function removeScheduler(queue: Queue<TickJobData>, scheduleId: string): Promise<void> {
  await queue.removeJobScheduler(scheduleId);
}

export interface SyncResult {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
}

/**
 * Makes Redis match Postgres: a scheduler for every enabled schedule (added when missing,
 * replaced when its cron, zone or template differ, or when its next tick's job is gone),
 * none for anything else. Safe to run in many workers at once: an upsert of the same
 * spec converges, and removing a removed scheduler is a no-op.
 *
 * Redis is read before Postgres on purpose. Producers write the row first and the
 * scheduler second, so any scheduler seen here has its row visible in the later read and
 * is never removed by mistake. The opposite race (a schedule removed between the Postgres
 * read and an upsert here) leaves a scheduler whose ticks find no row and do nothing; the
 * next pass removes it.
 */
export async function syncSchedulers(db: StoreDb, queue: Queue<TickJobData>): Promise<SyncResult> {
  const inRedis = new Map((await queue.getJobSchedulers(0, -1)).map((s) => [s.key, s]));
  const wanted = (await scheduleSpecs(db)).filter((s) => s.enabled);
  const result: SyncResult = { added: 0, updated: 0, removed: 0, unchanged: 0 };
  for (const spec of wanted) {
    const have = inRedis.get(spec.id);
    inRedis.delete(spec.id);
    if (!have) {
      await upsertScheduler(queue, spec);
      result.added++;
      continue;
    }
    const same =
      have.name === TICK_JOB &&
      have.pattern === spec.cron &&
      (have.tz ?? 'UTC') === spec.timezone &&
      (have.template?.data as Partial<TickJobData> | undefined)?.scheduleId === spec.id;
    if (!same || !(await nextTickExists(queue, spec.id, have.next))) {
      await upsertScheduler(queue, spec);
      result.updated++;
    } else {
      result.unchanged++;
    }
  }
  for (const id of inRedis.keys()) {
    await removeScheduler(queue, id);
    result.removed++;
  }
  return result;
}

/**
 * Whether the job of the scheduler's next tick is in Redis (a scheduler whose job was
 * deleted never fires again). The next job is created atomically when the current one
 * starts, so a missing job is only trusted once a fresh read shows the same `next`.
 */
async function nextTickExists(queue: Queue<TickJobData>, id: string, next: number | undefined): Promise<boolean> {
  if (next === undefined) return false;
  if (await queue.getJob(`repeat:${id}:${next}`)) return true;
  const fresh = await queue.getJobScheduler(id);
  return fresh !== undefined && fresh.next !== next;
}
