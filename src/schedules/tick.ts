// One tick of a schedule: read the schedule, apply its overlap policy, enqueue the turn.
// The tick's time goes into the turn's idempotency key, so a tick delivered twice (a
// stalled job, a retry after a Postgres error) enqueues one turn.
import { UnrecoverableError, type Job } from 'bullmq';
import { TurnInputError, StoreInputError } from '../errors.js';
import { enqueueTurn, type EnqueuedTurnInfo } from '../queue/enqueue.js';
import type { TurnJobData } from '../queue/jobs.js';
import type { EnqueueTurnInput } from '../queue/turnInput.js';
import type { StoreDb } from '../store/db.js';
import type { Queue } from 'bullmq';
import { parseTickJob, type TickJobData } from './scheduler.js';
import { hasActiveTurn, lockSchedule, markFired, markSkipped } from './store.js';

export type Enqueue = (input: EnqueueTurnInput) => Promise<EnqueuedTurnInfo>;

/** Enqueues as the producer client does (validate, record, dispatch the head), over handles the caller owns. */
export function enqueuerFor(db: StoreDb, turnQueue: Queue<TurnJobData>, maxPromptChars: number): Enqueue {
  return (raw) => enqueueTurn(db, turnQueue, raw, { maxPromptChars, defaultSource: 'schedule' });
}

export type TickOutcome =
  /** A new turn was enqueued. */
  | { kind: 'enqueued'; turnId: string }
  /** This tick had enqueued its turn already (a re-delivery). */
  | { kind: 'duplicate'; turnId: string }
  /** Overlap policy `skip`: the conversation had a queued or running turn. */
  | { kind: 'skipped' }
  /** The schedule was removed or disabled after the tick was planned. */
  | { kind: 'gone' };

/** The idempotency key of the turn a tick enqueues. */
export function tickIdempotencyKey(scheduleId: string, tickAt: Date): string {
  return `schedule:${scheduleId}:${tickAt.getTime()}`;
}

export async function runTick(db: StoreDb, enqueue: Enqueue, scheduleId: string, tickAt: Date): Promise<TickOutcome> {
  return db.transaction(async (tx) => {
    // The row lock makes the overlap check and the enqueue one step per schedule (the
    // enqueue runs on another connection and commits first; the next tick waits here and
    // then sees its turn).
    const s = await lockSchedule(tx, scheduleId);
    if (!s || !s.enabled) return { kind: 'gone' } as const;
    if (s.overlap === 'skip' && (await hasActiveTurn(tx, s.tenantId, s.conversationExternalId))) {
      await markSkipped(tx, s.id, tickAt);
      return { kind: 'skipped' } as const;
    }
    const turn = await enqueue({
      conversationId: s.conversationExternalId,
      tenantId: s.tenantId,
      prompt: s.prompt,
      options: s.options as EnqueueTurnInput['options'],
      idempotencyKey: tickIdempotencyKey(s.id, tickAt),
      source: 'schedule',
    });
    await markFired(tx, s.id, tickAt, turn.turnId);
    return turn.created ? ({ kind: 'enqueued', turnId: turn.turnId } as const) : ({ kind: 'duplicate', turnId: turn.turnId } as const);
  });
}

/** When the tick was due: BullMQ names scheduler jobs `repeat:<scheduler id>:<millis>`. */
export function tickTime(job: Job<TickJobData>): Date {
  const millis = Number(job.id?.slice(job.id.lastIndexOf(':') + 1));
  if (Number.isSafeInteger(millis) && millis > 0) return new Date(millis);
  const prev = (job.opts as { prevMillis?: number }).prevMillis;
  return new Date(typeof prev === 'number' ? prev : job.timestamp);
}

/** The processor of the tick queue. A stored schedule that no longer validates fails its tick without retries. */
export async function processTick(db: StoreDb, enqueue: Enqueue, job: Job<TickJobData>): Promise<TickOutcome> {
  const { scheduleId } = parseTickJob(job.name, job.data);
  try {
    return await runTick(db, enqueue, scheduleId, tickTime(job));
  } catch (err) {
    if (err instanceof TurnInputError || err instanceof StoreInputError) {
      throw new UnrecoverableError(`schedule ${scheduleId} cannot enqueue its turn: ${err.message}`);
    }
    throw err;
  }
}
