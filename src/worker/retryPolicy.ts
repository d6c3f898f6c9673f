// What a turn's outcome means for the turn (invariant 8 of docs/design.md), as one exhaustive switch.
import { assertNever, type RunOutcome } from '../runner/outcome.js';
import type { TurnError } from '../store/turns.js';

export type { TurnError } from '../store/turns.js';

export type TurnDecision =
  /** Commit the session and finish the turn with this status. */
  | { kind: 'finish'; status: 'succeeded' | 'failed' | 'cancelled'; error?: TurnError }
  /** Checkpoint and run the turn again later (if attempts remain; else finish as failed). */
  | { kind: 'retry'; error: TurnError }
  /** The stored session could not be resumed: apply the missing-session policy. */
  | { kind: 'session_missing'; error: TurnError };


export function decide(outcome: RunOutcome): TurnDecision {
  switch (outcome.type) {
    case 'success':
      return { kind: 'finish', status: 'succeeded' };
    case 'max_turns':
      return {
        kind: 'finish',
        status: 'failed',
        error: { class: 'max_turns', message: 'the turn reached its max turns', retryable: false },
      };
    case 'budget_exceeded':
      return {
        kind: 'finish',
        status: 'failed',
        error: { class: 'budget_exceeded', message: 'the turn reached its max budget', retryable: false },
      };
    case 'api_error': {
      const error: TurnError = { class: 'api_error', message: outcome.message, retryable: outcome.retryable };
      return outcome.retryable ? { kind: 'retry', error } : { kind: 'finish', status: 'failed', error };
    }
    case 'auth':
      // A configuration error: every retry would be refused the same way.
      return { kind: 'finish', status: 'failed', error: { class: 'auth', message: outcome.message, retryable: false } };
    case 'session_not_found':
      return {
        kind: 'session_missing',
        error: { class: 'session_not_found', message: `the CLI found no session ${outcome.requestedSessionId}`, retryable: false },
      };
    case 'cli_not_found':
      return { kind: 'finish', status: 'failed', error: { class: 'cli_not_found', message: outcome.message, retryable: false } };
    case 'timed_out':
      return {
        kind: 'retry',
        error: { class: 'timed_out', message: `no ${outcome.timeout === 'idle' ? 'output' : 'end'} within ${outcome.limitMs} ms`, retryable: true },
      };
    case 'cancelled':
      return { kind: 'finish', status: 'cancelled', error: { class: 'cancelled', message: outcome.reason, retryable: false } };
    case 'crashed':
      return { kind: 'retry', error: { class: 'crashed', message: outcome.message, retryable: true } };
    case 'protocol_error':
      return { kind: 'retry', error: { class: 'protocol_error', message: outcome.message, retryable: true } };
    case 'resource_limit':
      // The same turn would most likely hit the same limit again.
      return { kind: 'finish', status: 'failed', error: { class: 'resource_limit', message: outcome.message, retryable: false } };
    default:
      return assertNever(outcome);
  }
}

/** Exponential backoff with full jitter, capped. `attempt` starts at 1. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
