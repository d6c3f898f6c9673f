// Dispatch: a BullMQ job per due head turn, its id the turn id. Adding a job whose id
// exists is a no-op in BullMQ, so dispatching twice is harmless; completed jobs are
// removed so a turn can be dispatched again after Redis lost it.
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { TURN_JOB, type TurnJobData } from './jobs.js';

export interface DispatchTarget {
  id: string;
  runAt: Date;
  priority: number;
  /** How many times the turn waited for an approval (its job id says which round: see turnJobId). */
  approvalRounds?: number | undefined;
}

/**
 * The job id of a turn: the turn id; after the turn waited for an approval, with the round.
 * A decision can come while the job of the round before is still active (its worker has
 * committed but not yet acknowledged it): an add under the same id would be a no-op.
 */
export function turnJobId(turn: Pick<DispatchTarget, 'id' | 'approvalRounds'>): string {
  return turn.approvalRounds ? `${turn.id}.r${turn.approvalRounds}` : turn.id;
}

/** Keeps enough failed jobs to inspect; completed ones go at once (Postgres has the record). */
const JOB_DEFAULTS = { removeOnComplete: true, removeOnFail: { count: 1000 } } as const;

export function createTurnQueue(name: string, connection: Redis, prefix: string): Queue<TurnJobData> {
  return new Queue<TurnJobData>(name, { connection, prefix, defaultJobOptions: JOB_DEFAULTS });
}

export async function dispatchTurn(queue: Queue<TurnJobData>, turn: DispatchTarget): Promise<void> {
  const delay = Math.max(0, turn.runAt.getTime() - Date.now());
  await queue.add(TURN_JOB, { turnId: turn.id }, { jobId: turnJobId(turn), delay, ...(turn.priority > 0 ? { priority: turn.priority } : {}) });
}

/** Redis channel on which cancellations of running turns are announced to every worker. */
export function cancelChannel(queueName: string, prefix: string): string {
  return `${prefix}:${queueName}:agentq:cancel`;
}
