// What a worker reports about each attempt it runs, for metrics and traces (src/metrics).
// The worker asks `observeAttempt` for one observer per claimed attempt and calls its hooks
// as the attempt goes; every hook is optional, is called synchronously, and must not
// throw (an observer that fails must not fail a turn).
import type { RunOutcome } from '../runner/outcome.js';
import type { AttemptVerdict } from './attempt.js';

/** Why an attempt handed its turn back to the queue. */
export type RequeueReason = 'retry' | 'shutdown' | 'worker_error';

export interface AttemptInfo {
  turnId: string;
  /** The public conversation id (external id). */
  conversationId: string;
  tenantId: string;
  attempt: number;
  /** How long the claim (the lease grant in Postgres) took. */
  claimMs: number;
}

export interface AttemptObserver {
  /** A phase of the attempt ended after `ms` (lease, workspace, hydrate, prepare, run, commit). */
  phase?(phase: string, ms: number): void;
  /** A checkpoint (new session lines and events of the running turn) was stored in `ms`. */
  checkpointed?(ms: number): void;
  /**
   * The commit found the workspace as the attempt prepared it (`unchanged`: nothing packed
   * or stored) or packed it (`packed`).
   */
  workspace?(result: 'unchanged' | 'packed'): void;
  /** The CLI run ended with `outcome` (its cost and tokens are spent whatever happens next). */
  cliExited?(outcome: RunOutcome): void;
  /** The turn was handed back to the queue. */
  requeued?(reason: RequeueReason): void;
  /**
   * The attempt is over: `verdict` is undefined when it threw (the job fails and the
   * reconciler re-dispatches the turn). `elapsedMs` runs from before the claim.
   */
  ended?(verdict: AttemptVerdict | undefined, elapsedMs: number): void;
}

/** Called by the worker once per claimed attempt, right after the claim. */
export type ObserveAttempt = (info: AttemptInfo) => AttemptObserver;

/** What a worker reports about its warm conversations (src/worker/warmPool.ts), for metrics. */
export interface WarmObserver {
  /** Conversations kept warm now (their CLI processes alive, idle or running a turn). */
  size?(n: number): void;
  /** A warm-eligible turn ran on a kept process (`hit`) or had to start one (`miss`). */
  turn?(result: 'hit' | 'miss'): void;
  /** This worker asked the warm owner of a conversation to take a turn, and got this answer. */
  handoff?(answer: 'accepted' | 'declined' | 'no_answer'): void;
  /** A warm conversation was let go, and why. */
  released?(reason: string): void;
}
