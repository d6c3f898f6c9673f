// How a turn's BullMQ job ends once the turn's attempt (or why there was none) is known.
// Acknowledged: the processor returns, and BullMQ completes the job; by then the turn is
// committed or was not ours to run (invariant 6 of docs/design.md: commit before ack).
// Handed back: the job is moved to the delayed set to run again at a time, which BullMQ
// requires to be signalled by throwing its DelayedError after moveToDelayed.
import { DelayedError, type Job } from 'bullmq';
import type { TurnJobData } from '../queue/jobs.js';

/** What the job's processor does: acknowledge with a result, or hand the job back to run again later. */
export type JobEnd = { kind: 'ack'; result: string } | { kind: 'hand_back'; runAt: number; reason: string };

/** Acknowledges the job: BullMQ completes it with `result` (a turn status, or why it was not run here). */
export function ackJob(result: string): string {
  return result;
}

/** Moves the job to the delayed set to run again at `runAt` (epoch ms); never returns. */
export async function handJobBack(job: Job<TurnJobData>, token: string | undefined, runAt: number, reason: string): Promise<never> {
  await job.moveToDelayed(runAt, token);
  throw new DelayedError(reason);
}

/** Ends the job as `end` says. */
export function endJob(job: Job<TurnJobData>, token: string | undefined, end: JobEnd): Promise<string> {
  return end.kind === 'ack' ? Promise.resolve(ackJob(end.result)) : handJobBack(job, token, end.runAt, end.reason);
}
