// The worker's public shape: its options, how it reports the turns it ran, how it ends.
import type { Logger } from 'pino';
import type { LifetimeEnd } from './lifetime.js';
import type { ObserveAttempt, WarmObserver } from './observer.js';

export interface WorkerOptions {
  /** Default: config.concurrency. */
  concurrency?: number;
  log?: Logger;
  /** Default: `<hostname>:<pid>:<random>`. */
  workerId?: string;
  /** Gives each claimed attempt an observer (metrics, traces; see src/metrics). Default: none. */
  observeAttempt?: ObserveAttempt;
  /** Stop on its own after this many claimed turns ended (committed or handed back). Default: no limit. */
  maxTurns?: number;
  /** Stop on its own after this long with no turn running (from start, and after each turn). Default: never. */
  idleExitMs?: number;
  /** Told about warm conversations (metrics). Default: none. */
  observeWarm?: WarmObserver;
}

/** How one claimed turn ended in this worker: its committed status, or why it was not committed here. */
export type TurnEnding = 'succeeded' | 'failed' | 'cancelled' | 'awaiting_approval' | 'requeued' | 'lease_lost' | 'error';

/** Why and how a worker stopped. */
export interface WorkerEnd {
  reason: 'stopped' | LifetimeEnd;
  /** Every turn this worker claimed, in the order their attempts ended. */
  turns: { turnId: string; ending: TurnEnding }[];
}

export interface TurnWorker {
  readonly workerId: string;
  /** Connects, reconciles once, and starts taking jobs. Idempotent. */
  start(): Promise<void>;
  /**
   * Stops taking jobs; running turns get `graceMs` (default AGENTQ_SHUTDOWN_GRACE_MS) to
   * finish, then are interrupted, checkpointed and handed back. Idempotent; a second call
   * with `graceMs: 0` cuts the grace short.
   */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** One reconciler pass now (also runs periodically). */
  reconcileNow(): Promise<{ checked: number; dispatched: number; failed: number }>;
  /** Turns running in this worker right now. */
  running(): string[];
  /** Settles once the worker has stopped, by stop() or on its own (maxTurns, idleExitMs), all connections closed. */
  readonly finished: Promise<WorkerEnd>;
}
